import Formats
import Foundation

/// Reading the datasets: every reader checks its file and names the first bad line.
public enum Datasets {
    /// The JSON value of every non-blank line of a JSON-lines file, with its 1-based line number.
    public static func jsonLines(_ url: URL, what: String) throws -> [(line: Int, value: JSON)] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TaskError("\(url.path): cannot read the \(what) file: \(OutputFile.reason(error))")
        }
        var out: [(Int, JSON)] = []
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            line += 1
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            let bytes = data[start..<end]
            start = end < data.endIndex ? end + 1 : end
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                out.append((line, try bytes.withUnsafeBytes { try JSON.parse($0) }))
            } catch let e as JSON.SyntaxError {
                throw TaskError("\(url.path):\(line): not a JSON line: \(e.reason) at column \(e.offset + 1)")
            }
        }
        guard !out.isEmpty else { throw TaskError("\(url.path): the \(what) file holds no lines") }
        return out
    }

    /// The string `field` of every line's object (`roast tokenize --jsonl`); a line that is not
    /// an object with that string is named with what it holds instead.
    public static func strings(_ url: URL, field: String) throws -> [String] {
        try jsonLines(url, what: "JSON-lines").map { line, v in
            guard case .object = v else { throw TaskError("\(url.path):\(line): \(v.typeName), expected an object with a \"\(field)\" string") }
            guard let f = v[field] else { throw TaskError("\(url.path):\(line): no \"\(field)\" field") }
            guard let s = f.string else { throw TaskError("\(url.path):\(line): \"\(field)\" is \(f.typeName) \(f.brief), expected a string") }
            return s
        }
    }

    /// A whole-file JSON document; a syntax error is named by line and column.
    public static func jsonDocument(_ url: URL, what: String) throws -> JSON {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TaskError("\(url.path): cannot read the \(what) file: \(OutputFile.reason(error))")
        }
        do {
            return try data.withUnsafeBytes { try JSON.parse($0) }
        } catch let e as JSON.SyntaxError {
            let head = data.prefix(e.offset)
            let line = head.filter { $0 == 0x0A }.count + 1
            let column = e.offset - (head.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0) + 1
            throw TaskError("\(url.path):\(line):\(column): \(e.reason)")
        }
    }

    /// Fisher–Yates with SplitMix64, written out so a seed gives the same order on every platform.
    public static func shuffled<T>(_ items: [T], seed: UInt64) -> [T] {
        var a = items
        var rng = TaskRandom(seed: seed)
        if a.count > 1 {
            for i in stride(from: a.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                a.swapAt(i, j)
            }
        }
        return a
    }

    /// The data file a task reads by default: `data/<relative>` in the working directory, else
    /// `../shared/data/<relative>` (the team's shared folder beside a checkout).
    public static func defaultFile(_ relative: String) -> URL {
        let fm = FileManager.default
        for base in ["data", "../shared/data"] {
            let u = URL(fileURLWithPath: base).appendingPathComponent(relative)
            if fm.fileExists(atPath: u.path) { return u }
        }
        return URL(fileURLWithPath: "data").appendingPathComponent(relative)
    }
}
