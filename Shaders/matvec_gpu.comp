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
// KSPLIT > 1 ("a few subgroups per row"): KSPLIT subgroups share each row group, subgroup s taking
// K part s % KSPLIT (runs (s % KSPLIT)·S + lane, stepping KSPLIT·S), and add their sums through
// shared memory. The host asks for it when the rows alone give too few subgroups to keep a large
// GPU's memory system busy (a 7B model's 3,584-row projections: 1,792 subgroups) and K is long
// enough that every lane still walks at least two runs.
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
// Subgroups sharing a row group (1, 2 or 4; divides the workgroup's subgroup count).
layout(constant_id = 7) const uint KSPLIT = 1;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
// The same weights as 16-byte quads (formats.glsl's WORD4): f32 runs and quads (every element
// index here is a multiple of 4: K is, and runs start on 16) and q4_k's quants in one load each;
// f16 and bf16 runs in two where K is a multiple of 8 (then every run starts on 8 elements).
layout(std430, set = 0, binding = 0) readonly buffer WB4 { uvec4 w4[]; };
#define WORD4(i) w4[i]
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

// K-split partial sums: [subgroup][row][column], and the norm's Σx² [subgroup][column], for up to
// 32 subgroups (the host's 4 of the device's subgroup size, or more if the driver picks smaller ones).
shared float partAcc[KSPLIT > 1u ? 32u * ROWS * MCOLS : 1u];
shared float partSS[KSPLIT > 1u ? 32u * MCOLS : 1u];

void main() {
    // The lanes this subgroup really has: Vulkan promises full subgroups only on request, so a
    // partial one (lanes 0 … S-1 present) splits K over the lanes it has.
    uint lane = gl_SubgroupInvocationID, S = subgroupMax(lane) + 1u;
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint K4 = p.K / 4u;
    uint runs = p.K / 16u;
    bool halves16 = (FORMAT == FMT_F16 || FORMAT == FMT_BF16) && (p.K & 7u) == 0u;
    // This subgroup's team (row group) and K part; teams step through the workgroup's rows.
    uint team = gl_SubgroupID / KSPLIT, part = gl_SubgroupID % KSPLIT;
    uint teams = gl_NumSubgroups / KSPLIT;

    // The same trip count for every subgroup (the K-split's barriers need uniform control flow):
    // rows past N decode row N-1 and write nothing, as do rows past the workgroup's (where the
    // driver's subgroups are smaller than the host planned, teams cover more than RPW rows).
    uint end = wg * RPW + RPW;
    for (uint base = wg * RPW; base < end; base += teams * ROWS) {
        uint r0 = base + team * ROWS;
        uint rowE[ROWS];
        [[unroll]] for (uint r = 0u; r < ROWS; ++r) rowE[r] = min(r0 + r, p.N - 1u) * p.K;
        float acc[ROWS][MCOLS];
        float ss[MCOLS];
        [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
            ss[m] = 0.0;
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] = 0.0;
        }
        for (uint run = part * S + lane; run < runs; run += KSPLIT * S) {
            uint k0 = run * 16u;
            vec4 wr[ROWS][4];
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) {
                if (halves16) w_run16_halves(rowE[r] + k0, wr[r]);
                else w_run16(rowE[r] + k0, wr[r]);
            }
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
        for (uint q = runs * 4u + part * S + lane; q < K4; q += KSPLIT * S) {
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
            if (NORM != 0u) ss[m] = subgroupAdd(ss[m]);
            [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] = subgroupAdd(acc[r][m]);
        }
        if (KSPLIT > 1u) {
            // Every part's lane 0 leaves its sums; part 0 adds the others' to its own.
            if (lane == 0u) {
                [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                    partSS[gl_SubgroupID * MCOLS + m] = ss[m];
                    [[unroll]] for (uint r = 0u; r < ROWS; ++r) partAcc[(gl_SubgroupID * ROWS + r) * MCOLS + m] = acc[r][m];
                }
            }
            barrier();
            if (part == 0u && lane == 0u) {
                for (uint o = 1u; o < KSPLIT; ++o) {
                    uint sg = gl_SubgroupID + o;
                    [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                        ss[m] += partSS[sg * MCOLS + m];
                        [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] += partAcc[(sg * ROWS + r) * MCOLS + m];
                    }
                }
            }
            barrier();
        }
        if (part == 0u && lane == 0u && r0 < end) {
            [[unroll]] for (uint m = 0u; m < MCOLS; ++m) {
                float scale = NORM != 0u ? 1.0 / sqrt(ss[m] / float(p.K) + p.eps) : 1.0;
                [[unroll]] for (uint r = 0u; r < ROWS; ++r) acc[r][m] *= scale;
            }
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
