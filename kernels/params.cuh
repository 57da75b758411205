// The kernels' interface: the parameters every launch passes by value (FwdParams, BwdParams) and
// the named template flags of the kernel configurations. Plain C++: the host includes it too.
// Why the public header: the kernels take its Layout and Math as template flags, so a kernel and
// its registry entry name a layout or a math mode the same way.
#pragma once

#include <cstdint>

#include "swiglu/swiglu.hpp"

namespace swiglu::kernels {

// fp32 SiLU: precise expf and IEEE division, or __expf and an approximate reciprocal (a few ulp,
// invisible once rounded to fp16/bf16).
enum class FastMath { off, on };

// The sm90 forward's two consumer warpgroups: both on each 128-row tile, or whole tiles in turn so
// that one's epilogue overlaps the other's main loop.
enum class Schedule { cooperative, pingpong };

// The fused forward: Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb), or what the epilogue writes instead.
struct FwdParams {
  const void* x = nullptr;     // B×I, row stride ldx
  const void* w = nullptr;     // linear: 2D×I row-major; packed: I×2D row-major
  const void* bias = nullptr;  // 2D elements [ba | bb], or null
  void* z = nullptr;           // B×D row-major
  int64_t B = 0, I = 0, D = 0;
  int64_t ldx = 0;             // elements
  int has_bias = 0;
  // 1: x and w 16-byte aligned and every row the loads walk (X: I and ldx; linear W: I; packed W:
  // D) whole 16-byte vectors, so 16-byte loads and cp.async never straddle a row or an edge.
  int vec_load = 0;
  // 1: every output and dz 16-byte aligned and D whole 16-byte vectors, so a thread's adjacent
  // columns are all in range or all out, and aligned.
  int vec_store = 0;
  // The epilogue's outputs (epilogue.cuh). dh null: Z to z (when set) and H = [G | U] (B×2D) to
  // saved (when set). dh set (the backward's recompute): dH = [dG | dU] (B×2D) from dZ (B×D, dz).
  void* saved = nullptr;
  const void* dz = nullptr;
  void* dh = nullptr;
  // 1: the sm90 forward stores its outputs through the TMA maps its launcher encoded.
  int tma_store = 0;
};

// How an FP8 operand's fp32 scales are laid out (dequantised = e4m3 · scale):
//   tensor:  one scale for the whole operand
//   blocks:  X: B × k_blocks, row-major, row r's scale for K block kb (I columns kb·128 ..
//            kb·128 + 127); W: 2 × d_blocks × k_blocks, Wa's 128×128 blocks, then Wb's (row block
//            nb, K block kb)
//   channel: W only: 2D, one a row of W12 (an output column of G or U), [Wa's | Wb's]
// k_blocks = ceil(I / 128), d_blocks = ceil(D / 128).
enum class Fp8Scale { tensor, blocks, channel };

inline constexpr float kE4m3Max = 448.0f;  // e4m3's largest finite value: scale = amax / kE4m3Max

// The FP8 forward (e4m3 X and W12, linear layout): FwdParams with x and w in e4m3 and the outputs
// (z, saved) and bias in the output dtype, plus the scales.
struct Fp8FwdParams {
  FwdParams base;
  const float* x_scale = nullptr;
  const float* w_scale = nullptr;
  Fp8Scale x_kind = Fp8Scale::blocks, w_kind = Fp8Scale::blocks;
  int64_t k_blocks = 0, d_blocks = 0;
  // Z in e4m3 (z is then e4m3 bytes): its 1×128 scales, B × ceil(D / 128) row-major, and, when
  // set, the largest |Z| (atomically raised: the caller zeroes it).
  float* z_scale = nullptr;
  float* z_amax = nullptr;
};

// The backward GEMMs, C (M×N) = A (M×K) · B (K×N), A a view of dH = [dG | dU] (B×2D):
//   dx_linear, dx_packed: A = dH (M = B, K = 2D), B = W12 (linear) or Wfᵀ (packed), C = dX (B×I)
//   dw:                   A = dHᵀ (M = 2D, K = B), B = X, C = dW12 (either layout), dbias
enum class BwdKind { dx_linear, dx_packed, dw };

// dW reads its A, dH, transposed (M contiguous); the dX GEMMs read dH as stored (K contiguous).
constexpr bool a_transposed(BwdKind k) { return k == BwdKind::dw; }
// The packed dX reads B = Wf with K contiguous (b[n*ldb + k]); W12 and X have N contiguous.
constexpr bool b_k_major(BwdKind k) { return k == BwdKind::dx_packed; }

struct BwdParams {
  int64_t M = 0, N = 0, K = 0;
  int64_t rows = 0;            // B: rows of dH, dZ and H
  int64_t D = 0;               // dH has 2D columns
  const void* dh = nullptr;    // A read directly (row stride 2D), or null: computed from dz and h
  const void* dz = nullptr;    // dZ, row stride D
  const void* h = nullptr;     // H = [G | U], row stride 2D
  void* dh_out = nullptr;      // dX only: the first N tile's blocks also store the dH they computed
  const void* b = nullptr;     // b[k*ldb + n], or b[n*ldb + k] when b_k_major
  int64_t ldb = 0;
  void* c = nullptr;           // C[m][n] at c[m*ldc + n], or c[n*ldc + m] when c_trans
  int64_t ldc = 0;
  int c_trans = 0;
  void* dbias = nullptr;       // dW only: dbias[m] = Σ_k A[m][k], or null
  int accumulate = 0;          // dW only (sm90, sm80, SIMT): C += A·B and dbias += Σ_k A (each read
                               // first, the sum rounded once) instead of C = and dbias =
  int vec_a = 0;               // A's sources 16-byte aligned, rows whole 16-byte vectors
  int vec_b = 0;               // B 16-byte aligned, rows whole 16-byte vectors
  int vec_c = 0;               // c 16-byte aligned, ldc and N whole 16-byte vectors (!c_trans)
  int tma_c = 0;               // sm90: C through TMA stores (set by its launcher)
  // Split-K (dX only): gridDim.z = splits slices of k_per_split (a multiple of BK). With splits > 1
  // each slice adds its fp32 tile into partial (M×N, zero at launch) and the last slice of a tile
  // (counted in counters[tile], zero at launch) rounds the sums and stores C.
  int splits = 1;
  int64_t k_per_split = 0;
  float* partial = nullptr;
  int* counters = nullptr;
};

}  // namespace swiglu::kernels
