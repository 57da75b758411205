// The SIMT family (kernels/fwd_simt.cuh, kernels/bwd_simt.cuh): every dtype on sm_70+, the exact
// fp32 path everywhere. Launched as a grid of output tiles; tile choice in docs/kernels-simt.md.
#pragma once

#include "kernels/bwd_simt.cuh"
#include "kernels/fwd_simt.cuh"
#include "swiglu/launch.cuh"

namespace swiglu::detail::simt {

template <Precision P, int BM, int BN, int BK, int WARPS>
void add_forward_tile(KernelTable& out) {
  using Linear = kernels::SimtFwdConfig<ElementOf<P>, Layout::linear, BM, BN, BK, WARPS>;
  using Packed = kernels::SimtFwdConfig<ElementOf<P>, Layout::packed, BM, BN, BK, WARPS>;
  out.push_back(forward_entry<Linear>(Family::simt, P, Layout::linear, 70, kAnyNewer,
                                      &launch_forward_grid<Linear, kernels::swiglu_fwd_simt<Linear>>));
  out.push_back(forward_entry<Packed>(Family::simt, P, Layout::packed, 70, kAnyNewer,
                                      &launch_forward_grid<Packed, kernels::swiglu_fwd_simt<Packed>>));
}

template <Precision P, BwdKind Kind, int BM, int BN, int BK, int WARPS>
void add_backward_kind(KernelTable& out) {
  using Cfg = kernels::SimtBwdConfig<ElementOf<P>, Kind, BM, BN, BK, WARPS>;
  out.push_back(backward_entry<Cfg>(Family::simt, P, Kind, 70, kAnyNewer,
                                    &launch_backward_grid<Cfg, kernels::swiglu_bwd_simt<Cfg>>));
}

template <Precision P, int BM, int BN, int BK, int WARPS>
void add_backward_tile(KernelTable& out) {
  add_backward_kind<P, BwdKind::dx_linear, BM, BN, BK, WARPS>(out);
  add_backward_kind<P, BwdKind::dx_packed, BM, BN, BK, WARPS>(out);
  add_backward_kind<P, BwdKind::dw, BM, BN, BK, WARPS>(out);
}

template <Precision P>
void register_forward(KernelTable& out) {
  static_assert(P == Precision::f32 || P == Precision::f16 || P == Precision::bf16, "simt: exact math only");
  //                   BM  BN  BK  warps
  add_forward_tile<P, 128, 64, 16, 8>(out);
  add_forward_tile<P, 64, 64, 16, 8>(out);
  add_forward_tile<P, 16, 64, 32, 4>(out);
}

template <Precision P>
void register_backward(KernelTable& out) {
  static_assert(P == Precision::f32 || P == Precision::f16 || P == Precision::bf16, "simt: exact math only");
  //                    BM   BN  BK  warps
  add_backward_tile<P, 64, 64, 16, 8>(out);
  if constexpr (P == Precision::f32) {
    // The exact fp32 path's larger tiles (8×8 and 8×4 outputs a thread); fp16/bf16 run SIMT only
    // below sm_80, where nothing has measured them.
    add_backward_tile<P, 128, 128, 8, 8>(out);
    add_backward_tile<P, 128, 64, 16, 8>(out);
  }
}

}  // namespace swiglu::detail::simt
