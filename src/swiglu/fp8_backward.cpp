// The FP8 backward (swiglu/fp8.hpp, backward_fp8_sm90): the gate step into e4m3, the dX and dW
// GEMMs, and dbias, on the caller's workspace.
#include <cstdint>
#include <string>

#include <nvtx3/nvtx3.hpp>

#include "swiglu/elementwise.hpp"
#include "swiglu/fp8.hpp"
#include "swiglu/validate.hpp"

namespace swiglu::detail {
namespace {

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

Fp8BackwardWorkspace fp8_backward_workspace(int64_t rows, int64_t in, int64_t d) {
  Fp8BackwardWorkspace w;
  if (rows <= 0 || in <= 0 || d <= 0) return w;
  const auto B = static_cast<size_t>(rows), D = static_cast<size_t>(d);
  const size_t db = (D + 127) / 128, rb = (B + 127) / 128;
  w.lddht = (rows + 15) / 16 * 16;
  size_t at = 0;
  const auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align256(bytes);
    return here;
  };
  w.dh = take(B * 2 * D);
  w.dh_scale = take(B * 2 * db * sizeof(float));
  w.dht = take(2 * D * static_cast<size_t>(w.lddht));
  w.dht_scale = take(2 * D * rb * sizeof(float));
  w.col_sums = take(rb * 2 * D * sizeof(float));
  w.split_bytes = fp8_gemm_split_bytes(rows, in);
  w.split = take(w.split_bytes);
  w.bytes = at;
  return w;
}

Status backward_fp8_sm90(const Fp8Backward& b, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::backward_fp8"};
  const int64_t B = b.rows, I = b.in, D = b.d;
  if (B < 0 || I <= 0 || D <= 0) return fail(StatusCode::invalid_argument, "fp8 backward: B >= 0, I and D > 0");
  if (D % 16 != 0)
    return fail(StatusCode::invalid_argument,
                "fp8 backward: D must be a multiple of 16 (the dU half of dH and of W12^T starts 16-byte aligned)");
  if (b.ldxt < B || b.ldxt % 16 != 0)
    return fail(StatusCode::invalid_argument, "fp8 backward: X^T's row stride must be >= B and a multiple of 16");
  if (B == 0) return Status::success();
  if (b.dz == nullptr || b.h == nullptr || (b.dx != nullptr && (b.w12t == nullptr || b.w12t_scale == nullptr)) ||
      (b.dw != nullptr && (b.xt == nullptr || b.xt_scale == nullptr)))
    return fail(StatusCode::invalid_argument, "fp8 backward: a null pointer");
  const Fp8BackwardWorkspace w = fp8_backward_workspace(B, I, D);
  if (workspace == nullptr || workspace_bytes < w.bytes) {
    return fail(StatusCode::invalid_argument, "fp8 backward: the workspace needs " + std::to_string(w.bytes) +
                                                  " bytes, got " + std::to_string(workspace_bytes));
  }
  auto* ws = static_cast<uint8_t*>(workspace);
  const int64_t db = (D + 127) / 128, rb = (B + 127) / 128, ib = (I + 127) / 128;

  Fp8GateBackward g;
  g.dtype = b.dtype;
  g.dz = b.dz;
  g.lddz = D;
  g.h = b.h;
  g.ldh = 2 * D;
  g.rows = B;
  g.d = D;
  if (b.dx != nullptr) {
    g.dh = ws + w.dh;
    g.lddh = 2 * D;
    g.dh_scale = reinterpret_cast<float*>(ws + w.dh_scale);
  }
  g.dht = ws + w.dht;
  g.lddht = w.lddht;
  g.dht_scale = reinterpret_cast<float*>(ws + w.dht_scale);
  g.col_sums = b.dbias != nullptr ? reinterpret_cast<float*>(ws + w.col_sums) : nullptr;
  if (Status s = gate_backward_e4m3(g, stream); !s.ok()) return s;

  if (b.dx != nullptr) {
    // dX = dH·W12 over K = 2D, the dG half then the dU half: A = dH, B = W12ᵀ (its scale_t layout:
    // row block of W12ᵀ (I) × K block (D), a half after the other).
    Fp8Gemm x;
    x.m = B;
    x.n = I;
    x.k = D;
    x.segments = 2;
    x.a[0] = ws + w.dh;
    x.a[1] = ws + w.dh + D;
    x.lda = 2 * D;
    x.a_scale = g.dh_scale;
    x.a_seg = db;
    x.a_m = 2 * db;
    x.a_kb = 1;
    x.b[0] = b.w12t;
    x.b[1] = static_cast<const uint8_t*>(b.w12t) + D;
    x.ldb = 2 * D;
    x.b_scale = b.w12t_scale;
    x.b_seg = ib * db;
    x.b_n = db;
    x.b_kb = 1;
    x.out = b.dx_dtype;
    x.c = b.dx;
    x.ldc = I;
    x.split_workspace = w.split_bytes > 0 ? ws + w.split : nullptr;
    if (Status s = fp8_gemm_sm90(x, stream); !s.ok()) return s;
  }
  if (b.dw != nullptr) {
    // dW12 = dHᵀ·X over K = B: both operands with 1×128 scales along B.
    Fp8Gemm wg;
    wg.m = 2 * D;
    wg.n = I;
    wg.k = B;
    wg.a[0] = ws + w.dht;
    wg.lda = w.lddht;
    wg.a_scale = g.dht_scale;
    wg.a_m = rb;
    wg.a_kb = 1;
    wg.b[0] = b.xt;
    wg.ldb = b.ldxt;
    wg.b_scale = b.xt_scale;
    wg.b_n = rb;
    wg.b_kb = 1;
    wg.b_rows = true;
    wg.out = b.dw_dtype;
    wg.c = b.dw;
    wg.ldc = I;
    wg.accumulate = b.accumulate;
    if (Status s = fp8_gemm_sm90(wg, stream); !s.ok()) return s;
  }
  if (b.dbias != nullptr) {
    const cudaError_t e = launch_column_sum(DType::f32, b.dbias_dtype, ws + w.col_sums, 2 * D, b.dbias, rb, 2 * D, stream);
    if (e != cudaSuccess) return fail(StatusCode::cuda_error, std::string("fp8 backward dbias: ") + cudaGetErrorString(e));
  }
  return Status::success();
}

}  // namespace swiglu::detail
