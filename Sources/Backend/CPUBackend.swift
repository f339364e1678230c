import Foundation

/// Bytes of one CPU tensor, 16-byte aligned.
final class CPUStorage {
    let raw: UnsafeMutableRawBufferPointer
    init(bytes: Int) {
        raw = .allocate(byteCount: max(bytes, 4), alignment: 16)
        raw.initializeMemory(as: UInt8.self, repeating: 0)
    }
    deinit { raw.deallocate() }
    var floats: UnsafeMutableBufferPointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var uints: UnsafeMutableBufferPointer<UInt32> { raw.assumingMemoryBound(to: UInt32.self) }
}

/// The reference backend: plain, obviously correct Swift, one loop nest per op, run at once.
/// Every Vulkan kernel is checked against it.
public final class CPUBackend: Backend {
    public let name = "cpu"
    public var profileLabel = ""
    public init() {}

    public func makeTensor(_ type: ElementType, count: Int) throws -> Tensor {
        guard count > 0 else { throw BackendError("tensor of \(count) elements") }
        return Tensor(type: type, count: count, storage: CPUStorage(bytes: type.byteCount(count)), backend: self)
    }

    private func store(_ t: Tensor) -> CPUStorage {
        guard let s = t.storage as? CPUStorage else { preconditionFailure("the CPU backend was given a tensor of another backend") }
        return s
    }
    private func f(_ t: Tensor) -> UnsafeMutableBufferPointer<Float> { store(t).floats }
    private func u(_ t: Tensor) -> UnsafeMutableBufferPointer<UInt32> { store(t).uints }

    public func write(_ t: Tensor, bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= t.byteCount else { throw BackendError("write of \(bytes.count) bytes into a \(t.byteCount)-byte tensor") }
        guard let src = bytes.baseAddress else { return }
        store(t).raw.baseAddress!.copyMemory(from: src, byteCount: bytes.count)
    }

    public func readBytes(_ t: Tensor) throws -> [UInt8] { Array(UnsafeRawBufferPointer(store(t).raw).prefix(t.byteCount)) }

    public func synchronize() throws {}

    /// Row `row` of a [rows × width] weight tensor, decoded.
    func decodeRow(_ w: Tensor, row: Int, width: Int) -> [Float] {
        Quantization.decode(UnsafeRawBufferPointer(store(w).raw), as: w.type, first: row * width, count: width)
    }

    public func matmul(weight w: Tensor, input xIn: Tensor, output y: Tensor, m: Int, n: Int, k: Int, kernel: MatmulKernel,
                       inputNorm: InputNorm?, epilogue: MatmulEpilogue) throws {
        try OpCheck.matmul(w, xIn, y, m: m, n: n, k: k, kernel: kernel, inputNorm: inputNorm, epilogue: epilogue, backend: self)
        // The input norm is the rmsNorm op into a temporary.
        var x = xIn
        if let norm = inputNorm {
            x = try makeTensor(.f32, count: m * k)
            try rmsNorm(input: xIn, weight: norm.weight, output: x, rows: m, width: k, eps: norm.eps)
        }
        guard case .store = epilogue else {
            // The product first, then the epilogue with the elementwise ops' own formulas.
            var product = [Float](repeating: 0, count: m * n)
            try product.withUnsafeMutableBufferPointer { try matmulProducts(w, f(x), $0, m: m, n: n, k: k) }
            let out = f(y)
            switch epilogue {
            case .store: break
            case .addResidual(let r, let steering):
                let rv = f(r), steer = try hostSteer(steering, rows: m, width: n)
                for i in 0..<m * n {
                    let sum = rv[i] + product[i]
                    out[i] = steer?.apply(sum, row: i / n, col: i % n) ?? sum
                }
            case .siluGate(let steering, let gate):
                let half = n / 2, gv = gate.map { f($0) }, steer = try hostSteer(steering, rows: m, width: n / 2)
                for r in 0..<m {
                    for j in 0..<half {
                        let g = product[r * n + 2 * j], u = product[r * n + 2 * j + 1]
                        let a = Self.silu(g)
                        out[r * half + j] = (steer?.apply(a, row: r, col: j) ?? a) * u
                        gv?[r * half + j] = g
                    }
                }
            case .attentionInputs(let a):
                try storeAttentionInputs(product, a, y: out, m: m, n: n)
            }
            return
        }
        try matmulProducts(w, f(x), f(y), m: m, n: n, k: k)
    }

    /// Bias, RoPE on adjacent pairs with the step's table, q to y, k and v to their rows.
    private func storeAttentionInputs(_ product: [Float], _ a: AttentionInputs, y: UnsafeMutableBufferPointer<Float>, m: Int, n: Int) throws {
        let (qw, kvw, half) = (a.queryWidth, a.kvWidth, a.headDim / 2)
        let bias = a.bias.map { f($0) }, table = a.ropeTable.map { f($0) }, rows = a.rows.map { u($0) }
        let keys = f(a.keys), values = f(a.values)
        for col in 0..<m {
            let row = rows.map { Int($0[col]) } ?? col
            guard (row + 1) * kvw <= min(a.keys.count, a.values.count) else {
                throw BackendError("matmul (attention inputs): row \(row) of column \(col) is outside the \(min(a.keys.count, a.values.count) / kvw) rows of keys / values")
            }
            for i in stride(from: 0, to: n, by: 2) {
                var (x0, x1) = (product[col * n + i], product[col * n + i + 1])
                if let bias { (x0, x1) = (x0 + bias[i], x1 + bias[i + 1]) }
                if let table, i < qw + kvw {
                    let t = (col * half + (i % a.headDim) / 2) * 2
                    let (c, sn) = (table[t], table[t + 1])
                    (x0, x1) = (x0 * c - x1 * sn, x0 * sn + x1 * c)
                }
                let (dst, at): (UnsafeMutableBufferPointer<Float>, Int) =
                    i < qw ? (y, col * qw + i) : (i < qw + kvw ? (keys, row * kvw + i - qw) : (values, row * kvw + i - qw - kvw))
                dst[at] = x0
                dst[at + 1] = x1
            }
        }
    }

    /// `x / (1 + exp(-x))`, as the kernels write it (exp overflowing gives the right limit, -0).
    static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// The steering term of the fused ops: `x + s·v` (additive) or `x + s·(v·x)` (multiplicative).
    static func steered(_ x: Float, _ s: Float, _ v: Float, multiplicative: Bool) -> Float {
        multiplicative ? x + s * (v * x) : x + s * v
    }

    /// A steering read on the host, for `rows` rows of `width`: row r's vector is row 0 of the
    /// table, or with `vectorRows` its own row (checked against the table here).
    struct HostSteer {
        let scales: UnsafeMutableBufferPointer<Float>, vector: UnsafeMutableBufferPointer<Float>
        let tableRows: [Int]?, width: Int, multiplicative: Bool
        func apply(_ x: Float, row r: Int, col i: Int) -> Float {
            CPUBackend.steered(x, scales[r], vector[(tableRows?[r] ?? 0) * width + i], multiplicative: multiplicative)
        }
    }

    private func hostSteer(_ s: Steering?, rows: Int, width: Int) throws -> HostSteer? {
        guard let s else { return nil }
        let table = try s.vectorRows.map { t -> [Int] in
            let idx = u(t).prefix(rows).map(Int.init), count = s.vector.count / width
            if let bad = idx.firstIndex(where: { $0 >= count }) {
                throw BackendError("steering: row \(bad) asks for vector \(idx[bad]) of a table of \(count)")
            }
            return idx
        }
        return HostSteer(scales: f(s.scales), vector: f(s.vector), tableRows: table, width: width, multiplicative: s.multiplicative)
    }

    /// `ys[col · n + row] = Σ_k w[row, k] · xs[col · k + k]`.
    private func matmulProducts(_ w: Tensor, _ xsIn: UnsafeMutableBufferPointer<Float>, _ ysIn: UnsafeMutableBufferPointer<Float>,
                                m: Int, n: Int, k: Int) throws {
        // Rows are independent: blocks of 64 rows run on all cores, each writing its own outputs
        // (hence the unchecked sharing of the buffers). Products are summed in double precision,
        // four lanes at a time.
        nonisolated(unsafe) let xs = xsIn, ys = ysIn
        nonisolated(unsafe) let raw = UnsafeRawBufferPointer(store(w).raw)
        let type = w.type
        let blocks = (n + 63) / 64
        DispatchQueue.concurrentPerform(iterations: blocks) { blk in
            for row in blk * 64..<min(n, blk * 64 + 64) {
                let wr = Quantization.decode(raw, as: type, first: row * k, count: k)
                for col in 0..<m {
                    var acc4 = SIMD4<Double>()
                    var i = 0
                    while i + 4 <= k {
                        let wv = SIMD4<Double>(Double(wr[i]), Double(wr[i + 1]), Double(wr[i + 2]), Double(wr[i + 3]))
                        let xv = SIMD4<Double>(Double(xs[col * k + i]), Double(xs[col * k + i + 1]),
                                               Double(xs[col * k + i + 2]), Double(xs[col * k + i + 3]))
                        acc4 += wv * xv
                        i += 4
                    }
                    var acc = acc4.sum()
                    while i < k { acc += Double(wr[i]) * Double(xs[col * k + i]); i += 1 }
                    ys[col * n + row] = Float(acc)
                }
            }
        }
    }

    public func embedding(table w: Tensor, ids: Tensor, output: Tensor, tokens: Int, rows: Int, width: Int) throws {
        try OpCheck.embedding(w, ids, output, tokens: tokens, rows: rows, width: width, backend: self)
        let idv = u(ids), out = f(output)
        for t in 0..<tokens where Int(idv[t]) < rows {
            let r = decodeRow(w, row: Int(idv[t]), width: width)
            for i in 0..<width { out[t * width + i] = r[i] }
        }
    }

    public func scatterRows(input: Tensor, rows dst: Tensor, output: Tensor, tokens: Int, width: Int) throws {
        try OpCheck.rowwise("scatterRows", [(input, "input", tokens * width)], rows: tokens, width: width, steering: nil, backend: self)
        try OpCheck.tensor(dst, "rows", of: "scatterRows", types: [.u32], atLeast: tokens, backend: self)
        let outRows = output.count / width
        let d = u(dst), src = f(input), out = f(output)
        for t in 0..<tokens {
            guard Int(d[t]) < outRows else { throw BackendError("scatterRows: destination row \(d[t]) outside 0..<\(outRows)") }
            for i in 0..<width { out[Int(d[t]) * width + i] = src[t * width + i] }
        }
    }

    public func rmsNorm(input x: Tensor, weight: Tensor, output: Tensor, rows: Int, width: Int, eps: Float) throws {
        try OpCheck.rowwise("rmsNorm", [(x, "input", rows * width), (weight, "weight", width), (output, "output", rows * width)],
                            rows: rows, width: width, steering: nil, backend: self)
        let xs = f(x), w = f(weight), out = f(output)
        for r in 0..<rows {
            var ss: Double = 0
            for i in 0..<width { ss += Double(xs[r * width + i]) * Double(xs[r * width + i]) }
            let scale = Float(1 / (ss / Double(width) + Double(eps)).squareRoot())
            for i in 0..<width { out[r * width + i] = xs[r * width + i] * scale * w[i] }
        }
    }

    public func rope(_ x: Tensor, positions: Tensor, inverseFrequencies: Tensor, tokens: Int, heads: Int, headDim: Int,
                     rotaryDim: Int, layout: RopeLayout) throws {
        try OpCheck.rope(x, positions, inverseFrequencies, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotaryDim, backend: self)
        let xs = f(x), pos = u(positions), inv = f(inverseFrequencies)
        let half = rotaryDim / 2
        for t in 0..<tokens {
            for h in 0..<heads {
                let base = (t * heads + h) * headDim
                for i in 0..<half {
                    let angle = Float(pos[t]) * inv[i]
                    let (c, s) = (cos(angle), sin(angle))
                    let (a, b) = layout == .rotateHalf ? (base + i, base + i + half) : (base + 2 * i, base + 2 * i + 1)
                    let (x0, x1) = (xs[a], xs[b])
                    xs[a] = x0 * c - x1 * s
                    xs[b] = x0 * s + x1 * c
                }
            }
        }
    }

    public func attention(query q: Tensor, keys: Tensor, values: Tensor, sequenceOf seq: Tensor, positions: Tensor, output: Tensor,
                          tokens: Int, heads: Int, kvHeads: Int, headDim: Int, sequences: Int, capacity: Int,
                          contextBound: Int, scale: Float, sequenceRuns: Int) throws {
        try OpCheck.attention(q: q, k: keys, v: values, seq: seq, pos: positions, out: output, tokens: tokens, heads: heads,
                              kvHeads: kvHeads, headDim: headDim, sequences: sequences, capacity: capacity,
                              contextBound: contextBound, backend: self)
        let qs = f(q), ks = f(keys), vs = f(values), sq = u(seq), ps = u(positions), out = f(output)
        let group = heads / kvHeads
        for t in 0..<tokens {
            let s = Int(sq[t]), p = Int(ps[t])
            guard s < sequences, p < contextBound else {
                throw BackendError("attention: token \(t) at sequence \(s), position \(p) is outside \(sequences) sequences × \(contextBound) positions")
            }
            for h in 0..<heads {
                let kvh = h / group
                let qBase = (t * heads + h) * headDim
                let scores = (0...p).map { j -> Float in
                    let kBase = ((s * capacity + j) * kvHeads + kvh) * headDim
                    var dot: Float = 0
                    for d in 0..<headDim { dot += qs[qBase + d] * ks[kBase + d] }
                    return dot * scale
                }
                let weights = Self.softmax(scores)
                for d in 0..<headDim {
                    var acc: Float = 0
                    for j in 0...p { acc += weights[j] * vs[((s * capacity + j) * kvHeads + kvh) * headDim + d] }
                    out[qBase + d] = acc
                }
            }
        }
    }

    /// Softmax with max subtraction, in f32.
    public static func softmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let e = x.map { exp($0 - m) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    public func siluMul(gate: Tensor, up: Tensor, output: Tensor, rows: Int, width: Int, steering: Steering?) throws {
        let n = rows * width
        try OpCheck.rowwise("siluMul", [(gate, "gate", n), (up, "up", n), (output, "output", n)], rows: rows, width: width,
                            steering: steering, backend: self)
        let g = f(gate), up = f(up), out = f(output)
        let steer = try hostSteer(steering, rows: rows, width: width)
        for r in 0..<rows {
            for i in 0..<width {
                let a = Self.silu(g[r * width + i])
                out[r * width + i] = (steer?.apply(a, row: r, col: i) ?? a) * up[r * width + i]
            }
        }
    }

    public func add(_ a: Tensor, _ b: Tensor?, output: Tensor, rows: Int, width: Int, steering: Steering?) throws {
        let n = rows * width
        try OpCheck.rowwise("add", [(a, "a", n), (output, "output", n)] + (b.map { [($0, "b", n)] } ?? []),
                            rows: rows, width: width, steering: steering, backend: self)
        let av = f(a), bv = b.map { f($0) }, out = f(output)
        let steer = try hostSteer(steering, rows: rows, width: width)
        for r in 0..<rows {
            for i in 0..<width {
                var x = av[r * width + i]
                if let bv { x += bv[r * width + i] }
                out[r * width + i] = steer?.apply(x, row: r, col: i) ?? x
            }
        }
    }

    /// Value a NaN ranks as, and the filler of slots beyond a row's length.
    public static let nanRank: Float = -.infinity
    public static let emptyValue: Float = -3.0e38
    public static let emptyIndex: UInt32 = 0xFFFF_FFFF

    public func topK(_ values: Tensor, rows: Int, length: Int, k: Int, outValues: Tensor, outIndices: Tensor) throws {
        try OpCheck.topK(values, rows: rows, length: length, k: k, outV: outValues, outI: outIndices, backend: self)
        let v = f(values), ov = f(outValues), oi = u(outIndices)
        for r in 0..<rows {
            let entries = (0..<length).map { i -> (Float, UInt32) in
                let x = v[r * length + i]
                return (x.isNaN ? Self.nanRank : x, UInt32(i))
            }
            let best = entries.sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }.prefix(k)
            for j in 0..<k {
                let (val, idx) = j < best.count ? best[j] : (Self.emptyValue, Self.emptyIndex)
                ov[r * k + j] = val
                oi[r * k + j] = idx
            }
        }
    }

    public func softmaxHead(_ values: Tensor, rows: Int, length: Int, inverseTemperatures: Tensor, maxWindow: Int, capacity: Int,
                            output: Tensor) throws {
        try OpCheck.softmaxHead(values, rows: rows, length: length, inverseTemperatures: inverseTemperatures, maxWindow: maxWindow,
                                capacity: capacity, output: output, backend: self)
        let v = f(values), c = f(inverseTemperatures), o = u(output), stride = SoftmaxHead.words(capacity: capacity)
        for r in 0..<rows {
            let row = (0..<length).map { v[r * length + $0] }
            let real = row.filter { !$0.isNaN && $0 != -.infinity }
            let m = real.max() ?? -.infinity
            // In Double, so the twin is the sum as it should be, not as one order rounds it.
            let s = real.reduce(0.0) { $0 + exp(Double($1 - m) * Double(c[r])) }
            // Each entry's whole nats from the maximum, by the kernel's f32 expression, so both
            // put it in the same nat; then the widest window that fits the capacity.
            let nats = m == -.infinity ? [] : row.indices.compactMap { i -> (index: Int, nat: Int)? in
                let d = (m - row[i]) * c[r]
                return d < Float(maxWindow) ? (i, Int(d)) : nil
            }
            var perNat = [Int](repeating: 0, count: maxWindow)
            for e in nats { perNat[e.nat] += 1 }
            var window = 0, count = 0
            while window < maxWindow, count + perNat[window] <= capacity {
                count += perNat[window]
                window += 1
            }
            let head = window == 0 ? [] : nats.filter { $0.nat < window }.map(\.index)
            let base = r * stride
            (o[base], o[base + 1], o[base + 2], o[base + 3]) = (m.bitPattern, Float(s).bitPattern, UInt32(window == 0 ? perNat[0] : count), UInt32(window))
            for (slot, i) in head.enumerated() {
                o[base + 4 + 2 * slot] = row[i].bitPattern
                o[base + 5 + 2 * slot] = UInt32(i)
            }
        }
    }
}
