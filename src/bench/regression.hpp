// The regression gate (`swiglubench compare` and `gate`): a baseline and a current result file
// turned into one verdict per case and an exit code for CI.
//
// A case is a fused row keyed by its problem and tile; a row whose tile was the heuristic's pick
// (tile_choice "auto") by its problem alone, so a heuristic that now picks another tile is measured
// (noted "tile A → B"), not MISSING. Compared is the case's speedup over a cuBLAS baseline measured
// in the same run, so a machine uniformly slower today cancels out. With n_x the relative standard
// error of a row's median (σ ≈ IQR/1.349, error ≈ 1.2533·σ/√samples):
//   noise of a speedup in one run  n_s = sqrt(n_fused² + n_reference²)
//   tolerance                      t   = max(floor, k · sqrt(n_s,base² + n_s,cur²))
//   ratio                          r   = s_cur / s_base
//   t > max_tolerance: AMBG (too noisy to tell); r < 1 - t: SLOW; r > 1 + t: FAST; else SAME.
// And on the fused row alone: r_abs = median_cur / median_base, t_abs = max(abs_floor,
// k · sqrt(n_base² + n_cur²)); r_abs > 1 + t_abs is SLOW too (unless AMBG), so a slowdown that
// cuBLAS shares does not pass unseen. Why the standard error, not the spread: a short kernel's IQR
// is several % of its median while its median repeats far closer between runs; `floor` covers
// what the samples cannot see.
//
// Exit code, first match wins: a current FAIL row → kExitParity (2); a different device, SM count,
// cuBLAS major, driver major or kind of time (graph replays against stream launches), a file that
// is not complete, a baseline with no usable case, or no case in both files → kExitError (3); a
// MISSING case (unless allow_missing) → kExitError; a SLOW case → kExitRegression (1); else 0.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench/case.hpp"
#include "bench/result_file.hpp"
#include "bench/run.hpp"
#include "bench/writers.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

struct CompareOptions {
  double floor = 0.05;                // smallest relative tolerance on the speedup ratio
  double k = 3.0;                     // tolerance in units of the combined relative noise
  double abs_floor = 0.15;            // smallest relative tolerance on the fused median itself
  double max_tolerance = 0.25;        // above this tolerance a case is AMBG
  std::string reference = "cublas2";  // cublas2 | cublas1: which speedup is compared
  bool allow_missing = false;         // MISSING cases do not fail the gate
};

// Case labels.
inline constexpr std::string_view kLabelSame = "SAME";
inline constexpr std::string_view kLabelFast = "FAST";
inline constexpr std::string_view kLabelSlow = "SLOW";
inline constexpr std::string_view kLabelAmbiguous = "AMBG";
inline constexpr std::string_view kLabelMissing = "MISSING";
inline constexpr std::string_view kLabelNew = "NEW";  // counted only; NEW cases are not verdicts

struct CaseVerdict {
  std::string key;    // case_key of the fused row
  std::string label;  // SAME | FAST | SLOW | AMBG | MISSING
  double base_speedup = kNaN, cur_speedup = kNaN;
  double ratio = kNaN;      // cur_speedup / base_speedup
  double tolerance = kNaN;  // t; NaN where the noise is unknown
  double abs_ratio = kNaN;  // fused median_cur / median_base
  double abs_tolerance = kNaN;
  double ref_abs_ratio = kNaN;  // the reference row's median_cur / median_base (information only)
  std::string note;             // why MISSING, AMBG or SLOW, and "tile A → B" when an auto case's
                                // tile changed; empty otherwise
};

struct CompareReport {
  std::vector<CaseVerdict> cases;            // one per baseline case, in baseline order
  std::vector<std::string> new_cases;        // keys of timed current cases absent from the baseline
  std::vector<std::string> mismatches;       // one message each
  std::vector<std::string> parity_failures;  // "<key>: <reason>" for each current FAIL row
  std::vector<std::string> missing;          // keys of the MISSING cases
  std::map<std::string, int> counts;         // every label above, NEW included, zeros too
  std::string reference;                     // the options' reference variant
  size_t geomean_cases = 0;                  // cases with a speedup in both files
  double geomean_base = kNaN, geomean_cur = kNaN;
  int exit_code = 0;
};

// Compares `cur` against `base`. Throws std::invalid_argument for a reference other than cublas2 or
// cublas1 or a negative/non-finite option.
CompareReport compare_results(const ResultFile& base, const ResultFile& cur,
                              const CompareOptions& o);

// A markdown table (case, base/current speedup, ratio, tolerance, abs ratio, abs tolerance, the
// reference's abs ratio, label), then the counts, geomeans, mismatches, parity failures, missing
// and new cases, and a last line "verdict: PASS|REGRESSION|PARITY FAILURE|MISMATCH".
std::string format_report(const CompareReport& report);

// Keys of the SLOW and AMBG cases, in report order: the gate measures these again.
std::vector<std::string> keys_to_remeasure(const CompareReport& report);

// `rows` with every row whose case_key (variant included; policy "") appears in `newer` replaced
// by that newer row (the last one where `newer` repeats a key); rows of `newer` that match none are
// appended, in order.
std::vector<Row> merge_rows(const std::vector<Row>& rows, const std::vector<Row>& newer);


struct RegressionOptions {
  std::string baseline;         // empty: results/<gpu>/baseline.json for the device in use
  CompareOptions compare;
  int retries = 2;              // re-measurements of SLOW/AMBG cases before judging
  // What the cases run as (forward, backward, step), one sweep each, compared as one file.
  std::vector<Op> ops = {Op::forward, Op::step};
  bool update_baseline = false; // write the (merged) current results as the new baseline
};

// Compares two result files, prints the report, optionally rewrites the baseline from the current
// file, and returns the exit code (0 pass, 1 regression, 2 parity failure, 3 mismatch or error).
// The baseline is rewritten once, atomically (write_file_atomic): an update that is killed leaves
// the old baseline; a baseline path holding a FIFO, a device or a directory is refused (3).
int run_compare(const std::string& baseline, const std::string& current, const CompareOptions& o,
                bool update_baseline);

// Runs `cases` (timed) as each op of gate.ops, as `forward`, `backward` and `step` do (run.gradient
// holds the gradient ops' options), compares all their rows with the baseline as one file
// (<out>/gate_<name>.json when there is more than one op), re-measures the SLOW and AMBG cases (as
// the ops of their rows) up to `retries` times, and returns the exit code of the final comparison.
// The result name (run.name) and, with update_baseline, the baseline path are checked before the
// device is opened.
int run_regression(const std::vector<Case>& cases, const common::Json& resolved_config,
                   RunOptions run, const RegressionOptions& gate,
                   const std::atomic<bool>& stop);

// The case keys (result_file.hpp) of the fused rows a run of `c` as `op` writes with the tile word
// `tile`: "auto" (the heuristic's pick, keyed by the problem) or a tile name. forward: the one
// fused row; backward and step with the default gradient options: fused-save and fused-recompute.
std::vector<std::string> fused_case_keys(const Case& c, const std::string& tile, Op op);

}  // namespace swiglu::bench
