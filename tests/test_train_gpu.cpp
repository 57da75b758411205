// GPU tests of `swiglubench train`'s trainer on a small synthetic data set (no files needed): the
// loss falls, the fused layer and the cuBLAS baseline agree step by step from the same seed, the
// frozen-weights mode leaves the SwiGLU weights alone, odd batch sizes work, and a run repeats
// exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "common/device.hpp"
#include "train/agreement.hpp"
#include "train/idx.hpp"
#include "train/trainer.hpp"

namespace swiglu::train {
namespace {

constexpr int kClasses = 10;

// Ten random 28 × 28 prototypes with pixels in 64..191; example i is prototype (i mod 10) plus
// uniform noise of ±128, clamped to 0..255. Hard enough that all three epochs of the tests still
// learn (the mean loss of SGD's epochs goes about 2.26, 1.66, 0.19, in a NumPy model of the same
// training), easy enough that the test accuracy ends near 1.
Split synthetic_split(int64_t count, uint32_t seed) {
  std::mt19937 rng(12345);  // the prototypes are shared by both splits
  std::vector<int> proto(kClasses * 784);
  for (int& p : proto) p = 64 + static_cast<int>(rng() % 128);
  std::mt19937 noise(seed);
  Split s;
  s.count = count;
  s.rows = 28;
  s.cols = 28;
  s.pixels.resize(static_cast<size_t>(count) * 784);
  s.labels.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int c = static_cast<int>(i % kClasses);
    s.labels[static_cast<size_t>(i)] = static_cast<uint8_t>(c);
    for (int j = 0; j < 784; ++j) {
      const int v = proto[c * 784 + j] + static_cast<int>(noise() % 257) - 128;
      s.pixels[static_cast<size_t>(i * 784 + j)] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  return s;
}

const FashionMnist& data() {
  static const FashionMnist d{synthetic_split(1000, 1), synthetic_split(300, 2)};
  return d;
}

TrainConfig config(LayerVariant v, DType dtype, Optimizer opt = Optimizer::sgd) {
  TrainConfig c;
  c.variant = v;
  c.dtype = dtype;
  c.batch = 64;  // 1000 = 15 × 64 + 40: every epoch ends with a partial batch
  c.hidden = 64;
  c.optimizer = opt;
  c.lr = opt == Optimizer::sgd ? 0.01f : 0.001f;
  c.weight_decay = opt == Optimizer::sgd ? 0.0f : 0.01f;
  c.seed = 7;
  return c;
}

struct RunResult {
  std::vector<std::vector<double>> losses;  // per epoch, per step
  std::vector<EvalStats> evals;
  InitialParams params;
};

RunResult train(const TrainConfig& c, int epochs, int64_t max_steps = 0) {
  common::Stream stream;
  baselines::Cublas cublas;
  const Status s = cublas.init();
  EXPECT_TRUE(s.ok()) << s.message;
  const Normalization norm = pixel_statistics(data().train);
  const DeviceSplit tr(data().train, c.dtype, norm, stream.get());
  const DeviceSplit te(data().test, c.dtype, norm, stream.get());
  Trainer t(c, tr, te, cublas, stream.get(), max_steps);
  t.warm_up();
  RunResult r;
  for (int e = 1; e <= epochs; ++e) {
    const EpochStats st = t.train_epoch(epoch_order(c.seed, e, tr.count()));
    EXPECT_TRUE(st.complete);
    r.losses.push_back(st.step_loss);
    r.evals.push_back(t.evaluate());
  }
  r.params = t.parameters();
  return r;
}

std::string name(const TrainConfig& c) {
  return std::string(to_string(c.variant)) + " " + std::string(to_string(c.dtype)) + " " +
         std::string(to_string(c.optimizer)) + (c.grads.dw ? "" : " frozen") +
         (c.policy == Policy::recompute ? " recompute" : "");
}

// Checks one run: finite, falling loss, and a test accuracy the easy data allows.
void expect_learns(const RunResult& r, const std::string& what) {
  ASSERT_FALSE(r.losses.empty());
  const std::vector<double>& first = r.losses.front();
  const std::vector<double>& last = r.losses.back();
  ASSERT_EQ(first.size(), 16u) << what;
  for (const auto& epoch : r.losses)
    for (double l : epoch) ASSERT_TRUE(std::isfinite(l)) << what;
  // The first batch sees the initial weights: about ln 10 with nn.Linear's initialisation.
  EXPECT_NEAR(first.front(), std::log(10.0), 0.5) << what;
  double tail = 0;
  for (double l : last) tail += l;
  tail /= static_cast<double>(last.size());
  EXPECT_LT(tail, 0.25 * first.front()) << what;
  EXPECT_GT(r.evals.back().accuracy, 0.9) << what;
  EXPECT_EQ(r.evals.back().images, 300) << what;
}

// Checks that two runs agree step by step, and prints by how much.
void expect_agree(const RunResult& a, const RunResult& b, double tol, const std::string& what) {
  const Agreement g = compare_step_losses(a.losses, b.losses, tol);
  std::printf("  %s: max |loss difference| %.3g over %lld steps (tolerance %.3g)\n", what.c_str(),
              g.max_diff, static_cast<long long>(g.steps), tol);
  EXPECT_TRUE(g.agree) << what << ": " << g.reason;
  EXPECT_EQ(g.steps, static_cast<int64_t>(a.losses.size() * a.losses.front().size()));
}

class TrainAgreement : public ::testing::TestWithParam<std::tuple<DType, Optimizer>> {};

TEST_P(TrainAgreement, FusedAndCublas2AgreeStepByStep) {
  const auto [dtype, opt] = GetParam();
  const TrainConfig f = config(LayerVariant::fused, dtype, opt);
  const TrainConfig b = config(LayerVariant::cublas2, dtype, opt);
  const RunResult rf = train(f, 3), rb = train(b, 3);
  expect_learns(rf, name(f));
  expect_learns(rb, name(b));
  // Step 1 runs from identical weights: only the layer's own rounding separates the two losses.
  const double first_tol = dtype == DType::f32 ? 1e-5 : dtype == DType::f16 ? 2e-3 : 1e-2;
  EXPECT_NEAR(rf.losses[0][0], rb.losses[0][0], first_tol) << name(f);
  expect_agree(rf, rb, agreement_tolerance(dtype, opt), name(f) + " vs cublas2");
  EXPECT_NEAR(rf.evals.back().accuracy, rb.evals.back().accuracy, 0.02) << name(f);
}

INSTANTIATE_TEST_SUITE_P(DtypesAndOptimizers, TrainAgreement,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::bf16),
                                            ::testing::Values(Optimizer::sgd, Optimizer::adamw)),
                         [](const auto& info) {
                           return std::string(to_string(std::get<0>(info.param))) + "_" +
                                  std::string(to_string(std::get<1>(info.param)));
                         });

TEST(Train, RecomputeFollowsSave) {
  TrainConfig save = config(LayerVariant::fused, DType::bf16);
  TrainConfig rec = save;
  rec.policy = Policy::recompute;
  const RunResult a = train(save, 3), b = train(rec, 3);
  expect_learns(b, name(rec));
  expect_agree(a, b, agreement_tolerance(DType::bf16, Optimizer::sgd), "fused-save vs fused-recompute bf16");
}

TEST(Train, Cublas1FollowsCublas2) {
  const RunResult a = train(config(LayerVariant::cublas2, DType::f32), 2);
  const RunResult b = train(config(LayerVariant::cublas1, DType::f32), 2);
  expect_agree(a, b, agreement_tolerance(DType::f32, Optimizer::sgd), "cublas2 vs cublas1 fp32");
}

TEST(Train, FrozenWeightsKeepTheSwigluLayer) {
  std::vector<RunResult> runs;
  for (const LayerVariant v : {LayerVariant::fused, LayerVariant::cublas2}) {
    TrainConfig c = config(v, DType::bf16);
    c.grads = {true, false};  // dX only
    c.lr = 0.05f;             // only the output layer learns, on random SwiGLU features: slowly
    const RunResult r = train(c, 3);
    const InitialParams init = initial_params(784, c.hidden, kClasses, c.seed);
    EXPECT_EQ(r.params.w12, init.w12) << name(c);
    EXPECT_EQ(r.params.b12, init.b12) << name(c);
    EXPECT_NE(r.params.w2, init.w2) << name(c);
    EXPECT_NE(r.params.b2, init.b2) << name(c);
    const auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double l : v) s += l;
      return s / static_cast<double>(v.size());
    };
    // About 2.30, 2.25, 2.18 in the NumPy model.
    EXPECT_LT(mean(r.losses.back()), 0.99 * mean(r.losses.front())) << name(c);
    runs.push_back(r);
  }
  expect_agree(runs[0], runs[1], agreement_tolerance(DType::bf16, Optimizer::sgd),
               "frozen fused vs cublas2 bf16");
}

TEST(Train, WeightsOnlyGradients) {
  TrainConfig f = config(LayerVariant::fused, DType::bf16), b = config(LayerVariant::cublas2, DType::bf16);
  f.grads = b.grads = {false, true};
  const RunResult rf = train(f, 3), rb = train(b, 3);
  expect_learns(rf, "dw-only fused");
  expect_agree(rf, rb, agreement_tolerance(DType::bf16, Optimizer::sgd), "dw-only fused vs cublas2 bf16");
}

TEST(Train, RunsRepeatExactly) {
  for (const LayerVariant v : {LayerVariant::fused, LayerVariant::cublas2}) {
    const TrainConfig c = config(v, DType::bf16);
    const RunResult a = train(c, 2), b = train(c, 2);
    EXPECT_EQ(a.losses, b.losses) << name(c);
    EXPECT_EQ(a.params.w12, b.params.w12) << name(c);
    EXPECT_EQ(a.evals.back().accuracy, b.evals.back().accuracy) << name(c);
  }
}

TEST(Train, OddBatchAndHiddenSizes) {
  // Batch 1 (one example per step), a batch larger than the split (one step of 1000 rows), and a
  // hidden size that is no multiple of any tile.
  struct Shape {
    int64_t batch, hidden, max_steps;
  };
  for (const Shape s : {Shape{1, 64, 40}, Shape{4096, 64, 0}, Shape{37, 77, 0}}) {
    TrainConfig f = config(LayerVariant::fused, DType::f32), b = config(LayerVariant::cublas2, DType::f32);
    f.batch = b.batch = s.batch;
    f.hidden = b.hidden = s.hidden;
    // One example per step at lr 0.01 with momentum 0.9 diverges on this data (both variants'
    // losses became NaN at the same step of the second epoch): train it more gently.
    if (s.batch == 1) f.lr = b.lr = 0.001f;
    const RunResult rf = train(f, 2, s.max_steps), rb = train(b, 2, s.max_steps);
    const int64_t steps = s.max_steps > 0 ? s.max_steps : (1000 + s.batch - 1) / s.batch;
    ASSERT_EQ(static_cast<int64_t>(rf.losses[0].size()), steps);
    expect_agree(rf, rb, agreement_tolerance(DType::f32, Optimizer::sgd),
                 "fp32 batch " + std::to_string(s.batch) + " hidden " + std::to_string(s.hidden));
    EXPECT_EQ(rf.evals.back().images, 300);
  }
}

TEST(Train, BadConfigurationsThrow) {
  common::Stream stream;
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  const Normalization norm = pixel_statistics(data().train);
  const DeviceSplit tr(data().train, DType::bf16, norm, stream.get());
  const DeviceSplit te(data().test, DType::bf16, norm, stream.get());
  TrainConfig c = config(LayerVariant::fused, DType::bf16);
  c.grads = {false, false};
  EXPECT_THROW(Trainer(c, tr, te, cublas, stream.get()), std::invalid_argument);
  c = config(LayerVariant::fused, DType::f32);  // the splits are bf16
  EXPECT_THROW(Trainer(c, tr, te, cublas, stream.get()), std::invalid_argument);
  c = config(LayerVariant::fused, DType::bf16);
  Trainer t(c, tr, te, cublas, stream.get());
  EXPECT_THROW(t.train_epoch(std::vector<int32_t>(10, 0)), std::invalid_argument);
}

}  // namespace
}  // namespace swiglu::train
