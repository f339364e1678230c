import Backend
import Foundation
import Generation
import Model
import Tasks

public enum ExtractionMethod: String, Sendable, Codable, CaseIterable {
    /// Rollout pairs, grouped mean normalisation, continuous soft scaling.
    case roast
    /// Contrastive activation addition: teacher-forced gold vs wrong answers, plain mean difference.
    case caa
    /// SADI: the same teacher-forced contrasts, kept as a binary mask of the top-K |mean difference|
    /// dimensions and applied multiplicatively, h + α·(m ⊙ h).
    case sadi
}

/// Where ROAST's contrast pairs come from.
public enum PairSource: String, Sendable, Codable, CaseIterable {
    /// The model's own sampled answers, graded (ROC).
    case rollouts
    /// The gold answer vs the task's synthetic wrong answer, teacher forced (CAA's pairs).
    case teacherForced = "teacher-forced"
}

public struct ExtractionOptions: Sendable {
    public var method: ExtractionMethod = .roast
    public var site: ActivationSite = .act
    public var layers: LayerSelection
    public var css: CSSMode = .max
    public var grouping = true
    /// With grouping: normalise each question then CSS the average, or CSS each question (ORBIT).
    public var groupOrder: GroupOrder = .l2ThenCSS
    /// ROAST's pairs (an ablation: teacher-forced instead of rollouts). CAA and SADI always
    /// teacher force.
    public var pairs: PairSource = .rollouts
    public var rollout = RolloutSettings()
    /// The default α written into the file.
    public var defaultAlpha: Float = 0.2
    /// K of the top-K mask the energy report compares CSS with, as a fraction of the width.
    public var topKFraction: Double = 0.05
    /// Pairs read from a file (`--pairs-file`): extract from these, sampling nothing.
    public var savedPairs: [PairRecord]?
    /// The number of the first item among all the extraction questions (a shard's offset):
    /// questions are numbered from it in the pairs, and each question's random streams (its
    /// rollouts', its synthetic wrong answer's) are drawn from its number, so a shard samples
    /// exactly what the whole run samples for the same questions.
    public var firstQuestion = 0
    public init(layers: LayerSelection) { self.layers = layers }
}
public struct ExtractionResult: Sendable {
    public var file: SteeringVectorFile
    public var stats: ExtractionStats
    /// The pairs the vector was read from, in order (`--save-pairs`).
    public var records: [PairRecord]
    /// Per layer: CSS vs top-K mask of the same μ.
    public var energy: [Int: (css: EnergyReport, topK: EnergyReport)]
    public var seconds: Double
}

/// What extraction gathers before it aggregates: per layer the questions' partials (in question
/// order), with the statistics, the site's norms and the pairs they came from. An extraction
/// shard writes this; merging shards concatenates it.
public struct ExtractionPartials: Sendable {
    public var layers: [Int]
    public var partials: [Int: [QuestionPartial]]
    public var stats: ExtractionStats
    public var norms: SiteNormTotals
    public var records: [PairRecord]
}

/// Estimates a steering vector per layer from a task's training questions.
public enum Extractor {
    public static func extract(model: LanguageModel, task: ReasoningTask, items: [TaskItem], options o: ExtractionOptions,
                               progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> ExtractionResult {
        let t0 = Date()
        let c = try collect(model: model, task: task, items: items, options: o, progress: progress)
        let (file, energy) = try aggregate(c, metadata: metadata(model: model, task: task, options: o), topKFraction: o.topKFraction)
        return ExtractionResult(file: file, stats: c.stats, records: c.records, energy: energy, seconds: Date().timeIntervalSince(t0))
    }

    /// Samples (or reads) the pairs of `items` and reduces them to per-question partials.
    public static func collect(model: LanguageModel, task: ReasoningTask, items: [TaskItem], options o: ExtractionOptions,
                               progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> ExtractionPartials {
        let layers = try o.layers.resolve(layerCount: model.config.layerCount)
        guard !items.isEmpty || o.savedPairs?.isEmpty == false else { throw SteeringError("no training questions") }
        var pairs: [Int: [ContrastPair]]
        var stats: ExtractionStats
        var records: [PairRecord]
        let meter = SiteNormMeter()
        switch (o.savedPairs, o.method, o.pairs) {
        case (let saved?, _, _):
            records = saved
            stats = PairsFile.stats(saved)
            pairs = try PairActivations(forcing: TeacherForcing(model: model, site: o.site, layers: layers), meter: meter)
                .contrasts(all: saved, progress: progress)
        case (nil, .roast, .rollouts):
            let roc = RolloutContrast(model: model, task: task, site: o.site, layers: layers, settings: o.rollout)
            (pairs, stats, records) = try roc.collect(items, firstQuestion: o.firstQuestion, meter: meter, progress: progress)
        default:
            (pairs, stats, records) = try teacherForcedPairs(model: model, task: task, items: items, site: o.site, layers: layers,
                                                            seed: o.rollout.seed, firstQuestion: o.firstQuestion, meter: meter, progress: progress)
        }
        return ExtractionPartials(layers: layers, partials: Dictionary(uniqueKeysWithValues: layers.map { ($0, Aggregation.questionPartials(pairs[$0] ?? [])) }),
                                  stats: stats, norms: meter.totals, records: records)
    }

    /// What the vector file says of how it was made (its layers, statistics, norms and energy are
    /// filled in by `aggregate`).
    public static func metadata(model: LanguageModel, task: ReasoningTask, options o: ExtractionOptions) -> VectorMetadata {
        var meta = VectorMetadata(model: model, site: o.site, layers: [], method: o.method.rawValue, defaultAlpha: o.defaultAlpha)
        meta.css = o.method == .roast ? o.css.rawValue : nil
        meta.grouping = o.method == .roast ? o.grouping : nil
        meta.groupOrder = o.method == .roast && o.grouping && o.groupOrder != .l2ThenCSS ? o.groupOrder.rawValue : nil
        meta.intervention = o.method == .sadi ? "multiplicative" : nil
        meta.task = task.name
        meta.rollouts = o.method == .roast && o.pairs == .rollouts && o.savedPairs == nil ? o.rollout.rollouts : nil
        meta.pairs = o.savedPairs != nil ? "file" : o.method == .roast ? o.pairs.rawValue : "teacher-forced"
        meta.seed = o.rollout.seed
        return meta
    }

    /// The vector of each layer from the partials, as `metadata` describes it (method, CSS,
    /// grouping), with the statistics, norms and the CSS-vs-top-K energy report filled in.
    public static func aggregate(_ c: ExtractionPartials, metadata base: VectorMetadata, topKFraction: Double) throws
        -> (file: SteeringVectorFile, energy: [Int: (css: EnergyReport, topK: EnergyReport)]) {
        guard c.stats.pairs > 0 else {
            throw SteeringError("no contrast pairs: every question was skipped (\(c.stats.questionsSkipped) of \(c.stats.questions))")
        }
        guard let method = ExtractionMethod(rawValue: base.method) else { throw SteeringError("unknown extraction method \(base.method)") }
        let css = CSSMode(rawValue: base.css ?? CSSMode.max.rawValue)
        guard let css else { throw SteeringError("unknown CSS mode \(base.css!)") }
        let grouping = base.grouping ?? false
        let order = GroupOrder(rawValue: base.groupOrder ?? GroupOrder.l2ThenCSS.rawValue)
        guard let order else { throw SteeringError("unknown group order \(base.groupOrder!)") }
        var vectors: [Int: [Float]] = [:]
        var energy: [Int: (css: EnergyReport, topK: EnergyReport)] = [:]
        for l in c.layers {
            let p = c.partials[l] ?? []
            guard let mu = (method == .roast && grouping) ? Aggregation.groupedMeanNormalized(p) : Aggregation.weightedMean(p) else {
                throw SteeringError("layer \(l): the contrasts average to zero")
            }
            let k = max(1, Int(Double(mu.count) * topKFraction))
            let beta: [Float]
            switch method {
            case .roast where grouping && order == .cssPerQuestion:
                guard let b = Aggregation.cssPerQuestion(p, mode: css, topK: k) else { throw SteeringError("layer \(l): the contrasts average to zero") }
                beta = b
            case .roast: beta = Aggregation.css(mu, mode: css, topK: k)
            case .caa: beta = mu
            case .sadi: beta = Aggregation.topKMask(mu, k: k)
            }
            vectors[l] = beta
            energy[l] = EnergyReport.compare(mu: mu, css: method == .sadi ? zip(beta, mu).map { $0 * $1 } : beta, topK: k)
        }
        var meta = base
        meta.layers = c.layers
        meta.stats = c.stats
        meta.siteNorms = Dictionary(uniqueKeysWithValues: c.norms.means.map { ("\($0.key)", $0.value) })
        meta.energy = Dictionary(uniqueKeysWithValues: energy.map { ("layer \($0.key) css", $0.value.css) } +
            energy.map { ("layer \($0.key) top-k", $0.value.topK) })
        return (SteeringVectorFile(metadata: meta, vectors: vectors), energy)
    }

    /// CAA's pairs: the gold answer vs the task's wrong answer, both teacher forced (candidates 0
    /// and 1 of the record).
    public static func teacherForcedPairs(model: LanguageModel, task: ReasoningTask, items: [TaskItem], site: ActivationSite,
                                          layers: [Int], seed: UInt64, firstQuestion: Int = 0, meter: SiteNormMeter? = nil,
                                          progress: (Int, Int, Int) -> Void)
        throws -> ([Int: [ContrastPair]], ExtractionStats, [PairRecord]) {
        var stats = ExtractionStats()
        var pairs: [Int: [ContrastPair]] = [:]
        var records: [PairRecord] = []
        let tok = try model.requireTokenizer()
        let reader = PairActivations(forcing: TeacherForcing(model: model, site: site, layers: layers), meter: meter)
        for (i, item) in items.enumerated() {
            let q = firstQuestion + i
            stats.questions += 1
            var rng = TaskRandom.question(seed: seed ^ 0xCAA, q)
            guard let wrong = task.syntheticWrongResponse(item, rng: &rng) else {
                stats.questionsSkipped += 1
                continue
            }
            let prompt = try RolloutContrast.promptIDs(model, task, item)
            let pos = tok.encode(item.goldResponse, addSpecialTokens: false), neg = tok.encode(wrong, addSpecialTokens: false)
            guard !pos.isEmpty, !neg.isEmpty else { stats.questionsSkipped += 1; continue }
            let record = PairRecord(question: q, questionID: item.id, prompt: prompt,
                                    positive: PairResponse(candidate: 0, source: "gold", correct: true, ids: pos, text: item.goldResponse),
                                    negative: PairResponse(candidate: 1, source: "synthetic", correct: false, ids: neg, text: wrong),
                                    weight: 1, grades: [], fallback: "none")
            for (l, p) in try reader.contrasts([record]) { pairs[l, default: []] += p }
            records.append(record)
            stats.questionsUsed += 1
            stats.pairs += 1
            progress(i + 1, items.count, stats.pairs)
        }
        return (pairs, stats, records)
    }
}

extension TaskRandom {
    /// The random stream of question `q` under `seed`, whichever other questions are drawn.
    static func question(seed: UInt64, _ q: Int) -> TaskRandom {
        var mix = TaskRandom(seed: seed ^ (UInt64(q) &* 0xD1B5_4A32_D192_ED03))
        return TaskRandom(seed: mix.next())
    }
}
