// The FP8 forward for a few rows of X (decode and small batches): e4m3 X and W12 with fp32 scales,
// the products on the FP8 tensor cores through mma.sync (m16n8k32, sm_89+), the weights streamed
// from HBM into registers with no shared memory on their way.
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb),  X = Xq·sx, Wa, Wb = Wq·sw
//
// Why not the wgmma kernel (fwd_sm90_fp8.cuh) here: its 128-row tiles leave most rows empty at
// small B, and its tiles of 128 Z columns number D/128, fewer than the SMs at the LLaMA shapes,
// so W is streamed by too few blocks. Here a warp owns 8 Z columns and every K, so the weights
// are spread over D/8 warps.
//
// A warp's mma takes as A the 16 rows [Wa rows n0 .. n0+7; Wb rows n0 .. n0+7] and as B 8 rows of
// X, so a thread's accumulators hold G and U of one Z column for two X rows: the gate needs no
// exchange. The K order inside an mma is free as long as A and B agree: a thread loads 16
// contiguous bytes of each of its rows (lane % 4 picks which 16 of a 64-byte chunk) and feeds
// bytes 0-7 to the first k32 mma and 8-15 to the second, each as the fragment's two 4-byte halves.
// A K block of 128 (two chunks) sums into `part`, which is then scaled by the block's sx·sw and
// added to the fp32 accumulators, as the wgmma kernel does and for the same reasons.
//
// kFp8Z: Z in e4m3 with 1×128 scales: the 128 columns of a scale block are the block's (16
// warps), or a cluster's of CLUSTER blocks, whose row maxima meet in distributed shared memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"
#include "kernels/sm90.cuh"  // SWIGLU_SM90A_DEVICE

namespace swiglu::kernels {

// Out: bf16 or fp16 (H, the bias, and Z unless FP8_Z). NT: n8 tiles of X rows a block takes (8·NT
// rows). WARPS: warps a block (8 Z columns each). U: 64-byte K chunks a thread loads ahead (an
// even number: whole K blocks), twice over (double-buffered registers). (A ring of 8 chunks a
// thread in shared memory through cp.async was tried: on an H100 it came within 6 % of the tiles
// at B = 1 and fell 15-24 % behind them at B = 16, so it was dropped, unmeasured on an H200.)
template <class Out, int NT, int WARPS, int CLUSTER, bool FP8_Z, int U = 2>
struct Fp8DecodeConfig {
  using Output = Out;
  static constexpr int kNt = NT;
  static constexpr int kRows = 8 * NT;
  static constexpr int kWarps = WARPS;
  static constexpr int kThreads = 32 * WARPS;
  static constexpr int kCols = 8 * WARPS;  // Z columns a block
  static constexpr int kCluster = CLUSTER;
  static constexpr bool kFp8Z = FP8_Z;
  static constexpr int kUnroll = U;
  static constexpr FastMath kFastMath = FastMath::on;  // as the wgmma FP8 kernel
  static_assert(NT >= 1 && NT <= 4, "fp8 decode: 1 to 4 n8 tiles of X rows (the registers; one warp's lanes reduce amax)");
  static_assert(U >= 2 && U % 2 == 0, "fp8 decode: whole 128-element K blocks a load group");
  static_assert(!FP8_Z || kCols * CLUSTER == 128, "fp8 decode: a block or a cluster holds a Z scale block");
  static_assert(FP8_Z || CLUSTER == 1, "fp8 decode: clusters only share the e4m3 Z's row maxima");
  static_assert(CLUSTER == 1 || CLUSTER == 2 || CLUSTER == 4 || CLUSTER == 8, "fp8 decode: cluster of 1 to 8");
};

// D = A·B + C on the FP8 tensor cores: A 16×32 e4m3 (row), B 32×8 e4m3 (col), fp32 C and D.
__device__ __forceinline__ void mma_e4m3_16832(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if SWIGLU_SM90A_DEVICE
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// The largest of v over the cluster's blocks: each block's value at `slot` of its shared memory.
// Every thread of the cluster calls it (it holds two cluster barriers).
__device__ __forceinline__ float cluster_max(const float* slot, int cluster) {
  float m = 0.0f;
#if SWIGLU_SM90A_DEVICE
  asm volatile("barrier.cluster.arrive.release;\n barrier.cluster.wait.acquire;" ::: "memory");
  for (int r = 0; r < cluster; ++r) {
    float v;
    asm volatile(
        "{\n"
        ".reg .b32 remote;\n"
        "mapa.shared::cluster.u32 remote, %1, %2;\n"
        "ld.shared::cluster.f32 %0, [remote];\n"
        "}\n"
        : "=f"(v)
        : "r"(smem_u32(slot)), "r"(r)
        : "memory");
    m = fmaxf(m, v);
  }
  // Why a second barrier: no block may leave (and free its shared memory) while a peer reads it.
  asm volatile("barrier.cluster.arrive.release;\n barrier.cluster.wait.acquire;" ::: "memory");
#else
  (void)slot;
  (void)cluster;
#endif
  return m;
}

// Grid: one block per (column group, row block, cluster rank), in that nesting, the row blocks of
// a column group adjacent so that they read its weights from L2 together.
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) swiglu_fwd_fp8_decode(const Fp8FwdParams q) {
#if SWIGLU_SM90A_DEVICE
  using Out = typename Cfg::Output;
  constexpr int NT = Cfg::kNt, U = Cfg::kUnroll, C = Cfg::kCluster;
  const FwdParams& p = q.base;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int g = lane / 4, t = lane % 4;  // the mma's group (W row, X row) and thread in group
  const int64_t row_blocks = (p.B + Cfg::kRows - 1) / Cfg::kRows;
  const int64_t bx = blockIdx.x;
  const int rank = static_cast<int>(bx % C);
  const int64_t m0 = (bx / C) % row_blocks * Cfg::kRows;
  const int64_t n0 = (bx / C / row_blocks) * (Cfg::kCols * C) + rank * Cfg::kCols + warp * 8;  // the warp's
  const int64_t col = n0 + g;  // this thread's W rows (col, D + col) and Z column

  const bool col_in = col < p.D;
  const auto* wa_row = static_cast<const uint8_t*>(p.w) + (col_in ? col : 0) * p.I;
  const auto* wb_row = wa_row + p.D * p.I;
  const uint8_t* x_rows[NT];
  bool x_in[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int64_t r = m0 + 8 * nt + g;
    x_in[nt] = r < p.B;
    x_rows[nt] = static_cast<const uint8_t*>(p.x) + (x_in[nt] ? r : 0) * p.ldx;
  }

  const bool x_blocks = q.x_kind == Fp8Scale::blocks, w_blocks = q.w_kind == Fp8Scale::blocks;
  const bool w_channel = q.w_kind == Fp8Scale::channel;
  // The scales of this thread's accumulator rows: X rows m0 + 8nt + 2t + e (null past B: zero), and
  // the W blocks of its column (Wa's, Wb's), a K block apart (0 apart: one for all of K).
  const float* xs[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t r = m0 + 8 * nt + 2 * t + e;
      xs[nt][e] = r < p.B ? q.x_scale + (x_blocks ? r * q.k_blocks : 0) : nullptr;
    }
  }
  const int x_step = x_blocks ? 1 : 0, w_step = w_blocks ? 1 : 0;
  const int64_t wblock = n0 / 128;  // the warp's 8 columns lie in one 128-row block of Wa and of Wb
  const float* ws[2] = {q.w_scale + (w_blocks ? wblock * q.k_blocks : 0),
                        q.w_scale + (w_blocks ? (q.d_blocks + wblock) * q.k_blocks : 0)};

  // acc[nt][0..1]: G of X rows 2t, 2t+1 of tile nt; acc[nt][2..3]: U of the same rows.
  float acc[NT][4], part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[nt][i] = 0.0f;
  }

  const int64_t chunks = (p.I + 63) / 64;
  const int64_t groups = (chunks + U - 1) / U;
  // Chunk c's 16 bytes of this thread: valid when inside I (I is a multiple of 16, so a 16-byte
  // piece is all in or all out).
  const auto off = [&](int64_t c) { return c * 64 + 16 * t; };
  uint4 wa[U], wb[U], na[U], nb[U];
  const auto load_w = [&](int64_t grp, uint4 (&a)[U], uint4 (&b)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t o = off(grp * U + u);
      const bool ok = col_in && o < p.I;
      a[u] = ok ? load_streamed_16(wa_row + o) : make_uint4(0, 0, 0, 0);
      b[u] = ok ? load_streamed_16(wb_row + o) : make_uint4(0, 0, 0, 0);
    }
  };
  load_w(0, wa, wb);
  for (int64_t grp = 0; grp < groups; ++grp) {
    if (grp + 1 < groups) load_w(grp + 1, na, nb);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = grp * U + u;
      if (u % 2 == 0) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
          for (int i = 0; i < 4; ++i) part[nt][i] = 0.0f;
        }
      }
      const int64_t o = off(c);
      uint4 xv[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        xv[nt] = x_in[nt] && o < p.I ? __ldg(reinterpret_cast<const uint4*>(x_rows[nt] + o)) : make_uint4(0, 0, 0, 0);
      }
      // Bytes 0-7 of the thread's 16 to the first mma, 8-15 to the second: A's registers are
      // (row g, k 0-3), (row g+8, k 0-3), (row g, k 4-7), (row g+8, k 4-7), B's (k 0-3), (k 4-7).
      const uint32_t a0[4] = {wa[u].x, wb[u].x, wa[u].y, wb[u].y};
      const uint32_t a1[4] = {wa[u].z, wb[u].z, wa[u].w, wb[u].w};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint32_t b0[2] = {xv[nt].x, xv[nt].y};
        const uint32_t b1[2] = {xv[nt].z, xv[nt].w};
        mma_e4m3_16832(part[nt], a0, b0);
        mma_e4m3_16832(part[nt], a1, b1);
      }
      // A K block done (or K's last chunk): its sums scaled into the accumulators.
      if (u % 2 == 1 || c + 1 == chunks) {
        const int64_t kb = c / 2;
        const float sa = w_channel ? 1.0f : __ldg(ws[0] + kb * w_step);
        const float sb = w_channel ? 1.0f : __ldg(ws[1] + kb * w_step);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float sx = xs[nt][e] != nullptr ? __ldg(xs[nt][e] + kb * x_step) : 0.0f;
            acc[nt][e] += part[nt][e] * (sx * sa);
            acc[nt][2 + e] += part[nt][2 + e] * (sx * sb);
          }
        }
        if (c + 1 == chunks) break;
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      wa[u] = na[u];
      wb[u] = nb[u];
    }
  }

  // The epilogue: per-channel scales and the bias of this thread's column, then per X row the
  // gate, H, and Z (in Out, or kept for the e4m3 scale).
  float cg = 1.0f, cu = 1.0f, bg = 0.0f, bu = 0.0f;
  if (col_in) {
    if (w_channel) {
      cg = __ldg(q.w_scale + col);
      cu = __ldg(q.w_scale + p.D + col);
    }
    if (p.has_bias) {
      const Out* bias = static_cast<const Out*>(p.bias);
      bg = to_f32(bias[col]);
      bu = to_f32(bias[p.D + col]);
    }
  }
  float z[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t row = m0 + 8 * nt + 2 * t + e;
      const bool in = col_in && row < p.B;
      const float gv = acc[nt][e] * cg + bg, uv = acc[nt][2 + e] * cu + bu;
      z[nt][e] = in ? swiglu_gate<Cfg::kFastMath>(gv, uv) : 0.0f;
      if (!in) continue;
      if (p.saved != nullptr) {
        Out* h = static_cast<Out*>(p.saved) + row * 2 * p.D + col;
        h[0] = from_f32<Out>(gv);
        h[p.D] = from_f32<Out>(uv);
      }
      if constexpr (!Cfg::kFp8Z) {
        if (p.z != nullptr) static_cast<Out*>(p.z)[row * p.D + col] = from_f32<Out>(z[nt][e]);
      }
    }
  }

  if constexpr (Cfg::kFp8Z) {
    // The row maxima over the block's columns: the 8 lanes of a thread-in-group index hold one
    // row's 8 columns of a warp; then over the warps in shared memory; then over the cluster.
    __shared__ float warp_max[Cfg::kWarps][Cfg::kRows];
    __shared__ float block_max[Cfg::kRows];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float m = fabsf(z[nt][e]);
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
        if (g == 0) warp_max[warp][8 * nt + 2 * t + e] = m;
      }
    }
    __syncthreads();
    if (threadIdx.x < Cfg::kRows) {
      float m = 0.0f;
#pragma unroll
      for (int w = 0; w < Cfg::kWarps; ++w) m = fmaxf(m, warp_max[w][threadIdx.x]);
      block_max[threadIdx.x] = m;
    }
    __syncthreads();
    // The row's amax over the scale block, the scale amax/448 (1 when all zero) and its reciprocal.
    const int64_t z_blocks = (p.D + 127) / 128;
    const int64_t zb = (n0 - warp * 8 - rank * Cfg::kCols) / 128;
    __shared__ float row_amax[Cfg::kRows];
    const int r = static_cast<int>(threadIdx.x) < Cfg::kRows ? static_cast<int>(threadIdx.x) : 0;
    float a = block_max[r];
    // Every thread of the cluster reaches cluster_max's barriers; the first kRows keep the result.
    if constexpr (C > 1) a = cluster_max(&block_max[r], C);
    if (threadIdx.x < Cfg::kRows) row_amax[threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.x < Cfg::kRows) {
      const int64_t row = m0 + threadIdx.x;
      if (rank == 0 && row < p.B && p.z != nullptr) q.z_scale[row * z_blocks + zb] = a > 0.0f ? __fdiv_rn(a, kE4m3Max) : 1.0f;
    }
    if (q.z_amax != nullptr && rank == 0 && warp == 0) {
      float m = lane < Cfg::kRows ? row_amax[lane] : 0.0f;
#pragma unroll
      for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      // Non-negative floats order as their bits do.
      if (lane == 0) atomicMax(reinterpret_cast<int*>(q.z_amax), __float_as_int(m));
    }
    if (p.z != nullptr && col_in) {
      auto* zq = static_cast<__nv_fp8_storage_t*>(p.z);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int r = 8 * nt + 2 * t + e;
          const int64_t row = m0 + r;
          if (row >= p.B) continue;
          const float a = row_amax[r];
          const float inv = __frcp_rn(a > 0.0f ? __fdiv_rn(a, kE4m3Max) : 1.0f);
          zq[row * p.D + col] = __nv_cvt_float_to_fp8(z[nt][e] * inv, __NV_SATFINITE, __NV_E4M3);
        }
      }
    }
  }
#endif
}

}  // namespace swiglu::kernels
