// The fp64 CPU reference: Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb) computed in double from the exact
// input values. Used for shapes small enough to compute on the host (see parity.hpp).
#pragma once

#include <span>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

double silu(double g);

// x: B×ldx values, w: weights in p.layout, bias: 2D values or empty. Returns B×D row-major.
// Spreads rows over `threads` host threads (0: all hardware threads).
std::vector<double> cpu_reference(const Problem& p, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& bias,
                                  unsigned threads = 0);

// fp64 gradients of the same layer for a given dZ (B×D values):
//   dx: B×I row-major (row stride I), dw: in p.layout (2D×I or I×2D), dbias: 2D values (empty when
//   !p.bias). See swiglu.hpp (backward) for the formulas. x_dw, when not empty, is the X that
//   dW12 = dHᵀ·X multiplies (B×ldx values, as x), where it differs from the forward's: the FP8
//   recipe quantises X for its forward in 1×128 blocks along I and for dW (Xᵀ) along B.
struct CpuGrads {
  std::vector<double> dx, dw, dbias;
};
CpuGrads cpu_reference_backward(const Problem& p, const std::vector<float>& x,
                                const std::vector<float>& w, const std::vector<float>& bias,
                                const std::vector<float>& dz, unsigned threads = 0,
                                std::span<const float> x_dw = {});

}  // namespace swiglu::bench
