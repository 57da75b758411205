// Internal: the table of compiled forward kernel instances.
//
// Each instance file (fwd_simt_*.cu, fwd_sm80_*.cu) appends its instances through a register_*
// function. The public API (api.cpp) validates the problem, asks heuristics.cpp for a tile, finds
// the matching entry here and calls its launcher.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// Plain-old-data parameters passed by value to every forward kernel.
struct FwdParams {
  const void* x = nullptr;     // B×I, row stride ldx
  const void* w = nullptr;     // linear: 2D×I row-major; packed: I×2D row-major
  const void* bias = nullptr;  // 2D elements [ba | bb], or null
  void* z = nullptr;           // B×D row-major
  int64_t B = 0, I = 0, D = 0;
  int64_t ldx = 0;             // elements
  int has_bias = 0;
  // 1 when x and w are 16-byte aligned and every row the loads walk (X: I and ldx; linear W: I;
  // packed W: D) is a whole number of 16-byte vectors, so 16-byte loads and cp.async never
  // straddle a row or a matrix edge.
  int vec_load = 0;
  // 1 when every output written and dz (z, saved, dh) are 16-byte aligned and D is a whole number
  // of 16-byte vectors, so a thread's pair or quad of adjacent columns is all in range or all out,
  // and aligned.
  int vec_store = 0;
  // Epilogue outputs (kernels/fwd_epilogue.cuh). With dh == null: Z to z (when not null) and, when
  // saved is not null, H = [G | U] (B×2D) to saved. With dh set (the backward's recompute GEMM):
  // reads dZ (B×D) from dz and writes dH = [dG | dU] (B×2D) to dh; z and saved are ignored.
  void* saved = nullptr;
  const void* dz = nullptr;
  void* dh = nullptr;
  // 1 when the sm90 forward writes its outputs (Z and the saved H, or dH) through the TMA maps its
  // launcher encodes (vec_store), rather than from registers. Set by that launcher alone.
  int tma_store = 0;
};

using FwdLaunch = cudaError_t (*)(const FwdParams&, cudaStream_t);

struct FwdKernel {
  TileConfig tile;
  DType dtype;
  Layout layout;
  Math math;             // exact for fp16/bf16 instances
  int min_cc;            // lowest compute capability (major*10+minor) the instance runs on
  FwdLaunch launch;
  int max_cc = 1000;     // highest (sm_90a code runs on 9.0 alone)
};

// ---- backward GEMMs --------------------------------------------------------------------------------
//
// C (M×N) = A (M×K) · B (K×N), where A is a view of dH = [dG | dU] (B×2D):
//   dx: A[m][k] = dH[m][k]  (M = B, K = 2D), B = W12 (linear: row k of W, N = I; packed: Wf[n][k])
//   dw: A[m][k] = dH[k][m]  (M = 2D, K = B), B = X (row k of X, N = I)
// dH is read directly (dh) or computed from dZ and H = [G | U] while the A tile is loaded
// (transform): dH[r][c] = dZ[r][c]·U[r][c]·silu'(G[r][c]) for c < D, dZ[r][c−D]·silu(G[r][c−D])
// otherwise.
enum class BwdKind { dx_linear, dx_packed, dw };

// The kernel kind of the dW GEMM (dw) or of p's dX GEMM.
inline BwdKind bwd_kind(const Problem& p, bool dw) {
  if (dw) return BwdKind::dw;
  return p.layout == Layout::linear ? BwdKind::dx_linear : BwdKind::dx_packed;
}

struct BwdParams {
  int64_t M = 0, N = 0, K = 0;
  int64_t rows = 0;            // B: rows of dH, dZ and H
  int64_t D = 0;               // dH has 2D columns
  const void* dh = nullptr;    // direct A source (row stride 2D), or null for the transform
  const void* dz = nullptr;    // transform: dZ, row stride D
  const void* h = nullptr;     // transform: H = [G | U], row stride 2D
  void* dh_out = nullptr;      // transform, dx only: blocks of the first N tile also write the
                               // dH they computed here (row stride 2D), for the dW GEMM
  const void* b = nullptr;     // B operand: b[k*ldb + n] (dx_linear, dw) or b[n*ldb + k] (dx_packed)
  int64_t ldb = 0;
  void* c = nullptr;           // C[m][n] at c[m*ldc + n], or c[n*ldc + m] when c_trans
  int64_t ldc = 0;
  int c_trans = 0;
  void* dbias = nullptr;       // dw only: dbias[m] = Σ_k A[m][k], or null
  int vec_a = 0;               // A sources 16-byte aligned and whole 16-byte vectors per row/segment
  int vec_b = 0;               // B 16-byte aligned, rows whole 16-byte vectors
  int vec_c = 0;               // c 16-byte aligned, ldc and N whole 16-byte vectors (!c_trans)
  int tma_c = 0;               // sm90: C through TMA stores (set by the launcher, not the caller)
  // Split-K (dx only): gridDim.z = splits slices of k_per_split (a multiple of BK)
  // each. With splits > 1 every slice adds its fp32 tile into partial (M×N, zero at launch) with
  // atomic adds, and the last slice to finish a tile (counted in counters[tile], zero at launch)
  // rounds the sums and stores C.
  int splits = 1;
  int64_t k_per_split = 0;
  float* partial = nullptr;
  int* counters = nullptr;
};

using BwdLaunch = cudaError_t (*)(const BwdParams&, cudaStream_t);

struct BwdKernel {
  TileConfig tile;
  DType dtype;
  BwdKind kind;
  int min_cc;
  BwdLaunch launch;
  int max_cc = 1000;  // highest (sm_90a code runs on 9.0 alone)
};

void register_bwd_simt(std::vector<BwdKernel>& out);
void register_bwd_sm80_f16(std::vector<BwdKernel>& out);
void register_bwd_sm80_bf16(std::vector<BwdKernel>& out);
void register_bwd_sm90_f16(std::vector<BwdKernel>& out);
void register_bwd_sm90_bf16(std::vector<BwdKernel>& out);

const std::vector<BwdKernel>& bwd_kernels();

// The forward heuristic (heuristics.cpp); allow_sm90 = false leaves the wgmma tiles out (for
// operands TMA cannot address). choose_forward_tile(p, dev, out) is this with allow_sm90 = true.
Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, bool allow_sm90, TileConfig* out);

// The backward heuristic (heuristics.cpp): the tile of the dX GEMM (dw = false) or the dW GEMM;
// allow_sm90 = false leaves the wgmma tiles out (for operands TMA cannot address).
Status choose_backward_tile(const Problem& p, const DeviceTraits& dev, bool dw, bool allow_sm90,
                            TileConfig* out);

// Whether p's backward can run the sm90 (wgmma) GEMMs on dev at all: compiled in, compute
// capability 9.0, fp16/bf16, the linear layout, and row strides TMA can address. The pointers are
// checked at the call.
bool sm90_backward_possible(const Problem& p, const DeviceTraits& dev);

// Why the sm90 forward (or backward GEMM) kernels cannot take p, whatever the device and the
// pointers; empty when they can. The one home of that rule: the tile lists, the heuristic and the
// launch of a forced tile all ask it.
std::string sm90_forward_obstacle(const Problem& p);
std::string sm90_backward_obstacle(const Problem& p);

void register_fwd_simt_f32(std::vector<FwdKernel>& out);
void register_fwd_simt_f16(std::vector<FwdKernel>& out);
void register_fwd_simt_bf16(std::vector<FwdKernel>& out);
void register_fwd_sm80_f16(std::vector<FwdKernel>& out);
void register_fwd_sm80_bf16(std::vector<FwdKernel>& out);
void register_fwd_sm80_tf32(std::vector<FwdKernel>& out);
void register_fwd_sm80_tf32x3(std::vector<FwdKernel>& out);
void register_fwd_sm90_f16(std::vector<FwdKernel>& out);
void register_fwd_sm90_bf16(std::vector<FwdKernel>& out);
void register_fwd_sm90_tf32(std::vector<FwdKernel>& out);
void register_fwd_sm90_tf32x3(std::vector<FwdKernel>& out);

// Every instance, built once on first use.
const std::vector<FwdKernel>& fwd_kernels();

}  // namespace swiglu::detail
