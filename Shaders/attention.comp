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
// The workgroup is one subgroup (spec 0 = the subgroup size SG). Lane i owns head dimensions
// d = i, i + SG, … (OD = ceil(D / SG) of them, spec 1, at most 32): it keeps their Q values and
// output sums in registers. Positions are walked one at a time by the whole subgroup: the score
// is a subgroupAdd of the lanes' partial dots, so it is uniform, and the softmax runs online
// (running max and sum, the output rescaled when the max grows). Q, K and V are read through
// texel buffers of words. No barrier, no shared memory, no array (lavapipe keeps indexed arrays
// in memory and runs both sides of every branch, see docs/KERNELS.md); an invocation loops at
// most 256 times.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OD = 1;

layout(set = 0, binding = 0) uniform usamplerBuffer qt;
layout(set = 0, binding = 1) uniform usamplerBuffer kt;
layout(set = 0, binding = 2) uniform usamplerBuffer vt;
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

float fetch(usamplerBuffer b, uint i) { return uintBitsToFloat(texelFetch(b, int(i)).x); }

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint SG = gl_WorkGroupSize.x;
    uint c = gl_WorkGroupID.x;
    uint h = gl_WorkGroupID.y;
    uint t = gl_WorkGroupID.z;
    uint D = p.D;
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
    uint rowStride = p.Hkv * D;                         // one cache position
    uint kvBase = ((seq[t] * p.C + p0) * p.Hkv + hk) * D; // position p0, head hk, dim 0
    uint qBase = (t * p.Hq + h) * D;

    // Lane dimension i: d = lane + SG·i, clamped into the row for reading (its Q is 0 past D, so
    // a clamped read adds nothing and its output is not written).
    float q0 = 0.0, o0 = 0.0, q1 = 0.0, o1 = 0.0, q2 = 0.0, o2 = 0.0, q3 = 0.0, o3 = 0.0, q4 = 0.0, o4 = 0.0, q5 = 0.0, o5 = 0.0, q6 = 0.0, o6 = 0.0, q7 = 0.0, o7 = 0.0, q8 = 0.0, o8 = 0.0, q9 = 0.0, o9 = 0.0, q10 = 0.0, o10 = 0.0, q11 = 0.0, o11 = 0.0, q12 = 0.0, o12 = 0.0, q13 = 0.0, o13 = 0.0, q14 = 0.0, o14 = 0.0, q15 = 0.0, o15 = 0.0, q16 = 0.0, o16 = 0.0, q17 = 0.0, o17 = 0.0, q18 = 0.0, o18 = 0.0, q19 = 0.0, o19 = 0.0, q20 = 0.0, o20 = 0.0, q21 = 0.0, o21 = 0.0, q22 = 0.0, o22 = 0.0, q23 = 0.0, o23 = 0.0, q24 = 0.0, o24 = 0.0, q25 = 0.0, o25 = 0.0, q26 = 0.0, o26 = 0.0, q27 = 0.0, o27 = 0.0, q28 = 0.0, o28 = 0.0, q29 = 0.0, o29 = 0.0, q30 = 0.0, o30 = 0.0, q31 = 0.0, o31 = 0.0;
    if (OD > 0u && lane + SG * 0u < D) q0 = fetch(qt, qBase + lane + SG * 0u);
    if (OD > 1u && lane + SG * 1u < D) q1 = fetch(qt, qBase + lane + SG * 1u);
    if (OD > 2u && lane + SG * 2u < D) q2 = fetch(qt, qBase + lane + SG * 2u);
    if (OD > 3u && lane + SG * 3u < D) q3 = fetch(qt, qBase + lane + SG * 3u);
    if (OD > 4u && lane + SG * 4u < D) q4 = fetch(qt, qBase + lane + SG * 4u);
    if (OD > 5u && lane + SG * 5u < D) q5 = fetch(qt, qBase + lane + SG * 5u);
    if (OD > 6u && lane + SG * 6u < D) q6 = fetch(qt, qBase + lane + SG * 6u);
    if (OD > 7u && lane + SG * 7u < D) q7 = fetch(qt, qBase + lane + SG * 7u);
    if (OD > 8u && lane + SG * 8u < D) q8 = fetch(qt, qBase + lane + SG * 8u);
    if (OD > 9u && lane + SG * 9u < D) q9 = fetch(qt, qBase + lane + SG * 9u);
    if (OD > 10u && lane + SG * 10u < D) q10 = fetch(qt, qBase + lane + SG * 10u);
    if (OD > 11u && lane + SG * 11u < D) q11 = fetch(qt, qBase + lane + SG * 11u);
    if (OD > 12u && lane + SG * 12u < D) q12 = fetch(qt, qBase + lane + SG * 12u);
    if (OD > 13u && lane + SG * 13u < D) q13 = fetch(qt, qBase + lane + SG * 13u);
    if (OD > 14u && lane + SG * 14u < D) q14 = fetch(qt, qBase + lane + SG * 14u);
    if (OD > 15u && lane + SG * 15u < D) q15 = fetch(qt, qBase + lane + SG * 15u);
    if (OD > 16u && lane + SG * 16u < D) q16 = fetch(qt, qBase + lane + SG * 16u);
    if (OD > 17u && lane + SG * 17u < D) q17 = fetch(qt, qBase + lane + SG * 17u);
    if (OD > 18u && lane + SG * 18u < D) q18 = fetch(qt, qBase + lane + SG * 18u);
    if (OD > 19u && lane + SG * 19u < D) q19 = fetch(qt, qBase + lane + SG * 19u);
    if (OD > 20u && lane + SG * 20u < D) q20 = fetch(qt, qBase + lane + SG * 20u);
    if (OD > 21u && lane + SG * 21u < D) q21 = fetch(qt, qBase + lane + SG * 21u);
    if (OD > 22u && lane + SG * 22u < D) q22 = fetch(qt, qBase + lane + SG * 22u);
    if (OD > 23u && lane + SG * 23u < D) q23 = fetch(qt, qBase + lane + SG * 23u);
    if (OD > 24u && lane + SG * 24u < D) q24 = fetch(qt, qBase + lane + SG * 24u);
    if (OD > 25u && lane + SG * 25u < D) q25 = fetch(qt, qBase + lane + SG * 25u);
    if (OD > 26u && lane + SG * 26u < D) q26 = fetch(qt, qBase + lane + SG * 26u);
    if (OD > 27u && lane + SG * 27u < D) q27 = fetch(qt, qBase + lane + SG * 27u);
    if (OD > 28u && lane + SG * 28u < D) q28 = fetch(qt, qBase + lane + SG * 28u);
    if (OD > 29u && lane + SG * 29u < D) q29 = fetch(qt, qBase + lane + SG * 29u);
    if (OD > 30u && lane + SG * 30u < D) q30 = fetch(qt, qBase + lane + SG * 30u);
    if (OD > 31u && lane + SG * 31u < D) q31 = fetch(qt, qBase + lane + SG * 31u);
    uint dLast = D - 1u;
#define DIM(i) min(lane + SG * i, dLast)

    float m = EMPTY_M, l = 0.0;
    for (uint j = 0u; j < n; ++j) {
        uint kb = kvBase + j * rowStride;
        float dotPart = 0.0;
        if (OD > 0u) dotPart += q0 * fetch(kt, kb + DIM(0u));
        if (OD > 1u) dotPart += q1 * fetch(kt, kb + DIM(1u));
        if (OD > 2u) dotPart += q2 * fetch(kt, kb + DIM(2u));
        if (OD > 3u) dotPart += q3 * fetch(kt, kb + DIM(3u));
        if (OD > 4u) dotPart += q4 * fetch(kt, kb + DIM(4u));
        if (OD > 5u) dotPart += q5 * fetch(kt, kb + DIM(5u));
        if (OD > 6u) dotPart += q6 * fetch(kt, kb + DIM(6u));
        if (OD > 7u) dotPart += q7 * fetch(kt, kb + DIM(7u));
        if (OD > 8u) dotPart += q8 * fetch(kt, kb + DIM(8u));
        if (OD > 9u) dotPart += q9 * fetch(kt, kb + DIM(9u));
        if (OD > 10u) dotPart += q10 * fetch(kt, kb + DIM(10u));
        if (OD > 11u) dotPart += q11 * fetch(kt, kb + DIM(11u));
        if (OD > 12u) dotPart += q12 * fetch(kt, kb + DIM(12u));
        if (OD > 13u) dotPart += q13 * fetch(kt, kb + DIM(13u));
        if (OD > 14u) dotPart += q14 * fetch(kt, kb + DIM(14u));
        if (OD > 15u) dotPart += q15 * fetch(kt, kb + DIM(15u));
        if (OD > 16u) dotPart += q16 * fetch(kt, kb + DIM(16u));
        if (OD > 17u) dotPart += q17 * fetch(kt, kb + DIM(17u));
        if (OD > 18u) dotPart += q18 * fetch(kt, kb + DIM(18u));
        if (OD > 19u) dotPart += q19 * fetch(kt, kb + DIM(19u));
        if (OD > 20u) dotPart += q20 * fetch(kt, kb + DIM(20u));
        if (OD > 21u) dotPart += q21 * fetch(kt, kb + DIM(21u));
        if (OD > 22u) dotPart += q22 * fetch(kt, kb + DIM(22u));
        if (OD > 23u) dotPart += q23 * fetch(kt, kb + DIM(23u));
        if (OD > 24u) dotPart += q24 * fetch(kt, kb + DIM(24u));
        if (OD > 25u) dotPart += q25 * fetch(kt, kb + DIM(25u));
        if (OD > 26u) dotPart += q26 * fetch(kt, kb + DIM(26u));
        if (OD > 27u) dotPart += q27 * fetch(kt, kb + DIM(27u));
        if (OD > 28u) dotPart += q28 * fetch(kt, kb + DIM(28u));
        if (OD > 29u) dotPart += q29 * fetch(kt, kb + DIM(29u));
        if (OD > 30u) dotPart += q30 * fetch(kt, kb + DIM(30u));
        if (OD > 31u) dotPart += q31 * fetch(kt, kb + DIM(31u));
        float s = p.scale * subgroupAdd(dotPart);
        float mNew = max(m, s);
        float corr = exp(m - mNew);
        float w = exp(s - mNew);
        l = l * corr + w;
        m = mNew;
        if (OD > 0u) o0 = o0 * corr + w * fetch(vt, kb + DIM(0u));
        if (OD > 1u) o1 = o1 * corr + w * fetch(vt, kb + DIM(1u));
        if (OD > 2u) o2 = o2 * corr + w * fetch(vt, kb + DIM(2u));
        if (OD > 3u) o3 = o3 * corr + w * fetch(vt, kb + DIM(3u));
        if (OD > 4u) o4 = o4 * corr + w * fetch(vt, kb + DIM(4u));
        if (OD > 5u) o5 = o5 * corr + w * fetch(vt, kb + DIM(5u));
        if (OD > 6u) o6 = o6 * corr + w * fetch(vt, kb + DIM(6u));
        if (OD > 7u) o7 = o7 * corr + w * fetch(vt, kb + DIM(7u));
        if (OD > 8u) o8 = o8 * corr + w * fetch(vt, kb + DIM(8u));
        if (OD > 9u) o9 = o9 * corr + w * fetch(vt, kb + DIM(9u));
        if (OD > 10u) o10 = o10 * corr + w * fetch(vt, kb + DIM(10u));
        if (OD > 11u) o11 = o11 * corr + w * fetch(vt, kb + DIM(11u));
        if (OD > 12u) o12 = o12 * corr + w * fetch(vt, kb + DIM(12u));
        if (OD > 13u) o13 = o13 * corr + w * fetch(vt, kb + DIM(13u));
        if (OD > 14u) o14 = o14 * corr + w * fetch(vt, kb + DIM(14u));
        if (OD > 15u) o15 = o15 * corr + w * fetch(vt, kb + DIM(15u));
        if (OD > 16u) o16 = o16 * corr + w * fetch(vt, kb + DIM(16u));
        if (OD > 17u) o17 = o17 * corr + w * fetch(vt, kb + DIM(17u));
        if (OD > 18u) o18 = o18 * corr + w * fetch(vt, kb + DIM(18u));
        if (OD > 19u) o19 = o19 * corr + w * fetch(vt, kb + DIM(19u));
        if (OD > 20u) o20 = o20 * corr + w * fetch(vt, kb + DIM(20u));
        if (OD > 21u) o21 = o21 * corr + w * fetch(vt, kb + DIM(21u));
        if (OD > 22u) o22 = o22 * corr + w * fetch(vt, kb + DIM(22u));
        if (OD > 23u) o23 = o23 * corr + w * fetch(vt, kb + DIM(23u));
        if (OD > 24u) o24 = o24 * corr + w * fetch(vt, kb + DIM(24u));
        if (OD > 25u) o25 = o25 * corr + w * fetch(vt, kb + DIM(25u));
        if (OD > 26u) o26 = o26 * corr + w * fetch(vt, kb + DIM(26u));
        if (OD > 27u) o27 = o27 * corr + w * fetch(vt, kb + DIM(27u));
        if (OD > 28u) o28 = o28 * corr + w * fetch(vt, kb + DIM(28u));
        if (OD > 29u) o29 = o29 * corr + w * fetch(vt, kb + DIM(29u));
        if (OD > 30u) o30 = o30 * corr + w * fetch(vt, kb + DIM(30u));
        if (OD > 31u) o31 = o31 * corr + w * fetch(vt, kb + DIM(31u));
    }

    if (p.direct != 0u) {
        // The combine's formula for one chunk (its exp(m − M) is 1).
        uint dBase = (t * p.Hq + h) * D;
        float L = l;
        if (OD > 0u && lane + SG * 0u < D) part[dBase + lane + SG * 0u] = L > 0.0 ? o0 / L : 0.0;
        if (OD > 1u && lane + SG * 1u < D) part[dBase + lane + SG * 1u] = L > 0.0 ? o1 / L : 0.0;
        if (OD > 2u && lane + SG * 2u < D) part[dBase + lane + SG * 2u] = L > 0.0 ? o2 / L : 0.0;
        if (OD > 3u && lane + SG * 3u < D) part[dBase + lane + SG * 3u] = L > 0.0 ? o3 / L : 0.0;
        if (OD > 4u && lane + SG * 4u < D) part[dBase + lane + SG * 4u] = L > 0.0 ? o4 / L : 0.0;
        if (OD > 5u && lane + SG * 5u < D) part[dBase + lane + SG * 5u] = L > 0.0 ? o5 / L : 0.0;
        if (OD > 6u && lane + SG * 6u < D) part[dBase + lane + SG * 6u] = L > 0.0 ? o6 / L : 0.0;
        if (OD > 7u && lane + SG * 7u < D) part[dBase + lane + SG * 7u] = L > 0.0 ? o7 / L : 0.0;
        if (OD > 8u && lane + SG * 8u < D) part[dBase + lane + SG * 8u] = L > 0.0 ? o8 / L : 0.0;
        if (OD > 9u && lane + SG * 9u < D) part[dBase + lane + SG * 9u] = L > 0.0 ? o9 / L : 0.0;
        if (OD > 10u && lane + SG * 10u < D) part[dBase + lane + SG * 10u] = L > 0.0 ? o10 / L : 0.0;
        if (OD > 11u && lane + SG * 11u < D) part[dBase + lane + SG * 11u] = L > 0.0 ? o11 / L : 0.0;
        if (OD > 12u && lane + SG * 12u < D) part[dBase + lane + SG * 12u] = L > 0.0 ? o12 / L : 0.0;
        if (OD > 13u && lane + SG * 13u < D) part[dBase + lane + SG * 13u] = L > 0.0 ? o13 / L : 0.0;
        if (OD > 14u && lane + SG * 14u < D) part[dBase + lane + SG * 14u] = L > 0.0 ? o14 / L : 0.0;
        if (OD > 15u && lane + SG * 15u < D) part[dBase + lane + SG * 15u] = L > 0.0 ? o15 / L : 0.0;
        if (OD > 16u && lane + SG * 16u < D) part[dBase + lane + SG * 16u] = L > 0.0 ? o16 / L : 0.0;
        if (OD > 17u && lane + SG * 17u < D) part[dBase + lane + SG * 17u] = L > 0.0 ? o17 / L : 0.0;
        if (OD > 18u && lane + SG * 18u < D) part[dBase + lane + SG * 18u] = L > 0.0 ? o18 / L : 0.0;
        if (OD > 19u && lane + SG * 19u < D) part[dBase + lane + SG * 19u] = L > 0.0 ? o19 / L : 0.0;
        if (OD > 20u && lane + SG * 20u < D) part[dBase + lane + SG * 20u] = L > 0.0 ? o20 / L : 0.0;
        if (OD > 21u && lane + SG * 21u < D) part[dBase + lane + SG * 21u] = L > 0.0 ? o21 / L : 0.0;
        if (OD > 22u && lane + SG * 22u < D) part[dBase + lane + SG * 22u] = L > 0.0 ? o22 / L : 0.0;
        if (OD > 23u && lane + SG * 23u < D) part[dBase + lane + SG * 23u] = L > 0.0 ? o23 / L : 0.0;
        if (OD > 24u && lane + SG * 24u < D) part[dBase + lane + SG * 24u] = L > 0.0 ? o24 / L : 0.0;
        if (OD > 25u && lane + SG * 25u < D) part[dBase + lane + SG * 25u] = L > 0.0 ? o25 / L : 0.0;
        if (OD > 26u && lane + SG * 26u < D) part[dBase + lane + SG * 26u] = L > 0.0 ? o26 / L : 0.0;
        if (OD > 27u && lane + SG * 27u < D) part[dBase + lane + SG * 27u] = L > 0.0 ? o27 / L : 0.0;
        if (OD > 28u && lane + SG * 28u < D) part[dBase + lane + SG * 28u] = L > 0.0 ? o28 / L : 0.0;
        if (OD > 29u && lane + SG * 29u < D) part[dBase + lane + SG * 29u] = L > 0.0 ? o29 / L : 0.0;
        if (OD > 30u && lane + SG * 30u < D) part[dBase + lane + SG * 30u] = L > 0.0 ? o30 / L : 0.0;
        if (OD > 31u && lane + SG * 31u < D) part[dBase + lane + SG * 31u] = L > 0.0 ? o31 / L : 0.0;
        return;
    }
    if (lane == 0u) {
        part[outBase] = m;
        part[outBase + 1u] = l;
    }
    if (OD > 0u && lane + SG * 0u < D) part[outBase + 2u + lane + SG * 0u] = o0;
    if (OD > 1u && lane + SG * 1u < D) part[outBase + 2u + lane + SG * 1u] = o1;
    if (OD > 2u && lane + SG * 2u < D) part[outBase + 2u + lane + SG * 2u] = o2;
    if (OD > 3u && lane + SG * 3u < D) part[outBase + 2u + lane + SG * 3u] = o3;
    if (OD > 4u && lane + SG * 4u < D) part[outBase + 2u + lane + SG * 4u] = o4;
    if (OD > 5u && lane + SG * 5u < D) part[outBase + 2u + lane + SG * 5u] = o5;
    if (OD > 6u && lane + SG * 6u < D) part[outBase + 2u + lane + SG * 6u] = o6;
    if (OD > 7u && lane + SG * 7u < D) part[outBase + 2u + lane + SG * 7u] = o7;
    if (OD > 8u && lane + SG * 8u < D) part[outBase + 2u + lane + SG * 8u] = o8;
    if (OD > 9u && lane + SG * 9u < D) part[outBase + 2u + lane + SG * 9u] = o9;
    if (OD > 10u && lane + SG * 10u < D) part[outBase + 2u + lane + SG * 10u] = o10;
    if (OD > 11u && lane + SG * 11u < D) part[outBase + 2u + lane + SG * 11u] = o11;
    if (OD > 12u && lane + SG * 12u < D) part[outBase + 2u + lane + SG * 12u] = o12;
    if (OD > 13u && lane + SG * 13u < D) part[outBase + 2u + lane + SG * 13u] = o13;
    if (OD > 14u && lane + SG * 14u < D) part[outBase + 2u + lane + SG * 14u] = o14;
    if (OD > 15u && lane + SG * 15u < D) part[outBase + 2u + lane + SG * 15u] = o15;
    if (OD > 16u && lane + SG * 16u < D) part[outBase + 2u + lane + SG * 16u] = o16;
    if (OD > 17u && lane + SG * 17u < D) part[outBase + 2u + lane + SG * 17u] = o17;
    if (OD > 18u && lane + SG * 18u < D) part[outBase + 2u + lane + SG * 18u] = o18;
    if (OD > 19u && lane + SG * 19u < D) part[outBase + 2u + lane + SG * 19u] = o19;
    if (OD > 20u && lane + SG * 20u < D) part[outBase + 2u + lane + SG * 20u] = o20;
    if (OD > 21u && lane + SG * 21u < D) part[outBase + 2u + lane + SG * 21u] = o21;
    if (OD > 22u && lane + SG * 22u < D) part[outBase + 2u + lane + SG * 22u] = o22;
    if (OD > 23u && lane + SG * 23u < D) part[outBase + 2u + lane + SG * 23u] = o23;
    if (OD > 24u && lane + SG * 24u < D) part[outBase + 2u + lane + SG * 24u] = o24;
    if (OD > 25u && lane + SG * 25u < D) part[outBase + 2u + lane + SG * 25u] = o25;
    if (OD > 26u && lane + SG * 26u < D) part[outBase + 2u + lane + SG * 26u] = o26;
    if (OD > 27u && lane + SG * 27u < D) part[outBase + 2u + lane + SG * 27u] = o27;
    if (OD > 28u && lane + SG * 28u < D) part[outBase + 2u + lane + SG * 28u] = o28;
    if (OD > 29u && lane + SG * 29u < D) part[outBase + 2u + lane + SG * 29u] = o29;
    if (OD > 30u && lane + SG * 30u < D) part[outBase + 2u + lane + SG * 30u] = o30;
    if (OD > 31u && lane + SG * 31u < D) part[outBase + 2u + lane + SG * 31u] = o31;
}
