// Seeded random cases of the fused forward and of the fused backward against the fp64 CPU
// reference, at the per-dtype tolerances: B in [1, 300], I and D in [1, 1100] (biased toward small
// and odd values and multiples of 8 and their neighbours), every dtype, layout and bias setting,
// tf32 or 3xtf32 for fp32 on sm_80+, an X row stride of I + {0, 1, 3, 8}, inputs one element off
// their allocation's alignment (the element-wise fallbacks), and any compiled tile or the
// heuristic's pick. The backward cases also draw the policy and gate placement, the gradient subset (dX, dW or
// both; a gradient not asked for must stay unwritten) and the dX and dW tiles independently.
//
//   SWIGLU_FUZZ_SEED=<n>   the seed (default kDefaultSeed); printed at the start
//   SWIGLU_FUZZ_CASES=<n>  how many cases of each test (default 500)
//   SWIGLU_FUZZ_CASE=<i>   run only case i of the seed (what a failure says to run to reproduce it,
//                          with --gtest_filter naming the test)
//
// Case i depends on (seed, i) alone, and on the device only through its tile lists and tf32
// (and 3xtf32) support. Every case runs; the failures are printed as they happen and again at the
// end.
//
// Any failing case found here goes into the regular tests (test_forward_gpu.cpp or
// test_backward_gpu.cpp, or test_numerics_gpu.cpp for non-finite inputs) as a fixed case: its
// shape, dtype, layout, bias, math, stride, offset, policy and tiles, so it is checked on every run
// whatever the fuzz seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "bwd_case.hpp"

namespace swiglu::test {
namespace {

constexpr uint64_t kDefaultSeed = 20240611;
constexpr int64_t kDefaultCases = 500;
// Cap on B·I·2D, the fp64 reference's multiply-adds: 500 cases then stay well under a minute.
constexpr int64_t kMaxReferenceMacs = 20'000'000;

uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// splitmix64: the same stream on every platform (std's distributions are not specified exactly).
class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t next() { return mix64(state_++ * 0xD1B54A32D192ED03ull); }
  // Uniform in [0, n) for n > 0; the modulo bias is below 2^-50 for these n.
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  int64_t between(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }

 private:
  uint64_t state_;
};

// A size in [1, max], biased toward what breaks tiling and vector paths: small values, odd values,
// multiples of 8 (whole 16-byte vectors of fp16/bf16) and their neighbours; a quarter uniform.
int64_t draw_dim(Rng& r, int64_t max) {
  const int64_t kind = r.below(20);
  if (kind < 5) return r.between(1, std::min<int64_t>(16, max));
  if (kind < 9) return 2 * r.between(0, (max - 1) / 2) + 1;
  if (kind < 13) return 8 * r.between(1, max / 8);
  if (kind < 15) {
    const int64_t step = r.below(2) == 0 ? -1 : 1;
    return std::clamp<int64_t>(8 * r.between(1, max / 8) + step, 1, max);
  }
  return r.between(1, max);
}

struct FuzzCase {
  int64_t index = 0;
  Problem p;
  bool misaligned = false;         // X starts one element past a 256-byte aligned allocation
  std::optional<TileConfig> tile;  // unset: the heuristic's pick
  uint64_t input_seed = 0;

  std::string describe() const {
    return swiglu::test::describe(p) + (misaligned ? " x+1elem" : "") +
           " tile=" + (tile ? tile->name() : std::string("auto"));
  }
};

// The shape, types and X stride of a case.
Problem draw_problem(Rng& r, const DeviceTraits& dev) {
  Problem p;
  p.batch = draw_dim(r, 300);
  p.in_features = draw_dim(r, 1100);
  p.hidden = draw_dim(r, 1100);
  constexpr DType kDtypes[] = {DType::f32, DType::f16, DType::bf16};
  p.dtype = kDtypes[r.below(3)];
  p.layout = r.below(2) == 0 ? Layout::linear : Layout::packed;
  p.bias = r.below(2) == 0;
  // Drawn for every case so that the stream does not depend on the device. Why below(6): x % 6 is
  // 0 or 3 exactly when x % 3 == 0, so the tensor-core cases are the ones a below(3) == 0 draw
  // picked before 3xtf32 existed (half of them now 3xtf32), and every other case is unchanged.
  const int64_t math = r.below(6);
  const bool tensor_cores = p.dtype == DType::f32 && (math == 0 || math == 3) && dev.cc_major >= 8;
  p.math = !tensor_cores ? Math::exact : math == 0 ? Math::tf32 : Math::tf32x3;
  constexpr int64_t kPads[] = {0, 1, 3, 8};
  const int64_t pad = kPads[r.below(4)];
  p.ldx = pad == 0 ? 0 : p.in_features + pad;
  return p;
}

// Keeps the fp64 reference cheap: a draw whose B·I·2D is over `max_macs` keeps its I and D and
// takes a smaller B (2·I·D <= 2.42e6, so B can still reach 2 at the smallest cap used here).
void cap_batch(Rng& r, int64_t max_macs, Problem* p) {
  const int64_t macs_per_row = 2 * p->in_features * p->hidden;
  if (p->batch * macs_per_row > max_macs) p->batch = 1 + r.below(max_macs / macs_per_row);
}

// One of `tiles` or, with one chance more, none (the heuristic's pick).
std::optional<TileConfig> draw_tile(uint64_t pick, const std::vector<TileConfig>& tiles) {
  const uint64_t k = pick % (tiles.size() + 1);
  if (k < tiles.size()) return tiles[k];
  return std::nullopt;
}

FuzzCase draw_case(uint64_t seed, int64_t index, const DeviceTraits& dev) {
  Rng r(mix64(seed) ^ mix64(~static_cast<uint64_t>(index)));
  FuzzCase c;
  c.index = index;
  c.p = draw_problem(r, dev);
  c.misaligned = r.below(4) == 0;
  const uint64_t tile_pick = r.next();
  c.input_seed = r.next();
  cap_batch(r, kMaxReferenceMacs, &c.p);
  c.tile = draw_tile(tile_pick, forward_tiles(c.p, dev));
  return c;
}

// Runs one case; returns "" when it passes, else what went wrong.
std::string run_case(const FuzzCase& fc) {
  const Problem& p = fc.p;
  const GpuCase c(p, fc.input_seed);
  const void* x = c.x();
  DeviceBuffer shifted;
  if (fc.misaligned) {
    const size_t es = dtype_size(p.dtype);
    const size_t bytes = static_cast<size_t>(p.batch * p.x_stride()) * es;
    shifted = DeviceBuffer(bytes + es);
    CUDA_CHECK(cudaMemcpy(static_cast<char*>(shifted.get()) + es, c.x(), bytes,
                          cudaMemcpyDeviceToDevice));
    x = static_cast<const char*>(shifted.get()) + es;
  }
  ForwardOptions o;
  o.tile = fc.tile;
  Status st;
  TileConfig used;
  const bench::ParityResult r =
      c.check([&] { st = forward(p, x, c.w(), c.bias(), c.z(), nullptr, o, &used); });
  if (!st.ok()) return "forward failed: " + st.message;
  if (!r.pass) return "tile " + used.name() + ": " + r.summary();
  return {};
}

struct BwdFuzzCase {
  int64_t index = 0;
  Problem p;
  Mode mode{Policy::save, GatePlacement::automatic};
  Grads grads;
  bool misaligned = false;  // X and dZ start one element past a 256-byte aligned allocation
  std::optional<TileConfig> dx_tile, dw_tile;  // unset: the heuristic's pick
  uint64_t input_seed = 0;

  std::string describe() const {
    return swiglu::test::describe(p) + " " + describe_mode(mode) + (grads.dx ? " dx" : "") +
           (grads.dw ? " dw" : "") + (misaligned ? " x,dz+1elem" : "") +
           " dx_tile=" + (dx_tile ? dx_tile->name() : std::string("auto")) +
           " dw_tile=" + (dw_tile ? dw_tile->name() : std::string("auto"));
  }
};

BwdFuzzCase draw_backward_case(uint64_t seed, int64_t index, const DeviceTraits& dev) {
  // A stream of its own, so that the forward cases of a seed stay what they were.
  Rng r(mix64(seed ^ 0xBAC4'3A2D'0000'0001ull) ^ mix64(~static_cast<uint64_t>(index)));
  BwdFuzzCase c;
  c.index = index;
  c.p = draw_problem(r, dev);
  // The fp64 backward reference costs three times the forward's multiply-adds.
  cap_batch(r, kMaxReferenceMacs / 3, &c.p);
  constexpr Mode kModes[] = {{Policy::save, GatePlacement::automatic},
                             {Policy::recompute, GatePlacement::epilogue},
                             {Policy::recompute, GatePlacement::prologue}};
  c.mode = kModes[r.below(3)];
  constexpr Grads kGrads[] = {{true, true}, {true, true}, {true, false}, {false, true}};
  c.grads = kGrads[r.below(4)];
  c.misaligned = r.below(4) == 0;
  c.dx_tile = draw_tile(r.next(), backward_dx_tiles(c.p, dev));
  c.dw_tile = draw_tile(r.next(), backward_dw_tiles(c.p, dev));
  c.input_seed = r.next();
  return c;
}

std::string run_backward_case(const BwdFuzzCase& fc) {
  const BwdCase c(fc.p, fc.input_seed);
  if (fc.mode.policy == Policy::save) {
    const bench::ParityResult z = c.save_forward();
    if (!z.pass) return "Z of the saving forward: " + z.summary();
  }
  BackwardOptions o;
  o.policy = fc.mode.policy;
  o.placement = fc.mode.placement;
  o.grads = fc.grads;
  o.dx_tile = fc.dx_tile;
  o.dw_tile = fc.dw_tile;
  const BwdCase::Result r = c.run(o, fc.misaligned);
  const std::string f = failures(r, o, fc.p);
  if (f.empty()) return {};
  return "dx " + r.tiles.dx.name() + " (" + std::to_string(r.tiles.dx_splits) + " slices) dw " +
         r.tiles.dw.name() + ":" + f;
}

// The value of an unsigned environment variable, `fallback` when unset; an error when malformed.
std::optional<uint64_t> env_u64(const char* name, uint64_t fallback, std::string* error) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  const std::string_view s(v);
  uint64_t out = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || end != s.data() + s.size()) {
    *error = std::string(name) + "='" + v + "' is not an unsigned decimal integer";
    return std::nullopt;
  }
  return out;
}

// Runs cases [first, last) of the seed from the environment through `run_one(seed, i)`, which
// returns the case's description and "" or what failed. `test` names the gtest for the
// reproduce line.
void run_fuzz(const char* test,
              const std::function<std::pair<std::string, std::string>(uint64_t, int64_t)>& run_one) {
  std::string error;
  const auto seed = env_u64("SWIGLU_FUZZ_SEED", kDefaultSeed, &error);
  const auto cases = env_u64("SWIGLU_FUZZ_CASES", kDefaultCases, &error);
  const bool one = std::getenv("SWIGLU_FUZZ_CASE") != nullptr;
  const auto only = env_u64("SWIGLU_FUZZ_CASE", 0, &error);
  ASSERT_TRUE(seed && cases && only) << error;
  const int64_t first = one ? static_cast<int64_t>(*only) : 0;
  const int64_t last = one ? first + 1 : static_cast<int64_t>(*cases);

  std::printf("[fuzz] %s: seed %llu (SWIGLU_FUZZ_SEED), %s\n", test,
              static_cast<unsigned long long>(*seed),
              one ? ("case " + std::to_string(first) + " only (SWIGLU_FUZZ_CASE)").c_str()
                  : (std::to_string(last) + " cases (SWIGLU_FUZZ_CASES)").c_str());
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(*seed));

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> failed;
  std::string stopped;
  int64_t ran = 0;
  for (int64_t i = first; i < last; ++i) {
    std::string what, description;
    try {
      std::tie(description, what) = run_one(*seed, i);
    } catch (const std::exception& e) {
      what = std::string("exception: ") + e.what();
    }
    ++ran;
    if (what.empty()) continue;
    const std::string line = "case " + std::to_string(i) + ": " + description + ": " + what +
                             "\n    reproduce: SWIGLU_FUZZ_SEED=" + std::to_string(*seed) +
                             " SWIGLU_FUZZ_CASE=" + std::to_string(i) +
                             " tests/test_fuzz_gpu --gtest_filter=Fuzz." + test;
    std::printf("[fuzz] FAIL %s\n", line.c_str());
    std::fflush(stdout);
    failed.push_back(line);
    // Why stop here: after a trap or an illegal address the context is gone and every later case
    // would report the same error.
    if (cudaDeviceSynchronize() != cudaSuccess) {
      if (i + 1 < last) {
        stopped = "the CUDA context is unusable after case " + std::to_string(i) + "; cases " +
                  std::to_string(i + 1) + ".." + std::to_string(last - 1) + " did not run\n";
      }
      break;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fuzz] %s: seed %llu: %lld cases in %.1f s, %zu failed\n", test,
              static_cast<unsigned long long>(*seed), static_cast<long long>(ran), secs,
              failed.size());
  std::string all;
  for (const std::string& f : failed) all += "  " + f + "\n";
  EXPECT_TRUE(failed.empty() && stopped.empty())
      << failed.size() << " of " << ran << " cases failed (seed " << *seed << "):\n"
      << all << stopped;
}

TEST(Fuzz, FusedForwardMatchesTheFp64Reference) {
  const DeviceTraits dev = current_traits();
  run_fuzz("FusedForwardMatchesTheFp64Reference", [&](uint64_t seed, int64_t i) {
    const FuzzCase fc = draw_case(seed, i, dev);
    return std::make_pair(fc.describe(), run_case(fc));
  });
}

TEST(Fuzz, FusedBackwardMatchesTheFp64Reference) {
  const DeviceTraits dev = current_traits();
  run_fuzz("FusedBackwardMatchesTheFp64Reference", [&](uint64_t seed, int64_t i) {
    const BwdFuzzCase fc = draw_backward_case(seed, i, dev);
    return std::make_pair(fc.describe(), run_backward_case(fc));
  });
}

}  // namespace
}  // namespace swiglu::test
