// Backward-GEMM instances: sm80 tensor-core tiles, f16.
#include "swiglu/bwd_launch.cuh"

namespace swiglu::detail {

void register_bwd_sm80_f16(std::vector<BwdKernel>& out) {
  register_bwd_sm80_tiles<__half>(out, DType::f16);
}

}  // namespace swiglu::detail
