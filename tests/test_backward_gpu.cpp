// The fused backward on the GPU: dX, dW and dbias against the fp64 CPU reference for every dtype ×
// layout × bias × policy (and gate placement, and dH storage) × compiled tile, on tails that divide no tile; each
// gradient subset (dx, dw, both) leaves the outputs it was not asked for untouched; the saving
// forward still writes the right Z, and every forward tile's saved H gives the right gradients; a
// large shape against the fp32 GPU reference; and the argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bwd_case.hpp"

namespace swiglu::test {
namespace {

using Param = std::tuple<DType, Layout, bool, int>;  // int: index into kModes

// The last three store dH in the caller's memory (DhStorage::tensors): over the saved H, which each
// run restores first, or in a buffer of the case's.
const Mode kModes[] = {{Policy::save, GatePlacement::automatic},
                       {Policy::recompute, GatePlacement::epilogue},
                       {Policy::recompute, GatePlacement::prologue},
                       {Policy::save, GatePlacement::automatic, DhStorage::tensors, true},
                       {Policy::save, GatePlacement::automatic, DhStorage::tensors, false},
                       {Policy::recompute, GatePlacement::epilogue, DhStorage::tensors, false}};
constexpr int kModeCount = static_cast<int>(std::size(kModes));

class BackwardAllTiles : public ::testing::TestWithParam<Param> {};

TEST_P(BackwardAllTiles, MatchesTheFp64Reference) {
  const auto [dtype, layout, bias, mode_index] = GetParam();
  const Mode mode = kModes[mode_index];
  const DeviceTraits dev = current_traits();
  uint64_t seed = 500;
  int checked = 0;
  for (const TailShape& s : kTailShapes) {
    const Problem p = s.problem(dtype, layout, bias);
    const BwdCase c(p, ++seed);
    if (mode.policy == Policy::save) {
      const auto z = c.save_forward();
      EXPECT_TRUE(z.pass) << describe(p) << ": Z of the saving forward: " << z.summary();
    }
    const BackwardOptions o = options_for(mode);
    // Every compiled dX and dW tile (paired by position, the last of the shorter list repeated),
    // then the heuristic's choice with each gradient subset.
    const auto dx_tiles = backward_dx_tiles(p, dev);
    const auto dw_tiles = backward_dw_tiles(p, dev);
    ASSERT_FALSE(dx_tiles.empty()) << describe(p);
    ASSERT_FALSE(dw_tiles.empty()) << describe(p);
    for (size_t k = 0; k < std::max(dx_tiles.size(), dw_tiles.size()); ++k) {
      const TileConfig& dx = dx_tiles[std::min(k, dx_tiles.size() - 1)];
      const TileConfig& dw = dw_tiles[std::min(k, dw_tiles.size() - 1)];
      BackwardOptions ot = o;
      ot.dx_tile = dx;
      ot.dw_tile = dw;
      const auto r = c.run(ot, false, common::kPoisonByte, mode.over_saved);
      EXPECT_EQ(r.tiles.dx, dx);
      EXPECT_EQ(r.tiles.dw, dw);
      expect_pass(r, ot, p, describe(p) + " " + describe_mode(mode) + " tiles " + dx.name() + " " + dw.name());
      ++checked;
    }
    for (const Grads g : {Grads{true, false}, Grads{false, true}, Grads{true, true}}) {
      BackwardOptions og = o;
      og.grads = g;
      const auto r = c.run(og, false, common::kPoisonByte, mode.over_saved);
      EXPECT_EQ(r.tiles.dx.block_m != 0, g.dx);
      EXPECT_EQ(r.tiles.dw.block_m != 0, g.dw);
      EXPECT_EQ(r.tiles.recompute.block_m != 0, mode.policy == Policy::recompute);
      expect_pass(r, og, p,
                  describe(p) + " " + describe_mode(mode) + (g.dx ? " dx" : "") + (g.dw ? " dw" : ""));
    }
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(All, BackwardAllTiles,
                         ::testing::Combine(::testing::Values(DType::f16, DType::bf16, DType::f32),
                                            ::testing::Values(Layout::linear, Layout::packed),
                                            ::testing::Bool(), ::testing::Range(0, kModeCount)));

TEST(Backward, Tf32ProblemsRunTheExactFp32Path) {
  Problem p;
  p.batch = 37;
  p.in_features = 64;
  p.hidden = 72;
  p.dtype = DType::f32;
  p.math = Math::tf32;
  p.bias = true;
  const BwdCase c(p, 42);
  BackwardOptions o;
  o.policy = Policy::recompute;
  const auto r = c.run(o);
  expect_pass(r, o, p, describe(p));
  EXPECT_EQ(r.tiles.dx.family, Family::simt);
}

TEST(Backward, Tf32x3ProblemsRunTheExactFp32Path) {
  // As for tf32: the dX and dW GEMMs are the exact fp32 (SIMT) ones; only the recompute GEMM runs
  // 3xtf32 (on sm_80+, else the problem is refused), and the gradients meet exact's tolerance.
  if (current_traits().cc_major < 8) GTEST_SKIP() << "3xtf32 needs sm_80";
  for (const Layout layout : {Layout::linear, Layout::packed}) {
    Problem p;
    p.batch = 37;
    p.in_features = 64;
    p.hidden = 72;
    p.dtype = DType::f32;
    p.layout = layout;
    p.math = Math::tf32x3;
    p.bias = true;
    const BwdCase c(p, 43);
    for (const Mode& m : kModes) {
      const BackwardOptions o = options_for(m);
      if (m.policy == Policy::save) {
        const auto z = c.save_forward();
        EXPECT_TRUE(z.pass) << describe(p) << ": " << z.summary();
      }
      const auto r = c.run(o, false, common::kPoisonByte, m.over_saved);
      expect_pass(r, o, p, describe(p) + " " + describe_mode(m));
      EXPECT_EQ(r.tiles.dx.family, Family::simt);
      EXPECT_EQ(r.tiles.dw.family, Family::simt);
      if (m.policy == Policy::recompute) {
        EXPECT_EQ(r.tiles.recompute.family, Family::mma_sm80) << r.tiles.recompute.name();
      }
    }
  }
}

// Calls check(p, c, t) for every compiled fp16/bf16 forward tile t on each tail shape, in both
// layouts, with bias (c: the problem's case, seeded from seed + 1 on). Returns how many calls ran.
template <class Check>
int for_each_half_forward_tile(uint64_t seed, Check&& check) {
  const DeviceTraits dev = current_traits();
  int checked = 0;
  for (const DType dtype : {DType::f16, DType::bf16}) {
    for (const Layout layout : {Layout::linear, Layout::packed}) {
      for (const TailShape& s : kTailShapes) {
        const Problem p = s.problem(dtype, layout, true);
        const BwdCase c(p, ++seed);
        for (const TileConfig& t : forward_tiles(p, dev)) {
          check(p, c, t);
          ++checked;
        }
      }
    }
  }
  return checked;
}

TEST(Backward, SavedHFromEveryForwardTile) {
  // The save policy's H as each compiled forward tile writes it (the sm90 tiles through TMA stores,
  // each half of H through a map of its own, so an edge tile of G must not spill into U), checked
  // through the gradients it gives and with the saving forward's Z.
  const int checked = for_each_half_forward_tile(900, [](const Problem& p, const BwdCase& c, const TileConfig& t) {
    const std::string what = describe(p) + " H from forward tile " + t.name();
    const auto z = c.save_forward(&t);
    EXPECT_TRUE(z.pass) << what << ": Z of the saving forward: " << z.summary();
    BackwardOptions o;
    o.policy = Policy::save;
    expect_pass(c.run(o), o, p, what);
  });
  EXPECT_GT(checked, 0);
}

TEST(Backward, RecomputedDhFromEveryForwardTile) {
  // The recompute policy's GEMM run on each compiled fp16/bf16 forward tile: with the epilogue
  // placement it writes dH (the sm90 tiles through TMA stores, dG and dU through maps of their own),
  // with the prologue placement H; checked through the gradients.
  const int checked = for_each_half_forward_tile(950, [](const Problem& p, const BwdCase& c, const TileConfig& t) {
    for (const GatePlacement g : {GatePlacement::epilogue, GatePlacement::prologue}) {
      BackwardOptions o;
      o.policy = Policy::recompute;
      o.placement = g;
      o.recompute_tile = t;
      const auto r = c.run(o);
      EXPECT_EQ(r.tiles.recompute, t) << describe(p);
      expect_pass(r, o, p, describe(p) + " recompute tile " + t.name());
    }
  });
  EXPECT_GT(checked, 0);
}

TEST(Backward, SmallBatchesSplitTheDxReduction) {
  // MNIST decode: B×I gives the dX GEMM far fewer blocks than SMs, so K = 2D is split, in the
  // sm80 kernels and in the SIMT one (fp32). Twice in a row: each call must clear what the last
  // one left in the workspace.
  for (DType t : {DType::bf16, DType::f16, DType::f32}) {
    Problem p;
    p.batch = 4;
    p.in_features = 784;
    p.hidden = 2048;
    p.dtype = t;
    p.bias = true;
    const BwdCase c(p, 77);
    BackwardOptions o;
    o.policy = Policy::recompute;
    for (int rep = 0; rep < 2; ++rep) {
      const auto r = c.run(o);
      expect_pass(r, o, p, describe(p) + " rep " + std::to_string(rep));
      if (current_traits().sm_count > 13) {
        EXPECT_GT(r.tiles.dx_splits, 1) << describe(p);
      }
    }
  }
}

TEST(Backward, Sm90DxSplitsOnlyALongReduction) {
  // The sm90 dX splits K only where the split takes at least 40 K steps off each unit (plan.cpp):
  // never at K = 2D = 1024 (16 steps), at 14 tiles of K = 4096 (64 steps, 8 or more slices) yes.
  for (const int64_t hidden : {512, 2048}) {
    Problem p;
    p.batch = 256;
    p.in_features = 784;
    p.hidden = hidden;
    p.dtype = DType::bf16;
    const BwdCase c(p, 88);
    const auto z = c.save_forward();
    EXPECT_TRUE(z.pass) << describe(p) << ": " << z.summary();
    BackwardOptions o;
    o.policy = Policy::save;
    const auto r = c.run(o);
    expect_pass(r, o, p, describe(p));
    if (r.tiles.dx.family != Family::wgmma_sm90) GTEST_SKIP() << "dX ran " << r.tiles.dx.name() << ", not sm90";
    if (hidden == 512) {
      EXPECT_EQ(r.tiles.dx_splits, 1) << describe(p);
    } else {
      EXPECT_GT(r.tiles.dx_splits, 1) << describe(p);
    }
  }
}

TEST(Backward, LargeShapeAgainstTheGpuReference) {
  for (DType t : {DType::bf16, DType::f16}) {
    for (Layout l : {Layout::linear, Layout::packed}) {
      Problem p;
      p.batch = 2048 + 5;
      p.in_features = 2048;
      p.hidden = 2816;
      p.dtype = t;
      p.layout = l;
      p.bias = true;
      const BwdCase c(p, 9, /*gpu_ref=*/true);
      for (const Mode& m : kModes) {
        if (m.policy == Policy::save) {
          const auto z = c.save_forward();
          EXPECT_TRUE(z.pass) << describe(p) << ": " << z.summary();
        }
        const BackwardOptions o = options_for(m);
        const auto r = c.run(o, false, common::kPoisonByte, m.over_saved);
        expect_pass(r, o, p,
                    describe(p) + " " + describe_mode(m) + " dx " + r.tiles.dx.name() + " dw " +
                        r.tiles.dw.name());
      }
    }
  }
}

// A bounded workspace (BackwardOptions::max_workspace_bytes): the backward runs in row chunks, dX
// row by row and dW and dbias added up chunk by chunk (the tolerance counts one rounding of the sum
// a chunk), through every compiled dW tile that adds onto C and the heuristic's choice, both
// policies, in chunks of equal size and not (777 rows in 2, 3 and 5).
TEST(Backward, BoundedWorkspaceRunsInRowChunks) {
  const DeviceTraits dev = current_traits();
  uint64_t seed = 900;
  for (DType t : {DType::bf16, DType::f16, DType::f32}) {
    for (Layout l : {Layout::linear, Layout::packed}) {
      Problem p;
      p.batch = 777;
      p.in_features = 264;
      p.hidden = 200;
      p.dtype = t;
      p.layout = l;
      p.bias = true;
      const BwdCase c(p, ++seed);
      const auto z = c.save_forward();
      EXPECT_TRUE(z.pass) << describe(p) << ": " << z.summary();
      for (const Mode& m : {kModes[0], kModes[1], kModes[2]}) {
        BackwardOptions o = options_for(m);
        const size_t whole = backward_workspace_bytes(p, o);
        ASSERT_GT(whole, 0u) << describe(p);
        for (const int64_t want : {2, 3, 5}) {
          o.max_workspace_bytes = whole / static_cast<size_t>(want);
          const size_t need = backward_workspace_bytes(p, o);
          ASSERT_GT(need, 0u) << describe(p);
          EXPECT_LE(need, o.max_workspace_bytes) << describe(p);
          std::vector<std::optional<TileConfig>> dw_tiles = {std::nullopt};
          for (const TileConfig& tile : backward_dw_tiles(p, dev))
            if (tile.family != Family::gemv) dw_tiles.push_back(tile);
          for (const auto& dw : dw_tiles) {
            BackwardOptions ot = o;
            ot.dw_tile = dw;
            const auto r = c.run(ot);
            const std::string what = describe(p) + " " + describe_mode(m) + " bound " +
                                      std::to_string(o.max_workspace_bytes) + " dw " + r.tiles.dw.name();
            expect_pass(r, ot, p, what);
            EXPECT_GE(r.tiles.chunks, want) << what;
            if (dw) {
              EXPECT_EQ(r.tiles.dw, *dw) << what;
            }
          }
        }
      }
    }
  }
}

TEST(Backward, BoundedWorkspaceRefusals) {
  Problem p;
  p.batch = 512;
  p.in_features = 256;
  p.hidden = 128;
  p.dtype = DType::bf16;
  const BwdCase c(p, 31);
  BackwardOptions o;
  o.policy = Policy::recompute;
  const size_t whole = backward_workspace_bytes(p, o);
  // Below a chunk of kMinBackwardChunkRows rows: the query fails, and so does the call.
  o.max_workspace_bytes = 1024;
  size_t bytes = 1;
  const Status q = backward_workspace_bytes(p, o, &bytes);
  EXPECT_EQ(q.code, StatusCode::invalid_argument);
  EXPECT_EQ(bytes, 0u);
  EXPECT_NE(q.message.find("max_workspace_bytes 1024"), std::string::npos) << q.message;
  const auto r = c.run(o);
  EXPECT_FALSE(r.error.empty());
  // A gemv dW cannot add onto C: refused (before anything runs), saying why.
  const auto dw_tiles = backward_dw_tiles(p, current_traits());
  const auto gemv = std::find_if(dw_tiles.begin(), dw_tiles.end(), [](const TileConfig& t) { return t.family == Family::gemv; });
  if (gemv != dw_tiles.end()) {
    o.max_workspace_bytes = whole / 2;
    o.dw_tile = *gemv;
    const auto g = c.run(o);
    EXPECT_NE(g.error.find("cannot run a chunked backward"), std::string::npos) << g.error;
  }
  // A bound the whole batch fits runs unchunked.
  o.dw_tile.reset();
  o.max_workspace_bytes = whole;
  const auto u = c.run(o);
  expect_pass(u, o, p, describe(p) + " bound = whole");
  EXPECT_EQ(u.tiles.chunks, 1);
}

TEST(Backward, EmptyBatchZeroesTheWeightGradients) {
  Problem p;
  p.batch = 0;
  p.in_features = 16;
  p.hidden = 8;
  p.bias = true;
  DeviceBuffer dw(2 * 8 * 16 * 2), db(16 * 2);
  CUDA_CHECK(cudaMemset(dw.get(), 0x7f, dw.bytes()));
  CUDA_CHECK(cudaMemset(db.get(), 0x7f, db.bytes()));
  BackwardTensors t;
  t.dw = dw.get();
  t.dbias = db.get();
  BackwardOptions o;
  o.grads = Grads{false, true};
  const Status s = backward(p, t, o, nullptr, 0, nullptr);
  ASSERT_TRUE(s.ok()) << s.message;
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<unsigned char> raw(dw.bytes() + db.bytes());
  CUDA_CHECK(cudaMemcpy(raw.data(), dw.get(), dw.bytes(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(raw.data() + dw.bytes(), db.get(), db.bytes(), cudaMemcpyDeviceToHost));
  for (unsigned char c : raw) ASSERT_EQ(c, 0);
}

TEST(Backward, BadArgumentsAreErrorsNotCrashes) {
  Problem p;
  p.batch = 8;
  p.in_features = 16;
  p.hidden = 8;
  const BwdCase c(p, 3);
  DeviceBuffer dx(8 * 16 * 2), dw(16 * 16 * 2), ws(8 * 16 * 2);
  BackwardTensors t;
  t.x = c.fwd().x();
  t.w = c.fwd().w();
  t.dx = dx.get();
  t.dw = dw.get();
  BackwardOptions o;
  o.policy = Policy::recompute;
  // dz missing.
  Status s = backward(p, t, o, ws.get(), ws.bytes(), nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("dz"), std::string::npos) << s.message;
  t.dz = c.fwd().x();  // any B×D-sized readable buffer
  // Workspace too small.
  s = backward(p, t, o, ws.get(), 16, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("workspace"), std::string::npos) << s.message;
  // save needs the saved H.
  o.policy = Policy::save;
  s = backward(p, t, o, nullptr, 0, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("saved"), std::string::npos) << s.message;
  // The epilogue placement needs recompute.
  o.placement = GatePlacement::epilogue;
  s = backward(p, t, o, nullptr, 0, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("epilogue"), std::string::npos) << s.message;
  // An output overlapping an input.
  o = BackwardOptions{};
  o.policy = Policy::recompute;
  t.dx = const_cast<void*>(t.x);
  s = backward(p, t, o, ws.get(), ws.bytes(), nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("overlaps"), std::string::npos) << s.message;
  // Nothing requested.
  t.dx = dx.get();
  o.grads = Grads{false, false};
  s = backward(p, t, o, ws.get(), ws.bytes(), nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
}

TEST(Backward, EnumsOutsideTheirSetsAreRejectedBeforeAnyLaunch) {
  // Policy 2 with no saved H once passed validation and ran a GEMM on a null H (an illegal
  // address that lost the context). Every enum is now checked first, and the context stays usable.
  Problem p;
  p.batch = 8;
  p.in_features = 16;
  p.hidden = 8;
  const BwdCase c(p, 4);
  DeviceBuffer dx(8 * 16 * 2), dw(16 * 16 * 2), ws(1 << 20);
  BackwardTensors t;
  t.x = c.fwd().x();
  t.w = c.fwd().w();
  t.dz = c.fwd().x();
  t.dx = dx.get();
  t.dw = dw.get();
  BackwardOptions o;
  o.policy = static_cast<Policy>(2);
  Status s = backward(p, t, o, ws.get(), ws.bytes(), nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("policy 2"), std::string::npos) << s.message;
  o = BackwardOptions{};
  o.policy = Policy::recompute;
  o.placement = static_cast<GatePlacement>(7);
  s = backward(p, t, o, ws.get(), ws.bytes(), nullptr);
  EXPECT_NE(s.message.find("gate placement 7"), std::string::npos) << s.message;
  o.placement = GatePlacement::automatic;
  Problem bad_layout = p, bad_dtype = p, bad_math = p;
  bad_layout.layout = static_cast<Layout>(5);
  bad_dtype.dtype = static_cast<DType>(9);
  bad_math.math = static_cast<Math>(3);
  for (const auto& [q, what] : {std::pair{bad_layout, "layout 5"}, std::pair{bad_dtype, "dtype 9"},
                                std::pair{bad_math, "math 3"}}) {
    s = backward(q, t, o, ws.get(), ws.bytes(), nullptr);
    EXPECT_EQ(s.code, StatusCode::invalid_argument) << what;
    EXPECT_NE(s.message.find(what), std::string::npos) << s.message;
    s = forward(q, c.fwd().x(), c.fwd().w(), nullptr, dx.get(), nullptr);
    EXPECT_EQ(s.code, StatusCode::invalid_argument) << what;
    EXPECT_NE(s.message.find(what), std::string::npos) << s.message;
  }
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(Backward, EmptyBatchChecksTheWeightGradientPointers) {
  Problem p;
  p.batch = 0;
  p.in_features = 16;
  p.hidden = 8;
  p.bias = true;
  DeviceBuffer dw(2 * 8 * 16 * 2 + 16), db(16 * 2);
  BackwardTensors t;
  t.dw = static_cast<char*>(dw.get()) + 1;  // misaligned for bf16
  t.dbias = db.get();
  BackwardOptions o;
  o.grads = Grads{false, true};
  Status s = backward(p, t, o, nullptr, 0, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("dw is not aligned"), std::string::npos) << s.message;
  t.dw = dw.get();
  t.dbias = static_cast<char*>(dw.get()) + 64;  // inside dw
  s = backward(p, t, o, nullptr, 0, nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("overlaps"), std::string::npos) << s.message;
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace swiglu::test
