#version 450

// Out[dst[t], :] = In[t, :] for t < T, row width W (writes K/V rows into the cache).
// Grid: x = ceil(W / WG), y = t.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer IB { float src[]; };
layout(std430, set = 0, binding = 1) readonly buffer DB { uint dst[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };

layout(push_constant) uniform P {
    uint W;
    uint T;
} p;

void main() {
    uint t = gl_WorkGroupID.y;
    uint i = gl_GlobalInvocationID.x;
    if (t >= p.T || i >= p.W) return;
    o[dst[t] * p.W + i] = src[t * p.W + i];
}
