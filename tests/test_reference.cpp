// Host tests of the fp64 CPU reference, the parity metrics and the seeded input data, against values
// computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "bench/cpu_reference.hpp"
#include "bench/host_data.hpp"
#include "bench/parity.hpp"

namespace swiglu::bench {
namespace {

Problem tiny(Layout layout, bool bias) {
  Problem p;
  p.batch = 1;
  p.in_features = 2;
  p.hidden = 1;
  p.dtype = DType::f32;
  p.layout = layout;
  p.bias = bias;
  return p;
}

// x = [1, 2], Wa = [0.5, -0.25], Wb = [1, 1], ba = 0.1, bb = -0.5:
// G = 0.5 - 0.5 + 0.1 = 0.1, U = 3 - 0.5 = 2.5, Z = 0.1 / (1 + e^-0.1) · 2.5 = 0.13124479671...
constexpr double kTinyZ = 0.1312447967;

TEST(CpuReference, HandComputedLinearLayout) {
  const std::vector<float> x{1, 2}, w{0.5f, -0.25f, 1, 1}, b{0.1f, -0.5f};
  const auto z = cpu_reference(tiny(Layout::linear, true), x, w, b);
  ASSERT_EQ(z.size(), 1u);
  // 0.1f is not 0.1: allow for the float inputs.
  EXPECT_NEAR(z[0], kTinyZ, 1e-8);
}

TEST(CpuReference, HandComputedPackedLayout) {
  // Wf is I×2D: row k = [Wa[0][k], Wb[0][k]].
  const std::vector<float> x{1, 2}, wf{0.5f, 1, -0.25f, 1}, b{0.1f, -0.5f};
  const auto z = cpu_reference(tiny(Layout::packed, true), x, wf, b);
  EXPECT_NEAR(z[0], kTinyZ, 1e-8);
}

TEST(CpuReference, NoBiasAndRowStride) {
  // B=2, I=1, D=2, ldx=3: x rows are x[0] = 2 and x[3] = -1 (the padding must be ignored).
  Problem p;
  p.batch = 2;
  p.in_features = 1;
  p.hidden = 2;
  p.ldx = 3;
  p.dtype = DType::f32;
  const std::vector<float> x{2, 99, 99, -1};
  const std::vector<float> w{1, -1, 3, 0.5f};  // Wa rows: [1], [-1]; Wb rows: [3], [0.5]
  const auto z = cpu_reference(p, x, w, {});
  ASSERT_EQ(z.size(), 4u);
  EXPECT_NEAR(z[0], silu(2.0) * 6.0, 1e-12);   // G=2,  U=6
  EXPECT_NEAR(z[1], silu(-2.0) * 1.0, 1e-12);  // G=-2, U=1
  EXPECT_NEAR(z[2], silu(-1.0) * -3.0, 1e-12); // G=-1, U=-3
  EXPECT_NEAR(z[3], silu(1.0) * -0.5, 1e-12);  // G=1,  U=-0.5
  EXPECT_NEAR(silu(2.0), 2.0 / (1.0 + std::exp(-2.0)), 1e-15);
}

TEST(CpuReference, SiluAtTheExtremes) {
  EXPECT_EQ(silu(0.0), 0.0);
  EXPECT_NEAR(silu(100.0), 100.0, 1e-12);
  EXPECT_NEAR(silu(-100.0), -100.0 * std::exp(-100.0), 1e-50);
  EXPECT_EQ(silu(-1000.0), -0.0);
  EXPECT_TRUE(std::isnan(silu(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_EQ(silu(std::numeric_limits<double>::infinity()), std::numeric_limits<double>::infinity());
}

TEST(CpuReference, ThreadCountDoesNotChangeTheResult) {
  Problem p;
  p.batch = 37;
  p.in_features = 19;
  p.hidden = 5;
  p.bias = true;
  p.dtype = DType::f32;
  const auto x = uniform_values(37 * 19, -1, 1, 1, DType::f32);
  const auto w = uniform_values(2 * 5 * 19, -1, 1, 2, DType::f32);
  const auto b = uniform_values(10, -1, 1, 3, DType::f32);
  EXPECT_EQ(cpu_reference(p, x, w, b, 1), cpu_reference(p, x, w, b, 7));
}

TEST(CpuReference, RejectsBuffersOfTheWrongSize) {
  EXPECT_THROW(cpu_reference(tiny(Layout::linear, false), {1}, {1, 2, 3, 4}, {}), std::invalid_argument);
}

TEST(Parity, HandComputedMetrics) {
  // ref = [3, -4] (‖ref‖ = 5, rms = sqrt(12.5)), got = [3, -3]: diff = [0, 1].
  const std::vector<double> ref{3, -4};
  const std::vector<float> got{3, -3};
  const auto r = compare(got, ref, Tolerance{1, 1});
  EXPECT_DOUBLE_EQ(r.rel_l2, 0.2);
  EXPECT_DOUBLE_EQ(r.max_abs, 1.0);
  EXPECT_DOUBLE_EQ(r.max_rel, 0.25);  // |1| / max(4, 3.54)
  EXPECT_EQ(r.worst_index, 1);
  EXPECT_EQ(r.worst_got, -3);
  EXPECT_EQ(r.worst_expected, -4);
  EXPECT_TRUE(r.pass);
  EXPECT_FALSE(compare(got, ref, Tolerance{0.1, 1}).pass);
  EXPECT_FALSE(compare(got, ref, Tolerance{1, 0.2}).pass);
}

TEST(Parity, FloorKeepsNearZeroElementsFromDominating) {
  // ref has one tiny element; an absolute error of 1e-4 there is judged against rms(ref) ≈ 0.816.
  const std::vector<double> ref{1, -1, 1e-9};
  const std::vector<float> got{1, -1, 1e-4f};
  const auto r = compare(got, ref, Tolerance{1, 1});
  EXPECT_NEAR(r.max_rel, (static_cast<double>(1e-4f) - 1e-9) / std::sqrt(2.0 / 3.0), 1e-12);
}

TEST(Parity, UnwrittenOutputFails) {
  // The poison value: a NaN where the reference is finite.
  const std::vector<double> ref{1, 2, 3};
  const std::vector<float> got{1, std::numeric_limits<float>::quiet_NaN(), 3};
  const auto r = compare(got, ref, tolerance(DType::f32, Math::exact));
  EXPECT_FALSE(r.pass);
  EXPECT_EQ(r.worst_index, 1);
  EXPECT_EQ(r.mismatched_nonfinite, 1);
}

TEST(Parity, MatchingNonFiniteValuesPass) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> ref{1, std::nan(""), -inf};
  const std::vector<float> got{1, std::nanf(""), -std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(compare(got, ref, tolerance(DType::f32, Math::exact)).pass);
  const std::vector<float> wrong{1, std::nanf(""), std::numeric_limits<float>::infinity()};
  EXPECT_FALSE(compare(wrong, ref, tolerance(DType::f32, Math::exact)).pass);
}

TEST(Parity, TolerancesTightenWithPrecision) {
  EXPECT_LT(tolerance(DType::f32, Math::exact).rel_l2, tolerance(DType::f32, Math::tf32).rel_l2);
  EXPECT_LT(tolerance(DType::f16, Math::exact).rel_l2, tolerance(DType::bf16, Math::exact).rel_l2);
}

TEST(HostData, SeededAndRoundedToTheDtype) {
  const auto a = uniform_values(1000, -1, 1, 42, DType::bf16);
  const auto b = uniform_values(1000, -1, 1, 42, DType::bf16);
  const auto c = uniform_values(1000, -1, 1, 43, DType::bf16);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double sum = 0;
  for (float v : a) {
    EXPECT_GE(v, -1.0f);
    EXPECT_LE(v, 1.0f);
    EXPECT_EQ(v, round_to(v, DType::bf16));
    sum += v;
  }
  EXPECT_LT(std::fabs(sum / 1000), 0.1);  // roughly centred: not a constant pattern
  const auto bytes = to_dtype_bytes(a, DType::bf16);
  EXPECT_EQ(from_dtype_bytes(bytes.data(), a.size(), DType::bf16), a);
}

TEST(HostData, PoisonIsNaNInEveryDtype) {
  const std::vector<unsigned char> poison(8, kPoisonByte);
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    EXPECT_TRUE(std::isnan(from_dtype_bytes(poison.data(), 1, t)[0])) << to_string(t);
  }
}

}  // namespace
}  // namespace swiglu::bench
