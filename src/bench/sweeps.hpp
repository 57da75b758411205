// The cases a case-running command runs: the cases of its --shapes files with the options'
// overrides applied, or the inline sweep that the options alone describe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/case.hpp"
#include "bench/config.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

// The case options of the command line, parsed; an empty list: the option was not given.
struct CaseOverrides {
  std::vector<std::string> shapes;  // --shapes files, in order
  std::vector<int64_t> batch, in, hidden;
  std::vector<DType> dtype;
  std::vector<Layout> layout;
  std::vector<bool> bias;
  std::vector<Math> math;
  std::optional<int64_t> x_stride_pad;
  std::vector<Variant> variants;
  std::vector<TileChoice> tiles;
  size_t max_cases = kDefaultMaxCases;
};

struct ResolvedCases {
  std::vector<Case> cases;
  std::string name;     // the configs' names joined with "+", or "inline"
  common::Json record;  // the files and the cases, as the JSON provenance records them
};

// Each given option replaces its field in every case of the files, as a product over each case
// (the lists outermost to innermost: batch, in, hidden, dtype, layout, bias, math); without
// --shapes the same product runs over one case of default fields, and batch, in and hidden are
// required. The product is counted before it is made: more than max_cases throws
// std::invalid_argument naming the factors. A problem made twice is kept once, where it first
// appears. Throws ConfigError for the files.
ResolvedCases resolve_cases(const CaseOverrides& o);

}  // namespace swiglu::bench
