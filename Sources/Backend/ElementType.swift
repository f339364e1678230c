/// What a tensor's elements are. Weights may be any of the formats in `weightFormats` (GGUF block
/// layouts); activations are f32; ids, positions and indices are u32.
public enum ElementType: String, CaseIterable, Codable, Sendable {
    case f32, f16, bf16, q8_0, q4_1, q4_0, q4_k, q6_k, u32

    /// The weight formats the matmul and embedding kernels decode.
    public static let weightFormats: [ElementType] = [.f32, .f16, .bf16, .q8_0, .q4_1, .q4_0, .q4_k, .q6_k]

    /// Elements per block: 32 for q8_0 / q4_1 / q4_0, 256 for the K-quant super-blocks, 1 otherwise.
    /// A quantised row width must be a multiple of it.
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16, .u32: 1
        case .q8_0, .q4_1, .q4_0: 32
        case .q4_k, .q6_k: 256
        }
    }
    public var blockBytes: Int {
        switch self {
        case .f32, .u32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_1: 20
        case .q4_0: 18
        case .q4_k: 144
        case .q6_k: 210
        }
    }
    public var isQuantized: Bool { blockElements > 1 }

    /// The FORMAT specialization constant of the shaders.
    var shaderFormat: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .bf16: 2
        case .q8_0: 3
        case .q4_1: 4
        case .q4_0: 5
        case .q4_k: 6
        case .q6_k: 7
        case .u32: preconditionFailure("u32 is not a weight format")
        }
    }

    /// Bytes of `count` elements; quantised counts must be whole blocks.
    public func byteCount(_ count: Int) -> Int {
        precondition(count % blockElements == 0, "\(count) \(rawValue) elements are not whole blocks of \(blockElements)")
        return count / blockElements * blockBytes
    }
}
