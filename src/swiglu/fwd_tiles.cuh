// Internal, host side: the compiled tile lists of the fused forward, written once and instantiated
// per dtype by the fwd_*.cu files (one file per family and dtype, so the build parallelises).
//
// sm80 tiles for fp16 and bf16 (BMxBNxBK, stages, warps as WARPS_M x WARPS_N; each warp owns
// WM x WN of G and of U):
//   128x128x32 s3, 2x4 warps (64x32): large batches; 92 KB shared, 1 block per SM on sm_80.
//   128x64x32  s4, 2x2 warps (64x32): large batches with fewer output columns per block.
//   64x64x32   s4, 2x2 warps (32x32): medium batches, or many small blocks when D is small.
//   32x64x64   s3, 1x4 warps (32x16): small batches (17..32 rows, or up to 64 when D is small).
//   16x64x64   s3, 1x4 warps (16x16): decode (B <= 16). Streaming W bounds this regime: BK 64
//                                     moves more bytes per barrier, and 3 stages (62 KB) leave
//                                     room for 2-3 blocks per SM, which measured better than 4.
//   16x32x64   s6, 1x2 warps (16x16): decode with small D, where 16x64 gives too few blocks to
//                                     keep enough W bytes in flight (D = 512: 16 blocks, not 8).
// sm80 tiles for fp32 with tf32 math (fp32 takes twice the shared memory per element; both stay
// under sm_86's 99 KB): 128x64x16 s4 (80 KB) for large batches, 64x64x32 s3 (81 KB) otherwise.
// sm80 tiles for fp32 with 3xTF32 math (three mma per product and twice the fragments in registers,
// so the register count decides; ptxas -v, nvcc 13.0, sm_80 / sm_90a, linear / packed, no spills):
//   128x64x16 s4, 2x4 warps (64x16): large batches; 8 warps share the tripled mma work, and the
//                                    warp tile's 64 accumulators leave room for the split
//                                    fragments (145-159 registers; the 4-warp 128x64 takes 219-242).
//   64x64x32  s3, 2x2 warps (32x32): medium batches, tf32's tile (142-164 registers).
//   16x64x32  s3, 1x4 warps (16x16): small batches and decode, where a 64-row tile would spend
//                                    three mma on rows that do not exist (76-80 registers, 62 KB).
// SIMT tiles, every dtype (double-buffered, stages 2): 128x64 for large batches, 64x64 as the
// general default, 16x64 for small batches (little of its M tile is wasted, it still gives D/64
// blocks, and BK 32 keeps more of W in flight).
#pragma once

#include <type_traits>
#include <vector>

#include "kernels/fwd_simt.cuh"
#include "kernels/fwd_sm80.cuh"
#include "swiglu/fwd_launch.cuh"

namespace swiglu::detail {

// One sm80 tile in both weight layouts (Tf32x3: the 3xTF32 kernel, registered as Math::tf32x3).
template <class T, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N, bool Tf32x3 = false>
void add_sm80(std::vector<FwdKernel>& out, DType dtype, Math math) {
  using Linear =
      kernels::Sm80FwdConfig<T, false, BM, BN, BK, STAGES, WARPS_M, WARPS_N, false, Tf32x3>;
  using Packed =
      kernels::Sm80FwdConfig<T, true, BM, BN, BK, STAGES, WARPS_M, WARPS_N, false, Tf32x3>;
  out.push_back(make_fwd_kernel<Linear, kernels::swiglu_fwd_sm80<Linear>>(
      Family::mma_sm80, 80, dtype, Layout::linear, math));
  out.push_back(make_fwd_kernel<Packed, kernels::swiglu_fwd_sm80<Packed>>(
      Family::mma_sm80, 80, dtype, Layout::packed, math));
}

// One SIMT tile in both weight layouts.
template <class T, int BM, int BN, int BK, int WARPS>
void add_simt(std::vector<FwdKernel>& out, DType dtype) {
  using Linear = kernels::SimtFwdConfig<T, false, BM, BN, BK, WARPS>;
  using Packed = kernels::SimtFwdConfig<T, true, BM, BN, BK, WARPS>;
  out.push_back(make_fwd_kernel<Linear, kernels::swiglu_fwd_simt<Linear>>(
      Family::simt, 70, dtype, Layout::linear, Math::exact));
  out.push_back(make_fwd_kernel<Packed, kernels::swiglu_fwd_simt<Packed>>(
      Family::simt, 70, dtype, Layout::packed, Math::exact));
}

template <class T>
void register_sm80_half_tiles(std::vector<FwdKernel>& out, DType dtype) {
  add_sm80<T, 128, 128, 32, 3, 2, 4>(out, dtype, Math::exact);
  add_sm80<T, 128, 64, 32, 4, 2, 2>(out, dtype, Math::exact);
  add_sm80<T, 128, 64, 32, 4, 2, 4>(out, dtype, Math::exact);
  add_sm80<T, 64, 64, 32, 4, 2, 2>(out, dtype, Math::exact);
  add_sm80<T, 64, 64, 32, 4, 2, 4>(out, dtype, Math::exact);
  add_sm80<T, 64, 64, 64, 3, 2, 2>(out, dtype, Math::exact);
  add_sm80<T, 32, 64, 64, 3, 1, 4>(out, dtype, Math::exact);
  add_sm80<T, 16, 64, 64, 3, 1, 4>(out, dtype, Math::exact);
  add_sm80<T, 16, 32, 64, 6, 1, 2>(out, dtype, Math::exact);
}

// Why templates on T (always float): a plain inline function would instantiate its kernels in every
// file that includes this header, and every fwd_*.cu file would compile the fp32 kernels again.
template <class T>
void register_sm80_tf32_tiles(std::vector<FwdKernel>& out) {
  static_assert(std::is_same_v<T, float>, "tf32 tiles take fp32 inputs");
  add_sm80<T, 128, 64, 16, 4, 2, 2>(out, DType::f32, Math::tf32);
  add_sm80<T, 64, 64, 32, 3, 2, 2>(out, DType::f32, Math::tf32);
}

template <class T>
void register_sm80_tf32x3_tiles(std::vector<FwdKernel>& out) {
  static_assert(std::is_same_v<T, float>, "3xTF32 tiles take fp32 inputs");
  add_sm80<T, 128, 64, 16, 4, 2, 4, true>(out, DType::f32, Math::tf32x3);
  add_sm80<T, 64, 64, 32, 3, 2, 2, true>(out, DType::f32, Math::tf32x3);
  add_sm80<T, 16, 64, 32, 3, 1, 4, true>(out, DType::f32, Math::tf32x3);
}

template <class T>
void register_simt_tiles(std::vector<FwdKernel>& out, DType dtype) {
  add_simt<T, 128, 64, 16, 8>(out, dtype);
  add_simt<T, 64, 64, 16, 8>(out, dtype);
  add_simt<T, 16, 64, 32, 4>(out, dtype);
}

}  // namespace swiglu::detail
