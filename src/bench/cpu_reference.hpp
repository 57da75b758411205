// The fp64 CPU reference: Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb) computed in double from the exact
// input values. Used for shapes small enough to compute on the host (see parity.hpp).
#pragma once

#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

double silu(double g);

// x: B×ldx values, w: weights in p.layout, bias: 2D values or empty. Returns B×D row-major.
// Spreads rows over `threads` host threads (0: all hardware threads).
std::vector<double> cpu_reference(const Problem& p, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& bias,
                                  unsigned threads = 0);

}  // namespace swiglu::bench
