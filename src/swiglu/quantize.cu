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

// One launch of the tile kernel over a rows×cols matrix whose values come from `src`.
template <class Src>
cudaError_t launch_tiles(const Src& src, void* q, int64_t ldq, float* scale, int64_t ld_scale, void* qt, int64_t ldqt,
                         float* scale_t, float* col_sums, int64_t ld_sums, int64_t rows, int64_t cols, int block_rows,
                         cudaStream_t stream) {
  const int64_t row_blocks = (rows + 127) / 128;
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<int64_t>(row_blocks, 65535)));
  auto* out = static_cast<__nv_fp8_storage_t*>(q);
  auto* out_t = static_cast<__nv_fp8_storage_t*>(qt);
  constexpr int kBytes = kernels::kQuantizeTileFloats * static_cast<int>(sizeof(float));
  const auto launch = [&]<auto Kernel>() {
    // Why: the tile is more shared memory than a launch gets without asking.
    if (cudaError_t e = ensure_dynamic_smem<Src, Kernel>(kBytes); e != cudaSuccess) return e;
    Kernel<<<grid, 256, kBytes, stream>>>(src, out, ldq, scale, ld_scale, out_t, ldqt, scale_t, col_sums, ld_sums, rows,
                                          cols);
    return cudaGetLastError();
  };
  return block_rows == 1 ? launch.template operator()<kernels::quantize_e4m3_tile_kernel<Src, 1>>()
                         : launch.template operator()<kernels::quantize_e4m3_tile_kernel<Src, 128>>();
}

template <class Tin>
cudaError_t launch_quantize_transposed(const void* a, int64_t lda, void* q, int64_t ldq, float* scale, void* qt,
                                       int64_t ldqt, float* scale_t, int64_t rows, int64_t cols, int block_rows,
                                       cudaStream_t stream) {
  const kernels::MatrixSource<Tin> src{static_cast<const Tin*>(a), lda};
  const int64_t k_blocks = (cols + 127) / 128;
  return launch_tiles(src, q, ldq, scale, k_blocks, qt, ldqt, scale_t, nullptr, 0, rows, cols, block_rows, stream);
}

// The gate's backward into e4m3 (gate_backward_e4m3): both halves of dH in one launch, a cluster of
// two blocks a 128×128 block of dZ (kernels::gate_backward_e4m3_kernel).
template <class T>
cudaError_t launch_gate_backward_e4m3(const Fp8GateBackward& g, cudaStream_t stream) {
  const auto* dz = static_cast<const T*>(g.dz);
  const auto* h = static_cast<const T*>(g.h);
  const int64_t B = g.rows, D = g.d, d_blocks = (D + 127) / 128, row_blocks = (B + 127) / 128;
  auto* dh = static_cast<__nv_fp8_storage_t*>(g.dh);
  auto* dht = static_cast<__nv_fp8_storage_t*>(g.dht);
  kernels::TileOutputs out[2];
  for (int half = 0; half < 2; ++half) {
    kernels::TileOutputs& o = out[half];
    o.q = dh != nullptr ? dh + half * D : nullptr;
    o.ldq = g.lddh;
    o.scale = dh != nullptr ? g.dh_scale + half * d_blocks : nullptr;
    o.ld_scale = 2 * d_blocks;
    o.qt = dht + half * D * g.lddht;
    o.ldqt = g.lddht;
    o.scale_t = g.dht_scale + half * D * row_blocks;
    o.col_sums = g.col_sums != nullptr ? g.col_sums + half * D : nullptr;
    o.ld_sums = 2 * D;
  }
  kernels::GateBackwardAlign align;
  align.loads16 = aligned(dz, 16) && aligned(h, 16) && g.lddz % 8 == 0 && g.ldh % 8 == 0 && D % 8 == 0;
  align.q8 = dh == nullptr || (aligned(dh, 8) && g.lddh % 8 == 0 && D % 8 == 0);
  align.qt16 = aligned(dht, 16) && g.lddht % 16 == 0;
  const ClusterLaunch launch(
      dim3(static_cast<unsigned>(2 * d_blocks), static_cast<unsigned>(std::min<int64_t>(row_blocks, 65535))),
      dim3(kernels::kGateBwdThreads), 0, stream, 2);
  return cudaLaunchKernelEx(&launch.config, kernels::gate_backward_e4m3_kernel<T>, dz, g.lddz, h, g.ldh, out[0], out[1],
                            B, D, align);
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

Status gate_backward_e4m3(const Fp8GateBackward& g, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::gate_backward_e4m3"};
  if (g.dtype != DType::bf16 && g.dtype != DType::f16)
    return fail(StatusCode::invalid_argument, "fp8 gate backward: dZ and H must be bf16 or fp16");
  if (g.rows < 0 || g.d <= 0 || g.lddz < g.d || g.ldh < 2 * g.d || (g.dh != nullptr && g.lddh < 2 * g.d) ||
      g.lddht < g.rows)
    return fail(StatusCode::invalid_argument,
                "fp8 gate backward: rows >= 0, d > 0, dZ's row stride >= d, H's and dH's >= 2d, dHt's >= rows");
  if (g.rows == 0) return Status::success();
  if (g.dz == nullptr || g.h == nullptr || g.dht == nullptr || g.dht_scale == nullptr ||
      (g.dh == nullptr) != (g.dh_scale == nullptr))
    return fail(StatusCode::invalid_argument, "fp8 gate backward: a null pointer (dh and dh_scale go together)");
  if ((g.d + 127) / 128 > 1073741823) return fail(StatusCode::unsupported, "fp8 gate backward: d too large");
  DeviceTraits dev;
  if (Status s = current_device(&dev); !s.ok()) return s;
  if (dev.cc_major < 9) return fail(StatusCode::unsupported, "fp8 gate backward: needs compute capability 9.0+ (clusters)");
  const cudaError_t err = g.dtype == DType::bf16 ? launch_gate_backward_e4m3<__nv_bfloat16>(g, stream)
                                                 : launch_gate_backward_e4m3<__half>(g, stream);
  if (err != cudaSuccess)
    return fail(StatusCode::cuda_error, std::string("fp8 gate backward launch: ") + cudaGetErrorString(err));
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
