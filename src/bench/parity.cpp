#include "bench/parity.hpp"

#include <fmt/format.h>

#include <cmath>

namespace swiglu::bench {

Tolerance tolerance(DType dtype, Math math) {
  switch (dtype) {
    case DType::f32:
      // fp32 accumulation over K <= 16k terms: rounding grows like eps·sqrt(K) ≈ 1e-5 at worst.
      // tf32 keeps 10 mantissa bits per operand: each product is off by up to 2^-10 relative.
      // 3xtf32: each product off by about 2^-21 (the dropped small·small and the split's
      // remainders), summed by the tensor cores, which truncate: a model of them gives rel_l2
      // 4e-6 at K = 4096 and 8e-6 at 16k; 2.5× fp32's bound leaves room for the hardware.
      switch (math) {
        case Math::exact: return Tolerance{2e-5, 2e-4};
        case Math::tf32: return Tolerance{5e-3, 5e-2};
        case Math::tf32x3: return Tolerance{5e-5, 5e-4};
      }
      return Tolerance{0, 0};
    case DType::f16:
      // Output rounding alone is up to 2^-11 relative; the baselines round G and U as well.
      return Tolerance{3e-3, 1e-2};
    case DType::bf16:
      // Output rounding alone is up to 2^-8 relative; the baselines round G and U as well.
      return Tolerance{1e-2, 3e-2};
  }
  return Tolerance{0, 0};
}

Tolerance gradient_tolerance(DType dtype, Math math) {
  // Why looser than the forward's: (1) every variant rounds dH = [dG | dU] to the dtype before the
  // dX and dW GEMMs (the fused kernels too: their GEMM operands are in the dtype), so the gradients
  // carry one more rounding of a product of three factors; (2) Policy::save (and the baselines,
  // which keep G and U in the dtype) computes SiLU′(G) from G and U already rounded to the dtype,
  // and SiLU′ amplifies G's rounding where it is steep; (3) dW sums over K = B tokens (thousands) and
  // the sums cancel: a dW element is far smaller than Σ|terms|, so relative errors grow with B.
  switch (dtype) {
    case DType::f32:
      // No dtype rounding at all in fp32; only the K = B and K = 2D accumulations, with cancellation.
      // tf32: operands (dH, W, X) keep 10 mantissa bits, and dW's cancellation magnifies it.
      // 3xtf32: the gradient GEMMs are exact fp32 (as for tf32 problems in the library); only G and
      // U come from the 3xtf32 forward, within 5e-5 of fp64, far inside exact's bound.
      return math == Math::tf32 ? Tolerance{1e-2, 1e-1} : Tolerance{1e-4, 1e-3};
    case DType::f16:
      // dH rounded to fp16 (2^-11) and G, U rounded too (save), each up to 4.9e-4 relative.
      return Tolerance{5e-3, 3e-2};
    case DType::bf16:
      // The same roundings at bf16's 2^-8 (3.9e-3) relative.
      return Tolerance{2e-2, 8e-2};
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
