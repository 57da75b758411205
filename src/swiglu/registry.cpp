// The table of compiled forward instances, filled once from every instance file.
#include "swiglu/registry.hpp"

namespace swiglu::detail {

const std::vector<FwdKernel>& fwd_kernels() {
  // Why: a function-local static is built once and thread-safely on first use, so launches from
  // several host threads never see a half-filled table.
  static const std::vector<FwdKernel> table = [] {
    std::vector<FwdKernel> t;
    register_fwd_simt_f32(t);
    register_fwd_simt_f16(t);
    register_fwd_simt_bf16(t);
    register_fwd_sm80_f16(t);
    register_fwd_sm80_bf16(t);
    register_fwd_sm80_tf32(t);
    register_fwd_sm80_tf32x3(t);
    register_fwd_sm90_f16(t);
    register_fwd_sm90_bf16(t);
    register_fwd_sm90_tf32(t);
    register_fwd_sm90_tf32x3(t);
    return t;
  }();
  return table;
}

const std::vector<BwdKernel>& bwd_kernels() {
  static const std::vector<BwdKernel> table = [] {
    std::vector<BwdKernel> t;
    register_bwd_simt(t);
    register_bwd_sm80_f16(t);
    register_bwd_sm80_bf16(t);
    register_bwd_sm90_f16(t);
    register_bwd_sm90_bf16(t);
    return t;
  }();
  return table;
}

}  // namespace swiglu::detail
