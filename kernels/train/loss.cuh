// `swiglubench train`'s softmax cross-entropy, forward and backward in one pass, sm_70+:
//
//   v[c] = logits[r][c] + b[c],  loss[r] = logsumexp_c v[c] − v[y_r],  correct[r] = (argmax v == y_r)
//   dlogits[r][c] = softmax(v)[c] − [c == y_r]   (of the summed loss; the optimizer divides by rows)
//
// logits is rows × C fp32 (stride ld); dlogits goes out as fp32 (for the bias) and as T, columns
// C..ld−1 zeroed, both null in evaluation. One warp a row (C ≤ 32); fixed-order shuffle reductions
// make it deterministic; argmax ties go to the smallest index, as torch.argmax.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"

namespace swiglu::kernels {

inline constexpr int kMaxClasses = 32;

template <class T>
__global__ void softmax_xent_kernel(const float* __restrict__ logits, int64_t ld,
                                    const float* __restrict__ bias, const int32_t* __restrict__ y,
                                    int64_t rows, int classes, float* __restrict__ dlogits_f32,
                                    T* __restrict__ dlogits, float* __restrict__ loss,
                                    uint8_t* __restrict__ correct, int64_t first) {
  static_assert(is_swiglu_dtype_v<T>, "softmax_xent: T must be float, __half or __nv_bfloat16");
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps_per_block = blockDim.x / 32;
  const int64_t step = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / 32; r < rows;
       r += step) {
    const bool live = lane < classes;
    const float v = live ? logits[r * ld + lane] + bias[lane] : -INFINITY;
    // Max and argmax together: a larger value wins, an equal one goes to the smaller index.
    float best = v;
    int arg = live ? lane : kMaxClasses;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, off);
      const int oa = __shfl_xor_sync(0xffffffffu, arg, off);
      if (ob > best || (ob == best && oa < arg)) {
        best = ob;
        arg = oa;
      }
    }
    const float e = live ? expf(v - best) : 0.0f;
    float sum = e;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    const int label = y[r];
    const float v_label = __shfl_sync(0xffffffffu, v, label);
    if (lane == 0) {
      loss[first + r] = logf(sum) - (v_label - best);
      correct[first + r] = arg == label ? 1 : 0;
    }
    if (dlogits != nullptr && lane < ld) {
      const float g = live ? __fdiv_rn(e, sum) - (lane == label ? 1.0f : 0.0f) : 0.0f;
      dlogits_f32[r * ld + lane] = g;
      dlogits[r * ld + lane] = from_f32<T>(g);
    }
  }
}

}  // namespace swiglu::kernels
