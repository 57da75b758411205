// The backward GEMMs on Hopper (sm_90a): the sm90 forward's machinery (wgmma fed by TMA, a
// producer and two cooperative consumer warpgroups, a persistent grid) as a plain GEMM:
//
//   C (M×N) = A (M×K) · B (K×N), A a view of dH = [dG | dU] (BwdKind, params.cuh), C row-major
//
// No gate code: TMA reads dH from memory, so the host materialises it first and sums dbias from
// it. No operand is transposed in memory: each keeps its orientation, the descriptors say which
// way is K. The packed dW runs as dWf = Xᵀ·dH (the host swaps the operands). Other archs compile
// an empty body (docs/kernels-sm90.md).
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/params.cuh"
#include "kernels/sm90.cuh"

namespace swiglu::kernels {

// BN: C columns a tile, the wgmma's N. CLUSTER = 2: blocks pair on vertically adjacent tiles with
// the same B tile, each loading half its boxes and multicasting them to both. BN = 200 (an MN-major
// B only) loads four 64-column boxes and computes 200 of their columns; TMA stores 192 columns of C
// and the last 8 go out from registers.
template <class E, BwdKind Kind, int BN, int STAGES, int CLUSTER = 1>
struct Sm90BwdConfig {
  using Element = E;
  static constexpr bool kATrans = a_transposed(Kind);
  static constexpr bool kBKMajor = b_k_major(Kind);
  static constexpr int kCluster = CLUSTER;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = BN;
  static constexpr int kBlockK = 64;  // 128 bytes of a 16-bit type: one swizzle row
  static constexpr int kStages = STAGES;
  static constexpr int kWarps = 12;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kBoxBytes = 64 * 64 * 2;  // one 64×64 MN-major box
  static constexpr int kABytes = kBlockM * kBlockK * 2;
  static constexpr int kBBoxes = (BN + 63) / 64;  // an MN-major B's 64-column boxes
  static constexpr int kBBytes = kBKMajor ? BN * kBlockK * 2 : kBBoxes * kBoxBytes;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // C through TMA stores (BwdParams.tma_c): a buffer a consumer for 128 columns of its 64 rows.
  static constexpr int kCBufferBytes = 2 * sm90::kStoreBoxBytes;
  // Stages from a 1024-byte (swizzle atom) boundary, the barriers in 1024 bytes, the C buffers.
  static constexpr int kCOffset = STAGES * kStageBytes + 1024;  // from the first stage
  static constexpr int kSmemBytes = kCOffset + 2 * kCBufferBytes + 1024;
  static_assert(std::is_same_v<E, __half> || std::is_same_v<E, __nv_bfloat16>,
                "sm90 bwd: the element type must be __half or __nv_bfloat16 (wgmma's transpose needs 16 bits)");
  static_assert(BN == 128 || BN == 256 || (BN == 200 && !kBKMajor),
                "sm90 bwd: the wgmma N is 128 or 256, or 200 with an MN-major B");
  static_assert(kStageBytes % 1024 == 0, "sm90 bwd: stages must keep the 1024-byte swizzle alignment");
  static_assert(2 * STAGES * 8 <= 1024, "sm90 bwd: the barriers must fit ahead of the C buffers");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 bwd: the shared memory exceeds the 227 KiB of a block");
  static_assert(CLUSTER == 1 || CLUSTER == 2, "sm90 bwd: clusters of 1 or 2 blocks");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_bwd_sm90(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
                    const __grid_constant__ CUtensorMap c_map, const BwdParams p) {
#if SWIGLU_SM90A_DEVICE
  using T = typename Cfg::Element;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  constexpr int kBox = Cfg::kBoxBytes;
  constexpr int C = Cfg::kCluster;
  extern __shared__ uint8_t smem_raw[];
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes, C>(smem_raw, 2);  // both consumers read a stage
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;

  const sm90::TileWalk<Cfg::kGroupM, C> walk((p.M + BM - 1) / BM, (p.N + BN - 1) / BN);
  const int k_steps = static_cast<int>((p.K + BK - 1) / BK);
  // Split-K (dX at few rows, the launcher checks C = 1): slices of k_per_split run as units of
  // their own; each adds its fp32 tile into p.partial, the last of a tile's to arrive stores C.
  const sm90::KSlices slices = p.splits > 1 ? sm90::KSlices{p.splits, static_cast<int>(p.k_per_split / BK)}
                                            : sm90::KSlices{1, k_steps};

  if (warpgroup == 0) {
    sm90::run_producer<BM, BN>(ring, walk, k_steps, &a_map, &b_map,
                               [&](uint8_t* a, uint64_t* full, int k, int64_t m0, int64_t n0) {
      uint8_t* b = a + Cfg::kABytes;
      const int32_t k0 = k * BK;
      if constexpr (Cfg::kATrans) {
        // A read M-major: two 64(M)×64(K) boxes of its source (dH, or X for the packed dW), rows
        // k0.., columns m0.. and m0 + 64..
        sm90::tma_load_2d(a, &a_map, full, static_cast<int32_t>(m0), k0);
        sm90::tma_load_2d(a + kBox, &a_map, full, static_cast<int32_t>(m0 + 64), k0);
      } else {
        // dH: one 64(K)×128(M) box, rows m0.., columns k0..
        sm90::tma_load_2d(a, &a_map, full, k0, static_cast<int32_t>(m0));
      }
      // B's boxes, box i from the cluster's block i % C.
      if constexpr (Cfg::kBKMajor) {
        // Wf: C boxes of 64(K)×(BN/C)(N), rows n0.., columns k0..
#pragma unroll
        for (int i = 0; i < C; ++i) {
          if (i != walk.rank) continue;
          sm90::tma_load_shared<C>(b + i * (BN / C) * BK * 2, &b_map, full, k0,
                                   static_cast<int32_t>(n0 + i * (BN / C)));
        }
      } else {
#pragma unroll
        for (int i = 0; i < Cfg::kBBoxes; ++i) {
          if (i % C != walk.rank) continue;
          sm90::tma_load_shared<C>(b + i * kBox, &b_map, full, static_cast<int32_t>(n0 + 64 * i), k0);
        }
      }
    }, slices);
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  T* __restrict__ c = static_cast<T*>(p.c);

  __shared__ int last_slice[2];  // a consumer's: whether its slice was its tile's last

  float acc[BN / 2];
  int64_t first = 0;  // ring position of this unit's first K step
  for (int64_t v = walk.first(); v < slices.units(walk.units); v += walk.stride()) {
    int64_t u, m0, n0;
    int k_begin, k_count;
    slices.unit(v, walk.units, k_steps, &u, &k_begin, &k_count);
    walk.template origin<BM, BN>(u, &m0, &n0);
    const int64_t unit_first = first;
    first += k_count;
    sm90::consume_tile(ring, unit_first, k_count, leader, [&](uint32_t a, int k) {
      const uint32_t b = a + Cfg::kABytes;
#pragma unroll
      for (int kk = 0; kk < BK / 16; ++kk) {
        // Why 2048 and 32: 16 K rows of an MN-major tile are two 1024-byte atoms; 16 K columns of
        // a K-major row are 32 bytes inside its swizzled 128.
        const uint64_t da = Cfg::kATrans ? sm90::smem_desc_mn(a + consumer * kBox + kk * 2048, kBox)
                                         : sm90::smem_desc(a + consumer * 64 * BK * 2 + kk * 32);
        const uint64_t db = Cfg::kBKMajor ? sm90::smem_desc(b + kk * 32) : sm90::smem_desc_mn(b + kk * 2048, kBox);
        sm90::wgmma_m64nk<BN, T, Cfg::kATrans ? 1 : 0, Cfg::kBKMajor ? 0 : 1>(acc, da, db, k > 0 || kk > 0 ? 1 : 0);
      }
    });

    // Epilogue: register 4j + e holds row warp·16 + lane/4 (e < 2) or 8 rows below it (e >= 2) of
    // this consumer's 64, and column 8j + 2·(lane % 4) + (e & 1).
    if (slices.splits > 1) {
      // Each consumer counts its own 64 rows (counters[2·tile + consumer]), so only its 128
      // threads meet (named barrier 4 + consumer); one with no rows in C has nothing to add.
      const int64_t rows0 = m0 + consumer * 64;
      if (rows0 >= p.M) continue;
      float* __restrict__ sums = p.partial;
      const int64_t r0 = rows0 + warp * 16 + lane / 4;
      // Why 16-byte reductions: one red.v4 does the work of four scalar ones in L2, where the
      // slices' sums of a tile meet. Lanes t and t^1 (t = lane % 4) trade a pair so that each holds
      // 4 adjacent columns of one row: t even row r0, t odd row r0 + 8. With N a multiple of 4 (TMA
      // wants 8) the 4 columns are all in or all out; a workspace not 16-byte aligned takes the
      // scalar path.
      const bool vec = reinterpret_cast<uintptr_t>(sums) % 16 == 0 && p.N % 4 == 0;
      if (vec) {
        const bool odd = lane & 1;
        const int64_t row4 = r0 + (odd ? 8 : 0);
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const float give0 = odd ? acc[4 * j] : acc[4 * j + 2], give1 = odd ? acc[4 * j + 1] : acc[4 * j + 3];
          const float got0 = sm90::shfl_xor1(give0), got1 = sm90::shfl_xor1(give1);
          const int64_t col4 = n0 + 8 * j + 2 * (lane % 4) - (odd ? 2 : 0);
          const float4 v = odd ? make_float4(got0, got1, acc[4 * j + 2], acc[4 * j + 3])
                               : make_float4(acc[4 * j], acc[4 * j + 1], got0, got1);
          if (row4 < p.M && col4 < p.N) sm90::red_add_v4(sums + row4 * p.N + col4, v);
        }
      } else {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const int64_t col = n0 + 8 * j + 2 * (lane % 4);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int64_t row = r0 + 8 * (e / 2), cc = col + (e & 1);
            if (row < p.M && cc < p.N) atomicAdd(sums + row * p.N + cc, acc[4 * j + e]);
          }
        }
      }
      if (!sm90::last_slice_arrived(p.counters + 2 * u + consumer, p.splits, leader, last_slice, consumer)) continue;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int64_t col = n0 + 8 * j + 2 * (lane % 4);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = r0 + 8 * h;
          const bool in = row < p.M && col < p.N;
          if (vec) {
            const float2 v = in ? __ldcg(reinterpret_cast<const float2*>(sums + row * p.N + col)) : make_float2(0.0f, 0.0f);
            acc[4 * j + 2 * h] = v.x;
            acc[4 * j + 2 * h + 1] = v.y;
          } else {
            acc[4 * j + 2 * h] = in ? __ldcg(sums + row * p.N + col) : 0.0f;
            acc[4 * j + 2 * h + 1] = in && col + 1 < p.N ? __ldcg(sums + row * p.N + col + 1) : 0.0f;
          }
        }
      }
    }
    // The columns stored from registers: all of them, or (BN = 200) the last 8 after the TMA stores.
    int j_first = 0;
    if (p.tma_c != 0) {
      // Through shared memory and TMA stores (sm90::store_buffer_*), 128 columns (two boxes) at a
      // time, which TMA clips at M and N. Named barrier 2 + consumer.
      const uint32_t buf = smem_u32(ring.smem) + Cfg::kCOffset + consumer * Cfg::kCBufferBytes;
      const uint32_t row = static_cast<uint32_t>(warp * 16 + lane / 4);
      const int64_t row0 = m0 + consumer * 64;
      if constexpr (BN % 128 == 0) {
        sm90::store_tile_c<T, BN, 2>(acc, buf, row, lane, leader, 2 + consumer, &c_map, n0, row0);
        continue;
      } else {
        // BN = 200: columns 0-127 in a round of two boxes, 128-191 in a round of one; a box
        // further would write into the next tile's columns.
        static_assert(BN == 200, "sm90 bwd: the TMA-store epilogue's rounds are laid out for BN = 200");
        sm90::store_tile_c<T, 128, 2>(reinterpret_cast<const float(&)[64]>(acc), buf, row, lane, leader,
                                      2 + consumer, &c_map, n0, row0);
        sm90::store_tile_c<T, 64, 1>(reinterpret_cast<const float(&)[32]>(acc[64]), buf, row, lane, leader,
                                     2 + consumer, &c_map, n0 + 128, row0);
        j_first = 24;
      }
    }
    const int64_t r0 = m0 + consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      if (j < j_first) continue;
      const int64_t col = n0 + 8 * j + 2 * (lane % 4);
      if (col >= p.N) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = r0 + 8 * h;
        if (row >= p.M) continue;
        T* dst = c + row * p.ldc + col;
        // (C += A·B where the launcher asks: it leaves tma_c off then.)
        const float v0 = plus_held(dst, acc[4 * j + 2 * h], p.accumulate);
        const float v1 = col + 1 < p.N ? plus_held(dst + 1, acc[4 * j + 2 * h + 1], p.accumulate) : 0.0f;
        if (p.vec_c != 0) {
          // col is even and N, ldc and c whole 16-byte vectors, so the pair is in range and aligned.
          store_pair(dst, v0, v1);
        } else {
          dst[0] = from_f32<T>(v0);
          if (col + 1 < p.N) dst[1] = from_f32<T>(v1);
        }
      }
    }
  }
  // The last stores must have finished before the block exits.
  if (p.tma_c != 0 && leader) sm90::tma_store_wait<0>();
  if constexpr (C > 1) sm90::cluster_sync();
#endif
}

}  // namespace swiglu::kernels
