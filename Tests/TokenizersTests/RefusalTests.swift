import Formats
import Foundation
@testable import Tokenizers
import XCTest

/// tokenizer.json files that used to load (and tokenise wrongly) are refused, naming the field.
final class RefusalTests: XCTestCase {
    /// stories260K's tokenizer.json with `change` applied to its parsed root, written alone in a fresh folder.
    func variant(_ change: (inout [String: Any]) -> Void) throws -> URL {
        let base = fixtures.appendingPathComponent("models/stories260K-hf/tokenizer.json")
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: base)) as! [String: Any]
        change(&root)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        return url
    }

    func model(_ root: inout [String: Any], _ change: (inout [String: Any]) -> Void) {
        var m = root["model"] as! [String: Any]
        change(&m)
        root["model"] = m
    }

    func assertRefused(_ url: URL, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url), line: line) { e in
            let m = "\(e)"
            XCTAssertTrue(m.hasPrefix(url.path + ": "), m, line: line)
            XCTAssertTrue(m.contains(fragment), "lacks \"\(fragment)\": \(m)", line: line)
            XCTAssertFalse(m.contains("\n"), m, line: line)
        }
    }

    func testUnchangedLoads() throws {
        XCTAssertNoThrow(try Tokenizer.load(tokenizerJSON: try variant { _ in }))
    }

    func testEmptyVocab() throws {
        // The added tokens alone used to make a tokenizer that turned every text into [].
        assertRefused(try variant { r in model(&r) { $0["vocab"] = [String: Any](); $0["merges"] = [Any]() } }, "'model.vocab' is empty")
    }

    func testDuplicateIDs() throws {
        assertRefused(try variant { r in model(&r) { var v = $0["vocab"] as! [String: Any]; v["▁t"] = v["a"]; $0["vocab"] = v } },
                      "'model.vocab' gives id")
    }

    func testMergesNamingUnknownTokens() throws {
        assertRefused(try variant { r in model(&r) { $0["merges"] = ["▁ zq"] + ($0["merges"] as! [Any]) } },
                      "merges[0] names \"zq\", which is not in 'model.vocab'")
    }

    func testUnknownDecoder() throws {
        assertRefused(try variant { $0["decoder"] = ["type": "WordPieceX"] }, "unsupported 'decoder' type \"WordPieceX\"")
        assertRefused(try variant { $0["decoder"] = ["type": "Sequence", "decoders": [["type": "Fuse"], ["type": "CTC"]]] },
                      "'decoder.decoders[1]' type \"CTC\"")
    }

    func testWrongTypeFlags() throws {
        assertRefused(try variant { $0["pre_tokenizer"] = ["type": "Metaspace", "add_prefix_space": "yes"] },
                      "'pre_tokenizer.add_prefix_space' is a string \"yes\", expected a boolean")
        assertRefused(try variant { r in model(&r) { $0["byte_fallback"] = 1 } }, "'model.byte_fallback' is a number 1, expected a boolean")
    }

    func testSparseHugeIDs() throws {
        assertRefused(try variant { r in model(&r) { var v = $0["vocab"] as! [String: Any]; v["a"] = 3_999_999; $0["vocab"] = v } },
                      "token ids run up to 3999999, but only")
    }
}
