import Formats
import Foundation
import Roast
import Tasks
import XCTest

/// Errors say what and where in one line, in the engine's words.
final class MessageTests: XCTestCase {
    func testJSONLinesNameTheBadLine() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("t.jsonl")
        try Data("{\"text\":\"a\"}\n{\"text\": 3}\n".utf8).write(to: url)
        assertRefused("\(url.path):2: \"text\" is a number 3, expected a string") { try Datasets.strings(url, field: "text") }
        try Data("{\"text\":\"a\"}\n\n{\"text\": \"ab\n".utf8).write(to: url)
        assertRefused("\(url.path):3: not a JSON line: unterminated string at column 10") { try Datasets.strings(url, field: "text") }
        try Data("{\"text\":\"a\"}\n[1]\n".utf8).write(to: url)
        assertRefused("\(url.path):2: an array, expected an object with a \"text\" string") { try Datasets.strings(url, field: "text") }
        try Data("{\"text\":\"a\"}\n{\"txt\":\"b\"}\n".utf8).write(to: url)
        assertRefused("\(url.path):2: no \"text\" field") { try Datasets.strings(url, field: "text") }
        try Data("{\"text\":\"a\"}\n{\"text\":\"b\"}\n".utf8).write(to: url)
        XCTAssertEqual(try Datasets.strings(url, field: "text"), ["a", "b"])
        assertRefused("\(dir.path)/none.jsonl: cannot read the JSON-lines file: No such file or directory") {
            try Datasets.strings(dir.appendingPathComponent("none.jsonl"), field: "text")
        }
    }

    func testWriteFailuresNameThePath() throws {
        let dir = try temporaryFolder(self)
        let missing = dir.appendingPathComponent("no/such/folder/v.safetensors")
        assertRefused("\(missing.path): cannot write: the folder \(dir.path)/no/such/folder does not exist") {
            try OutputFile.write(Data([1]), to: missing)
        }
        let file = dir.appendingPathComponent("f")
        try Data([1]).write(to: file)
        assertRefused("\(file.path)/x.json: cannot write: \(file.path) is not a folder") { try OutputFile.write(Data([1]), to: file.appendingPathComponent("x.json")) }
        assertRefused("\(file.path): cannot create the folder: a file of that name exists") { try OutputFile.makeFolder(file) }
        // Nothing half-written: an existing file is untouched when a write fails.
        let readOnly = dir.appendingPathComponent("ro")
        try OutputFile.makeFolder(readOnly)
        let kept = readOnly.appendingPathComponent("kept.json")
        try OutputFile.write(Data("old".utf8), to: kept)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: readOnly.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: readOnly.path) }
        if getuid() != 0 {  // root writes anywhere
            assertRefused("\(kept.path): cannot write: Permission denied") { try OutputFile.write(Data("new".utf8), to: kept) }
            XCTAssertEqual(try Data(contentsOf: kept), Data("old".utf8))
        }
    }

    func testDecodingErrorsNameFieldExpectedAndFound() throws {
        struct S: Decodable { let n: Int; let xs: [Float]; let flag: Bool }
        func message(_ json: String) -> String {
            let doc = try? Data(json.utf8).withUnsafeBytes { try JSON.parse($0) }
            switch Result(catching: { try JSONDecoder().decode(S.self, from: Data(json.utf8)) }) {
            case .success: return "decoded"
            case .failure(let e): return DecodingErrorText.describe(e, json: doc)
            }
        }
        XCTAssertEqual(message(#"{"n":"5","xs":[],"flag":true}"#), "field 'n': expected an integer, found a string \"5\"")
        XCTAssertEqual(message(#"{"n":5,"xs":[1,"x"],"flag":true}"#), "field 'xs[1]': expected a number, found a string \"x\"")
        XCTAssertEqual(message(#"{"n":5,"xs":[],"flag":null}"#), "field 'flag': expected a boolean, found null")
        XCTAssertEqual(message(#"{"n":5,"xs":[]}"#), "missing field 'flag'")
        XCTAssertEqual(message(#"{"n":5,"xs":{},"flag":true}"#), "field 'xs': expected an array, found an object")
    }
}
