// Internal: launchers of the unfused elementwise kernels (kernels/gate.cuh): the gate
// z = silu(a) * b, its backward, a column sum and a dtype conversion, all computed in fp32.
//
// Used by the GPU reference (float in, float out, on fp32 products) and by the "two GEMMs + gate"
// baselines (dtype in, dtype out). Every launcher runs on `stream` and returns after the launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// z[r][c] = silu(a[r][c]) * b[r][c] for r < rows, c < cols; strides in elements of their own type.
// Supported (in, out): (f32, f32), (f16, f16), (bf16, bf16), (f16, f32), (bf16, f32); any other
// pair returns cudaErrorInvalidValue (even when empty), as do negative sizes. rows == 0 or
// cols == 0 launches nothing and returns cudaSuccess. Otherwise returns the launch's status
// (cudaGetLastError).
cudaError_t launch_gate(DType in, DType out, const void* a, int64_t lda, const void* b, int64_t ldb,
                        void* z, int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream);

// The gate backward of the baselines and the GPU reference, in fp32:
//   dg[r][c] = dz[r][c] * b[r][c] * silu'(a[r][c]),  db[r][c] = dz[r][c] * silu(a[r][c])
// where a = G and b = U; silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). Inputs a, b, dz in `in`,
// outputs dg, db in `out`; the same (in, out) pairs, size rules and return values as launch_gate.
// dg/db may alias a/b (in place, as Liger does) when in == out and the strides match. Products are
// evaluated as (dz * b) * silu'(a), with silu and silu' from kernels/common.cuh silu_and_grad, the
// helper the fused backward uses too.
cudaError_t launch_gate_backward(DType in, DType out, const void* a, int64_t lda, const void* b,
                                 int64_t ldb, const void* dz, int64_t lddz, void* dg, int64_t lddg,
                                 void* db, int64_t lddb, int64_t rows, int64_t cols,
                                 cudaStream_t stream);

// out[c] = sum over r < rows of a[r][c], accumulated in fp32, for c < cols. (in, out) as for
// launch_gate. Deterministic (no atomics, a fixed summation order) and needs no workspace; any
// rows and cols fit 64-bit indexing. rows == 0 writes zeros; cols == 0 launches nothing.
cudaError_t launch_column_sum(DType in, DType out, const void* a, int64_t lda, void* out_ptr,
                              int64_t rows, int64_t cols, cudaStream_t stream);

// z[r][c] = a[r][c] converted to `out` (rounded to nearest even when narrowing); strides in
// elements. (in, out) pairs, size rules and return values as for launch_gate.
cudaError_t launch_convert(DType in, DType out, const void* a, int64_t lda, void* z, int64_t ldz,
                           int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace swiglu::detail
