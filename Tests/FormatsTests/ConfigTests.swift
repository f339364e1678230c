import Foundation
import XCTest
@testable import Formats

final class ConfigTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryFolder(self) }

    let base: [String: Any] = [
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
        "num_attention_heads": 8, "vocab_size": 1000, "max_position_embeddings": 2048,
    ]

    func config(_ fields: [String: Any], removing: [String] = []) throws -> URL {
        var j = base.merging(fields) { $1 }
        for k in removing { j.removeValue(forKey: k) }
        let url = dir.appendingPathComponent("config-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: j).write(to: url)
        return url
    }

    func testDefaults() throws {
        let c = try ModelConfig.fromHF(configJSON: try config([:]))
        XCTAssertEqual(c, ModelConfig(architecture: .llama, hiddenSize: 256, intermediateSize: 512, layerCount: 2, headCount: 8,
                                      kvHeadCount: 8, headDim: 32, vocabSize: 1000, contextLength: 2048, rmsNormEps: 1e-6,
                                      ropeTheta: 10000, tieWordEmbeddings: false))
        XCTAssertEqual(c.qDim, 256)
        // Codable round trip (the engine may cache configs as JSON).
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(c)), c)
    }

    func testFieldVariants() throws {
        var c = try ModelConfig.fromHF(configJSON: try config(["eos_token_id": [2, 7], "bos_token_id": NSNull(), "head_dim": NSNull(),
                                                                 "num_key_value_heads": 2, "rope_theta": 500000.0, "tie_word_embeddings": true]))
        XCTAssertEqual(c.eosTokenIDs, [2, 7])
        XCTAssertNil(c.bosTokenID)
        XCTAssertEqual(c.headDim, 32)
        XCTAssertEqual(c.kvHeadCount, 2)
        XCTAssertEqual(c.ropeTheta, 500000)
        XCTAssertTrue(c.tieWordEmbeddings)

        c = try ModelConfig.fromHF(configJSON: try config(["eos_token_id": NSNull(), "rope_parameters": ["rope_theta": 1e6, "rope_type": "default"]]))
        XCTAssertEqual(c.eosTokenIDs, [])
        XCTAssertEqual(c.ropeTheta, 1e6)
        XCTAssertNil(c.ropeScaling)

        c = try ModelConfig.fromHF(configJSON: try config(["rope_theta": 500000, "rope_scaling": [
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192]]))
        XCTAssertEqual(c.ropeScaling, RopeScaling(kind: .llama3, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(c.ropeTheta, 500000)
        c = try ModelConfig.fromHF(configJSON: try config(["rope_scaling": ["type": "linear", "factor": 2]]))
        XCTAssertEqual(c.ropeScaling, RopeScaling(kind: .linear, factor: 2))

        c = try ModelConfig.fromHF(configJSON: try config(["model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4096]))
        XCTAssertTrue(c.attentionBias)
        XCTAssertFalse(c.qkNorm)
        c = try ModelConfig.fromHF(configJSON: try config(["model_type": "qwen3", "head_dim": 64]))
        XCTAssertEqual(c.headDim, 64)
        XCTAssertTrue(c.qkNorm)
        XCTAssertFalse(c.attentionBias)
        c = try ModelConfig.fromHF(configJSON: try config(["model_type": "mistral", "sliding_window": NSNull()]))
        XCTAssertEqual(c.architecture, .llama)
    }

    func testErrors() throws {
        for field in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "max_position_embeddings", "model_type"] {
            let u = try config([:], removing: [field])
            assertFormatError(u, "missing field \(field)") { try ModelConfig.fromHF(configJSON: u) }
        }
        var u = try config(["hidden_size": "big"])
        assertFormatError(u, "field hidden_size is \"big\", not an integer") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["model_type": "gpt2"])
        assertFormatError(u, "unsupported model_type \"gpt2\"") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["model_type": "mistral", "sliding_window": 4096, "max_position_embeddings": 32768])
        assertFormatError(u, "sliding_window 4096 is not supported") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["rope_scaling": ["rope_type": "yarn", "factor": 4.0]])
        assertFormatError(u, "unsupported rope scaling type \"yarn\"") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["rope_scaling": ["rope_type": "llama3", "factor": 4.0]])
        assertFormatError(u, "llama3 rope scaling needs") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["num_key_value_heads": 3])
        assertFormatError(u, "head count 8 is not a multiple of the KV head count 3") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["eos_token_id": "</s>"])
        assertFormatError(u, "field eos_token_id is \"</s>\"") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["eos_token_id": 5000])
        assertFormatError(u, "special token id 5000 is outside the vocabulary of 1000") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["hidden_act": "gelu"])
        assertFormatError(u, "unsupported hidden_act \"gelu\"") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["model_type": "qwen2", "use_sliding_window": true])
        assertFormatError(u, "use_sliding_window true is not supported") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["attention_bias": true])
        assertFormatError(u, "attention_bias true for llama") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["mlp_bias": true])
        assertFormatError(u, "mlp_bias true is not supported") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["tie_word_embeddings": 1])
        assertFormatError(u, "field tie_word_embeddings is 1, not true/false") { try ModelConfig.fromHF(configJSON: u) }
        u = try config(["num_attention_heads": 0])
        assertFormatError(u, "num_attention_heads is 0") { try ModelConfig.fromHF(configJSON: u) }
        u = dir.appendingPathComponent("broken.json")
        try Data("{\"model_type\": ".utf8).write(to: u)
        assertFormatError(u, "config is not valid JSON") { try ModelConfig.fromHF(configJSON: u) }
        u = dir.appendingPathComponent("absent.json")
        assertFormatError(u, "cannot open") { try ModelConfig.fromHF(configJSON: u) }
    }

    func testFromGGUF() throws {
        var w = try smallGGUF()
        let url = dir.appendingPathComponent("c.gguf")
        try w.write(to: url)
        var c = try ModelConfig.fromGGUF(try GGUFFile(url: url))
        XCTAssertEqual(c, ModelConfig(architecture: .llama, hiddenSize: 32, intermediateSize: 64, layerCount: 1, headCount: 4,
                                      kvHeadCount: 2, headDim: 8, vocabSize: 16, contextLength: 128, rmsNormEps: 1e-5,
                                      ropeTheta: 10000, tieWordEmbeddings: true, bosTokenID: 1, eosTokenIDs: [2]))

        // qwen3: keys under its own prefix, q/k norms and an untied output found from the tensors.
        w = GGUFWriter()
        for (k, v) in [("embedding_length", 64), ("feed_forward_length", 96), ("block_count", 1), ("context_length", 512),
                       ("attention.head_count", 4), ("attention.head_count_kv", 2), ("attention.key_length", 32)] {
            w.set("qwen3.\(k)", .uint32(UInt32(v)))
        }
        w.set("general.architecture", .string("qwen3"))
        w.set("qwen3.attention.layer_norm_rms_epsilon", .float32(1e-6))
        w.set("qwen3.rope.freq_base", .float32(1e6))
        w.set("tokenizer.ggml.eos_token_id", .uint32(9))
        w.set("tokenizer.ggml.eot_token_id", .uint32(8))
        try w.addTensor("token_embd.weight", floats: [Float](repeating: 0, count: 64 * 10), shape: [10, 64])
        try w.addTensor("output.weight", floats: [Float](repeating: 0, count: 64 * 10), shape: [10, 64])
        try w.addTensor("blk.0.attn_q_norm.weight", floats: [Float](repeating: 1, count: 32), shape: [32])
        try w.write(to: url)
        c = try ModelConfig.fromGGUF(try GGUFFile(url: url))
        XCTAssertEqual(c, ModelConfig(architecture: .qwen3, hiddenSize: 64, intermediateSize: 96, layerCount: 1, headCount: 4,
                                      kvHeadCount: 2, headDim: 32, vocabSize: 10, contextLength: 512, rmsNormEps: 1e-6,
                                      ropeTheta: 1e6, tieWordEmbeddings: false, qkNorm: true, eosTokenIDs: [9, 8]))
        XCTAssertFalse(try GGUFFile(url: url).ropeInterleaved)

        w.set("general.architecture", .string("gpt2"))
        try w.write(to: url)
        assertFormatError(url, "unsupported general.architecture \"gpt2\"") { try ModelConfig.fromGGUF(try GGUFFile(url: url)) }
        w.set("general.architecture", .string("qwen3"))
        w.set("qwen3.block_count", .string("one"))
        try w.write(to: url)
        assertFormatError(url, "metadata qwen3.block_count is string(\"one\"), not an integer") { try ModelConfig.fromGGUF(try GGUFFile(url: url)) }
        var w2 = try smallGGUF()
        w2.set("llama.feed_forward_length", .array([]))
        try w2.write(to: url)
        assertFormatError(url, "metadata llama.feed_forward_length is array([]), not an integer") { try ModelConfig.fromGGUF(try GGUFFile(url: url)) }
        var w3 = GGUFWriter()
        w3.set("general.architecture", .string("llama"))
        try w3.write(to: url)
        assertFormatError(url, "missing metadata key llama.embedding_length") { try ModelConfig.fromGGUF(try GGUFFile(url: url)) }
    }
}

final class JSONTests: XCTestCase {
    func parse(_ s: String) throws -> JSON { try JSON.parse(Data(s.utf8), url: URL(fileURLWithPath: "/x.json"), what: "doc") }

    func testValues() throws {
        XCTAssertEqual(try parse(" {\"a\": [1, -2.5e1, true, false, null, \"x\\n\\u00e9\\ud83d\\ude00\\/\"], \"b\": {}} "),
                       .object([("a", .array([.int(1), .double(-25), .bool(true), .bool(false), .null, .string("x\né😀/")])), ("b", .object([]))]))
        XCTAssertEqual(try parse("9223372036854775807"), .int(Int.max))
        XCTAssertEqual(try parse("92233720368547758070"), .double(9.223372036854775807e19))
        XCTAssertEqual(try parse("4096.0").int, 4096)
        XCTAssertEqual(try parse("\"é\"").string, "é")
        XCTAssertEqual(try parse("-0"), .int(0))
        XCTAssertEqual(try parse("-123456789012345678"), .int(-123_456_789_012_345_678))
        XCTAssertEqual(try parse("1e3"), .double(1000))
        XCTAssertEqual(try parse("1e3").int, 1000)
        XCTAssertNil(try parse("1.5").int)
        XCTAssertEqual(try parse("[\"a\\\"b\", \"\\u0041\\t\"]"), .array([.string("a\"b"), .string("A\t")]))
    }

    /// Members keep file order, repeated keys, and their exact bytes: an NFC and an NFD key are
    /// two members (a `[String: …]` dictionary would merge them), and lookups match bytes.
    func testObjectsKeepOrderAndBytes() throws {
        let nfc = "\u{E9}", nfd = "e\u{301}"
        XCTAssertEqual(nfc, nfd)  // canonical equivalence: what a String-keyed dictionary compares
        let v = try parse("{\"z\": 1, \"\(nfd)\": 2, \"\(nfc)\": 3, \"a\": 4, \"z\": 5}")
        let members = try XCTUnwrap(v.members)
        XCTAssertEqual(members.map(\.key.utf8.count), [1, 3, 2, 1, 1])
        XCTAssertEqual(members.map(\.value), [.int(1), .int(2), .int(3), .int(4), .int(5)])
        XCTAssertEqual(v[nfc], .int(3))
        XCTAssertEqual(v[nfd], .int(2))
        XCTAssertEqual(v["z"], .int(5), "a repeated key means its last value")
        XCTAssertNil(v["missing"])
        XCTAssertNil(JSON.array([])["a"])
        // Equality is byte-exact too, and order matters.
        XCTAssertNotEqual(JSON.string(nfc), .string(nfd))
        XCTAssertNotEqual(JSON.object([(nfc, .null)]), .object([(nfd, .null)]))
        XCTAssertNotEqual(JSON.object([("a", .null), ("b", .null)]), .object([("b", .null), ("a", .null)]))
        XCTAssertNotEqual(JSON.int(1), .double(1))
    }

    func testAccessorsAndMessages() throws {
        let v = try parse("{\"s\": \"t\", \"b\": false, \"n\": null, \"a\": [1, 2], \"o\": {}, \"d\": 0.5}")
        XCTAssertEqual(v["s"]?.string, "t")
        XCTAssertEqual(v["b"]?.bool, false)
        XCTAssertEqual(v["n"]?.isNull, true)
        XCTAssertEqual(v["a"]?.array, [.int(1), .int(2)])
        XCTAssertEqual(v["o"]?.members?.count, 0)
        XCTAssertEqual(v["d"]?.double, 0.5)
        XCTAssertNil(v["s"]?.int)
        XCTAssertNil(v["s"]?.bool)
        XCTAssertEqual(["s", "b", "n", "a", "o", "d"].map { v[$0]!.typeName },
                       ["a string", "a boolean", "null", "an array", "an object", "a number"])
        XCTAssertEqual(["s", "b", "n", "a", "o", "d"].map { v[$0]!.brief }, ["\"t\"", "false", "null", "an array of 2", "an object", "0.5"])
    }

    func testSyntaxErrorWithoutAFile() {
        XCTAssertThrowsError(try Data("[1,]".utf8).withUnsafeBytes { try JSON.parse($0) }) { e in
            XCTAssertEqual("\(e)", "unexpected character at byte 3")
            XCTAssertEqual((e as? JSON.SyntaxError)?.offset, 3)
        }
    }

    func testErrors() {
        let u = URL(fileURLWithPath: "/x.json")
        for (text, message) in [("", "unexpected end, expected a value at byte 0"), ("{\"a\" 1}", "expected ':' at byte 5"),
                                ("[1, 2", "unexpected end, expected ',' or ']' at byte 5"), ("{\"a\": 01}", "number with a leading zero at byte 6"), ("{\"a\": 1 2}", "expected ',' or '}' at byte 8"),
                                ("\"abc", "unterminated string at byte 0"), ("\"\\x\"", "invalid escape at byte 2"),
                                ("\"\\ud800\"", "unpaired surrogate"), ("-", "invalid number at byte 1"), ("1.", "invalid number"),
                                ("tru", "invalid literal at byte 0"), ("{} x", "unexpected data after the end at byte 3"),
                                ("\"a\u{1}\"", "control character in string at byte 2"),
                                (String(repeating: "[", count: 200), "nested deeper than 128")] {
            assertFormatError(u, "doc is not valid JSON: \(message)") { try parse(text) }
        }
        assertFormatError(u, "string is not UTF-8 at byte 1") { try JSON.parse(Data([0x22, 0xFF, 0x22]), url: u, what: "doc") }
        // The byte named is where the bad sequence starts, with or without escapes before it.
        assertFormatError(u, "string is not UTF-8 at byte 4") { try JSON.parse(Data([0x22, 0x61, 0xC3, 0xA9, 0xC3, 0x22]), url: u, what: "doc") }
        assertFormatError(u, "string is not UTF-8 at byte 3") { try JSON.parse(Data([0x22, 0x5C, 0x6E, 0xE9, 0x22]), url: u, what: "doc") }
        assertFormatError(u, "unpaired surrogate") { try parse("\"\\udc00\"") }
        // Overlong forms, encoded surrogates, scalars past U+10FFFF and stray continuation bytes.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE2, 0x82]] {
            assertFormatError(u, "string is not UTF-8 at byte 2") { try JSON.parse(Data([0x22, 0x61] + bad + [0x22]), url: u, what: "doc") }
        }
        XCTAssertEqual(try JSON.parse(Data([0x22, 0xF0, 0x9F, 0x98, 0x80, 0xE2, 0x82, 0xAC, 0xC3, 0xA9, 0x5C, 0x6E, 0xC3, 0xA9, 0x22]), url: u, what: "doc"),
                       .string("😀€é\né"))
        // `base` is where the bytes start in the file (a safetensors header starts at byte 8).
        assertFormatError(u, "doc is not valid JSON: unexpected character at byte 103") {
            try Data("[1,]".utf8).withUnsafeBytes { try JSON.parse($0, url: u, what: "doc", base: 100) }
        }
    }
}
