// Planning forward() and backward(): tiles, kernels, parameters, the backward's workspace, where dH
// comes from and the dX GEMM's split-K; backward_workspace_bytes().
#include "swiglu/plan.hpp"

#include <algorithm>
#include <climits>
#include <limits>
#include <string>

#include "swiglu/heuristics.hpp"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Split-K of the dX GEMM. Its K = 2D is long while B×I may give far fewer blocks than SMs (small
// batches); slices of K then run side by side and meet in fp32 sums (kernels/bwd_sm80.cuh).
// Why: 4 blocks a SM keep enough loads in flight at these sizes; a slice keeps at least 2 K tiles
// so its pipeline overlaps something; 32 slices bound the atomic traffic per output.
constexpr int kSplitBlocksPerSm = 4;
constexpr int kMaxSplits = 32;
constexpr int kMinTilesPerSlice = 2;
// The sm80 and SIMT dX tiles are at least 64x64 (whether any of them splits sizes the sums); a
// split dX tile of any family is at least 16 rows by 64 columns (the counters).
constexpr int kSmallestGridDxTile = 64;
constexpr int kFewestDxTileRows = 16;
constexpr int kFewestDxTileColumns = 64;
// The sm90 dX (a persistent grid of one block a SM) splits K when its tiles fill at most half the
// SMs, into as many slices as keep every unit on an SM of its own; it counts each tile's two
// 64-row halves apart, and its tiles are at least 128x128.
constexpr int kSm90DxTile = 128;
constexpr int kSm90CountersPerTile = 2;
// Why: a split sm90 dX costs a fixed 10-13 µs beyond its slices' share of the K loop (H100), about
// 40 K steps of its 128x128 tile; a split that saves a unit fewer is not made (docs/heuristics.md).
constexpr int64_t kSm90SplitMinSavedSteps = 40;

// The slices a dX grid of `tiles` blocks wants on `dev` (1: none), before the bound from K.
int64_t wanted_splits(int64_t tiles, const DeviceTraits& dev) {
  const int64_t wanted = static_cast<int64_t>(kSplitBlocksPerSm) * std::max(dev.sm_count, 1);
  if (tiles >= wanted) return 1;
  return std::min<int64_t>((wanted + tiles - 1) / tiles, kMaxSplits);
}

// The most slices any dX tile may use for `p` on `dev` (whether the workspace holds the sums). A
// tile of fewer rows (gemv) makes more tiles, so it never wants more slices.
int max_dx_splits(const Problem& p, const DeviceTraits& dev) {
  const int64_t tiles = ((p.batch + kSmallestGridDxTile - 1) / kSmallestGridDxTile) *
                        ((p.in_features + kSmallestGridDxTile - 1) / kSmallestGridDxTile);
  return static_cast<int>(wanted_splits(tiles, dev));
}

// The placement a call really uses: save reads H in the prologue (DhStorage::tensors: a gate pass
// stores dH first, whatever this says); recompute takes the epilogue unless asked for the prologue
// (which DhStorage::tensors refuses).
GatePlacement effective_placement(const BackwardOptions& o) {
  if (o.policy == Policy::save) return GatePlacement::prologue;
  return o.placement == GatePlacement::prologue ? GatePlacement::prologue : GatePlacement::epilogue;
}

// The traits of the current device, or those of a 132-SM sm_90 part when there is none (a
// workspace query must answer without a GPU).
DeviceTraits traits_or_default() {
  DeviceTraits dev;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || !device_traits(device, &dev).ok()) {
    cudaGetLastError();  // clear the error the failed query left
    dev = DeviceTraits{9, 0, 132};
  }
  return dev;
}

FwdParams forward_params(const Problem& p, const void* x, const void* w, const void* bias, void* z, void* saved,
                         const void* dz, void* dh) {
  FwdParams params;
  params.x = x;
  params.w = w;
  params.bias = p.bias ? bias : nullptr;
  params.z = z;
  params.saved = saved;
  params.dz = dz;
  params.dh = dh;
  params.B = p.batch;
  params.I = p.in_features;
  params.D = p.hidden;
  params.ldx = p.x_stride();
  params.has_bias = p.bias ? 1 : 0;
  // Why apart: loads and stores are judged separately, so an odd D with the linear layout keeps
  // the 16-byte loads (a row start is aligned when the base is and every row is whole vectors).
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  params.vec_load = aligned(x, 16) && aligned(w, 16) && p.in_features % vec == 0 && params.ldx % vec == 0 &&
                    (p.layout == Layout::linear || p.hidden % vec == 0);
  bool outputs_aligned = true;
  for (const void* q : {static_cast<const void*>(z), static_cast<const void*>(saved), dz, static_cast<const void*>(dh)}) {
    if (q != nullptr && !aligned(q, 16)) outputs_aligned = false;
  }
  params.vec_store = outputs_aligned && p.hidden % vec == 0;
  return params;
}

// The tile of a backward GEMM: the caller's or the heuristic's. An sm90 GEMM reads its operands
// through TMA (dH from the workspace, and W12 for dX or X for dW); when one of them is not 16-byte
// aligned the heuristic's choice among the other families runs instead.
Status choose_gemm_tile(const Problem& p, const DeviceTraits& dev, Gemm gemm, const std::optional<TileConfig>& forced,
                        const void* b_operand, const void* dh_store, TileConfig* tile) {
  if (forced) {
    *tile = *forced;
  } else if (Status s = choose_backward_tile(p, dev, gemm, /*allow_sm90=*/true, tile); !s.ok()) {
    return s;
  }
  if (tile->family == Family::wgmma_sm90 && sm90_backward_possible(p, dev) &&
      !(dh_store != nullptr && aligned(dh_store, 16) && aligned(b_operand, 16))) {
    return choose_backward_tile(p, dev, gemm, /*allow_sm90=*/false, tile);
  }
  return Status::success();
}

// The kernel of a backward GEMM and, for dX on the grid families, its split-K.
Status plan_gemm(const Problem& p, const DeviceTraits& dev, Gemm gemm, const TileConfig& tile, const BwdParams& params,
                 const WorkspaceLayout& ws, char* ws_base, GemmPlan* out) {
  GemmPlan g;
  g.tile = tile;
  g.params = params;
  if (Status s = find_kernel(p, gemm, tile, dev, &g.kernel); !s.ok()) return s;
  const bool sm90 = tile.family == Family::wgmma_sm90;
  const int64_t n_tiles = (params.N + tile.block_n - 1) / tile.block_n;
  const int64_t m_tiles = (params.M + tile.block_m - 1) / tile.block_m;
  // (The sm90 grid is persistent: one block a SM whatever the tile count; the gemv dW puts its
  // column tiles on the grid's long axis, and walks any number of row tiles.)
  const bool gemv_dw = gemm == Gemm::dw && tile.family == Family::gemv;
  const int64_t long_axis = gemv_dw ? n_tiles : m_tiles, short_axis = gemv_dw ? 1 : n_tiles;
  if (!sm90 && (short_axis > 65535 || long_axis > std::numeric_limits<int32_t>::max())) {
    return fail(StatusCode::unsupported, "grid too large for backward tile " + tile.name());
  }
  if (gemm == Gemm::dx && (!sm90 || tile.cluster == 1) && ws.partial_bytes > 0) {
    // Split-K when the tile leaves SMs idle (bounded as max_dx_splits bounded the workspace).
    const int64_t tiles = m_tiles * n_tiles;
    const int64_t k_tiles = (params.K + tile.block_k - 1) / tile.block_k;
    const int64_t wanted = sm90 ? std::min<int64_t>(std::max(dev.sm_count, 1) / tiles, kMaxSplits)
                                : wanted_splits(tiles, dev);
    int64_t splits = std::min(wanted, k_tiles / kMinTilesPerSlice);
    // (The sm90 split's fixed cost against the K steps it takes off each unit.)
    if (sm90 && splits > 1 && k_tiles - (k_tiles + splits - 1) / splits < kSm90SplitMinSavedSteps) splits = 1;
    if (splits > 1) {
      const int64_t per = (k_tiles + splits - 1) / splits;  // K tiles a slice
      g.params.splits = static_cast<int>((k_tiles + per - 1) / per);
      g.params.k_per_split = per * tile.block_k;
      g.params.partial = reinterpret_cast<float*>(ws_base + ws.partial_offset);
      g.params.counters = reinterpret_cast<int*>(ws_base + ws.counter_offset);
      // One memset clears the sums and the counters (adjacent regions).
      const int64_t counters = tiles * (sm90 ? kSm90CountersPerTile : 1);
      g.clear_bytes = ws.counter_offset + static_cast<size_t>(counters) * sizeof(int) - ws.partial_offset;
    }
  }
  *out = g;
  return Status::success();
}

}  // namespace

Status plan_forward(const Problem& p, const DeviceTraits& dev, const std::optional<TileConfig>& requested,
                    const void* x, const void* w, const void* bias, void* z, void* saved, const void* dz,
                    void* dh, ForwardPlan* out) {
  TileConfig tile;
  if (requested) {
    tile = *requested;
  } else if (Status s = swiglu::choose_forward_tile(p, dev, &tile); !s.ok()) {
    return s;
  }
  if (tile.family == Family::wgmma_sm90 && !(aligned(x, 16) && aligned(w, 16))) {
    if (Status s = choose_forward_tile(p, dev, /*allow_sm90=*/false, &tile); !s.ok()) return s;
  }
  const Kernel* kernel = nullptr;
  if (Status s = find_kernel(p, Gemm::forward, tile, dev, &kernel); !s.ok()) return s;
  const int64_t n_tiles = (p.hidden + tile.block_n - 1) / tile.block_n;
  const int64_t m_tiles = (p.batch + tile.block_m - 1) / tile.block_m;
  // (gemv numbers its blocks on one axis.)
  const bool too_large = tile.family == Family::gemv
                             ? m_tiles * n_tiles > std::numeric_limits<int32_t>::max()
                             : n_tiles > 65535 || m_tiles > std::numeric_limits<int32_t>::max();
  if (too_large) {
    return fail(StatusCode::unsupported, "grid too large for tile " + tile.name() + ": " +
                                             str(m_tiles) + "x" + str(n_tiles) + " blocks");
  }
  *out = ForwardPlan{kernel, tile, forward_params(p, x, w, bias, z, saved, dz, dh)};
  return Status::success();
}

WorkspaceLayout workspace_layout(const Problem& p, const BackwardOptions& o, const DeviceTraits& dev) {
  WorkspaceLayout l;
  if (p.batch <= 0 || p.hidden <= 0 || p.in_features <= 0) return l;
  const size_t h_elems_bytes =
      static_cast<size_t>(p.batch) * 2 * static_cast<size_t>(p.hidden) * dtype_size(p.dtype);
  const GatePlacement placement = effective_placement(o);
  size_t end = 0;
  auto region = [&](size_t bytes, size_t* offset, size_t* size) {
    if (bytes == 0 || l.overflow) return;
    size_t start = 0;
    if (__builtin_add_overflow(end, size_t{255}, &start) || __builtin_add_overflow(start / 256 * 256, bytes, &end)) {
      l.overflow = true;
      return;
    }
    *offset = start / 256 * 256;
    *size = bytes;
  };
  if (o.policy == Policy::recompute && placement == GatePlacement::prologue)
    region(h_elems_bytes, &l.h_offset, &l.h_bytes);
  if (o.dh_storage == DhStorage::workspace &&
      ((o.policy == Policy::recompute && placement == GatePlacement::epilogue) || (o.grads.dx && o.grads.dw) ||
       direct_dh_backward_possible(p, dev)))
    region(h_elems_bytes, &l.dh_offset, &l.dh_bytes);
  const int splits = o.grads.dx ? max_dx_splits(p, dev) : 1;
  if (splits > 1) {
    const size_t grid_tiles = static_cast<size_t>((p.batch + kFewestDxTileRows - 1) / kFewestDxTileRows) *
                              static_cast<size_t>((p.in_features + kFewestDxTileColumns - 1) / kFewestDxTileColumns);
    const size_t sm90_counters = static_cast<size_t>((p.batch + kSm90DxTile - 1) / kSm90DxTile) *
                                 static_cast<size_t>((p.in_features + kSm90DxTile - 1) / kSm90DxTile) *
                                 kSm90CountersPerTile;
    const size_t tiles = std::max(grid_tiles, sm90_counters);
    region(static_cast<size_t>(p.batch) * static_cast<size_t>(p.in_features) * sizeof(float),
           &l.partial_offset, &l.partial_bytes);
    region(tiles * sizeof(int), &l.counter_offset, &l.counter_bytes);
  }
  l.total = end;
  return l;
}

Chunking backward_chunking(const Problem& p, const BackwardOptions& o, const DeviceTraits& dev) {
  Chunking c;
  const auto layout = [&](int64_t rows) {
    Problem q = p;
    q.batch = rows;
    return workspace_layout(q, o, dev);
  };
  const WorkspaceLayout whole = layout(p.batch);
  c.overflow = whole.overflow;
  c.workspace = whole.total;
  if (o.max_workspace_bytes == 0 || whole.overflow || whole.total <= o.max_workspace_bytes) return c;
  // Chunks of q and q + 1 rows (q = B / n): both must fit. Why from the dH bound: no fewer chunks
  // can fit, so the search starts near its answer. (The split-K sums make small chunks' needs not
  // quite proportional to their rows, hence the search.)
  const size_t row_bytes = 2 * static_cast<size_t>(p.hidden) * dtype_size(p.dtype);
  const int64_t most = p.batch / kMinBackwardChunkRows;
  int64_t n = std::max<int64_t>(2, static_cast<int64_t>(static_cast<size_t>(p.batch) / std::max<size_t>(
                                                            o.max_workspace_bytes / row_bytes, 1)));
  for (; n <= most; ++n) {
    const int64_t q = p.batch / n;
    const WorkspaceLayout small = layout(q), large = layout(q + 1);
    if (small.overflow || large.overflow) continue;
    const size_t need = std::max(small.total, p.batch % n != 0 ? large.total : 0);
    if (need <= o.max_workspace_bytes) {
      c.chunks = n;
      c.workspace = need;
      return c;
    }
  }
  c.chunks = 0;
  c.workspace = layout(kMinBackwardChunkRows).total;
  return c;
}

Status plan_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o, void* workspace,
                     const DeviceTraits& dev, BackwardPlan* out) {
  BackwardPlan plan;
  const GatePlacement placement = effective_placement(o);
  const WorkspaceLayout ws = workspace_layout(p, o, dev);
  char* const ws_base = static_cast<char*>(workspace);
  // Where a stored dH goes: the caller's tensor (DhStorage::tensors) or the workspace's region.
  const bool dh_in_tensors = o.dh_storage == DhStorage::tensors;
  void* const dh_region = dh_in_tensors ? t.dh : ws.dh_bytes > 0 ? ws_base + ws.dh_offset : nullptr;

  TileConfig dx_tile, dw_tile;
  if (o.grads.dx) {
    if (Status s = choose_gemm_tile(p, dev, Gemm::dx, o.dx_tile, t.w, dh_region, &dx_tile); !s.ok()) return s;
  }
  if (o.grads.dw) {
    if (Status s = choose_gemm_tile(p, dev, Gemm::dw, o.dw_tile, t.x, dh_region, &dw_tile); !s.ok()) return s;
  }
  // The sm90, gemv and fp32 SIMT GEMMs read dH as stored (no gate prologue), and leave dbias out.
  const bool dx_direct = o.grads.dx && reads_stored_dh(dx_tile.family, p.dtype);
  const bool dw_direct = o.grads.dw && reads_stored_dh(dw_tile.family, p.dtype);

  // Where dH comes from. recompute/epilogue: the recompute's epilogue writes it; recompute/prologue:
  // the recompute writes H and the dX (or dW) GEMM turns H and dZ into dH as it loads; save: the
  // same from the saved H.
  const void* dh = nullptr;
  const void* h = o.policy == Policy::save ? t.saved : nullptr;
  if (o.policy == Policy::recompute) {
    const bool epi = placement == GatePlacement::epilogue;
    void* const h_region = ws_base + ws.h_offset;
    ForwardPlan recompute;
    if (Status s = plan_forward(p, dev, o.recompute_tile, t.x, t.w, t.bias, nullptr, epi ? nullptr : h_region,
                                epi ? t.dz : nullptr, epi ? dh_region : nullptr, &recompute);
        !s.ok())
      return s;
    plan.recompute = recompute;
    if (epi) {
      dh = dh_region;
    } else {
      h = h_region;
    }
  }
  // Those GEMMs have no gate prologue, and DhStorage::tensors stores dH whoever reads it: the gate
  // backward writes dH first (over H itself when t.dh is the saved H: the pass reads each element
  // before it writes it).
  if ((dx_direct || dw_direct || dh_in_tensors) && dh == nullptr) {
    plan.gate_pass = true;
    plan.h = h;
    plan.dh_store = dh_region;
    dh = dh_region;
  }

  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  // A GEMM's A operand: dH read directly, or computed from dZ and H in the prologue.
  auto a_source = [&](BwdParams* q, const void* direct) {
    q->rows = B;
    q->D = D;
    q->dh = direct;
    q->dz = direct != nullptr ? nullptr : t.dz;
    q->h = direct != nullptr ? nullptr : h;
    q->vec_a = direct != nullptr ? aligned(direct, 16) && (2 * D) % vec == 0
                                 : aligned(t.dz, 16) && aligned(h, 16) && D % vec == 0;
  };
  // dX = dH · W12: M = B, N = I, K = 2D.
  if (o.grads.dx) {
    BwdParams q;
    a_source(&q, dh);
    // With the gate in the prologue and dW to follow, the first column of dX blocks also stores
    // the dH it computed, for the dW GEMM to read.
    if (dh == nullptr && o.grads.dw) q.dh_out = dh_region;
    q.M = B;
    q.N = I;
    q.K = 2 * D;
    q.b = t.w;
    q.ldb = p.layout == Layout::linear ? I : 2 * D;
    q.c = t.dx;
    q.ldc = I;
    q.vec_b = aligned(t.w, 16) && (p.layout == Layout::linear ? I % vec == 0 : (2 * D) % vec == 0);
    q.vec_c = aligned(t.dx, 16) && I % vec == 0;
    GemmPlan g;
    if (Status s = plan_gemm(p, dev, Gemm::dx, dx_tile, q, ws, ws_base, &g); !s.ok()) return s;
    plan.dx = g;
  }
  // dW12 = dHᵀ · X: M = 2D, N = I, K = B; dbias from the same A tiles.
  if (o.grads.dw) {
    BwdParams q;
    a_source(&q, dh != nullptr ? dh : (o.grads.dx ? dh_region : nullptr));
    q.M = 2 * D;
    q.N = I;
    q.K = B;
    q.b = t.x;
    q.ldb = p.x_stride();
    q.c = t.dw;
    q.c_trans = p.layout == Layout::packed ? 1 : 0;
    q.ldc = p.layout == Layout::linear ? I : 2 * D;
    // An sm90 or gemv dW leaves dbias to a deterministic column sum of dH.
    q.dbias = p.bias && !dw_direct ? t.dbias : nullptr;
    q.vec_b = aligned(t.x, 16) && I % vec == 0 && p.x_stride() % vec == 0;
    q.vec_c = !q.c_trans && aligned(t.dw, 16) && I % vec == 0;
    GemmPlan g;
    if (Status s = plan_gemm(p, dev, Gemm::dw, dw_tile, q, ws, ws_base, &g); !s.ok()) return s;
    plan.dw = g;
    if (p.bias && dw_direct) plan.dbias_source = dh;
  }
  *out = plan;
  return Status::success();
}

}  // namespace swiglu::detail

namespace swiglu {

Status backward_workspace_bytes(const Problem& p, const BackwardOptions& options, size_t* bytes) {
  if (bytes == nullptr) return detail::fail(StatusCode::invalid_argument, "backward_workspace_bytes: bytes is null");
  *bytes = 0;
  if (Status s = detail::check_dims(p); !s.ok()) return s;
  if (Status s = detail::check_options(options); !s.ok()) return s;
  const detail::Chunking c = detail::backward_chunking(p, options, detail::traits_or_default());
  if (c.overflow) {
    return detail::fail(StatusCode::invalid_argument,
                        "problem too large: the backward's workspace for B=" + std::to_string(p.batch) +
                            " I=" + std::to_string(p.in_features) + " D=" + std::to_string(p.hidden) +
                            " does not fit in size_t");
  }
  if (c.chunks == 0) {
    return detail::fail(StatusCode::invalid_argument,
                        "max_workspace_bytes " + std::to_string(options.max_workspace_bytes) +
                            " is below the " + std::to_string(c.workspace) + " bytes a chunk of " +
                            std::to_string(kMinBackwardChunkRows) + " rows needs (B=" + std::to_string(p.batch) +
                            " I=" + std::to_string(p.in_features) + " D=" + std::to_string(p.hidden) + ")");
  }
  *bytes = c.workspace;
  return Status::success();
}

size_t backward_workspace_bytes(const Problem& p, const BackwardOptions& options) {
  size_t bytes = 0;
  return backward_workspace_bytes(p, options, &bytes).ok() ? bytes : 0;
}

}  // namespace swiglu
