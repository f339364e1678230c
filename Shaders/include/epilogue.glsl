// What the matmul kernels do with each product before they store it (MatmulEpilogue), shared by
// matvec.comp and matmul.comp so the fused formulas are written once, as add.comp and
// silu_mul.comp write them.
//
// The including shader must, before `#include "epilogue.glsl"`:
//   - declare `layout(constant_id = 4) const uint EPILOGUE = 0;`
//   - declare the output `y[]` (binding 2) and push constants `p` with ldy, steer, mBase (the
//     first column of this dispatch in the whole step: the vector kernel's column groups bind Y
//     from their first column, R, S and G whole) and captureGate.
// Bindings 3 … 6 hold dummies where the epilogue does not read them.

#ifndef EPILOGUE_GLSL
#define EPILOGUE_GLSL

const uint EPI_STORE = 0u;
const uint EPI_RESIDUAL = 1u; // y = r + product (+ s·v), y may alias r
const uint EPI_SILU_GATE = 2u; // rows 2j, 2j+1 = gate, up: y[j] = (silu(g) + s·v) · u

layout(std430, set = 0, binding = 3) readonly buffer RB { float epi_r[]; };
layout(std430, set = 0, binding = 4) readonly buffer SB { float epi_s[]; };
layout(std430, set = 0, binding = 5) readonly buffer VB { float epi_v[]; };
layout(std430, set = 0, binding = 6) writeonly buffer GB { float epi_g[]; };

// The steering term of the fused ops. steer 1: additive, a + s·v (ROAST, CAA). steer 2:
// multiplicative, a + s·(v ⊙ a) (SADI's mask).
float epi_steer(float a, uint m, uint i) {
    if (p.steer == 1u) return a + epi_s[p.mBase + m] * epi_v[i];
    if (p.steer == 2u) return a + epi_s[p.mBase + m] * (epi_v[i] * a);
    return a;
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

#endif
