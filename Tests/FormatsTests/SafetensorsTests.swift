import Backend
import Foundation
import XCTest
@testable import Formats

final class SafetensorsTests: XCTestCase {
    func testTinyQwen3() throws {
        let dir = fixtures.appendingPathComponent("tiny-qwen3")
        let m = try SafetensorsModel(url: dir)
        XCTAssertEqual(m.metadata["format"], "pt")
        XCTAssertEqual(m.tensors.count, 1 + 3 * 11 + 1)  // embedding, 11 per layer, final norm; tied: no lm_head
        let q = try m.requireTensor("model.layers.0.self_attn.q_proj.weight")
        XCTAssertEqual(q.type, .element(.bf16))
        XCTAssertEqual(q.shape, [128, 64])
        XCTAssertEqual(q.data.count, 128 * 64 * 2)
        XCTAssertEqual(m.tensor("model.layers.2.self_attn.k_norm.weight")?.shape, [32])
        XCTAssertNil(m.tensor("lm_head.weight"))
        XCTAssertTrue(try m.requireTensor("model.norm.weight").floats().allSatisfy(\.isFinite))

        let c = try ModelConfig.fromHF(configJSON: dir.appendingPathComponent("config.json"))
        XCTAssertEqual(c, ModelConfig(architecture: .qwen3, hiddenSize: 64, intermediateSize: 160, layerCount: 3, headCount: 4,
                                      kvHeadCount: 2, headDim: 32, vocabSize: 1000, contextLength: 256, rmsNormEps: 1e-6,
                                      ropeTheta: 1_000_000, tieWordEmbeddings: true, attentionBias: false, qkNorm: true,
                                      bosTokenID: nil, eosTokenIDs: [999]))
        // Loading the file itself is the same as loading its folder.
        XCTAssertEqual(try SafetensorsModel(url: dir.appendingPathComponent("model.safetensors")).tensors.count, m.tensors.count)
    }

    func testStories260KHF() throws {
        let dir = fixtures.appendingPathComponent("models/stories260K-hf")
        let m = try SafetensorsModel(url: dir)
        XCTAssertEqual(m.tensors.count, 2 + 5 * 9)
        XCTAssertEqual(m.tensor("model.embed_tokens.weight")?.shape, [512, 64])
        XCTAssertEqual(m.tensor("model.layers.4.mlp.down_proj.weight")?.shape, [64, 172])
        let c = try ModelConfig.fromHF(configJSON: dir.appendingPathComponent("config.json"))
        XCTAssertEqual(c.architecture, .llama)
        XCTAssertEqual(c.headDim, 8)
        XCTAssertEqual(c.kvHeadCount, 4)
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.bosTokenID, 1)
        XCTAssertEqual(c.eosTokenIDs, [2])
    }

    func testWriterRoundTrip() throws {
        let url = try temporaryFolder(self).appendingPathComponent("small.safetensors")
        try smallSafetensors().write(to: url)
        let m = try SafetensorsModel(url: url)
        XCTAssertEqual(m.metadata, ["format": "pt", "note": "tiny"])
        XCTAssertEqual(Set(m.tensors.keys), ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.weight", "odd"])
        XCTAssertEqual(try m.requireTensor("model.embed_tokens.weight").floats(), (0..<48).map { Float($0) })
        XCTAssertEqual(try m.requireTensor("model.norm.weight").floats(), (0..<8).map { Float($0) })
        XCTAssertEqual(try m.requireTensor("model.layers.0.self_attn.q_proj.weight").floats(), (0..<24).map { Float($0) })
        XCTAssertEqual(m.tensor("odd")?.shape, [3])
    }

    func testSharded() throws {
        let dir = try temporaryFolder(self)
        var a = SafetensorsWriter(), b = SafetensorsWriter()
        a.metadata = ["format": "pt"]
        try a.addTensor("model.embed_tokens.weight", floats: (0..<12).map { Float($0) }, shape: [3, 4])
        try a.addTensor("model.layers.0.input_layernorm.weight", floats: [1, 1, 1, 1], shape: [4])
        try b.addTensor("model.norm.weight", floats: [2, 2, 2, 2], shape: [4])
        try b.addTensor("lm_head.weight", type: .bf16, shape: [3, 4], bytes: (0..<12).flatMap { leBytes(Quantization.bf16Bits(Float(-$0))) })
        try a.write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try b.write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let index = """
        {"metadata": {"total_size": 144}, "weight_map": {
          "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
          "model.layers.0.input_layernorm.weight": "model-00001-of-00002.safetensors",
          "model.norm.weight": "model-00002-of-00002.safetensors",
          "lm_head.weight": "model-00002-of-00002.safetensors"}}
        """
        let indexURL = dir.appendingPathComponent("model.safetensors.index.json")
        try Data(index.utf8).write(to: indexURL)
        for url in [dir, indexURL] {
            let m = try SafetensorsModel(url: url)
            XCTAssertEqual(m.files.count, 2)
            XCTAssertEqual(m.tensors.count, 4)
            XCTAssertEqual(m.metadata["total_size"], "144")
            XCTAssertEqual(m.metadata["format"], "pt")
            XCTAssertEqual(try m.requireTensor("lm_head.weight").floats(), (0..<12).map { Float(-$0) })
            XCTAssertEqual(try m.requireTensor("model.norm.weight").floats(), [2, 2, 2, 2])
            assertFormatError(url, "missing tensor model.layers.1.mlp.up_proj.weight") { try m.requireTensor("model.layers.1.mlp.up_proj.weight") }
        }
        // The index names a tensor its shard lacks; a shard that does not exist; a path outside.
        try Data(index.replacingOccurrences(of: "\"lm_head.weight\"", with: "\"lm_head.bias\"").utf8).write(to: indexURL)
        assertFormatError(dir.appendingPathComponent("model-00002-of-00002.safetensors"), "missing tensor lm_head.bias") { try SafetensorsModel(url: dir) }
        try Data(index.replacingOccurrences(of: "00002-of", with: "00003-of").utf8).write(to: indexURL)
        assertFormatError(indexURL, "shard model-00003-of-00002.safetensors listed in weight_map does not exist") { try SafetensorsModel(url: dir) }
        try Data(index.replacingOccurrences(of: "\"model-00002", with: "\"../model-00002").utf8).write(to: indexURL)
        assertFormatError(indexURL, "not a file in this folder") { try SafetensorsModel(url: dir) }
        try Data("{\"weight_map\": 3}".utf8).write(to: indexURL)
        assertFormatError(indexURL, "missing \"weight_map\" object") { try SafetensorsModel(url: dir) }
        try Data("{\"weight_map\": ".utf8).write(to: indexURL)
        assertFormatError(indexURL, "not valid JSON") { try SafetensorsModel(url: dir) }
    }

    func testErrors() throws {
        let dir = try temporaryFolder(self)
        var n = 0
        /// A file from a header (JSON text, padded to 8) and data.
        func file(_ header: String, data: [UInt8] = [UInt8](repeating: 0, count: 64), length: UInt64? = nil) throws -> URL {
            n += 1
            var h = Array(header.utf8)
            while (h.count + 8) % 8 != 0 { h.append(0x20) }
            let url = dir.appendingPathComponent("bad\(n).safetensors")
            try Data(leBytes(length ?? UInt64(h.count)) + h + data).write(to: url)
            return url
        }
        func entry(_ dtype: String = "F32", _ shape: String = "[4]", _ offsets: String = "[0, 16]") -> String {
            "{\"dtype\": \"\(dtype)\", \"shape\": \(shape), \"data_offsets\": \(offsets)}"
        }

        var u = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: u)
        assertFormatError(u, "truncated file", "header length") { try SafetensorsModel(url: u) }
        u = try file("{}", length: 1 << 40)
        assertFormatError(u, "header length 1099511627776 runs past the end of the 80-byte file") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": ")
        assertFormatError(u, "the header is not valid JSON: unexpected end, expected a value at byte 16") { try SafetensorsModel(url: u) }
        u = try file("[1, 2]")
        assertFormatError(u, "not a JSON object") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("I64", "[2]"))}")
        assertFormatError(u, "tensor \"w\" has dtype I64, which is not supported") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("Q9"))}")
        assertFormatError(u, "tensor \"w\" has unknown dtype \"Q9\"") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[5]"))}")
        assertFormatError(u, "tensor \"w\": shape [5] of F32 is 20 bytes but data_offsets [0, 16] span 16") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[32]", "[0, 128]"))}")
        assertFormatError(u, "tensor \"w\": data_offsets [0, 128] run past the end of the data (64 bytes") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[4]", "[-8, 8]"))}")
        assertFormatError(u, "tensor \"w\": data_offsets [-8, 8] are not") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[4]", "[16, 0]"))}")
        assertFormatError(u, "tensor \"w\": data_offsets [16, 0] are not") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[-4]"))}")
        assertFormatError(u, "tensor \"w\": shape entry -4") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[4611686018427387904, 4]", "[0, 16]"))}")
        assertFormatError(u, "tensor \"w\": shape", "overflows") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[4]", "[2, 18]"))}")
        assertFormatError(u, "tensor \"w\": data at byte", "not aligned to its 4-byte elements") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry("F32", "[4]", "[0, 16]")), \"v\": \(entry("F32", "[4]", "[8, 24]"))}")
        assertFormatError(u, "overlap") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry()), \"w\": \(entry("F32", "[4]", "[16, 32]"))}")
        assertFormatError(u, "duplicate tensor \"w\" in the header") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": {\"shape\": [4], \"data_offsets\": [0, 16]}}")
        assertFormatError(u, "tensor \"w\": missing dtype") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0]}}")
        assertFormatError(u, "tensor \"w\": data_offsets must be two integers") { try SafetensorsModel(url: u) }
        u = try file("{\"__metadata__\": {\"a\": 1}}")
        assertFormatError(u, "__metadata__ value for \"a\" is 1, not a string") { try SafetensorsModel(url: u) }
        u = try file("{\"w\": \(entry())}")
        let m = try SafetensorsModel(url: u)
        assertFormatError(u, "missing tensor model.norm.weight") { try m.requireTensor("model.norm.weight") }
        assertFormatError(dir, "no model.safetensors or model.safetensors.index.json") { try SafetensorsModel(url: dir) }
        let nothing = dir.appendingPathComponent("nothing")
        assertFormatError(nothing, "no such file or folder") { try SafetensorsModel(url: nothing) }
    }
}

final class TensorInfoTests: XCTestCase {
    func testFloatsRefusesWhatItCannotDecode() throws {
        let url = try temporaryFolder(self).appendingPathComponent("t.gguf")
        var w = GGUFWriter()
        try w.addTensor("k", type: .unsupported("q5_0"), shape: [32], bytes: [UInt8](repeating: 0, count: 22))
        try w.write(to: url)
        let f = try GGUFFile(url: url)
        assertFormatError(url, "tensor k: cannot decode type q5_0 to floats") { try f.requireTensor("k").floats() }
        let bytes: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]
        try bytes.withUnsafeBytes { raw in
            let t = TensorInfo(name: "m", type: .element(.f32), shape: [2], data: raw)
            XCTAssertEqual(try t.floats(), [1, 2])
            XCTAssertEqual(t.rows, 1)
            XCTAssertEqual(t.columns, 2)
            XCTAssertThrowsError(try TensorInfo(name: "m", type: .element(.f32), shape: [3], data: raw).floats())
        }
    }
}
