import Backend
import Formats
import Foundation
import Model
import Steering
import Tasks
import Tokenizers

/// An input format the fuzzer knows: where the mutated file goes, what sits beside it, how it
/// is mutated, and the loaders it is fed to (the paths the CLI takes with such a file).
public enum FuzzFormat: String, CaseIterable, Sendable {
    case safetensors, gguf, llama2c, llama2cTokenizer = "llama2c-tokenizer", config, tokenizer
    case vectorSafetensors = "vector-safetensors", vectorGGUF = "vector-gguf", gsm8k

    /// What the format is, for --help and reports.
    public var summary: String {
        switch self {
        case .safetensors: "Hugging Face model.safetensors (with config.json beside it), loaded and run on the CPU backend"
        case .gguf: "GGUF model with its tokenizer, loaded and run on the CPU backend"
        case .llama2c: "llama2.c .bin checkpoint (with tokenizer.bin beside it), loaded and run on the CPU backend"
        case .llama2cTokenizer: "llama2.c tokenizer.bin (tok512.bin), loaded and used"
        case .config: "config.json, read as a model configuration"
        case .tokenizer: "tokenizer.json, loaded and used"
        case .vectorSafetensors: "ROAST steering vector (.safetensors), read and converted"
        case .vectorGGUF: "llama.cpp control vector (.gguf), read and converted"
        case .gsm8k: "GSM8K JSON lines, read as a task"
        }
    }

    var fileName: String {
        switch self {
        case .safetensors: "model.safetensors"
        case .gguf: "model.gguf"
        case .llama2c: "model.bin"
        case .llama2cTokenizer: "tokenizer.bin"
        case .config: "config.json"
        case .tokenizer: "tokenizer.json"
        case .vectorSafetensors: "vector.safetensors"
        case .vectorGGUF: "vector.gguf"
        case .gsm8k: "test.jsonl"
        }
    }

    enum Mutation { case binary, safetensors, json, jsonLines }

    var mutation: Mutation {
        switch self {
        case .config, .tokenizer: .json
        case .gsm8k: .jsonLines
        case .safetensors, .vectorSafetensors: .safetensors
        default: .binary
        }
    }

    /// The built-in valid input.
    public func seed() throws -> [UInt8] {
        switch self {
        case .safetensors: try FuzzSeeds.safetensorsModel()
        case .gguf: try FuzzSeeds.ggufModel()
        case .llama2c: FuzzSeeds.llama2cCheckpoint()
        case .llama2cTokenizer: FuzzSeeds.llama2cTokenizer()
        case .config: Array(FuzzSeeds.qwenConfig.utf8)
        case .tokenizer: FuzzSeeds.tokenizerJSON()
        case .vectorSafetensors: try FuzzSeeds.vectorSafetensors()
        case .vectorGGUF: try FuzzSeeds.vectorGGUF()
        case .gsm8k: Array(FuzzSeeds.gsm8k.utf8)
        }
    }

    /// Files written once beside the mutated one.
    var companions: [String: [UInt8]] {
        switch self {
        case .safetensors: ["config.json": Array(FuzzSeeds.hfConfig.utf8)]
        case .llama2c: ["tokenizer.bin": FuzzSeeds.llama2cTokenizer()]
        default: [:]
        }
    }

    /// Where the fields worth hitting end: the header of a binary format.
    func headerEnd(_ base: [UInt8], at url: URL) -> Int {
        switch self {
        case .safetensors, .vectorSafetensors: return Mutator.safetensorsHeaderEnd(base)
        case .gguf, .vectorGGUF: return (try? GGUFFile(url: url).dataOffset) ?? base.count
        case .llama2c: return 28
        default: return base.count
        }
    }

    /// Feeds the file to its loaders; an accepted input must also be usable.
    func load(_ url: URL, tokens: Int) throws {
        switch self {
        case .safetensors, .gguf, .llama2c:
            let m = try LanguageModel(path: url.path, backend: CPUBackend())
            let ids = [1, 2, 3].map { $0 % m.config.vocabSize }
            let logits = try m.logits(ids: ids)
            try require(logits.count == ids.count && logits.allSatisfy { $0.count == m.config.vocabSize }, "logits of the wrong shape")
            if let t = m.tokenizer { _ = t.decode(t.encode("the hat is on", addSpecialTokens: true)) }
        case .llama2cTokenizer:
            let t = try Tokenizer.load(llama2cTokenizer: url, vocabSize: tokens)
            _ = t.decode(t.encode("the hat is on", addSpecialTokens: true))
        case .config:
            _ = try ModelConfig.fromHF(configJSON: url)
        case .tokenizer:
            let t = try Tokenizer.load(tokenizerJSON: url)
            _ = t.decode(t.encode("the hat is on", addSpecialTokens: true))
        case .vectorSafetensors, .vectorGGUF:
            let v = try SteeringVectorFile.read(url)
            _ = v.intervention()
            // What was accepted converts and reads back unchanged (`roast vector convert`).
            let copy = url.deletingLastPathComponent().appendingPathComponent("copy." + url.pathExtension)
            try v.write(to: copy)
            try require(try SteeringVectorFile.read(copy).vectors == v.vectors, "the vector changed in a round trip")
        case .gsm8k:
            let problems = try GSM8KTask.read(url)
            try require(problems.allSatisfy { !$0.question.isEmpty && Double($0.answer) != nil }, "a problem without a question or a numeric answer")
        }
    }

    func require(_ ok: Bool, _ what: String) throws {
        if !ok { throw FuzzInvariantError(description: what) }
    }
}

/// An accepted input that broke a promise of the loader: a bug, not a rejection.
struct FuzzInvariantError: Error, CustomStringConvertible {
    let description: String
}
