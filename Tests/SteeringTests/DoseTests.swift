import Backend
import Foundation
import Model
@testable import Steering
import XCTest

/// The dose: mean activation norms at the site next to ‖α·v‖, and α stated relative to them.
final class DoseTests: XCTestCase {
    func testMeterAndRatiosByHand() {
        let meter = SiteNormMeter()
        meter.add(layer: 2, [3, 4])  // 5
        meter.add(layer: 2, [0, 0])  // 0
        meter.add(layer: 2, [6, 8])  // 10
        meter.add(layer: 0, [1, 0])
        XCTAssertEqual(meter.means, [2: 5, 0: 1])
        XCTAssertEqual(meter.count(2), 3)
        let d = LayerDose(layer: 2, activationNorm: 5, vectorNorm: 2)
        XCTAssertEqual(d.ratio(alpha: 0.5), 0.2)  // ‖0.5 · v‖ = 1 against 5
        XCTAssertEqual(d.step(alpha: 0.5), 1)
        XCTAssertEqual(d.ratio(alpha: -0.5), 0.2)
        XCTAssertEqual(LayerDose(layer: 2, activationNorm: 5, vectorNorm: 7, multiplicative: true).ratio(alpha: 0.3), 0.3, "SADI: the bound |α|")
    }

    func file(norms: [String: Float]?, multiplicative: Bool = false) throws -> SteeringVectorFile {
        let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: CPUBackend())
        var meta = VectorMetadata(model: m, site: .residual, layers: [0, 1], method: "roast", defaultAlpha: 0.2)
        meta.siteNorms = norms
        meta.intervention = multiplicative ? "multiplicative" : nil
        return SteeringVectorFile(metadata: meta, vectors: [0: [3, 4], 1: [0, 2]])
    }

    func testRelativeAlphaScalesEachLayerToItsActivationNorm() throws {
        let f = try file(norms: ["0": 10, "1": 4])
        XCTAssertEqual(f.doses, [LayerDose(layer: 0, activationNorm: 10, vectorNorm: 5), LayerDose(layer: 1, activationNorm: 4, vectorNorm: 2)])
        let iv = try f.intervention(relativeAlpha: 0.1)
        XCTAssertEqual(iv.alpha, 0.1)
        XCTAssertEqual(iv.vectors[0], [6, 8])  // ‖v‖ = 10 = mean ‖h‖: ‖0.1 · v‖ = 1 = 0.1 × 10
        XCTAssertEqual(iv.vectors[1], [0, 4])
        XCTAssertEqual(f.doses(of: iv.vectors)!.map { $0.ratio(alpha: 0.1) }, [0.1, 0.1])
        XCTAssertEqual(try f.intervention(relativeAlpha: 0).alpha, 0, "ρ = 0 is the unsteered model")
        XCTAssertThrowsError(try file(norms: nil).intervention(relativeAlpha: 0.1)) {
            XCTAssertTrue("\($0)".contains("no activation norms"), "\($0)")
        }
        XCTAssertThrowsError(try file(norms: ["0": 10]).intervention(relativeAlpha: 0.1), "a layer without its norm")
        let sadi = try file(norms: nil, multiplicative: true).intervention(relativeAlpha: 0.3)
        XCTAssertEqual(sadi.vectors[0], [3, 4], "a mask is relative already")
        XCTAssertEqual(sadi.alpha, 0.3)
    }

    /// The meter sees each prompt's last token and every response token: the same rows a full
    /// forward pass of prompt + response captures.
    func testMeterReadsTheSteeredTokensOfTeacherForcing() throws {
        let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: CPUBackend())
        let prompt = [1, 403, 407, 261], responses = [[378, 432, 383], [317]]
        for site in ActivationSite.allCases {
            let meter = SiteNormMeter()
            let forcing = TeacherForcing(model: m, site: site, layers: [1, 3])
            let metered = try forcing.lastTokenActivations(prompt: prompt, responses: responses, meter: meter)
            XCTAssertEqual(metered.map { $0[1]! }, try forcing.lastTokenActivations(prompt: prompt, responses: responses).map { $0[1]! },
                           "metering changes no activation")
            var norms: [Int: [Float]] = [:]
            for (s, r) in responses.enumerated() {
                let ids = prompt + r
                let cap = ActivationCapture(site: site, layers: [1, 3], rows: Array(ids.indices))
                _ = try m.forward(.prompt(ids), cache: try KVCache(model: m, sequences: 1, capacity: ids.count), capture: cap, scratch: m.makeScratch())
                let rows = try cap.read(m)
                for l in [1, 3] {
                    // The prompt's last token once per question, then the response tokens.
                    norms[l, default: []] += rows[l]![(s == 0 ? prompt.count - 1 : prompt.count)...].map(Aggregation.l2)
                }
            }
            for l in [1, 3] {
                XCTAssertEqual(meter.count(l), 1 + 3 + 1)
                let expected = norms[l]!.reduce(0, +) / Float(norms[l]!.count)
                XCTAssertEqual(meter.means[l]!, expected, accuracy: 1e-5 * expected, "\(site) layer \(l)")
            }
        }
    }

    /// The control vector: per layer a random direction of the same norm, seeded, metadata kept.
    func testRandomDirectionsKeepTheNormsAndNothingElse() throws {
        var f = try file(norms: ["0": 10, "1": 4])
        var rng = SplitMix64(seed: 9)
        f.vectors = [0: rng.floats(512), 1: rng.floats(512)]
        let r = f.randomDirections(seed: 42)
        XCTAssertEqual(r.metadata.method, "random")
        XCTAssertEqual(r.metadata.siteNorms, f.metadata.siteNorms)
        for l in [0, 1] {
            XCTAssertEqual(Aggregation.l2(r.vectors[l]!), Aggregation.l2(f.vectors[l]!), accuracy: 1e-4 * Aggregation.l2(f.vectors[l]!))
            XCTAssertLessThan(abs(Aggregation.cosine(r.vectors[l]!, f.vectors[l]!)), 0.2, "a random direction in 512 dimensions")
        }
        XCTAssertEqual(r.vectors, f.randomDirections(seed: 42).vectors, "seeded")
        XCTAssertNotEqual(r.vectors[0], f.randomDirections(seed: 43).vectors[0])
        XCTAssertNotEqual(r.vectors[0], r.vectors[1], "each layer its own direction")
    }
}
