import Foundation
@testable import Tokenizers

// A tiny, self-contained GGUF metadata reader for the tokenizer tests only (the engine's own
// GGUF reader lives in Formats, which this test target must not depend on). It reads the
// header and the key/value section and stops before the tensor infos.

enum GGUFValue {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    var int: Int? {
        switch self {
        case .uint(let v): return Int(exactly: v)
        case .int(let v): return Int(exactly: v)
        default: return nil
        }
    }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var array: [GGUFValue]? { if case .array(let a) = self { return a }; return nil }
    var float: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }
}

struct GGUFReadError: Error, CustomStringConvertible { let description: String }

func readGGUFMetadata(_ url: URL) throws -> [String: GGUFValue] {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw GGUFReadError(description: "\(url.path) is missing: run `make model` to download SmolLM2-135M-Instruct")
    }
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    // The metadata (49k tokens + 49k merges) sits in the first few MB.
    let data = [UInt8](handle.readData(ofLength: 16 << 20))
    var p = 0
    func need(_ n: Int) throws {
        guard n >= 0, p + n <= data.count else { throw GGUFReadError(description: "GGUF truncated at byte \(p)") }
    }
    func u32() throws -> UInt32 {
        try need(4)
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(data[p + k]) << (8 * k) }
        p += 4
        return v
    }
    func u64() throws -> UInt64 {
        try need(8)
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(data[p + k]) << (8 * k) }
        p += 8
        return v
    }
    func str() throws -> String {
        let n = Int(try u64())
        try need(n)
        defer { p += n }
        return String(decoding: data[p..<(p + n)], as: UTF8.self)
    }
    func value(_ type: UInt32) throws -> GGUFValue {
        switch type {
        case 0: try need(1); p += 1; return .uint(UInt64(data[p - 1]))                       // uint8
        case 1: try need(1); p += 1; return .int(Int64(Int8(bitPattern: data[p - 1])))      // int8
        case 2: try need(2); p += 2; return .uint(UInt64(data[p - 2]) | UInt64(data[p - 1]) << 8)  // uint16
        case 3: try need(2); p += 2; return .int(Int64(Int16(bitPattern: UInt16(data[p - 2]) | UInt16(data[p - 1]) << 8)))
        case 4: return .uint(UInt64(try u32()))                                               // uint32
        case 5: return .int(Int64(Int32(bitPattern: try u32())))                             // int32
        case 6: return .float(Double(Float(bitPattern: try u32())))                           // float32
        case 7: try need(1); p += 1; return .bool(data[p - 1] != 0)                           // bool
        case 8: return .string(try str())
        case 9:                                                                                // array
            let et = try u32()
            let n = Int(try u64())
            guard n <= data.count else { throw GGUFReadError(description: "GGUF array of \(n) items") }
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(et)) }
            return .array(items)
        case 10: return .uint(try u64())                                                      // uint64
        case 11: return .int(Int64(bitPattern: try u64()))                                    // int64
        case 12: return .float(Double(bitPattern: try u64()))                                 // float64
        default: throw GGUFReadError(description: "unknown GGUF value type \(type) at byte \(p)")
        }
    }
    try need(4)
    guard data[0..<4].elementsEqual(Array("GGUF".utf8)) else { throw GGUFReadError(description: "\(url.path) is not a GGUF file") }
    p = 4
    let version = try u32()
    guard version == 2 || version == 3 else { throw GGUFReadError(description: "unsupported GGUF version \(version)") }
    _ = try u64()  // tensor count
    let kvCount = try u64()
    var out: [String: GGUFValue] = [:]
    for _ in 0..<kvCount {
        let key = try str()
        out[key] = try value(try u32())
    }
    return out
}

/// Builds the tokenizer the way the engine's GGUF loader will: through `fromGGUFMetadata`.
func tokenizerFromGGUF(_ md: [String: GGUFValue]) throws -> Tokenizer {
    guard let model = md["tokenizer.ggml.model"]?.string,
          let tokens = md["tokenizer.ggml.tokens"]?.array?.compactMap({ $0.string }) else {
        throw GGUFReadError(description: "GGUF has no tokenizer.ggml.model / tokens")
    }
    return try Tokenizer.fromGGUFMetadata(
        model: model,
        pre: md["tokenizer.ggml.pre"]?.string,
        tokens: tokens,
        merges: md["tokenizer.ggml.merges"]?.array?.compactMap { $0.string } ?? [],
        scores: md["tokenizer.ggml.scores"]?.array?.compactMap { $0.float.map(Float.init) },
        tokenTypes: md["tokenizer.ggml.token_type"]?.array?.compactMap { $0.int.map(Int32.init) },
        bos: md["tokenizer.ggml.bos_token_id"]?.int,
        eos: md["tokenizer.ggml.eos_token_id"]?.int,
        addBOS: md["tokenizer.ggml.add_bos_token"]?.bool,
        chatTemplate: md["tokenizer.chat_template"]?.string,
        addSpacePrefix: md["tokenizer.ggml.add_space_prefix"]?.bool,
        unk: md["tokenizer.ggml.unknown_token_id"]?.int)
}
