#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require

// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] for m < MCOLS ≤ 8: one INVOCATION per weight row n.
// Each invocation decodes its row's 32-element blocks (a whole q8_0 / q4_1 / q4_0 block or one
// sub-block of a q4_k / q6_k super-block) into registers once and uses them for all MCOLS columns.
// X is the same for every row, so the subgroup loads each 32-element piece of X once, one vec4
// per lane, and hands it around with subgroupBroadcast.
//
// Why this shape, on lavapipe (which runs a subgroup as one SIMD vector, see docs/KERNELS.md):
//   - both sides of every `if` run, masked: the hot loop holds no rare path; the K tail (K not a
//     multiple of 32, float formats only) has a loop of its own after it;
//   - a storage-buffer load whose address is not provably uniform becomes a loop over the lanes,
//     so X is loaded once per subgroup and the weights come through a texel buffer (gathers);
//   - everything is written out with constant indices (the COLUMN macro) so all state stays in
//     registers; MCOLS is a specialization constant, so unused columns fold away.
// Needs K a multiple of 4 (X is read as vec4) and a subgroup of at least 4 lanes (the host
// checks both). No barrier, no shared memory; an invocation loops K/32 + 31 times at most.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 2) const uint MCOLS = 1;
// The device's subgroup size, as a constant so that the 4-lane path folds away elsewhere.
layout(constant_id = 3) const uint SUBGROUP = 8;

// The weights as a texel buffer of words.
layout(set = 0, binding = 0) uniform usamplerBuffer wt;
#define WORD(i) texelFetch(wt, int(i)).x
// X as a texel buffer of vec4: a quad in one fetch.
layout(set = 0, binding = 1) uniform samplerBuffer xq;
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

layout(push_constant) uniform P {
    uint K;
    uint N;
    uint M;
    uint yOffset;
    uint ldy;
} p;

#include "formats.glsl"

// Elements 4q … 4q+3 of the 32 elements of X's column m starting at k0.
vec4 x_quad(uint m, uint k0, uint q) { return texelFetch(xq, int((m * p.K + k0) / 4u + q)); }
float x_elem(uint m, uint k) {
    uint e = m * p.K + k;
    return texelFetch(xq, int(e >> 2))[e & 3u];
}

// One column: its 32 X values (quad i in lane i, or lane i - 4 of xb when 4 wide) against the
// decoded block w0 … w7.
#define COLUMN(m, acc) if (MCOLS > m) { \
    vec4 xa = x_quad(m, k0, q0); \
    vec4 xb = sg < 8u ? x_quad(m, k0, q1) : xa; \
    acc += dot(w0, subgroupBroadcast(xa, 0u)) + dot(w1, subgroupBroadcast(xa, 1u)) + \
           dot(w2, subgroupBroadcast(xa, 2u)) + dot(w3, subgroupBroadcast(xa, 3u)); \
    if (sg >= 8u) { \
        acc += dot(w4, subgroupBroadcast(xa, 4u)) + dot(w5, subgroupBroadcast(xa, 5u)) + \
               dot(w6, subgroupBroadcast(xa, 6u)) + dot(w7, subgroupBroadcast(xa, 7u)); \
    } else { \
        acc += dot(w4, subgroupBroadcast(xb, 0u)) + dot(w5, subgroupBroadcast(xb, 1u)) + \
               dot(w6, subgroupBroadcast(xb, 2u)) + dot(w7, subgroupBroadcast(xb, 3u)); \
    } }

#define TAIL(m, acc) if (MCOLS > m) acc += wk * x_elem(m, k);
#define STORE(m, acc) if (MCOLS > m) y[m * p.ldy + p.yOffset + n] = acc;

void main() {
    uint n = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    // Every lane stays to the end (the broadcasts need the whole subgroup); a lane past the
    // last row decodes row N-1 and writes nothing.
    bool live = n < p.N;
    uint rowE = min(n, p.N - 1u) * p.K;
    uint nb = p.K / 32u;
    uint lane = gl_SubgroupInvocationID;
    const uint sg = SUBGROUP;
    // The lanes that load X: lane l holds quad l & 7; with 4 lanes, also quad l + 4 in xb.
    uint q0 = lane & 7u;
    uint q1 = (lane & 3u) + 4u;

    float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0;
    for (uint b = 0u; b < nb; ++b) {
        uint k0 = b * 32u;
        vec4 w0, w1, w2, w3, w4, w5, w6, w7;
        w_run32(rowE + k0, w0, w1, w2, w3, w4, w5, w6, w7);
        COLUMN(0u, a0) COLUMN(1u, a1) COLUMN(2u, a2) COLUMN(3u, a3)
        COLUMN(4u, a4) COLUMN(5u, a5) COLUMN(6u, a6) COLUMN(7u, a7)
    }
    // K tail, element by element (float formats only: quantised K is a multiple of the block).
    for (uint k = nb * 32u; k < p.K; ++k) {
        float wk = w_elem(rowE + k);
        TAIL(0u, a0) TAIL(1u, a1) TAIL(2u, a2) TAIL(3u, a3)
        TAIL(4u, a4) TAIL(5u, a5) TAIL(6u, a6) TAIL(7u, a7)
    }

    if (!live) return;
    STORE(0u, a0) STORE(1u, a1) STORE(2u, a2) STORE(3u, a3)
    STORE(4u, a4) STORE(5u, a5) STORE(6u, a6) STORE(7u, a7)
}
