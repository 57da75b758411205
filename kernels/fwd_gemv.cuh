// The fused forward for a few rows of X on CUDA cores, every dtype, the linear layout, sm_70+:
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)    X: B×I (row stride ldx), W: 2D×I row-major
//
// Built to stream W: each warp reads its columns' weight rows end to end with many 16-byte loads in
// flight, its lanes' partial sums meet in shuffles, and the gate runs on the sums
// (docs/kernels-gemv.md). No shared memory, no barrier; any I, D, ldx and alignment.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/epilogue.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class E, int ROWS, int COLS, int WARPS, int UNROLL, FastMath F = FastMath::off>
struct GemvFwdConfig {
  using Element = E;
  static constexpr FastMath kFastMath = F;
  static constexpr int kRows = ROWS;      // rows of X (and Z) a block computes
  static constexpr int kCols = COLS;      // columns of Z a warp computes (2·COLS rows of W)
  static constexpr int kUnroll = UNROLL;  // 16-byte chunks of each W row a lane loads at once
  static constexpr int kWarps = WARPS;
  static constexpr int kThreads = WARPS * 32;
  static constexpr int kVec = static_cast<int>(16 / sizeof(E));
  // As the tile listings name it: rows, columns a block, K a warp step, loads in flight, warps.
  static constexpr int kBlockM = ROWS, kBlockN = WARPS * COLS, kBlockK = 32 * kVec;
  static constexpr int kStages = UNROLL;
  static constexpr int kSmemBytes = 0;

  static_assert(is_swiglu_dtype_v<E>, "gemv fwd: the element type must be float, __half or __nv_bfloat16");
  static_assert(COLS % 2 == 0, "gemv fwd: the epilogue stores pairs of columns");
  static_assert(ROWS * COLS / 2 <= 32, "gemv fwd: one lane stores each (row, column pair)");
  static_assert(ROWS * 2 * COLS <= 64, "gemv fwd: more than 64 accumulators per thread would spill");
};

// V elements (16 bytes when V > 1) as loaded: one element, or a 16-byte vector.
template <class T, int V>
using Raw = std::conditional_t<V == 1, T, uint4>;

template <class T, int V, bool kStreamed>
__device__ __forceinline__ Raw<T, V> load_raw(const T* src, bool ok) {
  if constexpr (V == 1) {
    return ok ? (kStreamed ? __ldg(src) : *src) : from_f32<T>(0.0f);
  } else {
    static_assert(V * sizeof(T) == 16, "a vector is 16 bytes");
    if (!ok) return make_uint4(0, 0, 0, 0);  // all-zero bits are 0 in every dtype
    return kStreamed ? load_streamed_16(src) : *reinterpret_cast<const uint4*>(src);
  }
}

template <class T, int V>
__device__ __forceinline__ void widen(const Raw<T, V>& raw, float (&dst)[V]) {
  T v[V];
  memcpy(v, &raw, sizeof(v));
#pragma unroll
  for (int e = 0; e < V; ++e) dst[e] = to_f32(v[e]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) swiglu_fwd_gemv(const FwdParams p) {
  using T = typename Cfg::Element;
  constexpr int R = Cfg::kRows, C = Cfg::kCols, U = Cfg::kUnroll;

  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int64_t B = p.B, I = p.I, D = p.D, ldx = p.ldx;
  const int64_t row_blocks = (B + R - 1) / R;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) % row_blocks * R;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) / row_blocks * Cfg::kBlockN + warp * C;
  if (n0 >= D) return;  // no barrier follows

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  float acc_g[R][C] = {};
  float acc_u[R][C] = {};

  // Lane l reads elements [k, k + V) of each row for k = l·V, l·V + 32·V, ...; U chunks a step,
  // all of W's loads issued before the first FMA so that 2·C·U of them are in flight. W stays in
  // its dtype until used, and each element is widened once.
  auto stream = [&](auto v_tag) {
    constexpr int V = decltype(v_tag)::value;
    constexpr int64_t kStep = 32 * V;
    for (int64_t k0 = static_cast<int64_t>(lane) * V; k0 < I; k0 += kStep * U) {
      Raw<T, V> raw_a[U][C], raw_b[U][C];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t k = k0 + u * kStep;
#pragma unroll
        for (int c = 0; c < C; ++c) {
          const bool ok = k < I && n0 + c < D;  // a vector is wholly in range or out (vec_load)
          raw_a[u][c] = load_raw<T, V, true>(w + (n0 + c) * I + k, ok);
          raw_b[u][c] = load_raw<T, V, true>(w + (D + n0 + c) * I + k, ok);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t k = k0 + u * kStep;
        float xv[R][V];
#pragma unroll
        for (int r = 0; r < R; ++r)
          widen<T, V>(load_raw<T, V, false>(x + (m0 + r) * ldx + k, k < I && m0 + r < B), xv[r]);
#pragma unroll
        for (int c = 0; c < C; ++c) {
          float wa[V], wb[V];
          widen<T, V>(raw_a[u][c], wa);
          widen<T, V>(raw_b[u][c], wb);
#pragma unroll
          for (int r = 0; r < R; ++r) {
#pragma unroll
            for (int e = 0; e < V; ++e) {
              acc_g[r][c] = fmaf(xv[r][e], wa[e], acc_g[r][c]);
              acc_u[r][c] = fmaf(xv[r][e], wb[e], acc_u[r][c]);
            }
          }
        }
      }
    }
  };
  if (p.vec_load != 0) {
    stream(std::integral_constant<int, Cfg::kVec>{});
  } else {
    stream(std::integral_constant<int, 1>{});
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int c = 0; c < C; ++c) {
      acc_g[r][c] = warp_sum(acc_g[r][c]);
      acc_u[r][c] = warp_sum(acc_u[r][c]);
    }
  }

  // Every lane holds every sum; lane r·C/2 + j stores row r's column pair j.
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const bool vec_store = p.vec_store != 0;
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int j = 0; j < C / 2; ++j) {
      if (lane != r * (C / 2) + j || m0 + r >= B) continue;
      const int64_t n = n0 + 2 * j;
      float bg0 = 0.0f, bu0 = 0.0f, bg1 = 0.0f, bu1 = 0.0f;
      if (p.has_bias && n < D) {
        bg0 = to_f32(bias[n]);
        bu0 = to_f32(bias[D + n]);
        if (n + 1 < D) {
          bg1 = to_f32(bias[n + 1]);
          bu1 = to_f32(bias[D + n + 1]);
        }
      }
      fwd_epilogue_pair<T, Cfg::kFastMath>(p, m0 + r, n, acc_g[r][2 * j] + bg0, acc_u[r][2 * j] + bu0,
                                           acc_g[r][2 * j + 1] + bg1, acc_u[r][2 * j + 1] + bu1, vec_store);
    }
  }
}

}  // namespace swiglu::kernels
