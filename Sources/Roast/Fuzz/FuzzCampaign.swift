import Backend
import Formats
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The counts of one fuzz campaign. A failure is a rejection whose message breaks the rules (more
/// than one line, Swift's own error text leaking), an accepted input that breaks a loader's
/// promise, or a case whose peak memory passed `memoryBound`.
public struct FuzzReport: Codable, Sendable {
    public var format: String
    public var seed: UInt64
    public var cases = 0
    public var accepted = 0
    public var rejected = 0
    public var failures: [String] = []
    /// Largest rise of peak resident memory over one case, MiB (nil where it cannot be measured).
    public var peakGrowthMiB: Double?
    public var memoryBoundMiB: Double
    public var seconds = 0.0
}

public enum FuzzCampaign {
    /// Peak memory a case may add: 64 MiB plus 16 bytes per byte of input. Inputs are small and
    /// every size they declare is checked before use, so a case never comes near it unless a
    /// loader allocates what a damaged header claims.
    public static func memoryBound(inputBytes: Int) -> Int { 64 << 20 + 16 * inputBytes }

    /// Runs `cases` mutations of `input` (default: the format's built-in seed) in a fresh
    /// temporary folder, removed afterwards. `onFailure` sees each failure as it happens,
    /// `onCase` every case's outcome ("accepted" or the error) before the next case starts.
    public static func run(_ format: FuzzFormat, cases: Int, seed: UInt64, input: URL? = nil,
                           onFailure: ((String) -> Void)? = nil, onCase: ((Int, String) -> Void)? = nil) throws -> FuzzReport {
        let base = try input.map { Array(try Data(contentsOf: $0)) } ?? format.seed()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("roast-fuzz-\(UUID().uuidString)")
        try OutputFile.makeFolder(folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, bytes) in format.companions { try Data(bytes).write(to: folder.appendingPathComponent(name)) }
        let url = folder.appendingPathComponent(format.fileName)
        try Data(base).write(to: url)
        let headerEnd = format.headerEnd(base, at: url)
        let tokens = format == .llama2cTokenizer ? llama2cTokenCount(base) : 0
        let bound = memoryBound(inputBytes: base.count)
        var report = FuzzReport(format: format.rawValue, seed: seed, memoryBoundMiB: Double(bound) / 1048576)
        var mutator = Mutator(seed: seed)
        let start = Date()
        func fail(_ s: String) {
            if report.failures.count < 20 { report.failures.append(s) }
            onFailure?(s)
        }
        for i in 0..<cases {
            let bytes: [UInt8]
            switch format.mutation {
            case .binary: bytes = mutator.binary(base, headerEnd: headerEnd)
            case .safetensors: bytes = mutator.safetensors(base)
            case .json: bytes = mutator.json(base)
            case .jsonLines: bytes = mutator.jsonLines(base)
            }
            try Data(bytes).write(to: url)
            onCase?(i, "\(bytes.count) bytes in \(url.path)")  // after a trap, the culprit is still there
            let before = Memory.resetPeak()
            do {
                try format.load(url, tokens: tokens)
                report.accepted += 1
                onCase?(i, "accepted")
            } catch let e as FuzzInvariantError {
                fail("case \(i): accepted, but \(e)")
            } catch {
                report.rejected += 1
                let message = "\(error)"
                onCase?(i, message)
                if let problem = messageProblem(message) { fail("case \(i): \(problem): \(message.prefix(300))") }
            }
            if let before, let peak = Memory.peak() {
                let growth = max(0, peak - before)
                report.peakGrowthMiB = max(report.peakGrowthMiB ?? 0, Double(growth) / 1048576)
                if growth > bound { fail("case \(i): peak memory rose by \(growth >> 20) MiB, past the bound of \(bound >> 20) MiB") }
            }
            report.cases += 1
        }
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// What is wrong with an error message, if anything: errors are one line in the engine's words.
    static func messageProblem(_ m: String) -> String? {
        if m.contains("\n") { return "a message of more than one line" }
        for leak in ["DecodingError", "EncodingError", "Debug description", "The operation could not be completed", "Swift."]
        where m.contains(leak) { return "Swift's own error text (\(leak))" }
        if m.trimmingCharacters(in: .whitespaces).isEmpty { return "an empty message" }
        return nil
    }

    /// Tokens in a llama2.c tokenizer.bin: records of score, length and bytes after max_token_length.
    static func llama2cTokenCount(_ b: [UInt8]) -> Int {
        var at = 4, n = 0
        while at + 8 <= b.count {
            let len = Int(Int32(littleEndian: b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at + 4, as: Int32.self) }))
            guard len >= 0, len <= b.count - at - 8 else { break }
            at += 8 + len
            n += 1
        }
        return max(n, 1)
    }
}

/// The process's resident memory from /proc (Linux); nil elsewhere.
enum Memory {
    /// Resets the peak ("high water mark") to the current resident size; returns that size.
    static func resetPeak() -> Int? {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return nil }
        fputs("5", f)
        fclose(f)
        return field("VmRSS:")
    }

    static func peak() -> Int? { field("VmHWM:") }

    static func field(_ name: String) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let kb = Int(line.dropFirst(name.count).trimmingCharacters(in: .whitespaces).dropLast(3)) else { return nil }
        return kb * 1024
    }
}
