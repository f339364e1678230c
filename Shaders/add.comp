#version 450
#extension GL_GOOGLE_include_directive : require

// Out[r, i] = A[r, i] + (hasB ? B[r, i] : 0) + (steer ? s[r]·v[i] : 0), summed left to right.
// In-place (Out = A) is safe: each element is read and written by one invocation.
// Grid: x = ceil(W / WG), y = r.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer AB { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer BB { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer OB { float o[]; };
layout(std430, set = 0, binding = 3) readonly buffer SB { float s[]; };
layout(std430, set = 0, binding = 4) readonly buffer VB { float v[]; };
// STEER_TABLE: row r steers with v's row vrows[r] (clamped to the table).
layout(std430, set = 0, binding = 5) readonly buffer VRB { uint vrows[]; };

#include "contract.glsl"

layout(push_constant) uniform P {
    uint W;
    uint R;
    uint hasB;
    uint steer;
} p;

void main() {
    uint r = gl_WorkGroupID.y;
    uint i = gl_GlobalInvocationID.x;
    if (r >= p.R || i >= p.W) return;
    uint e = r * p.W + i;
    float acc = a[e];
    if (p.hasB != 0u) acc += b[e];
    // STEER_ADD: + s·v. STEER_MUL: multiplicative on the sum, + s·(v ⊙ (A + B)) (SADI).
    uint mode = p.steer & 3u;
    if (mode != STEER_NONE) {
        uint vr = (p.steer & STEER_TABLE) != 0u ? min(vrows[r], uint(v.length()) / p.W - 1u) : 0u;
        float vi = v[vr * p.W + i];
        acc += mode == STEER_ADD ? s[r] * vi : s[r] * (vi * acc);
    }
    o[e] = acc;
}
