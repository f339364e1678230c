@testable import Backend
import VulkanCompute
import XCTest

/// The tuning counts read from the environment (Sources/Backend/EnvironmentCount.swift).
final class EnvironmentCountTests: XCTestCase {
    func testSubmitEveryFromTheEnvironment() throws {
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .discrete, environment: [:]), 16)
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .cpu, environment: [:]), 0, "lavapipe records on the cores it runs on")
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .integrated, environment: ["ROAST_SUBMIT_EVERY": ""]), 16)
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .cpu, environment: ["ROAST_SUBMIT_EVERY": "8"]), 8)
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .discrete, environment: ["ROAST_SUBMIT_EVERY": "0"]), 0)
        XCTAssertEqual(try VulkanBackend.submitEvery(for: .discrete, environment: ["ROAST_SUBMIT_EVERY": "40"]), 40)
        for bad in ["-2", "all", "1e3"] {
            XCTAssertThrowsError(try VulkanBackend.submitEvery(for: .discrete, environment: ["ROAST_SUBMIT_EVERY": bad])) {
                XCTAssertEqual("\($0)", "ROAST_SUBMIT_EVERY=\(bad): not a dispatch count (0 queues each batch whole)")
            }
        }
    }
}
