import Foundation

/// Codable's DecodingError in one line a user can act on: which field, what was expected, what
/// the document holds there — never Swift's "Debug description: …" text.
public enum DecodingErrorText {
    /// `json`, when given, is the decoded document: the value found at the failing field is named from it.
    public static func describe(_ error: Error, json: JSON? = nil) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .typeMismatch(let type, let c):
            return "field \(path(c.codingPath)): expected \(name(type)), found \(found(c.codingPath, json) ?? "another type")"
        case .valueNotFound(let type, let c):
            return "field \(path(c.codingPath)): expected \(name(type)), found null"
        case .keyNotFound(let key, let c):
            return "missing field \(path(c.codingPath + [key]))"
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty { return "not valid JSON" }
            return "field \(path(c.codingPath)): the value \(found(c.codingPath, json) ?? "found") is not allowed"
        @unknown default:
            return "not decodable"
        }
    }

    /// `a.b[2].c`, quoted: 'a.b[2].c'.
    static func path(_ keys: [CodingKey]) -> String {
        var s = ""
        for k in keys {
            if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : ".\(k.stringValue)" }
        }
        return "'\(s.isEmpty ? "(top level)" : s)'"
    }

    /// A Swift type as a JSON user reads it.
    static func name(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type, is UInt32.Type, is UInt.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        default:
            "\(type)".hasPrefix("Array") ? "an array" : "\(type)".hasPrefix("Dictionary") ? "an object" : "\(type)"
        }
    }

    /// The value at `keys` in `json`, briefly ("a string \"x\"", "an array of 3").
    static func found(_ keys: [CodingKey], _ json: JSON?) -> String? {
        guard var v = json else { return nil }
        for k in keys {
            if let i = k.intValue, let a = v.array, i >= 0, i < a.count { v = a[i]; continue }
            guard let next = v[k.stringValue] else { return nil }
            v = next
        }
        switch v {
        case .string, .int, .double, .bool: return "\(v.typeName) \(v.brief)"
        default: return v.brief
        }
    }
}
