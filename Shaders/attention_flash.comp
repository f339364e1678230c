#version 450

// Causal GQA attention for prefills on GPUs (the gpu kernel family), flash-attention style: a
// tile of BQ = 16 consecutive query tokens of one sequence × one query head per workgroup, over
// one 256-position chunk c of that sequence's keys (grid x = c, y = h, z = t / 16). It writes
// exactly what attention.comp writes: the chunk's partial softmax state
//   Part[((t·Hq + h)·nChunks + c)·(D + 2) + …] = (m, l, o[0..D-1])
// (m = max score, l = Σ exp(s − m), o = Σ exp(s − m)·V over the positions the token sees), or
// with `direct` (one chunk) the normalised output O[(t·Hq + h)·D + d] = o / l; attention_combine
// merges chunks as before. Scores are scale · (Q·K) in f32.
//
// 64 invocations, 4 per query (TPQ). The Q tile (pre-scaled) and each tile of BK key and value
// positions are staged in shared memory by coalesced scalar loads; the BQ × BK scores of a tile
// are computed BQ·BK / 64 per invocation into shared memory; then each query's 4 invocations run
// the same online-softmax update (running max and sum, the output rescaled when the max grows)
// and each accumulates its quarter of the head's output quads (j, j + 4, …) in registers. Where
// the key tile is read once per 16 queries, attention.comp reads it once per 4 and walks
// positions one at a time. BK (spec 1: 16, or 8 / 4 for wide heads) keeps shared memory within
// the device's limit; the host picks it. Loops stay under ~10,000 iterations per invocation
// (lavapipe's 65,535 limit; `roast verify` runs this kernel there too).

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint DQ = 16u; // head dimension / 4
layout(constant_id = 1) const uint BK = 16u; // key positions per shared tile

layout(std430, set = 0, binding = 0) readonly buffer QB { float q[]; };
layout(std430, set = 0, binding = 1) readonly buffer KB { float kc[]; };
layout(std430, set = 0, binding = 2) readonly buffer VB { float vc[]; };
layout(std430, set = 0, binding = 3) readonly buffer SB { uint seq[]; };
layout(std430, set = 0, binding = 4) readonly buffer PB { uint pos[]; };
layout(std430, set = 0, binding = 5) writeonly buffer OB { float part[]; };

layout(push_constant) uniform P {
    uint T;
    uint Hq;
    uint Hkv;
    uint D;
    uint C;
    uint nChunks;
    float scale;
    uint direct; // one chunk: write the normalised output [T × Hq × D] instead of the partial state
} p;

const uint CHUNK = 256u;
const uint BQ = 16u;
const uint TPQ = 4u;
const uint THREADS = 64u;
const uint OQ = 16u; // output quads per invocation, enough for D = 256
const float EMPTY_M = -3.0e38;

shared vec4 Qs[BQ * DQ];
shared vec4 Ks[BK * DQ];
shared vec4 Vs[BK * DQ];
shared float S[BQ * BK];
shared uint Pq[BQ];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.x, h = gl_WorkGroupID.y, t0 = gl_WorkGroupID.z * BQ;
    uint D = 4u * DQ;
    if (t0 >= p.T || h >= p.Hq || c >= p.nChunks) return; // uniform over the workgroup
    uint nT = min(BQ, p.T - t0);

    if (tid < BQ) Pq[tid] = tid < nT ? pos[t0 + tid] : 0u;
    for (uint i = tid; i < BQ * D; i += THREADS) {
        uint a = i / D, d = i % D;
        Qs[a * DQ + d / 4u][d % 4u] = a < nT ? p.scale * q[((t0 + a) * p.Hq + h) * D + d] : 0.0;
    }
    barrier();

    uint P = 0u; // the last position any query of the tile sees (uniform)
    for (uint a = 0u; a < nT; ++a) P = max(P, Pq[a]);
    uint qa = tid / TPQ, j = tid % TPQ;
    bool live = qa < nT;
    uint tok = t0 + qa;
    uint outBase = ((tok * p.Hq + h) * p.nChunks + c) * (D + 2u);
    uint p0 = c * CHUNK;
    if (p0 > P) {
        // A chunk past every query: the empty state, as attention.comp writes it.
        if (live) {
            for (uint i = j; i < D + 2u; i += TPQ) part[outBase + i] = i == 0u ? EMPTY_M : 0.0;
        }
        return;
    }
    uint n = min(CHUNK, P + 1u - p0);
    uint hk = h / (p.Hq / p.Hkv);
    uint kvBase = ((seq[t0] * p.C + p0) * p.Hkv + hk) * D; // position p0, head hk
    uint rowStride = p.Hkv * D;
    uint myP = Pq[qa];

    vec4 o[OQ];
    for (uint i = 0u; i < OQ; ++i) o[i] = vec4(0.0);
    float m = EMPTY_M, l = 0.0;

    for (uint kt = 0u; kt < n; kt += BK) {
        uint nk = min(BK, n - kt);
        barrier(); // the previous tile's Ks, Vs and S are read
        for (uint i = tid; i < BK * D; i += THREADS) {
            uint k = i / D, d = i % D;
            bool inTile = k < nk;
            uint e = kvBase + (kt + k) * rowStride + d;
            Ks[k * DQ + d / 4u][d % 4u] = inTile ? kc[e] : 0.0;
            Vs[k * DQ + d / 4u][d % 4u] = inTile ? vc[e] : 0.0;
        }
        barrier();
        for (uint e = tid; e < BQ * BK; e += THREADS) {
            uint a = e / BK, k = e % BK;
            float s = 0.0;
            for (uint x = 0u; x < DQ; ++x) s += dot(Qs[a * DQ + x], Ks[k * DQ + x]);
            S[e] = s;
        }
        barrier();
        if (live) {
            // Positions past the query's own are masked: they leave its state untouched.
            float mNew = m;
            for (uint k = 0u; k < nk; ++k) {
                if (p0 + kt + k <= myP) mNew = max(mNew, S[qa * BK + k]);
            }
            float corr = exp(m - mNew);
            l *= corr;
            for (uint i = 0u; i < OQ; ++i) o[i] *= corr;
            for (uint k = 0u; k < nk; ++k) {
                if (p0 + kt + k > myP) continue;
                float w = exp(S[qa * BK + k] - mNew);
                l += w;
                for (uint i = 0u; i < OQ; ++i) {
                    uint x = j + TPQ * i;
                    if (x < DQ) o[i] += w * Vs[k * DQ + x];
                }
            }
            m = mNew;
        }
    }

    if (!live) return;
    for (uint i = 0u; i < OQ; ++i) {
        uint x = j + TPQ * i;
        if (x >= DQ) break;
        if (p.direct != 0u) {
            // The combine's formula for one chunk (its exp(m − M) is 1).
            vec4 r = l > 0.0 ? o[i] / l : vec4(0.0);
            uint b = (tok * p.Hq + h) * D + 4u * x;
            part[b] = r.x; part[b + 1u] = r.y; part[b + 2u] = r.z; part[b + 3u] = r.w;
        } else {
            uint b = outBase + 2u + 4u * x;
            part[b] = o[i].x; part[b + 1u] = o[i].y; part[b + 2u] = o[i].z; part[b + 3u] = o[i].w;
        }
    }
    if (p.direct == 0u && j == 0u) {
        part[outBase] = m;
        part[outBase + 1u] = l;
    }
}
