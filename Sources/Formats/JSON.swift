import Foundation

/// A parsed JSON value: config.json, safetensors headers, shard indexes, tokenizer.json and its
/// companions all go through this one strict RFC 8259 parser.
///
/// Two things set it apart from JSONSerialization / JSONDecoder:
///
/// - Objects keep every member, in file order (a repeated key is kept too), and keys are matched
///   by their UTF-8 bytes. Swift `String ==` is canonical equivalence, so a `[String: …]`
///   dictionary would merge an NFC and an NFD spelling of a key into one entry, and a tokenizer
///   vocabulary holds both as distinct tokens. For the same reason `==` on JSON values compares
///   strings byte for byte.
/// - A damaged document fails with one line naming the file and the byte where it goes wrong.
///
/// Numbers that are written as integers and fit in an Int stay exact (`.int`); all others are
/// `.double`. Strings must be valid UTF-8 and `\u` escapes must pair their surrogates.
public enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    /// Members in file order, repeated keys included.
    case object([Member])

    /// One member of an object: `for (key, value) in members` reads them in file order.
    public typealias Member = (key: String, value: JSON)

    /// The value of the last member whose key has exactly the bytes of `key` (a repeated key
    /// means its last value, as in Python's json and serde_json), if this is an object. A linear
    /// scan: a caller with many lookups to make (a vocabulary) builds its own byte-keyed index.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        let count = key.utf8.count
        return members.last { $0.key.utf8.count == count && $0.key.utf8.elementsEqual(key.utf8) }?.value
    }

    /// The members in file order, if this is an object.
    public var members: [Member]? { if case .object(let m) = self { return m }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// An integer, also from an integral float ("4096.0") that is exact in a Double.
    public var int: Int? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) <= 9_007_199_254_740_992: Int(d)
        default: nil
        }
    }

    /// Any number, as a Double.
    public var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// The kind of value, for messages: "a string", "an object", …
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// The value itself where it is short, else its kind, for messages: `"gelu"`, `1`, `an array of 3`.
    public var brief: String {
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

extension JSON: Equatable {
    /// Structural equality; strings and keys compare by UTF-8 bytes. `.int(1)` is not `.double(1)`.
    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case let (.bool(x), .bool(y)): x == y
        case let (.int(x), .int(y)): x == y
        case let (.double(x), .double(y)): x == y
        case let (.string(x), .string(y)): x.utf8.elementsEqual(y.utf8)
        case let (.array(x), .array(y)): x == y
        case let (.object(x), .object(y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value == $1.value }
        default: false
        }
    }
}

// MARK: - Parsing

extension JSON {
    /// Where and why a document is not JSON. `offset` counts from the first byte parsed.
    public struct SyntaxError: Error, CustomStringConvertible, Sendable {
        public let reason: String
        public let offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Parses a whole document; throws `SyntaxError`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSON {
        try bytes.withMemoryRebound(to: UInt8.self) { b in
            var p = Parser(b: b)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == b.count else { throw p.fail("unexpected data after the end") }
            return v
        }
    }

    /// Parses `bytes` (which start at byte `base` of the file), turning a failure into a
    /// FormatError "<path>: <what> is not valid JSON: <reason> at byte <N in the file>".
    public static func parse(_ bytes: UnsafeRawBufferPointer, url: URL, what: String, base: Int = 0) throws -> JSON {
        do { return try parse(bytes) } catch let e as SyntaxError {
            throw FormatError(url, "\(what) is not valid JSON: \(e.reason) at byte \(base + e.offset)")
        }
    }

    public static func parse(_ data: Data, url: URL, what: String) throws -> JSON {
        try data.withUnsafeBytes { try parse($0, url: url, what: what) }
    }

    /// Maps and parses a whole JSON file; every failure is a one-line FormatError.
    public static func parse(file url: URL, what: String) throws -> JSON {
        let file = try MappedFile(url)
        return try parse(file.bytes, url: url, what: what)
    }
}

/// Recursive descent over UTF-8 bytes.
private struct Parser {
    static let maxDepth = 128

    let b: UnsafeBufferPointer<UInt8>
    var i = 0

    func fail(_ reason: String, at offset: Int? = nil) -> JSON.SyntaxError {
        JSON.SyntaxError(reason: reason, offset: offset ?? i)
    }

    @inline(__always)
    func at(_ c: Unicode.Scalar) -> Bool { i < b.count && b[i] == UInt8(ascii: c) }

    @inline(__always)
    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    /// Steps over `c`, or fails naming what was expected.
    mutating func expect(_ c: Unicode.Scalar, _ what: String) throws {
        guard at(c) else { throw fail(i == b.count ? "unexpected end, expected \(what)" : "expected \(what)") }
        i += 1
    }

    mutating func literal(_ word: StaticString, _ v: JSON) throws -> JSON {
        let n = word.utf8CodeUnitCount
        guard b.count - i >= n, (0..<n).allSatisfy({ b[i + $0] == word.utf8Start[$0] }) else { throw fail("invalid literal") }
        i += n
        return v
    }

    mutating func value(depth: Int) throws -> JSON {
        guard depth < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
        guard i < b.count else { throw fail("unexpected end, expected a value") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [JSON.Member] = []
            skipSpace()
            if at("}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard at("\"") else { throw fail("expected a string key") }
                let key = try string()
                skipSpace()
                try expect(":", "':'")
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                if at(",") { i += 1; continue }
                try expect("}", "',' or '}'")
                return .object(members)
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSON] = []
            skipSpace()
            if at("]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                if at(",") { i += 1; continue }
                try expect("]", "',' or ']'")
                return .array(items)
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
        let start = i
        var value = 0  // the digits so far, while they are few enough not to overflow
        func digits(_ accumulate: Bool) -> Int {
            let s = i
            while i < b.count, b[i] &- UInt8(ascii: "0") < 10 {
                if accumulate { value = value &* 10 &+ Int(b[i] &- UInt8(ascii: "0")) }
                i += 1
            }
            return i - s
        }
        let negative = at("-")
        if negative { i += 1 }
        let first = i
        let n = digits(true)
        guard n > 0 else { throw fail("invalid number") }
        guard n == 1 || b[first] != UInt8(ascii: "0") else { throw fail("number with a leading zero", at: start) }
        var integral = true
        if at(".") {
            i += 1
            integral = false
            guard digits(false) > 0 else { throw fail("invalid number") }
        }
        if at("e") || at("E") {
            i += 1
            integral = false
            if at("+") || at("-") { i += 1 }
            guard digits(false) > 0 else { throw fail("invalid number") }
        }
        // Up to 18 digits cannot overflow: the common case (ids, sizes) needs no text.
        if integral, n <= 18 { return .int(negative ? -value : value) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        if integral, let v = Int(text) { return .int(v) }
        guard let d = Double(text) else { throw fail("invalid number", at: start) }
        return .double(d)
    }

    mutating func hex4() throws -> UInt32 {
        guard b.count - i >= 4 else { throw fail("unexpected end in \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// A string starting at the opening quote. Raw bytes are copied through and must be UTF-8.
    mutating func string() throws -> String {
        let quote = i
        i += 1
        let start = i
        // Fast path: no escapes, the string is the bytes between the quotes.
        while i < b.count {
            let c = b[i]
            if c >= 0x80 { i += try utf8Sequence(); continue }
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i - 1]), as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            i += 1
        }
        var out = Array(b[start..<i])
        while true {
            guard i < b.count else { throw fail("unterminated string", at: quote) }
            let c = b[i]
            if c >= 0x80 {
                let n = try utf8Sequence()
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[i..<i + n]))
                i += n
                continue
            }
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < b.count else { throw fail("unterminated string", at: quote) }
                let e = b[i]
                i += 1
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
                        guard b.count - i >= 2, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate in \\u escape") }
                    out.append(contentsOf: u.utf8)
                default: throw fail("invalid escape", at: i - 1)
                }
            case 0..<0x20: throw fail("control character in string", at: i - 1)
            default: out.append(c)
            }
        }
    }

    /// The length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, surrogates or
    /// scalars past U+10FFFF) starting with the non-ASCII byte at `i`; checked here, as the
    /// string is scanned, because `String(validating:)` would cost a second pass.
    @inline(__always)
    func utf8Sequence() throws -> Int {
        let lead = b[i]
        let n: Int, second: ClosedRange<UInt8>
        switch lead {
        case 0xC2...0xDF: n = 2; second = 0x80...0xBF
        case 0xE0: n = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: n = 3; second = 0x80...0xBF
        case 0xED: n = 3; second = 0x80...0x9F
        case 0xF0: n = 4; second = 0x90...0xBF
        case 0xF1...0xF3: n = 4; second = 0x80...0xBF
        case 0xF4: n = 4; second = 0x80...0x8F
        default: throw fail("string is not UTF-8")
        }
        guard b.count - i >= n, second.contains(b[i + 1]) else { throw fail("string is not UTF-8") }
        for k in 2..<n where b[i + k] & 0xC0 != 0x80 { throw fail("string is not UTF-8") }
        return n
    }
}
