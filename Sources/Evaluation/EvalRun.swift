import Backend
import Formats
import Foundation
import Generation
import Model
import Steering
import Tasks

/// How a method answers: unsteered, few-shot, or steered by a vector it extracts (or is given).
public enum MethodKind: String, Codable, Sendable, CaseIterable {
    case none, fewshot, caa, sadi, roast
    /// A vector file given on the command line.
    case vector
    /// The control: ROAST's vector of the seed with each layer a random direction of the same norm.
    case random
}

/// One row of the results: a method and, for ROAST, the ablation it runs.
public struct MethodSpec: Codable, Sendable, Equatable {
    public var name: String
    public var kind: MethodKind
    public var css: CSSMode = .max
    public var grouping = true
    /// nil: the protocol's (strict: L2 then CSS; orbit: CSS per question, the authors' order).
    public var groupOrder: GroupOrder?
    public var pairs: PairSource = .rollouts
    /// The site, when it differs from the run's.
    public var site: ActivationSite?

    public init(_ kind: MethodKind) {
        self.kind = kind
        name = kind.rawValue
    }

    public var steered: Bool { ![.none, .fewshot].contains(kind) }

    /// The paper's ROAST ablations: no grouping, the CSS variants and a top-K mask, teacher-forced
    /// pairs instead of rollouts, the residual site instead of `act`, and the other order of
    /// grouped normalisation than the protocol's.
    public static func roastAblations(runSite: ActivationSite, evalProtocol: EvalProtocol = .strict) -> [MethodSpec] {
        func variant(_ suffix: String, _ change: (inout MethodSpec) -> Void) -> MethodSpec {
            var m = MethodSpec(.roast)
            m.name = "roast/" + suffix
            change(&m)
            return m
        }
        let other: ActivationSite = runSite == .act ? .residual : .act
        return [
            variant("no-grouping") { $0.grouping = false },
            variant("css-l2") { $0.css = .l2 },
            variant("css-softmax") { $0.css = .softmax },
            variant("top-k-mask") { $0.css = .topk },
            variant("teacher-forced") { $0.pairs = .teacherForced },
            variant("site-\(other.rawValue)") { $0.site = other },
            // The order of grouped normalisation the protocol does not use by default.
            evalProtocol == .strict ? variant("css-per-question") { $0.groupOrder = .cssPerQuestion }
                : variant("l2-then-css") { $0.groupOrder = .l2ThenCSS },
        ]
    }
}

public struct EvalSettings: Codable, Sendable {
    /// strict (this project's) or orbit (the authors' code); `plan(_:layerCount:)` applies it per method.
    public var evalProtocol: EvalProtocol = .strict
    public var methods: [MethodSpec] = [MethodSpec(.none), MethodSpec(.caa), MethodSpec(.roast)]
    public var seeds: [UInt64] = [42, 22, 52]
    /// α values tried on dev; 0 (no steering) is always a candidate, so steering must beat it.
    public var alphas: [Float] = [0.05, 0.1, 0.2, 0.5, 1]
    /// Candidate layer sets (tuned on dev with α).
    public var layerSets: [String] = ["first:5"]
    public var site: ActivationSite = .act
    /// Training questions for extraction, and for the dev split (disjoint, drawn with the seed).
    public var extractQuestions = 16
    public var devQuestions = 32
    public var rollouts = 8
    /// Rollout budget (nil: the answers' budget, `maxTokens` or the task's).
    public var rolloutTokens: Int?
    /// Orbit only: CAA's multipliers, SADI's joint top-K sizes and strengths (h_i ← s·h_i).
    public var caaMultipliers: [Float] = [1, 2, 5, 10]
    public var sadiCounts = [3, 5, 10, 30, 50, 100, 200, 300, 400, 500]
    public var sadiStrengths: [Float] = [10, 20, 30, 50, 70, 90]
    /// Few-shot examples (method `fewshot`).
    public var shots = 3
    /// Test questions (nil: the whole test split).
    public var limit: Int?
    public var batchSize = 16
    /// Generation budget (nil: the task's).
    public var maxTokens: Int?
    /// Steer each layer alone on dev at the chosen α (first seed): the per-layer plot.
    public var perLayerEffect = true
    public var topKFraction = 0.05
    /// Method `vector`: the file, and a fixed α (nil: tuned on dev over `alphas`).
    public var vectorFile: String?
    public var vectorAlpha: Float?
    /// α is relative (`--alpha-relative`): the step ‖α·v‖ is α × the mean ‖h‖ at each layer.
    public var alphaRelative = false
    public init() {}
}

public struct Stat: Codable, Sendable, Equatable {
    public var mean: Double
    /// Sample standard deviation over seeds (0 for one seed).
    public var std: Double
    public var n: Int
    public init(_ values: [Double]) {
        n = values.count
        let m = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
        mean = m
        std = values.count > 1 ? (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot() : 0
    }
}

public struct CurvePoint: Codable, Sendable {
    public var alpha: Float
    public var layers: String
    public var metrics: [String: Double]
}

public struct LayerEffect: Codable, Sendable {
    public var layer: Int
    public var alpha: Float
    public var metrics: [String: Double]
}

public struct LayerEnergy: Codable, Sendable {
    public var layer: Int
    public var css: EnergyReport
    public var topK: EnergyReport
}

/// One method at one seed.
public struct RunResult: Codable, Sendable {
    public var method: String
    public var seed: UInt64
    public var chosenAlpha: Float?
    public var chosenLayers: String?
    /// Ids of the worked examples the `fewshot` method put before each question.
    public var shots: [String]?
    public var vectorFile: String?
    public var extraction: ExtractionStats?
    public var energy: [LayerEnergy]?
    /// Per layer of the chosen set: mean ‖h‖ at the site (measured at extraction) and ‖v‖ of the
    /// vector as applied at α = 1, so ‖α·v‖ / ‖h‖ = α·vectorNorm / activationNorm; nil when the file has no norms.
    public var doses: [LayerDose]?
    /// Dev metrics for every (layer set, α) tried, α = 0 included.
    public var dev: [CurvePoint]
    public var perLayer: [LayerEffect]?
    public var test: [String: Double]
    public var items: [ItemRecord]
    public var seconds: Double
}

public struct MethodSummary: Codable, Sendable {
    public var method: String
    public var metrics: [String: Stat]
    public var alphas: [Float]
}

public struct EvalResults: Codable, Sendable {
    public var tool = "roast eval"
    public var date: String
    public var model: String
    public var device: String
    public var task: String
    public var metrics: [String]
    public var testItems: Int
    public var settings: EvalSettings
    public var runs: [RunResult]
    public var summary: [MethodSummary]
    public var seconds: Double
}

/// The paper's protocol: per seed, vectors from training questions, α (and the layer set) tuned
/// on a dev split of the training questions, then the held-out test split, once per method.
public final class EvalRunner {
    public let benchmark: Benchmark
    public let context: EvalContext
    public let settings: EvalSettings
    public let outDir: URL
    /// (phase, done, total) as items finish; phases are named "seed 42 · roast · dev α 0.2".
    public var progress: (String, Int, Int) -> Void = { _, _, _ in }
    public var log: (String) -> Void = { _ in }

    public init(benchmark: Benchmark, context: EvalContext, settings: EvalSettings, outDir: URL) throws {
        self.benchmark = benchmark
        self.context = context
        self.settings = settings
        self.outDir = outDir
        let s = settings
        guard !s.seeds.isEmpty, !s.methods.isEmpty else { throw EvaluationError("no seeds or no methods to run") }
        guard s.extractQuestions > 0, s.devQuestions > 0 else { throw EvaluationError("--extract-questions and --dev-questions must be positive") }
        guard s.alphas.allSatisfy(\.isFinite), !s.alphas.isEmpty || s.vectorAlpha != nil else { throw EvaluationError("no α to try") }
        if s.methods.contains(where: { $0.kind == .fewshot }), !benchmark.supportsFewShot {
            throw EvaluationError("\(benchmark.name) is scored after the standard 6-shot QA primer already; method fewshot does not apply")
        }
        if s.methods.contains(where: { $0.kind == .vector }), s.vectorFile == nil { throw EvaluationError("method vector needs --steer FILE") }
        for text in s.layerSets { _ = try LayerSelection(text).resolve(layerCount: context.model.config.layerCount) }
        if s.evalProtocol == .orbit {
            guard !s.caaMultipliers.isEmpty, !s.sadiStrengths.isEmpty, !s.sadiCounts.isEmpty, s.sadiCounts.allSatisfy({ $0 > 0 }),
                  (s.caaMultipliers + s.sadiStrengths).allSatisfy(\.isFinite) else {
                throw EvaluationError("orbit needs CAA multipliers, SADI strengths (finite) and SADI sizes (positive)")
            }
        }
    }

    /// Where a dev candidate steers: its layers and per-layer vectors (or masks).
    struct Placement {
        var text: String
        var layers: [Int]
        var vectors: [Int: [Float]]
        var multiplicative: Bool
    }

    struct Splits {
        var extraction: [TaskItem]
        var dev: [TaskItem]
        var shots: [TaskItem]
        var test: [TaskItem]
    }

    /// Extraction, dev and few-shot items: disjoint slices of the seed's shuffle of the training questions.
    func splits(seed: UInt64) throws -> Splits {
        let s = settings
        let pool = Datasets.shuffled(try benchmark.trainItems(seed: seed), seed: seed ^ 0x5D11_7000)
        let needed = s.extractQuestions + s.devQuestions
        guard pool.count > needed else {
            throw EvaluationError("\(benchmark.name) has \(pool.count) training questions; extraction (\(s.extractQuestions)) + dev (\(s.devQuestions)) need more than \(needed)")
        }
        var test = try benchmark.testItems(seed: seed)
        if let limit = s.limit { test = Array(test.prefix(limit)) }
        guard !test.isEmpty else { throw EvaluationError("\(benchmark.name): no test questions") }
        return Splits(extraction: Array(pool.prefix(s.extractQuestions)), dev: Array(pool[s.extractQuestions..<needed]),
                      shots: Array(pool[needed...].prefix(s.shots)), test: test)
    }

    func evaluate(_ items: [TaskItem], seed: UInt64, _ condition: Condition, phase: String) throws -> [ItemRecord] {
        try benchmark.evaluate(items, seed: seed, condition: condition, context: context) { progress(phase, $0, $1) }
    }

    func metrics(_ records: [ItemRecord]) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: benchmark.metrics.map { m in
            (m, records.isEmpty ? 0 : records.map { $0.scores[m] ?? 0 }.reduce(0, +) / Double(records.count))
        })
    }

    public func run() throws -> EvalResults {
        let t0 = Date()
        var runs: [RunResult] = []
        for (si, seed) in settings.seeds.enumerated() {
            let split = try splits(seed: seed)
            for spec in settings.methods {
                runs.append(try run(spec, seed: seed, split: split, firstSeed: si == 0))
                let r = runs.last!
                log(String(format: "seed %llu · %@: test %@", seed, r.method,
                           benchmark.metrics.map { String(format: "%@ %.1f%%", $0, 100 * (r.test[$0] ?? 0)) }.joined(separator: ", "))
                    + (r.chosenAlpha.map { String(format: " (α %g, layers %@)", $0, r.chosenLayers ?? "") } ?? ""))
            }
        }
        let m = context.model
        let summary = settings.methods.map { spec in
            let rs = runs.filter { $0.method == spec.name }
            return MethodSummary(method: spec.name,
                                 metrics: Dictionary(uniqueKeysWithValues: benchmark.metrics.map { k in (k, Stat(rs.map { $0.test[k] ?? 0 })) }),
                                 alphas: rs.compactMap(\.chosenAlpha))
        }
        return EvalResults(date: ISO8601DateFormatter().string(from: Date()), model: URL(fileURLWithPath: m.path).lastPathComponent,
                           device: (m.backend as? VulkanBackend)?.device.info.name ?? m.backend.name, task: benchmark.name,
                           metrics: benchmark.metrics, testItems: runs.first?.items.count ?? 0, settings: settings, runs: runs,
                           summary: summary, seconds: Date().timeIntervalSince(t0))
    }

    func run(_ spec: MethodSpec, seed: UInt64, split: Splits, firstSeed: Bool) throws -> RunResult {
        let t0 = Date()
        let tag = "seed \(seed) · \(spec.name)"
        let headline = benchmark.metrics[0]
        switch spec.kind {
        case .none, .fewshot:
            let condition = Condition(shots: spec.kind == .fewshot ? split.shots : [])
            let dev = metrics(try evaluate(split.dev, seed: seed, condition, phase: "\(tag) · dev"))
            let items = try evaluate(split.test, seed: seed, condition, phase: "\(tag) · test")
            return RunResult(method: spec.name, seed: seed, shots: condition.shots.isEmpty ? nil : condition.shots.map(\.id),
                             dev: [CurvePoint(alpha: 0, layers: "", metrics: dev)],
                             test: metrics(items), items: items, seconds: Date().timeIntervalSince(t0))
        case .caa, .sadi, .roast, .vector, .random:
            let L = context.model.config.layerCount
            let plan = settings.plan(spec, layerCount: L)
            let (file, path) = try vector(spec, plan: plan, seed: seed, split: split, phase: tag)
            let available = Set(file.vectors.keys)
            let sets: [(text: String, layers: [Int])] = spec.kind == .vector
                ? [(file.metadata.layers.map(String.init).joined(separator: ","), file.metadata.layers)]
                : try plan.layerSets.map { ($0, try LayerSelection($0).resolve(layerCount: L)) }
            // With a relative α each layer's vector is rescaled to the mean activation norm there.
            let unit = settings.alphaRelative ? try file.intervention(relativeAlpha: 1, scope: plan.scope) : file.intervention(alpha: 1, scope: plan.scope)
            // Where the vector goes: a layer set, or under a joint top-K one mask per K over the set.
            var placements: [Placement] = []
            for set in sets {
                let inSet = { (v: [Int: [Float]]) in v.filter { set.layers.contains($0.key) && available.contains($0.key) } }
                if let counts = plan.jointTopK {
                    // Ranked on the file's raw μ: a relative rescaling would reorder the layers.
                    for k in counts {
                        placements.append(Placement(text: "\(set.text) top-\(k)", layers: set.layers,
                                                    vectors: Aggregation.jointTopKMask(inSet(file.vectors), k: k), multiplicative: true))
                    }
                } else {
                    placements.append(Placement(text: set.text, layers: set.layers, vectors: inSet(unit.vectors), multiplicative: unit.multiplicative))
                }
            }
            func condition(_ p: Placement, _ alpha: Float) -> Condition {
                Condition(intervention: Intervention(site: unit.site, vectors: p.vectors, alpha: alpha, scope: plan.scope, multiplicative: p.multiplicative))
            }
            let alphas = plan.candidates(fixed: spec.kind == .vector ? settings.vectorAlpha : nil)
            var curve: [CurvePoint] = []
            var scores: [DevScore] = []
            var tried: [(Placement, Float)] = []
            // The unsteered dev score is on the curve even where α = 0 is not a candidate (the
            // authors evaluate it, then never compare); it is the `none` method's cache entry.
            if !alphas.contains(0) {
                let m = metrics(try evaluate(split.dev, seed: seed, Condition(), phase: "\(tag) · dev α 0"))
                curve.append(CurvePoint(alpha: 0, layers: "", metrics: m))
            }
            for p in placements {
                for a in alphas {
                    let m = metrics(try evaluate(split.dev, seed: seed, condition(p, a), phase: "\(tag) · dev \(p.text) α \(String(format: "%g", a))"))
                    curve.append(CurvePoint(alpha: a, layers: p.text, metrics: m))
                    scores.append(DevScore(index: tried.count, alpha: a, score: m[headline]!))
                    tried.append((p, a))
                }
            }
            let (chosenPlacement, chosenAlpha) = tried[plan.choose(scores)!.index]
            // A joint mask leaves most layers untouched: only the layers it selects take a step.
            let doses = file.doses(of: chosenPlacement.vectors.filter { !chosenPlacement.multiplicative || $0.value.contains { $0 != 0 } },
                                   multiplicative: chosenPlacement.multiplicative)
            if let doses {
                log("\(tag): dose at α \(String(format: "%g", chosenAlpha)): " + doses.map {
                    String(format: "layer %d ‖h‖ %.3g ‖α·v‖ %@%.3g (%@%.3g)", $0.layer, $0.activationNorm, $0.multiplicative ? "≤ " : "",
                           $0.step(alpha: chosenAlpha), $0.multiplicative ? "≤ " : "", $0.ratio(alpha: chosenAlpha))
                }.joined(separator: "; "))
            }
            let items = try evaluate(split.test, seed: seed, condition(chosenPlacement, chosenAlpha), phase: "\(tag) · test α \(String(format: "%g", chosenAlpha))")
            var perLayer: [LayerEffect]?
            // Not for joint masks: their layers were chosen together.
            if settings.perLayerEffect, firstSeed, spec.kind != .vector, spec.name == spec.kind.rawValue, plan.jointTopK == nil {
                // At the chosen α, or the best non-zero α on dev when steering lost to α = 0.
                let a = chosenAlpha != 0 ? chosenAlpha
                    : curve.filter { $0.alpha != 0 }.max { $0.metrics[headline]! < $1.metrics[headline]! }?.alpha ?? plan.alphas[0]
                perLayer = try chosenPlacement.layers.filter { chosenPlacement.vectors[$0] != nil }.map { l in
                    let one = Placement(text: "\(l)", layers: [l], vectors: chosenPlacement.vectors.filter { $0.key == l }, multiplicative: chosenPlacement.multiplicative)
                    return LayerEffect(layer: l, alpha: a, metrics: metrics(try evaluate(split.dev, seed: seed, condition(one, a),
                                                                                         phase: "\(tag) · dev layer \(l) α \(String(format: "%g", a))")))
                }
            }
            let energy = file.metadata.layers.compactMap { l -> LayerEnergy? in
                guard let c = file.metadata.energy?["layer \(l) css"], let k = file.metadata.energy?["layer \(l) top-k"] else { return nil }
                return LayerEnergy(layer: l, css: c, topK: k)
            }
            return RunResult(method: spec.name, seed: seed, chosenAlpha: chosenAlpha, chosenLayers: chosenPlacement.text,
                             vectorFile: path, extraction: file.metadata.stats, energy: energy.isEmpty ? nil : energy,
                             doses: doses,
                             dev: curve, perLayer: perLayer, test: metrics(items), items: items, seconds: Date().timeIntervalSince(t0))
        }
    }

    /// The method's vector for this seed: read back from `vectors/` when the same extraction ran
    /// before (same model, settings and questions), else extracted and written there atomically,
    /// with its contrast pairs beside it (`….pairs.jsonl`, readable by `roast extract --pairs-file`).
    func vector(_ spec: MethodSpec, plan: MethodPlan, seed: UInt64, split: Splits, phase: String) throws -> (SteeringVectorFile, String) {
        let model = context.model
        if spec.kind == .random {
            let roast = MethodSpec(.roast), L = model.config.layerCount
            let (file, path) = try vector(roast, plan: settings.plan(roast, layerCount: L), seed: seed, split: split, phase: phase)
            return (file.randomDirections(seed: seed), "random directions, norms of " + path)
        }
        if spec.kind == .vector {
            let path = settings.vectorFile!
            let file = try SteeringVectorFile.read(URL(fileURLWithPath: path))
            try file.check(against: model)
            return (file, path)
        }
        let L = model.config.layerCount
        let union = Set(try plan.layerSets.flatMap { try LayerSelection($0).resolve(layerCount: L) }).sorted()
        var o = ExtractionOptions(layers: try LayerSelection(union.map(String.init).joined(separator: ",")))
        o.method = plan.extraction
        o.site = plan.site
        o.css = spec.css
        o.grouping = spec.grouping
        o.groupOrder = plan.groupOrder
        o.pairs = spec.pairs
        o.topKFraction = settings.topKFraction
        o.rollout.rollouts = settings.rollouts
        o.rollout.seed = seed
        o.rollout.sequences = settings.batchSize
        o.rollout.maxTokens = settings.rolloutTokens ?? settings.maxTokens
        let key = Digest.hex([model.weightsFingerprint, benchmark.name, o.method.rawValue, o.site.rawValue, o.css.rawValue, "\(o.grouping)",
                              o.pairs.rawValue, "\(union)", "\(o.rollout.rollouts)", "\(seed)", "\(o.topKFraction)", "\(o.rollout.maxTokens ?? -1)",
                              split.extraction.map(\.id).joined(separator: ",")].joined(separator: "|")
                              // Only a non-default order enters the key, so earlier runs' vectors stay valid.
                              + (o.groupOrder == .l2ThenCSS ? "" : "|" + o.groupOrder.rawValue))
        let name = spec.name.replacingOccurrences(of: "/", with: "-")
        let url = outDir.appendingPathComponent("vectors/\(name)-seed\(seed)-\(key.prefix(12)).safetensors")
        let relative = "vectors/" + url.lastPathComponent
        if FileManager.default.fileExists(atPath: url.path), let file = try? SteeringVectorFile.read(url) {
            log("\(phase): vector from \(relative)")
            return (file, relative)
        }
        try OutputFile.makeFolder(url.deletingLastPathComponent())
        let task = benchmark.extractionTask(seed: seed)
        let result = try Extractor.extract(model: model, task: task, items: split.extraction, options: o) { done, total, _ in
            progress("\(phase) · extract", done, total)
        }
        let s = result.stats
        log("\(phase): \(s.pairs) pairs from \(s.questionsUsed)/\(s.questions) questions, "
            + (s.rollouts == 0 ? "teacher forced (gold vs synthetic wrong answers)"
                : "\(s.correctRollouts)/\(s.rollouts) rollouts correct, \(s.goldFallbacks) gold fallbacks, \(s.syntheticFallbacks) synthetic negatives"))
        try PairsFile.write(result.records, to: url.deletingPathExtension().appendingPathExtension("pairs.jsonl"))
        try result.file.write(to: url)
        return (result.file, relative)
    }
}
