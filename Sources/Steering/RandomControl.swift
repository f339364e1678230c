import Backend
import Foundation

extension SteeringVectorFile {
    /// The control for a learned vector: at every layer a random direction (seeded Gaussian)
    /// with the same norm, the rest of the file (site, layers, activation norms) kept. A learned
    /// vector that does no better than this at the same dose has learned nothing about direction.
    public func randomDirections(seed: UInt64) -> SteeringVectorFile {
        var rng = SplitMix64(seed: seed ^ 0x5A4D_0A11)
        var out = self
        for l in vectors.keys.sorted() {
            let v = vectors[l]!
            // Box–Muller pairs: Gaussian coordinates, so the direction is uniform on the sphere.
            var g: [Float] = []
            while g.count < v.count {
                let u1 = Float.random(in: Float.ulpOfOne...1, using: &rng), u2 = Float.random(in: 0..<1, using: &rng)
                let r = (-2 * log(u1)).squareRoot()
                g += [r * cos(2 * .pi * u2), r * sin(2 * .pi * u2)]
            }
            g = Array(g.prefix(v.count))
            let scale = Aggregation.l2(v) / Aggregation.l2(g)
            out.vectors[l] = g.map { $0 * scale }
        }
        out.metadata.method = "random"
        out.metadata.intervention = nil
        return out
    }
}
