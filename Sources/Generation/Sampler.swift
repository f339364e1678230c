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
    public typealias Candidate = (logit: Float, id: Int)

    public static func sample(_ candidates: [Candidate], _ p: SamplingParameters, rng: inout SplitMix64) -> Int {
        choose(candidates, p) { unit(&rng) }
    }

    /// `sample` with its draw `u` ∈ [0, 1) already made (for a row that has a non-NaN entry).
    public static func sample(_ candidates: [Candidate], _ p: SamplingParameters, u: Double) -> Int {
        choose(candidates, p) { u }
    }

    /// Rows at least this long, sampled without a top-k, are not sorted whole (`drawUnsorted`).
    static let unsortedFrom = 4096

    /// The pick of `sample`; `u()` is called once, and only for a sampled row with a non-NaN entry.
    static func choose(_ candidates: [Candidate], _ p: SamplingParameters, u: () -> Double) -> Int {
        if candidates.count >= unsortedFrom, p.isGreedy || p.topK == 0 {
            // The first of the ranking in one pass: the largest non-NaN entry, the lowest id among equals.
            var best: Candidate?
            for c in candidates where !c.logit.isNaN {
                if best == nil || c.logit > best!.logit || (c.logit == best!.logit && c.id < best!.id) { best = c }
            }
            guard let best else { return candidates.first?.id ?? 0 }
            if p.isGreedy { return best.id }
            let value = u()
            if best.logit.isFinite, let id = drawUnsorted(candidates, rowMax: best.logit, p, u: value) { return id }
            return draw(ranked(candidates), p, u: value)
        }
        return sortingChoice(candidates, p, u: u)
    }

    /// `sample` by sorting the whole row (the definition the faster paths match).
    static func sortingChoice(_ candidates: [Candidate], _ p: SamplingParameters, u: () -> Double) -> Int {
        let sorted = ranked(candidates)
        guard !sorted.isEmpty else { return candidates.first?.id ?? 0 }
        return p.isGreedy ? sorted[0].id : draw(sorted, p, u: u())
    }

    /// The token `sample(row, p, u:)` picks, found from the row's head alone: `head` is a
    /// prefix of the row's ranking (value desc, id asc; `Backend.softmaxHead`'s entries are),
    /// `rowMax` and `normaliser` the row's largest entry M and Σ exp((x − M) / T) at p's
    /// temperature. Nil when the token may lie beyond the head (the draw or the top-p nucleus
    /// reaches past it): then the caller reads the whole row. For rows sampled over the whole
    /// vocabulary (top-k 0).
    public static func sampleHead(_ head: [Candidate], rowMax: Float, normaliser: Float, _ p: SamplingParameters, u: Double) -> Int? {
        guard !p.isGreedy, p.topK == 0, let first = head.first, rowMax.isFinite, first.logit == rowMax,
              normaliser.isFinite, normaliser > 0 else { return nil }
        let total = Double(normaliser)
        let probs = head.map { Double(exp(($0.logit - rowMax) / p.temperature)) / total }
        var keep = probs.count
        if p.topP < 1 {
            var mass = 0.0
            keep = 0
            while keep < probs.count, mass < Double(p.topP) {
                mass += probs[keep]
                keep += 1
            }
            if mass < Double(p.topP) { return nil }
        }
        // The whole row's probabilities sum to 1; a nucleus, to its own mass.
        let sum = p.topP < 1 ? probs.prefix(keep).reduce(0, +) : 1
        var target = u * sum
        for i in 0..<keep {
            target -= probs[i]
            if target < 0 { return head[i].id }
        }
        return nil
    }

    /// One uniform draw in [0, 1) from 53 bits.
    public static func unit(_ rng: inout SplitMix64) -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    /// Non-NaN candidates, value desc, id asc.
    static func ranked(_ candidates: [Candidate]) -> [Candidate] {
        candidates.filter { !$0.logit.isNaN }.sorted { $0.logit != $1.logit ? $0.logit > $1.logit : $0.id < $1.id }
    }

    /// `draw` over a whole row (top-k 0) without sorting it: each entry's weight and its quarter
    /// nat below the maximum in one pass, the mass per quarter nat, then only the quarter nats
    /// the draw (or the top-p nucleus) reaches are sorted. Entries of a quarter nat and every
    /// one above it are a prefix of the ranking, so the walk over that prefix is `draw`'s walk;
    /// one quarter nat more than the masses say covers their rounding. Nil when the walk does
    /// not end inside the prefix (then the caller sorts the row).
    static func drawUnsorted(_ candidates: [Candidate], rowMax: Float, _ p: SamplingParameters, u: Double) -> Int? {
        let quarters = 256  // quarter nats up to 64 nats; one more slot for the rest
        var bucket = [UInt16](repeating: UInt16(quarters), count: candidates.count)
        var mass = [Double](repeating: 0, count: quarters + 1)
        var total = 0.0
        for (i, c) in candidates.enumerated() where !c.logit.isNaN {
            let w = Double(exp((c.logit - rowMax) / p.temperature))  // as `draw` weighs it
            let d = (rowMax - c.logit) / p.temperature
            let b = d < Float(quarters / 4) ? Int(d * 4) : quarters
            bucket[i] = UInt16(b)
            mass[b] += w
            total += w
        }
        let needed = (p.topP < 1 ? Double(p.topP) : u) * total
        var last = 0, reached = mass[0]
        while last < quarters, reached < needed {
            last += 1
            reached += mass[last]
        }
        last = min(last + 1, quarters)
        let prefix = ranked(candidates.indices.filter { bucket[$0] <= last && !candidates[$0].logit.isNaN }.map { candidates[$0] })
        let whole = last == quarters
        let probs = prefix.map { Double(exp(($0.logit - rowMax) / p.temperature)) / total }
        var keep = probs.count
        if p.topP < 1 {
            var reachedP = 0.0
            keep = 0
            while keep < probs.count, reachedP < Double(p.topP) {
                reachedP += probs[keep]
                keep += 1
            }
            if reachedP < Double(p.topP), !whole { return nil }
        }
        let sum = p.topP < 1 ? probs.prefix(keep).reduce(0, +) : 1
        var target = u * sum
        for i in 0..<keep {
            target -= probs[i]
            if target < 0 { return prefix[i].id }
        }
        return whole ? prefix[max(keep - 1, 0)].id : nil
    }

    /// The token `u` picks among ranked candidates (at least one) under temperature, top-k, top-p.
    static func draw(_ ranked: [Candidate], _ p: SamplingParameters, u: Double) -> Int {
        var sorted = ranked
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
        var target = u * sum
        for (i, q) in probs.enumerated() {
            target -= q
            if target < 0 { return sorted[i].id }
        }
        return sorted[probs.count - 1].id
    }
}
