// The public API: validation, tile choice and the launch of the fused forward.
#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "swiglu/gate.hpp"
#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

Status fail(StatusCode code, std::string message) { return Status{code, std::move(message)}; }

std::string str(int64_t v) { return std::to_string(v); }

// a*b without overflow, or -1 when it would not fit in int64.
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return -1;
  return r;
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

std::string_view to_string(DType t) {
  switch (t) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "?";
}
std::string_view to_string(Layout l) { return l == Layout::linear ? "linear" : "packed"; }
std::string_view to_string(Math m) {
  switch (m) {
    case Math::exact: return "exact";
    case Math::tf32: return "tf32";
    case Math::tf32x3: return "3xtf32";
  }
  return "?";
}
std::string_view to_string(Family f) {
  switch (f) {
    case Family::simt: return "simt";
    case Family::mma_sm80: return "sm80";
    case Family::wgmma_sm90: return "sm90";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  if (s == "fp32" || s == "f32" || s == "float32") return DType::f32;
  if (s == "fp16" || s == "f16" || s == "float16" || s == "half") return DType::f16;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  return std::nullopt;
}
std::optional<Layout> parse_layout(std::string_view s) {
  if (s == "linear") return Layout::linear;
  if (s == "packed") return Layout::packed;
  return std::nullopt;
}
std::optional<Math> parse_math(std::string_view s) {
  if (s == "exact") return Math::exact;
  if (s == "tf32") return Math::tf32;
  if (s == "3xtf32") return Math::tf32x3;
  return std::nullopt;
}
size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

std::string TileConfig::name() const {
  return std::string(to_string(family)) + ":" + std::to_string(block_m) + "x" +
         std::to_string(block_n) + "x" + std::to_string(block_k) + "s" + std::to_string(stages) +
         "w" + std::to_string(warps) + (cluster > 1 ? "c" + std::to_string(cluster) : std::string());
}

std::optional<TileConfig> TileConfig::parse(std::string_view text) {
  TileConfig t;
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view fam = text.substr(0, colon);
  if (fam == "simt") t.family = Family::simt;
  else if (fam == "sm80") t.family = Family::mma_sm80;
  else if (fam == "sm90") t.family = Family::wgmma_sm90;
  else return std::nullopt;
  // <m>x<n>x<k>s<stages>w<warps>[c<cluster>], every number positive, the cluster above 1 (the
  // name of a one-block cluster has no "c" part, so each tile has one spelling), nothing after.
  const char* p = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  int* fields[] = {&t.block_m, &t.block_n, &t.block_k, &t.stages, &t.warps, &t.cluster};
  const char seps[] = {'x', 'x', 's', 'w', 'c', '\0'};
  for (int i = 0; i < 6; ++i) {
    auto [next, ec] = std::from_chars(p, end, *fields[i]);
    if (ec != std::errc() || next == p || *fields[i] <= 0) return std::nullopt;
    p = next;
    if (seps[i] == 'c' && p == end) return t;  // no cluster part
    if (seps[i] != '\0') {
      if (p == end || *p != seps[i]) return std::nullopt;
      ++p;
    }
  }
  if (p != end || t.cluster < 2) return std::nullopt;
  return t;
}

Status device_traits(int device, DeviceTraits* out) {
  if (out == nullptr) return fail(StatusCode::invalid_argument, "device_traits: out is null");
  DeviceTraits d;
  cudaError_t e = cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) {
    return fail(StatusCode::cuda_error, "cannot read the properties of CUDA device " +
                                            std::to_string(device) + ": " + cudaGetErrorString(e));
  }
  *out = d;
  return Status::success();
}

namespace {

// An enum value outside its declared set (a cast from an integer) would pick a wrong kernel or
// stride; every enum a call reads is checked before anything else.
Status check_enums(const Problem& p) {
  if (p.dtype != DType::f32 && p.dtype != DType::f16 && p.dtype != DType::bf16)
    return fail(StatusCode::invalid_argument, "dtype " + str(static_cast<int>(p.dtype)) + " is not fp32, fp16 or bf16");
  if (p.layout != Layout::linear && p.layout != Layout::packed)
    return fail(StatusCode::invalid_argument, "layout " + str(static_cast<int>(p.layout)) + " is not linear or packed");
  if (p.math != Math::exact && p.math != Math::tf32 && p.math != Math::tf32x3)
    return fail(StatusCode::invalid_argument, "math " + str(static_cast<int>(p.math)) + " is not exact, tf32 or 3xtf32");
  return Status::success();
}

Status check_options(const BackwardOptions& o) {
  if (o.policy != Policy::save && o.policy != Policy::recompute)
    return fail(StatusCode::invalid_argument, "policy " + str(static_cast<int>(o.policy)) + " is not save or recompute");
  if (o.placement != GatePlacement::automatic && o.placement != GatePlacement::epilogue &&
      o.placement != GatePlacement::prologue) {
    return fail(StatusCode::invalid_argument,
                "gate placement " + str(static_cast<int>(o.placement)) + " is not automatic, epilogue or prologue");
  }
  return Status::success();
}

// Enums, dimensions and 64-bit element counts of a problem, before any pointer is looked at.
Status check_dims(const Problem& p) {
  if (Status s = check_enums(p); !s.ok()) return s;
  if (p.batch < 0) return fail(StatusCode::invalid_argument, "batch must be >= 0, got " + str(p.batch));
  if (p.in_features <= 0)
    return fail(StatusCode::invalid_argument, "in_features must be > 0, got " + str(p.in_features));
  if (p.hidden <= 0)
    return fail(StatusCode::invalid_argument, "hidden must be > 0, got " + str(p.hidden));
  if (p.ldx != 0 && p.ldx < p.in_features) {
    return fail(StatusCode::invalid_argument, "ldx (" + str(p.ldx) + ") is smaller than in_features (" +
                                                  str(p.in_features) + ")");
  }
  const int64_t two_d = checked_mul(2, p.hidden);
  const int64_t w_elems = two_d < 0 ? -1 : checked_mul(two_d, p.in_features);
  const int64_t x_elems = checked_mul(std::max<int64_t>(p.batch, 1), p.x_stride());
  const int64_t h_elems = two_d < 0 ? -1 : checked_mul(std::max<int64_t>(p.batch, 1), two_d);
  const int64_t limit = std::numeric_limits<int64_t>::max() / 4;
  if (w_elems < 0 || w_elems > limit || x_elems < 0 || x_elems > limit || h_elems < 0 ||
      h_elems > limit) {
    return fail(StatusCode::invalid_argument,
                "problem too large: B=" + str(p.batch) + " I=" + str(p.in_features) +
                    " D=" + str(p.hidden) + " overflows 64-bit element counts");
  }
  return Status::success();
}

}  // namespace

namespace {

int64_t x_elems(const Problem& p) { return std::max<int64_t>(p.batch, 1) * p.x_stride(); }
int64_t w_elems(const Problem& p) { return 2 * p.hidden * p.in_features; }

// A named device range of elements, for the null, alignment and overlap checks.
struct Range {
  const char* name;
  const void* ptr;
  int64_t elems;
};

Status check_pointers(const Problem& p, const std::vector<Range>& inputs,
                      const std::vector<Range>& outputs) {
  const size_t es = dtype_size(p.dtype);
  for (const auto* list : {&inputs, &outputs}) {
    for (const Range& r : *list) {
      if (r.ptr == nullptr) return fail(StatusCode::invalid_argument, std::string(r.name) + " is null");
      if (!aligned(r.ptr, es)) {
        return fail(StatusCode::invalid_argument,
                    std::string(r.name) + " is not aligned to its element size (" +
                        std::to_string(es) + " bytes)");
      }
    }
  }
  const auto overlaps = [&](const Range& a, const Range& b) {
    const auto a0 = reinterpret_cast<uintptr_t>(a.ptr), b0 = reinterpret_cast<uintptr_t>(b.ptr);
    return a0 < b0 + static_cast<uintptr_t>(b.elems) * es &&
           b0 < a0 + static_cast<uintptr_t>(a.elems) * es;
  };
  // Outputs must not overlap the inputs (kernels read them while other blocks write) nor each other.
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    for (const Range& i : inputs) {
      if (overlaps(*o, i)) return fail(StatusCode::invalid_argument, std::string(o->name) + " overlaps " + i.name);
    }
    for (auto o2 = outputs.begin(); o2 != o; ++o2) {
      if (overlaps(*o, *o2)) return fail(StatusCode::invalid_argument, std::string(o->name) + " overlaps " + o2->name);
    }
  }
  return Status::success();
}

Status current_device(DeviceTraits* dev) {
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess)
    return fail(StatusCode::cuda_error, std::string("cudaGetDevice: ") + cudaGetErrorString(e));
  if (Status s = device_traits(device, dev); !s.ok()) return s;
  if (dev->cc_major < 7) {
    return fail(StatusCode::unsupported, "compute capability " + std::to_string(dev->cc_major) + "." +
                                             std::to_string(dev->cc_minor) +
                                             " is not supported (needs 7.0 or newer)");
  }
  return Status::success();
}

// Whether a (forced) sm90 tile can run here, and if not, the real reason: the build, the device or
// the problem (`obstacle`, from the heuristics' one rule).
Status check_sm90(const TileConfig& tile, const DeviceTraits& dev, const std::string& obstacle) {
  const std::string prefix = "tile " + tile.name() + " cannot run: ";
  if (!SWIGLU_HAVE_SM90A)
    return fail(StatusCode::unsupported, prefix + "this build has no sm_90a code (build with CUDA_ARCHS including 90a-real)");
  if (dev.cc_major != 9 || dev.cc_minor != 0) {
    return fail(StatusCode::unsupported, prefix + "sm90 tiles need compute capability 9.0, this device is sm_" +
                                             std::to_string(dev.cc_major * 10 + dev.cc_minor));
  }
  if (!obstacle.empty()) return fail(StatusCode::unsupported, prefix + obstacle);
  return Status::success();
}

// The forward kernel for `*tile`, with every epilogue output of FwdParams. An sm90 tile whose X
// or W pointer TMA cannot address (not 16-byte aligned) is replaced by the heuristic's choice
// among the other families; *tile then names the tile that ran.
Status launch_forward(const Problem& p, const DeviceTraits& dev, TileConfig* tile_io,
                      const void* x, const void* w, const void* bias, void* z, void* saved,
                      const void* dz, void* dh, cudaStream_t stream) {
  const Math math = p.dtype == DType::f32 ? p.math : Math::exact;
  const int cc = dev.cc_major * 10 + dev.cc_minor;
  if (tile_io->family == Family::wgmma_sm90 && !(aligned(x, 16) && aligned(w, 16))) {
    if (Status s = detail::choose_forward_tile(p, dev, /*allow_sm90=*/false, tile_io); !s.ok()) return s;
  }
  const TileConfig& tile = *tile_io;
  if (tile.family == Family::wgmma_sm90) {
    if (Status s = check_sm90(tile, dev, detail::sm90_forward_obstacle(p)); !s.ok()) return s;
  }
  const detail::FwdKernel* kernel = nullptr;
  for (const auto& k : detail::fwd_kernels()) {
    if (k.tile == tile && k.dtype == p.dtype && k.layout == p.layout && k.math == math &&
        k.min_cc <= cc && cc <= k.max_cc) {
      kernel = &k;
      break;
    }
  }
  if (kernel == nullptr) {
    std::string list;
    for (const auto& t : forward_tiles(p, dev)) list += (list.empty() ? "" : ", ") + t.name();
    return fail(StatusCode::unsupported,
                "tile " + tile.name() + " is not compiled for " + std::string(to_string(p.dtype)) +
                    "/" + std::string(to_string(p.layout)) + "/" + std::string(to_string(math)) +
                    " on sm_" + std::to_string(cc) + "; available: " + (list.empty() ? "none" : list));
  }
  const int64_t n_tiles = (p.hidden + tile.block_n - 1) / tile.block_n;
  const int64_t m_tiles = (p.batch + tile.block_m - 1) / tile.block_m;
  if (n_tiles > 65535 || m_tiles > std::numeric_limits<int32_t>::max()) {
    return fail(StatusCode::unsupported, "grid too large for tile " + tile.name() + ": " +
                                             str(m_tiles) + "x" + str(n_tiles) + " blocks");
  }

  detail::FwdParams params;
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
  // Why: 16-byte vector loads and cp.async need every row start 16-byte aligned, which holds when
  // the base pointer is and every row length is a multiple of 16 bytes. Loads and the stores are
  // judged apart, so an odd D with the linear layout (rows of I) keeps the fast loads.
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  params.vec_load = aligned(x, 16) && aligned(w, 16) && p.in_features % vec == 0 &&
                    params.ldx % vec == 0 && (p.layout == Layout::linear || p.hidden % vec == 0);
  bool outputs_aligned = true;
  for (const void* q : {static_cast<const void*>(z), static_cast<const void*>(saved), dz,
                        static_cast<const void*>(dh)}) {
    if (q != nullptr && !aligned(q, 16)) outputs_aligned = false;
  }
  params.vec_store = outputs_aligned && p.hidden % vec == 0;

  if (cudaError_t e = kernel->launch(params, stream); e != cudaSuccess) {
    return fail(StatusCode::cuda_error, "launch of fused forward " + tile.name() + " failed: " +
                                            cudaGetErrorString(e));
  }
  return Status::success();
}

}  // namespace

Status validate_forward(const Problem& p, const void* x, const void* w, const void* bias,
                        const void* z) {
  if (Status s = check_dims(p); !s.ok()) return s;
  if (p.batch == 0) return Status::success();  // a no-op needs no pointers
  if (p.bias && bias == nullptr)
    return fail(StatusCode::invalid_argument, "problem has bias but the bias pointer is null");
  const int64_t z_elems = p.batch * p.hidden;
  if (p.bias) {
    return check_pointers(p, {{"x", x, x_elems(p)}, {"w", w, w_elems(p)}, {"bias", bias, 2 * p.hidden}},
                          {{"z", z, z_elems}});
  }
  return check_pointers(p, {{"x", x, x_elems(p)}, {"w", w, w_elems(p)}}, {{"z", z, z_elems}});
}

Status forward(const Problem& p, const void* x, const void* w, const void* bias, void* z,
               cudaStream_t stream, const ForwardOptions& options, TileConfig* used_tile) {
  nvtx3::scoped_range range{"swiglu::forward"};
  if (Status s = validate_forward(p, x, w, bias, z); !s.ok()) return s;
  if (p.batch == 0) return Status::success();
  if (options.saved != nullptr) {
    const Range in_x{"x", x, x_elems(p)}, in_w{"w", w, w_elems(p)};
    const Range out_z{"z", z, p.batch * p.hidden}, out_h{"saved", options.saved, p.batch * 2 * p.hidden};
    if (Status s = check_pointers(p, {in_x, in_w}, {out_z, out_h}); !s.ok()) return s;
    if (p.bias) {
      if (Status s = check_pointers(p, {{"bias", bias, 2 * p.hidden}}, {out_h}); !s.ok()) return s;
    }
  }

  DeviceTraits dev;
  if (Status s = current_device(&dev); !s.ok()) return s;
  if (p.dtype == DType::f32 && p.math != Math::exact && dev.cc_major < 8) {
    return fail(StatusCode::unsupported, std::string(to_string(p.math)) +
                                             " math needs compute capability 8.0 or newer");
  }
  TileConfig tile;
  if (options.tile) {
    tile = *options.tile;
  } else if (Status s = choose_forward_tile(p, dev, &tile); !s.ok()) {
    return s;
  }
  if (Status s = launch_forward(p, dev, &tile, x, w, bias, z, options.saved, nullptr, nullptr, stream);
      !s.ok())
    return s;
  if (used_tile != nullptr) *used_tile = tile;
  return Status::success();
}

// ---- backward ------------------------------------------------------------------------------------

std::string_view to_string(Policy v) { return v == Policy::save ? "save" : "recompute"; }
std::string_view to_string(GatePlacement v) {
  switch (v) {
    case GatePlacement::automatic: return "auto";
    case GatePlacement::epilogue: return "epilogue";
    case GatePlacement::prologue: return "prologue";
  }
  return "?";
}
std::optional<Policy> parse_policy(std::string_view s) {
  if (s == "save") return Policy::save;
  if (s == "recompute") return Policy::recompute;
  return std::nullopt;
}
std::optional<GatePlacement> parse_gate_placement(std::string_view s) {
  if (s == "auto" || s == "automatic") return GatePlacement::automatic;
  if (s == "epilogue") return GatePlacement::epilogue;
  if (s == "prologue") return GatePlacement::prologue;
  return std::nullopt;
}

namespace {

// The placement a call really uses.
GatePlacement effective_placement(const BackwardOptions& o) {
  if (o.policy == Policy::save) return GatePlacement::prologue;
  return o.placement == GatePlacement::prologue ? GatePlacement::prologue : GatePlacement::epilogue;
}

// Split-K of the dX GEMM (both families). Its K = 2D is long while B×I can give far fewer
// blocks than SMs (small batches), and a block then spends its time waiting on one K tile after
// another; slices of K run side by side instead and meet in fp32 sums (kernels/bwd_sm80.cuh).
// Why these numbers: 4 blocks per SM is what it takes to keep enough loads in flight at these
// sizes; a slice keeps at least 2 K tiles so its pipeline overlaps something; 32 slices bound the
// atomic traffic per output.
constexpr int kSplitBlocksPerSm = 4;
constexpr int kMaxSplits = 32;
constexpr int kMinTilesPerSlice = 2;
constexpr int kSmallestDxTile = 64;  // block_m = block_n of the smallest compiled dX tile

// The slices a dX grid of `tiles` blocks wants on `dev` (1: none), before the bound from K.
int64_t wanted_splits(int64_t tiles, const DeviceTraits& dev) {
  const int64_t wanted = static_cast<int64_t>(kSplitBlocksPerSm) * std::max(dev.sm_count, 1);
  if (tiles >= wanted) return 1;
  return std::min<int64_t>((wanted + tiles - 1) / tiles, kMaxSplits);
}

// The most slices any dX tile may use for `p` on `dev` (what the workspace is sized for).
int max_dx_splits(const Problem& p, const DeviceTraits& dev) {
  const int64_t tiles = ((p.batch + kSmallestDxTile - 1) / kSmallestDxTile) *
                        ((p.in_features + kSmallestDxTile - 1) / kSmallestDxTile);
  return static_cast<int>(wanted_splits(tiles, dev));
}

// The backward's workspace, each region 256-byte aligned:
//   h:       H = [G | U] written by the recompute GEMM (recompute with the prologue placement)
//   dh:      dH = [dG | dU], written by the recompute GEMM's epilogue (epilogue placement), by the
//            dX GEMM's first column of blocks for the dW GEMM to read (prologue, both gradients),
//            or by the gate backward before sm90 GEMMs, which read dH through TMA (any problem
//            those GEMMs could take on the device)
//   partial: split-K sums of dX, B×I fp32 (zeroed with the counters before each split launch)
//   counter: split-K tile counters
struct WorkspaceLayout {
  size_t h_offset = 0, h_bytes = 0;
  size_t dh_offset = 0, dh_bytes = 0;
  size_t partial_offset = 0, partial_bytes = 0;
  size_t counter_offset = 0, counter_bytes = 0;
  size_t total = 0;
  bool overflow = false;  // the total does not fit in size_t
};

// For a problem that passed check_dims: every region fits in int64, only their sum can wrap.
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
  if ((o.policy == Policy::recompute && placement == GatePlacement::epilogue) ||
      (o.grads.dx && o.grads.dw) || detail::sm90_backward_possible(p, dev))
    region(h_elems_bytes, &l.dh_offset, &l.dh_bytes);
  const int splits = o.grads.dx ? max_dx_splits(p, dev) : 1;
  if (splits > 1) {
    const size_t tiles = static_cast<size_t>((p.batch + kSmallestDxTile - 1) / kSmallestDxTile) *
                         static_cast<size_t>((p.in_features + kSmallestDxTile - 1) / kSmallestDxTile);
    region(static_cast<size_t>(p.batch) * static_cast<size_t>(p.in_features) * sizeof(float),
           &l.partial_offset, &l.partial_bytes);
    region(tiles * sizeof(int), &l.counter_offset, &l.counter_bytes);
  }
  l.total = end;
  return l;
}

// The traits of the current device, or those of a 132-SM sm_90 part when there is none (a
// workspace query must answer without a GPU).
DeviceTraits traits_or_default() {
  DeviceTraits dev;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || !device_traits(device, &dev).ok()) {
    cudaGetLastError();  // clear the sticky-free error the failed query left
    dev = DeviceTraits{9, 0, 132};
  }
  return dev;
}

}  // namespace

Status backward_workspace_bytes(const Problem& p, const BackwardOptions& options, size_t* bytes) {
  if (bytes == nullptr) return fail(StatusCode::invalid_argument, "backward_workspace_bytes: bytes is null");
  *bytes = 0;
  if (Status s = check_dims(p); !s.ok()) return s;
  if (Status s = check_options(options); !s.ok()) return s;
  const WorkspaceLayout l = workspace_layout(p, options, traits_or_default());
  if (l.overflow) {
    return fail(StatusCode::invalid_argument, "problem too large: the backward's workspace for B=" + str(p.batch) +
                                                  " I=" + str(p.in_features) + " D=" + str(p.hidden) +
                                                  " does not fit in size_t");
  }
  *bytes = l.total;
  return Status::success();
}

size_t backward_workspace_bytes(const Problem& p, const BackwardOptions& options) {
  size_t bytes = 0;
  return backward_workspace_bytes(p, options, &bytes).ok() ? bytes : 0;
}

Status validate_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o,
                         const void* workspace, size_t workspace_bytes) {
  if (Status s = check_dims(p); !s.ok()) return s;
  if (Status s = check_options(o); !s.ok()) return s;
  if (!o.grads.dx && !o.grads.dw)
    return fail(StatusCode::invalid_argument, "backward: no gradient requested (grads.dx and grads.dw are both false)");
  if (o.policy == Policy::save && o.placement == GatePlacement::epilogue) {
    return fail(StatusCode::invalid_argument,
                "gate placement 'epilogue' needs the recompute policy: with 'save' no GEMM produces "
                "G and U in the backward, so the gate backward runs in the dX/dW prologue");
  }
  if (p.batch == 0) {
    // The weight gradients are zeroed: the same null, alignment and overlap checks as any output.
    std::vector<Range> zeroed;
    if (o.grads.dw) zeroed.push_back({"dw", t.dw, w_elems(p)});
    if (o.grads.dw && p.bias) zeroed.push_back({"dbias", t.dbias, 2 * p.hidden});
    return check_pointers(p, {}, zeroed);
  }
  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  std::vector<Range> in = {{"x", t.x, x_elems(p)}, {"w", t.w, w_elems(p)}, {"dz", t.dz, B * D}};
  if (p.bias && o.policy == Policy::recompute) in.push_back({"bias", t.bias, 2 * D});
  if (o.policy == Policy::save) in.push_back({"saved", t.saved, B * 2 * D});
  std::vector<Range> out;
  if (o.grads.dx) out.push_back({"dx", t.dx, B * I});
  if (o.grads.dw) out.push_back({"dw", t.dw, w_elems(p)});
  if (o.grads.dw && p.bias) out.push_back({"dbias", t.dbias, 2 * D});
  // Null, alignment and overlap of the tensors first, so that their messages win over the workspace's.
  if (Status s = check_pointers(p, in, out); !s.ok()) return s;
  size_t need = 0;  // validated against the current device
  if (Status s = backward_workspace_bytes(p, o, &need); !s.ok()) return s;
  if (need > 0) {
    if (workspace == nullptr)
      return fail(StatusCode::invalid_argument, "backward needs " + std::to_string(need) + " bytes of workspace; workspace is null");
    if (workspace_bytes < need) {
      return fail(StatusCode::invalid_argument, "workspace too small: " + std::to_string(workspace_bytes) +
                                                    " bytes given, " + std::to_string(need) + " needed");
    }
    out.push_back({"workspace", workspace, static_cast<int64_t>(need / dtype_size(p.dtype))});
  }
  return check_pointers(p, in, out);
}

Status backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o,
                void* workspace, size_t workspace_bytes, cudaStream_t stream,
                BackwardTiles* used_tiles) {
  nvtx3::scoped_range range{"swiglu::backward"};
  if (Status s = validate_backward(p, t, o, workspace, workspace_bytes); !s.ok()) return s;
  BackwardTiles used;
  const size_t es = dtype_size(p.dtype);
  if (p.batch == 0) {
    // An empty batch contributes nothing: the weight gradients are zero (all-zero bits are +0 in
    // every dtype).
    if (o.grads.dw) {
      if (cudaError_t e = cudaMemsetAsync(t.dw, 0, static_cast<size_t>(w_elems(p)) * es, stream);
          e != cudaSuccess)
        return fail(StatusCode::cuda_error, std::string("zeroing dw: ") + cudaGetErrorString(e));
      if (p.bias) {
        if (cudaError_t e = cudaMemsetAsync(t.dbias, 0, static_cast<size_t>(2 * p.hidden) * es, stream);
            e != cudaSuccess)
          return fail(StatusCode::cuda_error, std::string("zeroing dbias: ") + cudaGetErrorString(e));
      }
    }
    if (used_tiles != nullptr) *used_tiles = used;
    return Status::success();
  }
  DeviceTraits dev;
  if (Status s = current_device(&dev); !s.ok()) return s;
  const GatePlacement placement = effective_placement(o);
  const WorkspaceLayout ws = workspace_layout(p, o, dev);
  char* const ws_base = static_cast<char*>(workspace);
  void* const dh_region = ws.dh_bytes > 0 ? ws_base + ws.dh_offset : nullptr;

  // 0. The GEMMs' tiles. An sm90 GEMM reads its operands through TMA: dH from the workspace, W12
  // (dX) or X (dW); when one of those is not 16-byte aligned the heuristic's choice among the other
  // families runs instead, and used_tiles names it.
  auto choose = [&](bool dw, const std::optional<TileConfig>& forced, TileConfig* tile) -> Status {
    if (forced) {
      *tile = *forced;
    } else if (Status s = detail::choose_backward_tile(p, dev, dw, /*allow_sm90=*/true, tile); !s.ok()) {
      return s;
    }
    const void* b_operand = dw ? t.x : t.w;
    if (tile->family == Family::wgmma_sm90 && detail::sm90_backward_possible(p, dev) &&
        !(dh_region != nullptr && aligned(dh_region, 16) && aligned(b_operand, 16))) {
      return detail::choose_backward_tile(p, dev, dw, /*allow_sm90=*/false, tile);
    }
    return Status::success();
  };
  TileConfig dx_tile, dw_tile;
  if (o.grads.dx) {
    if (Status s = choose(false, o.dx_tile, &dx_tile); !s.ok()) return s;
  }
  if (o.grads.dw) {
    if (Status s = choose(true, o.dw_tile, &dw_tile); !s.ok()) return s;
  }
  const bool dx_sm90 = o.grads.dx && dx_tile.family == Family::wgmma_sm90;
  const bool dw_sm90 = o.grads.dw && dw_tile.family == Family::wgmma_sm90;

  // 1. Where dH comes from. recompute/epilogue: the recompute GEMM writes dH; recompute/prologue:
  // it writes H and the dX (or dW) GEMM turns H and dZ into dH as it loads; save: the same from the
  // saved H.
  const void* dh = nullptr;
  const void* h = o.policy == Policy::save ? t.saved : nullptr;
  if (o.policy == Policy::recompute) {
    TileConfig tile;
    if (o.recompute_tile) {
      tile = *o.recompute_tile;
    } else if (Status s = choose_forward_tile(p, dev, &tile); !s.ok()) {
      return s;
    }
    const bool epi = placement == GatePlacement::epilogue;
    void* const h_region = ws_base + ws.h_offset;
    if (Status s = launch_forward(p, dev, &tile, t.x, t.w, t.bias, nullptr, epi ? nullptr : h_region,
                                  epi ? t.dz : nullptr, epi ? dh_region : nullptr, stream);
        !s.ok())
      return s;
    used.recompute = tile;
    if (epi) {
      dh = dh_region;
    } else {
      h = h_region;
    }
  }
  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  const int64_t vec = 16 / static_cast<int64_t>(es);
  // The sm90 GEMMs have no gate prologue: the gate backward writes dH to the workspace first.
  if ((dx_sm90 || dw_sm90) && dh == nullptr) {
    const char* hb = static_cast<const char*>(h);
    char* dhb = static_cast<char*>(dh_region);
    const size_t half = static_cast<size_t>(D) * es;  // G | U and dG | dU: D columns each
    if (cudaError_t e = detail::launch_gate_backward(p.dtype, p.dtype, hb, 2 * D, hb + half, 2 * D, t.dz, D,
                                                     dhb, 2 * D, dhb + half, 2 * D, B, D, stream);
        e != cudaSuccess)
      return fail(StatusCode::cuda_error, std::string("launch of the gate backward failed: ") + cudaGetErrorString(e));
    dh = dh_region;
  }
  // The A operand of a GEMM: dH read directly, or computed from dZ and H in the prologue.
  auto a_source = [&](detail::BwdParams* q, const void* direct) {
    q->rows = B;
    q->D = D;
    q->dh = direct;
    q->dz = direct != nullptr ? nullptr : t.dz;
    q->h = direct != nullptr ? nullptr : h;
    q->vec_a = direct != nullptr ? aligned(direct, 16) && (2 * D) % vec == 0
                                 : aligned(t.dz, 16) && aligned(h, 16) && D % vec == 0;
  };

  auto run = [&](bool dw, const TileConfig& tile, detail::BwdParams params, TileConfig* used_tile) -> Status {
    const detail::BwdKind kind = detail::bwd_kind(p, dw);
    const int cc = dev.cc_major * 10 + dev.cc_minor;
    const bool sm90 = tile.family == Family::wgmma_sm90;
    if (sm90) {
      if (Status s = check_sm90(tile, dev, detail::sm90_backward_obstacle(p)); !s.ok()) return s;
    }
    const detail::BwdKernel* kernel = nullptr;
    for (const auto& k : detail::bwd_kernels()) {
      if (k.tile == tile && k.dtype == p.dtype && k.kind == kind && k.min_cc <= cc && cc <= k.max_cc &&
          (!sm90 || detail::sm90_backward_possible(p, dev))) {
        kernel = &k;
        break;
      }
    }
    if (kernel == nullptr) {
      std::string list;
      for (const auto& c : dw ? backward_dw_tiles(p, dev) : backward_dx_tiles(p, dev))
        list += (list.empty() ? "" : ", ") + c.name();
      return fail(StatusCode::unsupported,
                  std::string(dw ? "dW" : "dX") + " tile " + tile.name() + " is not compiled for " +
                      std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout)) +
                      " on sm_" + std::to_string(cc) + "; available: " + (list.empty() ? "none" : list));
    }
    const int64_t n_tiles = (params.N + tile.block_n - 1) / tile.block_n;
    const int64_t m_tiles = (params.M + tile.block_m - 1) / tile.block_m;
    // (The sm90 grid is persistent: one block per SM whatever the tile count.)
    if (!sm90 && (n_tiles > 65535 || m_tiles > std::numeric_limits<int32_t>::max())) {
      return fail(StatusCode::unsupported, "grid too large for backward tile " + tile.name());
    }
    if (!dw && !sm90 && ws.partial_bytes > 0) {
      // Split-K when the tile leaves SMs idle (sized as max_dx_splits sized the workspace).
      const int64_t tiles = m_tiles * n_tiles;
      const int64_t k_tiles = (params.K + tile.block_k - 1) / tile.block_k;
      const int64_t splits = std::min(wanted_splits(tiles, dev), k_tiles / kMinTilesPerSlice);
      if (splits > 1) {
        const int64_t per = (k_tiles + splits - 1) / splits;  // K tiles per slice
        params.splits = static_cast<int>((k_tiles + per - 1) / per);
        params.k_per_split = per * tile.block_k;
        params.partial = reinterpret_cast<float*>(ws_base + ws.partial_offset);
        params.counters = reinterpret_cast<int*>(ws_base + ws.counter_offset);
        // One memset clears the sums and the counters (adjacent regions).
        const size_t clear = ws.counter_offset + static_cast<size_t>(tiles) * sizeof(int) - ws.partial_offset;
        if (cudaError_t e = cudaMemsetAsync(params.partial, 0, clear, stream); e != cudaSuccess)
          return fail(StatusCode::cuda_error, std::string("clearing the split-K sums: ") + cudaGetErrorString(e));
      }
    }
    if (cudaError_t e = kernel->launch(params, stream); e != cudaSuccess) {
      return fail(StatusCode::cuda_error, std::string("launch of the ") + (dw ? "dW" : "dX") +
                                              " GEMM " + tile.name() + " failed: " + cudaGetErrorString(e));
    }
    *used_tile = tile;
    if (!dw) used.dx_splits = params.splits;
    return Status::success();
  };

  // 2. dX = dH · W12: M = B, N = I, K = 2D.
  if (o.grads.dx) {
    detail::BwdParams q;
    a_source(&q, dh);
    // With the gate in the prologue and dW to follow, the first column of dX blocks also writes
    // the dH it computed, so the dW GEMM reads it instead of computing it again.
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
    if (Status s = run(false, dx_tile, q, &used.dx); !s.ok()) return s;
  }
  // 3. dW12 = dHᵀ · X: M = 2D, N = I, K = B; dbias from the same A tiles.
  if (o.grads.dw) {
    detail::BwdParams q;
    a_source(&q, dh != nullptr ? dh : (o.grads.dx ? dh_region : nullptr));
    q.M = 2 * D;
    q.N = I;
    q.K = B;
    q.b = t.x;
    q.ldb = p.x_stride();
    q.c = t.dw;
    q.c_trans = p.layout == Layout::packed ? 1 : 0;
    q.ldc = p.layout == Layout::linear ? I : 2 * D;
    // The sm90 GEMM leaves dbias to a deterministic column sum of dH.
    q.dbias = p.bias && !dw_sm90 ? t.dbias : nullptr;
    q.vec_b = aligned(t.x, 16) && I % vec == 0 && p.x_stride() % vec == 0;
    q.vec_c = !q.c_trans && aligned(t.dw, 16) && I % vec == 0;
    if (Status s = run(true, dw_tile, q, &used.dw); !s.ok()) return s;
    if (p.bias && dw_sm90) {
      if (cudaError_t e = detail::launch_column_sum(p.dtype, p.dtype, dh, 2 * D, t.dbias, B, 2 * D, stream);
          e != cudaSuccess)
        return fail(StatusCode::cuda_error, std::string("launch of the dbias column sum failed: ") + cudaGetErrorString(e));
    }
  }
  if (used_tiles != nullptr) *used_tiles = used;
  return Status::success();
}

}  // namespace swiglu
