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

/// Batched generation: up to `maxSequences` sequences (different prompts and lengths) share
/// every forward step, so the weights are read once per step for all of them. When a sequence
/// finishes, the next request takes its slot in the following step (continuous batching): its
/// prompt is prefilled in the same step as the others' next tokens, so the batch stays full
/// instead of draining to its longest answer.
public final class Generator {
    public let model: LanguageModel
    /// The most tokens one step takes; longer prompts are prefilled in chunks.
    public var maxStepTokens = 512
    /// The most sequences decoded together (nil: every request at once).
    public var maxSequences: Int?
    /// A prompt head shared with a sequence already in the cache is copied, not computed again,
    /// from this length on.
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
    /// Called with (request index, result) as each request finishes.
    public typealias FinishHandler = (Int, GenerationResult) throws -> Void
    /// Steering for a step: the layers to steer, with their row scales sized to the step.
    public typealias SteeringProvider = (ForwardStep, StepRows) throws -> [Int: LayerSteering]

    /// Whom each row of a step belongs to: `requests[t]` is the index (in `generate`'s list) of
    /// row t's request and `promptLengths[t]` that request's prompt length.
    public struct StepRows: Sendable {
        public var requests: [Int]
        public var promptLengths: [Int]
        public init(requests: [Int], promptLengths: [Int]) {
            self.requests = requests
            self.promptLengths = promptLengths
        }
    }

    /// One cache row of sequences: the request it holds and the tokens whose K/V it holds.
    private struct Slot {
        var request: Int?
        var tokens: [Int] = []
        var promptLength = 0
        /// Positions of `tokens` already computed into the cache.
        var computed = 0
    }

    public func generate(_ requests: [GenerationRequest], steering: SteeringProvider? = nil,
                         onToken: TokenHandler? = nil, onFinish: FinishHandler = { _, _ in }) throws -> [GenerationResult] {
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
        guard maxSequences.map({ $0 > 0 }) ?? true else { throw GenerationError("at most \(maxSequences!) sequences at once: must be ≥ 1") }
        let slotCount = min(maxSequences ?? requests.count, requests.count)
        let capacity = requests.map { $0.promptIDs.count + max($0.maxTokens, 1) }.max()!
        let cache = try KVCache(model: model, sequences: slotCount, capacity: min(capacity, ctx))
        var states = requests.enumerated().map { SequenceState(request: $0.element, index: $0.offset, tokenizer: model.tokenizer, eos: Set(model.config.eosTokenIDs)) }
        var results = [GenerationResult?](repeating: nil, count: requests.count)
        var slots = [Slot](repeating: Slot(), count: slotCount)
        var queue = Array(requests.indices)[...]

        // A request that asks for no tokens is done before it starts.
        func finish(_ i: Int) throws {
            let r = states[i].result()
            results[i] = r
            try onFinish(i, r)
        }

        while true {
            try admit(&queue, into: &slots, requests: requests, cache: cache, states: states, finish: finish)
            let live = slots.indices.filter { slots[$0].request != nil }
            if live.isEmpty { break }
            // Every decoding sequence's next token first, then prompt tokens up to the step's limit.
            var step = ForwardStep(ids: [], sequences: [], positions: [], logitRows: [])
            var rows = StepRows(requests: [], promptLengths: []), picks: [(slot: Int, row: Int)] = []
            var room = max(maxStepTokens - live.filter { slots[$0].computed >= slots[$0].promptLength }.count, 1)
            for s in live {
                let slot = slots[s]
                let decoding = slot.computed >= slot.promptLength
                let n = decoding ? 1 : min(slot.tokens.count - slot.computed, room)
                if n == 0 { continue }
                if !decoding { room -= n }
                for p in slot.computed..<slot.computed + n {
                    step.ids.append(slot.tokens[p])
                    step.sequences.append(s)
                    step.positions.append(p)
                    rows.promptLengths.append(slot.promptLength)
                    rows.requests.append(slot.request!)
                }
                slots[s].computed += n
                if slots[s].computed == slot.tokens.count {
                    picks.append((s, step.ids.count - 1))
                    step.logitRows.append(step.ids.count - 1)
                }
            }
            // A step holding only part of a prompt still needs one logit row; its result is unused.
            let unused = step.logitRows.isEmpty
            if unused { step.logitRows = [0] }
            let logits = try model.forward(step, cache: cache, steering: try steering?(step, rows) ?? [:], scratch: scratch)
            if unused { continue }
            let owners = picks.map { slots[$0.slot].request! }
            let next = try pick(logits, rows: picks.count, rowOf: Array(picks.indices), states: owners.map { states[$0] },
                                update: { i, s in states[owners[i]] = s })
            for ((s, _), (i, id)) in zip(picks, zip(owners, next)) {
                states[i].accept(id, onToken: onToken)
                if states[i].finished {
                    slots[s].request = nil
                    try finish(i)
                } else {
                    slots[s].tokens.append(id)
                }
            }
        }
        return results.map { $0! }
    }

    /// Fills free slots from the queue, in order. A new request copies the longest prompt head it
    /// shares with a slot's computed tokens (at least `minSharedHead`, and leaving it one token of
    /// its own, whose logits it needs). If a slot still prefilling shares a longer head, the queue
    /// waits a step for it, so rollouts of one prompt prefill it once.
    private func admit(_ queue: inout ArraySlice<Int>, into slots: inout [Slot], requests: [GenerationRequest],
                       cache: KVCache, states: [SequenceState], finish: (Int) throws -> Void) throws {
        while let i = queue.first {
            if states[i].finished {  // asked for no tokens
                queue.removeFirst()
                try finish(i)
                continue
            }
            guard let free = slots.indices.first(where: { slots[$0].request == nil }) else { return }
            let prompt = requests[i].promptIDs
            func shared(_ d: Slot, upTo limit: Int) -> Int {
                let n = min(limit, prompt.count - 1, d.promptLength - 1)
                var k = 0
                while k < n, d.tokens[k] == prompt[k] { k += 1 }
                return k
            }
            // Prefer the free slot itself (no copy) among equals.
            let order = [free] + slots.indices.filter { $0 != free }
            let best = order.map { (slot: $0, length: shared(slots[$0], upTo: slots[$0].computed)) }.max { $0.length < $1.length }!
            let pending = slots.indices.filter { slots[$0].request != nil && slots[$0].computed < slots[$0].promptLength }
            if pending.contains(where: { shared(slots[$0], upTo: slots[$0].promptLength) >= max(best.length, 0) + minSharedHead }) { return }
            let copied = best.length >= minSharedHead ? best.length : 0
            if copied > 0, best.slot != free {
                try model.copyCache(cache, from: best.slot, to: [free], length: copied)
            }
            slots[free] = Slot(request: i, tokens: prompt, promptLength: prompt.count, computed: copied)
            queue.removeFirst()
        }
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
