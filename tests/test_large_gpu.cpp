// 64-bit indexing: element counts beyond 2^31 in X and Z (B·I, B·D) and in W (I·2D), on real
// allocations, against the fp32 GPU reference. Skipped where the device lacks the memory.
#include <gtest/gtest.h>

#include <cstdint>

#include "gpu_case.hpp"

namespace swiglu::test {
namespace {

bool fits(const Problem& p, double extra_bytes) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return false;
  const double es = static_cast<double>(dtype_size(p.dtype));
  const double need = es * (static_cast<double>(p.batch) * p.x_stride() +
                            2.0 * p.hidden * p.in_features + static_cast<double>(p.batch) * p.hidden) +
                      12.0 * p.batch * p.hidden + extra_bytes;  // reference: H (B×2D) and Z_ref, fp32
  return need < 0.9 * static_cast<double>(free_b);
}

void run(const Problem& p) {
  if (!fits(p, 1e9)) GTEST_SKIP() << describe(p) << " does not fit in this device's free memory";
  const GpuCase c(p, 2024, /*gpu_ref=*/true);
  TileConfig used;
  const auto r = c.check([&] {
    const Status st = forward(p, c.x(), c.w(), c.bias(), c.z(), nullptr, {}, &used);
    ASSERT_TRUE(st.ok()) << st.message;
  });
  EXPECT_TRUE(r.pass) << describe(p) << " tile=" << used.name() << ": " << r.summary();
}

TEST(LargeIndex, XAndZBeyond2To31Elements) {
  Problem p;
  p.batch = (int64_t{1} << 21) + 3;  // B·I = 2^31 + 3072, B·D = 2^31 + 33554432 + 3120
  p.in_features = 1024;
  p.hidden = 1040;
  p.dtype = DType::bf16;
  p.bias = true;
  ASSERT_GT(p.batch * p.in_features, int64_t{1} << 31);
  ASSERT_GT(p.batch * p.hidden, int64_t{1} << 31);
  run(p);
}

TEST(LargeIndex, WeightsBeyond2To31Elements) {
  for (Layout l : {Layout::linear, Layout::packed}) {
    Problem p;
    p.batch = 67;
    p.in_features = 32768;
    p.hidden = 32776;  // I·2D = 2^31 + 524288
    p.dtype = DType::bf16;
    p.layout = l;
    ASSERT_GT(2 * p.hidden * p.in_features, int64_t{1} << 31);
    run(p);
  }
}

}  // namespace
}  // namespace swiglu::test
