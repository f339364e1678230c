import Foundation

/// A parsed JSON value, for the small JSON documents of model folders (config.json, safetensors
/// headers, shard indexes). Integers are kept exact when they fit in an Int.
///
/// A small strict parser of our own rather than JSONDecoder: it reports the byte where a damaged
/// document goes wrong, and nothing about it depends on Foundation's platform differences.
enum JSON: Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSON]), object([String: JSON])

    /// Parses `bytes` (which start at byte `base` of the file), turning any failure into one line
    /// naming `url` and the byte in the file.
    static func parse(_ bytes: UnsafeRawBufferPointer, url: URL, what: String, base: Int = 0) throws -> JSON {
        do {
            var p = Parser(bytes: bytes)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.at == bytes.count else { throw p.fail("unexpected data after the end") }
            return v
        } catch let e as Parser.Failure {
            throw FormatError(url, "\(what) is not valid JSON: \(e.what) at byte \(base + e.at)")
        }
    }

    static func parse(_ data: Data, url: URL, what: String) throws -> JSON {
        try data.withUnsafeBytes { try parse($0, url: url, what: what) }
    }

    /// Maps and parses a whole JSON file.
    static func parse(file url: URL, what: String) throws -> JSON {
        let file = try MappedFile(url)
        return try parse(file.bytes, url: url, what: what)
    }

    subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var object: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
    var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var isNull: Bool { self == .null }

    /// An integer, also from an integral float ("4096.0") that is exact in a Double.
    var int: Int? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) <= 9_007_199_254_740_992: Int(d)
        default: nil
        }
    }

    var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// Short text for messages.
    var brief: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .int(let i): "\(i)"
        case .double(let d): "\(d)"
        case .string(let s): printable(s, limit: 40)
        case .array(let a): "an array of \(a.count)"
        case .object: "an object"
        }
    }
}

/// Recursive descent over UTF-8 bytes (RFC 8259).
private struct Parser {
    struct Failure: Error { let what: String; let at: Int }
    static let maxDepth = 128

    let bytes: UnsafeRawBufferPointer
    var at = 0

    func fail(_ what: String) -> Failure { Failure(what: what, at: at) }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
    }

    mutating func expect(_ c: UInt8, _ what: String) throws {
        guard peek == c else { throw fail(peek == nil ? "unexpected end, expected \(what)" : "expected \(what)") }
        at += 1
    }

    mutating func literal(_ word: String, _ v: JSON) throws -> JSON {
        let w = Array(word.utf8)
        guard bytes.count - at >= w.count, (0..<w.count).allSatisfy({ bytes[at + $0] == w[$0] }) else { throw fail("invalid literal") }
        at += w.count
        return v
    }

    mutating func value(depth: Int) throws -> JSON {
        guard depth < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
        guard let c = peek else { throw fail("unexpected end, expected a value") }
        switch c {
        case UInt8(ascii: "{"):
            at += 1
            var o = [String: JSON]()
            skipSpace()
            if peek == UInt8(ascii: "}") { at += 1; return .object(o) }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string()
                skipSpace()
                try expect(UInt8(ascii: ":"), "':'")
                skipSpace()
                o[key] = try value(depth: depth + 1)  // a repeated key keeps the last value, as JSON parsers do
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return .object(o)
            }
        case UInt8(ascii: "["):
            at += 1
            var a = [JSON]()
            skipSpace()
            if peek == UInt8(ascii: "]") { at += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") { at += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return .array(a)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    mutating func number() throws -> JSON {
        let start = at
        func digits() -> Int {
            let s = at
            while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { at += 1 }
            return at - s
        }
        if peek == UInt8(ascii: "-") { at += 1 }
        let first = at
        let n = digits()
        guard n > 0 else { throw fail("invalid number") }
        guard n == 1 || bytes[first] != UInt8(ascii: "0") else { throw Failure(what: "number with a leading zero", at: start) }
        var integral = true
        if peek == UInt8(ascii: ".") {
            at += 1
            integral = false
            guard digits() > 0 else { throw fail("invalid number") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            integral = false
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits() > 0 else { throw fail("invalid number") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
        if integral, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw Failure(what: "invalid number", at: start) }
        return .double(d)
    }

    mutating func hex4() throws -> UInt32 {
        guard bytes.count - at >= 4 else { throw fail("unexpected end in \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    /// A string starting at the opening quote. Raw bytes are copied through and must be UTF-8.
    mutating func string() throws -> String {
        let start = at
        at += 1
        var out = [UInt8]()
        while true {
            guard let c = peek else { throw Failure(what: "unterminated string", at: start) }
            at += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(bytes: out, encoding: .utf8) else { throw Failure(what: "string is not UTF-8", at: start) }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw Failure(what: "unterminated string", at: start) }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by \u and a low one.
                        guard bytes.count - at >= 2, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in \\u escape") }
                    out.append(contentsOf: String(u).utf8)
                default: throw Failure(what: "invalid escape", at: at - 1)
                }
            case 0..<0x20: throw Failure(what: "control character in string", at: at - 1)
            default: out.append(c)
            }
        }
    }
}
