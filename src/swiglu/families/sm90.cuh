// The sm90 family (kernels/fwd_sm90.cuh, kernels/bwd_sm90.cuh): wgmma fed by TMA on compute
// capability 9.0, in builds with sm_90a code; fp16/bf16 in either layout, fp32 as tf32 or 3xTF32
// (the forward, linear layout). The launchers encode the TMA tensor maps on every call (the
// pointers change; a host computation of about a microsecond) through the driver's
// cuTensorMapEncodeTiled, looked up through the runtime so the library does not link libcuda.
// Persistent grids: one block a SM. Why these tiles: docs/kernels-sm90.md.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include <nvtx3/nvtx3.hpp>

#include "kernels/bwd_sm90.cuh"
#include "kernels/fwd_sm90.cuh"
#include "swiglu/launch.cuh"

namespace swiglu::detail::sm90 {

using TensorMapEncodeFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                       const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                       const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                       CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver's cuTensorMapEncodeTiled, or null when the driver does not provide it.
inline TensorMapEncodeFn tensor_map_encoder() {
  static const TensorMapEncodeFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
    const cudaError_t e =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found);
#else
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &found);
#endif
    return e == cudaSuccess && found == cudaDriverEntryPointSuccess ? reinterpret_cast<TensorMapEncodeFn>(f)
                                                                    : nullptr;
  }();
  return fn;
}

// The tensor-map type of T: fp32 for float (which the wgmma reads as tf32).
template <class T>
constexpr CUtensorMapDataType tensor_map_type() {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  else if constexpr (std::is_same_v<T, __half>) return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  else return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
}

// A row-major rows×cols matrix of `type` (8-bit (e4m3 as UINT8), 16-bit, or fp32) with row stride
// `ld` elements, read in boxes of box_rows × 128 bytes with the 128-byte swizzle; reads past an
// edge return zeros.
inline bool encode_matrix(CUtensorMap* map, CUtensorMapDataType type, const void* base, int64_t rows,
                          int64_t cols, int64_t ld, int box_rows) {
  const TensorMapEncodeFn encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  const cuuint32_t elem = type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32 ? 4 : type == CU_TENSOR_MAP_DATA_TYPE_UINT8 ? 1 : 2;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * elem};
  const cuuint32_t box[2] = {128 / elem, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  return encode(map, type, 2, const_cast<void*>(base), dims, strides, box, element_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Multiprocessors of the current device, read once per device (d < 64).
inline int current_sm_count() {
  static std::atomic<int> cached[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (device < 64) {
    if (const int n = cached[device].load(std::memory_order_relaxed); n > 0) return n;
  }
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 0;
  if (device < 64) cached[device].store(n, std::memory_order_relaxed);
  return n;
}

// Clusters of Kernel (Cfg::kCluster blocks each, Cfg's block and shared memory) that the current
// device can hold at once, read once per device (d < 64); 0 when the query fails. Why not
// SMs / cluster size: a cluster must fit in one GPC, and the GPCs' SM counts need not divide by it.
template <class Cfg, auto Kernel>
int max_active_clusters() {
  static std::atomic<int> cached[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (device < 64) {
    if (const int n = cached[device].load(std::memory_order_relaxed); n > 0) return n;
  }
  static_assert(Cfg::kCluster > 1, "max_active_clusters: for clusters of 2 blocks or more");
  const ClusterLaunch launch(dim3(Cfg::kCluster), dim3(Cfg::kThreads), Cfg::kSmemBytes, nullptr, Cfg::kCluster);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, Kernel, &launch.config) != cudaSuccess) {
    (void)cudaGetLastError();  // the query's error is reported as 0 clusters, not left sticky
    return 0;
  }
  if (device < 64 && n > 0) cached[device].store(n, std::memory_order_relaxed);
  return n;
}

// The persistent launch of an sm90 kernel over m_tiles × n_tiles output tiles: one block per SM,
// fewer when there are fewer tiles, in clusters of Cfg::kCluster blocks that each take
// Cfg::kCluster vertically adjacent tiles at a time (sm90::TileWalk).
template <class Cfg, auto Kernel, class... Args>
cudaError_t launch_persistent(int64_t m_tiles, int64_t n_tiles, cudaStream_t stream, const Args&... args) {
  constexpr int C = Cfg::kCluster;
  const int64_t units = (m_tiles + C - 1) / C * n_tiles;
  if (units == 0) return cudaSuccess;
  if (const cudaError_t err = ensure_dynamic_smem<Cfg, Kernel>(Cfg::kSmemBytes); err != cudaSuccess) {
    return err;
  }
  const int sms = current_sm_count();
  if (sms <= 0) return cudaErrorInvalidDevice;
  int slots = sms;
  if constexpr (C > 1) slots = max_active_clusters<Cfg, Kernel>();
  if (slots <= 0) return cudaErrorInvalidConfiguration;
  const ClusterLaunch launch(dim3(static_cast<unsigned>(std::min<int64_t>(units, slots) * C)), dim3(Cfg::kThreads),
                             Cfg::kSmemBytes, stream, C);
  return cudaLaunchKernelEx(&launch.config, Kernel, args...);
}

// The problem is eligible (registry.cpp) and X and W are 16-byte aligned (plan_forward), so
// vec_load holds; anything else is an error here rather than a wrong result.
template <class Cfg>
cudaError_t launch_fwd_sm90(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd_sm90"};
  using T = typename Cfg::Element;
  const int64_t m_tiles = (p.B + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t n_tiles = (p.D + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (m_tiles * n_tiles == 0) return cudaSuccess;
  if (p.vec_load == 0) return cudaErrorInvalidValue;
  constexpr CUtensorMapDataType type = tensor_map_type<T>();
  CUtensorMap x_map, w_map;
  // W: linear W12 (2D rows of I) in boxes of 64 K columns by BN rows; packed Wf (I rows of 2D) in
  // boxes of 64 columns by 64 K rows.
  const bool w_ok = Cfg::kPacked ? encode_matrix(&w_map, type, p.w, p.I, 2 * p.D, 2 * p.D, Cfg::kBlockK)
                                 : encode_matrix(&w_map, type, p.w, 2 * p.D, p.I, p.I, Cfg::kBlockN);
  if (!encode_matrix(&x_map, type, p.x, p.B, p.I, p.ldx, Cfg::kBlockM) || !w_ok) {
    return cudaErrorInvalidValue;
  }
  // The outputs through TMA stores (Cfg::kTmaStore) when vec_store holds, in 64-row × 128-byte
  // boxes: Z, and the G and U halves of H (or dH) as B×D matrices with a row stride of 2D. If a map
  // cannot be encoded the kernel stores from registers; an unused map is a placeholder (X's).
  FwdParams q = p;
  CUtensorMap z_map = x_map, g_map = x_map, u_map = x_map;
  const auto* halves = static_cast<const T*>(p.dh != nullptr ? p.dh : p.saved);  // [G | U] or [dG | dU]
  const bool z_stored = p.dh == nullptr && p.z != nullptr;
  q.tma_store = Cfg::kTmaStore && p.vec_store != 0 && (z_stored || halves != nullptr) &&
                        (!z_stored || encode_matrix(&z_map, type, p.z, p.B, p.D, p.D, 64)) &&
                        (halves == nullptr || (encode_matrix(&g_map, type, halves, p.B, p.D, 2 * p.D, 64) &&
                                               encode_matrix(&u_map, type, halves + p.D, p.B, p.D, 2 * p.D, 64)))
                    ? 1
                    : 0;
  return launch_persistent<Cfg, kernels::swiglu_fwd_sm90<Cfg>>(m_tiles, n_tiles, stream, x_map, w_map, z_map, g_map,
                                                                u_map, q);
}

// The problem is eligible (registry.cpp) and the plan (plan.cpp) sends dH read directly and no
// dbias (it sums dbias from dH itself); split-K only for an unclustered dX, in whole K steps, with
// its zeroed sums and counters (two a tile); anything else is an error here rather than a wrong
// result.
template <class Cfg>
cudaError_t launch_bwd_sm90(const BwdParams& params, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd_sm90"};
  using T = typename Cfg::Element;
  if (params.dh == nullptr || params.dh_out != nullptr || params.dbias != nullptr || params.splits < 1 ||
      params.K <= 0 || (params.c_trans != 0 && !Cfg::kATrans)) {
    return cudaErrorInvalidValue;
  }
  if (params.splits > 1 &&
      (Cfg::kCluster != 1 || params.c_trans != 0 || params.partial == nullptr || params.counters == nullptr ||
       params.k_per_split <= 0 || params.k_per_split % Cfg::kBlockK != 0 ||
       (params.splits - 1) * params.k_per_split >= params.K)) {
    return cudaErrorInvalidValue;
  }
  // The packed dW (M = 2D, N = I, C stored transposed) runs as dWf = Xᵀ·dH: M = I, N = 2D, C
  // row-major, so its stores stay coalesced.
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
  // A: dH in boxes of 64 columns by 128 rows (dX) or 64 (dW); the packed dW's A is X in 64 × 64.
  // B: K rows of N columns in 64 × 64 boxes, or the packed dX's Wf in 64 K columns by BN/kCluster
  // rows (one box for each block of a cluster).
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
  // C through TMA stores when vec_c holds and the map encodes; else from registers (the map is
  // then A's, a placeholder).
  CUtensorMap c_map = a_map;
  // (C += A·B reads C first: from registers only.)
  p.tma_c = p.accumulate == 0 && p.vec_c != 0 && encode_matrix(&c_map, type, p.c, p.M, p.N, p.ldc, 64) ? 1 : 0;
  // Split-K's slices are units of their own: the grid walks n_tiles · splits columns of units.
  return launch_persistent<Cfg, kernels::swiglu_bwd_sm90<Cfg>>(m_tiles, n_tiles * p.splits, stream, a_map, b_map,
                                                               c_map, p);
}

template <Precision P, Layout L, kernels::Schedule S, int BN, int STAGES, int CLUSTER = 1>
void add_forward_tile(KernelTable& out) {
  using Cfg = kernels::Sm90FwdConfig<ElementOf<P>, L, math_of(P), S, BN, STAGES, CLUSTER>;
  out.push_back(forward_entry<Cfg>(Family::wgmma_sm90, P, L, 90, 90, &launch_fwd_sm90<Cfg>));
}

template <Precision P, BwdKind Kind, int BN, int STAGES, int CLUSTER>
void add_backward_kind(KernelTable& out) {
  using Cfg = kernels::Sm90BwdConfig<ElementOf<P>, Kind, BN, STAGES, CLUSTER>;
  out.push_back(backward_entry<Cfg>(Family::wgmma_sm90, P, Kind, 90, 90, &launch_bwd_sm90<Cfg>));
}

// The packed dX reads Wf K-major, which the 200-wide tile does not (kernels/bwd_sm90.cuh).
template <Precision P, int BN, int STAGES, int CLUSTER = 1>
void add_backward_tile(KernelTable& out) {
  add_backward_kind<P, BwdKind::dx_linear, BN, STAGES, CLUSTER>(out);
  if constexpr (BN != 200) add_backward_kind<P, BwdKind::dx_packed, BN, STAGES, CLUSTER>(out);
  add_backward_kind<P, BwdKind::dw, BN, STAGES, CLUSTER>(out);
}

template <Precision P>
void register_forward(KernelTable& out) {
  constexpr kernels::Schedule coop = kernels::Schedule::cooperative;
  constexpr Layout linear = Layout::linear, packed = Layout::packed;
  //                 layout  schedule  BN stages cluster
  if constexpr (P == Precision::f16 || P == Precision::bf16) {
    add_forward_tile<P, linear, coop, 128, 4>(out);
    add_forward_tile<P, linear, coop, 64, 6>(out);
    add_forward_tile<P, linear, kernels::Schedule::pingpong, 64, 7>(out);
    add_forward_tile<P, packed, coop, 128, 4>(out);
    add_forward_tile<P, packed, coop, 64, 6>(out);
    add_forward_tile<P, linear, coop, 128, 4, 2>(out);
    add_forward_tile<P, packed, coop, 128, 4, 2>(out);
  } else if constexpr (P == Precision::tf32) {
    add_forward_tile<P, linear, coop, 128, 4>(out);
    add_forward_tile<P, linear, coop, 64, 6>(out);
  } else {
    static_assert(P == Precision::tf32x3, "sm90: fp32 runs as tf32 or 3xtf32");
    add_forward_tile<P, linear, coop, 64, 3>(out);
  }
}

template <Precision P>
void register_backward(KernelTable& out) {
  static_assert(P == Precision::f16 || P == Precision::bf16, "sm90: the backward GEMMs take fp16 or bf16");
  //                   BN stages cluster
  add_backward_tile<P, 256, 4>(out);
  add_backward_tile<P, 128, 6>(out);
  add_backward_tile<P, 256, 4, 2>(out);
  add_backward_tile<P, 200, 4, 2>(out);
}

}  // namespace swiglu::detail::sm90
