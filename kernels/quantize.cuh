// Block quantisation to e4m3 (in progress, for the FP8 forward's inputs):
//
//   q[r][c] = e4m3(a[r][c] / s),   s = amax(block) / 448 (1 for an all-zero block)
//
// over blocks of kRows rows × 128 columns of a rows×cols matrix (row stride lda), the last ones
// partial; s goes to scale[(r / kRows) · ceil(cols / 128) + c / 128]. kRows = 1 is the activations'
// 1×128, kRows = 128 the weights' 128×128. One block of 128 threads a scale block: thread t owns
// column t. e4m3 rounds to nearest even and saturates to ±448 (NaN stays NaN). Arch: sm_89+ for the
// cvt, any other through cuda_fp8.h's software path.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class Tin, int kRows>
__global__ void __launch_bounds__(128) quantize_e4m3_kernel(const Tin* __restrict__ a, int64_t lda,
                                                            __nv_fp8_storage_t* __restrict__ q, int64_t ldq,
                                                            float* __restrict__ scale, int64_t rows, int64_t cols) {
  static_assert(kRows == 1 || kRows == 128, "quantize: blocks of 1×128 or 128×128");
  __shared__ float warp_max[4];
  const int64_t k_blocks = (cols + 127) / 128, row_blocks = (rows + kRows - 1) / kRows;
  const int64_t col_block = blockIdx.x;
  const int64_t c = col_block * 128 + threadIdx.x;
  // Row blocks grid-strided: gridDim.y is at most 65535.
  for (int64_t row_block = blockIdx.y; row_block < row_blocks; row_block += gridDim.y) {
    const int64_t r0 = row_block * kRows;
    const int64_t r1 = r0 + kRows < rows ? r0 + kRows : rows;
    float amax = 0.0f;
    if (c < cols) {
      for (int64_t r = r0; r < r1; ++r) amax = fmaxf(amax, fabsf(to_f32(a[r * lda + c])));
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
    __syncthreads();
    amax = fmaxf(fmaxf(warp_max[0], warp_max[1]), fmaxf(warp_max[2], warp_max[3]));
    __syncthreads();  // warp_max is rewritten by the next row block
    // Why __fdiv_rn: the same IEEE quotients as the host reference, whatever the compiler flags.
    const float s = amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f;
    if (threadIdx.x == 0) scale[row_block * k_blocks + col_block] = s;
    if (c < cols) {
      for (int64_t r = r0; r < r1; ++r)
        q[r * ldq + c] = __nv_cvt_float_to_fp8(__fdiv_rn(to_f32(a[r * lda + c]), s), __NV_SATFINITE, __NV_E4M3);
    }
  }
}

}  // namespace swiglu::kernels
