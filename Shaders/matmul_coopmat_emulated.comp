#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

// matmul_coopmat.comp's kernel with the cooperative-matrix operations emulated in plain GLSL
// (include/matmul_coopmat.glsl, COOPMAT_EMULATED): the same staging, tile addressing, load and
// store arguments, f16 rounding and epilogue, checked against the CPU twin on any device. For
// verification only; slow. 16 × 16 × 16 matrices.

#define COOPMAT_EMULATED 1
#include "matmul_coopmat.glsl"
