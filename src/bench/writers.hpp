// Result rows and their three outputs: CSV (a flushed line per row), JSON (rewritten atomically as
// rows come, so an interrupted run keeps its finished rows) and markdown tables. Files are created
// through common/files.hpp: a symlink at a result path is replaced, never followed.
//
// CSV columns and JSON row keys are one list, in one order (row_to_json); a value not measured
// (NaN, worst_index -1, a byte count of -1) is an empty CSV field and a JSON null. The gradient
// commands' rows extend the forward schema, which stays their first part.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Row {
  std::string op = "forward";  // check | forward | backward | step | memory
  std::string variant;         // fused | cublas2 | cublas1; fused-save | fused-recompute (gradients)
  int64_t batch = 0, in = 0, hidden = 0, ldx = 0;
  std::string dtype, layout, math;
  bool bias = false;
  std::string tile;    // tile name for fused, "cublasLt" for baselines
  std::string status;  // PASS | FAIL | SKIP | ERROR
  std::string reason;  // why SKIP/ERROR/FAIL, else empty
  // parity
  std::string reference;  // "cpu-fp64" | "gpu-fp32"
  double rel_l2 = kNaN, max_abs = kNaN, max_rel = kNaN, tol_rel_l2 = kNaN;
  int64_t worst_index = -1;
  double worst_got = kNaN, worst_expected = kNaN;
  // timing (milliseconds); NaN / 0 when the row was not timed
  double median_ms = kNaN, p25_ms = kNaN, p75_ms = kNaN, min_ms = kNaN;
  double noise = kNaN;  // (p75 - p25) / median, a fraction (markdown shows it in percent)
  size_t samples = 0;
  double tflops = kNaN, gbps = kNaN;
  double copy_fraction = kNaN;  // gbps over the copy ceiling measured in the same run (forward rows)
  // fp8 forward rows: Z's rel_l2 against the reference on the unquantised (bf16) inputs, the error
  // the quantisation of X and W12 adds (information: rel_l2 above, against the dequantised
  // operands, is what parity holds); NaN elsewhere.
  double rel_l2_unquantised = kNaN;
  double speedup_vs_cublas2 = kNaN, speedup_vs_cublas1 = kNaN;  // t_baseline / t_this, same run
  double sm_clock_mhz = kNaN;
  bool cold_l2 = true;
  // The times are replays of a CUDA graph holding the variant's timed work (--graph: one
  // cudaGraphLaunch between the events), not that work launched on the stream. Set on every row of
  // such a run, as cold_l2 is.
  bool cuda_graph = false;
  // Fused forward rows: "auto" when the tile is the heuristic's pick (tiles: auto), "forced" when
  // the run named it; "" for the baselines and the gradient ops. The regression gate keys an
  // "auto" row by its problem, so a heuristic that picks another tile is measured, not MISSING.
  std::string tile_choice;

  // ---- backward, step and memory rows only (row_to_json writes these keys for those ops) ----
  std::string policy;          // save | recompute; the baselines keep G and U, so theirs is save
  std::string grads;           // dx,dw | dx | dw (dbias comes with dw when the problem has bias)
  std::string gate_placement;  // fused: the placement that runs (save: prologue; recompute:
                               // epilogue unless prologue was asked); baselines: separate (a gate
                               // backward kernel of its own)
  // The kernels' tiles ("" where that kernel did not run; "cublasLt" for the baselines' GEMMs).
  // `tile` above joins them ("fwd=... recompute=... dx=... dw=...") for tables and case keys.
  std::string tile_forward, tile_recompute, tile_dx, tile_dw;
  // rel_l2 per output (NaN where not computed). rel_l2, max_abs, max_rel, tol_rel_l2 and worst_*
  // above describe the output furthest over its tolerance, named here: z | dx | dw | dbias.
  std::string worst_output;
  double rel_l2_z = kNaN, rel_l2_dx = kNaN, rel_l2_dw = kNaN, rel_l2_dbias = kNaN;
  // memory rows: bytes kept alive between forward and backward beyond X, W, bias and Z (saved),
  // and the backward's own extra bytes (workspace), as requested from cudaMalloc (also filled in
  // backward and step rows) and as measured with cudaMemGetInfo, which moves in steps of
  // meminfo_granularity_bytes (2 MiB, the page size cudaMalloc maps: an allocation below it may
  // share a page and read as 0). The ratios divide measured bytes by cublas2's of the same case
  // (NaN where cublas2 measured 0 or a buffer is under a page: measured_ratio).
  // cublas_workspace_bytes is the one cuBLASLt workspace the process shares among all baseline
  // GEMMs (not in the measured bytes; 0 for the fused rows, which do not use it).
  // measured_peak_bytes is the backward's peak beyond X, W, bias, Z, dZ and the gradients: what is
  // kept plus the workspace (no variant allocates anything else during its calls), and
  // peak_vs_cublas2 its ratio to cublas2's.
  int64_t requested_saved_bytes = -1, measured_saved_bytes = -1;
  int64_t requested_workspace_bytes = -1, measured_workspace_bytes = -1;
  double saved_vs_cublas2 = kNaN, workspace_vs_cublas2 = kNaN;
  int64_t cublas_workspace_bytes = -1, meminfo_granularity_bytes = -1;
  int64_t measured_peak_bytes = -1;
  double peak_vs_cublas2 = kNaN;
};

// Sets the row's problem fields (batch, in, hidden, ldx, dtype, layout, math, bias) from `p`; math
// is "exact" unless the dtype is fp32.
void set_problem(Row& row, const Problem& p);

// backward, step and memory: the ops whose rows carry the gradient and memory keys.
bool is_gradient_op(std::string_view op);

// The row as a JSON object, keys in CSV column order; NaN and worst_index -1 become null.
common::Json row_to_json(const Row& row);

// The CSV column names of the rows of `op`, in order.
const std::vector<std::string>& csv_columns(std::string_view op = "forward");

// The CSV line for a row (no trailing newline). Fields with ',', '"', CR or LF are quoted, with
// '"' doubled; NaN is an empty field; doubles use the shortest text that reads back exactly.
std::string csv_line(const Row& row);

// Appends rows to a CSV file: the header (the columns of `op`) on open, then one flushed line per
// write(). The file is created by create_file_replacing (a symlink at `path` is replaced, not
// followed; a FIFO or device there is refused). Throws std::runtime_error with the path and
// strerror when the file cannot be created or written.
class CsvWriter {
 public:
  explicit CsvWriter(const std::string& path, std::string_view op = "forward");
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;

  void write(const Row& row);
  const std::string& path() const { return path_; }

 private:
  void put(const std::string& line);

  std::string path_;
  std::FILE* file_ = nullptr;
};

// The result document JsonWriter writes, for `rows` at once:
//   {"schema": "swiglubench/1", "provenance": {...}, "rows": [...], "complete": <complete>}
std::string result_document(const common::Json& provenance, const std::vector<Row>& rows,
                            bool complete);

// Keeps every row and rewrites the whole file (write_file_atomic) as rows come:
//   {"schema": "swiglubench/1", "provenance": {...}, "rows": [...], "complete": false}
// The constructor writes the empty document; finish() writes it once more with "complete": true.
// After add(), the file is rewritten while the document is under kJsonEveryRowBytes, or once
// kJsonRewriteSeconds have passed since the last rewrite; flush() (and the destructor, errors
// ignored) writes the rows not yet written. Why: rewriting after every row is quadratic in the
// rows; this costs about one document per second of sweep, and SIGKILL loses under a second's rows.
inline constexpr size_t kJsonEveryRowBytes = size_t{64} << 10;
inline constexpr double kJsonRewriteSeconds = 1.0;

class JsonWriter {
 public:
  JsonWriter(std::string path, common::Json provenance);
  ~JsonWriter();
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void add(const Row& row);
  void flush();
  void finish();
  const std::string& path() const { return path_; }
  const std::vector<Row>& rows() const { return rows_; }
  size_t rewrites() const { return rewrites_; }  // files written so far, the first one included

  // The document as it is written to the file.
  std::string document(bool complete) const;

 private:
  void write(bool complete);

  std::string path_;
  std::string provenance_text_;         // the provenance as it sits in the document
  std::vector<std::string> row_texts_;  // each row as it sits in the document
  size_t row_bytes_ = 0;
  std::vector<Row> rows_;
  size_t written_rows_ = 0;  // rows in the file
  bool finished_ = false;
  size_t rewrites_ = 0;
  std::chrono::steady_clock::time_point last_write_;
};

// A GitHub markdown table. Columns by op:
//   check, forward:  op, variant, B, I, D, dtype, layout, bias, tile, median ms, noise %, TFLOP/s,
//                    GB/s, vs cublas2, vs cublas1, rel err, status
//   backward, step:  op, variant, B, I, D, dtype, layout, bias, grads, tile, median ms, noise %,
//                    TFLOP/s, vs cublas2, vs cublas1, rel err (of the worst output), status
//   memory:          op, variant, B, I, D, dtype, layout, bias, saved MiB, saved MiB measured,
//                    ws MiB, ws MiB measured, saved vs cublas2, ws vs cublas2, rel err, status
// Rows timed as graph replays (cuda_graph) title the median column "graph median ms". Numbers: ms
// to 4 significant digits, TFLOP/s and GB/s to 3, MiB with 3 decimals, ratios as 2.31x, rel err as
// 3.1e-03, "-" when not measured; the status cell carries the reason ("SKIP: ..."). Lines end '\n'.
std::string markdown_header(std::string_view op = "forward",
                            bool graph = false);              // header and alignment lines
std::string markdown_row(const Row& row);                      // in the columns of row.op
std::string markdown_table(const std::vector<Row>& rows);      // rows[0].op's, as wide as their widest cell

// A table cell: '|' escaped, line breaks as spaces.
std::string markdown_cell(std::string_view s);
// `x` in the fmt `spec` ("{:.2f}x"); "-" when it is not finite.
std::string fixed_or_dash(double x, const char* spec);
// `x` rounded to `digits` significant digits in fixed notation ("0.01234", "1235"); "-" for NaN.
std::string format_significant(double x, int digits);

// A memory row's measured bytes over cublas2's (`measured` / `base_measured`), or NaN where it says
// nothing: either side unmeasured (< 0), cublas2's 0, or a buffer of either side that asked for more
// than 0 but less than `granularity`, cudaMemGetInfo's step, where it reads as 0 or as a whole page
// (a row that asked for nothing, as fused-recompute's kept bytes, has its 0 ratio).
double measured_ratio(int64_t measured, int64_t base_measured, int64_t requested, int64_t base_requested,
                      int64_t granularity);

}  // namespace swiglu::bench
