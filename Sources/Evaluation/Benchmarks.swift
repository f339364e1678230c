import Backend
import Foundation
import Generation
import Model
import Steering
import Tasks

/// One evaluated item as the results report it.
public struct ItemRecord: Codable, Sendable {
    public var id: String
    /// What the model was asked (the user message, or the MC question).
    public var prompt: String
    /// The answer: generated text, or the choice ranked first by log-likelihood.
    public var response: String
    public var gold: String
    public var correct: Bool
    /// The item's metrics (`accuracy` 0/1, or `mc1` 0/1 and `mc2` in [0, 1]).
    public var scores: [String: Double]
}

/// What an item is evaluated under: steering (or none) and few-shot examples.
public struct Condition {
    public var intervention: Intervention?
    public var shots: [TaskItem]
    public init(intervention: Intervention? = nil, shots: [TaskItem] = []) {
        self.intervention = intervention
        self.shots = shots
    }

    /// Identifies the condition in cache keys: α, site, scope, kind and every vector's bits.
    /// α = 0 is no steering at all, so it shares the unsteered key.
    public var fingerprint: String {
        var parts = ["shots:" + shots.map(\.id).joined(separator: ",")]
        if let iv = intervention, iv.alpha != 0, !iv.vectors.isEmpty {
            parts.append("steer:\(iv.site.rawValue):\(iv.scope.rawValue):\(iv.multiplicative):\(iv.alpha.bitPattern)")
            for (l, v) in iv.vectors.sorted(by: { $0.key < $1.key }) { parts.append("\(l):\(Digest.floats(v))") }
        }
        return parts.joined(separator: "|")
    }
}

/// Shared by every evaluation of a run: the model, its answer cache and how items are batched.
public final class EvalContext {
    public let model: LanguageModel
    public let cache: AnswerCache
    public var batchSize: Int
    let generator: Generator
    let scorer: ContinuationScorer

    public init(model: LanguageModel, cache: AnswerCache, batchSize: Int = 16) {
        self.model = model
        self.cache = cache
        self.batchSize = batchSize
        generator = Generator(model: model)
        scorer = ContinuationScorer(model: model)
    }

    func key(_ parts: String...) -> String { Digest.hex(([model.weightsFingerprint] + parts).joined(separator: "\u{1F}")) }
}

/// A benchmark: where its items come from, what it measures, how an item is evaluated.
public protocol Benchmark {
    var name: String { get }
    /// The metrics per item; the first is the headline and the one α is tuned on.
    var metrics: [String] { get }
    /// The generation task steering vectors are estimated on (rollouts, teacher forcing).
    func extractionTask(seed: UInt64) -> ReasoningTask
    /// Training questions (vectors, dev split, few-shot examples come from these only).
    func trainItems(seed: UInt64) throws -> [TaskItem]
    func testItems(seed: UInt64) throws -> [TaskItem]
    /// Whether few-shot prompting is a separate method (false: the format is few-shot already).
    var supportsFewShot: Bool { get }
    func evaluate(_ items: [TaskItem], seed: UInt64, condition: Condition, context: EvalContext,
                  progress: (Int, Int) -> Void) throws -> [ItemRecord]
}

/// A task answered by greedy generation and graded by the task.
public struct GenerationBenchmark: Benchmark {
    public let name: String
    public let metrics = ["accuracy"]
    public let supportsFewShot = true
    let makeTask: (UInt64) -> ReasoningTask
    /// The generation budget (nil: the task's).
    public var maxTokens: Int?

    public init(name: String, maxTokens: Int? = nil, makeTask: @escaping (UInt64) -> ReasoningTask) {
        self.name = name
        self.maxTokens = maxTokens
        self.makeTask = makeTask
    }

    public func extractionTask(seed: UInt64) -> ReasoningTask { makeTask(seed) }
    public func trainItems(seed: UInt64) throws -> [TaskItem] { try makeTask(seed).train() }
    public func testItems(seed: UInt64) throws -> [TaskItem] { try makeTask(seed).test() }

    public func evaluate(_ items: [TaskItem], seed: UInt64, condition: Condition, context ctx: EvalContext,
                         progress: (Int, Int) -> Void) throws -> [ItemRecord] {
        let task = makeTask(seed), model = ctx.model
        let budget = maxTokens ?? task.maxTokens
        let prompts = try items.map { try RolloutContrast.promptIDs(model, task, $0, shots: condition.shots) }
        let keys = prompts.map { ctx.key("generate", $0.map(String.init).joined(separator: ","), "\(budget)", condition.fingerprint) }
        let context = model.config.contextLength
        for (i, p) in prompts.enumerated() where p.count + budget > context {
            throw EvaluationError("\(items[i].id): the prompt of \(p.count) tokens + \(budget) new tokens exceeds the model's context of \(context)")
        }
        // Steering off when α = 0: the same answers as the baseline, from the same cache entries.
        let injector = try condition.intervention.flatMap { $0.alpha == 0 ? nil : try SteeringInjector(model: model, intervention: $0) }
        let missing = items.indices.filter { ctx.cache[keys[$0]]?.response == nil }
        var done = items.count - missing.count
        progress(done, items.count)
        // Up to batchSize answers at a time; each is cached as it finishes and its slot refilled.
        ctx.generator.maxSequences = ctx.batchSize
        let requests = missing.map { GenerationRequest(promptIDs: prompts[$0], maxTokens: budget) }
        _ = try ctx.generator.generate(requests, steering: injector?.provider, onFinish: { r, result in
            try ctx.cache.put([CachedOutput(key: keys[missing[r]], response: result.text)])
            done += 1
            progress(done, items.count)
        })
        return items.indices.map { i in
            let response = ctx.cache[keys[i]]?.response ?? ""
            let ok = task.grade(response, items[i])
            return ItemRecord(id: items[i].id, prompt: items[i].prompt, response: response, gold: items[i].goldValue,
                              correct: ok, scores: ["accuracy": ok ? 1 : 0])
        }
    }
}

/// TruthfulQA MC1 / MC2 by log-likelihood. Vectors are estimated on the letter format's training
/// questions; dev and test items are scored choice by choice.
public struct TruthfulQAMCBenchmark: Benchmark {
    public let name = "truthfulqa-mc"
    public let metrics = ["mc1", "mc2"]
    public let supportsFewShot = false
    public let questions: [TruthfulQAQuestion]
    public var trainCount: Int

    public init(questions: [TruthfulQAQuestion], trainCount: Int = 100) {
        self.questions = questions
        self.trainCount = trainCount
    }

    func letters(_ seed: UInt64) -> TruthfulQATask { TruthfulQATask(questions: questions, seed: seed, trainCount: trainCount) }
    public func extractionTask(seed: UInt64) -> ReasoningTask { letters(seed) }
    public func trainItems(seed: UInt64) throws -> [TaskItem] { letters(seed).train() }
    public func testItems(seed: UInt64) throws -> [TaskItem] { letters(seed).test() }

    /// The union of MC1 and MC2 choices, in file order, each once.
    static func choices(_ q: TruthfulQAQuestion) -> [String] {
        var seen = Set<String>(), out: [String] = []
        for c in q.mc1 + q.mc2 where seen.insert(c.text).inserted { out.append(c.text) }
        return out
    }

    public func evaluate(_ items: [TaskItem], seed: UInt64, condition: Condition, context ctx: EvalContext,
                         progress: (Int, Int) -> Void) throws -> [ItemRecord] {
        let model = ctx.model, tok = try model.requireTokenizer()
        let byID = Dictionary(uniqueKeysWithValues: questions.map { ("truthfulqa-\($0.index)", $0) })
        let prefix = tok.encode(TruthfulQAMC.primer, addSpecialTokens: true)
        let injector = try condition.intervention.flatMap { $0.alpha == 0 ? nil : try SteeringInjector(model: model, intervention: $0) }
        var out: [ItemRecord] = []
        for (n, item) in items.enumerated() {
            guard let q = byID[item.id] else { throw EvaluationError("\(item.id) is not a TruthfulQA question") }
            let texts = Self.choices(q)
            let context = tok.encode(TruthfulQAMC.context(q), addSpecialTokens: false)
            let conts = texts.map { tok.encode(TruthfulQAMC.continuation($0), addSpecialTokens: false) }
            let key = ctx.key("mc", prefix.map(String.init).joined(separator: ","), context.map(String.init).joined(separator: ","),
                              conts.map { $0.map(String.init).joined(separator: ",") }.joined(separator: ";"), condition.fingerprint)
            var lls = ctx.cache[key]?.logLikelihoods
            if lls?.count != texts.count {
                lls = try ctx.scorer.score(prefix: prefix, context: context, continuations: conts,
                                           steering: injector.map { inj in { step, length in try inj.scoringSteering(step, promptLength: length) } })
                try ctx.cache.put([CachedOutput(key: key, logLikelihoods: lls)])
            }
            let ll = Dictionary(uniqueKeysWithValues: zip(texts, lls!))
            let mc1 = TruthfulQAMC.mc1(logLikelihoods: q.mc1.map { ll[$0.text]! }, choices: q.mc1)
            let mc2 = TruthfulQAMC.mc2(logLikelihoods: q.mc2.map { ll[$0.text]! }, choices: q.mc2)
            let best = q.mc1.max { ll[$0.text]! < ll[$1.text]! }!
            out.append(ItemRecord(id: item.id, prompt: q.question, response: best.text, gold: q.mc1.first(where: \.isTrue)!.text,
                                  correct: mc1 == 1, scores: ["mc1": mc1, "mc2": mc2]))
            progress(n + 1, items.count)
        }
        return out
    }
}
