#version 450
#extension GL_GOOGLE_include_directive : require

// The second half of a split-K matmul: Y[m, n] = EPILOGUE(Σ_z P[z, m, n]) over the p.slices partial
// sums that matmul_gpu.comp or matmul_coopmat.comp stored with SPLIT = 1 (P is [slices][M][N], N
// the whole weight's rows). Invocation x of row group m takes the row pair n = 2x, n + 1, so the
// gate/up and RoPE epilogues get their pairs; the epilogue is the tiled kernels' own
// (include/epilogue.glsl), bindings 3–8 as theirs. Binding 1 (the matmul's X) is not read.

layout(local_size_x_id = 0) in;
layout(constant_id = 4) const uint EPILOGUE = 0;

layout(std430, set = 0, binding = 0) readonly buffer PB { float part[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

#include "matmul_push.glsl"

#include "epilogue.glsl"

void main() {
    uint n = 2u * gl_GlobalInvocationID.x;
    uint m = gl_WorkGroupID.y;
    if (n >= p.N || m >= p.M) return;
    bool second = n + 1u < p.N;
    uint stride = p.M * p.N, at = m * p.N + n;
    float a = 0.0, b = 0.0;
    for (uint z = 0u; z < p.slices; ++z) {
        a += part[z * stride + at];
        if (second) b += part[z * stride + at + 1u];
    }
    if (EPILOGUE == EPI_SILU_GATE) {
        epi_store_gate(m, n, a, b);
    } else if (EPILOGUE == EPI_ATTN_INPUT) {
        epi_store_attention(m, n, a, b);
    } else {
        epi_store(m, n, a);
        if (second) epi_store(m, n + 1u, b);
    }
}
