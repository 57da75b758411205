// The unfused gate: z = silu(a) * b, elementwise, computed in fp32.
//
//   z[r][c] = silu(a[r][c]) * b[r][c],   silu(g) = g / (1 + exp(-g))
//
// a, b and z are rows x cols with their own row strides (elements). The inputs are Tin and the
// output Tout: the GPU reference runs float -> float on the fp32 products, the "two GEMMs + gate"
// baselines run dtype -> dtype, the same math as Liger's SiLU-mul kernel (one row per program, fp32
// inside, rounded once on store).
//
// Arch: anything CUDA supports (sm_70+); plain loads and stores only.
//
// Design: threadIdx.x walks the columns of a row, threadIdx.y and the grid walk rows (grid-stride,
// 64-bit indices), so there is no per-element division. With VEC > 1 each thread moves one 16-byte
// vector of inputs per step (the launcher only picks VEC > 1 when every row start is 16-byte
// aligned); the last cols % VEC columns of a row are done element by element.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"

namespace swiglu::kernels {

template <class Tin, class Tout, int VEC, bool FastMath = false>
__global__ void swiglu_gate_kernel(const Tin* __restrict__ a, int64_t lda,
                                   const Tin* __restrict__ b, int64_t ldb, Tout* __restrict__ z,
                                   int64_t ldz, int64_t rows, int64_t cols) {
  static_assert(is_swiglu_dtype_v<Tin> && is_swiglu_dtype_v<Tout>,
                "gate: dtypes must be float, __half or __nv_bfloat16");
  static_assert(VEC == 1 || VEC * sizeof(Tin) == 16, "gate: VEC is 1 or one 16-byte input vector");
  static_assert(VEC == 1 || (VEC * sizeof(Tout)) % 16 == 0,
                "gate: a vector of outputs must be whole 16-byte chunks");

  const int64_t vcols = VEC > 1 ? cols / VEC : 0;  // whole vectors per row
  const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;

  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < rows;
       r += row_step) {
    const Tin* ar = a + r * lda;
    const Tin* br = b + r * ldb;
    Tout* zr = z + r * ldz;

    if constexpr (VEC > 1) {
      constexpr int kOutChunks = static_cast<int>(VEC * sizeof(Tout) / 16);
      for (int64_t v = threadIdx.x; v < vcols; v += blockDim.x) {
        alignas(16) Tin va[VEC];
        alignas(16) Tin vb[VEC];
        alignas(16) Tout vz[VEC];
        *reinterpret_cast<uint4*>(va) = *reinterpret_cast<const uint4*>(ar + v * VEC);
        *reinterpret_cast<uint4*>(vb) = *reinterpret_cast<const uint4*>(br + v * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          vz[e] = from_f32<Tout>(swiglu_gate<FastMath>(to_f32(va[e]), to_f32(vb[e])));
        }
        uint4* zv = reinterpret_cast<uint4*>(zr + v * VEC);
#pragma unroll
        for (int c = 0; c < kOutChunks; ++c) zv[c] = reinterpret_cast<const uint4*>(vz)[c];
      }
    }
    for (int64_t c = vcols * VEC + threadIdx.x; c < cols; c += blockDim.x) {
      zr[c] = from_f32<Tout>(swiglu_gate<FastMath>(to_f32(ar[c]), to_f32(br[c])));
    }
  }
}

}  // namespace swiglu::kernels
