#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] for m < MCOLS ≤ 8, through the EPILOGUE
// (include/epilogue.glsl): each INVOCATION owns ROWS ≤ 8 consecutive weight rows. It decodes
// its rows' 32-element blocks (a whole q8_0 / q4_1 / q4_0
// block or one sub-block of a q4_k / q6_k super-block) into registers and uses each X quad it
// fetches for all of its rows.
//
// Why this shape, on lavapipe (which runs 8 invocations as one SIMD vector; see docs/KERNELS.md
// for the measurements):
//   - X is fetched by every lane from a vec4 texel buffer, the same address in all lanes. That is
//     eight 16-byte loads and a transpose; a subgroupBroadcast instead is a loop over the lanes
//     per component (2× slower in all);
//   - a 32-bit texel fetch is a hardware gather, which is slow on this CPU, so q4_1 and q8_0
//     weights (the default model's) are read as uvec4 texels: two / three 16-byte loads per block
//     instead of five / ten gathers, the block's words picked out of the window with selects;
//   - both sides of every `if` run, masked: the hot loop holds no rare path; the K tail (K not a
//     multiple of 32, float formats only) has a loop of its own after it;
//   - MCOLS and ROWS are specialization constants and every loop over them is unrolled, so all
//     state stays in registers and unused columns fold away.
// Needs K a multiple of 4 (X is read as vec4). No barrier, no shared memory, no subgroup ops.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 2) const uint MCOLS = 1;
layout(constant_id = 3) const uint ROWS = 1;
layout(constant_id = 4) const uint EPILOGUE = 0;
// 1: RMSNorm of each X column on the way in (x · g summed, Σx² kept, the product scaled by
// 1 / sqrt(Σx²/K + eps) at the end), so no norm dispatch runs before the matmul.
layout(constant_id = 5) const uint NORM = 0;

// The weights as a texel buffer: of words (R32_UINT), or for q4_1 / q8_0 of uvec4 (R32G32B32A32_UINT).
layout(set = 0, binding = 0) uniform usamplerBuffer wt;
#define WORD(i) texelFetch(wt, int(i)).x
// X as a texel buffer of vec4: a quad in one fetch.
layout(set = 0, binding = 1) uniform samplerBuffer xq;
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };
// The input norm's weight g (NORM), vec4 texels like X.
layout(set = 0, binding = 9) uniform samplerBuffer gq;

#include "matmul_push.glsl"

#include "formats.glsl"
#include "epilogue.glsl"

// Elements 4q … 4q+3 of the 32 elements of X's column m starting at k0.
vec4 x_quad(uint m, uint k0, uint q) { return texelFetch(xq, int((m * p.K + k0) / 4u + q)); }
float x_elem(uint m, uint k) {
    uint e = m * p.K + k;
    return texelFetch(xq, int(e >> 2))[e & 3u];
}
vec4 g_quad(uint k0, uint q) { return texelFetch(gq, int(k0 / 4u + q)); }
float g_elem(uint k) { return texelFetch(gq, int(k >> 2))[k & 3u]; }

// Word s of e0 … e3 (s < 4): one word of a window read in uvec4 texels, picked with selects.
uint pick(uint s, uint e0, uint e1, uint e2, uint e3) { return s == 0u ? e0 : (s == 1u ? e1 : (s == 2u ? e2 : e3)); }

// q4_1 and q8_0: the block at element e0 as its raw quants (eight quads) and (d, m), the value
// being d·q + m (m = 0 for q8_0). One column dots the quants with X and scales the sum once.
const bool RAW_BLOCKS = FORMAT == FMT_Q4_1 || FORMAT == FMT_Q8_0;
void w_block_raw(uint e0, out vec4 q[8], out vec2 dm) {
    if (FORMAT == FMT_Q4_1) {
        // 20-byte blocks: the 5 words from word bw lie in uvec4 texels bw/4 and bw/4 + 1.
        uint bw = (e0 >> 5) * 5u;
        uvec4 a = texelFetch(wt, int(bw >> 2)), b = texelFetch(wt, int((bw >> 2) + 1u));
        uint s = bw & 3u;
        dm = unpackHalf2x16(pick(s, a.x, a.y, a.z, a.w));
        uint q0 = pick(s, a.y, a.z, a.w, b.x), q1 = pick(s, a.z, a.w, b.x, b.y);
        uint q2 = pick(s, a.w, b.x, b.y, b.z), q3 = pick(s, b.x, b.y, b.z, b.w);
        q[0] = w_q4x4(q0, 0); q[1] = w_q4x4(q1, 0); q[2] = w_q4x4(q2, 0); q[3] = w_q4x4(q3, 0);
        q[4] = w_q4x4(q0, 4); q[5] = w_q4x4(q1, 4); q[6] = w_q4x4(q2, 4); q[7] = w_q4x4(q3, 4);
    } else {
        // q8_0, 34-byte blocks from byte o (even): the 9 words from word o/4 lie in three uvec4
        // texels; d is the low or the high half of the first, the 32 quants follow it.
        uint o = (e0 >> 5) * 34u;
        uint wi = o >> 2;
        uvec4 a = texelFetch(wt, int(wi >> 2)), b = texelFetch(wt, int((wi >> 2) + 1u)), c = texelFetch(wt, int((wi >> 2) + 2u));
        uint s = wi & 3u;
        uint win[12] = uint[12](a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w, c.x, c.y, c.z, c.w);
        uint v[9];
        [[unroll]] for (uint j = 0u; j < 9u; ++j) v[j] = pick(s, win[j], win[j + 1u], win[j + 2u], win[j + 3u]);
        bool high = (o & 2u) != 0u;
        dm = vec2(unpackHalf2x16(high ? v[0] >> 16 : v[0]).x, 0.0);
        [[unroll]] for (uint j = 0u; j < 8u; ++j) q[j] = w_q8x4(high ? v[j + 1u] : (v[j] >> 16) | (v[j + 1u] << 16));
    }
}

// The 32 weights of the block at element e0 (a multiple of 32) as eight quads.
void w_block(uint e0, out vec4 w[8]) {
    if (RAW_BLOCKS) {
        vec4 q[8];
        vec2 dm;
        w_block_raw(e0, q, dm);
        [[unroll]] for (uint i = 0u; i < 8u; ++i) w[i] = FORMAT == FMT_Q4_1 ? dm.x * q[i] + dm.y : dm.x * q[i];
    } else {
        w_run32(e0, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]);
    }
}

void main() {
    uint n0 = (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x) * ROWS;
    uint nb = p.K / 32u;
    // A row past the last one decodes row N-1 and writes nothing.
    uint rowE[8];
    float acc[8][8];
    float ss[8]; // Σx² of each column (NORM)
    [[unroll]] for (uint m = 0u; m < MCOLS; ++m) ss[m] = 0.0;
    [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
        rowE[r] = min(n0 + r, p.N - 1u) * p.K;
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) acc[r][m] = 0.0;
    }

    for (uint b = 0u; b < nb; ++b) {
        uint k0 = b * 32u;
        if (MCOLS == 1u) {
            // One column: hold its 32 X values, decode the rows one after another.
            vec4 x[8];
            [[unroll]] for (uint i = 0u; i < 8u; ++i) x[i] = x_quad(0u, k0, i);
            if (NORM != 0u) {
                [[unroll]] for (uint i = 0u; i < 8u; ++i) {
                    ss[0] += dot(x[i], x[i]);
                    x[i] *= g_quad(k0, i);
                }
            }
            if (RAW_BLOCKS) {
                // Σ (d·q + m)·x = d·Σ q·x + m·Σ x: Σ x is shared by the rows.
                float xsum = FORMAT == FMT_Q4_1 ? dot(x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + x[6] + x[7], vec4(1.0)) : 0.0;
                [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
                    vec4 q[8];
                    vec2 dm;
                    w_block_raw(rowE[r] + k0, q, dm);
                    float qx = dot(q[0], x[0]) + dot(q[1], x[1]) + dot(q[2], x[2]) + dot(q[3], x[3]) +
                               dot(q[4], x[4]) + dot(q[5], x[5]) + dot(q[6], x[6]) + dot(q[7], x[7]);
                    acc[r][0] += dm.x * qx + dm.y * xsum;
                }
            } else {
                [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
                    vec4 w[8];
                    w_block(rowE[r] + k0, w);
                    acc[r][0] += dot(w[0], x[0]) + dot(w[1], x[1]) + dot(w[2], x[2]) + dot(w[3], x[3]) +
                                 dot(w[4], x[4]) + dot(w[5], x[5]) + dot(w[6], x[6]) + dot(w[7], x[7]);
                }
            }
        } else {
            // Several columns: hold the rows' decoded weights, fetch each X quad once for all rows.
            vec4 w[8][8];
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) w_block(rowE[r] + k0, w[r]);
            vec4 g[8];
            if (NORM != 0u) {
                [[unroll]] for (uint i = 0u; i < 8u; ++i) g[i] = g_quad(k0, i);
            }
            [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                [[unroll]] for (uint i = 0u; i < 8u; ++i) {
                    vec4 x = x_quad(m, k0, i);
                    if (NORM != 0u) {
                        ss[m] += dot(x, x);
                        x *= g[i];
                    }
                    [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] += dot(w[r][i], x);
                }
            }
        }
    }
    // K tail, element by element (float formats only: quantised K is a multiple of the block).
    for (uint k = nb * 32u; k < p.K; ++k) {
        float xk[8];
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
            xk[m] = x_elem(m, k);
            if (NORM != 0u) {
                ss[m] += xk[m] * xk[m];
                xk[m] *= g_elem(k);
            }
        }
        [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
            float wk = w_elem(rowE[r] + k);
            [[unroll]] for (uint m = 0u; m < MCOLS; ++m) acc[r][m] += wk * xk[m];
        }
    }
    if (NORM != 0u) {
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
            float scale = 1.0 / sqrt(ss[m] / float(p.K) + p.eps);
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] *= scale;
        }
    }

    if (EPILOGUE == EPI_SILU_GATE || EPILOGUE == EPI_ATTN_INPUT) {
        // ROWS is even and N is even, so an invocation holds whole pairs (gate/up, or a RoPE pair).
        [[unroll]] for (uint r = 0u; r < ROWS; r += 2u) {
            if (n0 + r < p.N) {
                [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                    if (EPILOGUE == EPI_SILU_GATE) epi_store_gate(m, p.yOffset + n0 + r, acc[r][m], acc[r + 1u][m]);
                    else epi_store_attention(m, p.yOffset + n0 + r, acc[r][m], acc[r + 1u][m]);
                }
            }
        }
    } else {
        [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
            if (n0 + r < p.N) {
                [[unroll]] for (uint m = 0u; m < MCOLS; ++m) epi_store(m, p.yOffset + n0 + r, acc[r][m]);
            }
        }
    }
}
