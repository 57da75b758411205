// Validation of problems, options, pointers and the device; validate_forward() and
// validate_backward().
#include "swiglu/validate.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <limits>

namespace swiglu::detail {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// a*b, or -1 when it would not fit in int64.
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return -1;
  return r;
}

// Why first: an enum value outside its set (a cast from an integer) would pick a wrong kernel or stride.
Status check_enums(const Problem& p) {
  if (p.dtype == DType::e4m3) {
    return fail(StatusCode::invalid_argument,
                "dtype fp8 (e4m3) operands take forward_fp8 and an Fp8Problem, with their scales");
  }
  if (p.dtype != DType::f32 && p.dtype != DType::f16 && p.dtype != DType::bf16)
    return fail(StatusCode::invalid_argument, "dtype " + str(static_cast<int>(p.dtype)) + " is not fp32, fp16 or bf16");
  if (p.layout != Layout::linear && p.layout != Layout::packed)
    return fail(StatusCode::invalid_argument, "layout " + str(static_cast<int>(p.layout)) + " is not linear or packed");
  if (p.math != Math::exact && p.math != Math::tf32 && p.math != Math::tf32x3)
    return fail(StatusCode::invalid_argument, "math " + str(static_cast<int>(p.math)) + " is not exact, tf32 or 3xtf32");
  return Status::success();
}

}  // namespace

int64_t x_elems(const Problem& p) { return std::max<int64_t>(p.batch, 1) * p.x_stride(); }
int64_t w_elems(const Problem& p) { return 2 * p.hidden * p.in_features; }

Status check_options(const BackwardOptions& o) {
  if (o.policy != Policy::save && o.policy != Policy::recompute)
    return fail(StatusCode::invalid_argument, "policy " + str(static_cast<int>(o.policy)) + " is not save or recompute");
  if (o.placement != GatePlacement::automatic && o.placement != GatePlacement::epilogue &&
      o.placement != GatePlacement::prologue) {
    return fail(StatusCode::invalid_argument,
                "gate placement " + str(static_cast<int>(o.placement)) + " is not automatic, epilogue or prologue");
  }
  if (o.dh_storage != DhStorage::workspace && o.dh_storage != DhStorage::tensors) {
    return fail(StatusCode::invalid_argument,
                "dH storage " + str(static_cast<int>(o.dh_storage)) + " is not workspace or tensors");
  }
  if (o.dh_storage == DhStorage::tensors && o.placement == GatePlacement::prologue) {
    return fail(StatusCode::invalid_argument,
                "gate placement 'prologue' computes dH inside the GEMMs and stores none; DhStorage::tensors "
                "stores dH in BackwardTensors::dh, so it takes the automatic or epilogue placement");
  }
  return Status::success();
}

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
  const int64_t w = two_d < 0 ? -1 : checked_mul(two_d, p.in_features);
  const int64_t x = checked_mul(std::max<int64_t>(p.batch, 1), p.x_stride());
  const int64_t h = two_d < 0 ? -1 : checked_mul(std::max<int64_t>(p.batch, 1), two_d);
  const int64_t limit = std::numeric_limits<int64_t>::max() / 4;
  if (w < 0 || w > limit || x < 0 || x > limit || h < 0 || h > limit) {
    return fail(StatusCode::invalid_argument,
                "problem too large: B=" + str(p.batch) + " I=" + str(p.in_features) +
                    " D=" + str(p.hidden) + " overflows 64-bit element counts");
  }
  return Status::success();
}

Status check_pointers(const Problem& p, const std::vector<Range>& inputs, const std::vector<Range>& outputs) {
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

Status check_math_on_device(const Problem& p, const DeviceTraits& dev) {
  if (p.dtype == DType::f32 && p.math != Math::exact && dev.cc_major < 8) {
    return fail(StatusCode::unsupported, std::string(to_string(p.math)) +
                                             " math needs compute capability 8.0 or newer");
  }
  return Status::success();
}

}  // namespace swiglu::detail

namespace swiglu {

using detail::check_dims;
using detail::check_pointers;
using detail::fail;
using detail::Range;
using detail::w_elems;
using detail::x_elems;

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

Status validate_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o,
                         const void* workspace, size_t workspace_bytes) {
  if (Status s = check_dims(p); !s.ok()) return s;
  if (Status s = detail::check_options(o); !s.ok()) return s;
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
  // dH written over the saved H: saved is then an output (read by the same thread that writes it).
  const bool dh_over_saved = o.dh_storage == DhStorage::tensors && o.policy == Policy::save && t.dh == t.saved;
  if (o.policy == Policy::save && !dh_over_saved) in.push_back({"saved", t.saved, B * 2 * D});
  std::vector<Range> out;
  if (dh_over_saved) {
    out.push_back({"dh (over saved)", t.dh, B * 2 * D});
  } else if (o.dh_storage == DhStorage::tensors) {
    out.push_back({"dh", t.dh, B * 2 * D});
  }
  if (o.grads.dx) out.push_back({"dx", t.dx, B * I});
  if (o.grads.dw) out.push_back({"dw", t.dw, w_elems(p)});
  if (o.grads.dw && p.bias) out.push_back({"dbias", t.dbias, 2 * D});
  // The tensors first, so that their messages win over the workspace's.
  if (Status s = check_pointers(p, in, out); !s.ok()) return s;
  size_t need = 0;  // for the current device
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

}  // namespace swiglu
