// Soak: every variant, forward and backward, in turn on a few shapes for SWIGLU_SOAK_SECONDS
// (default 10; scripts/soak.sh runs it for 10 minutes and more), each variant's every tenth run
// checked:
//   - the fused variants against the reference (fp64 CPU, or fp32 cuBLAS for the large shape) at
//     the per-dtype tolerance, the baselines' Z as well;
//   - no drift: a checked run's output bytes equal its first checked run's, for every variant
//     whose result is deterministic (all but the fused dX when it splits K with fp32 atomics,
//     which is held to the tolerance alone);
//   - free device memory after the last run equals what it was after the warm-up rounds (which
//     load the kernels and cuBLAS's, taking device memory once, and make every allocation the loop
//     makes), and the process's resident host memory at the end exceeds the highest reading of
//     the warm-up by no more than kMaxHostGrowthKiB.
// A line of progress every SWIGLU_SOAK_REPORT_SECONDS (default 60) goes to stdout.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bwd_case.hpp"

namespace swiglu::test {
namespace {

constexpr long kMaxHostGrowthKiB = 16 * 1024;
// Rounds of every variant on every shape before memory is first measured: each variant's runs 0
// and 10 are checked ones.
constexpr int kWarmRounds = 11;

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(s > 0)) {
    ADD_FAILURE() << name << "='" << v << "' is not a positive number of seconds";
    return fallback;
  }
  return s;
}

size_t free_device_bytes() {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

// VmRSS of this process in KiB, -1 where /proc does not say.
long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kib = -1;
      status >> kib;
      return kib;
    }
    status.ignore(1 << 20, '\n');
  }
  return -1;
}

uint64_t fnv1a(const std::vector<unsigned char>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::vector<unsigned char> download(const void* p, size_t bytes) {
  std::vector<unsigned char> out(bytes);
  if (bytes > 0) CUDA_CHECK(cudaMemcpy(out.data(), p, bytes, cudaMemcpyDeviceToHost));
  return out;
}

enum class Kind { fused_forward, fused_save, fused_recompute_epilogue, fused_recompute_prologue,
                  cublas2, cublas1 };
constexpr Kind kKinds[] = {Kind::fused_forward, Kind::fused_save, Kind::fused_recompute_epilogue,
                           Kind::fused_recompute_prologue, Kind::cublas2, Kind::cublas1};

const char* name(Kind k) {
  switch (k) {
    case Kind::fused_forward: return "fused-forward";
    case Kind::fused_save: return "fused-save";
    case Kind::fused_recompute_epilogue: return "fused-recompute-epilogue";
    case Kind::fused_recompute_prologue: return "fused-recompute-prologue";
    case Kind::cublas2: return "cublas2";
    case Kind::cublas1: return "cublas1";
  }
  return "?";
}

// A baseline's forward and backward plans with their own saved activations and gradients.
struct BaselineRun {
  DeviceBuffer saved, scratch, dx, dw, db;
  baselines::Plan fwd;
  baselines::BackwardPlan bwd;
};

// One shape: the fused case (inputs, references, outputs), a workspace big enough for every
// backward option, and both baselines bound to the same inputs.
class Shape {
 public:
  Shape(const baselines::Cublas& cublas, const Problem& p, uint64_t seed, bool gpu_ref)
      : p_(p), c_(p, seed, gpu_ref) {
    size_t ws = 0;
    for (const Kind k : kKinds) ws = std::max(ws, backward_workspace_bytes(p, fused_options(k)));
    ws_bytes_ = ws;
    ws_ = DeviceBuffer(std::max<size_t>(ws, 1));
    const size_t es = dtype_size(p.dtype);
    for (const baselines::Variant v : {baselines::Variant::cublas2, baselines::Variant::cublas1}) {
      auto b = std::make_unique<BaselineRun>();
      b->saved = DeviceBuffer(baselines::scratch_bytes(v, p));
      b->scratch = DeviceBuffer(baselines::backward_scratch_bytes(v, p));
      b->dx = DeviceBuffer(static_cast<size_t>(p.batch * p.in_features) * es);
      b->dw = DeviceBuffer(static_cast<size_t>(2 * p.hidden * p.in_features) * es);
      b->db = DeviceBuffer(static_cast<size_t>(2 * p.hidden) * es);
      Status s = baselines::Plan::create(cublas, v, p, c_.fwd().x(), c_.fwd().w(), c_.fwd().bias(),
                                         c_.fwd().z(), b->saved.get(), &b->fwd);
      EXPECT_TRUE(s.ok()) << s.message;
      s = baselines::BackwardPlan::create(cublas, v, p, c_.fwd().x(), c_.fwd().w(), b->saved.get(),
                                          c_.tensors().dz, Grads{}, b->dx.get(), b->dw.get(),
                                          p.bias ? b->db.get() : nullptr, b->scratch.get(), &b->bwd);
      EXPECT_TRUE(s.ok()) << s.message;
      baselines_.push_back(std::move(b));
    }
  }

  const Problem& problem() const { return p_; }

  // Runs `k` once; when `checked`, poisons its outputs first and returns "" or what is wrong
  // (parity, or output bytes that differ from the first checked run's).
  std::string run(Kind k, bool checked) {
    std::string bad;
    switch (k) {
      case Kind::fused_forward: {
        auto launch = [&] { expect_ok(forward(p_, c_.fwd().x(), c_.fwd().w(), c_.fwd().bias(), c_.fwd().z(), nullptr)); };
        if (!checked) {
          launch();
          return {};
        }
        const auto r = c_.fwd().check(launch);
        if (!r.pass) bad += " Z: " + r.summary();
        return bad + same_as_first(k, z_bytes(), true);
      }
      case Kind::cublas2:
      case Kind::cublas1: {
        BaselineRun& b = *baselines_[k == Kind::cublas2 ? 0 : 1];
        auto launch = [&] { expect_ok(b.fwd.run(nullptr)); };
        if (!checked) {
          launch();
          expect_ok(b.bwd.run(nullptr));
          return {};
        }
        const auto r = c_.fwd().check(launch, bench::Rounding{1, b.fwd.output_type_slices()});
        if (!r.pass) bad += " Z: " + r.summary();
        for (const DeviceBuffer* d : {&b.dx, &b.dw, &b.db})
          CUDA_CHECK(cudaMemset(d->get(), common::kPoisonByte, d->bytes()));
        expect_ok(b.bwd.run(nullptr));
        CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<unsigned char> out = z_bytes();
        for (const DeviceBuffer* d : {&b.dx, &b.dw, &b.db}) {
          const auto part = download(d->get(), d->bytes());
          out.insert(out.end(), part.begin(), part.end());
        }
        return bad + same_as_first(k, out, true);
      }
      default: break;
    }
    // The fused backward variants.
    const BackwardOptions o = fused_options(k);
    if (o.policy == Policy::save) {
      if (checked) {
        const auto z = c_.save_forward();
        if (!z.pass) bad += " Z of the saving forward: " + z.summary();
      } else {
        ForwardOptions fo;
        fo.saved = c_.saved();
        expect_ok(forward(p_, c_.fwd().x(), c_.fwd().w(), c_.fwd().bias(), c_.fwd().z(), nullptr, fo));
      }
    }
    if (!checked) {
      expect_ok(backward(p_, c_.tensors(), o, ws_.get(), ws_bytes_, nullptr));
      return {};
    }
    const BwdCase::Result r = c_.run(o);
    bad += failures(r, o, p_);
    // Split-K dX adds its slices with fp32 atomics in no fixed order.
    const bool deterministic = r.tiles.dx_splits == 1;
    return bad + same_as_first(k, c_.output_bytes(o.grads), deterministic);
  }

 private:
  static BackwardOptions fused_options(Kind k) {
    BackwardOptions o;
    o.policy = k == Kind::fused_save ? Policy::save : Policy::recompute;
    o.placement = k == Kind::fused_recompute_prologue ? GatePlacement::prologue
                  : k == Kind::fused_save             ? GatePlacement::automatic
                                                      : GatePlacement::epilogue;
    return o;
  }
  static void expect_ok(const Status& s) { EXPECT_TRUE(s.ok()) << s.message; }

  std::vector<unsigned char> z_bytes() const {
    return download(c_.fwd().z(), static_cast<size_t>(p_.batch * p_.hidden) * dtype_size(p_.dtype));
  }

  // "" when `bytes` hash the same as the first checked run of `k` (recorded here on the first
  // call), or when the variant is not deterministic.
  std::string same_as_first(Kind k, const std::vector<unsigned char>& bytes, bool deterministic) {
    const uint64_t h = fnv1a(bytes);
    const auto [it, first] = first_hash_.emplace(k, h);
    if (first || !deterministic || it->second == h) return {};
    return " output bytes differ from the first checked run's (drift)";
  }

  Problem p_;
  BwdCase c_;
  DeviceBuffer ws_;
  size_t ws_bytes_ = 0;
  std::vector<std::unique_ptr<BaselineRun>> baselines_;
  std::map<Kind, uint64_t> first_hash_;
};

Problem make(int64_t b, int64_t i, int64_t d, DType t, Layout l, bool bias) {
  Problem p;
  p.batch = b;
  p.in_features = i;
  p.hidden = d;
  p.dtype = t;
  p.layout = l;
  p.bias = bias;
  return p;
}

TEST(Soak, EveryVariantStaysCorrectAndMemoryStaysFlat) {
  const double seconds = env_seconds("SWIGLU_SOAK_SECONDS", 10);
  const double report_every = env_seconds("SWIGLU_SOAK_REPORT_SECONDS", 60);
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());

  std::vector<std::unique_ptr<Shape>> shapes;
  // The MNIST decode shape (split-K dX), a tail in every dimension with the packed layout, fp32,
  // and one large enough to fill the GPU (fp32 cuBLAS reference).
  shapes.push_back(std::make_unique<Shape>(cublas, make(128, 784, 1024, DType::bf16, Layout::linear, true), 1, false));
  shapes.push_back(std::make_unique<Shape>(cublas, make(37, 777, 1001, DType::f16, Layout::packed, false), 2, false));
  shapes.push_back(std::make_unique<Shape>(cublas, make(64, 256, 264, DType::f32, Layout::linear, true), 3, false));
  shapes.push_back(std::make_unique<Shape>(cublas, make(2048, 1024, 2816, DType::bf16, Layout::linear, true), 4, true));
  ASSERT_FALSE(::testing::Test::HasFailure());

  std::map<std::pair<size_t, Kind>, int64_t> runs;
  int64_t iterations = 0, checks = 0, failed = 0;
  auto step = [&](size_t s, Kind k) {
    const int64_t n = runs[{s, k}]++;
    const bool checked = n % 10 == 0;
    const std::string bad = shapes[s]->run(k, checked);
    CUDA_CHECK(cudaDeviceSynchronize());
    ++iterations;
    if (!checked) return;
    ++checks;
    if (bad.empty()) return;
    ++failed;
    ADD_FAILURE() << name(k) << " " << describe(shapes[s]->problem()) << " run " << n << ":" << bad;
  };

  // The first rounds load every kernel and take each variant through two checked runs, so that
  // every allocation the loop makes has been made and freed before; memory is measured from their
  // end.
  // The checked runs allocate and free host buffers of up to tens of MiB, which the allocator may
  // or may not have handed back when memory is read: the bound is the highest reading of the
  // warm-up, which has made every one of those allocations.
  long rss_start = -1;
  for (int round = 0; round < kWarmRounds; ++round) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      for (const Kind k : kKinds) {
        step(s, k);
        rss_start = std::max(rss_start, resident_kib());
      }
    }
  }
  const size_t free_start = free_device_bytes();
  std::printf("[soak] %.0f s, %zu shapes x %zu variants; after %d warm-up rounds: %.1f MiB device "
              "memory free, at most %ld KiB resident\n",
              seconds, shapes.size(), std::size(kKinds), kWarmRounds, free_start / 1048576.0,
              rss_start);
  std::fflush(stdout);

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto next_report = t0 + std::chrono::duration<double>(report_every);
  size_t at = 0;
  while (clock::now() - t0 < std::chrono::duration<double>(seconds) && failed < 20) {
    step(at / std::size(kKinds), kKinds[at % std::size(kKinds)]);
    at = (at + 1) % (shapes.size() * std::size(kKinds));
    if (clock::now() >= next_report) {
      next_report += std::chrono::duration<double>(report_every);
      std::printf("[soak] %6.0f s: %lld runs, %lld checked, %lld failed; %.1f MiB device memory "
                  "free, %ld KiB resident\n",
                  std::chrono::duration<double>(clock::now() - t0).count(),
                  static_cast<long long>(iterations), static_cast<long long>(checks),
                  static_cast<long long>(failed), free_device_bytes() / 1048576.0, resident_kib());
      std::fflush(stdout);
    }
  }
  const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  const size_t free_end = free_device_bytes();
  const long rss_end = resident_kib();
  std::printf("[soak] done after %.0f s: %lld runs, %lld checked, %lld failed; device memory free "
              "%.1f -> %.1f MiB, resident %ld -> %ld KiB\n",
              elapsed, static_cast<long long>(iterations), static_cast<long long>(checks),
              static_cast<long long>(failed), free_start / 1048576.0, free_end / 1048576.0,
              rss_start, rss_end);
  EXPECT_EQ(failed, 0);
  EXPECT_GT(checks, static_cast<int64_t>(shapes.size() * std::size(kKinds)));
  EXPECT_EQ(free_end, free_start) << "device memory changed during the soak";
  ASSERT_GE(rss_start, 0) << "/proc/self/status has no VmRSS";
  EXPECT_LE(rss_end - rss_start, kMaxHostGrowthKiB) << "resident host memory grew";
}

}  // namespace
}  // namespace swiglu::test
