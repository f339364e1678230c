#version 450
#extension GL_GOOGLE_include_directive : require

// Out[t, :] = decode(W[ids[t] - rowStart, :]) for the t whose id lies in this weight chunk
// [rowStart, rowStart + rowCount); other rows of Out are left untouched.
// Grid: x = ceil(K / WG), y = t. One element per invocation (w_elem decodes any format; for
// quantised formats K is a multiple of the block size, so rows start on block boundaries).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer IB { uint ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };

layout(push_constant) uniform P {
    uint K;
    uint T;
    uint rowStart;
    uint rowCount;
} p;

#include "formats.glsl"

void main() {
    uint t = gl_WorkGroupID.y;
    uint k = gl_GlobalInvocationID.x;
    if (t >= p.T || k >= p.K) return;
    // Unsigned wrap-around makes ids below rowStart fail this test too.
    uint row = ids[t] - p.rowStart;
    if (row >= p.rowCount) return;
    o[t * p.K + k] = w_elem(row * p.K + k);
}
