// The gemv family: kernels for a few rows of X. The forward (kernels/fwd_gemv.cuh) on CUDA cores,
// every dtype, the linear layout, sm_70+, on a 1-D grid of blocks, row block fastest. The backward's
// dX (linear layout) and dW (either layout) on sm_80+ tensor cores, fp16/bf16, on grids of output
// tiles (kernels/bwd_gemv.cuh). Tile choice in docs/kernels-gemv.md.
#pragma once

#include <algorithm>

#include "kernels/bwd_gemv.cuh"
#include "kernels/fwd_gemv.cuh"
#include "swiglu/launch.cuh"

namespace swiglu::detail::gemv {

template <class Cfg>
cudaError_t launch_forward(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd"};
  const int64_t row_blocks = (p.B + Cfg::kRows - 1) / Cfg::kRows;
  const int64_t col_blocks = (p.D + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (row_blocks == 0 || col_blocks == 0) return cudaSuccess;
  if (row_blocks > INT_MAX / col_blocks) return cudaErrorInvalidConfiguration;
  kernels::swiglu_fwd_gemv<Cfg><<<static_cast<unsigned>(row_blocks * col_blocks), Cfg::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <Precision P, int ROWS, int COLS, int WARPS, int UNROLL>
void add_forward_tile(KernelTable& out) {
  using Cfg = kernels::GemvFwdConfig<ElementOf<P>, ROWS, COLS, WARPS, UNROLL>;
  out.push_back(forward_entry<Cfg>(Family::gemv, P, Layout::linear, 70, kAnyNewer, &launch_forward<Cfg>));
}

template <Precision P>
void register_forward(KernelTable& out) {
  static_assert(P == Precision::f32 || P == Precision::f16 || P == Precision::bf16, "gemv: exact math only");
  // Why these: of rows 1-8, 2-4 columns a warp and 2-4 chunks in flight, these won on an H200
  // (docs/kernels-gemv.md); more rows a block lose to several blocks of fewer rows.
  //                 rows cols warps unroll
  add_forward_tile<P, 1, 2, 4, 4>(out);
  add_forward_tile<P, 2, 2, 4, 4>(out);
  add_forward_tile<P, 4, 2, 4, 4>(out);
}

// dW: column tiles on gridDim.x (up to 2^31-1); as many groups of row tiles on gridDim.y as let
// one wave of blocks hold every column tile (each block walks its group's row tiles).
template <class Cfg>
cudaError_t launch_dw(const BwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd"};
  constexpr auto kernel = kernels::swiglu_bwd_gemv_dw<Cfg>;
  const int64_t tiles_m = (p.M + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t tiles_n = (p.N + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (tiles_m == 0 || tiles_n == 0) return cudaSuccess;
  if (tiles_n > INT_MAX) return cudaErrorInvalidConfiguration;
  int resident = 0;
  if (const cudaError_t err = resident_blocks<kernel>(Cfg::kThreads, &resident); err != cudaSuccess) return err;
  const int64_t groups = std::clamp<int64_t>(resident / tiles_n, 1, std::min<int64_t>(tiles_m, 65535));
  const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(groups));
  kernel<<<grid, Cfg::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <Precision P, int ROWS, int VECS, int WARPS, int UNROLL>
void add_dx_tile(KernelTable& out) {
  using Cfg = kernels::GemvDxConfig<ElementOf<P>, ROWS, VECS, WARPS, UNROLL>;
  out.push_back(backward_entry<Cfg>(Family::gemv, P, BwdKind::dx_linear, 80, kAnyNewer,
                                    &launch_backward_grid<Cfg, kernels::swiglu_bwd_gemv_dx<Cfg>>));
}

template <Precision P, int WARPS_M, int WARPS_N>
void add_dw_tile(KernelTable& out) {
  using Cfg = kernels::GemvDwConfig<ElementOf<P>, WARPS_M, WARPS_N>;
  out.push_back(backward_entry<Cfg>(Family::gemv, P, BwdKind::dw, 80, kAnyNewer,
                                    &launch_dw<Cfg>));
}

template <Precision P>
void register_backward(KernelTable& out) {
  static_assert(P == Precision::f16 || P == Precision::bf16, "gemv: the backward runs fp16 or bf16");
  // Why these: of 8-32 rows, 64 or 128 columns and 2-4 steps in flight, these won on an H200
  // (docs/kernels-gemv.md).
  //          rows vecs warps unroll
  add_dx_tile<P, 16, 1, 4, 4>(out);
  add_dx_tile<P, 32, 1, 4, 2>(out);
  // Why 4x1 warps (128 rows x 64 columns): it beat 2x2 (64x128) at 1-64 rows of a LLaMA layer.
  //          warps_m warps_n
  add_dw_tile<P, 4, 1>(out);
}

}  // namespace swiglu::detail::gemv
