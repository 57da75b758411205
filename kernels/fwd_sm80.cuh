// The fused forward on sm_80+ tensor cores: fp16/bf16 (mma.sync m16n8k16) and fp32 with tf32
// (m16n8k8.tf32) or 3xTF32 math (three tf32 mma a product), fp32 accumulation:
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)    X: B×I (row stride ldx); W: linear 2D×I or packed I×2D
//
// Each warp owns the same sub-tile of G and of U, so both land in one thread and the gate runs in
// registers. A STAGES-deep cp.async pipeline (element loads without FwdParams.vec_load), padded
// shared rows instead of a swizzle, ≤ 99 KB shared so sm_86/89 run it too; other archs __trap().
// Layout, tiles and the 3xTF32 split: docs/kernels-sm80.md.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/epilogue.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class E, Layout L, Math M, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N,
          FastMath F = FastMath::off>
struct Sm80FwdConfig {
  using Element = E;
  static constexpr bool kPacked = L == Layout::packed;
  static constexpr FastMath kFastMath = F;
  static constexpr bool kTf32 = std::is_same_v<E, float>;
  static constexpr bool kTf32x3 = M == Math::tf32x3;  // three tf32 mma a product instead of one
  static constexpr int kBlockM = BM, kBlockN = BN, kBlockK = BK;
  static constexpr int kStages = STAGES;
  static constexpr int kWarpsM = WARPS_M, kWarpsN = WARPS_N;
  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = kWarps * 32;

  static constexpr int kElemBytes = static_cast<int>(sizeof(E));
  static constexpr int kVec = 16 / kElemBytes;    // elements per 16-byte chunk
  static constexpr int kMmaK = kTf32 ? 8 : 16;     // K of one mma; always 32 bytes of K
  static constexpr int kWM = BM / WARPS_M;         // warp tile
  static constexpr int kWN = BN / WARPS_N;
  static constexpr int kMT = kWM / 16;             // m16 tiles per warp
  static constexpr int kNT = kWN / 8;              // n8 tiles per warp (each for G and for U)

  // A stage: A [BM][BK], then Wa and Wb, each [BN][BK] (linear) or [BK][BN] (packed); padded rows.
  // Why 32 bytes for tf32 packed W: its scalar B reads are conflict-free at a stride of 8 mod 32 floats.
  static constexpr int kAPad = 16;
  static constexpr int kWPad = (kPacked && kTf32) ? 32 : 16;
  static constexpr int kRowA = BK * kElemBytes + kAPad;
  static constexpr int kRowW = (kPacked ? BN : BK) * kElemBytes + kWPad;
  static constexpr int kRowsW = kPacked ? BK : BN;
  static constexpr int kBytesA = BM * kRowA;
  static constexpr int kBytesW = kRowsW * kRowW;
  static constexpr int kStageBytes = kBytesA + 2 * kBytesW;
  static constexpr int kSmemBytes = STAGES * kStageBytes;

  // 16-byte chunks per tile row and per thread.
  static constexpr int kChunksRowA = BK / kVec;
  static constexpr int kChunksRowW = (kPacked ? BN : BK) / kVec;
  static constexpr int kChunksA = BM * BK / kVec / kThreads;
  static constexpr int kChunksW = BN * BK / kVec / kThreads;

  static_assert(is_swiglu_dtype_v<E>, "sm80 fwd: the element type must be float, __half or __nv_bfloat16");
  static_assert(kTf32 ? M == Math::tf32 || M == Math::tf32x3 : M == Math::exact,
                "sm80 fwd: fp32 runs as tf32 or 3xtf32, fp16/bf16 as exact");
  static_assert(STAGES >= 2, "sm80 fwd: the cp.async pipeline needs at least 2 stages");
  static_assert(BM % (16 * WARPS_M) == 0, "sm80 fwd: the warp tile's M must be a multiple of 16");
  static_assert(BN % (16 * WARPS_N) == 0,
                "sm80 fwd: the warp tile's N must be a multiple of 16 (B fragments load in pairs)");
  static_assert((BK * kElemBytes) % 32 == 0, "sm80 fwd: BK must be a multiple of the mma K");
  static_assert((kRowA / 16) % 2 == 1 && (kPacked ? kTf32 || (kRowW / 16) % 2 == 1
                                                  : (kRowW / 16) % 2 == 1),
                "sm80 fwd: ldmatrix row strides must be an odd number of 16-byte units "
                "(tile widths in bytes a multiple of 32)");
  static_assert(!(kPacked && kTf32) || (kRowW / 4) % 32 == 8,
                "sm80 fwd: tf32 packed W row stride must be 8 mod 32 floats");
  static_assert((BM * BK / kVec) % kThreads == 0 && (BN * BK / kVec) % kThreads == 0,
                "sm80 fwd: every thread must copy the same number of 16-byte chunks per tile");
  static_assert(kThreads % kChunksRowA == 0 && kThreads % kChunksRowW == 0,
                "sm80 fwd: the thread count must be a multiple of the 16-byte chunks per tile row");
  static_assert(kSmemBytes <= 99 * 1024,
                "sm80 fwd: shared memory must fit sm_86/sm_89's 99 KB per block");
  static_assert(kMT * kNT * 8 <= 128,
                "sm80 fwd: more than 128 accumulators per thread would spill");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm80(const FwdParams p) {
#if SWIGLU_SM80_DEVICE
  using T = typename Cfg::Element;
  constexpr int BK = Cfg::kBlockK;
  constexpr int kStages = Cfg::kStages;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int kVec = Cfg::kVec;
  constexpr int kMT = Cfg::kMT, kNT = Cfg::kNT;
  constexpr int kRowA = Cfg::kRowA, kRowW = Cfg::kRowW;
  constexpr bool kPacked = Cfg::kPacked, kTf32 = Cfg::kTf32, kTf32x3 = Cfg::kTf32x3;

  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = smem_u32(smem);

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp / Cfg::kWarpsN;
  const int warp_n = warp % Cfg::kWarpsN;

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const int64_t B = p.B, I = p.I, D = p.D, ldx = p.ldx;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * Cfg::kBlockM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * Cfg::kBlockN;
  const int64_t k_tiles = (I + BK - 1) / BK;
  const bool vec_load = p.vec_load != 0;
  const bool vec_store = p.vec_store != 0;

  // ---- global -> shared for one K tile --------------------------------------------------------
  // A chunk is 16 bytes of a tile row; a thread's chunks share one chunk column, kPassRows rows
  // apart, so everything but k is computed once, outside the K loop.
  constexpr int kPassRowsA = kThreads / Cfg::kChunksRowA;
  constexpr int kPassRowsW = kThreads / Cfg::kChunksRowW;
  const int ld_a_cc = tid % Cfg::kChunksRowA, ld_a_row = tid / Cfg::kChunksRowA;
  const int ld_w_cc = tid % Cfg::kChunksRowW, ld_w_row = tid / Cfg::kChunksRowW;
  const int a_soff = ld_a_row * kRowA + ld_a_cc * 16;
  const int w_soff = ld_w_row * kRowW + ld_w_cc * 16;
  // Sources of this thread's chunk 0 at k = 0 (w_src0: of Wa); chunk i is i passes further.
  const T* a_src0 = x + (m0 + ld_a_row) * ldx + ld_a_cc * kVec;
  const int64_t a_pass = kPassRowsA * ldx;
  const T* w_src0;
  int64_t w_pass, w_avail_n;
  if constexpr (!kPacked) {  // tile row = output column n, chunks along k
    w_src0 = w + (n0 + ld_w_row) * I + ld_w_cc * kVec;
    w_pass = kPassRowsW * I;
    w_avail_n = 0;  // unused
  } else {                   // tile row = k, chunks along n
    w_src0 = w + static_cast<int64_t>(ld_w_row) * 2 * D + n0 + ld_w_cc * kVec;
    w_pass = kPassRowsW * 2 * D;
    w_avail_n = D - (n0 + ld_w_cc * kVec);  // columns left in range from the chunk's first
  }
  const int64_t wb_shift = kPacked ? D : D * I;  // Wb's element (n, k) sits this far after Wa's

  // One chunk from src: avail elements in range (<= 0: none), row_ok the row; the rest become 0.
  // vec_tag: cp.async (vec_load) or element loads.
  auto copy_chunk = [&](auto vec_tag, int smem_off, const T* src, int64_t avail, bool row_ok) {
    if constexpr (decltype(vec_tag)::value) {
      // With vec_load a chunk is wholly in range or wholly out.
      const bool ok = row_ok && avail > 0;
      // Why x for a dead chunk: src-size 0 reads nothing, but the address must be valid.
      cp_async_16_zfill(smem_base + smem_off, ok ? src : x, ok);
    } else {
      alignas(16) T v[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) v[e] = (row_ok && e < avail) ? src[e] : from_f32<T>(0.0f);
      *reinterpret_cast<uint4*>(smem + smem_off) = *reinterpret_cast<const uint4*>(v);
    }
  };

  auto load_tile_impl = [&](auto vec_tag, int stage, int64_t kt) {
    const int a_off = stage * Cfg::kStageBytes + a_soff;
    const int wa_off = stage * Cfg::kStageBytes + Cfg::kBytesA + w_soff;
    const int wb_off = wa_off + Cfg::kBytesW;
    const int64_t k0 = kt * BK;
    const int64_t a_avail = I - (k0 + ld_a_cc * kVec);
    auto a_chunk = [&](int i) {
      const bool ok = m0 + ld_a_row + i * kPassRowsA < B;
      copy_chunk(vec_tag, a_off + i * kPassRowsA * kRowA, a_src0 + i * a_pass + k0, a_avail, ok);
    };
    auto w_chunk = [&](int i) {
      const int s_off = i * kPassRowsW * kRowW;
      if constexpr (!kPacked) {
        const bool ok = n0 + ld_w_row + i * kPassRowsW < D;
        const T* src = w_src0 + i * w_pass + k0;
        const int64_t avail = I - (k0 + ld_w_cc * kVec);
        copy_chunk(vec_tag, wa_off + s_off, src, avail, ok);
        copy_chunk(vec_tag, wb_off + s_off, src + wb_shift, avail, ok);
      } else {
        const bool ok = k0 + ld_w_row + i * kPassRowsW < I;
        const T* src = w_src0 + i * w_pass + k0 * 2 * D;
        copy_chunk(vec_tag, wa_off + s_off, src, w_avail_n, ok);
        copy_chunk(vec_tag, wb_off + s_off, src + wb_shift, w_avail_n, ok);
      }
    };
    if constexpr (decltype(vec_tag)::value) {
#pragma unroll
      for (int i = 0; i < Cfg::kChunksA; ++i) a_chunk(i);
#pragma unroll
      for (int i = 0; i < Cfg::kChunksW; ++i) w_chunk(i);
    } else {
      // Why not unrolled: a whole tile of scalar loads in registers would pass 255 registers.
#pragma unroll 1
      for (int i = 0; i < Cfg::kChunksA; ++i) a_chunk(i);
#pragma unroll 1
      for (int i = 0; i < Cfg::kChunksW; ++i) w_chunk(i);
    }
  };
  // Why the branch is here: one uniform branch a tile rather than one a chunk.
  auto load_tile = [&](int stage, int64_t kt) {
    if (vec_load) {
      load_tile_impl(std::true_type{}, stage, kt);
    } else {
      load_tile_impl(std::false_type{}, stage, kt);
    }
  };

  // ---- per-lane fragment addressing -----------------------------------------------------------
  // ldmatrix.x4, lane l: row l%8 of matrix l/8. A: {rows 0-7, 8-15} × {K bytes 0-15, 16-31} = a0..a3.
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int a_kbyte = (lane >> 4) * 16;
  // Linear W ([n][k]): two n8 tiles an x4: (n 0-7, k lo/hi) = b0/b1 of tile 0, (n 8-15, ..) of tile 1.
  const int bl_row = (lane & 7) + (lane >> 4) * 8;
  const int bl_kbyte = ((lane >> 3) & 1) * 16;
  // Packed W ([k][n], .trans): same order; matrix rows are k, columns n.
  const int bp_krow = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int bp_ncol = (lane >> 4) * 8;
  // Scalar tf32 packed reads and the epilogue: g = row in the fragment, t = column pair.
  const int g = lane >> 2;
  const int t = lane & 3;

  const int warp_row0 = warp_m * Cfg::kWM;  // within the block tile
  const int warp_col0 = warp_n * Cfg::kWN;

  float acc_g[kMT][kNT][4];
  float acc_u[kMT][kNT][4];
#pragma unroll
  for (int i = 0; i < kMT; ++i)
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc_g[i][j][r] = acc_u[i][j][r] = 0.0f;

  // One ldmatrix.x4 of W gives {b0, b1} of n8 tiles 2jp and 2jp+1 (see the lane maps above).
  auto set_b_pair = [](uint32_t (&b)[kNT][2], int jp, const uint32_t (&r)[4]) {
    b[2 * jp][0] = r[0];
    b[2 * jp][1] = r[1];
    b[2 * jp + 1][0] = r[2];
    b[2 * jp + 1][1] = r[3];
  };

  auto compute_stage = [&](int stage) {
    const uint32_t sa = smem_base + stage * Cfg::kStageBytes;
    const uint32_t swa = sa + Cfg::kBytesA;
    const uint32_t swb = swa + Cfg::kBytesW;
    // 3xTF32: the tile's products go into zeroed temporaries, added with rounding fp32 adds after it.
    float tmp_g[kTf32x3 ? kMT : 1][kTf32x3 ? kNT : 1][4];
    float tmp_u[kTf32x3 ? kMT : 1][kTf32x3 ? kNT : 1][4];
    if constexpr (kTf32x3) {
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 4; ++r) tmp_g[i][j][r] = tmp_u[i][j][r] = 0.0f;
    }
#pragma unroll
    for (int ks = 0; ks < BK / Cfg::kMmaK; ++ks) {
      uint32_t a[kMT][4];
      uint32_t bg[kNT][2];
      uint32_t bu[kNT][2];
#pragma unroll
      for (int i = 0; i < kMT; ++i) {
        ldmatrix_x4(a[i], sa + (warp_row0 + i * 16 + a_row) * kRowA + ks * 32 + a_kbyte);
      }
      if constexpr (!kPacked) {
#pragma unroll
        for (int jp = 0; jp < kNT / 2; ++jp) {
          const uint32_t off = (warp_col0 + jp * 16 + bl_row) * kRowW + ks * 32 + bl_kbyte;
          uint32_t r[4];
          ldmatrix_x4(r, swa + off);
          set_b_pair(bg, jp, r);
          ldmatrix_x4(r, swb + off);
          set_b_pair(bu, jp, r);
        }
      } else if constexpr (!kTf32) {
#pragma unroll
        for (int jp = 0; jp < kNT / 2; ++jp) {
          const uint32_t off =
              (ks * 16 + bp_krow) * kRowW + (warp_col0 + jp * 16 + bp_ncol) * Cfg::kElemBytes;
          uint32_t r[4];
          ldmatrix_x4_trans(r, swa + off);
          set_b_pair(bg, jp, r);
          ldmatrix_x4_trans(r, swb + off);
          set_b_pair(bu, jp, r);
        }
      } else {
        // tf32 packed: b0 = W[k = 8ks + t][n = g], b1 = W[k = 8ks + t + 4][n = g].
        const unsigned char* pwa = smem + (swa - smem_base);
        const unsigned char* pwb = smem + (swb - smem_base);
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
          const int off0 = (ks * 8 + t) * kRowW + (warp_col0 + j * 8 + g) * 4;
          const int off1 = off0 + 4 * kRowW;
          bg[j][0] = *reinterpret_cast<const uint32_t*>(pwa + off0);
          bg[j][1] = *reinterpret_cast<const uint32_t*>(pwa + off1);
          bu[j][0] = *reinterpret_cast<const uint32_t*>(pwb + off0);
          bu[j][1] = *reinterpret_cast<const uint32_t*>(pwb + off1);
        }
      }
      if constexpr (kTf32x3) {
        // a, bg, bu become the big parts; the small parts go alongside.
        uint32_t a_s[kMT][4], bg_s[kNT][2], bu_s[kNT][2];
#pragma unroll
        for (int i = 0; i < kMT; ++i)
#pragma unroll
          for (int r = 0; r < 4; ++r) split_tf32(a[i][r], a[i][r], a_s[i][r]);
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            split_tf32(bg[j][r], bg[j][r], bg_s[j][r]);
            split_tf32(bu[j][r], bu[j][r], bu_s[j][r]);
          }
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
#pragma unroll
          for (int j = 0; j < kNT; ++j) {
            // small·big, big·small, then big·big, into the K tile's temporaries.
            mma_m16n8k8_tf32(tmp_g[i][j], a_s[i], bg[j]);
            mma_m16n8k8_tf32(tmp_u[i][j], a_s[i], bu[j]);
            mma_m16n8k8_tf32(tmp_g[i][j], a[i], bg_s[j]);
            mma_m16n8k8_tf32(tmp_u[i][j], a[i], bu_s[j]);
            mma_m16n8k8_tf32(tmp_g[i][j], a[i], bg[j]);
            mma_m16n8k8_tf32(tmp_u[i][j], a[i], bu[j]);
          }
        }
      } else {
        if constexpr (kTf32) {
#pragma unroll
          for (int i = 0; i < kMT; ++i)
#pragma unroll
            for (int r = 0; r < 4; ++r) a[i][r] = cvt_tf32(a[i][r]);
#pragma unroll
          for (int j = 0; j < kNT; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              bg[j][r] = cvt_tf32(bg[j][r]);
              bu[j][r] = cvt_tf32(bu[j][r]);
            }
        }
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
#pragma unroll
          for (int j = 0; j < kNT; ++j) {
            if constexpr (kTf32) {
              mma_m16n8k8_tf32(acc_g[i][j], a[i], bg[j]);
              mma_m16n8k8_tf32(acc_u[i][j], a[i], bu[j]);
            } else {
              mma_m16n8k16<T>(acc_g[i][j], a[i], bg[j]);
              mma_m16n8k16<T>(acc_u[i][j], a[i], bu[j]);
            }
          }
        }
      }
    }
    if constexpr (kTf32x3) {
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            acc_g[i][j][r] += tmp_g[i][j][r];
            acc_u[i][j][r] += tmp_u[i][j][r];
          }
    }
  };

  // ---- the pipeline ---------------------------------------------------------------------------
  // Prologue: tiles 0 .. STAGES-2 in flight, a commit group each (empty past the end, so the wait
  // below stays uniform).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_tile(s, s);
    cp_async_commit();
  }

  int read_stage = 0;
  int write_stage = kStages - 1;
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    // Tile kt is group kt; at most STAGES-2 younger groups may still be in flight.
    cp_async_wait<kStages - 2>();
    // Why one barrier suffices: it publishes tile kt and proves every warp done with tile kt-1,
    // whose stage is refilled right below.
    __syncthreads();
    const int64_t next = kt + kStages - 1;
    if (next < k_tiles) load_tile(write_stage, next);
    cp_async_commit();

    compute_stage(read_stage);

    read_stage = read_stage + 1 == kStages ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == kStages ? 0 : write_stage + 1;
  }
  cp_async_wait<0>();  // only empty groups remain; leaves no copy in flight at exit

  // ---- epilogue: bias, then the gate (or the backward's dH) in fp32, masked stores -----------
  // acc[i][j][0..1] is row g, columns 2t, 2t+1 of the (i, j) tile; acc[i][j][2..3] is row g+8.
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    const int64_t col = n0 + warp_col0 + j * 8 + 2 * t;
    float bga[2] = {0.0f, 0.0f}, bub[2] = {0.0f, 0.0f};
    if (p.has_bias) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        if (col + e < D) {
          bga[e] = to_f32(bias[col + e]);
          bub[e] = to_f32(bias[D + col + e]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kMT; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + warp_row0 + i * 16 + g + h * 8;
        if (m >= B) continue;
        // Why pairs need vec_store: then col (even) and col + 1 are both in range or both out.
        fwd_epilogue_pair<T, Cfg::kFastMath>(
            p, m, col, acc_g[i][j][2 * h] + bga[0], acc_u[i][j][2 * h] + bub[0],
            acc_g[i][j][2 * h + 1] + bga[1], acc_u[i][j][2 * h + 1] + bub[1], vec_store);
      }
    }
  }
#else
  (void)p;
  __trap();  // built for an arch below sm_80: this kernel must never be launched there
#endif
}

}  // namespace swiglu::kernels
