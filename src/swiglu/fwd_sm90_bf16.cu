// sm_90a (wgmma, TMA, warp-specialised) fused-forward instances for bf16. Listed only in builds
// that include sm_90a code (SWIGLU_HAVE_SM90A, set by CMakeLists.txt): elsewhere the kernel body
// is empty and must never be chosen.
#include "swiglu/fwd_sm90_launch.cuh"

namespace swiglu::detail {

void register_fwd_sm90_bf16([[maybe_unused]] std::vector<FwdKernel>& out) {
#if SWIGLU_HAVE_SM90A
  add_sm90<__nv_bfloat16, 128, 4>(out, DType::bf16);
  add_sm90<__nv_bfloat16, 64, 6>(out, DType::bf16);
  add_sm90<__nv_bfloat16, 64, 7, true>(out, DType::bf16);  // ping-pong (experiment: s7 names it apart)
#endif
}

}  // namespace swiglu::detail
