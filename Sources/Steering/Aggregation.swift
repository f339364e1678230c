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

/// One question's share of a layer's contrasts: the weighted mean of its pairs' Δ and the total
/// weight behind it. Every aggregation is a function of these, so a vector merged from shards'
/// partials is computed exactly as the unsharded one is.
public struct QuestionPartial: Sendable, Equatable {
    public var question: Int
    /// Σ of its pairs' weights.
    public var weight: Float
    public var pairs: Int
    /// Σ wΔ / Σ w over its pairs, summed in double precision.
    public var mean: [Float]
    public init(question: Int, weight: Float, pairs: Int, mean: [Float]) {
        self.question = question
        self.weight = weight
        self.pairs = pairs
        self.mean = mean
    }
}

/// Where grouped normalisation scales: the paper's text (each question's mean to unit L2 norm,
/// averaged, then CSS on the average) or the authors' code (CSS on each question's mean, averaged).
public enum GroupOrder: String, Sendable, Codable, CaseIterable {
    case l2ThenCSS = "l2-then-css"
    case cssPerQuestion = "css-per-question"
}

public enum Aggregation {
    /// Σ w·x / Σ w per element, summed in double precision in the rows' order, with Σ w (nil
    /// when there are no rows or Σ w ≤ 0).
    static func weightedAverage(_ rows: [(values: [Float], weight: Double)]) -> (mean: [Float], weight: Double)? {
        guard let d = rows.first?.values.count else { return nil }
        var sum = [Double](repeating: 0, count: d)
        var wsum = 0.0
        for r in rows {
            for i in 0..<d { sum[i] += r.weight * Double(r.values[i]) }
            wsum += r.weight
        }
        guard wsum > 0 else { return nil }
        return (sum.map { Float($0 / wsum) }, wsum)
    }

    /// The pairs grouped by question (in question order), each group's weighted mean. A
    /// question whose weights sum to zero contributes nothing.
    public static func questionPartials(_ pairs: [ContrastPair]) -> [QuestionPartial] {
        let groups = Dictionary(grouping: pairs, by: \.question)
        return groups.keys.sorted().compactMap { q in
            let g = groups[q]!
            guard let (mean, weight) = weightedAverage(g.map { ($0.delta, Double($0.weight)) }) else { return nil }
            return QuestionPartial(question: q, weight: Float(weight), pairs: g.count, mean: mean)
        }
    }

    /// The weighted mean of every pair's Δ (every pair one vote, weighted): Σ_q W_q·m_q / Σ_q W_q
    /// over the questions' partials.
    public static func weightedMean(_ partials: [QuestionPartial]) -> [Float]? {
        weightedAverage(partials.map { ($0.mean, Double($0.weight)) })?.mean
    }

    /// Grouped Mean Normalization: each question's weighted mean Δ normalised to unit L2 norm,
    /// then averaged over questions with equal weight ("one question, one vote"). Questions whose
    /// mean is zero are left out.
    public static func groupedMeanNormalized(_ partials: [QuestionPartial]) -> [Float]? {
        weightedAverage(partials.compactMap { p in
            let norm = l2(p.mean)
            return norm > 0 ? (p.mean.map { $0 / norm }, 1) : nil
        })?.mean
    }

    /// The authors' order (ORBIT's `steering/diff_vector.py`): CSS applied to each question's mean
    /// Δ, then the scaled means averaged with equal weight. β is this average; no second CSS.
    public static func cssPerQuestion(_ partials: [QuestionPartial], mode: CSSMode, topK: Int) -> [Float]? {
        weightedAverage(partials.filter { l2($0.mean) > 0 }.map { (css($0.mean, mode: mode, topK: topK), 1) })?.mean
    }

    public static func weightedMean(_ pairs: [ContrastPair]) -> [Float]? { weightedMean(questionPartials(pairs)) }
    public static func groupedMeanNormalized(_ pairs: [ContrastPair]) -> [Float]? { groupedMeanNormalized(questionPartials(pairs)) }

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

    /// SADI as the authors run it: one top-k over every layer's |μ| together (ties: lower layer,
    /// then lower index), returned as a 0/1 mask per layer.
    public static func jointTopKMask(_ mu: [Int: [Float]], k: Int) -> [Int: [Float]] {
        let entries = mu.keys.sorted().flatMap { l in mu[l]!.indices.map { (layer: l, i: $0, a: abs(mu[l]![$0])) } }
        var masks = mu.mapValues { [Float](repeating: 0, count: $0.count) }
        for e in entries.sorted(by: { $0.a != $1.a ? $0.a > $1.a : ($0.layer, $0.i) < ($1.layer, $1.i) }).prefix(max(0, k)) {
            masks[e.layer]![e.i] = 1
        }
        return masks
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
