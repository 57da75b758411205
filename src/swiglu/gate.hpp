// Internal: launcher of the unfused gate kernel (kernels/gate.cuh), z = silu(a) * b in fp32.
//
// Used by the GPU reference (float in, float out, on fp32 products) and by the "two GEMMs + gate"
// baselines (dtype in, dtype out).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// z[r][c] = silu(a[r][c]) * b[r][c] for r < rows, c < cols; strides in elements of their own type.
// Supported (in, out): (f32, f32), (f16, f16), (bf16, bf16), (f16, f32), (bf16, f32); any other
// pair returns cudaErrorInvalidValue, as do negative sizes. rows == 0 or cols == 0 launches nothing
// and returns cudaSuccess. Otherwise returns the launch's status (cudaGetLastError).
cudaError_t launch_gate(DType in, DType out, const void* a, int64_t lda, const void* b, int64_t ldb,
                        void* z, int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace swiglu::detail
