// Result rows and their three outputs: CSV (one line per row, flushed), JSON (rewritten atomically
// after every row, so an interrupted run keeps every finished row) and GitHub markdown tables.
//
// CSV columns and JSON row keys are the same list, in the same order (see row_to_json). A value
// that was not measured (NaN, worst_index -1) is an empty CSV field and a JSON null.
#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "bench/json.hpp"

namespace swiglu::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Row {
  std::string op = "forward";  // forward (later: backward, step)
  std::string variant;         // fused | cublas2 | cublas1
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
  double speedup_vs_cublas2 = kNaN, speedup_vs_cublas1 = kNaN;  // t_baseline / t_this, same run
  double sm_clock_mhz = kNaN;
  bool cold_l2 = true;
};

// The row as a JSON object, keys in CSV column order; NaN and worst_index -1 become null.
Json row_to_json(const Row& row);

// The CSV column names, in order.
const std::vector<std::string>& csv_columns();

// The CSV line for a row (no trailing newline). Fields with ',', '"', CR or LF are quoted, with
// '"' doubled; NaN is an empty field; doubles use the shortest text that reads back exactly.
std::string csv_line(const Row& row);

// Appends rows to a CSV file: the header on open, then one flushed line per write().
// Throws std::runtime_error with the path and strerror when the file cannot be opened or written.
class CsvWriter {
 public:
  explicit CsvWriter(const std::string& path);
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

// Keeps every row and rewrites the whole file after each add() with write_file_atomic:
//   {"schema": "swiglubench/1", "provenance": {...}, "rows": [...], "complete": false}
// finish() writes it once more with "complete": true. The constructor writes the empty file.
class JsonWriter {
 public:
  JsonWriter(std::string path, Json provenance);
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void add(const Row& row);
  void finish();
  const std::string& path() const { return path_; }
  const std::vector<Row>& rows() const { return rows_; }

  // The document as it is written to the file.
  std::string document(bool complete) const;

 private:
  std::string path_;
  Json provenance_;
  Json rows_json_ = Json::array();
  std::vector<Row> rows_;
};

// A GitHub markdown table with the columns op, variant, B, I, D, dtype, layout, bias, tile,
// median ms, noise %, TFLOP/s, GB/s, vs cublas2, vs cublas1, rel err, status. Numbers:
// ms to 4 significant digits (0.01234), noise with one decimal, TFLOP/s and GB/s to 3 significant
// digits, speedups as 2.31x, rel err as 3.1e-03; "-" for values not measured. The status cell
// carries the reason when there is one ("SKIP: ..."). Each line ends with '\n'.
std::string markdown_header();  // the header line and the alignment line
std::string markdown_row(const Row& row);
std::string markdown_table(const std::vector<Row>& rows);

// `x` rounded to `digits` significant digits in fixed notation ("0.01234", "1235"); "-" for NaN.
std::string format_significant(double x, int digits);

}  // namespace swiglu::bench
