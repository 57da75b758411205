// The e4m3 block quantisation's launcher (swiglu/fp8.hpp, kernels/quantize.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include <nvtx3/nvtx3.hpp>

#include "kernels/quantize.cuh"
#include "swiglu/fp8.hpp"
#include "swiglu/launch.cuh"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

template <class Tin>
cudaError_t launch_quantize(const void* a, int64_t lda, void* q, int64_t ldq, float* scale, int64_t rows, int64_t cols,
                            int block_rows, cudaStream_t stream) {
  const int64_t row_blocks = (rows + block_rows - 1) / block_rows;
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<int64_t>(row_blocks, 65535)));
  const auto* in = static_cast<const Tin*>(a);
  auto* out = static_cast<__nv_fp8_storage_t*>(q);
  if (block_rows == 1) {
    // A warp a 1×128 block, 8 a thread block; past 2^20 thread blocks the grid strides.
    const int64_t warp_blocks = (rows * ((cols + 127) / 128) + 7) / 8;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(warp_blocks, int64_t{1} << 20));
    // Why these conditions: every lane's 4 elements start on a vector boundary (a, lda), and its 4
    // bytes on a word boundary (q, ldq).
    const bool vec = reinterpret_cast<uintptr_t>(a) % (4 * sizeof(Tin)) == 0 && lda % 4 == 0 &&
                     reinterpret_cast<uintptr_t>(q) % 4 == 0 && ldq % 4 == 0;
    if (vec) {
      kernels::quantize_e4m3_rows_kernel<Tin, true><<<blocks, 256, 0, stream>>>(in, lda, out, ldq, scale, rows, cols);
    } else {
      kernels::quantize_e4m3_rows_kernel<Tin, false><<<blocks, 256, 0, stream>>>(in, lda, out, ldq, scale, rows, cols);
    }
  } else {
    kernels::quantize_e4m3_kernel<Tin, 128><<<grid, 128, 0, stream>>>(in, lda, out, ldq, scale, rows, cols);
  }
  return cudaGetLastError();
}

template <class Tin>
cudaError_t launch_quantize_transposed(const void* a, int64_t lda, void* q, int64_t ldq, float* scale, void* qt,
                                       int64_t ldqt, float* scale_t, int64_t rows, int64_t cols, int block_rows,
                                       cudaStream_t stream) {
  const int64_t row_blocks = (rows + 127) / 128;
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<int64_t>(row_blocks, 65535)));
  const auto* in = static_cast<const Tin*>(a);
  auto* out = static_cast<__nv_fp8_storage_t*>(q);
  auto* out_t = static_cast<__nv_fp8_storage_t*>(qt);
  constexpr int kBytes = kernels::kQuantizeTileFloats * static_cast<int>(sizeof(float));
  const auto launch = [&]<auto Kernel>() {
    // Why: the tile is more shared memory than a launch gets without asking.
    if (cudaError_t e = ensure_dynamic_smem<Tin, Kernel>(kBytes); e != cudaSuccess) return e;
    Kernel<<<grid, 256, kBytes, stream>>>(in, lda, out, ldq, scale, out_t, ldqt, scale_t, rows, cols);
    return cudaGetLastError();
  };
  return block_rows == 1 ? launch.template operator()<kernels::quantize_e4m3_transposed_kernel<Tin, 1>>()
                         : launch.template operator()<kernels::quantize_e4m3_transposed_kernel<Tin, 128>>();
}

}  // namespace

Status quantize_e4m3_transposed(DType in, const void* a, int64_t lda, void* q, int64_t ldq, float* scale, void* qt,
                                int64_t ldqt, float* scale_t, int64_t rows, int64_t cols, int block_rows,
                                cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::quantize_e4m3_transposed"};
  if (block_rows != 1 && block_rows != 128)
    return fail(StatusCode::invalid_argument, "quantize: block_rows must be 1 or 128, got " + std::to_string(block_rows));
  if (rows < 0 || cols < 0 || lda < cols || (q != nullptr && ldq < cols) || ldqt < rows)
    return fail(StatusCode::invalid_argument,
                "quantize: rows and cols must be >= 0, the row strides of a and q >= cols, qt's >= rows");
  if (rows == 0 || cols == 0) return Status::success();
  if (a == nullptr || qt == nullptr || scale_t == nullptr || (q == nullptr) != (scale == nullptr))
    return fail(StatusCode::invalid_argument, "quantize: a null pointer (q and scale go together)");
  if ((cols + 127) / 128 > 2147483647) return fail(StatusCode::unsupported, "quantize: too many columns");
  cudaError_t err = cudaSuccess;
  switch (in) {
    case DType::f32:
      err = launch_quantize_transposed<float>(a, lda, q, ldq, scale, qt, ldqt, scale_t, rows, cols, block_rows, stream);
      break;
    case DType::f16:
      err = launch_quantize_transposed<__half>(a, lda, q, ldq, scale, qt, ldqt, scale_t, rows, cols, block_rows, stream);
      break;
    case DType::bf16:
      err = launch_quantize_transposed<__nv_bfloat16>(a, lda, q, ldq, scale, qt, ldqt, scale_t, rows, cols, block_rows,
                                                     stream);
      break;
    default: return fail(StatusCode::invalid_argument, "quantize: the input dtype must be fp32, fp16 or bf16");
  }
  if (err != cudaSuccess) return fail(StatusCode::cuda_error, std::string("quantize launch: ") + cudaGetErrorString(err));
  return Status::success();
}

Status quantize_e4m3(DType in, const void* a, int64_t lda, void* q, int64_t ldq, float* scale, int64_t rows,
                     int64_t cols, int block_rows, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::quantize_e4m3"};
  if (block_rows != 1 && block_rows != 128)
    return fail(StatusCode::invalid_argument, "quantize: block_rows must be 1 or 128, got " + std::to_string(block_rows));
  if (rows < 0 || cols < 0 || lda < cols || ldq < cols)
    return fail(StatusCode::invalid_argument, "quantize: rows and cols must be >= 0, the row strides >= cols");
  if (rows == 0 || cols == 0) return Status::success();
  if (a == nullptr || q == nullptr || scale == nullptr) return fail(StatusCode::invalid_argument, "quantize: a null pointer");
  if ((cols + 127) / 128 > 2147483647) return fail(StatusCode::unsupported, "quantize: too many columns");
  cudaError_t err = cudaSuccess;
  switch (in) {
    case DType::f32: err = launch_quantize<float>(a, lda, q, ldq, scale, rows, cols, block_rows, stream); break;
    case DType::f16: err = launch_quantize<__half>(a, lda, q, ldq, scale, rows, cols, block_rows, stream); break;
    case DType::bf16: err = launch_quantize<__nv_bfloat16>(a, lda, q, ldq, scale, rows, cols, block_rows, stream); break;
    default: return fail(StatusCode::invalid_argument, "quantize: the input dtype must be fp32, fp16 or bf16");
  }
  if (err != cudaSuccess) return fail(StatusCode::cuda_error, std::string("quantize launch: ") + cudaGetErrorString(err));
  return Status::success();
}

}  // namespace swiglu::detail
