// The backward GEMMs on sm_80+ tensor cores (fp16/bf16, mma.sync m16n8k16, fp32 accumulation),
// with the gate backward fused into the loading of A:
//
//   C (M×N) = A (M×K) · B (K×N), A a view of dH = [dG | dU] (BwdKind, params.cuh), plus dbias for dW
//
// Without BwdParams.dh the A tile is computed from dZ and H as it loads: fetched before the tile's
// mma work, turned into dH after it, so the loads hide behind the math. Shared tiles keep each
// operand's global orientation (ldmatrix or .trans makes the fragments). Split-K for the dX of
// small batches; dbias summed from the A fragments. Other archs __trap() (docs/kernels-sm80.md).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class E, BwdKind Kind, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
struct Sm80BwdConfig {
  using Element = E;
  static constexpr bool kATrans = a_transposed(Kind);
  static constexpr bool kBKMajor = b_k_major(Kind);
  static constexpr int kBlockM = BM, kBlockN = BN, kBlockK = BK;
  static constexpr int kStages = STAGES;
  static constexpr int kWarpsM = WARPS_M, kWarpsN = WARPS_N;
  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kVec = 8;  // 16-bit elements per 16-byte chunk
  static constexpr int kWM = BM / WARPS_M, kWN = BN / WARPS_N;
  static constexpr int kMT = kWM / 16, kNT = kWN / 8;

  // A tile in dH orientation: rows are dH rows, columns dH columns (contiguous).
  static constexpr int kARows = kATrans ? BK : BM;
  static constexpr int kACols = kATrans ? BM : BK;
  static constexpr int kBRows = kBKMajor ? BN : BK;
  static constexpr int kBCols = kBKMajor ? BK : BN;
  static constexpr int kRowA = kACols * 2 + 16;  // bytes
  static constexpr int kRowB = kBCols * 2 + 16;
  static constexpr int kBytesA = kARows * kRowA;
  static constexpr int kBytesB = kBRows * kRowB;
  static constexpr int kStageBytes = kBytesA + kBytesB;
  static constexpr int kSmemBytes = STAGES * kStageBytes;

  static constexpr int kChunksRowA = kACols / kVec;
  static constexpr int kChunksRowB = kBCols / kVec;
  static constexpr int kChunksA = kARows * kChunksRowA / kThreads;
  static constexpr int kChunksB = kBRows * kChunksRowB / kThreads;

  static_assert(std::is_same_v<E, __half> || std::is_same_v<E, __nv_bfloat16>,
                "sm80 bwd: the element type must be __half or __nv_bfloat16");
  static_assert(STAGES >= 2, "sm80 bwd: the pipeline needs at least 2 stages");
  static_assert(BM % (16 * WARPS_M) == 0, "sm80 bwd: the warp tile's M must be a multiple of 16");
  static_assert(BN % (16 * WARPS_N) == 0, "sm80 bwd: the warp tile's N must be a multiple of 16");
  static_assert(BK % 16 == 0, "sm80 bwd: BK must be a multiple of the mma K (16)");
  static_assert((kRowA / 16) % 2 == 1 && (kRowB / 16) % 2 == 1,
                "sm80 bwd: padded row strides must be an odd number of 16-byte units");
  static_assert((kARows * kChunksRowA) % kThreads == 0 && (kBRows * kChunksRowB) % kThreads == 0,
                "sm80 bwd: every thread must copy the same number of chunks per tile");
  static_assert(kThreads % kChunksRowA == 0 && kThreads % kChunksRowB == 0,
                "sm80 bwd: the thread count must be a multiple of the chunks per tile row");
  static_assert(kSmemBytes <= 99 * 1024, "sm80 bwd: shared memory must fit sm_86's 99 KB");
  static_assert(kMT * kNT * 4 <= 128, "sm80 bwd: more than 128 accumulators per thread would spill");
};

// One 16-byte chunk of dH at (r, c..c+7) from dZ and H: r < rows, c + 8 <= 2D, D % 8 == 0 (the
// chunk lies in one half) and aligned sources. Fetched first, finished later, so the loads can be
// in flight during other work.
struct GateChunk {
  uint4 dz, g, u;
};

template <class T>
__device__ __forceinline__ void gate_chunk_fetch(const BwdParams& p, int64_t r,
                                                 int64_t c, GateChunk* out) {
  const T* dz = static_cast<const T*>(p.dz);
  const T* h = static_cast<const T*>(p.h);
  const int64_t D = p.D;
  const int64_t cc = c < D ? c : c - D;
  out->dz = *reinterpret_cast<const uint4*>(dz + r * D + cc);
  out->g = *reinterpret_cast<const uint4*>(h + r * 2 * D + cc);
  out->u = c < D ? *reinterpret_cast<const uint4*>(h + r * 2 * D + D + cc) : make_uint4(0, 0, 0, 0);
}

template <class T>
__device__ __forceinline__ uint4 gate_chunk_finish(const GateChunk& in, bool dg_half) {
  const T* dz = reinterpret_cast<const T*>(&in.dz);
  const T* g = reinterpret_cast<const T*>(&in.g);
  const T* u = reinterpret_cast<const T*>(&in.u);
  alignas(16) T out[8];
#pragma unroll
  for (int e = 0; e < 8; e += 2) {
    float s0, ds0, s1, ds1;
    const float g0 = to_f32(g[e]), g1 = to_f32(g[e + 1]);
    silu_and_grad<kPrologueFastMath>(g0, &s0, &ds0);
    silu_and_grad<kPrologueFastMath>(g1, &s1, &ds1);
    const float dz0 = to_f32(dz[e]), dz1 = to_f32(dz[e + 1]);
    const float v0 = dg_half ? dz0 * to_f32(u[e]) * ds0 : dz0 * s0;
    const float v1 = dg_half ? dz1 * to_f32(u[e + 1]) * ds1 : dz1 * s1;
    out[e] = from_f32<T>(v0);
    out[e + 1] = from_f32<T>(v1);
  }
  return *reinterpret_cast<const uint4*>(out);
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_bwd_sm80(const BwdParams p) {
#if SWIGLU_SM80_DEVICE
  using T = typename Cfg::Element;
  constexpr int BK = Cfg::kBlockK;
  constexpr int kStages = Cfg::kStages;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int kVec = Cfg::kVec;
  constexpr int kMT = Cfg::kMT, kNT = Cfg::kNT;
  constexpr int kRowA = Cfg::kRowA, kRowB = Cfg::kRowB;
  constexpr bool kATrans = Cfg::kATrans, kBKMajor = Cfg::kBKMajor;

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = smem_u32(smem);

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp / Cfg::kWarpsN;
  const int warp_n = warp % Cfg::kWarpsN;

  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * Cfg::kBlockM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * Cfg::kBlockN;
  // This block's K slice: tiles [kt_begin, kt_begin + k_tiles) (the whole K without split-K).
  const int64_t kt_begin = p.splits > 1 ? blockIdx.z * (p.k_per_split / BK) : 0;
  const int64_t kt_end_all = (K + BK - 1) / BK;
  const int64_t k_tiles =
      p.splits > 1 ? (p.k_per_split / BK < kt_end_all - kt_begin ? p.k_per_split / BK
                                                                  : kt_end_all - kt_begin)
                   : kt_end_all;
  const bool direct = p.dh != nullptr;
  const bool vec_a = p.vec_a != 0;
  const bool vec_b = p.vec_b != 0;
  const T* __restrict__ dh = static_cast<const T*>(p.dh);
  const T* __restrict__ bmat = static_cast<const T*>(p.b);
  const int64_t two_d = 2 * p.D;

  // ---- global -> shared ---------------------------------------------------------------------
  // A chunk is 16 bytes of one tile row; a thread's chunks share one chunk column, kPass rows apart.
  constexpr int kPassA = kThreads / Cfg::kChunksRowA;
  constexpr int kPassB = kThreads / Cfg::kChunksRowB;
  const int a_cc = tid % Cfg::kChunksRowA, a_row = tid / Cfg::kChunksRowA;
  const int b_cc = tid % Cfg::kChunksRowB, b_row = tid / Cfg::kChunksRowB;

  // dH coordinates of A chunk i of K tile kt (r: dH row, c: first dH column).
  auto a_coords = [&](int64_t kt_local, int i, int64_t* r, int64_t* c) {
    const int64_t kt = kt_begin + kt_local;
    const int64_t row = a_row + i * kPassA, col = a_cc * kVec;
    if constexpr (kATrans) {  // tile rows are k (dH rows), columns m (dH columns)
      *r = kt * BK + row;
      *c = m0 + col;
    } else {                  // tile rows are m (dH rows), columns k (dH columns)
      *r = m0 + row;
      *c = kt * BK + col;
    }
  };
  auto a_soff = [&](int stage, int i) {
    return stage * Cfg::kStageBytes + (a_row + i * kPassA) * kRowA + a_cc * 16;
  };
  // B chunk i of K tile kt: (row, col) in B's storage and whether they are in range.
  auto b_src = [&](int64_t kt_local, int i, const T** src, int64_t* avail, bool* row_ok) {
    const int64_t kt = kt_begin + kt_local;
    const int64_t row = b_row + i * kPassB, col = b_cc * kVec;
    if constexpr (!kBKMajor) {  // storage rows are k, columns n
      const int64_t k = kt * BK + row, n = n0 + col;
      *src = bmat + k * p.ldb + n;
      *avail = N - n;
      *row_ok = k < K;
    } else {                    // storage rows are n, columns k
      const int64_t n = n0 + row, k = kt * BK + col;
      *src = bmat + n * p.ldb + k;
      *avail = K - k;
      *row_ok = n < N;
    }
  };
  auto b_soff = [&](int stage, int i) {
    return stage * Cfg::kStageBytes + Cfg::kBytesA + (b_row + i * kPassB) * kRowB + b_cc * 16;
  };

  auto load_b = [&](int stage, int64_t kt) {
#pragma unroll
    for (int i = 0; i < Cfg::kChunksB; ++i) {
      const T* src;
      int64_t avail;
      bool row_ok;
      b_src(kt, i, &src, &avail, &row_ok);
      const int off = b_soff(stage, i);
      if (vec_b) {
        const bool ok = row_ok && avail > 0;
        cp_async_16_zfill(smem_base + off, ok ? static_cast<const void*>(src) : p.b, ok);
      } else {
        alignas(16) T v[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) v[e] = (row_ok && e < avail) ? src[e] : from_f32<T>(0.0f);
        *reinterpret_cast<uint4*>(smem + off) = *reinterpret_cast<const uint4*>(v);
      }
    }
  };

  // A through cp.async (dH materialised and vector-aligned).
  auto load_a_async = [&](int stage, int64_t kt) {
#pragma unroll
    for (int i = 0; i < Cfg::kChunksA; ++i) {
      int64_t r, c;
      a_coords(kt, i, &r, &c);
      const bool ok = r < p.rows && c < two_d;
      cp_async_16_zfill(smem_base + a_soff(stage, i), ok ? static_cast<const void*>(dh + r * two_d + c) : p.dh, ok);
    }
  };
  // Why only the first column of blocks: every column computes the same dH rows; one copy suffices.
  const bool write_dh = !kATrans && p.dh_out != nullptr && blockIdx.y == 0;
  // A through registers with the gate backward (vector path): fetch before the math, finish after.
  GateChunk staged[Cfg::kChunksA];
  auto fetch_a = [&](int64_t kt) {
#pragma unroll
    for (int i = 0; i < Cfg::kChunksA; ++i) {
      int64_t r, c;
      a_coords(kt, i, &r, &c);
      if (r < p.rows && c < two_d) {
        gate_chunk_fetch<T>(p, r, c, &staged[i]);
      } else {
        staged[i].dz = staged[i].g = staged[i].u = make_uint4(0, 0, 0, 0);
      }
    }
  };
  auto finish_a = [&](int stage, int64_t kt) {
#pragma unroll
    for (int i = 0; i < Cfg::kChunksA; ++i) {
      int64_t r, c;
      a_coords(kt, i, &r, &c);
      // Why no range test: out-of-range chunks were fetched as zeros, and silu(0)·0 = 0.
      const uint4 v = gate_chunk_finish<T>(staged[i], c < p.D);
      *reinterpret_cast<uint4*>(smem + a_soff(stage, i)) = v;
      if (write_dh && r < p.rows && c < two_d) {
        *reinterpret_cast<uint4*>(static_cast<T*>(p.dh_out) + r * two_d + c) = v;
      }
    }
  };
  // A element by element (any alignment, either source).
  auto load_a_scalar = [&](int stage, int64_t kt) {
#pragma unroll 1
    for (int i = 0; i < Cfg::kChunksA; ++i) {
      int64_t r, c;
      a_coords(kt, i, &r, &c);
      alignas(16) T v[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        v[e] = dh_element<T>(p, r, c + e);
        if (write_dh && r < p.rows && c + e < two_d) static_cast<T*>(p.dh_out)[r * two_d + c + e] = v[e];
      }
      *reinterpret_cast<uint4*>(smem + a_soff(stage, i)) = *reinterpret_cast<const uint4*>(v);
    }
  };
  const bool a_async = direct && vec_a;
  const bool a_staged = !direct && vec_a;

  // ---- fragments --------------------------------------------------------------------------------
  const int g = lane >> 2;
  const int t = lane & 3;
  const int warp_row0 = warp_m * Cfg::kWM;
  const int warp_col0 = warp_n * Cfg::kWN;
  // ldmatrix.x4 address rows (lane l feeds row l%8 of matrix l/8).
  // Plain A [m][k]: matrices (m 0-7, k lo), (m 8-15, k lo), (m 0-7, k hi), (m 8-15, k hi).
  const int a_mrow = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int a_kbyte = (lane >> 4) * 16;
  // Transposed A [k][m]: the same four matrices; matrix rows are k.
  const int at_krow = (lane & 7) + (lane >> 4) * 8;
  const int at_mcol = ((lane >> 3) & 1) * 8;
  // B stored [n][k]: {b0, b1} of n8 tiles 2jp and 2jp+1.
  const int bn_row = (lane & 7) + (lane >> 4) * 8;
  const int bn_kbyte = ((lane >> 3) & 1) * 16;
  // B stored [k][n], with .trans: the same order, matrix rows are k.
  const int bk_krow = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int bk_ncol = (lane >> 4) * 8;

  float acc[kMT][kNT][4];
#pragma unroll
  for (int i = 0; i < kMT; ++i)
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  // dbias: the first N tile's warps of column 0 sum their A fragments (rows g and g+8 of each m16).
  const bool do_bias = kATrans && p.dbias != nullptr && blockIdx.y == 0 && warp_n == 0;
  float row_sum[kMT][2];
#pragma unroll
  for (int i = 0; i < kMT; ++i) row_sum[i][0] = row_sum[i][1] = 0.0f;

  auto pair_sum = [](uint32_t v) {
    const T* e = reinterpret_cast<const T*>(&v);
    return to_f32(e[0]) + to_f32(e[1]);
  };

  auto compute_stage = [&](int stage) {
    const uint32_t sa = smem_base + stage * Cfg::kStageBytes;
    const uint32_t sb = sa + Cfg::kBytesA;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      uint32_t a[kMT][4];
      uint32_t b[kNT][2];
#pragma unroll
      for (int i = 0; i < kMT; ++i) {
        if constexpr (!kATrans) {
          ldmatrix_x4(a[i], sa + (warp_row0 + i * 16 + a_mrow) * kRowA + ks * 32 + a_kbyte);
        } else {
          ldmatrix_x4_trans(a[i],
                            sa + (ks * 16 + at_krow) * kRowA + (warp_row0 + i * 16 + at_mcol) * 2);
        }
      }
#pragma unroll
      for (int jp = 0; jp < kNT / 2; ++jp) {
        uint32_t r[4];
        if constexpr (kBKMajor) {
          ldmatrix_x4(r, sb + (warp_col0 + jp * 16 + bn_row) * kRowB + ks * 32 + bn_kbyte);
        } else {
          ldmatrix_x4_trans(r, sb + (ks * 16 + bk_krow) * kRowB + (warp_col0 + jp * 16 + bk_ncol) * 2);
        }
        b[2 * jp][0] = r[0];
        b[2 * jp][1] = r[1];
        b[2 * jp + 1][0] = r[2];
        b[2 * jp + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j) mma_m16n8k16<T>(acc[i][j], a[i], b[j]);
      if (do_bias) {
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
          row_sum[i][0] += pair_sum(a[i][0]) + pair_sum(a[i][2]);
          row_sum[i][1] += pair_sum(a[i][1]) + pair_sum(a[i][3]);
        }
      }
    }
  };

  // ---- the pipeline -----------------------------------------------------------------------------
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) {
      load_b(s, s);
      if (a_async) {
        load_a_async(s, s);
      } else if (a_staged) {
        fetch_a(s);
        finish_a(s, s);
      } else {
        load_a_scalar(s, s);
      }
    }
    cp_async_commit();
  }

  int read_stage = 0;
  int write_stage = kStages - 1;
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    // Publishes tile kt and proves every warp is done with tile kt-1, whose stage is refilled now.
    __syncthreads();
    const int64_t next = kt + kStages - 1;
    const bool has_next = next < k_tiles;
    if (has_next) {
      load_b(write_stage, next);
      if (a_async) load_a_async(write_stage, next);
      else if (a_staged) fetch_a(next);
    }
    cp_async_commit();

    compute_stage(read_stage);

    // Why after the math: the fetched vectors had the tile's mma work to arrive; this stage is
    // read only after the next iteration's barrier.
    if (has_next) {
      if (a_staged) finish_a(write_stage, next);
      else if (!a_async) load_a_scalar(write_stage, next);
    }
    read_stage = read_stage + 1 == kStages ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == kStages ? 0 : write_stage + 1;
  }
  cp_async_wait<0>();

  // ---- epilogue -----------------------------------------------------------------------------------
  // f(m, n, v) for each accumulator pair: row m (< M), columns n and n + 1 (the caller checks N).
  auto for_each_pair = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + warp_row0 + i * 16 + g + h * 8;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
          f(m, n0 + warp_col0 + j * 8 + 2 * t, &acc[i][j][2 * h]);
        }
      }
  };
  if (p.splits > 1) {
    // Split-K: add this slice's tile into the fp32 sums; the last slice to arrive reads them back
    // and stores C. Why atomics: one round trip however many slices (docs/kernels-sm80.md).
    float* sums = p.partial;
    for_each_pair([&](int64_t m, int64_t n, float* v) {
      if (n < N) atomicAdd(sums + m * N + n, v[0]);
      if (n + 1 < N) atomicAdd(sums + m * N + n + 1, v[1]);
    });
    if (!split_k_last_slice(p.counters + blockIdx.x * gridDim.y + blockIdx.y, p.splits)) return;
    for_each_pair([&](int64_t m, int64_t n, float* v) {
      v[0] = n < N ? __ldcg(sums + m * N + n) : 0.0f;
      v[1] = n + 1 < N ? __ldcg(sums + m * N + n + 1) : 0.0f;
    });
  }
  T* __restrict__ c = static_cast<T*>(p.c);
  const int64_t ldc = p.ldc;
  const bool c_trans = p.c_trans != 0;
  const bool vec_c = p.vec_c != 0;
  const int acc_c = p.accumulate;
  for_each_pair([&](int64_t m, int64_t n, const float* v) {
    if (n >= N) return;
    if (c_trans) {
      T* d0 = c + n * ldc + m;
      *d0 = from_f32<T>(plus_held(d0, v[0], acc_c));
      if (n + 1 < N) d0[ldc] = from_f32<T>(plus_held(d0 + ldc, v[1], acc_c));
    } else if (vec_c) {
      T* d = c + m * ldc + n;  // N even: n + 1 < N too
      store_pair(d, plus_held(d, v[0], acc_c), plus_held(d + 1, v[1], acc_c));
    } else {
      T* d = c + m * ldc + n;
      d[0] = from_f32<T>(plus_held(d, v[0], acc_c));
      if (n + 1 < N) d[1] = from_f32<T>(plus_held(d + 1, v[1], acc_c));
    }
  });
  if (do_bias) {
    T* __restrict__ dbias = static_cast<T*>(p.dbias);
#pragma unroll
    for (int i = 0; i < kMT; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float s = row_sum[i][h];
        // Lanes 4g .. 4g+3 hold the same rows; their k columns together cover the tile.
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        const int64_t m = m0 + warp_row0 + i * 16 + g + h * 8;
        if (t == 0 && m < M) dbias[m] = from_f32<T>(plus_held(dbias + m, s, acc_c));
      }
    }
  }
#else
  (void)p;
  __trap();
#endif
}

}  // namespace swiglu::kernels
