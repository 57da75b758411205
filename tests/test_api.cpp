// Host tests of the public API: validation, tile names, and the heuristic's choices. None of these
// touch a GPU: validate_forward never dereferences pointers, and the tile table is host data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "swiglu/heuristics.hpp"  // detail::choose_backward_tile, the backward heuristic
#include "swiglu/plan.hpp"        // detail::plan_backward, the dX split-K rule
#include "swiglu/registry.hpp"    // detail::sm90_backward_possible
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

// Fake, suitably aligned device addresses: validation looks at their values only.
const void* addr(uintptr_t v) { return reinterpret_cast<const void*>(v); }
void* maddr(uintptr_t v) { return reinterpret_cast<void*>(v); }

Problem problem(int64_t b = 64, int64_t i = 784, int64_t d = 1024, DType t = DType::bf16) {
  Problem p;
  p.batch = b;
  p.in_features = i;
  p.hidden = d;
  p.dtype = t;
  return p;
}

constexpr uintptr_t kX = 0x10000000, kW = 0x20000000, kB = 0x30000000, kZ = 0x40000000;

// x, w, dz (at kB), dx (at kZ) and dw of a backward without bias or saved H.
BackwardTensors backward_tensors() {
  BackwardTensors t;
  t.x = addr(kX);
  t.w = addr(kW);
  t.dz = addr(kB);
  t.dx = maddr(kZ);
  t.dw = maddr(0x50000000);
  return t;
}

TEST(Validate, AcceptsAWellFormedProblem) {
  EXPECT_TRUE(validate_forward(problem(), addr(kX), addr(kW), nullptr, addr(kZ)).ok());
}

TEST(Validate, Fp8TakesForwardFp8) {
  Problem p = problem();
  p.dtype = DType::e4m3;
  const Status s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("forward_fp8"), std::string::npos) << s.message;
}

TEST(Validate, RejectsNullPointersByName) {
  const Problem p = problem();
  Status s = validate_forward(p, nullptr, addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("x is null"), std::string::npos) << s.message;
  s = validate_forward(p, addr(kX), nullptr, nullptr, addr(kZ));
  EXPECT_NE(s.message.find("w is null"), std::string::npos) << s.message;
  s = validate_forward(p, addr(kX), addr(kW), nullptr, nullptr);
  EXPECT_NE(s.message.find("z is null"), std::string::npos) << s.message;
  Problem pb = p;
  pb.bias = true;
  s = validate_forward(pb, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("bias"), std::string::npos) << s.message;
}

TEST(Validate, RejectsBadDimensionsWithTheValue) {
  Status s = validate_forward(problem(-1), addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("-1"), std::string::npos) << s.message;
  s = validate_forward(problem(8, 0), addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_NE(s.message.find("in_features"), std::string::npos) << s.message;
  s = validate_forward(problem(8, 16, -5), addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_NE(s.message.find("hidden"), std::string::npos) << s.message;
  Problem p = problem();
  p.ldx = 100;  // < in_features
  s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_NE(s.message.find("ldx"), std::string::npos) << s.message;
}

TEST(Validate, RejectsElementCountsThatOverflow) {
  const Problem p = problem(int64_t{1} << 40, int64_t{1} << 30, 16);
  const Status s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("too large"), std::string::npos) << s.message;
}

TEST(Validate, RejectsPointersMisalignedForTheirElement) {
  const Status s = validate_forward(problem(), addr(kX + 1), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("x is not aligned"), std::string::npos) << s.message;
  const Status f = validate_forward(problem(8, 8, 8, DType::f32), addr(kX), addr(kW + 2), nullptr,
                                    addr(kZ));
  EXPECT_NE(f.message.find("w is not aligned"), std::string::npos) << f.message;
}

TEST(Validate, RejectsOutputOverlappingAnInput) {
  const Status s = validate_forward(problem(), addr(kX), addr(kW), nullptr, addr(kX + 64));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("overlaps x"), std::string::npos) << s.message;
}

TEST(Validate, RejectsEnumsOutsideTheirSets) {
  // A value cast from an integer once picked a wrong stride (layout) or skipped the saved-H check
  // (policy) and ran a kernel on a null pointer; each is an error naming the value.
  Problem p = problem();
  p.layout = static_cast<Layout>(2);
  Status s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("layout 2"), std::string::npos) << s.message;
  p = problem();
  p.dtype = static_cast<DType>(7);
  s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_NE(s.message.find("dtype 7"), std::string::npos) << s.message;
  p = problem();
  p.math = static_cast<Math>(-1);
  s = validate_forward(p, addr(kX), addr(kW), nullptr, addr(kZ));
  EXPECT_NE(s.message.find("math -1"), std::string::npos) << s.message;

  BackwardTensors t = backward_tensors();
  BackwardOptions o;
  o.policy = static_cast<Policy>(2);  // and no saved H
  s = validate_backward(problem(), t, o, maddr(0x60000000), size_t{1} << 24);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("policy 2"), std::string::npos) << s.message;
  o = BackwardOptions{};
  o.policy = Policy::recompute;
  o.placement = static_cast<GatePlacement>(3);
  s = validate_backward(problem(), t, o, maddr(0x60000000), size_t{1} << 24);
  EXPECT_NE(s.message.find("gate placement 3"), std::string::npos) << s.message;
  size_t bytes = 1;
  s = backward_workspace_bytes(problem(), o, &bytes);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_EQ(bytes, 0u);
}

TEST(Validate, WorkspaceQueryFailsOnBadOrWrappingSizes) {
  const BackwardOptions save;
  size_t bytes = 1;
  for (const Problem& p : {problem(-5), problem(8, 16, 0), problem(int64_t{1} << 62, 16, int64_t{1} << 62)}) {
    const Status s = backward_workspace_bytes(p, save, &bytes);
    EXPECT_EQ(s.code, StatusCode::invalid_argument) << p.batch << " " << p.hidden;
    EXPECT_FALSE(s.message.empty());
    EXPECT_EQ(bytes, 0u);
    EXPECT_EQ(backward_workspace_bytes(p, save), 0u);
  }
  // Each region fits in int64 but H and dH together do not fit in size_t: fp32, recompute with
  // the prologue placement, 2D·4 bytes just under 2^63 each.
  BackwardOptions o;
  o.policy = Policy::recompute;
  o.placement = GatePlacement::prologue;
  const Problem huge = problem(1, 1, (int64_t{1} << 60) - 1, DType::f32);
  const Status s = backward_workspace_bytes(huge, o, &bytes);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("size_t"), std::string::npos) << s.message;
  // A good problem answers the same through both overloads.
  ASSERT_TRUE(backward_workspace_bytes(problem(64, 64, 64), o, &bytes).ok());
  EXPECT_EQ(bytes, backward_workspace_bytes(problem(64, 64, 64), o));
  EXPECT_GT(bytes, 0u);
}

TEST(Forward, ZeroBatchIsASuccessfulNoOpWithoutPointersOrDevice) {
  const Status s = forward(problem(0), nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_TRUE(s.ok()) << s.message;
}

TEST(Forward, InvalidProblemFailsBeforeTouchingTheDevice) {
  const Status s = forward(problem(4), nullptr, addr(kW), nullptr, maddr(kZ), nullptr);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
}

TEST(TileConfig, NameAndParseRoundTrip) {
  const TileConfig t{Family::mma_sm80, 128, 64, 32, 4, 4};
  EXPECT_EQ(t.name(), "sm80:128x64x32s4w4");
  ASSERT_TRUE(TileConfig::parse("sm80:128x64x32s4w4").has_value());
  EXPECT_EQ(*TileConfig::parse("sm80:128x64x32s4w4"), t);
  const TileConfig s{Family::simt, 64, 64, 16, 2, 8};
  EXPECT_EQ(*TileConfig::parse(s.name()), s);
  const TileConfig c{Family::wgmma_sm90, 128, 128, 64, 4, 12, 2};
  EXPECT_EQ(c.name(), "sm90:128x128x64s4w12c2");
  ASSERT_TRUE(TileConfig::parse("sm90:128x128x64s4w12c2").has_value());
  EXPECT_EQ(*TileConfig::parse("sm90:128x128x64s4w12c2"), c);
  EXPECT_EQ(TileConfig::parse("sm90:128x128x64s4w12")->cluster, 1);
}

TEST(TileConfig, ParseRejectsMalformedNames) {
  for (const char* bad : {"", "sm80", "sm80:", "sm70:128x64x32s4w4", "sm80:128x64x32s4",
                          "sm80:128x64x32s4w4x", "sm80:0x64x32s4w4", "sm80:-128x64x32s4w4",
                          "sm80:128x64x32w4s4", "simt:64x64", "sm90:128x128x64s4w12c",
                          "sm90:128x128x64s4w12c1", "sm90:128x128x64s4w12c0", "sm90:128x128x64s4w12c2x"}) {
    EXPECT_FALSE(TileConfig::parse(bad).has_value()) << bad;
  }
}

TEST(Heuristic, PicksTensorCoresOnAmpereAndLaterForHalfTypes) {
  for (DType t : {DType::f16, DType::bf16}) {
    for (int cc : {80, 86, 89, 90}) {
      TileConfig tile;
      const DeviceTraits dev{cc / 10, cc % 10, 132};
      ASSERT_TRUE(choose_forward_tile(problem(1024, 784, 1024, t), dev, &tile).ok());
      // Hopper takes the wgmma kernel here in builds with sm_90a code.
      EXPECT_TRUE(tile.family == Family::mma_sm80 || (cc == 90 && tile.family == Family::wgmma_sm90))
          << cc << " " << tile.name();
    }
  }
}

TEST(Heuristic, PicksWgmmaOnHopperForProblemsThatFillIt) {
  const DeviceTraits h100{9, 0, 132};
  const Problem big = problem(8192, 4096, 14336, DType::bf16);
  bool built = false;
  for (const TileConfig& t : forward_tiles(big, h100)) built |= t.family == Family::wgmma_sm90;
  if (!built) GTEST_SKIP() << "this build holds no sm_90a code";
  TileConfig tile;
  ASSERT_TRUE(choose_forward_tile(big, h100, &tile).ok());
  EXPECT_EQ(tile.name(), "sm90:128x128x64s4w12");
  // A short reduction keeps the narrower tile however many tiles there are.
  ASSERT_TRUE(choose_forward_tile(problem(8192, 784, 4096, DType::bf16), h100, &tile).ok());
  EXPECT_EQ(tile.name(), "sm90:128x64x64s6w12");
  // sm_90a code is for compute capability 9.0 alone.
  for (const DeviceTraits other : {DeviceTraits{8, 0, 108}, DeviceTraits{10, 0, 148}}) {
    ASSERT_TRUE(choose_forward_tile(big, other, &tile).ok());
    EXPECT_EQ(tile.family, Family::mma_sm80) << other.cc_major;
  }
  // The packed layout too, when its Wf rows (2D elements) are whole 16-byte vectors (D % 8 == 0).
  Problem packed = big;
  packed.layout = Layout::packed;
  ASSERT_TRUE(choose_forward_tile(packed, h100, &tile).ok());
  EXPECT_EQ(tile.name(), "sm90:128x128x64s4w12");
  Problem packed_odd = packed;
  packed_odd.hidden = 14340;
  // Too few tiles for one per SM; rows TMA cannot address (I % 8 != 0, packed D % 8 != 0).
  for (const Problem& p : {problem(64, 784, 1024, DType::bf16), packed_odd, problem(8192, 4097, 14336, DType::f16)}) {
    ASSERT_TRUE(choose_forward_tile(p, h100, &tile).ok());
    EXPECT_NE(tile.family, Family::wgmma_sm90) << p.batch << "x" << p.in_features;
  }
}

TEST(Heuristic, Tf32TakesWgmmaOnHopperWithTheLinearLayout) {
  // fp32 with tf32 (and 3xtf32) math has its own sm90 tiles (BK = 32 fp32 elements, one 128-byte
  // row), for the linear layout only; the wide one from 0.24 x SMs whole tiles of its own (the
  // H200 sweep in heuristics.cpp), the narrow one below that, sm80 below that again.
  const DeviceTraits h200{9, 0, 132};
  auto tf32 = [](int64_t b, int64_t i, int64_t d) {
    Problem p = problem(b, i, d, DType::f32);
    p.math = Math::tf32;
    return p;
  };
  bool built = false;
  for (const TileConfig& t : forward_tiles(tf32(8192, 4096, 4096), h200)) built |= t.family == Family::wgmma_sm90;
  if (!built) GTEST_SKIP() << "this build holds no sm_90a code";
  const auto pick = [&](const Problem& p) {
    TileConfig t;
    EXPECT_TRUE(choose_forward_tile(p, h200, &t).ok());
    return t.name();
  };
  EXPECT_EQ(pick(tf32(8192, 4096, 4096)), "sm90:128x128x32s4w12");
  EXPECT_EQ(pick(tf32(8192, 4096, 256)), "sm90:128x128x32s4w12");
  EXPECT_EQ(pick(tf32(64, 4096, 11008)), "sm90:128x128x32s4w12");
  EXPECT_EQ(pick(tf32(64, 4096, 4096)), "sm90:128x64x32s6w12");
  EXPECT_EQ(pick(tf32(1024, 4096, 256)), "sm90:128x64x32s6w12");
  EXPECT_EQ(pick(tf32(64, 4096, 256)).substr(0, 5), "sm80:");
  // 3xtf32 has one sm90 tile, 128x64 (a partial sum beside the accumulators), taken once there
  // are about half as many whole tiles as SMs whatever I (the H200 sweep in heuristics.cpp).
  auto x3 = [&](int64_t b, int64_t i, int64_t d) {
    Problem p = tf32(b, i, d);
    p.math = Math::tf32x3;
    return p;
  };
  EXPECT_EQ(pick(x3(8192, 4096, 4096)), "sm90:128x64x32s3w12");
  EXPECT_EQ(pick(x3(8192, 4096, 256)), "sm90:128x64x32s3w12");
  EXPECT_EQ(pick(x3(64, 4096, 11008)), "sm90:128x64x32s3w12");
  EXPECT_EQ(pick(x3(256, 4096, 4096)), "sm90:128x64x32s3w12");
  EXPECT_EQ(pick(x3(64, 4096, 4096)).substr(0, 5), "sm80:");
  EXPECT_EQ(pick(x3(1024, 4096, 256)).substr(0, 5), "sm80:");
  EXPECT_EQ(pick(x3(64, 4096, 256)).substr(0, 5), "sm80:");
  // Not for the packed layout (tf32 wgmma has no transpose), exact fp32, rows TMA cannot address
  // (I % 4 != 0), or another compute capability.
  Problem packed = tf32(8192, 4096, 4096);
  packed.layout = Layout::packed;
  Problem packed_x3 = x3(8192, 4096, 4096);
  packed_x3.layout = Layout::packed;
  Problem exact = tf32(8192, 4096, 4096);
  exact.math = Math::exact;
  for (const Problem& p : {packed, packed_x3, exact, tf32(8192, 4098, 4096), x3(8192, 4098, 4096)}) {
    for (const TileConfig& t : forward_tiles(p, h200)) EXPECT_NE(t.family, Family::wgmma_sm90) << t.name();
  }
  TileConfig tile;
  ASSERT_TRUE(choose_forward_tile(tf32(8192, 4096, 4096), DeviceTraits{8, 0, 108}, &tile).ok());
  EXPECT_EQ(tile.family, Family::mma_sm80);
}

TEST(Heuristic, BackwardTakesWgmmaOnHopperForProblemsThatFillIt) {
  const DeviceTraits h100{9, 0, 132};
  const Problem big = problem(8192, 4096, 14336, DType::bf16);  // the Llama-3-8B MLP
  bool built = false;
  for (const TileConfig& t : backward_dx_tiles(big, h100)) built |= t.family == Family::wgmma_sm90;
  if (!built) GTEST_SKIP() << "this build holds no sm_90a code";
  EXPECT_TRUE(detail::sm90_backward_possible(big, h100));
  TileConfig tile;
  // dX: 64 x 16 tiles of 128x256; dW: 224 x 16.
  for (const detail::Gemm gemm : {detail::Gemm::dx, detail::Gemm::dw}) {
    ASSERT_TRUE(detail::choose_backward_tile(big, h100, gemm, /*allow_sm90=*/true, &tile).ok());
    EXPECT_EQ(tile.name(), "sm90:128x256x64s4w12") << (gemm == detail::Gemm::dw);
    ASSERT_TRUE(detail::choose_backward_tile(big, h100, gemm, /*allow_sm90=*/false, &tile).ok());
    EXPECT_EQ(tile.family, Family::mma_sm80) << (gemm == detail::Gemm::dw);
  }
  // B = 512, D = 1024: dX has 4 x 16 tiles of 128x256, under one per SM, so it takes 128x128; dW
  // has 16 x 16.
  const Problem mid = problem(512, 4096, 1024, DType::f16);
  ASSERT_TRUE(detail::choose_backward_tile(mid, h100, detail::Gemm::dx, true, &tile).ok());
  EXPECT_EQ(tile.name(), "sm90:128x128x64s6w12");
  ASSERT_TRUE(detail::choose_backward_tile(mid, h100, detail::Gemm::dw, true, &tile).ok());
  EXPECT_EQ(tile.name(), "sm90:128x256x64s4w12");
  // dW: gemv up to 8 rows, then sm90 128x128 (its K is B, and at K < 256 128x256 lost). dX: gemv
  // up to 8 rows while its K (2D) is at most 2048, else sm90 128x128 splitting K from one row; the
  // packed layout's dX (gemv has only the linear one) sm90 throughout.
  const struct {
    int64_t batch, in, hidden;
    Layout layout;
    const char* dx;
    const char* dw;
  } small[] = {{1, 4096, 14336, Layout::linear, "sm90:128x128x64s6w12", "gemv:128x64x16s1w4"},
               {8, 4096, 14336, Layout::linear, "sm90:128x128x64s6w12", "gemv:128x64x16s1w4"},
               {9, 4096, 14336, Layout::linear, "sm90:128x128x64s6w12", "sm90:128x128x64s6w12"},
               {64, 4096, 14336, Layout::linear, "sm90:128x128x64s6w12", "sm90:128x128x64s6w12"},
               {128, 4096, 14336, Layout::linear, "sm90:128x128x64s6w12", "sm90:128x128x64s6w12"},
               {4, 4096, 14336, Layout::packed, "sm90:128x128x64s6w12", "gemv:128x64x16s1w4"},
               {64, 4096, 14336, Layout::packed, "sm90:128x128x64s6w12", "sm90:128x128x64s6w12"},
               {1, 784, 1024, Layout::linear, "gemv:16x64x64s4w4", "gemv:128x64x16s1w4"},
               {8, 784, 512, Layout::linear, "gemv:16x64x64s4w4", "gemv:128x64x16s1w4"},
               {9, 784, 512, Layout::linear, "sm90:128x128x64s6w12", "sm90:128x128x64s6w12"},
               {1, 784, 2048, Layout::linear, "sm90:128x128x64s6w12", "gemv:128x64x16s1w4"}};
  for (const auto& c : small) {
    Problem p = problem(c.batch, c.in, c.hidden, DType::bf16);
    p.layout = c.layout;
    ASSERT_TRUE(detail::choose_backward_tile(p, h100, detail::Gemm::dx, true, &tile).ok());
    EXPECT_EQ(tile.name(), c.dx) << c.batch;
    ASSERT_TRUE(detail::choose_backward_tile(p, h100, detail::Gemm::dw, true, &tile).ok());
    EXPECT_EQ(tile.name(), c.dw) << c.batch;
  }
  // 128x256 in clusters of two with a wave or two of its tiles (0.95-2 x 132) and K >= 2048: at
  // I = 784 (4 columns of tiles) dX from B = 4096 to 8192 once 2D >= 2048, dW at D = 2048-4096
  // once B >= 2048; dX at B = 1024 of the LLaMA layers (8 x 16 tiles). Not below (B = 2048's dX:
  // 64 tiles; D = 512's dX: K = 1024; D = 1024's dW: 64 tiles), nor above two waves (the big case).
  // The clustered 128x200 takes the clustered 128x256's place where it makes as many columns of
  // tiles (I = 784 or 800: four; not I = 808 or 4096); the single-block 128x256 stays.
  const struct {
    int64_t batch, in, hidden;
    const char* dx;
    const char* dw;
  } clustered[] = {{4096, 784, 1024, "sm90:128x200x64s4w12c2", "sm90:128x128x64s6w12"},
                   {8192, 784, 2048, "sm90:128x200x64s4w12c2", "sm90:128x200x64s4w12c2"},
                   {4096, 784, 4096, "sm90:128x200x64s4w12c2", "sm90:128x200x64s4w12c2"},
                   {4096, 800, 4096, "sm90:128x200x64s4w12c2", "sm90:128x200x64s4w12c2"},
                   {4096, 808, 4096, "sm90:128x256x64s4w12c2", "sm90:128x256x64s4w12c2"},
                   {2048, 784, 4096, "sm90:128x128x64s6w12", "sm90:128x200x64s4w12c2"},
                   {1024, 784, 4096, "sm90:128x128x64s6w12", "sm90:128x256x64s4w12"},
                   {8192, 784, 512, "sm90:128x256x64s4w12", "sm90:128x128x64s6w12"},
                   {16384, 784, 2048, "sm90:128x256x64s4w12", "sm90:128x200x64s4w12c2"},
                   {1024, 4096, 14336, "sm90:128x256x64s4w12c2", "sm90:128x256x64s4w12"}};
  for (const auto& c : clustered) {
    const Problem p = problem(c.batch, c.in, c.hidden, DType::bf16);
    ASSERT_TRUE(detail::choose_backward_tile(p, h100, detail::Gemm::dx, true, &tile).ok());
    EXPECT_EQ(tile.name(), c.dx) << c.batch << " " << c.hidden;
    ASSERT_TRUE(detail::choose_backward_tile(p, h100, detail::Gemm::dw, true, &tile).ok());
    EXPECT_EQ(tile.name(), c.dw) << c.batch << " " << c.hidden;
  }
  // The packed layout keeps the single-block tiles (its clustered GEMMs were not measured).
  Problem packed_mnist = problem(8192, 784, 2048, DType::bf16);
  packed_mnist.layout = Layout::packed;
  for (const detail::Gemm gemm : {detail::Gemm::dx, detail::Gemm::dw}) {
    ASSERT_TRUE(detail::choose_backward_tile(packed_mnist, h100, gemm, true, &tile).ok());
    EXPECT_EQ(tile.cluster, 1) << tile.name();
  }
  // The packed layout too (its dX reads Wf K-major, its dW runs as dWf = Xᵀ·dH).
  Problem packed = big;
  packed.layout = Layout::packed;
  for (const detail::Gemm gemm : {detail::Gemm::dx, detail::Gemm::dw}) {
    ASSERT_TRUE(detail::choose_backward_tile(packed, h100, gemm, true, &tile).ok());
    EXPECT_EQ(tile.name(), "sm90:128x256x64s4w12") << (gemm == detail::Gemm::dw);
  }
  // Never: rows TMA cannot address (I % 8, D % 4, packed D % 8), fp32, other architectures.
  Problem packed_odd = packed;
  packed_odd.hidden = 14340;
  const struct {
    Problem p;
    DeviceTraits dev;
  } never[] = {{packed_odd, h100},
               {problem(8192, 4097, 14336, DType::bf16), h100},
               {problem(8192, 4096, 14338, DType::bf16), h100},
               {problem(8192, 4096, 14336, DType::f32), h100},
               {big, DeviceTraits{8, 0, 108}},
               {big, DeviceTraits{10, 0, 148}}};
  for (const auto& c : never) {
    EXPECT_FALSE(detail::sm90_backward_possible(c.p, c.dev)) << c.p.in_features << " " << c.p.hidden;
    for (const detail::Gemm gemm : {detail::Gemm::dx, detail::Gemm::dw}) {
      for (const TileConfig& t : gemm == detail::Gemm::dw ? backward_dw_tiles(c.p, c.dev) : backward_dx_tiles(c.p, c.dev))
        EXPECT_NE(t.family, Family::wgmma_sm90) << t.name();
      ASSERT_TRUE(detail::choose_backward_tile(c.p, c.dev, gemm, true, &tile).ok());
      EXPECT_NE(tile.family, Family::wgmma_sm90);
    }
  }
}

TEST(Heuristic, PicksSimtForExactFp32AndForTuring) {
  TileConfig tile;
  ASSERT_TRUE(choose_forward_tile(problem(1024, 784, 1024, DType::f32), DeviceTraits{9, 0, 132}, &tile).ok());
  EXPECT_EQ(tile.family, Family::simt);
  ASSERT_TRUE(choose_forward_tile(problem(1024, 784, 1024, DType::bf16), DeviceTraits{7, 5, 40}, &tile).ok());
  EXPECT_EQ(tile.family, Family::simt);
}

TEST(Heuristic, Tf32NeedsAmpere) {
  Problem p = problem(256, 512, 512, DType::f32);
  p.math = Math::tf32;
  TileConfig tile;
  ASSERT_TRUE(choose_forward_tile(p, DeviceTraits{8, 0, 108}, &tile).ok());
  EXPECT_EQ(tile.family, Family::mma_sm80);
  const Status s = choose_forward_tile(p, DeviceTraits{7, 5, 40}, &tile);
  EXPECT_EQ(s.code, StatusCode::unsupported);
}

TEST(Heuristic, Tf32x3TakesItsOwnSm80TilesOnAmpereAndHopper) {
  // The 3xTF32 instances (families/sm80.cuh): sm80 tensor-core tiles, and no others, on sm_80..9.0.
  const std::vector<std::string> want = {"sm80:128x64x16s4w8", "sm80:64x64x32s3w4",
                                         "sm80:16x64x32s3w4"};
  for (const int cc : {80, 86, 89, 90}) {
    const DeviceTraits dev{cc / 10, cc % 10, 132};
    for (const Layout l : {Layout::linear, Layout::packed}) {
      for (const int64_t b : {1, 7, 64, 1000, 16384}) {
        Problem p = problem(b, 777, 1001, DType::f32);
        p.layout = l;
        p.math = Math::tf32x3;
        std::vector<std::string> names;
        for (const TileConfig& t : forward_tiles(p, dev)) names.push_back(t.name());
        EXPECT_EQ(names, want) << cc;
        TileConfig tile;
        ASSERT_TRUE(choose_forward_tile(p, dev, &tile).ok()) << cc << " B=" << b;
        EXPECT_EQ(tile.family, Family::mma_sm80) << cc << " " << tile.name();
        EXPECT_NE(std::find(want.begin(), want.end(), tile.name()), want.end()) << tile.name();
      }
    }
  }
  // Large problems take the large tile (on Ampere; Hopper's sm90 3xtf32 tile is
  // Tf32TakesWgmmaOnHopperWithTheLinearLayout's), decode the 16-row one; tf32's tiles stay tf32's.
  const DeviceTraits a100{8, 0, 108}, h100{9, 0, 132};
  Problem big = problem(8192, 4096, 4096, DType::f32);
  big.math = Math::tf32x3;
  TileConfig tile;
  ASSERT_TRUE(choose_forward_tile(big, a100, &tile).ok());
  EXPECT_EQ(tile.name(), "sm80:128x64x16s4w8");
  Problem decode = problem(1, 784, 512, DType::f32);
  decode.math = Math::tf32x3;
  ASSERT_TRUE(choose_forward_tile(decode, h100, &tile).ok());
  EXPECT_EQ(tile.name(), "sm80:16x64x32s3w4");
  big.math = Math::tf32;
  for (const TileConfig& t : forward_tiles(big, h100)) EXPECT_NE(t.name(), "sm80:128x64x16s4w8");
  // Exact fp32 still runs the SIMT kernel.
  big.math = Math::exact;
  ASSERT_TRUE(choose_forward_tile(big, h100, &tile).ok());
  EXPECT_EQ(tile.family, Family::simt);
}

TEST(Heuristic, Tf32x3NeedsAmpere) {
  // Turing has no tf32 mma: no 3xtf32 tile exists there and the heuristic says so (forward()
  // refuses it before that, naming compute capability 8.0); it never falls back to exact.
  for (const Layout l : {Layout::linear, Layout::packed}) {
    Problem p = problem(256, 512, 512, DType::f32);
    p.layout = l;
    p.math = Math::tf32x3;
    const DeviceTraits turing{7, 5, 40};
    EXPECT_TRUE(forward_tiles(p, turing).empty());
    TileConfig tile;
    const Status s = choose_forward_tile(p, turing, &tile);
    EXPECT_EQ(s.code, StatusCode::unsupported) << s.message;
    ASSERT_TRUE(choose_forward_tile(p, DeviceTraits{8, 0, 108}, &tile).ok());
    EXPECT_EQ(tile.family, Family::mma_sm80);
  }
}

// The sm90 dX splits K where its tiles leave SMs idle, but only into slices that take at least 40 K
// steps (64 elements each) off each tile's reduction: a split costs a fixed 10-13 us (plan.cpp).
// The plan needs no GPU, so the rule is checked here at its boundary; test_backward_gpu runs it.
TEST(Plan, Sm90DxSplitsOnlyWhereItSavesFortyKSteps) {
  const DeviceTraits h100{9, 0, 132};
  if (!detail::sm90_backward_possible(problem(256, 784, 512), h100)) GTEST_SKIP() << "no sm_90a backward compiled";
  const struct {
    int64_t batch, in, hidden;
    int splits;
  } cases[] = {
      {256, 784, 512, 1},     // 14 tiles, 16 K steps: 8 slices would save 14
      {256, 784, 1024, 1},    // 32 K steps: at most 28 saved
      {256, 784, 2048, 8},    // 64 K steps, 9 slices wanted: 8 slices of 8 steps save 56
      {768, 1408, 2560, 2},   // 66 tiles, 2 slices wanted: 80 K steps, 40 saved
      {768, 1408, 2496, 1},   // 78 K steps: 39 saved
      {256, 4096, 11008, 2},  // LLaMA-7B's dX: 64 tiles, 344 K steps
  };
  for (const auto& c : cases) {
    const Problem p = problem(c.batch, c.in, c.hidden);
    BackwardTensors t = backward_tensors();
    t.saved = addr(0x60000000);
    BackwardOptions o;
    o.policy = Policy::save;
    detail::BackwardPlan plan;
    ASSERT_TRUE(detail::plan_backward(p, t, o, maddr(0x70000000), h100, &plan).ok()) << c.batch << " " << c.hidden;
    ASSERT_TRUE(plan.dx.has_value());
    EXPECT_EQ(plan.dx->tile.name(), "sm90:128x128x64s6w12") << c.batch << " " << c.hidden;
    EXPECT_EQ(plan.dx->params.splits, c.splits) << c.batch << "x" << c.in << "x" << c.hidden;
    EXPECT_EQ(plan.dx->clear_bytes > 0, c.splits > 1) << c.batch << " " << c.hidden;
  }
}

// A bounded workspace: as few equal row chunks as fit (their sizes differ by a row at most), each
// chunk's workspace within the bound; no bound, or one the whole batch fits, is one chunk; a bound
// below a chunk of kMinBackwardChunkRows rows is refused, naming the bound and the need.
TEST(Plan, BoundedWorkspaceSplitsTheBatchIntoRowChunks) {
  const DeviceTraits h100{9, 0, 132};
  for (const Policy policy : {Policy::save, Policy::recompute}) {
    for (const Problem& p : {problem(4096, 4096, 11008), problem(777, 264, 200), problem(8192, 784, 1024, DType::f32)}) {
      BackwardOptions o;
      o.policy = policy;
      const std::string what = std::string(to_string(policy)) + " " + std::to_string(p.batch) + "x" +
                               std::to_string(p.in_features) + "x" + std::to_string(p.hidden);
      const detail::Chunking whole = detail::backward_chunking(p, o, h100);
      EXPECT_EQ(whole.chunks, 1) << what;
      EXPECT_EQ(whole.workspace, detail::workspace_layout(p, o, h100).total) << what;
      o.max_workspace_bytes = whole.workspace;
      EXPECT_EQ(detail::backward_chunking(p, o, h100).chunks, 1) << what;
      for (const size_t parts : {2u, 3u, 7u}) {
        o.max_workspace_bytes = whole.workspace / parts;
        const detail::Chunking c = detail::backward_chunking(p, o, h100);
        ASSERT_GE(c.chunks, static_cast<int64_t>(parts)) << what << " / " << parts;
        EXPECT_LE(c.workspace, o.max_workspace_bytes) << what << " / " << parts;
        // Every chunk's workspace fits, and one chunk fewer would not.
        for (int64_t i = 0; i < c.chunks; ++i) {
          Problem q = p;
          q.batch = p.batch * (i + 1) / c.chunks - p.batch * i / c.chunks;
          EXPECT_LE(detail::workspace_layout(q, o, h100).total, c.workspace) << what << " chunk " << i;
        }
        Problem fewer = p;
        fewer.batch = (p.batch + c.chunks - 2) / (c.chunks - 1);
        EXPECT_GT(detail::workspace_layout(fewer, o, h100).total, o.max_workspace_bytes) << what << " / " << parts;
      }
    }
  }
  // Too small a bound: refused by the query (and so by backward()'s validation).
  BackwardOptions o;
  o.policy = Policy::recompute;
  o.max_workspace_bytes = 4096;
  const Problem p = problem(4096, 4096, 11008);
  EXPECT_EQ(detail::backward_chunking(p, o, h100).chunks, 0);
  size_t bytes = 1;
  const Status s = backward_workspace_bytes(p, o, &bytes);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_EQ(bytes, 0u);
  EXPECT_NE(s.message.find("max_workspace_bytes 4096 is below"), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("64 rows"), std::string::npos) << s.message;
}

TEST(Heuristic, SmallBatchesGetSmallerTilesThanLargeOnes) {
  const DeviceTraits h100{9, 0, 132};
  TileConfig small, large;
  ASSERT_TRUE(choose_forward_tile(problem(1, 784, 1024), h100, &small).ok());
  ASSERT_TRUE(choose_forward_tile(problem(8192, 4096, 14336), h100, &large).ok());
  EXPECT_LT(small.block_m * small.block_n, large.block_m * large.block_n)
      << small.name() << " vs " << large.name();
}

// The block sweep on an H200 (132 SMs) found these; the rule in heuristics.cpp must keep them.
TEST(Heuristic, ReproducesTheMeasuredBestTilesOnH200) {
  const DeviceTraits h200{9, 0, 132};
  const auto pick = [&](int64_t b, int64_t i, int64_t d) {
    TileConfig t;
    EXPECT_TRUE(choose_forward_tile(problem(b, i, d), h200, &t).ok());
    return t.name();
  };
  // Builds with sm_90a code take the wgmma kernel wherever it has at least 16 whole 128-row tiles
  // (the H200 sweep with TMA stores: 1.06-2.9x the best sm80 tile there, 0.79-0.92x at 4 and 8).
  bool sm90 = false;
  for (const TileConfig& t : forward_tiles(problem(8192, 4096, 14336), h200))
    sm90 |= t.family == Family::wgmma_sm90;
  constexpr const char* kSm90 = "sm90:128x64x64s6w12";
  // One wave of 128 large sm80 blocks loses to two blocks per SM of half the size.
  EXPECT_EQ(pick(1024, 784, 1024), sm90 ? kSm90 : "sm80:64x64x64s3w4");
  EXPECT_EQ(pick(1024, 784, 4096), sm90 ? kSm90 : "sm80:128x64x32s4w4");
  EXPECT_EQ(pick(256, 784, 2048), sm90 ? kSm90 : "sm80:32x64x64s3w4");
  // 32 whole tiles each (B = 64 fills half of every tile): 1.21x and 1.16x the best sm80 tile.
  // Without sm_90a code the sm80 rule picks 16x64x64 for both; at 256x784x1024 the sweep's best
  // sm80 tile was 32x64x64 (14.7 against 17.5 us), a case the rule misses by 19%.
  EXPECT_EQ(pick(64, 784, 4096), sm90 ? kSm90 : "sm80:16x64x64s3w4");
  EXPECT_EQ(pick(256, 784, 1024), sm90 ? kSm90 : "sm80:16x64x64s3w4");
  // Too few whole 128-row tiles for the sm90 kernel: 8 and 4.
  EXPECT_EQ(pick(64, 784, 1024), "sm80:16x32x64s6w2");
  EXPECT_EQ(pick(64, 784, 512), "sm80:16x32x64s6w2");
  TileConfig t;
  ASSERT_TRUE(choose_forward_tile(problem(1024, 784, 1024, DType::f32), h200, &t).ok());
  EXPECT_EQ(t.name(), "simt:128x64x16s2w8");
  // A tiny batch with tf32 math (gemv is exact fp32 only): every tile gives the same blocks, and
  // the shortest tile wastes the fewest rows.
  Problem tiny = problem(1, 784, 512, DType::f32);
  tiny.math = Math::tf32;
  ASSERT_TRUE(choose_forward_tile(tiny, DeviceTraits{8, 0, 108}, &t).ok());
  EXPECT_EQ(t.name(), "sm80:64x64x32s3w4");
  EXPECT_EQ(pick(128, 784, 512), "sm80:16x32x64s6w2");
  // Long reductions: one wave of large tiles is enough. Of two equal sm80 tiles, fewer warps won;
  // the sm90 kernel needs half as many whole tiles.
  EXPECT_EQ(pick(256, 4096, 4096), sm90 ? kSm90 : "sm80:128x64x32s4w4");
  EXPECT_EQ(pick(256, 2048, 2048), sm90 ? kSm90 : "sm80:64x64x64s3w4");
  EXPECT_EQ(pick(64, 4096, 4096), sm90 ? kSm90 : "sm80:32x64x64s3w4");
  EXPECT_EQ(pick(64, 2048, 2048).substr(0, 5), sm90 ? "sm90:" : "sm80:");
  // Streams of W (B 5-128, I >= 4096): the widest sm90 tile while it gives half the SMs a tile
  // (86 at D = 11008), not at 32 tiles (D = 4096) nor at 256 rows.
  constexpr const char* kWide = "sm90:128x128x64s4w12";
  if (sm90) {
    for (const int64_t b : {5, 8, 16, 64, 128}) {
      EXPECT_EQ(pick(b, 4096, 11008), kWide) << b;
      EXPECT_EQ(pick(b, 8192, 28672), kWide) << b;
    }
    EXPECT_EQ(pick(256, 4096, 11008), kSm90);
  }
  EXPECT_NE(pick(16, 4096, 4096), kWide);
  EXPECT_NE(pick(16, 784, 4096), kWide);
}

// The gemv sweep on an H200 (bf16, every gemv tile against every other tile and cublas2; the
// numbers are in docs/kernels-gemv.md): gemv while the forward streams W, with the fewest rows a
// block that keep the blocks at most 4 a SM.
TEST(Heuristic, ReproducesTheMeasuredGemvChoicesOnH200) {
  const DeviceTraits h200{9, 0, 132};
  const auto pick = [&](int64_t b, int64_t i, int64_t d, DType t = DType::bf16) {
    TileConfig tile;
    EXPECT_TRUE(choose_forward_tile(problem(b, i, d, t), h200, &tile).ok());
    return tile.name();
  };
  // LLaMA layers: 1 and 2 rows stream W (1.07-1.23x cublas2); at 3-4 rows the 2-row tile (H100:
  // 1.00-1.24x), and from 5 rows the tile kernels.
  for (const auto& [i, d] : {std::pair{4096, 14336}, {4096, 28672}, {8192, 14336}, {8192, 28672}}) {
    EXPECT_EQ(pick(1, i, d), "gemv:1x8x256s4w4");
    EXPECT_EQ(pick(2, i, d), "gemv:2x8x256s4w4");
    EXPECT_EQ(pick(3, i, d), "gemv:2x8x256s4w4");
    EXPECT_EQ(pick(4, i, d), "gemv:2x8x256s4w4");
    EXPECT_NE(pick(5, i, d).substr(0, 5), "gemv:");
  }
  // ...but not at I = 2048 (fp32 keeps its own rule: tf32 has no gemv kernel, exact fp32 takes gemv
  // up to 16 rows).
  EXPECT_NE(pick(4, 2048, 14336).substr(0, 5), "gemv:");
  // MNIST layers: one row a block while that makes at most 4 blocks a SM, else two.
  EXPECT_EQ(pick(8, 784, 512), "gemv:1x8x256s4w4");
  EXPECT_EQ(pick(4, 784, 1024), "gemv:1x8x256s4w4");
  EXPECT_EQ(pick(2, 784, 2048), "gemv:1x8x256s4w4");
  EXPECT_EQ(pick(1, 784, 4096), "gemv:1x8x256s4w4");
  EXPECT_EQ(pick(16, 784, 512), "gemv:2x8x256s4w4");
  EXPECT_EQ(pick(8, 784, 1024), "gemv:2x8x256s4w4");
  EXPECT_EQ(pick(4, 784, 2048), "gemv:2x8x256s4w4");
  EXPECT_EQ(pick(2, 784, 4096), "gemv:2x8x256s4w4");
  // From 2^24.6 multiply-adds the tile kernels won.
  EXPECT_EQ(pick(4, 784, 4096).substr(0, 5), "sm80:");
  EXPECT_EQ(pick(8, 784, 2048).substr(0, 5), "sm80:");
  EXPECT_EQ(pick(32, 784, 512).substr(0, 5), "sm80:");
  // Every dtype; the packed layout and tf32 math have no gemv kernel.
  EXPECT_EQ(pick(1, 777, 1001, DType::f32), "gemv:1x8x128s4w4");
  EXPECT_EQ(pick(1, 784, 1024, DType::f16), "gemv:1x8x256s4w4");
  Problem packed = problem(1, 784, 1024, DType::bf16);
  packed.layout = Layout::packed;
  Problem tf32 = problem(1, 784, 1024, DType::f32);
  tf32.math = Math::tf32;
  for (const Problem& p : {packed, tf32}) {
    TileConfig tile;
    ASSERT_TRUE(choose_forward_tile(p, h200, &tile).ok());
    EXPECT_NE(tile.family, Family::gemv) << tile.name();
  }
}

TEST(Heuristic, EveryChoiceIsACompiledTile) {
  const DeviceTraits dev{9, 0, 132};
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    for (Layout l : {Layout::linear, Layout::packed}) {
      for (int64_t b : {1, 7, 64, 1000, 16384}) {
        Problem p = problem(b, 777, 1001, t);
        p.layout = l;
        TileConfig tile;
        ASSERT_TRUE(choose_forward_tile(p, dev, &tile).ok());
        const auto tiles = forward_tiles(p, dev);
        EXPECT_NE(std::find(tiles.begin(), tiles.end(), tile), tiles.end()) << tile.name();
      }
    }
  }
}

TEST(Validate, DhInTheCallersTensors) {
  // DhStorage::tensors: dH goes to t.dh, which may be the saved H exactly (save), else must not
  // touch any other tensor; the workspace then holds no dH.
  const Problem p = problem();  // B=64, I=784, D=1024, bf16: H is 64·2048·2 bytes
  constexpr uintptr_t kH = 0x70000000, kDh = 0x78000000, kWs = 0x60000000;
  BackwardTensors t = backward_tensors();
  t.saved = addr(kH);
  BackwardOptions o;
  o.dh_storage = DhStorage::tensors;
  // Over the saved H: accepted.
  t.dh = maddr(kH);
  EXPECT_TRUE(validate_backward(p, t, o, maddr(kWs), size_t{1} << 24).ok());
  // Null, misaligned, or partly over H.
  t.dh = nullptr;
  Status s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_EQ(s.code, StatusCode::invalid_argument);
  EXPECT_NE(s.message.find("dh is null"), std::string::npos) << s.message;
  t.dh = maddr(kDh + 1);
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("dh is not aligned"), std::string::npos) << s.message;
  t.dh = maddr(kH + 64);
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("dh overlaps saved"), std::string::npos) << s.message;
  // Over the saved H, an output may not overlap it either.
  t.dh = maddr(kH);
  t.dx = maddr(kH + 128);
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("dx overlaps dh (over saved)"), std::string::npos) << s.message;
  t.dx = maddr(kZ);
  // Recompute: dH in a buffer of its own, never over an input.
  o.policy = Policy::recompute;
  t.dh = maddr(kDh);
  EXPECT_TRUE(validate_backward(p, t, o, maddr(kWs), size_t{1} << 24).ok());
  t.dh = maddr(kX);
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("dh overlaps x"), std::string::npos) << s.message;
  // The prologue placement stores no dH.
  t.dh = maddr(kDh);
  o.placement = GatePlacement::prologue;
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("prologue"), std::string::npos) << s.message;
  // A storage outside the enum.
  o = BackwardOptions{};
  o.dh_storage = static_cast<DhStorage>(5);
  s = validate_backward(p, t, o, maddr(kWs), size_t{1} << 24);
  EXPECT_NE(s.message.find("dH storage 5"), std::string::npos) << s.message;
}

TEST(Validate, DhInTheCallersTensorsLeavesDhOutOfTheWorkspace) {
  // A LLaMA-sized batch (no split-K sums): the workspace of save and of recompute's epilogue is
  // dH alone, B×2D elements, and nothing with DhStorage::tensors.
  const Problem p = problem(4096, 4096, 11008);
  const size_t dh_bytes = size_t{4096} * 2 * 11008 * 2;
  for (const Policy policy : {Policy::save, Policy::recompute}) {
    BackwardOptions o;
    o.policy = policy;
    EXPECT_EQ(backward_workspace_bytes(p, o), dh_bytes) << to_string(policy);
    o.dh_storage = DhStorage::tensors;
    EXPECT_EQ(backward_workspace_bytes(p, o), 0u) << to_string(policy);
  }
}

TEST(Strings, ParseAndPrintEnums) {
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("fp16"), DType::f16);
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
  EXPECT_FALSE(parse_dtype("int8").has_value());
  EXPECT_EQ(parse_dtype("fp8"), DType::e4m3);
  EXPECT_EQ(parse_dtype("e4m3"), DType::e4m3);
  EXPECT_EQ(to_string(DType::e4m3), "fp8");
  EXPECT_EQ(dtype_size(DType::e4m3), 1u);
  EXPECT_EQ(parse_layout("packed"), Layout::packed);
  EXPECT_FALSE(parse_layout("col").has_value());
  EXPECT_EQ(parse_math("tf32"), Math::tf32);
  EXPECT_EQ(parse_math("3xtf32"), Math::tf32x3);
  EXPECT_FALSE(parse_math("tf32x3").has_value());
  for (const Math m : {Math::exact, Math::tf32, Math::tf32x3}) EXPECT_EQ(parse_math(to_string(m)), m);
  EXPECT_EQ(to_string(Math::exact), "exact");
  EXPECT_EQ(to_string(Math::tf32), "tf32");
  EXPECT_EQ(to_string(Math::tf32x3), "3xtf32");
  EXPECT_EQ(to_string(DType::bf16), "bf16");
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  for (const DhStorage d : {DhStorage::workspace, DhStorage::tensors}) EXPECT_EQ(parse_dh_storage(to_string(d)), d);
  EXPECT_FALSE(parse_dh_storage("inplace").has_value());
}

}  // namespace
}  // namespace swiglu
