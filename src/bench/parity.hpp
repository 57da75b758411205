// Parity: how far an output is from its higher-precision reference, and whether the variant's
// arithmetic explains it. TESTING.md, "Tolerances", derives the model:
//   per element   |got − ref| ≤ atol + rtol·|ref|,   atol = atol_rms · rms(ref)
//   aggregate     rel_l2 = ‖got − ref‖₂ / ‖ref‖₂ ≤ rel_l2
// rtol comes from the roundings of the output itself (relative), atol from the errors the dot
// products carry (absolute, of the order of their terms' magnitude: operand rounding, fp32
// accumulation over K, intermediate results stored in the dtype).
// A non-finite output where the reference is finite fails at once; a non-finite reference element
// passes only when the output is the same (NaN for NaN, the same infinity).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

struct Tolerance {
  double rtol = 0;      // per element, relative to |ref|
  double atol_rms = 0;  // per element, absolute, in units of rms(ref)
  double rel_l2 = 0;    // aggregate
  double atol_min = 0;  // atol's floor: half the spacing of the dtype's subnormals (fp16's 2^-25)
};

// The roundings to the dtype a variant performs on sums before its checked output.
struct Rounding {
  int stored = 0;  // G and U stored in the dtype before the gate: 0 (the fused kernel) or 1 (baselines)
  int slices = 1;  // split-K slices reduced in the dtype (cuBLASLt's in-place or output-type reduction)
};
inline constexpr Rounding kFusedRounding{0, 1};

// Z of a forward with reduction length k (I, plus one for the bias).
Tolerance tolerance(DType dtype, Math math, int64_t k, Rounding rounding);
Tolerance tolerance(const Problem& p, Rounding rounding);
// Z of the FP8 forward (dtype e4m3, run_fp8.hpp) against a reference on the dequantised operands:
// k products summed by the FP8 tensor cores, which keep 13 bits below an instruction's largest term
// and are promoted to fp32 every 128 of K (screened at 2^-12·√k of the terms' ℓ2 norm); G and U stored in `stored` by the baselines (rounding.stored); Z rounded to `z` (e4m3: 2^-4
// relative, and near zero its block scale's subnormal step). TESTING.md, "FP8", derives it.
Tolerance fp8_tolerance(int64_t k, DType z, DType stored, Rounding rounding);
// A gradient of the FP8 backward (dtype e4m3; swiglu.hpp, "FP8 backward") whose GEMM reduces over k
// (dX: 2D; dW and dbias: B), written in `out` (bf16 or fp16, as dZ and H), against a reference on the
// dequantised X, Xᵀ and W12: dH rounded to e4m3 (2^-4 relative, and its block's subnormal step),
// computed from H in `out` that carries the FP8 forward's error over forward_k (I, plus one with the
// bias); the FP8 tensor cores' sum over k; rounding.stored: dH also stored in `out` before its
// quantisation (the baselines), rounding.slices: split-K slices reduced in `out`. TESTING.md, "FP8
// gradients", derives it.
Tolerance fp8_gradient_tolerance(int64_t k, int64_t forward_k, DType out, Rounding rounding);
// A gradient whose GEMM reduces over k (dX: 2D; dW and dbias: B), with `slices` of it reduced in the
// dtype. Every variant rounds dH to the dtype, and computes it from G and U that carry the forward's
// error (and its rounding to the dtype, for the save policy and the baselines).
Tolerance gradient_tolerance(const Problem& p, int64_t k, int slices = 1);

struct ParityResult {
  double rel_l2 = 0, max_abs = 0;
  // max |got − ref| / max(|ref|, rms(ref)): information only (a results column), not the rule.
  double max_rel = 0;
  // max |got − ref| / (atol + rtol·|ref|): above 1 somewhere means the element rule failed.
  double worst_ratio = 0;
  int64_t worst_index = -1;  // the element furthest over its bound (the first non-finite mismatch)
  double worst_got = 0, worst_expected = 0;
  int64_t mismatched_nonfinite = 0;  // elements whose finiteness disagrees with the reference
  Tolerance tol;
  double atol = 0;  // tol.atol_rms · rms(ref)
  bool pass = false;
  // How far over the tolerance, the larger of the two rules (≤ 1 passes; inf for non-finite).
  double severity() const;
  std::string summary() const;    // the metrics and the worst element
  std::string tolerance() const;  // the bounds it was held to
};

ParityResult compare(std::span<const float> got, std::span<const double> expected, Tolerance tol);
ParityResult compare(std::span<const float> got, std::span<const float> expected, Tolerance tol);

}  // namespace swiglu::bench
