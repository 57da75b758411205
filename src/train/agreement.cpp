#include "train/agreement.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace swiglu::train {

Agreement compare_step_losses(const std::vector<std::vector<double>>& reference,
                              const std::vector<std::vector<double>>& variant, double tolerance) {
  Agreement a;
  a.tolerance = tolerance;
  const size_t epochs = std::min(reference.size(), variant.size());
  double sum = 0;
  for (size_t e = 0; e < epochs; ++e) {
    if (reference[e].size() != variant[e].size()) {
      a.reason = fmt::format("epoch {} has {} steps in one run and {} in the other", e + 1,
                             reference[e].size(), variant[e].size());
      a.max_diff = std::numeric_limits<double>::quiet_NaN();
      return a;
    }
    for (size_t s = 0; s < reference[e].size(); ++s) {
      const double r = reference[e][s], v = variant[e][s];
      ++a.steps;
      if (!std::isfinite(r) || !std::isfinite(v)) {
        a.reason = fmt::format("the loss at epoch {} step {} is not finite ({} and {})", e + 1,
                               s + 1, r, v);
        a.max_diff = std::numeric_limits<double>::quiet_NaN();
        a.epoch = static_cast<int>(e + 1);
        a.step = static_cast<int64_t>(s + 1);
        return a;
      }
      const double d = std::fabs(v - r);
      sum += d;
      if (d > a.max_diff || a.epoch == 0) {
        a.max_diff = d;
        a.epoch = static_cast<int>(e + 1);
        a.step = static_cast<int64_t>(s + 1);
      }
    }
  }
  if (a.steps == 0) {
    a.reason = "no training step to compare";
    return a;
  }
  a.mean_diff = sum / static_cast<double>(a.steps);
  a.agree = a.max_diff <= tolerance;
  if (!a.agree) {
    a.reason = fmt::format("max |difference| {:.3g} at epoch {} step {} exceeds the tolerance {:.3g}",
                           a.max_diff, a.epoch, a.step, tolerance);
  }
  return a;
}

}  // namespace swiglu::train
