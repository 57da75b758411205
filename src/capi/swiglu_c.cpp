// The C ABI (include/swiglu/swiglu_c.h) over the C++ library: argument translation, the
// thread-local error message, and no exception ever crossing the boundary.
#include "swiglu/swiglu_c.h"

#include <exception>
#include <string>

#include "swiglu/swiglu.hpp"

namespace {

thread_local std::string g_last_error;

swiglu_status to_c(const swiglu::Status& s) {
  g_last_error = s.ok() ? std::string() : s.message;
  switch (s.code) {
    case swiglu::StatusCode::ok: return SWIGLU_OK;
    case swiglu::StatusCode::invalid_argument: return SWIGLU_INVALID_ARGUMENT;
    case swiglu::StatusCode::unsupported: return SWIGLU_UNSUPPORTED;
    case swiglu::StatusCode::cuda_error: return SWIGLU_CUDA_ERROR;
    case swiglu::StatusCode::cublas_error: return SWIGLU_CUBLAS_ERROR;
    case swiglu::StatusCode::internal: return SWIGLU_INTERNAL;
  }
  return SWIGLU_INTERNAL;
}

swiglu::Status invalid(std::string message) {
  return swiglu::Status{swiglu::StatusCode::invalid_argument, std::move(message)};
}

// SWIGLU_DTYPE_* as DType.
constexpr swiglu::DType kDtypes[] = {swiglu::DType::f32, swiglu::DType::f16, swiglu::DType::bf16};

// The C struct as a Problem; every enum checked.
swiglu::Status to_problem(const swiglu_problem* c, swiglu::Problem* p) {
  if (c == nullptr) return invalid("problem is NULL");
  if (c->dtype < SWIGLU_DTYPE_F32 || c->dtype > SWIGLU_DTYPE_BF16)
    return invalid("dtype " + std::to_string(c->dtype) + " is not SWIGLU_DTYPE_F32, _F16 or _BF16");
  if (c->layout != SWIGLU_LAYOUT_LINEAR && c->layout != SWIGLU_LAYOUT_PACKED)
    return invalid("layout " + std::to_string(c->layout) + " is not SWIGLU_LAYOUT_LINEAR or _PACKED");
  if (c->math != SWIGLU_MATH_EXACT && c->math != SWIGLU_MATH_TF32 && c->math != SWIGLU_MATH_TF32X3)
    return invalid("math " + std::to_string(c->math) +
                   " is not SWIGLU_MATH_EXACT, _TF32 or _TF32X3");
  p->batch = c->batch;
  p->in_features = c->in_features;
  p->hidden = c->hidden;
  p->ldx = c->ldx;
  p->dtype = kDtypes[c->dtype];
  p->layout = c->layout == SWIGLU_LAYOUT_LINEAR ? swiglu::Layout::linear : swiglu::Layout::packed;
  p->bias = c->bias != 0;
  static constexpr swiglu::Math kMaths[] = {swiglu::Math::exact, swiglu::Math::tf32,
                                             swiglu::Math::tf32x3};
  p->math = kMaths[c->math];
  return swiglu::Status::success();
}

// A quantiser's input dtype and blocks, checked.
swiglu::Status to_quantize_args(int32_t in_dtype, int32_t blocks, swiglu::DType* in, swiglu::Fp8Blocks* b) {
  if (in_dtype < SWIGLU_DTYPE_F32 || in_dtype > SWIGLU_DTYPE_BF16)
    return invalid("in_dtype " + std::to_string(in_dtype) + " is not SWIGLU_DTYPE_F32, _F16 or _BF16");
  if (blocks != SWIGLU_FP8_BLOCKS_1X128 && blocks != SWIGLU_FP8_BLOCKS_128X128)
    return invalid("blocks " + std::to_string(blocks) + " is not SWIGLU_FP8_BLOCKS_1X128 or _128X128");
  *in = kDtypes[in_dtype];
  *b = blocks == SWIGLU_FP8_BLOCKS_1X128 ? swiglu::Fp8Blocks::row_1x128 : swiglu::Fp8Blocks::tile_128x128;
  return swiglu::Status::success();
}

// The C FP8 struct as an Fp8Problem; every enum checked.
swiglu::Status to_fp8_problem(const swiglu_fp8_problem* c, swiglu::Fp8Problem* q) {
  if (c == nullptr) return invalid("problem is NULL");
  const auto scaling = [](int32_t v, swiglu::Fp8Scaling* out) {
    if (v < SWIGLU_FP8_SCALE_TENSOR || v > SWIGLU_FP8_SCALE_CHANNEL) return false;
    static constexpr swiglu::Fp8Scaling kScalings[] = {swiglu::Fp8Scaling::tensor, swiglu::Fp8Scaling::blocks,
                                                      swiglu::Fp8Scaling::channel};
    *out = kScalings[v];
    return true;
  };
  if (!scaling(c->x_scaling, &q->x_scaling))
    return invalid("x_scaling " + std::to_string(c->x_scaling) + " is not SWIGLU_FP8_SCALE_TENSOR or _BLOCKS");
  if (!scaling(c->w_scaling, &q->w_scaling))
    return invalid("w_scaling " + std::to_string(c->w_scaling) + " is not SWIGLU_FP8_SCALE_TENSOR, _BLOCKS or _CHANNEL");
  if (c->out_dtype != SWIGLU_DTYPE_BF16 && c->out_dtype != SWIGLU_DTYPE_F16)
    return invalid("out_dtype " + std::to_string(c->out_dtype) + " is not SWIGLU_DTYPE_BF16 or _F16");
  q->batch = c->batch;
  q->in_features = c->in_features;
  q->hidden = c->hidden;
  q->ldx = c->ldx;
  q->out = c->out_dtype == SWIGLU_DTYPE_BF16 ? swiglu::DType::bf16 : swiglu::DType::f16;
  q->bias = c->bias != 0;
  q->z_e4m3 = c->z_e4m3 != 0;
  return swiglu::Status::success();
}

swiglu::Status to_options(int32_t policy, int32_t grad_dx, int32_t grad_dw, int32_t dh_storage,
                          swiglu::BackwardOptions* o) {
  if (policy != SWIGLU_POLICY_SAVE && policy != SWIGLU_POLICY_RECOMPUTE)
    return invalid("policy " + std::to_string(policy) + " is not SWIGLU_POLICY_SAVE or _RECOMPUTE");
  if (dh_storage != SWIGLU_DH_WORKSPACE && dh_storage != SWIGLU_DH_TENSORS)
    return invalid("dh_storage " + std::to_string(dh_storage) + " is not SWIGLU_DH_WORKSPACE or _TENSORS");
  o->policy = policy == SWIGLU_POLICY_SAVE ? swiglu::Policy::save : swiglu::Policy::recompute;
  o->dh_storage = dh_storage == SWIGLU_DH_TENSORS ? swiglu::DhStorage::tensors : swiglu::DhStorage::workspace;
  o->grads.dx = grad_dx != 0;
  o->grads.dw = grad_dw != 0;
  return swiglu::Status::success();
}

// Runs f, turning any exception (an allocation failure inside the library) into SWIGLU_INTERNAL.
template <class F>
swiglu_status guarded(F&& f) {
  try {
    return to_c(f());
  } catch (const std::exception& e) {
    return to_c(swiglu::Status{swiglu::StatusCode::internal, std::string("internal error: ") + e.what()});
  } catch (...) {
    return to_c(swiglu::Status{swiglu::StatusCode::internal, "internal error"});
  }
}

}  // namespace

extern "C" {

int32_t swiglu_abi_version(void) { return SWIGLU_C_ABI_VERSION; }

const char* swiglu_last_error(void) { return g_last_error.c_str(); }

swiglu_status swiglu_forward(const swiglu_problem* p, const void* x, const void* w, const void* bias,
                             void* z, void* saved, void* stream) {
  return guarded([&] {
    swiglu::Problem prob;
    if (swiglu::Status s = to_problem(p, &prob); !s.ok()) return s;
    swiglu::ForwardOptions o;
    o.saved = saved;
    return swiglu::forward(prob, x, w, bias, z, static_cast<cudaStream_t>(stream), o);
  });
}

size_t swiglu_backward_workspace_bytes3(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                        int32_t grad_dw, int32_t dh_storage, size_t max_workspace_bytes) {
  size_t bytes = 0;
  guarded([&] {
    swiglu::Problem prob;
    swiglu::BackwardOptions o;
    if (swiglu::Status s = to_problem(p, &prob); !s.ok()) return s;
    if (swiglu::Status s = to_options(policy, grad_dx, grad_dw, dh_storage, &o); !s.ok()) return s;
    o.max_workspace_bytes = max_workspace_bytes;
    return swiglu::backward_workspace_bytes(prob, o, &bytes);
  });
  return bytes;
}

size_t swiglu_backward_workspace_bytes2(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                        int32_t grad_dw, int32_t dh_storage) {
  return swiglu_backward_workspace_bytes3(p, policy, grad_dx, grad_dw, dh_storage, 0);
}

size_t swiglu_backward_workspace_bytes(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                       int32_t grad_dw) {
  return swiglu_backward_workspace_bytes2(p, policy, grad_dx, grad_dw, SWIGLU_DH_WORKSPACE);
}

swiglu_status swiglu_backward3(const swiglu_problem* p, int32_t policy, int32_t grad_dx, int32_t grad_dw,
                               int32_t dh_storage, size_t max_workspace_bytes, const void* x, const void* w,
                               const void* bias, const void* dz, const void* saved, void* dx, void* dw, void* dbias,
                               void* dh,
                               void* workspace, size_t workspace_bytes, void* stream) {
  return guarded([&] {
    swiglu::Problem prob;
    swiglu::BackwardOptions o;
    if (swiglu::Status s = to_problem(p, &prob); !s.ok()) return s;
    if (swiglu::Status s = to_options(policy, grad_dx, grad_dw, dh_storage, &o); !s.ok()) return s;
    o.max_workspace_bytes = max_workspace_bytes;
    swiglu::BackwardTensors t;
    t.x = x;
    t.w = w;
    t.bias = bias;
    t.dz = dz;
    t.saved = saved;
    t.dx = dx;
    t.dw = dw;
    t.dbias = dbias;
    t.dh = dh;
    return swiglu::backward(prob, t, o, workspace, workspace_bytes,
                            static_cast<cudaStream_t>(stream));
  });
}

swiglu_status swiglu_backward2(const swiglu_problem* p, int32_t policy, int32_t grad_dx, int32_t grad_dw,
                               int32_t dh_storage, const void* x, const void* w, const void* bias,
                               const void* dz, const void* saved, void* dx, void* dw, void* dbias, void* dh,
                               void* workspace, size_t workspace_bytes, void* stream) {
  return swiglu_backward3(p, policy, grad_dx, grad_dw, dh_storage, 0, x, w, bias, dz, saved, dx, dw, dbias, dh,
                          workspace, workspace_bytes, stream);
}

swiglu_status swiglu_backward(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                              int32_t grad_dw, const void* x, const void* w, const void* bias,
                              const void* dz, const void* saved, void* dx, void* dw, void* dbias,
                              void* workspace, size_t workspace_bytes, void* stream) {
  return swiglu_backward2(p, policy, grad_dx, grad_dw, SWIGLU_DH_WORKSPACE, x, w, bias, dz, saved, dx, dw, dbias,
                          nullptr, workspace, workspace_bytes, stream);
}

swiglu_status swiglu_forward_fp8(const swiglu_fp8_problem* p, const void* x, const float* x_scale, const void* w,
                                 const float* w_scale, const void* bias, void* z, float* z_scale, float* z_amax,
                                 void* saved, void* stream) {
  return guarded([&] {
    swiglu::Fp8Problem q;
    if (swiglu::Status s = to_fp8_problem(p, &q); !s.ok()) return s;
    swiglu::Fp8Tensors t;
    t.x = x;
    t.x_scale = x_scale;
    t.w = w;
    t.w_scale = w_scale;
    t.bias = bias;
    t.z = z;
    t.z_scale = z_scale;
    t.z_amax = z_amax;
    t.saved = saved;
    return swiglu::forward_fp8(q, t, static_cast<cudaStream_t>(stream));
  });
}

swiglu_status swiglu_check_fp8_scales(const swiglu_fp8_problem* p, const float* x_scale, const float* w_scale,
                                      void* stream) {
  return guarded([&] {
    swiglu::Fp8Problem q;
    if (swiglu::Status s = to_fp8_problem(p, &q); !s.ok()) return s;
    swiglu::Fp8Tensors t;
    t.x_scale = x_scale;
    t.w_scale = w_scale;
    return swiglu::check_fp8_scales(q, t, static_cast<cudaStream_t>(stream));
  });
}

swiglu_status swiglu_quantize_e4m3(int32_t in_dtype, const void* a, int64_t lda, int64_t rows, int64_t cols,
                                   int32_t blocks, void* q, int64_t ldq, float* scale, void* stream) {
  return guarded([&] {
    swiglu::DType in = swiglu::DType::f32;
    swiglu::Fp8Blocks b = swiglu::Fp8Blocks::row_1x128;
    if (swiglu::Status s = to_quantize_args(in_dtype, blocks, &in, &b); !s.ok()) return s;
    return swiglu::quantize_e4m3(in, a, lda, rows, cols, b, q, ldq, scale, static_cast<cudaStream_t>(stream));
  });
}

swiglu_status swiglu_quantize_e4m3_transposed(int32_t in_dtype, const void* a, int64_t lda, int64_t rows,
                                              int64_t cols, int32_t blocks, void* q, int64_t ldq, float* scale,
                                              void* qt, int64_t ldqt, float* scale_t, void* stream) {
  return guarded([&] {
    swiglu::DType in = swiglu::DType::f32;
    swiglu::Fp8Blocks b = swiglu::Fp8Blocks::row_1x128;
    if (swiglu::Status s = to_quantize_args(in_dtype, blocks, &in, &b); !s.ok()) return s;
    return swiglu::quantize_e4m3_transposed(in, a, lda, rows, cols, b, q, ldq, scale, qt, ldqt, scale_t,
                                            static_cast<cudaStream_t>(stream));
  });
}

size_t swiglu_backward_fp8_workspace_bytes(const swiglu_fp8_problem* p) {
  size_t bytes = 0;
  guarded([&] {
    swiglu::Fp8Problem q;
    if (swiglu::Status s = to_fp8_problem(p, &q); !s.ok()) return s;
    return swiglu::backward_fp8_workspace_bytes(q, &bytes);
  });
  return bytes;
}

swiglu_status swiglu_backward_fp8(const swiglu_fp8_problem* p, const void* dz, const void* saved, const void* wt,
                                  const float* wt_scale, const void* xt, int64_t ldxt, const float* xt_scale, void* dx,
                                  int32_t dx_dtype, void* dw, int32_t dw_dtype, int32_t accumulate_dw, void* dbias,
                                  int32_t dbias_dtype, void* workspace, size_t workspace_bytes, void* stream) {
  return guarded([&] {
    swiglu::Fp8Problem q;
    if (swiglu::Status s = to_fp8_problem(p, &q); !s.ok()) return s;
    swiglu::Fp8BackwardTensors t;
    const auto dtype = [](const char* name, int32_t v, swiglu::DType* out) {
      if (v < SWIGLU_DTYPE_F32 || v > SWIGLU_DTYPE_BF16)
        return invalid(std::string(name) + " " + std::to_string(v) + " is not SWIGLU_DTYPE_F32, _F16 or _BF16");
      *out = kDtypes[v];
      return swiglu::Status::success();
    };
    if (swiglu::Status s = dtype("dx_dtype", dx_dtype, &t.dx_dtype); !s.ok()) return s;
    if (swiglu::Status s = dtype("dw_dtype", dw_dtype, &t.dw_dtype); !s.ok()) return s;
    if (swiglu::Status s = dtype("dbias_dtype", dbias_dtype, &t.dbias_dtype); !s.ok()) return s;
    t.dz = dz;
    t.saved = saved;
    t.wt = wt;
    t.wt_scale = wt_scale;
    t.xt = xt;
    t.ldxt = ldxt;
    t.xt_scale = xt_scale;
    t.dx = dx;
    t.dw = dw;
    t.accumulate_dw = accumulate_dw != 0;
    t.dbias = dbias;
    return swiglu::backward_fp8(q, t, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
  });
}

}  // extern "C"

