// The cuBLAS baselines (two GEMMs + gate, one packed GEMM + gate) against the fp64 CPU reference in
// every dtype, layout and bias setting, on tail shapes; and their backward (gate backward, dX, dW,
// dbias) against the fp32 GPU backward reference.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_case.hpp"

namespace swiglu::test {
namespace {

using Param = std::tuple<DType, Layout, bool, baselines::Variant>;

class Baselines : public ::testing::TestWithParam<Param> {};

// Plans the forward baseline `v` on c's inputs, runs it once on poisoned Z and checks Z against c's
// reference into *r; `algorithms`, when not null, receives the cuBLASLt algorithms it ran. (A void
// function, so that a failed plan can stop the test with ASSERT.)
void check_baseline(const baselines::Cublas& cublas, baselines::Variant v, const Problem& p, const GpuCase& c,
                    bench::ParityResult* r, std::string* algorithms = nullptr) {
  DeviceBuffer scratch(baselines::scratch_bytes(v, p));
  baselines::Plan plan;
  const Status st = baselines::Plan::create(cublas, v, p, c.x(), c.w(), c.bias(), c.z(), scratch.get(), &plan);
  ASSERT_TRUE(st.ok()) << st.message;
  if (algorithms != nullptr) *algorithms = plan.algorithms();
  *r = c.check(
      [&] {
        const Status run = plan.run(nullptr);
        ASSERT_TRUE(run.ok()) << run.message;
      },
      bench::Rounding{1, plan.output_type_slices()});
}

TEST_P(Baselines, MatchTheFp64Reference) {
  const auto [dtype, layout, bias, variant] = GetParam();
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  const int64_t shapes[][3] = {{1, 777, 1001}, {130, 256, 264}, {64, 784, 512}};
  uint64_t seed = 40;
  for (const auto& s : shapes) {
    Problem p;
    p.batch = s[0];
    p.in_features = s[1];
    p.hidden = s[2];
    p.dtype = dtype;
    p.layout = layout;
    p.bias = bias;
    const GpuCase c(p, ++seed);
    bench::ParityResult r;
    ASSERT_NO_FATAL_FAILURE(check_baseline(cublas, variant, p, c, &r));
    EXPECT_TRUE(r.pass) << to_string(variant) << " " << describe(p) << ": " << r.summary();
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, Baselines,
    ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                       ::testing::Values(Layout::linear, Layout::packed), ::testing::Bool(),
                       ::testing::Values(baselines::Variant::cublas2, baselines::Variant::cublas1)));

// Every variant against the reference on seeded random odd shapes up to I = 8192, every dtype,
// both layouts, with bias: the rows the old max-relative rule failed (cublas2 and cublas1 at
// B = 1000, I = 2050, D = 1001) are in this range. Prints each row's worst element against its
// bound and the cuBLASLt algorithms, whose split-K reduction is what the baselines' tolerance models.
TEST(Parity, RandomOddShapesPassForEveryVariant) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  std::mt19937_64 rng(2026);
  auto pick = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  struct Shape {
    int64_t b, i, d;
  };
  std::vector<Shape> shapes = {{1000, 2050, 1001}, {1000, 777, 5000}, {1, 8191, 777}};
  for (int n = 0; n < 5; ++n) shapes.push_back({pick(1, 1000), pick(1, 4096) * 2 - 1, pick(1, 2500) * 2 - 1});
  uint64_t seed = 600;
  for (const Shape& sh : shapes) {
    for (const DType t : {DType::f32, DType::f16, DType::bf16}) {
      for (const Layout l : {Layout::linear, Layout::packed}) {
        Problem p;
        p.batch = sh.b;
        p.in_features = sh.i;
        p.hidden = sh.d;
        p.dtype = t;
        p.layout = l;
        p.bias = true;
        // The fp32 GPU reference above 2^28 multiply-adds keeps the test to seconds.
        const bool gpu_ref = p.batch * p.in_features * 2 * p.hidden > (int64_t{1} << 28);
        const GpuCase c(p, ++seed, gpu_ref);
        const auto fused = c.check([&] {
          const Status st = forward(p, c.x(), c.w(), c.bias(), c.z(), nullptr);
          ASSERT_TRUE(st.ok()) << st.message;
        });
        EXPECT_TRUE(fused.pass) << describe(p) << " fused: " << fused.summary() << "; " << fused.tolerance();
        std::printf("%-40s fused   worst %.2f rel_l2 %.2e\n", describe(p).c_str(), fused.worst_ratio, fused.rel_l2);
        for (const auto v : {baselines::Variant::cublas2, baselines::Variant::cublas1}) {
          bench::ParityResult r;
          std::string algorithms;
          ASSERT_NO_FATAL_FAILURE(check_baseline(cublas, v, p, c, &r, &algorithms));
          EXPECT_TRUE(r.pass) << describe(p) << " " << to_string(v) << ": " << r.summary() << "; " << r.tolerance();
          std::printf("%-40s %s worst %.2f rel_l2 %.2e (%s)\n", describe(p).c_str(), std::string(to_string(v)).c_str(),
                      r.worst_ratio, r.rel_l2, algorithms.c_str());
        }
      }
    }
  }
}

TEST(Baselines, Tf32MathMatchesAtTf32Tolerance) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Problem p;
  p.batch = 96;
  p.in_features = 512;
  p.hidden = 384;
  p.dtype = DType::f32;
  p.math = Math::tf32;
  const GpuCase c(p, 9);
  bench::ParityResult r;
  ASSERT_NO_FATAL_FAILURE(check_baseline(cublas, baselines::Variant::cublas2, p, c, &r));
  EXPECT_TRUE(r.pass) << r.summary();
}

TEST(Baselines, Tf32x3MathRunsExactFp32) {
  // cuBLAS has no 3xTF32 compute type on Hopper: the 3xtf32 baselines run CUBLAS_COMPUTE_32F. The
  // 3xtf32 tolerance (5e-5) is one TF32 GEMMs miss by about 5×, so passing it shows they did not.
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Problem p;
  p.batch = 96;
  p.in_features = 2048;
  p.hidden = 384;
  p.dtype = DType::f32;
  p.math = Math::tf32x3;
  p.bias = true;
  const GpuCase c(p, 10);
  for (const auto v : {baselines::Variant::cublas2, baselines::Variant::cublas1}) {
    bench::ParityResult r;
    ASSERT_NO_FATAL_FAILURE(check_baseline(cublas, v, p, c, &r));
    EXPECT_TRUE(r.pass) << to_string(v) << ": " << r.summary();
  }
}

// ---- backward --------------------------------------------------------------------------------

DeviceBuffer upload_values(const std::vector<float>& v, DType dtype) {
  const auto bytes = common::to_dtype_bytes(v, dtype);
  DeviceBuffer d(bytes.size());
  CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  return d;
}

std::vector<float> download_values(const void* ptr, size_t n, DType dtype) {
  std::vector<unsigned char> raw(n * dtype_size(dtype));
  CUDA_CHECK(cudaMemcpy(raw.data(), ptr, raw.size(), cudaMemcpyDeviceToHost));
  return common::from_dtype_bytes(raw.data(), n, dtype);
}

// One problem's seeded inputs, dZ, the forward reference inputs and the fp32 backward reference.
class BackwardCase {
 public:
  BackwardCase(const baselines::Cublas& cublas, const Problem& p, uint64_t seed)
      : p_(p), fwd_(p, seed, /*gpu_ref=*/true) {
    const size_t B = static_cast<size_t>(p.batch), D = static_cast<size_t>(p.hidden),
                 I = static_cast<size_t>(p.in_features);
    dz_ = upload_values(common::uniform_values(B * D, -1, 1, seed + 100, p.dtype), p.dtype);
    DeviceBuffer scratch(baselines::reference_backward_scratch_bytes(p));
    DeviceBuffer dx(B * I * sizeof(float)), dw(2 * D * I * sizeof(float));
    DeviceBuffer db(2 * D * sizeof(float));
    const Status s = baselines::gpu_reference_backward(
        cublas, p, fwd_.x(), fwd_.w(), fwd_.bias(), dz_.get(), scratch.get(), dx.as<float>(),
        dw.as<float>(), p.bias ? db.as<float>() : nullptr, nullptr);
    EXPECT_TRUE(s.ok()) << s.message;
    dx_ref_ = download_values(dx.get(), B * I, DType::f32);
    dw_ref_ = download_values(dw.get(), 2 * D * I, DType::f32);
    if (p.bias) db_ref_ = download_values(db.get(), 2 * D, DType::f32);
  }

  const GpuCase& fwd() const { return fwd_; }
  const void* dz() const { return dz_.get(); }

  // Runs the forward baseline `v` into `saved`, then its backward with `grads`, and checks every
  // requested gradient (outputs poisoned first). Records failures with gtest.
  void check(const baselines::Cublas& cublas, baselines::Variant v, Grads grads) const {
    const size_t es = dtype_size(p_.dtype);
    const std::string what = std::string(to_string(v)) + " backward " + describe(p_) +
                             (grads.dx ? " dx" : "") + (grads.dw ? " dw" : "");
    DeviceBuffer saved(baselines::scratch_bytes(v, p_));
    baselines::Plan fwd;
    Status st = baselines::Plan::create(cublas, v, p_, fwd_.x(), fwd_.w(), fwd_.bias(), fwd_.z(),
                                        saved.get(), &fwd);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    ASSERT_TRUE((st = fwd.run(nullptr)).ok()) << what << ": " << st.message;

    DeviceBuffer scratch(baselines::backward_scratch_bytes(v, p_));
    DeviceBuffer dx(dx_ref_.size() * es), dw(dw_ref_.size() * es);
    DeviceBuffer db(2 * static_cast<size_t>(p_.hidden) * es);
    for (const DeviceBuffer* b : {&dx, &dw, &db})
      CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
    baselines::BackwardPlan bwd;
    st = baselines::BackwardPlan::create(
        cublas, v, p_, fwd_.x(), fwd_.w(), saved.get(), dz_.get(), grads,
        grads.dx ? dx.get() : nullptr, grads.dw ? dw.get() : nullptr,
        grads.dw && p_.bias ? db.get() : nullptr, scratch.get(), &bwd);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    ASSERT_TRUE((st = bwd.run(nullptr)).ok()) << what << ": " << st.message;
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());

    // k: the output's reduction length (dX: 2D, dW and dbias: B); slices: its partial sums rounded
    // to the dtype.
    const auto expect_match = [&](const char* name, const DeviceBuffer& got, const std::vector<float>& ref,
                                  int64_t k, int slices) {
      const auto tol = bench::gradient_tolerance(p_, k, slices);
      const auto r = bench::compare(download_values(got.get(), ref.size(), p_.dtype), ref, tol);
      EXPECT_TRUE(r.pass) << what << " " << name << ": " << r.summary();
    };
    if (grads.dx) expect_match("dX", dx, dx_ref_, 2 * p_.hidden, bwd.dx_slices());
    if (grads.dw) expect_match("dW", dw, dw_ref_, p_.batch, bwd.dw_slices());
    if (grads.dw && p_.bias) expect_match("dbias", db, db_ref_, p_.batch, 1);
  }

 private:
  Problem p_;
  GpuCase fwd_;
  DeviceBuffer dz_;
  std::vector<float> dx_ref_, dw_ref_, db_ref_;
};

using BackwardParam = std::tuple<DType, Layout, bool>;

class BackwardBaselines : public ::testing::TestWithParam<BackwardParam> {};

TEST_P(BackwardBaselines, MatchTheFp32GpuReference) {
  const auto [dtype, layout, bias] = GetParam();
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  // {B, I, D, ldx}: a single row with odd I and D, tails of every tile, and a padded X.
  const int64_t shapes[][4] = {{1, 777, 1001, 0}, {130, 256, 264, 0}, {67, 300, 129, 307}};
  uint64_t seed = 70;
  for (const auto& s : shapes) {
    Problem p;
    p.batch = s[0];
    p.in_features = s[1];
    p.hidden = s[2];
    p.ldx = s[3];
    p.dtype = dtype;
    p.layout = layout;
    p.bias = bias;
    const BackwardCase c(cublas, p, ++seed);
    for (const auto v : {baselines::Variant::cublas2, baselines::Variant::cublas1})
      c.check(cublas, v, Grads{});
  }
}

INSTANTIATE_TEST_SUITE_P(All, BackwardBaselines,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(Layout::linear, Layout::packed),
                                            ::testing::Bool()));

// Both baselines' gradients for an fp32 problem in the given math mode, bias included; BackwardCase
// holds them to that mode's tolerance.
void check_fp32_backward_baselines(Math math, uint64_t seed) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Problem p;
  p.batch = 96;
  p.in_features = 512;
  p.hidden = 384;
  p.dtype = DType::f32;
  p.math = math;
  p.bias = true;
  const BackwardCase c(cublas, p, seed);
  for (const auto v : {baselines::Variant::cublas2, baselines::Variant::cublas1})
    c.check(cublas, v, Grads{});
}

TEST(BackwardBaselinesTf32, MatchAtTf32Tolerance) { check_fp32_backward_baselines(Math::tf32, 11); }

TEST(BackwardBaselinesTf32x3, MatchAtTheExactTolerance) {
  // 3xtf32 baselines run exact fp32 GEMMs, so their gradients meet exact fp32's bound.
  check_fp32_backward_baselines(Math::tf32x3, 12);
}

TEST(BackwardBaselinesGrads, OnlyTheRequestedGradients) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  for (const Layout layout : {Layout::linear, Layout::packed}) {
    Problem p;
    p.batch = 33;
    p.in_features = 200;
    p.hidden = 72;
    p.dtype = DType::bf16;
    p.layout = layout;
    p.bias = true;
    const BackwardCase c(cublas, p, 21);
    for (const auto v : {baselines::Variant::cublas2, baselines::Variant::cublas1}) {
      c.check(cublas, v, Grads{.dx = true, .dw = false});
      c.check(cublas, v, Grads{.dx = false, .dw = true});
    }
  }
}

TEST(BackwardBaselinesArgs, RejectMissingPointersAndAcceptEmptyBatch) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Problem p;
  p.batch = 8;
  p.in_features = 64;
  p.hidden = 32;
  p.dtype = DType::f16;
  p.bias = true;
  const auto v = baselines::Variant::cublas1;
  DeviceBuffer x(1024), w(8192), saved(1024), dz(512), dx(1024), dw(8192), db(128),
      scratch(baselines::backward_scratch_bytes(v, p));
  const auto create = [&](const Problem& q, const void* dz_ptr, Grads g, void* dbias) {
    baselines::BackwardPlan plan;
    return baselines::BackwardPlan::create(cublas, v, q, x.get(), w.get(), saved.get(), dz_ptr, g,
                                           dx.get(), dw.get(), dbias, scratch.get(), &plan);
  };
  EXPECT_TRUE(create(p, dz.get(), Grads{}, db.get()).ok());
  Status s = create(p, nullptr, Grads{}, db.get());
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("dz"), std::string::npos) << s.message;
  s = create(p, dz.get(), Grads{}, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("dbias"), std::string::npos) << s.message;
  // dx only: no dbias is needed.
  EXPECT_TRUE(create(p, dz.get(), Grads{.dx = true, .dw = false}, nullptr).ok());

  // B == 0: a no-op that needs no pointers and writes nothing.
  Problem empty = p;
  empty.batch = 0;
  baselines::BackwardPlan plan;
  s = baselines::BackwardPlan::create(cublas, v, empty, nullptr, nullptr, nullptr, nullptr, Grads{},
                                      nullptr, nullptr, nullptr, nullptr, &plan);
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_TRUE(plan.run(nullptr).ok());
}

}  // namespace
}  // namespace swiglu::test
