#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require

// The GPU family's tensor-core kernel (VK_NV_cooperative_matrix): the same op as matmul_gpu.comp,
// Y[m, yOffset + n] = Σ_k W[n, k] · X[m, k] through the EPILOGUE, with the products on the
// device's matrix units in f16 × f16 → f32. The host takes it for M > 8 where the device offers
// f16 cooperative matrices of a shape that divides the warp tile, and keeps matmul_gpu.comp as the
// fallback. The kernel is include/matmul_coopmat.glsl; matmul_coopmat_emulated.comp compiles the
// same code with the matrix operations written out in plain GLSL, so lavapipe (which has no matrix
// units) verifies everything but the operations themselves, and the GPU's `roast verify` and the
// backend's probe against the CPU twin verify those.

#include "matmul_coopmat.glsl"
