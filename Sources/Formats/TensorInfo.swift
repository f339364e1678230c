import Backend
import Foundation

/// What a tensor's elements are: a type the Backend decodes, or something the file may hold but
/// the engine cannot use (named, so the error that stops a load can say what it found).
public enum TensorType: Sendable, Equatable, CustomStringConvertible {
    case element(ElementType)
    case unsupported(String)

    public var elementType: ElementType? {
        if case .element(let e) = self { return e }
        return nil
    }

    public var description: String {
        switch self {
        case .element(let e): e.rawValue
        case .unsupported(let name): name
        }
    }
}

/// A tensor inside a mapped file: shape outermost-first ([rows, cols] for a matrix), raw bytes in
/// the file's layout (GGUF block layouts for quantised types, little-endian otherwise).
///
/// `data` points into the mapping of `file`, which this value keeps alive: the bytes stay valid
/// for as long as any copy of this TensorInfo exists.
public struct TensorInfo: @unchecked Sendable {  // the bytes are read-only and kept mapped by `file`
    public let name: String
    public let type: TensorType
    public let shape: [Int]
    public let data: UnsafeRawBufferPointer
    /// The mapping `data` lives in (nil for memory the caller owns).
    public let file: MappedFile?

    public init(name: String, type: TensorType, shape: [Int], data: UnsafeRawBufferPointer, file: MappedFile? = nil) {
        self.name = name
        self.type = type
        self.shape = shape
        self.data = data
        self.file = file
    }

    public var elementCount: Int { shape.reduce(1, &*) }
    public var byteCount: Int { data.count }
    /// Rows of a matrix viewed as [rows, cols]: the product of all but the innermost dimension.
    public var rows: Int { shape.dropLast().reduce(1, &*) }
    /// The innermost dimension (1 for a scalar).
    public var columns: Int { shape.last ?? 1 }

    /// The elements as floats (f32 / f16 / bf16 and any quantised type the Backend decodes).
    /// For small tensors (norms, biases, tests); large weights go to the Backend undecoded.
    public func floats() throws -> [Float] {
        let source = file.map { "\($0.url.path): " } ?? ""
        guard let e = type.elementType, e != .u32 else {
            throw FormatError("\(source)tensor \(name): cannot decode type \(type) to floats")
        }
        let count = elementCount
        guard count % e.blockElements == 0, count / e.blockElements * e.blockBytes == data.count else {
            throw FormatError("\(source)tensor \(name): \(count) \(e.rawValue) elements do not fill its \(data.count) bytes")
        }
        return Quantization.decode(data, as: e, count: count)
    }
}

/// The tensor types of GGML (GGUF's type ids): block size and bytes per block for every type
/// llama.cpp has shipped, so sizes of tensors we cannot decode are still checked.
struct GGMLType {
    let id: UInt32
    let name: String         // lowercase, as ElementType spells raw values ("q4_k")
    let blockElements: Int
    let blockBytes: Int

    static let all: [GGMLType] = [
        .init(id: 0, name: "f32", blockElements: 1, blockBytes: 4),
        .init(id: 1, name: "f16", blockElements: 1, blockBytes: 2),
        .init(id: 2, name: "q4_0", blockElements: 32, blockBytes: 18),
        .init(id: 3, name: "q4_1", blockElements: 32, blockBytes: 20),
        .init(id: 6, name: "q5_0", blockElements: 32, blockBytes: 22),
        .init(id: 7, name: "q5_1", blockElements: 32, blockBytes: 24),
        .init(id: 8, name: "q8_0", blockElements: 32, blockBytes: 34),
        .init(id: 9, name: "q8_1", blockElements: 32, blockBytes: 36),
        .init(id: 10, name: "q2_k", blockElements: 256, blockBytes: 84),
        .init(id: 11, name: "q3_k", blockElements: 256, blockBytes: 110),
        .init(id: 12, name: "q4_k", blockElements: 256, blockBytes: 144),
        .init(id: 13, name: "q5_k", blockElements: 256, blockBytes: 176),
        .init(id: 14, name: "q6_k", blockElements: 256, blockBytes: 210),
        .init(id: 15, name: "q8_k", blockElements: 256, blockBytes: 292),
        .init(id: 16, name: "iq2_xxs", blockElements: 256, blockBytes: 66),
        .init(id: 17, name: "iq2_xs", blockElements: 256, blockBytes: 74),
        .init(id: 18, name: "iq3_xxs", blockElements: 256, blockBytes: 98),
        .init(id: 19, name: "iq1_s", blockElements: 256, blockBytes: 50),
        .init(id: 20, name: "iq4_nl", blockElements: 32, blockBytes: 18),
        .init(id: 21, name: "iq3_s", blockElements: 256, blockBytes: 110),
        .init(id: 22, name: "iq2_s", blockElements: 256, blockBytes: 82),
        .init(id: 23, name: "iq4_xs", blockElements: 256, blockBytes: 136),
        .init(id: 24, name: "i8", blockElements: 1, blockBytes: 1),
        .init(id: 25, name: "i16", blockElements: 1, blockBytes: 2),
        .init(id: 26, name: "i32", blockElements: 1, blockBytes: 4),
        .init(id: 27, name: "i64", blockElements: 1, blockBytes: 8),
        .init(id: 28, name: "f64", blockElements: 1, blockBytes: 8),
        .init(id: 29, name: "iq1_m", blockElements: 256, blockBytes: 56),
        .init(id: 30, name: "bf16", blockElements: 1, blockBytes: 2),
        .init(id: 34, name: "tq1_0", blockElements: 256, blockBytes: 54),
        .init(id: 35, name: "tq2_0", blockElements: 256, blockBytes: 66),
        .init(id: 39, name: "mxfp4", blockElements: 32, blockBytes: 17),
    ]

    static let byID: [UInt32: GGMLType] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
    static let byName: [String: GGMLType] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The Backend's element type for this GGML type, if the Backend has one. Looked up by raw
    /// value, so a type the Backend adds later (q5_k, ...) is picked up without a change here.
    var tensorType: TensorType {
        if let e = ElementType(rawValue: name) { return .element(e) }
        return .unsupported(name)
    }

    static func forTensorType(_ t: TensorType) -> GGMLType? {
        switch t {
        case .element(let e): byName[e.rawValue]   // u32 has no GGML type: nil
        case .unsupported(let name): byName[name]
        }
    }

    /// Bytes of a tensor with `shape` (outermost first), or nil when the innermost dimension is
    /// not whole blocks or the size overflows.
    func byteCount(shape: [Int]) -> Int? {
        let inner = shape.last ?? 1
        guard inner >= 0, inner % blockElements == 0 else { return nil }
        guard let rowBytes = checkedMul(inner / blockElements, blockBytes),
              let rows = checkedProduct(Array(shape.dropLast())) else { return nil }
        return checkedMul(rowBytes, rows)
    }
}
