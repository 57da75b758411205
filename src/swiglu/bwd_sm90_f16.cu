// sm_90a (wgmma, TMA, warp-specialised) backward-GEMM instances for f16. Listed only in builds that
// include sm_90a code (SWIGLU_HAVE_SM90A, set by CMakeLists.txt): elsewhere the kernel body is
// empty and must never be chosen.
#include "swiglu/bwd_sm90_launch.cuh"

namespace swiglu::detail {

void register_bwd_sm90_f16([[maybe_unused]] std::vector<BwdKernel>& out) {
#if SWIGLU_HAVE_SM90A
  register_bwd_sm90_half_tiles<__half>(out, DType::f16);
#endif
}

}  // namespace swiglu::detail
