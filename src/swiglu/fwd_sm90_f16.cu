// sm_90a (wgmma, TMA, warp-specialised) fused-forward instances for f16. Listed only in builds
// that include sm_90a code (SWIGLU_HAVE_SM90A, set by CMakeLists.txt): elsewhere the kernel body
// is empty and must never be chosen.
#include "swiglu/fwd_sm90_launch.cuh"

namespace swiglu::detail {

void register_fwd_sm90_f16([[maybe_unused]] std::vector<FwdKernel>& out) {
#if SWIGLU_HAVE_SM90A
  add_sm90<__half, 128, 4>(out, DType::f16);
  add_sm90<__half, 64, 6>(out, DType::f16);
  add_sm90<__half, 64, 7, true>(out, DType::f16);  // ping-pong (experiment: s7 names it apart)
#endif
}

}  // namespace swiglu::detail
