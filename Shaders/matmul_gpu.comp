#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

// The GPU family's tiled kernel: Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] through the EPILOGUE
// (include/epilogue.glsl), any M: prefill, batched rollouts, teacher forcing, scoring.
//
// A workgroup of 256 invocations computes a 64 (n) × 64 (m) output tile and steps K by 32 (one
// q8_0 / q4_x block, one sub-block of a K-quant super-block). Each step, invocations 0–127 decode
// one 16-element run of a weight row each, once, into shared memory, and invocations 128–255
// stage the X tile beside it; then every invocation accumulates a 4 (n) × 4 (m) block in registers
// from 8 shared reads per k. Invocation (tn = t % 16, tm = t / 16) owns rows n0 + 32i + 2tn + b
// (i, b < 2: two adjacent pairs, as the gate/up and RoPE epilogues need) and columns
// m0 + tm + 16j (j < 4). Both tiles are k-major with the rows contiguous, so a warp's reads at one
// k are 16 consecutive pairs (Ws) and two broadcast values (Xs): no bank conflicts. Each step's
// run is loaded into registers during the step before (stage_load).
// No subgroup operations: the same code runs on any device (lavapipe verifies it).
// With SPLIT = 1 workgroup z covers only K slice z (p.kSlice elements) and stores raw partial sums
// (split_store, include/epilogue.glsl) for matmul_reduce.comp: the host splits K when the grid has
// too few tiles to fill the device.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 4) const uint EPILOGUE = 0;
layout(constant_id = 7) const uint SPLIT = 0;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer XB { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

#include "matmul_push.glsl"

#include "formats.glsl"
#include "epilogue.glsl"

const uint TN = 64u, TM = 64u, TK = 32u;
// Row stride of the k-major tiles: 64 values + 4, so the 16-element stores of one run spread
// over the banks.
const uint LD = 68u;
shared vec2 Ws[TK * LD / 2u]; // Ws[k][n] as pairs (n even)
shared float Xs[TK * LD];     // Xs[k][m]

// One K step's staging run, into registers: 16 weights of row n0 + sr (invocations 0–127) or 16
// X values of column m0 + sr (128–255) from k0 + sk, zeros past N, M or the K range.
void stage_load(uint k0, uint kEnd, uint sr, uint sk, bool loadsW, bool inRange, uint n0, uint m0, out vec4 v[4]) {
    uint K = p.K, k = k0 + sk;
    if (!inRange || k >= kEnd) {
        v[0] = v[1] = v[2] = v[3] = vec4(0.0);
    } else if (loadsW) {
        if (k + 16u <= kEnd) {
            w_run16((n0 + sr) * K + k, v);
        } else { // K tail, float formats only (quantised K is a multiple of 32 or 256)
            for (uint i = 0u; i < 16u; ++i) v[i >> 2][i & 3u] = k + i < kEnd ? w_elem((n0 + sr) * K + k + i) : 0.0;
        }
    } else {
        uint xo = (m0 + sr) * K + k;
        [[unroll]] for (uint i = 0u; i < 16u; ++i) v[i >> 2][i & 3u] = k + i < kEnd ? x[xo + i] : 0.0;
    }
}

void main() {
    uint t = gl_LocalInvocationID.x;
    uint n0 = gl_WorkGroupID.x * TN;
    uint m0 = gl_WorkGroupID.y * TM;
    uint K = p.K;
    // This workgroup's K range: all of it, or its split-K slice (kSlice a multiple of TK).
    uint kBegin = SPLIT != 0u ? gl_WorkGroupID.z * p.kSlice : 0u;
    uint kEnd = SPLIT != 0u ? min(K, kBegin + p.kSlice) : K;
    uint tn = t & 15u, tm = t >> 4;

    // Staging: invocation s = t & 127 handles row (or column) s / 2 and the k-half 16 · (s % 2).
    uint s = t & 127u;
    uint sr = s >> 1, sk = (s & 1u) * 16u;
    bool loadsW = t < 128u;
    bool inRange = loadsW ? n0 + sr < p.N : m0 + sr < p.M;

    vec4 acc[4]; // acc[j] = rows (n0 + 2tn, +1, n0 + 32 + 2tn, +1) of column m0 + tm + 16j
    [[unroll]] for (uint j = 0u; j < 4u; ++j) acc[j] = vec4(0.0);

    // The next K step's run is loaded into registers while this one's tiles are multiplied, so
    // the global loads overlap the arithmetic (few workgroups per multiprocessor hide little).
    vec4 v[4];
    stage_load(kBegin, kEnd, sr, sk, loadsW, inRange, n0, m0, v);
    for (uint k0 = kBegin; k0 < kEnd; k0 += TK) {
        // Scatter the 16 values of row / column sr into k-major order.
        if (loadsW) {
            uint pair = ((sr & 1u) == 0u ? 0u : 1u);
            [[unroll]] for (uint i = 0u; i < 16u; ++i) {
                uint o = ((sk + i) * LD + (sr & ~1u)) >> 1;
                // Rows 2q and 2q + 1 are the two halves of one shared vec2.
                if (pair == 0u) Ws[o].x = v[i >> 2][i & 3u];
                else Ws[o].y = v[i >> 2][i & 3u];
            }
        } else {
            [[unroll]] for (uint i = 0u; i < 16u; ++i) Xs[(sk + i) * LD + sr] = v[i >> 2][i & 3u];
        }
        barrier();
        if (k0 + TK < kEnd) stage_load(k0 + TK, kEnd, sr, sk, loadsW, inRange, n0, m0, v);
        [[unroll]] for (uint kk = 0u; kk < TK; ++kk) {
            vec2 wa = Ws[(kk * LD >> 1) + tn];
            vec2 wb = Ws[(kk * LD >> 1) + 16u + tn];
            vec4 wq = vec4(wa, wb);
            [[unroll]] for (uint j = 0u; j < 4u; ++j) acc[j] += Xs[kk * LD + tm + 16u * j] * wq;
        }
        barrier();
    }

    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        uint m = m0 + tm + 16u * j;
        if (m >= p.M) continue;
        [[unroll]] for (uint i = 0u; i < 2u; ++i) {
            uint n = n0 + 32u * i + 2u * tn; // even; N is even for the pair epilogues
            float a = acc[j][2u * i], b = acc[j][2u * i + 1u];
            if (SPLIT != 0u) {
                if (n < p.N) split_store(m, p.yOffset + n, a);
                if (n + 1u < p.N) split_store(m, p.yOffset + n + 1u, b);
            } else if (EPILOGUE == EPI_SILU_GATE || EPILOGUE == EPI_ATTN_INPUT) {
                if (n >= p.N) continue;
                if (EPILOGUE == EPI_SILU_GATE) epi_store_gate(m, p.yOffset + n, a, b);
                else epi_store_attention(m, p.yOffset + n, a, b);
            } else {
                if (n < p.N) epi_store(m, p.yOffset + n, a);
                if (n + 1u < p.N) epi_store(m, p.yOffset + n + 1u, b);
            }
        }
    }
}
