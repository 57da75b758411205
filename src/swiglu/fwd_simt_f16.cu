// SIMT fused-forward instances for fp16 (tile list in fwd_tiles.cuh).
#include "swiglu/fwd_tiles.cuh"

namespace swiglu::detail {

void register_fwd_simt_f16(std::vector<FwdKernel>& out) {
  register_simt_tiles<__half>(out, DType::f16);
}

}  // namespace swiglu::detail
