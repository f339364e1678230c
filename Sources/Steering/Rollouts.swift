import Backend
import Foundation
import Generation
import Model
import Tasks
import Tokenizers

/// Settings of ROC: rollout-based on-distribution contrast.
public struct RolloutSettings: Sendable, Codable {
    public var rollouts = 8
    /// Rollouts decoded together (those of several questions share a step).
    public var sequences = 16
    public var temperature: Float = 0.8
    public var topP: Float = 0.9
    public var seed: UInt64 = 42
    /// Generation budget per answer (nil: the task's).
    public var maxTokens: Int?
    /// With no incorrect rollout: use the task's synthetic wrong answer (else skip the question).
    public var syntheticNegatives = true
    public init() {}
}

/// What extraction used, for the report.
public struct ExtractionStats: Sendable, Codable, Equatable {
    public var questions = 0
    public var questionsUsed = 0
    public var questionsSkipped = 0
    public var rollouts = 0
    public var correctRollouts = 0
    public var pairs = 0
    /// Questions with no correct rollout (the gold answer stood in, pairs weighted 0.5).
    public var goldFallbacks = 0
    /// Questions with no incorrect rollout (a synthetic wrong answer stood in).
    public var syntheticFallbacks = 0
    public init() {}

    /// The statistics of two disjoint sets of questions together (shards).
    public static func + (a: ExtractionStats, b: ExtractionStats) -> ExtractionStats {
        var r = a
        r.questions += b.questions
        r.questionsUsed += b.questionsUsed
        r.questionsSkipped += b.questionsSkipped
        r.rollouts += b.rollouts
        r.correctRollouts += b.correctRollouts
        r.pairs += b.pairs
        r.goldFallbacks += b.goldFallbacks
        r.syntheticFallbacks += b.syntheticFallbacks
        return r
    }
}

/// Forms the pairs of one question from graded rollouts (the fallbacks of DESIGN.md):
/// every correct × every incorrect; no correct → the gold answer is the positive with weight 0.5;
/// no incorrect → the synthetic wrong answer, or nothing (skip).
public enum PairFormation {
    public struct Plan: Equatable {
        /// Indices into the candidate list: positives and negatives, with the pair weight.
        public var pairs: [(positive: Int, negative: Int, weight: Float)]
        public var usedGold: Bool
        public var usedSynthetic: Bool
        public static func == (a: Plan, b: Plan) -> Bool {
            a.usedGold == b.usedGold && a.usedSynthetic == b.usedSynthetic &&
                a.pairs.map { [$0.positive, $0.negative] } == b.pairs.map { [$0.positive, $0.negative] } &&
                a.pairs.map(\.weight) == b.pairs.map(\.weight)
        }
    }

    /// Candidates are: the rollouts 0..<n, then the gold answer at index n, then the synthetic
    /// wrong answer at n + 1 (if `hasSynthetic`).
    public static func plan(correct: [Bool], hasSynthetic: Bool) -> Plan? {
        let n = correct.count
        var positives = correct.indices.filter { correct[$0] }
        var negatives = correct.indices.filter { !correct[$0] }
        var weight: Float = 1
        var usedGold = false, usedSynthetic = false
        if positives.isEmpty {
            positives = [n]
            weight = 0.5
            usedGold = true
        }
        if negatives.isEmpty {
            guard hasSynthetic else { return nil }
            negatives = [n + 1]
            usedSynthetic = true
        }
        let pairs = positives.flatMap { p in negatives.map { (positive: p, negative: $0, weight: weight) } }
        return Plan(pairs: pairs, usedGold: usedGold, usedSynthetic: usedSynthetic)
    }
}

/// Reads activations of prompt + response sequences, teacher forced, at each sequence's last
/// response token: many sequences in one forward step.
public struct TeacherForcing {
    public let model: LanguageModel
    public let site: ActivationSite
    public let layers: [Int]

    public init(model: LanguageModel, site: ActivationSite, layers: [Int]) {
        self.model = model
        self.site = site
        self.layers = layers
    }

    /// For each sequence (prompt ids + response ids), the activation at its last token, per layer.
    public func lastTokenActivations(_ sequences: [[Int]]) throws -> [[Int: [Float]]] {
        guard !sequences.isEmpty else { return [] }
        var ids: [Int] = [], seqs: [Int] = [], pos: [Int] = [], last: [Int] = []
        for (s, tokens) in sequences.enumerated() {
            ids += tokens
            seqs += Array(repeating: s, count: tokens.count)
            pos += Array(tokens.indices)
            last.append(ids.count - 1)
        }
        let cache = try KVCache(model: model, sequences: sequences.count, capacity: sequences.map(\.count).max()!)
        return try run(ForwardStep(ids: ids, sequences: seqs, positions: pos, logitRows: [last[0]]), cache: cache, rows: last)
    }

    /// The same for responses that share one prompt: the prompt is run once and its cache copied,
    /// then every response runs in one step (what rollouts of one question need). With a
    /// `meter`, the prompt's last token and every response token are measured too.
    public func lastTokenActivations(prompt: [Int], responses: [[Int]], meter: SiteNormMeter? = nil) throws -> [[Int: [Float]]] {
        guard !responses.isEmpty else { return [] }
        guard !prompt.isEmpty, responses.allSatisfy({ !$0.isEmpty }) else { throw SteeringError("teacher forcing needs a prompt and non-empty responses") }
        let cache = try KVCache(model: model, sequences: responses.count, capacity: prompt.count + responses.map(\.count).max()!)
        let scratch = model.makeScratch()
        let promptCapture = meter.map { _ in ActivationCapture(site: site, layers: layers, rows: [prompt.count - 1]) }
        _ = try model.forward(.prompt(prompt), cache: cache, capture: promptCapture, scratch: scratch)
        try model.copyCache(cache, from: 0, to: Array(1..<responses.count), length: prompt.count)
        var ids: [Int] = [], seqs: [Int] = [], pos: [Int] = [], last: [Int] = []
        for (s, tokens) in responses.enumerated() {
            ids += tokens
            seqs += Array(repeating: s, count: tokens.count)
            pos += tokens.indices.map { prompt.count + $0 }
            last.append(ids.count - 1)
        }
        let step = ForwardStep(ids: ids, sequences: seqs, positions: pos, logitRows: [last[0]])
        guard let meter, let promptCapture else { return try run(step, cache: cache, rows: last, scratch: scratch) }
        // Capture is a gather of rows already computed: capturing every row changes no value.
        let all = try run(step, cache: cache, rows: Array(ids.indices), scratch: scratch)
        let head = try promptCapture.read(model)
        for l in layers {
            meter.add(layer: l, head[l]![0])
            for row in all { meter.add(layer: l, row[l]!) }
        }
        return last.map { all[$0] }
    }

    private func run(_ step: ForwardStep, cache: KVCache, rows: [Int], scratch: ForwardScratchHandle? = nil) throws -> [[Int: [Float]]] {
        let capture = ActivationCapture(site: site, layers: layers, rows: rows)
        _ = try model.forward(step, cache: cache, capture: capture, scratch: scratch ?? model.makeScratch())
        let acts = try capture.read(model)
        return rows.indices.map { s in Dictionary(uniqueKeysWithValues: layers.map { ($0, acts[$0]![s]) }) }
    }
}

/// ROC: sample the model's own answers, grade them, pair correct with incorrect, and read the
/// contrast at the last response token of each, teacher forced.
public final class RolloutContrast {
    public let model: LanguageModel
    public let task: ReasoningTask
    public let site: ActivationSite
    public let layers: [Int]
    public let settings: RolloutSettings
    public let generator: Generator

    public init(model: LanguageModel, task: ReasoningTask, site: ActivationSite, layers: [Int], settings: RolloutSettings) {
        self.model = model
        self.task = task
        self.site = site
        self.layers = layers
        self.settings = settings
        generator = Generator(model: model)
    }

    /// The prompt ids of a task item, through the model's chat template (a `.plain` task: its text
    /// as it is); `shots` are worked examples put before it as earlier user / assistant turns
    /// (few-shot prompting).
    public static func promptIDs(_ model: LanguageModel, _ task: ReasoningTask, _ item: TaskItem, shots: [TaskItem] = []) throws -> [Int] {
        if task.promptFormat == .plain {
            // Worked examples as earlier question-answer blocks, then the question.
            let text = ([task.systemPrompt].compactMap { $0 } + shots.map { $0.prompt + $0.goldResponse } + [item.prompt]).joined(separator: "\n\n")
            return try model.requireTokenizer().encode(text, addSpecialTokens: true)
        }
        var messages: [ChatMessage] = []
        if let s = task.systemPrompt { messages.append(ChatMessage(role: "system", content: s)) }
        for shot in shots {
            messages.append(ChatMessage(role: "user", content: shot.prompt))
            messages.append(ChatMessage(role: "assistant", content: shot.goldResponse))
        }
        messages.append(ChatMessage(role: "user", content: item.prompt))
        let text = model.chatTemplate.render(messages, addGenerationPrompt: true, enableThinking: false)
        return try model.requireTokenizer().encode(text, addSpecialTokens: false)
    }

    /// Response text → ids, without special tokens.
    func responseIDs(_ text: String) throws -> [Int] { try model.requireTokenizer().encode(text, addSpecialTokens: false) }

    /// Pairs per layer for the given items, and the records they were read from (for
    /// `--save-pairs`). `progress(done, total, pairs)` after each question.
    /// `firstQuestion` numbers `items[0]` among all the extraction questions: question q's
    /// rollout r samples from stream (seed, q, r), so it is the same in a shard as in the whole run.
    public func collect(_ items: [TaskItem], firstQuestion: Int = 0, meter: SiteNormMeter? = nil, progress: (Int, Int, Int) -> Void = { _, _, _ in })
        throws -> (pairs: [Int: [ContrastPair]], stats: ExtractionStats, records: [PairRecord]) {
        var stats = ExtractionStats()
        var pairs: [Int: [ContrastPair]] = [:]
        var records: [PairRecord] = []
        let eos = try model.requireTokenizer().eosIDs.union(model.config.eosTokenIDs)
        let n = settings.rollouts
        let prompts = try items.map { try Self.promptIDs(model, task, $0) }
        let requests = items.indices.flatMap { i in
            let sampling = SamplingParameters(temperature: settings.temperature, topP: settings.topP,
                                              seed: settings.seed &+ UInt64(firstQuestion + i) &* 1_000_003)
            return (0..<n).map { _ in GenerationRequest(promptIDs: prompts[i], maxTokens: settings.maxTokens ?? task.maxTokens, sampling: sampling) }
        }
        // Rollout r of question q draws from stream q·n + r: its number in the whole run.
        let streams = items.indices.flatMap { i in (0..<n).map { (firstQuestion + i) * n + $0 } }
        let reader = PairActivations(forcing: TeacherForcing(model: model, site: site, layers: layers), meter: meter)
        // The rollouts of every question decode together, `settings.sequences` at a time. A
        // question is paired once it and every question before it have all their rollouts, so
        // the pairs come in question order whatever finishes first.
        var finished = [GenerationResult?](repeating: nil, count: requests.count)
        var next = 0
        func pairReadyQuestions() throws {
            while next < items.count, (next * n..<(next + 1) * n).allSatisfy({ finished[$0] != nil }) {
                try pairUp(next, items[next], prompts[next], finished[next * n..<(next + 1) * n].map { $0! })
                next += 1
            }
        }
        func pairUp(_ i: Int, _ item: TaskItem, _ prompt: [Int], _ results: [GenerationResult]) throws {
            let q = firstQuestion + i
            stats.questions += 1
            let correct = results.map { task.grade($0.text, item) }
            stats.rollouts += results.count
            stats.correctRollouts += correct.filter { $0 }.count
            var rng = TaskRandom.question(seed: settings.seed ^ 0x5EED, q)
            let synthetic = settings.syntheticNegatives ? task.syntheticWrongResponse(item, rng: &rng) : nil
            guard let plan = PairFormation.plan(correct: correct, hasSynthetic: synthetic != nil) else {
                stats.questionsSkipped += 1
                progress(i + 1, items.count, stats.pairs)
                return
            }
            // Candidates: rollouts (their sampled ids, EOS dropped), gold, synthetic.
            var candidates = try results.enumerated().map { i, r in
                PairResponse(candidate: i, source: "rollout", correct: correct[i],
                             ids: Array(r.ids.reversed().drop { eos.contains($0) }.reversed()), text: r.text)
            }
            candidates.append(PairResponse(candidate: n, source: "gold", correct: true, ids: try responseIDs(item.goldResponse), text: item.goldResponse))
            candidates.append(PairResponse(candidate: n + 1, source: "synthetic", correct: false, ids: try synthetic.map(responseIDs) ?? [], text: synthetic))
            let fallback = PairRecord.fallback(gold: plan.usedGold, synthetic: plan.usedSynthetic)
            // An empty response has no last response token: its pairs are dropped.
            let formed = plan.pairs.filter { !candidates[$0.positive].ids.isEmpty && !candidates[$0.negative].ids.isEmpty }.map {
                PairRecord(question: q, questionID: item.id, prompt: prompt, positive: candidates[$0.positive],
                           negative: candidates[$0.negative], weight: $0.weight, grades: correct, fallback: fallback)
            }
            for (l, p) in try reader.contrasts(formed[...]) { pairs[l, default: []] += p }
            records += formed
            if formed.isEmpty {
                stats.questionsSkipped += 1
            } else {
                stats.questionsUsed += 1
                stats.pairs += formed.count
                if plan.usedGold { stats.goldFallbacks += 1 }
                if plan.usedSynthetic { stats.syntheticFallbacks += 1 }
            }
            progress(i + 1, items.count, stats.pairs)
        }
        generator.maxSequences = settings.sequences
        _ = try generator.generate(requests, seedIndices: streams, onFinish: { i, r in
            finished[i] = r
            try pairReadyQuestions()
        })
        try pairReadyQuestions()  // none left when every question has rollouts; all when none has
        return (pairs, stats, records)
    }
}
