@testable import Backend
import VulkanCompute
import XCTest

/// The tuning settings read from the environment (Sources/Backend/EnvironmentCount.swift, VulkanBackend).
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

    func testReuseCommandsFromTheEnvironment() throws {
        XCTAssertTrue(try VulkanBackend.reuseCommands(environment: [:]))
        XCTAssertTrue(try VulkanBackend.reuseCommands(environment: ["ROAST_REUSE_COMMANDS": "1"]))
        XCTAssertFalse(try VulkanBackend.reuseCommands(environment: ["ROAST_REUSE_COMMANDS": "0"]))
        XCTAssertThrowsError(try VulkanBackend.reuseCommands(environment: ["ROAST_REUSE_COMMANDS": "yes"])) {
            XCTAssertEqual("\($0)", "ROAST_REUSE_COMMANDS=yes: 1 keeps a decode step's commands for the next tokens, 0 records every step anew")
        }
    }
}
