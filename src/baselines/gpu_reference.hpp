// The GPU reference for shapes too large for the fp64 CPU reference: an fp32-output cuBLASLt GEMM
// (fp32 accumulation, no tf32) into H = [G | U] in fp32, the bias added through beta = 1 on an
// fp32 bias broadcast, then the gate in fp32. Nothing in it is rounded to the input dtype, so it
// shares no rounding step with the fused kernel or the baselines.
#pragma once

#include "baselines/cublas_baselines.hpp"

namespace swiglu::baselines {

// Device bytes the reference needs for H (B×2D fp32); Z_ref (B×D fp32) is the caller's.
size_t reference_scratch_bytes(const Problem& p);

// Writes Z_ref (B×D row-major fp32) on `stream` and waits for it.
Status gpu_reference(const Cublas& cublas, const Problem& p, const void* x, const void* w,
                     const void* bias, float* h_scratch, float* z_ref, cudaStream_t stream);

}  // namespace swiglu::baselines
