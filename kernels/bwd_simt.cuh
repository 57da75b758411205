// The backward GEMMs on CUDA cores, every dtype, sm_70+ (the fp32 path, and GPUs below sm_80):
//
//   C (M×N) = A (M×K) · B (K×N), A a view of dH = [dG | dU] (BwdKind, params.cuh), plus dbias for dW
//
// dH is read directly or computed from dZ and H as the A tile loads (gate.cuh dh_element). The SIMT
// forward's register-staged double buffer, element loads along each source's contiguous dimension,
// TM×4 outputs a thread; dX of small batches splits K (docs/kernels-simt.md).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class E, BwdKind Kind, int BM, int BN, int BK, int WARPS>
struct SimtBwdConfig {
  using Element = E;
  static constexpr bool kATrans = a_transposed(Kind);
  static constexpr bool kBKMajor = b_k_major(Kind);
  static constexpr int kBlockM = BM, kBlockN = BN, kBlockK = BK;
  static constexpr int kStages = 2;
  static constexpr int kWarps = WARPS;
  static constexpr int kThreads = WARPS * 32;
  static constexpr int kTN = 4;
  static constexpr int kTX = BN / kTN;
  static constexpr int kTY = kThreads / kTX;
  static constexpr int kTM = BM / kTY;
  static constexpr int kLdA = BM + 4;  // shared tiles are [k][m] and [k][n] in fp32
  static constexpr int kLdB = BN + 4;
  static constexpr int kBufFloats = BK * (kLdA + kLdB);
  static constexpr int kSmemBytes = 0;
  static constexpr int kItersA = BM * BK / kThreads;
  static constexpr int kItersB = BN * BK / kThreads;

  static_assert(is_swiglu_dtype_v<E>, "simt bwd: the element type must be float, __half or __nv_bfloat16");
  static_assert(kThreads % kTX == 0 && BM % kTY == 0, "simt bwd: thread grid must tile BM×BN");
  static_assert(kTM == 1 || kTM == 2 || kTM == 4 || kTM == 8, "simt bwd: TM must be 1, 2, 4 or 8");
  static_assert((BM * BK) % kThreads == 0 && (BN * BK) % kThreads == 0,
                "simt bwd: every thread must load the same number of elements");
  static_assert(2 * kBufFloats * 4 <= 48 * 1024, "simt bwd: static shared memory must fit 48 KB");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 2)
    swiglu_bwd_simt(const BwdParams p) {
  using T = typename Cfg::Element;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int TM = Cfg::kTM, TN = Cfg::kTN;
  constexpr int kLdA = Cfg::kLdA, kLdB = Cfg::kLdB;

  __shared__ __align__(16) float smem[2][Cfg::kBufFloats];

  const int tid = threadIdx.x;
  const int tx = tid % Cfg::kTX;
  const int ty = tid / Cfg::kTX;
  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  // This block's K slice (split-K, as in bwd_sm80.cuh): tiles [kt_begin, kt_begin + k_tiles).
  const int64_t kt_all = (K + BK - 1) / BK;
  const int64_t kt_begin = p.splits > 1 ? blockIdx.z * (p.k_per_split / BK) : 0;
  const int64_t k_tiles = p.splits > 1 ? (p.k_per_split / BK < kt_all - kt_begin ? p.k_per_split / BK
                                                                                  : kt_all - kt_begin)
                                       : kt_all;
  const T* __restrict__ bmat = static_cast<const T*>(p.b);

  float ra[Cfg::kItersA], rb[Cfg::kItersB];
  // The first column of dX blocks also writes the dH it computed (see bwd_sm80.cuh).
  const bool write_dh = !Cfg::kATrans && p.dh_out != nullptr && blockIdx.y == 0;

  // Element e of a tile walks its source's contiguous dimension fastest: dH's columns for A (k for
  // dX, m for dW), k for a K-major B, else n.
  auto load = [&](int64_t kt) {
    const int64_t k0 = (kt_begin + kt) * BK;
#pragma unroll
    for (int i = 0; i < Cfg::kItersA; ++i) {
      const int e = tid + i * kThreads;
      int64_t r, c;
      if constexpr (Cfg::kATrans) {
        r = k0 + e / BM;
        c = m0 + e % BM;
      } else {
        r = m0 + e / BK;
        c = k0 + e % BK;
      }
      const T v = dh_element<T>(p, r, c);
      ra[i] = to_f32(v);
      if (write_dh && r < p.rows && c < 2 * p.D) static_cast<T*>(p.dh_out)[r * 2 * p.D + c] = v;
    }
#pragma unroll
    for (int i = 0; i < Cfg::kItersB; ++i) {
      const int e = tid + i * kThreads;
      int64_t k, n;
      if constexpr (!Cfg::kBKMajor) {
        k = k0 + e / BN;
        n = n0 + e % BN;
        rb[i] = (k < K && n < N) ? to_f32(bmat[k * p.ldb + n]) : 0.0f;
      } else {
        n = n0 + e / BK;
        k = k0 + e % BK;
        rb[i] = (k < K && n < N) ? to_f32(bmat[n * p.ldb + k]) : 0.0f;
      }
    }
  };
  auto store = [&](int buf) {
    float* sa = smem[buf];
    float* sb = sa + BK * kLdA;
#pragma unroll
    for (int i = 0; i < Cfg::kItersA; ++i) {
      const int e = tid + i * kThreads;
      const int mm = Cfg::kATrans ? e % BM : e / BK;
      const int kk = Cfg::kATrans ? e / BM : e % BK;
      sa[kk * kLdA + mm] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < Cfg::kItersB; ++i) {
      const int e = tid + i * kThreads;
      const int nn = !Cfg::kBKMajor ? e % BN : e / BK;
      const int kk = !Cfg::kBKMajor ? e / BN : e % BK;
      sb[kk * kLdB + nn] = rb[i];
    }
  };

  const bool do_bias = Cfg::kATrans && p.dbias != nullptr && blockIdx.y == 0 && tx == 0;
  float row_sum[TM] = {};
  float acc[TM][TN] = {};

  load(0);
  store(0);
  __syncthreads();
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int buf = static_cast<int>(kt & 1);
    const bool has_next = kt + 1 < k_tiles;
    if (has_next) load(kt + 1);
    const float* sa = smem[buf];
    const float* sb = sa + BK * kLdA;
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = sa[k * kLdA + ty * TM + i];
      const float4 vb = *reinterpret_cast<const float4*>(sb + k * kLdB + tx * TN);
      b[0] = vb.x; b[1] = vb.y; b[2] = vb.z; b[3] = vb.w;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        if (do_bias) row_sum[i] += a[i];
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    // Why no barrier first: every thread has passed the barrier after kt-1, the other buffer's last reader.
    if (has_next) store(buf ^ 1);
    __syncthreads();
  }

  if (p.splits > 1) {
    // Split-K: add into the fp32 sums; the tile's last slice reads them back (docs/kernels-sm80.md).
    auto for_each_output = [&](auto&& f) {
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int64_t m = m0 + ty * TM + i;
#pragma unroll
        for (int j = 0; j < TN; ++j) f(acc[i][j], m, n0 + tx * TN + j);
      }
    };
    for_each_output([&](float& v, int64_t m, int64_t n) {
      if (m < M && n < N) atomicAdd(p.partial + m * N + n, v);
    });
    if (!split_k_last_slice(p.counters + blockIdx.x * gridDim.y + blockIdx.y, p.splits)) return;
    for_each_output([&](float& v, int64_t m, int64_t n) { v = (m < M && n < N) ? __ldcg(p.partial + m * N + n) : 0.0f; });
  }
  T* __restrict__ c = static_cast<T*>(p.c);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty * TM + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx * TN + j;
      if (n >= N) continue;
      T* d = p.c_trans ? c + n * p.ldc + m : c + m * p.ldc + n;
      *d = from_f32<T>(plus_held(d, acc[i][j], p.accumulate));
    }
    if (do_bias) {
      T* d = static_cast<T*>(p.dbias) + m;
      *d = from_f32<T>(plus_held(d, row_sum[i], p.accumulate));
    }
  }
}

}  // namespace swiglu::kernels
