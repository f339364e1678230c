// The push constants of the matmul kernels (matvec, matmul, matvec_gpu, matmul_gpu, matmul_coopmat) and of
// matmul_reduce.comp, which finishes a split-K product: Swift's
// MatmulPush (Sources/Backend/ShaderContract.swift), member for member.

#ifndef MATMUL_PUSH_GLSL
#define MATMUL_PUSH_GLSL

layout(push_constant) uniform P {
    uint K;
    uint N;
    uint M;
    uint yOffset;
    uint ldy;         // output row stride (epilogue.glsl)
    uint steer;       // STEER_*
    uint mBase;       // the first column of this dispatch in the whole step
    uint captureGate;
    uint kvWidth;
    uint headDim;
    uint attnFlags;   // ATTN_*
    float eps;        // the fused input norm's (vector kernels; the tiled ones normalise apart)
    uint kSlice;      // split-K (SPLIT = 1): the K elements of each slice, slice z = workgroup z
    uint slices;      // matmul_reduce.comp: the partial sums it adds per output
} p;

#endif
