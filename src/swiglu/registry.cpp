// The kernel table, eligibility, the one kernel lookup, and the public tile listings.
#include "swiglu/registry.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include "swiglu/validate.hpp"

namespace swiglu::detail {

const KernelTable& kernels() {
  // Why a function-local static: built once and thread-safely, so launches from several host
  // threads never see a half-filled table.
  static const KernelTable table = [] {
    KernelTable t;
    register_instances(t);
    return t;
  }();
  return table;
}

Math effective_math(const Problem& p, Gemm gemm) {
  return gemm == Gemm::forward && p.dtype == DType::f32 ? p.math : Math::exact;
}

namespace {

// What the sm90 kernels need of the problem itself: TMA rows of whole 16-byte units (I and the X
// row stride; packed, D too; the backward's dH, 2D), tile coordinates that fit int32, and for fp32
// the tf32 or 3xtf32 math with the linear layout (wgmma's tf32 operands are K-major).
std::string sm90_problem_obstacle(const Problem& p, Gemm gemm) {
  if (p.batch > INT32_MAX || 2 * p.hidden > INT32_MAX || p.in_features > INT32_MAX || p.x_stride() > INT32_MAX)
    return "B, 2D, I and the X row stride must each be at most 2^31-1";
  if (p.dtype == DType::f32) {
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
  if (gemm != Gemm::forward && p.hidden % 4 != 0)
    return "TMA needs dH's rows of whole 16-byte units: D (" + std::to_string(p.hidden) + ") must be a multiple of 4";
  return {};
}

int compute_capability(const DeviceTraits& dev) { return dev.cc_major * 10 + dev.cc_minor; }

}  // namespace

std::string family_obstacle(Family family, const Problem& p, Gemm gemm, const DeviceTraits& dev) {
  if (family != Family::wgmma_sm90) return {};
  if (!SWIGLU_HAVE_SM90A) return "this build has no sm_90a code (build with CUDA_ARCHS including 90a-real)";
  if (dev.cc_major != 9 || dev.cc_minor != 0)
    return "sm90 tiles need compute capability 9.0, this device is sm_" + std::to_string(compute_capability(dev));
  return sm90_problem_obstacle(p, gemm);
}

bool eligible(const Kernel& k, const Problem& p, Gemm gemm, const DeviceTraits& dev) {
  const int cc = compute_capability(dev);
  return k.gemm == gemm && k.dtype == p.dtype && (gemm == Gemm::dw || k.layout == p.layout) &&
         k.math == effective_math(p, gemm) && k.min_cc <= cc && cc <= k.max_cc &&
         family_obstacle(k.tile.family, p, gemm, dev).empty();
}

std::vector<TileConfig> eligible_tiles(const Problem& p, Gemm gemm, const DeviceTraits& dev) {
  std::vector<TileConfig> out;
  for (const Kernel& k : kernels()) {
    if (eligible(k, p, gemm, dev) && std::find(out.begin(), out.end(), k.tile) == out.end()) out.push_back(k.tile);
  }
  return out;
}

namespace {

// Whether a dX or dW tile eligible for p on dev is of a family that `wanted` accepts.
template <class Wanted>
bool any_backward_family(const Problem& p, const DeviceTraits& dev, Wanted wanted) {
  for (const Gemm gemm : {Gemm::dx, Gemm::dw}) {
    for (const TileConfig& t : eligible_tiles(p, gemm, dev)) {
      if (wanted(t.family)) return true;
    }
  }
  return false;
}

}  // namespace

bool sm90_backward_possible(const Problem& p, const DeviceTraits& dev) {
  return any_backward_family(p, dev, [](Family f) { return f == Family::wgmma_sm90; });
}

bool direct_dh_backward_possible(const Problem& p, const DeviceTraits& dev) {
  return any_backward_family(p, dev, [&p](Family f) { return reads_stored_dh(f, p.dtype); });
}

Status find_kernel(const Problem& p, Gemm gemm, const TileConfig& tile, const DeviceTraits& dev,
                   const Kernel** out) {
  if (std::string why = family_obstacle(tile.family, p, gemm, dev); !why.empty())
    return fail(StatusCode::unsupported, "tile " + tile.name() + " cannot run: " + why);
  for (const Kernel& k : kernels()) {
    if (k.tile == tile && eligible(k, p, gemm, dev)) {
      *out = &k;
      return Status::success();
    }
  }
  std::string list;
  for (const TileConfig& t : eligible_tiles(p, gemm, dev)) list += (list.empty() ? "" : ", ") + t.name();
  std::string problem = std::string(to_string(p.dtype)) + "/" + std::string(to_string(p.layout));
  if (gemm == Gemm::forward) (problem += "/") += to_string(effective_math(p, gemm));
  const char* what = gemm == Gemm::forward ? "tile " : gemm == Gemm::dx ? "dX tile " : "dW tile ";
  return fail(StatusCode::unsupported, what + tile.name() + " is not compiled for " + problem + " on sm_" +
                                           std::to_string(compute_capability(dev)) +
                                           "; available: " + (list.empty() ? "none" : list));
}

}  // namespace swiglu::detail

namespace swiglu {

std::vector<TileConfig> forward_tiles(const Problem& p, const DeviceTraits& dev) {
  return detail::eligible_tiles(p, detail::Gemm::forward, dev);
}
std::vector<TileConfig> backward_dx_tiles(const Problem& p, const DeviceTraits& dev) {
  return detail::eligible_tiles(p, detail::Gemm::dx, dev);
}
std::vector<TileConfig> backward_dw_tiles(const Problem& p, const DeviceTraits& dev) {
  return detail::eligible_tiles(p, detail::Gemm::dw, dev);
}

}  // namespace swiglu
