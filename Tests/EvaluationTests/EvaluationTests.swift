import Backend
@testable import Evaluation
import Foundation
import Generation
import Model
import Steering
@testable import Tasks
import VulkanCompute
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
let dataDir = fixtures.appendingPathComponent("data")

extension XCTestCase {
    /// A fresh directory, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("roast-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u
    }
}

func write(_ text: String, _ name: String, in dir: URL) throws -> URL {
    let u = dir.appendingPathComponent(name)
    try Data(text.utf8).write(to: u)
    return u
}

/// Readers and graders against the files' own content and hand-worked cases.
final class TaskReaderTests: XCTestCase {
    func testGSM8KReaderAndGrader() throws {
        let t = try GSM8KTask(test: dataDir.appendingPathComponent("gsm8k-test.jsonl"), train: dataDir.appendingPathComponent("gsm8k-train.jsonl"))
        XCTAssertEqual(t.testProblems.count, 12)
        let first = t.test()[0]
        XCTAssertEqual(first.goldValue, "18")
        XCTAssertTrue(first.prompt.hasPrefix("Janet’s ducks lay 16 eggs per day."))
        XCTAssertTrue(first.prompt.hasSuffix("put your final answer within \\boxed{}."))
        // Calculator annotations are gone, the final line is boxed.
        XCTAssertFalse(first.goldResponse.contains("<<"))
        XCTAssertTrue(first.goldResponse.hasSuffix("The answer is \\boxed{18}."))
        XCTAssertTrue(t.grade(first.goldResponse, first))
        // Boxed wins over later numbers; else the last number; commas, $ and .0 tolerated.
        XCTAssertTrue(t.grade("so \\boxed{18} (checked with 3 eggs)", first))
        XCTAssertTrue(t.grade("She makes $18.0 a day", first))
        XCTAssertTrue(NumberGrader.matches("The total is $1,234.", "1234"))
        XCTAssertFalse(t.grade("", first))
        XCTAssertFalse(t.grade("no idea", first))
        XCTAssertFalse(t.grade("\\boxed{19}", first))
        var rng = TaskRandom(seed: 3)
        let wrong = try XCTUnwrap(t.syntheticWrongResponse(first, rng: &rng))
        XCTAssertFalse(t.grade(wrong, first), wrong)
    }

    func testGSM8KBadLinesAreNamed() throws {
        let dir = try temporaryDirectory()
        let good = "{\"question\": \"1+1?\", \"answer\": \"1+1=2\\n#### 2\"}"
        let cases: [(String, String)] = [
            (good + "\n{\"question\": \"x\"", ":2: not a JSON line"),
            (good + "\n\n" + #"{"question": "q", "answer": "no marker"}"#, ":3: the answer does not end in '#### N'"),
            ("{\"answer\": \"#### 2\"}", ":1: no \"question\" string"),
            ("{\"question\": \"q\", \"answer\": \"#### two\"}", ":1: the final answer 'two' is not a number"),
            ("", "holds no lines"),
        ]
        for (i, (text, message)) in cases.enumerated() {
            let u = try write(text, "bad\(i).jsonl", in: dir)
            XCTAssertThrowsError(try GSM8KTask.read(u)) { e in
                XCTAssertTrue("\(e)".contains(u.path + message) || "\(e)".contains(message), "\(e)")
            }
        }
        XCTAssertThrowsError(try GSM8KTask.read(dir.appendingPathComponent("missing.jsonl"))) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }

    func testTruthfulQAOptionsAndLetters() throws {
        let qs = try TruthfulQAQuestion.read(dataDir.appendingPathComponent("truthfulqa-mc.json"))
        XCTAssertEqual(qs.count, 4)
        let t42 = TruthfulQATask(questions: qs, seed: 42), t22 = TruthfulQATask(questions: qs, seed: 22)
        for q in qs {
            let (opts, answer) = t42.options(q)
            XCTAssertEqual(opts[answer], q.mc1.first(where: \.isTrue)!.text)
            // First three false answers of mc1, topped up from mc2 when mc1 has fewer.
            let falseMC1 = q.mc1.filter { !$0.isTrue }.map(\.text)
            let expected = Array((falseMC1 + q.mc2.filter { !$0.isTrue && !falseMC1.contains($0.text) }.map(\.text)).prefix(3))
            XCTAssertEqual(Set(opts).subtracting([opts[answer]]), Set(expected))
            XCTAssertEqual(opts.count, 1 + expected.count, "four options when the file has three false answers, fewer only when it does not")
            XCTAssertEqual(t42.options(q).options, opts, "the shuffle depends on the seed only")
        }
        XCTAssertNotEqual(qs.map { t42.options($0).options }, qs.map { t22.options($0).options }, "another seed shuffles differently")
        let item = t42.train()[0]
        XCTAssertTrue(item.prompt.contains("\nA. ") && item.prompt.contains("\nD. "))
        XCTAssertTrue(t42.grade(item.goldValue, item))
        XCTAssertTrue(t42.grade("(\(item.goldValue)) because…", item))
        XCTAssertEqual(TruthfulQATask.firstLetter("Answer: C. Nauru"), "C")
        XCTAssertEqual(TruthfulQATask.firstLetter("B"), "B")
        XCTAssertNil(TruthfulQATask.firstLetter("All Dogs Bark"))
        XCTAssertFalse(t42.grade("", item))
        var rng = TaskRandom(seed: 1)
        let wrong = try XCTUnwrap(t42.syntheticWrongResponse(item, rng: &rng))
        XCTAssertFalse(t42.grade(wrong, item))
        // 100 training questions, the rest test: with 4 questions all are training.
        XCTAssertEqual(t42.train().count, 4)
        XCTAssertEqual(t42.test().count, 0)
    }

    func testTruthfulQABadFilesAreNamed() throws {
        let dir = try temporaryDirectory()
        let cases: [(String, String)] = [
            ("[\n  {\"question\": \"q\",\n  \"mc1_targets\" {}}]", ":3:"),
            ("{}", "expected a JSON array"),
            (#"[{"question": "q", "mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1}}]"#, "question 1: mc2_targets needs at least one true and one false"),
            (#"[{"question": "q", "mc1_targets": {"a": 1, "b": 1, "c": 0}, "mc2_targets": {"a": 1, "b": 0}}]"#, "question 1: mc1_targets must have exactly one true"),
            (#"[{"question": "q", "mc1_targets": {"a": 2, "b": 0}, "mc2_targets": {"a": 1, "b": 0}}]"#, "is not 0 or 1"),
            (#"[{"mc1_targets": {}}]"#, "question 1: no \"question\""),
        ]
        for (i, (text, message)) in cases.enumerated() {
            let u = try write(text, "bad\(i).json", in: dir)
            XCTAssertThrowsError(try TruthfulQAQuestion.read(u)) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
    }

    func testMC1AndMC2() {
        let c = [TruthfulQAQuestion.Choice(text: "t1", isTrue: true), .init(text: "t2", isTrue: true), .init(text: "f", isTrue: false)]
        // p ∝ (e^-1, e^-2, e^-1.5): MC2 = (e^-1 + e^-2) / Σ.
        let ll = [-1.0, -2.0, -1.5]
        XCTAssertEqual(TruthfulQAMC.mc2(logLikelihoods: ll, choices: c), (exp(-1) + exp(-2)) / (exp(-1) + exp(-2) + exp(-1.5)), accuracy: 1e-12)
        XCTAssertEqual(TruthfulQAMC.mc1(logLikelihoods: ll, choices: c), 1)
        XCTAssertEqual(TruthfulQAMC.mc1(logLikelihoods: [-2, -1, -1.5], choices: c), 0)
        XCTAssertEqual(TruthfulQAMC.mc1(logLikelihoods: [-1, -3, -1], choices: c), 0, "a tie is not a win")
    }

    func testStats() {
        let s = Stat([0.2, 0.4, 0.6])
        XCTAssertEqual(s.mean, 0.4, accuracy: 1e-12)
        XCTAssertEqual(s.std, 0.2, accuracy: 1e-12)
        XCTAssertEqual(Stat([0.5]).std, 0)
    }
}

/// The resumable cache: what survives an interruption, and what tells two conditions apart.
final class AnswerCacheTests: XCTestCase {
    func testConditionFingerprints() {
        let v: [Int: [Float]] = [1: [0.5, -1], 3: [2, 0]]
        let plain = Condition().fingerprint
        XCTAssertEqual(Condition(intervention: Intervention(site: .act, vectors: v, alpha: 0)).fingerprint, plain, "α = 0 is no steering")
        let a = Condition(intervention: Intervention(site: .act, vectors: v, alpha: 0.2)).fingerprint
        XCTAssertNotEqual(a, plain)
        XCTAssertNotEqual(a, Condition(intervention: Intervention(site: .act, vectors: v, alpha: 0.5)).fingerprint)
        XCTAssertNotEqual(a, Condition(intervention: Intervention(site: .residual, vectors: v, alpha: 0.2)).fingerprint)
        XCTAssertNotEqual(a, Condition(intervention: Intervention(site: .act, vectors: [1: [0.5, -1.0001], 3: [2, 0]], alpha: 0.2)).fingerprint)
        XCTAssertNotEqual(a, Condition(intervention: Intervention(site: .act, vectors: v, alpha: 0.2, multiplicative: true)).fingerprint)
        let shot = TaskItem(id: "s1", prompt: "p", goldResponse: "g", goldValue: "1")
        XCTAssertNotEqual(Condition(shots: [shot]).fingerprint, plain)
    }

    func testTornLineIsDroppedAndTheCacheResumes() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("cache.jsonl")
        do {
            let c = try AnswerCache(url: url)
            try c.put([CachedOutput(key: "a", response: "one"), CachedOutput(key: "b", logLikelihoods: [-1.5, -2])])
        }
        // An interruption in the middle of writing the third line.
        let h = try FileHandle(forWritingTo: url)
        try h.seekToEnd()
        try h.write(contentsOf: Data(#"{"key":"c","resp"#.utf8))
        try h.close()
        let c = try AnswerCache(url: url)
        XCTAssertEqual(c.loaded, 2)
        XCTAssertEqual(c.dropped, 1)
        XCTAssertEqual(c["a"]?.response, "one")
        XCTAssertEqual(c["b"]?.logLikelihoods, [-1.5, -2])
        XCTAssertNil(c["c"])
        try c.put([CachedOutput(key: "c", response: "three")])
        let again = try AnswerCache(url: url)
        XCTAssertEqual(again.loaded, 3)
        XCTAssertEqual(again.dropped, 0)
        XCTAssertEqual(again["c"]?.response, "three")
    }
}

/// Log-likelihood scoring against full forward passes, on both backends.
final class ScoringTests: XCTestCase {
    func stories(_ b: Backend) throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: b)
    }

    /// Σ log softmax of the full sequence's logits at the continuation tokens.
    func reference(_ m: LanguageModel, _ prefix: [Int], _ context: [Int], _ cont: [Int]) throws -> Double {
        let ids = prefix + context + cont
        let logits = try m.logits(ids: ids)
        var total = 0.0
        for j in cont.indices {
            let row = logits[prefix.count + context.count + j - 1]
            let top = Double(row.max()!)
            let z = row.reduce(0.0) { $0 + exp(Double($1) - top) }
            total += Double(row[cont[j]]) - top - log(z)
        }
        return total
    }

    func testScoresMatchFullForwardPasses() throws {
        let backends: [Backend] = [CPUBackend(), try VulkanBackend(device: VulkanDevice(validation: true))]
        let prefix = [1, 403, 407, 261, 378, 432], context = [317, 269, 368]
        let conts = [[403], [261, 378, 432, 300], [269, 368, 1, 403, 407], [500, 12]]
        for b in backends {
            let m = try stories(b)
            let scorer = ContinuationScorer(model: m)
            let got = try scorer.score(prefix: prefix, context: context, continuations: conts)
            for (g, c) in zip(got, conts) {
                XCTAssertEqual(g, try reference(m, prefix, context, c), accuracy: 2e-3, "\(b.name) continuation \(c)")
            }
            // The primer stays prefilled: a second context after the same prefix, and no prefix at all.
            let other = try scorer.score(prefix: prefix, context: [300, 301], continuations: [[302, 303]])
            XCTAssertEqual(other[0], try reference(m, prefix, [300, 301], [302, 303]), accuracy: 2e-3)
            let bare = try scorer.score(prefix: [], context: [1, 300], continuations: [[302]])
            XCTAssertEqual(bare[0], try reference(m, [], [1, 300], [302]), accuracy: 2e-3)
            XCTAssertThrowsError(try scorer.score(prefix: prefix, context: [], continuations: [[1]]))
            XCTAssertThrowsError(try scorer.score(prefix: prefix, context: context, continuations: [[]]))
        }
    }

    /// Steering reaches the scored tokens, and α = 0 leaves the scores as they were.
    func testSteeredScoring() throws {
        let m = try stories(try VulkanBackend(device: VulkanDevice(validation: true)))
        var rng = SplitMix64(seed: 9)
        let iv = Intervention(site: .residual, vectors: [1: rng.floats(m.config.hiddenSize, scale: 1)], alpha: 3)
        let inj = try SteeringInjector(model: m, intervention: iv)
        let scorer = ContinuationScorer(model: m)
        let args = (prefix: [1, 403, 407], context: [261, 378], conts: [[432, 300], [317]])
        let plain = try scorer.score(prefix: args.prefix, context: args.context, continuations: args.conts)
        let steered = try scorer.score(prefix: args.prefix, context: args.context, continuations: args.conts,
                                       steering: { try inj.scoringSteering($0, promptLength: $1) })
        XCTAssertGreaterThan(abs(plain[0] - steered[0]), 1e-3, "steering changed nothing")
        let again = try scorer.score(prefix: args.prefix, context: args.context, continuations: args.conts)
        XCTAssertEqual(again, plain, "the prefix kept between calls must not carry steering")
    }
}

/// The protocol end to end on the 260K-parameter stories model: every method and seed runs, the
/// files appear, and a second run is answered from the cache alone.
final class ProtocolTests: XCTestCase {
    func model() throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path,
                          backend: VulkanBackend(device: VulkanDevice(validation: true)))
    }

    func lines(_ url: URL) throws -> Int { try String(contentsOf: url, encoding: .utf8).split(separator: "\n").count }

    func testArithmeticProtocolWritesReportsAndResumes() throws {
        let m = try model()
        let dir = try temporaryDirectory()
        var s = EvalSettings()
        s.methods = [MethodSpec(.none), MethodSpec(.fewshot), MethodSpec(.caa), MethodSpec(.roast)] + MethodSpec.roastAblations(runSite: .act).prefix(2)
        s.seeds = [42, 22]
        s.alphas = [0.5]
        s.layerSets = ["0-1", "2"]
        s.extractQuestions = 2
        s.devQuestions = 2
        s.rollouts = 2
        s.shots = 1
        s.limit = 3
        s.maxTokens = 4
        let bench = GenerationBenchmark(name: "arithmetic", maxTokens: 4) { _ in ArithmeticTask(seed: 7, trainCount: 12, testCount: 5) }
        func run() throws -> (EvalResults, AnswerCache) {
            let cache = try AnswerCache(url: dir.appendingPathComponent("cache.jsonl"))
            let r = try EvalRunner(benchmark: bench, context: EvalContext(model: m, cache: cache, batchSize: 4), settings: s, outDir: dir).run()
            try EvalReport.write(r, to: dir)
            return (r, cache)
        }
        let (first, _) = try run()
        XCTAssertEqual(first.runs.count, 12)
        for r in first.runs {
            XCTAssertEqual(r.items.count, 3, r.method)
            XCTAssertNotNil(r.test["accuracy"])
            if r.method == "none" || r.method == "fewshot" { XCTAssertNil(r.chosenAlpha) } else {
                // Two layer sets × (α 0, α 0.5) on dev, the vector kept in vectors/.
                XCTAssertEqual(r.dev.count, 4, r.method)
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(r.vectorFile!).path))
                XCTAssertEqual(r.energy?.map(\.layer), [0, 1, 2])
                // The pairs beside the vector, and the dose at the chosen layers.
                let pairs = dir.appendingPathComponent(r.vectorFile!.replacingOccurrences(of: ".safetensors", with: ".pairs.jsonl"))
                XCTAssertEqual(try PairsFile.read(pairs, vocabSize: m.config.vocabSize).count, r.extraction?.pairs, r.method)
                let layers = try LayerSelection(r.chosenLayers!).resolve(layerCount: 5)
                XCTAssertEqual(r.doses?.map(\.layer), layers, r.method)
            }
        }
        XCTAssertEqual(first.runs.first { $0.method == "roast" && $0.seed == 42 }?.perLayer?.count ?? 0,
                       try LayerSelection(first.runs.first { $0.method == "roast" && $0.seed == 42 }!.chosenLayers!).resolve(layerCount: 5).count)
        XCTAssertNil(first.runs.first { $0.method == "roast" && $0.seed == 22 }?.perLayer, "per-layer effect on the first seed only")
        XCTAssertEqual(first.summary.map(\.method), ["none", "fewshot", "caa", "roast", "roast/no-grouping", "roast/css-l2"])
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 4, "bars, α curves, per-layer effect, energy")
        XCTAssertTrue(html.contains("<th>mean ‖h‖</th>"), "the dose table")
        // A method keeps one colour in every plot: its bar, α curve, per-layer line and energy line.
        func colours(of method: String) -> [String] {
            html.components(separatedBy: "fill=\"").dropFirst().compactMap { mark in
                let parts = mark.components(separatedBy: "\"><title>")
                return parts.count > 1 && (parts[1].hasPrefix(method + ":") || parts[1].hasPrefix(method + " ")) ? parts[0] : nil
            }
        }
        let caa = colours(of: "caa"), roast = colours(of: "roast")
        XCTAssertGreaterThan(caa.count, 2, "bar, α-curve and per-layer marks")
        XCTAssertGreaterThan(roast.count, 3, "bar, α-curve, per-layer and energy marks")
        XCTAssertEqual(Set(caa).count, 1, "\(Set(caa))")
        XCTAssertEqual(Set(roast).count, 1, "\(Set(roast))")
        XCTAssertNotEqual(caa.first, roast.first)
        let md = try String(contentsOf: dir.appendingPathComponent("results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| roast/css-l2 |"))
        let decoded = try JSONDecoder().decode(EvalResults.self, from: Data(contentsOf: dir.appendingPathComponent("results.json")))
        XCTAssertEqual(decoded.runs.count, 12)

        // Resume: everything comes from the cache, nothing is generated or extracted again.
        let before = try lines(dir.appendingPathComponent("cache.jsonl"))
        let (second, cache) = try run()
        XCTAssertEqual(cache.loaded, before)
        XCTAssertEqual(try lines(dir.appendingPathComponent("cache.jsonl")), before)
        XCTAssertEqual(second.runs.map(\.test), first.runs.map(\.test))
        XCTAssertEqual(second.runs.map { $0.items.map(\.response) }, first.runs.map { $0.items.map(\.response) })
    }

    func testTruthfulQAMCProtocol() throws {
        let m = try model()
        let dir = try temporaryDirectory()
        let qs = try TruthfulQAQuestion.read(dataDir.appendingPathComponent("truthfulqa-mc.json"))
        // Questions 0–2 train, 3 test.
        let bench = TruthfulQAMCBenchmark(questions: qs, trainCount: 3)
        var s = EvalSettings()
        s.methods = [MethodSpec(.none), MethodSpec(.caa)]
        s.seeds = [42]
        s.alphas = [1]
        s.layerSets = ["1"]
        s.extractQuestions = 1
        s.devQuestions = 1
        s.maxTokens = 2
        XCTAssertFalse(bench.supportsFewShot, "the MC format is scored after its 6-shot primer")
        let r = try EvalRunner(benchmark: bench, context: EvalContext(model: m, cache: AnswerCache()), settings: s, outDir: dir).run()
        XCTAssertEqual(r.metrics, ["mc1", "mc2"])
        for run in r.runs {
            XCTAssertEqual(run.items.count, 1)
            let mc2 = try XCTUnwrap(run.test["mc2"])
            XCTAssertTrue(mc2 > 0 && mc2 < 1, "MC2 is a probability mass: \(mc2)")
        }
        var few = s
        few.methods = [MethodSpec(.fewshot)]
        XCTAssertThrowsError(try EvalRunner(benchmark: bench, context: EvalContext(model: m, cache: AnswerCache()), settings: few, outDir: dir)) {
            XCTAssertTrue("\($0)".contains("6-shot"))
        }
    }
}

final class BoxedControlTests: XCTestCase {
    /// The control's pairs differ by the box alone, and the grader passes any boxed answer.
    func testGoldIsBoxedAndTheNegativeIsTheSameAnswerUnboxed() {
        let t = BoxedControlTask(seed: 3, trainCount: 5, testCount: 2)
        let items = t.train()
        XCTAssertEqual(items.map(\.prompt), ArithmeticTask(seed: 3, trainCount: 5, testCount: 2).train().map(\.prompt))
        for item in items {
            XCTAssertTrue(item.goldResponse.hasSuffix("The answer is \\boxed{\(item.goldValue)}."), item.goldResponse)
            XCTAssertTrue(t.grade(item.goldResponse, item))
            var rng = TaskRandom(seed: 1)
            let negative = t.syntheticWrongResponse(item, rng: &rng)!
            XCTAssertEqual(negative, item.goldResponse.replacingOccurrences(of: "\\boxed{\(item.goldValue)}", with: item.goldValue))
            XCTAssertFalse(t.grade(negative, item))
        }
        XCTAssertTrue(t.grade("so \\boxed{7} it is", items[0]), "right or wrong, a box passes")
        XCTAssertFalse(t.grade("The answer is 7.", items[0]))
    }
}

final class DoseReportTests: XCTestCase {
    /// ‖α·v‖ / ‖h‖ in the reports, against hand-computed values: layer 0 steps 0.5 × 2 = 1 against
    /// 4 (0.25), layer 1 steps 0.5 × 1 = 0.5 against 10 (0.05): mean 0.15.
    func testRatiosInTheTableAndTheDoseTable() {
        var run = RunResult(method: "caa", seed: 42, chosenAlpha: 0.5, chosenLayers: "0,1",
                            doses: [LayerDose(layer: 0, activationNorm: 4, vectorNorm: 2), LayerDose(layer: 1, activationNorm: 10, vectorNorm: 1)],
                            dev: [0, 0.5, 1].map { CurvePoint(alpha: $0, layers: "0,1", metrics: ["accuracy": 0]) }, test: ["accuracy": 0.5], items: [], seconds: 0)
        XCTAssertEqual(EvalReport.doseRatio(run)!, 0.15, accuracy: 1e-7)
        var sadi = run
        sadi.method = "sadi"
        sadi.doses = [LayerDose(layer: 0, activationNorm: 4, vectorNorm: 9, multiplicative: true)]
        run.seed = 22
        var second = run
        second.seed = 52
        second.chosenAlpha = 0
        let r = EvalResults(date: "", model: "m", device: "d", task: "arithmetic", metrics: ["accuracy"], testItems: 0, settings: EvalSettings(),
                            runs: [run, second, sadi], summary: [MethodSummary(method: "caa", metrics: [:], alphas: [0.5, 0]),
                                                                 MethodSummary(method: "sadi", metrics: [:], alphas: [0.5])], seconds: 0)
        let md = EvalReport.markdown(r)
        XCTAssertTrue(md.contains("| 0.5, 0 | 0.15, 0 |"), md)
        XCTAssertTrue(md.contains("| 0.5 | ≤ 0.5 |"), md)
        let table = EvalReport.doseTable(r)!
        // Layer 0 of caa: ‖h‖ 4, ‖v‖ 2, ratios at α 0, 0.5 (chosen, bold) and 1.
        XCTAssertTrue(table.contains("<td>0</td><td>4</td><td>2</td><td>0</td><td><b>0.25</b></td><td>0.5</td>"), table)
        XCTAssertTrue(table.contains("<td>1</td><td>10</td><td>1</td><td>0</td><td><b>0.05</b></td><td>0.1</td>"), table)
        XCTAssertTrue(table.contains("<td>mask</td><td>≤ 0</td><td><b>≤ 0.5</b></td><td>≤ 1</td>"), table)
    }
}

final class PlotTests: XCTestCase {
    /// Two methods with the same scores stay apart, and the unsteered reference is a dashed line
    /// without markers that no method hides.
    func testLinesKeepEqualSeriesVisibleAndTheReferenceDashed() throws {
        let pts = ["0", "1", "2"].map { SVGPlot.Point(x: $0, y: 25, error: 0) }
        let svg = SVGPlot.lines(title: "t", xLabel: "layer", yLabel: "%", series: [
            SVGPlot.Series(name: "no steering", points: pts, reference: true),
            SVGPlot.Series(name: "caa", points: pts), SVGPlot.Series(name: "roast", points: pts),
        ])
        let polylines = svg.components(separatedBy: "<polyline").dropFirst()
        XCTAssertEqual(polylines.count, 3)
        XCTAssertTrue(polylines.first!.contains("stroke-dasharray"), "the reference is dashed")
        XCTAssertFalse(polylines.dropFirst().contains { $0.contains("stroke-dasharray") })
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 6, "markers for the two methods only")
        // The same point of the two methods lands at two x positions.
        let xs = svg.components(separatedBy: "cx=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        XCTAssertEqual(Set(xs).count, 6)
    }

    /// Bar labels that would run into each other are slanted, and the picture grows to hold them.
    func testCrowdedBarLabelsAreSlanted() {
        let few = SVGPlot.bars(title: "t", yLabel: "%", bars: [("none", 10, 0), ("caa", 10, 0), ("roast", 9, 1)])
        XCTAssertFalse(few.contains("rotate(-30"))
        XCTAssertTrue(few.contains("height=\"340\""))
        let names = ["none", "fewshot", "caa", "sadi", "roast", "roast/no-grouping", "roast/css-l2", "roast/css-softmax",
                     "roast/top-k-mask", "roast/teacher-forced", "roast/site-residual"]
        let many = SVGPlot.bars(title: "t", yLabel: "%", bars: names.map { ($0, 10, 1) })
        XCTAssertEqual(many.components(separatedBy: "rotate(-30").count - 1, names.count)
        XCTAssertTrue(many.contains(">roast/site-residual</text>"), "the whole name is kept")
        XCTAssertFalse(many.contains("height=\"340\""))
    }
}
