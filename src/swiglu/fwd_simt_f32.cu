// SIMT fused-forward instances for fp32 (tile list in fwd_tiles.cuh).
#include "swiglu/fwd_tiles.cuh"

namespace swiglu::detail {

void register_fwd_simt_f32(std::vector<FwdKernel>& out) {
  register_simt_tiles<float>(out, DType::f32);
}

}  // namespace swiglu::detail
