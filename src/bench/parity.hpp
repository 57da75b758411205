// Parity: how far an output is from its reference, and whether that is within tolerance.
//
// Metrics (TESTING.md explains the tolerances):
//   rel_l2  = ‖out − ref‖₂ / ‖ref‖₂ over the finite reference elements
//   max_abs = max |out − ref|
//   max_rel = max |out − ref| / max(|ref|, floor), floor = rms(ref), so that outputs near zero
//             (SiLU(g)·u crosses zero often) do not turn rounding noise into huge ratios
//   worst   = the element with the largest relative error (index, got, expected)
// A non-finite output where the reference is finite fails at once; a non-finite reference element
// passes only when the output is the same (NaN for NaN, the same infinity).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

struct Tolerance {
  double rel_l2;
  double max_rel;
};

// Per-dtype tolerance that both the fused kernel and the baselines (which round G and U to the
// input dtype before the gate) must meet. See TESTING.md.
Tolerance tolerance(DType dtype, Math math);

// Per-dtype tolerance of the gradients dX, dW12 and dbias (backward, step, memory), which every
// variant must meet against the fp64 (or fp32 GPU) reference. Looser than tolerance(): see
// parity.cpp and TESTING.md.
Tolerance gradient_tolerance(DType dtype, Math math);

struct ParityResult {
  double rel_l2 = 0, max_abs = 0, max_rel = 0;
  int64_t worst_index = -1;
  double worst_got = 0, worst_expected = 0;
  int64_t mismatched_nonfinite = 0;  // elements whose finiteness disagrees with the reference
  bool pass = false;
  std::string summary() const;  // one line: the metrics and the worst element
};

ParityResult compare(std::span<const float> got, std::span<const double> expected, Tolerance tol);
ParityResult compare(std::span<const float> got, std::span<const float> expected, Tolerance tol);

}  // namespace swiglu::bench
