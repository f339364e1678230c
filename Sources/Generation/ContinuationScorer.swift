import Backend
import Foundation
import Model

/// Summed log-probabilities of continuations of one context (multiple-choice by log-likelihood).
///
/// A shared `prefix` (a few-shot primer) is prefilled once into sequence 0 and kept between calls
/// while it does not change; each call copies it to sequence 1, runs the context there, copies
/// prefix + context to one sequence per continuation, and runs every continuation in one step.
/// So a call costs the context once plus the continuation tokens, whatever the number of choices.
public final class ContinuationScorer {
    public let model: LanguageModel
    private let scratch: ForwardScratchHandle
    private var cache: KVCache?
    private var prefilled: [Int] = []

    public init(model: LanguageModel) {
        self.model = model
        scratch = model.makeScratch()
    }

    /// For each continuation, Σ log p(token | everything before it), and its token count.
    /// `steering` is asked for every step with the prompt length prefix + context, so a
    /// `.generated` scope steers the last context token and the continuation tokens.
    public func score(prefix: [Int], context: [Int], continuations: [[Int]],
                      steering: ((ForwardStep, _ promptLength: Int) throws -> [Int: LayerSteering])? = nil) throws -> [Double] {
        guard !context.isEmpty else { throw GenerationError("a scored context needs at least one token") }
        guard !continuations.isEmpty, continuations.allSatisfy({ !$0.isEmpty }) else {
            throw GenerationError("every scored continuation needs at least one token")
        }
        let start = prefix.count + context.count
        let need = start + continuations.map(\.count).max()!
        guard need <= model.config.contextLength else {
            throw GenerationError("prefix + context + continuation of \(need) tokens exceeds the model's context of \(model.config.contextLength)")
        }
        let sequences = continuations.count + 2
        if cache == nil || cache!.sequences < sequences || cache!.capacity < need {
            let grown = (cache?.sequences ?? 0) < sequences ? max(sequences, 16) : cache!.sequences
            cache = try KVCache(model: model, sequences: grown, capacity: min(model.config.contextLength, max(need, 2 * start + 64)))
            prefilled = []
        }
        let cache = cache!
        let vocab = model.config.vocabSize
        func steer(_ step: ForwardStep) throws -> [Int: LayerSteering] { try steering?(step, start) ?? [:] }

        if !prefix.isEmpty, prefilled != prefix {
            // The primer is never steered: it lies before the prompt's last token.
            _ = try model.forward(.prompt(prefix, sequence: 0), cache: cache, scratch: scratch)
            prefilled = prefix
        }
        if !prefix.isEmpty { try model.copyCache(cache, from: 0, to: [1], length: prefix.count) }
        // The context on sequence 1; its last row predicts every continuation's first token.
        let contextStep = ForwardStep.prompt(context, sequence: 1, start: prefix.count)
        let first = try model.backend.readFloats(try model.forward(contextStep, cache: cache, steering: steer(contextStep), scratch: scratch))
        var totals = continuations.map { Self.logSoftmax(first[0..<vocab], at: $0[0]) }
        let targets = Array(2..<(2 + continuations.count))
        try model.copyCache(cache, from: 1, to: targets, length: start)

        // Every continuation but its last token, in one step; row j predicts token j + 1.
        var ids: [Int] = [], seqs: [Int] = [], pos: [Int] = [], next: [(choice: Int, token: Int)] = []
        for (c, tokens) in continuations.enumerated() where tokens.count > 1 {
            for j in 0..<(tokens.count - 1) {
                ids.append(tokens[j]); seqs.append(targets[c]); pos.append(start + j)
                next.append((c, tokens[j + 1]))
            }
        }
        if !ids.isEmpty {
            let step = ForwardStep(ids: ids, sequences: seqs, positions: pos, logitRows: Array(ids.indices))
            let logits = try model.backend.readFloats(try model.forward(step, cache: cache, steering: steer(step), scratch: scratch))
            for (r, n) in next.enumerated() {
                totals[n.choice] += Self.logSoftmax(logits[(r * vocab)..<((r + 1) * vocab)], at: n.token)
            }
        }
        return totals
    }

    /// log softmax(row)[index], in double.
    static func logSoftmax(_ row: ArraySlice<Float>, at index: Int) -> Double {
        let top = row.max() ?? 0
        var sum = 0.0
        for v in row { sum += exp(Double(v - top)) }
        return Double(row[row.startIndex + index] - top) - log(sum)
    }
}
