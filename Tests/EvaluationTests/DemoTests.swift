import Backend
import Foundation
import Model
@testable import Roast
import VulkanCompute
import XCTest

/// `roast demo` on the stories model: it ends with the positive control's dose-response.
final class DemoTests: XCTestCase {
    func testDemoEndsWithTheControlsDoseResponse() throws {
        let m = try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path,
                                  backend: VulkanBackend(device: VulkanDevice(validation: true)))
        var o = Demo.Options()
        o.extractionQuestions = 2
        o.devQuestions = 2
        o.testQuestions = 2
        o.rollouts = 2
        o.alphas = [1]
        o.controlQuestions = 3
        o.controlDoses = [0.5, 50]
        let dir = try temporaryDirectory()
        let r = try Demo(model: m, options: o, log: { _ in }).run(vectorURL: dir.appendingPathComponent("v.safetensors"),
                                                                   reportURL: dir.appendingPathComponent("report.json"))
        XCTAssertEqual(r.controlQuestions, 3)
        XCTAssertEqual(r.control.map(\.vector), ["none"] + ["caa (box vs no box)", "random (CAA's norms)", "roast (the demo's vector)"].flatMap { [$0, $0] })
        XCTAssertEqual(r.control.map(\.rho), [0, 0.5, 50, 0.5, 50, 0.5, 50])
        XCTAssertEqual(r.control[0].changed, 0)
        for p in r.control {
            XCTAssertTrue((0...1).contains(p.boxed) && (0...1).contains(p.changed), "\(p)")
            // Fractions of 3 answers.
            XCTAssertEqual((p.changed * 3).rounded(), p.changed * 3, accuracy: 1e-9)
        }
        // A step fifty times the activation's own size changes the answers of every vector.
        for p in r.control where p.rho == 50 { XCTAssertGreaterThan(p.changed, 0, p.vector) }
        XCTAssertNotNil(r.seconds["control"])
        let saved = try JSONDecoder().decode(Demo.Report.self, from: Data(contentsOf: dir.appendingPathComponent("report.json")))
        XCTAssertEqual(saved.control, r.control)
    }
}
