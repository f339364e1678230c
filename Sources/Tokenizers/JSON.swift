// A small JSON reader for tokenizer files.
//
// Why not JSONSerialization / JSONDecoder: both hand back `[String: Any]` dictionaries keyed by
// Swift/NS strings, and Swift `String ==` is canonical equivalence, so a sentencepiece vocabulary
// holding both an NFC and an NFD spelling of a token would silently lose one entry. Here objects
// keep every member, in file order, and strings keep their exact scalars. It also gives
// one-line error messages with a byte offset.

/// A parsed JSON value. Objects keep their members in file order (duplicates are kept too).
enum JSONValue {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The first member named `key`, if this is an object.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        // Compare by UTF-8 bytes, not `==`, for the reason given at the top of this file.
        for m in members where m.key.utf8.elementsEqual(key.utf8) { return m.value }
        return nil
    }

    var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var objectValue: [JSONMember]? { if case .object(let o) = self { return o }; return nil }
    var isNull: Bool { if case .null = self { return true }; return false }

    /// An integer, if this is a number with no fractional part that fits in `Int`.
    var intValue: Int? {
        guard case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    /// A short name of the value's type, for error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// One member of a JSON object.
struct JSONMember {
    let key: String
    let value: JSONValue
}

struct JSONParseError: Error {
    let offset: Int
    let message: String
}

/// Recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    private let b: [UInt8]
    private var i = 0
    private var depth = 0

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var p = JSONParser(b: bytes)
        p.skipWS()
        let v = try p.value()
        p.skipWS()
        if p.i != p.b.count { throw JSONParseError(offset: p.i, message: "unexpected data after the top-level value") }
        return v
    }

    private init(b: [UInt8]) { self.b = b }

    private mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private func fail(_ msg: String) -> JSONParseError { JSONParseError(offset: i, message: msg) }

    private mutating func value() throws -> JSONValue {
        guard i < b.count else { throw fail("unexpected end of file") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character '\(Unicode.Scalar(b[i]))'")
        }
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= b.count else { throw fail("unexpected end of file") }
        for k in 0..<w.count where b[i + k] != w[k] { throw fail("invalid literal") }
        i += w.count
    }

    private mutating func object() throws -> JSONValue {
        depth += 1
        defer { depth -= 1 }
        if depth > 512 { throw fail("nesting too deep") }
        i += 1
        var members: [JSONMember] = []
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let k = try string()
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipWS()
            let v = try value()
            members.append(JSONMember(key: k, value: v))
            skipWS()
            guard i < b.count else { throw fail("unexpected end of file in object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func array() throws -> JSONValue {
        depth += 1
        defer { depth -= 1 }
        if depth > 512 { throw fail("nesting too deep") }
        i += 1
        var items: [JSONValue] = []
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWS()
            items.append(try value())
            skipWS()
            guard i < b.count else { throw fail("unexpected end of file in array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func number() throws -> Double {
        let start = i
        if b[i] == UInt8(ascii: "-") { i += 1 }
        while i < b.count {
            let c = b[i]
            if (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e")
                || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                i += 1
            } else { break }
        }
        // Fast path for plain integers (vocabularies are mostly these).
        var v = 0
        var plain = i - start <= 15
        for k in start..<i {
            let c = b[k]
            if k == start && c == UInt8(ascii: "-") { continue }
            if c < 0x30 || c > 0x39 { plain = false; break }
            v = v * 10 + Int(c - 0x30)
        }
        if plain, i > start, !(i - start == 1 && b[start] == UInt8(ascii: "-")) {
            return Double(b[start] == UInt8(ascii: "-") ? -v : v)
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        guard let d = Double(text) else { throw JSONParseError(offset: start, message: "invalid number '\(text)'") }
        return d
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: b[start..<i], as: UTF8.self)
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            i += 1
        }
        var out = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var cp = try hex4()
                if cp >= 0xD800 && cp < 0xDC00 {
                    // A surrogate pair; a lone high surrogate becomes U+FFFD.
                    if i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        } else { i = save; cp = 0xFFFD }
                    } else { cp = 0xFFFD }
                } else if cp >= 0xDC00 && cp < 0xE000 { cp = 0xFFFD }
                out.append(contentsOf: Array(String(Unicode.Scalar(cp)!).utf8))
            default: throw fail("invalid escape '\\\(Unicode.Scalar(e))'")
            }
        }
        throw fail("unterminated string")
    }
}
