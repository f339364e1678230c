import Foundation

/// Accumulates the mean L2 norm of the unsteered activation at the steering site, per layer,
/// over the tokens steering touches: each prompt's last token and every response token.
public final class SiteNormMeter {
    public private(set) var totals = SiteNormTotals()
    public init() {}

    public func add(layer: Int, _ row: [Float]) {
        totals.sums[layer, default: 0] += Double(Aggregation.l2(row))
        totals.counts[layer, default: 0] += 1
    }

    /// Tokens seen at a layer.
    public func count(_ layer: Int) -> Int { totals.counts[layer] ?? 0 }

    /// Mean ‖h‖ per layer.
    public var means: [Int: Float] { totals.means }
}

/// Σ‖h‖ and the token count per layer: what a shard reports, so shards' norms add up.
public struct SiteNormTotals: Sendable, Equatable {
    public var sums: [Int: Double] = [:]
    public var counts: [Int: Int] = [:]
    public init() {}

    public var means: [Int: Float] {
        Dictionary(uniqueKeysWithValues: sums.compactMap { l, s in counts[l].flatMap { $0 > 0 ? (l, Float(s / Double($0))) : nil } })
    }

    public static func + (a: SiteNormTotals, b: SiteNormTotals) -> SiteNormTotals {
        var r = a
        for (l, s) in b.sums { r.sums[l, default: 0] += s }
        for (l, n) in b.counts { r.counts[l, default: 0] += n }
        return r
    }
}

/// The size of a step at one layer against the activation it is added to.
public struct LayerDose: Codable, Sendable, Equatable {
    public var layer: Int
    /// Mean ‖h‖ at the site (last prompt token and response tokens of the extraction pairs).
    public var activationNorm: Float
    /// ‖v‖ at this layer (the mask's ‖m‖ for a multiplicative vector).
    public var vectorNorm: Float
    /// SADI's h + α·(m ⊙ h): the step is at most |α|·‖h‖, so `ratio` gives that bound.
    public var multiplicative: Bool

    public init(layer: Int, activationNorm: Float, vectorNorm: Float, multiplicative: Bool = false) {
        self.layer = layer
        self.activationNorm = activationNorm
        self.vectorNorm = vectorNorm
        self.multiplicative = multiplicative
    }

    /// ‖α·v‖ / mean ‖h‖ (for a multiplicative vector, the bound |α|).
    public func ratio(alpha: Float) -> Float {
        multiplicative ? abs(alpha) : abs(alpha) * vectorNorm / activationNorm
    }

    /// ‖α·v‖ (for a multiplicative vector, the bound |α|·mean ‖h‖).
    public func step(alpha: Float) -> Float { ratio(alpha: alpha) * activationNorm }
}

extension SteeringVectorFile {
    /// Per layer: mean ‖h‖ measured at extraction next to ‖v‖; nil for a file made before the
    /// norms were recorded (or converted from a format that has no room for them).
    public var doses: [LayerDose]? { doses(of: vectors) }

    /// The same for other vectors at this file's site (a rescaled intervention's).
    /// `multiplicative` overrides the file's kind (a SADI mask built from a mean-difference file).
    public func doses(of vectors: [Int: [Float]], multiplicative: Bool? = nil) -> [LayerDose]? {
        guard let norms = metadata.siteNorms else { return nil }
        let multiplicative = multiplicative ?? (metadata.intervention == "multiplicative")
        return vectors.keys.sorted().compactMap { l in
            guard let n = norms["\(l)"], n > 0 else { return nil }
            return LayerDose(layer: l, activationNorm: n, vectorNorm: Aggregation.l2(vectors[l]!), multiplicative: multiplicative)
        }
    }

    /// The intervention whose step at every layer is `rho` times the mean activation norm there:
    /// each v_l rescaled to ‖v_l‖ = mean ‖h_l‖, α = rho (so ρ = 0 is the unsteered model). A
    /// multiplicative (SADI) vector is already relative: α = rho, unchanged.
    public func intervention(relativeAlpha rho: Float, scope: SteeringScope = .generated) throws -> Intervention {
        var iv = intervention(alpha: rho, scope: scope)
        if iv.multiplicative { return iv }
        guard let doses, doses.count == vectors.count else {
            throw SteeringError("the vector file has no activation norms for its layers (made before they were recorded): extract it again to use a relative α")
        }
        for d in doses where d.vectorNorm > 0 {
            let scale = d.activationNorm / d.vectorNorm
            iv.vectors[d.layer] = vectors[d.layer]!.map { $0 * scale }
        }
        return iv
    }
}
