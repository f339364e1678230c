import Foundation

/// One contrast: a(+) − a(−) at one layer, from one question, with a weight (0.5 when the gold
/// answer stood in for a missing correct rollout).
public struct ContrastPair: Sendable, Codable, Equatable {
    public var question: Int
    public var delta: [Float]
    public var weight: Float
    public init(question: Int, delta: [Float], weight: Float = 1) {
        self.question = question
        self.delta = delta
        self.weight = weight
    }
}

/// Continuous Soft Scaling: how the aggregated direction μ becomes the steering vector β.
public enum CSSMode: String, Sendable, Codable, CaseIterable {
    /// β = μ / max|μ|
    case max
    /// β = μ / ‖μ‖₂
    case l2
    /// β_i = d · softmax(|μ|)_i · sign(μ_i)
    case softmax
    /// A hard top-K mask instead of a soft scale: β = m ⊙ μ / max|μ| (the ablation CSS replaces).
    case topk
}

public enum Aggregation {
    /// Weighted plain mean of every pair's Δ (every pair one vote, weighted).
    public static func weightedMean(_ pairs: [ContrastPair]) -> [Float]? {
        guard let d = pairs.first?.delta.count else { return nil }
        var sum = [Double](repeating: 0, count: d)
        var wsum = 0.0
        for p in pairs {
            for i in 0..<d { sum[i] += Double(p.weight) * Double(p.delta[i]) }
            wsum += Double(p.weight)
        }
        guard wsum > 0 else { return nil }
        return sum.map { Float($0 / wsum) }
    }

    /// Grouped Mean Normalization: the weighted mean Δ within each question, normalised to unit
    /// L2 norm, then averaged over questions with equal weight ("one question, one vote").
    /// Questions whose mean is zero are left out.
    public static func groupedMeanNormalized(_ pairs: [ContrastPair]) -> [Float]? {
        let groups = Dictionary(grouping: pairs, by: \.question)
        var means: [[Float]] = []
        for q in groups.keys.sorted() {
            guard let m = weightedMean(groups[q]!) else { continue }
            let norm = l2(m)
            guard norm > 0 else { continue }
            means.append(m.map { $0 / norm })
        }
        guard let d = means.first?.count else { return nil }
        return (0..<d).map { i in Float(means.reduce(0.0) { $0 + Double($1[i]) } / Double(means.count)) }
    }

    /// Continuous Soft Scaling of μ (`topK`: the K of the `.topk` mask).
    public static func css(_ mu: [Float], mode: CSSMode, topK: Int = 1) -> [Float] {
        switch mode {
        case .topk:
            return zip(topKMask(mu, k: topK), css(mu, mode: .max)).map { $0 * $1 }
        case .max:
            let m = mu.map { abs($0) }.max() ?? 0
            return m > 0 ? mu.map { $0 / m } : mu
        case .l2:
            let n = l2(mu)
            return n > 0 ? mu.map { $0 / n } : mu
        case .softmax:
            let a = mu.map { Double(abs($0)) }
            let top = a.max() ?? 0
            let e = a.map { exp($0 - top) }
            let z = e.reduce(0, +)
            let d = Double(mu.count)
            return zip(mu, e).map { m, ei in Float(d * ei / z) * (m > 0 ? 1 : (m < 0 ? -1 : 0)) }
        }
    }

    /// SADI's hard mask: 1 on the k dimensions of largest |μ|, 0 elsewhere.
    public static func topKMask(_ mu: [Float], k: Int) -> [Float] {
        let keep = Set(mu.indices.sorted { abs(mu[$0]) != abs(mu[$1]) ? abs(mu[$0]) > abs(mu[$1]) : $0 < $1 }.prefix(k))
        return mu.indices.map { keep.contains($0) ? 1 : 0 }
    }

    public static func l2(_ v: [Float]) -> Float { Float(v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) }

    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        let na = l2(a), nb = l2(b)
        guard na > 0, nb > 0 else { return 0 }
        return Float(zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }) / (na * nb)
    }
}

/// The paper's energy analysis: how much of μ a steering vector keeps.
public struct EnergyReport: Sendable, Codable, Equatable {
    /// cos(β, μ)
    public var cosine: Float
    /// Fraction of μ's energy Σμ² along the vector: cos². For a top-K mask m ⊙ μ this is exactly
    /// Σ_{i∈K} μ_i² / Σ μ_i², the energy on the kept dimensions.
    public var energyKept: Float

    /// CSS vs a top-K mask of the same μ: cosine to μ and energy kept, for β and for m ⊙ μ.
    public static func compare(mu: [Float], css: [Float], topK k: Int) -> (css: EnergyReport, topK: EnergyReport) {
        let masked = zip(Aggregation.topKMask(mu, k: k), mu).map { $0 * $1 }
        func report(_ v: [Float]) -> EnergyReport {
            let c = Aggregation.cosine(v, mu)
            return EnergyReport(cosine: c, energyKept: c * c)
        }
        return (report(css), report(masked))
    }
}
