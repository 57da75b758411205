#include "train/options.hpp"

#include "common/names.hpp"

namespace swiglu::train {

namespace {

constexpr std::pair<Optimizer, std::string_view> kOptimizers[] = {{Optimizer::sgd, "sgd"},
                                                                   {Optimizer::adamw, "adamw"}};
constexpr std::pair<LayerVariant, std::string_view> kLayerVariants[] = {
    {LayerVariant::fused, "fused"},
    {LayerVariant::cublas2, "cublas2"},
    {LayerVariant::cublas1, "cublas1"}};

}  // namespace

std::string_view to_string(Optimizer o) { return common::name_of(kOptimizers, o); }
std::string_view to_string(LayerVariant v) { return common::name_of(kLayerVariants, v); }
std::optional<Optimizer> parse_optimizer(std::string_view s) {
  return common::value_of(kOptimizers, s);
}
std::optional<LayerVariant> parse_layer_variant(std::string_view s) {
  return common::value_of(kLayerVariants, s);
}

double agreement_tolerance(DType dtype, Optimizer optimizer) {
  // SGD with momentum at these step sizes is contractive: a rounding difference between the
  // variants stays at the size one step makes (measured in a NumPy model of this training:
  // 3e-7 fp32, 3e-4 fp16, 1.5e-3-3e-3 bf16 over 5 epochs), so the bounds are about 10x that
  // (fp32: 300x, for the GEMMs' summation order that the model does not reproduce).
  // AdamW normalises each update, so near-zero gradients turn rounding into full-size steps and
  // two runs decorrelate within an epoch or two in every dtype (0.19 in fp32 by epoch 4): its bound
  // only catches a broken layer. TESTING.md ("Training: the agreement check") has the numbers.
  if (optimizer == Optimizer::adamw) return 0.5;
  switch (dtype) {
    case DType::f32: return 1e-4;
    case DType::f16: return 3e-3;
    case DType::bf16: return 3e-2;
  }
  return 0.0;
}

}  // namespace swiglu::train
