#include "bench/parity.hpp"

#include <fmt/format.h>

#include <cmath>

namespace swiglu::bench {

Tolerance tolerance(DType dtype, Math math) {
  switch (dtype) {
    case DType::f32:
      // fp32 accumulation over K <= 16k terms: rounding grows like eps·sqrt(K) ≈ 1e-5 at worst.
      // tf32 keeps 10 mantissa bits per operand: each product is off by up to 2^-10 relative.
      return math == Math::tf32 ? Tolerance{5e-3, 5e-2} : Tolerance{2e-5, 2e-4};
    case DType::f16:
      // Output rounding alone is up to 2^-11 relative; the baselines round G and U as well.
      return Tolerance{3e-3, 1e-2};
    case DType::bf16:
      // Output rounding alone is up to 2^-8 relative; the baselines round G and U as well.
      return Tolerance{1e-2, 3e-2};
  }
  return Tolerance{0, 0};
}

std::string ParityResult::summary() const {
  return fmt::format("rel_l2={:.3e} max_abs={:.3e} max_rel={:.3e} worst[{}]: got {:.8g} expected {:.8g}{}",
                     rel_l2, max_abs, max_rel, worst_index, worst_got, worst_expected,
                     mismatched_nonfinite > 0
                         ? fmt::format(" ({} non-finite mismatches)", mismatched_nonfinite)
                         : std::string());
}

namespace {

template <typename Ref>
ParityResult compare_impl(std::span<const float> got, std::span<const Ref> expected, Tolerance tol) {
  ParityResult r;
  if (got.size() != expected.size()) {
    r.mismatched_nonfinite = -1;
    r.rel_l2 = r.max_abs = r.max_rel = NAN;
    r.pass = false;
    return r;
  }
  double sum_sq_ref = 0;
  size_t n_finite = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = static_cast<double>(expected[i]);
    if (std::isfinite(e)) {
      sum_sq_ref += e * e;
      ++n_finite;
    }
  }
  const double floor = n_finite > 0 ? std::sqrt(sum_sq_ref / static_cast<double>(n_finite)) : 1.0;
  double sum_sq_diff = 0;
  double worst_key = -1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double g = got[i], e = static_cast<double>(expected[i]);
    double key;
    if (!std::isfinite(e) || !std::isfinite(g)) {
      const bool same = (std::isnan(e) && std::isnan(g)) || g == e;
      if (same) continue;
      ++r.mismatched_nonfinite;
      key = INFINITY;
    } else {
      const double d = std::fabs(g - e);
      sum_sq_diff += d * d;
      if (d > r.max_abs) r.max_abs = d;
      key = d / std::fmax(std::fabs(e), floor > 0 ? floor : 1.0);
      if (key > r.max_rel) r.max_rel = key;
    }
    // The first non-finite mismatch, or else the largest relative error, is the one reported.
    if (key > worst_key) {
      worst_key = key;
      r.worst_index = static_cast<int64_t>(i);
      r.worst_got = g;
      r.worst_expected = e;
    }
  }
  r.rel_l2 = sum_sq_ref > 0 ? std::sqrt(sum_sq_diff / sum_sq_ref) : std::sqrt(sum_sq_diff);
  if (r.mismatched_nonfinite > 0) r.max_rel = INFINITY;
  r.pass = r.mismatched_nonfinite == 0 && r.rel_l2 <= tol.rel_l2 && r.max_rel <= tol.max_rel;
  return r;
}

}  // namespace

ParityResult compare(std::span<const float> got, std::span<const double> expected, Tolerance tol) {
  return compare_impl(got, expected, tol);
}
ParityResult compare(std::span<const float> got, std::span<const float> expected, Tolerance tol) {
  return compare_impl(got, expected, tol);
}

}  // namespace swiglu::bench
