#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// Causal GQA attention, one 256-position chunk of TQ query tokens × GH query heads per workgroup
// (flash-decoding; grid x = chunk c, y = h / GH, z = t / TQ). Writes the chunk's partial softmax state
//   Part[((t·Hq + h)·nChunks + c)·(D + 2) + …] = (m, l, o[0..D-1])
// with m = max score, l = Σ exp(s − m), o = Σ exp(s − m)·V, over positions 256c … min(256c+255,
// pos[t]) of sequence seq[t]. A chunk that starts beyond pos[t] writes m = −3.0e38, l = 0, o = 0.
// Scores are scale · (Q·K), each a D-long dot in f32. With `direct` (one chunk covers every
// position) it writes the final output O[(t·Hq + h)·D + d] = o / l itself, and no combine runs.
//
// The workgroup is one subgroup (spec 0 = the subgroup size SG). D is a multiple of 4, read as
// D/4 quads; lane i owns quads i, i + SG, … (OQ = ceil(D / 4SG) of them, spec 1, at most 8): it
// keeps their Q values and output sums in registers. Positions are walked one at a time by the
// whole subgroup: the score is a subgroupAdd of the lanes' partial dots, so it is uniform, and
// the softmax runs online (running max and sum, the output rescaled when the max grows). Q, K and
// V are read through vec4 texel buffers: on lavapipe one vec4 fetch costs about what one 32-bit
// fetch (a gather) does, so quads read four dimensions for the price of one. No barrier, no
// shared memory, no array (named registers through the EACH macro); an invocation loops at most
// 256 times.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OQ = 1;

layout(set = 0, binding = 0) uniform samplerBuffer qt;
layout(set = 0, binding = 1) uniform samplerBuffer kt;
layout(set = 0, binding = 2) uniform samplerBuffer vt;
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
const float EMPTY_M = -3.0e38;


// A workgroup runs TQ·GH ≤ 4 queries that share every K and V fetch (the fetches are what
// lavapipe makes expensive):
// - TQ (spec 2) consecutive query tokens, all of one sequence (the host checks): a prefill;
// - GH (spec 3) consecutive query heads of one KV head (GH divides Hq / Hkv): grouped-query
//   attention, so a decode step, whose tokens are of different sequences, shares too.
// Query slot a is token TQ·z + a / GH, head GH·y + a % GH; its positions past pos[t] are masked
// (they leave its state untouched), and tokens past T do nothing.
layout(constant_id = 2) const uint TQ = 1;
layout(constant_id = 3) const uint GH = 1;

// Quad slot i of this lane: live when OQ > i (spec, folds away), valid when it lies in the head;
// an invalid slot reads the head's last quad (its Q is 0, so it adds nothing) and writes nothing.
// Query a (0 … 3) is live when TQ > a.
#define LIVE(i) (OQ > uint(i))
#define VALID(i) (lane + SG * uint(i) < nq)
#define QUAD(i) min(lane + SG * uint(i), nq - 1u)
#define ONE(a, X) X(a, 0) X(a, 1) X(a, 2) X(a, 3) X(a, 4) X(a, 5) X(a, 6) X(a, 7)
#define EACH(X) ONE(0, X) ONE(1, X) ONE(2, X) ONE(3, X)
#define QLIVE(a) (TQ * GH > uint(a))
#define DECLARE(a, i) vec4 q##a##_##i = vec4(0.0), o##a##_##i = vec4(0.0);
#define LOAD_Q(a, i) if (QLIVE(a) && LIVE(i) && VALID(i) && tok##a < p.T) q##a##_##i = texelFetch(qt, int((tok##a * p.Hq + hd##a) * nq + lane + SG * uint(i)));
#define FETCH_K(a, i) if (a == 0 && LIVE(i)) k##i = texelFetch(kt, int(kb + QUAD(i)));
#define FETCH_V(a, i) if (a == 0 && LIVE(i)) v##i = texelFetch(vt, int(kb + QUAD(i)));
#define DOT_K(a, i) if (QLIVE(a) && LIVE(i)) dot##a += dot(q##a##_##i, k##i);
#define ACC_V(a, i) if (QLIVE(a) && LIVE(i)) o##a##_##i = o##a##_##i * corr##a + w##a * v##i;
#define STORE_PART(a, i) if (QLIVE(a) && LIVE(i) && VALID(i) && tok##a < p.T) { \
    uint d_ = (((tok##a * p.Hq + hd##a) * p.nChunks + c) * (D + 2u)) + 2u + 4u * (lane + SG * uint(i)); \
    part[d_] = o##a##_##i.x; part[d_ + 1u] = o##a##_##i.y; part[d_ + 2u] = o##a##_##i.z; part[d_ + 3u] = o##a##_##i.w; }
#define STORE_DIRECT(a, i) if (QLIVE(a) && LIVE(i) && VALID(i) && tok##a < p.T) { \
    uint d_ = (tok##a * p.Hq + hd##a) * D + 4u * (lane + SG * uint(i)); vec4 r_ = l##a > 0.0 ? o##a##_##i / l##a : vec4(0.0); \
    part[d_] = r_.x; part[d_ + 1u] = r_.y; part[d_ + 2u] = r_.z; part[d_ + 3u] = r_.w; }
// The online softmax step of query a at position p0 + j: masked past its own position.
#define STEP(a) if (QLIVE(a)) { float s_ = p.scale * subgroupAdd(dot##a); bool in_ = p0 + j <= P##a; \
    float mNew_ = in_ ? max(m##a, s_) : m##a; corr##a = exp(m##a - mNew_); w##a = in_ ? exp(s_ - mNew_) : 0.0; \
    l##a = l##a * corr##a + w##a; m##a = mNew_; }
#define QUERY(a) uint tok##a = t0 + uint(a) / GH, hd##a = h0 + uint(a) % GH; uint P##a = QLIVE(a) && tok##a < p.T ? pos[tok##a] : 0u; \
    float m##a = EMPTY_M, l##a = 0.0, dot##a = 0.0, corr##a = 1.0, w##a = 0.0;

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint SG = gl_WorkGroupSize.x;
    uint c = gl_WorkGroupID.x;
    uint h0 = gl_WorkGroupID.y * GH;
    uint t0 = gl_WorkGroupID.z * TQ;
    uint D = p.D;
    uint nq = D / 4u;
    if (t0 >= p.T || h0 >= p.Hq || c >= p.nChunks) return;

    QUERY(0) QUERY(1) QUERY(2) QUERY(3)
    uint P = max(max(P0, P1), max(P2, P3)); // the last position any query sees
    uint p0 = c * CHUNK;
    if (p0 > P) {
        for (uint a = 0u; a < TQ * GH && t0 + a / GH < p.T; ++a) {
            uint outBase = ((t0 + a / GH) * p.Hq + h0 + a % GH) * p.nChunks + c;
            for (uint i = lane; i < D + 2u; i += SG) part[outBase * (D + 2u) + i] = (i == 0u) ? EMPTY_M : 0.0;
        }
        return;
    }
    uint n = min(CHUNK, P + 1u - p0); // positions p0 … p0+n-1 are visible to some query

    uint hk = h0 / (p.Hq / p.Hkv);
    uint rowQuads = p.Hkv * nq;                              // one cache position, in quads
    uint kvBase = ((seq[t0] * p.C + p0) * p.Hkv + hk) * nq;  // position p0, head hk, quad 0

    EACH(DECLARE)
    EACH(LOAD_Q)
    vec4 k0, k1, k2, k3, k4, k5, k6, k7, v0, v1, v2, v3, v4, v5, v6, v7;

    for (uint j = 0u; j < n; ++j) {
        uint kb = kvBase + j * rowQuads;
        ONE(0, FETCH_K)
        dot0 = 0.0; dot1 = 0.0; dot2 = 0.0; dot3 = 0.0;
        EACH(DOT_K)
        STEP(0) STEP(1) STEP(2) STEP(3)
        ONE(0, FETCH_V)
        EACH(ACC_V)
    }

    if (p.direct != 0u) {
        // The combine's formula for one chunk (its exp(m − M) is 1).
        EACH(STORE_DIRECT)
        return;
    }
    if (lane == 0u) {
        if (QLIVE(0) && tok0 < p.T) { uint b_ = ((tok0 * p.Hq + hd0) * p.nChunks + c) * (D + 2u); part[b_] = m0; part[b_ + 1u] = l0; }
        if (QLIVE(1) && tok1 < p.T) { uint b_ = ((tok1 * p.Hq + hd1) * p.nChunks + c) * (D + 2u); part[b_] = m1; part[b_ + 1u] = l1; }
        if (QLIVE(2) && tok2 < p.T) { uint b_ = ((tok2 * p.Hq + hd2) * p.nChunks + c) * (D + 2u); part[b_] = m2; part[b_ + 1u] = l2; }
        if (QLIVE(3) && tok3 < p.T) { uint b_ = ((tok3 * p.Hq + hd3) * p.nChunks + c) * (D + 2u); part[b_] = m3; part[b_ + 1u] = l3; }
    }
    EACH(STORE_PART)
}
