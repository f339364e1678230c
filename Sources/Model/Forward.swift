import Backend
import Formats
import Foundation

/// Keys and values of every layer for `sequences` independent sequences of up to `capacity`
/// positions each: per layer two f32 tensors [sequences × capacity × kvHeads × headDim].
public final class KVCache {
    public let sequences: Int
    public let capacity: Int
    let keys: [Tensor]
    let values: [Tensor]
    /// The last step's key and the ops kept for the steps that repeat it (StepReplay.swift).
    var recording: StepRecording?

    public init(model: LanguageModel, sequences: Int, capacity: Int) throws {
        guard sequences > 0, capacity > 0 else { throw ModelError("KV cache of \(sequences) sequences × \(capacity) positions") }
        let c = model.config
        guard capacity <= c.contextLength else {
            throw ModelError("a context of \(capacity) tokens exceeds the model's \(c.contextLength)")
        }
        self.sequences = sequences
        self.capacity = capacity
        let n = sequences * capacity * c.kvHeadCount * c.headDim
        let limit = model.backend.maxAttentionKVBytes
        guard 4 * n <= limit else {
            let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
            throw ModelError("a KV cache of \(sequences) sequences × \(capacity) positions is \(mib(4 * n)) a layer; "
                             + "\(model.backend.name) binds at most \(mib(limit)): use fewer sequences or a shorter context")
        }
        keys = try (0..<c.layerCount).map { _ in try model.backend.makeTensor(.f32, count: n) }
        values = try (0..<c.layerCount).map { _ in try model.backend.makeTensor(.f32, count: n) }
    }

    /// Bytes held on the backend.
    public var byteCount: Int { (keys + values).map(\.byteCount).reduce(0, +) }
}

/// The tokens of one forward step: any mix of prompt chunks and decode tokens of different
/// sequences. Token t is `ids[t]` at `positions[t]` of sequence `sequences[t]`; logits are
/// computed for the tokens listed in `logitRows` (indices into the step), in that order.
public struct ForwardStep: Sendable {
    public var ids: [Int]
    public var sequences: [Int]
    public var positions: [Int]
    public var logitRows: [Int]

    public init(ids: [Int], sequences: [Int], positions: [Int], logitRows: [Int]) {
        self.ids = ids
        self.sequences = sequences
        self.positions = positions
        self.logitRows = logitRows
    }

    /// One sequence's prompt (or continuation) starting at `start`, logits for its last token.
    public static func prompt(_ ids: [Int], sequence: Int = 0, start: Int = 0, allLogits: Bool = false) -> ForwardStep {
        ForwardStep(ids: ids, sequences: Array(repeating: sequence, count: ids.count), positions: Array(start..<start + ids.count),
                    logitRows: allLogits ? Array(ids.indices) : [ids.count - 1])
    }
}

/// Steering for one layer: the row scales (α on the rows in scope, 0 elsewhere) and a vector at
/// the `act` site (SiLU output, intermediate width) and/or the `residual` site (layer output).
public struct LayerSteering {
    public var act: Steering?
    public var residual: Steering?
    public init(act: Steering? = nil, residual: Steering? = nil) {
        self.act = act
        self.residual = residual
    }
}

/// The two places a layer's activations are read (capture) and steered (injection).
public enum ActivationSite: String, Sendable, Codable, CaseIterable {
    /// The MLP's SiLU(gate) output, before the product with up (intermediate width). ROAST's default.
    case act
    /// The layer's output, the residual stream (hidden width); llama.cpp / repeng control vectors.
    case residual

    public func width(_ c: ModelConfig) -> Int { self == .act ? c.intermediateSize : c.hiddenSize }
}

/// Reads activations during a forward step: at `site`, for `layers`, at the step's token
/// indices `rows` (in that order). Unsteered values: the `act` site is read before injection.
public final class ActivationCapture {
    public let site: ActivationSite
    public let layers: [Int]
    public let rows: [Int]
    var tensors: [Int: Tensor] = [:]
    var rowIndex: Tensor?

    public init(site: ActivationSite, layers: [Int], rows: [Int]) {
        self.site = site
        self.layers = layers
        self.rows = rows
    }

    func prepare(_ m: LanguageModel, stepTokens: Int) throws {
        guard !rows.isEmpty else { throw ModelError("capture of no rows") }
        for r in rows where r < 0 || r >= stepTokens { throw ModelError("capture row \(r) is not a token of the step") }
        for l in layers where l < 0 || l >= m.config.layerCount {
            throw ModelError("capture of layer \(l); the model has \(m.config.layerCount) layers")
        }
        let width = site.width(m.config)
        rowIndex = try m.backend.makeTensor(uints: rows.map { UInt32($0) })
        for l in layers where tensors[l] == nil { tensors[l] = try m.backend.makeTensor(.f32, count: rows.count * width) }
    }

    /// Records the gather of this layer's rows from `source` ([stepTokens × width]).
    func record(_ m: LanguageModel, layer: Int, source: Tensor, stepTokens: Int) throws {
        guard let out = tensors[layer], let idx = rowIndex else { return }
        try m.backend.embedding(table: source, ids: idx, output: out, tokens: rows.count, rows: stepTokens, width: site.width(m.config))
    }

    /// The captured activations: layer → one vector per requested row. For `act` the gate was
    /// captured and SiLU is applied here, with the CPU twin's formula.
    public func read(_ m: LanguageModel) throws -> [Int: [[Float]]] {
        let width = site.width(m.config)
        var out: [Int: [[Float]]] = [:]
        for l in layers {
            let flat = try m.backend.readFloats(tensors[l]!)
            out[l] = rows.indices.map { r in
                let row = flat[r * width..<(r + 1) * width]
                return site == .act ? row.map { $0 / (1 + exp(-$0)) } : Array(row)
            }
        }
        return out
    }
}

/// Activation buffers of a step, grown when a step has more tokens than any before it.
final class ForwardScratch {
    var tokens = 0, rows = 0
    /// Bumped whenever the buffers are reallocated (kept ops bind the old ones).
    var generation = 0
    var x, h, q, k, v, att, o, gate, up, act, last, logits: Tensor!
    var ids, seq, pos, cacheRows, logitRows: Tensor!
    var ones: Tensor!
    /// cos and sin of every token's RoPE angles [tokens × headDim/2 × 2], for the fused RoPE.
    var ropeTable: Tensor!

    func ensure(_ m: LanguageModel, tokens t: Int, rows r: Int) throws {
        let b = m.backend, c = m.config
        if t > tokens {
            // Bumped first: a failed allocation part way must not leave kept ops binding old buffers.
            generation += 1
            let n = max(t, 2 * tokens)
            (x, h, o) = (try b.makeTensor(.f32, count: n * c.hiddenSize), try b.makeTensor(.f32, count: n * c.hiddenSize),
                         try b.makeTensor(.f32, count: n * c.hiddenSize))
            q = try b.makeTensor(.f32, count: n * c.headCount * c.headDim)
            att = try b.makeTensor(.f32, count: n * c.headCount * c.headDim)
            k = try b.makeTensor(.f32, count: n * c.kvHeadCount * c.headDim)
            v = try b.makeTensor(.f32, count: n * c.kvHeadCount * c.headDim)
            (gate, up, act) = (try b.makeTensor(.f32, count: n * c.intermediateSize), try b.makeTensor(.f32, count: n * c.intermediateSize),
                               try b.makeTensor(.f32, count: n * c.intermediateSize))
            (ids, seq, pos, cacheRows) = (try b.makeTensor(.u32, count: n), try b.makeTensor(.u32, count: n),
                                          try b.makeTensor(.u32, count: n), try b.makeTensor(.u32, count: n))
            ones = try b.makeTensor(floats: [Float](repeating: 1, count: n))
            ropeTable = try b.makeTensor(.f32, count: n * c.headDim)
            tokens = n
        }
        if r > rows {
            generation += 1
            let n = max(r, 2 * rows)
            last = try b.makeTensor(.f32, count: n * c.hiddenSize)
            logits = try b.makeTensor(.f32, count: n * c.vocabSize)
            logitRows = try b.makeTensor(.u32, count: n)
            rows = n
        }
    }
}

extension LanguageModel {
    /// Runs one step through every layer, writing its keys and values into `cache`, and returns
    /// the logits [logitRows.count × vocab] (on the backend; read them or sample on the device).
    /// Everything is recorded into the backend's stream; nothing waits until the caller reads.
    /// A step that repeats the one before it on `cache` (same shape, steering tensors and
    /// attention bucket: a decode step) runs the ops the backend kept from the first repeat.
    public func forward(_ step: ForwardStep, cache: KVCache, steering: [Int: LayerSteering] = [:],
                        capture: ActivationCapture? = nil, scratch: ForwardScratchHandle) throws -> Tensor {
        let c = config, b = backend, s = scratch.storage
        let t = step.ids.count, r = step.logitRows.count
        guard t > 0, r > 0 else { throw ModelError("a forward step needs at least one token and one logit row") }
        guard step.sequences.count == t, step.positions.count == t else { throw ModelError("forward step: ids, sequences and positions differ in length") }
        for (i, id) in step.ids.enumerated() where id < 0 || id >= c.vocabSize {
            throw ModelError("token \(i) has id \(id), outside the vocabulary of \(c.vocabSize)")
        }
        for (i, (sq, p)) in zip(step.sequences, step.positions).enumerated() {
            guard sq >= 0, sq < cache.sequences else { throw ModelError("token \(i) belongs to sequence \(sq); the cache holds \(cache.sequences)") }
            guard p >= 0, p < cache.capacity else {
                throw ModelError("token \(i) at position \(p) does not fit the context of \(cache.capacity) tokens")
            }
        }
        for row in step.logitRows where row < 0 || row >= t { throw ModelError("logit row \(row) is not a token of the step") }
        for (l, st) in steering {
            guard l >= 0, l < c.layerCount else { throw ModelError("steering names layer \(l); the model has \(c.layerCount)") }
            _ = st
        }

        try capture?.prepare(self, stepTokens: t)
        try s.ensure(self, tokens: t, rows: r)
        try b.write(s.ids, uints: step.ids.map { UInt32($0) })
        try b.write(s.seq, uints: step.sequences.map { UInt32($0) })
        try b.write(s.pos, uints: step.positions.map { UInt32($0) })
        try b.write(s.cacheRows, uints: zip(step.sequences, step.positions).map { UInt32($0 * cache.capacity + $1) })
        try b.write(s.logitRows, uints: step.logitRows.map { UInt32($0) })
        if layers.contains(where: \.fusedAttentionInputs) {
            try b.write(s.ropeTable, floats: RopeTable.values(positions: step.positions, inverseFrequencies: inverseFrequencyValues))
        }

        let contextBound = step.positions.max()! + 1
        // The longest of 16 and 4 such that the tokens come in runs of that many of one sequence (a
        // prefill), for the attention kernels' query tiles.
        let sequenceRuns = [16, 4].first { n in
            stride(from: 0, to: t, by: n).allSatisfy { r in step.sequences[r..<min(t, r + n)].allSatisfy { $0 == step.sequences[r] } }
        } ?? 1

        var keep = false
        if capture == nil {
            let key = StepRecordingKey(model: self, scratch: s, tokens: t, logitRows: r, sequenceRuns: sequenceRuns,
                                       attentionBucket: b.attentionBucket(contextBound: contextBound), steering: steering)
            if let last = cache.recording, last.key.matches(key) {
                if let ops = last.ops {
                    try b.replay(ops)
                    return s.logits
                }
                if !last.unkeepable {
                    keep = try b.beginReusableOps()
                    // A backend that keeps nothing (or not now) is not asked again for this key.
                    cache.recording?.unkeepable = !keep
                }
            } else {
                cache.recording = StepRecording(key: key, ops: nil)
            }
        }
        do {
            try recordStep(step, cache: cache, steering: steering, capture: capture, scratch: s, contextBound: contextBound,
                           sequenceRuns: sequenceRuns)
        } catch {
            if keep { _ = try? b.endReusableOps() }
            throw error
        }
        if keep {
            let ops = try b.endReusableOps()
            cache.recording?.ops = ops
            cache.recording?.unkeepable = ops == nil
        }
        return s.logits
    }

    /// Records a step's ops (`forward` checked it and wrote its inputs).
    private func recordStep(_ step: ForwardStep, cache: KVCache, steering: [Int: LayerSteering], capture: ActivationCapture?,
                            scratch s: ForwardScratch, contextBound: Int, sequenceRuns: Int) throws {
        let c = config, b = backend
        let t = step.ids.count, r = step.logitRows.count
        let (h, hq, hkv, d, inter) = (c.hiddenSize, c.headCount, c.kvHeadCount, c.headDim, c.intermediateSize)
        let biasTerm = { (v: Tensor) in Steering(scales: s.ones, vector: v) }
        // Profile labels: "embedding", "layer L attention", "layer L mlp", "layer L steering" (a
        // dispatch that carries an injection apart from a matmul), "lm head". Steering mostly adds
        // no dispatch: its injections ride in the epilogues of the gate/up and down matmuls.
        defer { b.profileLabel = "" }
        b.profileLabel = "embedding"
        try b.embedding(table: embed, ids: s.ids, output: s.x, tokens: t, rows: c.vocabSize, width: h)
        for (l, w) in layers.enumerated() {
            // Attention block.
            b.profileLabel = "layer \(l) attention"
            switch w.attentionInput {
            case .stacked(let qkv, let bias):
                // One matmul over the stacked rows, the norm on its way in; without q/k norms its
                // epilogue also adds the bias, applies RoPE and writes k and v into the KV cache.
                let inCache = w.fusedAttentionInputs
                let inputs = AttentionInputs(queryWidth: hq * d, kvWidth: hkv * d, headDim: d, bias: bias, ropeTable: inCache ? s.ropeTable : nil,
                                             keys: inCache ? cache.keys[l] : s.k, values: inCache ? cache.values[l] : s.v,
                                             rows: inCache ? s.cacheRows : nil)
                try b.matmul(weight: qkv, input: s.x, output: s.q, m: t, n: (hq + 2 * hkv) * d, k: h, kernel: .auto,
                             inputNorm: InputNorm(weight: w.attnNorm, eps: c.rmsNormEps), epilogue: .attentionInputs(inputs))
            case .separate(let wq, let wk, let wv, let qb, let kb, let vb):
                try b.rmsNorm(input: s.x, weight: w.attnNorm, output: s.h, rows: t, width: h, eps: c.rmsNormEps)
                try b.matmul(weight: wq, input: s.h, output: s.q, m: t, n: hq * d, k: h, kernel: .auto)
                try b.matmul(weight: wk, input: s.h, output: s.k, m: t, n: hkv * d, k: h, kernel: .auto)
                try b.matmul(weight: wv, input: s.h, output: s.v, m: t, n: hkv * d, k: h, kernel: .auto)
                if let qb { try b.add(s.q, nil, output: s.q, rows: t, width: hq * d, steering: biasTerm(qb)) }
                if let kb { try b.add(s.k, nil, output: s.k, rows: t, width: hkv * d, steering: biasTerm(kb)) }
                if let vb { try b.add(s.v, nil, output: s.v, rows: t, width: hkv * d, steering: biasTerm(vb)) }
            }
            if !w.fusedAttentionInputs {
                if let qn = w.qNorm, let kn = w.kNorm {
                    try b.rmsNorm(input: s.q, weight: qn, output: s.q, rows: t * hq, width: d, eps: c.rmsNormEps)
                    try b.rmsNorm(input: s.k, weight: kn, output: s.k, rows: t * hkv, width: d, eps: c.rmsNormEps)
                }
                let layout = w.attentionInput.ropeLayout(file: ropeLayout)
                try b.rope(s.q, positions: s.pos, inverseFrequencies: inverseFrequencies, tokens: t, heads: hq, headDim: d,
                           rotaryDim: d, layout: layout)
                try b.rope(s.k, positions: s.pos, inverseFrequencies: inverseFrequencies, tokens: t, heads: hkv, headDim: d,
                           rotaryDim: d, layout: layout)
                try b.scatterRows(input: s.k, rows: s.cacheRows, output: cache.keys[l], tokens: t, width: hkv * d)
                try b.scatterRows(input: s.v, rows: s.cacheRows, output: cache.values[l], tokens: t, width: hkv * d)
            }
            try b.attention(query: s.q, keys: cache.keys[l], values: cache.values[l], sequenceOf: s.seq, positions: s.pos,
                            output: s.att, tokens: t, heads: hq, kvHeads: hkv, headDim: d, sequences: cache.sequences,
                            capacity: cache.capacity, contextBound: contextBound, scale: 1 / Float(d).squareRoot(),
                            sequenceRuns: sequenceRuns)
            // The output projection with the residual add fused in: x += o(att).
            try b.matmul(weight: w.o, input: s.att, output: s.x, m: t, n: h, k: hq * d, kernel: .auto, epilogue: .addResidual(s.x, steering: nil))
            // MLP block: x += down((SiLU(gate) + α·v) ⊙ up) (+ α·v at `residual`), the SiLU gate
            // and the residual add (with their injections) fused into the matmuls before them.
            b.profileLabel = "layer \(l) mlp"
            let captureGate = capture.map { $0.site == .act && $0.layers.contains(l) } ?? false
            switch w.mlpInput {
            case .interleaved(let gateUp):
                try b.matmul(weight: gateUp, input: s.x, output: s.act, m: t, n: 2 * inter, k: h, kernel: .auto,
                             inputNorm: InputNorm(weight: w.ffnNorm, eps: c.rmsNormEps),
                             epilogue: .siluGate(steering: steering[l]?.act, gate: captureGate ? s.gate : nil))
            case .separate(let gate, let up):
                try b.rmsNorm(input: s.x, weight: w.ffnNorm, output: s.h, rows: t, width: h, eps: c.rmsNormEps)
                try b.matmul(weight: gate, input: s.h, output: s.gate, m: t, n: inter, k: h, kernel: .auto)
                try b.matmul(weight: up, input: s.h, output: s.up, m: t, n: inter, k: h, kernel: .auto)
                if steering[l]?.act != nil { b.profileLabel = "layer \(l) steering" }
                try b.siluMul(gate: s.gate, up: s.up, output: s.act, rows: t, width: inter, steering: steering[l]?.act)
                b.profileLabel = "layer \(l) mlp"
            }
            if captureGate { try capture!.record(self, layer: l, source: s.gate, stepTokens: t) }
            try b.matmul(weight: w.down, input: s.act, output: s.x, m: t, n: h, k: inter, kernel: .auto,
                         epilogue: .addResidual(s.x, steering: steering[l]?.residual))
            if let cap = capture, cap.site == .residual, cap.layers.contains(l) { try cap.record(self, layer: l, source: s.x, stepTokens: t) }
        }
        // Only the rows that need logits go through the final norm and the LM head.
        b.profileLabel = "lm head"
        try b.embedding(table: s.x, ids: s.logitRows, output: s.last, tokens: r, rows: t, width: h)
        try b.matmul(weight: lmHead, input: s.last, output: s.logits, m: r, n: c.vocabSize, k: h, kernel: .auto,
                     inputNorm: InputNorm(weight: outputNorm, eps: c.rmsNormEps), epilogue: .store)
    }

    /// Scratch buffers for `forward`, reusable across steps of any size.
    public func makeScratch() -> ForwardScratchHandle { ForwardScratchHandle() }
}

/// Opaque holder of a model's activation buffers.
public final class ForwardScratchHandle {
    let storage = ForwardScratch()
    public init() {}
}

extension LanguageModel {
    /// Logits at every position of one sequence (a fresh cache): for parity checks.
    public func logits(ids: [Int]) throws -> [[Float]] {
        guard ids.count <= config.contextLength else {
            throw ModelError("\(ids.count) tokens exceed the model's context of \(config.contextLength)")
        }
        let cache = try KVCache(model: self, sequences: 1, capacity: ids.count)
        let out = try forward(.prompt(ids, allLogits: true), cache: cache, scratch: makeScratch())
        let flat = try backend.readFloats(out)
        let v = config.vocabSize
        // Finite weights can still overflow: refuse, on every backend alike, rather than print NaN.
        if let bad = flat.firstIndex(where: { !$0.isFinite }) {
            throw ModelError("the logits at position \(bad / v) (token id \(ids[bad / v])) are not finite (\(flat[bad]) at vocabulary index \(bad % v)): the weights overflow")
        }
        return (0..<ids.count).map { Array(flat[$0 * v..<($0 + 1) * v]) }
    }
}

extension LanguageModel {
    /// Copies positions 0..<length of sequence `source` into each of `targets` in every layer's
    /// keys and values: a prompt shared by several sequences (rollouts) is prefilled once.
    public func copyCache(_ cache: KVCache, from source: Int, to targets: [Int], length: Int) throws {
        guard !targets.isEmpty, length > 0 else { return }
        guard length <= cache.capacity, ([source] + targets).allSatisfy({ $0 >= 0 && $0 < cache.sequences }) else {
            throw ModelError("cache copy of \(length) positions between sequences \(source) → \(targets) does not fit \(cache.sequences) × \(cache.capacity)")
        }
        let b = backend, width = config.kvHeadCount * config.headDim
        let rows = cache.sequences * cache.capacity
        let src = try b.makeTensor(uints: (0..<length).map { UInt32(source * cache.capacity + $0) })
        let dst = try targets.map { t in try b.makeTensor(uints: (0..<length).map { UInt32(t * cache.capacity + $0) }) }
        let temp = try b.makeTensor(.f32, count: length * width)
        for tensor in cache.keys + cache.values {
            try b.embedding(table: tensor, ids: src, output: temp, tokens: length, rows: rows, width: width)
            for d in dst { try b.scatterRows(input: temp, rows: d, output: tensor, tokens: length, width: width) }
        }
    }
}
