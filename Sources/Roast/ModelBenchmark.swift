import Backend
import Foundation
import Generation
import Model
import Steering

/// Generation speed of a model: the figures of docs/PERFORMANCE.md.
public struct ModelBenchmarkResult: Codable, Sendable {
    public var model: String
    public var backend: String
    public var device: String
    public var weightMiB: Double
    public var prefillTokens: Int
    public var prefillTokensPerSecond: Double
    public var decodeTokens: Int
    /// Best of 3 rounds, each also running the steered decodes below.
    public var decodeTokensPerSecondBatch1: Double
    /// The host's side of that decode (Vulkan only), from the same round.
    public var decodeHostBatch1: HostShare?
    /// Generated tokens per second summed over the batch's sequences, per batch size.
    public var batched: [BatchedRate]
    /// Decode at batch 1 with a random vector injected at 5 layers (α 0.2), per site: the cost
    /// of steering relative to `decodeTokensPerSecondBatch1` (best of the same 3 rounds).
    public var steered: [SteeredRate]
    /// Decode at the first batch size sampled as ROAST's rollouts are: what sampling costs.
    public var sampled: SampledRate?
    public var peakHostMiB: Double
    public var deviceMiB: Double?
}

/// What the host spent on each decoded token: working (wall time less the time blocked on the
/// device's fences), of which recording dispatches, the dispatches a token takes, and how many
/// of its steps ran kept commands again instead of recording them (Backend.replay).
public struct HostShare: Codable, Sendable {
    public var busyMillisecondsPerToken: Double
    public var recordMillisecondsPerToken: Double
    public var dispatchesPerToken: Double
    public var replayedStepsPerToken: Double
}

public struct BatchedRate: Codable, Sendable {
    public var batch: Int
    public var tokensPerSecond: Double
}

/// Decode with `SamplingParameters(temperature:topP:)` over the whole vocabulary (top-k 0),
/// tokens per second summed over the batch; the prompts are short English requests where the
/// model has a tokenizer (random ids flatten a model's distributions), else random ids.
public struct SampledRate: Codable, Sendable {
    public var batch: Int
    public var temperature: Float
    public var topP: Float
    public var tokensPerSecond: Double
    public var host: HostShare?
    /// Of the sampled rows, the share whose logits came back because the draw or the top-p
    /// nucleus reached past the row's softmax head (the rest were sampled from the head alone).
    public var rowsReadBack: Double
}

public struct SteeredRate: Codable, Sendable {
    public var site: String
    public var layers: Int
    public var tokensPerSecond: Double
    /// unsteered / steered − 1 at batch 1.
    public var overhead: Double
    /// The host's share in the run that gave `tokensPerSecond` (Vulkan only).
    public var host: HostShare?
}

public enum ModelBenchmark {
    /// Prefill of `promptTokens` tokens; greedy decode of `decodeTokens` at batch 1 and at `batch`.
    public static func run(model: LanguageModel, promptTokens: Int = 512, decodeTokens: Int = 128, batches: [Int] = [8, 32],
                           progress: (String) -> Void = { _ in }) throws -> ModelBenchmarkResult {
        var rng = SplitMix64(seed: 7)
        let vocab = model.config.vocabSize
        // Ordinary text tokens (ids past the specials), a fixed pseudo-random prompt.
        func prompt(_ n: Int) -> [Int] { (0..<n).map { _ in Int.random(in: min(300, vocab / 2)..<vocab, using: &rng) } }
        let gen = Generator(model: model)
        gen.maxStepTokens = max(promptTokens, 512)

        progress("prefill of \(promptTokens) tokens")
        let long = prompt(promptTokens)
        _ = try gen.generate([GenerationRequest(promptIDs: long, maxTokens: 1, stopAtEOS: false)])  // warm-up: pipelines
        var prefill = Double.infinity
        for _ in 0..<2 {
            let t0 = now()
            _ = try gen.generate([GenerationRequest(promptIDs: long, maxTokens: 1, stopAtEOS: false)])
            prefill = min(prefill, now() - t0)
        }

        // Batch 1, unsteered and steered at 5 layers on each site, in alternating rounds: the best
        // of 3 each, so that a slow spell of a shared machine does not land on one of them only.
        let first = prompt(16)
        let layers = Array(0..<min(5, model.config.layerCount))
        let injectors = try SteeringSite.allCases.map { site -> SteeringInjector in
            let width = site.width(model.config)
            let vectors = Dictionary(uniqueKeysWithValues: layers.map { l in (l, (0..<width).map { _ in Float.random(in: -1...1, using: &rng) }) })
            return try SteeringInjector(model: model, intervention: Intervention(site: site, vectors: vectors, alpha: 0.2))
        }
        var single = 0.0, singleHost: HostShare?
        var steeredRates = [(rate: Double, host: HostShare?)](repeating: (0, nil), count: injectors.count)
        for round in 1...3 {
            progress("decode of \(decodeTokens) tokens at batch 1, unsteered and steered (round \(round) of 3)")
            let (rate, host) = try decode(gen, prompts: [first], tokens: decodeTokens)
            if rate > single { (single, singleHost) = (rate, host) }
            for (i, injector) in injectors.enumerated() {
                let run = try decode(gen, prompts: [first], tokens: decodeTokens, steering: injector)
                if run.rate > steeredRates[i].rate { steeredRates[i] = run }
            }
        }
        let steered = zip(SteeringSite.allCases, steeredRates).map { site, run in
            SteeredRate(site: site.rawValue, layers: layers.count, tokensPerSecond: run.rate, overhead: single / run.rate - 1, host: run.host)
        }
        var batched: [BatchedRate] = []
        for batch in batches {
            progress("decode of \(decodeTokens) tokens at batch \(batch)")
            let prompts = (0..<batch).map { _ in prompt(8 + Int.random(in: 0..<24, using: &rng)) }
            batched.append(BatchedRate(batch: batch, tokensPerSecond: try decodeRate(gen, prompts: prompts, tokens: decodeTokens)))
        }

        var sampled: SampledRate?
        if let batch = batches.first {
            let rollouts = RolloutSettings()
            let params = SamplingParameters(temperature: rollouts.temperature, topP: rollouts.topP)
            progress("decode of \(decodeTokens) tokens at batch \(batch), sampled at temperature \(params.temperature), top-p \(params.topP)")
            // Text where the model has a tokenizer: a sampler's work depends on how peaked the
            // model's next-token distributions are, and random ids flatten them.
            let text = ["Write a short story about a robot who learns to paint.", "What is 17 times 23? Think step by step.",
                        "Explain why the sky is blue in two sentences.", "List three uses of a paperclip."]
            let prompts = (0..<batch).map { i in
                model.tokenizer.map { $0.encode(text[i % text.count], addSpecialTokens: true) } ?? prompt(8 + Int.random(in: 0..<24, using: &rng))
            }
            let (head, back) = (gen.wideRowsFromHead, gen.wideRowsReadBack)
            let run = try decode(gen, prompts: prompts, tokens: decodeTokens, sampling: params)
            let (fromHead, readBack) = (gen.wideRowsFromHead - head, gen.wideRowsReadBack - back)
            sampled = SampledRate(batch: batch, temperature: params.temperature, topP: params.topP, tokensPerSecond: run.rate, host: run.host,
                                  rowsReadBack: Double(readBack) / Double(max(fromHead + readBack, 1)))
        }

        let device = (model.backend as? VulkanBackend)?.device
        return ModelBenchmarkResult(
            model: URL(fileURLWithPath: model.path).lastPathComponent, backend: model.backend.name,
            device: device.map { "\($0.info.name), \((model.backend as! VulkanBackend).kernelsDescription)" } ?? "host CPU (Swift reference)", weightMiB: Double(model.weightBytes) / 1048576,
            prefillTokens: promptTokens, prefillTokensPerSecond: Double(promptTokens) / prefill,
            decodeTokens: decodeTokens, decodeTokensPerSecondBatch1: single, decodeHostBatch1: singleHost, batched: batched, steered: steered,
            sampled: sampled, peakHostMiB: peakResidentMiB(), deviceMiB: device.map { Double($0.allocatedBytes) / 1048576 })
    }

    /// Tokens per second after the first token (the prefill is excluded).
    static func decodeRate(_ gen: Generator, prompts: [[Int]], tokens: Int, steering: SteeringInjector? = nil) throws -> Double {
        try decode(gen, prompts: prompts, tokens: tokens, steering: steering).rate
    }

    /// Tokens per second after the first token, and on Vulkan the host's share over the same span.
    static func decode(_ gen: Generator, prompts: [[Int]], tokens: Int, steering: SteeringInjector? = nil,
                       sampling: SamplingParameters = .greedy) throws -> (rate: Double, host: HostShare?) {
        let stream = (gen.model.backend as? VulkanBackend)?.stream
        func counters() -> (wall: Double, wait: Double, record: Double, dispatches: Int, replays: Int) {
            (now(), stream?.waitSeconds ?? 0, stream?.recordSeconds ?? 0, stream?.dispatchCount ?? 0, stream?.replays ?? 0)
        }
        var first: (wall: Double, wait: Double, record: Double, dispatches: Int, replays: Int)?, last = counters(), count = 0
        let requests = prompts.map { GenerationRequest(promptIDs: $0, maxTokens: tokens, sampling: sampling, stopAtEOS: false) }
        _ = try gen.generate(requests, steering: steering?.provider, onToken: { _, _, _ in
            let c = counters()
            if first == nil { first = c } else { count += 1 }
            last = c
        })
        // Tokens of one step arrive together: count every token after the prefill's batch.
        count -= prompts.count - 1
        let f = first!, n = Double(max(count, 1))
        let host = stream.map { _ in
            HostShare(busyMillisecondsPerToken: 1000 * ((last.wall - f.wall) - (last.wait - f.wait)) / n,
                      recordMillisecondsPerToken: 1000 * (last.record - f.record) / n,
                      dispatchesPerToken: Double(last.dispatches - f.dispatches) / n,
                      replayedStepsPerToken: Double(last.replays - f.replays) / n)
        }
        return (Double(count) / (last.wall - f.wall), host)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// VmHWM of /proc/self/status (Linux); 0 elsewhere.
    public static func peakResidentMiB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }
}
