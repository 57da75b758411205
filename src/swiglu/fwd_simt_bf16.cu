// SIMT fused-forward instances for bf16 (kernels/fwd_simt.cuh), both weight layouts, Math::exact.
//
// Tiles: 128x64 for large batches, 64x64 as the general default, 16x64 for small batches (B <= 16
// wastes little of its M tile and still gives D/64 blocks; BK 32 keeps more of W in flight).
// Double-buffered (stages 2).
#include "kernels/fwd_simt.cuh"
#include "swiglu/fwd_launch.cuh"

namespace swiglu::detail {
namespace {

template <bool Packed, int BM, int BN, int BK, int WARPS>
void add(std::vector<FwdKernel>& out) {
  using Cfg = kernels::SimtFwdConfig<__nv_bfloat16, Packed, BM, BN, BK, WARPS>;
  out.push_back(make_fwd_kernel<Cfg, kernels::swiglu_fwd_simt<Cfg>>(
      Family::simt, 70, DType::bf16, Packed ? Layout::packed : Layout::linear, Math::exact));
}

template <bool Packed>
void add_layout(std::vector<FwdKernel>& out) {
  add<Packed, 128, 64, 16, 8>(out);
  add<Packed, 64, 64, 16, 8>(out);
  add<Packed, 16, 64, 32, 4>(out);
}

}  // namespace

void register_fwd_simt_bf16(std::vector<FwdKernel>& out) {
  add_layout<false>(out);
  add_layout<true>(out);
}

}  // namespace swiglu::detail
