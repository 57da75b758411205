// The SwiGLU gate and its backward, per element in fp32, as every kernel computes them:
//
//   z = silu(g)·u,   dg = dz·u·silu'(g),   du = dz·silu(g)
//   silu(g) = g / (1 + e^-g),   silu'(g) = s·(1 + g·(1 − s)),   s = sigmoid(g)
//
// Arch: sm_70+. Why g / (1 + e^-g) rather than g·sigmoid(g): for g < -88, e^-g is +inf and the
// quotient a clean -0; for g > 88 it is exactly g; NaN and ±inf propagate as IEEE (and PyTorch) say.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

// 1/x by rcp.approx.f32 (about 1 ulp). Why not __fdividef: it returns 0 for denominators in
// (2^126, 2^128), which SiLU meets at g in (-88.7, -87.3) where the result is still a normal bf16.
__device__ __forceinline__ float rcp_approx(float x) {
  float r;
  asm("rcp.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// __fdiv_rn keeps the precise division IEEE-exact even under -prec-div=false.
template <FastMath F = FastMath::off>
__device__ __forceinline__ float silu(float g) {
  if constexpr (F == FastMath::on) {
    return g * rcp_approx(1.0f + __expf(-g));
  } else {
    return __fdiv_rn(g, 1.0f + expf(-g));
  }
}

template <FastMath F = FastMath::off>
__device__ __forceinline__ float swiglu_gate(float g, float u) {
  return silu<F>(g) * u;
}

// silu(g) (bit for bit silu<F>(g) with FastMath::off) and silu'(g) from one exp.
template <FastMath F = FastMath::off>
__device__ __forceinline__ void silu_and_grad(float g, float* silu_out, float* dsilu) {
  constexpr bool fast = F == FastMath::on;
  const float e = fast ? __expf(-g) : expf(-g);
  const float s = fast ? rcp_approx(1.0f + e) : __fdiv_rn(1.0f, 1.0f + e);
  *silu_out = fast ? g * s : __fdiv_rn(g, 1.0f + e);
  *dsilu = s * (1.0f + g * (1.0f - s));
}

// Why fast math in the backward GEMMs' prologue: a block recomputes the gate for every A tile it
// loads, once per column of blocks, and dH's rounding to the dtype hides the few ulp.
inline constexpr FastMath kPrologueFastMath = FastMath::on;

// One element of dH at (r, c), 0 outside [0, rows)×[0, 2D); read from p.dh, or computed from dZ
// and H; any alignment.
template <class T>
__device__ __forceinline__ T dh_element(const BwdParams& p, int64_t r, int64_t c) {
  const int64_t D = p.D;
  if (r >= p.rows || c >= 2 * D) return from_f32<T>(0.0f);
  if (p.dh != nullptr) return static_cast<const T*>(p.dh)[r * 2 * D + c];
  const T* dz = static_cast<const T*>(p.dz);
  const T* h = static_cast<const T*>(p.h);
  const int64_t cc = c < D ? c : c - D;
  const float g = to_f32(h[r * 2 * D + cc]);
  float s, ds;
  silu_and_grad<kPrologueFastMath>(g, &s, &ds);
  const float d = to_f32(dz[r * D + cc]);
  return from_f32<T>(c < D ? d * to_f32(h[r * 2 * D + D + cc]) * ds : d * s);
}

}  // namespace swiglu::kernels
