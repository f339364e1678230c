#version 450
#extension GL_GOOGLE_include_directive : require

// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] through the EPILOGUE (include/epilogue.glsl), any M:
// 32 (n) × 32 (m) output tile per workgroup, K stepped by 32 through shared tiles (for q4_k /
// q6_k: one 32-element sub-block of a super-block per step). Needs exactly 64 threads (spec 0 = 64): thread (tn = tid % 8,
// tm = tid / 8) computes n = n0 + 4tn + i, m = m0 + 4tm + j for i, j < 4.
// The K loop body has no inner loops on the main path (manual unrolling), so an invocation
// loops about K/32 times: lavapipe's 65,535-iteration limit is never near.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 4) const uint EPILOGUE = 0;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer XB { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

#include "matmul_push.glsl"

#include "formats.glsl"
#include "epilogue.glsl"

const uint TILE = 32u;

// Both tiles are stored k-major ([kk][n] and [kk][m]) so the inner product reads 4 neighbours.
shared float Ws[TILE * TILE];
shared float Xs[TILE * TILE];

vec4 acc[4]; // acc[j][i] = output (m = 4tm + j, n = 4tn + i)

#define FMA_K(kk) { \
    uint wo_ = (kk) * TILE + 4u * tn; \
    uint xo_ = (kk) * TILE + 4u * tm; \
    vec4 b_ = vec4(Ws[wo_], Ws[wo_ + 1u], Ws[wo_ + 2u], Ws[wo_ + 3u]); \
    vec4 a_ = vec4(Xs[xo_], Xs[xo_ + 1u], Xs[xo_ + 2u], Xs[xo_ + 3u]); \
    acc[0] += a_.x * b_; acc[1] += a_.y * b_; acc[2] += a_.z * b_; acc[3] += a_.w * b_; }
#define FMA_K4(kk) FMA_K(kk) FMA_K((kk) + 1u) FMA_K((kk) + 2u) FMA_K((kk) + 3u)

// Scatter 4 consecutive k of one row into a k-major tile (k = kk … kk+3 at offset kk·TILE + r).
#define STORE4(T, kk, r, v) { uint o_ = (kk) * TILE + (r); \
    T[o_] = (v).x; T[o_ + TILE] = (v).y; T[o_ + 2u * TILE] = (v).z; T[o_ + 3u * TILE] = (v).w; }

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint n0 = gl_WorkGroupID.x * TILE;
    uint m0 = gl_WorkGroupID.y * TILE;
    uint K = p.K;
    bool live = tid < 64u;
    uint tn = tid & 7u;
    uint tm = (tid >> 3) & 7u;

    // Tile loading: thread tid loads row r = tid / 2, k-half kh = 16 · (tid % 2) of both tiles.
    uint r = (tid >> 1) & 31u;
    uint kh = (tid & 1u) * 16u;
    bool nIn = n0 + r < p.N;
    bool mIn = m0 + r < p.M;

    acc[0] = acc[1] = acc[2] = acc[3] = vec4(0.0);

    for (uint k0 = 0u; k0 < K; k0 += TILE) {
        if (live) {
            uint k = k0 + kh;
            vec4 v[4];
            // W tile: one half-block of one weight row.
            if (!nIn) {
                v[0] = v[1] = v[2] = v[3] = vec4(0.0);
            } else if (k + 16u <= K) {
                w_run16((n0 + r) * K + k, v);
            } else { // K tail, float formats only (quantised K is a multiple of 32 or 256)
                for (uint i = 0u; i < 4u; ++i) {
                    for (uint c = 0u; c < 4u; ++c) {
                        uint kk = k + 4u * i + c;
                        v[i][c] = kk < K ? w_elem((n0 + r) * K + kk) : 0.0;
                    }
                }
            }
            STORE4(Ws, kh, r, v[0]) STORE4(Ws, kh + 4u, r, v[1])
            STORE4(Ws, kh + 8u, r, v[2]) STORE4(Ws, kh + 12u, r, v[3])
            // X tile
            uint xo = (m0 + r) * K + k;
            if (!mIn) {
                v[0] = v[1] = v[2] = v[3] = vec4(0.0);
            } else if (k + 16u <= K) {
                v[0] = vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
                v[1] = vec4(x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u]);
                v[2] = vec4(x[xo + 8u], x[xo + 9u], x[xo + 10u], x[xo + 11u]);
                v[3] = vec4(x[xo + 12u], x[xo + 13u], x[xo + 14u], x[xo + 15u]);
            } else {
                for (uint i = 0u; i < 4u; ++i) {
                    for (uint c = 0u; c < 4u; ++c) {
                        uint kk = k + 4u * i + c;
                        v[i][c] = kk < K ? x[xo + 4u * i + c] : 0.0;
                    }
                }
            }
            STORE4(Xs, kh, r, v[0]) STORE4(Xs, kh + 4u, r, v[1])
            STORE4(Xs, kh + 8u, r, v[2]) STORE4(Xs, kh + 12u, r, v[3])
        }
        barrier();
        if (live) {
            FMA_K4(0u) FMA_K4(4u) FMA_K4(8u) FMA_K4(12u)
            FMA_K4(16u) FMA_K4(20u) FMA_K4(24u) FMA_K4(28u)
        }
        barrier();
    }

    if (!live) return;
    for (uint j = 0u; j < 4u; ++j) {
        uint m = m0 + 4u * tm + j;
        if (m >= p.M) break;
        if (EPILOGUE == EPI_SILU_GATE || EPILOGUE == EPI_ATTN_INPUT) {
            // n0 + 4tn is even and N is even: the thread holds whole pairs.
            for (uint i = 0u; i < 4u; i += 2u) {
                uint n = n0 + 4u * tn + i;
                if (n >= p.N) continue;
                if (EPILOGUE == EPI_SILU_GATE) epi_store_gate(m, p.yOffset + n, acc[j][i], acc[j][i + 1u]);
                else epi_store_attention(m, p.yOffset + n, acc[j][i], acc[j][i + 1u]);
            }
        } else {
            for (uint i = 0u; i < 4u; ++i) {
                uint n = n0 + 4u * tn + i;
                if (n < p.N) epi_store(m, p.yOffset + n, acc[j][i]);
            }
        }
    }
}
