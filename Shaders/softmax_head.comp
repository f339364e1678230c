#version 450

// A row's softmax head, so a sampler need not read the row back (docs/KERNELS.md). Per row r of
// X (entry i at X[r·L + i], i < L), at scale c = invT[r] > 0 (1 / temperature):
//   M = the largest non-NaN entry (−inf if none),
//   S = Σ exp((x − M)·c) over the non-NaN entries (NaN and −inf add nothing),
//   the head: every entry whose distance d = (M − x)·c (in nats of the tempered softmax) has
//   uint(d) < W, for the widest W ≤ bins whose head fits cap entries. A head is every entry
//   above a threshold, so a prefix of the row's ranking, ties included.
// Out (uint words) at r·(4 + 2·cap): M bits, S bits, the head's count n, W; then n pairs (value
// bits, index) in no particular order. W = 0 when even the first nat holds more than cap
// entries: then n is that count (> cap) and no pairs are written.
// One workgroup per row (2-D grid rule). Pass 1: each invocation keeps a running (m, s) over
// entries tid, tid + WG, … (one exp per entry); a shared-memory tree merges them. Pass 2 reads
// the row again (a cache hit on a GPU) and counts the entries of each whole nat of d below
// bins; pass 3 appends the head's entries through a shared counter.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer XB { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer TB { float invT[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { uint o[]; };

layout(push_constant) uniform P {
    uint L;
    uint R;
    uint cap;
    uint bins;
} p;

#define NEG_INF uintBitsToFloat(0xff800000u)
const uint WG_MAX = 256u;
shared float redM[WG_MAX];
shared float redS[WG_MAX];
const uint BINS_MAX = 32u;
shared uint binCount[BINS_MAX];
shared uint headCount;
shared uint headWindow;
shared uint headSlots;

// (m, s) ⊕ (m2, s2) at scale c; a side that saw no entry is (−inf, 0).
void merge(inout float m, inout float s, float m2, float s2, float c) {
    if (m2 == NEG_INF) return;
    if (m == NEG_INF) {
        m = m2;
        s = s2;
        return;
    }
    float mx = max(m, m2);
    s = s * exp((m - mx) * c) + s2 * exp((m2 - mx) * c);
    m = mx;
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    // Uniform for the whole workgroup and before the first barrier.
    if (row >= p.R) return;

    float c = invT[row];
    uint base = row * p.L;
    float m = NEG_INF, s = 0.0;
    for (uint i = tid; i < p.L; i += WG) {
        float v = x[base + i];
        // NaN and −inf entries weigh nothing (the sampler drops NaN; exp(−inf) is 0).
        if (isnan(v) || v == NEG_INF) continue;
        if (v > m) {
            s = s * exp((m - v) * c) + 1.0;
            m = v;
        } else {
            s += exp((v - m) * c);
        }
    }
    redM[tid] = m;
    redS[tid] = s;
    if (tid < BINS_MAX) binCount[tid] = 0u;
    if (tid == 0u) headSlots = 0u;
    barrier();
    for (uint h = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u; h > 0u; h >>= 1) {
        if (tid < h && tid + h < WG) {
            float mm = redM[tid], sa = redS[tid];
            merge(mm, sa, redM[tid + h], redS[tid + h], c);
            redM[tid] = mm;
            redS[tid] = sa;
        }
        barrier();
    }
    float rowMax = redM[0];
    uint outBase = row * (4u + 2u * p.cap);
    uint bins = min(p.bins, BINS_MAX);
    // A row with no real entry has no head; one whose maximum is +inf, none usable (d is NaN or
    // +inf for every entry), so the host reads it back.
    bool real = rowMax != NEG_INF;
    if (real) {
        for (uint i = tid; i < p.L; i += WG) {
            // The same f32 expression as the CPU twin, so both put each entry in the same nat.
            float d = (rowMax - x[base + i]) * c;
            if (d < float(bins)) atomicAdd(binCount[uint(d)], 1u);  // false for NaN
        }
    }
    barrier();
    if (tid == 0u) {
        uint w = 0u, n = 0u;
        while (w < bins && n + binCount[w] <= p.cap) {
            n += binCount[w];
            w += 1u;
        }
        headWindow = w;
        headCount = w == 0u ? binCount[0] : n;
    }
    barrier();
    uint window = headWindow;
    if (real && window > 0u) {
        for (uint i = tid; i < p.L; i += WG) {
            float v = x[base + i];
            float d = (rowMax - v) * c;
            if (d < float(window)) {
                uint at = atomicAdd(headSlots, 1u);
                o[outBase + 4u + 2u * at] = floatBitsToUint(v);
                o[outBase + 5u + 2u * at] = i;
            }
        }
    }
    if (tid == 0u) {
        o[outBase] = floatBitsToUint(rowMax);
        o[outBase + 1u] = floatBitsToUint(redS[0]);
        o[outBase + 2u] = headCount;
        o[outBase + 3u] = window;
    }
}
