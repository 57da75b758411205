// The FP8 backward GEMMs' launcher (swiglu/fp8.hpp, kernels/gemm_sm90_fp8.cuh): argument checks,
// the e4m3 tensor maps of each K segment, the persistent launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "kernels/gemm_sm90_fp8.cuh"
#include "swiglu/families/sm90.cuh"
#include "swiglu/fp8.hpp"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

template <class Cfg>
cudaError_t launch_gemm(const Fp8Gemm& g, const kernels::Fp8GemmParams& p, cudaStream_t stream) {
  const int64_t m_tiles = (p.M + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t n_tiles = (p.N + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (m_tiles * n_tiles == 0) return cudaSuccess;
  CUtensorMap maps[2][2];  // [segment][A, B]
  for (int s = 0; s < g.segments; ++s) {
    if (!sm90::encode_matrix(&maps[s][0], CU_TENSOR_MAP_DATA_TYPE_UINT8, g.a[s], p.M, p.K, g.lda, Cfg::kBlockM) ||
        !sm90::encode_matrix(&maps[s][1], CU_TENSOR_MAP_DATA_TYPE_UINT8, g.b[s], p.N, p.K, g.ldb, Cfg::kBlockN)) {
      return cudaErrorInvalidValue;
    }
  }
  if (g.segments == 1) {
    maps[1][0] = maps[0][0];
    maps[1][1] = maps[0][1];
  }
  return sm90::launch_persistent<Cfg, kernels::swiglu_gemm_sm90_fp8<Cfg>>(m_tiles, n_tiles, stream, maps[0][0],
                                                                          maps[0][1], maps[1][0], maps[1][1], p);
}

}  // namespace

Status fp8_gemm_sm90(const Fp8Gemm& g, cudaStream_t stream) {
  if (g.out != DType::bf16 && g.out != DType::f16 && g.out != DType::f32)
    return fail(StatusCode::invalid_argument, "fp8 gemm: C must be fp32, fp16 or bf16");
  if (g.m < 0 || g.n < 0 || g.k < 0 || (g.segments != 1 && g.segments != 2))
    return fail(StatusCode::invalid_argument, "fp8 gemm: M, N and K must be >= 0, and the segments 1 or 2");
  if (g.m == 0 || g.n == 0) return Status::success();
  if (g.lda % 16 != 0 || g.ldb % 16 != 0 || g.lda < g.k || g.ldb < g.k || g.ldc < g.n)
    return fail(StatusCode::invalid_argument,
                "fp8 gemm: the A and B row strides must be multiples of 16 (TMA) and >= K, ldc >= N");
  for (int s = 0; s < g.segments; ++s) {
    if (g.a[s] == nullptr || g.b[s] == nullptr) return fail(StatusCode::invalid_argument, "fp8 gemm: a null operand");
    if (!aligned(g.a[s], 16) || !aligned(g.b[s], 16))
      return fail(StatusCode::invalid_argument, "fp8 gemm: A and B must be 16-byte aligned");
  }
  if (g.c == nullptr || g.a_scale == nullptr || g.b_scale == nullptr)
    return fail(StatusCode::invalid_argument, "fp8 gemm: a null pointer");
#if SWIGLU_HAVE_SM90A
  DeviceTraits dev;
  if (Status s = current_device(&dev); !s.ok()) return s;
  if (dev.cc_major != 9 || dev.cc_minor != 0)
    return fail(StatusCode::unsupported, "fp8 gemm: needs compute capability 9.0 (sm_90a)");
  kernels::Fp8GemmParams p;
  p.M = g.m;
  p.N = g.n;
  p.K = g.k;
  p.segments = g.segments;
  p.a_scale = g.a_scale;
  p.a_seg = g.a_seg;
  p.a_m = g.a_m;
  p.a_kb = g.a_kb;
  p.b_scale = g.b_scale;
  p.b_seg = g.b_seg;
  p.b_n = g.b_n;
  p.b_kb = g.b_kb;
  p.b_rows = g.b_rows ? 1 : 0;
  p.c = g.c;
  p.ldc = g.ldc;
  p.accumulate = g.accumulate ? 1 : 0;
  p.vec_store = g.n % 2 == 0 && g.ldc % 2 == 0 && aligned(g.c, 2 * dtype_size(g.out)) ? 1 : 0;
  if (g.k == 0 && !g.accumulate) {
    // No K: C = 0 (a GEMM over nothing), with accumulate nothing to add.
    if (const cudaError_t e = cudaMemset2DAsync(g.c, static_cast<size_t>(g.ldc) * dtype_size(g.out), 0,
                                                static_cast<size_t>(g.n) * dtype_size(g.out), static_cast<size_t>(g.m),
                                                stream);
        e != cudaSuccess)
      return fail(StatusCode::cuda_error, std::string("fp8 gemm: ") + cudaGetErrorString(e));
    return Status::success();
  }
  if (g.k == 0) return Status::success();
  using kernels::Sm90Fp8GemmConfig;
  const cudaError_t err = g.out == DType::f32    ? launch_gemm<Sm90Fp8GemmConfig<float, 6>>(g, p, stream)
                          : g.out == DType::bf16 ? launch_gemm<Sm90Fp8GemmConfig<__nv_bfloat16, 6>>(g, p, stream)
                                                 : launch_gemm<Sm90Fp8GemmConfig<__half, 6>>(g, p, stream);
  if (err != cudaSuccess) return fail(StatusCode::cuda_error, std::string("fp8 gemm launch: ") + cudaGetErrorString(err));
  return Status::success();
#else
  (void)stream;
  return fail(StatusCode::unsupported, "fp8 gemm: this build has no sm_90a code");
#endif
}

}  // namespace swiglu::detail
