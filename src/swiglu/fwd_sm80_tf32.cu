// sm_80 tensor-core fused-forward instances for fp32 inputs with TF32 math (kernels/fwd_sm80.cuh,
// mma.sync m16n8k8.tf32, operands rounded with cvt.rna.tf32.f32, fp32 accumulation), both layouts.
// Registered as DType::f32 + Math::tf32.
//
// Tiles (fp32 takes twice the shared memory of fp16 per element; both stay under sm_86's 99 KB):
//   128x64x16 s4, 2x2 warps (64x32): large batches; 80 KB shared.
//   64x64x32  s3, 2x2 warps (32x32): medium and small batches; 81 KB shared.
#include "kernels/fwd_sm80.cuh"
#include "swiglu/fwd_launch.cuh"

namespace swiglu::detail {
namespace {

template <bool Packed, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add(std::vector<FwdKernel>& out) {
  using Cfg = kernels::Sm80FwdConfig<float, Packed, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  out.push_back(make_fwd_kernel<Cfg, kernels::swiglu_fwd_sm80<Cfg>>(
      Family::mma_sm80, 80, DType::f32, Packed ? Layout::packed : Layout::linear, Math::tf32));
}

template <bool Packed>
void add_layout(std::vector<FwdKernel>& out) {
  add<Packed, 128, 64, 16, 4, 2, 2>(out);
  add<Packed, 64, 64, 32, 3, 2, 2>(out);
}

}  // namespace

void register_fwd_sm80_tf32(std::vector<FwdKernel>& out) {
  add_layout<false>(out);
  add_layout<true>(out);
}

}  // namespace swiglu::detail
