// Backward-GEMM instances: sm80 tensor-core tiles, bf16.
#include "swiglu/bwd_launch.cuh"

namespace swiglu::detail {

void register_bwd_sm80_bf16(std::vector<BwdKernel>& out) {
  register_bwd_sm80_tiles<__nv_bfloat16>(out, DType::bf16);
}

}  // namespace swiglu::detail
