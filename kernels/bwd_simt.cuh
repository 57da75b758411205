// The backward GEMMs on CUDA cores, every dtype, sm_70+ (the fp32 path, and GPUs below sm_80):
//
//   C (M×N) = A (M×K) · B (K×N), A a view of dH = [dG | dU] (BwdKind, params.cuh), plus dbias for dW
//
// dH is read as stored (fp32: a gate pass writes it first), or computed from dZ and H as the A tile
// loads (gate.cuh dh_element). The SIMT forward's register-staged double buffer, 16-byte or element
// loads along each source's contiguous dimension, TM×TN outputs a thread (TN = 4, or 8 where a thread holds 64: two runs of 4 columns half a tile
// apart, so that a warp's float4 reads of B stay free of bank conflicts); dX of small batches
// splits K (docs/kernels-simt.md).
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
  // 8×8 outputs a thread where the tile holds 64 a thread, else TM×4.
  static constexpr int kTN = BM * BN / kThreads >= 64 ? 8 : 4;
  static constexpr int kTX = BN / kTN;
  static constexpr int kTY = kThreads / kTX;
  static constexpr int kTM = BM / kTY;
  static constexpr int kLdA = BM + 4;  // shared tiles are [k][m] and [k][n] in fp32
  static constexpr int kLdB = BN + 4;
  static constexpr int kBufFloats = BK * (kLdA + kLdB);
  static constexpr int kSmemBytes = 0;
  static constexpr int kItersA = BM * BK / kThreads;
  static constexpr int kItersB = BN * BK / kThreads;
  // 16-byte chunks: whether every thread's elements of A and B make whole chunks along the
  // sources' contiguous dimensions (fp32's tiles do; fp16/bf16 SIMT, below sm_80, loads by element).
  static constexpr int kVec = 16 / static_cast<int>(sizeof(E));
  static constexpr bool kVecTiles = kItersA % kVec == 0 && kItersB % kVec == 0 && BM % kVec == 0 &&
                                    BN % kVec == 0 && BK % kVec == 0;
  // 32 accumulators or more, with the staged chunks, need more than the 128 registers that two
  // resident blocks of 256 threads leave (ptxas spills them).
  static constexpr int kMinBlocks = kTM * kTN >= 32 ? 1 : 2;

  // Column j of a thread's TN: TN = 8 splits them into two runs of 4, the second BN / 2 further on.
  static __device__ __forceinline__ int column(int tx, int j) {
    return kTN == 4 ? tx * 4 + j : (j < 4 ? tx * 4 + j : BN / 2 + tx * 4 + (j - 4));
  }

  static_assert(is_swiglu_dtype_v<E>, "simt bwd: the element type must be float, __half or __nv_bfloat16");
  static_assert(kThreads % kTX == 0 && BM % kTY == 0, "simt bwd: thread grid must tile BM×BN");
  static_assert(kTM == 1 || kTM == 2 || kTM == 4 || kTM == 8, "simt bwd: TM must be 1, 2, 4 or 8");
  static_assert(kTN == 4 || kTM == 8, "simt bwd: 8 columns a thread come with 8 rows");
  static_assert(BN % (2 * kTN) == 0 || kTN == 4, "simt bwd: TN = 8 needs two runs of 4 columns");
  static_assert((BM * BK) % kThreads == 0 && (BN * BK) % kThreads == 0,
                "simt bwd: every thread must load the same number of elements");
  static_assert(2 * kBufFloats * 4 <= 48 * 1024, "simt bwd: static shared memory must fit 48 KB");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
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

  // Global -> registers for K tile kt, in chunks of V elements along each source's contiguous
  // dimension (dH's columns for A: k for dX, m for dW; k for a K-major B, else n); consecutive
  // threads take consecutive chunks. V = 1: element by element, any alignment, dH read or computed
  // from dZ and H. V = kVec (vec_a / vec_b): 16-byte loads, each chunk wholly in range or out.
  auto load_global = [&](auto v_tag, int64_t kt) {
    constexpr int V = decltype(v_tag)::value;
    const int64_t k0 = (kt_begin + kt) * BK;
    const int64_t two_d = 2 * p.D;
#pragma unroll
    for (int i = 0; i < Cfg::kItersA / V; ++i) {
      const int q = tid + i * kThreads;
      int64_t r, c;
      if constexpr (Cfg::kATrans) {
        r = k0 + q / (BM / V);
        c = m0 + (q % (BM / V)) * V;
      } else {
        r = m0 + q / (BK / V);
        c = k0 + (q % (BK / V)) * V;
      }
      if constexpr (V == 1) {
        const T v = dh_element<T>(p, r, c);
        ra[i] = to_f32(v);
        if (write_dh && r < p.rows && c < two_d) static_cast<T*>(p.dh_out)[r * two_d + c] = v;
      } else {
        alignas(16) T v[V];
        if (r < p.rows && c < two_d) {
          *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.dh) + r * two_d + c);
        } else {
          *reinterpret_cast<uint4*>(v) = make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int e = 0; e < V; ++e) ra[i * V + e] = to_f32(v[e]);
      }
    }
#pragma unroll
    for (int i = 0; i < Cfg::kItersB / V; ++i) {
      const int q = tid + i * kThreads;
      int64_t k, n;
      if constexpr (!Cfg::kBKMajor) {
        k = k0 + q / (BN / V);
        n = n0 + (q % (BN / V)) * V;
      } else {
        n = n0 + q / (BK / V);
        k = k0 + (q % (BK / V)) * V;
      }
      const T* src = !Cfg::kBKMajor ? bmat + k * p.ldb + n : bmat + n * p.ldb + k;
      if constexpr (V == 1) {
        rb[i] = (k < K && n < N) ? to_f32(*src) : 0.0f;
      } else {
        alignas(16) T v[V];
        if (k < K && n < N) {
          *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(src);
        } else {
          *reinterpret_cast<uint4*>(v) = make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int e = 0; e < V; ++e) rb[i * V + e] = to_f32(v[e]);
      }
    }
  };
  // Registers -> shared buffer [k][m] and [k][n], the same chunk mapping.
  auto store_shared = [&](auto v_tag, int buf) {
    constexpr int V = decltype(v_tag)::value;
    float* sa = smem[buf];
    float* sb = sa + BK * kLdA;
#pragma unroll
    for (int i = 0; i < Cfg::kItersA / V; ++i) {
      const int q = tid + i * kThreads;
      const int mm = Cfg::kATrans ? (q % (BM / V)) * V : q / (BK / V);
      const int kk = Cfg::kATrans ? q / (BM / V) : (q % (BK / V)) * V;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        if constexpr (Cfg::kATrans) sa[kk * kLdA + mm + e] = ra[i * V + e];
        else sa[(kk + e) * kLdA + mm] = ra[i * V + e];
      }
    }
#pragma unroll
    for (int i = 0; i < Cfg::kItersB / V; ++i) {
      const int q = tid + i * kThreads;
      const int nn = !Cfg::kBKMajor ? (q % (BN / V)) * V : q / (BK / V);
      const int kk = !Cfg::kBKMajor ? q / (BN / V) : (q % (BK / V)) * V;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        if constexpr (!Cfg::kBKMajor) sb[kk * kLdB + nn + e] = rb[i * V + e];
        else sb[(kk + e) * kLdB + nn] = rb[i * V + e];
      }
    }
  };
  // The vector path where the tile divides into whole chunks and the plan found A (read as stored)
  // and B aligned; else element by element. (A and B take the same path: the register arrays
  // hold one mapping at a time.)
  using VecTag = std::integral_constant<int, Cfg::kVec>;
  using OneTag = std::integral_constant<int, 1>;
  const bool vec = Cfg::kVecTiles && p.dh != nullptr && p.vec_a != 0 && p.vec_b != 0;
  // Runs f with the load width this call takes.
  auto at_width = [&](auto&& f) {
    if constexpr (Cfg::kVecTiles) {
      if (vec) return f(VecTag{});
    }
    f(OneTag{});
  };
  auto load = [&](int64_t kt) { at_width([&](auto width) { load_global(width, kt); }); };
  auto store = [&](int buf) { at_width([&](auto width) { store_shared(width, buf); }); };

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
      const float4 vb = *reinterpret_cast<const float4*>(sb + k * kLdB + tx * 4);
      b[0] = vb.x; b[1] = vb.y; b[2] = vb.z; b[3] = vb.w;
      if constexpr (TN == 8) {
        const float4 vc = *reinterpret_cast<const float4*>(sb + k * kLdB + BN / 2 + tx * 4);
        b[4] = vc.x; b[5] = vc.y; b[6] = vc.z; b[7] = vc.w;
      }
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
        for (int j = 0; j < TN; ++j) f(acc[i][j], m, n0 + Cfg::column(tx, j));
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
      const int64_t n = n0 + Cfg::column(tx, j);
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
