// The fused forward on CUDA cores, every dtype, sm_70+ (plain loads, shared memory, fp32 FMA):
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)    X: B×I (row stride ldx); W: linear 2D×I or packed I×2D
//
// Each thread owns TM×TN of both G and U, so the gate runs in registers. Two shared buffers filled
// through registers: K tile k+1 loads during tile k's FMAs, one barrier per tile. Any I, D, ldx and
// alignment: 16-byte vector loads with FwdParams.vec_load, else element loads (docs/kernels-simt.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/epilogue.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class E, Layout L, int BM, int BN, int BK, int WARPS, FastMath F = FastMath::off>
struct SimtFwdConfig {
  using Element = E;
  static constexpr bool kPacked = L == Layout::packed;
  static constexpr FastMath kFastMath = F;
  static constexpr int kBlockM = BM, kBlockN = BN, kBlockK = BK;
  static constexpr int kStages = 2;
  static constexpr int kWarps = WARPS;
  static constexpr int kThreads = WARPS * 32;

  // Thread grid: TX threads across N, TY across M; each owns TM rows × TN columns.
  static constexpr int kTN = 4;
  static constexpr int kTX = BN / kTN;
  static constexpr int kTY = kThreads / kTX;
  static constexpr int kTM = BM / kTY;

  // Why +4: threads fill the [k][m] tiles walking K, and a stride of a multiple of 32 floats would
  // put a warp's stores in one bank; +4 spreads them over 8 and keeps float4 reads aligned.
  static constexpr int kLdA = BM + 4;
  static constexpr int kLdW = BN + 4;
  static constexpr int kBufFloats = BK * (kLdA + 2 * kLdW);  // A, Wa, Wb of one K tile
  static constexpr int kSmemBytes = 0;                       // static shared memory only
  // Why: 2 blocks per SM (128 registers at 256 threads) hide the loads' latency without spills up
  // to 32 accumulators; 64 would spill under that cap, so those tiles rely on their ILP instead.
  static constexpr int kMinBlocks = 2 * kTM * kTN > 32 ? 1 : 2;

  // Loads move V = kVec elements (16 bytes) with FwdParams.vec_load, else 1; kSlots fits either.
  static constexpr int kVec = static_cast<int>(16 / sizeof(E));
  template <int V> static constexpr int kItersA = (BM * BK / V + kThreads - 1) / kThreads;
  template <int V> static constexpr int kItersW = (BN * BK / V + kThreads - 1) / kThreads;
  static constexpr int kSlotsA = std::max(kItersA<1>, kItersA<kVec> * kVec);
  static constexpr int kSlotsW = std::max(kItersW<1>, kItersW<kVec> * kVec);

  static_assert(is_swiglu_dtype_v<E>, "simt fwd: the element type must be float, __half or __nv_bfloat16");
  static_assert(BN % kTN == 0 && kThreads % kTX == 0,
                "simt fwd: BN/4 must divide the thread count");
  static_assert(BM % kTY == 0, "simt fwd: BM must be a multiple of threads / (BN/4)");
  static_assert(kTM == 1 || kTM == 2 || kTM == 4 || kTM == 8, "simt fwd: TM must be 1, 2, 4 or 8");
  static_assert(BK % kVec == 0 && BN % kVec == 0,
                "simt fwd: BK and BN must be whole 16-byte vectors of the element type");
  static_assert(2 * kBufFloats * 4 <= 48 * 1024, "simt fwd: static shared memory must fit 48 KB");
  static_assert(2 * kTM * kTN <= 64, "simt fwd: more than 64 accumulators per thread would spill");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    swiglu_fwd_simt(const FwdParams p) {
  using T = typename Cfg::Element;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int TM = Cfg::kTM, TN = Cfg::kTN;
  constexpr int kLdA = Cfg::kLdA, kLdW = Cfg::kLdW;

  __shared__ __align__(16) float smem[2][Cfg::kBufFloats];

  const int tid = threadIdx.x;
  const int tx = tid % Cfg::kTX;
  const int ty = tid / Cfg::kTX;

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const int64_t B = p.B, I = p.I, D = p.D, ldx = p.ldx;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int64_t k_tiles = (I + BK - 1) / BK;

  float ra[Cfg::kSlotsA], rwa[Cfg::kSlotsW], rwb[Cfg::kSlotsW];

  // Global -> registers for K tile kt, V elements a load, zero out of range. Consecutive threads
  // take consecutive chunks of a row (coalesced); a vector (V > 1) is wholly in range or out.
  auto load_global = [&](auto v_tag, int64_t kt) {
    constexpr int V = decltype(v_tag)::value;
    const int64_t k0 = kt * BK;
    auto load_vec = [&](const T* src, bool ok, float* dst) {
      if constexpr (V == 1) {
        dst[0] = ok ? to_f32(*src) : 0.0f;
      } else {
        alignas(16) T v[V];
        if (ok) {
          *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(src);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) v[e] = from_f32<T>(0.0f);
        }
#pragma unroll
        for (int e = 0; e < V; ++e) dst[e] = to_f32(v[e]);
      }
    };
    constexpr int kRowChunksK = BK / V;                   // chunks per K-contiguous tile row
    [[maybe_unused]] constexpr int kRowChunksN = BN / V;  // chunks per N-contiguous tile row
#pragma unroll
    for (int i = 0; i < Cfg::template kItersA<V>; ++i) {
      const int c = tid + i * kThreads;
      if ((BM * BK / V) % kThreads != 0 && c >= BM * BK / V) break;
      const int64_t m = m0 + c / kRowChunksK;
      const int64_t k = k0 + (c % kRowChunksK) * V;
      load_vec(x + m * ldx + k, m < B && k < I, &ra[i * V]);
    }
#pragma unroll
    for (int i = 0; i < Cfg::template kItersW<V>; ++i) {
      const int c = tid + i * kThreads;
      if ((BN * BK / V) % kThreads != 0 && c >= BN * BK / V) break;
      if constexpr (!Cfg::kPacked) {  // W rows are contiguous in K
        const int64_t n = n0 + c / kRowChunksK;
        const int64_t k = k0 + (c % kRowChunksK) * V;
        const bool ok = n < D && k < I;
        load_vec(w + n * I + k, ok, &rwa[i * V]);
        load_vec(w + (D + n) * I + k, ok, &rwb[i * V]);
      } else {                        // W rows are contiguous in N
        const int64_t k = k0 + c / kRowChunksN;
        const int64_t n = n0 + (c % kRowChunksN) * V;
        const bool ok = n < D && k < I;
        load_vec(w + k * 2 * D + n, ok, &rwa[i * V]);
        load_vec(w + k * 2 * D + D + n, ok, &rwb[i * V]);
      }
    }
  };

  // Registers -> shared buffer, K-major: A[k][m], Wa[k][n], Wb[k][n]; same chunk mapping.
  auto store_shared = [&](auto v_tag, int buf) {
    constexpr int V = decltype(v_tag)::value;
    constexpr int kRowChunksK = BK / V;
    [[maybe_unused]] constexpr int kRowChunksN = BN / V;
    float* sa = smem[buf];
    float* swa = sa + BK * kLdA;
    float* swb = swa + BK * kLdW;
#pragma unroll
    for (int i = 0; i < Cfg::template kItersA<V>; ++i) {
      const int c = tid + i * kThreads;
      if ((BM * BK / V) % kThreads != 0 && c >= BM * BK / V) break;
      const int mm = c / kRowChunksK;
      const int kk = (c % kRowChunksK) * V;
#pragma unroll
      for (int e = 0; e < V; ++e) sa[(kk + e) * kLdA + mm] = ra[i * V + e];
    }
#pragma unroll
    for (int i = 0; i < Cfg::template kItersW<V>; ++i) {
      const int c = tid + i * kThreads;
      if ((BN * BK / V) % kThreads != 0 && c >= BN * BK / V) break;
      if constexpr (!Cfg::kPacked) {
        const int nn = c / kRowChunksK;
        const int kk = (c % kRowChunksK) * V;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          swa[(kk + e) * kLdW + nn] = rwa[i * V + e];
          swb[(kk + e) * kLdW + nn] = rwb[i * V + e];
        }
      } else {
        const int kk = c / kRowChunksN;
        const int nn = (c % kRowChunksN) * V;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          swa[kk * kLdW + nn + e] = rwa[i * V + e];
          swb[kk * kLdW + nn + e] = rwb[i * V + e];
        }
      }
    }
  };

  using VecTag = std::integral_constant<int, Cfg::kVec>;
  using OneTag = std::integral_constant<int, 1>;
  const bool vec_load = p.vec_load != 0;
  auto load = [&](int64_t kt) {
    if (vec_load) load_global(VecTag{}, kt); else load_global(OneTag{}, kt);
  };
  auto store = [&](int buf) {
    if (vec_load) store_shared(VecTag{}, buf); else store_shared(OneTag{}, buf);
  };

  float acc_g[TM][TN] = {};
  float acc_u[TM][TN] = {};

  load(0);
  store(0);
  __syncthreads();

  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int buf = static_cast<int>(kt & 1);
    const bool has_next = kt + 1 < k_tiles;
    if (has_next) load(kt + 1);  // in flight during the FMAs below

    const float* sa = smem[buf];
    const float* swa = sa + BK * kLdA;
    const float* swb = swa + BK * kLdW;
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], wa[TN], wb[TN];
      const float* pa = sa + k * kLdA + ty * TM;
      if constexpr (TM % 4 == 0) {
#pragma unroll
        for (int i = 0; i < TM; i += 4) {
          const float4 v = *reinterpret_cast<const float4*>(pa + i);
          a[i] = v.x; a[i + 1] = v.y; a[i + 2] = v.z; a[i + 3] = v.w;
        }
      } else if constexpr (TM == 2) {
        const float2 v = *reinterpret_cast<const float2*>(pa);
        a[0] = v.x; a[1] = v.y;
      } else {
        a[0] = pa[0];
      }
      const float4 va = *reinterpret_cast<const float4*>(swa + k * kLdW + tx * TN);
      const float4 vb = *reinterpret_cast<const float4*>(swb + k * kLdW + tx * TN);
      wa[0] = va.x; wa[1] = va.y; wa[2] = va.z; wa[3] = va.w;
      wb[0] = vb.x; wb[1] = vb.y; wb[2] = vb.z; wb[3] = vb.w;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          acc_g[i][j] = fmaf(a[i], wa[j], acc_g[i][j]);
          acc_u[i][j] = fmaf(a[i], wb[j], acc_u[i][j]);
        }
      }
    }

    // Why no barrier first: every thread has passed the barrier after kt-1, the other buffer's last reader.
    if (has_next) store(buf ^ 1);
    __syncthreads();
  }

  // Epilogue: bias, then the gate (or the backward's dH; epilogue.cuh), masked stores.
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const int64_t nt = n0 + tx * TN;  // first of this thread's TN columns
  float bg[TN], bu[TN];
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const bool ok = p.has_bias && nt + j < D;
    bg[j] = ok ? to_f32(bias[nt + j]) : 0.0f;
    bu[j] = ok ? to_f32(bias[D + nt + j]) : 0.0f;
  }
  // Why pairs: with vec_store a thread's 4 columns are all in range or all out, and aligned.
  const bool vec_store = p.vec_store != 0;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty * TM + i;
    if (m >= B) continue;
#pragma unroll
    for (int j = 0; j < TN; j += 2) {
      fwd_epilogue_pair<T, Cfg::kFastMath>(p, m, nt + j, acc_g[i][j] + bg[j], acc_u[i][j] + bu[j],
                                           acc_g[i][j + 1] + bg[j + 1],
                                           acc_u[i][j + 1] + bu[j + 1], vec_store);
    }
  }
}

}  // namespace swiglu::kernels
