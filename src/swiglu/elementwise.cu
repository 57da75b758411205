// Host launchers of the unfused elementwise kernels (kernels/elementwise.cuh); see elementwise.hpp.
#include "swiglu/elementwise.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include <nvtx3/nvtx3.hpp>

#include "kernels/elementwise.cuh"

namespace swiglu::detail {
namespace {

constexpr int kGateThreads = 256;
constexpr int kColumnSumRowsY = 16;  // column sum blocks are 32 columns x 16 row lanes

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Every row start of a matrix with element type T and row stride ld is 16-byte aligned.
template <class T>
bool rows_aligned16(const void* p, int64_t ld) {
  return aligned16(p) && (ld * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

// The elementwise kernels' launch shape: one row per warp-multiple of threads, narrow rows share a
// block so no lanes idle. `units` is the number of vectors (or elements) per row.
struct ElementwiseLaunch {
  dim3 grid, block;
};

ElementwiseLaunch elementwise_launch(int64_t rows, int64_t units) {
  int tx = 32;
  while (tx < kGateThreads && tx < units) tx *= 2;
  const int ty = kGateThreads / tx;
  const int64_t blocks = std::min<int64_t>((rows + ty - 1) / ty, INT_MAX);
  return {dim3(static_cast<unsigned>(blocks)),
          dim3(static_cast<unsigned>(tx), static_cast<unsigned>(ty))};
}

// Checks the sizes, then calls f.template operator()<Tin, Tout>() for the supported (in, out) pairs,
// (f32, f32), (f16, f16), (bf16, bf16), (f16, f32) and (bf16, f32), unless `empty`; any other pair
// is cudaErrorInvalidValue, empty or not.
template <class F>
cudaError_t dispatch(DType in, DType out, int64_t rows, int64_t cols, bool empty, F&& f) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  auto call = [&]<class Tin, class Tout>() { return empty ? cudaSuccess : f.template operator()<Tin, Tout>(); };
  if (in == DType::f32 && out == DType::f32) return call.template operator()<float, float>();
  if (in == DType::f16 && out == DType::f16) return call.template operator()<__half, __half>();
  if (in == DType::bf16 && out == DType::bf16) return call.template operator()<__nv_bfloat16, __nv_bfloat16>();
  if (in == DType::f16 && out == DType::f32) return call.template operator()<__half, float>();
  if (in == DType::bf16 && out == DType::f32) return call.template operator()<__nv_bfloat16, float>();
  return cudaErrorInvalidValue;
}

// Launches launch(vector width, grid, block) with one 16-byte vector of Tin a step when every row
// of every operand starts 16-byte aligned (`rows_aligned`) and a row holds a vector, else one
// element; returns the launch's status.
template <class Tin, class Launch>
cudaError_t launch_rows(bool rows_aligned, int64_t rows, int64_t cols, Launch&& launch) {
  constexpr int kVec = static_cast<int>(16 / sizeof(Tin));
  const bool vec = rows_aligned && cols >= kVec;
  const auto [grid, block] = elementwise_launch(rows, vec ? cols / kVec : cols);
  if (vec) {
    launch(std::integral_constant<int, kVec>{}, grid, block);
  } else {
    launch(std::integral_constant<int, 1>{}, grid, block);
  }
  return cudaGetLastError();
}

template <class Tin, class Tout>
cudaError_t launch_gate_typed(const void* a, int64_t lda, const void* b, int64_t ldb, void* z,
                              int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream) {
  // Why every row start: the vector path moves whole 16-byte vectors from the start of each row.
  const bool aligned = rows_aligned16<Tin>(a, lda) && rows_aligned16<Tin>(b, ldb) && rows_aligned16<Tout>(z, ldz);
  return launch_rows<Tin>(aligned, rows, cols, [&](auto v, dim3 grid, dim3 block) {
    kernels::swiglu_gate_kernel<Tin, Tout, decltype(v)::value><<<grid, block, 0, stream>>>(
        static_cast<const Tin*>(a), lda, static_cast<const Tin*>(b), ldb, static_cast<Tout*>(z), ldz, rows, cols);
  });
}

template <class Tin, class Tout>
cudaError_t launch_gate_backward_typed(const void* a, int64_t lda, const void* b, int64_t ldb,
                                       const void* dz, int64_t lddz, void* dg, int64_t lddg,
                                       void* db, int64_t lddb, int64_t rows, int64_t cols,
                                       cudaStream_t stream) {
  const bool aligned = rows_aligned16<Tin>(a, lda) && rows_aligned16<Tin>(b, ldb) && rows_aligned16<Tin>(dz, lddz) &&
                       rows_aligned16<Tout>(dg, lddg) && rows_aligned16<Tout>(db, lddb);
  return launch_rows<Tin>(aligned, rows, cols, [&](auto v, dim3 grid, dim3 block) {
    kernels::swiglu_gate_backward_kernel<Tin, Tout, decltype(v)::value><<<grid, block, 0, stream>>>(
        static_cast<const Tin*>(a), lda, static_cast<const Tin*>(b), ldb, static_cast<const Tin*>(dz), lddz,
        static_cast<Tout*>(dg), lddg, static_cast<Tout*>(db), lddb, rows, cols);
  });
}

template <class Tin, class Tout>
cudaError_t launch_convert_typed(const void* a, int64_t lda, void* z, int64_t ldz, int64_t rows,
                                 int64_t cols, cudaStream_t stream) {
  const bool aligned = rows_aligned16<Tin>(a, lda) && rows_aligned16<Tout>(z, ldz);
  return launch_rows<Tin>(aligned, rows, cols, [&](auto v, dim3 grid, dim3 block) {
    kernels::convert_kernel<Tin, Tout, decltype(v)::value>
        <<<grid, block, 0, stream>>>(static_cast<const Tin*>(a), lda, static_cast<Tout*>(z), ldz, rows, cols);
  });
}

}  // namespace

cudaError_t launch_gate(DType in, DType out, const void* a, int64_t lda, const void* b, int64_t ldb,
                        void* z, int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_gate"};
  return dispatch(in, out, rows, cols, rows == 0 || cols == 0, [&]<class Tin, class Tout>() {
    return launch_gate_typed<Tin, Tout>(a, lda, b, ldb, z, ldz, rows, cols, stream);
  });
}

cudaError_t launch_gate_backward(DType in, DType out, const void* a, int64_t lda, const void* b,
                                 int64_t ldb, const void* dz, int64_t lddz, void* dg, int64_t lddg,
                                 void* db, int64_t lddb, int64_t rows, int64_t cols,
                                 cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_gate_backward"};
  return dispatch(in, out, rows, cols, rows == 0 || cols == 0, [&]<class Tin, class Tout>() {
    return launch_gate_backward_typed<Tin, Tout>(a, lda, b, ldb, dz, lddz, dg, lddg, db, lddb, rows, cols, stream);
  });
}

cudaError_t launch_column_sum(DType in, DType out, const void* a, int64_t lda, void* out_ptr,
                              int64_t rows, int64_t cols, cudaStream_t stream, bool accumulate) {
  nvtx3::scoped_range range{"swiglu::launch_column_sum"};
  // rows == 0 still launches: every column sum is then 0.
  const auto launch = [&]<class Tin, class Tout>() {
    const int64_t blocks = std::min<int64_t>((cols + 31) / 32, INT_MAX);
    kernels::column_sum_kernel<Tin, Tout, kColumnSumRowsY>
        <<<dim3(static_cast<unsigned>(blocks)), dim3(32, kColumnSumRowsY), 0, stream>>>(
            static_cast<const Tin*>(a), lda, static_cast<Tout*>(out_ptr), rows, cols, accumulate ? 1 : 0);
    return cudaGetLastError();
  };
  // fp32 partial sums into a 16-bit dbias: the FP8 backward's (its sums are fp32, dbias any dtype).
  if (in == DType::f32 && (out == DType::f16 || out == DType::bf16)) {
    if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
    if (cols == 0) return cudaSuccess;
    return out == DType::f16 ? launch.template operator()<float, __half>()
                             : launch.template operator()<float, __nv_bfloat16>();
  }
  return dispatch(in, out, rows, cols, cols == 0, launch);
}

cudaError_t launch_convert(DType in, DType out, const void* a, int64_t lda, void* z, int64_t ldz,
                           int64_t rows, int64_t cols, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_convert"};
  return dispatch(in, out, rows, cols, rows == 0 || cols == 0, [&]<class Tin, class Tout>() {
    return launch_convert_typed<Tin, Tout>(a, lda, z, ldz, rows, cols, stream);
  });
}

}  // namespace swiglu::detail
