import Backend
import Foundation

extension TensorInfo {
    /// The first value that is ±inf or NaN: an element index for f32 / f16 / bf16, a block index
    /// for quantised types (whose f16 scales are what can be non-finite). Reads the bit patterns
    /// straight from the mapping; nil when every value is finite or the type has no floats.
    public func firstNonFinite() -> (index: Int, unit: String)? {
        guard case .element(let e) = type else { return nil }
        func halfs(stride: Int, offsets: [Int]) -> Int? {
            guard stride > 0 else { return nil }
            for b in 0..<data.count / stride {
                for o in offsets where UInt16(littleEndian: data.loadUnaligned(fromByteOffset: b * stride + o, as: UInt16.self)) & 0x7C00 == 0x7C00 {
                    return b
                }
            }
            return nil
        }
        switch e {
        case .f32:
            for i in 0..<data.count / 4 where UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) & 0x7F80_0000 == 0x7F80_0000 {
                return (i, "element")
            }
            return nil
        case .bf16:
            for i in 0..<data.count / 2 where UInt16(littleEndian: data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) & 0x7F80 == 0x7F80 {
                return (i, "element")
            }
            return nil
        case .f16: return halfs(stride: 2, offsets: [0]).map { ($0, "element") }
        case .q8_0, .q4_0: return halfs(stride: e.blockBytes, offsets: [0]).map { ($0, "block") }
        case .q4_1, .q4_k: return halfs(stride: e.blockBytes, offsets: [0, 2]).map { ($0, "block") }
        case .q6_k: return halfs(stride: e.blockBytes, offsets: [208]).map { ($0, "block") }
        case .u32: return nil
        }
    }
}
