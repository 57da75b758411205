// Tile choice for the fused forward: which compiled instance runs a given problem by default.
//
// The rule is a small cost model, not a lookup table, so it covers shapes nobody measured:
//  1. Family: tensor cores (sm80, mma.sync) whenever the device and the math allow it; the SIMT
//     kernel for fp32 exact and for sm_70/75.
//  2. Within the family, each tile gets an estimated time
//       waves(tile) × work_per_block(tile) / efficiency(tile)
//     where waves = ceil(blocks / (SMs × blocks_per_SM)). Bigger tiles re-use each loaded element
//     more (efficiency grows with the tile's arithmetic intensity bm·bn/(bm+bn) until it saturates),
//     but on small problems they leave SMs idle, which the wave count captures.
//  The block sweep (`swiglubench forward --tiles all`) measures every instance; DESIGN.md records
//  how the rule's picks compare with the measured best.
#include <algorithm>
#include <cmath>
#include <limits>

#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

bool wants_tensor_cores(const Problem& p, const DeviceTraits& dev) {
  if (dev.cc_major < 8) return false;
  return p.dtype != DType::f32 || p.math == Math::tf32;
}

// Rough resident blocks per SM from the shared-memory and thread budgets of an sm_80+ SM.
double blocks_per_sm(const TileConfig& t, DType dtype) {
  const double elem = static_cast<double>(dtype_size(dtype));
  const double smem = t.stages * (t.block_m + 2.0 * t.block_n) * t.block_k * elem * 1.125;
  const double by_smem = std::floor(160.0 * 1024.0 / std::max(smem, 1.0));
  const double by_threads = std::floor(2048.0 / (t.warps * 32.0));
  return std::clamp(std::min(by_smem, by_threads), 1.0, 4.0);
}

double estimated_cost(const Problem& p, const DeviceTraits& dev, const TileConfig& t) {
  const double blocks = std::ceil(static_cast<double>(p.batch) / t.block_m) *
                        std::ceil(static_cast<double>(p.hidden) / t.block_n);
  const double per_sm = blocks_per_sm(t, p.dtype);
  const double waves = std::ceil(blocks / (std::max(dev.sm_count, 1) * per_sm));
  const double intensity = (t.block_m * t.block_n) / static_cast<double>(t.block_m + t.block_n);
  // Why 48: a 128x64 tile (intensity 42.7) is close to saturating an SM's tensor cores with
  // mma.sync; larger tiles gain little more.
  const double efficiency = std::min(1.0, intensity / 48.0);
  return waves * per_sm * (static_cast<double>(t.block_m) * t.block_n) / efficiency;
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
  const std::vector<TileConfig> tiles = forward_tiles(p, dev);
  const Family family = wants_tensor_cores(p, dev) ? Family::mma_sm80 : Family::simt;
  const TileConfig* best = nullptr;
  double best_cost = std::numeric_limits<double>::infinity();
  for (const auto& t : tiles) {
    if (t.family != family) continue;
    const double cost = estimated_cost(p, dev, t);
    if (cost < best_cost) {
      best_cost = cost;
      best = &t;
    }
  }
  if (best == nullptr) {
    return Status{StatusCode::unsupported,
                  "no compiled " + std::string(to_string(family)) + " tile for " +
                      std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout)) +
                      " on sm_" + std::to_string(dev.cc_major * 10 + dev.cc_minor)};
  }
  *out = *best;
  return Status::success();
}

}  // namespace swiglu
