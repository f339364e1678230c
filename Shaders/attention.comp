#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// Causal GQA attention, one 256-position chunk of one (query token t, head h) per workgroup
// (flash-decoding; grid x = chunk c, y = h, z = t). Writes the chunk's partial softmax state
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


// Quad slot i of this lane: live when OQ > i (spec, folds away), valid when it lies in the head;
// an invalid slot reads the head's last quad (its Q is 0, so it adds nothing) and writes nothing.
#define LIVE(i) (OQ > uint(i))
#define VALID(i) (lane + SG * uint(i) < nq)
#define QUAD(i) min(lane + SG * uint(i), nq - 1u)
#define EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DECLARE(i) vec4 q##i = vec4(0.0), o##i = vec4(0.0);
#define LOAD_Q(i) if (LIVE(i) && VALID(i)) q##i = texelFetch(qt, int(qBase + lane + SG * uint(i)));
#define DOT_K(i) if (LIVE(i)) dotPart += dot(q##i, texelFetch(kt, int(kb + QUAD(i))));
#define ACC_V(i) if (LIVE(i)) o##i = o##i * corr + w * texelFetch(vt, int(kb + QUAD(i)));
#define STORE_PART(i) if (LIVE(i) && VALID(i)) { uint d_ = outBase + 2u + 4u * (lane + SG * uint(i)); \
    part[d_] = o##i.x; part[d_ + 1u] = o##i.y; part[d_ + 2u] = o##i.z; part[d_ + 3u] = o##i.w; }
#define STORE_DIRECT(i) if (LIVE(i) && VALID(i)) { uint d_ = dBase + 4u * (lane + SG * uint(i)); vec4 r_ = L > 0.0 ? o##i / L : vec4(0.0); \
    part[d_] = r_.x; part[d_ + 1u] = r_.y; part[d_ + 2u] = r_.z; part[d_ + 3u] = r_.w; }

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint SG = gl_WorkGroupSize.x;
    uint c = gl_WorkGroupID.x;
    uint h = gl_WorkGroupID.y;
    uint t = gl_WorkGroupID.z;
    uint D = p.D;
    uint nq = D / 4u;
    if (t >= p.T || h >= p.Hq || c >= p.nChunks) return;

    uint outBase = ((t * p.Hq + h) * p.nChunks + c) * (D + 2u);
    uint P = pos[t];
    uint p0 = c * CHUNK;
    if (p0 > P) {
        for (uint i = lane; i < D + 2u; i += SG) part[outBase + i] = (i == 0u) ? EMPTY_M : 0.0;
        return;
    }
    uint n = min(CHUNK, P + 1u - p0); // positions p0 … p0+n-1 are visible

    uint hk = h / (p.Hq / p.Hkv);
    uint rowQuads = p.Hkv * nq;                              // one cache position, in quads
    uint kvBase = ((seq[t] * p.C + p0) * p.Hkv + hk) * nq;   // position p0, head hk, quad 0
    uint qBase = (t * p.Hq + h) * nq;

    EACH(DECLARE)
    EACH(LOAD_Q)

    float m = EMPTY_M, l = 0.0;
    for (uint j = 0u; j < n; ++j) {
        uint kb = kvBase + j * rowQuads;
        float dotPart = 0.0;
        EACH(DOT_K)
        float s = p.scale * subgroupAdd(dotPart);
        float mNew = max(m, s);
        float corr = exp(m - mNew);
        float w = exp(s - mNew);
        l = l * corr + w;
        m = mNew;
        EACH(ACC_V)
    }

    if (p.direct != 0u) {
        // The combine's formula for one chunk (its exp(m − M) is 1).
        uint dBase = (t * p.Hq + h) * D;
        float L = l;
        EACH(STORE_DIRECT)
        return;
    }
    if (lane == 0u) {
        part[outBase] = m;
        part[outBase + 1u] = l;
    }
    EACH(STORE_PART)
}
