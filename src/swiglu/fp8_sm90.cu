// The FP8 forward's launcher (swiglu/fp8.hpp): argument checks, then the decode kernel
// (kernels/fwd_fp8_decode.cuh) for a few rows, or the e4m3 TMA maps and the persistent launch of
// kernels/fwd_sm90_fp8.cuh.
#include "swiglu/fp8.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <string>

#include "kernels/fwd_fp8_decode.cuh"
#include "kernels/fwd_sm90_fp8.cuh"
#include "swiglu/families/sm90.cuh"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

template <class Cfg>
cudaError_t launch_fp8(const kernels::Fp8FwdParams& q, cudaStream_t stream) {
  const kernels::FwdParams& p = q.base;
  const int64_t m_tiles = (p.B + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t n_tiles = (p.D + Cfg::kUnitN - 1) / Cfg::kUnitN;
  if (m_tiles * n_tiles == 0) return cudaSuccess;
  CUtensorMap x_map, w_map;
  if (!sm90::encode_matrix(&x_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.x, p.B, p.I, p.ldx, Cfg::kBlockM) ||
      !sm90::encode_matrix(&w_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.w, 2 * p.D, p.I, p.I, Cfg::kBlockN)) {
    return cudaErrorInvalidValue;
  }
  return sm90::launch_persistent<Cfg, kernels::swiglu_fwd_sm90_fp8<Cfg>>(m_tiles, n_tiles, stream, x_map, w_map, q);
}

// The configuration for `out`, z_e4m3 and the cluster size C.
template <int C>
cudaError_t launch_fp8_out(const kernels::Fp8FwdParams& q, DType out, bool z_e4m3, cudaStream_t stream) {
  using kernels::Sm90Fp8FwdConfig;
  if (z_e4m3) {
    return out == DType::bf16 ? launch_fp8<Sm90Fp8FwdConfig<__nv_bfloat16, 64, 5, true, C>>(q, stream)
                              : launch_fp8<Sm90Fp8FwdConfig<__half, 64, 5, true, C>>(q, stream);
  }
  return out == DType::bf16 ? launch_fp8<Sm90Fp8FwdConfig<__nv_bfloat16, 64, 6, false, C>>(q, stream)
                            : launch_fp8<Sm90Fp8FwdConfig<__half, 64, 6, false, C>>(q, stream);
}

template <class Cfg>
cudaError_t launch_fp8_decode(const kernels::Fp8FwdParams& q, cudaStream_t stream) {
  const kernels::FwdParams& p = q.base;
  constexpr int C = Cfg::kCluster;
  const int64_t row_blocks = (p.B + Cfg::kRows - 1) / Cfg::kRows;
  const int64_t col_groups = (p.D + Cfg::kCols * C - 1) / (Cfg::kCols * C);
  const int64_t blocks = row_blocks * col_groups * C;
  if (blocks == 0) return cudaSuccess;
  if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;
  const ClusterLaunch launch(dim3(static_cast<unsigned>(blocks)), dim3(Cfg::kThreads), 0, stream, C);
  return cudaLaunchKernelEx(&launch.config, kernels::swiglu_fwd_fp8_decode<Cfg>, q);
}

// The decode configuration for `out` and z_e4m3: NT n8 tiles of X rows a block; an e4m3 Z's 128
// columns a scale block over C blocks of 128 / C columns.
template <class Out, int NT>
cudaError_t launch_fp8_decode_nt(const kernels::Fp8FwdParams& q, bool z_e4m3, int cluster, cudaStream_t stream) {
  using kernels::Fp8DecodeConfig;
  if (!z_e4m3) return launch_fp8_decode<Fp8DecodeConfig<Out, NT, 4, 1, false>>(q, stream);
  switch (cluster) {
    case 1: return launch_fp8_decode<Fp8DecodeConfig<Out, NT, 16, 1, true>>(q, stream);
    case 2: return launch_fp8_decode<Fp8DecodeConfig<Out, NT, 8, 2, true>>(q, stream);
    default: return launch_fp8_decode<Fp8DecodeConfig<Out, NT, 4, 4, true>>(q, stream);
  }
}

// Why no more than two n8 tiles: from 32 rows on, X's loads from L1 and the mma's per chunk cost
// more than the tiles' waste (a 16-row block beyond that, re-reading W from L2, is the tiles' job).
template <class Out>
cudaError_t launch_fp8_decode_out(const kernels::Fp8FwdParams& q, bool z_e4m3, int cluster, cudaStream_t stream) {
  if (q.base.B <= 8) return launch_fp8_decode_nt<Out, 1>(q, z_e4m3, cluster, stream);
  return launch_fp8_decode_nt<Out, 2>(q, z_e4m3, cluster, stream);
}

}  // namespace

bool fp8_forward_decode(int64_t batch) { return batch <= kFp8DecodeMaxBatch; }

int fp8_forward_cluster(int64_t batch) {
  // Why always one: pairs of row tiles sharing W's loads were 2-7 % slower than single blocks at
  // the three LLaMA shapes on an H200 (docs/kernels-sm90-fp8.md), so L2 is not what limits the
  // tiles. The pairing stays selectable for the next attempt.
  (void)batch;
  return 1;
}

Status fp8_forward_sm90(const kernels::Fp8FwdParams& q, DType out, bool z_e4m3, cudaStream_t stream, int cluster,
                        Fp8Kernel kernel) {
  const kernels::FwdParams& p = q.base;
  if (out != DType::bf16 && out != DType::f16)
    return fail(StatusCode::invalid_argument, "fp8 forward: the output dtype must be bf16 or fp16");
  if (p.B < 0 || p.I <= 0 || p.D <= 0)
    return fail(StatusCode::invalid_argument, "fp8 forward: B must be >= 0, I and D > 0");
  if (p.I % 16 != 0 || p.ldx % 16 != 0 || p.ldx < p.I)
    return fail(StatusCode::invalid_argument, "fp8 forward: I and the X row stride must be multiples of 16 (TMA)");
  if (p.x == nullptr || p.w == nullptr || q.x_scale == nullptr || q.w_scale == nullptr ||
      (p.z == nullptr && p.saved == nullptr) || (p.has_bias != 0 && p.bias == nullptr) ||
      (z_e4m3 && p.z != nullptr && q.z_scale == nullptr))
    return fail(StatusCode::invalid_argument, "fp8 forward: a null pointer");
  if (!aligned(p.x, 16) || !aligned(p.w, 16))
    return fail(StatusCode::invalid_argument, "fp8 forward: X and W must be 16-byte aligned");
  const auto known = [](kernels::Fp8Scale k) {
    return k == kernels::Fp8Scale::tensor || k == kernels::Fp8Scale::blocks || k == kernels::Fp8Scale::channel;
  };
  if (!known(q.x_kind) || !known(q.w_kind) || q.x_kind == kernels::Fp8Scale::channel)
    return fail(StatusCode::invalid_argument, "fp8 forward: X's scales are tensor or blocks, W's tensor, blocks or channel");
  if (q.k_blocks != (p.I + 127) / 128 || q.d_blocks != (p.D + 127) / 128)
    return fail(StatusCode::invalid_argument, "fp8 forward: k_blocks must be ceil(I/128) and d_blocks ceil(D/128)");
  const bool decode = kernel == Fp8Kernel::decode || (kernel == Fp8Kernel::automatic && fp8_forward_decode(p.B));
  if (kernel != Fp8Kernel::automatic && kernel != Fp8Kernel::tiles && kernel != Fp8Kernel::decode)
    return fail(StatusCode::invalid_argument, "fp8 forward: unknown kernel choice");
  if (cluster != 0 && cluster != 1 && cluster != 2 && !(decode && cluster == 4)) {
    return fail(StatusCode::invalid_argument,
                "fp8 forward: cluster must be 0 (chosen), 1 or 2 (or 4 for the decode kernel), got " +
                    std::to_string(cluster));
  }
#if SWIGLU_HAVE_SM90A
  DeviceTraits dev;
  if (Status s = current_device(&dev); !s.ok()) return s;
  if (dev.cc_major != 9 || dev.cc_minor != 0)
    return fail(StatusCode::unsupported, "fp8 forward: needs compute capability 9.0 (sm_90a)");
  kernels::Fp8FwdParams r = q;
  const bool outputs_aligned = aligned(p.z, 16) && aligned(p.saved, 16);
  r.base.vec_store = outputs_aligned && p.D % 8 == 0 ? 1 : 0;
  r.base.vec_load = 1;
  cudaError_t err;
  if (decode) {
    const int c = cluster != 0 ? cluster : kFp8DecodeCluster;
    err = out == DType::bf16 ? launch_fp8_decode_out<__nv_bfloat16>(r, z_e4m3, c, stream)
                             : launch_fp8_decode_out<__half>(r, z_e4m3, c, stream);
  } else {
    const int c = cluster != 0 ? cluster : fp8_forward_cluster(p.B);
    err = c == 2 ? launch_fp8_out<2>(r, out, z_e4m3, stream) : launch_fp8_out<1>(r, out, z_e4m3, stream);
  }
  if (err != cudaSuccess)
    return fail(StatusCode::cuda_error, std::string("fp8 forward launch: ") + cudaGetErrorString(err));
  return Status::success();
#else
  (void)stream;
  (void)cluster;
  (void)decode;
  return fail(StatusCode::unsupported, "fp8 forward: this build has no sm_90a code");
#endif
}

}  // namespace swiglu::detail
