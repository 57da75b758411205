// SIMT fused-forward instances for bf16 (tile list in fwd_tiles.cuh).
#include "swiglu/fwd_tiles.cuh"

namespace swiglu::detail {

void register_fwd_simt_bf16(std::vector<FwdKernel>& out) {
  register_simt_tiles<__nv_bfloat16>(out, DType::bf16);
}

}  // namespace swiglu::detail
