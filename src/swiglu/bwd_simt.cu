// Backward-GEMM instances: the SIMT tile in every dtype.
#include "swiglu/bwd_launch.cuh"

namespace swiglu::detail {

void register_bwd_simt(std::vector<BwdKernel>& out) {
  add_bwd_simt<float, 64, 64, 16, 8>(out, DType::f32);
  add_bwd_simt<__half, 64, 64, 16, 8>(out, DType::f16);
  add_bwd_simt<__nv_bfloat16, 64, 64, 16, 8>(out, DType::bf16);
}

}  // namespace swiglu::detail
