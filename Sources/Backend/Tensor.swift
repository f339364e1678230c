import Foundation

/// A flat, typed buffer owned by one backend. Shapes are passed to each op explicitly, so one
/// tensor can be read as [tokens × heads·dim] by one op and [tokens·heads × dim] by the next.
public final class Tensor: @unchecked Sendable {
    public let type: ElementType
    public let count: Int
    public let byteCount: Int
    /// The backend's storage (CPUStorage or a device allocation).
    let storage: AnyObject
    let backendID: ObjectIdentifier

    init(type: ElementType, count: Int, storage: AnyObject, backend: AnyObject) {
        self.type = type
        self.count = count
        self.byteCount = type.byteCount(count)
        self.storage = storage
        self.backendID = ObjectIdentifier(backend)
    }
}

/// The row-wise steering term fused into SiLU·up and the residual add: `scales` holds α per row
/// (0 where the row is not steered), `vector` the direction. Additive: h + s[r]·v. Multiplicative
/// (SADI's binary mask m): h + s[r]·(m ⊙ h). With `vectorRows` (u32, one per row), `vector` is a
/// table of directions [V × width] and row r uses table row vectorRows[r]: each row of a batch
/// its own vector (an index past the table is an error on the CPU backend; a kernel clamps it).
public struct Steering {
    public let scales: Tensor
    public let vector: Tensor
    public let vectorRows: Tensor?
    public let multiplicative: Bool
    public init(scales: Tensor, vector: Tensor, vectorRows: Tensor? = nil, multiplicative: Bool = false) {
        self.scales = scales
        self.vector = vector
        self.vectorRows = vectorRows
        self.multiplicative = multiplicative
    }
}

public enum RopeLayout: UInt32, Sendable, CaseIterable {
    /// Pairs (i, i + d/2): Hugging Face and GGUF qwen2/qwen3.
    case rotateHalf = 0
    /// Pairs (2i, 2i + 1): GGUF llama (Q/K rows permuted by the converter).
    case interleaved = 1
}

/// RMSNorm of a matmul's input columns, fused into the matmul: `x / rms(x) · weight` with
/// `rms(x) = sqrt(mean(x²) + eps)`, the `rmsNorm` op's formula.
public struct InputNorm {
    public var weight: Tensor
    public var eps: Float
    public init(weight: Tensor, eps: Float) {
        self.weight = weight
        self.eps = eps
    }
}

/// What a matmul does with each output before it stores it: fusing the op that follows a matmul
/// into it saves a dispatch and a round trip of the activations through memory.
public enum MatmulEpilogue {
    /// `y[m, n] = Σ_k w[n, k] · x[m, k]`.
    case store
    /// The residual add: `y[m, n] = r[m, n] + Σ_k w[n, k] · x[m, k] (+ s·v)`, the same formula
    /// and order as `add(r, product, steering:)`. `y` may be `r` (in place).
    case addResidual(Tensor, steering: Steering?)
    /// The gated MLP input: `w` holds the gate and up rows interleaved (row 2j is gate row j, row
    /// 2j + 1 up row j), and `y[m, j] = (silu(g) + s·v) · u` over n/2 outputs per column, the same
    /// formula as `siluMul`. `gate`, if given, receives the raw gate values [m × n/2] (capture).
    case siluGate(steering: Steering?, gate: Tensor?)

    /// The attention block's input: `w` stacks the q, k and v rows (see `AttentionInputs`).
    case attentionInputs(AttentionInputs)

    /// Outputs per column in `y` for an n-row weight.
    public func width(n: Int) -> Int {
        switch self {
        case .store, .addResidual: return n
        case .siluGate: return n / 2
        case .attentionInputs(let a): return a.queryWidth
        }
    }
}

/// The q, k and v projections as one matmul over stacked rows [q (queryWidth); k (kvWidth);
/// v (kvWidth)]: the bias added, q and k rotated by RoPE with pairs on adjacent rows (2i, 2i + 1
/// of each head), q stored in `y` [m × queryWidth], k and v in row `rows[m]` (or m) of `keys`
/// and `values` ([· × kvWidth]) — the KV cache, so no scatter follows.
public struct AttentionInputs {
    public var queryWidth: Int
    public var kvWidth: Int
    public var headDim: Int
    /// [queryWidth + 2·kvWidth], added before the rotation.
    public var bias: Tensor?
    /// [m × headDim/2 × 2]: cos and sin of each column's angle per pair (`RopeTable`); nil: no rotation.
    public var ropeTable: Tensor?
    public var keys: Tensor
    public var values: Tensor
    /// u32 [m]: the row of `keys` / `values` each column goes to; nil: row m.
    public var rows: Tensor?

    public init(queryWidth: Int, kvWidth: Int, headDim: Int, bias: Tensor?, ropeTable: Tensor?, keys: Tensor, values: Tensor, rows: Tensor?) {
        self.queryWidth = queryWidth
        self.kvWidth = kvWidth
        self.headDim = headDim
        self.bias = bias
        self.ropeTable = ropeTable
        self.keys = keys
        self.values = values
        self.rows = rows
    }
}

/// The rotation angles of a step's tokens for the fused RoPE: `pos · invFreq[i]` in f32 (the
/// same product as the `rope` op) and its cos and sin, computed on the host once per step.
public enum RopeTable {
    public static func values(positions: [Int], inverseFrequencies: [Float]) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(positions.count * inverseFrequencies.count * 2)
        for p in positions {
            for f in inverseFrequencies {
                let angle = Float(p) * f
                out.append(cos(angle))
                out.append(sin(angle))
            }
        }
        return out
    }
}

/// Which matmul kernel runs: `.auto` picks matrix × vector for M ≤ 8, else the tiled one (on
/// the device's matrix units where it has them). `.cooperative` is the tiled op on the matrix
/// units (VK_NV_cooperative_matrix); a backend without them refuses it, the CPU twin computes the
/// same product for every kind.
public enum MatmulKernel: String, Sendable, CaseIterable {
    case auto, vector, tiled, cooperative
}

public struct BackendError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The ops every backend implements with the same semantics (docs/KERNELS.md). The CPU backend
/// runs them at once; the Vulkan backend records them and runs them at `synchronize()`.
/// Shapes are checked before anything runs.
public protocol Backend: AnyObject {
    var name: String { get }
    /// Where the ops recorded next belong ("layer 3 attention", "lm head"), for profiles.
    var profileLabel: String { get set }

    func makeTensor(_ type: ElementType, count: Int) throws -> Tensor
    /// A tensor for a small result the host reads every step (a sampler's top-k), placed where
    /// the host reads it cheapest; ops treat it as any other.
    func makeReadbackTensor(_ type: ElementType, count: Int) throws -> Tensor
    /// Writes raw bytes (already in `t.type`) to the start of `t`.
    func write(_ t: Tensor, bytes: UnsafeRawBufferPointer) throws
    /// Reads `t`'s bytes; waits for pending work first.
    func readBytes(_ t: Tensor) throws -> [UInt8]
    /// Runs everything recorded so far and waits for it.
    func synchronize() throws

    /// `y[m, n] = Σ_k w[n, k] · x[m, k]`; `w` is [n × k] in any weight format; `inputNorm`, if
    /// given, RMS-normalises each column of x on the way in (as `rmsNorm` would first);
    /// `epilogue` says what is done with each product before it is stored.
    func matmul(weight w: Tensor, input x: Tensor, output y: Tensor, m: Int, n: Int, k: Int, kernel: MatmulKernel,
                inputNorm: InputNorm?, epilogue: MatmulEpilogue) throws
    /// `out[t, :] = w[ids[t], :]` decoded; ids outside [0, rows) leave their row untouched.
    func embedding(table w: Tensor, ids: Tensor, output: Tensor, tokens: Int, rows: Int, width: Int) throws
    /// `out[dst[t], :] = input[t, :]`.
    func scatterRows(input: Tensor, rows dst: Tensor, output: Tensor, tokens: Int, width: Int) throws
    /// `out[r, :] = x[r, :] / rms(x[r, :]) · weight`.
    func rmsNorm(input x: Tensor, weight: Tensor, output: Tensor, rows: Int, width: Int, eps: Float) throws
    /// Rotary embedding in place over [tokens × heads × headDim].
    func rope(_ x: Tensor, positions: Tensor, inverseFrequencies: Tensor, tokens: Int, heads: Int, headDim: Int,
              rotaryDim: Int, layout: RopeLayout) throws
    /// Causal grouped-query attention of `tokens` queries over caches [sequences × capacity × kvHeads × headDim].
    /// `contextBound` is an upper bound on every `positions[t] + 1`. `sequenceRuns` promises that
    /// tokens come in runs of that many of one sequence (tokens r·L … r·L + L − 1 share `seq`; 1
    /// promises nothing): a prefill's queries then share their key and value reads.
    func attention(query q: Tensor, keys: Tensor, values: Tensor, sequenceOf seq: Tensor, positions: Tensor, output: Tensor,
                   tokens: Int, heads: Int, kvHeads: Int, headDim: Int, sequences: Int, capacity: Int,
                   contextBound: Int, scale: Float, sequenceRuns: Int) throws
    /// `out = (silu(gate) + s·v) · up` over [rows × width].
    func siluMul(gate: Tensor, up: Tensor, output: Tensor, rows: Int, width: Int, steering: Steering?) throws
    /// `out = a + b + s·v` over [rows × width] (`b` optional).
    func add(_ a: Tensor, _ b: Tensor?, output: Tensor, rows: Int, width: Int, steering: Steering?) throws
    /// The `k` largest entries of each row (value desc, index asc), NaN ranked lowest.
    func topK(_ values: Tensor, rows: Int, length: Int, k: Int, outValues: Tensor, outIndices: Tensor) throws
    /// Each row's softmax head at temperature 1 / c, c = `inverseTemperatures[r]` > 0: its
    /// largest non-NaN entry M, the normaliser S = Σ exp((x − M) · c) over the non-NaN entries,
    /// and the entries whose distance d = (M − x) · c has ⌊d⌋ < W, for the widest window W ≤
    /// `maxWindow` nats that holds at most `capacity` entries; written as `SoftmaxHead` reads
    /// them (u32 `output`, `SoftmaxHead.words(capacity:)` a row).
    func softmaxHead(_ values: Tensor, rows: Int, length: Int, inverseTemperatures: Tensor, maxWindow: Int, capacity: Int,
                     output: Tensor) throws

    // Reuse of recorded work: a decode step is the same ops on the same tensors token after
    // token (only the contents of its inputs change), so a backend that records ops can keep the
    // recording and run it again instead of recording every op anew.
    /// Starts keeping the ops that follow (they still run as usual) until `endReusableOps()`;
    /// false where the backend cannot (then nothing is kept).
    func beginReusableOps() throws -> Bool
    /// The ops since `beginReusableOps()`, for `replay`; nil if they cannot be run again.
    func endReusableOps() throws -> ReusableOps?
    /// Runs kept ops again, on their tensors' contents as they are by then.
    func replay(_ ops: ReusableOps) throws
    /// Attention ops whose context bounds fall in one bucket record the same work (the backend
    /// reads each query's own extent from `positions`).
    func attentionBucket(contextBound: Int) -> Int
    /// The largest keys or values tensor the attention op binds whole (one layer of a KV cache).
    var maxAttentionKVBytes: Int { get }
}

/// Ops a backend recorded once and can run again (`Backend.replay`).
public protocol ReusableOps: AnyObject {}

public extension Backend {
    /// Where all memory is the host's, any tensor will do.
    func makeReadbackTensor(_ type: ElementType, count: Int) throws -> Tensor { try makeTensor(type, count: count) }

    /// A backend that runs ops at once (the CPU reference) keeps nothing.
    func beginReusableOps() throws -> Bool { false }
    func endReusableOps() throws -> ReusableOps? { nil }
    func replay(_ ops: ReusableOps) throws { throw BackendError("\(name) keeps no ops to replay") }
    func attentionBucket(contextBound: Int) -> Int { contextBound }
    var maxAttentionKVBytes: Int { Int.max }

    /// Attention with no promise about the order of the tokens' sequences.
    func attention(query q: Tensor, keys: Tensor, values: Tensor, sequenceOf seq: Tensor, positions: Tensor, output: Tensor,
                   tokens: Int, heads: Int, kvHeads: Int, headDim: Int, sequences: Int, capacity: Int,
                   contextBound: Int, scale: Float) throws {
        try attention(query: q, keys: keys, values: values, sequenceOf: seq, positions: positions, output: output, tokens: tokens,
                      heads: heads, kvHeads: kvHeads, headDim: headDim, sequences: sequences, capacity: capacity,
                      contextBound: contextBound, scale: scale, sequenceRuns: 1)
    }

    /// A plain matmul (`.store`).
    func matmul(weight w: Tensor, input x: Tensor, output y: Tensor, m: Int, n: Int, k: Int, kernel: MatmulKernel) throws {
        try matmul(weight: w, input: x, output: y, m: m, n: n, k: k, kernel: kernel, inputNorm: nil, epilogue: .store)
    }

    /// A matmul without an input norm.
    func matmul(weight w: Tensor, input x: Tensor, output y: Tensor, m: Int, n: Int, k: Int, kernel: MatmulKernel,
                epilogue: MatmulEpilogue) throws {
        try matmul(weight: w, input: x, output: y, m: m, n: n, k: k, kernel: kernel, inputNorm: nil, epilogue: epilogue)
    }

    func makeTensor(floats: [Float]) throws -> Tensor {
        let t = try makeTensor(.f32, count: floats.count)
        try floats.withUnsafeBytes { try write(t, bytes: $0) }
        return t
    }

    func makeTensor(uints: [UInt32]) throws -> Tensor {
        let t = try makeTensor(.u32, count: uints.count)
        try uints.withUnsafeBytes { try write(t, bytes: $0) }
        return t
    }

    /// A weight tensor from raw bytes in `type`.
    func makeTensor(_ type: ElementType, count: Int, bytes: [UInt8]) throws -> Tensor {
        guard bytes.count == type.byteCount(count) else {
            throw BackendError("\(count) \(type.rawValue) elements take \(type.byteCount(count)) bytes, got \(bytes.count)")
        }
        let t = try makeTensor(type, count: count)
        try bytes.withUnsafeBytes { try write(t, bytes: $0) }
        return t
    }

    func write(_ t: Tensor, floats: [Float]) throws {
        precondition(t.type == .f32 && floats.count <= t.count)
        try floats.withUnsafeBytes { try write(t, bytes: $0) }
    }

    func write(_ t: Tensor, uints: [UInt32]) throws {
        precondition(t.type == .u32 && uints.count <= t.count)
        try uints.withUnsafeBytes { try write(t, bytes: $0) }
    }

    func readFloats(_ t: Tensor) throws -> [Float] {
        let bytes = try readBytes(t)
        return bytes.withUnsafeBytes { Quantization.decode($0, as: t.type, count: t.count) }
    }

    func readUInts(_ t: Tensor) throws -> [UInt32] {
        precondition(t.type == .u32)
        let bytes = try readBytes(t)
        return bytes.withUnsafeBytes { raw in (0..<t.count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) } }
    }

    /// Copies selected rows of an f32 [* × width] tensor back to the host (a gather, so only
    /// those rows cross to the host).
    func readRows(_ t: Tensor, width: Int, rows: [Int]) throws -> [[Float]] {
        if rows.isEmpty { return [] }
        let total = t.count / width
        for r in rows where r < 0 || r >= total { throw BackendError("readRows: row \(r) outside 0..<\(total)") }
        let ids = try makeTensor(uints: rows.map { UInt32($0) })
        let out = try makeTensor(.f32, count: rows.count * width)
        try embedding(table: t, ids: ids, output: out, tokens: rows.count, rows: total, width: width)
        let flat = try readFloats(out)
        return (0..<rows.count).map { Array(flat[$0 * width..<($0 + 1) * width]) }
    }
}
