// End-to-end training of a SwiGLU MLP on the GPU, for `swiglubench train` and its GPU test.
//
//   model:  x (784) → SwiGLU(hidden): z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) → Linear(10) → softmax
//   loss:   cross-entropy, summed over the batch (the optimizer divides by the batch's rows)
//
// Precision: every parameter has an fp32 master copy, which the optimizer updates (SGD with
// momentum or AdamW, kernels/train/optim.cuh). The forward and backward run in the compute dtype
// (fp32, fp16 or bf16): the inputs, W12, the SwiGLU bias, W2, Z, dZ and the logits' gradient are
// held in it, and the optimizer rewrites the dtype copy of each weight after its update. The logits
// and the output layer's gradients (dW2, db2) are fp32. The SwiGLU layer's gradients come from it
// in the dtype (the library's contract) and are widened by the optimizer.
//
// Variants differ only in the SwiGLU layer (LayerVariant); the data, the order, the initial weights,
// the output layer (cuBLASLt), the loss and the optimizer are the same code, so two variants with
// the same seed follow the same computation up to the layer's rounding.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "common/device.hpp"
#include "train/idx.hpp"
#include "train/options.hpp"

namespace swiglu::train {

// One split on the device: the normalised inputs in the compute dtype (count × features) and the
// labels as int32.
class DeviceSplit {
 public:
  DeviceSplit(const Split& split, DType dtype, Normalization norm, cudaStream_t stream);

  int64_t count() const { return count_; }
  int64_t features() const { return features_; }
  DType dtype() const { return dtype_; }
  const void* x() const { return x_.get(); }
  const int32_t* labels() const { return labels_.as<int32_t>(); }

 private:
  int64_t count_ = 0, features_ = 0;
  DType dtype_ = DType::bf16;
  common::DeviceBuffer x_, labels_;
};

struct TrainConfig {
  LayerVariant variant = LayerVariant::fused;
  Policy policy = Policy::save;  // fused only
  Grads grads;                   // {dx} alone: the SwiGLU weights stay frozen
  DType dtype = DType::bf16;
  int64_t batch = 128;
  int64_t hidden = 1024;
  int classes = 10;
  Optimizer optimizer = Optimizer::sgd;
  float lr = 0.01f, momentum = 0.9f, weight_decay = 0.0f;
  uint64_t seed = 1234;
};

// The order of epoch `epoch` (from 1): a Fisher–Yates shuffle of 0..n−1 driven by splitmix64 from
// (seed, epoch), the same on every platform and for every variant.
std::vector<int32_t> epoch_order(uint64_t seed, int epoch, int64_t n);

// The initial parameters, nn.Linear's U(−1/√fan_in, 1/√fan_in) for weights and biases, from the
// seed alone: W12 (2·hidden × in, rows Wa then Wb), b12 (2·hidden), W2 (classes × hidden), b2.
struct InitialParams {
  std::vector<float> w12, b12, w2, b2;
};
InitialParams initial_params(int64_t in_features, int64_t hidden, int classes, uint64_t seed);

// Rows of each step of an epoch over n examples in batches of `batch` (the last one partial),
// at most max_steps of them (0: all).
std::vector<int64_t> step_rows(int64_t n, int64_t batch, int64_t max_steps);

struct EpochStats {
  bool complete = false;         // false: stopped (SIGINT) before the last step
  std::vector<double> step_loss;  // mean loss of each step's batch, in order
  std::vector<int64_t> step_rows;
  int64_t images = 0;
  double loss = 0, accuracy = 0;  // over the epoch's images, before each step's update
  double ms = 0;                  // CUDA events around the training steps
};

struct EvalStats {
  int64_t images = 0;
  double loss = 0, accuracy = 0;
  double ms = 0;  // CUDA events around the forward over the test split
};

class Trainer {
 public:
  // Allocates everything and plans every GEMM for each batch size the splits need; throws
  // std::runtime_error (CUDA, cuBLAS or library failures, with the call and the values) on error.
  Trainer(const TrainConfig& config, const DeviceSplit& train, const DeviceSplit& test,
          const baselines::Cublas& cublas, cudaStream_t stream, int64_t max_steps = 0);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Forward and backward once for every batch size of an epoch and the evaluation's forward, with
  // no update: loads the kernels and warms cuBLAS outside the timed epochs. Parameters unchanged.
  void warm_up();
  // Trains one epoch in `order` (a permutation of the training split).
  EpochStats train_epoch(const std::vector<int32_t>& order, const std::atomic<bool>* stop = nullptr);
  // The loss and accuracy on the test split, in batches of the training batch size.
  EvalStats evaluate();

  // What the SwiGLU layer runs: "fwd=<tile> dx=<tile> dw=<tile>" for fused, "cublasLt" otherwise.
  std::string layer_tiles() const;
  const TrainConfig& config() const;
  // The fp32 master parameters, downloaded (for tests).
  InitialParams parameters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swiglu::train
