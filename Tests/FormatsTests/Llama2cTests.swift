import Backend
import Foundation
import XCTest
@testable import Formats

final class Llama2cTests: XCTestCase {
    /// The .bin and its HF conversion: same config, same tensors, q/k rows permuted per head.
    func testStories260KMatchesHFConversion() throws {
        let ckpt = try Llama2cCheckpoint(url: fixtures.appendingPathComponent("models/stories260K/stories260K.bin"))
        let hfDir = fixtures.appendingPathComponent("models/stories260K-hf")
        let hf = try SafetensorsModel(url: hfDir)
        let hfConfig = try ModelConfig.fromHF(configJSON: hfDir.appendingPathComponent("config.json"))
        XCTAssertEqual(ckpt.config, hfConfig)
        XCTAssertEqual(ckpt.version, 0)
        XCTAssertTrue(ckpt.ropeInterleaved)
        XCTAssertEqual(Set(ckpt.tensors.keys), Set(hf.tensors.keys))

        let headDim = ckpt.config.headDim
        var permuted = 0
        for (name, h) in hf.tensors {
            let b = try ckpt.requireTensor(name)
            XCTAssertEqual(b.shape, h.shape, name)
            XCTAssertEqual(b.type, h.type, name)
            let bv = floatsOf(b), hv = floatsOf(h)
            if name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight") {
                XCTAssertNotEqual(bv, hv, "\(name) should not be identical: llama2.c is interleaved")
                let cols = b.shape[1]
                for row in 0..<b.shape[0] {
                    let hr = RopePermutation.rotateHalfRow(fromInterleaved: row, headDim: headDim)
                    XCTAssertEqual(RopePermutation.interleavedRow(fromRotateHalf: hr, headDim: headDim), row)
                    XCTAssertEqual(Array(bv[row * cols..<(row + 1) * cols]), Array(hv[hr * cols..<(hr + 1) * cols]), "\(name) row \(row)")
                }
                permuted += 1
            } else {
                XCTAssertEqual(Array(b.data), Array(h.data), name)
            }
        }
        XCTAssertEqual(permuted, 2 * ckpt.config.layerCount)
    }

    func testSyntheticLayouts() throws {
        let dir = try temporaryFolder(self)
        for (version1, vocab) in [(false, Int32(16)), (false, -16), (true, 16), (true, -16)] {
            let url = dir.appendingPathComponent("c.bin")
            try Data(makeCheckpoint(vocab: vocab, version1: version1)).write(to: url)
            let c = try Llama2cCheckpoint(url: url)
            XCTAssertEqual(c.version, version1 ? 1 : 0)
            XCTAssertEqual(c.config.tieWordEmbeddings, vocab > 0)
            XCTAssertEqual(c.tensors["lm_head.weight"] == nil, vocab > 0)
            XCTAssertEqual(c.config.kvHeadCount, 1)
            XCTAssertEqual(c.config.headDim, 4)
            // Check where a few tensors start (value = float index in the file).
            let before: Int = version1 ? 2 * 8 * 2 + 8 : 0  // v1: all norms come first
            let embStart = Float(before)
            XCTAssertEqual(floatsOf(try c.requireTensor("model.embed_tokens.weight")).first, embStart)
            let wqIndex: Int = version1 ? before + 16 * 8 : 16 * 8 + 2 * 8
            let wqStart = Float(wqIndex)
            XCTAssertEqual(floatsOf(try c.requireTensor("model.layers.0.self_attn.q_proj.weight")).first, wqStart)
            XCTAssertEqual(floatsOf(try c.requireTensor("model.layers.1.self_attn.q_proj.weight")).first, wqStart + 64)
            XCTAssertEqual(c.tensor("model.layers.1.self_attn.k_proj.weight")?.shape, [4, 8])
            XCTAssertEqual(c.tensor("model.layers.1.mlp.down_proj.weight")?.shape, [8, 12])
            XCTAssertEqual(c.tensors.count, 2 + 9 * 2 + (vocab < 0 ? 1 : 0))
        }
    }

    func testErrors() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("bad.bin")
        try Data(makeCheckpoint(extra: 1)).write(to: url)
        assertFormatError(url, "file has", "describes") { try Llama2cCheckpoint(url: url) }
        try Data(makeCheckpoint().dropLast(4)).write(to: url)
        assertFormatError(url, "truncated file") { try Llama2cCheckpoint(url: url) }
        try Data(makeCheckpoint(heads: 3)).write(to: url)
        assertFormatError(url, "dim 8 is not a multiple of n_heads 3") { try Llama2cCheckpoint(url: url) }
        try Data([1 << 23, 1 << 24, 1 << 24, 2, 1, 16, 4].flatMap { leBytes(Int32($0)) } + [UInt8](repeating: 0, count: 64)).write(to: url)
        assertFormatError(url, "truncated file") { try Llama2cCheckpoint(url: url) }
        try Data([-8, 16, 1, 2, 1, 16, 4].flatMap { leBytes(Int32($0)) } + [UInt8](repeating: 0, count: 64)).write(to: url)
        assertFormatError(url, "dim -8 is out of range") { try Llama2cCheckpoint(url: url) }
        try Data([1, 2, 3]).write(to: url)
        assertFormatError(url, "truncated file", "dim") { try Llama2cCheckpoint(url: url) }
        var v2 = makeCheckpoint(version1: true)
        v2[4] = 2
        try Data(v2).write(to: url)
        assertFormatError(url, "version 2 is not supported") { try Llama2cCheckpoint(url: url) }
        try Data(makeCheckpoint()).write(to: url)
        assertFormatError(url, "missing tensor lm_head.weight") { try Llama2cCheckpoint(url: url).requireTensor("lm_head.weight") }
    }
}

/// A synthetic checkpoint: every float is its own index, so each tensor's slice is checkable.
func makeCheckpoint(dim: Int = 8, hidden: Int = 12, layers: Int = 2, heads: Int = 2, kv: Int = 1, vocab: Int32 = 16,
                    seq: Int = 4, version1: Bool = false, extra: Int = 0) -> [UInt8] {
    let hd = dim / heads, kvDim = kv * hd, v = Int(abs(vocab))
    var count = v * dim + layers * (dim * 2 + dim * dim * 2 + kvDim * dim * 2 + hidden * dim * 3) + dim
    if !version1 { count += seq * hd }
    if vocab < 0 { count += v * dim }
    let values = (0..<count + extra).map { Float($0) }
    var header = [dim, hidden, layers, heads, kv].flatMap { leBytes(Int32($0)) } + leBytes(vocab) + leBytes(Int32(seq))
    if version1 {
        header = leBytes(UInt32(0x616B_3432)) + leBytes(Int32(1)) + header + [vocab > 0 ? 1 : 0]
        header += [UInt8](repeating: 0, count: 256 - header.count)
    }
    return header + f32Bytes(values)
}
