// Tile choice for the fused forward: which compiled instance runs a given problem by default.
//
// The rule, per kernel family (the constants in kRules come from the block sweep
// `swiglubench forward --tiles all` on an H200; DESIGN.md has the table):
//  0. On compute capability 9.0 with sm_90a code, fp16/bf16 and rows TMA can address (either
//     layout): the widest sm90 (wgmma) tile that gives at least one tile per SM, when the problem
//     has that many.
//  1. Family: tensor cores (sm80, mma.sync) whenever the device and the math allow it; the SIMT
//     kernel for fp32 exact and for sm_70/75.
//  2. Eligible tiles: block_n <= max_block_n.
//  3. Walk the eligible tiles from the largest (block_m·block_n) down (ties: taller, deeper K,
//     fewer warps) and take the first that
//     launches at least min_blocks_per_sm × SMs blocks: large tiles re-use each loaded element
//     most, but only pay off once every SM has enough of them to hide memory latency. Short
//     reductions (I < long_k) leave less time to hide it, so they want more blocks per SM.
//  4. If none does (small B·D), take the tile with the most blocks, the smallest among equals.
#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <string>

#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

struct FamilyRule {
  Family family;
  double min_blocks_per_sm_short_k;  // step 3, for I < long_k
  double min_blocks_per_sm_long_k;   // step 3, for I >= long_k
  int64_t long_k;
  int max_block_n;                   // step 2
};

// Why these numbers (H200, bf16/fp16/fp32, I = 784..4096): with I = 784 the mma.sync kernel needs
// about two resident blocks per SM (a 128x64 tile in one wave of 128 blocks lost to 64x64 in 256),
// with I >= 2048 one wave of large tiles wins; the SIMT kernel is compute-bound and one wave
// suffices. 128x128 never beat 128x64, so it stays out of the default; --tiles reaches it.
constexpr FamilyRule kRules[] = {
    {Family::mma_sm80, 1.5, 0.9, 2048, 64},
    {Family::simt, 0.9, 0.9, 2048, 64},
};

bool wants_tensor_cores(const Problem& p, const DeviceTraits& dev) {
  if (dev.cc_major < 8) return false;
  // fp32 takes the tensor cores for tf32 and for 3xtf32 (three tf32 mma per product).
  return p.dtype != DType::f32 || p.math == Math::tf32 || p.math == Math::tf32x3;
}

int64_t blocks(const Problem& p, const TileConfig& t) {
  return ((p.batch + t.block_m - 1) / t.block_m) * ((p.hidden + t.block_n - 1) / t.block_n);
}

// What the sm90 kernels need of the problem itself (the pointers are checked at launch): TMA rows
// of whole 16-byte units (I and the X row stride multiples of 8 two-byte or 4 fp32 elements; with
// the packed layout D too, as FwdParams.vec_load asks), tensor coordinates that fit int32, and for
// fp32 the tf32 or 3xtf32 math and the linear layout.
// Step 0's choice between the sm90 tiles: 128x128 (twice the reuse of each X tile, a longer
// epilogue) beat 128x64 by 1-5% at the LLaMA shapes (I >= 4096, 20 and more tiles per SM), and lost
// by 4-28% at I = 784 however many tiles there were, and at I = 4096 with 2 tiles per SM (H200).
constexpr int64_t kSm90WideMinK = 4096;
constexpr double kSm90WideTilesPerSm = 8;
constexpr double kSm90Tf32WideTilesPerSm = 0.24;

// The backward's step 0, from the block sweep (H200, bf16, save, B = 256..8192, I = 784 and 4096,
// D = 2048 and 4096, `--dx-tiles all` / `--dw-tiles all`; DESIGN.md): the sm90 GEMMs beat the best
// sm80 tile in all 40 (GEMM, shape) cases, by 1.7-6.3× for dX and 2.1-4.9× for dW, even with 14
// tiles on 132 SMs. Below two 128-row tiles of M (dX of B < 256) or 4 K steps (dW of B < 256) they
// were not measured and the sm80 kernels (split-K for dX) keep those shapes. 128x256 is taken once
// it fills a wave: with fewer tiles 128x128 was up to 1.7× faster, with more the wide tile 0-10%.
constexpr int64_t kSm90BwdMinM = 256;
constexpr int64_t kSm90BwdMinK = 256;

bool tma_addressable(const Problem& p) { return detail::sm90_forward_obstacle(p).empty(); }

}  // namespace

std::string detail::sm90_forward_obstacle(const Problem& p) {
  // Why int32: the kernels' tile coordinates (rows, columns and K) are 32-bit.
  if (p.batch > INT32_MAX || 2 * p.hidden > INT32_MAX || p.in_features > INT32_MAX || p.x_stride() > INT32_MAX)
    return "B, 2D, I and the X row stride must each be at most 2^31-1";
  if (p.dtype == DType::f32) {
    // wgmma's tf32 operands are K-major, which the packed layout's W is not.
    if (p.math != Math::tf32 && p.math != Math::tf32x3) return "fp32 needs tf32 or 3xtf32 math on wgmma";
    if (p.layout != Layout::linear) return "fp32 runs on wgmma with the linear layout only";
  }
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  if (p.in_features % vec != 0 || p.x_stride() % vec != 0) {
    return "TMA needs rows of whole 16-byte units: I (" + std::to_string(p.in_features) + ") and the X row stride (" +
           std::to_string(p.x_stride()) + ") must be multiples of " + std::to_string(vec) + " elements";
  }
  if (p.layout == Layout::packed && p.hidden % vec != 0) {
    return "TMA needs the packed weight's rows of whole 16-byte units: D (" + std::to_string(p.hidden) +
           ") must be a multiple of " + std::to_string(vec);
  }
  return {};
}

std::string detail::sm90_backward_obstacle(const Problem& p) {
  if (std::string why = sm90_forward_obstacle(p); !why.empty()) return why;
  if (p.hidden % 4 != 0) return "TMA needs dH's rows of whole 16-byte units: D (" + std::to_string(p.hidden) + ") must be a multiple of 4";
  return {};
}

std::vector<TileConfig> forward_tiles(const Problem& p, const DeviceTraits& dev) {
  const Math math = p.dtype == DType::f32 ? p.math : Math::exact;
  const int cc = dev.cc_major * 10 + dev.cc_minor;
  std::vector<TileConfig> out;
  for (const auto& k : detail::fwd_kernels()) {
    if (k.dtype != p.dtype || k.layout != p.layout || k.math != math || k.min_cc > cc ||
        cc > k.max_cc) {
      continue;
    }
    if (k.tile.family == Family::wgmma_sm90 && !tma_addressable(p)) continue;
    if (std::find(out.begin(), out.end(), k.tile) == out.end()) out.push_back(k.tile);
  }
  return out;
}

Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, TileConfig* out) {
  return detail::choose_forward_tile(p, dev, /*allow_sm90=*/true, out);
}

Status detail::choose_forward_tile(const Problem& p, const DeviceTraits& dev, bool allow_sm90,
                                   TileConfig* out) {
  if (out == nullptr) return Status{StatusCode::invalid_argument, "choose_forward_tile: out is null"};
  if (allow_sm90) {
    // Step 0. The persistent sm90 kernel runs one block per SM over 128-row tiles: it needs
    // enough whole tiles to keep the SMs busy (a batch under 128 rows fills a fraction of each).
    // Below that the sm80 tiles' many small blocks win. Measured on an H200 (bf16 block sweeps of
    // the mnist and seed configs, DESIGN.md): 128x64 is the better sm90 tile at every one of those
    // shapes; 128x128 is taken only for long reductions where each SM gets many of them (the LLaMA
    // shapes). With Z stored through TMA (results/h200/sm90/tma_store_sweep/) 128x64 beat the
    // best sm80 tile from 16 whole tiles (1.06-1.21×, I = 784-2048) and lost at 8 and fewer
    // (0.79-0.92×, I = 784); fp32's tf32 tiles were within 2% of sm80's or faster down to 2 tiles
    // (I = 4096, results/h200/tf32_sm90/small_batches.log).
    // 3xtf32 asks for a larger fill: its one sm90 tile (128x64) ran 1.4-2.2× slower than the
    // best sm80 tile with 2-32 whole tiles and 1.6-1.7× faster from 128 (H200, I = 4096,
    // B = 64-8192, D = 256-11008; results/h200/tf32x3_sm90/). At 86 (B = 64, D = 11008) it lost
    // 12% to the best sm80 tile but beat the one the sm80 rule below would take (128x64) 1.9×.
    const double fill = p.math == Math::tf32x3 ? 0.48 : 0.12;
    const double wanted = fill * std::max(dev.sm_count, 1);
    std::optional<TileConfig> chosen;
    for (const TileConfig& t : forward_tiles(p, dev)) {
      if (t.family != Family::wgmma_sm90 || t.cluster != 1) continue;
      const double full_tiles =
          static_cast<double>(blocks(p, t)) * static_cast<double>(std::min<int64_t>(p.batch, t.block_m)) /
          t.block_m;
      if (full_tiles < wanted) continue;
      // fp32 (tf32) takes the wide tile once it has about 0.24·SMs whole tiles of its own: there
      // the consumers also round every stage to tf32 in shared memory, and the wide tile reads
      // fewer bytes per product. H200, I = 4096: 128x128 beat 128x64 by 1.2-1.4x from 43 whole
      // tiles (B = 64, D = 11008) up; 128x64 won with 16 (B = 64 and 1024 at D = 4096 and 256).
      if (t.block_n > 64 &&
          (p.dtype == DType::f32
               ? full_tiles < kSm90Tf32WideTilesPerSm * std::max(dev.sm_count, 1)
               : p.in_features < kSm90WideMinK || full_tiles < kSm90WideTilesPerSm * std::max(dev.sm_count, 1))) {
        continue;
      }
      if (!chosen || t.block_n > chosen->block_n) chosen = t;
    }
    if (chosen) {
      *out = *chosen;
      return Status::success();
    }
  }
  const Family family = wants_tensor_cores(p, dev) ? Family::mma_sm80 : Family::simt;
  const FamilyRule& rule = family == Family::mma_sm80 ? kRules[0] : kRules[1];
  std::vector<TileConfig> eligible;
  for (const TileConfig& t : forward_tiles(p, dev)) {
    if (t.family == family && t.block_n <= rule.max_block_n) eligible.push_back(t);
  }
  if (eligible.empty()) {
    return Status{StatusCode::unsupported,
                  "no compiled " + std::string(to_string(family)) + " tile for " +
                      std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout)) +
                      " on sm_" + std::to_string(dev.cc_major * 10 + dev.cc_minor)};
  }
  // Largest tile first; among equal areas the taller tile, then the deeper K step (fewer
  // barriers per byte), then fewer warps, which is how equal-area tiles ranked in the sweep.
  std::stable_sort(eligible.begin(), eligible.end(), [](const TileConfig& a, const TileConfig& b) {
    const int area_a = a.block_m * a.block_n, area_b = b.block_m * b.block_n;
    if (area_a != area_b) return area_a > area_b;
    if (a.block_m != b.block_m) return a.block_m > b.block_m;
    if (a.block_k != b.block_k) return a.block_k > b.block_k;
    return a.warps < b.warps;
  });
  const double per_sm = p.in_features >= rule.long_k ? rule.min_blocks_per_sm_long_k
                                                     : rule.min_blocks_per_sm_short_k;
  const double wanted = per_sm * std::max(dev.sm_count, 1);
  for (const TileConfig& t : eligible) {
    if (static_cast<double>(blocks(p, t)) >= wanted) {
      *out = t;
      return Status::success();
    }
  }
  // Why the last of the equals: eligible runs from the largest tile down, and for a tiny batch
  // every tile gives the same block count, where the smallest wastes the fewest rows.
  const TileConfig* best = &eligible.front();
  for (const TileConfig& t : eligible) {
    if (blocks(p, t) >= blocks(p, *best)) best = &t;
  }
  *out = *best;
  return Status::success();
}

// ---- backward GEMMs -------------------------------------------------------------------------------
//
// The dX and dW GEMMs use the forward's machinery with their own rule:
//  0. On compute capability 9.0 with sm_90a code, fp16/bf16 and TMA-addressable rows (either
//     layout): the sm90 (wgmma) GEMM when M and K are at least 256 (the constants above). api.cpp
//     then materialises dH first, since TMA reads it from memory.
//  1. Otherwise tensor cores (sm80) for fp16/bf16 on sm_80+, SIMT otherwise; the largest tile (ties:
//     the wider, which recomputes a prologue gate in fewer columns of blocks) that gives `wanted`
//     blocks, else the one with the most. wanted = SMs, or 4 × SMs when the reduction is short
//     (fewer than 8 K tiles: dW of a small batch), where each block is mostly pipeline fill and
//     epilogue and only many resident blocks hide that latency. Small-batch dX that still leaves
//     SMs idle is split along K (api.cpp).
namespace {

// What the sm90 backward GEMMs need of the problem (the pointers are checked at the call): the
// forward's conditions for X and W12, and rows of dH (2D elements) of whole 16-byte units.
bool bwd_tma_addressable(const Problem& p) { return detail::sm90_backward_obstacle(p).empty(); }

std::vector<TileConfig> bwd_tiles(const Problem& p, const DeviceTraits& dev, bool dw) {
  const int cc = dev.cc_major * 10 + dev.cc_minor;
  std::vector<TileConfig> out;
  for (const auto& k : detail::bwd_kernels()) {
    if (k.dtype != p.dtype || k.kind != detail::bwd_kind(p, dw) || k.min_cc > cc || cc > k.max_cc) continue;
    if (k.tile.family == Family::wgmma_sm90 && !bwd_tma_addressable(p)) continue;
    if (std::find(out.begin(), out.end(), k.tile) == out.end()) out.push_back(k.tile);
  }
  return out;
}

}  // namespace

std::vector<TileConfig> backward_dx_tiles(const Problem& p, const DeviceTraits& dev) {
  return bwd_tiles(p, dev, false);
}
std::vector<TileConfig> backward_dw_tiles(const Problem& p, const DeviceTraits& dev) {
  return bwd_tiles(p, dev, true);
}

namespace detail {

bool sm90_backward_possible(const Problem& p, const DeviceTraits& dev) {
  for (const TileConfig& t : bwd_tiles(p, dev, false)) {
    if (t.family == Family::wgmma_sm90) return true;
  }
  for (const TileConfig& t : bwd_tiles(p, dev, true)) {
    if (t.family == Family::wgmma_sm90) return true;
  }
  return false;
}

Status choose_backward_tile(const Problem& p, const DeviceTraits& dev, bool dw, bool allow_sm90,
                            TileConfig* out) {
  const int64_t m = dw ? 2 * p.hidden : p.batch;
  const int64_t n = p.in_features;
  const int64_t k = dw ? p.batch : 2 * p.hidden;
  auto count = [&](const TileConfig& t) {
    return ((m + t.block_m - 1) / t.block_m) * ((n + t.block_n - 1) / t.block_n);
  };
  const int64_t sms = std::max(dev.sm_count, 1);
  if (allow_sm90 && m >= kSm90BwdMinM && k >= kSm90BwdMinK) {
    // Step 0: the persistent sm90 GEMM (one block per SM); the wider tile (twice the reuse of each
    // A tile) once it gives every SM a tile.
    std::optional<TileConfig> chosen;
    for (const TileConfig& t : bwd_tiles(p, dev, dw)) {
      if (t.family != Family::wgmma_sm90 || t.cluster != 1) continue;
      if (t.block_n > 128 && count(t) < sms) continue;
      if (!chosen || t.block_n > chosen->block_n) chosen = t;
    }
    if (chosen) {
      *out = *chosen;
      return Status::success();
    }
  }
  const Family family =
      dev.cc_major >= 8 && p.dtype != DType::f32 ? Family::mma_sm80 : Family::simt;
  constexpr int kMaxDefaultArea = 128 * 128;
  constexpr int kShortKTiles = 8;
  std::vector<TileConfig> eligible;
  for (const TileConfig& t : bwd_tiles(p, dev, dw)) {
    if (t.family == family && t.block_m * t.block_n <= kMaxDefaultArea) eligible.push_back(t);
  }
  if (eligible.empty()) {
    return Status{StatusCode::unsupported,
                  "no compiled " + std::string(to_string(family)) + " backward tile for " +
                      std::string(to_string(p.dtype)) + " on sm_" +
                      std::to_string(dev.cc_major * 10 + dev.cc_minor)};
  }
  std::stable_sort(eligible.begin(), eligible.end(), [](const TileConfig& a, const TileConfig& b) {
    if (a.block_m * a.block_n != b.block_m * b.block_n) return a.block_m * a.block_n > b.block_m * b.block_n;
    return a.block_n > b.block_n;
  });
  for (const TileConfig& t : eligible) {
    const bool short_k = k < static_cast<int64_t>(kShortKTiles) * t.block_k;
    const int64_t wanted = std::max(dev.sm_count, 1) * (short_k ? 4 : 1);
    if (count(t) >= wanted) {
      *out = t;
      return Status::success();
    }
  }
  const TileConfig* best = &eligible.front();
  for (const TileConfig& t : eligible) {
    if (count(t) >= count(*best)) best = &t;
  }
  *out = *best;
  return Status::success();
}

}  // namespace detail
}  // namespace swiglu
