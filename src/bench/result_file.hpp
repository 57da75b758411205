// Result files read back: the JSON that JsonWriter writes (schema "swiglubench/1"), parsed
// strictly and within bounds whatever the file holds, into rows for the regression gate.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bench/writers.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

// A result file that cannot be used: the message names the file and, where known, line:column.
class ResultFileError : public std::runtime_error {
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
};

// A row of a fused variant: forward's "fused", the gradient ops' "fused-save", "fused-recompute", ...
inline bool fused_row(const Row& r) { return r.variant.starts_with("fused"); }

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
// required, the others default when absent, and unknown keys are ignored. A fused row (forward or
// gradient) with no tile_choice, or an empty one, gets one inferred: "auto" when it is the only row
// of its variant and problem in the file (a sweep with tiles: auto, as configs/ci.yaml runs), else
// "forced".
// Throws ResultFileError naming the file (and line:column where known) for a file that is not a
// regular file, too large or unreadable, a syntax error, nesting too deep, a schema other than
// "swiglubench/1", a missing provenance or device field, a missing required row key, a duplicate
// key, a value of the wrong type, or an implausible measurement (naming the row's case too).
ResultFile load_result_file(const std::string& path);

// The identity of a row: op, variant, batch, in, hidden, ldx, dtype, layout, math, bias, policy,
// tile, as one printable string ("forward fused B=64 I=784 D=1024 ldx=784 bf16 linear exact
// bias=false tile=sm80:16x32x64s6w2"; " policy=<p>" before tile only when the policy is not empty;
// "tile=auto" for a row whose tile_choice is "auto").
std::string case_key(const Row& row, std::string_view policy = {});

}  // namespace swiglu::bench
