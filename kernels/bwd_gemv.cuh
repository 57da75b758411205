// The backward GEMMs for a few rows of X on sm_80+ tensor cores (fp16/bf16, mma.sync m16n8k16,
// fp32 accumulation), reading dH = [dG | dU] as stored (the gate backward writes it first):
//
//   dX (B×I)   = dH (B×2D) · W12 (2D×I)   the linear layout: a stream of W12
//   dW12 (2D×I) = dHᵀ · X (B×I)           either layout: a stream of dW's stores (dbias apart)
//
// Neither stages the streamed operand in shared memory. A lane loads 16 bytes (8 elements of one
// row) from each of several rows, and byte permutes pair the rows' elements into mma fragments:
// the mma's k index is free to name any row, and its m or n index any column, as long as every
// operand and the stores agree (docs/kernels-gemv.md draws the maps). Other archs __trap().
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

// dX: a block computes ROWS rows × 64·VECS columns of dX (a lane loads VECS 16-byte vectors of a
// row); its WARPS warps take turns over 16-row steps of its K slice (UNROLL steps of loads in
// flight a warp), and meet in shared memory.
template <class E, int ROWS, int VECS, int WARPS, int UNROLL>
struct GemvDxConfig {
  using Element = E;
  static constexpr int kRows = ROWS;
  static constexpr int kNTiles = ROWS / 8;  // mma n8 tiles: rows of dX
  static constexpr int kVecs = VECS;
  static constexpr int kWarps = WARPS;
  static constexpr int kThreads = WARPS * 32;
  static constexpr int kUnroll = UNROLL;
  // As the tile listings name it: rows, columns, K a block step, loads in flight, warps.
  static constexpr int kBlockM = ROWS, kBlockN = 64 * VECS, kBlockK = 16 * WARPS;
  static constexpr int kStages = UNROLL;
  static constexpr int kSmemBytes = 0;  // static: the cross-warp sums

  static_assert(std::is_same_v<E, __half> || std::is_same_v<E, __nv_bfloat16>,
                "gemv dX: the element type must be __half or __nv_bfloat16");
  static_assert(ROWS % 8 == 0 && ROWS <= 32, "gemv dX: 8 to 32 rows in n8 tiles");
  static_assert(VECS * (16 * kNTiles + 16 * UNROLL) <= 128, "gemv dX: accumulators and loads in flight would spill");
};

// dW: a warp computes 32 rows (of dW12, columns of dH) × 64 columns (of X); WARPS_M × WARPS_N warps
// a block; K = B in steps of 16.
template <class E, int WARPS_M, int WARPS_N>
struct GemvDwConfig {
  using Element = E;
  static constexpr int kWarpsM = WARPS_M, kWarpsN = WARPS_N;
  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 32 * WARPS_M, kBlockN = 64 * WARPS_N, kBlockK = 16;
  static constexpr int kStages = 1;
  static constexpr int kSmemBytes = 0;

  static_assert(std::is_same_v<E, __half> || std::is_same_v<E, __nv_bfloat16>,
                "gemv dW: the element type must be __half or __nv_bfloat16");
};

namespace gemv_detail {

// Word w of a 16-byte vector.
__device__ __forceinline__ uint32_t word(const uint4& v, int w) {
  return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w;
}

// Two 32-bit words of 16-bit pairs (x = {x0, x1}, y = {y0, y1}, low half first) re-paired by
// position: {x0, y0} and {x1, y1}.
__device__ __forceinline__ uint32_t low_halves(uint32_t x, uint32_t y) { return __byte_perm(x, y, 0x5410); }
__device__ __forceinline__ uint32_t high_halves(uint32_t x, uint32_t y) { return __byte_perm(x, y, 0x7632); }

// Elements [col, col + 8) of a row, zero past `avail` (the elements left in the row) or when !ok.
// vec: 16-byte aligned and avail a multiple of 8, so a vector is wholly in or out.
template <class T, bool kStreamed>
__device__ __forceinline__ uint4 load8(const T* src, int64_t avail, bool ok, bool vec) {
  if (!ok || avail <= 0) return make_uint4(0, 0, 0, 0);
  if (vec) return kStreamed ? load_streamed_16(src) : __ldg(reinterpret_cast<const uint4*>(src));
  alignas(16) T v[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = e < avail ? src[e] : from_f32<T>(0.0f);
  return *reinterpret_cast<const uint4*>(v);
}

// Elements [col, col + 2) of a row as one word (low half first), zero past `avail` or when !ok.
// vec: 4-byte aligned.
template <class T>
__device__ __forceinline__ uint32_t load2(const T* src, int64_t avail, bool ok, bool vec) {
  if (!ok || avail <= 0) return 0;
  if (vec && avail >= 2) return __ldg(reinterpret_cast<const uint32_t*>(src));
  alignas(4) T v[2] = {src[0], avail > 1 ? src[1] : from_f32<T>(0.0f)};
  return *reinterpret_cast<const uint32_t*>(v);
}

// Eight values of a 16-bit T, rounded, as one 16-byte vector.
template <class T>
__device__ __forceinline__ uint4 pack8(const float (&v)[8]) {
  return make_uint4(pack_pair<T>(v[0], v[1]), pack_pair<T>(v[2], v[3]), pack_pair<T>(v[4], v[5]),
                    pack_pair<T>(v[6], v[7]));
}

// One 16-byte store. Why inline PTX: nvcc split some of dW's uint4 stores into four 4-byte ones.
__device__ __forceinline__ void store16(void* dst, const uint4& w) {
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(dst), "r"(w.x), "r"(w.y), "r"(w.z), "r"(w.w)
               : "memory");
}

// Stores v[0..8) at dst[0..8): one 16-byte store when vec, else element by element up to avail.
template <class T>
__device__ __forceinline__ void store8(T* dst, const float (&v)[8], int64_t avail, bool vec) {
  if (avail <= 0) return;
  if (vec) {
    store16(dst, pack8<T>(v));
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (e < avail) dst[e] = from_f32<T>(v[e]);
}

}  // namespace gemv_detail

// dX = dH · W12, C = M×N = B×I, K = 2D (BwdKind::dx_linear; p.dh set). The swapped product
// dXᵀ = W12ᵀ · dHᵀ puts W12 in the mma's A operand: in 16-row step kb, lane (g, t) loads columns
// [c, c + 8) of W12 rows kb + 2t, 2t + 1, 2t + 8, 2t + 9 (its four k of the step), c = n0 + 64v +
// 8g for each vector v, and m tile (v, j) takes column c + 2j as its row g and the next column as
// its row g + 8. The B operand is dH's rows m0 + 8q + g at the same k, and the accumulators come
// out as 8 adjacent columns of two dX rows a vector.
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) swiglu_bwd_gemv_dx(const BwdParams p) {
#if SWIGLU_SM80_DEVICE
  using T = typename Cfg::Element;
  using namespace gemv_detail;
  constexpr int NT = Cfg::kNTiles, U = Cfg::kUnroll, W = Cfg::kWarps, V = Cfg::kVecs;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int g = lane >> 2, t = lane & 3;

  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * Cfg::kRows;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * Cfg::kBlockN;
  const int64_t k_begin = p.splits > 1 ? static_cast<int64_t>(blockIdx.z) * p.k_per_split : 0;
  const int64_t k_end = p.splits > 1 ? min(K, k_begin + p.k_per_split) : K;
  const T* __restrict__ w = static_cast<const T*>(p.b);
  const T* __restrict__ dh = static_cast<const T*>(p.dh);
  const int64_t ldb = p.ldb, ldh = 2 * p.D;
  auto column = [&](int v) { return n0 + 64 * v + 8 * g; };  // this lane's 8 columns of vector v
  const bool vec_b = p.vec_b != 0, vec_a = p.vec_a != 0;

  float acc[V][4][NT][4] = {};
  const int64_t steps = (k_end - k_begin + 15) / 16;
  for (int64_t s0 = warp; s0 < steps; s0 += static_cast<int64_t>(W) * U) {
    // All of the W loads first, so that 4·U·V of them are in flight.
    uint4 raw[U][4][V];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t kb = k_begin + (s0 + static_cast<int64_t>(u) * W) * 16;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t k = kb + 2 * t + (r & 1) + (r >> 1) * 8;
#pragma unroll
        for (int v = 0; v < V; ++v)
          raw[u][r][v] = load8<T, true>(w + k * ldb + column(v), N - column(v), k < k_end, vec_b);
      }
    }
    // Then all of dH's fragments for those steps (zero past k_end), so that they make one round trip
    // while W's loads are in flight, not one a step after them.
    uint32_t bq[U][NT][2];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t kb = k_begin + (s0 + static_cast<int64_t>(u) * W) * 16;
#pragma unroll
      for (int q = 0; q < NT; ++q) {
        const int64_t row = m0 + 8 * q + g;
        const T* src = dh + row * ldh + kb + 2 * t;
        bq[u][q][0] = load2<T>(src, k_end - (kb + 2 * t), row < M, vec_a);
        bq[u][q][1] = load2<T>(src + 8, k_end - (kb + 2 * t + 8), row < M, vec_a);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t kb = k_begin + (s0 + static_cast<int64_t>(u) * W) * 16;
      if (kb >= k_end) break;  // the same for the whole warp
      const uint32_t (&b)[NT][2] = bq[u];
#pragma unroll
      for (int v = 0; v < V; ++v)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t a[4] = {low_halves(word(raw[u][0][v], j), word(raw[u][1][v], j)),
                                 high_halves(word(raw[u][0][v], j), word(raw[u][1][v], j)),
                                 low_halves(word(raw[u][2][v], j), word(raw[u][3][v], j)),
                                 high_halves(word(raw[u][2][v], j), word(raw[u][3][v], j))};
#pragma unroll
          for (int q = 0; q < NT; ++q) mma_m16n8k16<T>(acc[v][j][q], a, b[q]);
        }
    }
  }

  // The warps' sums meet in warp 0 (each lane adds the same fragment positions of the others).
  constexpr int kPerLane = V * 4 * NT * 4;
  __shared__ float sums[W > 1 ? W - 1 : 1][kPerLane][32];
  float* const flat = &acc[0][0][0][0];
  if (warp > 0) {
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) sums[warp - 1][e][lane] = flat[e];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int w2 = 0; w2 < W - 1; ++w2)
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) flat[e] += sums[w2][e][lane];
  }

  // Lane (g, t) of warp 0 holds rows m0 + 8q + 2t + h at columns column(v) .. + 7.
  auto row_values = [&](int v, int q, int h, float (&out)[8]) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      out[2 * j] = acc[v][j][q][h];
      out[2 * j + 1] = acc[v][j][q][h + 2];
    }
  };
  // f(v, q, h, row) for each of the lane's rows in range.
  auto for_each_row = [&](auto&& f) {
#pragma unroll
    for (int v = 0; v < V; ++v)
#pragma unroll
      for (int q = 0; q < NT; ++q)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = m0 + 8 * q + 2 * t + h;
          if (row < M) f(v, q, h, row);
        }
  };
  if (p.splits > 1) {
    // Split-K: add the block's sums into the fp32 sums; the tile's last slice stores dX.
    if (warp == 0) {
      for_each_row([&](int v, int q, int h, int64_t row) {
        float out[8];
        row_values(v, q, h, out);
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (column(v) + e < N) atomicAdd(p.partial + row * N + column(v) + e, out[e]);
      });
    }
    if (!split_k_last_slice(p.counters + blockIdx.x * gridDim.y + blockIdx.y, p.splits)) return;
    if (warp == 0) {
      for_each_row([&](int v, int q, int h, int64_t row) {
        const float* src = p.partial + row * N + column(v);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc[v][j][q][h] = column(v) + 2 * j < N ? __ldcg(src + 2 * j) : 0.0f;
          acc[v][j][q][h + 2] = column(v) + 2 * j + 1 < N ? __ldcg(src + 2 * j + 1) : 0.0f;
        }
      });
    }
  }
  if (warp != 0) return;
  T* __restrict__ c = static_cast<T*>(p.c);
  const bool vec_c = p.vec_c != 0;
  for_each_row([&](int v, int q, int h, int64_t row) {
    float out[8];
    row_values(v, q, h, out);
    store8<T>(c + row * p.ldc + column(v), out, N - column(v), vec_c);
  });
#else
  (void)p;
  __trap();
#endif
}

// dW12 = dHᵀ · X, C = M×N = 2D×I, K = B (BwdKind::dw; p.dh set; dbias apart). In 16-row step k0
// of dH and X, lane (g, t) loads dH rows k0 + 2t, 2t + 1, 2t + 8, 2t + 9 at columns
// [mb + 4g, mb + 4g + 4) (m tile i takes column mb + 4g + 2i as its row g, the next as g + 8) and X
// rows alike at columns [nb + 8g, nb + 8g + 8) (n tile J takes column nb + 8g + J as its column g).
// The accumulators come out as 16 adjacent columns of 4 adjacent rows of dW12. Column tiles on
// gridDim.x, so that blocks running together store whole rows (DRAM takes those far faster than
// narrow strips of many rows); each block then walks row tiles blockIdx.y, + gridDim.y, ..., so
// that one wave of blocks stores all of dW with no block's start-up latency between tiles.
// Why 3 blocks a SM in the launch bounds: without them the element-wise B select took up to 204
// registers (2 blocks a SM).
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 3) swiglu_bwd_gemv_dw(const BwdParams p) {
#if SWIGLU_SM80_DEVICE
  using T = typename Cfg::Element;
  using namespace gemv_detail;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int g = lane >> 2, t = lane & 3;

  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t nb = static_cast<int64_t>(blockIdx.x) * Cfg::kBlockN + (warp % Cfg::kWarpsN) * 64;
  if (nb >= N) return;  // no barrier follows
  const T* __restrict__ dh = static_cast<const T*>(p.dh);
  const T* __restrict__ x = static_cast<const T*>(p.b);
  const int64_t ldh = 2 * p.D, ldx = p.ldb;
  const int64_t b_col = nb + 8 * g;
  const bool vec_a = p.vec_a != 0, vec_b = p.vec_b != 0;

  // The B fragments (X) of step k0: n tile J = 2j + half takes half `half` of word j.
  auto load_b = [&](int64_t k0, uint32_t (&b)[8][2]) {
    uint4 xb[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t k = k0 + 2 * t + (r & 1) + (r >> 1) * 8;
      xb[r] = load8<T, false>(x + k * ldx + b_col, N - b_col, k < K, vec_b);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      b[2 * j][0] = low_halves(word(xb[0], j), word(xb[1], j));
      b[2 * j][1] = low_halves(word(xb[2], j), word(xb[3], j));
      b[2 * j + 1][0] = high_halves(word(xb[0], j), word(xb[1], j));
      b[2 * j + 1][1] = high_halves(word(xb[2], j), word(xb[3], j));
    }
  };
  uint32_t b_first[8][2];  // step 0's, the only step while B <= 16
  load_b(0, b_first);

  T* __restrict__ c = static_cast<T*>(p.c);
  const int64_t col = nb + 16 * t;
  const bool vec_c = p.vec_c != 0;
  const int64_t m_tiles = (M + Cfg::kBlockM - 1) / Cfg::kBlockM;
  for (int64_t tile = blockIdx.y; tile < m_tiles; tile += gridDim.y) {
    const int64_t mb = tile * Cfg::kBlockM + (warp / Cfg::kWarpsN) * 32;
    if (mb >= M) break;  // later tiles start further down
    const int64_t a_col = mb + 4 * g;
    float acc[2][8][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      uint2 da[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t k = k0 + 2 * t + (r & 1) + (r >> 1) * 8;
        const T* src = dh + k * ldh + a_col;
        da[r] = make_uint2(load2<T>(src, M - a_col, k < K, vec_a), load2<T>(src + 2, M - a_col - 2, k < K, vec_a));
      }
      uint32_t b[8][2];
      if (k0 > 0) {
        load_b(k0, b);
      } else {
#pragma unroll
        for (int J = 0; J < 8; ++J) b[J][0] = b_first[J][0], b[J][1] = b_first[J][1];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint32_t lo0 = i == 0 ? da[0].x : da[0].y, lo1 = i == 0 ? da[1].x : da[1].y;
        const uint32_t hi0 = i == 0 ? da[2].x : da[2].y, hi1 = i == 0 ? da[3].x : da[3].y;
        const uint32_t a[4] = {low_halves(lo0, lo1), high_halves(lo0, lo1), low_halves(hi0, hi1),
                               high_halves(hi0, hi1)};
#pragma unroll
        for (int J = 0; J < 8; ++J) mma_m16n8k16<T>(acc[i][J], a, b[J]);
      }
    }

    // Lane (g, t) holds rows mb + 4g + 2i + h at columns col + [0, 16): lo[e] from accumulator
    // 2h of n tile e, hi[e] (column col + 8 + e) from accumulator 2h + 1.
    // Why the swap: lo and hi stored as they lie fill half of each 32-byte sector per store; with
    // lanes t and t ^ 1 trading a 16-byte half (an even lane its hi, an odd lane its lo), the first
    // store of a pair of lanes covers columns [32s, 32s + 16) and the second [32s + 16, 32s + 32),
    // s = t / 2: whole sectors. Every lane shuffles (the warp's 64 columns all below N, as vec_c
    // and the shuffles need), then stores its row if it is below M.
    const bool swap = vec_c && !p.c_trans && nb + 64 <= N;
    if (swap) {
      const bool odd = (t & 1) != 0;
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = mb + 4 * g + 2 * i + h;
          float lo[8], hi[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            lo[e] = acc[i][e][2 * h];
            hi[e] = acc[i][e][2 * h + 1];
          }
          const uint4 lo_w = pack8<T>(lo), hi_w = pack8<T>(hi);
          const uint4 give = odd ? lo_w : hi_w;
          uint4 got;
          got.x = __shfl_xor_sync(0xffffffffu, give.x, 1);
          got.y = __shfl_xor_sync(0xffffffffu, give.y, 1);
          got.z = __shfl_xor_sync(0xffffffffu, give.z, 1);
          got.w = __shfl_xor_sync(0xffffffffu, give.w, 1);
          if (row >= M) continue;
          T* dst = c + row * p.ldc + col;
          // Even lane: its lo at col, its partner's lo at col + 16. Odd lane: its partner's hi at
          // col - 8, its own hi at col + 8.
          store16(odd ? dst - 8 : dst, odd ? got : lo_w);
          store16(odd ? dst + 8 : dst + 16, odd ? hi_w : got);
        }
      continue;
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = mb + 4 * g + 2 * i + h;
        if (row >= M) continue;
        float lo[8], hi[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          lo[e] = acc[i][e][2 * h];
          hi[e] = acc[i][e][2 * h + 1];
        }
        if (p.c_trans) {  // packed: dWf[n][m]
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            if (col + e < N) c[(col + e) * p.ldc + row] = from_f32<T>(lo[e]);
            if (col + 8 + e < N) c[(col + 8 + e) * p.ldc + row] = from_f32<T>(hi[e]);
          }
        } else {
          store8<T>(c + row * p.ldc + col, lo, N - col, vec_c);
          store8<T>(c + row * p.ldc + col + 8, hi, N - col - 8, vec_c);
        }
      }
  }
#else
  (void)p;
  __trap();
#endif
}

}  // namespace swiglu::kernels
