#version 450

// Top-k of each 4096-entry chunk of each row (grid x = chunk c, y = row r), sorted by value desc,
// then index asc, written to OutV/OutI[(r·nChunks + c)·k + j], j < k ≤ 64.
// Entry e of row r is Vals[r·ldv + e]; its index is e, or InIdx[r·ldv + e] when hasIdx = 1.
// NaN entries are ranked (and written) as −inf. Slots j ≥ (entries in the chunk) are written as
// (−3.0e38, 0xffffffff); real entries (even −inf ones) always come first.
//
// Thread j (< 64) owns entries c·4096 + j + 64i, i < 64, and insertion-sorts its best k of them
// into private arrays; then k rounds, each an argmax over the threads' current heads through
// shared memory, after which the winning thread pops its head. Needs WG ≥ 64 (spec 0 = 64).
// Worst case per invocation: ~2k insertion steps + k·(log2 WG + 1) rounds, well below 8k.

layout(local_size_x_id = 0) in;

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
const uint THREADS = 64u;   // entry owners; CHUNK = THREADS · PER_THREAD
const uint PER_THREAD = 64u;
const uint K_MAX = 64u;
const uint WG_MAX = 256u;
const uint NONE = 0xffffffffu;
const float EMPTY_V = -3.0e38;

shared float sv[WG_MAX];
shared uint si[WG_MAX];
shared uint so[WG_MAX]; // owning thread, NONE when that thread has nothing left

// value desc, then index asc
bool better(float va, uint ia, float vb, uint ib) {
    return va > vb || (va == vb && ia < ib);
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    const uint S0 = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u;
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    // Uniform for the whole workgroup and before the first barrier.
    if (c >= p.nChunks || r >= p.R) return;

    uint k = min(p.k, K_MAX);
    uint cStart = c * CHUNK;
    uint count = cStart < p.L ? min(CHUNK, p.L - cStart) : 0u;
    uint rowBase = r * p.ldv;

    // Private sorted top-k of this thread's entries.
    float lv[K_MAX];
    uint li[K_MAX];
    uint cnt = 0u;
    if (tid < THREADS) {
        for (uint i = 0u; i < PER_THREAD; ++i) {
            uint le = tid + THREADS * i; // entry inside the chunk
            if (le >= count) break;
            uint e = cStart + le;
            float v = vals[rowBase + e];
            if (isnan(v)) v = uintBitsToFloat(0xff800000u); // NaN counts as −inf
            uint idx = (p.hasIdx != 0u) ? inIdx[rowBase + e] : e;
            uint slot;
            if (cnt < k) {
                slot = cnt;
                cnt += 1u;
            } else if (k > 0u && better(v, idx, lv[k - 1u], li[k - 1u])) {
                slot = k - 1u; // drops the current last
            } else {
                continue;
            }
            while (slot > 0u && better(v, idx, lv[slot - 1u], li[slot - 1u])) {
                lv[slot] = lv[slot - 1u];
                li[slot] = li[slot - 1u];
                slot -= 1u;
            }
            lv[slot] = v;
            li[slot] = idx;
        }
    }

    uint head = 0u;
    uint outBase = (r * p.nChunks + c) * k;
    for (uint j = 0u; j < k; ++j) {
        bool has = head < cnt;
        sv[tid] = has ? lv[head] : EMPTY_V;
        si[tid] = has ? li[head] : NONE;
        so[tid] = has ? tid : NONE;
        barrier();
        for (uint s = S0; s > 0u; s >>= 1) {
            if (tid < s && tid + s < WG) {
                uint o = tid + s;
                // A thread with nothing left loses to everything, including −inf entries.
                bool take = so[o] != NONE &&
                            (so[tid] == NONE || better(sv[o], si[o], sv[tid], si[tid]));
                if (take) {
                    sv[tid] = sv[o];
                    si[tid] = si[o];
                    so[tid] = so[o];
                }
            }
            barrier();
        }
        uint winner = so[0];
        float wv = sv[0];
        uint wi = si[0];
        barrier(); // everyone has read the result before the next round overwrites it
        if (tid == winner) head += 1u;
        if (tid == 0u) {
            bool found = winner != NONE;
            outV[outBase + j] = found ? wv : EMPTY_V;
            outI[outBase + j] = found ? wi : NONE;
        }
    }
}
