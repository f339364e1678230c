import Backend
import Foundation
import Generation
import Model

/// Generation speed of a model: the figures of docs/PERFORMANCE.md.
public struct ModelBenchmarkResult: Codable, Sendable {
    public var model: String
    public var backend: String
    public var device: String
    public var weightMiB: Double
    public var prefillTokens: Int
    public var prefillTokensPerSecond: Double
    public var decodeTokens: Int
    public var decodeTokensPerSecondBatch1: Double
    public var batch: Int
    /// Generated tokens per second summed over the batch's sequences.
    public var decodeTokensPerSecondBatched: Double
    public var peakHostMiB: Double
    public var deviceMiB: Double?
}

public enum ModelBenchmark {
    /// Prefill of `promptTokens` tokens; greedy decode of `decodeTokens` at batch 1 and at `batch`.
    public static func run(model: LanguageModel, promptTokens: Int = 512, decodeTokens: Int = 128, batch: Int = 8,
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

        progress("decode of \(decodeTokens) tokens at batch 1")
        let single = try decodeRate(gen, prompts: [prompt(16)], tokens: decodeTokens)
        progress("decode of \(decodeTokens) tokens at batch \(batch)")
        let batched = try decodeRate(gen, prompts: (0..<batch).map { _ in prompt(8 + Int.random(in: 0..<24, using: &rng)) }, tokens: decodeTokens)

        let device = (model.backend as? VulkanBackend)?.device
        return ModelBenchmarkResult(
            model: URL(fileURLWithPath: model.path).lastPathComponent, backend: model.backend.name,
            device: device?.info.name ?? "host CPU (Swift reference)", weightMiB: Double(model.weightBytes) / 1048576,
            prefillTokens: promptTokens, prefillTokensPerSecond: Double(promptTokens) / prefill,
            decodeTokens: decodeTokens, decodeTokensPerSecondBatch1: single, batch: batch, decodeTokensPerSecondBatched: batched,
            peakHostMiB: peakResidentMiB(), deviceMiB: device.map { Double($0.allocatedBytes) / 1048576 })
    }

    /// Tokens per second after the first token (the prefill is excluded).
    static func decodeRate(_ gen: Generator, prompts: [[Int]], tokens: Int) throws -> Double {
        var first: Double?, last = 0.0, count = 0
        _ = try gen.generate(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: tokens, stopAtEOS: false) }, onToken: { _, _, _ in
            let t = now()
            if first == nil { first = t } else { count += 1 }
            last = t
        })
        // Tokens of one step arrive together: count every token after the prefill's batch.
        count -= prompts.count - 1
        return Double(count) / (last - first!)
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
