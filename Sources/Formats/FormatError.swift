import Foundation

/// Everything wrong with a model file is reported as one of these: a single line
/// "<path>: <what is wrong> [at byte N / tensor NAME]", so a user can act on it without a debugger.
public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String

    public init(_ description: String) {
        // One line, always: names read from a damaged file may contain newlines.
        self.description = description.replacingOccurrences(of: "\r", with: "\\r")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// "<path>: <what>".
    public init(_ url: URL, _ what: String) {
        self.init("\(url.path): \(what)")
    }
}

/// A name or string from the file, made safe to print: control characters escaped, long ones cut.
func printable(_ s: String, limit: Int = 96) -> String {
    var out = ""
    for scalar in s.unicodeScalars.prefix(limit) {
        if scalar.value < 0x20 || scalar.value == 0x7F {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    if s.unicodeScalars.count > limit { out += "…" }
    return "\"\(out)\""
}

// MARK: - Overflow-checked arithmetic (sizes come from untrusted files)

/// a × b, or nil on overflow or a negative operand.
@inline(__always)
func checkedMul(_ a: Int, _ b: Int) -> Int? {
    guard a >= 0, b >= 0 else { return nil }
    let (r, o) = a.multipliedReportingOverflow(by: b)
    return o ? nil : r
}

@inline(__always)
func checkedAdd(_ a: Int, _ b: Int) -> Int? {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? nil : r
}

/// The product of `dims`, or nil on overflow / a negative dimension.
func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard let m = checkedMul(n, d) else { return nil }
        n = m
    }
    return n
}

/// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
func alignUp(_ value: Int, _ alignment: Int) -> Int? {
    guard let v = checkedAdd(value, alignment - 1) else { return nil }
    return v & ~(alignment - 1)
}

/// Checks that tensors' byte ranges (relative to one base) do not overlap; returns the first clash.
func firstOverlap(_ ranges: [(name: String, range: Range<Int>)]) -> (String, String)? {
    let sorted = ranges.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
    for (a, b) in zip(sorted, sorted.dropFirst()) where b.range.lowerBound < a.range.upperBound {
        return (a.name, b.name)
    }
    return nil
}

// MARK: - Bounds-checked little-endian reader over a mapped file

/// Reads little-endian values from untrusted bytes. Every read checks bounds first and throws a
/// FormatError naming the file and the byte offset.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let url: URL
    var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, url: URL, offset: Int = 0) {
        self.bytes = bytes
        self.url = url
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func error(_ what: String, at byte: Int? = nil) -> FormatError {
        FormatError(url, "\(what) at byte \(byte ?? offset)")
    }

    /// Throws unless `count` more bytes exist, describing what was being read.
    @inline(__always)
    func need(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw error("truncated file: \(what()) needs \(count) bytes, \(remaining) left (file is \(bytes.count) bytes)")
        }
    }

    @inline(__always)
    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 { try load(UInt8.self, what()) }
    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 { try load(UInt16.self, what()) }
    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, what()) }
    mutating func i32(_ what: @autoclosure () -> String) throws -> Int32 { try load(Int32.self, what()) }

    /// A u64 count or length that must fit in an Int and, at `minBytesEach` bytes per item, in
    /// the rest of the file — so an absurd count (2^60) fails here instead of in an allocation.
    mutating func count(_ what: @autoclosure () -> String, minBytesEach: Int) throws -> Int {
        let at = offset
        let raw = try u64(what())
        guard raw <= UInt64(Int.max), let need = checkedMul(Int(raw), minBytesEach), need <= remaining else {
            throw error("\(what()) \(raw) is impossible: only \(remaining) bytes remain in the \(bytes.count)-byte file", at: at)
        }
        return Int(raw)
    }

    /// The next `count` bytes, without copying.
    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(count, what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
        offset += count
        return slice
    }

    /// A u64-length-prefixed UTF-8 string (GGUF). Invalid UTF-8 is repaired with U+FFFD rather
    /// than rejected: llama.cpp treats strings as opaque bytes, and so do real files.
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let at = offset
        let raw = try u64("length of \(what())")
        guard raw <= UInt64(remaining) else {
            throw error("length \(raw) of \(what()) runs past the end of the \(bytes.count)-byte file", at: at)
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(raw)])
        offset += Int(raw)
        return String(decoding: body, as: UTF8.self)
    }
}
