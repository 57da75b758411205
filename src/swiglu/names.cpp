// The names of the public enums and tiles: to_string, parse_*, TileConfig::name and parse.
#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "swiglu/swiglu.hpp"

namespace swiglu {

namespace {

template <class E>
struct Name {
  E value;
  std::string_view name;
};

// Every spelling parse accepts, a value's canonical name (to_string's) first.
constexpr Name<DType> kDTypes[] = {{DType::f32, "fp32"}, {DType::f32, "f32"},   {DType::f32, "float32"},
                                   {DType::f16, "fp16"}, {DType::f16, "f16"},   {DType::f16, "float16"},
                                   {DType::f16, "half"}, {DType::bf16, "bf16"}, {DType::bf16, "bfloat16"},
                                   {DType::e4m3, "fp8"},  {DType::e4m3, "e4m3"},  {DType::e4m3, "float8_e4m3fn"}};
constexpr Name<Layout> kLayouts[] = {{Layout::linear, "linear"}, {Layout::packed, "packed"}};
constexpr Name<Math> kMaths[] = {{Math::exact, "exact"}, {Math::tf32, "tf32"}, {Math::tf32x3, "3xtf32"}};
constexpr Name<Family> kFamilies[] = {{Family::simt, "simt"}, {Family::mma_sm80, "sm80"}, {Family::wgmma_sm90, "sm90"},
                                     {Family::gemv, "gemv"}};
constexpr Name<Policy> kPolicies[] = {{Policy::save, "save"}, {Policy::recompute, "recompute"}};
constexpr Name<GatePlacement> kPlacements[] = {{GatePlacement::automatic, "auto"},
                                               {GatePlacement::automatic, "automatic"},
                                               {GatePlacement::epilogue, "epilogue"},
                                               {GatePlacement::prologue, "prologue"}};
constexpr Name<DhStorage> kDhStorages[] = {{DhStorage::workspace, "workspace"}, {DhStorage::tensors, "tensors"}};

template <class E, size_t N>
std::string_view name_of(const Name<E> (&names)[N], E value) {
  for (const Name<E>& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

template <class E, size_t N>
std::optional<E> value_of(const Name<E> (&names)[N], std::string_view s) {
  for (const Name<E>& n : names) {
    if (n.name == s) return n.value;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(DType t) { return name_of(kDTypes, t); }
std::string_view to_string(Layout l) { return l == Layout::linear ? "linear" : "packed"; }
std::string_view to_string(Math m) { return name_of(kMaths, m); }
std::string_view to_string(Family f) { return name_of(kFamilies, f); }
std::string_view to_string(Policy v) { return v == Policy::save ? "save" : "recompute"; }
std::string_view to_string(GatePlacement v) { return name_of(kPlacements, v); }
std::string_view to_string(DhStorage v) { return name_of(kDhStorages, v); }

std::optional<DType> parse_dtype(std::string_view s) { return value_of(kDTypes, s); }
std::optional<Layout> parse_layout(std::string_view s) { return value_of(kLayouts, s); }
std::optional<Math> parse_math(std::string_view s) { return value_of(kMaths, s); }
std::optional<Policy> parse_policy(std::string_view s) { return value_of(kPolicies, s); }
std::optional<GatePlacement> parse_gate_placement(std::string_view s) { return value_of(kPlacements, s); }
std::optional<DhStorage> parse_dh_storage(std::string_view s) { return value_of(kDhStorages, s); }

size_t dtype_size(DType t) { return t == DType::f32 ? 4 : t == DType::e4m3 ? 1 : 2; }

std::string TileConfig::name() const {
  std::string s = std::string(to_string(family)) + ":" + std::to_string(block_m) + "x" + std::to_string(block_n) +
                  "x" + std::to_string(block_k) + "s" + std::to_string(stages) + "w" + std::to_string(warps);
  if (cluster > 1) (s += 'c') += std::to_string(cluster);
  return s;
}

std::optional<TileConfig> TileConfig::parse(std::string_view text) {
  TileConfig t;
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::optional<Family> family = value_of(kFamilies, text.substr(0, colon));
  if (!family) return std::nullopt;
  t.family = *family;
  // <m>x<n>x<k>s<stages>w<warps>[c<cluster>], every number positive, the cluster above 1 (the
  // name of a one-block cluster has no "c" part, so each tile has one spelling), nothing after.
  const char* p = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  int* fields[] = {&t.block_m, &t.block_n, &t.block_k, &t.stages, &t.warps, &t.cluster};
  const char seps[] = {'x', 'x', 's', 'w', 'c', '\0'};
  for (int i = 0; i < 6; ++i) {
    auto [next, ec] = std::from_chars(p, end, *fields[i]);
    if (ec != std::errc() || next == p || *fields[i] <= 0) return std::nullopt;
    p = next;
    if (seps[i] == 'c' && p == end) return t;  // no cluster part
    if (seps[i] != '\0') {
      if (p == end || *p != seps[i]) return std::nullopt;
      ++p;
    }
  }
  if (p != end || t.cluster < 2) return std::nullopt;
  return t;
}

}  // namespace swiglu
