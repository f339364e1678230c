import Backend
import Formats
import Foundation

/// Seeded mutations of an input file: byte-level damage for binary formats, structural edits
/// for JSON and JSON lines. The same seed gives the same cases on every platform.
public struct Mutator {
    var rng: SplitMix64

    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    /// Integers that break naive length, count and offset handling.
    static let hugeValues: [UInt64] = [UInt64.max, 1 << 63, UInt64(Int64.max), 1 << 60, 1 << 40, 1 << 32,
                                       0xFFFF_FFFF, 0x8000_0000, 1 << 20, 0]
    /// Bytes at the edges of signed and unsigned ranges.
    static let boundaryBytes: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]

    // MARK: Binary

    /// One or two byte-level mutations; most land before `headerEnd`, where lengths, counts,
    /// shapes and offsets live.
    public mutating func binary(_ base: [UInt8], headerEnd: Int) -> [UInt8] {
        var b = byteEdit(base, headerEnd: headerEnd)
        if below(3) == 0 { b = byteEdit(b, headerEnd: headerEnd) }
        return b
    }

    mutating func byteEdit(_ base: [UInt8], headerEnd: Int) -> [UInt8] {
        var b = base
        func position(_ width: Int = 1) -> Int {
            let limit = (below(4) == 0 ? b.count : min(headerEnd, b.count)) - width
            return limit <= 0 ? 0 : below(limit + 1)
        }
        switch below(9) {
        case 8:  // an aligned 4-byte field nudged: a dimension or count off by a little
            guard b.count >= 4 else { break }
            let at = position(4) & ~3
            let v = Int32(littleEndian: b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: Int32.self) })
            let nudged = [v &+ 1, v &- 1, v &* 2, v / 2, 0 &- v, v &+ Int32(below(64))][below(6)]
            withUnsafeBytes(of: nudged.littleEndian) { for i in 0..<4 { b[at + i] = $0[i] } }
        case 0:  // bit flips
            for _ in 0..<(1 + below(4)) where !b.isEmpty { b[position()] ^= UInt8(1) << UInt8(below(8)) }
        case 1:  // boundary bytes
            for _ in 0..<(1 + below(4)) where !b.isEmpty { b[position()] = Self.boundaryBytes[below(Self.boundaryBytes.count)] }
        case 2:  // truncation
            b = Array(b.prefix(below(b.count)))
        case 3, 4:  // an 8-byte header field set to a huge value
            guard b.count >= 8 else { break }
            let at = position(8)
            let v = Self.hugeValues[below(Self.hugeValues.count)] &- UInt64(below(3))
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<8 { b[at + i] = $0[i] } }
        case 5:  // a 4-byte header field
            guard b.count >= 4 else { break }
            let at = position(4)
            let v = UInt32(truncatingIfNeeded: Self.hugeValues[below(Self.hugeValues.count)] &- UInt64(below(3)))
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { b[at + i] = $0[i] } }
        case 6:  // a run of bytes copied over another place
            let from = position(), to = position(), n = min(below(16), b.count - max(from, to))
            if n > 0 { b.replaceSubrange(to..<to + n, with: b[from..<from + n]) }
        default:  // bytes inserted or removed, shifting everything after
            let at = position()
            if below(2) == 0, at < b.count { b.removeSubrange(at..<min(b.count, at + 1 + below(8))) }
            else { b.insert(contentsOf: (0..<(1 + below(8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at) }
        }
        return b
    }

    /// A safetensors file: half the time its JSON header edited as JSON (shapes, offsets,
    /// dtypes, metadata), re-padded, with the data kept; else byte damage.
    public mutating func safetensors(_ base: [UInt8]) -> [UInt8] {
        guard base.count >= 8, below(2) == 0 else { return binary(base, headerEnd: Self.safetensorsHeaderEnd(base)) }
        let end = Self.safetensorsHeaderEnd(base)
        guard let header = try? Array(base[8..<end]).withUnsafeBytes({ try JSON.parse($0) }) else { return binary(base, headerEnd: end) }
        var text = Array(jsonEdit(header).text.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        return withUnsafeBytes(of: UInt64(text.count).littleEndian, Array.init) + text + base[end...]
    }

    static func safetensorsHeaderEnd(_ b: [UInt8]) -> Int {
        guard b.count >= 8 else { return b.count }
        let n = b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        return n <= UInt64(b.count - 8) ? 8 + Int(n) : b.count
    }

    // MARK: JSON

    /// Values that have the wrong type or an absurd size almost anywhere.
    static let palette: [JSON] = [.string("yes"), .string(""), .int(-1), .int(0), .int(1), .int(Int.max), .int(4_294_967_296),
                                  .double(1e300), .double(-0.5), .null, .bool(true), .object([]), .array([]),
                                  .array([.array([.array([])])]), .string(String(repeating: "x", count: 300))]

    /// A structural edit of a JSON document (a member's value replaced, removed, repeated or
    /// renamed, a number nudged), sometimes followed by byte damage to the text. Text that does
    /// not parse gets byte damage only.
    public mutating func json(_ base: [UInt8]) -> [UInt8] {
        guard let doc = try? base.withUnsafeBytes({ try JSON.parse($0) }), below(8) != 0 else {
            return byteEdit(base, headerEnd: base.count)
        }
        var edited = doc
        for _ in 0..<(1 + below(2)) { edited = jsonEdit(edited) }
        let text = Array(edited.text.utf8)
        return below(6) == 0 ? byteEdit(text, headerEnd: text.count) : text
    }

    mutating func jsonEdit(_ doc: JSON) -> JSON {
        let n = Self.containerCount(doc)
        guard n > 0 else { return Self.palette[below(Self.palette.count)] }
        var counter = 0
        return edit(doc, target: below(n), counter: &counter)
    }

    static func containerCount(_ v: JSON) -> Int {
        switch v {
        case .array(let a): 1 + a.reduce(0) { $0 + containerCount($1) }
        case .object(let m): 1 + m.reduce(0) { $0 + containerCount($1.value) }
        default: 0
        }
    }

    /// Rebuilds `v`, editing one child of the `target`-th container (pre-order).
    mutating func edit(_ v: JSON, target: Int, counter: inout Int) -> JSON {
        switch v {
        case .array(var a):
            if counter == target { counter += 1; return .array(editChildren(a.map { ("", $0) }).map(\.1)) }
            counter += 1
            for i in a.indices where counter <= target { a[i] = edit(a[i], target: target, counter: &counter) }
            return .array(a)
        case .object(var m):
            if counter == target { counter += 1; return .object(editChildren(m.map { ($0.key, $0.value) }).map { (key: $0.0, value: $0.1) }) }
            counter += 1
            for i in m.indices where counter <= target { m[i].value = edit(m[i].value, target: target, counter: &counter) }
            return .object(m)
        default:
            return v
        }
    }

    mutating func editChildren(_ items: [(String, JSON)]) -> [(String, JSON)] {
        var c = items
        guard !c.isEmpty else { return [("x", Self.palette[below(Self.palette.count)])] }
        let i = below(c.count)
        switch below(6) {
        case 0, 1: c[i].1 = Self.palette[below(Self.palette.count)]
        case 2: c.remove(at: i)
        case 3: c.insert(c[i], at: below(c.count + 1))
        case 4: c[i].0 += "_"
        default:
            switch c[i].1 {
            case .int(let x): c[i].1 = [JSON.int(x &+ 1), .int(x &- 1), .int(-x), .int(x &* 1_000_000), .double(Double(x) + 0.5)][below(5)]
            case .double(let x): c[i].1 = [JSON.double(-x), .double(x * 1e30), .int(Int(exactly: x.rounded()) ?? 0)][below(3)]
            case .string(let s): c[i].1 = .string(s.isEmpty ? "\u{0}" : String(s.dropLast()))
            case .bool(let b): c[i].1 = .string(b ? "true" : "false")
            default: c[i].1 = Self.palette[below(Self.palette.count)]
            }
        }
        return c
    }

    /// JSON lines: one line edited as JSON, damaged as text, repeated, removed or cut short.
    public mutating func jsonLines(_ base: [UInt8]) -> [UInt8] {
        var lines = base.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        guard !lines.isEmpty else { return byteEdit(base, headerEnd: base.count) }
        let i = below(lines.count)
        switch below(6) {
        case 0, 1, 2: lines[i] = json(lines[i])
        case 3: lines.insert(lines[i], at: below(lines.count + 1))
        case 4: lines.remove(at: i)
        default: lines[i] = Array(lines[i].prefix(below(lines[i].count)))
        }
        return Array(lines.joined(separator: [0x0A]))
    }
}
