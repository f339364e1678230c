import Backend
import Generation
import Model
import Steering
import VulkanCompute
import XCTest

/// Command-buffer reuse through the forward pass: decode steps that repeat the step before them
/// (same shape, steering tensors and attention bucket) replay the commands kept from the first
/// repeat, and give exactly the logits of recording every step.
final class ReplayTests: XCTestCase {
    func testDecodeStepsReplayKeptCommandsExactly() throws {
        for family in KernelFamily.allCases {
            var logits: [[[Float]]] = [], counts: [[Int]] = []
            for reuse in [false, true] {
                let vk = try VulkanBackend(device: VulkanDevice(validation: true), kernels: family,
                                           submitEvery: family == .gpu ? VulkanBackend.defaultSubmitEvery(for: .discrete) : nil,
                                           reuseCommands: reuse)
                let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: vk)
                let (cache, scratch) = (try KVCache(model: m, sequences: 2, capacity: 300), m.makeScratch())
                let promptLengths = [250, 3]
                for (s, n) in promptLengths.enumerated() {
                    _ = try m.forward(.prompt((0..<n).map { ($0 * 7 + s) % 512 }, sequence: s), cache: cache, scratch: scratch)
                }
                // A steering tensor pair made once: steps 9–13 bind the same ones.
                var rng = SplitMix64(seed: 3)
                let steer = Steering(scales: try vk.makeTensor(floats: [0.5, 2]), vector: try vk.makeTensor(floats: rng.floats(m.config.hiddenSize, scale: 1)))
                var run: [[Float]] = []
                for k in 0..<18 {
                    // Sequence 0 crosses position 256 (another attention bucket) at step 6.
                    let step = ForwardStep(ids: [(k * 37) % 512, (k * 11 + 5) % 512], sequences: [0, 1],
                                           positions: promptLengths.map { $0 + k }, logitRows: [1, 0])
                    let steering = (9..<14).contains(k) ? [1: LayerSteering(residual: steer), 3: LayerSteering(act: nil, residual: steer)] : [:]
                    run.append(try vk.readFloats(m.forward(step, cache: cache, steering: steering, scratch: scratch)))
                }
                logits.append(run)
                counts.append([vk.stream.captures, vk.stream.replays])
                XCTAssertEqual(vk.device.validationMessages, [], "\(family), reuse \(reuse)")
            }
            XCTAssertEqual(counts[0], [0, 0], "\(family): nothing kept with reuse off")
            // Kept at steps 1 (bucket 1), 7 (bucket 2), 10 (steered), 15 (unsteered again); the rest of each run replayed.
            XCTAssertEqual(counts[1], [4, 10], "\(family)")
            for k in logits[0].indices {
                XCTAssertEqual(logits[0][k], logits[1][k], "\(family): step \(k) differs when replayed")
                XCTAssertTrue(logits[1][k].allSatisfy(\.isFinite))
            }
        }
    }

    /// Through the generator, as `roast bench` drives it: one generator (one scratch), a fresh
    /// KV cache per run, unsteered and steered runs in turn, each the same with reuse on or off.
    func testGenerationRunsReplayAlike() throws {
        var outputs: [[[Int]]] = []
        for reuse in [false, true] {
            let vk = try VulkanBackend(device: VulkanDevice(validation: true), reuseCommands: reuse)
            let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: vk)
            var rng = SplitMix64(seed: 9)
            let vectors = Dictionary(uniqueKeysWithValues: [0, 2, 4].map { ($0, rng.floats(m.config.intermediateSize, scale: 1)) })
            let injector = try SteeringInjector(model: m, intervention: Intervention(site: .act, vectors: vectors, alpha: 1.5))
            let gen = Generator(model: m)
            var runs: [[Int]] = []
            for round in 0..<6 {
                let r = GenerationRequest(promptIDs: [1, 403, 407, 261, 378], maxTokens: 16, stopAtEOS: false)
                runs.append(try gen.generate([r], steering: round % 2 == 1 ? injector.provider : nil)[0].ids)
            }
            outputs.append(runs)
            XCTAssertEqual(vk.stream.replays > 0, reuse)
            XCTAssertEqual(vk.device.validationMessages, [])
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[1][0], outputs[1][1], "steering changed nothing")
    }
}
