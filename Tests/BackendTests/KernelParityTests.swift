@testable import Backend
@testable import Roast
import VulkanCompute
import XCTest

/// Every Vulkan kernel against its CPU twin on fresh random inputs (the same cases as
/// `roast verify`), with the validation layer on.
final class KernelParityTests: XCTestCase {
    /// `make test` installs lavapipe, so a missing device is a failure, not a skip.
    func vulkan(_ family: KernelFamily) throws -> VulkanBackend {
        try VulkanBackend(device: VulkanDevice(validation: true), kernels: family)
    }

    func testEveryKernelMatchesItsCPUTwinLavapipeFamily() throws { try everyKernelMatchesItsCPUTwin(.lavapipe) }
    func testEveryKernelMatchesItsCPUTwinGPUFamily() throws { try everyKernelMatchesItsCPUTwin(.gpu) }

    func everyKernelMatchesItsCPUTwin(_ family: KernelFamily) throws {
        let backend = try vulkan(family)
        XCTAssertEqual(backend.family, family)
        let seed = UInt64.random(in: 0...UInt64.max)
        let results = try KernelVerifier(device: backend, seed: seed).run()
        XCTAssertGreaterThan(results.count, 50)
        for r in results {
            XCTAssertEqual(r.family, family.rawValue)
            XCTAssertTrue(r.pass, "\(family) seed \(seed): \(r.kernel) \(r.format) \(r.shape): NMSE \(r.nmse), max abs \(r.max_abs_err) \(r.note ?? "")")
        }
        let kernels = Set(results.map(\.kernel))
        for k in ["matvec", "matmul", "embedding", "scatter_rows", "rmsnorm", "rope.rotate_half", "rope.interleaved", "attention", "attention (runs of 16)",
                  "silu_mul", "silu_mul+steer", "add", "add+steer", "steer_add", "argmax", "topk", "add+steer-table", "add+mask-table",
                  "silu_mul+steer-table", "silu_mul+mask-table", "matvec+residual+steer-table", "matmul+silu_gate+mask-table"] {
            XCTAssertTrue(kernels.contains(k), "no case for \(k)")
        }
        for f in ElementType.weightFormats {
            XCTAssertTrue(results.contains { $0.kernel == "matvec" && $0.format == f.rawValue }, "matvec \(f)")
            XCTAssertTrue(results.contains { $0.kernel == "matmul" && $0.format == f.rawValue }, "matmul \(f)")
        }
        XCTAssertEqual(backend.device.validationMessages, [])
        // Runs of 16 queries go to the flash kernel on the gpu family only.
        XCTAssertEqual(backend.device.builtKernelNames.contains("attention_flash"), family == .gpu)
    }

    /// `roast verify --workers N`: the cases split over workers with devices of their own give the
    /// same results, in the same order, as one verifier running them in turn.
    func testParallelWorkersGiveTheSerialResults() throws {
        let n = 24
        var serial = KernelVerifier(device: try vulkan(.gpu), seed: 5)
        serial.caseLimit = n
        let one = try serial.run()
        let many = try KernelVerifier.run(workers: 3, seed: 5, includeLarge: false, caseLimit: n) {
            try VulkanBackend(device: VulkanDevice(), kernels: .gpu)
        }
        XCTAssertGreaterThanOrEqual(one.count, n)
        XCTAssertEqual(many.map { "\($0.kernel) \($0.format) \($0.shape) \($0.nmse)" }, one.map { "\($0.kernel) \($0.format) \($0.shape) \($0.nmse)" })
        XCTAssertThrowsError(try KernelVerifier.run(workers: 2, seed: 5, includeLarge: false, caseLimit: 4) {
            throw BackendError("no device here")
        }) { XCTAssertEqual("\($0)", "no device here") }
    }

    /// Long dimensions past lavapipe's silent 65,535-iteration loop limit must still be exact.
    func testLongDimensionsPastTheLoopLimit() throws {
        for family in KernelFamily.allCases { try longDimensionsPastTheLoopLimit(family) }
    }

    func longDimensionsPastTheLoopLimit(_ family: KernelFamily) throws {
        let backend = try vulkan(family)
        let verifier = KernelVerifier(device: backend, seed: 7)
        var rng = SeededRandom(seed: 7)
        var results = try verifier.topK(values: rng.floats(151_936 * 2, scale: 30), rows: 2, length: 151_936, k: 1)
        results += try verifier.topK(values: rng.floats(262_144), rows: 1, length: 262_144, k: 64)
        results += try verifier.attention(rng: &rng, seqs: [0, 0], pos: [65_600, 70_000], heads: 2, kvHeads: 1, headDim: 32, capacity: 70_001)
        results += try verifier.attention(rng: &rng, seqs: Array(repeating: 0, count: 16), pos: (69_985...70_000).map { UInt32($0) },
                                          heads: 2, kvHeads: 1, headDim: 32, capacity: 70_001, sequenceRuns: 16)
        results += try verifier.matmul(.q4_1, .vector, m: 1, n: 70_001, k: 32, w: rng.floats(70_001 * 32), x: rng.floats(32))
        results += try verifier.matmul(.q4_k, .tiled, m: 3, n: 70, k: 70_144, w: rng.floats(70 * 70_144), x: rng.floats(3 * 70_144))
        for r in results { XCTAssertTrue(r.pass, "\(family) \(r.kernel) \(r.shape): NMSE \(r.nmse) \(r.note ?? "")") }
    }

    /// Weights bound in row windows when they exceed the binding limit (lowered here so the test
    /// stays small; `roast verify` also runs a real 155 MB table).
    func testWeightsPastTheBindingLimitAreBoundInChunks() throws {
        for family in KernelFamily.allCases { try weightsPastTheBindingLimitAreBoundInChunks(family) }
    }

    func weightsPastTheBindingLimitAreBoundInChunks(_ family: KernelFamily) throws {
        let backend = try vulkan(family)
        backend.bindingLimit = 4096
        let verifier = KernelVerifier(device: backend, seed: 3)
        var rng = SeededRandom(seed: 3)
        var results: [VerifyResult] = []
        for format in ElementType.weightFormats {
            results += try verifier.matmul(format, .vector, m: 2, n: 300, k: 256, w: rng.floats(300 * 256), x: rng.floats(512))
            results += try verifier.matmul(format, .tiled, m: 40, n: 300, k: 256, w: rng.floats(300 * 256), x: rng.floats(40 * 256))
            results += try verifier.embedding(format, rows: 300, width: 256, table: rng.floats(300 * 256), ids: [0, 299, 17, 150, 151, 32])
        }
        for r in results { XCTAssertTrue(r.pass, "\(family) \(r.kernel) \(r.format) \(r.shape): NMSE \(r.nmse)") }
        XCTAssertEqual(backend.device.validationMessages, [])
    }
}
