/// What a tensor's elements are. Weights may be any of the first five (GGUF block layouts);
/// activations are f32; ids, positions and indices are u32.
public enum ElementType: String, CaseIterable, Codable, Sendable {
    case f32, f16, bf16, q8_0, q4_1, u32

    /// The weight formats the matmul and embedding kernels decode.
    public static let weightFormats: [ElementType] = [.f32, .f16, .bf16, .q8_0, .q4_1]

    /// Elements per block (32 for the quantised formats).
    public var blockElements: Int { isQuantized ? 32 : 1 }
    public var blockBytes: Int {
        switch self {
        case .f32, .u32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_1: 20
        }
    }
    public var isQuantized: Bool { self == .q8_0 || self == .q4_1 }

    /// The FORMAT specialization constant of the shaders.
    var shaderFormat: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .bf16: 2
        case .q8_0: 3
        case .q4_1: 4
        case .u32: preconditionFailure("u32 is not a weight format")
        }
    }

    /// Bytes of `count` elements; quantised counts must be whole blocks.
    public func byteCount(_ count: Int) -> Int {
        precondition(count % blockElements == 0, "\(count) \(rawValue) elements are not whole blocks of \(blockElements)")
        return count / blockElements * blockBytes
    }
}
