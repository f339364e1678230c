import Backend
import Foundation

/// How the next token is chosen. Temperature 0 is greedy (argmax on the device).
public struct SamplingParameters: Sendable, Codable, Equatable {
    public var temperature: Float
    /// Keep the k most likely tokens (0 = all).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 42) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParameters()
    public var isGreedy: Bool { temperature <= 0 || topK == 1 }

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw GenerationError("temperature must be ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw GenerationError("top-k must be ≥ 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw GenerationError("top-p must be in (0, 1], got \(topP)") }
    }
}

public struct GenerationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Picks a token from candidates (logit, id): temperature, then top-k, then top-p, then a draw.
/// Candidates may be a full row or the device's top-k of it; ties break by lower id.
public enum Sampler {
    public static func sample(_ candidates: [(logit: Float, id: Int)], _ p: SamplingParameters, rng: inout SplitMix64) -> Int {
        var sorted = candidates.filter { !$0.logit.isNaN }
            .sorted { $0.logit != $1.logit ? $0.logit > $1.logit : $0.id < $1.id }
        guard !sorted.isEmpty else { return candidates.first?.id ?? 0 }
        if p.isGreedy { return sorted[0].id }
        if p.topK > 0 { sorted = Array(sorted.prefix(p.topK)) }
        let maxLogit = sorted[0].logit
        var probs = sorted.map { Double(exp(($0.logit - maxLogit) / p.temperature)) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if p.topP < 1 {
            var mass = 0.0, keep = 0
            for q in probs {
                keep += 1
                mass += q
                if mass >= Double(p.topP) { break }
            }
            probs = Array(probs.prefix(keep))
        }
        let sum = probs.reduce(0, +)
        var u = Double(rng.next() >> 11) / Double(1 << 53) * sum
        for (i, q) in probs.enumerated() {
            u -= q
            if u < 0 { return sorted[i].id }
        }
        return sorted[probs.count - 1].id
    }
}
