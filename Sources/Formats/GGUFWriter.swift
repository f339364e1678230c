import Backend
import Foundation

/// Builds a GGUF v3 file (little-endian): metadata in insertion order, tensors in insertion order,
/// each tensor's data aligned. Used for llama.cpp control vectors and for tests.
///
///     var w = GGUFWriter()
///     w.set("general.architecture", .string("controlvector"))
///     try w.addTensor("direction.1", floats: v, shape: [576])
///     try w.write(to: url)
public struct GGUFWriter {
    public let alignment: Int
    private(set) var entries: [(key: String, value: GGUFValue)] = []
    private(set) var tensors: [(name: String, type: GGMLType, shape: [Int], data: [UInt8])] = []

    /// `alignment` must be a power of two; other than 32 it is recorded as general.alignment.
    public init(alignment: Int = 32) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        self.alignment = alignment
    }

    /// Sets a metadata value; a key set twice keeps its first position and the last value.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = entries.firstIndex(where: { $0.key == key }) {
            entries[i].value = value
        } else {
            entries.append((key, value))
        }
    }

    /// Adds a tensor from raw bytes in the type's layout; shape outermost-first.
    public mutating func addTensor(_ name: String, type: TensorType, shape: [Int], bytes: [UInt8]) throws {
        guard let g = GGMLType.forTensorType(type) else { throw FormatError("GGUFWriter: tensor \(name): type \(type) has no GGUF type id") }
        guard shape.count <= 4 else { throw FormatError("GGUFWriter: tensor \(name): \(shape.count) dimensions (GGUF allows at most 4)") }
        guard let size = g.byteCount(shape: shape) else {
            throw FormatError("GGUFWriter: tensor \(name): shape \(shape) is not whole \(g.name) blocks")
        }
        guard size == bytes.count else {
            throw FormatError("GGUFWriter: tensor \(name): shape \(shape) of \(g.name) is \(size) bytes, given \(bytes.count)")
        }
        guard !tensors.contains(where: { $0.name == name }) else { throw FormatError("GGUFWriter: duplicate tensor \(name)") }
        tensors.append((name, g, shape, bytes))
    }

    /// Adds an f32 tensor.
    public mutating func addTensor(_ name: String, floats: [Float], shape: [Int]) throws {
        var bytes = [UInt8]()
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try addTensor(name, type: .element(.f32), shape: shape, bytes: bytes)
    }

    /// The whole file.
    public func serialize() throws -> Data {
        var meta = entries
        if let i = meta.firstIndex(where: { $0.key == "general.alignment" }) {
            guard meta[i].value.int == alignment else {
                throw FormatError("GGUFWriter: general.alignment \(meta[i].value) disagrees with the writer's alignment \(alignment)")
            }
        } else if alignment != 32 {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }

        var out = Data()
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) { put(UInt64(s.utf8.count)); out.append(contentsOf: Array(s.utf8)) }
        func putValue(_ v: GGUFValue, _ what: String) throws {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float64(let x): put(x.bitPattern)
            case .array(let a):
                // GGUF arrays are homogeneous; an empty one is written as an array of uint8.
                let type = a.first?.typeID ?? 0
                guard a.allSatisfy({ $0.typeID == type }) else {
                    throw FormatError("GGUFWriter: \(what) mixes element types; GGUF arrays are homogeneous")
                }
                put(type)
                put(UInt64(a.count))
                for (i, e) in a.enumerated() { try putValue(e, "\(what)[\(i)]") }
            }
        }

        put(GGUFFile.magic)
        put(UInt32(3))
        put(UInt64(tensors.count))
        put(UInt64(meta.count))
        for (key, value) in meta {
            putString(key)
            put(value.typeID)
            try putValue(value, key)
        }
        var offset = 0
        var offsets = [Int]()
        for t in tensors {
            putString(t.name)
            put(UInt32(t.shape.count))
            for d in t.shape.reversed() { put(UInt64(d)) }  // GGUF lists the innermost dimension first
            put(t.type.id)
            put(UInt64(offset))
            offsets.append(offset)
            offset = alignUp(offset + t.data.count, alignment)!
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: alignUp(out.count, alignment)! - out.count))
        let dataStart = out.count
        for (t, o) in zip(tensors, offsets) {
            out.append(contentsOf: [UInt8](repeating: 0, count: dataStart + o - out.count))
            out.append(contentsOf: t.data)
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: alignUp(out.count, alignment)! - out.count))
        return out
    }

    /// Writes the file atomically (a temporary file renamed into place), so a reader never sees
    /// half a file.
    public func write(to url: URL) throws {
        try OutputFile.write(serialize(), to: url)
    }
}
