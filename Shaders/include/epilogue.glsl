// What the matmul kernels do with each product before they store it (MatmulEpilogue), shared by
// matvec.comp and matmul.comp so the fused formulas are written once, as add.comp and
// silu_mul.comp write them.
//
// The including shader must, before `#include "epilogue.glsl"`:
//   - declare `layout(constant_id = 4) const uint EPILOGUE = 0;`
//   - declare the output `y[]` (binding 2) and push constants `p` with ldy, steer, mBase (the
//     first column of this dispatch in the whole step: the vector kernel's column groups bind Y
//     from their first column, the other bindings whole), captureGate, kvWidth, headDim and
//     attnFlags.
// Bindings 3 … 8 hold dummies where the epilogue does not read them.
//
// Split-K: a tiled kernel built with SPLIT = 1 (constant_id 7, declared by the including shader)
// stores the raw partial sum of its K slice with split_store instead, [slice][M][ldy] with ldy the
// whole weight's row count; matmul_reduce.comp adds the slices and applies the epilogue.

#ifndef EPILOGUE_GLSL
#define EPILOGUE_GLSL

#include "contract.glsl"

layout(std430, set = 0, binding = 3) readonly buffer RB { float epi_r[]; };
layout(std430, set = 0, binding = 4) readonly buffer SB { float epi_s[]; };
layout(std430, set = 0, binding = 5) readonly buffer VB { float epi_v[]; };
layout(std430, set = 0, binding = 6) writeonly buffer GB { float epi_g[]; };
// Per column: the KV-cache row (EPI_ATTN_INPUT) or the steering table's row (STEER_TABLE).
layout(std430, set = 0, binding = 7) readonly buffer KRB { uint epi_rows[]; };
layout(std430, set = 0, binding = 8) writeonly buffer VOB { float epi_values[]; };

// The steering term of the fused ops at element i of column m (ldy wide): STEER_ADD a + s·v
// (ROAST, CAA), STEER_MUL a + s·(v ⊙ a) (SADI's mask); with STEER_TABLE, v is the column's row
// of the table.
float epi_steer(float a, uint m, uint i) {
    uint mode = p.steer & 3u;
    if (mode == STEER_NONE) return a;
    uint vr = (p.steer & STEER_TABLE) != 0u ? min(epi_rows[p.mBase + m], uint(epi_v.length()) / p.ldy - 1u) : 0u;
    float v = epi_v[vr * p.ldy + i];
    return mode == STEER_ADD ? a + epi_s[p.mBase + m] * v : a + epi_s[p.mBase + m] * (v * a);
}

// Output n (already offset by yOffset) of column m: the partial sum of K slice z = workgroup z.
void split_store(uint m, uint n, float v) {
    y[(gl_WorkGroupID.z * p.M + m) * p.ldy + n] = v;
}

// Output n (already offset by yOffset) of column m, for EPI_STORE and EPI_RESIDUAL.
void epi_store(uint m, uint n, float v) {
    if (EPILOGUE == EPI_RESIDUAL) {
        v = epi_steer(epi_r[(p.mBase + m) * p.ldy + n] + v, m, n);
    }
    y[m * p.ldy + n] = v;
}

// Rows n (even, offset by yOffset) and n + 1 of column m: a gate and its up (EPI_SILU_GATE).
// ldy is the output width, N / 2.
void epi_store_gate(uint m, uint n, float g, float u) {
    uint j = n >> 1;
    // exp(-g) overflowing to +inf for very negative g gives g / inf = -0, the right limit.
    y[m * p.ldy + j] = epi_steer(g / (1.0 + exp(-g)), m, j) * u;
    if (p.captureGate != 0u) epi_g[(p.mBase + m) * p.ldy + j] = g;
}

// Rows n (even, offset by yOffset) and n + 1 of column m for EPI_ATTN_INPUT: ldy is the q width,
// R the bias, S the step's RoPE table (cos, sin per column and pair), G the keys, binding 7 the
// KV-cache row of each column, binding 8 the values. q and k rows are whole heads, so n % headDim
// is the position in the head, and (n % headDim) / 2 its pair.
void epi_store_attention(uint m, uint n, float a, float b) {
    uint qw = p.ldy, kvw = p.kvWidth;
    if ((p.attnFlags & ATTN_BIAS) != 0u) {
        a += epi_r[n];
        b += epi_r[n + 1u];
    }
    if ((p.attnFlags & ATTN_ROPE) != 0u && n < qw + kvw) {
        uint t = ((p.mBase + m) * (p.headDim >> 1) + ((n % p.headDim) >> 1)) * 2u;
        float c = epi_s[t], s = epi_s[t + 1u];
        float a0 = a;
        a = a0 * c - b * s;
        b = a0 * s + b * c;
    }
    if (n < qw) {
        y[m * qw + n] = a;
        y[m * qw + n + 1u] = b;
    } else {
        uint row = (p.attnFlags & ATTN_ROWS) != 0u ? epi_rows[p.mBase + m] : p.mBase + m;
        if (n < qw + kvw) {
            epi_g[row * kvw + n - qw] = a;
            epi_g[row * kvw + n - qw + 1u] = b;
        } else {
            epi_values[row * kvw + n - qw - kvw] = a;
            epi_values[row * kvw + n - qw - kvw + 1u] = b;
        }
    }
}

#endif
