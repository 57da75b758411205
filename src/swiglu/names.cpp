// The names of the public enums and tiles: to_string, parse_*, TileConfig::name and parse.
#include <charconv>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu {

std::string_view to_string(DType t) {
  switch (t) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "?";
}
std::string_view to_string(Layout l) { return l == Layout::linear ? "linear" : "packed"; }
std::string_view to_string(Math m) {
  switch (m) {
    case Math::exact: return "exact";
    case Math::tf32: return "tf32";
    case Math::tf32x3: return "3xtf32";
  }
  return "?";
}
std::string_view to_string(Family f) {
  switch (f) {
    case Family::simt: return "simt";
    case Family::mma_sm80: return "sm80";
    case Family::wgmma_sm90: return "sm90";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  if (s == "fp32" || s == "f32" || s == "float32") return DType::f32;
  if (s == "fp16" || s == "f16" || s == "float16" || s == "half") return DType::f16;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  return std::nullopt;
}
std::optional<Layout> parse_layout(std::string_view s) {
  if (s == "linear") return Layout::linear;
  if (s == "packed") return Layout::packed;
  return std::nullopt;
}
std::optional<Math> parse_math(std::string_view s) {
  if (s == "exact") return Math::exact;
  if (s == "tf32") return Math::tf32;
  if (s == "3xtf32") return Math::tf32x3;
  return std::nullopt;
}
size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

std::string TileConfig::name() const {
  return std::string(to_string(family)) + ":" + std::to_string(block_m) + "x" +
         std::to_string(block_n) + "x" + std::to_string(block_k) + "s" + std::to_string(stages) +
         "w" + std::to_string(warps) + (cluster > 1 ? "c" + std::to_string(cluster) : std::string());
}

std::optional<TileConfig> TileConfig::parse(std::string_view text) {
  TileConfig t;
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view fam = text.substr(0, colon);
  if (fam == "simt") t.family = Family::simt;
  else if (fam == "sm80") t.family = Family::mma_sm80;
  else if (fam == "sm90") t.family = Family::wgmma_sm90;
  else return std::nullopt;
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

std::string_view to_string(Policy v) { return v == Policy::save ? "save" : "recompute"; }
std::string_view to_string(GatePlacement v) {
  switch (v) {
    case GatePlacement::automatic: return "auto";
    case GatePlacement::epilogue: return "epilogue";
    case GatePlacement::prologue: return "prologue";
  }
  return "?";
}
std::optional<Policy> parse_policy(std::string_view s) {
  if (s == "save") return Policy::save;
  if (s == "recompute") return Policy::recompute;
  return std::nullopt;
}
std::optional<GatePlacement> parse_gate_placement(std::string_view s) {
  if (s == "auto" || s == "automatic") return GatePlacement::automatic;
  if (s == "epilogue") return GatePlacement::epilogue;
  if (s == "prologue") return GatePlacement::prologue;
  return std::nullopt;
}

}  // namespace swiglu
