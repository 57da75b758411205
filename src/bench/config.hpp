// Benchmark sweep configs: YAML files that list the problems swiglubench runs.
//
// Schema (configs/*.yaml):
//
//   name: mnist                  # required string
//   description: "..."           # optional string
//   defaults:                    # optional mapping of sweep keys; a sweep that does not set a key
//     dtype: [bf16, fp16, fp32]  #   takes it from here
//   sweeps:                      # required, non-empty list of mappings
//     - batch: [1, 64, 1024]     # required  B, >= 1
//       in: 784                  # required  I, >= 1
//       hidden: [512, 1024]      # required  D, >= 1
//       dtype: bf16              # required  fp32 | fp16 | bf16
//       layout: linear           # linear | packed                      default linear
//       bias: false              # true | false                         default false
//       math: exact              # exact | tf32 | 3xtf32 (fp32 only)    default exact
//       variants: [fused, cublas2, cublas1]                           # default all three
//       tiles: [auto]            # auto | all | a tile name like sm80:128x64x32s4w4   default [auto]
//       x_stride_pad: 0          # extra elements per X row, ldx = in + pad, >= 0   default 0
//
// Values: batch, in, hidden and x_stride_pad take an integer, a range string as in
// cli_values.hpp ("pow2:1:8192", "64:512:64") or a list of either (repeats dropped); the other keys
// one word, a comma-separated string or a list (a repeat is an error). A sweep is the Cartesian
// product of its lists, outermost first dtype, layout, math, bias, x_stride_pad, hidden, in, batch;
// math applies to fp32 alone (exact for fp16 and bf16); every case carries the sweep's variants
// and tiles. A problem produced twice, in one file or across merged files, is an error.
//
// Limits (below): one YAML document, regular file, bounded in bytes, nodes and depth, without
// anchors or aliases; cases are counted before they are expanded (--max-cases). Errors throw
// ConfigError, whose message starts "FILE:LINE:COL: " and names the key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/case.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Why: 2^31 - 1 keeps every size and in + x_stride_pad far from int64 overflow; no GPU holds a
// problem near it anyway (a too-large case is a SKIP row, not an error).
inline constexpr int64_t kMaxDim = 2'147'483'647;        // B, I, D
inline constexpr int64_t kMaxStridePad = 2'147'483'647;  // x_stride_pad
inline constexpr size_t kMaxTileNames = 64;              // names in one tiles list
inline constexpr size_t kDefaultMaxCases = 100'000;      // --max-cases
inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;
inline constexpr size_t kMaxYamlNodes = 100'000;
inline constexpr int kMaxYamlDepth = 16;  // a config needs 4: top level, sweeps, a sweep, a list

// Lists for one sweep; defaults as in the schema above.
struct SweepSpec {
  std::vector<int64_t> batch, in, hidden;
  std::vector<DType> dtype;
  std::vector<Layout> layout = {Layout::linear};
  std::vector<bool> bias = {false};
  std::vector<Math> math = {Math::exact};
  std::vector<int64_t> x_stride_pad = {0};
  std::vector<Variant> variants = all_variants();
  std::vector<TileChoice> tiles = {TileChoice()};
};

// The Cartesian product in the documented order; every case gets `origin`. No validation: count
// the cases first.
std::vector<Case> expand_sweep(const SweepSpec& spec, const std::string& origin);
// How many cases expand_sweep makes, without making them; UINT64_MAX when that does not fit.
uint64_t count_cases(const SweepSpec& spec);
// a * b, or UINT64_MAX when that does not fit.
uint64_t saturating_mul(uint64_t a, uint64_t b);

// Throws ConfigError on the first problem that appears twice, naming both origins. The message
// starts with the second case's FILE:LINE:COL, or its origin when it has no file.
void check_unique(const std::vector<Case>& cases);

struct SweepConfig {
  std::string name;
  std::string description;
  std::string source;  // the file, or the files of a merged config joined with ", "
  std::vector<Case> cases;
};

// Reads and parses a config file; messages use `path` as given.
SweepConfig load_config(const std::string& path, size_t max_cases = kDefaultMaxCases);
// Parses YAML text; `source_name` stands for the file in messages and origins.
SweepConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                         size_t max_cases = kDefaultMaxCases);
// Concatenates configs (repeated --shapes) in order: names joined with "+", descriptions with
// "; ", sources with ", ". Throws ConfigError when two configs produce the same problem, or more
// than `max_cases` cases together.
SweepConfig merge_configs(std::vector<SweepConfig> configs, size_t max_cases = kDefaultMaxCases);

}  // namespace swiglu::bench
