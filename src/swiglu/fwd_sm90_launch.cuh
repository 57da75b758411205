// Internal, host side: the launcher of the sm_90a forward (kernels/fwd_sm90.cuh) and its registry
// entries. The kernel reads X and W12 through TMA tensor maps, encoded here on every call (the
// pointers change from call to call; encoding is a host-only computation of about a microsecond).
// cuTensorMapEncodeTiled is a driver function: it is looked up once through the runtime, so the
// library does not link against libcuda.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <nvtx3/nvtx3.hpp>

#include "kernels/fwd_sm90.cuh"
#include "swiglu/fwd_launch.cuh"

namespace swiglu::detail {

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

// A row-major rows×cols matrix of `type` (16-bit, or fp32) with row stride `ld` elements, read in
// boxes of box_rows × 128 bytes with the 128-byte swizzle; reads past an edge return zeros.
inline bool encode_matrix(CUtensorMap* map, CUtensorMapDataType type, const void* base, int64_t rows,
                          int64_t cols, int64_t ld, int box_rows) {
  const TensorMapEncodeFn encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  const cuuint32_t elem = type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32 ? 4 : 2;
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
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = Cfg::kCluster;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  config.gridDim = dim3(Cfg::kCluster, 1, 1);
  config.blockDim = dim3(Cfg::kThreads, 1, 1);
  config.dynamicSmemBytes = Cfg::kSmemBytes;
  config.attrs = &cluster;
  config.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, Kernel, &config) != cudaSuccess) {
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
  const int slots = C == 1 ? sms : max_active_clusters<Cfg, Kernel>();
  if (slots <= 0) return cudaErrorInvalidConfiguration;
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = C;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  config.gridDim = dim3(static_cast<unsigned>(std::min<int64_t>(units, slots) * C), 1, 1);
  config.blockDim = dim3(Cfg::kThreads, 1, 1);
  config.dynamicSmemBytes = Cfg::kSmemBytes;
  config.stream = stream;
  config.attrs = &cluster;
  config.numAttrs = C > 1 ? 1 : 0;
  return cudaLaunchKernelEx(&config, Kernel, args...);
}

// The caller (api.cpp) sends only TMA-addressable operands (FwdParams.vec_load: X and W 16-byte
// aligned, X rows and, for the packed layout, Wf rows of whole 16-byte units); anything else is an
// error here rather than a wrong result.
template <class Cfg>
cudaError_t launch_fwd_sm90(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd_sm90"};
  using T = typename Cfg::Elem;
  const int64_t m_tiles = (p.B + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t n_tiles = (p.D + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (m_tiles * n_tiles == 0) return cudaSuccess;
  if (p.vec_load == 0 || 2 * p.D > INT32_MAX || p.B > INT32_MAX) return cudaErrorInvalidValue;
  constexpr CUtensorMapDataType type = tensor_map_type<T>();
  CUtensorMap x_map, w_map;
  // W: linear W12 (2D rows of I) in boxes of 64 K columns by BN rows; packed Wf (I rows of 2D) in
  // boxes of 64 columns by 64 K rows.
  const bool w_ok = Cfg::kPacked ? encode_matrix(&w_map, type, p.w, p.I, 2 * p.D, 2 * p.D, Cfg::kBlockK)
                                 : encode_matrix(&w_map, type, p.w, 2 * p.D, p.I, p.I, Cfg::kBlockN);
  if (!encode_matrix(&x_map, type, p.x, p.B, p.I, p.ldx, Cfg::kBlockM) || !w_ok) {
    return cudaErrorInvalidValue;
  }
  // The outputs through TMA stores (Cfg::kTmaStore) when their rows are whole 16-byte units at
  // 16-byte aligned bases (vec_store), in the kernel's 64-row × 128-byte boxes: Z (B×D), and the
  // G and U halves of H, or of dH when the backward's recompute writes that instead, as B×D
  // matrices with a row stride of 2D. If a map cannot be encoded, the kernel stores from
  // registers. A map that is not used is only a placeholder (the X map), never read.
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

// One sm90 tile for one weight layout. sm_90a code runs on compute capability 9.0 only.
// (float: the tf32 instances, registered as Math::tf32, or with TF32X3 as Math::tf32x3.)
template <class T, int BN, int STAGES, bool PINGPONG = false, bool PACKED = false, int CLUSTER = 1,
          bool TF32X3 = false>
void add_sm90(std::vector<FwdKernel>& out, DType dtype) {
  using Cfg = kernels::Sm90FwdConfig<T, BN, STAGES, PINGPONG, PACKED, CLUSTER, TF32X3>;
  const Math math = TF32X3 ? Math::tf32x3 : std::is_same_v<T, float> ? Math::tf32 : Math::exact;
  FwdKernel k{tile_of<Cfg>(Family::wgmma_sm90), dtype, PACKED ? Layout::packed : Layout::linear, math, 90,
              &launch_fwd_sm90<Cfg>};
  k.max_cc = 90;
  out.push_back(k);
}

// The sm90 tiles of one 16-bit dtype (fp16 or bf16): cooperative 128x128 and 128x64 for both
// layouts, the 128x128 also in clusters of two, and the ping-pong 128x64 (its 7 stages set its name
// apart from the cooperative one) for the linear layout.
template <class T>
void register_sm90_half_tiles(std::vector<FwdKernel>& out, DType dtype) {
  add_sm90<T, 128, 4>(out, dtype);
  add_sm90<T, 64, 6>(out, dtype);
  add_sm90<T, 64, 7, true>(out, dtype);
  add_sm90<T, 128, 4, false, true>(out, dtype);
  add_sm90<T, 64, 6, false, true>(out, dtype);
  add_sm90<T, 128, 4, false, false, 2>(out, dtype);
  add_sm90<T, 128, 4, false, true, 2>(out, dtype);
}

// The tf32 tiles for fp32 inputs (linear layout only): the same cooperative 128x128 and 128x64,
// with BK = 32 fp32 elements (128 bytes) a stage, so the stages and the shared memory are the
// 16-bit tiles' own.
template <class T>
void register_sm90_tf32_tiles(std::vector<FwdKernel>& out) {
  static_assert(std::is_same_v<T, float>, "tf32 tiles take fp32 inputs");
  add_sm90<T, 128, 4>(out, DType::f32);
  add_sm90<T, 64, 6>(out, DType::f32);
}

// The 3xTF32 tile (linear layout only): cooperative 128x64 with BK = 32 fp32 elements and 3 stages
// of 32 KiB, plus three 32 KiB split buffers for the small parts (194 KiB in all). 128x64 because
// each consumer holds a partial sum beside its accumulators (2 × 64 registers a thread). 3 stages:
// 4 (226 KiB, next to the 227 KiB limit) measured the same or 0.5% slower on an H200.
template <class T>
void register_sm90_tf32x3_tiles(std::vector<FwdKernel>& out) {
  static_assert(std::is_same_v<T, float>, "3xTF32 tiles take fp32 inputs");
  add_sm90<T, 64, 3, false, false, 1, true>(out, DType::f32);
}

}  // namespace swiglu::detail
