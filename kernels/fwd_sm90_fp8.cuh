// The fused forward in FP8 on Hopper (sm_90a): e4m3 X and W12 with fp32 block scales, wgmma fed by
// TMA, warp-specialised, over a persistent grid.
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb),  X = Xq·sx, Wa, Wb = Wq·sw
//
// sx: 1×128 blocks or one for the tensor; sw: 128×128 blocks of Wa and of Wb, one for the tensor,
// or one per channel (applied in the epilogue) (Fp8Scale).
//
// As fwd_sm90.cuh: the producer loads the X tile and the Wa and Wb rows of a K step as one 2·BN-row
// operand, so a thread holds gate column c and up column c. A K step is 128 elements, one scale
// block: its four k32 wgmmas sum into `part`, which is then scaled by the step's sx·sw and added to
// the fp32 accumulators. Why per step: the tensor cores add FP8 products in fewer bits than fp32,
// and the scales differ from block to block. The epilogue (bias, gate, Z and H) is the other
// families' (epilogue.cuh) in the output dtype. Linear layout only: FP8 wgmma reads K-major operands.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/epilogue.cuh"
#include "kernels/params.cuh"
#include "kernels/sm90.cuh"

namespace swiglu::kernels {

// Out: the dtype of Z, H and the bias (bf16 or fp16). BN = 64: the accumulators and the step's
// partial sums take 64 registers each (m64n128).
template <class Out, int BN, int STAGES>
struct Sm90Fp8FwdConfig {
  using Element = __nv_fp8_e4m3;
  using Output = Out;
  static constexpr int kBlockM = 128;  // two consumer warpgroups of 64 rows
  static constexpr int kBlockN = BN;
  static constexpr int kBlockK = 128;  // one 128-byte swizzle row, one scale block
  static constexpr int kStages = STAGES;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kCluster = 1;
  static constexpr int kABytes = kBlockM * 128;
  static constexpr int kBBytes = 2 * BN * 128;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes + 1024 + 2 * STAGES * 8;
  static constexpr FastMath kFastMath = FastMath::on;
  static_assert(BN == 64, "sm90 fp8 fwd: BN = 64 (the accumulators and partial sums share 232 registers)");
  static_assert(128 % BN == 0, "sm90 fp8 fwd: a tile's columns lie in one 128-row block of Wa and of Wb");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fp8 fwd: the shared memory exceeds the 227 KiB of a block");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm90_fp8(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                        const Fp8FwdParams q) {
#if SWIGLU_SM90A_DEVICE
  using E = typename Cfg::Element;
  using Out = typename Cfg::Output;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  const FwdParams& p = q.base;
  extern __shared__ uint8_t smem_raw[];
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes, 1>(smem_raw, 2);
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;

  const sm90::TileWalk<Cfg::kGroupM, 1> walk((p.B + BM - 1) / BM, (p.D + BN - 1) / BN);
  const int k_steps = static_cast<int>((p.I + BK - 1) / BK);

  if (warpgroup == 0) {
    sm90::run_producer<BM, BN>(ring, walk, k_steps, &x_map, &w_map,
                               [&](uint8_t* a, uint64_t* full, int k, int64_t m0, int64_t n0) {
      uint8_t* b = a + Cfg::kABytes;
      sm90::tma_load_2d(a, &x_map, full, k * BK, static_cast<int32_t>(m0));
      sm90::tma_load_2d(b, &w_map, full, k * BK, static_cast<int32_t>(n0));
      sm90::tma_load_2d(b + BN * 128, &w_map, full, k * BK, static_cast<int32_t>(p.D + n0));
    });
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  const uint32_t rows = static_cast<uint32_t>(consumer) * 64 * 128;  // this consumer's half of the X tile
  const Out* __restrict__ bias = static_cast<const Out*>(p.bias);

  float acc[BN], part[BN];
  // acc += part · scale: register 4j + e holds row r0 (e < 2) or r0 + 8, and a gate column
  // (j < BN/8) or an up one; s[row][half] is that row's and half's sx·sw of the step.
  auto promote = [&](const float (&s)[2][2]) {
#pragma unroll
    for (int i = 0; i < BN; ++i) acc[i] += part[i] * s[(i & 2) != 0 ? 1 : 0][i < BN / 2 ? 0 : 1];
  };

  int64_t step = 0;  // this block's K steps so far, over all its tiles: the ring position
  for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
    int64_t m0, n0;
    walk.template origin<BM, BN>(u, &m0, &n0);
#pragma unroll
    for (int i = 0; i < BN; ++i) acc[i] = 0.0f;
    const int64_t r0 = m0 + consumer * 64 + warp * 16 + lane / 4;
    // The scales of this thread's two X rows (null past B: their sums are dropped) and of the
    // 128-row blocks of Wa and Wb that hold columns n0 .. n0 + BN − 1, k_step apart along K (0: one
    // scale for all of K). Per-channel W scales are constant along K: the epilogue applies them.
    const bool x_blocks = q.x_kind == Fp8Scale::blocks, w_blocks = q.w_kind == Fp8Scale::blocks;
    const float* xs[2] = {r0 < p.B ? q.x_scale + (x_blocks ? r0 * q.k_blocks : 0) : nullptr,
                          r0 + 8 < p.B ? q.x_scale + (x_blocks ? (r0 + 8) * q.k_blocks : 0) : nullptr};
    const int64_t nb = n0 / 128;
    const float* ws[2] = {q.w_scale + (w_blocks ? nb * q.k_blocks : 0),
                          q.w_scale + (w_blocks ? (q.d_blocks + nb) * q.k_blocks : 0)};
    const int x_step = x_blocks ? 1 : 0, w_step = w_blocks ? 1 : 0;
    const bool w_channel = q.w_kind == Fp8Scale::channel;
    sm90::RingPos<S> pos(step);
    int release = -1;  // the stage the wgmma group in flight reads
    float s_prev[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    for (int k = 0; k < k_steps; ++k, ++step) {
      // The step's scales, loaded while the last group finishes.
      float s[2][2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float sx = xs[r] != nullptr ? __ldg(xs[r] + k * x_step) : 0.0f;
#pragma unroll
        for (int h = 0; h < 2; ++h) s[r][h] = w_channel ? sx : sx * __ldg(ws[h] + k * w_step);
      }
      sm90::mbar_wait(&ring.full[pos.stage], pos.phase);
      const uint32_t a = smem_u32(ring.smem + pos.stage * Cfg::kStageBytes), b = a + Cfg::kABytes;
      if (release >= 0) {
        sm90::wgmma_wait<0>();
        promote(s_prev);
        if (leader) ring.release(release);
      }
      sm90::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)  // 32 bytes of K each
        sm90::wgmma_m64nk<2 * BN, E>(part, sm90::smem_desc(a + rows + kk * 32), sm90::smem_desc(b + kk * 32),
                                     kk > 0 ? 1 : 0);
      sm90::wgmma_commit();
      release = pos.stage;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int h = 0; h < 2; ++h) s_prev[r][h] = s[r][h];
      }
      pos.next();
    }
    sm90::wgmma_wait<0>();
    if (release >= 0) {
      promote(s_prev);
      if (leader) ring.release(release);
    }

    // The epilogue: bias, gate, Z (and H) in the output dtype, as the register paths of the other
    // families write them.
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int64_t col = n0 + 8 * j + 2 * (lane % 4);
      float bg0 = 0, bg1 = 0, bu0 = 0, bu1 = 0;
      if (p.has_bias && col < p.D) {
        bg0 = to_f32(bias[col]);
        bu0 = to_f32(bias[p.D + col]);
        if (col + 1 < p.D) {
          bg1 = to_f32(bias[col + 1]);
          bu1 = to_f32(bias[p.D + col + 1]);
        }
      }
      // Per-channel W scales: one a column of G and of U (1 past D).
      float cg0 = 1, cg1 = 1, cu0 = 1, cu1 = 1;
      if (w_channel && col < p.D) {
        cg0 = __ldg(q.w_scale + col);
        cu0 = __ldg(q.w_scale + p.D + col);
        if (col + 1 < p.D) {
          cg1 = __ldg(q.w_scale + col + 1);
          cu1 = __ldg(q.w_scale + p.D + col + 1);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = r0 + 8 * h;
        if (row < p.B) {
          const int g = 4 * j + 2 * h, up = g + BN / 2;
          fwd_epilogue_pair<Out, Cfg::kFastMath>(p, row, col, acc[g] * cg0 + bg0, acc[up] * cu0 + bu0,
                                                 acc[g + 1] * cg1 + bg1, acc[up + 1] * cu1 + bu1, p.vec_store != 0);
        }
      }
    }
  }
#endif
}

}  // namespace swiglu::kernels
