import Backend
import Foundation
import Model
import Tokenizers

/// One sequence to continue.
public struct GenerationRequest: Sendable {
    public var promptIDs: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    public var stopStrings: [String]
    public var stopAtEOS: Bool

    public init(promptIDs: [Int], maxTokens: Int = 128, sampling: SamplingParameters = .greedy, stopStrings: [String] = [], stopAtEOS: Bool = true) {
        self.promptIDs = promptIDs
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.stopAtEOS = stopAtEOS
    }
}

public struct GenerationResult: Sendable, Codable {
    public enum FinishReason: String, Sendable, Codable { case eos, stop, length }
    public var promptIDs: [Int]
    /// Generated ids (the EOS token included when it ended the sequence; text excludes it).
    public var ids: [Int]
    public var text: String
    public var finishReason: FinishReason
}

/// Batched generation: B independent sequences (different prompts and lengths) share every
/// forward step, so the weights are read once per step for the whole batch.
public final class Generator {
    public let model: LanguageModel
    /// The most tokens one prefill step takes; longer prompts are prefilled in chunks.
    public var maxStepTokens = 512
    /// A head shared by every distinct prompt of a batch is prefilled once from this length on.
    public var minSharedHead = 8
    private let scratch: ForwardScratchHandle
    private var topValues: Tensor?
    private var topIndices: Tensor?

    public init(model: LanguageModel) {
        self.model = model
        scratch = model.makeScratch()
    }

    /// Called with (request index, token id, newly decodable text) as tokens arrive.
    public typealias TokenHandler = (Int, Int, String) -> Void
    /// Steering for a step: the layers to steer, with their row scales sized to the step.
    public typealias SteeringProvider = (ForwardStep, _ prefill: Bool) throws -> [Int: LayerSteering]

    public func generate(_ requests: [GenerationRequest], steering: SteeringProvider? = nil,
                         onToken: TokenHandler? = nil) throws -> [GenerationResult] {
        guard !requests.isEmpty else { return [] }
        let ctx = model.config.contextLength
        for (i, r) in requests.enumerated() {
            try r.sampling.validate()
            guard !r.promptIDs.isEmpty else { throw GenerationError("request \(i): empty prompt") }
            guard r.maxTokens >= 0 else { throw GenerationError("request \(i): max tokens must be ≥ 0") }
            guard r.promptIDs.count + r.maxTokens <= ctx else {
                throw GenerationError("prompt of \(r.promptIDs.count) tokens + \(r.maxTokens) new tokens exceeds the model's context of \(ctx)")
            }
        }
        let capacity = requests.map { $0.promptIDs.count + max($0.maxTokens, 1) }.max()!
        let cache = try KVCache(model: model, sequences: requests.count, capacity: min(capacity, ctx))
        var states = requests.enumerated().map { SequenceState(request: $0.element, index: $0.offset, tokenizer: model.tokenizer, eos: Set(model.config.eosTokenIDs)) }

        // Prefill: every distinct prompt once (rollouts share theirs), in steps of at most
        // maxStepTokens; sequences with a prompt seen before get a copy of its cache.
        var firstWith: [[Int]: Int] = [:]
        var owner = [Int](repeating: 0, count: requests.count)
        for (i, r) in requests.enumerated() {
            owner[i] = firstWith[r.promptIDs] ?? i
            if firstWith[r.promptIDs] == nil { firstWith[r.promptIDs] = i }
        }
        let unique = requests.indices.filter { owner[$0] == $0 }
        // Distinct prompts that open alike (system prompt, instruction, few-shot examples):
        // the common head is prefilled once and its cache copied, the rest prefilled per prompt.
        let head = unique.count > 1 ? Self.sharedHead(unique.map { requests[$0].promptIDs }) : 0
        if head >= minSharedHead {
            let first = requests[unique[0]].promptIDs
            for s in stride(from: 0, to: head, by: maxStepTokens) {
                let e = min(s + maxStepTokens, head)
                let step = ForwardStep(ids: Array(first[s..<e]), sequences: Array(repeating: unique[0], count: e - s),
                                       positions: Array(s..<e), logitRows: [0])
                _ = try model.forward(step, cache: cache, steering: try steering?(step, true) ?? [:], scratch: scratch)
            }
            try model.copyCache(cache, from: unique[0], to: Array(unique.dropFirst()), length: head)
        }
        let skip = head >= minSharedHead ? head : 0
        var pending: [(seq: Int, pos: Int)] = []
        for i in unique { pending += (skip..<requests[i].promptIDs.count).map { (i, $0) } }
        var start = 0
        while start < pending.count {
            let chunk = pending[start..<min(start + maxStepTokens, pending.count)]
            let lastRows = chunk.enumerated().filter { $0.element.pos == requests[$0.element.seq].promptIDs.count - 1 }
            var step = ForwardStep(ids: chunk.map { requests[$0.seq].promptIDs[$0.pos] }, sequences: chunk.map(\.seq),
                                   positions: chunk.map(\.pos), logitRows: lastRows.map(\.offset))
            start += chunk.count
            // A step holding only part of a prompt still needs one logit row; its result is unused.
            if lastRows.isEmpty { step.logitRows = [0] }
            let logits = try model.forward(step, cache: cache, steering: try steering?(step, true) ?? [:], scratch: scratch)
            if lastRows.isEmpty { continue }
            // Every sequence whose prompt ends in this step draws from its owner's logit row.
            let done = lastRows.map(\.element.seq)
            for o in done {
                let copies = requests.indices.filter { owner[$0] == o && $0 != o }
                try model.copyCache(cache, from: o, to: copies, length: requests[o].promptIDs.count)
            }
            let seqs = requests.indices.filter { done.contains(owner[$0]) }
            let rowOf = seqs.map { s in done.firstIndex(of: owner[s])! }
            let next = try pick(logits, rows: done.count, rowOf: rowOf, states: seqs.map { states[$0] },
                                update: { i, s in states[seqs[i]] = s })
            for (i, id) in zip(seqs, next) { states[i].accept(id, onToken: onToken) }
        }
        // Decode: one token per unfinished sequence per step.
        while true {
            let active = states.indices.filter { !states[$0].finished }
            if active.isEmpty { break }
            let step = ForwardStep(ids: active.map { states[$0].generated.last! }, sequences: active,
                                   positions: active.map { states[$0].request.promptIDs.count + states[$0].generated.count - 1 },
                                   logitRows: Array(active.indices))
            let logits = try model.forward(step, cache: cache, steering: try steering?(step, false) ?? [:], scratch: scratch)
            let next = try pick(logits, rows: active.count, rowOf: Array(active.indices), states: active.map { states[$0] },
                                update: { i, s in states[active[i]] = s })
            for (i, id) in zip(active, next) { states[i].accept(id, onToken: onToken) }
        }
        return states.map { $0.result() }
    }

    /// The length of the head every prompt shares, leaving each at least one token of its own
    /// (its last row must be computed with its own logits).
    static func sharedHead(_ prompts: [[Int]]) -> Int {
        guard var n = prompts.map(\.count).min() else { return 0 }
        n -= 1
        for p in prompts.dropFirst() {
            var i = 0
            while i < n, p[i] == prompts[0][i] { i += 1 }
            n = i
        }
        return max(n, 0)
    }

    /// The next token of each sequence (`states[i]` draws from logit row `rowOf[i]`): argmax on
    /// the device when every row is greedy, the device's top-k when every row limits k ≤ 64,
    /// else the full rows read back.
    private func pick(_ logits: Tensor, rows: Int, rowOf: [Int], states: [SequenceState], update: (Int, SequenceState) -> Void) throws -> [Int] {
        let b = model.backend, vocab = model.config.vocabSize
        let params = states.map(\.request.sampling)
        let maxK = 64
        if params.allSatisfy({ $0.isGreedy || (1...maxK).contains($0.topK) }) {
            let k = params.map { $0.isGreedy ? 1 : $0.topK }.max()!
            if topValues == nil || topValues!.count < rows * k {
                topValues = try b.makeTensor(.f32, count: max(rows * k, 64 * 8))
                topIndices = try b.makeTensor(.u32, count: max(rows * k, 64 * 8))
            }
            b.profileLabel = "sampling"
            defer { b.profileLabel = "" }
            try b.topK(logits, rows: rows, length: vocab, k: k, outValues: topValues!, outIndices: topIndices!)
            let values = try b.readFloats(topValues!), indices = try b.readUInts(topIndices!)
            return try states.indices.map { i in
                let r = rowOf[i]
                let cands = (0..<k).map { (logit: values[r * k + $0], id: Int(indices[r * k + $0])) }.filter { $0.id < vocab }
                var s = states[i]
                let id = Sampler.sample(cands, params[i], rng: &s.rng)
                update(i, s)
                guard id < vocab else { throw GenerationError("sampling produced id \(id) outside the vocabulary") }
                return id
            }
        }
        let all = try b.readFloats(logits)
        return states.indices.map { i in
            let r = rowOf[i]
            let cands = (0..<vocab).map { (logit: all[r * vocab + $0], id: $0) }
            var s = states[i]
            let id = Sampler.sample(cands, params[i], rng: &s.rng)
            update(i, s)
            return id
        }
    }
}

/// Host-side state of one sequence.
struct SequenceState {
    let request: GenerationRequest
    let requestIndex: Int
    var rng: SplitMix64
    var generated: [Int] = []
    var decoder: StreamingDecoder?
    var text = ""
    var finished = false
    var reason: GenerationResult.FinishReason = .length
    let eos: Set<Int>

    init(request: GenerationRequest, index: Int, tokenizer: Tokenizer?, eos configEOS: Set<Int>) {
        self.request = request
        requestIndex = index
        // One stream per request (seed + index), so a sample does not depend on its batch.
        rng = SplitMix64(seed: request.sampling.seed &+ UInt64(index) &* 0x9E37_79B9)
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
        eos = tokenizer?.eosIDs.union(configEOS) ?? configEOS
        finished = request.maxTokens == 0
    }

    mutating func accept(_ id: Int, onToken: Generator.TokenHandler?) {
        guard !finished else { return }
        generated.append(id)
        if request.stopAtEOS, eos.contains(id) {
            finished = true
            reason = .eos
            let tail = decoder?.flush() ?? ""
            text += tail
            if !tail.isEmpty { onToken?(requestIndex, id, tail) }
            return
        }
        let piece = decoder?.push(id) ?? ""
        text += piece
        onToken?(requestIndex, id, piece)
        if let stop = request.stopStrings.first(where: { !$0.isEmpty && text.contains($0) }) {
            text = String(text[..<text.range(of: stop)!.lowerBound])
            finished = true
            reason = .stop
        } else if generated.count >= request.maxTokens {
            text += decoder?.flush() ?? ""
            finished = true
            reason = .length
        }
    }

    func result() -> GenerationResult {
        GenerationResult(promptIDs: request.promptIDs, ids: generated, text: text, finishReason: reason)
    }
}
