// Timing summaries (stats.hpp), against values computed by hand (numpy's "linear" quantiles).
#include "common/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace swiglu::common {
namespace {

TEST(Summarize, OddCount) {
  // Sorted: 1 2 3 4 5. p25 at h = 1 -> 2, median at h = 2 -> 3, p75 at h = 3 -> 4.
  const Summary s = summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.n, 5u);
  EXPECT_DOUBLE_EQ(s.median, 3.0);
  EXPECT_DOUBLE_EQ(s.p25, 2.0);
  EXPECT_DOUBLE_EQ(s.p75, 4.0);
  EXPECT_DOUBLE_EQ(s.iqr, 2.0);
  EXPECT_DOUBLE_EQ(s.rel_noise, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 5.0);
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
}

TEST(Summarize, EvenCountInterpolates) {
  // Sorted: 1 2 4 8. h(0.25) = 0.75 -> 1 + 0.75·1 = 1.75; h(0.5) = 1.5 -> 3; h(0.75) = 2.25 ->
  // 4 + 0.25·4 = 5. numpy.quantile([1, 2, 4, 8], [0.25, 0.5, 0.75]) = [1.75, 3, 5].
  const Summary s = summarize({8, 2, 4, 1});
  EXPECT_EQ(s.n, 4u);
  EXPECT_DOUBLE_EQ(s.p25, 1.75);
  EXPECT_DOUBLE_EQ(s.median, 3.0);
  EXPECT_DOUBLE_EQ(s.p75, 5.0);
  EXPECT_DOUBLE_EQ(s.iqr, 3.25);
  EXPECT_DOUBLE_EQ(s.rel_noise, 3.25 / 3.0);
  EXPECT_DOUBLE_EQ(s.mean, 3.75);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 8.0);
}

TEST(Summarize, TwoSamples) {
  const Summary s = summarize({10, 20});
  EXPECT_DOUBLE_EQ(s.p25, 12.5);
  EXPECT_DOUBLE_EQ(s.median, 15.0);
  EXPECT_DOUBLE_EQ(s.p75, 17.5);
  EXPECT_DOUBLE_EQ(s.rel_noise, 5.0 / 15.0);
}

TEST(Summarize, OneSample) {
  const Summary s = summarize({0.25});
  EXPECT_EQ(s.n, 1u);
  EXPECT_DOUBLE_EQ(s.median, 0.25);
  EXPECT_DOUBLE_EQ(s.p25, 0.25);
  EXPECT_DOUBLE_EQ(s.p75, 0.25);
  EXPECT_DOUBLE_EQ(s.iqr, 0.0);
  EXPECT_DOUBLE_EQ(s.rel_noise, 0.0);
  EXPECT_DOUBLE_EQ(s.min, 0.25);
  EXPECT_DOUBLE_EQ(s.max, 0.25);
  EXPECT_DOUBLE_EQ(s.mean, 0.25);
}

TEST(Summarize, OutlierDoesNotMoveTheMedian) {
  // Eleven samples, one 100x outlier: p25 = x[2.5], median = x[5], p75 = x[7.5].
  const Summary s = summarize({1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 100.0});
  EXPECT_DOUBLE_EQ(s.median, 1.5);
  EXPECT_NEAR(s.p25, 1.25, 1e-12);
  EXPECT_NEAR(s.p75, 1.75, 1e-12);
  EXPECT_NEAR(s.rel_noise, 0.5 / 1.5, 1e-12);
  EXPECT_DOUBLE_EQ(s.max, 100.0);
  EXPECT_NEAR(s.mean, 114.5 / 11.0, 1e-12);
}

TEST(Summarize, ZeroMedianGivesNaNNoise) {
  const Summary s = summarize({0, 0, 0});
  EXPECT_TRUE(std::isnan(s.rel_noise));
}

TEST(Summarize, RejectsEmptyAndNonFinite) {
  EXPECT_THROW(summarize({}), std::invalid_argument);
  EXPECT_THROW(summarize({1.0, std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
  EXPECT_THROW(summarize({std::numeric_limits<double>::infinity()}), std::invalid_argument);
}

TEST(Quantile, Endpoints) {
  const std::vector<double> v = {1, 2, 3, 10};
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 1.0), 10.0);
  EXPECT_DOUBLE_EQ(quantile_sorted(v, 0.9), 3.0 + 0.7 * 7.0);  // h = 2.7
  EXPECT_THROW(quantile_sorted(v, 1.5), std::invalid_argument);
  EXPECT_THROW(quantile_sorted({}, 0.5), std::invalid_argument);
}

TEST(Geomean, Values) {
  EXPECT_DOUBLE_EQ(geomean({4.0}), 4.0);
  EXPECT_NEAR(geomean({1.0, 4.0}), 2.0, 1e-12);
  EXPECT_NEAR(geomean({2.0, 8.0, 4.0}), 4.0, 1e-12);
  EXPECT_NEAR(geomean({0.5, 2.0}), 1.0, 1e-12);
}

TEST(Geomean, RejectsEmptyAndNonPositive) {
  EXPECT_THROW(geomean({}), std::invalid_argument);
  EXPECT_THROW(geomean({1.0, 0.0}), std::invalid_argument);
  EXPECT_THROW(geomean({1.0, -2.0}), std::invalid_argument);
  EXPECT_THROW(geomean({std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
  EXPECT_THROW(geomean({std::numeric_limits<double>::infinity()}), std::invalid_argument);
}

TEST(ThrottleNote, BelowTheFractionOfTheMaximum) {
  // 1455 / 1980 = 0.7348...: reported, rounded to whole MHz and percent.
  EXPECT_EQ(throttle_note(1455.0, 1980), "throttled: SM clock 1455 MHz, 73% of the 1980 MHz maximum");
  // Just under 0.9 of 1000 MHz.
  EXPECT_EQ(throttle_note(899.0, 1000), "throttled: SM clock 899 MHz, 90% of the 1000 MHz maximum");
}

TEST(ThrottleNote, AtOrAboveTheFractionOrUnknown) {
  EXPECT_EQ(throttle_note(900.0, 1000), "");    // exactly 0.9
  EXPECT_EQ(throttle_note(1980.0, 1980), "");
  EXPECT_EQ(throttle_note(2010.0, 1980), "");   // a boost above the attribute's maximum
  EXPECT_EQ(throttle_note(-1.0, 1980), "");     // NVML could not read the clock
  EXPECT_EQ(throttle_note(std::numeric_limits<double>::quiet_NaN(), 1980), "");
  EXPECT_EQ(throttle_note(1455.0, 0), "");      // the maximum unknown
}

}  // namespace
}  // namespace swiglu::common
