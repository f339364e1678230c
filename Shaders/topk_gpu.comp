#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// The GPU family's top-k: the same contract as topk.comp (bindings, TopKPush, output layout, NaN
// as −inf, ties by index ascending, empty slots (−3.0e38, 0xffffffff)), the host's two passes
// over 4096-entry chunks unchanged. Shaped for a GPU instead of lavapipe: 256 invocations hold
// 16 entries each in registers (coalesced loads: entry t + 256 i), and each of the k rounds is
// one two-level argmax: subgroupMax of the invocations' current bests, subgroupMin of the indices
// that reach it, then the subgroups' winners through shared memory; the invocation holding the
// winner pops it. Two barriers a round, against topk.comp's log2(64) + 2 and its private
// arrays (local memory on a GPU).
// Worst case per invocation: k · (16 + subgroups) steps ≤ 64 · 48, below lavapipe's loop limit.

layout(local_size_x_id = 0) in; // 256

layout(std430, set = 0, binding = 0) readonly buffer VB { float vals[]; };
layout(std430, set = 0, binding = 1) readonly buffer IB { uint inIdx[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OVB { float outV[]; };
layout(std430, set = 0, binding = 3) writeonly buffer OIB { uint outI[]; };

layout(push_constant) uniform P {
    uint L;
    uint R;
    uint k;
    uint ldv;
    uint nChunks;
    uint hasIdx;
} p;

const uint CHUNK = 4096u;
const uint THREADS = 256u;
const uint PER_THREAD = 16u; // CHUNK = THREADS · PER_THREAD
const uint K_MAX = 64u;
const uint NONE = 0xffffffffu;
const float EMPTY_V = -3.0e38;
#define NEG_INF uintBitsToFloat(0xff800000u)
const uint SG_MAX = 256u; // subgroups per workgroup, at most (subgroups of 1)

shared float sv[SG_MAX];
shared uint si[SG_MAX];
shared uint so[SG_MAX]; // the invocation holding the subgroup's best

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    // Uniform for the whole workgroup and before the first barrier.
    if (c >= p.nChunks || r >= p.R) return;

    uint k = min(p.k, K_MAX);
    uint cStart = c * CHUNK;
    uint count = cStart < p.L ? min(CHUNK, p.L - cStart) : 0u;
    uint rowBase = r * p.ldv;

    // This invocation's entries; an absent (or popped) one is (−inf, NONE), which loses to every
    // real entry: a real −inf entry has a smaller index, an input's empty slot (−3e38, NONE) a
    // larger value.
    float v[PER_THREAD];
    uint ix[PER_THREAD];
    [[unroll]] for (uint i = 0u; i < PER_THREAD; ++i) {
        uint le = tid + THREADS * i;
        bool has = le < count;
        uint e = cStart + le;
        float x = has ? vals[rowBase + e] : NEG_INF;
        v[i] = isnan(x) ? NEG_INF : x;
        ix[i] = !has ? NONE : (p.hasIdx != 0u ? inIdx[rowBase + e] : e);
    }

    uint outBase = (r * p.nChunks + c) * k;
    uint nsg = gl_NumSubgroups;
    for (uint j = 0u; j < k; ++j) {
        // This invocation's best (value desc, then index asc) and its slot.
        float bv = NEG_INF;
        uint bi = NONE, bs = 0u;
        [[unroll]] for (uint i = 0u; i < PER_THREAD; ++i) {
            if (v[i] > bv || (v[i] == bv && ix[i] < bi)) { bv = v[i]; bi = ix[i]; bs = i; }
        }
        // The subgroup's best, and the lowest invocation holding it (the one that pops it).
        float gv = subgroupMax(bv);
        uint gi = subgroupMin(bv == gv ? bi : NONE);
        uint go = subgroupMin(bv == gv && bi == gi ? tid : NONE);
        if (subgroupElect()) { sv[gl_SubgroupID] = gv; si[gl_SubgroupID] = gi; so[gl_SubgroupID] = go; }
        barrier();
        float wv = sv[0];
        uint wi = si[0], wo = so[0];
        for (uint s = 1u; s < nsg; ++s) {
            if (sv[s] > wv || (sv[s] == wv && si[s] < wi)) { wv = sv[s]; wi = si[s]; wo = so[s]; }
        }
        barrier(); // everyone has read sv / si / so before the next round writes them
        if (tid == wo) {
            [[unroll]] for (uint i = 0u; i < PER_THREAD; ++i) {
                if (i == bs) { v[i] = NEG_INF; ix[i] = NONE; }
            }
        }
        // An index of NONE is an empty slot: an absent entry, or an input's own empty slot.
        if (tid == 0u) {
            outV[outBase + j] = wi != NONE ? wv : EMPTY_V;
            outI[outBase + j] = wi;
        }
    }
}
