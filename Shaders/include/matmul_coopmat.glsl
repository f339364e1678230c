// The cooperative-matrix matmul (matmul_coopmat.comp on the matrix units; with COOPMAT_EMULATED
// defined, matmul_coopmat_emulated.comp, the same code with the matrix operations in plain GLSL).
//
// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] through the EPILOGUE (include/epilogue.glsl), products in
// f16 × f16 → f32. A workgroup of 128 invocations (4 subgroups of 32) computes a 64 (n) × 64 (m)
// tile and steps K by 32. Each step every invocation decodes one 16-element run of one weight row
// (`w_run16`: each quantised block once per tile) and loads one 16-element run of one X row, both
// rounded to f16 into shared memory with the rows contiguous in k (stride LDA): A = W[n][k]
// row-major, B = X[m][k] read as the column-major K × M matrix Xᵀ. Subgroup s owns the 32 × 32
// quarter (n = 32 (s & 1), m = 32 (s >> 1)) as (32 / CM_M) × (32 / CM_N) accumulators. Each step's
// runs are loaded into registers during the step before (stage_load), so the loads overlap the
// matrix products; the shared tiles stay single (two barriers a step). After the K
// loop the accumulators go to shared memory column-major (Cs[m][n]), and every invocation applies
// the epilogue to pairs of adjacent rows, as matmul_gpu.comp does (gate/up and RoPE need pairs).
//
// With SPLIT = 1 workgroup z covers only K slice z (p.kSlice elements) and stores raw partial sums
// for matmul_reduce.comp (split_store, include/epilogue.glsl), as matmul_gpu.comp does.
//
// f16 range: X is clamped to ±65504 on the way in (an activation beyond it would otherwise become
// inf); the quantised formats', f16's and bf16's weights fit; the host keeps f32 weights on
// matmul_gpu.comp unless asked.

#ifndef MATMUL_COOPMAT_GLSL
#define MATMUL_COOPMAT_GLSL

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FORMAT = 0;
layout(constant_id = 4) const uint EPILOGUE = 0;
layout(constant_id = 7) const uint SPLIT = 0;
// The matrix shape the device lists for f16 · f16 + f32 (host-chosen; each divides 32). The
// emulation takes 16 × 16 × 16 only.
layout(constant_id = 10) const uint CM_M = 16;
layout(constant_id = 11) const uint CM_N = 16;
layout(constant_id = 12) const uint CM_K = 16;

layout(std430, set = 0, binding = 0) readonly buffer WB { uint w[]; };
layout(std430, set = 0, binding = 1) readonly buffer XB { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YB { float y[]; };

#include "matmul_push.glsl"

#include "formats.glsl"
#include "epilogue.glsl"

const uint TN = 64u, TM = 64u, TK = 32u;
// Row stride of the f16 tiles: 32 + 8 halves (80 bytes, a multiple of the 16 bytes cooperative
// loads want), so the 8 rows one load touches start in different banks.
const uint LDA = 40u;
// Row stride of the f32 result tile: 64 + 4 floats (272 bytes).
const uint LDC = 68u;
const uint RN = 32u / CM_M, RM = 32u / CM_N; // accumulators per subgroup along n and m

shared float Cs[TM * LDC]; // Cs[m][n]

#ifndef COOPMAT_EMULATED

shared float16_t Ws[TN * LDA]; // Ws[n][k]
shared float16_t Xs[TM * LDA]; // Xs[m][k]
#define STAGE_PAIR(tile, i, a, b) tile[i] = float16_t(a); tile[(i) + 1u] = float16_t(b)
#define ACC_T fcoopmatNV<32, gl_ScopeSubgroup, CM_M, CM_N>
#define A_T fcoopmatNV<16, gl_ScopeSubgroup, CM_M, CM_K>
#define B_T fcoopmatNV<16, gl_ScopeSubgroup, CM_K, CM_N>
#define ACC_ZERO ACC_T(0.0)
#define CM_LOAD(frag, tile, off, ld, colMajor) coopMatLoadNV(frag, tile, off, ld, colMajor)
#define CM_MULADD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE(acc, off, ld, colMajor) coopMatStoreNV(acc, Cs, off, ld, colMajor)
#define WARP_ID gl_SubgroupID
#define STEP_UNROLL [[unroll]]

#else // the emulation: the same arguments, the operations' definitions written out

shared uint Ws[TN * LDA / 2u]; // f16 pairs (16-bit shared storage would need a device feature)
shared uint Xs[TM * LDA / 2u];
#define STAGE_PAIR(tile, i, a, b) tile[(i) >> 1] = packHalf2x16(vec2(a, b))
// A loaded matrix: where its element (r, c) lives, as coopMatLoadNV reads it (offset, stride and
// layout are kept, not copied: the tiles do not change between a load and its use).
struct EmuFrag { uint off; uint ld; bool colMajor; uint tile; };
// An accumulator: lane l holds elements l + 32 q (row-major) of the 16 × 16 matrix.
struct EmuAcc { float v[8]; };
#define EMU_Ws 0u
#define EMU_Xs 1u
#define ACC_T EmuAcc
#define A_T EmuFrag
#define B_T EmuFrag
#define ACC_ZERO EmuAcc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_LOAD(frag, tile, off, ld, colMajor) frag = EmuFrag(off, ld, colMajor, EMU_##tile)
#define CM_MULADD(a, b, c) emu_muladd(a, b, c)
#define CM_STORE(acc, off, ld, colMajor) emu_store(acc, off, ld, colMajor)
#define WARP_ID (gl_LocalInvocationID.x >> 5)
// A K step's products as loops, so the unrolled 128 multiply-adds of emu_muladd are compiled
// once, not 2 × 4 times: llvmpipe took ~15–25 s to compile each of the kernel's ~30 variants
// unrolled (the same sums in the same order either way). Not the loops inside emu_muladd: llvmpipe
// counts a loop's iterations over the whole invocation and stops it at 65,535, and those would
// run 128 times per product, 1,024 per K step.
#define STEP_UNROLL [[dont_unroll]]

float emu_read(uint tile, uint i) {
    uint word = tile == EMU_Ws ? Ws[i >> 1] : Xs[i >> 1];
    return unpackHalf2x16(word)[i & 1u];
}

// Element (r, c) of a matrix loaded with `ld` and `colMajor`.
float emu_elem(EmuFrag f, uint r, uint c) {
    return emu_read(f.tile, f.off + (f.colMajor ? c * f.ld + r : r * f.ld + c));
}

EmuAcc emu_muladd(EmuFrag a, EmuFrag b, EmuAcc acc) {
    uint lane = gl_LocalInvocationID.x & 31u;
    [[unroll]] for (uint q = 0u; q < 8u; ++q) {
        uint e = lane + 32u * q, r = e >> 4, c = e & 15u;
        float s = acc.v[q];
        [[unroll]] for (uint k = 0u; k < 16u; ++k) s += emu_elem(a, r, k) * emu_elem(b, k, c);
        acc.v[q] = s;
    }
    return acc;
}

void emu_store(EmuAcc acc, uint off, uint ld, bool colMajor) {
    uint lane = gl_LocalInvocationID.x & 31u;
    [[unroll]] for (uint q = 0u; q < 8u; ++q) {
        uint e = lane + 32u * q, r = e >> 4, c = e & 15u;
        Cs[off + (colMajor ? c * ld + r : r * ld + c)] = acc.v[q];
    }
}

#endif

// One K step's share of the staging, into registers: the 16-element run of weight row n0 + sr
// and of X row m0 + sr at k0 + sk (zeros past N, M or the K range), X clamped to f16's range
// (an activation past ±65504 saturates instead of becoming an infinity).
void stage_load(uint k0, uint kEnd, uint sr, uint sk, bool wIn, bool xIn, uint n0, uint m0, out vec4 v[4], out float xv[16]) {
    uint K = p.K, k = k0 + sk;
    if (!wIn || k >= kEnd) {
        v[0] = v[1] = v[2] = v[3] = vec4(0.0);
    } else if (k + 16u <= kEnd) {
        w_run16((n0 + sr) * K + k, v);
    } else { // K tail, float formats only (quantised K is a multiple of 32 or 256)
        for (uint i = 0u; i < 16u; ++i) v[i >> 2][i & 3u] = k + i < kEnd ? w_elem((n0 + sr) * K + k + i) : 0.0;
    }
    uint xo = (m0 + sr) * K + k;
    [[unroll]] for (uint i = 0u; i < 16u; ++i) {
        float v = xIn && k + i < kEnd ? x[xo + i] : 0.0;
        // A NaN stays NaN (clamp's result for it is undefined: min/max give the other operand),
        // so a NaN activation reaches the output as it does through the other kernels.
        xv[i] = isnan(v) ? v : clamp(v, -65504.0, 65504.0);
    }
}

void main() {
    uint t = gl_LocalInvocationID.x;
    uint n0 = gl_WorkGroupID.x * TN;
    uint m0 = gl_WorkGroupID.y * TM;
    uint K = p.K;
    // This workgroup's K range: all of it, or its split-K slice (kSlice a multiple of TK).
    uint kBegin = SPLIT != 0u ? gl_WorkGroupID.z * p.kSlice : 0u;
    uint kEnd = SPLIT != 0u ? min(K, kBegin + p.kSlice) : K;

    // Staging: invocation t owns row / column t / 2 and the k-half 16 · (t % 2) of both tiles.
    uint sr = t >> 1, sk = (t & 1u) * 16u;
    bool wIn = n0 + sr < p.N, xIn = m0 + sr < p.M;

    uint sg = WARP_ID;
    uint wn = 32u * (sg & 1u), wm = 32u * (sg >> 1);
    ACC_T acc[RN][RM];
    [[unroll]] for (uint i = 0u; i < RN; ++i)
        [[unroll]] for (uint j = 0u; j < RM; ++j) acc[i][j] = ACC_ZERO;

    // Software pipelining: the next K step's weights and X are loaded into registers while the
    // matrix units work on this one's tiles, so a workgroup's global loads overlap its own
    // products instead of waiting on other workgroups to hide them (a 512-token prefill of a
    // 896-row projection has only ~1 workgroup per multiprocessor of a large GPU).
    vec4 v[4];
    float xv[16];
    stage_load(kBegin, kEnd, sr, sk, wIn, xIn, n0, m0, v, xv);
    for (uint k0 = kBegin; k0 < kEnd; k0 += TK) {
        [[unroll]] for (uint i = 0u; i < 16u; i += 2u) {
            STAGE_PAIR(Ws, sr * LDA + sk + i, v[i >> 2][i & 3u], v[i >> 2][(i & 3u) + 1u]);
            STAGE_PAIR(Xs, sr * LDA + sk + i, xv[i], xv[i + 1u]);
        }
        barrier();
        if (k0 + TK < kEnd) stage_load(k0 + TK, kEnd, sr, sk, wIn, xIn, n0, m0, v, xv);
        STEP_UNROLL for (uint kk = 0u; kk < TK; kk += CM_K) {
            A_T a[RN];
            B_T b[RM];
            [[unroll]] for (uint i = 0u; i < RN; ++i) CM_LOAD(a[i], Ws, (wn + i * CM_M) * LDA + kk, LDA, false);
            [[unroll]] for (uint j = 0u; j < RM; ++j) CM_LOAD(b[j], Xs, (wm + j * CM_N) * LDA + kk, LDA, true);
            STEP_UNROLL for (uint i = 0u; i < RN; ++i)
                STEP_UNROLL for (uint j = 0u; j < RM; ++j) acc[i][j] = CM_MULADD(a[i], b[j], acc[i][j]);
        }
        barrier();
    }

    // Element (n, m) of an accumulator lands at Cs[m · LDC + n] (column-major store).
    [[unroll]] for (uint i = 0u; i < RN; ++i)
        [[unroll]] for (uint j = 0u; j < RM; ++j) CM_STORE(acc[i][j], (wm + j * CM_N) * LDC + wn + i * CM_M, LDC, true);
    barrier();

    // Epilogue: invocation t takes the row pair n = 2 (t % 32) and columns m = t / 32 + 4 r, so a
    // subgroup writes 64 consecutive outputs of one column.
    uint np = 2u * (t & 31u);
    uint n = n0 + np;
    for (uint r = 0u; r < TM / 4u; ++r) {
        uint mm = (t >> 5) + 4u * r;
        uint m = m0 + mm;
        if (m >= p.M || n >= p.N) continue;
        float a = Cs[mm * LDC + np], b = Cs[mm * LDC + np + 1u];
        if (SPLIT != 0u) {
            split_store(m, p.yOffset + n, a);
            if (n + 1u < p.N) split_store(m, p.yOffset + n + 1u, b);
        } else if (EPILOGUE == EPI_SILU_GATE) {
            epi_store_gate(m, p.yOffset + n, a, b);
        } else if (EPILOGUE == EPI_ATTN_INPUT) {
            epi_store_attention(m, p.yOffset + n, a, b);
        } else {
            epi_store(m, p.yOffset + n, a);
            if (n + 1u < p.N) epi_store(m, p.yOffset + n + 1u, b);
        }
    }
}

#endif
