#version 450
#extension GL_GOOGLE_include_directive : require

// Out[r, i] = (silu(G[r, i]) + s[r]·v[i]) · U[r, i], silu(x) = x / (1 + exp(-x)).
// steer = 0 skips the s/v term (bindings 3 and 4 then hold dummies and are not read).
// Grid: x = ceil(I / WG), y = r.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer GB { float g[]; };
layout(std430, set = 0, binding = 1) readonly buffer UB { float u[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };
layout(std430, set = 0, binding = 3) readonly buffer SB { float s[]; };
layout(std430, set = 0, binding = 4) readonly buffer VB { float v[]; };

#include "contract.glsl"

layout(push_constant) uniform P {
    uint I;
    uint R;
    uint steer;
} p;

void main() {
    uint r = gl_WorkGroupID.y;
    uint i = gl_GlobalInvocationID.x;
    if (r >= p.R || i >= p.I) return;
    uint e = r * p.I + i;
    float gv = g[e];
    // exp(-gv) overflowing to +inf for very negative gv gives gv / inf = -0, the right limit.
    float a = gv / (1.0 + exp(-gv));
    // steer 1: additive, a + s·v (ROAST, CAA). steer 2: multiplicative, a + s·(v ⊙ a) (SADI's mask).
    if (p.steer == STEER_ADD) a += s[r] * v[i];
    else if (p.steer == STEER_MUL) a += s[r] * (v[i] * a);
    o[e] = a * u[e];
}
