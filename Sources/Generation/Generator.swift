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
    private var inverseTemperatures: Tensor?
    private var softmaxHeads: Tensor?
    private var writtenInverseTemperatures: [Float] = []
    /// Rows sampled over the whole vocabulary: from the device's softmax head alone, and those
    /// whose logits had to come back (`pick`).
    public private(set) var wideRowsFromHead = 0
    public private(set) var wideRowsReadBack = 0

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

    /// Rows sampled over the whole vocabulary draw from their softmax head: at most 256 tokens,
    /// all those within the widest whole number of nats (≤ 16) of the likeliest that fits.
    public static let headWindow = 16, headCapacity = 256

    /// The next token of each sequence (`states[i]` draws from logit row `rowOf[i]`), from what
    /// the device reduced the rows to. Greedy rows and rows limiting k ≤ 64: the device's top-k.
    /// Rows sampled over the whole vocabulary (top-k 0, as ROAST's rollouts are): the device's
    /// softmax head (`softmaxHead`), which gives the very token the whole row would whenever
    /// the draw and the top-p nucleus fall inside it; only the other rows come back whole
    /// (`wideRowsReadBack`). A row limiting k above 64 reads every row back.
    func pick(_ logits: Tensor, rows: Int, rowOf: [Int], states: [SequenceState], update: (Int, SequenceState) -> Void) throws -> [Int] {
        let b = model.backend, vocab = model.config.vocabSize
        let params = states.map(\.request.sampling)
        let maxK = 64
        guard params.allSatisfy({ $0.isGreedy || $0.topK <= maxK }) else {
            let all = try b.readFloats(logits)
            return states.indices.map { i in
                var s = states[i]
                let id = Sampler.sample(row(all, rowOf[i], vocab), params[i], rng: &s.rng)
                update(i, s)
                return id
            }
        }
        let wide = Set(params.indices.filter { !params[$0].isGreedy && params[$0].topK == 0 })
        let k = params.indices.filter { !wide.contains($0) }.map { params[$0].isGreedy ? 1 : params[$0].topK }.max()
        b.profileLabel = "sampling"
        defer { b.profileLabel = "" }
        if let k {
            if topValues == nil || topValues!.count < rows * k {
                topValues = try b.makeReadbackTensor(.f32, count: max(rows * k, 64 * 8))
                topIndices = try b.makeReadbackTensor(.u32, count: max(rows * k, 64 * 8))
            }
            try b.topK(logits, rows: rows, length: vocab, k: k, outValues: topValues!, outIndices: topIndices!)
        }
        let capacity = Self.headCapacity
        if !wide.isEmpty {
            if inverseTemperatures == nil || inverseTemperatures!.count < rows {
                writtenInverseTemperatures = []
                inverseTemperatures = try b.makeTensor(.f32, count: max(rows, 64))
                softmaxHeads = try b.makeReadbackTensor(.u32, count: max(rows, 64) * SoftmaxHead.words(capacity: capacity))
            }
            var inverse = [Float](repeating: 1, count: rows)
            for i in wide { inverse[rowOf[i]] = 1 / params[i].temperature }
            // A write waits for the step's pending work first; rollouts keep their temperatures.
            if inverse != writtenInverseTemperatures {
                try b.write(inverseTemperatures!, floats: inverse)
                writtenInverseTemperatures = inverse
            }
            try b.softmaxHead(logits, rows: rows, length: vocab, inverseTemperatures: inverseTemperatures!, maxWindow: Self.headWindow,
                              capacity: capacity, output: softmaxHeads!)
        }
        let values = k == nil ? [] : try b.readFloats(topValues!), indices = k == nil ? [] : try b.readUInts(topIndices!)
        let heads = wide.isEmpty ? [] : SoftmaxHead.decode(try b.readUInts(softmaxHeads!), rows: rows, capacity: capacity)
        var all: [Float]?  // the rows, read once if some row needs more than its head
        func fullRow(_ r: Int) throws -> [Sampler.Candidate] {
            if all == nil { all = try b.readFloats(logits) }
            return row(all!, r, vocab)
        }
        return try states.indices.map { i in
            let r = rowOf[i]
            var s = states[i]
            defer { update(i, s) }
            guard wide.contains(i) else {
                let top = (0..<k!).map { (logit: values[r * k! + $0], id: Int(indices[r * k! + $0])) }.filter { $0.id < vocab }
                let id = Sampler.sample(top, params[i], rng: &s.rng)
                guard id < vocab else { throw GenerationError("sampling produced id \(id) outside the vocabulary") }
                return id
            }
            let head = heads[r]
            guard head.rowMax.isFinite, head.isComplete else {
                wideRowsReadBack += 1
                return Sampler.sample(try fullRow(r), params[i], rng: &s.rng)
            }
            // A finite maximum means a non-NaN entry, so the whole row's sampler would draw too.
            let u = Sampler.unit(&s.rng)
            if let id = Sampler.sampleHead(head.entries.map { (logit: $0.value, id: $0.index) }, rowMax: head.rowMax,
                                           normaliser: head.normaliser, params[i], u: u) {
                wideRowsFromHead += 1
                return id
            }
            wideRowsReadBack += 1
            return Sampler.sample(try fullRow(r), params[i], u: u)
        }
    }

    private func row(_ all: [Float], _ r: Int, _ vocab: Int) -> [Sampler.Candidate] {
        (0..<vocab).map { (logit: all[r * vocab + $0], id: $0) }
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
