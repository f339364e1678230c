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
/// instead of draining to its longest answer. `GenerationBatch` is the loop; a server drives one
/// directly, submitting and cancelling requests between steps.
public final class Generator {
    public let model: LanguageModel
    /// The most tokens one step takes; longer prompts are prefilled in chunks.
    public var maxStepTokens = 512
    /// The most sequences decoded together (nil: every request at once).
    public var maxSequences: Int?
    /// A prompt head shared with a sequence already in the cache is copied, not computed again,
    /// from this length on.
    public var minSharedHead = 8
    let scratch: ForwardScratchHandle
    private var topValues: Tensor?
    private var topIndices: Tensor?

    public init(model: LanguageModel) {
        self.model = model
        scratch = model.makeScratch()
    }

    /// Called with (request index or ticket, token id, newly decodable text) as tokens arrive.
    public typealias TokenHandler = (Int, Int, String) -> Void
    /// Called with (request index or ticket, result) as each request finishes.
    public typealias FinishHandler = (Int, GenerationResult) throws -> Void
    /// Steering for a step: the layers to steer, with their row scales sized to the step.
    public typealias SteeringProvider = (ForwardStep, StepRows) throws -> [Int: LayerSteering]

    /// Whom each row of a step belongs to: `requests[t]` is row t's request (its index in
    /// `generate`'s list, or its `GenerationBatch` ticket) and `promptLengths[t]` its prompt length.
    public struct StepRows: Sendable {
        public var requests: [Int]
        public var promptLengths: [Int]
        public init(requests: [Int], promptLengths: [Int]) {
            self.requests = requests
            self.promptLengths = promptLengths
        }
    }

    /// `seedIndices[i]` names request i's sampling stream (seed + index); by default its position,
    /// so a caller that generates a slice of a larger list can keep the streams of the whole.
    public func generate(_ requests: [GenerationRequest], seedIndices: [Int]? = nil, steering: SteeringProvider? = nil,
                         onToken: TokenHandler? = nil, onFinish: FinishHandler = { _, _ in }) throws -> [GenerationResult] {
        guard !requests.isEmpty else { return [] }
        if let seedIndices, seedIndices.count != requests.count {
            throw GenerationError("\(seedIndices.count) seed indices for \(requests.count) requests")
        }
        let ctx = model.config.contextLength
        for (i, r) in requests.enumerated() {
            do { try GenerationBatch.check(r, capacity: ctx, context: ctx) } catch { throw GenerationError("request \(i): \(error)") }
        }
        guard maxSequences.map({ $0 > 0 }) ?? true else { throw GenerationError("at most \(maxSequences!) sequences at once: must be ≥ 1") }
        let capacity = requests.map { $0.promptIDs.count + max($0.maxTokens, 1) }.max()!
        let batch = try GenerationBatch(generator: self, slots: min(maxSequences ?? requests.count, requests.count), capacity: min(capacity, ctx))
        var results = [GenerationResult?](repeating: nil, count: requests.count)
        for (i, r) in requests.enumerated() { _ = try batch.submit(r, seedIndex: seedIndices?[i]) }
        while !batch.isIdle {
            try batch.step(steering: steering, onToken: onToken) { i, r in
                results[i] = r
                try onFinish(i, r)
            }
        }
        return results.map { $0! }
    }

    /// The next token of each sequence (`states[i]` draws from logit row `rowOf[i]`): argmax on
    /// the device when every row is greedy, the device's top-k when every row limits k ≤ 64,
    /// else the full rows read back.
    func pick(_ logits: Tensor, rows: Int, rowOf: [Int], states: [SequenceState], update: (Int, SequenceState) -> Void) throws -> [Int] {
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
    /// What the handlers call this request (its index in `generate`'s list, or a batch's ticket).
    var ticket: Int
    var rng: SplitMix64
    var generated: [Int] = []
    var decoder: StreamingDecoder?
    var text = ""
    var finished = false
    var reason: GenerationResult.FinishReason = .length
    let eos: Set<Int>

    init(request: GenerationRequest, index: Int, tokenizer: Tokenizer?, eos configEOS: Set<Int>) {
        self.request = request
        ticket = index
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
            if !tail.isEmpty { onToken?(ticket, id, tail) }
            return
        }
        let piece = decoder?.push(id) ?? ""
        text += piece
        onToken?(ticket, id, piece)
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
