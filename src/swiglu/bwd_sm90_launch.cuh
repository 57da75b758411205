// Internal, host side: the launcher of the sm_90a backward GEMMs (kernels/bwd_sm90.cuh) and their
// registry entries, for both weight layouts. The tensor maps are encoded on every call, as the
// forward's are (fwd_sm90_launch.cuh).
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
cudaError_t launch_bwd_sm90(const BwdParams& params, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd_sm90"};
  using T = typename Cfg::Elem;
  if (params.dh == nullptr || params.dh_out != nullptr || params.dbias != nullptr || params.splits != 1 ||
      params.K <= 0 || 2 * params.D > INT32_MAX || params.rows > INT32_MAX || params.N > INT32_MAX ||
      (params.c_trans != 0 && !Cfg::kATrans)) {
    return cudaErrorInvalidValue;
  }
  // The packed dW (api.cpp: M = 2D, N = I, C stored transposed) runs as dWf = Xᵀ·dH: M = I, N = 2D,
  // C row-major, so its stores stay coalesced.
  BwdParams p = params;
  const bool swap = params.c_trans != 0;
  if (swap) {
    p.M = params.N;
    p.N = params.M;
    p.c_trans = 0;
    p.vec_c = reinterpret_cast<uintptr_t>(p.c) % 16 == 0 && p.N % 8 == 0 && p.ldc % 8 == 0;
  }
  const int64_t m_tiles = (p.M + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t n_tiles = (p.N + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (m_tiles * n_tiles == 0) return cudaSuccess;
  constexpr CUtensorMapDataType type = tensor_map_type<T>();
  // A: dH (B rows × 2D) in boxes of 64 columns by 128 rows (dx: 64 of K by the tile's M) or 64 rows
  // (dw: 64 of M by 64 of K); the packed dW's A is X (B rows × I, row stride ldb) in 64 × 64 boxes.
  // B: K rows of N columns (W12, X, or dH for the packed dW) in 64 × 64 boxes, or for the packed dX
  // Wf (I rows × 2D) in boxes of 64 K columns by BN/kCluster rows (each block of a cluster loads
  // one).
  CUtensorMap a_map, b_map;
  bool ok = false;
  if (swap) {
    ok = encode_matrix(&a_map, type, p.b, p.rows, p.M, p.ldb, 64) &&
         encode_matrix(&b_map, type, p.dh, p.rows, 2 * p.D, 2 * p.D, 64);
  } else if (Cfg::kBKMajor) {
    ok = encode_matrix(&a_map, type, p.dh, p.rows, 2 * p.D, 2 * p.D, Cfg::kBlockM) &&
         encode_matrix(&b_map, type, p.b, p.N, p.K, p.ldb, Cfg::kBlockN / Cfg::kCluster);
  } else {
    ok = encode_matrix(&a_map, type, p.dh, p.rows, 2 * p.D, 2 * p.D, Cfg::kATrans ? 64 : Cfg::kBlockM) &&
         encode_matrix(&b_map, type, p.b, p.K, p.N, p.ldb, 64);
  }
  if (!ok) return cudaErrorInvalidValue;
  // C through TMA stores in 64-row × 128-byte boxes when its rows are whole 16-byte units at a
  // 16-byte aligned base (vec_c); otherwise, or if the map cannot be encoded, from registers (the
  // map is then the A map, a placeholder never read).
  CUtensorMap c_map = a_map;
  p.tma_c = p.vec_c != 0 && encode_matrix(&c_map, type, p.c, p.M, p.N, p.ldc, 64) ? 1 : 0;
  return launch_persistent<Cfg, kernels::swiglu_bwd_sm90<Cfg>>(m_tiles, n_tiles, stream, a_map, b_map, c_map, p);
}

// One sm90 tile for the three GEMM kinds (the dW kernel serves both layouts); sm_90a code runs on
// compute capability 9.0 only.
template <class T, int BN, int STAGES, int CLUSTER = 1>
void add_bwd_sm90(std::vector<BwdKernel>& out, DType dtype) {
  using Dx = kernels::Sm90BwdConfig<T, false, BN, STAGES, false, CLUSTER>;
  using DxPacked = kernels::Sm90BwdConfig<T, false, BN, STAGES, true, CLUSTER>;
  using Dw = kernels::Sm90BwdConfig<T, true, BN, STAGES, false, CLUSTER>;
  BwdKernel dx{tile_of<Dx>(Family::wgmma_sm90), dtype, BwdKind::dx_linear, 90, &launch_bwd_sm90<Dx>};
  BwdKernel dxp{tile_of<DxPacked>(Family::wgmma_sm90), dtype, BwdKind::dx_packed, 90, &launch_bwd_sm90<DxPacked>};
  BwdKernel dw{tile_of<Dw>(Family::wgmma_sm90), dtype, BwdKind::dw, 90, &launch_bwd_sm90<Dw>};
  dx.max_cc = dxp.max_cc = dw.max_cc = 90;
  out.push_back(dx);
  out.push_back(dxp);
  out.push_back(dw);
}

// 128x256 (4 stages of 48 KiB), the shape of the forward's fastest tile; 128x128 (6 stages of
// 32 KiB) for problems with too few 128x256 tiles to fill the SMs; 128x256 in clusters of two.
template <class T>
void register_bwd_sm90_half_tiles(std::vector<BwdKernel>& out, DType dtype) {
  add_bwd_sm90<T, 256, 4>(out, dtype);
  add_bwd_sm90<T, 128, 6>(out, dtype);
  add_bwd_sm90<T, 256, 4, 2>(out, dtype);
}

}  // namespace swiglu::detail
