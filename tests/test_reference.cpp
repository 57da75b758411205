// Host tests of the fp64 CPU reference, the parity metrics and the seeded input data, against values
// computed by hand; the tolerances' order and the baselines' compute type per math mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/parity.hpp"
#include "common/host_data.hpp"

namespace swiglu::bench {
namespace {

using common::uniform_values;
using common::to_dtype_bytes;
using common::from_dtype_bytes;
using common::round_to;
using common::kPoisonByte;

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

// --- the fp64 backward reference against finite differences -------------------------------------
//
// L(x, w, bias) = Σ Z ⊙ dZ for a fixed random dZ, so ∂L/∂θ is the gradient the backward computes.
// Each input element θ is moved by ±h and ±h/2 and L is recomputed with the fp64 forward reference;
// Richardson's (4·D(h/2) − D(h))/3 of the central differences D(h) = (L(θ+h) − L(θ−h))/2h has an
// O(h⁴) truncation error (≈ 1e-12 at h = 2⁻¹⁰), so the only errors left are the double rounding
// of L over 2h (≈ 1e-13) and the reference's own, far below the 1e-6 tolerance.
// The inputs are floats: they are quantised to multiples of 2⁻¹² with |θ| < 4, so θ ± 2⁻¹⁰ and
// θ ± 2⁻¹¹ are exact floats (at most 15 significant bits) and the step is exactly the one divided by.

constexpr double kQuantum = 0x1.0p-12;
constexpr float kStep = 0x1.0p-10f;
constexpr double kFdTolerance = 1e-6;

std::vector<float> quantised(size_t n, float lo, float hi, uint64_t seed) {
  std::vector<float> v = uniform_values(n, lo, hi, seed, DType::f32);
  for (float& f : v) f = static_cast<float>(std::round(f / kQuantum) * kQuantum);
  return v;
}

struct FdInputs {
  Problem p;
  std::vector<float> x, w, bias, dz;
};

// B=3, I=5, D=4. X ~ U(−2, 2) and W, bias ~ U(−1, 1): G spreads over about ±3, where SiLU is far
// from linear, so the gradient of the gate is really exercised.
FdInputs fd_inputs(Layout layout, bool bias, int64_t ldx_pad) {
  FdInputs in;
  in.p.batch = 3;
  in.p.in_features = 5;
  in.p.hidden = 4;
  in.p.dtype = DType::f32;
  in.p.layout = layout;
  in.p.bias = bias;
  in.p.ldx = in.p.in_features + ldx_pad;
  in.x = quantised(static_cast<size_t>(in.p.batch * in.p.x_stride()), -2, 2, 11);
  in.w = quantised(static_cast<size_t>(2 * in.p.hidden * in.p.in_features), -1, 1, 12);
  if (bias) in.bias = quantised(static_cast<size_t>(2 * in.p.hidden), -1, 1, 13);
  in.dz = uniform_values(static_cast<size_t>(in.p.batch * in.p.hidden), -1, 1, 14, DType::f32);
  return in;
}

double loss(const FdInputs& in) {
  const std::vector<double> z = cpu_reference(in.p, in.x, in.w, in.bias, 1);
  double l = 0;
  for (size_t i = 0; i < z.size(); ++i) l += z[i] * in.dz[i];
  return l;
}

// ∂L/∂θ for the input element `theta` (an element of one of in's vectors) by Richardson-extrapolated
// central differences.
double numeric_derivative(FdInputs& in, float& theta) {
  const float original = theta;
  const auto central = [&](float h) {
    theta = original + h;
    EXPECT_EQ(static_cast<double>(theta) - original, static_cast<double>(h)) << "step not exact";
    const double up = loss(in);
    theta = original - h;
    EXPECT_EQ(static_cast<double>(original) - theta, static_cast<double>(h)) << "step not exact";
    const double down = loss(in);
    theta = original;
    return (up - down) / (2.0 * h);
  };
  const double d1 = central(kStep), d2 = central(kStep / 2);
  return (4 * d2 - d1) / 3;
}

// The largest |analytic − numeric| / max(|numeric|, 1e-3·scale) over every element of dx, dw and
// dbias, where scale is the largest |numeric| seen: a relative error that does not blow up on
// gradients that happen to be near zero.
struct FdResult {
  double max_rel = 0;
  std::string worst;
};

FdResult finite_difference_check(FdInputs in, const CpuGrads& g) {
  const Problem& p = in.p;
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  struct Pair {
    std::string name;
    double analytic, numeric;
  };
  std::vector<Pair> pairs;
  for (int64_t m = 0; m < B; ++m)
    for (int64_t k = 0; k < I; ++k)
      pairs.push_back({"dx[" + std::to_string(m) + "][" + std::to_string(k) + "]", g.dx.at(m * I + k),
                       numeric_derivative(in, in.x[m * ldx + k])});
  for (size_t i = 0; i < static_cast<size_t>(2 * D * I); ++i)
    pairs.push_back({"dw[" + std::to_string(i) + "]", g.dw.at(i), numeric_derivative(in, in.w[i])});
  EXPECT_EQ(g.dbias.size(), p.bias ? static_cast<size_t>(2 * D) : 0u);
  for (size_t i = 0; p.bias && i < static_cast<size_t>(2 * D); ++i)
    pairs.push_back({"dbias[" + std::to_string(i) + "]", g.dbias.at(i), numeric_derivative(in, in.bias[i])});
  double scale = 0;
  for (const Pair& q : pairs) scale = std::max(scale, std::fabs(q.numeric));
  FdResult r;
  for (const Pair& q : pairs) {
    const double rel = std::fabs(q.analytic - q.numeric) / std::max(std::fabs(q.numeric), 1e-3 * scale);
    if (rel > r.max_rel || std::isnan(rel)) {
      r.max_rel = std::isnan(rel) ? INFINITY : rel;
      r.worst = q.name + ": analytic " + std::to_string(q.analytic) + ", numeric " + std::to_string(q.numeric);
    }
  }
  return r;
}

TEST(CpuReferenceBackward, MatchesFiniteDifferences) {
  for (Layout layout : {Layout::linear, Layout::packed}) {
    for (bool bias : {false, true}) {
      for (int64_t pad : {0, 3}) {
        SCOPED_TRACE(std::string(to_string(layout)) + (bias ? " bias" : " no bias") + " pad " + std::to_string(pad));
        const FdInputs in = fd_inputs(layout, bias, pad);
        const CpuGrads g = cpu_reference_backward(in.p, in.x, in.w, in.bias, in.dz);
        ASSERT_EQ(g.dx.size(), static_cast<size_t>(in.p.batch * in.p.in_features));
        ASSERT_EQ(g.dw.size(), in.w.size());
        const FdResult r = finite_difference_check(in, g);
        EXPECT_LT(r.max_rel, kFdTolerance) << r.worst;
      }
    }
  }
}

TEST(CpuReferenceBackward, FiniteDifferenceCheckCatchesAWrongGradient) {
  // The check above must be able to fail: in each output, the largest element off by 1e-5
  // relative (10× the tolerance), then a formula error (SiLU′ taken as sigmoid alone).
  const FdInputs in = fd_inputs(Layout::packed, true, 0);
  const CpuGrads good = cpu_reference_backward(in.p, in.x, in.w, in.bias, in.dz);
  ASSERT_LT(finite_difference_check(in, good).max_rel, kFdTolerance);
  for (int which = 0; which < 3; ++which) {
    CpuGrads bad = good;
    std::vector<double>& v = which == 0 ? bad.dx : which == 1 ? bad.dw : bad.dbias;
    const auto largest = std::max_element(v.begin(), v.end(), [](double a, double b) {
      return std::fabs(a) < std::fabs(b);
    });
    *largest *= 1 + 1e-5;
    EXPECT_GT(finite_difference_check(in, bad).max_rel, kFdTolerance) << "output " << which;
  }
  // dbias[n] = Σ_b dG[b][n] for n < D; with dG = dZ·U·s the check must fail by far.
  CpuGrads wrong = good;
  const std::vector<double> z = cpu_reference(in.p, in.x, in.w, in.bias, 1);
  for (int64_t n = 0; n < in.p.hidden; ++n) {
    double sum = 0;
    for (int64_t m = 0; m < in.p.batch; ++m) {
      double g = in.bias[n], u = in.bias[in.p.hidden + n];
      for (int64_t k = 0; k < in.p.in_features; ++k) {
        g += static_cast<double>(in.x[m * in.p.in_features + k]) * in.w[k * 2 * in.p.hidden + n];
        u += static_cast<double>(in.x[m * in.p.in_features + k]) * in.w[k * 2 * in.p.hidden + in.p.hidden + n];
      }
      sum += in.dz[m * in.p.hidden + n] * u / (1 + std::exp(-g));
    }
    wrong.dbias[n] = sum;
  }
  EXPECT_GT(finite_difference_check(in, wrong).max_rel, 1e-2);
}

TEST(CpuReferenceBackward, ThreadCountDoesNotChangeTheResult) {
  Problem p;
  p.batch = 37;
  p.in_features = 19;
  p.hidden = 5;
  p.bias = true;
  p.ldx = 21;
  p.dtype = DType::f32;
  const auto x = uniform_values(37 * 21, -1, 1, 1, DType::f32);
  const auto w = uniform_values(2 * 5 * 19, -1, 1, 2, DType::f32);
  const auto b = uniform_values(10, -1, 1, 3, DType::f32);
  const auto dz = uniform_values(37 * 5, -1, 1, 4, DType::f32);
  const CpuGrads a = cpu_reference_backward(p, x, w, b, dz, 1);
  const CpuGrads c = cpu_reference_backward(p, x, w, b, dz, 7);
  EXPECT_EQ(a.dx, c.dx);
  EXPECT_EQ(a.dw, c.dw);
  EXPECT_EQ(a.dbias, c.dbias);
}

// x_dw: the X that dW multiplies (the FP8 recipe's, quantised along B) stands in for x there alone.
TEST(CpuReferenceBackward, XOfDwIsItsOwn) {
  Problem p;
  p.batch = 9;
  p.in_features = 7;
  p.hidden = 3;
  p.bias = true;
  p.ldx = 8;
  p.dtype = DType::f32;
  const auto x = uniform_values(9 * 8, -1, 1, 5, DType::f32);
  const auto w = uniform_values(2 * 3 * 7, -1, 1, 6, DType::f32);
  const auto b = uniform_values(6, -1, 1, 7, DType::f32);
  const auto dz = uniform_values(9 * 3, -1, 1, 8, DType::f32);
  std::vector<float> x2(x.size());
  for (size_t e = 0; e < x.size(); ++e) x2[e] = 2 * x[e];  // exact
  const CpuGrads a = cpu_reference_backward(p, x, w, b, dz);
  const CpuGrads c = cpu_reference_backward(p, x, w, b, dz, 0, x2);
  EXPECT_EQ(a.dx, c.dx);
  EXPECT_EQ(a.dbias, c.dbias);
  ASSERT_EQ(a.dw.size(), c.dw.size());
  for (size_t e = 0; e < a.dw.size(); ++e) EXPECT_EQ(2 * a.dw[e], c.dw[e]) << e;
  x2.pop_back();
  EXPECT_THROW(cpu_reference_backward(p, x, w, b, dz, 0, x2), std::invalid_argument);
}

TEST(CpuReferenceBackward, HandComputed) {
  // The tiny problem of the forward tests with dZ = 2: G = 0.1, U = 2.5, s = sigmoid(0.1).
  const std::vector<float> x{1, 2}, w{0.5f, -0.25f, 1, 1}, b{0.1f, -0.5f}, dz{2};
  const Problem p = tiny(Layout::linear, true);
  const CpuGrads g = cpu_reference_backward(p, x, w, b, dz);
  const double gg = 0.5 - 0.5 + static_cast<double>(0.1f), u = 3 + static_cast<double>(-0.5f);
  const double s = 1 / (1 + std::exp(-gg));
  const double dg = 2 * u * s * (1 + gg * (1 - s)), du = 2 * gg * s;
  ASSERT_EQ(g.dbias.size(), 2u);
  EXPECT_NEAR(g.dbias[0], dg, 1e-14);
  EXPECT_NEAR(g.dbias[1], du, 1e-14);
  EXPECT_NEAR(g.dx[0], dg * 0.5 + du * 1, 1e-14);
  EXPECT_NEAR(g.dx[1], dg * -0.25 + du * 1, 1e-14);
  EXPECT_NEAR(g.dw[0], dg * 1, 1e-14);  // dWa = dG·x
  EXPECT_NEAR(g.dw[1], dg * 2, 1e-14);
  EXPECT_NEAR(g.dw[2], du * 1, 1e-14);  // dWb = dU·x
  EXPECT_NEAR(g.dw[3], du * 2, 1e-14);
  // Without bias, dbias is empty.
  EXPECT_TRUE(cpu_reference_backward(tiny(Layout::linear, false), x, w, {}, dz).dbias.empty());
  EXPECT_THROW(cpu_reference_backward(p, x, w, b, {1, 2}), std::invalid_argument);
}

TEST(Parity, HandComputedMetrics) {
  // ref = [3, -4] (‖ref‖ = 5, rms = sqrt(12.5)), got = [3, -3]: diff = [0, 1].
  const std::vector<double> ref{3, -4};
  const std::vector<float> got{3, -3};
  const auto r = compare(got, ref, Tolerance{0.1, 0.1, 1});
  EXPECT_DOUBLE_EQ(r.rel_l2, 0.2);
  EXPECT_DOUBLE_EQ(r.max_abs, 1.0);
  EXPECT_DOUBLE_EQ(r.max_rel, 0.25);  // |1| / max(4, 3.54): information only
  EXPECT_DOUBLE_EQ(r.atol, 0.1 * std::sqrt(12.5));
  EXPECT_DOUBLE_EQ(r.worst_ratio, 1.0 / (0.1 * std::sqrt(12.5) + 0.1 * 4));  // 1.32
  EXPECT_EQ(r.worst_index, 1);
  EXPECT_EQ(r.worst_got, -3);
  EXPECT_EQ(r.worst_expected, -4);
  EXPECT_FALSE(r.pass);
  EXPECT_TRUE(compare(got, ref, Tolerance{0.2, 0.1, 1}).pass);   // 0.354 + 0.8 ≥ 1
  EXPECT_FALSE(compare(got, ref, Tolerance{0.2, 0.1, 0.1}).pass);  // rel_l2 0.2 > 0.1
}

TEST(Parity, UnwrittenOutputFails) {
  // The poison value: a NaN where the reference is finite.
  const std::vector<double> ref{1, 2, 3};
  const std::vector<float> got{1, std::numeric_limits<float>::quiet_NaN(), 3};
  const auto r = compare(got, ref, tolerance(DType::f32, Math::exact, 16, kFusedRounding));
  EXPECT_FALSE(r.pass);
  EXPECT_EQ(r.worst_index, 1);
  EXPECT_EQ(r.mismatched_nonfinite, 1);
}

TEST(Parity, MatchingNonFiniteValuesPass) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> ref{1, std::nan(""), -inf};
  const std::vector<float> got{1, std::nanf(""), -std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(compare(got, ref, tolerance(DType::f32, Math::exact, 16, kFusedRounding)).pass);
  const std::vector<float> wrong{1, std::nanf(""), std::numeric_limits<float>::infinity()};
  EXPECT_FALSE(compare(wrong, ref, tolerance(DType::f32, Math::exact, 16, kFusedRounding)).pass);
}

// An output large enough to be compared in chunks over several threads (more than 2^22 elements)
// gives what one pass over it gives: the sums to rounding, the maxima exactly, the first of two
// elements equally far over their bound, every non-finite mismatch counted.
TEST(Parity, LargeOutputsComparedInChunksAsInOnePass) {
  const size_t n = (size_t{1} << 22) + 12345;
  const auto ref_f = uniform_values(n, -1, 1, 5, DType::f32);
  std::vector<double> ref(ref_f.begin(), ref_f.end());
  std::vector<float> got;
  got.reserve(n);
  for (const float v : ref_f) got.push_back(round_to(v, DType::bf16));
  const Tolerance tol = tolerance(DType::bf16, Math::exact, 4096, kFusedRounding);
  const size_t first = 70000, second = n - 5;  // in different chunks
  for (const size_t i : {first, second}) {
    got[i] = 0.5f;
    ref[i] = 0.25;
  }
  double sum_sq_ref = 0, sum_sq_diff = 0, max_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    sum_sq_ref += ref[i] * ref[i];
    const double d = std::fabs(got[i] - ref[i]);
    sum_sq_diff += d * d;
    max_abs = std::max(max_abs, d);
  }
  const ParityResult r = compare(got, ref, tol);
  EXPECT_FALSE(r.pass);
  EXPECT_EQ(r.worst_index, static_cast<int64_t>(first));
  EXPECT_EQ(r.worst_got, 0.5);
  EXPECT_EQ(r.worst_expected, 0.25);
  EXPECT_EQ(r.max_abs, max_abs);
  EXPECT_NEAR(r.rel_l2, std::sqrt(sum_sq_diff / sum_sq_ref), 1e-12 * r.rel_l2);
  EXPECT_NEAR(r.atol, tol.atol_rms * std::sqrt(sum_sq_ref / static_cast<double>(n)), 1e-12 * r.atol);
  got[n - 1] = std::nanf("");
  got[3] = std::numeric_limits<float>::infinity();
  const ParityResult nonfinite = compare(got, ref, tol);
  EXPECT_EQ(nonfinite.mismatched_nonfinite, 2);
  EXPECT_EQ(nonfinite.worst_index, 3);
}

TEST(Parity, TolerancesTightenWithPrecision) {
  const auto z = [](DType t, Math m, int64_t k = 4096) { return tolerance(t, m, k, kFusedRounding); };
  EXPECT_LT(z(DType::f32, Math::exact).rel_l2, z(DType::f32, Math::tf32).rel_l2);
  EXPECT_LT(z(DType::f16, Math::exact).rel_l2, z(DType::bf16, Math::exact).rel_l2);
  for (const auto pick : {&Tolerance::rel_l2, &Tolerance::atol_rms}) {
    // 3xtf32 sits near exact fp32, far below tf32 (TESTING.md, "Tolerances").
    EXPECT_LT(z(DType::f32, Math::exact).*pick, z(DType::f32, Math::tf32x3).*pick);
    EXPECT_LE(z(DType::f32, Math::tf32x3).*pick, 3 * z(DType::f32, Math::exact).*pick);
    EXPECT_LE(20 * z(DType::f32, Math::tf32x3).*pick, z(DType::f32, Math::tf32).*pick);
    // A longer reduction and stored intermediates each loosen the bound.
    EXPECT_LT(z(DType::bf16, Math::exact, 784).*pick, z(DType::bf16, Math::exact, 8192).*pick);
    EXPECT_LT(z(DType::bf16, Math::exact).*pick, tolerance(DType::bf16, Math::exact, 4096, Rounding{1, 1}).*pick);
  }
  // Its gradients come from exact fp32 GEMMs: exact's bound but for the recompute's operands.
  Problem p;
  p.in_features = 4096;
  p.dtype = DType::f32;
  p.math = Math::exact;
  const Tolerance exact = gradient_tolerance(p, 4096);
  p.math = Math::tf32x3;
  EXPECT_LE(gradient_tolerance(p, 4096).rel_l2, 2 * exact.rel_l2);
  // Slices reduced in the dtype loosen a baseline's bound (cuBLASLt's in-place split-K).
  EXPECT_LT(tolerance(DType::f16, Math::exact, 4096, Rounding{1, 1}).atol_rms,
            tolerance(DType::f16, Math::exact, 4096, Rounding{1, 7}).atol_rms);
  // FP8 (TESTING.md, "FP8"): e4m3's Z is far coarser than bf16's; a longer K and stored G and U
  // loosen the bound; an e4m3 Z's rel_l2 bound covers its 2^-4 rounding.
  const auto f8 = [](int64_t k, DType z, Rounding r) { return fp8_tolerance(k, z, DType::bf16, r); };
  EXPECT_LT(f8(4096, DType::bf16, kFusedRounding).rel_l2, f8(4096, DType::e4m3, kFusedRounding).rel_l2);
  EXPECT_LT(f8(1024, DType::e4m3, kFusedRounding).atol_rms, f8(8192, DType::e4m3, kFusedRounding).atol_rms);
  EXPECT_LT(f8(4096, DType::e4m3, kFusedRounding).rel_l2, f8(4096, DType::e4m3, Rounding{1, 1}).rel_l2);
  EXPECT_GE(f8(16, DType::e4m3, kFusedRounding).rtol, 0x1p-4);
  EXPECT_LT(tolerance(DType::bf16, Math::exact, 4096, kFusedRounding).rel_l2, f8(4096, DType::bf16, kFusedRounding).rel_l2);
  // Math is ignored for 16-bit problems.
  EXPECT_EQ(tolerance(DType::bf16, Math::tf32, 777, Rounding{1, 1}).rel_l2,
            tolerance(DType::bf16, Math::exact, 777, Rounding{1, 1}).rel_l2);
}

// A forward simulated on the host the way each variant rounds: the fused kernel keeps G and U in
// fp32 and rounds Z; a baseline stores G and U in the dtype (here also split-K partial sums
// reduced in the dtype, as cuBLASLt may) before the gate. Seeded inputs as the benchmark draws them.
struct Simulated {
  std::vector<double> ref;
  std::vector<float> fused, baseline;
  double rms = 0;
};

// How the simulated baseline rounds by default: G and U stored, three split-K slices reduced in
// the dtype.
constexpr Rounding kSimulatedBaseline{1, 3};

Simulated simulate(DType t, int64_t batch, int64_t in, int64_t hidden, uint64_t seed,
                   int64_t splits = kSimulatedBaseline.slices) {
  Problem p;
  p.batch = batch;
  p.in_features = in;
  p.hidden = hidden;
  p.dtype = t;
  p.bias = true;
  const float a = 1.0f / std::sqrt(static_cast<float>(in));
  const auto x = uniform_values(static_cast<size_t>(batch * in), -1, 1, seed, t);
  const auto w = uniform_values(static_cast<size_t>(2 * hidden * in), -a, a, seed + 1, t);
  const auto b = uniform_values(static_cast<size_t>(2 * hidden), -a, a, seed + 2, t);
  Simulated s;
  s.ref = cpu_reference(p, x, w, b, 1);
  for (int64_t r = 0; r < batch; ++r) {
    for (int64_t n = 0; n < hidden; ++n) {
      float h32[2];
      float hd[2];
      for (int half = 0; half < 2; ++half) {
        const float* wr = &w[static_cast<size_t>((half * hidden + n) * in)];
        float acc = b[static_cast<size_t>(half * hidden + n)];
        float stored = 0;
        for (int64_t part = 0; part < splits; ++part) {
          float partial = part == 0 ? b[static_cast<size_t>(half * hidden + n)] : 0.0f;
          for (int64_t k = part * in / splits; k < (part + 1) * in / splits; ++k) {
            acc += x[static_cast<size_t>(r * in + k)] * wr[k];
            partial += x[static_cast<size_t>(r * in + k)] * wr[k];
          }
          stored = round_to(stored + round_to(partial, t), t);
        }
        h32[half] = acc;
        hd[half] = stored;
      }
      const auto gate = [](float g, float u) { return static_cast<float>(g / (1.0f + std::exp(-g)) * u); };
      s.fused.push_back(round_to(gate(h32[0], h32[1]), t));
      s.baseline.push_back(round_to(gate(hd[0], hd[1]), t));
    }
  }
  double sq = 0;
  for (double v : s.ref) sq += v * v;
  s.rms = std::sqrt(sq / static_cast<double>(s.ref.size()));
  return s;
}

size_t nearest_zero(const std::vector<double>& ref) {
  size_t best = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    if (std::fabs(ref[i]) < std::fabs(ref[best])) best = i;
  return best;
}

// The element whose |ref| is closest to rms(ref): a typical one.
size_t typical(const std::vector<double>& ref, double rms) {
  size_t best = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    if (std::fabs(std::fabs(ref[i]) - rms) < std::fabs(std::fabs(ref[best]) - rms)) best = i;
  return best;
}

class ParityModel : public ::testing::TestWithParam<std::tuple<DType, int64_t>> {};

TEST_P(ParityModel, EachVariantsRoundingsPassItsOwnRule) {
  const auto [t, in] = GetParam();
  const Simulated s = simulate(t, 24, in, 129, 77 + static_cast<uint64_t>(in));
  const auto fused = compare(s.fused, s.ref, tolerance(t, Math::exact, in + 1, kFusedRounding));
  const auto base = compare(s.baseline, s.ref, tolerance(t, Math::exact, in + 1, kSimulatedBaseline));
  EXPECT_TRUE(fused.pass) << fused.summary() << "; " << fused.tolerance();
  EXPECT_TRUE(base.pass) << base.summary() << "; " << base.tolerance();
}

TEST_P(ParityModel, OneUlpAtANearZeroElementPassesTheBaselineRule) {
  // The false FAIL: a correct baseline's Z near a zero of SiLU(G)·U carries an error of the
  // order of one ulp of G and U, a large relative error but a tiny absolute one.
  const auto [t, in] = GetParam();
  const Simulated s = simulate(t, 24, in, 129, 91 + static_cast<uint64_t>(in));
  std::vector<float> got = s.baseline;
  const size_t i = nearest_zero(s.ref);
  const double ulp = 2 * std::ldexp(1.0, std::ilogb(s.rms)) * (t == DType::bf16 ? 0x1p-8 : t == DType::f16 ? 0x1p-11 : 0x1p-24);
  got[i] = static_cast<float>(s.ref[i] + ulp);
  const auto r = compare(got, s.ref, tolerance(t, Math::exact, in + 1, kSimulatedBaseline));
  EXPECT_TRUE(r.pass) << r.summary() << "; " << r.tolerance();
  if (t != DType::f32) {
    EXPECT_GT(std::fabs(got[i] - s.ref[i]) / std::fabs(s.ref[i]), 0.03) << "not near zero";
  }
}

TEST_P(ParityModel, TenPercentOfTheRmsAtOneElementFailsEveryRule) {
  // The baseline without split-K slices reduced in the dtype; each such slice widens its bound
  // (by √((s + 1)/2)), which a bf16 baseline with more than one cannot separate from 10 %.
  const auto [t, in] = GetParam();
  const Simulated s = simulate(t, 24, in, 129, 103 + static_cast<uint64_t>(in), 1);
  for (const size_t i : {nearest_zero(s.ref), typical(s.ref, s.rms)}) {
    for (const bool fused : {true, false}) {
      const Rounding im = fused ? kFusedRounding : Rounding{1, 1};
      std::vector<float> got = fused ? s.fused : s.baseline;
      got[i] = static_cast<float>(s.ref[i] + 0.1 * s.rms);
      const auto r = compare(got, s.ref, tolerance(t, Math::exact, in + 1, im));
      EXPECT_FALSE(r.pass) << "element " << i << ": " << r.summary() << "; " << r.tolerance();
      EXPECT_EQ(r.worst_index, static_cast<int64_t>(i));
    }
  }
  // The gradients' rule too, on near-Gaussian sums rounded to the dtype.
  const auto g = uniform_values(4096, -1, 1, 7, DType::f32);
  std::vector<double> ref(g.begin(), g.end());
  std::vector<float> got;
  for (float v : g) got.push_back(round_to(v, t));
  Problem p;
  p.in_features = in;
  p.dtype = t;
  const auto tol = gradient_tolerance(p, in);
  ASSERT_TRUE(compare(got, ref, tol).pass);
  const size_t i = nearest_zero(ref);
  got[i] = static_cast<float>(ref[i] + 0.1 * std::sqrt(1.0 / 3));
  EXPECT_FALSE(compare(got, ref, tol).pass);
}

// dW at B = 1: each element is one product dH·x, so dH's relative error (its rounding, and the
// stored G's through SiLU) comes through whole, relative to the element, however far in the tail it
// lies. An element 30× the rms, carrying the most of it that the arithmetic allows and rounded to the
// dtype, passes; the same error on a typical element of a long sum (k = 4096) fails.
TEST(Parity, GradientOfOneTermCarriesDhsRelativeError) {
  for (const DType t : {DType::f16, DType::bf16}) {
    const double u = t == DType::bf16 ? 0x1p-8 : 0x1p-11;
    const auto g = uniform_values(1 << 16, -1, 1, 11, DType::f32);
    std::vector<double> ref(g.begin(), g.end());
    ref[123] = 30 * std::sqrt(1.0 / 3);
    Problem p;
    p.in_features = 4096;
    p.dtype = t;
    std::vector<float> got;
    for (const double v : ref) got.push_back(round_to(static_cast<float>(v), t));
    // dH off by u, SiLU(G) by 1.3·u, the same way, then the product rounded to the dtype.
    got[123] = round_to(static_cast<float>(ref[123] * (1 + 2.3 * u)), t);
    ASSERT_GT(got[123] - ref[123], 2.3 * u * ref[123]);
    const auto one = compare(got, ref, gradient_tolerance(p, 1));
    EXPECT_TRUE(one.pass) << to_string(t) << ": " << one.summary() << "; " << one.tolerance();
    const auto many = compare(got, ref, gradient_tolerance(p, 4096));
    EXPECT_FALSE(many.pass) << to_string(t) << ": " << many.summary() << "; " << many.tolerance();
  }
}

// The FP8 backward's roundings simulated on the host (TESTING.md, "FP8 gradients"), on seeded
// pre-activations of the spread the benchmark's inputs give and dZ ~ U(−1, 1): H rounded to bf16 (the
// saved H), dH in fp32 from it (and rounded to bf16 first, for a baseline), quantised to e4m3 in 1×128
// blocks along each half (dX's operand) and along B (dW's), the products summed exactly and the
// gradient rounded to bf16 (a baseline's dX twice: cublas2's second GEMM adds onto the first's
// output). The reference is fp64 from the unrounded pre-activations. Each variant passes its FP8
// rule; the bf16 gradient rule, which has no e4m3 rounding in it, rejects them; and an error of the
// output's rms at one element fails the FP8 rule.
TEST(Parity, Fp8GradientBoundHoldsTheRecipesRoundings) {
  const int64_t B = 96, D = 320, I = 256;  // D off the 128 blocks; dX's K = 640, dW's K = 96
  const auto g = uniform_values(static_cast<size_t>(B * D), -0.6f, 0.6f, 31, DType::f32);
  const auto u = uniform_values(static_cast<size_t>(B * D), -0.6f, 0.6f, 32, DType::f32);
  const auto dz = uniform_values(static_cast<size_t>(B * D), -1, 1, 33, DType::bf16);
  const float k = 1.0f / std::sqrt(static_cast<float>(I));
  const auto w = uniform_values(static_cast<size_t>(2 * D * I), -k, k, 34, DType::f32);  // W12, dequantised
  const auto x = uniform_values(static_cast<size_t>(B * I), -1, 1, 35, DType::f32);      // X of dW, dequantised
  const auto grad = [&](double gv, double uv, double z, bool dg) {
    const double s = 1 / (1 + std::exp(-gv));
    return dg ? z * uv * s * (1 + gv * (1 - s)) : z * gv * s;
  };
  // dH (B×2D) from G and U: fp64 from the exact values, or fp32 from bf16 ones.
  std::vector<double> dh64(static_cast<size_t>(B * 2 * D));
  std::vector<float> dh32(dh64.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < 2 * D; ++c) {
      const size_t e = static_cast<size_t>(b * D + c % D);
      dh64[b * 2 * D + c] = grad(g[e], u[e], dz[e], c < D);
      dh32[b * 2 * D + c] = static_cast<float>(
          grad(round_to(g[e], DType::bf16), round_to(u[e], DType::bf16), dz[e], c < D));
    }
  // e4m3 with one amax/448 scale a run of `n` elements at stride `step` (a 1×128 block).
  const auto quantise = [](std::vector<float>& v, size_t first, size_t n, size_t step) {
    float amax = 0;
    for (size_t e = 0; e < n; ++e) amax = std::max(amax, std::fabs(v[first + e * step]));
    const float scale = amax > 0 ? amax / 448 : 1;
    for (size_t e = 0; e < n; ++e) v[first + e * step] = round_to(v[first + e * step] / scale, DType::e4m3) * scale;
  };
  const auto gradients = [&](bool baseline, std::vector<float>* dx, std::vector<float>* dw) {
    std::vector<float> h = dh32;
    if (baseline)
      for (float& v : h) v = round_to(v, DType::bf16);
    std::vector<float> q = h, qt = h;  // along each half's rows, and along B
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < 2 * D; c += 128) {
        const int64_t half_end = c < D ? D : 2 * D;
        quantise(q, static_cast<size_t>(b * 2 * D + c), static_cast<size_t>(std::min<int64_t>(128, half_end - c)), 1);
        if (c < D && c + 128 > D) c = D - 128;  // the dU half starts its own blocks
      }
    for (int64_t c = 0; c < 2 * D; ++c) quantise(qt, static_cast<size_t>(c), static_cast<size_t>(B), 2 * D);
    dx->assign(static_cast<size_t>(B * I), 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < I; ++i) {
        double first = 0, second = 0;
        for (int64_t c = 0; c < 2 * D; ++c) (c < D ? first : second) += double(q[b * 2 * D + c]) * w[c * I + i];
        (*dx)[b * I + i] = baseline ? round_to(round_to(static_cast<float>(first), DType::bf16) + static_cast<float>(second),
                                                DType::bf16)
                                    : round_to(static_cast<float>(first + second), DType::bf16);
      }
    dw->assign(static_cast<size_t>(2 * D * I), 0);
    for (int64_t c = 0; c < 2 * D; ++c)
      for (int64_t i = 0; i < I; ++i) {
        double sum = 0;
        for (int64_t b = 0; b < B; ++b) sum += double(qt[b * 2 * D + c]) * x[b * I + i];
        (*dw)[c * I + i] = round_to(static_cast<float>(sum), DType::bf16);
      }
  };
  std::vector<double> dx64(static_cast<size_t>(B * I), 0), dw64(static_cast<size_t>(2 * D * I), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < 2 * D; ++c)
      for (int64_t i = 0; i < I; ++i) {
        dx64[b * I + i] += dh64[b * 2 * D + c] * w[c * I + i];
        dw64[c * I + i] += dh64[b * 2 * D + c] * x[b * I + i];
      }
  Problem bf16;
  bf16.in_features = I;
  bf16.dtype = DType::bf16;
  for (const bool baseline : {false, true}) {
    std::vector<float> dx, dw;
    gradients(baseline, &dx, &dw);
    const Rounding dx_r = baseline ? Rounding{1, 2} : kFusedRounding, dw_r = baseline ? Rounding{1, 1} : kFusedRounding;
    const Tolerance dx_tol = fp8_gradient_tolerance(2 * D, I, DType::bf16, dx_r);
    const Tolerance dw_tol = fp8_gradient_tolerance(B, I, DType::bf16, dw_r);
    const char* who = baseline ? "baseline" : "fused";
    const auto px = compare(dx, dx64, dx_tol), pw = compare(dw, dw64, dw_tol);
    EXPECT_TRUE(px.pass) << who << " dX: " << px.summary() << "; " << px.tolerance();
    EXPECT_TRUE(pw.pass) << who << " dW: " << pw.summary() << "; " << pw.tolerance();
    EXPECT_FALSE(compare(dx, dx64, gradient_tolerance(bf16, 2 * D)).pass) << who << ": bf16's rule";
    // One element off by the output's rms.
    const double rms = std::sqrt(std::inner_product(dx64.begin(), dx64.end(), dx64.begin(), 0.0) / dx64.size());
    dx[1234] = static_cast<float>(dx64[1234] + rms);
    EXPECT_FALSE(compare(dx, dx64, dx_tol).pass) << who;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ParityModel,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(int64_t{777}, int64_t{2050}, int64_t{8191})));

TEST(Baselines, ComputeTypeFollowsTheMath) {
  // cuBLAS has no 3xTF32 compute type on Hopper: the 3xtf32 baseline is exact fp32.
  Problem p;
  p.dtype = DType::f32;
  p.math = Math::exact;
  EXPECT_EQ(baselines::compute_type(p), CUBLAS_COMPUTE_32F);
  p.math = Math::tf32;
  EXPECT_EQ(baselines::compute_type(p), CUBLAS_COMPUTE_32F_FAST_TF32);
  p.math = Math::tf32x3;
  EXPECT_EQ(baselines::compute_type(p), CUBLAS_COMPUTE_32F);
  p.dtype = DType::bf16;  // math is ignored for fp16/bf16
  p.math = Math::tf32;
  EXPECT_EQ(baselines::compute_type(p), CUBLAS_COMPUTE_32F);
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
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::e4m3}) {
    EXPECT_TRUE(std::isnan(from_dtype_bytes(poison.data(), 1, t)[0])) << to_string(t);
  }
}

// e4m3 (OCP FP8 E4M3): 3 fraction bits, the largest finite 448, the smallest subnormal 2^-9; the
// host conversions round to nearest (ties to even) and saturate.
TEST(HostData, E4m3RoundsToNearestAndSaturates) {
  EXPECT_EQ(round_to(1.0f, DType::e4m3), 1.0f);
  EXPECT_EQ(round_to(1.0625f, DType::e4m3), 1.0f);   // halfway between 1 and 1.125: to even
  EXPECT_EQ(round_to(1.1875f, DType::e4m3), 1.25f);  // halfway between 1.125 and 1.25: to even
  EXPECT_EQ(round_to(1.07f, DType::e4m3), 1.125f);
  EXPECT_EQ(round_to(-300.0f, DType::e4m3), -288.0f);
  EXPECT_EQ(round_to(1000.0f, DType::e4m3), 448.0f);
  EXPECT_EQ(round_to(-1e30f, DType::e4m3), -448.0f);
  EXPECT_EQ(round_to(0x1p-9f, DType::e4m3), 0x1p-9f);
  EXPECT_EQ(round_to(0x1p-11f, DType::e4m3), 0.0f);
  EXPECT_TRUE(std::isnan(round_to(NAN, DType::e4m3)));
  const std::vector<float> values = {0.0f, 1.0f, -2.5f, 448.0f, -0x1p-9f, 0.4375f};
  const auto bytes = to_dtype_bytes(values, DType::e4m3);
  ASSERT_EQ(bytes.size(), values.size());
  EXPECT_EQ(bytes[1], 0x38);  // 0 0111 000: 2^(7-7)
  EXPECT_EQ(bytes[3], 0x7E);  // 0 1111 110: 1.75·2^8
  EXPECT_EQ(from_dtype_bytes(bytes.data(), values.size(), DType::e4m3), values);
  // Every finite byte decodes to a value that encodes back to the same byte (but -0).
  for (int b = 0; b < 256; ++b) {
    const unsigned char byte = static_cast<unsigned char>(b);
    const float v = from_dtype_bytes(&byte, 1, DType::e4m3)[0];
    if (std::isnan(v) || b == 0x80) continue;
    EXPECT_EQ(to_dtype_bytes({v}, DType::e4m3)[0], byte) << b;
  }
}

}  // namespace
}  // namespace swiglu::bench
