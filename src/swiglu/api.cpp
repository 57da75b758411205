// The public API: validation, tile choice and the launch of the fused forward.
#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

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
std::string_view to_string(Math m) { return m == Math::exact ? "exact" : "tf32"; }
std::string_view to_string(Family f) { return f == Family::simt ? "simt" : "sm80"; }

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
  return std::nullopt;
}
size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

std::string TileConfig::name() const {
  return std::string(to_string(family)) + ":" + std::to_string(block_m) + "x" +
         std::to_string(block_n) + "x" + std::to_string(block_k) + "s" + std::to_string(stages) +
         "w" + std::to_string(warps);
}

std::optional<TileConfig> TileConfig::parse(std::string_view text) {
  TileConfig t;
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view fam = text.substr(0, colon);
  if (fam == "simt") t.family = Family::simt;
  else if (fam == "sm80") t.family = Family::mma_sm80;
  else return std::nullopt;
  // <m>x<n>x<k>s<stages>w<warps>, every number positive, nothing after.
  const char* p = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  int* fields[] = {&t.block_m, &t.block_n, &t.block_k, &t.stages, &t.warps};
  const char seps[] = {'x', 'x', 's', 'w', '\0'};
  for (int i = 0; i < 5; ++i) {
    auto [next, ec] = std::from_chars(p, end, *fields[i]);
    if (ec != std::errc() || next == p || *fields[i] <= 0) return std::nullopt;
    p = next;
    if (seps[i] != '\0') {
      if (p == end || *p != seps[i]) return std::nullopt;
      ++p;
    }
  }
  if (p != end) return std::nullopt;
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

Status validate_forward(const Problem& p, const void* x, const void* w, const void* bias,
                        const void* z) {
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
  const int64_t z_elems = checked_mul(std::max<int64_t>(p.batch, 1), p.hidden);
  const int64_t limit = std::numeric_limits<int64_t>::max() / 4;
  if (w_elems < 0 || w_elems > limit || x_elems < 0 || x_elems > limit || z_elems < 0 ||
      z_elems > limit) {
    return fail(StatusCode::invalid_argument,
                "problem too large: B=" + str(p.batch) + " I=" + str(p.in_features) +
                    " D=" + str(p.hidden) + " overflows 64-bit element counts");
  }
  if (p.batch == 0) return Status::success();  // a no-op needs no pointers
  if (x == nullptr) return fail(StatusCode::invalid_argument, "x is null");
  if (w == nullptr) return fail(StatusCode::invalid_argument, "w is null");
  if (z == nullptr) return fail(StatusCode::invalid_argument, "z is null");
  if (p.bias && bias == nullptr)
    return fail(StatusCode::invalid_argument, "problem has bias but the bias pointer is null");
  const size_t es = dtype_size(p.dtype);
  const struct { const char* name; const void* ptr; } ptrs[] = {
      {"x", x}, {"w", w}, {"z", z}, {"bias", p.bias ? bias : nullptr}};
  for (const auto& q : ptrs) {
    if (q.ptr != nullptr && !aligned(q.ptr, es)) {
      return fail(StatusCode::invalid_argument,
                  std::string(q.name) + " is not aligned to its element size (" +
                      std::to_string(es) + " bytes)");
    }
  }
  // z must not overlap the inputs: the kernel reads x and w while other blocks write z.
  const auto overlaps = [&](const void* a, int64_t a_elems, const void* b, int64_t b_elems) {
    const auto a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
    return a0 < b0 + static_cast<uintptr_t>(b_elems) * es && b0 < a0 + static_cast<uintptr_t>(a_elems) * es;
  };
  if (overlaps(z, z_elems, x, x_elems)) return fail(StatusCode::invalid_argument, "z overlaps x");
  if (overlaps(z, z_elems, w, w_elems)) return fail(StatusCode::invalid_argument, "z overlaps w");
  return Status::success();
}

Status forward(const Problem& p, const void* x, const void* w, const void* bias, void* z,
               cudaStream_t stream, const ForwardOptions& options, TileConfig* used_tile) {
  nvtx3::scoped_range range{"swiglu::forward"};
  if (Status s = validate_forward(p, x, w, bias, z); !s.ok()) return s;
  if (p.batch == 0) return Status::success();

  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess)
    return fail(StatusCode::cuda_error, std::string("cudaGetDevice: ") + cudaGetErrorString(e));
  DeviceTraits dev;
  if (Status s = device_traits(device, &dev); !s.ok()) return s;
  if (dev.cc_major < 7) {
    return fail(StatusCode::unsupported, "compute capability " + std::to_string(dev.cc_major) + "." +
                                             std::to_string(dev.cc_minor) +
                                             " is not supported (needs 7.0 or newer)");
  }
  if (p.dtype == DType::f32 && p.math == Math::tf32 && dev.cc_major < 8) {
    return fail(StatusCode::unsupported, "tf32 math needs compute capability 8.0 or newer");
  }

  TileConfig tile;
  if (options.tile) {
    tile = *options.tile;
  } else if (Status s = choose_forward_tile(p, dev, &tile); !s.ok()) {
    return s;
  }
  const Math math = p.dtype == DType::f32 ? p.math : Math::exact;
  const int cc = dev.cc_major * 10 + dev.cc_minor;
  const detail::FwdKernel* kernel = nullptr;
  for (const auto& k : detail::fwd_kernels()) {
    if (k.tile == tile && k.dtype == p.dtype && k.layout == p.layout && k.math == math &&
        k.min_cc <= cc) {
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
  if (used_tile != nullptr) *used_tile = tile;

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
  params.B = p.batch;
  params.I = p.in_features;
  params.D = p.hidden;
  params.ldx = p.x_stride();
  params.has_bias = p.bias ? 1 : 0;
  // Why: 16-byte vector loads and cp.async need every row start 16-byte aligned, which holds when
  // the base pointer is and every row length is a multiple of 16 bytes. Loads and the Z store are
  // judged apart, so an odd D with the linear layout (rows of I) keeps the fast loads.
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  params.vec_load = aligned(x, 16) && aligned(w, 16) && p.in_features % vec == 0 &&
                    params.ldx % vec == 0 && (p.layout == Layout::linear || p.hidden % vec == 0);
  params.vec_store = aligned(z, 16) && p.hidden % vec == 0;

  if (cudaError_t e = kernel->launch(params, stream); e != cudaSuccess) {
    return fail(StatusCode::cuda_error, "launch of fused forward " + tile.name() + " failed: " +
                                            cudaGetErrorString(e));
  }
  return Status::success();
}

}  // namespace swiglu
