// Weight decoding for the GGUF layouts listed in docs/KERNELS.md (FORMAT 0..4).
//
// The including shader must, before `#include "formats.glsl"`:
//   - declare `layout(constant_id = 1) const uint FORMAT = 0;`
//   - declare the weight buffer as a `uint[]`; the include reads it through the macro WBUF, which
//     defaults to `w` (an anonymous-instance block `buffer WB { uint w[]; };`).
// Element e is the flat index row·K + k inside the bound range. Byte offsets stay below 2^32 because
// the host binds at most maxStorageBufferRange (128 MiB) at a time.
//
// The run decoder is written without loops on purpose: lavapipe counts every loop iteration of an
// invocation against a 65,535 limit, and these helpers sit inside the matmuls' K loops.

#ifndef FORMATS_GLSL
#define FORMATS_GLSL

#ifndef WBUF
#define WBUF w
#endif

const uint FMT_F32 = 0u;
const uint FMT_F16 = 1u;
const uint FMT_BF16 = 2u;
const uint FMT_Q8_0 = 3u;
const uint FMT_Q4_1 = 4u;

// 16-bit little-endian value at a 2-byte-aligned byte offset.
uint w_u16(uint byteOff) {
    return (WBUF[byteOff >> 2] >> ((byteOff & 2u) << 3)) & 0xffffu;
}

float w_f16(uint byteOff) {
    return unpackHalf2x16(w_u16(byteOff)).x;
}

// Decode one element.
float w_elem(uint e) {
    if (FORMAT == FMT_F32) {
        return uintBitsToFloat(WBUF[e]);
    } else if (FORMAT == FMT_F16) {
        return unpackHalf2x16(WBUF[e >> 1] >> ((e & 1u) << 4)).x;
    } else if (FORMAT == FMT_BF16) {
        // (word >> 0) << 16 keeps the low half, (word >> 16) << 16 the high half.
        return uintBitsToFloat((WBUF[e >> 1] >> ((e & 1u) << 4)) << 16);
    } else if (FORMAT == FMT_Q8_0) {
        uint base = (e >> 5) * 34u;
        uint o = base + 2u + (e & 31u);
        int q = bitfieldExtract(int(WBUF[o >> 2]), int((o & 3u) << 3), 8);
        return w_f16(base) * float(q);
    } else { // FMT_Q4_1
        uint b = e >> 5;
        uint j = e & 31u;
        vec2 dm = unpackHalf2x16(WBUF[b * 5u]);
        uint jj = j & 15u;
        uint qw = WBUF[b * 5u + 1u + (jj >> 2)];
        // low nibble for j < 16, high nibble for j >= 16
        uint nib = bitfieldExtract(qw, int(((jj & 3u) << 3) + ((j >> 4) << 2)), 4);
        return dm.x * float(nib) + dm.y;
    }
}

// ---- run decoder helpers -------------------------------------------------------------------

// Two consecutive 16-bit elements starting at element index e (any parity), packed low/high.
uint w_pair16(uint e) {
    uint wi = e >> 1;
    if ((e & 1u) == 0u) return WBUF[wi];
    return (WBUF[wi] >> 16) | (WBUF[wi + 1u] << 16);
}

vec4 w_f32x4(uint e) {
    return uintBitsToFloat(uvec4(WBUF[e], WBUF[e + 1u], WBUF[e + 2u], WBUF[e + 3u]));
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

// Four q4_1 nibbles (shift 0 = low nibbles, 4 = high nibbles) of one qs word.
vec4 w_q4x4(uint u, int sh) {
    return vec4(bitfieldExtract(u, sh, 4), bitfieldExtract(u, 8 + sh, 4),
                bitfieldExtract(u, 16 + sh, 4), bitfieldExtract(u, 24 + sh, 4));
}

// Decode the 16 elements e0 … e0+15 into v[0..3] (v[i] = elements 4i … 4i+3).
// q8_0 / q4_1: e0 must be a multiple of 16 (one half of a 32-block; the scale is read once).
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
        // at a 2-byte boundary when b is even; in that case each word is stitched from two.
        uint base = (e0 >> 5) * 34u;
        float d = w_f16(base);
        uint o = base + 2u + (e0 & 16u);
        uint wi = o >> 2;
        uvec4 u;
        if ((o & 3u) == 0u) {
            u = uvec4(WBUF[wi], WBUF[wi + 1u], WBUF[wi + 2u], WBUF[wi + 3u]);
        } else {
            uint a0 = WBUF[wi], a1 = WBUF[wi + 1u], a2 = WBUF[wi + 2u], a3 = WBUF[wi + 3u];
            uint a4 = WBUF[wi + 4u];
            u = uvec4((a0 >> 16) | (a1 << 16), (a1 >> 16) | (a2 << 16),
                      (a2 >> 16) | (a3 << 16), (a3 >> 16) | (a4 << 16));
        }
        v[0] = d * w_q8x4(u.x);
        v[1] = d * w_q8x4(u.y);
        v[2] = d * w_q8x4(u.z);
        v[3] = d * w_q8x4(u.w);
    } else { // FMT_Q4_1: 20-byte blocks are word aligned: word 0 = (d, m), words 1..4 = qs.
        uint bw = (e0 >> 5) * 5u;
        vec2 dm = unpackHalf2x16(WBUF[bw]);
        int sh = int((e0 & 16u) >> 2); // elements 16..31 are the high nibbles of qs[0..15]
        v[0] = dm.x * w_q4x4(WBUF[bw + 1u], sh) + dm.y;
        v[1] = dm.x * w_q4x4(WBUF[bw + 2u], sh) + dm.y;
        v[2] = dm.x * w_q4x4(WBUF[bw + 3u], sh) + dm.y;
        v[3] = dm.x * w_q4x4(WBUF[bw + 4u], sh) + dm.y;
    }
}

#endif // FORMATS_GLSL
