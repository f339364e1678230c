#version 450
#extension GL_GOOGLE_include_directive : require

// Out[r, i] = (silu(G[r, i]) + s[r]·v[i]) · U[r, i], silu(x) = x / (1 + exp(-x)).
// steer = STEER_NONE skips the s/v term (bindings 3–5 then hold dummies and are not read).
// Grid: x = ceil(I / WG), y = r.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer GB { float g[]; };
layout(std430, set = 0, binding = 1) readonly buffer UB { float u[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };
layout(std430, set = 0, binding = 3) readonly buffer SB { float s[]; };
layout(std430, set = 0, binding = 4) readonly buffer VB { float v[]; };
// STEER_TABLE: row r steers with v's row vrows[r] (clamped to the table).
layout(std430, set = 0, binding = 5) readonly buffer VRB { uint vrows[]; };

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
    // STEER_ADD: a + s·v (ROAST, CAA). STEER_MUL: a + s·(v ⊙ a) (SADI's mask).
    uint mode = p.steer & 3u;
    if (mode != STEER_NONE) {
        uint vr = (p.steer & STEER_TABLE) != 0u ? min(vrows[r], uint(v.length()) / p.I - 1u) : 0u;
        float vi = v[vr * p.I + i];
        a += mode == STEER_ADD ? s[r] * vi : s[r] * (vi * a);
    }
    o[e] = a * u[e];
}
