@testable import Backend
import Foundation
import Shaders
@testable import VulkanCompute
import XCTest

/// The host–shader contract: every push-constant struct against the SPIR-V block it feeds, and
/// every shared constant against Shaders/include/contract.glsl.
final class ShaderContractTests: XCTestCase {
    func testEveryPushStructMatchesItsShaderBlock() throws {
        // One entry per shader in Shaders/, so a new kernel cannot skip its contract.
        let shaders = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Shaders")
        let comps = try FileManager.default.contentsOfDirectory(atPath: shaders.path).filter { $0.hasSuffix(".comp") }
        XCTAssertEqual(Set(PushContracts.all.map { $0.kernel + ".comp" }), Set(comps))
        for (kernel, spirv, push) in PushContracts.all {
            let block = try XCTUnwrap(try PushBlock(spirv: spirv), "\(kernel): no push-constant block")
            let swift = PushBlock.members(of: push)
            XCTAssertEqual(swift, block.members, "\(kernel): Swift \(type(of: push)) vs the shader's block")
            XCTAssertEqual(byteSize(push), block.size, "\(kernel): size")
            XCTAssertFalse(block.members.contains { $0.scalar == .other }, "\(kernel): a member that is not a 32-bit scalar")
        }
    }

    /// The workgroup width each module declares, as the pipeline builder reads it to require full
    /// subgroups: the specialization's constant 0 for every shader sized by `local_size_x_id = 0`
    /// (its default without one), attention_flash's literal 64.
    func testWorkgroupWidthIsReadFromEachModule() throws {
        for (kernel, spirv, _) in PushContracts.all {
            if kernel == "attention_flash" {
                XCTAssertEqual(workgroupWidth(spirv: spirv, specialization: [8, 16]), 64, kernel)
            } else {
                XCTAssertEqual(workgroupWidth(spirv: spirv, specialization: [96, 3]), 96, kernel)
                XCTAssertEqual(workgroupWidth(spirv: spirv, specialization: []), 1, "\(kernel): the default of local_size_x_id")
            }
        }
        XCTAssertNil(workgroupWidth(spirv: [0x0723_0203, 0, 0, 1, 0], specialization: []))
    }

    /// The concrete struct's size (an existential's own size is its box's).
    func byteSize<P: PushConstants>(_ p: P) -> Int { MemoryLayout<P>.size }

    /// The reflection itself: names, offsets and kinds of a known block, and a module without one.
    func testReflectionReadsAKnownBlock() throws {
        let block = try XCTUnwrap(try PushBlock(spirv: SPIRV.rmsnorm))
        XCTAssertEqual(block.members.map(\.description), ["uint D @0", "uint R @4", "float eps @8"])
        XCTAssertEqual(block.size, 12)
        XCTAssertThrowsError(try PushBlock(spirv: [1, 2, 3, 4, 5])) { XCTAssertTrue("\($0)".contains("bad magic")) }
        var truncated = SPIRV.rmsnorm
        truncated[5] = (truncated[5] & 0xFFFF) | (UInt32(truncated.count) << 16)
        XCTAssertThrowsError(try PushBlock(spirv: truncated)) { XCTAssertTrue("\($0)".contains("runs past the end")) }
    }

    func testSharedConstantsMatchContractGLSL() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Shaders/include/contract.glsl").standardized
        let text = try String(contentsOf: url, encoding: .utf8)
        var glsl: [String: UInt32] = [:]
        let pattern = try NSRegularExpression(pattern: #"^const uint (\w+) = (\d+)u;"#, options: .anchorsMatchLines)
        for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let name = String(text[Range(m.range(at: 1), in: text)!])
            XCTAssertNil(glsl[name], "\(name) defined twice")
            glsl[name] = UInt32(text[Range(m.range(at: 2), in: text)!])
        }
        XCTAssertGreaterThanOrEqual(glsl.count, 20)
        XCTAssertEqual(glsl, ShaderContract.glslConstants)
    }

    /// Family choice: CPU devices get lavapipe, GPUs with subgroup arithmetic the GPU family; the
    /// environment overrides, `--kernels` overrides both; a bad name or an impossible family is an error.
    func testKernelFamilyChoice() throws {
        let device = try VulkanDevice()
        var info = device.info
        XCTAssertEqual(try KernelFamily.resolve(nil, for: info, environment: [:]), info.kind == .cpu ? .lavapipe : .gpu)
        XCTAssertEqual(try KernelFamily.resolve(nil, for: info, environment: ["ROAST_KERNELS": "gpu"]), .gpu)
        XCTAssertEqual(try KernelFamily.resolve(.lavapipe, for: info, environment: ["ROAST_KERNELS": "gpu"]), .lavapipe)
        XCTAssertThrowsError(try KernelFamily.resolve(nil, for: info, environment: ["ROAST_KERNELS": "cuda"])) {
            XCTAssertEqual("\($0)", "ROAST_KERNELS=cuda: not a kernel family (lavapipe, gpu)")
        }
        info.kind = .discrete
        XCTAssertEqual(KernelFamily.automatic(for: info), .gpu)
        info.limits.subgroupArithmetic = false
        XCTAssertEqual(KernelFamily.automatic(for: info), .lavapipe)
        XCTAssertThrowsError(try KernelFamily.resolve(.gpu, for: info, environment: [:]))
        info.kind = .cpu
        info.limits.subgroupArithmetic = true
        XCTAssertEqual(KernelFamily.automatic(for: info), .lavapipe)
    }
}
