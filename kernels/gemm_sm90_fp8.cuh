// The FP8 backward's GEMMs on Hopper (sm_90a): C (M×N) = A·Bᵀ on e4m3 operands, both K-major (FP8
// wgmma reads no other layout), with fp32 scales along K in blocks of 128, into bf16, fp16 or fp32.
//
//   dX  = dH·W12:   A = dH (B × 2D, 1×128 scales), B = W12ᵀ (I × 2D, 128×128 blocks), K in two
//                   segments, the dG half and the dU half, so that no K block straddles them;
//   dW12 = dHᵀ·X:   A = dHᵀ (2D × B, 1×128 along B), B = Xᵀ (I × B, 1×128 along B), one segment.
//
// A segment has its own pair of tensor maps (reads past its K return zeros) and scale offsets; its
// K blocks run 0 .. ceil(K/128) − 1. As fwd_sm90_fp8.cuh: a producer warpgroup and two consumer
// warpgroups of 64 rows over a persistent grid; a K step (128, one scale block) sums its four k32
// wgmmas into `part`, which is then scaled and added to the fp32 accumulators.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/sm90.cuh"

namespace swiglu::kernels {

// Scales of segment s, K block kb: A's of row m at a_scale[s·a_seg + m·a_m + kb·a_kb]; B's of row n
// at b_scale[s·b_seg + i·b_n + kb·b_kb], i = n (b_rows: 1×128 along K) or n / 128 (128×128
// blocks). A stride of 0 repeats a scale (one for the tensor: all three 0).
struct Fp8GemmParams {
  int64_t M = 0, N = 0, K = 0;  // K of each segment
  int segments = 1;             // 1 or 2
  const float* a_scale = nullptr;
  int64_t a_seg = 0, a_m = 0, a_kb = 0;
  const float* b_scale = nullptr;
  int64_t b_seg = 0, b_n = 0, b_kb = 0;
  int b_rows = 0;
  int b_off32 = 0;    // b_rows: every row's scale offset (n · b_n, n < N) fits in 32 bits
  void* c = nullptr;  // M×N, row stride ldc elements, in the kernel's Out
  int64_t ldc = 0;
  int accumulate = 0;  // C += A·Bᵀ (C read first) instead of C = A·Bᵀ
  int vec_store = 0;   // C and ldc allow paired stores (N even, aligned)
};

template <class Out, int STAGES>
struct Sm90Fp8GemmConfig {
  using Element = __nv_fp8_e4m3;
  using Output = Out;
  static constexpr int kBlockM = 128;  // two consumer warpgroups of 64 rows
  static constexpr int kBlockN = 128;  // one m64n128 wgmma: 64 accumulators and 64 partial sums
  static constexpr int kBlockK = 128;  // one 128-byte swizzle row, one scale block
  static constexpr int kStages = STAGES;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kCluster = 1;
  static constexpr int kABytes = kBlockM * 128;
  static constexpr int kBBytes = kBlockN * 128;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes + 1024 + 1024;  // stages, barriers, alignment
  static_assert(std::is_same_v<Out, float> || std::is_same_v<Out, __half> || std::is_same_v<Out, __nv_bfloat16>,
                "sm90 fp8 gemm: C is fp32, fp16 or bf16");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fp8 gemm: the shared memory exceeds the 227 KiB of a block");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_gemm_sm90_fp8(const __grid_constant__ CUtensorMap a_map0, const __grid_constant__ CUtensorMap b_map0,
                         const __grid_constant__ CUtensorMap a_map1, const __grid_constant__ CUtensorMap b_map1,
                         const Fp8GemmParams p) {
#if SWIGLU_SM90A_DEVICE
  using E = typename Cfg::Element;
  using Out = typename Cfg::Output;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  extern __shared__ uint8_t smem_raw[];
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes>(smem_raw, 2);
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;
  const sm90::TileWalk<Cfg::kGroupM, 1> walk((p.M + BM - 1) / BM, (p.N + BN - 1) / BN);
  const int seg_steps = static_cast<int>((p.K + BK - 1) / BK);
  const int k_steps = seg_steps * p.segments;

  if (warpgroup == 0) {
    sm90::setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      sm90::tma_prefetch_descriptor(&a_map0);
      sm90::tma_prefetch_descriptor(&b_map0);
      if (p.segments > 1) {
        sm90::tma_prefetch_descriptor(&a_map1);
        sm90::tma_prefetch_descriptor(&b_map1);
      }
      sm90::RingPos<S> pos;
      for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
        int64_t m0, n0;
        walk.template origin<BM, BN>(u, &m0, &n0);
        sm90::produce_tile(ring, pos, k_steps, [&](uint8_t* a, uint64_t* full, int k) {
          const bool second = k >= seg_steps;
          const int32_t kk = (second ? k - seg_steps : k) * BK;
          sm90::tma_load_2d(a, second ? &a_map1 : &a_map0, full, kk, static_cast<int32_t>(m0));
          sm90::tma_load_2d(a + Cfg::kABytes, second ? &b_map1 : &b_map0, full, kk, static_cast<int32_t>(n0));
        });
      }
    }
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  const uint32_t rows = static_cast<uint32_t>(consumer) * 64 * 128;  // this consumer's half of the A tile
  const bool b_rows = p.b_rows != 0;

  // Register i holds row r0 + 8·((i >> 1) & 1), column n0 + 8·(i / 4) + 2·(lane % 4) + (i & 1).
  float acc[BN / 2], part[BN / 2];
  int64_t step = 0;  // this block's K steps so far, over all its tiles: the ring position

  for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
    int64_t m0, n0;
    walk.template origin<BM, BN>(u, &m0, &n0);
    const int64_t r0 = m0 + consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    // Rows past M and columns past N take scale 0: their sums are dropped anyway.
    const bool row_in[2] = {r0 < p.M, r0 + 8 < p.M};
    // b_rows: a tile with all its columns below N (and 32-bit offsets) reads its scales at
    // base + (8j + e)·b_n, base at this lane's first column.
    const bool full_n = p.b_off32 != 0 && n0 + BN <= p.N;
    const uint32_t b_n32 = static_cast<uint32_t>(p.b_n);
    const uint32_t col_off = full_n ? static_cast<uint32_t>(n0 + 2 * (lane % 4)) * b_n32 : 0u;
    // acc += part · the scales of step k: A's of the thread's two rows, B's of its 32 columns
    // (b_rows) or of the tile's 128-row block. Loaded while step k + 1's wgmmas are not yet issued,
    // just after step k's have finished; why not earlier: 32 more live registers would spill.
    const auto promote = [&](int k) {
      const int seg = k >= seg_steps ? 1 : 0;
      const int64_t kb = k - seg * seg_steps;
      float sa[2];
#pragma unroll
      for (int r = 0; r < 2; ++r)
        sa[r] = row_in[r] ? __ldg(p.a_scale + seg * p.a_seg + (r0 + 8 * r) * p.a_m + kb * p.a_kb) : 0.0f;
      const float* bs = p.b_scale + seg * p.b_seg + kb * p.b_kb;
      if (b_rows) {
        float sb[BN / 4];
        if (full_n) {
          // Why 32-bit offsets from one base: the 32 loads' 64-bit products and bounds checks were
          // about 1300 instructions a K step (dW's), several times its wgmmas' issue time.
          const float* base = bs + col_off;
#pragma unroll
          for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) sb[2 * j + e] = __ldg(base + static_cast<uint32_t>(8 * j + e) * b_n32);
          }
        } else {
#pragma unroll
          for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int64_t col = n0 + 8 * j + 2 * (lane % 4) + e;
              sb[2 * j + e] = col < p.N ? __ldg(bs + col * p.b_n) : 0.0f;
            }
          }
        }
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] += part[i] * (sa[(i >> 1) & 1] * sb[2 * (i / 4) + (i & 1)]);
      } else {
        const float sb = __ldg(bs + (n0 / 128) * p.b_n);
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] += part[i] * (sa[(i >> 1) & 1] * sb);
      }
    };
    sm90::RingPos<S> pos(step);
    int release = -1;
    for (int k = 0; k < k_steps; ++k, ++step) {
      sm90::mbar_wait(&ring.full[pos.stage], pos.phase);
      const uint32_t a = smem_u32(ring.smem + pos.stage * Cfg::kStageBytes), b = a + Cfg::kABytes;
      if (release >= 0) {
        sm90::wgmma_wait<0>();
        promote(k - 1);
        if (leader) ring.release(release);
      }
      sm90::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)  // 32 bytes of K each
        sm90::wgmma_m64nk<BN, E>(part, sm90::smem_desc(a + rows + kk * 32), sm90::smem_desc(b + kk * 32),
                                 kk > 0 ? 1 : 0);
      sm90::wgmma_commit();
      release = pos.stage;
      pos.next();
    }
    sm90::wgmma_wait<0>();
    if (release >= 0) {
      promote(k_steps - 1);
      if (leader) ring.release(release);
    }

    // The epilogue: pairs of columns, each rounded once to Out (after C's old value, accumulating).
    Out* c = static_cast<Out*>(p.c);
#pragma unroll
    for (int i = 0; i < BN / 2; i += 2) {
      const int64_t row = r0 + 8 * ((i >> 1) & 1);
      const int64_t col = n0 + 8 * (i / 4) + 2 * (lane % 4);
      if (row >= p.M || col >= p.N) continue;
      Out* dst = c + row * p.ldc + col;
      float v0 = acc[i], v1 = acc[i + 1];
      const bool two = col + 1 < p.N;
      if (p.accumulate != 0) {
        v0 += to_f32(dst[0]);
        if (two) v1 += to_f32(dst[1]);
      }
      if (two && p.vec_store != 0) {
        store_pair(dst, v0, v1);
      } else {
        dst[0] = from_f32<Out>(v0);
        if (two) dst[1] = from_f32<Out>(v1);
      }
    }
  }
#endif
}

}  // namespace swiglu::kernels
