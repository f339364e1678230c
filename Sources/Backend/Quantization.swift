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

    /// ggml's `nearest_int`: round half to even.
    static func nearestInt(_ x: Float) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// q4_k's 6-bit (scale, min) of sub-block `j` < 8 given `byte(i)` = scales[i] (ggml's
    /// `get_scale_min_k4`): sub-blocks 0–3 keep theirs in the low 6 bits of bytes j and j + 4;
    /// sub-blocks 4–7 keep the low 4 bits in the nibbles of byte j + 4 and the high 2 bits in the
    /// top bits of bytes j − 4 (scale) and j (min).
    static func q4kScaleMin(_ j: Int, _ byte: (Int) -> UInt8) -> (UInt8, UInt8) {
        if j < 4 { return (byte(j) & 63, byte(j + 4) & 63) }
        return ((byte(j + 4) & 0xF) | ((byte(j - 4) >> 6) << 4), (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4))
    }

    /// Encodes floats in `type`: ggml's reference quantisers for q8_0, q4_1 and q4_0; for q4_k
    /// and q6_k the structure of `quantize_row_q4_K_ref` / `quantize_row_q6_K_ref` with plain
    /// min/max (q4_k) and max-abs (q6_k) sub-block scales instead of the iterative search.
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
        case .q4_0:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = Array(values[b..<b + 32])
                var amax: Float = 0, mx: Float = 0
                for v in block where abs(v) > amax { amax = abs(v); mx = v }
                let d = mx / -8
                let id: Float = d != 0 ? 1 / d : 0
                put16(halfBits(d))
                for j in 0..<16 {
                    let lo = UInt8(min(15, Int(block[j] * id + 8.5)))
                    let hi = UInt8(min(15, Int(block[j + 16] * id + 8.5)))
                    out.append(lo | (hi << 4))
                }
            }
        case .q4_k:
            for b in stride(from: 0, to: values.count, by: 256) {
                let x = Array(values[b..<b + 256])
                // Per 32-element sub-block: x ≈ scale·q − min with q in 0…15 and min ≥ 0.
                var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
                for j in 0..<8 {
                    let sub = x[32 * j..<32 * j + 32]
                    let lo = min(0, sub.min()!), hi = sub.max()!
                    scales[j] = (hi - lo) / 15
                    mins[j] = -lo
                }
                let maxScale = scales.max()!, maxMin = mins.max()!
                let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
                let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
                var packed = [UInt8](repeating: 0, count: 12)
                for j in 0..<8 {
                    let ls = UInt8(min(63, nearestInt(invScale * scales[j])))
                    let lm = UInt8(min(63, nearestInt(invMin * mins[j])))
                    if j < 4 {
                        packed[j] = ls
                        packed[j + 4] = lm
                    } else {
                        packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                        packed[j - 4] |= (ls >> 4) << 6
                        packed[j] |= (lm >> 4) << 6
                    }
                }
                let dBits = halfBits(maxScale / 63), mBits = halfBits(maxMin / 63)
                put16(dBits)
                put16(mBits)
                out += packed
                var q = [UInt8](repeating: 0, count: 256)
                for j in 0..<8 {
                    let (sc, m) = q4kScaleMin(j) { packed[$0] }
                    let d = halfValue(dBits) * Float(sc)
                    if d == 0 { continue }
                    let dm = halfValue(mBits) * Float(m)
                    for i in 0..<32 { q[32 * j + i] = UInt8(max(0, min(15, nearestInt((x[32 * j + i] + dm) / d)))) }
                }
                for p in 0..<4 {
                    for l in 0..<32 { out.append(q[64 * p + l] | (q[64 * p + 32 + l] << 4)) }
                }
            }
        case .q6_k:
            for b in stride(from: 0, to: values.count, by: 256) {
                let x = Array(values[b..<b + 256])
                // Per 16-element group: the signed value of largest magnitude maps to −32.
                var scales = [Float](repeating: 0, count: 16)
                var maxScale: Float = 0, maxAbsScale: Float = 0
                for g in 0..<16 {
                    var amax: Float = 0, mx: Float = 0
                    for v in x[16 * g..<16 * g + 16] where abs(v) > amax { amax = abs(v); mx = v }
                    scales[g] = amax < 1e-15 ? 0 : mx / -32
                    if abs(scales[g]) > maxAbsScale { maxAbsScale = abs(scales[g]); maxScale = scales[g] }
                }
                var q = [UInt8](repeating: 32, count: 256)
                var sc = [Int8](repeating: 0, count: 16)
                var dBits: UInt16 = 0
                if maxAbsScale >= 1e-15 {
                    let iscale = -128 / maxScale
                    dBits = halfBits(1 / iscale)
                    for g in 0..<16 { sc[g] = Int8(min(127, nearestInt(iscale * scales[g]))) }
                    for g in 0..<16 {
                        let d = halfValue(dBits) * Float(sc[g])
                        if d == 0 { continue }
                        for i in 0..<16 { q[16 * g + i] = UInt8(max(-32, min(31, nearestInt(x[16 * g + i] / d))) + 32) }
                    }
                } else {
                    q = [UInt8](repeating: 0, count: 256)
                }
                var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
                for h in 0..<2 {
                    for l in 0..<32 {
                        let q1 = q[128 * h + l], q2 = q[128 * h + l + 32], q3 = q[128 * h + l + 64], q4 = q[128 * h + l + 96]
                        ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                        ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                        qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
                    }
                }
                out += ql
                out += qh
                out += sc.map { UInt8(bitPattern: $0) }
                put16(dBits)
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
        case .q4_0:
            for i in 0..<count {
                let e = first + i, blk = e / 32 * 18, j = e % 32
                let q = bytes[blk + 2 + (j & 15)]
                let nib = j < 16 ? q & 15 : q >> 4
                out[base + i] = halfValue(u16(blk)) * (Float(nib) - 8)
            }
        case .q4_k:
            for i in 0..<count {
                let e = first + i, blk = e / 256 * 144, s = e % 256 / 32
                let (sc, m) = q4kScaleMin(s) { bytes[blk + 4 + $0] }
                let q = bytes[blk + 16 + 32 * (s / 2) + e % 32]
                let nib = s % 2 == 0 ? q & 15 : q >> 4
                let d1 = halfValue(u16(blk)) * Float(sc), m1 = halfValue(u16(blk + 2)) * Float(m)
                out[base + i] = d1 * Float(nib) - m1
            }
        case .q6_k:
            for i in 0..<count {
                let e = first + i, blk = e / 256 * 210, r = e % 256
                let h = r / 128, q = r % 128 / 32, l = r % 32
                let lq = bytes[blk + 64 * h + 32 * (q & 1) + l]
                let nib = q < 2 ? lq & 15 : lq >> 4
                let hi = (bytes[blk + 128 + 32 * h + l] >> UInt8(2 * q)) & 3
                let sc = Int8(bitPattern: bytes[blk + 192 + 8 * h + l / 16 + 2 * q])
                out[base + i] = halfValue(u16(blk + 208)) * Float(sc) * Float(Int(nib | (hi << 4)) - 32)
            }
        }
    }
}
