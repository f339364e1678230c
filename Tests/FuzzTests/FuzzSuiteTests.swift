import Foundation
@testable import Roast
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Every input format, mutated with fixed seeds: each case must end in a one-line error or a
/// usable result, never a trap, never a peak-memory rise past `FuzzCampaign.memoryBound`.
final class FuzzSuiteTests: XCTestCase {
    /// Cases per format and input; the suite's whole budget is 60 s in the release test build.
    static let cases = 600

    func campaign(_ format: FuzzFormat, input: URL? = nil, seed: UInt64) throws {
        let r = try FuzzCampaign.run(format, cases: Self.cases, seed: seed, input: input)
        let label = format.rawValue + (input.map { " (\($0.lastPathComponent))" } ?? "")
        print("fuzz \(label): \(r.cases) cases, \(r.rejected) rejected, \(r.accepted) accepted, peak +\(String(format: "%.1f", r.peakGrowthMiB ?? -1)) MiB, \(String(format: "%.1f", r.seconds)) s")
        XCTAssertEqual(r.cases, Self.cases)
        XCTAssertEqual(r.accepted + r.rejected, r.cases, "\(label): \(r.failures)")
        XCTAssertEqual(r.failures, [], label)
        // Both outcomes occur: mutations that never load, or never fail, test nothing.
        XCTAssertGreaterThan(r.rejected, Self.cases / 10, label)
        XCTAssertGreaterThan(r.accepted, 0, label)
        #if os(Linux)
        XCTAssertNotNil(r.peakGrowthMiB, "peak memory is measured on Linux")
        #endif
    }

    /// The built-in inputs are valid: unmutated, each loads.
    func testSeedsLoad() throws {
        for f in FuzzFormat.allCases {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-seed-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            for (name, bytes) in f.companions { try Data(bytes).write(to: dir.appendingPathComponent(name)) }
            let url = dir.appendingPathComponent(f.fileName)
            let seed = try f.seed()
            try Data(seed).write(to: url)
            XCTAssertNoThrow(try f.load(url, tokens: FuzzCampaign.llama2cTokenCount(seed)), f.rawValue)
        }
    }

    func testSafetensorsModel() throws { try campaign(.safetensors, seed: 11) }
    func testGGUFModel() throws { try campaign(.gguf, seed: 12) }
    func testLlama2cCheckpoint() throws { try campaign(.llama2c, seed: 13) }
    func testLlama2cTokenizer() throws {
        try campaign(.llama2cTokenizer, input: fixtures.appendingPathComponent("models/stories260K/tok512.bin"), seed: 14)
    }
    func testConfigJSON() throws { try campaign(.config, input: fixtures.appendingPathComponent("tiny-qwen3/config.json"), seed: 15) }
    func testTokenizerJSON() throws {
        try campaign(.tokenizer, input: fixtures.appendingPathComponent("models/stories260K-hf/tokenizer.json"), seed: 16)
    }
    func testVectorSafetensors() throws { try campaign(.vectorSafetensors, seed: 17) }
    func testVectorGGUF() throws { try campaign(.vectorGGUF, seed: 18) }
    func testGSM8K() throws { try campaign(.gsm8k, input: fixtures.appendingPathComponent("data/gsm8k-test.jsonl"), seed: 19) }

    /// The same seed gives the same cases, so a failure found once is found again.
    func testCampaignsReplay() throws {
        let a = try FuzzCampaign.run(.config, cases: 50, seed: 5), b = try FuzzCampaign.run(.config, cases: 50, seed: 5)
        XCTAssertEqual([a.accepted, a.rejected], [b.accepted, b.rejected])
        var m1 = Mutator(seed: 9), m2 = Mutator(seed: 9)
        let base = Array("{\"a\":[1,2,{\"b\":true}]}".utf8)
        for _ in 0..<20 { XCTAssertEqual(m1.json(base), m2.json(base)) }
    }

    /// The memory check sees what a case allocates (a 96 MiB buffer written through).
    func testPeakMemoryIsMeasured() throws {
        #if os(Linux)
        let before = try XCTUnwrap(Memory.resetPeak())
        // Where the kernel does not reset the high water mark, the buffer must rise past the old one.
        let stale = max(0, try XCTUnwrap(Memory.peak()) - before)
        let size = (96 << 20) + stale, fill = UInt8(truncatingIfNeeded: stale | 1)
        // Fresh pages from the kernel: malloc may hand back a free chunk the process already holds
        // (after the suites before this one, it did), which raises no peak.
        let buffer = try XCTUnwrap(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        XCTAssertNotEqual(buffer, MAP_FAILED)
        defer { munmap(buffer, size) }
        memset(buffer, Int32(fill), size)
        let pages = stride(from: 0, to: size, by: 4096).reduce(0) { $0 + Int(buffer.load(fromByteOffset: $1, as: UInt8.self)) }
        let peak = try XCTUnwrap(Memory.peak())
        XCTAssertEqual(pages, (size + 4095) / 4096 * Int(fill))
        XCTAssertGreaterThan(peak - before, 90 << 20)
        XCTAssertGreaterThan(FuzzCampaign.memoryBound(inputBytes: 0), 32 << 20)
        #endif
    }

    /// The checker itself: a leaked Swift error text or a second line is a failure.
    func testMessageRules() {
        XCTAssertNil(FuzzCampaign.messageProblem("/x.json: 'model.vocab' is empty"))
        XCTAssertNotNil(FuzzCampaign.messageProblem("typeMismatch: DecodingError.Context(...)"))
        XCTAssertNotNil(FuzzCampaign.messageProblem("first\nsecond"))
        XCTAssertNotNil(FuzzCampaign.messageProblem("The operation could not be completed. The file doesn't exist."))
    }
}
