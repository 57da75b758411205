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

// A row-major rows×cols matrix of 16-bit elements with row stride `ld`, read in boxes of
// box_rows × 64 elements with the 128-byte swizzle; reads past an edge return zeros.
inline bool encode_matrix(CUtensorMap* map, CUtensorMapDataType type, const void* base, int64_t rows,
                          int64_t cols, int64_t ld, int box_rows) {
  const TensorMapEncodeFn encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
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

// The persistent launch: one block per SM (fewer when there are fewer tiles). The caller (api.cpp)
// sends only TMA-addressable operands (FwdParams.vec_load: X and W 16-byte aligned, X rows and,
// for the packed layout, Wf rows of whole 16-byte units); anything else is an error here rather
// than a wrong result.
template <class Cfg>
cudaError_t launch_fwd_sm90(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd_sm90"};
  using T = typename Cfg::Elem;
  const int64_t tiles = ((p.B + Cfg::kBlockM - 1) / Cfg::kBlockM) * ((p.D + Cfg::kBlockN - 1) / Cfg::kBlockN);
  if (tiles == 0) return cudaSuccess;
  if (p.vec_load == 0 || 2 * p.D > INT32_MAX || p.B > INT32_MAX) return cudaErrorInvalidValue;
  constexpr CUtensorMapDataType type = std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                        : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  CUtensorMap x_map, w_map;
  // W: linear W12 (2D rows of I) in boxes of 64 K columns by BN rows; packed Wf (I rows of 2D) in
  // boxes of 64 columns by 64 K rows.
  const bool w_ok = Cfg::kPacked ? encode_matrix(&w_map, type, p.w, p.I, 2 * p.D, 2 * p.D, Cfg::kBlockK)
                                 : encode_matrix(&w_map, type, p.w, 2 * p.D, p.I, p.I, Cfg::kBlockN);
  if (!encode_matrix(&x_map, type, p.x, p.B, p.I, p.ldx, Cfg::kBlockM) || !w_ok) {
    return cudaErrorInvalidValue;
  }
  constexpr auto kernel = kernels::swiglu_fwd_sm90<Cfg>;
  if (const cudaError_t err = ensure_dynamic_smem<Cfg, kernel>(Cfg::kSmemBytes); err != cudaSuccess) {
    return err;
  }
  const int sms = current_sm_count();
  if (sms <= 0) return cudaErrorInvalidDevice;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, sms));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(x_map, w_map, p);
  return cudaGetLastError();
}

// One sm90 tile for one weight layout. sm_90a code runs on compute capability 9.0 only.
template <class T, int BN, int STAGES, bool PINGPONG = false, bool PACKED = false>
void add_sm90(std::vector<FwdKernel>& out, DType dtype) {
  using Cfg = kernels::Sm90FwdConfig<T, BN, STAGES, PINGPONG, PACKED>;
  FwdKernel k{tile_of<Cfg>(Family::wgmma_sm90), dtype, PACKED ? Layout::packed : Layout::linear,
              Math::exact, 90, &launch_fwd_sm90<Cfg>};
  k.max_cc = 90;
  out.push_back(k);
}

// The sm90 tiles of one 16-bit dtype (fp16 or bf16): cooperative 128x128 and 128x64 for both
// layouts, and the ping-pong 128x64 (its 7 stages set its name apart from the cooperative one) for
// the linear layout.
template <class T>
void register_sm90_half_tiles(std::vector<FwdKernel>& out, DType dtype) {
  add_sm90<T, 128, 4>(out, dtype);
  add_sm90<T, 64, 6>(out, dtype);
  add_sm90<T, 64, 7, true>(out, dtype);
  add_sm90<T, 128, 4, false, true>(out, dtype);
  add_sm90<T, 64, 6, false, true>(out, dtype);
}

}  // namespace swiglu::detail
