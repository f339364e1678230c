import ArgumentParser
import Backend
import Foundation
import Generation
import Model
import Roast
import Steering
import Tasks
import Tokenizers
import VulkanCompute

enum BackendKind: String, ExpressibleByArgument, CaseIterable {
    case vulkan, cpu
}

/// Options of every command that runs a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face folder (config.json, *.safetensors, tokenizer.json), a .gguf file or a llama2.c .bin.")
    var model: String

    @Option(name: .long, help: "vulkan (default) or cpu (the plain-Swift reference; slow).")
    var backend: BackendKind = .vulkan

    @OptionGroup var deviceOptions: DeviceOptions

    func makeBackend(profiling: Bool = false) throws -> Backend {
        switch backend {
        case .cpu: return CPUBackend()
        case .vulkan: return try deviceOptions.vulkanBackend(profiling: profiling)
        }
    }

    func load(profiling: Bool = false) throws -> LanguageModel {
        try LanguageModel(path: model, backend: makeBackend(profiling: profiling))
    }
}

func stderr(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt (greedy by default).",
        discussion: """
        The prompt is rendered with the model's chat template (ChatML for Qwen and SmolLM, with SmolLM2's default \
        system prompt when --system is not given) unless --raw is set. --samples N decodes N samples in one batch, \
        each with its own random stream (seed + sample index), so results are reproducible run to run.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The user's message (or the raw text with --raw).") var prompt: String
    @Option(help: "A system message.") var system: String?
    @Flag(help: "Skip the chat template (BOS is added where the tokenizer says so).") var raw = false
    @Flag(name: .customLong("no-think"), help: "Qwen3: disable thinking (adds the empty <think></think> block).") var noThink = false
    @Option(help: "Most tokens to generate.") var maxTokens = 128
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Keep the k most likely tokens (0 = all).") var topK = 0
    @Option(help: "Nucleus sampling: keep tokens up to this probability mass.") var topP: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Option(help: "Number of samples, decoded as one batch.") var samples = 1
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Option(help: "A steering-vector file (.safetensors or control-vector .gguf); repeat to sum several.") var steer: [String] = []
    @Option(help: "Steering strength α (default: the file's).") var alpha: Float?
    @Option(help: "Steering strength relative to the activation: ‖α·v‖ = ρ × the mean ‖h‖ the extraction measured at each layer (0.1: a step a tenth the activation's size). Instead of --alpha.") var alphaRelative: Float?
    @Option(help: "Steered tokens: generated (last prompt token + every generated token), prefill, all, last-prompt (the last prompt token only: the authors' --prefill_only) or decode (generated tokens only: the authors' CAA).") var scope: SteeringScope = .generated
    @Flag(help: "Print one JSON object per sample: {\"prompt_ids\":[..],\"ids\":[..],\"text\":\"..\"}.") var json = false

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0") }
        if let alpha, !(alpha.isFinite && abs(alpha) <= VectorLimits.maxMagnitude) {
            throw ValidationError("--alpha \(alpha) is not a finite number of magnitude ≤ \(VectorLimits.maxMagnitude)")
        }
        if alpha != nil, alphaRelative != nil { throw ValidationError("give --alpha or --alpha-relative, not both") }
        if let alphaRelative, !(alphaRelative.isFinite && abs(alphaRelative) <= VectorLimits.maxMagnitude) {
            throw ValidationError("--alpha-relative \(alphaRelative) is not a finite number of magnitude ≤ \(VectorLimits.maxMagnitude)")
        }
    }

    func run() throws {
        let vectors = try SteeringFiles.read(steer)  // a bad vector file fails before the model loads
        let model = try modelOptions.load()
        let ids = try PromptBuilder.ids(model: model, prompt: prompt, system: system, raw: raw, thinking: noThink ? false : nil)
        let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let requests = (0..<samples).map { _ in GenerationRequest(promptIDs: ids, maxTokens: maxTokens, sampling: sampling, stopStrings: stop) }
        let stream = !json && samples == 1
        let injector = try SteeringFiles.injector(vectors, alpha: alphaRelative ?? alpha, relative: alphaRelative != nil, scope: scope, model: model)
        let results = try Generator(model: model).generate(requests, steering: injector?.provider, onToken: { _, _, piece in
            if stream { FileHandle.standardOutput.write(piece.data(using: .utf8)!) }
        })
        if stream { print(""); return }
        for (i, r) in results.enumerated() {
            if json {
                try printJSON(GenerateOutput(prompt_ids: r.promptIDs, ids: r.ids, text: r.text, finish_reason: r.finishReason.rawValue))
            } else {
                print("--- sample \(i + 1) (\(r.finishReason.rawValue))\n\(r.text)")
            }
        }
    }
}

struct GenerateOutput: Encodable {
    let prompt_ids: [Int]
    let ids: [Int]
    let text: String
    let finish_reason: String
}

/// Prompt text → ids: the chat template, or raw text with BOS where the tokenizer adds one.
enum PromptBuilder {
    static func ids(model: LanguageModel, prompt: String, system: String?, raw: Bool, thinking: Bool?) throws -> [Int] {
        let tok = try model.requireTokenizer()
        if raw { return tok.encode(prompt, addSpecialTokens: true) }
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        let text = model.chatTemplate.render(messages, addGenerationPrompt: true, enableThinking: thinking)
        return tok.encode(text, addSpecialTokens: false)
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print token ids as JSON lines {\"text\":..,\"ids\":[..]}.",
        discussion: "--model may also be a bare tokenizer.json. No special tokens are added (add_special_tokens=False).")

    @Option(help: "A model (folder, .gguf, .bin) or a tokenizer.json.") var model: String
    @Option(help: "Text to tokenize.") var text: String?
    @Option(help: "A JSON-lines file whose objects have a \"text\" field.") var jsonl: String?

    func validate() throws {
        guard (text == nil) != (jsonl == nil) else { throw ValidationError("give exactly one of --text and --jsonl") }
    }

    func run() throws {
        let tok = try ModelFiles.tokenizer(path: model)
        var texts: [String] = []
        if let text { texts = [text] }
        // A bad line is a runtime error naming the line (exit 1), not a usage error.
        if let jsonl { texts = try Datasets.strings(URL(fileURLWithPath: jsonl), field: "text") }
        for t in texts { try printJSON(TokenizeOutput(text: t, ids: tok.encode(t, addSpecialTokens: false))) }
    }
}

struct TokenizeOutput: Encodable {
    let text: String
    let ids: [Int]
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the logits at every position for given token ids, as JSON {\"logits\":[[..],..]} (float32).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Comma-separated token ids, e.g. 1,2,3.") var ids: String

    func run() throws {
        let parsed = try ids.split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--ids: '\(s)' is not an integer") }
            return v
        }
        guard !parsed.isEmpty else { throw ValidationError("--ids is empty") }
        let model = try modelOptions.load()
        let logits = try model.logits(ids: parsed)
        try printJSON(["logits": logits])
    }
}

/// Steering files → one injector (vectors at one site summed, each with its α).
enum SteeringFiles {
    static func read(_ paths: [String]) throws -> [SteeringVectorFile] {
        try paths.map { try SteeringVectorFile.read(URL(fileURLWithPath: $0)) }
    }

    /// `relative`: α is ρ, the step's size as a fraction of the mean activation norm per layer.
    static func injector(_ files: [SteeringVectorFile], alpha: Float?, relative: Bool = false, scope: SteeringScope,
                         model: LanguageModel) throws -> SteeringInjector? {
        guard !files.isEmpty else { return nil }
        for f in files { try f.check(against: model) }
        let interventions = try files.map { f in
            relative ? try f.intervention(relativeAlpha: alpha!, scope: scope) : f.intervention(alpha: alpha, scope: scope)
        }
        guard let combined = try Intervention.combine(interventions) else { return nil }
        return try SteeringInjector(model: model, intervention: combined)
    }
}
