import ArgumentParser
import Backend
import Foundation
import Generation
import Model
import Roast
import Steering
import Tasks

extension ActivationSite: ExpressibleByArgument {}
extension SteeringScope: ExpressibleByArgument {}
extension CSSMode: ExpressibleByArgument {}
extension ExtractionMethod: ExpressibleByArgument {}
extension PairSource: ExpressibleByArgument {}
extension GroupOrder: ExpressibleByArgument {}

enum TaskName: String, ExpressibleByArgument, CaseIterable {
    case arithmetic, gsm8k, truthfulqa
}

/// GSM8K's test file (`--data`, default data/gsm8k/test.jsonl) and its train file beside it.
func gsm8kTask(data: String?) throws -> GSM8KTask {
    let test = data.map { URL(fileURLWithPath: $0) } ?? Datasets.defaultFile("gsm8k/test.jsonl")
    return try GSM8KTask(test: test, train: test.deletingLastPathComponent().appendingPathComponent("train.jsonl"))
}

func truthfulQAFile(data: String?) -> URL { data.map { URL(fileURLWithPath: $0) } ?? Datasets.defaultFile("truthfulqa/mc_task.json") }

/// The task a command works on, from its name and optional data file.
func makeTask(_ name: TaskName, data: String?, seed: UInt64) throws -> ReasoningTask {
    switch name {
    case .arithmetic: return ArithmeticTask(seed: seed)
    case .gsm8k: return try gsm8kTask(data: data)
    case .truthfulqa: return try TruthfulQATask(file: truthfulQAFile(data: data), seed: seed)
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate a steering vector from the model's own rollouts (ROAST) or teacher-forced pairs (CAA).",
        discussion: """
        ROAST: for each training question, sample --rollouts answers (temperature, top-p), grade them, pair every \
        correct answer with every incorrect one (no correct: the gold answer, pairs weighted 0.5; no incorrect: a \
        synthetic wrong answer), read the activation at the last response token (teacher forced), average the \
        differences per question, normalise, average over questions (grouped mean normalisation) and scale with CSS. \
        The file (.safetensors, or .gguf for --site residual: llama.cpp's control-vector format) is written atomically.

        --save-pairs FILE.jsonl writes every contrast pair, one JSON line each: question index and id, the prompt's \
        token ids, the positive and negative responses (candidate number, source rollout/gold/synthetic, grade, ids, \
        text), the weight, the question's rollout grades and the fallback used. --pairs-file FILE.jsonl extracts from \
        such a file instead of sampling (same model, --site and --layers as wanted): on the same backend the vectors \
        equal the original run's bit for bit. Example:
          roast extract --method roast --save-pairs pairs.jsonl --out a.safetensors
          roast extract --method roast --pairs-file pairs.jsonl --out b.safetensors

        --shard I/N extracts only the I-th of N contiguous blocks of the --train questions (I from 0) and writes \
        their per-question partial results (each question's weighted mean difference and weight, the statistics, the \
        activation norms) instead of a vector. Every question samples from its own random streams, so a shard draws \
        the rollouts the whole run would. `roast vector merge` combines the N files into the vector the unsharded \
        run makes (docs/SCALING.md: Slurm and Kubernetes job arrays). Example:
          for i in 0 1 2; do roast extract --shard $i/3 --out part-$i.safetensors; done
          roast vector merge part-*.safetensors --out v.safetensors
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "arithmetic (built in), gsm8k or truthfulqa.") var task: TaskName = .arithmetic
    @Option(help: "The task's data file: GSM8K test.jsonl (train.jsonl read beside it), TruthfulQA mc_task.json (default: data/…, else ../shared/data/…).") var data: String?
    @Option(help: "Training questions to use.") var train = 32
    @Option(help: "roast, caa (mean difference) or sadi (top-K mask, multiplicative).") var method: ExtractionMethod = .roast
    @Option(help: "act (SiLU output in the MLP) or residual (layer output).") var site: ActivationSite = .act
    @Option(help: "Layers: first:N, last:N, all, a-b or a list 0,2,4.") var layers = "first:5"
    @Option(help: "Continuous soft scaling: max, l2, softmax, or topk (a hard top-K mask, the ablation).") var css: CSSMode = .max
    @Flag(help: "Plain weighted mean instead of grouped mean normalisation.") var noGrouping = false
    @Option(help: "Grouped normalisation's order: l2-then-css (the paper: each question's mean to unit norm, averaged, CSS on the average) or css-per-question (the authors' code: CSS on each question's mean, averaged).") var groupOrder: GroupOrder = .l2ThenCSS
    @Option(help: "ROAST's pairs: rollouts, or teacher-forced (gold vs synthetic wrong, as CAA).") var pairs: PairSource = .rollouts
    @Option(help: "Rollouts per question.") var rollouts = 8
    @Option(help: "Rollout temperature.") var temperature: Float = 0.8
    @Option(help: "Rollout top-p.") var topP: Float = 0.9
    @Option(help: "Default α stored in the file.") var alpha: Float = 0.2
    @Option(help: "K of the top-K mask (SADI, and the energy report), as a fraction of the width.") var topK: Double = 0.05
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Option(help: "Output file (.safetensors or .gguf).") var out: String
    @Option(help: "Also write the contrast pairs here (JSON lines, written atomically).") var savePairs: String?
    @Option(help: "Extract from the pairs in this file (from --save-pairs) instead of sampling; --train, --rollouts, --pairs and the sampling options are then unused.") var pairsFile: String?
    @Option(help: "I/N: extract the I-th (from 0) of N blocks of the questions and write its partial results to --out (.safetensors), for `roast vector merge`.") var shard: String?
    @Flag(help: "Print the summary as JSON.") var json = false

    func validate() throws {
        guard out.hasSuffix(".safetensors") || out.hasSuffix(".gguf") else { throw ValidationError("--out must end in .safetensors or .gguf") }
        if out.hasSuffix(".gguf"), site != .residual { throw ValidationError("a .gguf control vector needs --site residual") }
        guard train > 0, rollouts > 0 else { throw ValidationError("--train and --rollouts must be positive") }
        if let savePairs, !savePairs.hasSuffix(".jsonl") { throw ValidationError("--save-pairs must end in .jsonl") }
        if pairsFile != nil, pairsFile == savePairs { throw ValidationError("--save-pairs would overwrite the --pairs-file it reads") }
        if let shard {
            let spec: ShardSpec
            do { spec = try ShardSpec(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
            guard out.hasSuffix(".safetensors") else { throw ValidationError("--shard writes partial results: --out must end in .safetensors") }
            guard pairsFile == nil else { throw ValidationError("--shard splits the sampling; --pairs-file samples nothing (extract from it whole)") }
            guard spec.count <= train else { throw ValidationError("--shard \(shard): \(spec.count) shards of --train \(train) questions would leave a shard empty") }
        }
    }

    func run() throws {
        let model = try modelOptions.load()
        let t = try makeTask(task, data: data, seed: seed)
        var o = ExtractionOptions(layers: try LayerSelection(layers))
        if let pairsFile { o.savedPairs = try PairsFile.read(URL(fileURLWithPath: pairsFile), vocabSize: model.config.vocabSize) }
        var items = o.savedPairs == nil ? Array(try t.train().prefix(train)) : []
        let questions = items.count
        let spec = try shard.map { try ShardSpec(parsing: $0) }
        if let spec {
            guard spec.count <= items.count else {
                throw ValidationError("--shard \(spec.index)/\(spec.count): the task has only \(items.count) training questions")
            }
            let range = spec.questions(of: items.count)
            items = Array(items[range])
            o.firstQuestion = range.lowerBound
        }
        o.method = method
        o.site = site
        o.css = css
        o.grouping = !noGrouping
        o.groupOrder = groupOrder
        o.pairs = pairs
        o.rollout.rollouts = rollouts
        o.rollout.temperature = temperature
        o.rollout.topP = topP
        o.rollout.seed = seed
        o.defaultAlpha = alpha
        o.topKFraction = topK
        let sampling = method == .roast && pairsFile == nil && self.pairs == .rollouts
        let bar = ProgressBar(sampling ? "rollouts" : "pairs", total: o.savedPairs.map { Set($0.map(\.question)).count } ?? items.count)
        bar.enabled = !json
        let report: (Int, Int, Int) -> Void = { done, _, pairs in
            bar.update(done, sampling ? "\(done * rollouts) rollouts · \(pairs) pairs" : "\(pairs) pairs")
        }
        if let spec {
            let t0 = Date()
            let c = try Extractor.collect(model: model, task: t, items: items, options: o, progress: report)
            let part = ExtractionShard(spec: spec, questions: questions, metadata: Extractor.metadata(model: model, task: t, options: o),
                                       topKFraction: topK, partials: c)
            try part.write(to: URL(fileURLWithPath: out))
            if let savePairs { try PairsFile.write(c.records, to: URL(fileURLWithPath: savePairs)) }
            let range = spec.questions(of: part.questions)
            if json {
                return try printJSON(ShardSummary(out: out, shard: spec.index, shards: spec.count, questions: [range.lowerBound, range.upperBound],
                                                  stats: c.stats, seconds: Date().timeIntervalSince(t0)))
            }
            let s = c.stats
            if let savePairs { print("wrote \(savePairs): \(c.records.count) pairs") }
            print("wrote \(out): shard \(spec.index) of \(spec.count), questions \(range.lowerBound)..<\(range.upperBound) of \(part.questions)")
            print("questions \(s.questions): used \(s.questionsUsed), skipped \(s.questionsSkipped); rollouts \(s.rollouts) (\(s.correctRollouts) correct); pairs \(s.pairs)")
            print(String(format: "%.1f s; merge every shard with `roast vector merge`", Date().timeIntervalSince(t0)))
            return
        }
        let r = try Extractor.extract(model: model, task: t, items: items, options: o, progress: report)
        try r.file.write(to: URL(fileURLWithPath: out))
        if let savePairs { try PairsFile.write(r.records, to: URL(fileURLWithPath: savePairs)) }
        if json {
            return try printJSON(ExtractSummary(out: out, stats: r.stats, layers: r.file.metadata.layers, site: site.rawValue,
                                                method: method.rawValue, seconds: r.seconds, energy: r.file.metadata.energy ?? [:]))
        }
        if let savePairs { print("wrote \(savePairs): \(r.records.count) pairs") }
        printVectorSummary(out: out, file: r.file, energy: r.energy)
        print(String(format: "%.1f s", r.seconds))
    }
}

/// What an extracted or merged vector is: its statistics, the CSS-vs-top-K energy and the dose.
func printVectorSummary(out: String, file: SteeringVectorFile, energy: [Int: (css: EnergyReport, topK: EnergyReport)]) {
    let m = file.metadata
    print("wrote \(out): \(m.method) vector, site \(m.site.rawValue), layers \(m.layers.map(String.init).joined(separator: ","))\(m.shards.map { ", merged from \($0) shards" } ?? "")")
    if let s = m.stats {
        print("questions \(s.questions): used \(s.questionsUsed), skipped \(s.questionsSkipped); rollouts \(s.rollouts) (\(s.correctRollouts) correct); pairs \(s.pairs); fallbacks: gold \(s.goldFallbacks), synthetic \(s.syntheticFallbacks)")
    }
    printTable(["layer", "cos(CSS, μ)", "energy kept (CSS)", "cos(top-K, μ)", "energy kept (top-K)"],
               energy.keys.sorted().map { l in
                   let e = energy[l]!
                   return ["\(l)", String(format: "%.3f", e.css.cosine), String(format: "%.3f", e.css.energyKept),
                           String(format: "%.3f", e.topK.cosine), String(format: "%.3f", e.topK.energyKept)]
               })
    if let doses = file.doses { printDoses(doses, alpha: m.defaultAlpha) }
}

struct ShardSummary: Encodable {
    let out: String
    let shard: Int
    let shards: Int
    /// [first, end) of the shard's questions.
    let questions: [Int]
    let stats: ExtractionStats
    let seconds: Double
}

/// Per layer: the mean activation norm at the site next to ‖α·v‖ and their ratio.
func printDoses(_ doses: [LayerDose], alpha: Float) {
    let a = String(format: "%g", alpha)
    print("dose at α = \(a) (mean ‖h‖ over the pairs' last prompt tokens and response tokens):")
    printTable(["layer", "mean ‖h‖", "‖v‖", "‖α·v‖", "‖α·v‖ / ‖h‖"], doses.map { d in
        ["\(d.layer)", String(format: "%.3f", d.activationNorm), d.multiplicative ? "mask" : String(format: "%.3f", d.vectorNorm),
         (d.multiplicative ? "≤ " : "") + String(format: "%.3f", d.step(alpha: alpha)), (d.multiplicative ? "≤ " : "") + String(format: "%.4f", d.ratio(alpha: alpha))]
    })
}

struct ExtractSummary: Encodable {
    let out: String
    let stats: ExtractionStats
    let layers: [Int]
    let site: String
    let method: String
    let seconds: Double
    let energy: [String: EnergyReport]
}

struct VectorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vector", abstract: "Inspect and convert steering-vector files.",
                                                    subcommands: [Info.self, Convert.self, Merge.self])

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Combine the partial results of `roast extract --shard I/N` into one vector.",
            discussion: """
            Give every shard's file, in any order: each of shards 0..<N exactly once, all from one extraction (same \
            model, task, method, site, layers, CSS, seed and question count), or the merge is refused naming the file \
            and the setting that differs. The vector equals the one an unsharded `roast extract` makes from the same \
            settings: both aggregate the same per-question partials in question order. Written atomically.
              roast vector merge part-0.safetensors part-1.safetensors part-2.safetensors --out v.safetensors
            """)
        @Argument(help: "The shards' .safetensors files.") var shards: [String]
        @Option(help: "Output vector (.safetensors, or .gguf for a residual-site vector).") var out: String
        @Flag(help: "Print the summary as JSON.") var json = false

        func validate() throws {
            guard !shards.isEmpty else { throw ValidationError("give the shard files to merge") }
            guard out.hasSuffix(".safetensors") || out.hasSuffix(".gguf") else { throw ValidationError("--out must end in .safetensors or .gguf") }
            if shards.contains(out) { throw ValidationError("--out \(out) is one of the shards") }
        }

        func run() throws {
            let t0 = Date()
            let (file, energy) = try ExtractionShard.merge(shards.map { URL(fileURLWithPath: $0) })
            try file.write(to: URL(fileURLWithPath: out))
            let m = file.metadata
            if json {
                return try printJSON(ExtractSummary(out: out, stats: m.stats ?? ExtractionStats(), layers: m.layers, site: m.site.rawValue,
                                                    method: m.method, seconds: Date().timeIntervalSince(t0), energy: m.energy ?? [:]))
            }
            printVectorSummary(out: out, file: file, energy: energy)
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a vector file's metadata and per-layer norms.")
        @Argument(help: "A .safetensors or .gguf vector file.") var file: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let v = try SteeringVectorFile.read(URL(fileURLWithPath: file))
            let norms = Dictionary(uniqueKeysWithValues: v.vectors.map { ("\($0.key)", Aggregation.l2($0.value)) })
            if json { return try printJSON(VectorInfo(metadata: v.metadata, norms: norms)) }
            let m = v.metadata
            print("\(file): \(m.method) vector for \(m.architecture) (hidden \(m.hiddenSize), intermediate \(m.intermediateSize)), site \(m.site.rawValue)")
            print("model \(m.model ?? "?"), task \(m.task ?? "-"), default α \(m.defaultAlpha), made \(m.date)")
            printTable(["layer", "width", "L2 norm", "max |v|"], v.vectors.keys.sorted().map { l in
                let x = v.vectors[l]!
                return ["\(l)", "\(x.count)", String(format: "%.4f", Aggregation.l2(x)), String(format: "%.4f", x.map { abs($0) }.max() ?? 0)]
            })
            if let doses = v.doses { printDoses(doses, alpha: m.defaultAlpha) } else { print("no activation norms recorded (a file from before they were, or converted from .gguf)") }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert between .safetensors and llama.cpp's control-vector .gguf (residual site only).")
        @Argument(help: "Input file.") var input: String
        @Argument(help: "Output file.") var output: String

        func run() throws {
            let v = try SteeringVectorFile.read(URL(fileURLWithPath: input))
            try v.write(to: URL(fileURLWithPath: output))
            print("wrote \(output) (\(v.vectors.count) layers)")
        }
    }
}

struct VectorInfo: Encodable {
    let metadata: VectorMetadata
    let norms: [String: Float]
}

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "ROAST end to end on the default model: extract from rollouts, pick α on dev, test baseline vs steered, then a dose-response of the positive control.",
        discussion: "Writes the vector and a JSON report into --out-dir and prints the tables and timings.")

    @Option(help: "The model (default: the GGUF that `make model` downloads).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "vulkan (default) or cpu.") var backend: BackendKind = .vulkan
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: "Where the vector and report go.") var outDir = "roast-demo"
    @Option(help: "Training questions used for extraction.") var trainQuestions = Demo.Options().extractionQuestions
    @Option(help: "Dev questions (also from the training split) for choosing α.") var devQuestions = Demo.Options().devQuestions
    @Option(help: "Held-out test questions.") var testQuestions = Demo.Options().testQuestions
    @Option(help: "Rollouts per question.") var rollouts = Demo.Options().rollouts
    @Option(help: "Random seed.") var seed: UInt64 = 42

    func run() throws {
        guard FileManager.default.fileExists(atPath: model) else {
            throw ValidationError("\(model) is missing: run `make model` (or give --model)")
        }
        let t0 = Date()
        let b: Backend = backend == .cpu ? CPUBackend() : try deviceOptions.vulkanBackend()
        let m = try LanguageModel(path: model, backend: b)
        let loadSeconds = Date().timeIntervalSince(t0)
        print("model: \(model) (\(m.config.architecture.rawValue), \(m.config.layerCount) layers) on \((b as? VulkanBackend)?.device.info.name ?? "CPU"), loaded in \(String(format: "%.1f", loadSeconds)) s")
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var o = Demo.Options()
        o.extractionQuestions = trainQuestions
        o.devQuestions = devQuestions
        o.testQuestions = testQuestions
        o.rollouts = rollouts
        o.seed = seed
        let vector = URL(fileURLWithPath: outDir).appendingPathComponent("arithmetic-roast.safetensors")
        let reportURL = URL(fileURLWithPath: outDir).appendingPathComponent("report.json")
        let r = try Demo(model: m, options: o).run(vectorURL: vector, reportURL: reportURL)
        print("")
        printTable(["", "baseline", "ROAST (α = \(String(format: "%g", r.chosenAlpha)), \(r.site), layers \(r.layers.map(String.init).joined(separator: ",")))"], [
            ["test accuracy (\(r.testQuestions) questions, greedy)", String(format: "%.1f%%", 100 * r.baselineAccuracy),
             String(format: "%.1f%%", 100 * r.steeredAccuracy)],
        ])
        print("\nexamples:")
        for e in r.examples {
            print("Q: \(e.question)   (gold \(e.gold))")
            print("  baseline \(e.baselineCorrect ? "✓" : "✗"): \(e.baseline.replacingOccurrences(of: "\n", with: " "))")
            print("  steered  \(e.steeredCorrect ? "✓" : "✗"): \(e.steered.replacingOccurrences(of: "\n", with: " "))")
        }
        print("\npositive control: \\boxed{} in the answers to \(r.controlQuestions) arithmetic test questions that never ask for it; ρ = ‖α·v‖ / mean ‖h‖ at each layer (docs/EVALUATION.md, \"Is the null real?\")")
        printTable(["vector", "ρ", "answers with \\boxed{", "answers changed"], r.control.map {
            [$0.vector, String(format: "%g", $0.rho), String(format: "%.0f%%", 100 * $0.boxed), String(format: "%.0f%%", 100 * $0.changed)]
        })
        print("\ntimings:")
        printTable(["phase", "seconds"], [["load model", String(format: "%.1f", loadSeconds)]] +
            ["extract", "choose α", "test baseline", "test steered", "control"].map { [$0, r.seconds[$0].map { String(format: "%.1f", $0) } ?? "not run (α = 0 gives the baseline's answers)"] } +
            [["total", String(format: "%.1f", Date().timeIntervalSince(t0))]])
        print("\nwrote \(vector.path) and \(reportURL.path)")
    }
}
