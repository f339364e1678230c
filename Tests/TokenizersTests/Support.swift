import Formats
import Foundation
import XCTest
@testable import Tokenizers

/// Tests/Fixtures, found from this file's path so tests run from any working directory.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// The repository root (for models/ downloaded by `make model`).
let repoRoot = fixtures.deletingLastPathComponent().deletingLastPathComponent()

struct FixtureLine: Decodable {
    let text: String
    let ids: [Int]
}

/// Reads a `{"text":..,"ids":[..]}` per line file.
func loadJSONL(_ name: String) throws -> [FixtureLine] {
    let url = fixtures.appendingPathComponent("tokenizers").appendingPathComponent(name)
    let text = try String(contentsOf: url, encoding: .utf8)
    let decoder = JSONDecoder()
    return try text.split(separator: "\n", omittingEmptySubsequences: true).map {
        try decoder.decode(FixtureLine.self, from: Data($0.utf8))
    }
}

/// Tokenizers are loaded once per test run (the Qwen vocabulary is 151k entries).
enum Shared {
    static let qwen3: Result<Tokenizer, Error> = Result {
        try Tokenizer.load(tokenizerJSON: fixtures.appendingPathComponent("models/qwen3-tokenizer/tokenizer.json"))
    }
    static let stories: Result<Tokenizer, Error> = Result {
        try Tokenizer.load(tokenizerJSON: fixtures.appendingPathComponent("models/stories260K-hf/tokenizer.json"))
    }
    static let smolGGUF = repoRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let smolGGUFFile: Result<GGUFFile, Error> = Result { try GGUFFile(url: smolGGUF) }
    static let smollm2: Result<Tokenizer, Error> = Result { try Tokenizer.load(gguf: try smolGGUFFile.get()) }
}

/// Byte-exact string comparison (`==` on String is canonical equivalence and would hide an
/// NFC/NFD difference).
func sameBytes(_ a: String, _ b: String) -> Bool { Array(a.utf8) == Array(b.utf8) }
