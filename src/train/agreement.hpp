// The agreement check of `swiglubench train`: two variants trained from the same seed see the same
// batches in the same order from the same initial weights, so their per-step training losses must
// agree to within what the SwiGLU layer's rounding explains (agreement_tolerance()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swiglu::train {

struct Agreement {
  std::string reference, variant;
  int64_t steps = 0;       // steps compared
  double max_diff = 0;     // max over steps of |loss(variant) − loss(reference)|; NaN when non-finite
  double mean_diff = 0;    // mean of the same
  int epoch = 0;           // where max_diff is, from 1 (0: no steps)
  int64_t step = 0;        // from 1, within the epoch
  double tolerance = 0;
  bool agree = false;
  std::string reason;      // why not, when !agree
};

// Compares per-step losses epoch by epoch (losses[e][s]: epoch e + 1, step s + 1), over the epochs
// and steps both have. A non-finite loss in either, a different step count in a shared epoch, or no
// step at all is a disagreement; so is max_diff > tolerance.
Agreement compare_step_losses(const std::vector<std::vector<double>>& reference,
                              const std::vector<std::vector<double>>& variant, double tolerance);

}  // namespace swiglu::train
