import Backend
import Formats
import Foundation
import Model
@testable import Roast
import VulkanCompute
import XCTest

/// The contract for non-finite numbers in weights: refused at load, naming the tensor and the
/// element, on both backends alike (the check runs before any backend sees a byte); finite
/// weights whose logits overflow are refused naming the position.
final class NonFiniteTests: XCTestCase {
    /// The built-in GGUF model with `patch` applied to the bytes of tensor `name`.
    func patchedModel(_ name: String, _ patch: (UnsafeMutableRawBufferPointer) -> Void) throws -> URL {
        var bytes = try FuzzSeeds.ggufModel()
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("m.gguf")
        try Data(bytes).write(to: url)
        let (start, count) = try {
            let g = try GGUFFile(url: url)
            let t = try g.requireTensor(name)
            return (t.data.baseAddress! - g.file.bytes.baseAddress!, t.data.count)
        }()
        bytes.withUnsafeMutableBytes { patch(UnsafeMutableRawBufferPointer(rebasing: $0[start..<start + count])) }
        try Data(bytes).write(to: url)
        return url
    }

    func backends() throws -> [Backend] {
        [CPUBackend(), try VulkanBackend(device: VulkanDevice(validation: true))]
    }

    func testNonFiniteWeightsAreRefusedAtLoadOnBothBackends() throws {
        let cases: [(String, (UnsafeMutableRawBufferPointer) -> Void, String)] = [
            ("blk.0.attn_output.weight", { $0.storeBytes(of: Float.infinity.bitPattern.littleEndian, toByteOffset: 4 * 5, as: UInt32.self) }, "element 5"),
            ("blk.0.ffn_norm.weight", { $0.storeBytes(of: Float.nan.bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self) }, "element 0"),
            ("output.weight", { $0.storeBytes(of: UInt16(0xFC00).littleEndian, toByteOffset: 2 * 7, as: UInt16.self) }, "element 7"),  // f16 −inf
            ("token_embd.weight", { $0.storeBytes(of: UInt16(0x7E00).littleEndian, toByteOffset: 34 * 3, as: UInt16.self) }, "block 3"),  // q8_0 scale NaN
            ("blk.0.attn_q.weight", { $0.storeBytes(of: UInt16(0x7C00).littleEndian, toByteOffset: 20 * 2 + 2, as: UInt16.self) }, "block 2"),  // q4_1 min +inf
        ]
        for (name, patch, unit) in cases {
            let url = try patchedModel(name, patch)
            for backend in try backends() {
                assertRefused("tensor \(name) holds a non-finite value (±inf or NaN) at \(unit)") {
                    try LanguageModel(path: url.path, backend: backend)
                }
            }
        }
    }

    func testOverflowingLogitsAreRefusedNamingThePosition() throws {
        // Finite, but 3e38 × anything overflows: the final norm's weights.
        let url = try patchedModel("output_norm.weight") { b in
            for i in 0..<b.count / 4 { b.storeBytes(of: Float(3e38).bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        for backend in try backends() {
            let m = try LanguageModel(path: url.path, backend: backend)
            assertRefused("the logits at position 0 (token id 1) are not finite") { try m.logits(ids: [1, 2]) }
        }
    }
}
