// sm_80 tensor-core fused-forward instances for bf16 (tile list in fwd_tiles.cuh).
#include "swiglu/fwd_tiles.cuh"

namespace swiglu::detail {

void register_fwd_sm80_bf16(std::vector<FwdKernel>& out) {
  register_sm80_half_tiles<__nv_bfloat16>(out, DType::bf16);
}

}  // namespace swiglu::detail
