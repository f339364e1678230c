import Formats
import Foundation

/// A stable 128-bit digest (two FNV-1a 64 passes with different bases), as 32 hex digits: cache
/// keys and file names. Not cryptographic; it only has to tell settings apart.
public enum Digest {
    public static func hex(_ text: String) -> String {
        var a: UInt64 = 0xCBF2_9CE4_8422_2325, b: UInt64 = 0x8422_2325_CBF2_9CE4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte ^ 0x5A)) &* 0x0000_0100_0000_01B3
        }
        return String(format: "%016llx%016llx", a, b)
    }

    /// A digest of float values by their bits.
    public static func floats(_ v: [Float]) -> String {
        hex(v.map { String($0.bitPattern, radix: 16) }.joined(separator: ","))
    }
}

/// What one evaluated item leaves in the cache: the raw output, graded again when read, so a
/// grader fix applies to cached runs.
public struct CachedOutput: Codable, Sendable, Equatable {
    public var key: String
    /// The generated text (generation tasks).
    public var response: String?
    /// Summed log-likelihood per choice (log-likelihood tasks).
    public var logLikelihoods: [Double]?
    public init(key: String, response: String? = nil, logLikelihoods: [Double]? = nil) {
        self.key = key
        self.response = response
        self.logLikelihoods = logLikelihoods
    }
}

/// Per-item results of earlier runs, so an interrupted evaluation resumes where it stopped.
///
/// One JSON line per item, appended and flushed as each batch finishes. An interruption can
/// only cut the last line short; reading drops a line that does not parse and cuts the file back
/// to the last whole line, so the cache is never corrupt, only one item shorter.
public final class AnswerCache {
    /// nil: kept in memory only.
    public let url: URL?
    private var entries: [String: CachedOutput] = [:]
    private let handle: FileHandle?
    /// Lines read at open, and lines dropped as torn.
    public private(set) var loaded = 0
    public private(set) var dropped = 0

    /// A cache that lives only as long as this object.
    public init() {
        url = nil
        handle = nil
    }

    public init(url: URL) throws {
        self.url = url
        let fm = FileManager.default
        try OutputFile.makeFolder(url.deletingLastPathComponent())
        if !fm.fileExists(atPath: url.path) { fm.createFile(atPath: url.path, contents: nil) }
        let data = try Data(contentsOf: url)
        var good = 0  // byte length of the whole, parseable lines
        var start = data.startIndex
        let decoder = JSONDecoder()
        while start < data.endIndex {
            guard let nl = data[start...].firstIndex(of: 0x0A) else { dropped += 1; break }  // torn tail
            if let e = try? decoder.decode(CachedOutput.self, from: data[start..<nl]) {
                entries[e.key] = e
                loaded += 1
                good = nl + 1 - data.startIndex
            } else {
                dropped += 1
                break
            }
            start = nl + 1
        }
        guard let h = FileHandle(forUpdatingAtPath: url.path) else { throw EvaluationError("\(url.path): cannot open the answer cache for writing") }
        handle = h
        if good < data.count { try h.truncate(atOffset: UInt64(good)) }
        try h.seekToEnd()
    }

    deinit { try? handle?.close() }

    public subscript(key: String) -> CachedOutput? { entries[key] }
    public var count: Int { entries.count }

    /// Appends outputs, one line each, and flushes them to the disk.
    public func put(_ outputs: [CachedOutput]) throws {
        guard !outputs.isEmpty else { return }
        guard let handle else {
            for o in outputs { entries[o.key] = o }
            return
        }
        for o in outputs { entries[o.key] = o }
        try handle.write(contentsOf: try JSONLines.encode(outputs))
        try handle.synchronize()
    }
}

public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}
