/// Host-side encoding and decoding of the weight formats: the CPU reference of the shaders'
/// decoders, and how tests and `roast verify` make weights from random floats.
public enum Quantization {
    public static func halfBits(_ x: Float) -> UInt16 { Float16(x).bitPattern }
    public static func halfValue(_ b: UInt16) -> Float { Float(Float16(bitPattern: b)) }
    /// bf16 by round-to-nearest-even of the f32 bits (NaN kept quiet).
    public static func bf16Bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(u >> 16) | 0x40 }
        return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }
    public static func bf16Value(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Encodes floats in `type` (the GGUF reference quantisers for q8_0 and q4_1).
    public static func encode(_ values: [Float], as type: ElementType) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(type.byteCount(values.count))
        func put16(_ v: UInt16) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8)) }
        switch type {
        case .f32, .u32:
            for v in values { let b = v.bitPattern; for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((b >> UInt32(s)) & 0xFF)) } }
        case .f16: values.forEach { put16(halfBits($0)) }
        case .bf16: values.forEach { put16(bf16Bits($0)) }
        case .q8_0:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = values[b..<b + 32]
                let amax = block.map { abs($0) }.max()!
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                put16(halfBits(d))
                for v in block { out.append(UInt8(bitPattern: Int8((v * id).rounded()))) }
            }
        case .q4_1:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = Array(values[b..<b + 32])
                let mn = block.min()!, mx = block.max()!
                let d = (mx - mn) / 15
                let id: Float = d != 0 ? 1 / d : 0
                put16(halfBits(d))
                put16(halfBits(mn))
                for j in 0..<16 {
                    let lo = UInt8(min(15, Int((block[j] - mn) * id + 0.5)))
                    let hi = UInt8(min(15, Int((block[j + 16] - mn) * id + 0.5)))
                    out.append(lo | (hi << 4))
                }
            }
        }
        return out
    }

    /// Decodes `count` elements starting at element `first` of `bytes` (whole blocks for the
    /// quantised formats), exactly as the shaders do.
    public static func decode(_ bytes: UnsafeRawBufferPointer, as type: ElementType, first: Int = 0, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        decode(bytes, as: type, first: first, into: &out[...])
        return out
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, as type: ElementType, first: Int, into out: inout ArraySlice<Float>) {
        let count = out.count
        let base = out.startIndex
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        switch type {
        case .f32:
            for i in 0..<count { out[base + i] = bytes.loadUnaligned(fromByteOffset: (first + i) * 4, as: Float.self) }
        case .u32:
            for i in 0..<count { out[base + i] = Float(bytes.loadUnaligned(fromByteOffset: (first + i) * 4, as: UInt32.self)) }
        case .f16:
            for i in 0..<count { out[base + i] = halfValue(u16((first + i) * 2)) }
        case .bf16:
            for i in 0..<count { out[base + i] = bf16Value(u16((first + i) * 2)) }
        case .q8_0:
            for i in 0..<count {
                let e = first + i, blk = e / 32 * 34
                out[base + i] = halfValue(u16(blk)) * Float(Int8(bitPattern: bytes[blk + 2 + e % 32]))
            }
        case .q4_1:
            for i in 0..<count {
                let e = first + i, blk = e / 32 * 20, j = e % 32
                let q = bytes[blk + 4 + (j & 15)]
                let nib = j < 16 ? q & 15 : q >> 4
                out[base + i] = halfValue(u16(blk)) * Float(nib) + halfValue(u16(blk + 2))
            }
        }
    }
}
