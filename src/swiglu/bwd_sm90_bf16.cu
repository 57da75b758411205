// sm_90a (wgmma, TMA, warp-specialised) backward-GEMM instances for bf16. Listed only in builds that
// include sm_90a code (SWIGLU_HAVE_SM90A, set by CMakeLists.txt): elsewhere the kernel body is
// empty and must never be chosen.
#include "swiglu/bwd_sm90_launch.cuh"

namespace swiglu::detail {

void register_bwd_sm90_bf16([[maybe_unused]] std::vector<BwdKernel>& out) {
#if SWIGLU_HAVE_SM90A
  register_bwd_sm90_half_tiles<__nv_bfloat16>(out, DType::bf16);
#endif
}

}  // namespace swiglu::detail
