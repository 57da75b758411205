// Internal, host side: the launcher of the sm_90a backward GEMMs (kernels/bwd_sm90.cuh) and their
// registry entries, for the linear layout (the packed layout's dX and transposed dW stay on the
// sm80 kernels). The tensor maps are encoded on every call, as the forward's are
// (fwd_sm90_launch.cuh).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <nvtx3/nvtx3.hpp>

#include "kernels/bwd_sm90.cuh"
#include "swiglu/fwd_sm90_launch.cuh"  // encode_matrix, current_sm_count, ensure_dynamic_smem

namespace swiglu::detail {

// The persistent launch: one block per SM (fewer when there are fewer tiles). The caller (api.cpp)
// sends dH read directly (dh set, no prologue), no split-K and no dbias (it sums dbias from dH
// itself); anything else is an error here rather than a wrong result.
template <class Cfg>
cudaError_t launch_bwd_sm90(const BwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd_sm90"};
  using T = typename Cfg::Elem;
  const int64_t tiles = ((p.M + Cfg::kBlockM - 1) / Cfg::kBlockM) * ((p.N + Cfg::kBlockN - 1) / Cfg::kBlockN);
  if (tiles == 0) return cudaSuccess;
  if (p.dh == nullptr || p.dh_out != nullptr || p.dbias != nullptr || p.c_trans != 0 || p.splits != 1 ||
      p.K <= 0 || 2 * p.D > INT32_MAX || p.rows > INT32_MAX || p.N > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  constexpr CUtensorMapDataType type = std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                        : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  // A: dH (rows × 2D) in boxes of 64 columns by 128 rows (dx: 64 of K by the tile's M) or 64 rows
  // (dw: 64 of M by 64 of K). B: K rows of N columns (W12 or X) in 64 × 64 boxes.
  CUtensorMap a_map, b_map;
  if (!encode_matrix(&a_map, type, p.dh, p.rows, 2 * p.D, 2 * p.D, Cfg::kATrans ? 64 : Cfg::kBlockM) ||
      !encode_matrix(&b_map, type, p.b, p.K, p.N, p.ldb, 64)) {
    return cudaErrorInvalidValue;
  }
  constexpr auto kernel = kernels::swiglu_bwd_sm90<Cfg>;
  if (const cudaError_t err = ensure_dynamic_smem<Cfg, kernel>(Cfg::kSmemBytes); err != cudaSuccess) {
    return err;
  }
  const int sms = current_sm_count();
  if (sms <= 0) return cudaErrorInvalidDevice;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, sms));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(a_map, b_map, p);
  return cudaGetLastError();
}

// One sm90 tile for the dX (linear W12) and dW GEMMs; sm_90a code runs on compute capability 9.0
// only.
template <class T, int BN, int STAGES>
void add_bwd_sm90(std::vector<BwdKernel>& out, DType dtype) {
  using Dx = kernels::Sm90BwdConfig<T, false, BN, STAGES>;
  using Dw = kernels::Sm90BwdConfig<T, true, BN, STAGES>;
  BwdKernel dx{tile_of<Dx>(Family::wgmma_sm90), dtype, BwdKind::dx_linear, 90, &launch_bwd_sm90<Dx>};
  BwdKernel dw{tile_of<Dw>(Family::wgmma_sm90), dtype, BwdKind::dw, 90, &launch_bwd_sm90<Dw>};
  dx.max_cc = dw.max_cc = 90;
  out.push_back(dx);
  out.push_back(dw);
}

// 128x256 (4 stages of 48 KiB), the shape of the forward's fastest tile; 128x128 (6 stages of
// 32 KiB) for problems with too few 128x256 tiles to fill the SMs.
template <class T>
void register_bwd_sm90_half_tiles(std::vector<BwdKernel>& out, DType dtype) {
  add_bwd_sm90<T, 256, 4>(out, dtype);
  add_bwd_sm90<T, 128, 6>(out, dtype);
}

}  // namespace swiglu::detail
