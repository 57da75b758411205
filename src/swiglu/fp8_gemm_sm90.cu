// The FP8 backward GEMMs' launcher (swiglu/fp8.hpp, kernels/gemm_sm90_fp8.cuh): argument checks,
// the e4m3 tensor maps of each K segment, the persistent launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/gemm_sm90_fp8.cuh"
#include "swiglu/families/sm90.cuh"
#include "swiglu/fp8.hpp"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

template <class Cfg>
cudaError_t launch_gemm(const Fp8Gemm& g, kernels::Fp8GemmParams p, cudaStream_t stream) {
  using Out = typename Cfg::Output;
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
  // C through TMA stores where it is 16-bit, written (not accumulated) and TMA can address it
  // (16-byte aligned, a row stride of whole 16 bytes: encode_matrix refuses anything else); the
  // kernel stores from registers otherwise, and the unused map is a placeholder (A's).
  CUtensorMap c_map = maps[0][0];
  if constexpr (sizeof(Out) == 2) {
    p.tma_c = p.accumulate == 0 && p.vec_store != 0 &&
                      sm90::encode_matrix(&c_map, sm90::tensor_map_type<Out>(), p.c, p.M, p.N, p.ldc, 64)
                  ? 1
                  : 0;
  }
  // Split-K's slices are units of their own: the grid walks n_tiles · splits columns of units.
  return sm90::launch_persistent<Cfg, kernels::swiglu_gemm_sm90_fp8<Cfg>>(
      m_tiles, n_tiles * p.splits, stream, maps[0][0], maps[0][1], maps[1][0], maps[1][1], c_map, p);
}

// The split of K: none where the tiles fill half the SMs, K is short (under 16 steps a slice) or
// there is no workspace; else as many slices as fill the SMs.
int choose_splits(const Fp8Gemm& g, int sms) {
  const int64_t tiles = ((g.m + 127) / 128) * ((g.n + 127) / 128);
  const int64_t k_steps = (g.k + 127) / 128 * g.segments;
  if (g.split_workspace == nullptr || tiles > kFp8GemmMaxSplitTiles || 2 * tiles > sms) return 1;
  const int64_t by_sms = sms / tiles, by_k = k_steps / 16;
  return static_cast<int>(std::max<int64_t>(1, std::min(by_sms, by_k)));
}

}  // namespace

size_t fp8_gemm_split_bytes(int64_t m, int64_t n) {
  if (m <= 0 || n <= 0) return 0;
  const int64_t tiles = ((m + 127) / 128) * ((n + 127) / 128);
  if (tiles > kFp8GemmMaxSplitTiles) return 0;
  const size_t sums = (static_cast<size_t>(m) * static_cast<size_t>(n) * sizeof(float) + 255) / 256 * 256;
  return sums + static_cast<size_t>(tiles) * 2 * sizeof(int);
}

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
  if (g.split_workspace != nullptr && !aligned(g.split_workspace, 16))
    return fail(StatusCode::invalid_argument, "fp8 gemm: the split-K workspace must be 16-byte aligned");
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
  const int sms = sm90::current_sm_count();
  if (sms <= 0) return fail(StatusCode::cuda_error, "fp8 gemm: no SM count for the current device");
  if (const int splits = choose_splits(g, sms); splits > 1) {
    // Whole K steps a slice, and as many slices as that takes (none empty).
    const int64_t k_steps = (g.k + 127) / 128 * g.segments;
    p.k_per_split = static_cast<int>((k_steps + splits - 1) / splits);
    p.splits = static_cast<int>((k_steps + p.k_per_split - 1) / p.k_per_split);
    p.partial = static_cast<float*>(g.split_workspace);
    const size_t sums = (static_cast<size_t>(g.m) * static_cast<size_t>(g.n) * sizeof(float) + 255) / 256 * 256;
    p.counters = reinterpret_cast<int*>(static_cast<uint8_t*>(g.split_workspace) + sums);
    if (const cudaError_t e = cudaMemsetAsync(g.split_workspace, 0, fp8_gemm_split_bytes(g.m, g.n), stream);
        e != cudaSuccess)
      return fail(StatusCode::cuda_error, std::string("fp8 gemm: ") + cudaGetErrorString(e));
  }
  using kernels::Sm90Fp8GemmConfig;
  const auto pick = [&]<class Out>() {
    return p.splits > 1 ? launch_gemm<Sm90Fp8GemmConfig<Out, 6, true>>(g, p, stream)
                        : launch_gemm<Sm90Fp8GemmConfig<Out, 6>>(g, p, stream);
  };
  const cudaError_t err = g.out == DType::f32    ? pick.template operator()<float>()
                          : g.out == DType::bf16 ? pick.template operator()<__nv_bfloat16>()
                                                 : pick.template operator()<__half>();
  if (err != cudaSuccess) return fail(StatusCode::cuda_error, std::string("fp8 gemm launch: ") + cudaGetErrorString(err));
  return Status::success();
#else
  (void)stream;
  return fail(StatusCode::unsupported, "fp8 gemm: this build has no sm_90a code");
#endif
}

}  // namespace swiglu::detail
