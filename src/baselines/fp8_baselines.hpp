// The FP8 baselines: what a user runs today for forward_fp8 (swiglu.hpp, "FP8 forward"), on the same
// e4m3 operands and fp32 scales, as the variants of cublas_baselines.hpp:
//
//   cublas2: two cuBLASLt FP8 GEMMs, G = X·Waᵀ + ba and U = X·Wbᵀ + bb (e4m3 × e4m3 -> bf16/fp16,
//            fp32 accumulation, the scales applied by cuBLASLt, the bias in its epilogue), then the
//            SiLU-mul gate kernel, then for an e4m3 Z quantize_e4m3 in 1×128 blocks.
//   cublas1: one FP8 GEMM on the stacked W12 -> H = [G | U], then the gate and the quantisation.
//
// The scales as cuBLASLt takes them (cuBLASLt's FP8 GEMM is "TN": W is its A, X its B):
//   X tensor, W tensor:   per-tensor scalars (SCALAR_32F), any FP8 GPU (compute capability 8.9+).
//   X blocks, W blocks:   1×128 (VEC128_32F) × 128×128 (BLK128x128_32F); cublas1 needs D % 128 == 0
//                         (no W block across Wa and Wb in the stack).
//   X tensor, W blocks:   X's scalar repeated in 1×128 blocks, W as above.
//   X blocks, W tensor:   W's scalar repeated in 128×128 blocks.
//   X tensor, W channel:  outer vectors (OUTER_VEC_32F): X's scalar repeated per row, W's per row.
//   X blocks, W channel:  unsupported (cuBLASLt pairs an outer-vector scale only with another).
// All but the first need cuBLAS 12.9+ and compute capability 9.0. A repeated scalar means the same
// dequantised operand, so fused and baseline inputs are identical in meaning. What cuBLASLt turns
// down (no algorithm, for instance for W rows or B not a multiple of 8 with block scales) is
// StatusCode::unsupported with the reason.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

#include "baselines/cublas_baselines.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::baselines {

// Device bytes the plan needs besides the caller's tensors: G and U (or H) in p.out, Z in p.out
// before its quantisation when p.z_e4m3, and the scales in cuBLASLt's layouts (fp8_baselines.cpp).
size_t fp8_scratch_bytes(Variant v, const Fp8Problem& p);

// One FP8 baseline bound to its buffers: t as for forward_fp8 (validate_forward_fp8's rules), but
// z_amax must be null (no amax is computed). With t.saved the GEMMs write H there (cublas2: G and U
// as its halves), else into scratch. B == 0 plans a no-op.
//
// create() copies the scales into scratch in cuBLASLt's layouts (through the host, synchronously:
// whatever wrote them must have finished), outside any timed region; run() reads those copies, so
// a plan must be created again after the scales change. X, W and the bias are read by each run().
class Fp8Plan {
 public:
  Fp8Plan();
  ~Fp8Plan();
  Fp8Plan(Fp8Plan&&) noexcept;
  Fp8Plan& operator=(Fp8Plan&&) noexcept;

  static Status create(const Cublas& cublas, Variant v, const Fp8Problem& p, const Fp8Tensors& t,
                       void* scratch, Fp8Plan* out);
  // Enqueues the GEMM(s), the gate and the quantisation on `stream`.
  Status run(cudaStream_t stream) const;
  // The scale modes and the cuBLASLt algorithm of each GEMM (LtGemm::describe), for reports.
  std::string algorithms() const;
  // The most partial sums of G or U it rounds to p.out (LtGemm::output_type_slices).
  int output_type_slices() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swiglu::baselines
