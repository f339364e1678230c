@testable import Backend
@testable import Roast
import VulkanCompute
import XCTest

/// Split-K (Sources/Backend/SplitK.swift, Shaders/matmul_reduce.comp): when it is taken, how K is
/// cut, and that a split product matches the CPU twin and the same product unsplit.
final class SplitKTests: XCTestCase {
    func plan(_ m: Int, _ n: Int, _ k: Int, block: Int = 32, target: Int = 256) -> SplitK? {
        SplitK.plan(m: m, n: n, k: k, blockElements: block, targetGroups: target)
    }

    /// Hand-computed plans on a 0.5B model's shapes (hidden 896, MLP 4,864).
    func testPlans() {
        // 32 rollouts through the down projection: 14 tiles want 19 slices, capped at 16;
        // ⌈4864 / 16⌉ = 304 → 320 (whole 32-steps), so 15 slices of 320 and one of 64.
        XCTAssertEqual(plan(32, 896, 4864), SplitK(slices: 16, kSlice: 320))
        // The same on q4_k: slices of whole 256-super-blocks, ⌈304 / 256⌉ · 256 = 512.
        XCTAssertEqual(plan(32, 896, 4864, block: 256), SplitK(slices: 10, kSlice: 512))
        // q and o (K 896): at most ⌊896 / 256⌋ = 3 slices, ⌈896 / 3⌉ = 299 → 320.
        XCTAssertEqual(plan(32, 896, 896), SplitK(slices: 3, kSlice: 320))
        // A 512-token prefill of the same projection: 112 tiles, ⌈256 / 112⌉ = 3.
        XCTAssertEqual(plan(512, 896, 896), SplitK(slices: 3, kSlice: 320))
        // Grids that fill the device, K too short for two slices, the target off: no split.
        XCTAssertNil(plan(512, 9728, 896))
        XCTAssertNil(plan(32, 151_936, 896))
        XCTAssertNil(plan(32, 896, 511))
        XCTAssertEqual(plan(32, 896, 768, block: 256), SplitK(slices: 3, kSlice: 256), "a super-block a slice")
        XCTAssertNil(plan(32, 896, 500, block: 256), "one super-block: nothing to split")
        XCTAssertNil(plan(32, 896, 4864, target: 0))
        XCTAssertNil(plan(32, 896, 4864, target: 14), "14 tiles already meet a target of 14")
        // Every plan covers K exactly once: slices − 1 whole slices and a last one of 1 … kSlice.
        for (m, n, k, block) in [(20, 70, 1000, 1), (20, 70, 1056, 32), (20, 70, 4352, 256), (1, 777, 1024, 32), (64, 64, 100_000, 256)] {
            guard let s = plan(m, n, k, block: block) else { XCTFail("\(m) \(n) \(k) does not split"); continue }
            XCTAssertEqual(s.kSlice % max(32, block), 0)
            XCTAssertTrue((s.slices - 1) * s.kSlice < k && k <= s.slices * s.kSlice, "\(s) for k \(k)")
            XCTAssertLessThanOrEqual(s.slices, SplitK.maximumSlices)
        }
    }

    /// The vector kernel's subgroups per row group (subgroups of 32, the default target of 4,096).
    func testVectorKernelSplits() {
        let split = { (n: Int, k: Int, cols: Int) in VulkanBackend.gpuMatvecKSplit(rows: n, k: k, columns: cols, subgroupSize: 32) }
        // A 7B model's down projection (3,584 × 18,944): 896 row groups of 4, K long enough for 4.
        XCTAssertEqual(split(3584, 18_944, 1), 4)
        // Its o projection (K 3,584): 4 would leave a lane one run of 16 (3,584 / 16 / 128 = 1.75).
        XCTAssertEqual(split(3584, 3584, 1), 2)
        // Gate and up (37,888 rows): 9,472 row groups already past the target.
        XCTAssertEqual(split(37_888, 3584, 1), 1)
        // A 0.5B model's K of 896: too short to share.
        XCTAssertEqual(split(896, 896, 1), 1)
        // 2 already reaches the target: 2,048 row groups of 2 (8 columns) × 2.
        XCTAssertEqual(split(4096, 8192, 8), 2)
        XCTAssertEqual(VulkanBackend.gpuMatvecKSplit(rows: 3584, k: 18_944, columns: 1, subgroupSize: 64), 4)
        XCTAssertEqual(VulkanBackend.gpuMatvecKSplit(rows: 3584, k: 4096, columns: 1, subgroupSize: 64), 2)
    }

    func testTargetFromTheEnvironment() throws {
        XCTAssertEqual(try SplitK.targetGroups(environment: [:]), SplitK.defaultTargetGroups)
        XCTAssertEqual(try SplitK.targetGroups(environment: ["ROAST_SPLIT_K": ""]), SplitK.defaultTargetGroups)
        XCTAssertEqual(try SplitK.targetGroups(environment: ["ROAST_SPLIT_K": "0"]), 0)
        XCTAssertEqual(try SplitK.targetGroups(environment: ["ROAST_SPLIT_K": "528"]), 528)
        for bad in ["-1", "many", "2.5"] {
            XCTAssertThrowsError(try SplitK.targetGroups(environment: ["ROAST_SPLIT_K": bad])) {
                XCTAssertEqual("\($0)", "ROAST_SPLIT_K=\(bad): not a workgroup count (0 turns split-K off)")
            }
        }
    }

    /// On lavapipe's gpu family: split products (with an epilogue; in row windows past the binding
    /// limit) against the CPU twin, then the same product with split-K off; the lavapipe family
    /// never splits.
    func testSplitProductsMatchTheCPUTwinAndTheUnsplitOnes() throws {
        let device = try VulkanDevice(validation: true)
        let gpu = try VulkanBackend(device: device, kernels: .gpu)
        XCTAssertNil(try VulkanBackend(device: device, kernels: .lavapipe).tiledSplit(m: 20, n: 70, k: 4352, type: .q4_k))
        gpu.emulateCooperativeMatrix()
        let verifier = KernelVerifier(device: gpu, seed: 11)
        var rng = SeededRandom(seed: 11)
        let (m, n, k) = (20, 70, 1056)
        let w = rng.floats(n * k), x = rng.floats(m * k), r = rng.floats(m * n, scale: 2)
        for kind in verifier.tiledKinds {
            XCTAssertEqual(gpu.tiledSplit(m: m, n: n, k: k, type: .q8_0), SplitK(slices: 4, kSlice: 288))
            let split = try verifier.matmul(.q8_0, kind, m: m, n: n, k: k, w: w, x: x)
                + verifier.matmulResidual(.q8_0, kind, m: m, n: n, k: k, w: w, x: x, r: r, steer: nil)
            for res in split {
                XCTAssertTrue(res.shape.hasSuffix("split-k 4 × 288"), res.shape)
                XCTAssertTrue(res.pass, "\(res.kernel) \(res.shape): NMSE \(res.nmse)")
            }
        }
        let limit = gpu.bindingLimit
        gpu.bindingLimit = 20_000 // 16 rows of 1,122 bytes a window (aligned windows are 8 rows): 5 windows, each split
        let windows = try verifier.matmul(.q8_0, .tiled, m: m, n: n, k: k, w: w, x: x)
        XCTAssertTrue(windows[0].pass && windows[0].shape.hasSuffix("split-k 4 × 288"), "\(windows[0].shape): NMSE \(windows[0].nmse)")
        gpu.bindingLimit = limit
        XCTAssertEqual(gpu.vectorSplit(rows: n, k: k, columns: 1), 4) // lavapipe's subgroups of 8
        gpu.splitKTargetGroups = 0
        XCTAssertNil(gpu.tiledSplit(m: m, n: n, k: k, type: .q8_0))
        XCTAssertEqual(gpu.vectorSplit(rows: n, k: k, columns: 1), 1)
        let whole = try verifier.matmul(.q8_0, .tiled, m: m, n: n, k: k, w: w, x: x)
        XCTAssertEqual(whole.map(\.shape), ["m=20 n=70 k=1056"])
        XCTAssertTrue(whole[0].pass)
        XCTAssertTrue(device.builtKernelNames.contains("matmul_reduce.store"))
        XCTAssertTrue(device.builtKernelNames.contains("matmul_reduce.residual"))
        XCTAssertEqual(device.validationMessages, [])
    }
}
