// The fused forward's epilogue (SIMT, sm80 and the sm90 register path): what one pair of adjacent
// (G, U) results becomes once the products and the bias are in, all in fp32, each store rounded
// once to T. H and dH are B×2D: row m holds the G (dG) half in [0, D) and the U (dU) half in [D, 2D).
//
//   forward:             Z = silu(G)·U -> z (when set);  H = [G | U] -> saved (when set)
//   backward recompute:  dH = [dZ·U·silu'(G) | dZ·silu(G)] -> dh   (FwdParams.dh set)
//
// Why one helper: the backward must see exactly the numbers Z came from, whichever kernel ran.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

// Two adjacent elements from one aligned 4-byte load (fp16/bf16) or two loads (fp32).
template <class T>
__device__ __forceinline__ void load_pair(const T* src, float* a, float* b) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = *reinterpret_cast<const __half2*>(src);
    *a = __low2float(v);
    *b = __high2float(v);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162*>(src);
    *a = __low2float(v);
    *b = __high2float(v);
  } else {
    *a = src[0];
    *b = src[1];
  }
}

// Stores v0 at dst[0] and, when two, v1 at dst[1]; one aligned pair store when pair.
template <class T>
__device__ __forceinline__ void store_one_or_two(T* dst, float v0, float v1, bool two, bool pair) {
  if (pair) {
    store_pair(dst, v0, v1);
  } else {
    dst[0] = from_f32<T>(v0);
    if (two) dst[1] = from_f32<T>(v1);
  }
}

// One pair at z_off (in Z and dZ) and h_off (in H and dH); g and u include the bias. two: column
// col + 1 exists; pair: each store is one aligned pair (vec_store). kInterior: both hold, and dZ is
// read as one aligned pair too.
template <class T, FastMath F, bool kInterior>
__device__ __forceinline__ void fwd_epilogue_at(const FwdParams& p, int64_t z_off, int64_t h_off,
                                                float g0, float u0, float g1, float u1, bool two, bool pair) {
  if constexpr (kInterior) two = pair = true;
  if (p.dh != nullptr) {
    const T* dz = static_cast<const T*>(p.dz) + z_off;
    float dz0, dz1;
    if constexpr (kInterior) {
      load_pair(dz, &dz0, &dz1);
    } else {
      dz0 = to_f32(dz[0]);
      dz1 = two ? to_f32(dz[1]) : 0.0f;
    }
    float s0, ds0, s1, ds1;
    silu_and_grad<F>(g0, &s0, &ds0);
    silu_and_grad<F>(g1, &s1, &ds1);
    T* dh = static_cast<T*>(p.dh) + h_off;
    store_one_or_two(dh, dz0 * u0 * ds0, dz1 * u1 * ds1, two, pair);
    store_one_or_two(dh + p.D, dz0 * s0, dz1 * s1, two, pair);
    return;
  }
  if (p.z != nullptr) {
    store_one_or_two(static_cast<T*>(p.z) + z_off, swiglu_gate<F>(g0, u0), swiglu_gate<F>(g1, u1),
                     two, pair);
  }
  if (p.saved != nullptr) {
    T* h = static_cast<T*>(p.saved) + h_off;
    store_one_or_two(h, g0, g1, two, pair);
    store_one_or_two(h + p.D, u0, u1, two, pair);
  }
}

// Row m, columns col and col + 1; columns past D are dropped. vec: FwdParams.vec_store (then
// col < D implies col + 1 < D, and the pair is aligned).
template <class T, FastMath F>
__device__ __forceinline__ void fwd_epilogue_pair(const FwdParams& p, int64_t m,
                                                  int64_t col, float g0, float u0, float g1,
                                                  float u1, bool vec) {
  if (col >= p.D) return;
  fwd_epilogue_at<T, F, false>(p, m * p.D + col, m * 2 * p.D + col, g0, u0, g1, u1, col + 1 < p.D, vec);
}

// A pair known to be in range, with vec_store set; the caller computes a row's offsets once.
template <class T, FastMath F>
__device__ __forceinline__ void fwd_epilogue_pair_interior(const FwdParams& p, int64_t z_off,
                                                           int64_t h_off, float g0, float u0, float g1,
                                                           float u1) {
  fwd_epilogue_at<T, F, true>(p, z_off, h_off, g0, u0, g1, u1, true, true);
}

}  // namespace swiglu::kernels
