// The numbers the host and the shaders share. Each constant mirrors a Swift enum case in
// Sources/Backend/ShaderContract.swift (ShaderContract.glslConstants); a test reads this file
// and fails on any name or value the two sides do not agree on.

#ifndef CONTRACT_GLSL
#define CONTRACT_GLSL

// Weight formats: the FORMAT specialization constant (ElementType.shaderFormat).
const uint FMT_F32 = 0u;
const uint FMT_F16 = 1u;
const uint FMT_BF16 = 2u;
const uint FMT_Q8_0 = 3u;
const uint FMT_Q4_1 = 4u;
const uint FMT_Q4_0 = 5u;
const uint FMT_Q4_K = 6u;
const uint FMT_Q6_K = 7u;

// The `steer` push constant of the fused kernels (SteerMode).
const uint STEER_NONE = 0u;
const uint STEER_ADD = 1u; // a + s·v (ROAST, CAA)
const uint STEER_MUL = 2u; // a + s·(v ⊙ a) (SADI's mask)
// Flag on the mode: v is a table of directions [V × width] and row r uses table row vrows[r]
// (clamped to the table), so one step can steer each row with its own vector (a server's batch).
const uint STEER_TABLE = 4u;

// The EPILOGUE specialization constant of the matmul kernels (EpilogueCode).
const uint EPI_STORE = 0u;
const uint EPI_RESIDUAL = 1u;
const uint EPI_SILU_GATE = 2u;
const uint EPI_ATTN_INPUT = 3u;

// attnFlags bits of EPI_ATTN_INPUT (AttentionInputFlags).
const uint ATTN_BIAS = 1u;
const uint ATTN_ROPE = 2u;
const uint ATTN_ROWS = 4u;

// rope.comp's layout (RopeLayout).
const uint ROPE_ROTATE_HALF = 0u;
const uint ROPE_INTERLEAVED = 1u;

#endif
