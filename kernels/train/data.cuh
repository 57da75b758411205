// `swiglubench train`'s input kernels, sm_70+: pixels to the input dtype once, a batch gathered in
// the shuffled order every step (x is count × features, xb rows × features, row-major):
//
//   normalize:  x[i] = (p[i] / 255 − mean) · (1 / std), in fp32, rounded once to T
//   gather:     xb[r][·] = x[order[first + r]][·], yb[r] = y[order[first + r]]  (order null: identity)
//
// The gather copies bits (16-byte vectors when every row start is aligned), so one instance per
// element size serves every dtype.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"

namespace swiglu::kernels {

template <class T>
__global__ void normalize_pixels_kernel(const uint8_t* __restrict__ pixels, T* __restrict__ x,
                                        int64_t n, float mean, float inv_std) {
  static_assert(is_swiglu_dtype_v<T>, "normalize: T must be float, __half or __nv_bfloat16");
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    // Why __fdiv_rn and the explicit multiply: the same fp32 value on every GPU and build, so both
    // variants (and every run) see identical inputs.
    const float v = __fdiv_rn(static_cast<float>(pixels[i]), 255.0f);
    x[i] = from_f32<T>(__fmul_rn(v - mean, inv_std));
  }
}

// One block per row; V is the unit moved (uint4 for the 16-byte path, or the element type).
template <class V>
__global__ void gather_rows_kernel(const V* __restrict__ x, int64_t row_units,
                                   const int32_t* __restrict__ labels,
                                   const int32_t* __restrict__ order, int64_t first, int64_t rows,
                                   V* __restrict__ xb, int32_t* __restrict__ yb) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t src = order != nullptr ? order[first + r] : first + r;
    const V* in = x + src * row_units;
    V* out = xb + r * row_units;
    for (int64_t u = threadIdx.x; u < row_units; u += blockDim.x) out[u] = in[u];
    if (threadIdx.x == 0) yb[r] = labels[src];
  }
}

}  // namespace swiglu::kernels
