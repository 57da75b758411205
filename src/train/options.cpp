#include "train/options.hpp"

#include "common/names.hpp"

namespace swiglu::train {

namespace {

constexpr std::pair<Optimizer, std::string_view> kOptimizers[] = {{Optimizer::sgd, "sgd"},
                                                                   {Optimizer::adamw, "adamw"}};

}  // namespace

std::string_view to_string(Optimizer o) { return common::name_of(kOptimizers, o); }
std::optional<Optimizer> parse_optimizer(std::string_view s) {
  return common::value_of(kOptimizers, s);
}

double agreement_tolerance(DType dtype, Optimizer optimizer) {
  // Why: SGD with momentum keeps a rounding difference at one step's size, so its bounds sit about
  // 10x above the measured spread; AdamW decorrelates two runs within an epoch or two, so its
  // bound only catches a broken layer. TESTING.md ("Training: the agreement check") has numbers.
  if (optimizer == Optimizer::adamw) return 0.5;
  switch (dtype) {
    case DType::f32: return 1e-4;
    case DType::f16: return 3e-3;
    case DType::bf16: return 3e-2;
    // Why: FP8 against the bf16 reference: the bf16 bound scaled by the layer's error, e4m3's
    // unit roundoff over bf16's, 16x (TESTING.md).
    case DType::e4m3: return 0.2;
  }
  return 0.0;
}

}  // namespace swiglu::train
