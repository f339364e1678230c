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
                  "silu_mul+steer-table", "silu_mul+mask-table", "matvec+residual+steer-table", "matmul+silu_gate+mask-table",
                  "softmax_head"] {
            XCTAssertTrue(kernels.contains(k), "no case for \(k)")
        }
        for f in ElementType.weightFormats {
            XCTAssertTrue(results.contains { $0.kernel == "matvec" && $0.format == f.rawValue }, "matvec \(f)")
            XCTAssertTrue(results.contains { $0.kernel == "matmul" && $0.format == f.rawValue }, "matmul \(f)")
        }
        // The cooperative-matrix kernel (emulated on lavapipe) on the gpu family only: every format
        // and every epilogue.
        let coop = results.filter { $0.kernel.hasPrefix("matmul_coopmat") }
        if family == .gpu {
            for f in ElementType.weightFormats { XCTAssertTrue(coop.contains { $0.format == f.rawValue }, "matmul_coopmat \(f)") }
            for e in ["+residual+steer-table", "+silu_gate+mask-table", "+norm+silu_gate+steer", "+attn_input+rope v"] {
                XCTAssertTrue(coop.contains { $0.kernel.hasSuffix(e) }, "matmul_coopmat\(e)")
            }
        } else {
            XCTAssertEqual(coop.count, 0)
        }
        // Split-K (gpu family, small grids): both tiled kernels, every format, every epilogue.
        let split = results.filter { $0.shape.contains("split-k") }
        if family == .gpu {
            for f in ElementType.weightFormats { XCTAssertTrue(split.contains { $0.format == f.rawValue }, "split-k \(f)") }
            for name in ["matmul", "matmul_coopmat_emulated"] {
                for e in ["", "+norm", "+residual+mask", "+residual+steer-table", "+silu_gate+mask-table", "+norm+silu_gate+mask gate",
                          "+norm+attn_input+rope k", "+attn_input v"] {
                    XCTAssertTrue(split.contains { $0.kernel == name + e }, "split-k \(name)\(e)")
                }
            }
            XCTAssertTrue(results.contains { $0.kernel == "matmul+residual" && !$0.shape.contains("split-k") }, "unsplit epilogues")
            // The vector kernel's subgroups sharing a row group: every format, the epilogues, the fused norm.
            let shared = results.filter { $0.shape.contains("k-split 4 subgroups") }
            for f in ElementType.weightFormats { XCTAssertTrue(shared.contains { $0.kernel == "matvec" && $0.format == f.rawValue }, "k-split \(f)") }
            for e in ["+norm", "+residual+steer-table", "+silu_gate+mask-table"] {
                XCTAssertTrue(shared.contains { $0.kernel == "matvec" + e }, "k-split matvec\(e)")
            }
            XCTAssertTrue(results.contains { $0.kernel == "matvec+norm+attn_input+rope q" && $0.shape.contains("k-split 2 subgroups") })
        } else {
            XCTAssertEqual(split.count, 0)
            XCTAssertFalse(results.contains { $0.shape.contains("k-split") })
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
        let wl = rng.floats(70 * 70_144), xl = rng.floats(3 * 70_144)
        for kind in verifier.tiledKinds { results += try verifier.matmul(.q4_k, kind, m: 3, n: 70, k: 70_144, w: wl, x: xl) }
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
            let w = rng.floats(300 * 256), x = rng.floats(40 * 256)
            for kind in verifier.tiledKinds { results += try verifier.matmul(format, kind, m: 40, n: 300, k: 256, w: w, x: x) }
            results += try verifier.embedding(format, rows: 300, width: 256, table: rng.floats(300 * 256), ids: [0, 299, 17, 150, 151, 32])
        }
        for r in results { XCTAssertTrue(r.pass, "\(family) \(r.kernel) \(r.format) \(r.shape): NMSE \(r.nmse)") }
        XCTAssertEqual(backend.device.validationMessages, [])
    }

    /// Lavapipe's vector kernel reads weights through texel buffers, whose cap
    /// (maxTexelBufferElements) is below the storage window on a GPU (NVIDIA: 2^27 texels, 512 MiB
    /// of words, against 2 GiB): its windows respect both, and the chunked product matches the CPU
    /// twin. The gpu family binds storage buffers and keeps the storage window.
    func testLavapipeVectorWindowsRespectTheTexelLimit() throws {
        let backend = try vulkan(.lavapipe)
        backend.texelLimit = 1024
        let verifier = KernelVerifier(device: backend, seed: 4)
        var rng = SeededRandom(seed: 4)
        for format in ElementType.weightFormats {
            let texel = VulkanBackend.matvecWeightAccess(format).texelBytes
            let w = try backend.makeTensor(format, count: 300 * 256)
            let windows = try backend.weightChunks(w, rows: 300, width: 256, texelBytes: texel)
            XCTAssertGreaterThan(windows.count, 1, "\(format)")
            XCTAssertTrue(windows.allSatisfy { $0.1.size <= 1024 * texel }, "\(format): \(windows.map(\.1.size))")
            XCTAssertEqual(try backend.weightChunks(w, rows: 300, width: 256).count, 1, "\(format): the storage window holds it whole")
            for r in try verifier.matmul(format, .vector, m: 2, n: 300, k: 256, w: rng.floats(300 * 256), x: rng.floats(512)) {
                XCTAssertTrue(r.pass, "\(r.kernel) \(r.format) \(r.shape): NMSE \(r.nmse)")
            }
        }
        XCTAssertEqual(backend.device.validationMessages, [])
    }

    /// The cooperative-matrix path: which device shape the kernel takes, and a one-line refusal
    /// where it cannot run.
    func testCooperativeMatrixShapeAndRefusal() throws {
        let s = { (m: Int, n: Int, k: Int) in CooperativeMatrixShape(m: m, n: n, k: k) }
        XCTAssertEqual(VulkanBackend.cooperativeShape([s(16, 8, 16), s(16, 16, 16), s(16, 8, 8)], subgroupSize: 32), s(16, 16, 16))
        XCTAssertEqual(VulkanBackend.cooperativeShape([s(16, 8, 8), s(16, 8, 16)], subgroupSize: 32), s(16, 8, 16))
        XCTAssertNil(VulkanBackend.cooperativeShape([s(16, 16, 16)], subgroupSize: 64))
        XCTAssertNil(VulkanBackend.cooperativeShape([s(24, 16, 16), s(16, 16, 48)], subgroupSize: 32))
        XCTAssertNil(VulkanBackend.cooperativeShape([], subgroupSize: 32))

        // lavapipe has no matrix units: .auto never takes the kernel, .cooperative is refused
        // (lavapipe family, or gpu before the verifier's emulation is on).
        let device = try VulkanDevice()
        XCTAssertEqual(device.cooperativeMatrix, [])
        for family in KernelFamily.allCases {
            let b = try VulkanBackend(device: device, kernels: family)
            XCTAssertNil(b.cooperativeShape)
            XCTAssertEqual(b.kernelsDescription, "\(family.rawValue) kernels")
            let w = try b.makeTensor(floats: [Float](repeating: 1, count: 64)), x = try b.makeTensor(floats: [Float](repeating: 1, count: 64))
            let y = try b.makeTensor(.f32, count: 16)
            XCTAssertThrowsError(try b.matmul(weight: w, input: x, output: y, m: 16, n: 1, k: 4, kernel: .cooperative)) {
                XCTAssertTrue("\($0)".hasPrefix("matmul: the cooperative-matrix kernel needs the gpu kernel family"), "\($0)")
            }
            XCTAssertEqual(b.emulateCooperativeMatrix(), family == .gpu)
        }
    }

    /// The probe that guards the matrix units, run on the emulated kernel (the same tiling,
    /// staging and epilogue; lavapipe has no units): it passes, and its second shape really takes
    /// split-K, so a GPU's probe covers the SPLIT = 1 variant and the reduction too.
    func testCooperativeProbePassesOnTheEmulatedKernelAndCoversSplitK() throws {
        let b = try vulkan(.gpu)
        XCTAssertTrue(b.emulateCooperativeMatrix())
        XCTAssertNil(b.probeCooperative())
        let (n, k, m) = VulkanBackend.cooperativeProbeShapes[1]
        XCTAssertNotNil(b.tiledSplit(m: m, n: n, k: k, type: .q8_0))
        XCTAssertTrue(b.device.builtKernelNames.contains("matmul_coopmat_emulated.split.q8_0"), "\(b.device.builtKernelNames)")
        XCTAssertEqual(b.device.validationMessages, [])
    }

    /// A NaN activation reaches the output through every tiled kernel, as it does on the CPU twin:
    /// the cooperative kernel clamps X to f16's range, and a clamp's result for NaN is undefined
    /// (LLVM's, lavapipe's, gives the bound), which would turn it into a large finite number.
    func testANaNInputStaysNaNThroughTheTiledKernels() throws {
        let b = try vulkan(.gpu)
        b.emulateCooperativeMatrix()
        var rng = SeededRandom(seed: 5)
        let (m, n, k) = (12, 70, 96)
        var x = rng.floats(m * k)
        x[3 * k + 40] = .nan // column 3
        let w = try b.makeTensor(.q8_0, count: n * k, bytes: Quantization.encode(rng.floats(n * k), as: .q8_0))
        let xd = try b.makeTensor(floats: x)
        for kind in [MatmulKernel.tiled, .cooperative] {
            let y = try b.makeTensor(.f32, count: m * n)
            try b.matmul(weight: w, input: xd, output: y, m: m, n: n, k: k, kernel: kind)
            let out = try b.readFloats(y)
            for c in 0..<m {
                let row = out[(c * n)..<((c + 1) * n)]
                if c == 3 { XCTAssertTrue(row.allSatisfy(\.isNaN), "\(kind): column 3 \(Array(row.prefix(4)))") }
                else { XCTAssertTrue(row.allSatisfy(\.isFinite), "\(kind): column \(c)") }
            }
        }
    }

    /// The verifier's comparison: NaN and unshared infinities fail, shared infinities agree.
    func testCompareTreatsNaNAndInfinities() {
        XCTAssertEqual(compare([1, -.infinity], [1, -.infinity]).nmse, 0)
        XCTAssertEqual(compare([1, 2], [1, -.infinity]).nmse, .infinity)
        XCTAssertEqual(compare([.nan, 2], [1, 2]).nmse, .infinity)
        XCTAssertEqual(compare([1, 2], [1, 4]).nmse, 4.0 / 17.0, accuracy: 1e-12)
    }
}
