// The sm80 family (kernels/fwd_sm80.cuh, kernels/bwd_sm80.cuh): mma.sync tensor cores on sm_80+,
// fp16/bf16, and fp32 with tf32 or 3xTF32 math (the forward). Launched as a grid of output tiles;
// why these tiles: docs/kernels-sm80.md.
#pragma once

#include "kernels/bwd_sm80.cuh"
#include "kernels/fwd_sm80.cuh"
#include "swiglu/launch.cuh"

namespace swiglu::detail::sm80 {

template <Precision P, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add_forward_tile(KernelTable& out) {
  using Linear = kernels::Sm80FwdConfig<ElementOf<P>, Layout::linear, math_of(P), BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  using Packed = kernels::Sm80FwdConfig<ElementOf<P>, Layout::packed, math_of(P), BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  out.push_back(forward_entry<Linear>(Family::mma_sm80, P, Layout::linear, 80, kAnyNewer,
                                      &launch_forward_grid<Linear, kernels::swiglu_fwd_sm80<Linear>>));
  out.push_back(forward_entry<Packed>(Family::mma_sm80, P, Layout::packed, 80, kAnyNewer,
                                      &launch_forward_grid<Packed, kernels::swiglu_fwd_sm80<Packed>>));
}

template <Precision P, BwdKind Kind, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add_backward_kind(KernelTable& out) {
  using Cfg = kernels::Sm80BwdConfig<ElementOf<P>, Kind, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  out.push_back(backward_entry<Cfg>(Family::mma_sm80, P, Kind, 80, kAnyNewer,
                                    &launch_backward_grid<Cfg, kernels::swiglu_bwd_sm80<Cfg>>));
}

template <Precision P, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add_backward_tile(KernelTable& out) {
  add_backward_kind<P, BwdKind::dx_linear, BM, BN, BK, STAGES, WARPS_M, WARPS_N>(out);
  add_backward_kind<P, BwdKind::dx_packed, BM, BN, BK, STAGES, WARPS_M, WARPS_N>(out);
  add_backward_kind<P, BwdKind::dw, BM, BN, BK, STAGES, WARPS_M, WARPS_N>(out);
}

template <Precision P>
void register_forward(KernelTable& out) {
  //                                      BM   BN  BK stages warps_m warps_n
  if constexpr (P == Precision::f16 || P == Precision::bf16) {
    add_forward_tile<P, 128, 128, 32, 3, 2, 4>(out);
    add_forward_tile<P, 128, 64, 32, 4, 2, 2>(out);
    add_forward_tile<P, 128, 64, 32, 4, 2, 4>(out);
    add_forward_tile<P, 64, 64, 32, 4, 2, 2>(out);
    add_forward_tile<P, 64, 64, 32, 4, 2, 4>(out);
    add_forward_tile<P, 64, 64, 64, 3, 2, 2>(out);
    add_forward_tile<P, 32, 64, 64, 3, 1, 4>(out);
    add_forward_tile<P, 16, 64, 64, 3, 1, 4>(out);
    add_forward_tile<P, 16, 32, 64, 6, 1, 2>(out);
  } else if constexpr (P == Precision::tf32) {
    add_forward_tile<P, 128, 64, 16, 4, 2, 2>(out);
    add_forward_tile<P, 64, 64, 32, 3, 2, 2>(out);
  } else {
    static_assert(P == Precision::tf32x3, "sm80: no exact fp32 forward (SIMT runs it)");
    add_forward_tile<P, 128, 64, 16, 4, 2, 4>(out);
    add_forward_tile<P, 64, 64, 32, 3, 2, 2>(out);
    add_forward_tile<P, 16, 64, 32, 3, 1, 4>(out);
  }
}

template <Precision P>
void register_backward(KernelTable& out) {
  static_assert(P == Precision::f16 || P == Precision::bf16, "sm80: the backward GEMMs take fp16 or bf16");
  //                    BM   BN  BK stages warps_m warps_n
  add_backward_tile<P, 128, 128, 32, 3, 2, 2>(out);
  add_backward_tile<P, 128, 64, 32, 4, 2, 2>(out);
  add_backward_tile<P, 64, 128, 32, 4, 2, 2>(out);
  add_backward_tile<P, 64, 64, 32, 4, 2, 2>(out);
}

}  // namespace swiglu::detail::sm80
