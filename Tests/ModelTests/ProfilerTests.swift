import Backend
import Foundation
import Generation
import Model
@testable import Roast
import Steering
import VulkanCompute
import XCTest

final class ProfilerTests: XCTestCase {
    func testPhaseProfileGroupsDispatchesByLayerBlockAndKernelKind() {
        func t(_ label: String, _ kernel: String, _ us: Double, bytes: Double = 0, flops: Double = 0) -> DispatchTiming {
            DispatchTiming(label: label, kernel: kernel, nanoseconds: us * 1000, bytes: bytes, flops: flops)
        }
        let timings = [
            t("embedding", "embedding.q8_0", 10),
            t("layer 0 attention", "matvec.q4_1", 100, bytes: 2e5, flops: 4e5),
            t("layer 0 attention", "attention", 50),
            t("layer 0 mlp", "matvec.q4_1", 300, bytes: 6e5, flops: 1.2e6),
            t("layer 0 steering", "silu_mul", 20),
            t("layer 1 mlp", "rmsnorm", 20),
            t("lm head", "matvec.q8_0", 500),
        ]
        let ceilings = DeviceCeilings(device: "test", gbPerSecond: 4, gflopPerSecond: 8, date: "")
        let p = PhaseProfile(phase: "decode", tokens: 1, wall: 0.002, record: 0.0002, submit: 0.0015, timings: timings,
                             layerCount: 2, ceilings: ceilings)
        XCTAssertEqual(p.dispatches, 7)
        XCTAssertEqual(p.gpuSeconds, 1000e-6, accuracy: 1e-12)
        XCTAssertEqual(p.layers[0].attention, 0.15, accuracy: 1e-9)
        XCTAssertEqual(p.layers[0].mlp, 0.3, accuracy: 1e-9)
        XCTAssertEqual(p.layers[0].steering, 0.02, accuracy: 1e-9)
        XCTAssertEqual(p.layers[1].mlp, 0.02, accuracy: 1e-9)
        XCTAssertEqual(p.outside.map(\.name), ["lm head", "embedding"])
        XCTAssertEqual(p.hostOtherSeconds, 0.0003, accuracy: 1e-9)
        let q41 = p.kernels.first { $0.name == "matmul q4_1 (vector kernel)" }!
        XCTAssertEqual(q41.dispatches, 2)
        XCTAssertEqual(q41.share, 0.4, accuracy: 1e-9)
        // 8e5 bytes in 400 µs = 2 GB/s, half the ceiling; 1.6e6 FLOPs in 400 µs = 4 GFLOP/s.
        XCTAssertEqual(q41.gbPerSecond, 2, accuracy: 1e-9)
        XCTAssertEqual(q41.bandwidthFraction!, 0.5, accuracy: 1e-9)
        XCTAssertEqual(q41.computeFraction!, 0.5, accuracy: 1e-9)
        XCTAssertEqual(Set(p.kernels.map(\.name)), ["row gather (embedding, capture)", "matmul q4_1 (vector kernel)", "attention",
                                                   "elementwise (add, SiLU·up, steering)", "norm", "matmul q8_0 (vector kernel)"])
    }

    func testSteeredProfileOfARealModelCoversEveryLayer() throws {
        // In chunks of 4, 8, … 32 dispatches, so the profile also covers batches queued in parts.
        let vk = try VulkanBackend(device: VulkanDevice(validation: true), profiling: true, submitEvery: 4)
        let model = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: vk)
        let c = model.config
        let vectors = [1: [Float](repeating: 0.5, count: c.intermediateSize), 3: [Float](repeating: -0.5, count: c.intermediateSize)]
        let injector = try SteeringInjector(model: model, intervention: Intervention(site: .act, vectors: vectors, alpha: 0.2))
        let r = try Profiler.run(model: model, promptTokens: 12, genTokens: 4, batch: 2, steering: injector.provider)
        let plain = try Profiler.run(model: model, promptTokens: 12, genTokens: 4, batch: 2)
        XCTAssertEqual(r.prefill.tokens, 24)
        XCTAssertEqual(r.decode.tokens, 6)
        for (phase, unsteered) in [(r.prefill, plain.prefill), (r.decode, plain.decode)] {
            XCTAssertEqual(phase.layers.count, c.layerCount)
            XCTAssertTrue(phase.layers.allSatisfy { $0.attention > 0 && $0.mlp > 0 }, "\(phase.phase): \(phase.layers)")
            // The injection rides in the epilogues of the MLP matmuls: no dispatch of its own.
            XCTAssertEqual(phase.layers.map(\.steering), Array(repeating: 0, count: c.layerCount), phase.phase)
            XCTAssertEqual(phase.dispatches, unsteered.dispatches, phase.phase)
            XCTAssertEqual(Set(phase.outside.map(\.name)), ["embedding", "lm head", "sampling"])
            XCTAssertGreaterThan(phase.gpuSeconds, 0)
        }
        XCTAssertTrue(r.steered)
        XCTAssertFalse(plain.steered)
        let svg = Profiler.svg(r)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<title>layer").count - 1, 2 * 2 * c.layerCount)
        XCTAssertNoThrow(try JSONEncoder().encode(r))
        XCTAssertEqual(vk.device.validationMessages, [])
        XCTAssertGreaterThan(vk.stream.chunksQueued, 0)
    }

    /// `roast bench` on a tiny model: every rate positive, and on Vulkan the host's share of a
    /// decoded token (busy ≥ recording > 0, the dispatches a step takes, steps replayed); none on
    /// the CPU backend.
    func testBenchmarkReportsRatesAndTheHostShare() throws {
        let path = fixtures.appendingPathComponent("models/stories260K-hf").path
        let vk = try VulkanBackend(device: VulkanDevice(validation: true), submitEvery: 4)
        for backend in [vk, CPUBackend()] as [Backend] {
            let model = try LanguageModel(path: path, backend: backend)
            let r = try ModelBenchmark.run(model: model, promptTokens: 16, decodeTokens: 6, batches: [2])
            XCTAssertGreaterThan(r.prefillTokensPerSecond, 0)
            XCTAssertGreaterThan(r.decodeTokensPerSecondBatch1, 0)
            XCTAssertEqual(r.batched.map(\.batch), [2])
            XCTAssertEqual(r.steered.count, SteeringSite.allCases.count)
            if backend is VulkanBackend {
                let h = try XCTUnwrap(r.decodeHostBatch1)
                // A step is at least the embedding, the attention and three matmuls a layer (norms
                // and activations ride in their epilogues), the LM head and sampling.
                XCTAssertGreaterThanOrEqual(h.dispatchesPerToken, Double(4 * model.config.layerCount + 2))
                XCTAssertGreaterThan(h.recordMillisecondsPerToken, 0)
                XCTAssertGreaterThanOrEqual(h.busyMillisecondsPerToken, h.recordMillisecondsPerToken)
                // From the third decode step on, unsteered and steered alike, the step's kept commands run again.
                XCTAssertGreaterThan(h.replayedStepsPerToken, 0)
                for s in r.steered { XCTAssertGreaterThan(try XCTUnwrap(s.host).replayedStepsPerToken, 0, s.site) }
            } else {
                XCTAssertNil(r.decodeHostBatch1)
                XCTAssertTrue(r.steered.allSatisfy { $0.host == nil })
            }
        }
        XCTAssertEqual(vk.device.validationMessages, [])
    }
}
