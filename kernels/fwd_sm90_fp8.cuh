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
// families' (epilogue.cuh) in the output dtype, or Z in e4m3 with 1×128 scales and its amax, the
// down projection's FP8 input (kFp8Z). Linear layout only: FP8 wgmma reads K-major operands.
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

// Out: the dtype of H and the bias (bf16 or fp16), and of Z unless kFp8Z. BN = 64: the
// accumulators and the step's partial sums take 64 registers each (m64n128).
// kFp8Z: Z in e4m3 with 1×128 scales (Fp8FwdParams::z_scale), s = amax / 448 over a row's 128
// columns. A block takes the two 64-column tiles of a scale block in turn, the first one's Z kept
// in shared memory (kStashBytes) until the row maxima of both are known.
// CLUSTER = 2: blocks pair on vertically adjacent tiles with the same W rows, each loading one of
// the Wa and Wb boxes and multicasting it to both. Why: a 128×128 tile of FP8 reads 32 KB a K step
// for 4 MFLOP, which at the FP8 rate asks more of L2 than it gives; the pair halves W's share.
template <class Out, int BN, int STAGES, bool FP8_Z = false, int CLUSTER = 1>
struct Sm90Fp8FwdConfig {
  using Element = __nv_fp8_e4m3;
  using Output = Out;
  static constexpr bool kFp8Z = FP8_Z;
  static constexpr int kTilesPerUnit = FP8_Z ? 128 / BN : 1;
  static constexpr int kUnitN = BN * kTilesPerUnit;  // Z columns a unit of the tile walk
  static constexpr int kBlockM = 128;  // two consumer warpgroups of 64 rows
  static constexpr int kBlockN = BN;
  static constexpr int kBlockK = 128;  // one 128-byte swizzle row, one scale block
  static constexpr int kStages = STAGES;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kCluster = CLUSTER;
  static constexpr int kABytes = kBlockM * 128;
  static constexpr int kBBytes = 2 * BN * 128;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // Stages from a 1024-byte boundary, the barriers in the next 1024 bytes, then the stash.
  static constexpr int kStashOffset = STAGES * kStageBytes + 1024;
  static constexpr int kStashBytes = FP8_Z ? 2 * 128 * (BN / 2) * 4 : 0;  // two consumers' first-tile Z, fp32
  static constexpr int kSmemBytes = kStashOffset + kStashBytes + 1024;
  static constexpr FastMath kFastMath = FastMath::on;
  static_assert(BN == 64, "sm90 fp8 fwd: BN = 64 (the accumulators and partial sums share 232 registers)");
  static_assert(128 % BN == 0, "sm90 fp8 fwd: a tile's columns lie in one 128-row block of Wa and of Wb");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(2 * STAGES * 8 <= 1024, "sm90 fp8 fwd: the barriers must fit ahead of the stash");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fp8 fwd: the shared memory exceeds the 227 KiB of a block");
  static_assert(CLUSTER == 1 || CLUSTER == 2, "sm90 fp8 fwd: clusters of 1 or 2 blocks (the Wa box and the Wb box)");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm90_fp8(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                        const Fp8FwdParams q) {
#if SWIGLU_SM90A_DEVICE
  using E = typename Cfg::Element;
  using Out = typename Cfg::Output;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages, C = Cfg::kCluster;
  const FwdParams& p = q.base;
  extern __shared__ uint8_t smem_raw[];
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes, C>(smem_raw, 2);
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;

  constexpr int kUnitN = Cfg::kUnitN;
  // With C = 2 a cluster's tiles below B still load and multiply (the peer needs their W box) and
  // write nothing: their rows are past B.
  const sm90::TileWalk<Cfg::kGroupM, C> walk((p.B + BM - 1) / BM, (p.D + kUnitN - 1) / kUnitN);
  const int k_steps = static_cast<int>((p.I + BK - 1) / BK);

  if (warpgroup == 0) {
    // The producer: each unit's tiles in turn (one, or with kFp8Z the two of a scale block).
    sm90::setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      sm90::tma_prefetch_descriptor(&x_map);
      sm90::tma_prefetch_descriptor(&w_map);
      sm90::RingPos<S> pos;
      for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
        int64_t m0, nu;
        walk.template origin<BM, kUnitN>(u, &m0, &nu);
        for (int t = 0; t < Cfg::kTilesPerUnit && nu + t * BN < p.D; ++t) {
          const int64_t n0 = nu + t * BN;
          sm90::produce_tile(ring, pos, k_steps, [&](uint8_t* a, uint64_t* full, int k) {
            uint8_t* b = a + Cfg::kABytes;
            sm90::tma_load_2d(a, &x_map, full, k * BK, static_cast<int32_t>(m0));
            // The Wa box (i = 0) and the Wb box, box i from the cluster's block i % C.
#pragma unroll
            for (int i = 0; i < 2; ++i) {
              if (i % C != walk.rank) continue;
              sm90::tma_load_shared<C>(b + i * BN * 128, &w_map, full, k * BK, static_cast<int32_t>(i * p.D + n0));
            }
          });
        }
      }
    }
    // Why: a peer may still multicast into this block until it has finished.
    if constexpr (C > 1) {
      __syncwarp();
      sm90::cluster_sync();
    }
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  const uint32_t rows = static_cast<uint32_t>(consumer) * 64 * 128;  // this consumer's half of the X tile
  const Out* __restrict__ bias = static_cast<const Out*>(p.bias);
  const bool x_blocks = q.x_kind == Fp8Scale::blocks, w_blocks = q.w_kind == Fp8Scale::blocks;
  const bool w_channel = q.w_kind == Fp8Scale::channel;
  const int x_step = x_blocks ? 1 : 0, w_step = w_blocks ? 1 : 0;

  float acc[BN], part[BN];
  // acc += part · scale: register 4j + e holds row r0 (e < 2) or r0 + 8, and a gate column
  // (j < BN/8) or an up one; s[row][half] is that row's and half's sx·sw of the step.
  auto promote = [&](const float (&s)[2][2]) {
#pragma unroll
    for (int i = 0; i < BN; ++i) acc[i] += part[i] * s[(i & 2) != 0 ? 1 : 0][i < BN / 2 ? 0 : 1];
  };

  int64_t step = 0;  // this block's K steps so far, over all its tiles: the ring position
  // The main loop of tile (m0, n0) into acc; r0: this thread's first row.
  auto main_loop = [&](int64_t r0, int64_t n0) {
#pragma unroll
    for (int i = 0; i < BN; ++i) acc[i] = 0.0f;
    // The scales of this thread's two X rows (null past B: their sums are dropped) and of the
    // 128-row blocks of Wa and Wb that hold columns n0 .. n0 + BN − 1, k_step apart along K (0: one
    // scale for all of K). Per-channel W scales are constant along K: the epilogue applies them.
    const float* xs[2] = {r0 < p.B ? q.x_scale + (x_blocks ? r0 * q.k_blocks : 0) : nullptr,
                          r0 + 8 < p.B ? q.x_scale + (x_blocks ? (r0 + 8) * q.k_blocks : 0) : nullptr};
    const int64_t nb = n0 / 128;
    const float* ws[2] = {q.w_scale + (w_blocks ? nb * q.k_blocks : 0),
                          q.w_scale + (w_blocks ? (q.d_blocks + nb) * q.k_blocks : 0)};
    // Each step's scales are loaded at its top, and their products formed one step later, when
    // its sums are promoted: a load's latency hides behind the step's wgmmas, not in front of its
    // promotion. Each wgmma descriptor is the low word of the ring's first stage's, advanced by a
    // 32-bit add (sm90::smem_desc_lo): the form that measured fastest of those tried
    // (docs/kernels-sm90-fp8.md).
    sm90::RingPos<S> pos(step);
    int release = -1;  // the stage the wgmma group in flight reads
    float sx[2] = {0.0f, 0.0f}, sw[2] = {0.0f, 0.0f};  // that group's raw scales (none before the first)
    const uint32_t a_lo = static_cast<uint32_t>(sm90::smem_desc(smem_u32(ring.smem) + rows));
    const uint32_t b_lo = static_cast<uint32_t>(sm90::smem_desc(smem_u32(ring.smem) + Cfg::kABytes));
    auto promote_prev = [&] {
      float s[2][2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int h = 0; h < 2; ++h) s[r][h] = sx[r] * sw[h];
      }
      promote(s);
    };
    for (int k = 0; k < k_steps; ++k, ++step) {
      float nx[2], nw[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) nx[r] = xs[r] != nullptr ? __ldg(xs[r] + k * x_step) : 0.0f;
#pragma unroll
      for (int h = 0; h < 2; ++h) nw[h] = w_channel ? 1.0f : __ldg(ws[h] + k * w_step);
      sm90::mbar_wait(&ring.full[pos.stage], pos.phase);
      const uint32_t stage = static_cast<uint32_t>(pos.stage) * (Cfg::kStageBytes >> 4);
      if (release >= 0) {
        sm90::wgmma_wait<0>();
        promote_prev();
        if (leader) ring.release(release);
      }
      sm90::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)  // 32 bytes of K each
        sm90::wgmma_m64nk<2 * BN, E>(part, sm90::smem_desc_lo(a_lo + stage + 2 * kk),
                                     sm90::smem_desc_lo(b_lo + stage + 2 * kk), kk > 0 ? 1 : 0);
      sm90::wgmma_commit();
      release = pos.stage;
      sx[0] = nx[0];
      sx[1] = nx[1];
      sw[0] = nw[0];
      sw[1] = nw[1];
      pos.next();
    }
    sm90::wgmma_wait<0>();
    if (release >= 0) {
      promote_prev();
      if (leader) ring.release(release);
    }
  };

  // G and U of gate register i (< BN/2) of the tile at column n0, bias and per-channel scales
  // applied; its row and column.
  auto gate_up = [&](int i, int64_t r0, int64_t n0, float* g, float* u, int64_t* row, int64_t* col) {
    *row = r0 + ((i & 2) != 0 ? 8 : 0);
    *col = n0 + 8 * (i / 4) + 2 * (lane % 4) + (i & 1);
    *g = acc[i];
    *u = acc[i + BN / 2];
    if (*col < p.D) {
      if (w_channel) {
        *g *= __ldg(q.w_scale + *col);
        *u *= __ldg(q.w_scale + p.D + *col);
      }
      if (p.has_bias) {
        *g += to_f32(bias[*col]);
        *u += to_f32(bias[p.D + *col]);
      }
    }
  };

  for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
    int64_t m0, nu;
    walk.template origin<BM, kUnitN>(u, &m0, &nu);
    const int64_t r0 = m0 + consumer * 64 + warp * 16 + lane / 4;
    if constexpr (!Cfg::kFp8Z) {
      main_loop(r0, nu);
      // The epilogue: bias, gate, Z (and H) in the output dtype, as the register paths of the other
      // families write them.
#pragma unroll
      for (int i = 0; i < BN / 2; i += 2) {
        float g0, u0, g1, u1;
        int64_t row, col, row1, col1;
        gate_up(i, r0, nu, &g0, &u0, &row, &col);
        gate_up(i + 1, r0, nu, &g1, &u1, &row1, &col1);
        if (row < p.B) fwd_epilogue_pair<Out, Cfg::kFastMath>(p, row, col, g0, u0, g1, u1, p.vec_store != 0);
      }
    } else {
      // Z in e4m3 over the unit's two tiles: the first one's Z to the stash, the second's over its
      // own gate accumulators (each read once, just before); H as it comes; then the rows' scales
      // and the bytes.
      float* stash = reinterpret_cast<float*>(ring.smem + Cfg::kStashOffset) + consumer * (BN / 2) * 128;
      const int thread = static_cast<int>(threadIdx.x) % 128;
      float amax[2] = {0.0f, 0.0f};
      // Z of the tile at n0 to put(i, z) for gate register i, H stored, the row maxima updated;
      // a column pair's bias and scales loaded once for both rows.
      auto tile_z = [&](int64_t n0, auto&& put) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const int64_t col = n0 + 8 * j + 2 * (lane % 4);
          float bg[2] = {0.0f, 0.0f}, bu[2] = {0.0f, 0.0f}, cg[2] = {1.0f, 1.0f}, cu[2] = {1.0f, 1.0f};
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            if (col + e < p.D) {
              if (p.has_bias) {
                bg[e] = to_f32(bias[col + e]);
                bu[e] = to_f32(bias[p.D + col + e]);
              }
              if (w_channel) {
                cg[e] = __ldg(q.w_scale + col + e);
                cu[e] = __ldg(q.w_scale + p.D + col + e);
              }
            }
          }
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int64_t row = r0 + 8 * h;
            Out* hrow = static_cast<Out*>(p.saved) + row * 2 * p.D + col;
            float g[2], up[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int i = 4 * j + 2 * h + e;
              g[e] = acc[i] * cg[e] + bg[e];
              up[e] = acc[i + BN / 2] * cu[e] + bu[e];
              const bool in = row < p.B && col + e < p.D;
              const float z = in ? swiglu_gate<Cfg::kFastMath>(g[e], up[e]) : 0.0f;
              amax[h] = fmaxf(amax[h], fabsf(z));
              put(i, z);
            }
            if (row < p.B && p.saved != nullptr && col < p.D) {
              const bool two = col + 1 < p.D;  // always, with vec_store (D is even)
              store_one_or_two(hrow, g[0], g[1], two, p.vec_store != 0);
              store_one_or_two(hrow + p.D, up[0], up[1], two, p.vec_store != 0);
            }
          }
        }
      };
      main_loop(r0, nu);
      tile_z(nu, [&](int i, float z) { stash[i * 128 + thread] = z; });
      const bool second = nu + BN < p.D;
      if (second) {
        main_loop(r0, nu + BN);
        tile_z(nu + BN, [&](int i, float z) { acc[i] = z; });
      }
      // A row's 128 columns are held by the 4 lanes of a quad.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        amax[h] = fmaxf(amax[h], __shfl_xor_sync(0xffffffffu, amax[h], 1));
        amax[h] = fmaxf(amax[h], __shfl_xor_sync(0xffffffffu, amax[h], 2));
      }
      // Why a reciprocal: one division a row rather than one an element; z·(1/s) is within an fp32
      // ulp of z/s, which moves an e4m3 rounding only at a tie.
      float scale[2], inv_scale[2];
      const int64_t z_blocks = (p.D + 127) / 128;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        scale[h] = amax[h] > 0.0f ? __fdiv_rn(amax[h], kE4m3Max) : 1.0f;
        inv_scale[h] = __frcp_rn(scale[h]);
        const int64_t row = r0 + 8 * h;
        if (lane % 4 == 0 && row < p.B && p.z != nullptr) q.z_scale[row * z_blocks + nu / 128] = scale[h];
      }
      if (q.z_amax != nullptr) {
        float t = fmaxf(amax[0], amax[1]);
#pragma unroll
        for (int off = 4; off < 32; off *= 2) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, off));
        // Non-negative floats order as their bits do.
        if (lane == 0) atomicMax(reinterpret_cast<int*>(q.z_amax), __float_as_int(t));
      }
      auto* zq = static_cast<__nv_fp8_storage_t*>(p.z);
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        if (p.z == nullptr || (t == 1 && !second)) break;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = r0 + 8 * h;
          if (row >= p.B) continue;
          __nv_fp8_storage_t* zrow = zq + row * p.D + nu + t * BN + 2 * (lane % 4);
          const int64_t cols_left = p.D - (nu + t * BN + 2 * (lane % 4));  // columns from zrow to D
#pragma unroll
          for (int j = 0; j < BN / 8; ++j) {
            const int i = 4 * j + 2 * h;
            float z[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) z[e] = (t == 0 ? stash[(i + e) * 128 + thread] : acc[i + e]) * inv_scale[h];
            if (p.vec_store != 0) {
              // Both bytes in one 16-bit store (vec_store: D is even, so the pair is in or out).
              if (8 * j < cols_left) {
                *reinterpret_cast<__nv_fp8x2_storage_t*>(zrow + 8 * j) =
                    __nv_cvt_float2_to_fp8x2(make_float2(z[0], z[1]), __NV_SATFINITE, __NV_E4M3);
              }
            } else {
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                if (8 * j + e < cols_left) zrow[8 * j + e] = __nv_cvt_float_to_fp8(z[e], __NV_SATFINITE, __NV_E4M3);
              }
            }
          }
        }
      }
    }
  }
  if constexpr (C > 1) sm90::cluster_sync();
#endif
}

}  // namespace swiglu::kernels
