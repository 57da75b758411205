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

// The backward reference, all in fp32 with no tf32 and nothing rounded to the input dtype: H from
// gpu_reference's own GEMM (same code, same H), dH = [dG | dU] by the fp32 gate backward (in place
// over H), dX = dH·W12 and dW12 = dHᵀ·X as fp32 cuBLASLt GEMMs on fp32 copies of X, W and dZ
// (the inputs themselves for fp32 problems), and dbias as the fp32 column sum of dH.
// Device bytes of scratch it needs (B×2D fp32, plus the fp32 copies for fp16/bf16; 0 when B == 0):
size_t reference_backward_scratch_bytes(const Problem& p);

// Writes dx_ref (B×I row-major fp32), dw_ref (w's layout and shape, fp32) and dbias_ref (2D fp32,
// only when p.bias) on `stream` and waits for them. Any of the three may be null to skip it.
// B == 0 writes nothing (dW and dbias would be zeros), like the library's backward. x_dw, when set,
// is the X that dW12 = dHᵀ·X multiplies (as x: p.dtype, row stride p.x_stride()), where it differs
// from the forward's (the FP8 recipe's Xᵀ, quantised along B); null: x.
Status gpu_reference_backward(const Cublas& cublas, const Problem& p, const void* x, const void* w,
                              const void* bias, const void* dz, void* scratch, float* dx_ref,
                              float* dw_ref, float* dbias_ref, cudaStream_t stream,
                              const void* x_dw = nullptr);

}  // namespace swiglu::baselines
