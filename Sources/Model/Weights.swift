import Backend
import Formats
import Foundation

/// What a weight is for, independent of how a file names it.
enum WeightRole {
    case embed, outputNorm, lmHead
    case attnNorm, q, k, v, o, qBias, kBias, vBias, qNorm, kNorm, ffnNorm, gate, up, down

    /// The Hugging Face name (safetensors, and llama2.c checkpoints as the Formats layer exposes them).
    func hfName(layer: Int) -> String {
        let p = "model.layers.\(layer)."
        switch self {
        case .embed: return "model.embed_tokens.weight"
        case .outputNorm: return "model.norm.weight"
        case .lmHead: return "lm_head.weight"
        case .attnNorm: return p + "input_layernorm.weight"
        case .q: return p + "self_attn.q_proj.weight"
        case .k: return p + "self_attn.k_proj.weight"
        case .v: return p + "self_attn.v_proj.weight"
        case .o: return p + "self_attn.o_proj.weight"
        case .qBias: return p + "self_attn.q_proj.bias"
        case .kBias: return p + "self_attn.k_proj.bias"
        case .vBias: return p + "self_attn.v_proj.bias"
        case .qNorm: return p + "self_attn.q_norm.weight"
        case .kNorm: return p + "self_attn.k_norm.weight"
        case .ffnNorm: return p + "post_attention_layernorm.weight"
        case .gate: return p + "mlp.gate_proj.weight"
        case .up: return p + "mlp.up_proj.weight"
        case .down: return p + "mlp.down_proj.weight"
        }
    }

    /// The llama.cpp GGUF name.
    func ggufName(layer: Int) -> String {
        let p = "blk.\(layer)."
        switch self {
        case .embed: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .lmHead: return "output.weight"
        case .attnNorm: return p + "attn_norm.weight"
        case .q: return p + "attn_q.weight"
        case .k: return p + "attn_k.weight"
        case .v: return p + "attn_v.weight"
        case .o: return p + "attn_output.weight"
        case .qBias: return p + "attn_q.bias"
        case .kBias: return p + "attn_k.bias"
        case .vBias: return p + "attn_v.bias"
        case .qNorm: return p + "attn_q_norm.weight"
        case .kNorm: return p + "attn_k_norm.weight"
        case .ffnNorm: return p + "ffn_norm.weight"
        case .gate: return p + "ffn_gate.weight"
        case .up: return p + "ffn_up.weight"
        case .down: return p + "ffn_down.weight"
        }
    }
}

/// A model file's tensors under one naming scheme.
struct WeightSource {
    let path: String
    let tensors: [String: TensorInfo]
    let gguf: Bool

    func info(_ role: WeightRole, layer: Int = 0) -> TensorInfo? {
        tensors[gguf ? role.ggufName(layer: layer) : role.hfName(layer: layer)]
    }

    func require(_ role: WeightRole, layer: Int = 0) throws -> TensorInfo {
        guard let t = info(role, layer: layer) else {
            throw ModelError("\(path): missing tensor \(gguf ? role.ggufName(layer: layer) : role.hfName(layer: layer))")
        }
        return t
    }
}

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The tensors of one decoder layer, resident on the backend.
struct LayerWeights {
    let attnNorm: Tensor, ffnNorm: Tensor
    let attentionInput: AttentionInputWeights
    let o: Tensor
    /// Qwen3's per-head norms of q and k, in the order of the q and k rows.
    let qNorm: Tensor?, kNorm: Tensor?
    /// The MLP's gate and up projections: one tensor with their rows interleaved (row 2j gate j,
    /// row 2j + 1 up j) for the fused SiLU-gate matmul where both have one format, else apart.
    let mlpInput: MLPInput
    let down: Tensor

    /// Whether one matmul does all of the attention block's input: stacked q/k/v rows and no
    /// q/k norm between the projection and RoPE.
    var fusedAttentionInputs: Bool {
        if case .stacked = attentionInput, qNorm == nil { return true }
        return false
    }
}

/// The attention block's q, k and v projections.
enum AttentionInputWeights {
    /// Rows [q; k; v] in one tensor, q and k rows in adjacent RoPE pairs, for the fused matmul.
    case stacked(Tensor, bias: Tensor?)
    /// Three tensors in the file's row order (their formats differ).
    case separate(q: Tensor, k: Tensor, v: Tensor, qBias: Tensor?, kBias: Tensor?, vBias: Tensor?)

    /// The RoPE layout of the q and k rows.
    func ropeLayout(file: RopeLayout) -> RopeLayout {
        if case .stacked = self { return .interleaved }
        return file
    }
}

enum MLPInput {
    case interleaved(Tensor)
    case separate(gate: Tensor, up: Tensor)
}

/// Uploads tensors from a mapped file, checking each one's shape against the configuration.
struct WeightLoader {
    let source: WeightSource
    let backend: Backend
    /// Whether projections that share a format are stacked for the fused matmuls.
    let fuse: Bool
    var bytesUploaded = 0
    /// Tensors already scanned for non-finite values (gate/up and q/k/v are read row by row).
    var scanned: Set<String> = []

    /// The contract for ±inf / NaN in weights: refused at load, on every backend alike, naming
    /// the tensor and the first bad element (or quantisation block, whose scales are floats).
    private mutating func requireFinite(_ t: TensorInfo) throws {
        guard scanned.insert(t.name).inserted else { return }
        if let (i, unit) = t.firstNonFinite() {
            throw ModelError("\(source.path): tensor \(t.name) holds a non-finite value (±inf or NaN) at \(unit) \(i)")
        }
    }

    private func elementType(_ t: TensorInfo) throws -> ElementType {
        guard case .element(let e) = t.type, e != .u32 else {
            throw ModelError("\(source.path): tensor \(t.name) has type \(t.type), which the kernels do not decode")
        }
        return e
    }

    private func checkShape(_ t: TensorInfo, _ shape: [Int]) throws {
        guard t.shape == shape else {
            throw ModelError("\(source.path): tensor \(t.name) has shape \(t.shape), the configuration needs \(shape)")
        }
    }

    /// A matrix [rows × cols] uploaded in its file format (decoded in the shaders).
    mutating func matrix(_ role: WeightRole, layer: Int = 0, rows: Int, cols: Int) throws -> Tensor {
        let t = try source.require(role, layer: layer)
        try checkShape(t, [rows, cols])
        let type = try elementType(t)
        guard cols % type.blockElements == 0 else {
            throw ModelError("\(source.path): tensor \(t.name) is \(type.rawValue) with rows of \(cols), not whole blocks")
        }
        try requireFinite(t)
        let tensor = try backend.makeTensor(type, count: rows * cols)
        try backend.write(tensor, bytes: UnsafeRawBufferPointer(rebasing: t.data.prefix(type.byteCount(rows * cols))))
        bytesUploaded += tensor.byteCount
        return tensor
    }

    /// The gate and up matrices [rows × cols] as one tensor with their rows interleaved, when they
    /// share a format; else the two apart.
    mutating func gateUp(layer: Int, rows: Int, cols: Int) throws -> MLPInput {
        let g = try source.require(.gate, layer: layer), u = try source.require(.up, layer: layer)
        guard fuse, g.type == u.type else {
            return .separate(gate: try matrix(.gate, layer: layer, rows: rows, cols: cols), up: try matrix(.up, layer: layer, rows: rows, cols: cols))
        }
        for t in [g, u] { try checkShape(t, [rows, cols]) }
        return .interleaved(try gatherRows((0..<rows).flatMap { [(g, $0), (u, $0)] }, cols: cols))
    }

    /// q, k and v as one tensor of stacked rows [q; k; v] when they share a format, with one bias
    /// (zeros where a projection has none); q and k rows (and the bias and q/k-norm weights with
    /// them) reordered within each head from rotate-half pairs (i, i + d/2) to adjacent pairs
    /// (2i, 2i + 1) when `rotateHalf`, so the fused RoPE finds a pair in neighbouring rows. The
    /// order of a head's dimensions does not change q·k, so attention is the same. Else apart.
    mutating func attentionInput(layer l: Int, heads: Int, kvHeads: Int, headDim d: Int, hidden: Int, qkNorm: Bool,
                                 rotateHalf: Bool) throws -> (AttentionInputWeights, qNorm: Tensor?, kNorm: Tensor?) {
        let (qw, kvw) = (heads * d, kvHeads * d)
        let q = try source.require(.q, layer: l), k = try source.require(.k, layer: l), v = try source.require(.v, layer: l)
        let biases = try [(WeightRole.qBias, qw), (.kBias, kvw), (.vBias, kvw)].map { role, n -> [Float]? in
            guard let t = source.info(role, layer: l) else { return nil }
            try checkShape(t, [n])
            try requireFinite(t)
            return Quantization.decode(t.data, as: try elementType(t), count: n)
        }
        let norms = try qkNorm ? [WeightRole.qNorm, .kNorm].map { role -> [Float] in
            let t = try source.require(role, layer: l)
            try checkShape(t, [d])
            try requireFinite(t)
            return Quantization.decode(t.data, as: try elementType(t), count: d)
        } : []
        guard fuse, q.type == k.type, k.type == v.type, d % 4 == 0 else {
            let separate = AttentionInputWeights.separate(
                q: try matrix(.q, layer: l, rows: qw, cols: hidden), k: try matrix(.k, layer: l, rows: kvw, cols: hidden),
                v: try matrix(.v, layer: l, rows: kvw, cols: hidden),
                qBias: try upload(biases[0]), kBias: try upload(biases[1]), vBias: try upload(biases[2]))
            return (separate, try upload(norms.first), try upload(norms.last))
        }
        for (t, n) in [(q, qw), (k, kvw), (v, kvw)] { try checkShape(t, [n, hidden]) }
        // Row r of a rotated projection comes from file row `order(r)`.
        let order = { (r: Int) -> Int in
            guard rotateHalf else { return r }
            let (head, j) = (r / d, r % d)
            return head * d + j / 2 + (j % 2) * d / 2
        }
        let rows = (0..<qw).map { (q, order($0)) } + (0..<kvw).map { (k, order($0)) } + (0..<kvw).map { (v, $0) }
        let stacked = try gatherRows(rows, cols: hidden)
        var bias: Tensor?
        if biases.contains(where: { $0 != nil }) {
            let flat = [(biases[0], qw, true), (biases[1], kvw, true), (biases[2], kvw, false)].flatMap { b, n, rotated in
                (0..<n).map { r in b.map { $0[rotated ? order(r) : r] } ?? 0 }
            }
            bias = try upload(flat)
        }
        let normTensors = try norms.map { w in try upload((0..<d).map { w[order($0)] })! }
        return (.stacked(stacked, bias: bias), normTensors.first, normTensors.last)
    }

    /// One tensor whose row i is row `rows[i].1` of tensor `rows[i].0` (all of one format, `cols` wide).
    private mutating func gatherRows(_ rows: [(TensorInfo, Int)], cols: Int) throws -> Tensor {
        let type = try elementType(rows[0].0)
        guard cols % type.blockElements == 0 else {
            throw ModelError("\(source.path): tensor \(rows[0].0.name) is \(type.rawValue) with rows of \(cols), not whole blocks")
        }
        for (t, _) in rows { try requireFinite(t) }
        let rowBytes = type.byteCount(cols)
        var bytes = [UInt8](repeating: 0, count: rows.count * rowBytes)
        try bytes.withUnsafeMutableBytes { out in
            for (i, (t, r)) in rows.enumerated() {
                guard t.data.count >= (r + 1) * rowBytes else {
                    throw ModelError("\(source.path): tensor \(t.name) holds \(t.data.count) bytes, too few for row \(r) of \(cols) \(type.rawValue)")
                }
                UnsafeMutableRawBufferPointer(rebasing: out[i * rowBytes..<(i + 1) * rowBytes])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: t.data[r * rowBytes..<(r + 1) * rowBytes]))
            }
        }
        let tensor = try backend.makeTensor(type, count: rows.count * cols, bytes: bytes)
        bytesUploaded += tensor.byteCount
        return tensor
    }

    /// A vector (norm weight, bias) decoded to f32, which the row-wise kernels take.
    mutating func vector(_ role: WeightRole, layer: Int = 0, count: Int) throws -> Tensor {
        try vector(try source.require(role, layer: layer), count: count)
    }

    /// Floats already decoded, as an f32 tensor.
    private mutating func upload(_ floats: [Float]?) throws -> Tensor? {
        guard let floats else { return nil }
        bytesUploaded += 4 * floats.count
        return try backend.makeTensor(floats: floats)
    }

    private mutating func vector(_ t: TensorInfo, count: Int) throws -> Tensor {
        try checkShape(t, [count])
        try requireFinite(t)
        let floats = Quantization.decode(t.data, as: try elementType(t), count: count)
        bytesUploaded += count * 4
        return try backend.makeTensor(floats: floats)
    }
}
