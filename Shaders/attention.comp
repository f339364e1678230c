#version 450

// Causal GQA attention, one 256-position chunk of one (query token t, head h) per workgroup
// (flash-decoding; grid x = chunk c, y = h, z = t). Writes the chunk's partial softmax state
//   Part[((t·Hq + h)·nChunks + c)·(D + 2) + …] = (m, l, o[0..D-1])
// with m = max score, l = Σ exp(s − m), o = Σ exp(s − m)·V, over positions 256c … min(256c+255,
// pos[t]) of sequence seq[t]. A chunk that starts beyond pos[t] writes m = −3.0e38, l = 0, o = 0.
// Scores are scale · (Q·K), each a D-long dot in f32.

layout(local_size_x_id = 0) in;

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
} p;

const uint CHUNK = 256u;
const uint WG_MAX = 256u;
const uint D_MAX = 256u;
const float EMPTY_M = -3.0e38;

shared float qsh[D_MAX];
shared float sc[CHUNK]; // scores, then exp(s − m)
shared float red[WG_MAX];

void main() {
    const uint WG = gl_WorkGroupSize.x;
    const uint S0 = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u; // tree reduction start
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.x;
    uint h = gl_WorkGroupID.y;
    uint t = gl_WorkGroupID.z;
    uint D = p.D;
    // All early returns below are uniform for the workgroup and come before the first barrier.
    if (t >= p.T || h >= p.Hq || c >= p.nChunks) return;

    uint outBase = ((t * p.Hq + h) * p.nChunks + c) * (D + 2u);
    uint P = pos[t];
    uint p0 = c * CHUNK;
    if (p0 > P) {
        for (uint i = tid; i < D + 2u; i += WG) part[outBase + i] = (i == 0u) ? EMPTY_M : 0.0;
        return;
    }
    uint n = min(CHUNK, P + 1u - p0); // positions p0 … p0+n-1 are visible

    uint hk = h / (p.Hq / p.Hkv);
    uint rowStride = p.Hkv * D;                         // one cache position
    uint kvBase = ((seq[t] * p.C + p0) * p.Hkv + hk) * D; // position p0, head hk, dim 0
    uint D4 = D & ~3u;

    for (uint d = tid; d < D; d += WG) qsh[d] = q[(t * p.Hq + h) * D + d];
    barrier();

    // Scores.
    float mloc = EMPTY_M;
    for (uint j = tid; j < n; j += WG) {
        uint kb = kvBase + j * rowStride;
        float acc = 0.0;
        for (uint d = 0u; d < D4; d += 4u) {
            acc += dot(vec4(qsh[d], qsh[d + 1u], qsh[d + 2u], qsh[d + 3u]),
                       vec4(kc[kb + d], kc[kb + d + 1u], kc[kb + d + 2u], kc[kb + d + 3u]));
        }
        for (uint d = D4; d < D; ++d) acc += qsh[d] * kc[kb + d];
        float s = p.scale * acc;
        sc[j] = s;
        mloc = max(mloc, s);
    }

    // m = max over the chunk.
    red[tid] = mloc;
    barrier();
    for (uint s = S0; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    float m = red[0];
    barrier(); // everyone has read red[0] before it is reused

    // l = Σ exp(s − m); sc[] becomes the weights.
    float lloc = 0.0;
    for (uint j = tid; j < n; j += WG) {
        float e = exp(sc[j] - m);
        sc[j] = e;
        lloc += e;
    }
    red[tid] = lloc;
    barrier();
    for (uint s = S0; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) red[tid] += red[tid + s];
        barrier();
    }
    float l = red[0];

    // o[d] = Σ_j exp(s_j − m) · V[p0 + j, d]; the barriers above made all of sc[] visible.
    uint n4 = n & ~3u;
    for (uint d = tid; d < D; d += WG) {
        uint vb = kvBase + d;
        float o = 0.0;
        for (uint j = 0u; j < n4; j += 4u) {
            o += dot(vec4(sc[j], sc[j + 1u], sc[j + 2u], sc[j + 3u]),
                     vec4(vc[vb + j * rowStride], vc[vb + (j + 1u) * rowStride],
                          vc[vb + (j + 2u) * rowStride], vc[vb + (j + 3u) * rowStride]));
        }
        for (uint j = n4; j < n; ++j) o += sc[j] * vc[vb + j * rowStride];
        part[outBase + 2u + d] = o;
    }
    if (tid == 0u) {
        part[outBase] = m;
        part[outBase + 1u] = l;
    }
}
