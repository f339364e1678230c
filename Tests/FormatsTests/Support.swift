import Backend
import Foundation
import XCTest
@testable import Formats

/// Tests/Fixtures, found from this file so tests run from any working directory.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")
/// The repository root (for models/, made by `make model`).
let repoRoot = fixtures.deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary folder, removed when the test ends.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("FormatsTests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Runs `body`, requiring a FormatError whose message names `file` and contains every fragment.
func assertFormatError<T>(_ file: URL, _ fragments: String..., line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a FormatError containing \(fragments)", line: line)
    } catch let e as FormatError {
        XCTAssertTrue(e.description.hasPrefix(file.path + ":"), "message does not start with the path: \(e)", line: line)
        XCTAssertFalse(e.description.contains("\n"), "message is not one line: \(e)", line: line)
        for f in fragments {
            XCTAssertTrue(e.description.contains(f), "message lacks \"\(f)\": \(e)", line: line)
        }
    } catch {
        XCTFail("expected a FormatError, got \(type(of: error)): \(error)", line: line)
    }
}

func leBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func f32Bytes(_ values: [Float]) -> [UInt8] { values.flatMap { leBytes($0.bitPattern) } }
func floatsOf(_ t: TensorInfo) -> [Float] {
    (0..<t.data.count / 4).map { Float(bitPattern: UInt32(littleEndian: t.data.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
}

/// GGUF bytes assembled field by field, so tests can write files the writer would refuse.
struct RawGGUF {
    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var tensorCount: UInt64?          // nil: the real count
    var kvCount: UInt64?
    var kvs: [(key: String, type: UInt32, payload: [UInt8])] = []
    var tensors: [(name: String, ne: [UInt64], type: UInt32, offset: UInt64)] = []
    var alignment = 32
    var data: [UInt8] = []

    static func str(_ s: String) -> [UInt8] { leBytes(UInt64(s.utf8.count)) + Array(s.utf8) }

    func bytes() -> [UInt8] {
        var out = magic + leBytes(version) + leBytes(tensorCount ?? UInt64(tensors.count)) + leBytes(kvCount ?? UInt64(kvs.count))
        for kv in kvs { out += Self.str(kv.key) + leBytes(kv.type) + kv.payload }
        for t in tensors {
            out += Self.str(t.name) + leBytes(UInt32(t.ne.count))
            for d in t.ne { out += leBytes(d) }
            out += leBytes(t.type) + leBytes(t.offset)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out + data
    }

    func write(_ url: URL) throws -> URL {
        try Data(bytes()).write(to: url)
        return url
    }
}

/// A small valid GGUF made with the module's writer: metadata of every kind and four tensors.
func smallGGUF() throws -> GGUFWriter {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("general.name", .string("tiny"))
    w.set("llama.block_count", .uint32(1))
    w.set("llama.embedding_length", .uint32(32))
    w.set("llama.feed_forward_length", .uint32(64))
    w.set("llama.context_length", .uint32(128))
    w.set("llama.attention.head_count", .uint32(4))
    w.set("llama.attention.head_count_kv", .uint32(2))
    w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
    w.set("llama.rope.freq_base", .float32(10000))
    w.set("tokenizer.ggml.tokens", .array((0..<16).map { .string("t\($0)") }))
    w.set("tokenizer.ggml.scores", .array((0..<16).map { .float32(Float($0)) }))
    w.set("tokenizer.ggml.token_type", .array((0..<16).map { .int32(Int32($0 % 3)) }))
    w.set("tokenizer.ggml.bos_token_id", .uint32(1))
    w.set("tokenizer.ggml.eos_token_id", .uint32(2))
    w.set("flag", .bool(true))
    w.set("nested", .array([.array([.uint8(1), .uint8(2)]), .array([.uint8(3)])]))
    let values = (0..<64).map { Float($0) / 7 - 3 }
    try w.addTensor("token_embd.weight", type: .element(.q8_0), shape: [16, 32], bytes: Quantization.encode(Array((values + values + values + values + values + values + values + values)), as: .q8_0))
    try w.addTensor("output_norm.weight", floats: Array(values[0..<32]), shape: [32])
    try w.addTensor("blk.0.attn_q.weight", type: .element(.q4_1), shape: [2, 32], bytes: Quantization.encode(values, as: .q4_1))
    try w.addTensor("blk.0.ffn_norm.weight", type: .element(.f16), shape: [32], bytes: values[0..<32].flatMap { leBytes(Quantization.halfBits($0)) })
    return w
}

/// A small valid safetensors file: f32, bf16 and f16 tensors and metadata.
func smallSafetensors() throws -> SafetensorsWriter {
    var w = SafetensorsWriter()
    w.metadata = ["format": "pt", "note": "tiny"]
    try w.addTensor("model.embed_tokens.weight", floats: (0..<48).map { Float($0) }, shape: [6, 8])
    try w.addTensor("model.norm.weight", type: .bf16, shape: [8], bytes: (0..<8).flatMap { leBytes(Quantization.bf16Bits(Float($0))) })
    try w.addTensor("model.layers.0.self_attn.q_proj.weight", type: .f16, shape: [3, 8], bytes: (0..<24).flatMap { leBytes(Quantization.halfBits(Float($0))) })
    try w.addTensor("odd", type: .bf16, shape: [3], bytes: [1, 2, 3, 4, 5, 6])
    return w
}
