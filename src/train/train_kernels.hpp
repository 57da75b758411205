// Host launchers of the training kernels (kernels/train/data.cuh, loss.cuh, optim.cuh).
// Each validates its arguments, launches on the caller's stream and returns the launch's status;
// nothing here synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "swiglu/swiglu.hpp"

namespace swiglu::train {

// x[i] = (pixels[i] / 255 − mean) · inv_std in fp32, rounded to `dtype`; n elements.
cudaError_t launch_normalize(DType dtype, const uint8_t* pixels, void* x, int64_t n, float mean,
                             float inv_std, cudaStream_t stream);

// xb[r] = x[order[first + r]] (rows of `features` elements of `dtype`), yb[r] = labels[same];
// order == nullptr gathers rows first .. first + rows − 1. rows == 0 launches nothing.
cudaError_t launch_gather(DType dtype, const void* x, int64_t features, const int32_t* labels,
                          const int32_t* order, int64_t first, int64_t rows, void* xb, int32_t* yb,
                          cudaStream_t stream);

// Softmax cross-entropy over `classes` ≤ 32 columns of fp32 logits (row stride ld ≥ classes,
// ld ≤ 32) plus `bias`: loss[first + r] and correct[first + r] for r < rows; with dlogits set (both
// or neither), dlogits_f32 and dlogits (in `dtype`) = softmax − one-hot, padding columns zero.
cudaError_t launch_softmax_xent(DType dtype, const float* logits, int64_t ld, const float* bias,
                                const int32_t* labels, int64_t rows, int classes,
                                float* dlogits_f32, void* dlogits, float* loss, uint8_t* correct,
                                int64_t first, cudaStream_t stream);

// One parameter tensor for the optimizer: the fp32 master, its gradient, the optimizer state, and
// (optional) the compute copy rewritten after the update.
struct ParamRef {
  float* master = nullptr;
  const void* grad = nullptr;
  DType grad_type = DType::f32;
  void* lowp = nullptr;  // null: no compute copy (fp32 training reads the master itself)
  DType lowp_type = DType::f32;
  float* m = nullptr;  // SGD: the momentum buffer; AdamW: the first moment
  float* v = nullptr;  // AdamW: the second moment
  int64_t n = 0;
};

struct SgdHyper {
  float lr = 0, momentum = 0, weight_decay = 0;
};

struct AdamWHyper {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
};

// grad_scale multiplies the gradient first (1 / rows of the batch). Supported (grad, lowp) types:
// (fp32, fp32), (fp16, fp16), (bf16, bf16), (fp32, fp16), (fp32, bf16); others are
// cudaErrorInvalidValue.
cudaError_t launch_sgd(const ParamRef& p, const SgdHyper& h, float grad_scale, cudaStream_t stream);
// t: the step number, from 1 (bias corrections 1 − β^t).
cudaError_t launch_adamw(const ParamRef& p, const AdamWHyper& h, float grad_scale, int64_t t,
                         cudaStream_t stream);

}  // namespace swiglu::train
