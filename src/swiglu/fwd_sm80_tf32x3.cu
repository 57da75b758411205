// sm_80 tensor-core fused-forward instances for fp32 inputs with 3xTF32 math (tile list in
// fwd_tiles.cuh).
#include "swiglu/fwd_tiles.cuh"

namespace swiglu::detail {

void register_fwd_sm80_tf32x3(std::vector<FwdKernel>& out) {
  register_sm80_tf32x3_tiles<float>(out);
}

}  // namespace swiglu::detail
