import Backend
import Formats
import Foundation
import Model
@testable import Generation
@testable import Steering
import Tasks
import VulkanCompute
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

/// The math of ROAST against hand-computed values.
final class AggregationTests: XCTestCase {
    func testPairFormationAndFallbacks() {
        // Rollouts 0..3: 0 and 2 correct. Every correct × every incorrect, weight 1.
        let p = PairFormation.plan(correct: [true, false, true, false], hasSynthetic: true)!
        XCTAssertEqual(p.pairs.map { [$0.positive, $0.negative] }, [[0, 1], [0, 3], [2, 1], [2, 3]])
        XCTAssertEqual(p.pairs.map(\.weight), [1, 1, 1, 1])
        XCTAssertFalse(p.usedGold || p.usedSynthetic)
        // No correct rollout: the gold answer (index n = 3) is the positive, weight 0.5.
        let g = PairFormation.plan(correct: [false, false, false], hasSynthetic: true)!
        XCTAssertEqual(g.pairs.map { [$0.positive, $0.negative] }, [[3, 0], [3, 1], [3, 2]])
        XCTAssertEqual(g.pairs.map(\.weight), [0.5, 0.5, 0.5])
        XCTAssertTrue(g.usedGold)
        // No incorrect rollout: the synthetic wrong answer (n + 1 = 3), or skip without one.
        let s = PairFormation.plan(correct: [true, true], hasSynthetic: true)!
        XCTAssertEqual(s.pairs.map { [$0.positive, $0.negative] }, [[0, 3], [1, 3]])
        XCTAssertTrue(s.usedSynthetic)
        XCTAssertNil(PairFormation.plan(correct: [true, true], hasSynthetic: false))
    }

    func testGroupedMeanNormalizationGivesEachQuestionOneVote() {
        // Question 0: three pairs averaging (3, 0) → unit (1, 0). Question 1: one pair (0, 10) → (0, 1).
        let pairs = [
            ContrastPair(question: 0, delta: [2, 0]), ContrastPair(question: 0, delta: [4, 0]), ContrastPair(question: 0, delta: [3, 0]),
            ContrastPair(question: 1, delta: [0, 10]),
        ]
        XCTAssertEqual(Aggregation.groupedMeanNormalized(pairs), [0.5, 0.5])
        // The plain mean lets the big pair and the many pairs dominate: (9/4, 10/4).
        XCTAssertEqual(Aggregation.weightedMean(pairs), [2.25, 2.5])
        // Weights: a 0.5-weight pair counts half within its question.
        let w = [ContrastPair(question: 0, delta: [4, 0], weight: 0.5), ContrastPair(question: 0, delta: [1, 0], weight: 1)]
        XCTAssertEqual(Aggregation.weightedMean(w), [2, 0])
    }

    /// The authors' order: CSS on each question's mean, then the average (no second scaling).
    func testCSSPerQuestionOrderByHand() {
        let partials = [QuestionPartial(question: 0, weight: 1, pairs: 1, mean: [2, -4]),
                        QuestionPartial(question: 1, weight: 3, pairs: 3, mean: [1, 1]),
                        QuestionPartial(question: 2, weight: 1, pairs: 1, mean: [0, 0])]  // a zero mean is left out
        // max: (0.5, −1) and (1, 1) → (0.75, 0). l2: (2, −4)/√20 and (1, 1)/√2, averaged.
        XCTAssertEqual(Aggregation.cssPerQuestion(partials, mode: .max, topK: 1), [0.75, 0])
        let l2 = Aggregation.cssPerQuestion(partials, mode: .l2, topK: 1)!
        let r20 = Float(20).squareRoot(), r2 = Float(2).squareRoot()
        XCTAssertEqual(l2[0], (2 / r20 + 1 / r2) / 2, accuracy: 1e-6)
        XCTAssertEqual(l2[1], (-4 / r20 + 1 / r2) / 2, accuracy: 1e-6)
        // The paper's order differs: unit means (0.447, −0.894), (0.707, 0.707) → mean → max-scaled.
        let paper = Aggregation.css(Aggregation.groupedMeanNormalized(partials)!, mode: .max)
        XCTAssertEqual(paper[0], 1)
        XCTAssertEqual(paper[1], (-4 / r20 + 1 / r2) / (2 / r20 + 1 / r2), accuracy: 1e-6)
        XCTAssertNil(Aggregation.cssPerQuestion([], mode: .max, topK: 1))
    }

    func testCSSModes() {
        let mu: [Float] = [2, -4, 1]
        XCTAssertEqual(Aggregation.css(mu, mode: .max), [0.5, -1, 0.25])
        let l2 = Aggregation.css(mu, mode: .l2)
        for (a, b) in zip(l2, [2, -4, 1].map { Float($0) / Float(21).squareRoot() }) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        // softmax: d · softmax(|μ|) · sign(μ) with |μ| = (2, 4, 1): e^2, e^4, e^1 over their sum.
        let z = exp(2.0) + exp(4.0) + exp(1.0)
        let expected = [3 * exp(2.0) / z, -3 * exp(4.0) / z, 3 * exp(1.0) / z].map { Float($0) }
        for (a, b) in zip(Aggregation.css(mu, mode: .softmax), expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // CSS max keeps the direction exactly; a top-1 mask keeps 16/21 of the energy.
        let e = EnergyReport.compare(mu: mu, css: Aggregation.css(mu, mode: .max), topK: 1)
        XCTAssertEqual(e.css.cosine, 1, accuracy: 1e-6)
        XCTAssertEqual(e.topK.energyKept, 16.0 / 21.0, accuracy: 1e-6)
        XCTAssertEqual(Aggregation.topKMask(mu, k: 2), [1, 1, 0])
        // The top-K ablation: CSS max with the dimensions outside the top K zeroed.
        XCTAssertEqual(Aggregation.css(mu, mode: .topk, topK: 2), [0.5, -1, 0])
    }

    /// SADI as the authors run it: one top-k over all layers' |μ| together.
    func testJointTopKMaskRanksAcrossLayers() {
        let mu: [Int: [Float]] = [0: [0.5, -3, 0.1], 4: [2, -0.2, 3]]
        XCTAssertEqual(Aggregation.jointTopKMask(mu, k: 2), [0: [0, 1, 0], 4: [0, 0, 1]])
        XCTAssertEqual(Aggregation.jointTopKMask(mu, k: 3), [0: [0, 1, 0], 4: [1, 0, 1]])
        XCTAssertEqual(Aggregation.jointTopKMask(mu, k: 100), [0: [1, 1, 1], 4: [1, 1, 1]])
        // A tie goes to the lower layer, then the lower index.
        XCTAssertEqual(Aggregation.jointTopKMask([1: [1, 2], 2: [2, 0]], k: 1), [1: [0, 1], 2: [0, 0]])
    }

    /// Which rows each scope steers: a prompt of 4 tokens prefilled, then two decode steps.
    func testScopeRows() {
        let prefill = ForwardStep.prompt([5, 6, 7, 8])
        let decode = ForwardStep(ids: [9, 10], sequences: [0, 1], positions: [4, 6], logitRows: [0, 1])
        func rows(_ scope: SteeringScope) -> [Bool] {
            prefill.ids.indices.map { scope.contains(prefill, row: $0, promptLength: 4) }
                + decode.ids.indices.map { scope.contains(decode, row: $0, promptLength: 4) }
        }
        XCTAssertEqual(rows(.generated), [false, false, false, true, true, true])
        XCTAssertEqual(rows(.prefill), [true, true, true, true, false, false])
        XCTAssertEqual(rows(.all), [true, true, true, true, true, true])
        XCTAssertEqual(rows(.lastPrompt), [false, false, false, true, false, false], "the authors' --prefill_only")
        XCTAssertEqual(rows(.decode), [false, false, false, false, true, true], "the authors' CAA hook")
    }

    func testLayerSelections() throws {
        XCTAssertEqual(try LayerSelection("first:5").resolve(layerCount: 30), [0, 1, 2, 3, 4])
        XCTAssertEqual(try LayerSelection("last:2").resolve(layerCount: 30), [28, 29])
        XCTAssertEqual(try LayerSelection("3-5").resolve(layerCount: 30), [3, 4, 5])
        XCTAssertEqual(try LayerSelection("7,1,7").resolve(layerCount: 30), [1, 7])
        XCTAssertEqual(try LayerSelection("all").resolve(layerCount: 3), [0, 1, 2])
        XCTAssertThrowsError(try LayerSelection("first:x"))
        XCTAssertThrowsError(try LayerSelection("40").resolve(layerCount: 30))
    }

    func testArithmeticTaskAndGrader() {
        let t = ArithmeticTask(seed: 9, trainCount: 20, testCount: 20)
        XCTAssertEqual(t.train().count, 20)
        XCTAssertTrue(Set(t.train().map(\.prompt)).isDisjoint(with: Set(t.test().map(\.prompt))))
        XCTAssertEqual(t.train(), ArithmeticTask(seed: 9, trainCount: 20, testCount: 20).train(), "made from the seed")
        let item = TaskItem(id: "x", prompt: "What is 12 plus 30?", goldResponse: "12 + 30 = 42. The answer is 42.", goldValue: "42")
        XCTAssertTrue(t.grade("12 + 30 = 42", item))
        XCTAssertTrue(t.grade("so \\boxed{42} is it, not 7", item))
        XCTAssertTrue(t.grade("The answer is $42.0.", item))
        XCTAssertFalse(t.grade("The answer is 41.", item))
        XCTAssertFalse(t.grade("", item))
        XCTAssertEqual(NumberGrader.extract("It costs 1,234 dollars"), 1234)
        XCTAssertEqual(NumberGrader.extract("from 5 to -3"), -3)
        var rng = TaskRandom(seed: 1)
        let wrong = t.syntheticWrongResponse(item, rng: &rng)!
        XCTAssertFalse(t.grade(wrong, item))
        XCTAssertLessThanOrEqual(abs(NumberGrader.extract(wrong)! - 42), 3)
    }
}

/// Injection and capture on real models, Vulkan against the CPU twin.
final class InjectionTests: XCTestCase {
    func stories(_ b: Backend) throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: b)
    }

    func vectors(_ m: LanguageModel, site: ActivationSite, layers: [Int]) -> [Int: [Float]] {
        var rng = SplitMix64(seed: 5)
        return Dictionary(uniqueKeysWithValues: layers.map { ($0, rng.floats(site.width(m.config), scale: 1)) })
    }

    /// Steered batched generation is the same token by token on both backends, for both sites,
    /// and steering changes the output (it is really applied).
    func testSteeredGenerationMatchesAcrossBackends() throws {
        let cpu = try stories(CPUBackend())
        let vk = try stories(VulkanBackend(device: VulkanDevice(validation: true)))
        let prompts = [[1, 403, 407, 261, 378], [1, 317, 269, 368], [1, 403, 407, 261, 378]]
        for site in ActivationSite.allCases {
            let iv = Intervention(site: site, vectors: vectors(cpu, site: site, layers: [0, 2]), alpha: 2)
            var outputs: [[[Int]]] = []
            for m in [cpu, vk] {
                let requests = prompts.map { GenerationRequest(promptIDs: $0, maxTokens: 12, stopAtEOS: false) }
                let inj = try SteeringInjector(model: m, intervention: iv)
                outputs.append(try Generator(model: m).generate(requests, steering: inj.provider).map(\.ids))
            }
            XCTAssertEqual(outputs[0], outputs[1], "\(site): CPU and Vulkan steered generations differ")
            XCTAssertEqual(outputs[0][0], outputs[0][2], "identical prompts in one batch must give identical greedy outputs")
            let plain = try Generator(model: cpu).generate(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: 12, stopAtEOS: false) }).map(\.ids)
            XCTAssertNotEqual(plain, outputs[0], "\(site): steering with α = 2 changed nothing")
        }
    }

    /// A server's batch: requests with different vectors (at both sites), one unsteered, and two
    /// sharing a vector, decode together and give each the tokens it gives alone (alone through
    /// the single-intervention injector), on both backends and both kernel families; the steered
    /// requests really change.
    func testMixedBatchRowsMatchTheirLoneRuns() throws {
        let backends: [Backend] = try [CPUBackend()] + KernelFamily.allCases.map { try VulkanBackend(device: VulkanDevice(validation: true), kernels: $0) }
        for b in backends {
            let m = try stories(b)
            let act = Intervention(site: .act, vectors: vectors(m, site: .act, layers: [0, 2]), alpha: 2)
            let res = Intervention(site: .residual, vectors: vectors(m, site: .residual, layers: [1]), alpha: 1.5)
            let other = Intervention(site: .act, vectors: [2: vectors(m, site: .act, layers: [1])[1]!], alpha: -3, scope: .all)
            let plan: [(prompt: [Int], iv: Intervention?)] = [([1, 403, 407, 261, 378], act), ([1, 317, 269, 368], nil),
                                                              ([1, 403, 407, 261, 378], res), ([1, 317, 269, 368], other),
                                                              ([1, 260, 300], act)]
            let requests = plan.map { GenerationRequest(promptIDs: $0.prompt, maxTokens: 10, stopAtEOS: false) }
            let batch = try BatchSteeringInjector(model: m, interventions: plan.map(\.iv))
            let width = m.config.intermediateSize
            XCTAssertEqual(batch.tables[BatchSteeringInjector.Key(layer: 0, site: .act)]?.tensor.count, width, "requests 0 and 4 share a row")
            XCTAssertEqual(batch.tables[BatchSteeringInjector.Key(layer: 2, site: .act)]?.tensor.count, 2 * width, "and request 3 adds one")
            let together = try Generator(model: m).generate(requests, steering: batch.provider).map(\.ids)
            for (i, (request, p)) in zip(requests, plan).enumerated() {
                let alone = try Generator(model: m).generate([request], steering: try p.iv.map { try SteeringInjector(model: m, intervention: $0).provider })
                XCTAssertEqual(together[i], alone[0].ids, "\(b.name): request \(i) in the batch vs alone")
                if p.iv != nil {
                    let plain = try Generator(model: m).generate([request])[0].ids
                    XCTAssertNotEqual(plain, alone[0].ids, "\(b.name): request \(i)'s steering changed nothing")
                }
            }
        }
        let m = try stories(CPUBackend())
        let mask = Intervention(site: .act, vectors: vectors(m, site: .act, layers: [0]), alpha: 1, multiplicative: true)
        let add = Intervention(site: .act, vectors: vectors(m, site: .act, layers: [0]), alpha: 1)
        XCTAssertThrowsError(try BatchSteeringInjector(model: m, interventions: [add, nil, mask])) {
            XCTAssertTrue("\($0)".contains("requests 0 and 2 steer layer 0 at the act site"), "\($0)")
        }
        let wide = Intervention(site: .residual, vectors: [0: [1, 2, 3]], alpha: 1)
        XCTAssertThrowsError(try BatchSteeringInjector(model: m, interventions: [nil, wide])) {
            XCTAssertTrue("\($0)".hasPrefix("request 1: the vector for layer 0 has 3 values"), "\($0)")
        }
    }

    /// Scope: with `generated`, only the last prompt token and later are steered, so the
    /// activations of the earlier prompt positions are bit-identical to the unsteered run.
    func testScopeLeavesOtherPositionsUntouched() throws {
        let m = try stories(VulkanBackend(device: VulkanDevice(validation: true)))
        let ids = [1, 403, 407, 261, 378, 432]
        let layers = [0, 1, 2, 3, 4]
        func capture(_ scope: SteeringScope?) throws -> [Int: [[Float]]] {
            let cap = ActivationCapture(site: .residual, layers: layers, rows: Array(ids.indices))
            let cache = try KVCache(model: m, sequences: 1, capacity: ids.count)
            var steering: [Int: LayerSteering] = [:]
            if let scope {
                let inj = try SteeringInjector(model: m, intervention: Intervention(site: .residual, vectors: vectors(m, site: .residual, layers: [1]), alpha: 1, scope: scope))
                steering = try inj.steering(for: .prompt(ids), promptLengths: Array(repeating: ids.count, count: ids.count))
            }
            _ = try m.forward(.prompt(ids), cache: cache, steering: steering, capture: cap, scratch: m.makeScratch())
            return try cap.read(m)
        }
        let plain = try capture(nil), generated = try capture(.generated), all = try capture(.all)
        for l in layers {
            for p in 0..<ids.count - 1 { XCTAssertEqual(generated[l]![p], plain[l]![p], "layer \(l) position \(p) must be untouched") }
        }
        XCTAssertEqual(generated[0]![5], plain[0]![5], "layer 0 is before the steered layer")
        XCTAssertNotEqual(generated[1]![5], plain[1]![5], "the last prompt token is steered at layer 1")
        XCTAssertNotEqual(all[1]![0], plain[1]![0], "scope all steers the first position too")
    }

    /// A prompt run once with its cache copied gives the same activations as running every
    /// prompt + response in full, and a batch with a shared prompt generates what a lone request does.
    func testSharedPromptPathsAgreeWithFullRuns() throws {
        let m = try stories(VulkanBackend(device: VulkanDevice(validation: true)))
        let prompt = [1, 403, 407, 261], r1 = [378, 432, 383], r2 = [317]
        let forcing = TeacherForcing(model: m, site: .act, layers: [1, 3])
        let full = try forcing.lastTokenActivations([prompt + r1, prompt + r2])
        let shared = try forcing.lastTokenActivations(prompt: prompt, responses: [r1, r2])
        for s in 0..<2 {
            for l in [1, 3] { XCTAssertLessThan(zip(full[s][l]!, shared[s][l]!).map { abs($0 - $1) }.max()!, 1e-5) }
        }
        let lone = try Generator(model: m).generate([GenerationRequest(promptIDs: prompt, maxTokens: 10, stopAtEOS: false)])[0].ids
        let sampling = SamplingParameters(temperature: 0.8, topP: 0.9, seed: 3)
        let batch = try Generator(model: m).generate([
            GenerationRequest(promptIDs: prompt, maxTokens: 10, stopAtEOS: false),
            GenerationRequest(promptIDs: prompt, maxTokens: 10, sampling: sampling, stopAtEOS: false),
            GenerationRequest(promptIDs: [1, 317], maxTokens: 10, stopAtEOS: false),
        ])
        XCTAssertEqual(batch[0].ids, lone)
        XCTAssertEqual(batch[1].ids.count, 10)
        XCTAssertEqual(batch[2].ids, try Generator(model: m).generate([GenerationRequest(promptIDs: [1, 317], maxTokens: 10, stopAtEOS: false)])[0].ids)
    }

    /// Distinct prompts that share a long head (prefilled once, cache copied) generate, steered or
    /// not, exactly what each generates alone: with a head chunked across several steps, and with
    /// fewer slots than requests, so later requests join the batch as earlier ones finish and
    /// copy their head (or their whole prompt, less its last token) from a slot in use.
    func testSharedPromptHeadMatchesLoneRuns() throws {
        let m = try stories(VulkanBackend(device: VulkanDevice(validation: true)))
        let head = [1, 403, 407, 261, 378, 432, 383, 317, 269, 368, 302, 300]
        let prompts = [head + [301, 302], head + [455], head + [301, 302, 303, 304], head, [1, 317, 269], head + [455]]
        let lengths = [8, 3, 8, 5, 6, 7]
        let iv = Intervention(site: .act, vectors: vectors(m, site: .act, layers: [1]), alpha: 1.5, scope: .generated)
        for (steer, slots) in [(false, nil), (true, nil), (false, 2), (true, 2), (true, 1)] as [(Bool, Int?)] {
            let gen = Generator(model: m)
            gen.maxStepTokens = 5
            gen.maxSequences = slots
            let requests = zip(prompts, lengths).map { GenerationRequest(promptIDs: $0, maxTokens: $1, stopAtEOS: false) }
            let inj = try SteeringInjector(model: m, intervention: iv)
            var finished: [Int] = []
            let batch = try gen.generate(requests, steering: steer ? inj.provider : nil, onFinish: { i, r in
                XCTAssertEqual(r.ids.count, lengths[i])
                finished.append(i)
            }).map(\.ids)
            XCTAssertEqual(finished.sorted(), Array(requests.indices), "each request finishes once")
            if slots == 1 { XCTAssertEqual(finished, Array(requests.indices), "one slot: in order") }
            for (r, ids) in zip(requests, batch) {
                let alone = try SteeringInjector(model: m, intervention: iv)
                XCTAssertEqual(ids, try Generator(model: m).generate([r], steering: steer ? alone.provider : nil)[0].ids,
                               "steered: \(steer), slots: \(slots.map(String.init) ?? "all")")
            }
        }
    }

    /// Capture at the `act` site equals SiLU(gate) computed by the CPU twin.
    func testCaptureAgreesAcrossBackends() throws {
        let cpu = try stories(CPUBackend()), vk = try stories(VulkanBackend(device: VulkanDevice(validation: true)))
        for site in ActivationSite.allCases {
            let a = try TeacherForcing(model: cpu, site: site, layers: [0, 4]).lastTokenActivations([[1, 403, 407], [1, 317, 269, 368, 302]])
            let b = try TeacherForcing(model: vk, site: site, layers: [0, 4]).lastTokenActivations([[1, 403, 407], [1, 317, 269, 368, 302]])
            for s in 0..<2 {
                for l in [0, 4] {
                    let (x, y) = (a[s][l]!, b[s][l]!)
                    let err = zip(x, y).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(err, 1e-4, "\(site) layer \(l) sequence \(s)")
                }
            }
        }
    }
}

final class VectorFileTests: XCTestCase {
    func model() throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: CPUBackend())
    }

    func testSafetensorsAndControlVectorRoundTrip() throws {
        let m = try model()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("roast-vec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 3)
        let vecs = [1: rng.floats(64), 3: rng.floats(64)]
        var meta = VectorMetadata(model: m, site: .residual, layers: [1, 3], method: "roast", defaultAlpha: 0.3)
        meta.task = "arithmetic"
        let file = SteeringVectorFile(metadata: meta, vectors: vecs)
        let st = dir.appendingPathComponent("v.safetensors"), gg = dir.appendingPathComponent("v.gguf")
        try file.write(to: st)
        let back = try SteeringVectorFile.read(st)
        XCTAssertEqual(back.vectors, vecs)
        XCTAssertEqual(back.metadata, meta)
        try back.check(against: m)
        // GGUF control vector: arch controlvector, direction.N tensors, read back the same.
        try back.write(to: gg)
        let g = try SteeringVectorFile.read(gg)
        XCTAssertEqual(g.vectors, vecs)
        XCTAssertEqual(g.metadata.site, .residual)
        let raw = try GGUFProbe.names(gg)
        XCTAssertEqual(raw.arch, "controlvector")
        XCTAssertEqual(raw.tensors.sorted(), ["direction.1", "direction.3"])
    }

    func testMismatchedVectorsAreRefused() throws {
        let m = try model()
        let act = SteeringVectorFile(metadata: VectorMetadata(model: m, site: .act, layers: [0], method: "roast", defaultAlpha: 0.2),
                                     vectors: [0: [Float](repeating: 0.1, count: 172)])
        XCTAssertThrowsError(try act.controlVector()) { XCTAssertTrue("\($0)".contains("residual"), "\($0)") }
        var wrongWidth = act
        wrongWidth.vectors[0] = [Float](repeating: 0, count: 100)
        XCTAssertThrowsError(try wrongWidth.check(against: m)) { XCTAssertTrue("\($0)".contains("172 wide"), "\($0)") }
        var wrongArch = act
        wrongArch.metadata.architecture = "qwen3"
        XCTAssertThrowsError(try wrongArch.check(against: m)) { XCTAssertTrue("\($0)".contains("qwen3"), "\($0)") }
        XCTAssertThrowsError(try SteeringInjector(model: m, intervention: Intervention(site: .act, vectors: [9: [Float](repeating: 0, count: 172)], alpha: 1)))
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).safetensors")
        try Data("not a file".utf8).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        XCTAssertThrowsError(try SteeringVectorFile.read(bad))
    }
}

enum GGUFProbe {
    static func names(_ url: URL) throws -> (arch: String?, tensors: [String]) {
        let g = try GGUFFile(url: url)
        return (g.metadata["general.architecture"]?.string, g.tensors.map(\.name))
    }
}
