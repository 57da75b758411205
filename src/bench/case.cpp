#include "bench/case.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <functional>


namespace swiglu::bench {

std::optional<TileChoice> TileChoice::parse(std::string_view word) {
  TileChoice t;
  t.word = std::string(word);
  if (word == "auto") return t;
  if (word == "all") {
    t.kind = Kind::all;
    return t;
  }
  const std::optional<TileConfig> tile = TileConfig::parse(word);
  if (!tile) return std::nullopt;
  t.kind = Kind::named;
  t.tile = *tile;
  return t;
}

TileChoice TileChoice::named(const TileConfig& tile) {
  TileChoice t;
  t.kind = Kind::named;
  t.tile = tile;
  t.word = tile.name();
  return t;
}

std::vector<std::string> words(const std::vector<TileChoice>& tiles) {
  std::vector<std::string> out;
  for (const TileChoice& t : tiles) out.push_back(t.word);
  return out;
}

std::string describe(const Case& c) {
  const Problem& p = c.problem;
  return fmt::format("B={} I={} D={} dtype={} layout={} bias={} math={} x_stride_pad={}", p.batch,
                     p.in_features, p.hidden, to_string(p.dtype), to_string(p.layout), p.bias,
                     to_string(p.math), c.x_stride_pad());
}

bool SameProblem::operator()(const Problem& a, const Problem& b) const {
  return a.batch == b.batch && a.in_features == b.in_features && a.hidden == b.hidden &&
         a.ldx == b.ldx && a.dtype == b.dtype && a.layout == b.layout && a.bias == b.bias &&
         a.math == b.math;
}

size_t ProblemHash::operator()(const Problem& p) const {
  size_t h = 0;
  const auto mix = [&h](uint64_t v) {
    h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  };
  mix(static_cast<uint64_t>(p.batch));
  mix(static_cast<uint64_t>(p.in_features));
  mix(static_cast<uint64_t>(p.hidden));
  mix(static_cast<uint64_t>(p.ldx));
  mix((static_cast<uint64_t>(p.dtype) << 24) | (static_cast<uint64_t>(p.layout) << 16) |
      (static_cast<uint64_t>(p.bias) << 8) | static_cast<uint64_t>(p.math));
  return h;
}

}  // namespace swiglu::bench
