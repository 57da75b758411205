// The regression gate's comparison: two swiglubench result files (JsonWriter's format, schema
// "swiglubench/1"), a baseline and a current run, turned into one verdict per case and an exit
// code for CI.
//
// A case is a fused row, keyed by its problem and its tile; a row whose tile was the heuristic's
// pick (tile_choice "auto") by its problem alone ("tile=auto"), so a heuristic that now picks
// another tile is measured (the row's note says "tile A → B"), not MISSING. What is compared is its
// speedup over a cuBLAS baseline (cublas2 by default), measured interleaved inside each run, so a
// machine that is uniformly slower or faster today cancels out. With n_x the relative standard
// error of a row's median, estimated from its spread and sample count (σ ≈ IQR/1.349, error ≈
// 1.2533·σ/√samples):
//   noise of a speedup in one run  n_s = sqrt(n_fused² + n_reference²)
//   tolerance                      t   = max(floor, k · sqrt(n_s,base² + n_s,cur²))
//   ratio                          r   = s_cur / s_base
//   t > max_tolerance: AMBG (too noisy to tell); r < 1 - t: SLOW; r > 1 + t: FAST; else SAME.
// A looser absolute check on the fused row alone: r_abs = median_cur / median_base with
// t_abs = max(abs_floor, k · sqrt(n_base² + n_cur²)); r_abs > 1 + t_abs makes the case SLOW too
// (unless it is AMBG), so a slowdown that cuBLAS happens to share does not pass unseen.
// Why the standard error and not the spread itself: a 10 µs kernel's IQR is 5-10 % of its median
// (CUDA event resolution), yet the median of 2000 samples repeats to within about 1 % between runs
// (measured on an H200: the same 92 cases run twice differed by at most 4 % in speedup, median
// 0.3 %); the spread would make every small case AMBG. Run-to-run effects the samples cannot see
// are what `floor` is for.
//
// Exit code, first match wins: a current row with status FAIL → kExitParity (2); a different
// device, SM count, cuBLAS major, driver major, kind of time (CUDA-graph replays against stream
// launches), a baseline or current file that is not complete, a baseline with no usable case, or
// no case measured in both files → kExitError (3); a MISSING case (unless allow_missing) →
// kExitError (3); a SLOW case → kExitRegression (1); else kExitOk (0). AMBG, FAST, SAME and NEW
// are green.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bench/writers.hpp"
#include "common/exit_codes.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

// A result file that cannot be used: the message names the file and, where known, line:column.
class CompareError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ResultFile {
  std::string path;
  std::string device_name;      // provenance.device.name
  int64_t sm_count = 0;         // provenance.device.sm_count
  int64_t cublas_version = 0;   // provenance.device.cublas, e.g. 130100
  std::string driver;           // provenance.device.driver ("580.159.04"); "" when null
  std::string cuda_driver_api;  // provenance.device.cuda_driver_api ("13.0"); "" when null
  std::string git_sha;          // provenance.git_sha
  bool complete = false;        // false: the sweep was cut short
  bool cuda_graph = false;      // provenance.timing.cuda_graph (--graph); false when absent
  common::Json provenance;              // the whole provenance object
  std::vector<Row> rows;
  // Parallel to rows: each row's optional "policy" field, "" where absent (Row has no policy
  // yet). May be shorter than rows (hand-built files); missing entries read as "".
  std::vector<std::string> policies;
};

// Reading a result file is bounded, whatever the file holds: it must be a regular file (a FIFO,
// /dev/zero or a directory is refused, without blocking) of at most kMaxResultFileBytes; it is
// parsed as strict JSON (RFC 8259, so no YAML anchors or aliases to expand) with arrays and objects
// nested at most kMaxResultDepth levels (the files swiglubench writes nest 6); and the values the
// comparison reads must be measurements: median_ms, speedup_vs_cublas2 and speedup_vs_cublas1 null
// or in [kMinMeasurement, kMaxMeasurement] (no zero, negative, denormal or absurd value), noise
// null or in [0, kMaxNoise].
inline constexpr uint64_t kMaxResultFileBytes = uint64_t{64} << 20;  // 64 MiB
inline constexpr int kMaxResultDepth = 64;
inline constexpr double kMinMeasurement = 1e-6, kMaxMeasurement = 1e6;
inline constexpr double kMaxNoise = 1e3;

// Reads a result file. Rows are rebuilt as the inverse of row_to_json: null becomes NaN
// (worst_index -1). Every key row_to_json writes is known; the case-key fields, status and the
// timing fields the comparison reads (median_ms, noise, speedup_vs_cublas2, speedup_vs_cublas1) are
// required, the others default when absent, and unknown keys are ignored. A file written before
// rows had tile_choice gets one inferred: a fused row is "auto" when it is the only fused row of
// its problem in the file (a sweep with tiles: auto, as configs/ci.yaml runs), else "forced".
// Throws CompareError naming the file (and line:column where known) for a file that is not a
// regular file, too large or unreadable, a syntax error, nesting too deep, a schema other than
// "swiglubench/1", a missing provenance or device field, a missing required row key, a duplicate
// key, a value of the wrong type, or an implausible measurement (naming the row's case too).
ResultFile load_result_file(const std::string& path);

// The identity of a row: op, variant, batch, in, hidden, ldx, dtype, layout, math, bias, policy,
// tile, as one printable string ("forward fused B=64 I=784 D=1024 ldx=784 bf16 linear exact
// bias=false tile=sm80:16x32x64s6w2"; " policy=<p>" before tile only when the policy is not empty;
// "tile=auto" for a row whose tile_choice is "auto").
std::string case_key(const Row& row, std::string_view policy = {});

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

}  // namespace swiglu::bench
