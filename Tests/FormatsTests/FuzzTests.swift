import Foundation
import XCTest
@testable import Formats

/// Damaged files never crash a loader and never raise anything but a FormatError.
final class FuzzTests: XCTestCase {
    /// Values that break naive length and count handling.
    static let hugeValues: [UInt64] = [UInt64.max, 1 << 63, UInt64(Int64.max), 1 << 60, 1 << 40, 1 << 32, 0xFFFF_FFFF, 0x8000_0000, 1 << 20, 0]

    /// One seeded mutation: byte flips, a truncation, an 8- or 4-byte field set to a huge value,
    /// or a copied run of bytes.
    static func mutate(_ base: [UInt8], _ rng: inout SplitMix64, headerEnd: Int) -> [UInt8] {
        var b = base
        // Most fields worth hitting are in the header; aim most mutations there.
        func position(_ width: Int = 1) -> Int {
            let limit = (rng.next() % 4 == 0 ? b.count : min(headerEnd, b.count)) - width
            return limit <= 0 ? 0 : Int(rng.next() % UInt64(limit + 1))
        }
        switch rng.next() % 6 {
        case 0:
            for _ in 0..<(1 + rng.next() % 4) where !b.isEmpty { b[position()] ^= UInt8(1 + rng.next() % 255) }
        case 1:
            b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
        case 2, 3:
            guard b.count >= 8 else { break }
            let at = position(8)
            let v = hugeValues[Int(rng.next() % UInt64(hugeValues.count))] &- (rng.next() % 3)
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<8 { b[at + i] = $0[i] } }
        case 4:
            guard b.count >= 4 else { break }
            let at = position(4)
            let v = UInt32(truncatingIfNeeded: hugeValues[Int(rng.next() % UInt64(hugeValues.count))] &- (rng.next() % 3))
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { b[at + i] = $0[i] } }
        default:
            let from = position(), to = position(), n = min(Int(rng.next() % 16), b.count - max(from, to))
            if n > 0 { b.replaceSubrange(to..<to + n, with: b[from..<from + n]) }
        }
        return b
    }

    func fuzz(_ name: String, base: [UInt8], headerEnd: Int, iterations: Int, seed: UInt64, load: (URL) throws -> Void) throws {
        let url = try temporaryFolder(self).appendingPathComponent(name)
        var rng = SplitMix64(seed: seed)
        var outcomes = [String: Int]()
        for i in 0..<iterations {
            var bytes = Self.mutate(base, &rng, headerEnd: headerEnd)
            if rng.next() % 3 == 0 { bytes = Self.mutate(bytes, &rng, headerEnd: headerEnd) }  // sometimes two at once
            try Data(bytes).write(to: url)
            do {
                try load(url)
                outcomes["loaded", default: 0] += 1
            } catch let e as FormatError {
                XCTAssertTrue(e.description.hasPrefix(url.path + ": "), "iteration \(i): \(e)")
                XCTAssertFalse(e.description.contains("\n"), "iteration \(i): \(e)")
                outcomes["FormatError", default: 0] += 1
                if ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil { print(e.description.dropFirst(url.path.count + 2)) }
            } catch {
                XCTFail("iteration \(i): \(type(of: error)) \(error)")
            }
        }
        print("fuzz \(name): \(iterations) mutations → \(outcomes.sorted { $0.key < $1.key })")
    }

    func testGGUF() throws {
        let base = Array(try smallGGUF().serialize())
        let dataStart = try { () -> Int in
            let url = try temporaryFolder(self).appendingPathComponent("base.gguf")
            try Data(base).write(to: url)
            return try GGUFFile(url: url).dataOffset
        }()
        try fuzz("m.gguf", base: base, headerEnd: dataStart, iterations: 3000, seed: 1) { url in
            let f = try GGUFFile(url: url)
            // Whatever loaded must be internally consistent and readable.
            for t in f.tensors {
                XCTAssertLessThanOrEqual(t.data.baseAddress! + t.data.count, f.file.bytes.baseAddress! + f.file.bytes.count)
                _ = t.data.reduce(0, &+)
            }
            _ = try? ModelConfig.fromGGUF(f)
        }
    }

    func testSafetensors() throws {
        let base = Array(try smallSafetensors().serialize())
        let headerEnd = 8 + Int(base.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        try fuzz("m.safetensors", base: base, headerEnd: headerEnd, iterations: 3000, seed: 2) { url in
            let m = try SafetensorsModel(url: url)
            for t in m.tensors.values { _ = try t.floats() }
        }
    }

    func testLlama2c() throws {
        let base = makeCheckpoint()
        try fuzz("m.bin", base: base, headerEnd: 28, iterations: 1000, seed: 3) { url in
            let c = try Llama2cCheckpoint(url: url)
            for t in c.tensors.values { _ = t.data.reduce(0, &+) }
        }
    }

    func testConfigJSON() throws {
        let base = Array(try Data(contentsOf: fixtures.appendingPathComponent("tiny-qwen3/config.json")))
        try fuzz("config.json", base: base, headerEnd: base.count, iterations: 500, seed: 4) { url in
            _ = try ModelConfig.fromHF(configJSON: url)
        }
    }
}
