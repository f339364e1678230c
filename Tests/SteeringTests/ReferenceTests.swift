import Backend
import Foundation
import Model
@testable import Steering
import Tasks
import VulkanCompute
import XCTest

/// The engine against an independent implementation: tools/reference/reference.py (torch +
/// transformers on the dequantised default model) read the pairs of
/// Fixtures/reference/smollm2-pairs.jsonl and wrote the last-token activations at both sites,
/// the plain and grouped means and every CSS mode into smollm2-reference.json.
final class ReferenceTests: XCTestCase {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")

    /// The worst cosine and relative error seen, printed per backend.
    var worst = (cos: 1.0, err: 0.0)

    /// cos(a, b) ≥ 0.9999 and ‖a − b‖ / ‖b‖ ≤ 1e-3.
    func assertClose(_ a: [Float], _ b: [Double], _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let x = a.map(Double.init)
        let dot = zip(x, b).map { $0 * $1 }.reduce(0, +)
        let nx = x.map { $0 * $0 }.reduce(0, +).squareRoot(), nb = b.map { $0 * $0 }.reduce(0, +).squareRoot()
        let err = zip(x, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot() / nb
        let cos = dot / (nx * nb)
        worst = (min(worst.cos, cos), max(worst.err, err))
        XCTAssertGreaterThanOrEqual(cos, 0.9999, "\(what): cosine \(cos)")
        XCTAssertLessThanOrEqual(err, 1e-3, "\(what): relative error \(err)")
    }

    func testActivationsAndVectorsMatchTransformers() throws {
        guard FileManager.default.fileExists(atPath: Self.model.path) else {
            return XCTFail("\(Self.model.path) is missing: run `make model` (make test does)")
        }
        let dir = fixtures.appendingPathComponent("reference")
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("smollm2-reference.json"))) as! [String: Any]
        let layers = ref["layers"] as! [Int]
        let kFraction = ref["top_k_fraction"] as! Double
        let activations = ref["activations"] as! [[String: Any]]
        let vectors = ref["vectors"] as! [String: [String: [String: Any]]]
        for backend in [CPUBackend(), try VulkanBackend(device: VulkanDevice(validation: false))] as [Backend] {
            let m = try LanguageModel(path: Self.model.path, backend: backend)
            let records = try PairsFile.read(dir.appendingPathComponent("smollm2-pairs.jsonl"), vocabSize: m.config.vocabSize)
            XCTAssertEqual(records.count, (ref["pairs"] as! [Any]).count)
            for site in ActivationSite.allCases {
                // Captured activations: each question's distinct responses teacher forced together
                // (the batches extraction reads), one pass per site to keep the test short.
                let forcing = TeacherForcing(model: m, site: site, layers: layers)
                var pairs: [Int: [ContrastPair]] = [:]
                for q in Set(records.map(\.question)).sorted() {
                    let mine = records.filter { $0.question == q }
                    var byCandidate: [Int: [Int]] = [:]
                    for r in mine { byCandidate[r.positive.candidate] = r.positive.ids; byCandidate[r.negative.candidate] = r.negative.ids }
                    let order = byCandidate.keys.sorted()
                    let got = Dictionary(uniqueKeysWithValues: zip(order, try forcing.lastTokenActivations(prompt: mine[0].prompt, responses: order.map { byCandidate[$0]! })))
                    for (c, acts) in got {
                        let want = activations.first { $0["question"] as! Int == q && $0["candidate"] as! Int == c }!
                        for l in layers {
                            assertClose(acts[l]!, (want[site.rawValue] as! [String: [Double]])["\(l)"]!,
                                        "\(backend.name) \(site) layer \(l) question \(q) candidate \(c)")
                        }
                    }
                    for r in mine {
                        for l in layers {
                            let d = zip(got[r.positive.candidate]![l]!, got[r.negative.candidate]![l]!).map { $0 - $1 }
                            pairs[l, default: []].append(ContrastPair(question: q, delta: d, weight: r.weight))
                        }
                    }
                }
                // Vectors: CAA's plain mean, and ROAST's grouped mean through each CSS mode.
                for l in layers {
                    let want = vectors[site.rawValue]!["\(l)"]!
                    assertClose(Aggregation.weightedMean(pairs[l]!)!, want["plain"] as! [Double], "\(backend.name) \(site) layer \(l) CAA")
                    let mu = Aggregation.groupedMeanNormalized(pairs[l]!)!
                    assertClose(mu, want["grouped"] as! [Double], "\(backend.name) \(site) layer \(l) grouped mean")
                    for mode in CSSMode.allCases {
                        let k = max(1, Int(Double(mu.count) * kFraction))
                        assertClose(Aggregation.css(mu, mode: mode, topK: k), (want["css"] as! [String: [Double]])[mode.rawValue]!,
                                    "\(backend.name) \(site) layer \(l) ROAST css \(mode)")
                    }
                }
            }
            // The extractor end to end from the pairs file (the same batches and aggregation).
            defer {
                print(String(format: "reference, %@: worst cosine %.7f, worst relative error %.2e", backend.name, worst.cos, worst.err))
                worst = (1, 0)
            }
            guard backend is VulkanBackend else { continue }
            var o = ExtractionOptions(layers: try LayerSelection(layers.map(String.init).joined(separator: ",")))
            o.savedPairs = records
            o.topKFraction = kFraction
            let v = try Extractor.extract(model: m, task: ArithmeticTask(), items: [], options: o).file.vectors
            for l in layers {
                assertClose(v[l]!, (vectors["act"]!["\(l)"]!["css"] as! [String: [Double]])["max"]!, "\(backend.name) extractor act layer \(l)")
            }
        }
    }
}
