// The fused backward on the GPU: dX, dW and dbias against the fp64 CPU reference for every dtype ×
// layout × bias × policy (and gate placement) × compiled tile, on tails that divide no tile; each
// gradient subset (dx, dw, both) leaves the outputs it was not asked for untouched; the saving
// forward still writes the right Z; a large shape against the fp32 GPU reference; and the
// argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_case.hpp"

namespace swiglu::test {
namespace {

struct Mode {
  Policy policy;
  GatePlacement placement;
};

std::string describe_mode(const Mode& m) {
  return std::string(to_string(m.policy)) + "/" + std::string(to_string(m.placement));
}

// Seeded inputs and dZ on the device, the reference gradients, and the outputs of one backward.
class BwdCase {
 public:
  BwdCase(const Problem& p, uint64_t seed, bool gpu_ref = false) : p_(p), fwd_(p, seed, gpu_ref) {
    hdz_ = bench::uniform_values(static_cast<size_t>(p.batch * p.hidden), -1, 1, seed + 3, p.dtype);
    dz_ = upload(hdz_);
    const size_t es = dtype_size(p.dtype);
    n_dx_ = static_cast<size_t>(p.batch * p.in_features);
    n_dw_ = static_cast<size_t>(2 * p.hidden * p.in_features);
    n_db_ = p.bias ? static_cast<size_t>(2 * p.hidden) : 0;
    dx_ = DeviceBuffer(std::max<size_t>(n_dx_, 1) * es);
    dw_ = DeviceBuffer(n_dw_ * es);
    db_ = DeviceBuffer(std::max<size_t>(n_db_, 1) * es);
    saved_ = DeviceBuffer(std::max<size_t>(static_cast<size_t>(p.batch * 2 * p.hidden), 1) * es);
    if (gpu_ref) {
      baselines::Cublas cublas;
      const Status s = cublas.init();
      EXPECT_TRUE(s.ok()) << s.message;
      DeviceBuffer scratch(baselines::reference_backward_scratch_bytes(p));
      DeviceBuffer rdx(n_dx_ * 4), rdw(n_dw_ * 4), rdb(std::max<size_t>(n_db_, 1) * 4);
      const Status r = baselines::gpu_reference_backward(
          cublas, p, fwd_.x(), fwd_.w(), fwd_.bias(), dz_.get(), scratch.get(), rdx.as<float>(),
          rdw.as<float>(), p.bias ? rdb.as<float>() : nullptr, nullptr);
      EXPECT_TRUE(r.ok()) << r.message;
      ref32_dx_ = download_f32(rdx, n_dx_);
      ref32_dw_ = download_f32(rdw, n_dw_);
      ref32_db_ = download_f32(rdb, n_db_);
    } else {
      ref_ = bench::cpu_reference_backward(p, fwd_.host_x(), fwd_.host_w(), fwd_.host_bias(), hdz_);
    }
  }

  const GpuCase& fwd() const { return fwd_; }

  // Runs the saving forward into saved() (and Z, which is checked), for Policy::save.
  bench::ParityResult save_forward(const TileConfig* tile = nullptr) const {
    ForwardOptions o;
    o.saved = saved_.get();
    if (tile != nullptr) o.tile = *tile;
    return fwd_.check([&] {
      const Status st = forward(p_, fwd_.x(), fwd_.w(), fwd_.bias(), fwd_.z(), nullptr, o);
      ASSERT_TRUE(st.ok()) << st.message;
    });
  }

  struct Result {
    bench::ParityResult dx, dw, dbias;
    bool dx_untouched = true, dw_untouched = true, dbias_untouched = true;
    BackwardTiles tiles;
    std::string error;
  };

  // Poisons every output, runs backward, checks the requested gradients and that the others still
  // hold the poison.
  Result run(const BackwardOptions& o) const {
    Result res;
    const size_t es = dtype_size(p_.dtype);
    for (const DeviceBuffer* b : {&dx_, &dw_, &db_})
      CUDA_CHECK(cudaMemset(b->get(), bench::kPoisonByte, b->bytes()));
    const size_t ws_bytes = backward_workspace_bytes(p_, o);
    DeviceBuffer ws(std::max<size_t>(ws_bytes, 1));
    BackwardTensors t;
    t.x = fwd_.x();
    t.w = fwd_.w();
    t.bias = fwd_.bias();
    t.dz = dz_.get();
    t.saved = saved_.get();
    t.dx = dx_.get();
    t.dw = dw_.get();
    t.dbias = p_.bias ? db_.get() : nullptr;
    const Status st = backward(p_, t, o, ws.get(), ws_bytes, nullptr, &res.tiles);
    if (!st.ok()) {
      res.error = st.message;
      return res;
    }
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    const auto tol = bench::gradient_tolerance(p_.dtype, p_.math);
    auto check = [&](const DeviceBuffer& buf, size_t n, const std::vector<double>& r64,
                     const std::vector<float>& r32) {
      std::vector<unsigned char> raw(n * es);
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.get(), raw.size(), cudaMemcpyDeviceToHost));
      const auto got = bench::from_dtype_bytes(raw.data(), n, p_.dtype);
      return r64.empty() && !r32.empty() ? bench::compare(got, r32, tol) : bench::compare(got, r64, tol);
    };
    auto untouched = [&](const DeviceBuffer& buf, size_t n) {
      std::vector<unsigned char> raw(n * es);
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.get(), raw.size(), cudaMemcpyDeviceToHost));
      for (unsigned char c : raw)
        if (c != bench::kPoisonByte) return false;
      return true;
    };
    if (o.grads.dx) {
      res.dx = check(dx_, n_dx_, ref_.dx, ref32_dx_);
    } else {
      res.dx_untouched = untouched(dx_, n_dx_);
    }
    if (o.grads.dw) {
      res.dw = check(dw_, n_dw_, ref_.dw, ref32_dw_);
      if (p_.bias) res.dbias = check(db_, n_db_, ref_.dbias, ref32_db_);
    } else {
      res.dw_untouched = untouched(dw_, n_dw_);
      if (p_.bias) res.dbias_untouched = untouched(db_, n_db_);
    }
    return res;
  }

 private:
  DeviceBuffer upload(const std::vector<float>& v) const {
    const auto bytes = bench::to_dtype_bytes(v, p_.dtype);
    DeviceBuffer d(std::max<size_t>(bytes.size(), 1));
    if (!bytes.empty())
      CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    return d;
  }
  static std::vector<float> download_f32(const DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    if (n > 0) CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * 4, cudaMemcpyDeviceToHost));
    return v;
  }

  Problem p_;
  GpuCase fwd_;
  std::vector<float> hdz_;
  bench::CpuGrads ref_;
  std::vector<float> ref32_dx_, ref32_dw_, ref32_db_;
  size_t n_dx_ = 0, n_dw_ = 0, n_db_ = 0;
  DeviceBuffer dz_, dx_, dw_, db_, saved_;
};

void expect_pass(const BwdCase::Result& r, const BackwardOptions& o, const Problem& p,
                 const std::string& what) {
  ASSERT_TRUE(r.error.empty()) << what << ": " << r.error;
  if (o.grads.dx) {
    EXPECT_TRUE(r.dx.pass) << what << " dx: " << r.dx.summary();
  }
  if (o.grads.dw) {
    EXPECT_TRUE(r.dw.pass) << what << " dw: " << r.dw.summary();
    if (p.bias) {
      EXPECT_TRUE(r.dbias.pass) << what << " dbias: " << r.dbias.summary();
    }
  }
  EXPECT_TRUE(r.dx_untouched) << what << ": dx written though not requested";
  EXPECT_TRUE(r.dw_untouched) << what << ": dw written though not requested";
  EXPECT_TRUE(r.dbias_untouched) << what << ": dbias written though not requested";
}

using Param = std::tuple<DType, Layout, bool, int>;  // int: index into kModes

const Mode kModes[] = {{Policy::save, GatePlacement::automatic},
                       {Policy::recompute, GatePlacement::epilogue},
                       {Policy::recompute, GatePlacement::prologue}};

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
    BackwardOptions o;
    o.policy = mode.policy;
    o.placement = mode.placement;
    // Every compiled dX and dW tile (paired by position; the lists have the same tiles), then the
    // heuristic's choice with each gradient subset.
    const auto dx_tiles = backward_dx_tiles(p, dev);
    const auto dw_tiles = backward_dw_tiles(p, dev);
    ASSERT_FALSE(dx_tiles.empty()) << describe(p);
    ASSERT_EQ(dx_tiles.size(), dw_tiles.size()) << describe(p);
    for (size_t k = 0; k < dx_tiles.size(); ++k) {
      BackwardOptions ot = o;
      ot.dx_tile = dx_tiles[k];
      ot.dw_tile = dw_tiles[k];
      const auto r = c.run(ot);
      EXPECT_EQ(r.tiles.dx, dx_tiles[k]);
      EXPECT_EQ(r.tiles.dw, dw_tiles[k]);
      expect_pass(r, ot, p, describe(p) + " " + describe_mode(mode) + " tiles " + dx_tiles[k].name());
      ++checked;
    }
    for (const Grads g : {Grads{true, false}, Grads{false, true}, Grads{true, true}}) {
      BackwardOptions og = o;
      og.grads = g;
      const auto r = c.run(og);
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
                                            ::testing::Bool(), ::testing::Values(0, 1, 2)));

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
        BackwardOptions o;
        o.policy = m.policy;
        o.placement = m.placement;
        const auto r = c.run(o);
        expect_pass(r, o, p,
                    describe(p) + " " + describe_mode(m) + " dx " + r.tiles.dx.name() + " dw " +
                        r.tiles.dw.name());
      }
    }
  }
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

}  // namespace
}  // namespace swiglu::test
