import Backend
import Formats
import Foundation
import Generation
import Model
import VulkanCompute
import XCTest

/// Fixtures copied from ../shared into Tests/Fixtures, so a fresh clone runs without ../shared.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
/// The default model, downloaded by `make model` (which `make test` runs first).
let smolLM2 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")

func json(_ url: URL) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
}

/// The backends every parity test runs on: the CPU reference and both Vulkan kernel families.
/// lavapipe is installed by `make test`, so a missing Vulkan device fails rather than skips.
func backends() throws -> [Backend] {
    try [CPUBackend()] + vulkanFamilies()
}

/// Both kernel families on the machine's Vulkan device, the gpu family queueing its batches in
/// chunks as it does on a GPU (lavapipe's default queues them whole).
func vulkanFamilies() throws -> [VulkanBackend] {
    try KernelFamily.allCases.map {
        try VulkanBackend(device: VulkanDevice(validation: true), kernels: $0,
                          submitEvery: $0 == .gpu ? VulkanBackend.defaultSubmitEvery(for: .discrete) : nil)
    }
}

extension Array {
    /// The first two elements.
    func pair() -> (Element, Element) { (self[0], self[1]) }
}

/// A safetensors file of f32 tensors (name, shape, values).
func writeSafetensors(_ tensors: [(String, [Int], [Float])], to url: URL) throws {
    var header: [String: Any] = [:], offset = 0
    for (name, shape, values) in tensors {
        header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * values.count]]
        offset += 4 * values.count
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while json.count % 8 != 0 { json.append(0x20) }
    var data = Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) })
    data.append(json)
    for (_, _, values) in tensors { values.withUnsafeBytes { data.append(contentsOf: $0) } }
    try data.write(to: url)
}

func greedy(_ model: LanguageModel, _ prompt: [Int], _ n: Int) throws -> [Int] {
    let r = try Generator(model: model).generate([GenerationRequest(promptIDs: prompt, maxTokens: n, stopAtEOS: false)])
    return r[0].ids
}

final class ModelParityTests: XCTestCase {
    func testTinyQwen3MatchesTransformersOnBothBackends() throws {
        let ref = try json(fixtures.appendingPathComponent("tiny-qwen3/reference.json"))
        let cases = ref["cases"] as! [[String: Any]]
        for backend in try backends() {
            let model = try LanguageModel(path: fixtures.appendingPathComponent("tiny-qwen3").path, backend: backend)
            XCTAssertEqual(model.config.architecture, .qwen3)
            for c in cases {
                let ids = c["input_ids"] as! [Int]
                let expected = (c["logits"] as! [[Double]]).map { $0.map(Float.init) }
                let got = try model.logits(ids: ids)
                XCTAssertEqual(got.count, expected.count)
                var worst: Float = 0
                for (g, e) in zip(got, expected) { for (a, b) in zip(g, e) { worst = max(worst, abs(a - b)) } }
                XCTAssertLessThanOrEqual(worst, 1e-2, "\(backend.name): logits of \(ids.count) tokens differ by \(worst)")
                XCTAssertEqual(try greedy(model, ids, 16), c["greedy_continuation"] as! [Int], "\(backend.name) greedy continuation")
            }
            if let v = backend as? VulkanBackend { XCTAssertEqual(v.device.validationMessages, []) }
        }
    }

    func testStories260KMatchesTransformersOnBothBackends() throws {
        let dir = fixtures.appendingPathComponent("models/stories260K-hf")
        let ref = try json(dir.appendingPathComponent("reference.json"))
        for backend in try backends() {
            let model = try LanguageModel(path: dir.path, backend: backend)
            for c in ref["cases"] as! [[String: Any]] {
                let ids = c["input_ids"] as! [Int]
                let expected = c["greedy_continuation"] as! [Int]
                let last = try model.logits(ids: ids).last!
                let want = (c["last_logits"] as! [Double]).map(Float.init)
                let worst = zip(last, want).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(worst, 1e-3, "\(backend.name) last logits")
                XCTAssertEqual(try greedy(model, ids, expected.count), expected, "\(backend.name) '\(c["prompt"]!)'")
            }
        }
    }

    /// stories260K with random q/k/v biases (a Qwen2-style attention) in a new folder: the fused
    /// projections (stacked q/k/v with bias, RoPE and cache writes in the epilogue, interleaved
    /// gate/up, residual adds, steering in the epilogues) against the same model run as plain
    /// matmuls and elementwise ops, on both backends, with steering at both sites.
    func testFusedProjectionsMatchThePlainOnes() throws {
        let src = fixtures.appendingPathComponent("models/stories260K-hf")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("roast-fused-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let c = try ModelConfig.fromHF(configJSON: src.appendingPathComponent("config.json"))
        let st = try SafetensorsModel(url: src.appendingPathComponent("model.safetensors"))
        var tensors: [(String, [Int], [Float])] = st.tensors.keys.sorted().map { name in
            let t = st.tensors[name]!
            guard case .element(let e) = t.type else { fatalError("\(name): \(t.type)") }
            return (name, t.shape, Quantization.decode(t.data, as: e, count: t.elementCount))
        }
        var rng = SystemRandomNumberGenerator()
        let random = { (n: Int) in (0..<n).map { _ in Float.random(in: -0.5...0.5, using: &rng) } }
        for l in 0..<c.layerCount {
            let p = "model.layers.\(l).self_attn."
            tensors += [(p + "q_proj.bias", [c.headCount * c.headDim], random(c.headCount * c.headDim)),
                        (p + "k_proj.bias", [c.kvHeadCount * c.headDim], random(c.kvHeadCount * c.headDim)),
                        (p + "v_proj.bias", [c.kvHeadCount * c.headDim], random(c.kvHeadCount * c.headDim))]
        }
        try writeSafetensors(tensors, to: dir.appendingPathComponent("model.safetensors"))

        let ids = [1, 400, 30, 77, 5, 200, 9, 14, 300, 2]
        let original = try LanguageModel(path: src.path, backend: CPUBackend()).logits(ids: ids)
        for backend in try backends() {
            let fused = try LanguageModel(path: dir.path, backend: backend)
            let plain = try LanguageModel(path: dir.path, backend: backend, fuseProjections: false)
            let scale = try plain.logits(ids: ids).joined().map { abs($0) }.max()!
            XCTAssertGreaterThan(try zip(fused.logits(ids: ids).joined(), original.joined()).map { abs($0 - $1) }.max()!, 0.01 * scale,
                                 "the biases must change the logits, or this test checks nothing")
            // Steering at the act site of layer 1 (additive) and the residual of layer 3 (multiplicative).
            let act = try backend.makeTensor(floats: random(c.intermediateSize)), res = try backend.makeTensor(floats: random(c.hiddenSize))
            let scales = try backend.makeTensor(floats: ids.indices.map { $0 % 2 == 0 ? 0.8 : 0 })
            let steering = [1: LayerSteering(act: Steering(scales: scales, vector: act)),
                            3: LayerSteering(residual: Steering(scales: scales, vector: res, multiplicative: true))]
            for steer in [[:], steering] {
                let (a, b) = try [fused, plain].map { m -> [Float] in
                    let cache = try KVCache(model: m, sequences: 1, capacity: ids.count)
                    return try backend.readFloats(m.forward(.prompt(ids, allLogits: true), cache: cache, steering: steer, scratch: m.makeScratch()))
                }.pair()
                let worst = zip(a, b).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(backend.name), steered: \(!steer.isEmpty)")
            }
        }
    }

    func testSmolLM2GGUFMatchesTransformers() throws {
        guard FileManager.default.fileExists(atPath: smolLM2.path) else {
            return XCTFail("\(smolLM2.path) is missing: run `make model` (make test does)")
        }
        let ref = try json(fixtures.appendingPathComponent("smollm2/reference.json"))
        let cases = ref["cases"] as! [[String: Any]]
        let vulkan = try vulkanFamilies()
        for backend in vulkan as [Backend] + [CPUBackend()] {
            let model = try LanguageModel(path: smolLM2.path, backend: backend)
            XCTAssertEqual(model.config.architecture, .llama)
            for c in cases {
                let ids = c["input_ids"] as! [Int]
                let last = try model.logits(ids: ids).last!
                let top = last.indices.max { last[$0] < last[$1] }!
                XCTAssertEqual(top, (c["top20_ids"] as! [Int])[0], "\(backend.name) top-1 for '\(c["prompt"]!)'")
                let top20 = (c["top20_logits"] as! [Double]).map(Float.init)
                for (id, want) in zip(c["top20_ids"] as! [Int], top20) {
                    XCTAssertEqual(last[id], want, accuracy: 0.05, "\(backend.name) logit of \(id)")
                }
                let expected = c["greedy_continuation"] as! [Int]
                // The reference continuation ends at EOS (at most 32 tokens).
                XCTAssertEqual(try greedy(model, ids, expected.count), expected,
                               "\(backend.name) greedy continuation of '\(c["prompt"]!)'")
            }
        }
        for v in vulkan { XCTAssertEqual(v.device.validationMessages, [], "\(v.family)") }
        XCTAssertGreaterThan(vulkan.first { $0.family == .gpu }!.stream.chunksQueued, 0, "the gpu family queued chunks")
    }
}

final class GenerationTests: XCTestCase {
    func stories() throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path,
                          backend: VulkanBackend(device: VulkanDevice(validation: true)))
    }

    func testSeededSamplingIsReproducibleAndSamplesDiffer() throws {
        let m = try stories()
        let p = SamplingParameters(temperature: 1.0, topK: 40, topP: 0.9, seed: 11)
        let requests = (0..<4).map { _ in GenerationRequest(promptIDs: [1, 403, 407], maxTokens: 20, sampling: p, stopAtEOS: false) }
        let a = try Generator(model: m).generate(requests).map(\.ids)
        let b = try Generator(model: m).generate(requests).map(\.ids)
        XCTAssertEqual(a, b, "same seed, same samples")
        XCTAssertGreaterThan(Set(a).count, 1, "each sample has its own random stream")
        // The full-row path (no top-k) is reproducible too.
        let full = SamplingParameters(temperature: 0.8, topP: 0.95, seed: 5)
        let r = GenerationRequest(promptIDs: [1, 403], maxTokens: 15, sampling: full, stopAtEOS: false)
        XCTAssertEqual(try Generator(model: m).generate([r]).map(\.ids), try Generator(model: m).generate([r]).map(\.ids))
    }

    /// A batch that requests join mid-run and leave early (what a server drives): each finished
    /// request has the tokens it has alone, a cancelled one reports nothing and frees its slot,
    /// and requests the batch cannot hold are refused.
    func testBatchTakesRequestsMidRunAndCancels() throws {
        let m = try stories()
        let a = GenerationRequest(promptIDs: [1, 403, 407, 261, 378], maxTokens: 12, stopAtEOS: false)
        let b = GenerationRequest(promptIDs: [1, 317, 269, 368], maxTokens: 6, stopAtEOS: false)
        let c = GenerationRequest(promptIDs: [1, 260, 300], maxTokens: 30, stopAtEOS: false)
        let alone = try [a, b].map { try Generator(model: m).generate([$0])[0].ids }
        let batch = try GenerationBatch(generator: Generator(model: m), slots: 2, capacity: 64)
        var done: [Int: [Int]] = [:], tokens: [Int: Int] = [:]
        func step() throws { try batch.step(onToken: { t, _, _ in tokens[t, default: 0] += 1 }) { done[$0] = $1.ids } }
        let ta = try batch.submit(a)
        for _ in 0..<3 { try step() }
        let tc = try batch.submit(c), tb = try batch.submit(b)  // c takes the free slot, b waits for one
        XCTAssertEqual(batch.queued, 2)
        try step()
        XCTAssertEqual([batch.running, batch.queued], [2, 1])
        batch.cancel(tc)                                         // the client went away: b gets c's slot
        while !batch.isIdle { try step() }
        XCTAssertEqual(done[ta], alone[0])
        XCTAssertEqual(done[tb], alone[1])
        XCTAssertNil(done[tc], "a cancelled request reports nothing")
        XCTAssertEqual(tokens[ta], 12)
        XCTAssertThrowsError(try batch.submit(GenerationRequest(promptIDs: [Int](repeating: 5, count: 60), maxTokens: 5))) {
            XCTAssertTrue("\($0)".contains("exceeds the batch's sequence capacity of 64"), "\($0)")
        }
        XCTAssertThrowsError(try GenerationBatch(generator: Generator(model: m), slots: 0, capacity: 64))
        XCTAssertThrowsError(try GenerationBatch(generator: Generator(model: m), slots: 1, capacity: 100_000)) {
            XCTAssertTrue("\($0)".contains("the model's context"), "\($0)")
        }
    }

    func testStopsAndBadInput() throws {
        let m = try stories()
        let tok = try m.requireTokenizer()
        // Stop string: the text ends before it.
        let r = try Generator(model: m).generate([GenerationRequest(promptIDs: [1, 403, 407, 261, 378], maxTokens: 40, stopStrings: ["Lily"])])[0]
        XCTAssertEqual(r.finishReason, .stop)
        XCTAssertFalse(r.text.contains("Lily"))
        XCTAssertEqual(tok.decode([403, 407, 261, 378]).trimmingCharacters(in: .whitespaces), "Once upon a time")
        // A prompt longer than the context (512) is refused with a clear message.
        XCTAssertThrowsError(try Generator(model: m).generate([GenerationRequest(promptIDs: [Int](repeating: 5, count: 500), maxTokens: 20)])) {
            XCTAssertTrue("\($0)".contains("exceeds the model's context of 512"), "\($0)")
        }
        XCTAssertThrowsError(try m.logits(ids: [1, 99_999])) { XCTAssertTrue("\($0)".contains("outside the vocabulary"), "\($0)") }
        XCTAssertThrowsError(try LanguageModel(path: "/nonexistent/model.gguf", backend: CPUBackend())) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
    }

    /// A KV cache whose layer the attention kernel could not bind (on a GPU, 2^27 vec4 texels:
    /// 2 GiB) is refused when it is made, naming its size, rather than failing the first step.
    func testAKVCacheTheAttentionCannotBindIsRefusedWhenMade() throws {
        let vk = try VulkanBackend(device: VulkanDevice(validation: true))
        let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: vk)
        let perPosition = 4 * m.config.kvHeadCount * m.config.headDim
        vk.texelLimit = 300 * perPosition / 16
        XCTAssertEqual(vk.maxAttentionKVBytes, 300 * perPosition)
        XCTAssertNoThrow(try KVCache(model: m, sequences: 1, capacity: 300))
        XCTAssertThrowsError(try KVCache(model: m, sequences: 2, capacity: 300)) {
            XCTAssertTrue("\($0)".contains("a KV cache of 2 sequences × 300 positions"), "\($0)")
        }
    }
}
