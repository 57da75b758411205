// Internal, host side: the launcher template behind every backward-GEMM instance and the tile lists
// of kernels/bwd_sm80.cuh and kernels/bwd_simt.cuh, instantiated per dtype by the bwd_*.cu files.
//
// sm80 tiles (fp16, bf16), each for dx with linear W, dx with packed W, and dw, all 2x2 warps:
//   128x128x32 s3 (warp tile 64x64): large M and N. A 64x64 warp tile loads 4 A and 4 B
//                                    fragments per 32 mma, the ratio of the forward's 64x32 tile
//                                    (which feeds G and U from one A fragment).
//   128x64x32  s4 (64x32), 64x128x32 s4 (32x64): the middle ground; 64x128 halves the columns of
//                                    blocks that recompute the gate in the prologue when I is small.
//   64x64x32   s4 (32x32): small problems, where the grid needs more blocks.
// SIMT tile (every dtype): 64x64x16 with 8 warps, each thread owning 2×4 outputs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include <nvtx3/nvtx3.hpp>

#include "kernels/bwd_simt.cuh"
#include "kernels/bwd_sm80.cuh"
#include "swiglu/fwd_launch.cuh"  // launch_tiles, tile_of
#include "swiglu/registry.hpp"

namespace swiglu::detail {

// The backward GEMMs: C is M×N, split-K slices on gridDim.z.
template <class Cfg, auto Kernel>
cudaError_t launch_bwd(const BwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd"};
  return launch_tiles<Cfg, Kernel>(p, p.M, p.N, p.splits, stream);
}

template <class Cfg, auto Kernel>
BwdKernel make_bwd_kernel(Family family, int min_cc, DType dtype, BwdKind kind) {
  return BwdKernel{tile_of<Cfg>(family), dtype, kind, min_cc, &launch_bwd<Cfg, Kernel>};
}

// One sm80 tile for the three GEMM kinds.
template <class T, int BM, int BN, int BK, int STAGES, int WARPS_M, int WARPS_N>
void add_bwd_sm80(std::vector<BwdKernel>& out, DType dtype) {
  using DxLinear = kernels::Sm80BwdConfig<T, false, true, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  using DxPacked = kernels::Sm80BwdConfig<T, false, false, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  using Dw = kernels::Sm80BwdConfig<T, true, true, BM, BN, BK, STAGES, WARPS_M, WARPS_N>;
  out.push_back(make_bwd_kernel<DxLinear, kernels::swiglu_bwd_sm80<DxLinear>>(
      Family::mma_sm80, 80, dtype, BwdKind::dx_linear));
  out.push_back(make_bwd_kernel<DxPacked, kernels::swiglu_bwd_sm80<DxPacked>>(
      Family::mma_sm80, 80, dtype, BwdKind::dx_packed));
  out.push_back(make_bwd_kernel<Dw, kernels::swiglu_bwd_sm80<Dw>>(Family::mma_sm80, 80, dtype,
                                                                  BwdKind::dw));
}

template <class T>
void register_bwd_sm80_tiles(std::vector<BwdKernel>& out, DType dtype) {
  add_bwd_sm80<T, 128, 128, 32, 3, 2, 2>(out, dtype);
  add_bwd_sm80<T, 128, 64, 32, 4, 2, 2>(out, dtype);
  add_bwd_sm80<T, 64, 128, 32, 4, 2, 2>(out, dtype);
  add_bwd_sm80<T, 64, 64, 32, 4, 2, 2>(out, dtype);
}

template <class T, int BM, int BN, int BK, int WARPS>
void add_bwd_simt(std::vector<BwdKernel>& out, DType dtype) {
  using DxLinear = kernels::SimtBwdConfig<T, false, true, BM, BN, BK, WARPS>;
  using DxPacked = kernels::SimtBwdConfig<T, false, false, BM, BN, BK, WARPS>;
  using Dw = kernels::SimtBwdConfig<T, true, true, BM, BN, BK, WARPS>;
  out.push_back(make_bwd_kernel<DxLinear, kernels::swiglu_bwd_simt<DxLinear>>(
      Family::simt, 70, dtype, BwdKind::dx_linear));
  out.push_back(make_bwd_kernel<DxPacked, kernels::swiglu_bwd_simt<DxPacked>>(
      Family::simt, 70, dtype, BwdKind::dx_packed));
  out.push_back(
      make_bwd_kernel<Dw, kernels::swiglu_bwd_simt<Dw>>(Family::simt, 70, dtype, BwdKind::dw));
}

}  // namespace swiglu::detail
