// Host launchers of the training kernels; see train_kernels.hpp.
#include "train/train_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/train/data.cuh"
#include "kernels/train/loss.cuh"
#include "kernels/train/optim.cuh"

namespace swiglu::train {
namespace {

constexpr int kThreads = 256;

// Grid-stride kernels: enough blocks to fill any current GPU, never more than the work needs.
unsigned elementwise_blocks(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 4096));
}

// Calls f(std::type_identity<T>{}) for the storage type of `t`.
template <class F>
cudaError_t dispatch(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(std::type_identity<float>{});
    case DType::f16: return f(std::type_identity<__half>{});
    case DType::bf16: return f(std::type_identity<__nv_bfloat16>{});
    case DType::e4m3: break;  // train refuses fp8 (--dtype)
  }
  return cudaErrorInvalidValue;
}

// The optimizer's (gradient, compute copy) pairs.
template <class F>
cudaError_t dispatch_param(DType grad, DType lowp, F&& f) {
  using F32 = std::type_identity<float>;
  using F16 = std::type_identity<__half>;
  using BF16 = std::type_identity<__nv_bfloat16>;
  if (grad == DType::f32 && lowp == DType::f32) return f(F32{}, F32{});
  if (grad == DType::f16 && lowp == DType::f16) return f(F16{}, F16{});
  if (grad == DType::bf16 && lowp == DType::bf16) return f(BF16{}, BF16{});
  if (grad == DType::f32 && lowp == DType::f16) return f(F32{}, F16{});
  if (grad == DType::f32 && lowp == DType::bf16) return f(F32{}, BF16{});
  return cudaErrorInvalidValue;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

cudaError_t launch_normalize(DType dtype, const uint8_t* pixels, void* x, int64_t n, float mean,
                             float inv_std, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (pixels == nullptr || x == nullptr))) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    kernels::normalize_pixels_kernel<T><<<elementwise_blocks(n), kThreads, 0, stream>>>(
        pixels, static_cast<T*>(x), n, mean, inv_std);
    return cudaGetLastError();
  });
}

cudaError_t launch_gather(DType dtype, const void* x, int64_t features, const int32_t* labels,
                          const int32_t* order, int64_t first, int64_t rows, void* xb, int32_t* yb,
                          cudaStream_t stream) {
  if (rows < 0 || features <= 0 || first < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (x == nullptr || labels == nullptr || xb == nullptr || yb == nullptr) return cudaErrorInvalidValue;
  const int64_t row_bytes = features * static_cast<int64_t>(dtype_size(dtype));
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 65535));
  // Why: a bitwise copy, so the 16-byte path serves every dtype when every row start is aligned.
  if (row_bytes % 16 == 0 && aligned16(x) && aligned16(xb)) {
    kernels::gather_rows_kernel<uint4><<<blocks, 128, 0, stream>>>(
        static_cast<const uint4*>(x), row_bytes / 16, labels, order, first, rows,
        static_cast<uint4*>(xb), yb);
    return cudaGetLastError();
  }
  return dispatch(dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    kernels::gather_rows_kernel<T><<<blocks, 128, 0, stream>>>(
        static_cast<const T*>(x), features, labels, order, first, rows, static_cast<T*>(xb), yb);
    return cudaGetLastError();
  });
}

cudaError_t launch_softmax_xent(DType dtype, const float* logits, int64_t ld, const float* bias,
                                const int32_t* labels, int64_t rows, int classes,
                                float* dlogits_f32, void* dlogits, float* loss, uint8_t* correct,
                                int64_t first, cudaStream_t stream) {
  if (rows < 0 || classes < 1 || classes > kernels::kMaxClasses || ld < classes ||
      ld > kernels::kMaxClasses || first < 0 || (dlogits == nullptr) != (dlogits_f32 == nullptr))
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (logits == nullptr || bias == nullptr || labels == nullptr || loss == nullptr ||
      correct == nullptr)
    return cudaErrorInvalidValue;
  constexpr int kWarps = 8;  // rows per block
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>((rows + kWarps - 1) / kWarps, 65535));
  return dispatch(dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    kernels::softmax_xent_kernel<T><<<blocks, kWarps * 32, 0, stream>>>(
        logits, ld, bias, labels, rows, classes, dlogits_f32, static_cast<T*>(dlogits), loss,
        correct, first);
    return cudaGetLastError();
  });
}

cudaError_t launch_sgd(const ParamRef& p, const SgdHyper& h, float grad_scale, cudaStream_t stream) {
  if (p.n < 0 || (p.n > 0 && (p.master == nullptr || p.grad == nullptr || p.m == nullptr)))
    return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  const kernels::SgdStep s{h.lr, h.momentum, h.weight_decay, grad_scale};
  return dispatch_param(p.grad_type, p.lowp_type, [&](auto g, auto l) {
    using G = typename decltype(g)::type;
    using T = typename decltype(l)::type;
    kernels::sgd_kernel<G, T><<<elementwise_blocks(p.n), kThreads, 0, stream>>>(
        p.master, static_cast<const G*>(p.grad), p.m, static_cast<T*>(p.lowp), p.n, s);
    return cudaGetLastError();
  });
}

cudaError_t launch_adamw(const ParamRef& p, const AdamWHyper& h, float grad_scale, int64_t t,
                         cudaStream_t stream) {
  if (t < 1 || p.n < 0 ||
      (p.n > 0 && (p.master == nullptr || p.grad == nullptr || p.m == nullptr || p.v == nullptr)))
    return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  const double td = static_cast<double>(t);
  const kernels::AdamWStep s{h.lr,
                             h.beta1,
                             h.beta2,
                             h.eps,
                             h.weight_decay,
                             grad_scale,
                             static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), td)),
                             static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta2), td))};
  return dispatch_param(p.grad_type, p.lowp_type, [&](auto g, auto l) {
    using G = typename decltype(g)::type;
    using T = typename decltype(l)::type;
    kernels::adamw_kernel<G, T><<<elementwise_blocks(p.n), kThreads, 0, stream>>>(
        p.master, static_cast<const G*>(p.grad), p.m, p.v, static_cast<T*>(p.lowp), p.n, s);
    return cudaGetLastError();
  });
}

}  // namespace swiglu::train
