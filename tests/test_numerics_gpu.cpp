// The fused forward at the edges of fp32: gate inputs past the point where expf overflows, NaN and
// ±inf in X, ±inf in the bias, NaN in W, NaN in X's row padding. Every dtype (fp32 exact, fp16,
// bf16) × layout, and fp32 with 3xtf32 on sm_80+, with bias, every compiled tile plus the
// heuristic's pick, against the fp64 CPU reference. 3xtf32 follows IEEE everywhere but for an
// infinite X element (its row of Z is NaN, see split_tf32 in kernels/common.cuh): that case has its
// own test.
//
// Why the expectations hold exactly: the reference computes in fp64 from the very values the GPU
// sees, and an infinite or NaN term decides a dot product's finiteness the same way in fp32 and in
// fp64: one ±inf term among finite ones gives that infinity (finite partial sums of these inputs
// stay far below fp32's range), inf·0 and inf − inf give NaN, NaN stays NaN. The gate then follows
// IEEE in both: silu(+inf) = +inf, silu(−inf) = NaN (−inf/inf in the kernel, −inf·0 in the
// reference), silu(NaN) = NaN, and Z = silu(G)·U. Each test checks the reference against that
// derivation on the host first, so a wrong premise fails before any kernel runs.
//
// Every output is checked twice: once with the usual NaN poison (parity, so an unwritten element
// fails), once with a finite poison, where each expected NaN or inf must be in Z exactly (so an
// unwritten element cannot pass as the expected NaN).
//
// The second half does the same for the fused backward (dX, dW, dbias), every dtype × layout ×
// policy and gate placement, with and without bias: see "the backward" below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bwd_case.hpp"
#include "gpu_case.hpp"

namespace swiglu::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Z's fill for the second run: 0x7B7B is 61280 in fp16 and about 1.3e36 in bf16, 0x7B7B7B7B about
// 1.3e36 in fp32, all finite, so an expected NaN or inf can only come from the kernel.
constexpr unsigned char kFinitePoisonByte = 0x7B;

struct Shape {
  int64_t b, i, d, pad;
};

// 37×200×72: every row a whole number of 16-byte vectors (vector loads or cp.async, paired Z
// stores). 19×77×33 with a padded stride: none is, so the element-wise loads and stores run. Both
// leave M, N and K tails in every tile.
const Shape kShapes[] = {{37, 200, 72, 0}, {19, 77, 33, 3}};

Problem make_problem(const Shape& s, DType dtype, Layout layout) {
  Problem p;
  p.batch = s.b;
  p.in_features = s.i;
  p.hidden = s.d;
  p.ldx = s.i + s.pad;
  p.dtype = dtype;
  p.layout = layout;
  p.bias = true;
  return p;
}

size_t x_at(const Problem& p, int64_t m, int64_t k) {
  return static_cast<size_t>(m * p.x_stride() + k);
}

// Row `row` of [Wa; Wb] (Wa's output n is row n, Wb's is row D + n), element k, in p.layout.
size_t w_at(const Problem& p, int64_t row, int64_t k) {
  return static_cast<size_t>(p.layout == Layout::linear ? row * p.in_features + k
                                                        : k * 2 * p.hidden + row);
}

std::string where(int64_t m, int64_t n) {
  std::string s = std::to_string(m);  // Why not "[" + ...: GCC 12 warns (-Wrestrict) on that form
  s += ",";
  s += std::to_string(n);
  return '[' + s + ']';
}

std::vector<float> read_z(const GpuCase& c, const Problem& p) {
  const size_t n = static_cast<size_t>(p.batch * p.hidden);
  std::vector<unsigned char> raw(n * dtype_size(p.dtype));
  CUDA_CHECK(cudaMemcpy(raw.data(), c.z(), raw.size(), cudaMemcpyDeviceToHost));
  return common::from_dtype_bytes(raw.data(), n, p.dtype);
}

// Where `ref` is NaN, `got` must be NaN; where it is ±inf, the same infinity; where it is finite,
// finite. `ref` is a row-major matrix of `cols` columns named `name`. Returns a description of the
// mismatches (the first few), or "" when there are none.
std::string nonfinite_mismatches(const std::vector<float>& got, const std::vector<double>& ref,
                                 int64_t cols, const std::string& name = "Z") {
  std::string out;
  int64_t count = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = ref[i], g = got[i];
    const bool ok = std::isnan(e) ? std::isnan(g) : std::isinf(e) ? g == e : std::isfinite(g);
    if (ok) continue;
    if (++count <= 5) {
      out += " " + name + where(static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols) +
             " got " + std::to_string(g) + " expected " + std::to_string(e) + ";";
    }
  }
  if (count == 0) return std::string();
  std::string head = " ";  // Why not " " + ...: GCC 12 warns (-Wrestrict) on that form
  head += std::to_string(count);
  return head + " elements:" + out;
}

using OutputCheck = std::function<void(const std::vector<float>& z, const std::string& what)>;

// Runs every compiled tile and the heuristic's pick on `c`. Each run must launch, finish without a
// CUDA error, pass parity against the fp64 reference (NaN poison), and, run again over a finite
// poison, reproduce the reference's NaN and inf elements exactly. `extra` gets the first run's Z.
void run_every_tile(const Problem& p, const GpuCase& c, const OutputCheck& extra = {}) {
  const DeviceTraits dev = current_traits();
  std::vector<std::optional<TileConfig>> tiles;
  for (const TileConfig& t : forward_tiles(p, dev)) tiles.emplace_back(t);
  ASSERT_FALSE(tiles.empty()) << describe(p);
  tiles.emplace_back(std::nullopt);  // the heuristic's pick
  const size_t z_bytes = static_cast<size_t>(p.batch * p.hidden) * dtype_size(p.dtype);

  for (const auto& tile : tiles) {
    ForwardOptions o;
    o.tile = tile;
    TileConfig used;
    Status st;
    const auto launch = [&] { st = forward(p, c.x(), c.w(), c.bias(), c.z(), nullptr, o, &used); };

    const bench::ParityResult r = c.check(launch);  // throws on a CUDA error (a trap included)
    const std::string what = describe(p) + " tile=" + (tile ? "" : "auto:") + used.name();
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    EXPECT_TRUE(r.pass) << what << ": " << r.summary();
    if (extra) extra(read_z(c, p), what);

    CUDA_CHECK(cudaMemset(c.z(), kFinitePoisonByte, z_bytes));
    launch();
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    ASSERT_EQ(cudaGetLastError(), cudaSuccess) << what;
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    const std::string bad = nonfinite_mismatches(read_z(c, p), c.reference(), p.hidden);
    EXPECT_TRUE(bad.empty()) << what << " (finite poison): NaN/inf differ from the reference in"
                             << bad;
  }
}

// ---- the expected non-finite pattern ------------------------------------------------------------

struct Special {
  int64_t m, k;  // X[m][k]
  float value;   // NaN or ±inf
};

// Z[m][n] for a row m of X that holds infinities (and no NaN): G and U are each the sum of their
// infinite terms, since the finite rest cannot change an infinity, evaluated here in IEEE double
// (inf·0 = NaN, inf − inf = NaN). Then silu(+inf)·U = U when U is ±inf; silu(−inf), NaN give NaN.
double expected_infinite_row(const GpuCase& c, const Problem& p,
                             const std::vector<Special>& specials, int64_t m, int64_t n) {
  double g = 0, u = 0;
  for (const Special& s : specials) {
    if (s.m != m) continue;
    g += static_cast<double>(s.value) * c.host_w()[w_at(p, n, s.k)];
    u += static_cast<double>(s.value) * c.host_w()[w_at(p, p.hidden + n, s.k)];
  }
  return g == INFINITY && std::isinf(u) ? u : NAN;
}

// Asserts, on the host, that the reference agrees with the derivation: rows listed in `specials`
// follow expected_infinite_row, every other element is finite. Returns the NaN and inf counts.
void check_reference_rows(const GpuCase& c, const Problem& p, const std::vector<Special>& specials,
                          int64_t* nans, int64_t* infs) {
  *nans = *infs = 0;
  const auto& ref = c.reference();
  for (int64_t m = 0; m < p.batch; ++m) {
    bool special_row = false;
    for (const Special& s : specials) special_row = special_row || s.m == m;
    for (int64_t n = 0; n < p.hidden; ++n) {
      const double e = ref[static_cast<size_t>(m * p.hidden + n)];
      if (!special_row) {
        ASSERT_TRUE(std::isfinite(e)) << "reference Z" << where(m, n) << " = " << e;
        continue;
      }
      const double want = expected_infinite_row(c, p, specials, m, n);
      ASSERT_TRUE(std::isnan(want) ? std::isnan(e) : e == want)
          << "reference Z" << where(m, n) << " = " << e << ", derived " << want;
      *nans += std::isnan(e) ? 1 : 0;
      *infs += std::isinf(e) ? 1 : 0;
    }
  }
}

// G (row < D) or U (row = D + n) of Z[m][n] in double, from host inputs in the layouts GpuCase
// holds them.
double pre_activation(const Problem& p, const std::vector<float>& x, const std::vector<float>& w,
                      const std::vector<float>& bias, int64_t m, int64_t row) {
  double v = p.bias ? bias[static_cast<size_t>(row)] : 0.0;
  for (int64_t k = 0; k < p.in_features; ++k)
    v += static_cast<double>(x[x_at(p, m, k)]) * w[w_at(p, row, k)];
  return v;
}

// The same from the inputs as uploaded.
double gate_input(const GpuCase& c, const Problem& p, int64_t m, int64_t row) {
  return pre_activation(p, c.host_x(), c.host_w(), c.host_bias(), m, row);
}

GpuCase::InputEdit set_x(const Problem& p, const std::vector<Special>& specials) {
  return [p, specials](std::vector<float>& x, std::vector<float>&, std::vector<float>&) {
    for (const Special& s : specials) x[x_at(p, s.m, s.k)] = s.value;
  };
}

// ---- the tests ----------------------------------------------------------------------------------

using Param = std::tuple<DType, Layout, Math>;

class Numerics : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (math() != Math::exact && current_traits().cc_major < 8)
      GTEST_SKIP() << to_string(math()) << " needs sm_80";
  }
  Math math() const { return std::get<2>(GetParam()); }
  Problem problem(const Shape& s) const {
    Problem p = make_problem(s, std::get<0>(GetParam()), std::get<1>(GetParam()));
    p.math = math();
    return p;
  }
  // The infinities-in-X tests: 3xtf32 gives NaN rows there by design (Numerics3xtf32).
  bool infinite_x_is_nan() const { return math() == Math::tf32x3; }
};

// ba is set so that G spans about ±200 in most columns: |X·Wa| <= Σ|x||w| <= I·(1/√I) = √I < 14.2
// (|x| <= 1, |w| <= 1/√I up to rounding), so G stays within 14.2 of ba. Every column with
// |ba| >= 110 has |G| > 88.8, where expf(|G|) overflows fp32; ±95 is past it for typical draws.
// Columns n % 10 >= 8 keep their drawn bias (moderate G). The kernel must return G·U for large
// positive G (e^-G underflows to 0) and ±0 for large negative G (G/inf), never NaN; the reference's
// silu is exact there.
TEST_P(Numerics, GateInputsPastExpOverflowStayFinite) {
  constexpr float kBigGate[] = {200, -200, 150, -150, 110, -110, 95, -95};
  uint64_t seed = 300;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const auto big = [&](int64_t n) { return n % 10 < 8 ? kBigGate[n % 10] : 0.0f; };
    const GpuCase c(p, ++seed, false,
                    [&](std::vector<float>&, std::vector<float>&, std::vector<float>& bias) {
                      for (int64_t n = 0; n < p.hidden; ++n)
                        if (big(n) != 0) bias[static_cast<size_t>(n)] = big(n);
                    });
    // |silu(G)·U| <= 110·e^-80.8·14.3 < 2e-32 when ba <= -95: both sides are (near) zero there.
    const auto negligible = [&](const std::vector<float>& z, const std::string& what) {
      for (int64_t m = 0; m < p.batch; ++m) {
        for (int64_t n = 0; n < p.hidden; ++n) {
          if (big(n) < 0) {
            ASSERT_LE(std::fabs(z[static_cast<size_t>(m * p.hidden + n)]), 1e-30)
                << what << ": Z" << where(m, n) << " with ba = " << big(n);
          }
        }
      }
    };
    for (double e : c.reference()) ASSERT_TRUE(std::isfinite(e)) << describe(p);
    std::vector<float> ref_f(c.reference().begin(), c.reference().end());
    negligible(ref_f, "reference");
    run_every_tile(p, c, negligible);
  }
}

// One NaN in each of three rows (first, middle, last; K at the end, start, middle): those rows of
// Z are NaN in every column, every other row is untouched and finite.
TEST_P(Numerics, NaNInXPoisonsExactlyItsRow) {
  uint64_t seed = 310;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const std::vector<Special> nan_at = {{0, p.in_features - 1, kNaN},
                                         {p.batch / 2, 0, kNaN},
                                         {p.batch - 1, p.in_features / 2, kNaN}};
    const GpuCase c(p, ++seed, false, set_x(p, nan_at));
    const auto& ref = c.reference();
    for (int64_t m = 0; m < p.batch; ++m) {
      const bool nan_row = m == 0 || m == p.batch / 2 || m == p.batch - 1;
      for (int64_t n = 0; n < p.hidden; ++n) {
        const double e = ref[static_cast<size_t>(m * p.hidden + n)];
        ASSERT_TRUE(nan_row ? std::isnan(e) : std::isfinite(e))
            << "reference Z" << where(m, n) << " = " << e;
      }
    }
    run_every_tile(p, c);
  }
}

// NaN in every element of X's row padding (columns I .. ldx-1), which the kernel must never read:
// Z is exactly as without it. 37×200 with ldx 208 takes the vector/cp.async loads, 19×77 with
// ldx 80 the element-wise ones.
TEST_P(Numerics, NaNInXRowPaddingIsNeverRead) {
  const Shape padded[] = {{37, 200, 72, 8}, {19, 77, 33, 3}};
  uint64_t seed = 320;
  for (const Shape& s : padded) {
    const Problem p = problem(s);
    const auto pad_nan = [&](std::vector<float>& x, std::vector<float>&, std::vector<float>&) {
      for (int64_t m = 0; m < p.batch; ++m)
        for (int64_t k = p.in_features; k < p.x_stride(); ++k) x[x_at(p, m, k)] = kNaN;
    };
    const GpuCase c(p, ++seed, false, pad_nan);
    for (double e : c.reference()) ASSERT_TRUE(std::isfinite(e)) << describe(p);
    run_every_tile(p, c);
  }
}

// +inf alone in row 1 (last K column), −inf alone in row B−2 (first K column). In those rows G and
// U are ±inf with the sign of ±Wa[n][k] and ±Wb[n][k]: Z is U's infinity where G = +inf and NaN
// where G = −inf. Both outcomes occur in every row (the weights' signs are random).
TEST_P(Numerics, InfinityInXFollowsIeee) {
  if (infinite_x_is_nan()) GTEST_SKIP() << "3xtf32: see Numerics3xtf32.InfinityInXMakesItsRowNaN";
  uint64_t seed = 330;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const std::vector<Special> infs = {{1, p.in_features - 1, kInf}, {p.batch - 2, 0, -kInf}};
    const GpuCase c(p, ++seed, false, set_x(p, infs));
    int64_t n_nan = 0, n_inf = 0;
    check_reference_rows(c, p, infs, &n_nan, &n_inf);
    if (HasFatalFailure()) return;
    EXPECT_GT(n_nan, 0) << describe(p);
    EXPECT_GT(n_inf, 0) << describe(p);
    run_every_tile(p, c);
  }
}

// +inf and −inf in the same row (K columns 1 and I−2): G = inf·(Wa[n][1] − Wa[n][I−2]) in sign
// terms, NaN where the two weights have the same sign (inf − inf), ±inf where they differ; the same
// for U. The fp32 kernel gets the same: once an inf − inf has happened the sum is NaN whatever the
// order, and two infinities of one sign add to that infinity.
TEST_P(Numerics, OppositeInfinitiesInOneRowFollowIeee) {
  if (infinite_x_is_nan()) GTEST_SKIP() << "3xtf32: see Numerics3xtf32.InfinityInXMakesItsRowNaN";
  uint64_t seed = 340;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const int64_t row = p.batch / 2;
    const std::vector<Special> infs = {{row, 1, kInf}, {row, p.in_features - 2, -kInf}};
    const GpuCase c(p, ++seed, false, set_x(p, infs));
    int64_t n_nan = 0, n_inf = 0;
    check_reference_rows(c, p, infs, &n_nan, &n_inf);
    if (HasFatalFailure()) return;
    EXPECT_GT(n_nan, 0) << describe(p);
    EXPECT_GT(n_inf, 0) << describe(p);
    run_every_tile(p, c);
  }
}

// The gate's own infinities, with the other factor finite (an inf in X makes G and U infinite
// together, so Z there is NaN or inf whatever silu(−inf) gives): ba = −inf in column 0 makes
// G = −inf with U finite, so Z = silu(−inf)·U = NaN in every row (the kernel's −inf/inf, the
// reference's −inf·0); ba = +inf in column D−1 gives silu(+inf)·U = ±inf with U's sign; bb = +inf
// in column D/2 gives silu(G)·inf = ±inf with the sign of the moderate, nonzero G. Those signs are
// the same in fp32 as in fp64 because |U| and |G| there are far above fp32's rounding error (< 1e-5
// here), which the test checks first.
TEST_P(Numerics, InfiniteBiasFollowsIeee) {
  uint64_t seed = 345;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const int64_t D = p.hidden;
    const auto inf_bias = [&](std::vector<float>&, std::vector<float>&, std::vector<float>& bias) {
      bias[0] = -kInf;                                // ba, column 0
      bias[static_cast<size_t>(D - 1)] = kInf;        // ba, column D-1
      bias[static_cast<size_t>(D + D / 2)] = kInf;    // bb, column D/2
    };
    const GpuCase c(p, ++seed, false, inf_bias);
    for (int64_t m = 0; m < p.batch; ++m) {
      const double u = gate_input(c, p, m, D + D - 1), g = gate_input(c, p, m, D / 2);
      ASSERT_GT(std::fabs(u), 1e-3) << "U" << where(m, D - 1) << " too close to 0 for a sure sign";
      ASSERT_GT(std::fabs(g), 1e-3) << "G" << where(m, D / 2) << " too close to 0 for a sure sign";
    }
    const auto& ref = c.reference();
    for (int64_t m = 0; m < p.batch; ++m) {
      for (int64_t n = 0; n < D; ++n) {
        const double e = ref[static_cast<size_t>(m * D + n)];
        const bool ok = n == 0                       ? std::isnan(e)
                        : n == D - 1 || n == D / 2 ? std::isinf(e)
                                                   : std::isfinite(e);
        ASSERT_TRUE(ok) << "reference Z" << where(m, n) << " = " << e;
      }
    }
    run_every_tile(p, c);
  }
}

// NaN in one element of Wa's row D−1 (last K column) and of Wa's row 0 (first K column), and in
// Wb's row D/2: those three columns of Z are NaN in every row (silu(NaN) and x·NaN are NaN), every
// other column is finite.
TEST_P(Numerics, NaNInWPoisonsExactlyItsColumn) {
  uint64_t seed = 350;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s);
    const int64_t D = p.hidden, I = p.in_features;
    const auto nan_w = [&](std::vector<float>&, std::vector<float>& w, std::vector<float>&) {
      w[w_at(p, D - 1, I - 1)] = kNaN;      // Wa, column D-1
      w[w_at(p, 0, 0)] = kNaN;              // Wa, column 0
      w[w_at(p, D + D / 2, I / 2)] = kNaN;  // Wb, column D/2
    };
    const GpuCase c(p, ++seed, false, nan_w);
    const auto& ref = c.reference();
    for (int64_t m = 0; m < p.batch; ++m) {
      for (int64_t n = 0; n < D; ++n) {
        const bool nan_col = n == 0 || n == D / 2 || n == D - 1;
        const double e = ref[static_cast<size_t>(m * D + n)];
        ASSERT_TRUE(nan_col ? std::isnan(e) : std::isfinite(e))
            << "reference Z" << where(m, n) << " = " << e;
      }
    }
    run_every_tile(p, c);
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = std::string(to_string(std::get<0>(info.param))) + "_" +
                     std::string(to_string(std::get<1>(info.param)));
  if (std::get<2>(info.param) != Math::exact) {
    name += '_';
    name += to_string(std::get<2>(info.param));
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(All, Numerics,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(Layout::linear, Layout::packed),
                                            ::testing::Values(Math::exact)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Fp32Tf32x3, Numerics,
                         ::testing::Combine(::testing::Values(DType::f32),
                                            ::testing::Values(Layout::linear, Layout::packed),
                                            ::testing::Values(Math::tf32x3)),
                         param_name);

// 3xtf32 with ±inf in X: the split's small part of an infinity is NaN (inf − inf), so exactly the
// rows of X that hold an infinity are NaN in every column of Z (where exact fp32 gives the IEEE
// infinities or NaN, InfinityInXFollowsIeee), and every other row passes parity. NaN poison and
// finite poison, every compiled tile and the heuristic's pick.
TEST(Numerics3xtf32, InfinityInXMakesItsRowNaN) {
  const DeviceTraits dev = current_traits();
  if (dev.cc_major < 8) GTEST_SKIP() << "3xtf32 needs sm_80";
  uint64_t seed = 360;
  for (const Layout layout : {Layout::linear, Layout::packed}) {
    for (const Shape& s : kShapes) {
      Problem p = make_problem(s, DType::f32, layout);
      p.math = Math::tf32x3;
      const std::vector<Special> infs = {{1, p.in_features - 1, kInf}, {p.batch - 2, 0, -kInf}};
      const GpuCase c(p, ++seed, false, set_x(p, infs));
      const auto inf_row = [&](int64_t m) { return m == 1 || m == p.batch - 2; };
      // The finite rows against the reference, at 3xtf32's tolerance.
      std::vector<double> ref_rest;
      for (int64_t m = 0; m < p.batch; ++m)
        if (!inf_row(m))
          for (int64_t n = 0; n < p.hidden; ++n)
            ref_rest.push_back(c.reference()[static_cast<size_t>(m * p.hidden + n)]);
      std::vector<std::optional<TileConfig>> tiles;
      for (const TileConfig& t : forward_tiles(p, dev)) tiles.emplace_back(t);
      ASSERT_FALSE(tiles.empty()) << describe(p);
      tiles.emplace_back(std::nullopt);
      const size_t z_bytes = static_cast<size_t>(p.batch * p.hidden) * sizeof(float);
      for (const auto& tile : tiles) {
        ForwardOptions o;
        o.tile = tile;
        TileConfig used;
        for (const unsigned char poison : {common::kPoisonByte, kFinitePoisonByte}) {
          CUDA_CHECK(cudaMemset(c.z(), poison, z_bytes));
          const Status st = forward(p, c.x(), c.w(), c.bias(), c.z(), nullptr, o, &used);
          const std::string what = describe(p) + " tile=" + (tile ? "" : "auto:") + used.name() +
                                   (poison == common::kPoisonByte ? "" : " (finite poison)");
          ASSERT_TRUE(st.ok()) << what << ": " << st.message;
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
          const std::vector<float> z = read_z(c, p);
          std::vector<float> rest;
          for (int64_t m = 0; m < p.batch; ++m) {
            for (int64_t n = 0; n < p.hidden; ++n) {
              const float v = z[static_cast<size_t>(m * p.hidden + n)];
              if (inf_row(m)) {
                ASSERT_TRUE(std::isnan(v)) << what << ": Z" << where(m, n) << " = " << v;
              } else {
                rest.push_back(v);
              }
            }
          }
          const auto r = bench::compare(rest, ref_rest, bench::tolerance(p, bench::kFusedRounding));
          EXPECT_TRUE(r.pass) << what << ": " << r.summary();
        }
      }
    }
  }
}

// ==== the backward ===============================================================================
//
// The fused backward (dX, dW, dbias) at the same edges, every dtype × layout × mode (save;
// recompute with the epilogue and with the prologue placement), with and without bias, against
// the fp64 reference (bench::cpu_reference_backward) computed from the very values the GPU sees
// (BwdCase's input edit runs before the references and the uploads).
//
// Which non-finite outputs have one right answer. Every output is a sum of products:
//   dX[m][k] = Σ_n dH[m][n]·W12[n][k], dW12[n][k] = Σ_b dH[b][n]·X[b][k], dbias[n] = Σ_b dH[b][n].
// Given dH, the finite terms cannot change a sum that has a non-finite term (their partial sums
// stay far inside fp32's range), so the non-finite terms alone decide, the same way in any order
// (tiles, split-K atomics) and in fp32 as in fp64: NaN if one is NaN or +inf meets −inf, else
// their infinity. derive_nonfinite() computes exactly that, and each test asserts that the
// reference agrees before any kernel runs.
//
// dH = [dG | dU] itself is where fp32 and fp64 could disagree, so the tests put non-finite values
// only where they cannot:
//   - dZ = ±inf only where G and U are moderate (|G| in [0.05, 20], |U| ≥ 0.02, |SiLU′(G)| ≥
//     0.02): dG = ±inf·U·SiLU′(G) and dU = ±inf·SiLU(G) then have the same sign in fp32 and fp64,
//     also with G and U rounded to bf16 in H (save). Not where G < −87: there SiLU(G) and SiLU′(G)
//     are exactly 0 in fp32 but tiny and nonzero in fp64 (about G·e^G), so the kernel's inf·0 =
//     NaN would meet the reference's ±inf. Neither is wrong; that case is left out.
//   - G = ±inf (inf in X): SiLU′ as swiglu.hpp defines it, s·(1 + g·(1 − s)), is inf·0 at +inf
//     and 0·(−inf) at −inf, NaN in both (the formula PyTorch's silu_backward evaluates too), not
//     the limits 1 and 0; SiLU(+inf) = +inf, SiLU(−inf) = NaN (−inf/inf in the kernel, −inf·0 in
//     the reference). A kernel that clamped G would return the limits and fail, on purpose.
//   - NaN: NaN times anything, 0 included, is NaN, so NaN in dZ, X or W leaves no choice, even
//     where SiLU′(G) is exactly 0.
// Large finite G (|G| > 88, where e^±G over- or underflows fp32) must give the finite reference
// within the usual gradient tolerance: SiLU′ = 1 and SiLU = G for large positive G, both ≈ 0 for
// large negative G, never inf·0.

const Mode kBwdModes[] = {{Policy::save, GatePlacement::automatic},
                          {Policy::recompute, GatePlacement::epilogue},
                          {Policy::recompute, GatePlacement::prologue}};

// The host side of a backward case: the inputs and dZ as uploaded, and the fp64 reference.
struct HostBwd {
  Problem p;
  const std::vector<float>& x;
  const std::vector<float>& w;
  const std::vector<float>& bias;
  const std::vector<float>& dz;
  const bench::CpuGrads& ref;
};

HostBwd host_of(const Problem& p, const BwdCase& c) {
  return {p, c.fwd().host_x(), c.fwd().host_w(), c.fwd().host_bias(), c.host_dz(), c.reference()};
}

// The reference's sigmoid and SiLU′ (src/bench/cpu_reference.cpp), in double.
double sigmoid(double g) {
  if (g >= 0) return 1.0 / (1.0 + std::exp(-g));
  const double e = std::exp(g);
  return e / (1.0 + e);
}
double dsilu(double g) {
  const double s = sigmoid(g);
  return s * (1.0 + g * (1.0 - s));
}

// dH = [dG | dU] (B×2D) in double, by the reference's formulas in the reference's order.
std::vector<double> dh_of(const HostBwd& h) {
  const Problem& p = h.p;
  const int64_t B = p.batch, D = p.hidden;
  std::vector<double> dh(static_cast<size_t>(B * 2 * D));
  for (int64_t m = 0; m < B; ++m) {
    for (int64_t n = 0; n < D; ++n) {
      const double g = pre_activation(p, h.x, h.w, h.bias, m, n);
      const double u = pre_activation(p, h.x, h.w, h.bias, m, D + n);
      const double d = h.dz[static_cast<size_t>(m * D + n)];
      const double s = sigmoid(g);
      dh[static_cast<size_t>(m * 2 * D + n)] = d * u * s * (1.0 + g * (1.0 - s));
      dh[static_cast<size_t>(m * 2 * D + D + n)] = d * bench::silu(g);
    }
  }
  return dh;
}

// The outputs as their non-finite terms alone make them (see the top of this section): NaN, ±inf,
// or 0 standing for "finite". Same layouts as the reference.
bench::CpuGrads derive_nonfinite(const HostBwd& h) {
  const Problem& p = h.p;
  const int64_t B = p.batch, I = p.in_features, D2 = 2 * p.hidden;
  const std::vector<double> dh = dh_of(h);
  const auto add = [](double& sum, double term) {
    if (!std::isfinite(term)) sum += term;
  };
  bench::CpuGrads d;
  d.dx.assign(static_cast<size_t>(B * I), 0.0);
  d.dw.assign(static_cast<size_t>(D2 * I), 0.0);
  if (p.bias) d.dbias.assign(static_cast<size_t>(D2), 0.0);
  for (int64_t m = 0; m < B; ++m) {
    for (int64_t n = 0; n < D2; ++n) {
      const double v = dh[static_cast<size_t>(m * D2 + n)];
      for (int64_t k = 0; k < I; ++k) {
        add(d.dx[static_cast<size_t>(m * I + k)], v * h.w[w_at(p, n, k)]);
        add(d.dw[w_at(p, n, k)], v * h.x[x_at(p, m, k)]);
      }
      if (p.bias) add(d.dbias[static_cast<size_t>(n)], v);
    }
  }
  return d;
}

// Whether an element of the reference is expected to be NaN (else finite): output 0 is dX[m][k],
// 1 is dW12[n][k] with n over the 2D rows of [Wa; Wb], 2 is dbias[n] (k = 0).
using NanWhere = std::function<bool(int output, int64_t row, int64_t k)>;

struct Pattern {
  int64_t nan = 0, inf = 0;  // over dX, dW and dbias together
};

// Asserts, on the host, that the reference's NaN and inf elements are exactly the derived ones and,
// when `nan_where` is given, that its NaNs are exactly where it says (every other element finite).
// Counts the reference's NaN and inf elements.
void check_reference(const HostBwd& h, Pattern* count, const NanWhere& nan_where = {}) {
  const Problem& p = h.p;
  const int64_t B = p.batch, I = p.in_features, D2 = 2 * p.hidden;
  const bench::CpuGrads d = derive_nonfinite(h);
  *count = Pattern{};
  // One element: the reference's e, the derived want, named `name` for the message.
  const auto one = [&](int output, int64_t row, int64_t k, double e, double want,
                       const char* name) {
    const bool derived = std::isnan(want) ? std::isnan(e) : std::isinf(want) ? e == want
                                                                             : std::isfinite(e);
    ASSERT_TRUE(derived) << describe(p) << ": reference " << name << where(row, k) << " = " << e
                         << ", derived from its non-finite terms: "
                         << (std::isfinite(want) ? std::string("finite") : std::to_string(want));
    if (nan_where) {
      const bool ok = nan_where(output, row, k) ? std::isnan(e) : std::isfinite(e);
      ASSERT_TRUE(ok) << describe(p) << ": reference " << name << where(row, k) << " = " << e;
    }
    count->nan += std::isnan(e) ? 1 : 0;
    count->inf += std::isinf(e) ? 1 : 0;
  };
  for (int64_t m = 0; m < B; ++m) {
    for (int64_t k = 0; k < I; ++k) {
      const size_t i = static_cast<size_t>(m * I + k);
      one(0, m, k, h.ref.dx[i], d.dx[i], "dX");
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  for (int64_t n = 0; n < D2; ++n) {
    for (int64_t k = 0; k < I; ++k) {
      const size_t i = w_at(p, n, k);
      one(1, n, k, h.ref.dw[i], d.dw[i], "dW12");
      if (::testing::Test::HasFatalFailure()) return;
    }
    if (p.bias) {
      one(2, n, 0, h.ref.dbias[static_cast<size_t>(n)], d.dbias[static_cast<size_t>(n)], "dbias");
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

using BwdOutputCheck = std::function<void(const BwdCase::Outputs& out, const Grads& grads,
                                          const std::string& what)>;

// Runs `c`'s backward in `mode` through every path that computes dH or reads the extremes in its
// own way: each compiled dX tile and each compiled dW tile (paired by position), the heuristic's
// pick for each gradient subset (dW alone computes dH in the dW GEMM under the prologue
// placement) and with X and dZ misaligned, and each forward tile as the recompute GEMM (recompute)
// or as the saving forward (save: H then holds that tile's G and U, extremes included). Each run
// must finish without a CUDA error (CUDA_CHECK throws on one, a trap included), pass parity against
// the fp64 reference with the NaN poison (non-finite exactly where the reference is, the finite
// rest within the gradient tolerance, unrequested outputs untouched), and, run again over a finite
// poison, put NaN and inf exactly where the reference has them (so an unwritten element cannot pass
// as an expected NaN). `extra` gets the outputs of the first run.
void run_every_backward(const Problem& p, const BwdCase& c, const Mode& mode,
                        const BwdOutputCheck& extra = {}) {
  const DeviceTraits dev = current_traits();
  const std::string base = describe(p) + " " + describe_mode(mode);
  const bench::CpuGrads& ref = c.reference();
  const int64_t I = p.in_features;
  const int64_t dw_cols = p.layout == Layout::linear ? I : 2 * p.hidden;

  const auto check = [&](const BackwardOptions& o, bool misaligned, const std::string& what) {
    const BwdCase::Result r = c.run(o, misaligned);
    expect_pass(r, o, p, what);
    if (!r.error.empty()) return;
    if (extra) extra(c.outputs(), o.grads, what);

    const BwdCase::Result f = c.run(o, misaligned, kFinitePoisonByte);
    ASSERT_TRUE(f.error.empty()) << what << " (finite poison): " << f.error;
    EXPECT_TRUE(f.dx_untouched && f.dw_untouched && f.dbias_untouched)
        << what << " (finite poison): an output not asked for was written";
    const BwdCase::Outputs out = c.outputs();
    std::string bad;
    if (o.grads.dx) bad += nonfinite_mismatches(out.dx, ref.dx, I, "dX");
    if (o.grads.dw) {
      // dW in its own layout: [n, k] (linear, 2D×I) or [k, n] (packed, I×2D).
      bad += nonfinite_mismatches(out.dw, ref.dw, dw_cols, "dW");
      if (p.bias) bad += nonfinite_mismatches(out.dbias, ref.dbias, 2 * p.hidden, "dbias");
    }
    EXPECT_TRUE(bad.empty()) << what << " (finite poison): NaN/inf differ from the reference in"
                             << bad;
  };

  BackwardOptions o;
  o.policy = mode.policy;
  o.placement = mode.placement;
  if (mode.policy == Policy::save) {
    const bench::ParityResult z = c.save_forward();
    EXPECT_TRUE(z.pass) << base << ": Z of the saving forward: " << z.summary();
  }
  const auto dx_tiles = backward_dx_tiles(p, dev);
  const auto dw_tiles = backward_dw_tiles(p, dev);
  ASSERT_FALSE(dx_tiles.empty()) << base;
  ASSERT_FALSE(dw_tiles.empty()) << base;
  // Paired by position (the heuristic's where one list is shorter), so every tile of each runs.
  for (size_t k = 0; k < std::max(dx_tiles.size(), dw_tiles.size()); ++k) {
    BackwardOptions ot = o;
    std::string tiles = " tiles dx ";
    if (k < dx_tiles.size()) ot.dx_tile = dx_tiles[k];
    tiles += k < dx_tiles.size() ? dx_tiles[k].name() : "auto";
    tiles += " dw ";
    if (k < dw_tiles.size()) ot.dw_tile = dw_tiles[k];
    tiles += k < dw_tiles.size() ? dw_tiles[k].name() : "auto";
    check(ot, false, base + tiles);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (const Grads g : {Grads{true, false}, Grads{false, true}, Grads{true, true}}) {
    BackwardOptions og = o;
    og.grads = g;
    check(og, false, base + " auto" + (g.dx ? " dx" : "") + (g.dw ? " dw" : ""));
    if (::testing::Test::HasFatalFailure()) return;
  }
  check(o, true, base + " auto misaligned X and dZ");
  if (::testing::Test::HasFatalFailure()) return;
  for (const TileConfig& t : forward_tiles(p, dev)) {
    BackwardOptions ot = o;
    if (mode.policy == Policy::save) {
      const bench::ParityResult z = c.save_forward(&t);
      EXPECT_TRUE(z.pass) << base << ": Z of the saving forward, tile " << t.name() << ": "
                          << z.summary();
    } else {
      ot.recompute_tile = t;
    }
    check(ot, false,
          base + (mode.policy == Policy::save ? " H from forward tile " : " recompute tile ") +
              t.name());
    if (::testing::Test::HasFatalFailure()) return;
  }
}

struct DzSpot {
  int64_t m, n;  // dZ[m][n]
  float value;   // NaN or ±inf
};

BwdCase::InputEdit set_dz(const Problem& p, const std::vector<DzSpot>& spots) {
  return [p, spots](std::vector<float>&, std::vector<float>&, std::vector<float>&,
                    std::vector<float>& dz) {
    for (const DzSpot& s : spots) dz[static_cast<size_t>(s.m * p.hidden + s.n)] = s.value;
  };
}

// ba[n] for the large-gate test: ±1000 ... ±95 in columns n % 10 < 8, the drawn bias (0 here) in
// the others.
float big_gate(int64_t n) {
  constexpr float kBigGate[] = {1000, -1000, 200, -200, 110, -110, 95, -95};
  return n % 10 < 8 ? kBigGate[n % 10] : 0.0f;
}

BwdCase::InputEdit set_big_gate(const Problem& p) {
  return [p](std::vector<float>&, std::vector<float>&, std::vector<float>& bias,
             std::vector<float>&) {
    for (int64_t n = 0; n < p.hidden; ++n)
      if (big_gate(n) != 0) bias[static_cast<size_t>(n)] = big_gate(n);
  };
}

// The columns of G the no-bias large-gate test makes large: 8 of every 10, as big_gate().
bool big_column(int64_t n) { return n % 10 < 8; }

// Multiplies row n of Wa, for each big_column() n, by 100 / the smaller of column n's largest
// positive G and largest negative |G| over the batch as drawn, so that G[·][n] passes ±100 in both
// signs, in many rows. Why most columns and not one row of X or a few columns: the parity check's
// floor is the rms of the whole output; set by a few large rows of dX or dW, it would lie far below
// them, and the rounding of their large G to bf16 in H (save) would come near the tolerance.
BwdCase::InputEdit scale_big_columns(const Problem& p) {
  return [p](std::vector<float>& x, std::vector<float>& w, std::vector<float>& bias,
             std::vector<float>&) {
    for (int64_t n = 0; n < p.hidden; ++n) {
      if (!big_column(n)) continue;
      double hi = 0, lo = 0;
      for (int64_t m = 0; m < p.batch; ++m) {
        const double g = pre_activation(p, x, w, bias, m, n);
        hi = std::max(hi, g);
        lo = std::min(lo, g);
      }
      if (hi <= 0 || lo >= 0) continue;  // G of one sign only: left alone, and the test says so
      const double scale = 100.0 / std::min(hi, -lo);
      for (int64_t k = 0; k < p.in_features; ++k)
        w[w_at(p, n, k)] = static_cast<float>(w[w_at(p, n, k)] * scale);
    }
  };
}

// Where dZ = ±inf has one right answer (see the top of this section): G and U of (m, n) moderate,
// SiLU′(G) away from its zero at G ≈ −1.28.
bool moderate_gate(const Problem& p, const std::vector<float>& x, const std::vector<float>& w,
                   const std::vector<float>& bias, int64_t m, int64_t n) {
  const double g = pre_activation(p, x, w, bias, m, n);
  const double u = pre_activation(p, x, w, bias, m, p.hidden + n);
  return std::fabs(g) >= 0.05 && std::fabs(g) <= 20 && std::fabs(u) >= 0.02 &&
         std::fabs(dsilu(g)) >= 0.02;
}

// +inf at (m1, n1), −inf at (m2, n1) and at (m1, n2): the first column n1 with two rows where
// moderate_gate holds (its first and last such rows), then the last other column n2 where it holds
// in row m1. Row m1 gets two infinite columns, row m2 one; column n1 of dW sums two infinities over
// the batch. Fills `spots` (empty when there is no such choice, which the test reports).
BwdCase::InputEdit set_inf_dz(const Problem& p, std::vector<DzSpot>* spots) {
  return [p, spots](std::vector<float>& x, std::vector<float>& w, std::vector<float>& bias,
                    std::vector<float>& dz) {
    spots->clear();
    for (int64_t n1 = 0; n1 < p.hidden && spots->empty(); ++n1) {
      int64_t m1 = -1, m2 = -1;
      for (int64_t m = 0; m < p.batch; ++m) {
        if (!moderate_gate(p, x, w, bias, m, n1)) continue;
        if (m1 < 0) m1 = m;
        m2 = m;
      }
      if (m1 < 0 || m2 == m1) continue;
      for (int64_t n2 = p.hidden - 1; n2 >= 0; --n2) {
        if (n2 == n1 || !moderate_gate(p, x, w, bias, m1, n2)) continue;
        *spots = {{m1, n1, kInf}, {m2, n1, -kInf}, {m1, n2, -kInf}};
        break;
      }
    }
    set_dz(p, *spots)(x, w, bias, dz);
  };
}

using BwdParam = std::tuple<DType, Layout, int>;  // int: index into kBwdModes

class NumericsBackward : public ::testing::TestWithParam<BwdParam> {
 protected:
  Problem problem(const Shape& s, bool bias) const {
    Problem p = make_problem(s, std::get<0>(GetParam()), std::get<1>(GetParam()));
    p.bias = bias;
    return p;
  }
  Mode mode() const { return kBwdModes[std::get<2>(GetParam())]; }
};

// Largest |finite element| of the reference gradients.
double largest_finite(const bench::CpuGrads& r) {
  double big = 0;
  for (const std::vector<double>* v : {&r.dx, &r.dw, &r.dbias})
    for (double e : *v)
      if (std::isfinite(e)) big = std::max(big, std::fabs(e));
  return big;
}

// ba = ±1000, ±200, ±110, ±95 (big_gate): G = ba + X·Waᵀ with |X·Waᵀ| ≤ √I < 14.2, so every column
// with |ba| ≥ 110 has |G| > 95.8 in every row, past expf's overflow at 88.7; ±95 is past it for
// typical draws. dX, dW and dbias must match the finite reference within the gradient tolerance;
// the classic failure is SiLU′ as inf·0 = NaN there. In the columns with ba ≤ −110 (G < −95.8),
// |SiLU(G)| and |SiLU′(G)| are below |G|·e^G < 3e-40, so dG and dU are below 1e-38 (|U| < 14.3,
// |dZ| ≤ 1) and those rows of dW and their dbias below 1e-30 (B ≤ 37 terms of |X| ≤ 1): checked
// apart, because the parity check, relative to the rms of the large elements, could not tell them
// from a small wrong value.
TEST_P(NumericsBackward, GateInputsPastExpOverflowGiveFiniteGradients) {
  uint64_t seed = 600;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s, true);
    const BwdCase c(p, ++seed, false, set_big_gate(p));
    const HostBwd h = host_of(p, c);
    Pattern count;
    check_reference(h, &count, [](int, int64_t, int64_t) { return false; });
    if (HasFatalFailure()) return;
    // Every gradient fits fp16 (65504) with room: none may round to inf.
    ASSERT_LT(largest_finite(h.ref), 3e4) << describe(p);
    const auto negligible = [&](const std::vector<float>& dw, const std::vector<float>& db,
                                const std::string& what) {
      for (int64_t n = 0; n < p.hidden; ++n) {
        if (big_gate(n) > -110) continue;
        for (const int64_t row : {n, p.hidden + n}) {
          for (int64_t k = 0; k < p.in_features; ++k) {
            ASSERT_LE(std::fabs(dw[w_at(p, row, k)]), 1e-30)
                << what << ": dW12" << where(row, k) << " with ba = " << big_gate(n);
          }
          ASSERT_LE(std::fabs(db[static_cast<size_t>(row)]), 1e-30)
              << what << ": dbias[" << row << "] with ba = " << big_gate(n);
        }
      }
    };
    const std::vector<float> ref_dw(h.ref.dw.begin(), h.ref.dw.end());
    const std::vector<float> ref_db(h.ref.dbias.begin(), h.ref.dbias.end());
    negligible(ref_dw, ref_db, "reference");
    if (HasFatalFailure()) return;
    run_every_backward(p, c, mode(), [&](const BwdCase::Outputs& out, const Grads& g,
                                         const std::string& what) {
      if (g.dw) negligible(out.dw, out.dbias, what);
    });
  }
}

// Without bias: 8 of every 10 columns of G made large by scaling their rows of Wa
// (scale_big_columns), so that each passes ±100 in both signs over the batch, which the test checks
// first (and that no gradient or Z comes near fp16's 65504). dX and dW are finite and within the
// tolerance.
TEST_P(NumericsBackward, LargeGateWithoutBiasGivesFiniteGradients) {
  uint64_t seed = 610;
  for (const Shape& s : kShapes) {
    const Problem p = problem(s, false);
    const BwdCase c(p, ++seed, false, scale_big_columns(p));
    const HostBwd h = host_of(p, c);
    for (int64_t n = 0; n < p.hidden; ++n) {
      if (!big_column(n)) continue;
      double hi = 0, lo = 0;
      for (int64_t m = 0; m < p.batch; ++m) {
        const double g = gate_input(c.fwd(), p, m, n);
        hi = std::max(hi, g);
        lo = std::min(lo, g);
      }
      ASSERT_GT(hi, 95) << describe(p) << ": largest G of column " << n;
      ASSERT_LT(lo, -95) << describe(p) << ": smallest G of column " << n;
    }
    Pattern count;
    check_reference(h, &count, [](int, int64_t, int64_t) { return false; });
    if (HasFatalFailure()) return;
    ASSERT_LT(largest_finite(h.ref), 3e4) << describe(p);
    for (double z : c.fwd().reference()) ASSERT_LT(std::fabs(z), 3e4) << describe(p) << ": Z";
    run_every_backward(p, c, mode());
  }
}

// NaN in one element of X in each of three rows (as the forward test): G and U of those rows are
// NaN in every column, so is their dH; dX is NaN in exactly those rows; every element of dW and
// dbias sums a term of each of those rows, so all of dW and dbias is NaN.
TEST_P(NumericsBackward, NaNInXPoisonsItsRowsOfDxAndAllOfDw) {
  uint64_t seed = 620;
  for (const Shape& s : kShapes) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      const std::vector<Special> nan_at = {{0, p.in_features - 1, kNaN},
                                           {p.batch / 2, 0, kNaN},
                                           {p.batch - 1, p.in_features / 2, kNaN}};
      const GpuCase::InputEdit x_edit = set_x(p, nan_at);
      const BwdCase c(p, ++seed, false,
                      [&](std::vector<float>& x, std::vector<float>& w, std::vector<float>& b,
                          std::vector<float>&) { x_edit(x, w, b); });
      Pattern count;
      check_reference(host_of(p, c), &count, [&](int output, int64_t row, int64_t) {
        return output != 0 || row == 0 || row == p.batch / 2 || row == p.batch - 1;
      });
      if (HasFatalFailure()) return;
      run_every_backward(p, c, mode());
    }
  }
}

// NaN in dZ at three places (and, with bias, a fourth in a column whose ba = −200, where SiLU(G)
// and SiLU′(G) are exactly 0 in fp32: NaN·0 must stay NaN): dG and dU of those elements are NaN,
// so dX is NaN in exactly those rows, dW12 in exactly rows n and D + n of those columns (every k),
// dbias in exactly those 2 elements per column; everything else finite.
TEST_P(NumericsBackward, NaNInDzPoisonsItsRowOfDxAndItsRowsOfDw) {
  uint64_t seed = 630;
  for (const Shape& s : kShapes) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      const int64_t B = p.batch, D = p.hidden;
      std::vector<DzSpot> spots = {{0, D - 1, kNaN}, {B - 1, 0, kNaN}, {B / 2, D / 2, kNaN}};
      if (bias) spots.push_back({B / 3, D / 3, kNaN});
      const BwdCase::InputEdit dz_edit = set_dz(p, spots);
      const BwdCase c(p, ++seed, false,
                      [&](std::vector<float>& x, std::vector<float>& w, std::vector<float>& b,
                          std::vector<float>& dz) {
                        if (bias) b[static_cast<size_t>(D / 3)] = -200;
                        dz_edit(x, w, b, dz);
                      });
      Pattern count;
      check_reference(host_of(p, c), &count, [&](int output, int64_t row, int64_t) {
        for (const DzSpot& sp : spots) {
          if (output == 0 ? row == sp.m : row == sp.n || row == D + sp.n) return true;
        }
        return false;
      });
      if (HasFatalFailure()) return;
      run_every_backward(p, c, mode());
    }
  }
}

// NaN in Wb[D/2][I/2]: U is NaN in column D/2 of every row, so dG is (dZ·U·SiLU′(G)) but dU is not
// (dZ·SiLU(G) does not read U). dX is NaN everywhere (each row has dG[·][D/2]·Wa[D/2][k]); dW12 in
// exactly row D/2 (the Wa half), dbias in exactly element D/2; the Wb half's row D + D/2 of dW12,
// whose weight is the NaN, stays finite.
TEST_P(NumericsBackward, NaNInWbPoisonsDgButNotDu) {
  uint64_t seed = 640;
  for (const Shape& s : kShapes) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      const int64_t D = p.hidden;
      const BwdCase c(p, ++seed, false,
                      [&](std::vector<float>&, std::vector<float>& w, std::vector<float>&,
                          std::vector<float>&) {
                        w[w_at(p, D + D / 2, p.in_features / 2)] = kNaN;
                      });
      Pattern count;
      check_reference(host_of(p, c), &count, [&](int output, int64_t row, int64_t) {
        return output == 0 || row == D / 2;
      });
      if (HasFatalFailure()) return;
      run_every_backward(p, c, mode());
    }
  }
}

// dZ = ±inf at three places chosen by set_inf_dz where G and U are moderate (so dG and dU are
// infinities of one sure sign). dX rows m1 and m2 and dW12 rows n1, n2, D + n1, D + n2 are
// non-finite in every column, each element NaN or ±inf as its infinite terms say (two in row m2 of
// dX, four in row m1, two in each element of rows n1 and D + n1 of dW12); everything else finite.
// Both NaN and inf occur (the signs of W and X vary along k), which the test checks.
TEST_P(NumericsBackward, InfinityInDzFollowsIeee) {
  uint64_t seed = 650;
  for (const Shape& s : kShapes) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      std::vector<DzSpot> spots;
      const BwdCase c(p, ++seed, false, set_inf_dz(p, &spots));
      ASSERT_EQ(spots.size(), 3u) << describe(p) << ": no three dZ elements with moderate G and U";
      const HostBwd h = host_of(p, c);
      for (const DzSpot& sp : spots) {
        ASSERT_TRUE(moderate_gate(p, h.x, h.w, h.bias, sp.m, sp.n))
            << describe(p) << ": dZ" << where(sp.m, sp.n);
      }
      Pattern count;
      check_reference(h, &count);
      if (HasFatalFailure()) return;
      for (int64_t m = 0; m < p.batch; ++m) {
        const bool inf_row = m == spots[0].m || m == spots[1].m;
        for (int64_t k = 0; k < p.in_features; ++k) {
          const double e = h.ref.dx[static_cast<size_t>(m * p.in_features + k)];
          ASSERT_EQ(std::isfinite(e), !inf_row)
              << describe(p) << ": reference dX" << where(m, k) << " = " << e;
        }
      }
      EXPECT_GT(count.nan, 0) << describe(p);
      EXPECT_GT(count.inf, 0) << describe(p);
      run_every_backward(p, c, mode());
    }
  }
}

// +inf alone in X's row 1 (last K column), −inf alone in row B−2 (first K column), as the forward
// test. In those rows G and U are ±inf in every column, so dG = dZ·U·SiLU′(±inf) is NaN and
// dU = dZ·SiLU(G) is ±inf (G = +inf, sign of dZ) or NaN (G = −inf). dX is NaN in exactly those two
// rows, all of dWa and dba NaN, dWb and dbb NaN or ±inf in every element as their infinite terms
// say (both occur); the other rows of dX finite.
TEST_P(NumericsBackward, InfinityInXFollowsIeee) {
  uint64_t seed = 660;
  for (const Shape& s : kShapes) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      const std::vector<Special> infs = {{1, p.in_features - 1, kInf}, {p.batch - 2, 0, -kInf}};
      const GpuCase::InputEdit x_edit = set_x(p, infs);
      const BwdCase c(p, ++seed, false,
                      [&](std::vector<float>& x, std::vector<float>& w, std::vector<float>& b,
                          std::vector<float>&) { x_edit(x, w, b); });
      const HostBwd h = host_of(p, c);
      Pattern count;
      check_reference(h, &count);
      if (HasFatalFailure()) return;
      const int64_t I = p.in_features, D = p.hidden;
      for (int64_t m = 0; m < p.batch; ++m) {
        for (int64_t k = 0; k < I; ++k) {
          const double e = h.ref.dx[static_cast<size_t>(m * I + k)];
          ASSERT_TRUE(m == 1 || m == p.batch - 2 ? std::isnan(e) : std::isfinite(e))
              << describe(p) << ": reference dX" << where(m, k) << " = " << e;
        }
      }
      int64_t dwb_inf = 0;
      for (int64_t n = 0; n < 2 * D; ++n) {
        for (int64_t k = 0; k < I; ++k) {
          const double e = h.ref.dw[w_at(p, n, k)];
          ASSERT_TRUE(n < D ? std::isnan(e) : !std::isfinite(e))
              << describe(p) << ": reference dW12" << where(n, k) << " = " << e;
          dwb_inf += std::isinf(e) ? 1 : 0;
        }
      }
      EXPECT_GT(dwb_inf, 0) << describe(p);
      run_every_backward(p, c, mode());
    }
  }
}

// NaN in every element of X's row padding (columns I .. ldx−1), which neither the recompute GEMM
// (K = I) nor the dW GEMM (X as its B operand, N = I) may let into an output: the gradients are
// finite and as without it.
TEST_P(NumericsBackward, NaNInXRowPaddingIsNeverRead) {
  const Shape padded[] = {{37, 200, 72, 8}, {19, 77, 33, 3}};
  uint64_t seed = 670;
  for (const Shape& s : padded) {
    for (const bool bias : {true, false}) {
      const Problem p = problem(s, bias);
      const BwdCase c(p, ++seed, false,
                      [&](std::vector<float>& x, std::vector<float>&, std::vector<float>&,
                          std::vector<float>&) {
                        for (int64_t m = 0; m < p.batch; ++m)
                          for (int64_t k = p.in_features; k < p.x_stride(); ++k)
                            x[x_at(p, m, k)] = kNaN;
                      });
      Pattern count;
      check_reference(host_of(p, c), &count, [](int, int64_t, int64_t) { return false; });
      if (HasFatalFailure()) return;
      run_every_backward(p, c, mode());
    }
  }
}

std::string bwd_param_name(const ::testing::TestParamInfo<BwdParam>& info) {
  const Mode m = kBwdModes[std::get<2>(info.param)];
  std::string name(to_string(std::get<0>(info.param)));
  name += '_';
  name += to_string(std::get<1>(info.param));
  name += '_';
  name += to_string(m.policy);
  if (m.policy == Policy::recompute) {
    name += '_';
    name += to_string(m.placement);
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(All, NumericsBackward,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(Layout::linear, Layout::packed),
                                            ::testing::Values(0, 1, 2)),
                         bwd_param_name);

}  // namespace
}  // namespace swiglu::test
