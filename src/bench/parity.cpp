#include "bench/parity.hpp"

#include <fmt/format.h>

#include <cmath>

namespace swiglu::bench {
namespace {

constexpr double kU32 = 0x1p-24;  // fp32 unit roundoff: the accumulators and the gate's math

// Unit roundoff of the stored dtype (round to nearest: half an ulp of 1).
double unit_roundoff(DType t) {
  switch (t) {
    case DType::f32: return kU32;
    case DType::f16: return 0x1p-11;
    case DType::bf16: return 0x1p-8;
    case DType::e4m3: return 0x1p-4;
  }
  return 1;
}

// Relative error of one product from its operands' rounding before the multiply: none for 16-bit
// operands (exact in fp32) and exact fp32 (one fma); tf32 keeps 10 fraction bits, a tf32 ulp per
// operand covers truncation as well as rounding; 3xtf32 drops small·small and the split remainders.
double product_error(DType t, Math m) {
  if (t != DType::f32) return 0;
  switch (m) {
    case Math::exact: return 0;
    case Math::tf32: return 2 * 0x1p-10;
    case Math::tf32x3: return 0x1p-20;
  }
  return 1;
}

// Whether the products are summed by tensor cores, whose fp32 accumulation truncates: 16-bit
// inputs and tf32. (3xtf32 adds each K tile's sum to the accumulators with a rounded fp32 add, and
// its baselines run exact fp32.)
bool truncating_accumulation(DType t, Math m) { return t != DType::f32 || m == Math::tf32; }

// The dot products' absolute error in units of their terms' ℓ2 norm T (for random inputs about
// the rms of the results):
//  - each intermediate rounding to the dtype, up to u·T: cuBLASLt may reduce split-K partial sums
//    in the output type, so that error scales with the partial sums rather than the result;
//  - the operands' rounding before the multiply, `product_error`·T;
//  - fp32 accumulation over k terms with rounding, about √k·u32·T, once in the kernel and once
//    more in an fp32 reference;
//  - truncating tensor-core accumulation: a bias of about u32/2 of the partial sum per 8-deep mma
//    step, k/24·u32·T in all.
double dot_error(DType t, Math m, int64_t k, double intermediate_roundings) {
  const double kd = static_cast<double>(std::max<int64_t>(k, 1));
  return intermediate_roundings * unit_roundoff(t) + product_error(t, m) + 2 * std::sqrt(kd) * kU32 +
         (truncating_accumulation(t, m) ? kd / 24 * kU32 : 0.0);
}

// s partial sums added up in the dtype round s running sums of growing size, independently: about
// √((s + 1)/2) roundings of the whole sum.
double slice_roundings(int slices) { return std::sqrt((std::max(slices, 1) + 1) / 2.0); }

// Z = SiLU(G)·U moves by about |∂Z/∂G|·δG + |∂Z/∂U|·δU: as a product of two factors of size rms(H),
// its error is about 2·ε·rms(Z) in rms, and the largest of 10⁶–10⁸ such products of two
// near-Gaussian factors reaches about 8× that (the tail of a product of two normals).
constexpr double kForwardTail = 16;
// A gradient is one dot product of errors with random signs: near-Gaussian, whose largest of
// 10⁶–10⁸ elements lies within about 6σ; 8 leaves room for the uniform roundings' shape.
constexpr double kGradientTail = 8;
// SiLU's sensitivity to a relative change of G, |d ln SiLU(G) / d ln G| = |1 + G·(1 − σ(G))|, is at
// most 1.3 for G ≥ −1.5 (below that Z is small and the absolute term covers it).
constexpr double kGateSensitivity = 1.3;
// The gate's fp32 math (exp, the division, the products): a few fp32 ulps.
constexpr double kGateMath = 4 * kU32;

// The FP8 tensor cores' sums, as a screen: an instruction (32 products and its accumulator) keeps
// 13 bits below its largest term and truncates the rest (TESTING.md, "FP8 accumulation"), which with
// random signs comes to about 4·2^-13 of the terms' ℓ2 norm over all of K; 2^-12·√k is that 6× over
// at k = 128 and more beyond (an older model's figure, kept as the looser one).
constexpr double kFp8Accumulation = 4 * 0x1p-14;
// A 128-element block of Z (a product of two near-Gaussian factors) whose largest element exceeds
// 32·rms(Z) is beyond the tail of any sample these outputs reach.
constexpr double kE4m3BlockPeak = 32;

// Rounding near zero is absolute: half the spacing of the subnormals (bf16 and fp32 share the
// smallest normal, below anything these outputs reach).
// (e4m3's depends on its block's scale: fp8_tolerance's atol covers it.)
double subnormal_roundoff(DType t) { return t == DType::f16 ? 0x1p-25 : 0x1p-126; }

}  // namespace

Tolerance tolerance(DType dtype, Math math, int64_t k, Rounding rounding) {
  const double u = unit_roundoff(dtype);
  const int inter = rounding.stored > 0 ? 1 : 0;
  // Relative: Z's own rounding, the gate's math, and for stored G and U their rounding through the
  // gate (U once, G with the gate's sensitivity).
  const double rtol = u * (1 + inter * (1 + kGateSensitivity)) + kGateMath;
  const double eps = dot_error(dtype, math, k, inter * slice_roundings(rounding.slices));
  return Tolerance{rtol, kForwardTail * eps, rtol + 4 * eps, subnormal_roundoff(dtype)};
}

Tolerance tolerance(const Problem& p, Rounding rounding) {
  return tolerance(p.dtype, p.dtype == DType::f32 ? p.math : Math::exact, p.in_features + (p.bias ? 1 : 0),
                   rounding);
}

Tolerance fp8_tolerance(int64_t k, DType z, DType stored, Rounding rounding) {
  const double kd = static_cast<double>(std::max<int64_t>(k, 1));
  const int inter = rounding.stored > 0 ? 1 : 0;
  const double u_z = unit_roundoff(z), u_s = unit_roundoff(stored);
  const double rtol = u_z + inter * u_s * (1 + kGateSensitivity) + kGateMath;
  // The FP8 tensor cores' accumulation (kFp8Accumulation·Σ|terms| ≤ kFp8Accumulation·√k·T), the
  // fp32 sums of the promoted blocks and of the reference, and the baselines' stored G and U.
  const double eps = kFp8Accumulation * std::sqrt(kd) + 2 * std::sqrt(kd) * kU32 +
                     inter * slice_roundings(rounding.slices) * u_s;
  // An e4m3 Z rounds a small element to its block's subnormal step, scale·2^-9 with scale =
  // amax/448: half of it, for a block whose amax is within kE4m3BlockPeak·rms(Z).
  const double subnormal = z == DType::e4m3 ? kE4m3BlockPeak / 448.0 * 0x1p-10 : 0.0;
  return Tolerance{rtol, kForwardTail * eps + subnormal, rtol + 4 * eps, subnormal_roundoff(z)};
}

Tolerance gradient_tolerance(const Problem& p, int64_t k, int slices) {
  const double u = unit_roundoff(p.dtype);
  const Math math = p.dtype == DType::f32 ? p.math : Math::exact;
  // The operand dH: rounded to the dtype, from G and U in the dtype, which carry the forward's own
  // dot-product error (over I), through the gate's fp32 math. The output: its k-long sum, and any
  // split-K slices reduced in the dtype.
  const double dh = 2 * u + dot_error(p.dtype, math, p.in_features + (p.bias ? 1 : 0), 0) + kGateMath;
  const double eps = dh + dot_error(p.dtype, math, k, slice_roundings(slices) - 1);
  const double rtol = u + kGateMath;
  return Tolerance{rtol, kGradientTail * eps, rtol + 2 * eps, subnormal_roundoff(p.dtype)};
}

double ParityResult::severity() const {
  if (mismatched_nonfinite != 0) return INFINITY;
  return std::fmax(tol.rel_l2 > 0 ? rel_l2 / tol.rel_l2 : INFINITY, worst_ratio);
}

std::string ParityResult::summary() const {
  return fmt::format("rel_l2={:.3e} max_abs={:.3e} worst[{}]: got {:.8g} expected {:.8g} ({:.2f}x its bound){}",
                     rel_l2, max_abs, worst_index, worst_got, worst_expected, worst_ratio,
                     mismatched_nonfinite > 0
                         ? fmt::format(" ({} non-finite mismatches)", mismatched_nonfinite)
                         : std::string());
}

std::string ParityResult::tolerance() const {
  return fmt::format("tolerance |err| <= {:.2e} + {:.2e}*|ref|, rel_l2 <= {:.2e}", atol, tol.rtol, tol.rel_l2);
}

namespace {

template <typename Ref>
ParityResult compare_impl(std::span<const float> got, std::span<const Ref> expected, Tolerance tol) {
  ParityResult r;
  r.tol = tol;
  if (got.size() != expected.size()) {
    r.mismatched_nonfinite = -1;
    r.rel_l2 = r.max_abs = r.max_rel = r.worst_ratio = NAN;
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
  const double rms = n_finite > 0 ? std::sqrt(sum_sq_ref / static_cast<double>(n_finite)) : 0.0;
  r.atol = std::fmax(tol.atol_rms * rms, tol.atol_min);
  const double floor = rms > 0 ? rms : 1.0;  // max_rel's floor (information only)
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
      r.max_abs = std::fmax(r.max_abs, d);
      r.max_rel = std::fmax(r.max_rel, d / std::fmax(std::fabs(e), floor));
      key = d / (r.atol + tol.rtol * std::fabs(e));
      r.worst_ratio = std::fmax(r.worst_ratio, key);
    }
    // The first non-finite mismatch, or else the element furthest over its bound, is reported.
    if (key > worst_key) {
      worst_key = key;
      r.worst_index = static_cast<int64_t>(i);
      r.worst_got = g;
      r.worst_expected = e;
    }
  }
  r.rel_l2 = sum_sq_ref > 0 ? std::sqrt(sum_sq_diff / sum_sq_ref) : std::sqrt(sum_sq_diff);
  if (r.mismatched_nonfinite > 0) r.max_rel = r.worst_ratio = INFINITY;
  r.pass = r.mismatched_nonfinite == 0 && r.rel_l2 <= tol.rel_l2 && r.worst_ratio <= 1;
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
