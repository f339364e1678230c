#version 450

// Out[r, i] = X[r, i] / sqrt(mean(X[r, :]²) + eps) · w[i]; one workgroup per row (2-D grid rule).
// In-place is safe: every element is read and later written by the same invocation.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer XB { float xin[]; };
layout(std430, set = 0, binding = 1) readonly buffer WB { float wt[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };

layout(push_constant) uniform P {
    uint D;
    uint R;
    float eps;
} p;

const uint WG_MAX = 256u;
shared float red[WG_MAX];

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    // Uniform for the whole workgroup and before the first barrier.
    if (row >= p.R) return;

    uint base = row * p.D;
    float ss = 0.0;
    for (uint i = tid; i < p.D; i += WG) {
        float v = xin[base + i];
        ss += v * v;
    }
    red[tid] = ss;
    barrier();
    for (uint s = (WG > 1u) ? (1u << findMSB(WG - 1u)) : 0u; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG) red[tid] += red[tid + s];
        barrier();
    }
    float scale = 1.0 / sqrt(red[0] / float(p.D) + p.eps);
    for (uint i = tid; i < p.D; i += WG) o[base + i] = xin[base + i] * scale * wt[i];
}
