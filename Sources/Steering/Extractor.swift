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

/// Estimates a steering vector per layer from a task's training questions.
public enum Extractor {
    public static func extract(model: LanguageModel, task: ReasoningTask, items: [TaskItem], options o: ExtractionOptions,
                               progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> ExtractionResult {
        let t0 = Date()
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
            (pairs, stats, records) = try roc.collect(items, meter: meter, progress: progress)
        default:
            (pairs, stats, records) = try teacherForcedPairs(model: model, task: task, items: items, site: o.site, layers: layers,
                                                            seed: o.rollout.seed, meter: meter, progress: progress)
        }
        guard stats.pairs > 0 else {
            throw SteeringError("no contrast pairs: every question was skipped (\(stats.questionsSkipped) of \(stats.questions))")
        }
        var vectors: [Int: [Float]] = [:]
        var energy: [Int: (css: EnergyReport, topK: EnergyReport)] = [:]
        for l in layers {
            let p = pairs[l] ?? []
            guard let mu = (o.method == .roast && o.grouping) ? Aggregation.groupedMeanNormalized(p) : Aggregation.weightedMean(p) else {
                throw SteeringError("layer \(l): the contrasts average to zero")
            }
            let k = max(1, Int(Double(mu.count) * o.topKFraction))
            let beta: [Float]
            switch o.method {
            case .roast: beta = Aggregation.css(mu, mode: o.css, topK: k)
            case .caa: beta = mu
            case .sadi: beta = Aggregation.topKMask(mu, k: k)
            }
            vectors[l] = beta
            energy[l] = EnergyReport.compare(mu: mu, css: o.method == .sadi ? zip(beta, mu).map { $0 * $1 } : beta, topK: k)
        }
        var meta = VectorMetadata(model: model, site: o.site, layers: layers, method: o.method.rawValue, defaultAlpha: o.defaultAlpha)
        meta.css = o.method == .roast ? o.css.rawValue : nil
        meta.grouping = o.method == .roast ? o.grouping : nil
        meta.intervention = o.method == .sadi ? "multiplicative" : nil
        meta.task = task.name
        meta.rollouts = o.method == .roast && o.pairs == .rollouts && o.savedPairs == nil ? o.rollout.rollouts : nil
        meta.pairs = o.savedPairs != nil ? "file" : o.method == .roast ? o.pairs.rawValue : "teacher-forced"
        meta.seed = o.rollout.seed
        meta.stats = stats
        meta.siteNorms = Dictionary(uniqueKeysWithValues: meter.means.map { ("\($0.key)", $0.value) })
        meta.energy = Dictionary(uniqueKeysWithValues: energy.map { ("layer \($0.key) css", $0.value.css) } +
            energy.map { ("layer \($0.key) top-k", $0.value.topK) })
        return ExtractionResult(file: SteeringVectorFile(metadata: meta, vectors: vectors), stats: stats, records: records, energy: energy,
                                seconds: Date().timeIntervalSince(t0))
    }

    /// CAA's pairs: the gold answer vs the task's wrong answer, both teacher forced (candidates 0
    /// and 1 of the record).
    public static func teacherForcedPairs(model: LanguageModel, task: ReasoningTask, items: [TaskItem], site: ActivationSite,
                                          layers: [Int], seed: UInt64, meter: SiteNormMeter? = nil, progress: (Int, Int, Int) -> Void)
        throws -> ([Int: [ContrastPair]], ExtractionStats, [PairRecord]) {
        var stats = ExtractionStats()
        var pairs: [Int: [ContrastPair]] = [:]
        var records: [PairRecord] = []
        var rng = TaskRandom(seed: seed ^ 0xCAA)
        let tok = try model.requireTokenizer()
        let reader = PairActivations(forcing: TeacherForcing(model: model, site: site, layers: layers), meter: meter)
        for (q, item) in items.enumerated() {
            stats.questions += 1
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
            progress(q + 1, items.count, stats.pairs)
        }
        return (pairs, stats, records)
    }
}
