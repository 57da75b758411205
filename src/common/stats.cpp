#include "common/stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace swiglu::common {

double quantile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) throw std::invalid_argument("quantile of an empty sample");
  if (!(q >= 0.0 && q <= 1.0)) {
    throw std::invalid_argument(fmt::format("quantile {} not in [0, 1]", q));
  }
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  const double frac = h - static_cast<double>(lo);
  return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return quantile_sorted(samples, 0.5);
}

Summary summarize(std::vector<double> samples) {
  if (samples.empty()) throw std::invalid_argument("summarize: no samples");
  double sum = 0;
  for (const double s : samples) {
    if (!std::isfinite(s)) {
      throw std::invalid_argument(fmt::format("summarize: sample {} is not finite", s));
    }
    sum += s;
  }
  std::sort(samples.begin(), samples.end());
  Summary out;
  out.n = samples.size();
  out.median = quantile_sorted(samples, 0.5);
  out.p25 = quantile_sorted(samples, 0.25);
  out.p75 = quantile_sorted(samples, 0.75);
  out.iqr = out.p75 - out.p25;
  out.rel_noise = out.median > 0 ? out.iqr / out.median : std::nan("");
  out.min = samples.front();
  out.max = samples.back();
  out.mean = sum / static_cast<double>(samples.size());
  return out;
}

double geomean(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("geomean: no values");
  double log_sum = 0;
  for (const double v : values) {
    if (!(v > 0) || !std::isfinite(v)) {
      throw std::invalid_argument(
          fmt::format("geomean: value {} is not a positive finite number", v));
    }
    log_sum += std::log(v);
  }
  return std::exp(log_sum / static_cast<double>(values.size()));
}

std::string throttle_note(double sm_clock_mhz, int max_sm_clock_mhz) {
  if (!(sm_clock_mhz > 0) || max_sm_clock_mhz <= 0) return {};
  const double fraction = sm_clock_mhz / max_sm_clock_mhz;
  if (fraction >= kThrottledClockFraction) return {};
  return fmt::format("throttled: SM clock {:.0f} MHz, {:.0f}% of the {} MHz maximum", sm_clock_mhz,
                     100 * fraction, max_sm_clock_mhz);
}

}  // namespace swiglu::common
