// The fused forward at the edges of fp32: gate inputs past the point where expf overflows, NaN and
// ±inf in X, ±inf in the bias, NaN in W, NaN in X's row padding. Every dtype (fp32 exact, fp16,
// bf16) × layout, with bias, every compiled tile plus the heuristic's pick, against the fp64 CPU
// reference.
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
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

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
  return bench::from_dtype_bytes(raw.data(), n, p.dtype);
}

// Where `ref` is NaN, `got` must be NaN; where it is ±inf, the same infinity; where it is finite,
// finite. Returns a description of the mismatches (the first few), or "" when there are none.
std::string nonfinite_mismatches(const std::vector<float>& got, const std::vector<double>& ref,
                                 int64_t D) {
  std::string out;
  int64_t count = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = ref[i], g = got[i];
    const bool ok = std::isnan(e) ? std::isnan(g) : std::isinf(e) ? g == e : std::isfinite(g);
    if (ok) continue;
    if (++count <= 5) {
      out += " Z" + where(static_cast<int64_t>(i) / D, static_cast<int64_t>(i) % D) + " got " +
             std::to_string(g) + " expected " + std::to_string(e) + ";";
    }
  }
  return count == 0 ? std::string() : std::to_string(count) + " elements:" + out;
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
    EXPECT_TRUE(bad.empty()) << what << " (finite poison): NaN/inf differ from the reference in "
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

// G (row < D) or U (row = D + n) of Z[m][n] in double, from the inputs as uploaded.
double gate_input(const GpuCase& c, const Problem& p, int64_t m, int64_t row) {
  double v = p.bias ? c.host_bias()[static_cast<size_t>(row)] : 0.0;
  for (int64_t k = 0; k < p.in_features; ++k)
    v += static_cast<double>(c.host_x()[x_at(p, m, k)]) * c.host_w()[w_at(p, row, k)];
  return v;
}

GpuCase::InputEdit set_x(const Problem& p, const std::vector<Special>& specials) {
  return [p, specials](std::vector<float>& x, std::vector<float>&, std::vector<float>&) {
    for (const Special& s : specials) x[x_at(p, s.m, s.k)] = s.value;
  };
}

// ---- the tests ----------------------------------------------------------------------------------

using Param = std::tuple<DType, Layout>;

class Numerics : public ::testing::TestWithParam<Param> {
 protected:
  Problem problem(const Shape& s) const {
    return make_problem(s, std::get<0>(GetParam()), std::get<1>(GetParam()));
  }
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
  return std::string(to_string(std::get<0>(info.param))) + "_" +
         std::string(to_string(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(All, Numerics,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(Layout::linear, Layout::packed)),
                         param_name);

}  // namespace
}  // namespace swiglu::test
