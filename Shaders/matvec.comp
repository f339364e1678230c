#version 450
#extension GL_GOOGLE_include_directive : require

// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] for m < M ≤ 8: one workgroup per weight row n.
// Threads stride over the 32-element blocks of K (K = 32768 → 16 blocks per thread at WG 64),
// each accumulating all M columns, then one shared-memory tree reduction per column. A 32-element
// block is a whole q8_0 / q4_1 / q4_0 block or one sub-block of a q4_k / q6_k super-block.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer XB { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

layout(push_constant) uniform P {
    uint K;
    uint N;
    uint M;
    uint yOffset;
    uint ldy;
} p;

#include "formats.glsl"

const uint WG_MAX = 256u;
const uint M_MAX = 8u;

shared float red[M_MAX * WG_MAX];

float dot16(vec4 v[4], uint xo) {
    return dot(v[0], vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u])) +
           dot(v[1], vec4(x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u])) +
           dot(v[2], vec4(x[xo + 8u], x[xo + 9u], x[xo + 10u], x[xo + 11u])) +
           dot(v[3], vec4(x[xo + 12u], x[xo + 13u], x[xo + 14u], x[xo + 15u]));
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    // Uniform for the whole workgroup and before the first barrier.
    if (n >= p.N) return;

    uint K = p.K;
    uint M = min(p.M, M_MAX);
    uint rowE = n * K;
    uint nb = (K + 31u) / 32u;

    float acc[M_MAX];
    for (uint m = 0u; m < M_MAX; ++m) acc[m] = 0.0;

    for (uint b = tid; b < nb; b += WG) {
        uint k0 = b * 32u;
        if (k0 + 32u <= K) {
            vec4 lo[4], hi[4];
            w_run16(rowE + k0, lo);
            w_run16(rowE + k0 + 16u, hi);
            for (uint m = 0u; m < M; ++m) {
                uint xo = m * K + k0;
                acc[m] += dot16(lo, xo) + dot16(hi, xo + 16u);
            }
        } else {
            // K tail (float formats only: quantised K is a multiple of the block, 32 or 256).
            for (uint k = k0; k < K; ++k) {
                float wv = w_elem(rowE + k);
                for (uint m = 0u; m < M; ++m) acc[m] += wv * x[m * K + k];
            }
        }
    }

    for (uint m = 0u; m < M_MAX; ++m) red[m * WG_MAX + tid] = acc[m];
    barrier();

    // Tree reduction that also works when WG is not a power of two.
    for (uint s = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) {
            for (uint m = 0u; m < M; ++m) red[m * WG_MAX + tid] += red[m * WG_MAX + tid + s];
        }
        barrier();
    }

    for (uint m = tid; m < M; m += WG) y[m * p.ldy + p.yOffset + n] = red[m * WG_MAX];
}
