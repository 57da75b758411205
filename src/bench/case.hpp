// One benchmark case: a problem, the variants and tiles to run it with, and where it came from.
// Every word of a config or an option is parsed into these types once, where it is read.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/variant.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

// What a case runs: the fused kernel and the two cuBLAS baselines.
using common::Variant;
using common::all_variants;
using common::parse_variant;
using common::to_string;

// One word of a tiles list: the heuristic's pick ("auto"), every tile compiled for the device
// ("all"), or a tile named like sm80:128x64x32s4w4. `word` keeps the spelling given, for rows and
// messages.
struct TileChoice {
  enum class Kind { automatic, all, named };
  Kind kind = Kind::automatic;
  TileConfig tile;  // named only
  std::string word = "auto";

  static std::optional<TileChoice> parse(std::string_view word);
  static TileChoice named(const TileConfig& tile);  // word = tile.name()
};

// The words of a tiles list, as given.
std::vector<std::string> words(const std::vector<TileChoice>& tiles);

struct Case {
  // ldx is always set: in_features + the X row padding. math is exact unless dtype is fp32.
  Problem problem;
  std::vector<Variant> variants;
  std::vector<TileChoice> tiles;  // fused tiles
  std::string origin;             // "configs/mnist.yaml:5 (sweep 1)" or what the caller passed
  // Where the sweep that produced the case starts (1-based); empty/0 when not from a file.
  std::string file;
  int line = 0, column = 0;

  int64_t x_stride_pad() const { return problem.ldx - problem.in_features; }
};

// "B=64 I=784 D=512 dtype=bf16 layout=linear bias=false math=exact x_stride_pad=0": the fields
// that make two cases the same problem.
std::string describe(const Case& c);

// Equality and hashing of the fields describe() prints, for finding repeated problems in linear
// time.
struct SameProblem {
  bool operator()(const Problem& a, const Problem& b) const;
};
struct ProblemHash {
  size_t operator()(const Problem& p) const;
};

}  // namespace swiglu::bench
