// The cuBLAS baselines (two GEMMs + gate, one packed GEMM + gate) against the fp64 CPU reference in
// every dtype, layout and bias setting, on tail shapes.
#include <gtest/gtest.h>

#include <tuple>

#include "gpu_case.hpp"

namespace swiglu::test {
namespace {

using Param = std::tuple<DType, Layout, bool, baselines::Variant>;

class Baselines : public ::testing::TestWithParam<Param> {};

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
    DeviceBuffer scratch(baselines::scratch_bytes(variant, p));
    baselines::Plan plan;
    const Status st = baselines::Plan::create(cublas, variant, p, c.x(), c.w(), c.bias(), c.z(),
                                              scratch.get(), &plan);
    ASSERT_TRUE(st.ok()) << st.message;
    const auto r = c.check([&] {
      const Status run = plan.run(nullptr);
      ASSERT_TRUE(run.ok()) << run.message;
    });
    EXPECT_TRUE(r.pass) << to_string(variant) << " " << describe(p) << ": " << r.summary();
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, Baselines,
    ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                       ::testing::Values(Layout::linear, Layout::packed), ::testing::Bool(),
                       ::testing::Values(baselines::Variant::cublas2, baselines::Variant::cublas1)));

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
  DeviceBuffer scratch(baselines::scratch_bytes(baselines::Variant::cublas2, p));
  baselines::Plan plan;
  ASSERT_TRUE(baselines::Plan::create(cublas, baselines::Variant::cublas2, p, c.x(), c.w(), nullptr,
                                      c.z(), scratch.get(), &plan).ok());
  const auto r = c.check([&] { ASSERT_TRUE(plan.run(nullptr).ok()); });
  EXPECT_TRUE(r.pass) << r.summary();
}

}  // namespace
}  // namespace swiglu::test
