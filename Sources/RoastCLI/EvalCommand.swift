import ArgumentParser
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Evaluation
import Foundation
import Model
import Roast
import Steering
import Tasks

extension EvalProtocol: ExpressibleByArgument {}

enum EvalTaskName: String, ExpressibleByArgument, CaseIterable {
    case arithmetic, gsm8k, truthfulqa, truthfulqaMC = "truthfulqa-mc", boxed, letter
}

func floatList(_ text: String, _ option: String) throws -> [Float] {
    let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
        throw ValidationError("\(option) '\(text)': expected comma-separated numbers")
    }
    return values.map { $0! }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate steering methods on GSM8K, TruthfulQA (letters or MC1/MC2) or arithmetic, the paper's protocol.",
        discussion: """
        For every seed: the training questions are shuffled with the seed and split into extraction questions \
        (vectors come from these) and a dev split (α and the layer set are chosen on it; test is never used to \
        choose). Each method then answers the test split: none (zero-shot), fewshot (k worked training examples as \
        earlier chat turns), caa (mean difference of teacher-forced gold vs wrong answers), sadi (top-K mask, \
        multiplicative), roast (rollouts, grouped mean normalisation, CSS). --ablations adds the ROAST variants: no \
        grouping, CSS l2 / softmax, a top-K mask, teacher-forced pairs, the other site, CSS per question before averaging (the order of the authors' code).

        --protocol orbit follows the authors' code (TomySu404/ORBIT; docs/ORBIT-READING.md) instead of this project's \
        strict protocol: 100 extraction questions, 8 rollouts of up to 128 tokens, every layer at `act`, CSS per question \
        then the mean, α over 0.001 … 10 with α = 0 never a candidate and ties to the later α, the last prompt token \
        steered only; CAA at the residual stream of layers 10, 15, 20 × {1, 2, 5, 10} on generated tokens; SADI as a \
        joint top-K over all layers (K 3 … 500) multiplied by 10 … 90 at the last prompt token; TruthfulQA letters from \
        TruthfulQA.csv with their prompt (no chat template) and grader. Dev stays among training questions. Any option \
        given explicitly overrides the preset.

        GSM8K: zero-shot chat prompt asking for \\boxed{}, graded on the boxed value else the last number. \
        TruthfulQA: 4 options (first true + first three false answers of mc1_targets, shuffled with the seed), answered \
        with a letter; the first 100 questions are training data. boxed: the positive control, arithmetic questions \
        graded on whether the answer writes \\boxed{} at all; with --method none,caa,roast,random --alpha-relative the dev \
        curve is a dose-response at equal step sizes. letter: the second control, TruthfulQA.csv questions in the authors' \
        letter format, graded on whether the answer picks D, right or wrong. truthfulqa-mc: MC1 (top-1 log-likelihood) and MC2 \
        (normalised probability of the true answers) after the 6-shot QA primer, every choice scored in one batched step.

        Every item's output is cached in OUT/cache.jsonl, so an interrupted run (Ctrl-C) resumes where it stopped; \
        vectors are kept in OUT/vectors, each with its contrast pairs (.pairs.jsonl). The log, results.md and \
        report.html give the dose: ‖α·v‖ against the mean activation norm at the site, per layer. Writes OUT/results.json (every item, every setting), OUT/results.md and a \
        self-contained OUT/report.html with SVG plots.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "gsm8k, truthfulqa (letters), truthfulqa-mc (log-likelihood), arithmetic, boxed (the positive control: arithmetic questions, graded on whether the answer writes \\boxed{}) or letter (the second: TruthfulQA letters graded on whether the answer picks D).") var task: EvalTaskName
    @Option(help: "Data file: GSM8K test.jsonl (train.jsonl beside it), TruthfulQA mc_task.json (orbit: TruthfulQA.csv) (default: data/…, else ../shared/data/…).") var data: String?
    @Option(help: "Test questions to use (default: the whole test split).") var limit: Int?
    @Option(help: "Methods, comma-separated: none, fewshot, caa, sadi, roast, random (ROAST's vector with each layer a random direction of the same norm: the control); vector with --steer.") var method = "none,caa,roast"
    @Flag(help: "Also run the ROAST ablations (no grouping, CSS l2/softmax, top-K mask, teacher-forced pairs, other site, CSS per question).") var ablations = false
    @Option(help: "Evaluate this vector file (method 'vector') instead of extracting.") var steer: String?
    @Option(help: "Fixed α for --steer (else tuned on dev over --sweep-alpha).") var alpha: Float?
    @Option(help: "strict (this project's protocol) or orbit (the authors' code: see above).") var `protocol`: EvalProtocol = .strict
    @Option(help: "α values tried on dev (strict: 0.05,0.1,0.2,0.5,1 and 0, no steering, always a candidate; orbit: 0.001 … 10, 0 never a candidate).") var sweepAlpha: String?
    @Flag(help: "α (--sweep-alpha, --alpha) is relative: each layer's step ‖α·v‖ is α × the mean activation norm ‖h‖ extraction measured there (SADI's multiplicative α is relative already).") var alphaRelative = false
    @Option(help: "Seeds, comma-separated; results are mean ± std over them.") var seeds = "42,22,52"
    @Option(help: "Layers to steer: first:N, last:N, all, a-b or a list (strict: first:5; orbit: all).") var layers: String?
    @Option(help: "Candidate layer sets tuned on dev with α, separated by ';' (overrides --layers).") var layerSets: String?
    @Option(help: "act (SiLU output in the MLP) or residual (layer output).") var site: ActivationSite = .act
    @Option(help: "Training questions used for extraction (strict: 16; orbit: 100).") var extractQuestions: Int?
    @Option(help: "Training questions in the dev split (α tuning).") var devQuestions = 32
    @Option(help: "Rollouts per extraction question (ROAST).") var rollouts = 8
    @Option(help: "Rollout budget in tokens (strict: the answers' budget; orbit: 128).") var rolloutTokens: Int?
    @Option(help: "Orbit: CAA's multipliers on the raw mean difference.") var caaMultipliers = "1,2,5,10"
    @Option(help: "Orbit: SADI's joint top-K sizes.") var sadiK = "3,5,10,30,50,100,200,300,400,500"
    @Option(help: "Orbit: SADI's strengths s (masked activations × s).") var sadiStrength = "10,20,30,50,70,90"
    @Option(help: "Worked examples of the fewshot method.") var shots = 3
    @Option(help: "Sequences per generation batch.") var batch = 16
    @Option(help: "Generation budget per answer (default: gsm8k 256, truthfulqa 16, arithmetic 32).") var maxTokens: Int?
    @Flag(help: "Skip the per-layer effect (each layer steered alone on dev, first seed; orbit never runs it).") var noPerLayer = false
    @Option(help: "Output folder.") var out = "eval-out"
    @Flag(help: "Print the summary as JSON on stdout.") var json = false

    func validate() throws {
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
        guard batch > 0, rollouts > 0, shots >= 0 else { throw ValidationError("--batch and --rollouts must be positive, --shots ≥ 0") }
        if let maxTokens, maxTokens <= 0 { throw ValidationError("--max-tokens must be positive") }
        if let rolloutTokens, rolloutTokens <= 0 { throw ValidationError("--rollout-tokens must be positive") }
        if alpha != nil, steer == nil { throw ValidationError("--alpha goes with --steer FILE; without it α is tuned over --sweep-alpha") }
    }

    func settings() throws -> EvalSettings {
        var s = `protocol` == .orbit ? EvalSettings.orbit() : EvalSettings()
        let known = Dictionary(uniqueKeysWithValues: MethodKind.allCases.map { ($0.rawValue, $0) })
        var methods = try method.split(separator: ",").map { name -> MethodSpec in
            let n = name.trimmingCharacters(in: .whitespaces)
            guard let k = known[n], k != .vector else { throw ValidationError("--method '\(n)': expected none, fewshot, caa, sadi, roast or random") }
            return MethodSpec(k)
        }
        if steer != nil { methods = methods.filter { !$0.steered } + [MethodSpec(.vector)] }
        if ablations { methods += MethodSpec.roastAblations(runSite: site, evalProtocol: `protocol`) }
        s.methods = methods
        s.seeds = try seeds.split(separator: ",").map {
            guard let v = UInt64($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--seeds '\(seeds)': expected integers") }
            return v
        }
        if let sweepAlpha { s.alphas = try floatList(sweepAlpha, "--sweep-alpha") }
        if let sets = layerSets ?? layers { s.layerSets = sets.split(separator: ";").map { String($0) } }
        s.site = site
        s.extractQuestions = extractQuestions ?? s.extractQuestions
        s.rolloutTokens = rolloutTokens ?? s.rolloutTokens
        s.caaMultipliers = try floatList(caaMultipliers, "--caa-multipliers")
        s.sadiStrengths = try floatList(sadiStrength, "--sadi-strength")
        s.sadiCounts = try sadiK.split(separator: ",").map {
            guard let k = Int($0.trimmingCharacters(in: .whitespaces)), k > 0 else { throw ValidationError("--sadi-k '\(sadiK)': expected positive integers") }
            return k
        }
        s.devQuestions = devQuestions
        s.rollouts = rollouts
        s.shots = shots
        s.limit = limit
        s.batchSize = batch
        s.maxTokens = maxTokens
        if noPerLayer { s.perLayerEffect = false }
        s.vectorFile = steer
        s.vectorAlpha = alpha
        s.alphaRelative = alphaRelative
        return s
    }

    func benchmark() throws -> Benchmark {
        let budget = maxTokens
        switch task {
        case .arithmetic:
            return GenerationBenchmark(name: "arithmetic", maxTokens: budget) { _ in ArithmeticTask(seed: 1234, trainCount: 200, testCount: 100) }
        case .boxed:
            return GenerationBenchmark(name: "boxed", maxTokens: budget) { _ in BoxedControlTask(seed: 1234, trainCount: 200, testCount: 100) }
        case .gsm8k:
            let t = try gsm8kTask(data: data)
            return GenerationBenchmark(name: "gsm8k", maxTokens: budget) { _ in t }
        case .letter:
            let rows = try TruthfulQARow.read(data.map { URL(fileURLWithPath: $0) } ?? Datasets.defaultFile("truthfulqa/TruthfulQA.csv"))
            let s = try settings()
            return GenerationBenchmark(name: "letter", maxTokens: budget) {
                LetterControlTask(rows: rows, seed: $0, trainCount: s.extractQuestions + s.devQuestions + s.shots)
            }
        case .truthfulqa where `protocol` == .orbit:
            // Their first 100 rows are training data and dev comes from test; dev is kept among
            // training rows here, so training is extraction + dev rows.
            let rows = try TruthfulQARow.read(data.map { URL(fileURLWithPath: $0) } ?? Datasets.defaultFile("truthfulqa/TruthfulQA.csv"))
            let s = try settings()
            return GenerationBenchmark(name: "truthfulqa", maxTokens: budget) {
                TruthfulQAOrbitTask(rows: rows, seed: $0, trainCount: s.extractQuestions + s.devQuestions + s.shots)
            }
        case .truthfulqa:
            let questions = try TruthfulQAQuestion.read(truthfulQAFile(data: data))
            return GenerationBenchmark(name: "truthfulqa", maxTokens: budget) { TruthfulQATask(questions: questions, seed: $0) }
        case .truthfulqaMC:
            return TruthfulQAMCBenchmark(questions: try TruthfulQAQuestion.read(truthfulQAFile(data: data)))
        }
    }

    func run() throws {
        // Answers are on the disk as each batch ends; an interruption loses at most the batch in flight.
        signal(SIGINT) { _ in
            let note: StaticString = "\ninterrupted: the answers so far are in the cache; run the same command again to resume\n"
            _ = write(2, note.utf8Start, note.utf8CodeUnitCount)
            _exit(130)
        }
        let settings = try settings()
        let bench = try benchmark()  // reads and checks the data before the model loads
        let model = try modelOptions.load()
        let outDir = URL(fileURLWithPath: out)
        let cache = try AnswerCache(url: outDir.appendingPathComponent("cache.jsonl"))
        if cache.loaded > 0 { stderr("resuming: \(cache.loaded) cached answers in \(cache.url!.path)\(cache.dropped > 0 ? " (one torn line dropped)" : "")") }
        let runner = try EvalRunner(benchmark: bench, context: EvalContext(model: model, cache: cache, batchSize: batch),
                                    settings: settings, outDir: outDir)
        var bar: (phase: String, bar: ProgressBar)?
        runner.progress = { phase, done, total in
            if bar?.phase != phase { bar = (phase, ProgressBar(phase, total: total)) }
            bar!.bar.update(done)
        }
        runner.log = { stderr($0) }
        let results = try runner.run()
        try EvalReport.write(results, to: outDir)
        if json {
            try printJSON(results.summary)
        } else {
            print(EvalReport.markdown(results))
            print("wrote \(outDir.path)/results.json, results.md, report.html")
        }
    }
}
