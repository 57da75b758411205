// `swiglubench train`'s optimizers, sm_70+: one elementwise update of an fp32 master parameter,
// which also writes its copy in the compute dtype (lowp, when set). g = grad[i] · grad_scale.
//
//   SGD (torch.optim.SGD, dampening 0):  g += wd·p;  buf = momentum·buf + g;  p −= lr·buf
//   AdamW (torch.optim.AdamW):  p −= lr·wd·p;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//                               p −= lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + ε)
//
// G is the gradient's type, T the compute copy's; fp32 with precise sqrt and division, so every run
// updates alike.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"

namespace swiglu::kernels {

struct SgdStep {
  float lr, momentum, weight_decay, grad_scale;
};

struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float bias_correction1, bias_correction2;  // 1 − β1^t and 1 − β2^t for this step t ≥ 1
};

template <class G, class T>
__global__ void sgd_kernel(float* __restrict__ p, const G* __restrict__ grad,
                           float* __restrict__ buf, T* __restrict__ lowp, int64_t n, SgdStep s) {
  static_assert(is_swiglu_dtype_v<G> && is_swiglu_dtype_v<T>, "sgd: unsupported dtype");
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float w = p[i];
    const float g = __fmaf_rn(s.weight_decay, w, to_f32(grad[i]) * s.grad_scale);
    const float b = __fmaf_rn(s.momentum, buf[i], g);
    buf[i] = b;
    w = __fmaf_rn(-s.lr, b, w);
    p[i] = w;
    if (lowp != nullptr) lowp[i] = from_f32<T>(w);
  }
}

template <class G, class T>
__global__ void adamw_kernel(float* __restrict__ p, const G* __restrict__ grad,
                             float* __restrict__ m, float* __restrict__ v, T* __restrict__ lowp,
                             int64_t n, AdamWStep s) {
  static_assert(is_swiglu_dtype_v<G> && is_swiglu_dtype_v<T>, "adamw: unsupported dtype");
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = to_f32(grad[i]) * s.grad_scale;
    float w = p[i] * (1.0f - s.lr * s.weight_decay);
    const float mi = __fmaf_rn(s.beta1, m[i], (1.0f - s.beta1) * g);
    const float vi = __fmaf_rn(s.beta2, v[i], (1.0f - s.beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    const float denom = __fsqrt_rn(__fdiv_rn(vi, s.bias_correction2)) + s.eps;
    w -= s.lr * __fdiv_rn(__fdiv_rn(mi, s.bias_correction1), denom);
    p[i] = w;
    if (lowp != nullptr) lowp[i] = from_f32<T>(w);
  }
}

}  // namespace swiglu::kernels
