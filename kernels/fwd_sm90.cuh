// The fused forward on Hopper (sm_90a): wgmma fed by TMA, warp-specialised, over a persistent grid.
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)    X: B×I; W12 linear (2D×I) or packed (I×2D, not fp32)
//
// A producer warpgroup loads the X tile and the Wa and Wb rows of each K step as one 2·BN-row
// operand, so one m64n(2·BN) wgmma puts gate column c and up column c in the same thread: the gate
// runs in registers, with no repacking of the weights. fp32 runs as tf32 (each stage rounded in
// place) or 3xTF32. Tails are TMA's zero fill and masked stores. Other archs compile an empty
// body and the registry lists these only in sm_90a builds (docs/kernels-sm90.md).
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/epilogue.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"
#include "kernels/sm90.cuh"

namespace swiglu::kernels {

// BN: Z columns a tile (the wgmma is m64n(2·BN)). CLUSTER = 2: blocks pair on vertically adjacent
// tiles with the same W tile, each loading half its boxes and multicasting them to both.
template <class E, Layout L, Math M, Schedule S, int BN, int STAGES, int CLUSTER = 1>
struct Sm90FwdConfig {
  using Element = E;
  static constexpr bool kPingpong = S == Schedule::pingpong;
  static constexpr bool kPacked = L == Layout::packed;
  static constexpr int kCluster = CLUSTER;
  static constexpr bool kTf32x3 = M == Math::tf32x3;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = BN;   // Z columns per tile; the wgmma is m64n(2·BN)
  static constexpr int kBlockK = 128 / static_cast<int>(sizeof(E));  // one 128-byte swizzle row
  static constexpr int kStages = STAGES;
  static constexpr int kWarps = 12;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kABytes = kBlockM * 128;
  static constexpr int kBBytes = 2 * BN * 128;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // 16-bit outputs through TMA stores (cooperative): a 64 × BN buffer a consumer, 64-column boxes of
  // 128 bytes a row, swizzled, after the barriers (where 3xTF32 keeps its split buffers instead).
  static constexpr bool kTmaStore = sizeof(E) == 2 && !kPingpong;
  static constexpr int kZBytes = kTmaStore ? 2 * 64 * BN * 2 : 0;
  // Stages from a 1024-byte (swizzle atom) boundary, then the barriers (a whole 1024 bytes when the
  // split or store buffers follow).
  static constexpr int kSplits = kTf32x3 ? 3 : 0;  // split buffers, each kStageBytes
  static constexpr int kSplitOffset = STAGES * kStageBytes + 1024;  // from the first stage
  static constexpr int kSmemBytes = kTf32x3     ? kSplitOffset + kSplits * kStageBytes + 1024
                                    : kTmaStore ? kSplitOffset + kZBytes + 1024
                                                : STAGES * kStageBytes + 1024 + 2 * STAGES * 8;
  static constexpr FastMath kFastMath = FastMath::on;
  static_assert(BN == 64 || BN == 128, "the wgmma N is 2·BN: 128 or 256");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
  static_assert(CLUSTER == 1 || CLUSTER == 2, "sm90 fwd: clusters of 1 or 2 blocks");
  static_assert(CLUSTER == 1 || !kPingpong, "sm90 fwd: clusters are built for the cooperative schedule");
  static_assert(sizeof(E) == 2 || (std::is_same_v<E, float> && !kPacked && !kPingpong && CLUSTER == 1),
                "sm90 fwd: fp16/bf16, or fp32 as tf32 with the linear layout, cooperative, one block");
  static_assert(std::is_same_v<E, float> ? M == Math::tf32 || M == Math::tf32x3 : M == Math::exact,
                "sm90 fwd: fp32 runs as tf32 or 3xtf32, fp16/bf16 as exact");
  static_assert(!kTf32x3 || BN == 64, "sm90 fwd: 3xTF32 takes BN = 64 (its partial sum doubles the accumulators)");
  static_assert(2 * STAGES * 8 <= 1024, "sm90 fwd: the barriers must fit ahead of the split buffers");
  static_assert(kSmemBytes <= 227 * 1024, "sm90 fwd: the shared memory exceeds the 227 KiB of a block");
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm90(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                    const __grid_constant__ CUtensorMap z_map, const __grid_constant__ CUtensorMap g_map,
                    const __grid_constant__ CUtensorMap u_map, const FwdParams p) {
#if SWIGLU_SM90A_DEVICE
  using T = typename Cfg::Element;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  constexpr int kMnBox = 64 * 128;  // one 64-column box of the packed Wf (64 K rows of 128 bytes)
  constexpr int kTransB = Cfg::kPacked ? 1 : 0;
  // The W tile's descriptor for the kk-th 32 bytes of K. Why 32 and 2048: 32 bytes step K inside a
  // swizzled K-major row; 16 K rows of an N-major box are two 1024-byte atoms.
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
      // The W boxes, box i from the cluster's block i % C: the gate rows (linear) or columns
      // (packed, 64 a box) n0.., then the up ones D + n0..
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

  // One m64n(2·BN) accumulator block from row `row_base`: register 4j + e holds row r0 (e < 2) or
  // r0 + 8, column 8j + 2·(lane % 4) + (e & 1); j < BN/8 is the gate, the rest the up.
  auto epilogue = [&](const float (&acc)[BN], int64_t row_base, int64_t n0) {
    const int64_t r0 = row_base + warp * 16 + lane / 4;
    if (p.vec_store != 0 && row_base + 64 <= p.B && n0 + BN <= p.D) {
      // Interior block: no bounds checks, row offsets computed once. Why: with short reductions
      // the epilogue's integer work was a visible share of each tile (docs/kernels-sm90.md).
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

  // The TMA-store paths' bias of columns col and col + 1 (D is even there): zero past D.
  auto tma_pair_bias = [&](int64_t col, float& bg0, float& bg1, float& bu0, float& bu1) {
    bg0 = 0, bg1 = 0, bu0 = 0, bu1 = 0;
    if (p.has_bias && col < p.D) {
      bg0 = to_f32(bias[col]);
      bg1 = to_f32(bias[col + 1]);
      bu0 = to_f32(bias[p.D + col]);
      bu1 = to_f32(bias[p.D + col + 1]);
    }
  };

  // One 64 × BN output block through the consumer's buffer and TMA stores (FwdParams.tma_store),
  // named barrier 2 + consumer; what: 0 Z = silu(g)·u, 1 G = g, 2 U = u. G and U have maps of
  // their own (row stride 2D), so neither half's edge tile spills into the other.
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
  // The backward's recompute (FwdParams.dh): one pass reads dZ and puts dG in the buffer and dU in
  // G's accumulators (not needed again), a second stores dU; g_map and u_map are dH's halves. The
  // arithmetic is fwd_epilogue_at's, so both paths give the same bits.
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

  // One tile's main loop from ring position `first`: mma(a, b, k) on each stage's X and W tiles.
  auto main_loop = [&](int64_t first, auto&& mma) {
    sm90::consume_tile(ring, first, k_steps, leader,
                       [&](uint32_t a, int k) { mma(a, a + Cfg::kABytes, k); });
  };

  if constexpr (Cfg::kTf32x3) {
    // 3xTF32: each K step writes the stage's small parts to split buffer (step % 3), adds the last
    // step's partial sum `part` to `acc` in fp32, and runs small·big, big·small, big·big into
    // `part`. Why per step: the tensor cores' truncating adds bias long chains. Why three buffers:
    // a buffer's last readers are step s−3's wgmma. Both: docs/kernels-sm90.md.
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
    // Ping-pong: the consumers take whole tiles in turn, so one's epilogue overlaps the other's
    // main loop. The main loops take turns too (named barrier 1 + consumer). Why: a full barrier
    // is waited on by parity, sound only if every earlier fill of the stage was waited for.
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
