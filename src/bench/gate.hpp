// `swiglubench compare` and `swiglubench gate`: the regression gate over result files.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "bench/compare.hpp"
#include "bench/case.hpp"
#include "bench/run.hpp"

namespace swiglu::bench {

struct GateOptions {
  std::string baseline;         // empty: results/<gpu>/baseline.json for the device in use
  CompareOptions compare;
  int retries = 2;              // re-measurements of SLOW/AMBG cases before judging
  bool update_baseline = false; // write the (merged) current results as the new baseline
};

// Compares two result files, prints the report, optionally rewrites the baseline from the current
// file, and returns the exit code (0 pass, 1 regression, 2 parity failure, 3 mismatch or error).
// The baseline is rewritten once, atomically (write_file_atomic): an update that is killed leaves
// the old baseline; a baseline path holding a FIFO, a device or a directory is refused (3).
int run_compare(const std::string& baseline, const std::string& current, const CompareOptions& o,
                bool update_baseline);

// Runs `cases` (timed, as `forward` does), compares them with the baseline, re-measures the SLOW
// and AMBG cases up to `retries` times, and returns the exit code of the final comparison. The
// result name (run.name) and, with update_baseline, the baseline path are checked before the
// device is opened.
int run_gate(const std::vector<Case>& cases, const common::Json& resolved_config, RunOptions run,
             const GateOptions& gate, const std::atomic<bool>& stop);

// The case key (compare.hpp) of the fused forward row a run of `c` writes with the tile word
// `tile`: "auto" (the heuristic's pick, keyed by the problem) or a tile name.
std::string fused_case_key(const Case& c, const std::string& tile);

}  // namespace swiglu::bench
