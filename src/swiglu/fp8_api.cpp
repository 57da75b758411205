// The public FP8 entry points (swiglu.hpp): forward_fp8's and backward_fp8's checks and their
// mapping onto the sm_90a launchers (swiglu/fp8.hpp), and quantize_e4m3.
#include <cuda_runtime_api.h>

#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "kernels/params.cuh"
#include "swiglu/fp8.hpp"
#include "swiglu/validate.hpp"

namespace swiglu {
namespace {

using detail::aligned;
using detail::fail;

std::string str(int64_t v) { return std::to_string(v); }

bool known(Fp8Scaling s) { return s == Fp8Scaling::tensor || s == Fp8Scaling::blocks || s == Fp8Scaling::channel; }

// The number of scales a layout holds for X (rows = B) or W12 (rows = 2D).
int64_t scale_count(Fp8Scaling s, int64_t rows, int64_t d, int64_t k_blocks, bool is_w) {
  switch (s) {
    case Fp8Scaling::tensor: return 1;
    case Fp8Scaling::channel: return rows;
    case Fp8Scaling::blocks: return is_w ? 2 * ((d + 127) / 128) * k_blocks : rows * k_blocks;
  }
  return 0;
}

// A device range in bytes, for the overlap checks.
struct Bytes {
  const char* name;
  const void* ptr;
  int64_t bytes;
};

bool overlaps(const Bytes& a, const Bytes& b) {
  const auto a0 = reinterpret_cast<uintptr_t>(a.ptr), b0 = reinterpret_cast<uintptr_t>(b.ptr);
  return a.ptr != nullptr && b.ptr != nullptr && a0 < b0 + static_cast<uintptr_t>(b.bytes) &&
         b0 < a0 + static_cast<uintptr_t>(a.bytes);
}

// An output that overlaps an input or an earlier output, named (after `prefix`).
Status no_overlaps(const std::vector<Bytes>& outputs, const std::vector<Bytes>& inputs, const std::string& prefix = "") {
  for (size_t o = 0; o < outputs.size(); ++o) {
    for (const Bytes& in : inputs) {
      if (overlaps(outputs[o], in))
        return fail(StatusCode::invalid_argument, prefix + outputs[o].name + " overlaps " + in.name);
    }
    for (size_t o2 = 0; o2 < o; ++o2) {
      if (overlaps(outputs[o], outputs[o2]))
        return fail(StatusCode::invalid_argument, prefix + outputs[o].name + " overlaps " + outputs[o2].name);
    }
  }
  return Status::success();
}

Status check_dims(const Fp8Problem& p) {
  if (!known(p.x_scaling) || p.x_scaling == Fp8Scaling::channel) {
    return fail(StatusCode::invalid_argument,
                "x_scaling " + str(static_cast<int>(p.x_scaling)) + " is not tensor or blocks (X has no channel scales)");
  }
  if (!known(p.w_scaling))
    return fail(StatusCode::invalid_argument, "w_scaling " + str(static_cast<int>(p.w_scaling)) + " is not tensor, blocks or channel");
  if (p.out != DType::bf16 && p.out != DType::f16) {
    return fail(StatusCode::invalid_argument,
                "out must be bf16 or fp16 (the dtype of the bias, H and a non-e4m3 Z), got " + str(static_cast<int>(p.out)));
  }
  if (p.batch < 0) return fail(StatusCode::invalid_argument, "batch must be >= 0, got " + str(p.batch));
  if (p.in_features <= 0) return fail(StatusCode::invalid_argument, "in_features must be > 0, got " + str(p.in_features));
  if (p.hidden <= 0) return fail(StatusCode::invalid_argument, "hidden must be > 0, got " + str(p.hidden));
  if (p.ldx != 0 && p.ldx < p.in_features) {
    return fail(StatusCode::invalid_argument,
                "ldx (" + str(p.ldx) + ") is smaller than in_features (" + str(p.in_features) + ")");
  }
  if (p.in_features % 16 != 0 || p.x_stride() % 16 != 0) {
    return fail(StatusCode::invalid_argument, "in_features (" + str(p.in_features) + ") and X's row stride (" +
                                                  str(p.x_stride()) + ") must be multiples of 16: the FP8 "
                                                  "kernel loads 16-byte rows by TMA");
  }
  // Why this bound: every byte count below (the largest is H, B·2D·2) then fits in int64.
  const int64_t limit = int64_t{1} << 58;
  const auto too_large = [&](int64_t a, int64_t b) { return a > limit / std::max<int64_t>(b, 1); };
  if (p.hidden > limit || too_large(std::max<int64_t>(p.batch, 1), p.x_stride()) ||
      too_large(2 * p.hidden, p.in_features) || too_large(std::max<int64_t>(p.batch, 1), 2 * p.hidden)) {
    return fail(StatusCode::invalid_argument, "problem too large: B=" + str(p.batch) + " I=" + str(p.in_features) +
                                                  " D=" + str(p.hidden) + " overflows 64-bit byte counts");
  }
  return Status::success();
}

}  // namespace

std::string_view to_string(Fp8Scaling s) {
  switch (s) {
    case Fp8Scaling::tensor: return "tensor";
    case Fp8Scaling::blocks: return "blocks";
    case Fp8Scaling::channel: return "channel";
  }
  return "?";
}

Status validate_forward_fp8(const Fp8Problem& p, const Fp8Tensors& t) {
  if (Status s = check_dims(p); !s.ok()) return s;
  if (p.batch == 0) return Status::success();
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  const int64_t k_blocks = (I + 127) / 128, d_blocks = (D + 127) / 128;
  const int64_t es = static_cast<int64_t>(dtype_size(p.out));
  const auto null = [](const char* name) { return fail(StatusCode::invalid_argument, std::string(name) + " is null"); };
  if (t.x == nullptr) return null("x");
  if (t.w == nullptr) return null("w");
  if (t.x_scale == nullptr) return null("x_scale");
  if (t.w_scale == nullptr) return null("w_scale");
  if (p.bias && t.bias == nullptr) return null("bias (Fp8Problem::bias is set)");
  if (t.z == nullptr && t.saved == nullptr) return fail(StatusCode::invalid_argument, "z and saved are both null: nothing to write");
  if (p.z_e4m3 && t.z != nullptr && t.z_scale == nullptr) return null("z_scale (z_e4m3 writes Z's scales)");
  if (!p.z_e4m3 && (t.z_scale != nullptr || t.z_amax != nullptr))
    return fail(StatusCode::invalid_argument, "z_scale and z_amax are for z_e4m3 only (Z in e4m3); set Fp8Problem::z_e4m3 or pass null");
  if (p.z_e4m3 && t.z == nullptr && (t.z_scale != nullptr || t.z_amax != nullptr))
    return fail(StatusCode::invalid_argument, "z_scale and z_amax describe Z, and z is null");
  if (!aligned(t.x, 16) || !aligned(t.w, 16)) return fail(StatusCode::invalid_argument, "x and w must be 16-byte aligned (TMA)");
  if (!aligned(t.x_scale, 4) || !aligned(t.w_scale, 4) || !aligned(t.z_scale, 4) || !aligned(t.z_amax, 4))
    return fail(StatusCode::invalid_argument, "the scales and z_amax must be 4-byte aligned (fp32)");
  const int64_t z_es = p.z_e4m3 ? 1 : es;
  if ((p.bias && !aligned(t.bias, es)) || !aligned(t.saved, es) || !aligned(t.z, z_es)) {
    return fail(StatusCode::invalid_argument, "bias, z and saved must be aligned to their element size (" +
                                                  std::string(to_string(p.out)) + ")");
  }

  const std::vector<Bytes> inputs = {
      {"x", t.x, (B - 1) * p.x_stride() + I},
      {"w", t.w, 2 * D * I},
      {"x_scale", t.x_scale, 4 * scale_count(p.x_scaling, B, D, k_blocks, false)},
      {"w_scale", t.w_scale, 4 * scale_count(p.w_scaling, 2 * D, D, k_blocks, true)},
      {"bias", p.bias ? t.bias : nullptr, 2 * D * es}};
  const std::vector<Bytes> outputs = {{"z", t.z, B * D * z_es},
                                      {"z_scale", t.z != nullptr ? t.z_scale : nullptr, B * d_blocks * 4},
                                      {"z_amax", t.z != nullptr ? t.z_amax : nullptr, 4},
                                      {"saved", t.saved, B * 2 * D * es}};
  return no_overlaps(outputs, inputs);
}

std::string_view forward_fp8_kernel(const Fp8Problem& p) {
  return detail::fp8_forward_decode(p.batch) ? "sm90a-fp8-decode" : "sm90a-fp8";
}

Status forward_fp8(const Fp8Problem& p, const Fp8Tensors& t, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::forward_fp8"};
  if (Status s = validate_forward_fp8(p, t); !s.ok()) return s;
  if (p.batch == 0) return Status::success();
  const auto kind = [](Fp8Scaling s) {
    return s == Fp8Scaling::tensor ? kernels::Fp8Scale::tensor
           : s == Fp8Scaling::channel ? kernels::Fp8Scale::channel
                                      : kernels::Fp8Scale::blocks;
  };
  kernels::Fp8FwdParams q;
  q.base.x = t.x;
  q.base.w = t.w;
  q.base.bias = p.bias ? t.bias : nullptr;
  q.base.has_bias = p.bias ? 1 : 0;
  q.base.z = t.z;
  q.base.saved = t.saved;
  q.base.B = p.batch;
  q.base.I = p.in_features;
  q.base.D = p.hidden;
  q.base.ldx = p.x_stride();
  // Paired stores (kernels/params.cuh): 16-byte aligned outputs and D a multiple of 8, so a
  // thread's column pair is in range or out, and aligned, in Z of either width and in H.
  q.base.vec_store = aligned(t.z, 16) && aligned(t.saved, 16) && p.hidden % 8 == 0 ? 1 : 0;
  q.x_scale = t.x_scale;
  q.w_scale = t.w_scale;
  q.x_kind = kind(p.x_scaling);
  q.w_kind = kind(p.w_scaling);
  q.k_blocks = (p.in_features + 127) / 128;
  q.d_blocks = (p.hidden + 127) / 128;
  q.z_scale = t.z != nullptr ? t.z_scale : nullptr;
  q.z_amax = t.z != nullptr ? t.z_amax : nullptr;
  return detail::fp8_forward_sm90(q, p.out, p.z_e4m3, stream);
}

Status backward_fp8_workspace_bytes(const Fp8Problem& p, size_t* bytes) {
  if (bytes == nullptr) return fail(StatusCode::invalid_argument, "bytes is null");
  *bytes = 0;
  if (Status s = check_dims(p); !s.ok()) return s;
  if (p.hidden % 16 != 0) {
    return fail(StatusCode::invalid_argument, "hidden (" + str(p.hidden) +
                                                  ") must be a multiple of 16 for the FP8 backward: the dU half "
                                                  "of dH and of W12^T starts 16-byte aligned");
  }
  if (p.batch > 0) *bytes = detail::fp8_backward_workspace(p.batch, p.in_features, p.hidden).bytes;
  return Status::success();
}

size_t backward_fp8_workspace_bytes(const Fp8Problem& p) {
  size_t bytes = 0;
  return backward_fp8_workspace_bytes(p, &bytes).ok() ? bytes : 0;
}

Status validate_backward_fp8(const Fp8Problem& p, const Fp8BackwardTensors& t, const void* workspace,
                             size_t workspace_bytes) {
  size_t need = 0;
  if (Status s = backward_fp8_workspace_bytes(p, &need); !s.ok()) return s;
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  const auto grad_dtype = [](DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; };
  if (!grad_dtype(t.dx_dtype) || !grad_dtype(t.dw_dtype) || !grad_dtype(t.dbias_dtype)) {
    return fail(StatusCode::invalid_argument, "dx_dtype, dw_dtype and dbias_dtype must be fp32, bf16 or fp16, got " +
                                                  str(static_cast<int>(t.dx_dtype)) + ", " +
                                                  str(static_cast<int>(t.dw_dtype)) + ", " +
                                                  str(static_cast<int>(t.dbias_dtype)));
  }
  if (t.dx == nullptr && t.dw == nullptr && t.dbias == nullptr)
    return fail(StatusCode::invalid_argument, "dx, dw and dbias are all null: no gradient to compute");
  if (t.dbias != nullptr && !p.bias)
    return fail(StatusCode::invalid_argument, "dbias is set but Fp8Problem::bias is false: the layer has no bias");
  const auto null = [](const char* name) { return fail(StatusCode::invalid_argument, std::string(name) + " is null"); };
  if (B == 0) return Status::success();  // only dw and dbias are written (zeros)
  if (t.dz == nullptr) return null("dz");
  if (t.saved == nullptr) return null("saved (the forward's H; the FP8 backward has the save policy only)");
  if (t.dx != nullptr && t.wt == nullptr) return null("wt (W12^T, for dX)");
  if (t.dx != nullptr && t.wt_scale == nullptr) return null("wt_scale (for dX)");
  if (t.dw != nullptr && t.xt == nullptr) return null("xt (X^T, for dW)");
  if (t.dw != nullptr && t.xt_scale == nullptr) return null("xt_scale (for dW)");
  if (t.dw != nullptr && (t.ldxt < B || t.ldxt % 16 != 0)) {
    return fail(StatusCode::invalid_argument, "ldxt (" + str(t.ldxt) + ") must be >= batch (" + str(B) +
                                                  ") and a multiple of 16: X^T's rows are loaded by TMA");
  }
  if (workspace == nullptr || workspace_bytes < need) {
    return fail(StatusCode::invalid_argument, "the workspace needs " + std::to_string(need) + " bytes (" +
                                                  "backward_fp8_workspace_bytes), got " +
                                                  (workspace == nullptr ? std::string("null") : std::to_string(workspace_bytes)));
  }
  const int64_t es = static_cast<int64_t>(dtype_size(p.out));
  if (!aligned(t.dz, es) || !aligned(t.saved, es)) {
    return fail(StatusCode::invalid_argument,
                "dz and saved must be aligned to their element size (" + std::string(to_string(p.out)) + ")");
  }
  if ((t.dx != nullptr && !aligned(t.wt, 16)) || (t.dw != nullptr && !aligned(t.xt, 16)) || !aligned(workspace, 256))
    return fail(StatusCode::invalid_argument, "wt and xt must be 16-byte aligned (TMA), the workspace 256-byte aligned");
  if (!aligned(t.wt_scale, 4) || !aligned(t.xt_scale, 4))
    return fail(StatusCode::invalid_argument, "the scales must be 4-byte aligned (fp32)");
  if (!aligned(t.dx, dtype_size(t.dx_dtype)) || !aligned(t.dw, dtype_size(t.dw_dtype)) ||
      !aligned(t.dbias, dtype_size(t.dbias_dtype)))
    return fail(StatusCode::invalid_argument, "dx, dw and dbias must be aligned to their element sizes");

  const int64_t k_blocks = (I + 127) / 128, d_blocks = (D + 127) / 128, b_blocks = (B + 127) / 128;
  const std::vector<Bytes> inputs = {{"dz", t.dz, B * D * es},
                                     {"saved", t.saved, B * 2 * D * es},
                                     {"wt", t.dx != nullptr ? t.wt : nullptr, I * 2 * D},
                                     {"wt_scale", t.dx != nullptr ? t.wt_scale : nullptr, 4 * 2 * k_blocks * d_blocks},
                                     {"xt", t.dw != nullptr ? t.xt : nullptr, (I - 1) * t.ldxt + B},
                                     {"xt_scale", t.dw != nullptr ? t.xt_scale : nullptr, 4 * I * b_blocks}};
  const std::vector<Bytes> outputs = {
      {"dx", t.dx, B * I * static_cast<int64_t>(dtype_size(t.dx_dtype))},
      {"dw", t.dw, 2 * D * I * static_cast<int64_t>(dtype_size(t.dw_dtype))},
      {"dbias", t.dbias, 2 * D * static_cast<int64_t>(dtype_size(t.dbias_dtype))},
      {"workspace", workspace, static_cast<int64_t>(need)}};
  return no_overlaps(outputs, inputs);
}

Status backward_fp8(const Fp8Problem& p, const Fp8BackwardTensors& t, void* workspace, size_t workspace_bytes,
                    cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::backward_fp8"};
  if (Status s = validate_backward_fp8(p, t, workspace, workspace_bytes); !s.ok()) return s;
  if (p.batch == 0) {
    // dW12 and dbias of an empty batch are zero (all-zero bytes in every float type).
    const auto zero = [&](void* ptr, size_t bytes) -> Status {
      const cudaError_t e = ptr != nullptr ? cudaMemsetAsync(ptr, 0, bytes, stream) : cudaSuccess;
      return e == cudaSuccess ? Status::success()
                              : fail(StatusCode::cuda_error, std::string("backward_fp8: ") + cudaGetErrorString(e));
    };
    const auto n = static_cast<size_t>(2 * p.hidden);
    if (Status s = zero(t.accumulate_dw ? nullptr : t.dw, n * static_cast<size_t>(p.in_features) * dtype_size(t.dw_dtype));
        !s.ok())
      return s;
    return zero(t.dbias, n * dtype_size(t.dbias_dtype));
  }
  detail::Fp8Backward b;
  b.dtype = p.out;
  b.rows = p.batch;
  b.in = p.in_features;
  b.d = p.hidden;
  b.dz = t.dz;
  b.h = t.saved;
  b.w12t = t.wt;
  b.w12t_scale = t.wt_scale;
  b.xt = t.xt;
  b.ldxt = t.dw != nullptr ? t.ldxt : (p.batch + 15) / 16 * 16;
  b.xt_scale = t.xt_scale;
  b.dx = t.dx;
  b.dx_dtype = t.dx_dtype;
  b.dw = t.dw;
  b.dw_dtype = t.dw_dtype;
  b.accumulate = t.accumulate_dw;
  b.dbias = t.dbias;
  b.dbias_dtype = t.dbias_dtype;
  return detail::backward_fp8_sm90(b, workspace, workspace_bytes, stream);
}

namespace detail {

int64_t fp8_scale_count(const Fp8Problem& p, bool is_w) {
  const int64_t k_blocks = (p.in_features + 127) / 128;
  return is_w ? scale_count(p.w_scaling, 2 * p.hidden, p.hidden, k_blocks, true)
              : scale_count(p.x_scaling, p.batch, p.hidden, k_blocks, false);
}

std::string describe_bad_scale(const Fp8Problem& p, bool is_w, const float* scale, int64_t n) {
  int64_t i = 0;
  while (i < n && std::isfinite(scale[i]) && scale[i] > 0.0f) ++i;
  if (i == n) return {};
  const int64_t k_blocks = (p.in_features + 127) / 128, d_blocks = (p.hidden + 127) / 128;
  const Fp8Scaling s = is_w ? p.w_scaling : p.x_scaling;
  std::string where;
  if (s == Fp8Scaling::tensor) {
    where = "the operand's one scale";
  } else if (s == Fp8Scaling::channel) {
    where = std::string(i < p.hidden ? "Wa" : "Wb") + ", row " + str(i % p.hidden);
  } else if (is_w) {
    const int64_t half = d_blocks * k_blocks;
    where = std::string(i < half ? "Wa" : "Wb") + ", row block " + str(i % half / k_blocks) + ", K block " +
            str(i % k_blocks);
  } else {
    where = "row " + str(i / k_blocks) + ", K block " + str(i % k_blocks);
  }
  char value[32];
  std::snprintf(value, sizeof value, "%g", static_cast<double>(scale[i]));
  return std::string(is_w ? "w_scale[" : "x_scale[") + str(i) + "] (" + where + ") is " + value +
         ": every scale must be finite and > 0 (an all-zero block's scale is 1)";
}

}  // namespace detail

Status check_fp8_scales(const Fp8Problem& p, const Fp8Tensors& t, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::check_fp8_scales"};
  if (Status s = check_dims(p); !s.ok()) return s;
  if (t.x_scale == nullptr && t.w_scale == nullptr)
    return fail(StatusCode::invalid_argument, "x_scale and w_scale are both null: nothing to check");
  if (!aligned(t.x_scale, 4) || !aligned(t.w_scale, 4))
    return fail(StatusCode::invalid_argument, "the scales must be 4-byte aligned (fp32)");
  for (const bool is_w : {false, true}) {
    const float* scale = is_w ? t.w_scale : t.x_scale;
    const int64_t n = detail::fp8_scale_count(p, is_w);
    if (scale == nullptr || n == 0) continue;
    std::vector<float> host(static_cast<size_t>(n));
    cudaError_t e = cudaMemcpyAsync(host.data(), scale, host.size() * sizeof(float), cudaMemcpyDefault, stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
      return fail(StatusCode::cuda_error, std::string("check_fp8_scales: reading ") + (is_w ? "w_scale" : "x_scale") +
                                              ": " + cudaGetErrorString(e));
    }
    if (std::string bad = detail::describe_bad_scale(p, is_w, host.data(), n); !bad.empty())
      return fail(StatusCode::invalid_argument, bad);
  }
  return Status::success();
}

Status quantize_e4m3(DType in, const void* a, int64_t lda, int64_t rows, int64_t cols, Fp8Blocks blocks, void* q,
                     int64_t ldq, float* scale, cudaStream_t stream) {
  if (blocks != Fp8Blocks::row_1x128 && blocks != Fp8Blocks::tile_128x128)
    return fail(StatusCode::invalid_argument, "blocks " + str(static_cast<int>(blocks)) + " is not row_1x128 or tile_128x128");
  if (in != DType::f32 && in != DType::f16 && in != DType::bf16)
    return fail(StatusCode::invalid_argument, "quantize: the input dtype " + str(static_cast<int>(in)) + " is not fp32, fp16 or bf16");
  // Why guarded: detail::quantize_e4m3 names bad sizes, strides and null pointers itself.
  if (rows > 0 && cols > 0 && lda >= cols && ldq >= cols && a != nullptr && q != nullptr && scale != nullptr) {
    if (!aligned(a, dtype_size(in)) || !aligned(scale, 4))
      return fail(StatusCode::invalid_argument, "quantize: a must be aligned to its element size and scale to 4 bytes");
    const int64_t limit = int64_t{1} << 58;
    if (lda > limit / rows || ldq > limit / rows)
      return fail(StatusCode::invalid_argument, "quantize: rows × row stride overflows 64-bit byte counts");
    const int64_t es = static_cast<int64_t>(dtype_size(in));
    const Bytes in_range{"a", a, ((rows - 1) * lda + cols) * es};
    const int64_t block_rows = blocks == Fp8Blocks::row_1x128 ? rows : (rows + 127) / 128;
    if (Status s = no_overlaps({{"q", q, (rows - 1) * ldq + cols}, {"scale", scale, block_rows * ((cols + 127) / 128) * 4}},
                               {in_range}, "quantize: ");
        !s.ok())
      return s;
  }
  return detail::quantize_e4m3(in, a, lda, q, ldq, scale, rows, cols, blocks == Fp8Blocks::row_1x128 ? 1 : 128, stream);
}

Status quantize_e4m3_transposed(DType in, const void* a, int64_t lda, int64_t rows, int64_t cols, Fp8Blocks blocks,
                                void* q, int64_t ldq, float* scale, void* qt, int64_t ldqt, float* scale_t,
                                cudaStream_t stream) {
  if (blocks != Fp8Blocks::row_1x128 && blocks != Fp8Blocks::tile_128x128)
    return fail(StatusCode::invalid_argument, "blocks " + str(static_cast<int>(blocks)) + " is not row_1x128 or tile_128x128");
  if (in != DType::f32 && in != DType::f16 && in != DType::bf16)
    return fail(StatusCode::invalid_argument, "quantize: the input dtype " + str(static_cast<int>(in)) + " is not fp32, fp16 or bf16");
  // Why guarded: detail::quantize_e4m3_transposed names bad sizes, strides and null pointers itself.
  if (rows > 0 && cols > 0 && lda >= cols && ldqt >= rows && a != nullptr && qt != nullptr && scale_t != nullptr &&
      (q == nullptr) == (scale == nullptr) && (q == nullptr || ldq >= cols)) {
    if (!aligned(a, dtype_size(in)) || !aligned(scale, 4) || !aligned(scale_t, 4))
      return fail(StatusCode::invalid_argument, "quantize: a must be aligned to its element size and the scales to 4 bytes");
    const int64_t limit = int64_t{1} << 58;
    if (lda > limit / rows || ldq > limit / rows || ldqt > limit / cols)
      return fail(StatusCode::invalid_argument, "quantize: rows × row stride overflows 64-bit byte counts");
    const int64_t es = static_cast<int64_t>(dtype_size(in));
    const Bytes in_range{"a", a, ((rows - 1) * lda + cols) * es};
    const bool row = blocks == Fp8Blocks::row_1x128;
    const int64_t row_blocks = (rows + 127) / 128, col_blocks = (cols + 127) / 128;
    if (Status s = no_overlaps({{"q", q, (rows - 1) * ldq + cols},
                                {"scale", scale, (row ? rows : row_blocks) * col_blocks * 4},
                                {"qt", qt, (cols - 1) * ldqt + rows},
                                {"scale_t", scale_t, (row ? cols : col_blocks) * row_blocks * 4}},
                               {in_range}, "quantize: ");
        !s.ok())
      return s;
  }
  return detail::quantize_e4m3_transposed(in, a, lda, q, ldq, scale, qt, ldqt, scale_t, rows, cols,
                                          blocks == Fp8Blocks::row_1x128 ? 1 : 128, stream);
}

}  // namespace swiglu
