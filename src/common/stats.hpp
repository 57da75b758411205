// Robust summaries of timing samples. Quantiles interpolate linearly between order statistics, as
// numpy.quantile's default ("linear"), so an even count's median averages the two middle samples.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace swiglu::common {

struct Summary {
  size_t n = 0;
  double median = 0, p25 = 0, p75 = 0;
  double iqr = 0;        // p75 - p25
  double rel_noise = 0;  // iqr / median; NaN when the median is not positive
  double min = 0, max = 0, mean = 0;
};

// Throws std::invalid_argument on an empty input or a non-finite sample.
Summary summarize(std::vector<double> samples);

// The q-quantile (0 <= q <= 1) of already sorted, non-empty samples.
double quantile_sorted(const std::vector<double>& sorted, double q);

// The median (the 0.5 quantile) of unsorted samples. Throws std::invalid_argument when empty.
double median(std::vector<double> samples);

// exp(mean(log v)). Throws std::invalid_argument on an empty input or a value that is not a
// positive finite number.
double geomean(const std::vector<double>& values);

// A timed row's SM clock (the median of the NVML reads taken while it was sampled) below this
// fraction of the device's maximum is reported: its times are slower than the card's at full clock,
// though ratios taken in the same run still hold, since interleaved variants share the clock.
inline constexpr double kThrottledClockFraction = 0.9;

// "throttled: SM clock 1455 MHz, 73% of the 1980 MHz maximum" when sm_clock_mhz is below
// kThrottledClockFraction of max_sm_clock_mhz; empty when it is not, or when either is unknown
// (not positive, or NaN).
std::string throttle_note(double sm_clock_mhz, int max_sm_clock_mhz);

}  // namespace swiglu::common
