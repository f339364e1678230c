#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] for m < M ≤ 8: one SUBGROUP per weight row n, so a
// workgroup of WG invocations covers gl_NumSubgroups rows and needs no barrier or shared memory
// (on lavapipe a barrier splits the workgroup into a loop over its subgroups; removing them made
// decode several times faster). Lanes stride over the 32-element blocks of K (a whole q8_0 / q4_1 /
// q4_0 block or one sub-block of a q4_k / q6_k super-block), each accumulating all M columns, then
// subgroupAdd reduces. K = 32768 on a subgroup of 8 is 128 blocks per lane.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
// Columns, fixed per pipeline so the accumulators are registers, not an indexed array.
layout(constant_id = 2) const uint MCOLS = 1;

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

const uint M_MAX = 8u;

float dot16(vec4 v[4], uint xo) {
    return dot(v[0], vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u])) +
           dot(v[1], vec4(x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u])) +
           dot(v[2], vec4(x[xo + 8u], x[xo + 9u], x[xo + 10u], x[xo + 11u])) +
           dot(v[3], vec4(x[xo + 12u], x[xo + 13u], x[xo + 14u], x[xo + 15u]));
}

void main() {
    uint n = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * gl_NumSubgroups + gl_SubgroupID;
    // Uniform within the subgroup, and no barrier follows: a subgroup past the end just leaves.
    if (n >= p.N) return;

    uint K = p.K;
    const uint M = MCOLS;
    uint rowE = n * K;
    uint nb = (K + 31u) / 32u;
    uint lane = gl_SubgroupInvocationID;

    float acc[M_MAX];
    for (uint m = 0u; m < M_MAX; ++m) acc[m] = 0.0;

    for (uint b = lane; b < nb; b += gl_SubgroupSize) {
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

    for (uint m = 0u; m < M; ++m) {
        float total = subgroupAdd(acc[m]);
        if (subgroupElect()) y[m * p.ldy + p.yOffset + n] = total;
    }
}
