// sm_80 tensor-core fused-forward instances for fp16 (kernels/fwd_sm80.cuh), both weight layouts.
//
// Tiles (BMxBNxBK, stages, warps as WARPS_M x WARPS_N; each warp owns WM x WN of G and of U):
//   128x128x32 s3, 2x4 warps (64x32): large batches; 92 KB shared, 1 block per SM on sm_80.
//   128x64x32  s4, 2x2 warps (64x32): large batches with fewer output columns per block.
//   64x64x32   s4, 2x2 warps (32x32): medium batches, or many small blocks when D is small.
//   32x64x64   s3, 1x4 warps (32x16): small batches (17..32 rows, or up to 64 when D is small).
//   16x64x64   s3, 1x4 warps (16x16): decode (B <= 16). Streaming W bounds this regime: BK 64
//                                     moves more bytes per barrier, and 3 stages (62 KB) leave
//                                     room for 2-3 blocks per SM, which measured better than 4.
//   16x32x64   s6, 1x2 warps (16x16): decode with small D, where 16x64 gives too few blocks to
//                                     keep enough W bytes in flight (D = 512: 16 blocks, not 8).
#include "kernels/fwd_sm80.cuh"
#include "swiglu/fwd_launch.cuh"

namespace swiglu::detail {
namespace {

template <bool Packed, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add(std::vector<FwdKernel>& out) {
  using Cfg = kernels::Sm80FwdConfig<__half, Packed, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  out.push_back(make_fwd_kernel<Cfg, kernels::swiglu_fwd_sm80<Cfg>>(
      Family::mma_sm80, 80, DType::f16, Packed ? Layout::packed : Layout::linear, Math::exact));
}

template <bool Packed>
void add_layout(std::vector<FwdKernel>& out) {
  add<Packed, 128, 128, 32, 3, 2, 4>(out);
  add<Packed, 128, 64, 32, 4, 2, 2>(out);
  add<Packed, 64, 64, 32, 4, 2, 2>(out);
  add<Packed, 32, 64, 64, 3, 1, 4>(out);
  add<Packed, 16, 64, 64, 3, 1, 4>(out);
  add<Packed, 16, 32, 64, 6, 1, 2>(out);
}

}  // namespace

void register_fwd_sm80_f16(std::vector<FwdKernel>& out) {
  add_layout<false>(out);
  add_layout<true>(out);
}

}  // namespace swiglu::detail
