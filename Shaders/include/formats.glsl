// Weight decoding for the GGUF layouts listed in docs/KERNELS.md (FORMAT 0..7), bit-exact with
// ggml's dequantize_row_* and with Quantization.decode (the CPU twin).
//
// The including shader must, before `#include "formats.glsl"`:
//   - declare `layout(constant_id = 1) const uint FORMAT = 0;`
//   - declare the weight words: the include reads word i as WORD(i), which defaults to `w[i]` (an
//     anonymous-instance block `buffer WB { uint w[]; };`); a shader that binds the weights as a
//     texel buffer defines WORD(i) as texelFetch(…, int(i)).x first.
//   - optionally define WORD4(i) as word quad i (words 4i … 4i+3) of the same weights, 16-byte
//     aligned (an aliasing `uvec4` block): f32 runs and quads and q4_k's quants are then read as
//     one 16-byte load each, so the shader promises that every f32 element index it decodes from
//     is a multiple of 4 (q4_k's quant words are always 16-byte aligned: 144-byte super-blocks).
// Element e is the flat index row·K + k inside the bound range. Byte offsets stay below 2^32 because
// the host binds at most maxStorageBufferRange (128 MiB) at a time.
//
// The run decoder is written without loops on purpose: lavapipe counts every loop iteration of an
// invocation against a 65,535 limit, and these helpers sit inside the matmuls' K loops.

#ifndef FORMATS_GLSL
#define FORMATS_GLSL

#ifndef WORD
#define WORD(i) w[i]
#endif

#include "contract.glsl"

// Block alignment: q8_0 (34 bytes), q4_0 (18) and q6_k (210) blocks are only 2-byte aligned, so
// their fields are read as bytes / halfwords / stitched words; q4_1 (20) and q4_k (144) blocks
// are word aligned.

// One byte at any byte offset.
uint w_u8(uint byteOff) {
    return (WORD(byteOff >> 2) >> ((byteOff & 3u) << 3)) & 0xffu;
}

// 16-bit little-endian value at a 2-byte-aligned byte offset.
uint w_u16(uint byteOff) {
    return (WORD(byteOff >> 2) >> ((byteOff & 2u) << 3)) & 0xffffu;
}

float w_f16(uint byteOff) {
    return unpackHalf2x16(w_u16(byteOff)).x;
}

// 16 bytes at a 2-byte-aligned byte offset as 4 little-endian words (stitched from 5 words when
// the offset is 2 mod 4; never reads past the word holding the 16th byte).
uvec4 w_bytes16(uint o) {
    uint wi = o >> 2;
    if ((o & 3u) == 0u) return uvec4(WORD(wi), WORD(wi + 1u), WORD(wi + 2u), WORD(wi + 3u));
    uint a0 = WORD(wi), a1 = WORD(wi + 1u), a2 = WORD(wi + 2u), a3 = WORD(wi + 3u), a4 = WORD(wi + 4u);
    return uvec4((a0 >> 16) | (a1 << 16), (a1 >> 16) | (a2 << 16),
                 (a2 >> 16) | (a3 << 16), (a3 >> 16) | (a4 << 16));
}

// q4_k super-block (144 bytes = 36 words from word bw): word 0 = (d, dmin) as f16, bytes 4..15 =
// scales[12], bytes 16..143 = qs[128]. Returns (scale, min) of sub-block s < 8 as ggml's
// get_scale_min_k4: s < 4: (scales[s] & 63, scales[s+4] & 63); s >= 4: the low 4 bits are the
// low / high nibble of scales[s+4], the high 2 bits the top bits of scales[s-4] / scales[s].
uvec2 q4k_scale_min(uint bw, uint s) {
    uint sb = (bw << 2) + 4u;
    if (s < 4u) {
        return uvec2(w_u8(sb + s) & 63u, w_u8(sb + s + 4u) & 63u);
    }
    uint lo = w_u8(sb + s + 4u);
    return uvec2((lo & 15u) | ((w_u8(sb + s - 4u) >> 6) << 4), (lo >> 4) | ((w_u8(sb + s) >> 6) << 4));
}

// q6_k super-block (210 bytes from byte `base`): ql[128] at 0, qh[64] at 128, int8 scales[16] at
// 192, f16 d at 208. Element r < 256: h = r / 128, q = (r % 128) / 32, l = r % 32;
// quant = (ql[64h + 32(q & 1) + l] >> 4(q / 2) & 15) | ((qh[32h + l] >> 2q & 3) << 4);
// scale = scales[8h + l / 16 + 2q]; value = d · scale · (quant − 32).
int q6k_scale(uint base, uint r) {
    uint h = r >> 7, q = (r >> 5) & 3u, l = r & 31u;
    return bitfieldExtract(int(w_u8(base + 192u + 8u * h + (l >> 4) + 2u * q)), 0, 8);
}

// Decode one element.
float w_elem(uint e) {
    if (FORMAT == FMT_F32) {
        return uintBitsToFloat(WORD(e));
    } else if (FORMAT == FMT_F16) {
        return unpackHalf2x16(WORD(e >> 1) >> ((e & 1u) << 4)).x;
    } else if (FORMAT == FMT_BF16) {
        // (word >> 0) << 16 keeps the low half, (word >> 16) << 16 the high half.
        return uintBitsToFloat((WORD(e >> 1) >> ((e & 1u) << 4)) << 16);
    } else if (FORMAT == FMT_Q8_0) {
        uint base = (e >> 5) * 34u;
        uint o = base + 2u + (e & 31u);
        int q = bitfieldExtract(int(WORD(o >> 2)), int((o & 3u) << 3), 8);
        return w_f16(base) * float(q);
    } else if (FORMAT == FMT_Q4_1) {
        uint b = e >> 5;
        uint j = e & 31u;
        vec2 dm = unpackHalf2x16(WORD(b * 5u));
        uint jj = j & 15u;
        uint qw = WORD(b * 5u + 1u + (jj >> 2));
        // low nibble for j < 16, high nibble for j >= 16
        uint nib = bitfieldExtract(qw, int(((jj & 3u) << 3) + ((j >> 4) << 2)), 4);
        return dm.x * float(nib) + dm.y;
    } else if (FORMAT == FMT_Q4_0) {
        uint base = (e >> 5) * 18u;
        uint j = e & 31u;
        // low nibble of qs[j] for j < 16, high nibble of qs[j - 16] for j >= 16
        uint nib = (w_u8(base + 2u + (j & 15u)) >> ((j >> 4) << 2)) & 15u;
        return w_f16(base) * (float(nib) - 8.0);
    } else if (FORMAT == FMT_Q4_K) {
        uint bw = (e >> 8) * 36u;
        uint s = (e >> 5) & 7u; // sub-block of 32
        vec2 dm = unpackHalf2x16(WORD(bw));
        uvec2 scm = q4k_scale_min(bw, s);
        // sub-blocks 2p and 2p+1 share qs[32p … 32p+31]: low nibbles, then high nibbles
        uint j = e & 31u;
        uint qw = WORD(bw + 4u + 8u * (s >> 1) + (j >> 2));
        uint nib = bitfieldExtract(qw, int(((j & 3u) << 3) + ((s & 1u) << 2)), 4);
        return (dm.x * float(scm.x)) * float(nib) - dm.y * float(scm.y);
    } else { // FMT_Q6_K
        uint base = (e >> 8) * 210u;
        uint r = e & 255u;
        uint h = r >> 7, q = (r >> 5) & 3u, l = r & 31u;
        uint nib = (w_u8(base + 64u * h + 32u * (q & 1u) + l) >> ((q >> 1) << 2)) & 15u;
        uint hi = (w_u8(base + 128u + 32u * h + l) >> (2u * q)) & 3u;
        float d = w_f16(base + 208u);
        return d * float(q6k_scale(base, r)) * float(int(nib | (hi << 4)) - 32);
    }
}

// ---- run decoder helpers -------------------------------------------------------------------

// Two consecutive 16-bit elements starting at element index e (any parity), packed low/high.
uint w_pair16(uint e) {
    uint wi = e >> 1;
    if ((e & 1u) == 0u) return WORD(wi);
    return (WORD(wi) >> 16) | (WORD(wi + 1u) << 16);
}

vec4 w_f32x4(uint e) {
#ifdef WORD4
    return uintBitsToFloat(WORD4(e >> 2));
#else
    return uintBitsToFloat(uvec4(WORD(e), WORD(e + 1u), WORD(e + 2u), WORD(e + 3u)));
#endif
}

vec4 w_f16x4(uint e) {
    return vec4(unpackHalf2x16(w_pair16(e)), unpackHalf2x16(w_pair16(e + 2u)));
}

vec4 w_bf16x4(uint e) {
    uint a = w_pair16(e);
    uint b = w_pair16(e + 2u);
    return uintBitsToFloat(uvec4(a << 16, a & 0xffff0000u, b << 16, b & 0xffff0000u));
}

// Four q8_0 quants packed in one word, sign-extended.
vec4 w_q8x4(uint u) {
    return vec4(bitfieldExtract(int(u), 0, 8), bitfieldExtract(int(u), 8, 8),
                bitfieldExtract(int(u), 16, 8), bitfieldExtract(int(u), 24, 8));
}

// Four 4-bit quants (shift 0 = low nibbles, 4 = high nibbles) of one qs word.
vec4 w_q4x4(uint u, int sh) {
    return vec4(bitfieldExtract(u, sh, 4), bitfieldExtract(u, 8 + sh, 4),
                bitfieldExtract(u, 16 + sh, 4), bitfieldExtract(u, 24 + sh, 4));
}

// Four q6_k quants minus 32: the nibbles at shift nsh (0 / 4) of an ql word joined with the
// 2 bits at shift hsh (0, 2, 4, 6) of the matching qh word.
vec4 w_q6x4(uint lw, uint hw, uint nsh, uint hsh) {
    uvec4 sh = uvec4(0u, 8u, 16u, 24u);
    uvec4 lo = (uvec4(lw) >> (sh + nsh)) & 15u;
    uvec4 hi = (uvec4(hw) >> (sh + hsh)) & 3u;
    return vec4(lo | (hi << 4)) - 32.0;
}

// Decode the 16 elements e0 … e0+15 into v[0..3] (v[i] = elements 4i … 4i+3).
// Quantised formats: e0 must be a multiple of 16 (half of a 32-element block or sub-block; q6_k's
// 16-element scale groups line up with it), so the scales are read once.
// f32 / f16 / bf16: any e0; the caller guarantees all 16 elements are in range.
void w_run16(uint e0, out vec4 v[4]) {
    if (FORMAT == FMT_F32) {
        v[0] = w_f32x4(e0);
        v[1] = w_f32x4(e0 + 4u);
        v[2] = w_f32x4(e0 + 8u);
        v[3] = w_f32x4(e0 + 12u);
    } else if (FORMAT == FMT_F16) {
        v[0] = w_f16x4(e0);
        v[1] = w_f16x4(e0 + 4u);
        v[2] = w_f16x4(e0 + 8u);
        v[3] = w_f16x4(e0 + 12u);
    } else if (FORMAT == FMT_BF16) {
        v[0] = w_bf16x4(e0);
        v[1] = w_bf16x4(e0 + 4u);
        v[2] = w_bf16x4(e0 + 8u);
        v[3] = w_bf16x4(e0 + 12u);
    } else if (FORMAT == FMT_Q8_0) {
        // Block b starts at byte 34b, so its quants start at a 4-byte boundary when b is odd and
        // at a 2-byte boundary when b is even (w_bytes16 stitches).
        uint base = (e0 >> 5) * 34u;
        float d = w_f16(base);
        uvec4 u = w_bytes16(base + 2u + (e0 & 16u));
        v[0] = d * w_q8x4(u.x);
        v[1] = d * w_q8x4(u.y);
        v[2] = d * w_q8x4(u.z);
        v[3] = d * w_q8x4(u.w);
    } else if (FORMAT == FMT_Q4_1) { // 20-byte blocks are word aligned: word 0 = (d, m), words 1..4 = qs.
        uint bw = (e0 >> 5) * 5u;
        vec2 dm = unpackHalf2x16(WORD(bw));
        int sh = int((e0 & 16u) >> 2); // elements 16..31 are the high nibbles of qs[0..15]
        v[0] = dm.x * w_q4x4(WORD(bw + 1u), sh) + dm.y;
        v[1] = dm.x * w_q4x4(WORD(bw + 2u), sh) + dm.y;
        v[2] = dm.x * w_q4x4(WORD(bw + 3u), sh) + dm.y;
        v[3] = dm.x * w_q4x4(WORD(bw + 4u), sh) + dm.y;
    } else if (FORMAT == FMT_Q4_0) { // 18-byte blocks: f16 d, qs[16]
        uint base = (e0 >> 5) * 18u;
        float d = w_f16(base);
        uvec4 u = w_bytes16(base + 2u);
        int sh = int((e0 & 16u) >> 2); // elements 16..31 are the high nibbles of qs[0..15]
        v[0] = d * (w_q4x4(u.x, sh) - 8.0);
        v[1] = d * (w_q4x4(u.y, sh) - 8.0);
        v[2] = d * (w_q4x4(u.z, sh) - 8.0);
        v[3] = d * (w_q4x4(u.w, sh) - 8.0);
    } else if (FORMAT == FMT_Q4_K) { // 144-byte super-blocks; the 32-element sub-block s of e0
        uint bw = (e0 >> 8) * 36u;
        uint s = (e0 >> 5) & 7u;
        vec2 dm = unpackHalf2x16(WORD(bw));
        uvec2 scm = q4k_scale_min(bw, s);
        float d1 = dm.x * float(scm.x);
        float m1 = dm.y * float(scm.y);
        uint qw = bw + 4u + 8u * (s >> 1) + ((e0 & 16u) >> 2); // a multiple of 4
        int sh = int((s & 1u) << 2);
#ifdef WORD4
        uvec4 q = WORD4(qw >> 2);
#else
        uvec4 q = uvec4(WORD(qw), WORD(qw + 1u), WORD(qw + 2u), WORD(qw + 3u));
#endif
        v[0] = d1 * w_q4x4(q.x, sh) - m1;
        v[1] = d1 * w_q4x4(q.y, sh) - m1;
        v[2] = d1 * w_q4x4(q.z, sh) - m1;
        v[3] = d1 * w_q4x4(q.w, sh) - m1;
    } else { // FMT_Q6_K: 210-byte super-blocks; the 16 elements share one scale
        uint base = (e0 >> 8) * 210u;
        uint r = e0 & 255u;
        uint h = r >> 7, q = (r >> 5) & 3u, l = r & 31u;
        float ds = w_f16(base + 208u) * float(q6k_scale(base, r));
        // base is 2-byte aligned and the field offsets are multiples of 16
        uvec4 lq = w_bytes16(base + 64u * h + 32u * (q & 1u) + l);
        uvec4 hq = w_bytes16(base + 128u + 32u * h + l);
        uint nsh = (q >> 1) << 2, hsh = 2u * q;
        v[0] = ds * w_q6x4(lq.x, hq.x, nsh, hsh);
        v[1] = ds * w_q6x4(lq.y, hq.y, nsh, hsh);
        v[2] = ds * w_q6x4(lq.z, hq.z, nsh, hsh);
        v[3] = ds * w_q6x4(lq.w, hq.w, nsh, hsh);
    }
}

#ifdef WORD4
// An f16 or bf16 run of 16 from e0 a multiple of 8 (32 bytes, 16-byte aligned): two 16-byte loads.
void w_run16_halves(uint e0, out vec4 v[4]) {
    uvec4 a = WORD4(e0 >> 3), b = WORD4((e0 >> 3) + 1u);
    if (FORMAT == FMT_F16) {
        v[0] = vec4(unpackHalf2x16(a.x), unpackHalf2x16(a.y));
        v[1] = vec4(unpackHalf2x16(a.z), unpackHalf2x16(a.w));
        v[2] = vec4(unpackHalf2x16(b.x), unpackHalf2x16(b.y));
        v[3] = vec4(unpackHalf2x16(b.z), unpackHalf2x16(b.w));
    } else { // bf16: the low half of a word is the earlier element
        v[0] = uintBitsToFloat(uvec4(a.x << 16, a.x & 0xffff0000u, a.y << 16, a.y & 0xffff0000u));
        v[1] = uintBitsToFloat(uvec4(a.z << 16, a.z & 0xffff0000u, a.w << 16, a.w & 0xffff0000u));
        v[2] = uintBitsToFloat(uvec4(b.x << 16, b.x & 0xffff0000u, b.y << 16, b.y & 0xffff0000u));
        v[3] = uintBitsToFloat(uvec4(b.z << 16, b.z & 0xffff0000u, b.w << 16, b.w & 0xffff0000u));
    }
}
#endif

// Decode the 32 elements e0 … e0+31 into v0 … v7 (v_i = elements 4i … 4i+3); e0 a multiple of 32
// for quantised formats. Written without arrays or loops: an array indexed by a loop variable
// lives in memory on lavapipe. q4_1 reads its five words once (elements 16..31 are the high
// nibbles of the same bytes as 0..15); the others decode two runs of 16.
void w_run32(uint e0, out vec4 v0, out vec4 v1, out vec4 v2, out vec4 v3,
             out vec4 v4, out vec4 v5, out vec4 v6, out vec4 v7) {
    if (FORMAT == FMT_Q4_1) {
        uint bw = (e0 >> 5) * 5u;
        vec2 dm = unpackHalf2x16(WORD(bw));
        uint q0 = WORD(bw + 1u), q1 = WORD(bw + 2u), q2 = WORD(bw + 3u), q3 = WORD(bw + 4u);
        v0 = dm.x * w_q4x4(q0, 0) + dm.y; v1 = dm.x * w_q4x4(q1, 0) + dm.y;
        v2 = dm.x * w_q4x4(q2, 0) + dm.y; v3 = dm.x * w_q4x4(q3, 0) + dm.y;
        v4 = dm.x * w_q4x4(q0, 4) + dm.y; v5 = dm.x * w_q4x4(q1, 4) + dm.y;
        v6 = dm.x * w_q4x4(q2, 4) + dm.y; v7 = dm.x * w_q4x4(q3, 4) + dm.y;
    } else {
        vec4 lo[4], hi[4];
        w_run16(e0, lo);
        w_run16(e0 + 16u, hi);
        v0 = lo[0]; v1 = lo[1]; v2 = lo[2]; v3 = lo[3];
        v4 = hi[0]; v5 = hi[1]; v6 = hi[2]; v7 = hi[3];
    }
}

#endif // FORMATS_GLSL
