// The tile heuristic: which eligible tile runs a problem by default. Each constant has its one line
// of why; the measurements are in docs/heuristics.md.
//
// Forward:  0. gemv (linear layout, exact math) while the forward is a stream of W: B <= 2, or
//              B <= 16 with at most 2^24 multiply-adds, or exact fp32 with B <= 16; the fewest
//              rows a block that keep the blocks at most 4 a SM, else the most rows up to B. At
//              B = 3-4 of a long reduction (fp16/bf16, I >= 4096) the 2-row gemv tile.
//           1. sm90, when eligible: fp16/bf16 with B <= 128 and I >= 4096, the widest tile that
//              gives half the SMs a tile; else (fp16/bf16: B > 16) the widest sm90 tile whose
//              whole 128-row tiles fill enough SMs.
//           2. Otherwise tensor cores (sm80) when the device and the math allow, else SIMT; among
//              that family's tiles (block_n <= max_block_n; fp16/bf16: the shortest when B fits)
//              the largest that launches at least min_blocks_per_sm × SMs blocks, else the one
//              with the most blocks.
// Backward: 0. gemv (fp16/bf16 on sm_80+; dX: linear layout only) up to 8 rows; dX: the fewest
//              rows a block that hold B, else the most.
//           1. sm90 when 2D is at least 256 (dW) or K = 2D is (dX); 128x256 once it gives every
//              SM a tile, in clusters of two at 0.95-2 waves of a K of 2048 and up (linear
//              layout), then as 128x200 where that makes as many columns of tiles. Its dX
//              splits K while its tiles fill at most half the SMs and a split saves a unit at
//              least 40 K steps (plan.cpp).
//           2. Otherwise sm80 (fp16/bf16 on sm_80+) or SIMT: the largest tile that fills the SMs
//              (4 blocks a SM for short reductions), else the one with the most blocks.
#include "swiglu/heuristics.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include "swiglu/validate.hpp"

namespace swiglu {
namespace {

struct FamilyRule {
  Family family;
  double min_blocks_per_sm_short_k;  // for I < long_k
  double min_blocks_per_sm_long_k;   // for I >= long_k
  int64_t long_k;
  int max_block_n;
};

// Why: at I = 784 the mma.sync kernel wants about two resident blocks a SM, from I = 2048 one wave
// of large tiles wins; SIMT is compute-bound (one wave); 128x128 never beat 128x64.
constexpr FamilyRule kRules[] = {
    {Family::mma_sm80, 1.5, 0.9, 2048, 64},
    {Family::simt, 0.9, 0.9, 2048, 64},
};

// Why: the sm90 forward beat sm80 from 16 whole tiles on 132 SMs; 3xTF32 only from about 64. Up to
// 16 rows of fp16/bf16 the 16-row sm80 tiles read W once with no empty rows, and sm90's 128-row
// tiles lost. (16: the shortest sm80 fp16/bf16 tile, which step 2 keeps to up to that many rows.)
constexpr int64_t kSm90MinRows = 17;
constexpr double kSm90Fill = 0.12;
constexpr double kSm90Tf32x3Fill = 0.48;
// Why: 128x128 beat 128x64 only for long reductions with many tiles a SM (the LLaMA shapes)...
constexpr int64_t kSm90WideMinK = 4096;
constexpr double kSm90WideTilesPerSm = 8;
// ...and for tf32 from about 0.24 × SMs whole tiles, where it reads fewer bytes a product.
constexpr double kSm90Tf32WideTilesPerSm = 0.24;
// Why: from 5 to 128 rows of the LLaMA layers (fp16/bf16, I >= kSm90WideMinK, one row of tiles)
// the widest tile streamed W fastest on an H100, 1.00-1.16x cublas2, where sm80 16x64 ran
// 0.89-1.07x and 128x64 0.91-1.04x; it did so with tiles for 0.65 of the SMs (D = 11008). At 256
// rows 128x64 won again (1.06-1.10x against 0.89-1.04x), and at I = 784 128x128 lost throughout.
constexpr int64_t kSm90StreamMaxRows = 128;
constexpr double kSm90StreamFill = 0.5;

// Why: at 1-2 rows gemv streamed W at 3.3-4.1 TB/s on an H200, 1.07-1.31x cuBLAS, at every
// measured size; from 4 rows of a LLaMA layer its B FMAs per weight bind and the sm80 tile won...
constexpr int64_t kGemvAlwaysRows = 2;
// ...except its 2-row tile, which at 3-4 rows of the LLaMA layers (I >= kSm90WideMinK) ran
// 1.00-1.24x cublas2 on an H100 where sm80 16x64 ran 0.91-1.07x and sm90 128x128 at most 1.12x.
constexpr int64_t kGemvStreamRows = 4;
constexpr int kGemvStreamTileRows = 2;
// ...while small layers stay latency-bound: gemv won up to B·2D·I = 2^23.6 multiply-adds and lost
// from 2^24.6 (I = 784, D 512-4096, B 4-32).
constexpr int64_t kGemvMaxMacs = int64_t{1} << 24;
// Why: exact fp32 takes gemv up to 16 rows whatever the size: there its tiles ran 0.92-6.4x cuBLAS
// against the SIMT tile's 0.34-1.12x, and their lanes' short sums erred 3e-7 against SIMT's 1.6e-6
// (cuBLAS 2-6e-7). Nothing larger was measured.
constexpr int64_t kGemvMaxRows = 16;
// Why: of the gemv tiles the fewest rows won while they made at most 4 blocks a SM (more blocks
// re-read W from L2 more often), else the most rows up to B.
constexpr int64_t kGemvBlocksPerSm = 4;

// Why: on an H100 at I = 784 (D 512-4096) and the LLaMA layers the gemv dW tied sm90 128x128 at 8
// rows (0.98-1.02x of it) and lost from 16 (1.01-1.15x cublas2 against sm90's 1.02-1.41x) to 128
// (0.31-0.81x against 1.00-1.31x); sm90 needs no more than 2D >= kSm90BwdMinM rows of dW.
constexpr int64_t kGemvDwMaxRows = 8;
// Why: on an H100 the gemv dX won at 1-8 rows while its K (2D) was at most 2048: 0.93-1.10x
// cublas2's dX at I = 784, D = 512-1024, where split-K sm90 128x128 ran 0.88-0.98x. From 2D = 4096
// split-K sm90 won from one row (0.99-1.09x against 0.82-1.08x at I = 784, D = 2048-4096; at 4-8
// rows of the LLaMA layers 0.93-0.98x against 0.89-0.96x), and at one row of those it tied gemv
// (0.93-0.97x against 0.93-0.98x).
constexpr int64_t kGemvDxMaxRows = 8;
constexpr int64_t kGemvDxMaxK = 2048;

// Why: the sm90 GEMMs won every measured shape from two 128-row tiles of M and 4 K steps up; at
// fewer rows of dX they split K (plan.cpp) and at fewer of dW (its K) they stream dW out.
constexpr int64_t kSm90BwdMinM = 256;
constexpr int64_t kSm90BwdMinK = 256;
// Why: 128x256 in clusters of two (each block loads half the shared operand's box, multicast to
// both) beat the single-block choice where a wave or two of 128x256 tiles ran a K of 2048 and up
// (H100, bf16, I = 784: dX at B = 4096-8192, D = 1024-4096 and dW at D = 2048-4096,
// B = 4096-8192, 1-9 % a GEMM; fp16 likewise; dX at B = 512-2048 of the LLaMA layers, 1-2 % ahead
// of 128x128 and within 1 % of single-block 128x256). With fewer tiles it idles SMs (dW at D = 512:
// 0.70x cublas2 against 0.97x); at a K of 1024 it was mixed; above two waves it is unmeasured, and
// the single-block tile stays (docs/heuristics.md).
constexpr double kSm90BwdClusterMinWaves = 0.95;
constexpr double kSm90BwdClusterMaxWaves = 2.0;
constexpr int64_t kSm90BwdClusterMinK = 2048;
// Why: at I = 784 four 200-wide columns of tiles hold the 784 columns that four 256-wide ones pad
// to 1024. In the clustered 128x256's place it took 2-12 % less time for dX and dW wherever that
// tile ran (H100, bf16 and fp16, B = 2048-16384, D = 1024-4096); a single-block 128x200 tied or
// lost to the single-block 128x256 at every measured shape, so none is compiled (docs/heuristics.md).
constexpr int kSm90BwdNarrowN = 200;
// Why: a larger sm80/SIMT backward tile would be for a forced choice only (none is compiled).
constexpr int kBwdMaxDefaultArea = 128 * 128;
// Why: below 8 K tiles a block is mostly fill and epilogue, and only many blocks hide that.
constexpr int kBwdShortKTiles = 8;

bool wants_tensor_cores(const Problem& p, const DeviceTraits& dev) {
  if (dev.cc_major < 8) return false;
  return p.dtype != DType::f32 || p.math == Math::tf32 || p.math == Math::tf32x3;
}

int64_t blocks(const Problem& p, const TileConfig& t) {
  return ((p.batch + t.block_m - 1) / t.block_m) * ((p.hidden + t.block_n - 1) / t.block_n);
}

bool shorter(const TileConfig& a, const TileConfig& b) { return a.block_m < b.block_m; }

// The gemv tiles among `tiles`, fewest rows first.
std::vector<TileConfig> gemv_tiles(const std::vector<TileConfig>& tiles) {
  std::vector<TileConfig> gemv;
  std::copy_if(tiles.begin(), tiles.end(), std::back_inserter(gemv),
               [](const TileConfig& t) { return t.family == Family::gemv; });
  std::stable_sort(gemv.begin(), gemv.end(), shorter);
  return gemv;
}

// The sm90 tile for p among `tiles` (p's eligible ones), if one fills the device (forward step 1).
std::optional<TileConfig> sm90_forward_tile(const Problem& p, const DeviceTraits& dev,
                                            const std::vector<TileConfig>& tiles) {
  const double sms = std::max(dev.sm_count, 1);
  const double wanted = (p.math == Math::tf32x3 ? kSm90Tf32x3Fill : kSm90Fill) * sms;
  std::optional<TileConfig> chosen;
  for (const TileConfig& t : tiles) {
    if (t.family != Family::wgmma_sm90 || t.cluster != 1) continue;
    // Why whole tiles: the persistent kernel runs one block a SM over 128-row tiles, and a batch
    // under 128 rows fills a fraction of each.
    const double full_tiles =
        static_cast<double>(blocks(p, t)) * static_cast<double>(std::min<int64_t>(p.batch, t.block_m)) / t.block_m;
    if (full_tiles < wanted) continue;
    if (t.block_n > 64 && (p.dtype == DType::f32 ? full_tiles < kSm90Tf32WideTilesPerSm * sms
                                                 : p.in_features < kSm90WideMinK || full_tiles < kSm90WideTilesPerSm * sms)) {
      continue;
    }
    if (!chosen || t.block_n > chosen->block_n) chosen = t;
  }
  return chosen;
}

// The sm90 tile for a forward of few rows at a long reduction (a stream of W), if one gives enough
// SMs a tile (forward step 1, before the fill rule).
std::optional<TileConfig> sm90_stream_tile(const Problem& p, const DeviceTraits& dev,
                                           const std::vector<TileConfig>& tiles) {
  if (p.dtype == DType::f32 || p.batch > kSm90StreamMaxRows || p.in_features < kSm90WideMinK) return std::nullopt;
  std::optional<TileConfig> chosen;
  for (const TileConfig& t : tiles) {
    if (t.family != Family::wgmma_sm90 || t.cluster != 1) continue;
    if (static_cast<double>(blocks(p, t)) < kSm90StreamFill * std::max(dev.sm_count, 1)) continue;
    if (!chosen || t.block_n > chosen->block_n) chosen = t;
  }
  return chosen;
}

// The gemv tile for p among `tiles` (p's eligible ones), when the forward of p is a stream of W
// (forward step 0).
std::optional<TileConfig> gemv_forward_tile(const Problem& p, const DeviceTraits& dev,
                                            const std::vector<TileConfig>& tiles) {
  if (p.batch > kGemvMaxRows) return std::nullopt;
  const bool exact_fp32 = p.dtype == DType::f32 && p.math == Math::exact;
  const int64_t max_2d = kGemvMaxMacs / std::max<int64_t>(p.batch, 1) / std::max<int64_t>(p.in_features, 1);
  const std::vector<TileConfig> gemv = gemv_tiles(tiles);
  if (p.batch > kGemvAlwaysRows && !exact_fp32 && 2 * p.hidden > max_2d) {
    if (p.dtype == DType::f32 || p.batch > kGemvStreamRows || p.in_features < kSm90WideMinK) return std::nullopt;
    for (const TileConfig& t : gemv) {
      if (t.block_m == kGemvStreamTileRows) return t;
    }
    return std::nullopt;
  }
  const int64_t max_blocks = kGemvBlocksPerSm * std::max(dev.sm_count, 1);
  std::optional<TileConfig> most_rows;  // the most rows up to B, else the fewest
  for (const TileConfig& t : gemv) {
    if (blocks(p, t) <= max_blocks) return t;
    if (t.block_m <= p.batch || !most_rows) most_rows = t;
  }
  return most_rows;
}

// The gemv tile of a backward GEMM of p among `tiles` (its eligible ones), for a few rows (backward
// step 0).
// `sm90`: step 1's sm90 tile can take this GEMM (dX: it splits K at few rows).
std::optional<TileConfig> gemv_backward_tile(const Problem& p, bool dw, bool sm90,
                                             const std::vector<TileConfig>& tiles) {
  if (p.batch > (dw ? kGemvDwMaxRows : kGemvDxMaxRows)) return std::nullopt;
  if (!dw && sm90 && 2 * p.hidden > kGemvDxMaxK) return std::nullopt;
  const std::vector<TileConfig> gemv = gemv_tiles(tiles);
  if (gemv.empty()) return std::nullopt;
  if (dw) return gemv.front();
  for (const TileConfig& t : gemv) {
    if (t.block_m >= p.batch) return t;
  }
  return gemv.back();
}

}  // namespace

Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, TileConfig* out) {
  return detail::choose_forward_tile(p, dev, /*allow_sm90=*/true, out);
}

Status detail::choose_forward_tile(const Problem& p, const DeviceTraits& dev, bool allow_sm90,
                                   TileConfig* out) {
  if (out == nullptr) return fail(StatusCode::invalid_argument, "choose_forward_tile: out is null");
  const std::vector<TileConfig> tiles = forward_tiles(p, dev);
  if (const std::optional<TileConfig> t = gemv_forward_tile(p, dev, tiles)) {
    *out = *t;
    return Status::success();
  }
  if (allow_sm90) {
    if (const std::optional<TileConfig> t = sm90_stream_tile(p, dev, tiles)) {
      *out = *t;
      return Status::success();
    }
  }
  if (allow_sm90 && (p.dtype == DType::f32 || p.batch >= kSm90MinRows)) {
    if (const std::optional<TileConfig> t = sm90_forward_tile(p, dev, tiles)) {
      *out = *t;
      return Status::success();
    }
  }
  const Family family = wants_tensor_cores(p, dev) ? Family::mma_sm80 : Family::simt;
  const FamilyRule& rule = family == Family::mma_sm80 ? kRules[0] : kRules[1];
  std::vector<TileConfig> eligible;
  for (const TileConfig& t : tiles) {
    if (t.family == family && t.block_n <= rule.max_block_n) eligible.push_back(t);
  }
  if (eligible.empty()) {
    return fail(StatusCode::unsupported,
                "no compiled " + std::string(to_string(family)) + " tile for " +
                    std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout)) +
                    " on sm_" + std::to_string(dev.cc_major * 10 + dev.cc_minor));
  }
  // Why only the shortest when B fits them (half types, where it was measured): a taller tile
  // computes empty rows, and at B = 4 of the LLaMA layers 128x64 ran 0.6-0.7x cuBLAS where 16x64
  // ran 0.93-1.06x.
  const int shortest = std::min_element(eligible.begin(), eligible.end(), shorter)->block_m;
  if (p.dtype != DType::f32 && p.batch <= shortest) {
    std::erase_if(eligible, [&](const TileConfig& t) { return t.block_m != shortest; });
  }
  // Largest first; among equal areas the taller, then the deeper K step, then fewer warps (how
  // equal-area tiles ranked in the sweep).
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
  // Why the last of the equals: for a tiny batch every tile gives the same block count, and the
  // smallest wastes the fewest rows.
  const TileConfig* best = &eligible.front();
  for (const TileConfig& t : eligible) {
    if (blocks(p, t) >= blocks(p, *best)) best = &t;
  }
  *out = *best;
  return Status::success();
}

Status detail::choose_backward_tile(const Problem& p, const DeviceTraits& dev, Gemm gemm, bool allow_sm90,
                                    TileConfig* out) {
  const bool dw = gemm == Gemm::dw;
  const int64_t m = dw ? 2 * p.hidden : p.batch;
  const int64_t n = p.in_features;
  const int64_t k = dw ? p.batch : 2 * p.hidden;
  auto count = [&](const TileConfig& t) {
    return ((m + t.block_m - 1) / t.block_m) * ((n + t.block_n - 1) / t.block_n);
  };
  const int64_t sms = std::max(dev.sm_count, 1);
  const std::vector<TileConfig> tiles = eligible_tiles(p, gemm, dev);
  // Step 1's condition (past gemv's rows: dW's K and dX's M are the batch), which step 0's dX rule
  // also asks.
  const bool sm90 = allow_sm90 && (dw ? m >= kSm90BwdMinM : k >= kSm90BwdMinK) &&
                    std::any_of(tiles.begin(), tiles.end(), [](const TileConfig& t) {
                      return t.family == Family::wgmma_sm90 && t.cluster == 1;
                    });
  if (const std::optional<TileConfig> t = gemv_backward_tile(p, dw, sm90, tiles)) {
    *out = *t;
    return Status::success();
  }
  if (sm90) {
    std::optional<TileConfig> chosen;
    for (const TileConfig& t : tiles) {
      if (t.family != Family::wgmma_sm90 || t.cluster != 1) continue;
      // Why: 128x256 (twice the reuse of each A tile) only once it gives every SM a tile, and not
      // for dW's short K of at most 128 rows, where 128x128 ran 1.00-1.16x its speed (H100).
      if (t.block_n > 128 && (count(t) < sms || k < kSm90BwdMinK)) continue;
      if (!chosen || t.block_n > chosen->block_n) chosen = t;
    }
    const auto clustered = std::find_if(tiles.begin(), tiles.end(), [](const TileConfig& t) {
      return t.family == Family::wgmma_sm90 && t.cluster == 2 && t.block_n == 256;
    });
    // Why the linear layout only: the packed layout's clustered GEMMs were not measured.
    if (clustered != tiles.end() && p.layout == Layout::linear && k >= kSm90BwdClusterMinK) {
      const double waves = static_cast<double>(count(*clustered)) / static_cast<double>(sms);
      if (waves >= kSm90BwdClusterMinWaves && waves <= kSm90BwdClusterMaxWaves) {
        chosen = *clustered;
        // The clustered 128x200 in its place where it makes as many columns of tiles: the same
        // grid, less padding a tile.
        const auto narrow = std::find_if(tiles.begin(), tiles.end(), [](const TileConfig& t) {
          return t.family == Family::wgmma_sm90 && t.cluster == 2 && t.block_n == kSm90BwdNarrowN;
        });
        const int64_t wide_columns = (n + clustered->block_n - 1) / clustered->block_n;
        if (narrow != tiles.end() && (n + kSm90BwdNarrowN - 1) / kSm90BwdNarrowN == wide_columns) chosen = *narrow;
      }
    }
    if (chosen) {
      *out = *chosen;
      return Status::success();
    }
  }
  const Family family = dev.cc_major >= 8 && p.dtype != DType::f32 ? Family::mma_sm80 : Family::simt;
  std::vector<TileConfig> eligible;
  for (const TileConfig& t : tiles) {
    if (t.family == family && t.block_m * t.block_n <= kBwdMaxDefaultArea) eligible.push_back(t);
  }
  if (eligible.empty()) {
    return fail(StatusCode::unsupported,
                "no compiled " + std::string(to_string(family)) + " backward tile for " +
                    std::string(to_string(p.dtype)) + " on sm_" + std::to_string(dev.cc_major * 10 + dev.cc_minor));
  }
  // Largest first; among equal areas the wider, which recomputes a prologue gate in fewer columns
  // of blocks.
  std::stable_sort(eligible.begin(), eligible.end(), [](const TileConfig& a, const TileConfig& b) {
    if (a.block_m * a.block_n != b.block_m * b.block_n) return a.block_m * a.block_n > b.block_m * b.block_n;
    return a.block_n > b.block_n;
  });
  for (const TileConfig& t : eligible) {
    const bool short_k = k < static_cast<int64_t>(kBwdShortKTiles) * t.block_k;
    const int64_t wanted = sms * (short_k ? 4 : 1);
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

}  // namespace swiglu
