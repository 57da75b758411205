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
//
// The scales travel with the operands: the producer warpgroup's warps 1 .. 3 take the K steps in
// turn, load the 128 A scales of the tile's rows and the B scales (128 of its columns, or the one
// of its 128×128 block) into the stage's scale slot, and arrive on the stage's scale barrier. Why:
// read by the consumers from global memory after each step's wgmmas, one load per column of a
// 1×128 B (dW's Xᵀ, each column's scales on their own cache line) was 32 scattered loads a thread
// and a step, and the consumers waited on them with the tensor cores idle.
//
// C leaves through shared memory and TMA stores where it is 16-bit and written (Fp8GemmParams::
// tma_c), else from the accumulators two columns at a time. With few tiles K is split
// (Fp8GemmParams::splits), the slices adding fp32 sums that the last of a tile's writes to C.
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
  void* c = nullptr;  // M×N, row stride ldc elements, in the kernel's Out
  int64_t ldc = 0;
  int accumulate = 0;  // C += A·Bᵀ (C read first) instead of C = A·Bᵀ
  int vec_store = 0;   // C and ldc allow paired stores (N even, aligned)
  int tma_c = 0;       // C (16-bit, not accumulating) through shared memory and TMA stores (c_map)
  // Split-K (splits > 1): the K steps of all segments in slices of k_per_split, each slice a unit
  // of the persistent grid adding its fp32 tile into `partial` (M×N, zeroed before the launch);
  // the last slice of a tile's 64 rows to arrive (counters[2·tile + consumer], zeroed) writes C.
  int splits = 1;
  int k_per_split = 0;
  float* partial = nullptr;
  int* counters = nullptr;
};

template <class Out, int STAGES, bool SPLIT_K = false>
struct Sm90Fp8GemmConfig {
  static constexpr bool kSplitK = SPLIT_K;  // Fp8GemmParams::splits > 1 (an instance of its own: registers)
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
  // From the 1024-byte aligned base: the stages, the ring's 2·S barriers, the S scale slots (A's 128
  // then B's 128 floats), the S scale barriers; and the alignment's slack.
  static constexpr int kScaleFloats = kBlockM + kBlockN;
  static constexpr int kScaleOffset = STAGES * kStageBytes + 256;
  static constexpr int kScaleBarOffset = kScaleOffset + STAGES * kScaleFloats * 4;
  // C's buffers (Fp8GemmParams::tma_c): one 64-row × 128-byte box a consumer warpgroup, from a
  // 1024-byte boundary (the 128-byte swizzle's atom). Why one box and not the tile's two: two
  // would leave no room for the sixth stage.
  static constexpr int kCOffset = (kScaleBarOffset + STAGES * 8 + 1023) / 1024 * 1024;
  static constexpr int kSmemBytes = kCOffset + 2 * sm90::kStoreBoxBytes + 1024;
  static constexpr int kScaleWarps = 3;  // the producer warpgroup's warps 1 .. 3
  static_assert(std::is_same_v<Out, float> || std::is_same_v<Out, __half> || std::is_same_v<Out, __nv_bfloat16>,
                "sm90 fp8 gemm: C is fp32, fp16 or bf16");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(2 * STAGES * 8 <= 256, "sm90 fp8 gemm: the ring's barriers overrun the scale slots");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fp8 gemm: the shared memory exceeds the 227 KiB of a block");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_gemm_sm90_fp8(const __grid_constant__ CUtensorMap a_map0, const __grid_constant__ CUtensorMap b_map0,
                         const __grid_constant__ CUtensorMap a_map1, const __grid_constant__ CUtensorMap b_map1,
                         const __grid_constant__ CUtensorMap c_map, const Fp8GemmParams p) {
#if SWIGLU_SM90A_DEVICE
  using E = typename Cfg::Element;
  using Out = typename Cfg::Output;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  extern __shared__ uint8_t smem_raw[];
  // make_ring's layout: the stages from the first 1024-byte boundary. The scale barriers take one
  // arrival from each lane of the warp that fills the slot; make_ring's fence and sync cover them.
  // A stage is free once each of the 8 consumer warps has read its scales (not only once each
  // warpgroup's wgmmas have read its operands): 8 arrivals.
  uint8_t* const base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  float* const scales = reinterpret_cast<float*>(base + Cfg::kScaleOffset);
  uint64_t* const scale_full = reinterpret_cast<uint64_t*>(base + Cfg::kScaleBarOffset);
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) sm90::mbar_init(&scale_full[s], 32);
  }
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes>(smem_raw, 8);
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;
  const sm90::TileWalk<Cfg::kGroupM, 1> walk((p.M + BM - 1) / BM, (p.N + BN - 1) / BN);
  const int seg_steps = static_cast<int>((p.K + BK - 1) / BK);
  const int k_steps = seg_steps * p.segments;
  const sm90::KSlices slices = Cfg::kSplitK ? sm90::KSlices{p.splits, p.k_per_split} : sm90::KSlices{1, k_steps};
  const int64_t work = slices.units(walk.units);

  if (warpgroup == 0) {
    // 64 (and the consumers 216): at 40 the scale warps' eight loads in flight spilled.
    sm90::setmaxnreg_dec<64>();
    if (threadIdx.x == 0) {
      sm90::tma_prefetch_descriptor(&a_map0);
      sm90::tma_prefetch_descriptor(&b_map0);
      if (p.segments > 1) {
        sm90::tma_prefetch_descriptor(&a_map1);
        sm90::tma_prefetch_descriptor(&b_map1);
      }
      sm90::RingPos<S> pos;
      for (int64_t v = walk.first(); v < work; v += walk.stride()) {
        int64_t u, m0, n0;
        int k_begin, k_count;
        slices.unit(v, walk.units, k_steps, &u, &k_begin, &k_count);
        walk.template origin<BM, BN>(u, &m0, &n0);
        sm90::produce_tile(ring, pos, k_count, [&](uint8_t* a, uint64_t* full, int kc) {
          const int k = k_begin + kc;
          const bool second = k >= seg_steps;
          const int32_t kk = (second ? k - seg_steps : k) * BK;
          sm90::tma_load_2d(a, second ? &a_map1 : &a_map0, full, kk, static_cast<int32_t>(m0));
          sm90::tma_load_2d(a + Cfg::kABytes, second ? &b_map1 : &b_map0, full, kk, static_cast<int32_t>(n0));
        });
      }
    } else if (threadIdx.x >= 32 && threadIdx.x / 32 <= Cfg::kScaleWarps) {
      // Scale warp w (1 .. 3) fills the slots of the K steps with step % 3 == w − 1: lane l the A
      // scales of rows m0 + l + 32i and the B scales of columns n0 + l + 32i, 0 past M and N (those
      // sums are dropped). The loads go out before the wait for the stage to be free.
      const int w = static_cast<int>(threadIdx.x) / 32 - 1;
      const int lane = static_cast<int>(threadIdx.x) % 32;
      sm90::RingPos<S> pos;
      int turn = 0;  // the block's K step count modulo kScaleWarps
      for (int64_t v = walk.first(); v < work; v += walk.stride()) {
        int64_t u, m0, n0;
        int k_begin, k_count;
        slices.unit(v, walk.units, k_steps, &u, &k_begin, &k_count);
        walk.template origin<BM, BN>(u, &m0, &n0);
        for (int k = k_begin; k < k_begin + k_count;
             ++k, pos.next(), turn = turn + 1 == Cfg::kScaleWarps ? 0 : turn + 1) {
          if (turn != w) continue;
          const int seg = k >= seg_steps ? 1 : 0;
          const int64_t kb = k - seg * seg_steps;
          const float* as = p.a_scale + seg * p.a_seg + kb * p.a_kb;
          const float* bs = p.b_scale + seg * p.b_seg + kb * p.b_kb;
          float va[BM / 32], vb[BN / 32];
#pragma unroll
          for (int i = 0; i < BM / 32; ++i) {
            const int64_t row = m0 + lane + 32 * i;
            va[i] = row < p.M ? __ldg(as + row * p.a_m) : 0.0f;
          }
          if (p.b_rows != 0) {
#pragma unroll
            for (int i = 0; i < BN / 32; ++i) {
              const int64_t col = n0 + lane + 32 * i;
              vb[i] = col < p.N ? __ldg(bs + col * p.b_n) : 0.0f;
            }
          } else {
            vb[0] = lane == 0 ? __ldg(bs + (n0 / 128) * p.b_n) : 0.0f;
          }
          sm90::mbar_wait(&ring.empty[pos.stage], pos.phase ^ 1);
          float* slot = scales + pos.stage * Cfg::kScaleFloats;
#pragma unroll
          for (int i = 0; i < BM / 32; ++i) slot[lane + 32 * i] = va[i];
          if (p.b_rows != 0) {
#pragma unroll
            for (int i = 0; i < BN / 32; ++i) slot[BM + lane + 32 * i] = vb[i];
          } else if (lane == 0) {
            slot[BM] = vb[0];
          }
          sm90::mbar_arrive(&scale_full[pos.stage]);
        }
      }
    }
    return;
  }

  sm90::setmaxnreg_inc<216>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  // Each warp hands a stage back once all its lanes have read the stage's scales.
  const auto release_stage = [&](int stage) {
    __syncwarp();
    if (lane == 0) ring.release(stage);
  };
  const uint32_t rows = static_cast<uint32_t>(consumer) * 64 * 128;  // this consumer's half of the A tile
  const bool b_rows = p.b_rows != 0;

  // Register i holds row r0 + 8·((i >> 1) & 1), column n0 + 8·(i / 4) + 2·(lane % 4) + (i & 1).
  float acc[BN / 2], part[BN / 2];
  int64_t step = 0;  // this block's K steps so far, over all its tiles: the ring position

  __shared__ int last_slice[2];
  const bool leader = threadIdx.x % 128 == 0;
  for (int64_t v = walk.first(); v < work; v += walk.stride()) {
    int64_t u, m0, n0;
    int k_begin, k_count;
    slices.unit(v, walk.units, k_steps, &u, &k_begin, &k_count);
    walk.template origin<BM, BN>(u, &m0, &n0);
    const int64_t r0 = m0 + consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    // The scales of the step in `stage`'s slot: A's of the thread's two rows, B's of its 32 columns
    // (b_rows) or of the tile's 128-row block (rows and columns past M and N hold 0). Why read
    // before the wgmma wait: their shared-memory latency then passes under it, not before the FMAs.
    float sa[2], sb1 = 0.0f;
    float2 sb[BN / 8];
    const auto read_scales = [&](int stage) {
      const float* slot = scales + stage * Cfg::kScaleFloats;
      const int row = consumer * 64 + warp * 16 + lane / 4;
      sa[0] = slot[row];
      sa[1] = slot[row + 8];
      if (b_rows) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) sb[j] = *reinterpret_cast<const float2*>(slot + BM + 8 * j + 2 * (lane % 4));
      } else {
        sb1 = slot[BM];
      }
    };
    // acc += part · those scales.
    const auto promote = [&]() {
      if (b_rows) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          acc[4 * j + 0] += part[4 * j + 0] * (sa[0] * sb[j].x);
          acc[4 * j + 1] += part[4 * j + 1] * (sa[0] * sb[j].y);
          acc[4 * j + 2] += part[4 * j + 2] * (sa[1] * sb[j].x);
          acc[4 * j + 3] += part[4 * j + 3] * (sa[1] * sb[j].y);
        }
      } else {
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] += part[i] * (sa[(i >> 1) & 1] * sb1);
      }
    };
    sm90::RingPos<S> pos(step);
    int release = -1;
    for (int k = 0; k < k_count; ++k, ++step) {
      sm90::mbar_wait(&ring.full[pos.stage], pos.phase);
      sm90::mbar_wait(&scale_full[pos.stage], pos.phase);
      const uint32_t a = smem_u32(ring.smem + pos.stage * Cfg::kStageBytes), b = a + Cfg::kABytes;
      if (release >= 0) {
        // (The split-K instance reads them after the wait: its slices' state leaves no registers.)
        if constexpr (!Cfg::kSplitK) read_scales(release);
        sm90::wgmma_wait<0>();
        if constexpr (Cfg::kSplitK) read_scales(release);
        release_stage(release);
        promote();
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
    // Why the wait stands outside the branch: under it, ptxas cannot prove that every path waits
    // before the registers the wgmmas write are read, and injects a wait of its own (C7517), in the
    // split-K instance in divergent code, where it serialises every wgmma (C7518).
    if (release >= 0) read_scales(release);
    sm90::wgmma_wait<0>();
    if (release >= 0) {
      release_stage(release);
      promote();
    }

    if constexpr (Cfg::kSplitK) {
      // This slice's fp32 sums into `partial`; the last of the tile's slices to arrive (each
      // consumer counts its own 64 rows, named barrier 4 + consumer) reads the total back and
      // writes C below. A consumer with no rows in C has nothing to add.
      if (m0 + consumer * 64 >= p.M) continue;
      // Why row pointers: 64 accumulators and 64 partial sums leave no registers for 64-bit
      // addresses computed element by element.
      const int64_t c0 = n0 + 2 * (lane % 4);
      float* const row_lo = p.partial + r0 * p.N + c0;
      float* const row_hi = row_lo + 8 * p.N;
      const bool lo_in = r0 < p.M, hi_in = r0 + 8 < p.M;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t cc = c0 + 8 * j + (e & 1);
          if ((e < 2 ? lo_in : hi_in) && cc < p.N) atomicAdd((e < 2 ? row_lo : row_hi) + 8 * j + (e & 1), acc[4 * j + e]);
        }
      }
      if (!sm90::last_slice_arrived(p.counters + 2 * u + consumer, p.splits, leader, last_slice, consumer)) continue;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t cc = c0 + 8 * j + (e & 1);
          acc[4 * j + e] = (e < 2 ? lo_in : hi_in) && cc < p.N ? __ldcg((e < 2 ? row_lo : row_hi) + 8 * j + (e & 1)) : 0.0f;
        }
      }
    }

    if constexpr (sizeof(Out) == 2) {
      if (p.tma_c != 0) {
        // Through shared memory and TMA stores (sm90::store_buffer_*), 64 columns (one box) at a
        // time, which TMA clips at M and N. Named barrier 2 + consumer.
        const uint32_t buf = smem_u32(base) + Cfg::kCOffset + consumer * sm90::kStoreBoxBytes;
        sm90::store_tile_c<Out, BN, 1>(acc, buf, static_cast<uint32_t>(warp * 16 + lane / 4), lane, leader,
                                       2 + consumer, &c_map, n0, m0 + consumer * 64);
        continue;
      }
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
  // The last stores must have read their buffers before the block exits.
  if (p.tma_c != 0 && leader) sm90::tma_store_wait<0>();
#endif
}

}  // namespace swiglu::kernels
