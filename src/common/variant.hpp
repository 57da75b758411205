// What every command compares: the fused kernel and the two cuBLAS baselines (cublas2: two GEMMs +
// the gate kernel; cublas1: one GEMM over the stacked weight + the gate kernel).
#pragma once

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/names.hpp"

namespace swiglu::common {

enum class Variant { fused, cublas2, cublas1 };

inline constexpr std::pair<Variant, std::string_view> kVariantNames[] = {
    {Variant::fused, "fused"}, {Variant::cublas2, "cublas2"}, {Variant::cublas1, "cublas1"}};

inline std::string_view to_string(Variant v) { return name_of(kVariantNames, v); }
inline std::optional<Variant> parse_variant(std::string_view word) { return value_of(kVariantNames, word); }

// fused, cublas2, cublas1
inline const std::vector<Variant>& all_variants() {
  static const std::vector<Variant> variants = {Variant::fused, Variant::cublas2, Variant::cublas1};
  return variants;
}

}  // namespace swiglu::common
