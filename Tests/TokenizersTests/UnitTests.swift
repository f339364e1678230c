import Foundation
import XCTest
@testable import Tokenizers

/// A byte-level vocabulary holding the 256 single bytes (ids 0...255) plus `extra` tokens.
private func byteLevelSpec(extra: [String] = [], merges: [(String, String)] = [], specials: [String] = []) -> TokenizerSpec {
    var tokens = (0..<256).map { String(ByteLevel.byteToScalar[$0]) }
    tokens += extra
    var special: [String: Int] = [:]
    for s in specials { special[s] = tokens.count; tokens.append(s) }
    return TokenizerSpec(kind: .byteLevelBPE, tokens: tokens, merges: merges, specialTokens: special, preTokenizer: .gpt2)
}

/// A rare character that the tokenizer splits across byte tokens (the first one incomplete).
func splitChar(_ tok: Tokenizer) -> String {
    for c in ["𓀀", "𝔘", "ꙮ", "🫠", "𐌰"] {
        let ids = tok.encode(c)
        if ids.count > 1, tok.tokenBytes(ids[0]).count < c.utf8.count { return c }
    }
    return "𓀀"
}

final class PreTokenizerTests: XCTestCase {
    private func words(_ p: PreTokenizer, _ s: String) -> [String] {
        let scalars = Array(s.unicodeScalars)
        var out: [String] = []
        var start = 0
        for end in p.split(scalars) {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: scalars[start..<end])
            out.append(String(v))
            start = end
        }
        return out
    }

    func testQwen2Regex() {
        XCTAssertEqual(words(.qwen2, "Hello  world\n\n  x"), ["Hello", " ", " world", "\n\n", " ", " x"])
        XCTAssertEqual(words(.qwen2, "DON'T we'll"), ["DON", "'T", " we", "'ll"])
        XCTAssertEqual(words(.qwen2, "12345"), ["1", "2", "3", "4", "5"])
        XCTAssertEqual(words(.qwen2, "$hello x   "), ["$hello", " x", "   "])
        XCTAssertEqual(words(.qwen2, "a.\n\nb"), ["a", ".\n\n", "b"])
        XCTAssertEqual(words(.qwen2, " \t\n x"), [" \t\n", " x"])
        // Letters by Unicode category, scalars not graphemes: the combining mark (Mn) ends the word.
        XCTAssertEqual(words(.qwen2, "cafe\u{301}s"), ["cafe", "\u{301}s"])
        XCTAssertEqual(words(.qwen2, "日本語のテキスト"), ["日本語のテキスト"])
        XCTAssertEqual(words(.qwen2, "\u{A0}non"), ["\u{A0}non"])
    }

    func testLlama3Digits() {
        XCTAssertEqual(words(.llama3, "12345 x"), ["123", "45", " x"])
    }

    func testGPT2Regex() {
        XCTAssertEqual(words(.gpt2, "DON'T don't"), ["DON", "'", "T", " don", "'t"])
        XCTAssertEqual(words(.gpt2, "$hello 12345"), ["$", "hello", " 12345"])
        XCTAssertEqual(words(.gpt2, "and  2"), ["and", " ", " 2"])
        XCTAssertEqual(words(.gpt2, "a\n\n5"), ["a", "\n", "\n", "5"])
    }

    func testSmolLMDigitsFirst() {
        XCTAssertEqual(words(.smollm, "lay 16 eggs"), ["lay", " ", "1", "6", " eggs"])
        XCTAssertEqual(words(.smollm, "and  2"), ["and", "  ", "2"])
    }
}

final class EncodingTests: XCTestCase {
    /// Special tokens are split out first, longest match first, and only when parsing is on.
    func testSpecialTokensLongestMatch() throws {
        let tok = try Tokenizer(spec: byteLevelSpec(specials: ["<|a|>", "<|a|>b"]))
        let a = tok.id(of: "<|a|>")!, ab = tok.id(of: "<|a|>b")!
        let x = Int(UInt8(ascii: "x")), y = Int(UInt8(ascii: "y"))
        XCTAssertEqual(tok.encode("x<|a|>by"), [x, ab, y])
        XCTAssertEqual(tok.encode("x<|a|>y"), [x, a, y])
        XCTAssertEqual(tok.encode("<|a|><|a|>"), [a, a])
        XCTAssertFalse(tok.encode("x<|a|>y", parseSpecial: false).contains(a))
        XCTAssertEqual(tok.decode(tok.encode("x<|a|>by")), "x<|a|>by")
        XCTAssertEqual(tok.decode(tok.encode("x<|a|>by"), skipSpecial: true), "xy")
    }

    func testQwenSpecialTokensInText() throws {
        let tok = try Shared.qwen3.get()
        XCTAssertEqual(tok.encode("<|im_start|>user"), [151_644, 872])
        XCTAssertEqual(tok.encode("<think>"), [151_667])
        XCTAssertNotEqual(tok.encode("<|im_start|>", parseSpecial: false), [151_644])
        XCTAssertEqual(tok.decode([151_644, 872, 151_645], skipSpecial: true), "user")
        // <think> is an added token but not a "special" one, so it is kept.
        XCTAssertEqual(tok.decode([151_667], skipSpecial: true), "<think>")
    }

    /// NFC and NFD spellings are different tokens: the vocabulary is keyed by bytes.
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        let nfc = "\u{E9}", nfd = "e\u{301}"
        XCTAssertEqual(nfc, nfd)  // what a [String: Int] vocabulary would trip over
        let spec = TokenizerSpec(kind: .sentencePieceBPE, tokens: ["<unk>", "e", "\u{301}", nfc, nfd],
                                 merges: [("e", "\u{301}")], preTokenizer: .none, unk: 0)
        let tok = try Tokenizer(spec: spec)
        XCTAssertEqual(tok.id(of: nfc), 3)
        XCTAssertEqual(tok.id(of: nfd), 4)
        XCTAssertEqual(tok.encode(nfc), [3])
        XCTAssertEqual(tok.encode(nfd), [4])
        XCTAssertEqual(tok.encode("x"), [0])
        XCTAssertTrue(sameBytes(tok.decode([4]), nfd))
    }

    /// Scalars missing from a sentencepiece vocabulary fall back to <0xNN>, else to unk (fused).
    func testByteFallbackAndUnk() throws {
        var tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { String(format: "<0x%02X>", $0) }
        tokens += ["▁", "a", "▁a"]
        var spec = TokenizerSpec(kind: .sentencePieceBPE, tokens: tokens, merges: [("▁", "a")], preTokenizer: .none,
                                 unk: 0, byteFallback: true, addPrefixSpace: true)
        var tok = try Tokenizer(spec: spec)
        XCTAssertEqual(tok.encode("aé"), [261, 3 + 0xC3, 3 + 0xA9])
        XCTAssertEqual(tok.decode(tok.encode("a é😀 a")), "a é😀 a")
        spec.byteFallback = false
        spec.fuseUnk = true
        tok = try Tokenizer(spec: spec)
        XCTAssertEqual(tok.encode("aéé"), [261, 0])
    }

    func testScoreMerging() throws {
        // Merge by highest score of the merged piece: "ab" (-1) beats "bc" (-2).
        let spec = TokenizerSpec(kind: .sentencePieceBPE, tokens: ["<unk>", "a", "b", "c", "ab", "bc", "abc"],
                                 scores: [0, 0, 0, 0, -1, -2, -3], preTokenizer: .none, unk: 0)
        let tok = try Tokenizer(spec: spec)
        XCTAssertEqual(tok.encode("abc"), [6])
        XCTAssertEqual(tok.encode("abcbc"), [6, 5])
    }

    func testDecodeNeverCrashes() throws {
        let tok = try Shared.qwen3.get()
        XCTAssertEqual(tok.decode([-1, 10_000_000, Int.max]), "")
        XCTAssertEqual(tok.tokenBytes(-5), [])
        XCTAssertNil(tok.token(-1))
        XCTAssertEqual(tok.encode(""), [])
        // A lone byte token decodes to U+FFFD rather than failing.
        let lone = tok.encode(splitChar(tok)).first!
        XCTAssertEqual(tok.decode([lone]), "\u{FFFD}")
    }

    func testInvalidSpecIsAnError() {
        XCTAssertThrowsError(try Tokenizer(spec: TokenizerSpec(kind: .byteLevelBPE, tokens: [], preTokenizer: .gpt2)))
        var spec = byteLevelSpec()
        spec.eos = 9999
        XCTAssertThrowsError(try Tokenizer(spec: spec)) { e in
            XCTAssertTrue("\(e)".contains("eos id 9999"), "\(e)")
        }
    }
}

final class StreamingDecoderTests: XCTestCase {
    private func checkStreaming(_ tok: Tokenizer, _ lines: [FixtureLine], skipSpecial: Bool = false) {
        for l in lines {
            var dec = StreamingDecoder(tokenizer: tok, skipSpecial: skipSpecial)
            var out = ""
            var pieces: [String] = []
            for id in l.ids {
                let p = dec.push(id)
                pieces.append(p)
                out += p
            }
            out += dec.flush()
            XCTAssertTrue(sameBytes(out, tok.decode(l.ids, skipSpecial: skipSpecial)), "streaming \(l.text.debugDescription)")
            // Nothing is emitted half-way through a UTF-8 sequence.
            if !tok.decode(l.ids).contains("\u{FFFD}") {
                XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, l.text.debugDescription)
            }
        }
    }

    func testMatchesDecodeOnFixtures() throws {
        checkStreaming(try Shared.qwen3.get(), try loadJSONL("qwen3.jsonl"))
        checkStreaming(try Shared.qwen3.get(), try loadJSONL("qwen3.jsonl"), skipSpecial: true)
        checkStreaming(try Shared.stories.get(), try loadJSONL("stories260K.jsonl"))
    }

    func testHoldsBackIncompleteSequences() throws {
        let tok = try Shared.qwen3.get()
        let ch = splitChar(tok)
        let ids = tok.encode(ch)
        XCTAssertGreaterThan(ids.count, 1)  // the character is split across byte tokens
        var dec = StreamingDecoder(tokenizer: tok)
        var outs = ids.map { dec.push($0) }
        outs.append(dec.flush())
        XCTAssertEqual(outs.dropLast(2).joined(), "")
        XCTAssertEqual(outs.joined(), ch)
        // An unfinished sequence comes out as U+FFFD on flush.
        var d2 = StreamingDecoder(tokenizer: tok)
        XCTAssertEqual(d2.push(ids[0]), "")
        XCTAssertEqual(d2.flush(), "\u{FFFD}")
    }

    func testSentencepieceByteFallbackAndLeadingSpace() throws {
        let tok = try Shared.stories.get()
        let ids = tok.encode("Hi 日本")  // CJK goes through <0xNN> pieces
        var dec = StreamingDecoder(tokenizer: tok)
        var out = ""
        for id in ids { out += dec.push(id) }
        out += dec.flush()
        XCTAssertEqual(out, "Hi 日本")
        XCTAssertEqual(out, tok.decode(ids))
    }
}

final class MalformedInputTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func expectError(_ json: String, _ fragment: String, sub: String = "case", file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = dir.appendingPathComponent(sub + String(line))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent("tokenizer.json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url), file: file, line: line) { error in
            guard let e = error as? TokenizerError else { return XCTFail("not a TokenizerError: \(error)", file: file, line: line) }
            let d = e.description
            XCTAssertTrue(d.contains(url.path), "names the file: \(d)", file: file, line: line)
            XCTAssertTrue(d.contains(fragment), "says what is wrong (\(fragment)): \(d)", file: file, line: line)
            XCTAssertFalse(d.contains("\n"), "one line: \(d)", file: file, line: line)
        }
    }

    func testBrokenTokenizerJSON() throws {
        try expectError("this is not json", "not valid JSON: invalid literal at byte 0")
        try expectError(#"{"model": {"vocab": {"a": 0"#, "not valid JSON: unexpected end, expected ',' or '}' at byte 27")
        try expectError("{\"model\": \"\u{1}\"}", "not valid JSON: control character in string at byte 11")
        try expectError("[]", "top level is an array")
        try expectError(#"{"version": "1.0"}"#, "missing 'model'")
        try expectError(#"{"model": 5}"#, "'model' is a number")
        try expectError(#"{"model": {"type": "BPE", "merges": []}}"#, "missing 'model.vocab'")
        try expectError(#"{"model": {"type": "BPE", "vocab": [], "merges": []}}"#, "'model.vocab' is an array")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}}}"#, "missing 'model.merges'")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": "a b"}}"#, "'model.merges' is a string")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#, "entry 'a'")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}}"#, "entry 'a'")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}}"#, "merges[0]")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}}"#, "merges[0]")
        try expectError(#"{"model": {"type": "Unigram", "vocab": [], "merges": []}}"#, "unsupported model type 'Unigram'")
        try expectError(#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "empty")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": {}}"#, "'added_tokens' is an object")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"}}"#, "unsupported 'normalizer' type 'Lowercase'")
        try expectError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}}"#, "unsupported 'pre_tokenizer' Split regex")
    }

    /// tokenizer.json keys are kept byte for byte: an NFC and an NFD spelling are two tokens.
    func testTokenizerJSONKeepsCanonicallyEquivalentKeys() throws {
        let url = dir.appendingPathComponent("tokenizer.json")
        try #"{"model": {"type": "BPE", "vocab": {"e": 0, "\u0301": 1, "\u00e9": 2, "e\u0301": 3}, "merges": [["e", "\u0301"]]}}"#
            .write(to: url, atomically: true, encoding: .utf8)
        let tok = try Tokenizer.load(tokenizerJSON: url)
        XCTAssertEqual(tok.id(of: "\u{E9}"), 2)
        XCTAssertEqual(tok.id(of: "e\u{301}"), 3)
        XCTAssertEqual(tok.encode("e\u{301}"), [3])
        XCTAssertEqual(tok.encode("\u{E9}"), [2])
    }

    func testMissingFile() {
        let url = dir.appendingPathComponent("nope/tokenizer.json")
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in
            XCTAssertTrue("\(e)".contains("cannot read"), "\(e)")
            XCTAssertTrue("\(e)".contains(url.path))
        }
    }

    func testBrokenTokenizerConfig() throws {
        let url = dir.appendingPathComponent("tokenizer.json")
        try #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}"#
            .write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Tokenizer.load(tokenizerJSON: url).encode("ab"), [2])
        let config = dir.appendingPathComponent("tokenizer_config.json")
        try #"{"bos_token": 5}"#.write(to: config, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in
            XCTAssertTrue("\(e)".contains("tokenizer_config.json"), "\(e)")
            XCTAssertTrue("\(e)".contains("'bos_token' is a number"), "\(e)")
        }
    }

    func testBrokenLlama2cFile() throws {
        let good = try Data(contentsOf: fixtures.appendingPathComponent("models/stories260K/tok512.bin"))
        let url = dir.appendingPathComponent("tok.bin")
        try good.prefix(1000).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(llama2cTokenizer: url, vocabSize: 512)) { e in
            XCTAssertTrue("\(e)".contains("tok.bin"), "\(e)")
            XCTAssertTrue("\(e)".contains("truncated") || "\(e)".contains("runs past"), "\(e)")
        }
        try Data([1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F]).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(llama2cTokenizer: url, vocabSize: 1)) { e in
            XCTAssertTrue("\(e)".contains("runs past the end"), "\(e)")
        }
        try good.write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(llama2cTokenizer: url, vocabSize: 600))
    }

    func testBadGGUFMetadata() {
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "bert", pre: nil, tokens: ["a"], merges: [], scores: nil,
                                                            tokenTypes: nil, bos: nil, eos: nil, addBOS: nil, chatTemplate: nil)) { e in
            XCTAssertTrue("\(e)".contains("unsupported tokenizer.ggml.model 'bert'"), "\(e)")
        }
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "gpt2", pre: "mystery", tokens: ["a"], merges: [], scores: nil,
                                                            tokenTypes: nil, bos: nil, eos: nil, addBOS: nil, chatTemplate: nil))
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "gpt2", pre: nil, tokens: ["a", "b"], merges: [], scores: nil,
                                                            tokenTypes: [1], bos: nil, eos: nil, addBOS: nil, chatTemplate: nil))
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "gpt2", pre: nil, tokens: ["a"], merges: ["a"], scores: nil,
                                                            tokenTypes: nil, bos: nil, eos: nil, addBOS: nil, chatTemplate: nil))
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "llama", pre: nil, tokens: ["a"], merges: [], scores: nil,
                                                            tokenTypes: nil, bos: nil, eos: nil, addBOS: nil, chatTemplate: nil))
        XCTAssertThrowsError(try Tokenizer.fromGGUFMetadata(model: "gpt2", pre: nil, tokens: ["a"], merges: [], scores: nil,
                                                            tokenTypes: nil, bos: 7, eos: nil, addBOS: nil, chatTemplate: nil)) { e in
            XCTAssertTrue("\(e)".contains("bos id 7"), "\(e)")
        }
    }

    /// A sentencepiece GGUF ("llama" model: scores, byte tokens, control tokens).
    func testLlamaGGUFMetadata() throws {
        let hf = try Tokenizer.load(llama2cTokenizer: fixtures.appendingPathComponent("models/stories260K/tok512.bin"), vocabSize: 512)
        let tokens = (0..<512).map { hf.token($0)! }
        var types = [Int32](repeating: 1, count: 512)
        types[0] = 2
        types[1] = 3
        types[2] = 3
        for i in 3..<259 { types[i] = 6 }
        let data = try Data(contentsOf: fixtures.appendingPathComponent("models/stories260K/tok512.bin"))
        var scores: [Float] = []
        var p = 4
        for _ in 0..<512 {
            let bits = data[p..<p + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
            let len = data[p + 4..<p + 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            scores.append(Float(bitPattern: bits))
            p += 8 + len
        }
        let tok = try Tokenizer.fromGGUFMetadata(model: "llama", pre: nil, tokens: tokens, merges: [], scores: scores,
                                                 tokenTypes: types, bos: 1, eos: 2, addBOS: true, chatTemplate: nil)
        XCTAssertEqual(tok.unk, 0)
        XCTAssertEqual(tok.encode("Once upon a time", addSpecialTokens: true), hf.encode("Once upon a time", addSpecialTokens: true))
        // llama.cpp puts a space prefix on the text after a control token too.
        XCTAssertEqual(tok.encode("Hi</s>Hi"), tok.encode("Hi") + [2] + tok.encode("Hi"))
    }
}

final class LongInputTests: XCTestCase {
    /// One long sentencepiece "word" (the whole text) encodes and round-trips (the merge loop is a
    /// heap, so this stays fast; speed itself is measured outside the tests).
    func testLongWordRoundTrips() throws {
        let stories = try Shared.stories.get()
        let long = String(repeating: "Once upon a time there was a little girl named Lily. ", count: 400)
        let ids = stories.encode(long)
        XCTAssertEqual(stories.decode(ids), long)
        XCTAssertLessThan(ids.count, long.utf8.count / 2, "merges must apply inside a long word")
    }
}
