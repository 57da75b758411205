#include "bench/parity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.hpp"

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
  // Part of dH's error is relative to each element of dH: its own rounding, and the stored G's
  // through SiLU (dU = dZ·SiLU(G)). With k = 1 (dW and dbias at B = 1) a gradient element is one
  // product of dH with X and carries that whole, relative to itself, at any size, beyond what an
  // absolute bound in units of rms(ref) covers in the tail. Over k terms the element that one term
  // dominates carries it relative to that term; the absolute bound, which grows as √k·rms(term),
  // covers what 1/√k of it leaves.
  const double dh_relative = (1 + kGateSensitivity) * u / std::sqrt(static_cast<double>(std::max<int64_t>(k, 1)));
  const double rtol = u + kGateMath + dh_relative;
  return Tolerance{rtol, kGradientTail * eps, rtol + 2 * eps, subnormal_roundoff(p.dtype)};
}

Tolerance fp8_gradient_tolerance(int64_t k, int64_t forward_k, DType out, Rounding rounding) {
  const double u8 = unit_roundoff(DType::e4m3), u = unit_roundoff(out);
  const int stored = rounding.stored > 0 ? 1 : 0;
  const double kd = static_cast<double>(std::max<int64_t>(k, 1));
  const double fk = static_cast<double>(std::max<int64_t>(forward_k, 1));
  // The operand dH, in units of its terms' ℓ2 norm: its e4m3 rounding (u8, and near zero half its
  // block's subnormal step, for a block whose amax is within kE4m3BlockPeak of the terms' rms), its
  // rounding to `out` first (the baselines), H's rounding to `out` (G and U) and the FP8 forward's
  // sums over forward_k behind it, through the gate's fp32 math.
  const double forward = kFp8Accumulation * std::sqrt(fk) + 2 * std::sqrt(fk) * kU32;
  const double dh = u8 + kE4m3BlockPeak / 448.0 * 0x1p-10 + (1 + stored) * u + forward + kGateMath;
  // The gradient's own sum over k on the FP8 tensor cores and in fp32 (kernel and reference), and
  // the split-K slices reduced in `out` beyond the output's own rounding.
  const double eps = dh + kFp8Accumulation * std::sqrt(kd) + 2 * std::sqrt(kd) * kU32 +
                     (slice_roundings(rounding.slices) - 1) * u;
  // The part of dH's error relative to each of its elements (its e4m3 and `out` roundings, U's, and
  // G's through SiLU), which an element that one term dominates carries relative to that term
  // (gradient_tolerance: whole at k = 1).
  const double dh_relative = (u8 + (1 + stored + kGateSensitivity) * u) / std::sqrt(kd);
  const double rtol = u + kGateMath + dh_relative;
  return Tolerance{rtol, kGradientTail * eps, rtol + 2 * eps, subnormal_roundoff(out)};
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

// The passes over an output run in fixed chunks, spread over the host's threads for large outputs,
// and their partial results are combined in chunk order: the result does not depend on the thread
// count.
constexpr size_t kChunk = size_t{1} << 16;

struct RefPartial {
  double sum_sq = 0;
  size_t n_finite = 0;
};

struct DiffPartial {
  double sum_sq_diff = 0, max_abs = 0, max_rel = 0, worst_ratio = 0;
  double worst_key = -1, worst_got = 0, worst_expected = 0;
  int64_t worst_index = -1, mismatched_nonfinite = 0;
};

// fn(chunk, begin, end) for every chunk of [0, n), into one partial per chunk.
template <typename Partial, typename Fn>
std::vector<Partial> chunked(size_t n, const Fn& fn) {
  std::vector<Partial> parts((n + kChunk - 1) / kChunk);
  common::parallel_for(static_cast<int64_t>(parts.size()), common::threads_for(n), [&](int64_t c0, int64_t c1) {
    for (auto c = static_cast<size_t>(c0); c < static_cast<size_t>(c1); ++c)
      parts[c] = fn(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
  return parts;
}

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
  const size_t n = expected.size();
  double sum_sq_ref = 0;
  size_t n_finite = 0;
  for (const RefPartial& part : chunked<RefPartial>(n, [&](size_t b, size_t e) {
         RefPartial part;
         for (size_t i = b; i < e; ++i) {
           const double v = static_cast<double>(expected[i]);
           if (std::isfinite(v)) {
             part.sum_sq += v * v;
             ++part.n_finite;
           }
         }
         return part;
       })) {
    sum_sq_ref += part.sum_sq;
    n_finite += part.n_finite;
  }
  const double rms = n_finite > 0 ? std::sqrt(sum_sq_ref / static_cast<double>(n_finite)) : 0.0;
  r.atol = std::fmax(tol.atol_rms * rms, tol.atol_min);
  const double floor = rms > 0 ? rms : 1.0;  // max_rel's floor (information only)
  const double atol = r.atol;
  const auto diff = [&](size_t b, size_t e) {
    DiffPartial part;
    for (size_t i = b; i < e; ++i) {
      const double g = got[i], v = static_cast<double>(expected[i]);
      double key;
      if (!std::isfinite(v) || !std::isfinite(g)) {
        const bool same = (std::isnan(v) && std::isnan(g)) || g == v;
        if (same) continue;
        ++part.mismatched_nonfinite;
        key = INFINITY;
      } else {
        const double d = std::fabs(g - v);
        part.sum_sq_diff += d * d;
        part.max_abs = std::fmax(part.max_abs, d);
        part.max_rel = std::fmax(part.max_rel, d / std::fmax(std::fabs(v), floor));
        key = d / (atol + tol.rtol * std::fabs(v));
        part.worst_ratio = std::fmax(part.worst_ratio, key);
      }
      // The first non-finite mismatch, or else the element furthest over its bound, is reported.
      if (key > part.worst_key) {
        part.worst_key = key;
        part.worst_index = static_cast<int64_t>(i);
        part.worst_got = g;
        part.worst_expected = v;
      }
    }
    return part;
  };
  double sum_sq_diff = 0, worst_key = -1;
  for (const DiffPartial& part : chunked<DiffPartial>(n, diff)) {
    sum_sq_diff += part.sum_sq_diff;
    r.max_abs = std::fmax(r.max_abs, part.max_abs);
    r.max_rel = std::fmax(r.max_rel, part.max_rel);
    r.worst_ratio = std::fmax(r.worst_ratio, part.worst_ratio);
    r.mismatched_nonfinite += part.mismatched_nonfinite;
    if (part.worst_key > worst_key) {  // chunks in order: the first of equals, as one pass finds
      worst_key = part.worst_key;
      r.worst_index = part.worst_index;
      r.worst_got = part.worst_got;
      r.worst_expected = part.worst_expected;
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
