import Backend
import Evaluation
import Formats
import Foundation
import Generation
import Model
import Steering
import Tasks

/// `roast demo`: ROAST end to end on the arithmetic task. A vector is extracted from the model's
/// own rollouts on training questions, α is chosen on a dev split of the *training* questions,
/// and baseline vs steered accuracy is measured on held-out test questions with greedy decoding.
public struct Demo {
    public struct Options: Sendable {
        // Sized so the whole demo fits in 10 minutes on 2 cores of lavapipe (2.5 min measured
        // 2026-12-05, control included), with the paper's 8 rollouts per question; with so few
        // test questions the accuracy difference is noise.
        public var extractionQuestions = 4
        public var devQuestions = 8
        public var testQuestions = 16
        public var rollouts = 8
        public var alphas: [Float] = [0.2, 1.0]
        public var layers = try! LayerSelection("first:5")
        public var site: ActivationSite = .act
        public var seed: UInt64 = 42
        /// The positive control's dose-response (`DemoControl.swift`): questions and relative doses.
        public var controlQuestions = 8
        public var controlDoses: [Float] = [0.02, 0.1, 0.3, 1]
        public init() {}
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var device: String
        public var task: String
        public var extraction: ExtractionStats
        public var layers: [Int]
        public var site: String
        public var devAccuracy: [String: Double]
        public var chosenAlpha: Float
        public var baselineAccuracy: Double
        public var steeredAccuracy: Double
        public var testQuestions: Int
        public var energy: [String: EnergyReport]
        public var seconds: [String: Double]
        public var examples: [Example]
        /// The positive control's dose-response, every vector at every dose.
        public var control: [ControlPoint]
        public var controlQuestions: Int
    }

    public struct Example: Codable, Sendable {
        public var question: String
        public var gold: String
        public var baseline: String
        public var baselineCorrect: Bool
        public var steered: String
        public var steeredCorrect: Bool
    }

    public let model: LanguageModel
    public var options: Options
    public var log: (String) -> Void

    public init(model: LanguageModel, options: Options = Options(), log: @escaping (String) -> Void = { print($0) }) {
        self.model = model
        self.options = options
        self.log = log
    }

    public func run(vectorURL: URL, reportURL: URL?) throws -> Report {
        let o = options
        var seconds: [String: Double] = [:]
        func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            defer { seconds[phase] = Date().timeIntervalSince(t0) }
            return try body()
        }
        let task = ArithmeticTask(seed: o.seed, trainCount: o.extractionQuestions + o.devQuestions, testCount: o.testQuestions)
        let train = task.train()
        let extractionItems = Array(train.prefix(o.extractionQuestions)), dev = Array(train.suffix(o.devQuestions))
        let test = task.test()
        log("task: arithmetic — \(extractionItems.count) questions for extraction, \(dev.count) dev (from train), \(test.count) test")

        // 1. Extraction from rollouts.
        var options = ExtractionOptions(layers: o.layers)
        options.site = o.site
        options.rollout.rollouts = o.rollouts
        options.rollout.seed = o.seed
        let bar = ProgressBar("rollouts", total: extractionItems.count)
        let result = try timed("extract") {
            try Extractor.extract(model: model, task: task, items: extractionItems, options: options) { done, _, pairs in
                bar.update(done, "\(done * o.rollouts) rollouts · \(pairs) pairs")
            }
        }
        let s = result.stats
        log("extraction: \(s.questionsUsed) questions used, \(s.questionsSkipped) skipped, \(s.pairs) pairs, \(s.correctRollouts)/\(s.rollouts) rollouts correct, \(s.goldFallbacks) gold fallbacks, \(s.syntheticFallbacks) synthetic negatives")

        // 2. α on the dev split of the training questions.
        let evaluator = Evaluator(model: model, task: task)
        let layers = result.file.metadata.layers
        var devAccuracy: [String: Double] = [:]
        var best: (alpha: Float, acc: Double) = (0, -1)
        try timed("choose α") {
            let base = Evaluator.accuracy(try evaluator.answer(dev))
            devAccuracy["0"] = base
            best = (0, base)
            for a in o.alphas {
                let iv = result.file.intervention(alpha: a)
                let acc = Evaluator.accuracy(try evaluator.answer(dev, intervention: iv))
                devAccuracy[String(format: "%g", a)] = acc
                log(String(format: "dev α = %-5g accuracy %.1f%% (baseline %.1f%%)", a, 100 * acc, 100 * base))
                if acc > best.acc { best = (a, acc) }
            }
        }
        let alpha = best.alpha
        log(alpha == 0 ? "no α beat the unsteered model on dev: the test run uses α = 0 (steering off)" : "chosen α = \(alpha)")
        var file = result.file
        file.metadata.defaultAlpha = alpha
        try file.write(to: vectorURL)

        // 3. Held-out test: baseline vs steered, greedy.
        let testBar = ProgressBar("test", total: (alpha == 0 ? 1 : 2) * test.count)
        let baseline = try timed("test baseline") { try evaluator.answer(test) { d, _ in testBar.update(d) } }
        // α = 0 injects nothing, so greedy answers are the baseline's: not decoded twice.
        let steered = alpha == 0 ? baseline : try timed("test steered") {
            try evaluator.answer(test, intervention: file.intervention(alpha: alpha)) { d, _ in
                testBar.update(test.count + d)
            }
        }
        let examples = zip(zip(test, baseline), steered).prefix(6).map { p, st in
            Example(question: p.0.prompt, gold: p.0.goldValue, baseline: p.1.response, baselineCorrect: p.1.correct,
                    steered: st.response, steeredCorrect: st.correct)
        }
        // 4. The positive control: does steering move anything, even where accuracy stays put?
        let control = try timed("control") { try controlDoseResponse(demoVector: file) }
        let device = (model.backend as? VulkanBackend)?.device.info.name ?? model.backend.name
        let report = Report(model: URL(fileURLWithPath: model.path).lastPathComponent, device: device, task: task.name,
                            extraction: s, layers: layers, site: o.site.rawValue, devAccuracy: devAccuracy, chosenAlpha: alpha,
                            baselineAccuracy: Evaluator.accuracy(baseline), steeredAccuracy: Evaluator.accuracy(steered),
                            testQuestions: test.count, energy: file.metadata.energy ?? [:], seconds: seconds, examples: Array(examples),
                            control: control, controlQuestions: o.controlQuestions)
        if let reportURL {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try OutputFile.write(enc.encode(report), to: reportURL)
        }
        return report
    }
}
