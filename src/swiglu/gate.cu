// Host launcher of the unfused gate kernel; see gate.hpp.
#include "swiglu/gate.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include <nvtx3/nvtx3.hpp>

#include "kernels/gate.cuh"

namespace swiglu::detail {
namespace {

constexpr int kGateThreads = 256;

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class Tin, class Tout>
cudaError_t launch_gate_typed(const void* a, int64_t lda, const void* b, int64_t ldb, void* z,
                              int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream) {
  constexpr int kVec = static_cast<int>(16 / sizeof(Tin));
  // Why: the vector path reads 16-byte input vectors and writes whole 16-byte output chunks at the
  // start of every row, so every row start of a, b and z must be 16-byte aligned.
  const bool vec = cols >= kVec && aligned16(a) && aligned16(b) && aligned16(z) &&
                   (lda * static_cast<int64_t>(sizeof(Tin))) % 16 == 0 &&
                   (ldb * static_cast<int64_t>(sizeof(Tin))) % 16 == 0 &&
                   (ldz * static_cast<int64_t>(sizeof(Tout))) % 16 == 0;

  // One row per warp-multiple of threads; narrow rows share a block so no lanes idle.
  const int64_t units = vec ? cols / kVec : cols;
  int tx = 32;
  while (tx < kGateThreads && tx < units) tx *= 2;
  const int ty = kGateThreads / tx;
  const int64_t blocks = std::min<int64_t>((rows + ty - 1) / ty, INT_MAX);
  const dim3 grid(static_cast<unsigned>(blocks));
  const dim3 block(static_cast<unsigned>(tx), static_cast<unsigned>(ty));

  const auto* ta = static_cast<const Tin*>(a);
  const auto* tb = static_cast<const Tin*>(b);
  auto* tz = static_cast<Tout*>(z);
  if (vec) {
    kernels::swiglu_gate_kernel<Tin, Tout, kVec>
        <<<grid, block, 0, stream>>>(ta, lda, tb, ldb, tz, ldz, rows, cols);
  } else {
    kernels::swiglu_gate_kernel<Tin, Tout, 1>
        <<<grid, block, 0, stream>>>(ta, lda, tb, ldb, tz, ldz, rows, cols);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_gate(DType in, DType out, const void* a, int64_t lda, const void* b, int64_t ldb,
                        void* z, int64_t ldz, int64_t rows, int64_t cols, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_gate"};
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;

  if (in == DType::f32 && out == DType::f32)
    return launch_gate_typed<float, float>(a, lda, b, ldb, z, ldz, rows, cols, stream);
  if (in == DType::f16 && out == DType::f16)
    return launch_gate_typed<__half, __half>(a, lda, b, ldb, z, ldz, rows, cols, stream);
  if (in == DType::bf16 && out == DType::bf16)
    return launch_gate_typed<__nv_bfloat16, __nv_bfloat16>(a, lda, b, ldb, z, ldz, rows, cols,
                                                           stream);
  if (in == DType::f16 && out == DType::f32)
    return launch_gate_typed<__half, float>(a, lda, b, ldb, z, ldz, rows, cols, stream);
  if (in == DType::bf16 && out == DType::f32)
    return launch_gate_typed<__nv_bfloat16, float>(a, lda, b, ldb, z, ldz, rows, cols, stream);
  return cudaErrorInvalidValue;
}

}  // namespace swiglu::detail
