// Tile choice for the fused forward: which compiled instance runs a given problem by default.
//
// The rule, per kernel family (the constants in kRules come from the block sweep
// `swiglubench forward --tiles all` on an H200; DESIGN.md has the table):
//  1. Family: tensor cores (sm80, mma.sync) whenever the device and the math allow it; the SIMT
//     kernel for fp32 exact and for sm_70/75.
//  2. Eligible tiles: block_n <= max_block_n, and tiles with block_m < 32 only while
//     B <= small_m_max_batch (a short tile re-reads all of W for every block_m rows of X).
//  3. Walk the eligible tiles from the largest (block_m·block_n) down and take the first that
//     launches at least min_blocks_per_sm × SMs blocks: large tiles re-use each loaded element
//     most, but only pay off once every SM has enough of them to hide memory latency.
//  4. If none does (small B·D), take the eligible tile with the most blocks.
#include <algorithm>
#include <cmath>

#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

struct FamilyRule {
  Family family;
  double min_blocks_per_sm;   // step 3
  int64_t small_m_max_batch;  // step 2: tiles with block_m < 32 only up to this batch
  int max_block_n;            // step 2
};

// Why these numbers (H200, bf16/fp16/fp32, I = 784..4096): the mma.sync kernel needs about two
// resident blocks per SM to hide its pipeline latency (a 128x64 tile in one wave of 128 blocks lost
// to 64x64 in 256); the SIMT kernel is compute-bound and one wave suffices. 128x128 never beat
// 128x64, so it stays out of the default and is reachable through --tiles.
constexpr FamilyRule kRules[] = {
    {Family::mma_sm80, 1.5, 64, 64},
    {Family::simt, 0.9, 256, 64},
};

bool wants_tensor_cores(const Problem& p, const DeviceTraits& dev) {
  if (dev.cc_major < 8) return false;
  return p.dtype != DType::f32 || p.math == Math::tf32;
}

int64_t blocks(const Problem& p, const TileConfig& t) {
  return ((p.batch + t.block_m - 1) / t.block_m) * ((p.hidden + t.block_n - 1) / t.block_n);
}

}  // namespace

std::vector<TileConfig> forward_tiles(const Problem& p, const DeviceTraits& dev) {
  const Math math = p.dtype == DType::f32 ? p.math : Math::exact;
  const int cc = dev.cc_major * 10 + dev.cc_minor;
  std::vector<TileConfig> out;
  for (const auto& k : detail::fwd_kernels()) {
    if (k.dtype != p.dtype || k.layout != p.layout || k.math != math || k.min_cc > cc) continue;
    if (std::find(out.begin(), out.end(), k.tile) == out.end()) out.push_back(k.tile);
  }
  return out;
}

Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, TileConfig* out) {
  if (out == nullptr) return Status{StatusCode::invalid_argument, "choose_forward_tile: out is null"};
  const Family family = wants_tensor_cores(p, dev) ? Family::mma_sm80 : Family::simt;
  const FamilyRule& rule = family == Family::mma_sm80 ? kRules[0] : kRules[1];
  std::vector<TileConfig> eligible;
  for (const TileConfig& t : forward_tiles(p, dev)) {
    if (t.family != family || t.block_n > rule.max_block_n) continue;
    if (t.block_m < 32 && p.batch > rule.small_m_max_batch) continue;
    eligible.push_back(t);
  }
  if (eligible.empty()) {
    return Status{StatusCode::unsupported,
                  "no compiled " + std::string(to_string(family)) + " tile for " +
                      std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout)) +
                      " on sm_" + std::to_string(dev.cc_major * 10 + dev.cc_minor)};
  }
  std::stable_sort(eligible.begin(), eligible.end(), [](const TileConfig& a, const TileConfig& b) {
    const int area_a = a.block_m * a.block_n, area_b = b.block_m * b.block_n;
    return area_a != area_b ? area_a > area_b : a.block_m > b.block_m;
  });
  const double wanted = rule.min_blocks_per_sm * std::max(dev.sm_count, 1);
  for (const TileConfig& t : eligible) {
    if (static_cast<double>(blocks(p, t)) >= wanted) {
      *out = t;
      return Status::success();
    }
  }
  *out = *std::max_element(eligible.begin(), eligible.end(), [&](const TileConfig& a, const TileConfig& b) {
    return blocks(p, a) < blocks(p, b);
  });
  return Status::success();
}

}  // namespace swiglu
