import Backend
import Foundation

/// A GGUF metadata value. Arrays hold their elements inline (the enum is not `indirect`), so a
/// 150k-entry vocabulary is one allocation plus its strings, not 150k boxes.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// Any integer that fits in an Int (not bools, not floats).
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// Any number (floats, and integers converted).
    public var float: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        case .uint64(let v): Double(v)
        case .int64(let v): Double(v)
        default: int.map(Double.init)
        }
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// An array whose elements are all strings.
    public var strings: [String]? {
        guard case .array(let a) = self else { return nil }
        var out = [String]()
        out.reserveCapacity(a.count)
        for v in a {
            guard case .string(let s) = v else { return nil }
            out.append(s)
        }
        return out
    }

    /// An array whose elements are all numbers.
    public var floats: [Float]? {
        guard case .array(let a) = self else { return nil }
        var out = [Float]()
        out.reserveCapacity(a.count)
        for v in a {
            if case .float32(let f) = v { out.append(f); continue }
            guard let d = v.float else { return nil }
            out.append(Float(d))
        }
        return out
    }

    /// An array whose elements are all integers that fit in an Int.
    public var ints: [Int]? {
        guard case .array(let a) = self else { return nil }
        var out = [Int]()
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = v.int else { return nil }
            out.append(i)
        }
        return out
    }

    /// The GGUF type id of this value (gguf_type).
    var typeID: UInt32 {
        switch self {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    static let typeNames = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
                            "string", "array", "uint64", "int64", "float64"]
    /// Bytes of one value of a fixed-size type id (nil for string/array/unknown).
    static func fixedSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 10, 11, 12: 8
        default: nil
        }
    }
}

/// A GGUF file (versions 2 and 3, little-endian), mapped: metadata parsed, tensors validated and
/// pointing into the mapping.
public final class GGUFFile: Sendable {
    public let url: URL
    public let file: MappedFile
    public let version: Int
    public let alignment: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataOrder: [String]
    /// Tensors in file order.
    public let tensors: [TensorInfo]
    /// Byte offset of the data section (tensor offsets are relative to it).
    public let dataOffset: Int
    private let index: [String: Int]

    static let magic: UInt32 = 0x4655_4747  // "GGUF" read little-endian
    /// Deeper nesting than this is not a real file, and recursion must not blow the stack.
    static let maxArrayDepth = 8

    public init(url: URL) throws {
        self.url = url
        file = try MappedFile(url)
        var r = ByteReader(file.bytes, url: url)

        let magic = try r.u32("magic")
        guard magic == Self.magic else {
            throw r.error("not a GGUF file (magic is 0x\(String(magic, radix: 16)), expected \"GGUF\")", at: 0)
        }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else {
            let hint = version.byteSwapped <= 3 ? " (a big-endian file?)" : version == 1 ? " (GGUF v1 is obsolete; re-convert the model)" : ""
            throw r.error("unsupported GGUF version \(version)\(hint)", at: 4)
        }
        self.version = Int(version)
        // A tensor info is at least 24 bytes (name length, n_dims, type, offset); a key-value
        // pair at least 13 (key length, type, a one-byte value).
        let tensorCount = try r.count("tensor count", minBytesEach: 24)
        let kvCount = try r.count("metadata count", minBytesEach: 13)

        var metadata = [String: GGUFValue](minimumCapacity: kvCount)
        var order = [String]()
        order.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let at = r.offset
            let key = try r.string("metadata key #\(i)")
            let type = try r.u32("type of metadata \(printable(key))")
            let value = try Self.readValue(&r, type: type, what: "metadata \(printable(key))", depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw r.error("duplicate metadata key \(printable(key))", at: at)
            }
            order.append(key)
        }
        self.metadata = metadata
        metadataOrder = order

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 30, v & (v - 1) == 0 else {
                throw FormatError(url, "general.alignment \(a) is not a power of two")
            }
            alignment = v
        }
        self.alignment = alignment

        // Tensor infos first; their data is checked once the data section's start is known.
        struct RawInfo { let name: String; let shape: [Int]; let type: GGMLType; let offset: Int; let size: Int; let at: Int }
        var infos = [RawInfo]()
        infos.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let at = r.offset
            let name = try r.string("name of tensor #\(i)")
            let tn = "tensor \(printable(name))"
            let nDims = try r.u32("dimension count of \(tn)")
            guard nDims <= 4 else { throw r.error("\(tn) has \(nDims) dimensions (GGUF allows at most 4)", at: r.offset - 4) }
            var ne = [Int]()
            for d in 0..<Int(nDims) {
                let v = try r.u64("dimension \(d) of \(tn)")
                guard v <= UInt64(Int.max) else { throw r.error("\(tn) has absurd dimension \(v)", at: r.offset - 8) }
                ne.append(Int(v))
            }
            let typeID = try r.u32("type of \(tn)")
            guard let type = GGMLType.byID[typeID] else {
                throw r.error("\(tn) has unknown GGML type id \(typeID)", at: r.offset - 4)
            }
            let offset = try r.u64("data offset of \(tn)")
            // GGUF lists ne[0] (innermost) first; shapes here are outermost-first.
            let shape = Array(ne.reversed())
            guard let elements = checkedProduct(shape), elements <= Int.max / 8 else {
                throw r.error("\(tn) shape \(shape) overflows", at: at)
            }
            guard let size = type.byteCount(shape: shape) else {
                throw r.error("\(tn): rows of \(shape.last ?? 1) elements are not whole \(type.name) blocks of \(type.blockElements)", at: at)
            }
            guard offset <= UInt64(Int.max) else { throw r.error("\(tn) has absurd data offset \(offset)", at: r.offset - 8) }
            infos.append(RawInfo(name: name, shape: shape, type: type, offset: Int(offset), size: size, at: at))
        }

        // The data section starts at the next multiple of the alignment after the header.
        guard let dataOffset = alignUp(r.offset, alignment) else { throw r.error("header end overflows") }
        self.dataOffset = dataOffset
        let fileSize = file.bytes.count
        var tensors = [TensorInfo]()
        tensors.reserveCapacity(infos.count)
        var index = [String: Int](minimumCapacity: infos.count)
        var ranges = [(name: String, range: Range<Int>)]()
        for info in infos {
            let tn = "tensor \(printable(info.name))"
            guard info.offset % alignment == 0 else {
                throw FormatError(url, "\(tn): data offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            guard let start = checkedAdd(dataOffset, info.offset), let end = checkedAdd(start, info.size), end <= fileSize else {
                throw FormatError(url, "\(tn): \(info.size) bytes of \(info.type.name) \(info.shape) at data offset \(info.offset) run past the end of the \(fileSize)-byte file")
            }
            guard index.updateValue(tensors.count, forKey: info.name) == nil else {
                throw FormatError(url, "duplicate \(tn) at byte \(info.at)")
            }
            let data = UnsafeRawBufferPointer(rebasing: file.bytes[start..<end])
            tensors.append(TensorInfo(name: info.name, type: info.type.tensorType, shape: info.shape, data: data, file: file))
            ranges.append((info.name, start..<end))
        }
        if let (a, b) = firstOverlap(ranges) {
            throw FormatError(url, "tensor \(printable(a)) and tensor \(printable(b)) overlap")
        }
        self.tensors = tensors
        self.index = index
    }

    public func tensor(_ name: String) -> TensorInfo? {
        index[name].map { tensors[$0] }
    }

    public func requireTensor(_ name: String) throws -> TensorInfo {
        guard let t = tensor(name) else { throw FormatError(url, "missing tensor \(name)") }
        return t
    }

    public func requireMetadata(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw FormatError(url, "missing metadata key \(key)") }
        return v
    }

    /// general.architecture ("llama", "qwen2", ...).
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// llama.cpp's converter permutes Q/K rows of llama-architecture models for interleaved RoPE
    /// (pairs 2i, 2i+1); qwen2/qwen3 GGUFs keep the HF rotate-half (NeoX) order.
    public var ropeInterleaved: Bool { architecture == "llama" }

    // MARK: Values

    static func readValue(_ r: inout ByteReader, type: UInt32, what: @autoclosure () -> String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.u8(what()))
        case 1: return .int8(Int8(bitPattern: try r.u8(what())))
        case 2: return .uint16(try r.u16(what()))
        case 3: return .int16(Int16(bitPattern: try r.u16(what())))
        case 4: return .uint32(try r.u32(what()))
        case 5: return .int32(Int32(bitPattern: try r.u32(what())))
        case 6: return .float32(Float(bitPattern: try r.u32(what())))
        case 7:
            let b = try r.u8(what())
            guard b <= 1 else { throw r.error("\(what()) is a bool with value \(b)", at: r.offset - 1) }
            return .bool(b == 1)
        case 8: return .string(try r.string(what()))
        case 9: return try readArray(&r, what: what(), depth: depth)
        case 10: return .uint64(try r.u64(what()))
        case 11: return .int64(Int64(bitPattern: try r.u64(what())))
        case 12: return .float64(Double(bitPattern: try r.u64(what())))
        default: throw r.error("\(what()) has unknown value type \(type)", at: r.offset - 4)
        }
    }

    /// Arrays: element type, count, elements. Fixed-size elements are bounds-checked once for the
    /// whole array and read in a tight loop; strings are sliced straight out of the mapping.
    static func readArray(_ r: inout ByteReader, what: @autoclosure () -> String, depth: Int) throws -> GGUFValue {
        let typeAt = r.offset
        let type = try r.u32("element type of \(what())")
        if let size = GGUFValue.fixedSize(type) {
            let n = try r.count("element count of \(what())", minBytesEach: size)
            let body = try r.take(n * size, what())
            var out = [GGUFValue]()
            out.reserveCapacity(n)
            switch type {
            case 0: for i in 0..<n { out.append(.uint8(body[i])) }
            case 1: for i in 0..<n { out.append(.int8(Int8(bitPattern: body[i]))) }
            case 2: for i in 0..<n { out.append(.uint16(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))) }
            case 3: for i in 0..<n { out.append(.int16(Int16(littleEndian: body.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))) }
            case 4: for i in 0..<n { out.append(.uint32(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))) }
            case 5: for i in 0..<n { out.append(.int32(Int32(littleEndian: body.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))) }
            case 6: for i in 0..<n { out.append(.float32(Float(bitPattern: UInt32(littleEndian: body.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))) }
            case 7:
                for i in 0..<n {
                    guard body[i] <= 1 else { throw r.error("\(what())[\(i)] is a bool with value \(body[i])", at: r.offset - n + i) }
                    out.append(.bool(body[i] == 1))
                }
            case 10: for i in 0..<n { out.append(.uint64(UInt64(littleEndian: body.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            case 11: for i in 0..<n { out.append(.int64(Int64(littleEndian: body.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))) }
            default: for i in 0..<n { out.append(.float64(Double(bitPattern: UInt64(littleEndian: body.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))) }
            }
            return .array(out)
        }
        switch type {
        case 8:
            let n = try r.count("element count of \(what())", minBytesEach: 8)
            var out = [GGUFValue]()
            out.reserveCapacity(n)
            // Inline string reads: this loop carries whole vocabularies and merge lists.
            let bytes = r.bytes
            var at = r.offset
            for i in 0..<n {
                guard bytes.count - at >= 8 else {
                    r.offset = at
                    throw r.error("truncated file: length of \(what())[\(i)] needs 8 bytes")
                }
                let len = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                guard len <= UInt64(bytes.count - at - 8) else {
                    throw r.error("length \(len) of \(what())[\(i)] runs past the end of the \(bytes.count)-byte file", at: at)
                }
                at += 8
                out.append(.string(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<at + Int(len)]), as: UTF8.self)))
                at += Int(len)
            }
            r.offset = at
            return .array(out)
        case 9:
            guard depth < maxArrayDepth else { throw r.error("\(what()) nests arrays deeper than \(maxArrayDepth)", at: typeAt) }
            let n = try r.count("element count of \(what())", minBytesEach: 12)
            var out = [GGUFValue]()
            out.reserveCapacity(n)
            for i in 0..<n { out.append(try readArray(&r, what: "\(what())[\(i)]", depth: depth + 1)) }
            return .array(out)
        default:
            throw r.error("\(what()) is an array of unknown value type \(type)", at: typeAt)
        }
    }
}
