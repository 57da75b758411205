// The gemv family (kernels/fwd_gemv.cuh): the forward for a few rows of X, every dtype, the linear
// layout, sm_70+. A 1-D grid of blocks, row block fastest; tile choice in docs/kernels-gemv.md.
#pragma once

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

}  // namespace swiglu::detail::gemv
