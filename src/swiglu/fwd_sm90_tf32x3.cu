// sm_90a (wgmma, TMA, warp-specialised) fused-forward instances for fp32 inputs with 3xTF32 math.
// Listed only in builds that include sm_90a code (SWIGLU_HAVE_SM90A, set by CMakeLists.txt):
// elsewhere the kernel body is empty and must never be chosen.
#include "swiglu/fwd_sm90_launch.cuh"

namespace swiglu::detail {

void register_fwd_sm90_tf32x3([[maybe_unused]] std::vector<FwdKernel>& out) {
#if SWIGLU_HAVE_SM90A
  register_sm90_tf32x3_tiles<float>(out);
#endif
}

}  // namespace swiglu::detail
