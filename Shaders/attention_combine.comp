#version 450

// Merges attention.comp's per-chunk partials for one (head h, token t) (grid x = h, y = t):
//   M = max_c m_c, L = Σ_c l_c·exp(m_c − M), O = Σ_c o_c·exp(m_c − M) / L.
// Empty chunks (m = −3.0e38, l = 0, o = 0) contribute exp(−huge) = 0. L = 0 (impossible for a
// valid pos: chunk 0 always holds position 0) writes 0 instead of NaN.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer PB { float part[]; };
layout(std430, set = 0, binding = 1) writeonly buffer OB { float o[]; };

layout(push_constant) uniform P {
    uint T;
    uint Hq;
    uint D;
    uint nChunks;
} p;

const uint WG_MAX = 256u;
shared float red[WG_MAX];

void main() {
    const uint WG = gl_WorkGroupSize.x;
    const uint S0 = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u;
    uint tid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.x;
    uint t = gl_WorkGroupID.y;
    // Uniform for the whole workgroup and before the first barrier.
    if (h >= p.Hq || t >= p.T) return;

    uint stride = p.D + 2u;
    uint base = (t * p.Hq + h) * p.nChunks * stride;

    float mloc = -3.0e38;
    for (uint c = tid; c < p.nChunks; c += WG) mloc = max(mloc, part[base + c * stride]);
    red[tid] = mloc;
    barrier();
    for (uint s = S0; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    float M = red[0];
    barrier(); // everyone has read red[0] before it is reused

    float lloc = 0.0;
    for (uint c = tid; c < p.nChunks; c += WG) {
        uint cb = base + c * stride;
        lloc += part[cb + 1u] * exp(part[cb] - M);
    }
    red[tid] = lloc;
    barrier();
    for (uint s = S0; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) red[tid] += red[tid + s];
        barrier();
    }
    float L = red[0];

    for (uint d = tid; d < p.D; d += WG) {
        float acc = 0.0;
        for (uint c = 0u; c < p.nChunks; ++c) {
            uint cb = base + c * stride;
            acc += part[cb + 2u + d] * exp(part[cb] - M);
        }
        o[(t * p.Hq + h) * p.D + d] = L > 0.0 ? acc / L : 0.0;
    }
}
