#version 450
#extension GL_GOOGLE_include_directive : require

// Rotary embedding, in place, on X [T × H × D]: the first rotDim dims of every head are rotated by
// a = float(pos[t]) · invFreq[i], i < rotDim/2.
//   layout 0 (rotate-half, NeoX/HF): pairs (i, i + rotDim/2)
//   layout 1 (interleaved, GGUF llama): pairs (2i, 2i + 1)
// x0' = x0·cos a − x1·sin a, x1' = x0·sin a + x1·cos a. Dims ≥ rotDim are untouched.
// Grid: x = ceil(H·rotDim/2 / WG), y = t; one invocation per rotated pair.

layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) buffer XB { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer PB { uint pos[]; };
layout(std430, set = 0, binding = 2) readonly buffer FB { float invFreq[]; };

#include "contract.glsl"

layout(push_constant) uniform P {
    uint T;
    uint H;
    uint D;
    uint rotDim;
    uint layout_;
} p;

// a can reach ~1e5 rad at long contexts. Reduce it to [-π, π] first (Cody-Waite, 2π split so
// that k·C1 is exact) so the result is sin/cos of the same float a the CPU twin uses, without
// depending on how the driver reduces large arguments.
float reduce2pi(float a) {
    const float INV_2PI = 0.15915494309189535;
    const float C1 = 6.28125;                  // 8 significant bits: k·C1 exact for k < 2^16
    const float C2 = 1.9353071795864769e-3;    // 2π − C1
    float k = round(a * INV_2PI);
    return (a - k * C1) - k * C2;
}

void main() {
    uint t = gl_WorkGroupID.y;
    uint half_ = p.rotDim / 2u;
    uint idx = gl_GlobalInvocationID.x;
    if (t >= p.T || idx >= p.H * half_) return;
    uint h = idx / half_;
    uint i = idx - h * half_;

    uint base = (t * p.H + h) * p.D;
    uint i0, i1;
    if (p.layout_ == ROPE_ROTATE_HALF) {
        i0 = i;
        i1 = i + half_;
    } else {
        i0 = 2u * i;
        i1 = 2u * i + 1u;
    }
    float a = reduce2pi(float(pos[t]) * invFreq[i]);
    float c = cos(a);
    float s = sin(a);
    float x0 = xs[base + i0];
    float x1 = xs[base + i1];
    xs[base + i0] = x0 * c - x1 * s;
    xs[base + i1] = x0 * s + x1 * c;
}
