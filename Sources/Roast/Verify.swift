import Backend
import Foundation

/// One comparison of a Vulkan kernel with its CPU twin.
public struct VerifyResult: Codable, Sendable {
    public var kernel: String
    public var format: String
    public var shape: String
    public var nmse: Double
    public var max_abs_err: Double
    public var limit: Double
    public var pass: Bool
    public var note: String?
    /// The kernel family the device backend ran (nil for a backend without families).
    public var family: String?
}

/// Random inputs of `roast verify`.
public typealias SeededRandom = SplitMix64

/// NMSE = Σ(a−b)²/Σb² and the largest |a−b| over the finite pairs; any NaN, or an infinity
/// the other side does not share, makes both infinite.
public func compare(_ a: [Float], _ b: [Float]) -> (nmse: Double, maxAbs: Double) {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0, maxAbs = 0.0
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return (.infinity, .infinity) }
        // Equal infinities (top-k's −inf entries) agree; any other infinity is a failure.
        if x.isInfinite || y.isInfinite {
            if x == y { continue }
            return (.infinity, .infinity)
        }
        let d = Double(x) - Double(y)
        num += d * d
        den += Double(y) * Double(y)
        maxAbs = max(maxAbs, abs(d))
    }
    return (den == 0 ? (num == 0 ? 0 : .infinity) : num / den, maxAbs)
}

/// Runs every kernel on fresh random inputs on a device backend and on the CPU twin.
/// Device outputs are poisoned with NaN first, so an element a kernel fails to write fails.
public struct KernelVerifier {
    public static let elementwiseLimit = 1e-7
    public static let matmulLimit = 5e-4
    public let device: Backend
    public let reference: Backend
    public var seed: UInt64
    /// Leaves out the cases that need hundreds of MiB (tensors past the binding limit).
    public var includeLarge = true
    /// Runs only the first this-many cases (tests of the runner itself).
    public var caseLimit: Int?

    /// A gpu-family Vulkan backend without matrix units is switched to the emulated cooperative
    /// kernel for `.cooperative` cases (`VulkanBackend.emulateCooperativeMatrix`); `.auto` is untouched.
    public init(device: Backend, reference: Backend = CPUBackend(), seed: UInt64 = 42) {
        (device as? VulkanBackend)?.emulateCooperativeMatrix()
        self.device = device
        self.reference = reference
        self.seed = seed
    }

    /// The same data on both backends.
    struct Pair {
        let dev: Tensor
        let ref: Tensor
    }

    private func pair(_ floats: [Float]) throws -> Pair {
        Pair(dev: try device.makeTensor(floats: floats), ref: try reference.makeTensor(floats: floats))
    }
    private func pair(uints: [UInt32]) throws -> Pair {
        Pair(dev: try device.makeTensor(uints: uints), ref: try reference.makeTensor(uints: uints))
    }
    private func pair(_ type: ElementType, floats: [Float]) throws -> Pair {
        let bytes = Quantization.encode(floats, as: type)
        return Pair(dev: try device.makeTensor(type, count: floats.count, bytes: bytes),
                    ref: try reference.makeTensor(type, count: floats.count, bytes: bytes))
    }
    /// An output: NaN-poisoned on the device, zero on the reference.
    private func output(_ n: Int, _ type: ElementType = .f32) throws -> Pair {
        let dev = try device.makeTensor(type, count: n)
        let poison = [UInt32](repeating: 0x7FC0_0000, count: n)
        try poison.withUnsafeBytes { try device.write(dev, bytes: $0) }
        return Pair(dev: dev, ref: try reference.makeTensor(type, count: n))
    }

    private func result(_ kernel: String, _ format: String, _ shape: String, _ out: Pair, limit: Double, note: String? = nil) throws -> VerifyResult {
        let (nmse, maxAbs) = compare(try device.readFloats(out.dev), try reference.readFloats(out.ref))
        return VerifyResult(kernel: kernel, format: format, shape: shape, nmse: nmse, max_abs_err: maxAbs, limit: limit,
                            pass: nmse <= limit, note: note, family: (device as? VulkanBackend)?.family.rawValue)
    }

    public typealias Case = (name: String, run: () throws -> [VerifyResult])

    /// Every case, in order; `progress` sees each result as it comes.
    public func run(progress: (VerifyResult) -> Void = { _ in }) throws -> [VerifyResult] {
        var all: [VerifyResult] = []
        for c in cases().prefix(caseLimit ?? .max) {
            for r in try c.run() { progress(r); all.append(r) }
        }
        return all
    }

    /// Runs the cases on `workers` verifiers at once, each with a device backend of its own
    /// (`makeDevice` is called once per worker, on the worker's thread: a Vulkan device is not
    /// shared across threads) and its own CPU twin. The CPU twins are most of verify's time, so on
    /// a many-core host the workers overlap them. Every worker builds the same seeded case list and
    /// runs every `workers`-th case; results come back in case order, whatever the interleaving.
    public static func run(workers: Int, seed: UInt64, includeLarge: Bool, caseLimit: Int? = nil,
                           makeDevice: @escaping @Sendable () throws -> Backend,
                           progress: @escaping @Sendable (VerifyResult) -> Void = { _ in }) throws -> [VerifyResult] {
        let workers = max(1, workers)
        let lock = NSLock()
        nonisolated(unsafe) var byCase: [Int: [VerifyResult]] = [:]
        nonisolated(unsafe) var failure: Error?
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            do {
                var verifier = KernelVerifier(device: try makeDevice(), seed: seed)
                verifier.includeLarge = includeLarge
                for (i, c) in verifier.cases().prefix(caseLimit ?? .max).enumerated() where i % workers == w {
                    if lock.withLock({ failure != nil }) { return }
                    let results = try c.run()
                    lock.withLock {
                        byCase[i] = results
                        results.forEach(progress)
                    }
                }
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
        if let failure { throw failure }
        return byCase.keys.sorted().flatMap { byCase[$0]! }
    }

    public func cases() -> [Case] {
        var rng = SeededRandom(seed: seed)
        var list: [Case] = []
        // Matmul: both kernels, every format, odd sizes; float formats also take a ragged K (76 for
        // the vector kernel, which reads X in quads; 77 for the tiled one), the 32-blocks an odd
        // number of blocks, the 256-element K-quants 3 super-blocks. M past 8 runs the vector
        // kernel in column groups.
        for format in ElementType.weightFormats {
            let kOdd = format.blockElements == 256 ? 768 : (format.isQuantized ? 96 : 77)
            var shapes = [(1, 777, 1024), (3, 130, kOdd), (5, 67, kOdd), (8, 65, 512), (37, 300, 256), (70, 33, kOdd)]
            if !format.isQuantized { shapes += [(3, 130, 76), (33, 67, 76)] }
            // On the gpu family this shape splits K on any device: the tiled kernels' slices (SplitK;
            // a short last one, for the float formats with a K tail in it; for the K-quants 9 slices
            // of 2 super-blocks), and the vector kernel's 4 subgroups per row group (K ≥ 4,096 for
            // subgroups of 32).
            shapes.append((20, 70, format.blockElements == 256 ? 4352 : (format.isQuantized ? 4160 : 4100)))
            for (m, n, k) in shapes {
                let w = rng.floats(n * k), x = rng.floats(m * k)
                for kind in (k % 4 == 0 ? [MatmulKernel.vector] : []) + tiledKinds {
                    list.append(("matmul", { try self.matmul(format, kind, m: m, n: n, k: k, w: w, x: x) }))
                }
            }
        }
        // The fused epilogues: the residual add in place and the SiLU gate (with capture), steered
        // additively and multiplicatively; 11 columns cross a column group of the vector kernel.
        for format in [ElementType.f32, .q8_0, .q4_1, .q4_k] {
            let k = format.blockElements == 256 ? 512 : 128
            // The last shape's K splits on the gpu family (q4_k's 512 already does), so the
            // epilogues also run in matmul_reduce.comp.
            for (m, n, k) in [(1, 130, k), (11, 66, k)] + (format == .f32 || format == .q8_0 ? [(13, 66, 1024)] : []) {
                let w = rng.floats(n * k), x = rng.floats(m * k), r = rng.floats(m * n, scale: 2)
                let s = (0..<m).map { $0 % 3 == 1 ? Float(0) : Float(0.3) }, v = rng.floats(n), g = rng.floats(k, scale: 2)
                for kind in [MatmulKernel.vector] + tiledKinds {
                    list.append(("matmul", { try self.matmulNormed(format, kind, m: m, n: n, k: k, w: w, x: x, g: g) }))
                    // A table of 3 vectors, column j steered with row (j + 1) mod 3 (f32 and q8_0 only: the
                    // epilogue is the same code for every format).
                    if format == .f32 || format == .q8_0 {
                        let vt = rng.floats(3 * n), table = (0..<m).map { UInt32(($0 + 1) % 3) }
                        for steer in [EpilogueSteer.additive, .multiplicative] {
                            list.append(("matmul", { try self.matmulResidual(format, kind, m: m, n: n, k: k, w: w, x: x, r: r,
                                                                              steer: (steer, s, vt), table: table) }))
                            list.append(("matmul", { try self.matmulSiluGate(format, kind, m: m, n: n, k: k, w: w, x: x, capture: false,
                                                                              norm: nil, steer: (steer, s, vt), table: table) }))
                        }
                    }
                    for steer in [Optional<EpilogueSteer>.none, .additive, .multiplicative] {
                        list.append(("matmul", { try self.matmulResidual(format, kind, m: m, n: n, k: k, w: w, x: x, r: r,
                                                                          steer: steer.map { ($0, s, v) }) }))
                        list.append(("matmul", { try self.matmulSiluGate(format, kind, m: m, n: n, k: k, w: w, x: x, capture: steer != .additive,
                                                                          norm: steer == nil ? nil : g, steer: steer.map { ($0, s, v) }) }))
                    }
                }
            }
        }
        // The attention-input epilogue: stacked q/k/v rows, bias, RoPE from a table, k and v into
        // shuffled KV-cache rows; and without RoPE and rows (the q/k-norm models' path).
        for format in [ElementType.f32, .q8_0, .q4_1] {
            let (heads, kvHeads, d) = (3, 1, 16)
            let n = (heads + 2 * kvHeads) * d
            // K 640 splits on the gpu family: the pairs reach the epilogue through matmul_reduce.comp.
            for (m, k) in [(1, 64), (11, 64), (11, 640)] {
                let w = rng.floats(n * k), x = rng.floats(m * k), bias = rng.floats(n)
                let positions = (0..<m).map { _ in Int.random(in: 0..<5000, using: &rng) }
                let rows = Array((0..<20).shuffled(using: &rng).prefix(m)).map { UInt32($0) }
                let cache = rng.floats(2 * 20 * kvHeads * d), normW = rng.floats(k, scale: 2)
                for kind in [MatmulKernel.vector] + tiledKinds {
                    for cached in [true, false] {
                        list.append(("matmul", { try self.matmulAttentionInputs(format, kind, m: m, k: k, heads: heads, kvHeads: kvHeads, headDim: d,
                                                                                 w: w, x: x, bias: bias, positions: cached ? positions : nil,
                                                                                 rows: cached ? rows : nil, cache: cache, norm: cached ? normW : nil) }))
                    }
                }
            }
        }
        // The input norm with a K tail (76: not a whole 32-block) on the vector kernel.
        let wt = rng.floats(70 * 76), xt = rng.floats(76), gt = rng.floats(76)
        list.append(("matmul", { try self.matmulNormed(.f32, .vector, m: 1, n: 70, k: 76, w: wt, x: xt, g: gt) }))
        // … and with K split over 4 subgroups per row group on the gpu family (their Σx² combined).
        let wn = rng.floats(70 * 4100), xn = rng.floats(4100), gn = rng.floats(4100)
        list.append(("matmul", { try self.matmulNormed(.f32, .vector, m: 1, n: 70, k: 4100, w: wn, x: xn, g: gn) }))
        // More than 65,535 output rows: the 2-D grid.
        let wl = rng.floats(70_001 * 64), xl = rng.floats(2 * 64)
        list.append(("matmul", { try self.matmul(.q8_0, .vector, m: 2, n: 70_001, k: 64, w: wl, x: xl) }))
        // A long K (32,768 = 128 super-blocks): both kernels stay far below lavapipe's loop limit.
        let wk = rng.floats(33 * 32_768), xk = rng.floats(5 * 32_768)
        list.append(("matmul", { try self.matmul(.q4_k, .vector, m: 1, n: 33, k: 32_768, w: wk, x: xk) }))
        for kind in tiledKinds {
            list.append(("matmul", { try self.matmul(.q6_k, kind, m: 5, n: 33, k: 32_768, w: wk, x: xk) }))
        }
        for format in ElementType.weightFormats {
            let width = format.blockElements == 256 ? 768 : (format.isQuantized ? 320 : 250)
            let table = rng.floats(1000 * width)
            let ids = (0..<17).map { _ in UInt32.random(in: 0..<1000, using: &rng) }
            list.append(("embedding", { try self.embedding(format, rows: 1000, width: width, table: table, ids: ids) }))
        }
        if includeLarge {
            // A 152k × 512 f16 table is 155 MB, past lavapipe's 128 MiB binding limit: chunked.
            let big = rng.floats(152_000 * 512, scale: 0.5)
            let ids: [UInt32] = [0, 151_999, 65_536, 131_071, 131_072, 7, 100_000]
            let x = rng.floats(512)
            list.append(("embedding", { try self.embedding(.f16, rows: 152_000, width: 512, table: big, ids: ids) }))
            list.append(("matmul", { try self.matmul(.f16, .vector, m: 1, n: 152_000, k: 512, w: big, x: x) }))
        }
        let sIn = rng.floats(19 * 333)
        let sDst = (0..<19).map { UInt32($0) }.shuffled(using: &rng)
        list.append(("scatter_rows", { try self.scatter(input: sIn, dst: sDst, width: 333) }))
        for (rows, width) in [(7, 4001), (112, 128), (70_000, 8)] {
            let x = rng.floats(rows * width, scale: 3), w = rng.floats(width)
            list.append(("rmsnorm", { try self.rmsNorm(x: x, w: w, rows: rows, width: width) }))
        }
        for layout in RopeLayout.allCases {
            for (t, h, d, rot, maxPos) in [(13, 5, 64, 64, 4096), (6, 3, 128, 64, 32768), (3, 2, 32, 32, 100_000)] {
                let x = rng.floats(t * h * d)
                let pos = (0..<t).map { _ in UInt32.random(in: 0..<UInt32(maxPos), using: &rng) }
                list.append(("rope", { try self.rope(x: x, pos: pos, tokens: t, heads: h, headDim: d, rotaryDim: rot, layout: layout) }))
            }
        }
        // Two sequences in one batch: a prefill of 4 tokens and one decode token deep in the cache.
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [0, 0, 0, 0, 1], pos: [0, 1, 2, 3, 290], heads: 8, kvHeads: 2, headDim: 64, capacity: 300)
        }))
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [2, 0, 1], pos: [5, 511, 0], heads: 6, kvHeads: 6, headDim: 80, capacity: 512)
        }))
        // Four queries per workgroup: two sequences' prefills in runs of 4 (the second 6 tokens,
        // the last run short), positions crossing a chunk, one chunk.
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [0, 0, 0, 0, 1, 1, 1, 1, 1, 1], pos: [297, 298, 299, 300, 0, 1, 2, 3, 254, 255],
                                      heads: 8, kvHeads: 2, headDim: 64, capacity: 301, sequenceRuns: 4)
        }))
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [0, 0, 0, 0, 0], pos: [3, 0, 2, 1, 4], heads: 6, kvHeads: 6, headDim: 80, capacity: 8, sequenceRuns: 4)
        }))
        // A context within one 256-position chunk: the partial kernel writes the output itself.
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [0, 0, 1, 1], pos: [0, 7, 255, 100], heads: 9, kvHeads: 3, headDim: 64, capacity: 256)
        }))
        // Decode steps of several sequences, the query heads of one KV head sharing a workgroup:
        // three of a group of 3 (SmolLM2's 9 / 3) past a chunk, 3 of 6 (two workgroups per KV
        // head), 4 of 8, and 2 of 2 at head_dim 128 (Qwen3-0.6B's 16 / 8).
        for (heads, kvHeads, headDim) in [(9, 3, 64), (12, 2, 64), (16, 2, 32), (16, 8, 128)] {
            list.append(("attention", { [rng] in
                var r = rng
                return try self.attention(rng: &r, seqs: [0, 1, 2], pos: [300, 5, 511], heads: heads, kvHeads: kvHeads, headDim: headDim,
                                          capacity: 512)
            }))
        }
        // Runs of 16 (the gpu family's flash kernel; the lavapipe family tiles them by 4): a fresh
        // prefill of 48; a second sequence's 32 tokens across a chunk beside 16 of another, at a
        // head of 80 (20 quads, 5 per invocation); 40 tokens (a short last tile) over three chunks
        // at 128; a head of 256 (the narrower key tile); positions out of order within a tile.
        let runs: [(seqs: [UInt32], pos: [UInt32], heads: Int, kvHeads: Int, dim: Int, capacity: Int)] = [
            (Array(repeating: 0, count: 48), (0..<48).map { UInt32($0) }, 8, 2, 64, 48),
            (Array(repeating: 1, count: 32) + Array(repeating: 0, count: 16), (240..<272).map { UInt32($0) } + (0..<16).map { UInt32($0) }, 6, 6, 80, 300),
            (Array(repeating: 0, count: 40), (500..<540).map { UInt32($0) }, 4, 1, 128, 540),
            (Array(repeating: 0, count: 16), (0..<16).map { UInt32($0) }, 2, 1, 256, 16),
            (Array(repeating: 0, count: 16), (0..<16).map { UInt32(($0 * 7) % 16 + 290) }, 9, 3, 64, 306),
        ]
        for c in runs {
            list.append(("attention", { [rng] in
                var r = rng
                return try self.attention(rng: &r, seqs: c.seqs, pos: c.pos, heads: c.heads, kvHeads: c.kvHeads, headDim: c.dim,
                                          capacity: c.capacity, sequenceRuns: 16)
            }))
        }
        // A context past 65,535 positions (lavapipe's silent loop limit).
        list.append(("attention", { [rng] in
            var r = rng
            return try self.attention(rng: &r, seqs: [0], pos: [70_000], heads: 2, kvHeads: 1, headDim: 64, capacity: 70_001)
        }))
        for steer in [false, true] {
            let (rows, width) = (9, 1537)
            let g = rng.floats(rows * width, scale: 4), u = rng.floats(rows * width), v = rng.floats(width)
            let s = (0..<rows).map { $0 % 3 == 0 ? Float(0) : Float(0.2) }
            list.append(("silu_mul", { try self.siluMul(g: g, u: u, rows: rows, width: width, steer: steer ? (s, v) : nil) }))
            let a = rng.floats(rows * 576), b = rng.floats(rows * 576), v2 = rng.floats(576)
            list.append(("add", { try self.add(a: a, b: b, rows: rows, width: 576, steer: steer ? (s, v2) : nil) }))
        }
        let a = rng.floats(5 * 1000), v = rng.floats(1000), s: [Float] = [0, 0.5, 0.3, 0, -1]
        let b2Table = rng.floats(5 * 1000), g2Table = rng.floats(5 * 1000, scale: 4)
        list.append(("add", { try self.add(a: a, b: nil, rows: 5, width: 1000, steer: (s, v)) }))
        // Each row its own vector from a table of 3 (a server's batch), both sites, both modes;
        // row 4 picks the table's last row, rows 0 and 3 are unsteered.
        let table: [UInt32] = [2, 0, 1, 1, 2], vt = rng.floats(3 * 1000)
        for mult in [false, true] {
            list.append(("add", { try self.add(a: a, b: b2Table, rows: 5, width: 1000, steer: (s, vt), multiplicative: mult, table: table) }))
            list.append(("silu_mul", { try self.siluMul(g: g2Table, u: b2Table, rows: 5, width: 1000, steer: (s, vt), multiplicative: mult,
                                                         table: table) }))
        }
        // SADI's multiplicative mask h + δ·(m ⊙ h) at both sites.
        let mask = (0..<1000).map { Float($0 % 7 == 0 ? 1 : 0) }, b2 = rng.floats(5 * 1000), g2 = rng.floats(5 * 1000, scale: 4)
        list.append(("add", { try self.add(a: a, b: b2, rows: 5, width: 1000, steer: (s, mask), multiplicative: true) }))
        list.append(("silu_mul", { try self.siluMul(g: g2, u: b2, rows: 5, width: 1000, steer: (s, mask), multiplicative: true) }))
        for (rows, length, k) in [(3, 49_152, 1), (2, 49_152, 40), (1, 151_936, 64), (2, 262_144, 8), (4, 100, 64), (1, 4097, 5)] {
            var values = rng.floats(rows * length, scale: 20)
            if length == 100 { values[7] = .nan }
            list.append(("topk", { try self.topK(values: values, rows: rows, length: length, k: k) }))
        }
        // Ties everywhere (7 distinct values), −inf and NaN entries, and a row with fewer real
        // values than k per chunk: the order (value desc, index asc) and the empty slots must agree.
        var ties = (0..<(3 * 9000)).map { _ in Float(Int.random(in: -3...3, using: &rng)) }
        for i in stride(from: 5, to: 9000, by: 11) { ties[i] = -.infinity }
        for i in stride(from: 9, to: 9000, by: 13) { ties[9000 + i] = .nan }
        for i in 18_000..<27_000 where i % 200 != 0 { ties[i] = -.infinity }
        list.append(("topk", { try self.topK(values: ties, rows: 3, length: 9000, k: 64) }))
        // A sampler's softmax head over logit rows shaped like a model's (a few dozen tokens far
        // above the rest, some tied) at several temperatures; row 3 has NaN and −inf among its
        // entries, row 4 only NaN and −inf (M = −inf, S = 0, no head), row 5 is flat (its head
        // overflows the capacity in its first nat). At temperature 2 the spikes and the noise
        // are within 16 nats, so the head is cut to fewer nats to fit.
        var logits = rng.floats(6 * 49_152, scale: 3)
        for r in 0..<5 {
            for _ in 0..<40 { logits[r * 49_152 + Int.random(in: 0..<49_152, using: &rng)] = (10 + 15 * Float.random(in: 0..<1, using: &rng)).rounded() }
        }
        for i in stride(from: 3 * 49_152, to: 4 * 49_152, by: 7) { logits[i] = i % 2 == 0 ? .nan : -.infinity }
        for i in 4 * 49_152..<5 * 49_152 { logits[i] = i % 3 == 0 ? .nan : -.infinity }
        list.append(("softmax_head", { try self.softmaxHead(values: logits, rows: 6, length: 49_152, inverseTemperatures: [1, 1.25, 0.5, 2, 1, 1]) }))
        var wide = rng.floats(2 * 151_936, scale: 3)
        for _ in 0..<60 { wide[Int.random(in: 0..<wide.count, using: &rng)] = 12 + 10 * Float.random(in: 0..<1, using: &rng) }
        list.append(("softmax_head", { try self.softmaxHead(values: wide, rows: 2, length: 151_936, inverseTemperatures: [1 / 0.8, 1 / 0.7]) }))
        return list
    }

    /// How a result names the matmul kernel that ran.
    static func kernelName(_ kind: MatmulKernel) -> String {
        switch kind {
        case .vector: "matvec"
        case .cooperative: "matmul_coopmat"
        case .auto, .tiled: "matmul"
        }
    }

    /// The name a result gives the kernel that ran on this verifier's device.
    func kernelName(_ kind: MatmulKernel) -> String {
        kind == .cooperative && (device as? VulkanBackend)?.cooperativeShape == nil ? "matmul_coopmat_emulated" : Self.kernelName(kind)
    }

    /// A matmul case's shape, and how the device's backend splits its K (the gpu family: split-K
    /// slices of the tiled kernels on a small grid, subgroups per row group of the vector kernel),
    /// so a report shows which cases ran split.
    func matmulShape(_ kind: MatmulKernel, _ format: ElementType, m: Int, n: Int, k: Int) -> String {
        guard let vk = device as? VulkanBackend else { return "m=\(m) n=\(n) k=\(k)" }
        if kind == .vector {
            let split = vk.vectorSplit(rows: n, k: k, columns: min(m, 8))
            return "m=\(m) n=\(n) k=\(k)" + (split > 1 ? " k-split \(split) subgroups" : "")
        }
        return "m=\(m) n=\(n) k=\(k)" + (vk.tiledSplit(m: m, n: n, k: k, type: format).map { " split-k \($0)" } ?? "")
    }

    /// The tiled kernels: the ALU one, and on the gpu family the cooperative-matrix one, on the
    /// device's matrix units or, where it has none (lavapipe), emulated (`KernelVerifier.init`).
    var tiledKinds: [MatmulKernel] {
        guard let vk = device as? VulkanBackend, vk.cooperativeShape != nil || vk.cooperativeEmulated else { return [.tiled] }
        return [.tiled, .cooperative]
    }

    func matmul(_ format: ElementType, _ kind: MatmulKernel, m: Int, n: Int, k: Int, w: [Float], x: [Float]) throws -> [VerifyResult] {
        let wp = try pair(format, floats: w), xp = try pair(x), y = try output(m * n)
        try device.matmul(weight: wp.dev, input: xp.dev, output: y.dev, m: m, n: n, k: k, kernel: kind)
        try reference.matmul(weight: wp.ref, input: xp.ref, output: y.ref, m: m, n: n, k: k, kernel: kind)
        let name = kernelName(kind)
        return [try result(name, format.rawValue, matmulShape(kind, format, m: m, n: n, k: k), y, limit: Self.matmulLimit)]
    }

    enum EpilogueSteer { case additive, multiplicative }

    /// The steering pair of a case: scales s, the first `width` values of v, or with `table` (a
    /// table row per output row) the first max(table) + 1 rows of `width` values of v.
    private func steering(_ steer: (EpilogueSteer, [Float], [Float])?, width: Int, table: [UInt32]? = nil) throws -> (dev: Steering?, ref: Steering?) {
        guard let (kind, s, v) = steer else { return (nil, nil) }
        let tableCount = table.map { Int($0.max() ?? 0) + 1 } ?? 1
        let sp = try pair(s), vp = try pair(Array(v.prefix(tableCount * width))), rp = try table.map { try pair(uints: $0) }
        return (Steering(scales: sp.dev, vector: vp.dev, vectorRows: rp?.dev, multiplicative: kind == .multiplicative),
                Steering(scales: sp.ref, vector: vp.ref, vectorRows: rp?.ref, multiplicative: kind == .multiplicative))
    }

    private func steerName(_ steer: (EpilogueSteer, [Float], [Float])?, table: [UInt32]? = nil) -> String {
        (steer.map { $0.0 == .additive ? "+steer" : "+mask" } ?? "") + (table == nil ? "" : "-table")
    }

    /// `y = r + W·x (+ steering)` in place (y is r).
    func matmulResidual(_ format: ElementType, _ kind: MatmulKernel, m: Int, n: Int, k: Int, w: [Float], x: [Float], r: [Float],
                        steer: (EpilogueSteer, [Float], [Float])?, table: [UInt32]? = nil) throws -> [VerifyResult] {
        let wp = try pair(format, floats: w), xp = try pair(x), rp = try pair(r)
        let st = try steering(steer, width: n, table: table)
        try device.matmul(weight: wp.dev, input: xp.dev, output: rp.dev, m: m, n: n, k: k, kernel: kind, epilogue: .addResidual(rp.dev, steering: st.dev))
        try reference.matmul(weight: wp.ref, input: xp.ref, output: rp.ref, m: m, n: n, k: k, kernel: kind, epilogue: .addResidual(rp.ref, steering: st.ref))
        let name = kernelName(kind) + "+residual" + steerName(steer, table: table)
        return [try result(name, format.rawValue, matmulShape(kind, format, m: m, n: n, k: k), rp, limit: Self.matmulLimit)]
    }

    /// `y = W · rmsNorm(x)`: the norm fused into the matmul's input.
    func matmulNormed(_ format: ElementType, _ kind: MatmulKernel, m: Int, n: Int, k: Int, w: [Float], x: [Float], g: [Float]) throws -> [VerifyResult] {
        let wp = try pair(format, floats: w), xp = try pair(x), gp = try pair(g), y = try output(m * n)
        try device.matmul(weight: wp.dev, input: xp.dev, output: y.dev, m: m, n: n, k: k, kernel: kind,
                          inputNorm: InputNorm(weight: gp.dev, eps: 1e-5), epilogue: .store)
        try reference.matmul(weight: wp.ref, input: xp.ref, output: y.ref, m: m, n: n, k: k, kernel: kind,
                             inputNorm: InputNorm(weight: gp.ref, eps: 1e-5), epilogue: .store)
        return [try result(kernelName(kind) + "+norm", format.rawValue, matmulShape(kind, format, m: m, n: n, k: k), y, limit: Self.matmulLimit)]
    }

    /// `y[j] = (silu(g) + steering) · u` over interleaved gate/up rows, and the captured gate.
    func matmulSiluGate(_ format: ElementType, _ kind: MatmulKernel, m: Int, n: Int, k: Int, w: [Float], x: [Float], capture: Bool,
                        norm: [Float]?, steer: (EpilogueSteer, [Float], [Float])?, table: [UInt32]? = nil) throws -> [VerifyResult] {
        let wp = try pair(format, floats: w), xp = try pair(x), y = try output(m * n / 2), g = try output(m * n / 2)
        let st = try steering(steer, width: n / 2, table: table), np = try norm.map { try pair($0) }
        try device.matmul(weight: wp.dev, input: xp.dev, output: y.dev, m: m, n: n, k: k, kernel: kind,
                          inputNorm: np.map { InputNorm(weight: $0.dev, eps: 1e-5) }, epilogue: .siluGate(steering: st.dev, gate: capture ? g.dev : nil))
        try reference.matmul(weight: wp.ref, input: xp.ref, output: y.ref, m: m, n: n, k: k, kernel: kind,
                             inputNorm: np.map { InputNorm(weight: $0.ref, eps: 1e-5) }, epilogue: .siluGate(steering: st.ref, gate: capture ? g.ref : nil))
        let name = kernelName(kind) + (norm == nil ? "" : "+norm") + "+silu_gate" + steerName(steer, table: table)
        let shape = matmulShape(kind, format, m: m, n: n, k: k)
        var out = [try result(name, format.rawValue, shape, y, limit: Self.matmulLimit)]
        if capture { out.append(try result(name + " gate", format.rawValue, shape, g, limit: Self.matmulLimit)) }
        return out
    }

    /// q into y, k and v into `cache` (keys then values, 20 rows each, the same random contents on
    /// both backends) at `rows`, rotated by the RoPE table of `positions`; nil: no RoPE, rows 0..<m.
    func matmulAttentionInputs(_ format: ElementType, _ kind: MatmulKernel, m: Int, k: Int, heads: Int, kvHeads: Int, headDim d: Int,
                               w: [Float], x: [Float], bias: [Float], positions: [Int]?, rows: [UInt32]?, cache: [Float],
                               norm: [Float]?) throws -> [VerifyResult] {
        let (qw, kvw) = (heads * d, kvHeads * d)
        let n = qw + 2 * kvw
        let wp = try pair(format, floats: w), xp = try pair(x), bp = try pair(bias), y = try output(m * qw)
        let keys = try pair(Array(cache.prefix(cache.count / 2))), values = try pair(Array(cache.suffix(cache.count / 2)))
        let table = try positions.map { try pair(RopeTable.values(positions: $0, inverseFrequencies: Self.inverseFrequencies(rotaryDim: d))) }
        let rp = try rows.map { try pair(uints: $0) }, np = try norm.map { try pair($0) }
        for (b, isDev) in [(device as Backend, true), (reference as Backend, false)] {
            let pick = { (p: Pair) in isDev ? p.dev : p.ref }
            let inputs = AttentionInputs(queryWidth: qw, kvWidth: kvw, headDim: d, bias: pick(bp), ropeTable: table.map(pick),
                                         keys: pick(keys), values: pick(values), rows: rp.map(pick))
            try b.matmul(weight: pick(wp), input: pick(xp), output: pick(y), m: m, n: n, k: k, kernel: kind,
                         inputNorm: np.map { InputNorm(weight: pick($0), eps: 1e-5) }, epilogue: .attentionInputs(inputs))
        }
        let name = kernelName(kind) + (norm == nil ? "" : "+norm") + "+attn_input" + (positions == nil ? "" : "+rope")
        let shape = matmulShape(kind, format, m: m, n: n, k: k)
        return [try result(name + " q", format.rawValue, shape, y, limit: Self.matmulLimit),
                try result(name + " k", format.rawValue, shape, keys, limit: Self.matmulLimit),
                try result(name + " v", format.rawValue, shape, values, limit: Self.matmulLimit)]
    }

    func embedding(_ format: ElementType, rows: Int, width: Int, table: [Float], ids: [UInt32]) throws -> [VerifyResult] {
        let wp = try pair(format, floats: table), ip = try pair(uints: ids), out = try output(ids.count * width)
        try device.embedding(table: wp.dev, ids: ip.dev, output: out.dev, tokens: ids.count, rows: rows, width: width)
        try reference.embedding(table: wp.ref, ids: ip.ref, output: out.ref, tokens: ids.count, rows: rows, width: width)
        return [try result("embedding", format.rawValue, "rows=\(rows) width=\(width) tokens=\(ids.count)", out, limit: Self.elementwiseLimit)]
    }

    func scatter(input: [Float], dst: [UInt32], width: Int) throws -> [VerifyResult] {
        let ip = try pair(input), dp = try pair(uints: dst), out = try output(dst.count * width)
        try device.scatterRows(input: ip.dev, rows: dp.dev, output: out.dev, tokens: dst.count, width: width)
        try reference.scatterRows(input: ip.ref, rows: dp.ref, output: out.ref, tokens: dst.count, width: width)
        return [try result("scatter_rows", "f32", "tokens=\(dst.count) width=\(width)", out, limit: Self.elementwiseLimit)]
    }

    func rmsNorm(x: [Float], w: [Float], rows: Int, width: Int) throws -> [VerifyResult] {
        let xp = try pair(x), wp = try pair(w), out = try output(rows * width)
        try device.rmsNorm(input: xp.dev, weight: wp.dev, output: out.dev, rows: rows, width: width, eps: 1e-6)
        try reference.rmsNorm(input: xp.ref, weight: wp.ref, output: out.ref, rows: rows, width: width, eps: 1e-6)
        return [try result("rmsnorm", "f32", "rows=\(rows) width=\(width)", out, limit: Self.elementwiseLimit)]
    }

    /// Inverse frequencies θ^(−2i/d) with θ = 10,000, computed in double.
    public static func inverseFrequencies(rotaryDim: Int, theta: Double = 10_000) -> [Float] {
        (0..<rotaryDim / 2).map { Float(1 / pow(theta, Double(2 * $0) / Double(rotaryDim))) }
    }

    func rope(x: [Float], pos: [UInt32], tokens: Int, heads: Int, headDim: Int, rotaryDim: Int, layout: RopeLayout) throws -> [VerifyResult] {
        let xp = try pair(x), pp = try pair(uints: pos), fp = try pair(Self.inverseFrequencies(rotaryDim: rotaryDim))
        try device.rope(xp.dev, positions: pp.dev, inverseFrequencies: fp.dev, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotaryDim, layout: layout)
        try reference.rope(xp.ref, positions: pp.ref, inverseFrequencies: fp.ref, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotaryDim, layout: layout)
        let name = layout == .rotateHalf ? "rope.rotate_half" : "rope.interleaved"
        return [try result(name, "f32", "tokens=\(tokens) heads=\(heads) dim=\(headDim) rot=\(rotaryDim) maxpos=\(pos.max()!)", xp, limit: Self.elementwiseLimit)]
    }

    func attention(rng: inout SeededRandom, seqs: [UInt32], pos: [UInt32], heads: Int, kvHeads: Int, headDim: Int, capacity: Int,
                   sequenceRuns: Int = 1) throws -> [VerifyResult] {
        let sequences = Int(seqs.max()!) + 1
        let tokens = seqs.count
        let cache = sequences * capacity * kvHeads * headDim
        let q = try pair(rng.floats(tokens * heads * headDim))
        let k = try pair(rng.floats(cache)), v = try pair(rng.floats(cache))
        let sp = try pair(uints: seqs), pp = try pair(uints: pos), out = try output(tokens * heads * headDim)
        let bound = Int(pos.max()!) + 1
        let scale = 1 / Float(headDim).squareRoot()
        for (b, o) in [(device, out.dev), (reference, out.ref)] {
            let isDev = b === device
            try b.attention(query: isDev ? q.dev : q.ref, keys: isDev ? k.dev : k.ref, values: isDev ? v.dev : v.ref,
                            sequenceOf: isDev ? sp.dev : sp.ref, positions: isDev ? pp.dev : pp.ref, output: o,
                            tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, sequences: sequences,
                            capacity: capacity, contextBound: bound, scale: scale, sequenceRuns: sequenceRuns)
        }
        let name = sequenceRuns > 1 ? "attention (runs of \(sequenceRuns))" : "attention"
        return [try result(name, "f32", "tokens=\(tokens) heads=\(heads)/\(kvHeads) dim=\(headDim) ctx=\(bound)", out, limit: Self.matmulLimit)]
    }

    func siluMul(g: [Float], u: [Float], rows: Int, width: Int, steer: ([Float], [Float])?, multiplicative: Bool = false,
                 table: [UInt32]? = nil) throws -> [VerifyResult] {
        let gp = try pair(g), up = try pair(u), out = try output(rows * width)
        let st = try steering(steer.map { (multiplicative ? .multiplicative : .additive, $0.0, $0.1) }, width: width, table: table)
        try device.siluMul(gate: gp.dev, up: up.dev, output: out.dev, rows: rows, width: width, steering: st.dev)
        try reference.siluMul(gate: gp.ref, up: up.ref, output: out.ref, rows: rows, width: width, steering: st.ref)
        let name = steer == nil ? "silu_mul" : (multiplicative ? "silu_mul+mask" : "silu_mul+steer") + (table == nil ? "" : "-table")
        return [try result(name, "f32", "rows=\(rows) width=\(width)", out, limit: Self.elementwiseLimit)]
    }

    func add(a: [Float], b: [Float]?, rows: Int, width: Int, steer: ([Float], [Float])?, multiplicative: Bool = false,
             table: [UInt32]? = nil) throws -> [VerifyResult] {
        let ap = try pair(a), bp = try b.map { try pair($0) }, out = try output(rows * width)
        let st = try steering(steer.map { (multiplicative ? .multiplicative : .additive, $0.0, $0.1) }, width: width, table: table)
        try device.add(ap.dev, bp?.dev, output: out.dev, rows: rows, width: width, steering: st.dev)
        try reference.add(ap.ref, bp?.ref, output: out.ref, rows: rows, width: width, steering: st.ref)
        let name = (b == nil ? "steer_add" : (steer == nil ? "add" : (multiplicative ? "add+mask" : "add+steer"))) + (table == nil ? "" : "-table")
        return [try result(name, "f32", "rows=\(rows) width=\(width)", out, limit: Self.elementwiseLimit)]
    }

    func topK(values: [Float], rows: Int, length: Int, k: Int) throws -> [VerifyResult] {
        let vp = try pair(values), ov = try output(rows * k), oi = try output(rows * k, .u32)
        try device.topK(vp.dev, rows: rows, length: length, k: k, outValues: ov.dev, outIndices: oi.dev)
        try reference.topK(vp.ref, rows: rows, length: length, k: k, outValues: ov.ref, outIndices: oi.ref)
        let devIdx = try device.readUInts(oi.dev), refIdx = try reference.readUInts(oi.ref)
        let mismatches = zip(devIdx, refIdx).filter { $0 != $1 }.count
        var r = try result(k == 1 ? "argmax" : "topk", "f32", "rows=\(rows) length=\(length) k=\(k)", ov, limit: Self.elementwiseLimit)
        if mismatches > 0 {
            r.pass = false
            r.note = "\(mismatches) of \(rows * k) indices differ"
        }
        return [r]
    }

    /// M, the head's count, width and entries must be the reference's exactly (a maximum, the
    /// f32 distances and the counts round nothing differently); S row by row as a sum.
    func softmaxHead(values: [Float], rows: Int, length: Int, inverseTemperatures: [Float], maxWindow: Int = 16, capacity: Int = 64)
        throws -> [VerifyResult] {
        let vp = try pair(values), tp = try pair(inverseTemperatures), out = try output(rows * SoftmaxHead.words(capacity: capacity), .u32)
        try device.softmaxHead(vp.dev, rows: rows, length: length, inverseTemperatures: tp.dev, maxWindow: maxWindow, capacity: capacity, output: out.dev)
        try reference.softmaxHead(vp.ref, rows: rows, length: length, inverseTemperatures: tp.ref, maxWindow: maxWindow, capacity: capacity,
                                  output: out.ref)
        let dev = SoftmaxHead.decode(try device.readUInts(out.dev), rows: rows, capacity: capacity)
        let ref = SoftmaxHead.decode(try reference.readUInts(out.ref), rows: rows, capacity: capacity)
        let differ = (0..<rows).filter {
            dev[$0].rowMax.bitPattern != ref[$0].rowMax.bitPattern || dev[$0].count != ref[$0].count
                || dev[$0].window != ref[$0].window || dev[$0].entries != ref[$0].entries
        }
        // Row by row (the worst row), so a small row's sum cannot hide behind a large one's.
        let perRow = (0..<rows).map { compare([dev[$0].normaliser], [ref[$0].normaliser]) }
        let nmse = perRow.map(\.nmse).max()!, maxAbs = perRow.map(\.maxAbs).max()!
        let counts = ref.map { "\($0.count)/\($0.window)" }.joined(separator: ",")
        return [VerifyResult(kernel: "softmax_head", format: "f32", shape: "rows=\(rows) length=\(length) heads/nats=\(counts)", nmse: nmse,
                             max_abs_err: maxAbs, limit: Self.elementwiseLimit, pass: nmse <= Self.elementwiseLimit && differ.isEmpty,
                             note: differ.isEmpty ? nil : "maximum, head count or head entries differ in rows \(differ)",
                             family: (device as? VulkanBackend)?.family.rawValue)]
    }
}
