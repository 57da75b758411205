// What `swiglubench train` runs: the options as parsed from the command line (src/bench/cli.cpp),
// kept free of CUDA so the host tests can check the parsing without a GPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/variant.hpp"
#include "swiglu/swiglu.hpp"
#include "train/idx.hpp"

namespace swiglu::train {

enum class Optimizer { sgd, adamw };

// The SwiGLU layer's implementation; everything else in the model is shared.
//   fused:   swiglu::forward (ForwardOptions::saved for Policy::save) and swiglu::backward
//   cublas2: the baselines' Plan and BackwardPlan (two cuBLASLt GEMMs + the gate kernel)
//   cublas1: the same with one GEMM over the stacked weight
using LayerVariant = common::Variant;

std::string_view to_string(Optimizer o);
std::optional<Optimizer> parse_optimizer(std::string_view s);

struct TrainOptions {
  std::string data_dir = kFashionMnistDebianDir;
  int epochs = 5;
  int64_t batch = 128;
  int64_t hidden = 1024;
  std::optional<double> lr;            // unset: 0.01 for SGD, 0.001 for AdamW
  uint64_t seed = 1234;
  std::vector<LayerVariant> variants = {LayerVariant::fused, LayerVariant::cublas2};
  Policy policy = Policy::save;        // the fused variant's; the baselines keep G and U
  Grads grads;                         // {dx, dw}; {dx} alone: frozen SwiGLU weights
  DType dtype = DType::bf16;
  Optimizer optimizer = Optimizer::sgd;
  double momentum = 0.9;               // SGD
  std::optional<double> weight_decay;  // unset: 0 for SGD, 0.01 for AdamW
  std::optional<double> agree_tol;     // unset: agreement_tolerance(dtype, optimizer)
  int64_t max_steps = 0;               // training steps per epoch; 0: the whole split
  int device = 0;
  std::string out_dir;                 // empty: results/<gpu>
  std::string name;                    // empty: train_<dtype>_b<batch>_d<hidden>_<grads>_<policy>_<optimizer>
  bool write_csv = true, write_json = true;
  std::vector<std::string> argv;

  double effective_lr() const { return lr ? *lr : optimizer == Optimizer::sgd ? 0.01 : 0.001; }
  double effective_weight_decay() const {
    return weight_decay ? *weight_decay : optimizer == Optimizer::sgd ? 0.0 : 0.01;
  }
};

// The dtype of everything but an FP8 SwiGLU layer: the data, the output layer, the losses (bf16
// for --dtype fp8, else the dtype itself).
inline DType compute_dtype(DType d) { return d == DType::e4m3 ? DType::bf16 : d; }

// The dtype variant v's SwiGLU layer computes in: --dtype fp8 is the fused layer's, and a cuBLASLt
// variant in the same run is its bf16 reference (there is no FP8 cuBLASLt training variant).
inline DType layer_dtype(DType d, LayerVariant v) {
  return d == DType::e4m3 && v != LayerVariant::fused ? compute_dtype(d) : d;
}

// The largest |difference| between two variants' per-step training losses that still counts as
// agreement, by compute dtype and optimizer; TESTING.md ("Training: the agreement check") says
// where the numbers come from.
double agreement_tolerance(DType dtype, Optimizer optimizer);

}  // namespace swiglu::train
