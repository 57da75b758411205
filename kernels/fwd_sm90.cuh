// The fused forward on Hopper (sm_90a): wgmma tensor cores fed by TMA, warp-specialised, over a
// persistent grid.
//
// Block: three warpgroups (384 threads). Warpgroup 0 is the producer: after giving registers back
// (setmaxnreg), one of its threads walks this block's tiles and, for each K step, waits for a free
// pipeline stage and issues three TMA loads into it: the X tile (BM×BK) and two W12 boxes, the gate
// rows [n0, n0+BN) of Wa and the up rows [D+n0, D+n0+BN) of Wb, stacked as one 2·BN-row operand.
// With the packed layout (Wf, I×2D) the same operand is 2·BN/64 N-major boxes of 64 columns,
// [n0, n0+BN) and then [D+n0, D+n0+BN), which wgmma reads through its transpose flag.
// Warpgroups 1 and 2 are consumers. Cooperative schedule: each owns 64 rows of the BM = 128 tile
// and runs one m64n(2·BN)k16 wgmma per 16 of K on the whole stage, so the gate column c and the up
// column c of its rows land in the same thread's accumulators (registers i and i + BN/2). That is
// the gate placement issue 8 asks for, with no repacking of the weights. Ping-pong schedule
// (Sm90FwdConfig's PINGPONG): each consumer takes whole tiles in turn (two m64 products per 16 of
// K), so that one's epilogue runs during the other's main loop.
//
// Shared memory per stage: X tile BM×BK and W tile 2·BN×BK (BK = 128 bytes, one 128-byte swizzle
// row: 64 elements of fp16/bf16, 32 of fp32), written by TMA with the 128-byte swizzle that the
// wgmma descriptors name. fp32 inputs run with tf32 math (m64nNk8): the consumers first round each
// filled stage to tf32 in place (sm90::round_stage_tf32), because the tensor cores would otherwise
// truncate the fp32 operands; or, with 3xTF32 math, write its small parts to a split buffer
// (sm90::split_stage_tf32x3) for three products per 8 of K.
//
// Epilogue: fp16/bf16 Z, the saved H and the backward's recomputed dH go through shared memory and
// TMA stores (cooperative tiles), so that the consumers start their next tile while the stores
// drain; fp32 outputs, the ping-pong tile's and unaligned ones are stored from registers
// (fwd_epilogue.cuh).
// Full barriers (TMA transaction bytes) and empty barriers (one arrival per consumer warpgroup)
// hand the stages around the ring; the ring's position carries on from one tile to the next, so the
// producer loads the next tile while the consumers run this tile's epilogue.
//
// Tiles are visited in a grouped order (kGroupM M tiles share each N column in turn) so that one
// wave of blocks reads a band of X and a band of W12 that fit in L2.
//
// Clusters (Sm90FwdConfig's CLUSTER = 2, cooperative only): the two blocks of a cluster take
// vertically adjacent tiles with the same W tile, and each loads its own X tile and every other W
// box, multicast to both (sm90::TileWalk, sm90::tma_load_shared); a stage is refilled once the
// consumers of both blocks have released it. Measured on an H200 it runs within 0.6% of the
// single-block tile, so the heuristic does not pick it (results/sm90_notes.md, v4).
//
// Tails need no code: TMA zero-fills rows and K columns past the tensor's edge, gate rows past D
// read Wb rows whose results land in columns that are never stored, and the epilogue masks rows
// past B and columns past D. The host (src/swiglu/fwd_sm90_launch.cuh) sends here only problems
// TMA can address: X and W 16-byte aligned, row strides of whole 16-byte units.
//
// Compiled only for sm_90a (wgmma and setmaxnreg do not exist elsewhere): the body is empty in
// every other target, and the registry lists these instances only in builds that include sm_90a.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/fwd_epilogue.cuh"
#include "kernels/sm90.cuh"
#include "swiglu/registry.hpp"

namespace swiglu::kernels {

// PINGPONG = false: the two consumers split each 128-row tile (64 rows each). true: each takes
// whole tiles in turn, so that one's epilogue overlaps the other's main loop.
// PACKED = false: W12 in the linear layout (2D×I, K-major rows). true: the packed Wf (I×2D, row k
// holds [Wa | Wb] at reduction index k), read N-major in 64-column boxes through the wgmma's
// transpose flag (sm90::smem_desc_mn), the gate boxes first and the up boxes after them.
// CLUSTER = 2: blocks work in pairs on vertically adjacent tiles with the same W tile, each loading
// half of the W boxes of every K step and multicasting them to both (cooperative schedule only).
// T = float: fp32 inputs with tf32 math (wgmma's tf32 reads the fp32 operands), linear layout only
// (tf32 wgmma has no transpose, and the packed Wf would be N-major).
// TF32X3 (T = float, BN = 64): 3xTF32, fp32-level accuracy. The consumers write each stage's small
// parts into one of three split buffers (sm90::split_stage_tf32x3) and run three wgmma per 8 of K,
// small·big, big·small and big·big, into a per-stage partial sum that is added to the accumulators
// in fp32 (why per stage, and why three buffers: see the kernel). The partial sum doubles the
// accumulator registers, so the tile is 128x64.
template <class T, int BN, int STAGES, bool PINGPONG = false, bool PACKED = false, int CLUSTER = 1,
          bool TF32X3 = false>
struct Sm90FwdConfig {
  using Elem = T;
  static constexpr bool kPingpong = PINGPONG;
  static constexpr bool kPacked = PACKED;
  static constexpr int kCluster = CLUSTER;
  static constexpr bool kTf32x3 = TF32X3;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = BN;   // Z columns per tile; the wgmma is m64n(2·BN)
  static constexpr int kBlockK = 128 / static_cast<int>(sizeof(T));  // one 128-byte swizzle row
  static constexpr int kStages = STAGES;
  static constexpr int kWarps = 12;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kABytes = kBlockM * 128;
  static constexpr int kBBytes = 2 * BN * 128;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // 16-bit Z and saved H through shared memory and TMA stores (cooperative): a buffer a consumer
  // for one 64 × BN output block, in 64-column boxes of 128 bytes a row, 128-byte swizzled. After
  // the barriers, where 3xTF32 puts its split buffers (no config has both).
  static constexpr bool kTmaStore = sizeof(T) == 2 && !PINGPONG;
  static constexpr int kZBytes = kTmaStore ? 2 * 64 * BN * 2 : 0;
  // Stages, 1024 bytes of slack to align the first to the swizzle atom, then the barriers; with
  // 3xTF32 or TMA stores the barriers get a whole 1024 bytes, and the split buffers or the Z
  // buffers follow them.
  static constexpr int kSplits = TF32X3 ? 3 : 0;  // split buffers, each kStageBytes
  static constexpr int kSplitOffset = STAGES * kStageBytes + 1024;  // from the first stage
  static constexpr int kSmemBytes = TF32X3      ? kSplitOffset + kSplits * kStageBytes + 1024
                                    : kTmaStore ? kSplitOffset + kZBytes + 1024
                                                : STAGES * kStageBytes + 1024 + 2 * STAGES * 8;
  static constexpr bool kFastMath = true;
  static_assert(BN == 64 || BN == 128, "the wgmma N is 2·BN: 128 or 256");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(CLUSTER == 1 || CLUSTER == 2, "sm90 fwd: clusters of 1 or 2 blocks");
  static_assert(CLUSTER == 1 || !PINGPONG, "sm90 fwd: clusters are built for the cooperative schedule");
  static_assert(sizeof(T) == 2 || (std::is_same_v<T, float> && !PACKED && !PINGPONG && CLUSTER == 1),
                "sm90 fwd: fp16/bf16, or fp32 as tf32 with the linear layout, cooperative, one block");
  static_assert(!TF32X3 || (std::is_same_v<T, float> && BN == 64), "sm90 fwd: 3xTF32 takes fp32 and BN = 64");
  static_assert(2 * STAGES * 8 <= 1024, "sm90 fwd: the barriers must fit ahead of the split buffers");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fwd: the shared memory exceeds the 227 KiB of a block");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm90(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                    const __grid_constant__ CUtensorMap z_map, const __grid_constant__ CUtensorMap g_map,
                    const __grid_constant__ CUtensorMap u_map, const swiglu::detail::FwdParams p) {
#if SWIGLU_SM90A_DEVICE
  using T = typename Cfg::Elem;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  constexpr int kMnBox = 64 * 128;  // one 64-column box of the packed Wf (64 K rows of 128 bytes)
  constexpr int kTransB = Cfg::kPacked ? 1 : 0;
  // The descriptor of the W tile for the kk-th 32 bytes of K (16 elements of a 16-bit type, 8 of
  // tf32). Why 32 and 2048: those K columns of a K-major row are 32 bytes inside its swizzled 128;
  // 16 K rows of an N-major box (16-bit only) are two 1024-byte atoms.
  auto desc_b = [](uint32_t b, int kk) {
    return Cfg::kPacked ? sm90::smem_desc_mn(b + kk * 2048, kMnBox) : sm90::smem_desc(b + kk * 32);
  };
  constexpr int C = Cfg::kCluster;
  extern __shared__ uint8_t smem_raw[];
  // One arrival per consumer of a stage: both consumers (cooperative) or the one whose tile it is.
  const auto ring = sm90::make_ring<S, Cfg::kStageBytes, C>(smem_raw, Cfg::kPingpong ? 1 : 2);
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;

  const sm90::TileWalk<Cfg::kGroupM, C> walk((p.B + BM - 1) / BM, (p.D + BN - 1) / BN);
  const int k_steps = static_cast<int>((p.I + BK - 1) / BK);

  if (warpgroup == 0) {
    sm90::run_producer<BM, BN>(ring, walk, k_steps, &x_map, &w_map,
                               [&](uint8_t* a, uint64_t* full, int k, int64_t m0, int64_t n0) {
      uint8_t* b = a + Cfg::kABytes;
      sm90::tma_load_2d(a, &x_map, full, k * BK, static_cast<int32_t>(m0));
      // The W boxes, box i from the cluster's block i % C: linear, the gate rows n0.. of Wa and the
      // up rows D + n0.. of Wb; packed, Wf rows k·BK.. in 64-column boxes, the gate columns n0..
      // and then the up columns D + n0..
      if constexpr (!Cfg::kPacked) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          if (i % C != walk.rank) continue;
          sm90::tma_load_shared<C>(b + i * BN * 128, &w_map, full, k * BK, static_cast<int32_t>(i * p.D + n0));
        }
      } else {
        constexpr int kBoxes = BN / 64;  // of each half
#pragma unroll
        for (int i = 0; i < 2 * kBoxes; ++i) {
          if (i % C != walk.rank) continue;
          const int64_t col = (i < kBoxes ? 0 : p.D) + n0 + 64 * (i % kBoxes);
          sm90::tma_load_shared<C>(b + i * kMnBox, &w_map, full, static_cast<int32_t>(col), k * BK);
        }
      }
    });
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  const T* __restrict__ bias = static_cast<const T*>(p.bias);

  // The epilogue of one m64n(2·BN) accumulator block whose first row is `row_base`: register
  // 4j + e holds row r0 (e < 2) or r0 + 8 (e >= 2) and column 8j + 2·(lane % 4) + (e & 1); j < BN/8
  // is the gate, j >= BN/8 the up.
  auto epilogue = [&](const float (&acc)[BN], int64_t row_base, int64_t n0) {
    const int64_t r0 = row_base + warp * 16 + lane / 4;
    if (p.vec_store != 0 && row_base + 64 <= p.B && n0 + BN <= p.D) {
      // Interior block (every tile but those on the bottom and right edges): no bounds checks,
      // and the row offsets are computed once instead of per pair. Why it matters: with the
      // short reductions of the LLaMA forward (64 K steps a tile) the epilogue's integer work was
      // a visible share of each tile.
      const int64_t c0 = n0 + 2 * (lane % 4);
      const int64_t z_row = r0 * p.D + c0, h_row = r0 * 2 * p.D + c0;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        float bg0 = 0, bg1 = 0, bu0 = 0, bu1 = 0;
        if (p.has_bias) {  // (element loads: the bias need not be 4-byte aligned)
          const T* b = bias + c0 + 8 * j;
          bg0 = to_f32(b[0]);
          bg1 = to_f32(b[1]);
          bu0 = to_f32(b[p.D]);
          bu1 = to_f32(b[p.D + 1]);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int g = 4 * j + 2 * h, u = g + BN / 2;
          fwd_epilogue_pair_interior<T, Cfg::kFastMath>(p, z_row + 8 * h * p.D + 8 * j,
                                                        h_row + 16 * h * p.D + 8 * j, acc[g] + bg0,
                                                        acc[u] + bu0, acc[g + 1] + bg1, acc[u + 1] + bu1);
        }
      }
      return;
    }
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
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = r0 + 8 * h;
        if (row < p.B) {
          const int g = 4 * j + 2 * h, u = g + BN / 2;
          fwd_epilogue_pair<T, Cfg::kFastMath>(p, row, col, acc[g] + bg0, acc[u] + bu0,
                                               acc[g + 1] + bg1, acc[u + 1] + bu1, p.vec_store != 0);
        }
      }
    }
  };

  // The TMA-store paths' bias of the pair at columns col and col + 1 (D is even there) of the gate
  // half (bg) and the up half (bu): zero past D or without bias.
  auto tma_pair_bias = [&](int64_t col, float& bg0, float& bg1, float& bu0, float& bu1) {
    bg0 = 0, bg1 = 0, bu0 = 0, bu1 = 0;
    if (p.has_bias && col < p.D) {
      bg0 = to_f32(bias[col]);
      bg1 = to_f32(bias[col + 1]);
      bu0 = to_f32(bias[p.D + col]);
      bu1 = to_f32(bias[p.D + col + 1]);
    }
  };

  // The epilogue through shared memory and TMA stores (Cfg::kTmaStore, FwdParams.tma_store: Z and/or
  // the saved H, D a multiple of 8). One output block at a time (Z, then H's G half, then its U
  // half, each 64 × BN of this consumer's rows): the block's value of every pair goes into the
  // consumer's buffer, two values a 4-byte store, and its leader stores the BN/64 boxes of `map`
  // (sm90::store_buffer_*; G and U have maps of their own, D columns with a row stride of 2D, so
  // that neither half's edge tile spills into the other). Named barrier 2 + consumer.
  // what: 0 Z = silu(g)·u, 1 G = g, 2 U = u.
  auto store_block = [&](const float (&acc)[BN], const CUtensorMap* map, int64_t row_base, int64_t n0, int what) {
    auto value = [what](float g, float u) {
      return what == 0 ? swiglu_gate<Cfg::kFastMath>(g, u) : what == 1 ? g : u;
    };
    if constexpr (Cfg::kTmaStore) {
      const uint32_t buf = smem_u32(ring.smem) + Cfg::kSplitOffset + consumer * (Cfg::kZBytes / 2);
      sm90::store_buffer_acquire(leader, 2 + consumer);
      const uint32_t row = static_cast<uint32_t>(warp * 16 + lane / 4);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int64_t col = n0 + 8 * j + 2 * (lane % 4);
        float bg0, bg1, bu0, bu1;
        tma_pair_bias(col, bg0, bg1, bu0, bu1);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int g = 4 * j + 2 * h, u = g + BN / 2;
          sm90::store_buffer_pair<BN / 64>(
              buf, j, h, row, lane,
              pack_pair<T>(value(acc[g] + bg0, acc[u] + bu0), value(acc[g + 1] + bg1, acc[u + 1] + bu1)));
        }
      }
      sm90::store_buffer_release<BN / 64>(leader, 2 + consumer, map, buf, n0, row_base);
    }
  };
  // The backward's recompute (FwdParams.dh): dH = [dG | dU] through the same buffer, with g_map and
  // u_map on dH's halves. One pass reads dZ (a pair per 4-byte load, rows past B skipped: TMA clips
  // them anyway) and computes both gradients, dG = dZ·U·silu'(G) into the buffer and dU = dZ·silu(G)
  // into G's accumulators, which are not needed again; the second pass stores those. The same
  // arithmetic as fwd_epilogue_at, so both paths give the same bits.
  auto store_dh = [&](float (&acc)[BN], int64_t row_base, int64_t n0) {
    if constexpr (Cfg::kTmaStore) {
      const T* __restrict__ dz = static_cast<const T*>(p.dz);
      const uint32_t buf = smem_u32(ring.smem) + Cfg::kSplitOffset + consumer * (Cfg::kZBytes / 2);
      const uint32_t row = static_cast<uint32_t>(warp * 16 + lane / 4);
      sm90::store_buffer_acquire(leader, 2 + consumer);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int64_t col = n0 + 8 * j + 2 * (lane % 4);
        float bg0, bg1, bu0, bu1;
        tma_pair_bias(col, bg0, bg1, bu0, bu1);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int g = 4 * j + 2 * h, u = g + BN / 2;
          const int64_t m = row_base + row + 8 * h;
          float dz0 = 0.0f, dz1 = 0.0f;
          if (m < p.B && col < p.D) load_pair(dz + m * p.D + col, &dz0, &dz1);
          float s0, ds0, s1, ds1;
          silu_and_grad<Cfg::kFastMath>(acc[g] + bg0, &s0, &ds0);
          silu_and_grad<Cfg::kFastMath>(acc[g + 1] + bg1, &s1, &ds1);
          sm90::store_buffer_pair<BN / 64>(
              buf, j, h, row, lane, pack_pair<T>(dz0 * (acc[u] + bu0) * ds0, dz1 * (acc[u + 1] + bu1) * ds1));
          acc[g] = dz0 * s0;
          acc[g + 1] = dz1 * s1;
        }
      }
      sm90::store_buffer_release<BN / 64>(leader, 2 + consumer, &g_map, buf, n0, row_base);
      sm90::store_buffer_acquire(leader, 2 + consumer);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
          sm90::store_buffer_pair<BN / 64>(buf, j, h, row, lane, pack_pair<T>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]));
      }
      sm90::store_buffer_release<BN / 64>(leader, 2 + consumer, &u_map, buf, n0, row_base);
    }
  };
  auto epilogue_tma = [&](float (&acc)[BN], int64_t row_base, int64_t n0) {
    if (p.dh != nullptr) {
      store_dh(acc, row_base, n0);
      return;
    }
    if (p.z != nullptr) store_block(acc, &z_map, row_base, n0, 0);
    if (p.saved != nullptr) {
      store_block(acc, &g_map, row_base, n0, 1);
      store_block(acc, &u_map, row_base, n0, 2);
    }
  };

  // The main loop of one tile from ring position `first` (sm90::consume_tile): `mma(a, b, k)` on
  // each stage, a and b its X and W tiles.
  auto main_loop = [&](int64_t first, auto&& mma) {
    sm90::consume_tile(ring, first, k_steps, leader,
                       [&](uint32_t a, int k) { mma(a, a + Cfg::kABytes, k); });
  };

  if constexpr (Cfg::kTf32x3) {
    // 3xTF32, cooperative, with its own main loop. Each K step: both consumers write the stage's
    // small parts into split buffer (ring position % 3) and meet on named barrier 1, which the
    // previous step's wgmma overlap; then each waits for those, adds their partial sum `part` to
    // `acc` with fp32 adds, hands that step's stage back, and runs small·big, big·small and
    // big·big for its 64 rows into `part` (zeroed by the first wgmma), left in flight.
    // Why a partial sum per step: the tensor cores add with truncation, and chaining all 3·I/8
    // products into one accumulator biased the sm80 kernel's sums to rel_l2 5.5e-5
    // (kernels/fwd_sm80.cuh); chains of one step (12 wgmma) keep that bias under the split's own
    // error. Why three split buffers: the last readers of the buffer written at step s are both
    // consumers' step s−3 wgmma; this consumer waited for its own at step s−2, and the other had
    // waited for its own before it reached the barrier of step s−1, which this one has passed.
    const uint32_t split = smem_u32(ring.smem) + Cfg::kSplitOffset;
    const uint32_t rows = consumer * 64 * 128;
    const int thread = static_cast<int>(threadIdx.x) - 128;
    float acc[BN], part[BN];
    int64_t step = 0;  // this block's K steps so far, over all its tiles: the ring position
    int buffer = 0;    // step % Cfg::kSplits
    for (int64_t u = walk.first(); u < walk.units; u += walk.stride()) {
      int64_t m0, n0;
      walk.template origin<BM, BN>(u, &m0, &n0);
#pragma unroll
      for (int i = 0; i < BN; ++i) acc[i] = 0.0f;
      sm90::RingPos<S> pos(step);
      int release = -1;  // the stage the wgmma in flight read
      for (int k = 0; k < k_steps; ++k, ++step) {
        sm90::mbar_wait(&ring.full[pos.stage], pos.phase);
        const uint32_t a = smem_u32(ring.smem + pos.stage * Cfg::kStageBytes), b = a + Cfg::kABytes;
        const uint32_t sa = split + static_cast<uint32_t>(buffer) * Cfg::kStageBytes, sb = sa + Cfg::kABytes;
        sm90::split_stage_tf32x3<Cfg::kStageBytes>(a, sa, thread, 256, 1);
        if (release >= 0) {
          sm90::wgmma_wait<0>();
#pragma unroll
          for (int i = 0; i < BN; ++i) acc[i] += part[i];
          if (leader) ring.release(release);
        }
        sm90::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {  // 8 fp32 of K (32 bytes) each
          const uint64_t big_a = sm90::smem_desc(a + rows + kk * 32), big_b = desc_b(b, kk);
          sm90::wgmma_m64nk<2 * BN, T, 0, 0>(part, sm90::smem_desc(sa + rows + kk * 32), big_b, kk > 0 ? 1 : 0);
          sm90::wgmma_m64nk<2 * BN, T, 0, 0>(part, big_a, desc_b(sb, kk), 1);
          sm90::wgmma_m64nk<2 * BN, T, 0, 0>(part, big_a, big_b, 1);
        }
        sm90::wgmma_commit();
        release = pos.stage;
        pos.next();
        if (++buffer == Cfg::kSplits) buffer = 0;
      }
      sm90::wgmma_wait<0>();
#pragma unroll
      for (int i = 0; i < BN; ++i) acc[i] += part[i];
      if (leader) ring.release(release);
      epilogue(acc, m0 + consumer * 64, n0);
    }
  } else if constexpr (!Cfg::kPingpong) {
    // Cooperative: both consumers share each tile, rows [64·consumer, 64·consumer + 64) each.
    float acc[BN];
    int64_t first = 0;
    for (int64_t u = walk.first(); u < walk.units; u += walk.stride(), first += k_steps) {
      int64_t m0, n0;
      walk.template origin<BM, BN>(u, &m0, &n0);
      main_loop(first, [&](uint32_t a, uint32_t b, int k) {
        // fp32 inputs: both consumers round the stage to tf32 first (named barrier 1), each half.
        if constexpr (std::is_same_v<T, float>)
          sm90::round_stage_tf32<Cfg::kStageBytes>(a, static_cast<int>(threadIdx.x) - 128, 256, 1);
        a += consumer * 64 * 128;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)  // 32 bytes of K each
          sm90::wgmma_m64nk<2 * BN, T, 0, kTransB>(acc, sm90::smem_desc(a + kk * 32), desc_b(b, kk),
                                                    k > 0 || kk > 0 ? 1 : 0);
      });
      if (Cfg::kTmaStore && p.tma_store != 0) {
        epilogue_tma(acc, m0 + consumer * 64, n0);
      } else {
        epilogue(acc, m0 + consumer * 64, n0);
      }
    }
    // The last stores must have finished reading shared memory before the block exits.
    if (Cfg::kTmaStore && p.tma_store != 0 && leader) sm90::tma_store_wait<0>();
    if constexpr (C > 1) sm90::cluster_sync();
  } else {
    // Ping-pong: the consumers take this block's tiles in turn, each a whole 128-row tile (two
    // m64 products on the same W tile), so one consumer's epilogue runs while the other's main
    // loop does and the tensor cores stay busy. The main loops take turns too: a consumer starts
    // tile j only once the other has finished tile j-1's (named barrier 1 + its index). Why: a
    // stage's full barrier is waited on by parity, which is only sound when every earlier fill of
    // that stage has been waited for; in tile order that holds.
    constexpr int kTurnThreads = 256;  // both consumer warpgroups
    float acc0[BN], acc1[BN];
    int64_t local = 0;
    for (int64_t u = walk.first(); u < walk.units; u += walk.stride(), ++local) {
      if ((local & 1) != consumer) continue;
      int64_t m0, n0;
      walk.template origin<BM, BN>(u, &m0, &n0);
      if (local > 0) sm90::named_sync(1 + consumer, kTurnThreads);
      main_loop(local * k_steps, [&](uint32_t a, uint32_t b, int k) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {  // 32 bytes of K each
          const uint64_t db = desc_b(b, kk);
          const int scale = k > 0 || kk > 0 ? 1 : 0;
          sm90::wgmma_m64nk<2 * BN, T, 0, kTransB>(acc0, sm90::smem_desc(a + kk * 32), db, scale);
          sm90::wgmma_m64nk<2 * BN, T, 0, kTransB>(acc1, sm90::smem_desc(a + 64 * 128 + kk * 32), db, scale);
        }
      });
      // The other consumer's next tile (if this block has one) may start its main loop.
      if (u + walk.stride() < walk.units) sm90::named_arrive(1 + (1 - consumer), kTurnThreads);
      epilogue(acc0, m0, n0);
      epilogue(acc1, m0 + 64, n0);
    }
  }
#endif
}

}  // namespace swiglu::kernels
