#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// The GPU family's matrix × vector kernel: Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] for
// m < MCOLS ≤ 8, through the EPILOGUE (include/epilogue.glsl).
//
// A workgroup owns RPW consecutive weight rows; its subgroups take ROWS rows at a time (a pair:
// the gate/up and RoPE epilogues combine rows 2j and 2j + 1). The lanes of a subgroup split K in
// runs of 16 elements: lane l decodes runs l, l + S, l + 2S … of its rows (S = the subgroup size,
// whatever the driver picked), so neighbouring lanes read neighbouring bytes of a row and the
// loads coalesce; each X quad a lane reads serves all its rows. The per-lane sums are reduced
// with subgroupAdd: no shared memory, no barrier. Why not the lavapipe shape (matvec.comp, one
// invocation per row): on a GPU a whole warp then walks 32 rows 32 rows apart, every load is a
// separate cache line, and a 896-row matrix keeps 28 warps busy on a 132-SM device.
//
// Needs K a multiple of 4 (X is read as vec4 storage); runs cover K rounded down to 16 and a
// quad loop covers the rest (float formats only: quantised K is a multiple of 32 or 256).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 2) const uint MCOLS = 1;
layout(constant_id = 3) const uint ROWS = 2;
layout(constant_id = 4) const uint EPILOGUE = 0;
// 1: RMSNorm of each X column on the way in (as matvec.comp: Σx² kept, g applied, 1/rms at the end).
layout(constant_id = 5) const uint NORM = 0;
// Rows per workgroup, a multiple of ROWS; the host sizes the grid with it.
layout(constant_id = 6) const uint RPW = 8;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer XB { vec4 xv[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };
layout(std430, set = 0, binding = 9) readonly buffer GNB { vec4 gv[]; };

#include "matmul_push.glsl"

#include "formats.glsl"
#include "epilogue.glsl"

// Four consecutive weights from element e (e a multiple of 4; float formats, for the K tail).
vec4 w_quad(uint e) {
    if (FORMAT == FMT_F32) return w_f32x4(e);
    if (FORMAT == FMT_F16) return w_f16x4(e);
    return w_bf16x4(e);
}

void main() {
    // The lanes this subgroup really has: Vulkan promises full subgroups only on request, so a
    // partial one (lanes 0 … S-1 present) splits K over the lanes it has.
    uint lane = gl_SubgroupInvocationID, S = subgroupMax(lane) + 1u;
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint K4 = p.K / 4u;
    uint runs = p.K / 16u;

    for (uint r0 = wg * RPW + gl_SubgroupID * ROWS; r0 < min(wg * RPW + RPW, p.N); r0 += gl_NumSubgroups * ROWS) {
        // A row past the last one decodes row N-1 and writes nothing.
        uint rowE[ROWS];
        [[unroll]] for (uint r = 0u; r < ROWS; ++r) rowE[r] = min(r0 + r, p.N - 1u) * p.K;
        float acc[ROWS][MCOLS];
        float ss[MCOLS];
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
            ss[m] = 0.0;
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] = 0.0;
        }
        for (uint run = lane; run < runs; run += S) {
            uint k0 = run * 16u;
            vec4 wr[ROWS][4];
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) w_run16(rowE[r] + k0, wr[r]);
            vec4 g[4];
            if (NORM != 0u) {
                [[unroll]] for (uint i = 0u; i < 4u; ++i) g[i] = gv[k0 / 4u + i];
            }
            [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                    vec4 x = xv[m * K4 + k0 / 4u + i];
                    if (NORM != 0u) {
                        ss[m] += dot(x, x);
                        x *= g[i];
                    }
                    [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] += dot(wr[r][i], x);
                }
            }
        }
        // K tail in quads (float formats: K a multiple of 4, not of 16).
        for (uint q = runs * 4u + lane; q < K4; q += S) {
            [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                vec4 x = xv[m * K4 + q];
                if (NORM != 0u) {
                    ss[m] += dot(x, x);
                    x *= gv[q];
                }
                [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] += dot(w_quad(rowE[r] + 4u * q), x);
            }
        }
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
            float scale = NORM != 0u ? 1.0 / sqrt(subgroupAdd(ss[m]) / float(p.K) + p.eps) : 1.0;
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] = subgroupAdd(acc[r][m]) * scale;
        }
        if (lane == 0u) {
            if (EPILOGUE == EPI_SILU_GATE || EPILOGUE == EPI_ATTN_INPUT) {
                // ROWS and r0 are even and N is even: the subgroup holds whole pairs.
                [[unroll]] for (uint r = 0u; r < ROWS; r += 2u) {
                    if (r0 + r < p.N) {
                        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                            if (EPILOGUE == EPI_SILU_GATE) epi_store_gate(m, p.yOffset + r0 + r, acc[r][m], acc[r + 1u][m]);
                            else epi_store_attention(m, p.yOffset + r0 + r, acc[r][m], acc[r + 1u][m]);
                        }
                    }
                }
            } else {
                [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
                    if (r0 + r < p.N) {
                        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) epi_store(m, p.yOffset + r0 + r, acc[r][m]);
                    }
                }
            }
        }
    }
}
