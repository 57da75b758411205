// Internal: launchers of the unfused elementwise kernels (kernels/elementwise.cuh): the gate
// z = silu(a)·b, its backward, a column sum and a dtype conversion, all computed in fp32. Used by the
// GPU reference (float in, float out), the "two GEMMs + gate" baselines (dtype in and out) and the
// sm90 backward. Each runs on `stream` and returns after the launch.
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

// dg[r][c] = dz[r][c]·b[r][c]·silu'(a[r][c]), db[r][c] = dz[r][c]·silu(a[r][c]) (a = G, b = U),
// evaluated as (dz·b)·silu'(a) with the fused kernels' silu_and_grad (kernels/gate.cuh). Inputs in
// `in`, outputs in `out`; pairs, sizes and return values as launch_gate. dg and db may alias a and b
// (in place, as Liger does) when in == out and the strides match.
cudaError_t launch_gate_backward(DType in, DType out, const void* a, int64_t lda, const void* b,
                                 int64_t ldb, const void* dz, int64_t lddz, void* dg, int64_t lddg,
                                 void* db, int64_t lddb, int64_t rows, int64_t cols,
                                 cudaStream_t stream);

// out[c] = sum over r < rows of a[r][c], accumulated in fp32, for c < cols. (in, out) as for
// launch_gate, and fp32 into fp16 or bf16 (the FP8 backward's dbias). Deterministic (no atomics, a fixed summation order) and needs no workspace; any
// rows and cols fit 64-bit indexing. rows == 0 writes zeros; cols == 0 launches nothing. With
// accumulate, out[c] += the sum instead (out read first, the total rounded once).
cudaError_t launch_column_sum(DType in, DType out, const void* a, int64_t lda, void* out_ptr,
                              int64_t rows, int64_t cols, cudaStream_t stream, bool accumulate = false);

// z[r][c] = a[r][c] converted to `out` (rounded to nearest even when narrowing); strides in
// elements. (in, out) pairs, size rules and return values as for launch_gate.
cudaError_t launch_convert(DType in, DType out, const void* a, int64_t lda, void* z, int64_t ldz,
                           int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace swiglu::detail
