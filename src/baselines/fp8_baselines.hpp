// The FP8 baselines: what a user runs today for forward_fp8 (swiglu.hpp, "FP8 forward") and, below,
// for backward_fp8, on the same e4m3 operands and fp32 scales, as the variants of cublas_baselines.hpp:
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

// ---- the FP8 backward's baselines -----------------------------------------------------------------
//
// What a user runs for backward_fp8 (swiglu.hpp, "FP8 backward") unfused, in the same blockwise
// recipe, from the H = [G | U] a forward kept (Fp8Plan's or forward_fp8's `saved`) and the forward's
// transposed e4m3 copies W12ᵀ and Xᵀ (the header's layouts):
//
//   1. the gate backward kernel: dH = [dG | dU] in p.out from dZ and H (the bf16 baselines' own);
//   2. quantize_e4m3_transposed of dH: 1×128 blocks along 2D (dX's operand) and dHᵀ with 1×128
//      blocks along B (dW's), in one pass;
//   3. dH's and dHᵀ's scales copied into cuBLASLt's 1×128 layout (cublasLtMatrixTransform, below);
//   4. dX = dH·W12 (K = 2D): cuBLASLt's A is W12ᵀ with 128×128 block scales, its B dH with 1×128;
//   5. dW12 = dHᵀ·X (K = B): A is Xᵀ, B is dHᵀ, both with 1×128 scales along B; K is taken up to a
//      multiple of 16 over zero columns (Transformer Engine pads K likewise), so Xᵀ's padding
//      columns [B, round_up(B, 16)) must hold zeros (e4m3 +0) when B % 16 != 0;
//   6. dbias: the column sum of dH, accumulated in fp32.
//
//   cublas2: dG and dU apart, as the bf16 cublas2's backward: each half quantised on its own,
//            dX = dG·Wa then dX += dU·Wb (beta = 1), dWa = dGᵀ·X and dWb = dUᵀ·X.
//   cublas1: dH as one B×2D matrix: one dX GEMM over K = 2D, which needs D % 128 == 0 (no 128×128
//            block of W12ᵀ, nor 1×128 block of dH, across the Wa/Wb halves), and one dW GEMM.
//
// Which scale copies are timed: those of dH and dHᵀ (step 3) change every step, so run() makes them,
// as the unfused pipeline must; those of W12ᵀ and Xᵀ come with the forward's quantisation in
// training (fixed operands here), so create() makes them once, through the host, as Fp8Plan does.
// The library's scales are row-major (row, K block); cuBLASLt's 1×128 layout is (K block, row) with
// rows padded to a multiple of 4, its 128×128 layout (row block, K block) with K blocks padded to
// a multiple of 4 (fp8_baselines.cpp). What cuBLASLt turns down (for instance B not a multiple of 8
// with dH's 1×128 scales as its B operand) is StatusCode::unsupported with the reason.

// Device bytes the plan needs (dH in p.out, dH and dHᵀ in e4m3, their scales in both layouts, the
// fixed operands' scale copies) for the gradients `grads` (dx: dX; dw: dW12; dbias needs dH alone). At least
// backward_fp8_workspace_bytes(p), so that create() checks its arguments with validate_backward_fp8,
// the scratch in the workspace's place. 0 for B <= 0.
size_t fp8_backward_scratch_bytes(Variant v, const Fp8Problem& p, Grads grads);

// One FP8 backward baseline bound to its buffers: t as for backward_fp8 (validate_backward_fp8's
// rules; dx, dw and dbias each computed when set; accumulate_dw adds dW12 through beta = 1). B == 0
// plans a no-op that writes nothing (not even the zeros dW and dbias would be), as BackwardPlan.
// create() copies W12ᵀ's and Xᵀ's scales (synchronously, through the host: whatever wrote them must
// have finished) and zeroes the padding it reads; run() reads dZ and H each time.
class Fp8BackwardPlan {
 public:
  Fp8BackwardPlan();
  ~Fp8BackwardPlan();
  Fp8BackwardPlan(Fp8BackwardPlan&&) noexcept;
  Fp8BackwardPlan& operator=(Fp8BackwardPlan&&) noexcept;

  static Status create(const Cublas& cublas, Variant v, const Fp8Problem& p, const Fp8BackwardTensors& t,
                       void* scratch, Fp8BackwardPlan* out);
  // Enqueues the gate backward, the quantisation, the scale copies, the GEMMs and dbias's sum.
  Status run(cudaStream_t stream) const;
  // The scale modes and the cuBLASLt algorithm of each GEMM, for reports.
  std::string algorithms() const;
  // Partial sums of dX (of dW) rounded to their output type: the GEMMs' output-type split-K slices,
  // cublas2's two dX GEMMs added up (the second adds onto the first's output).
  int dx_slices() const;
  int dw_slices() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swiglu::baselines
