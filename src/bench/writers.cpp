#include "bench/writers.hpp"
#include "common/files.hpp"
#include "common/json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string_view>

namespace swiglu::bench {

using common::Json;
using common::create_file_replacing;
using common::write_file_atomic;
namespace {

Json number_or_null(double d) { return std::isfinite(d) ? Json(d) : Json(); }
Json bytes_or_null(int64_t b) { return b != -1 ? Json(b) : Json(); }

std::string csv_field(const Json& v) {
  std::string text;  // the unquoted field
  switch (v.kind()) {
    case Json::Kind::null: return "";
    case Json::Kind::boolean: return v.as_bool() ? "true" : "false";
    case Json::Kind::integer: return fmt::format("{}", v.as_int());
    case Json::Kind::number: return fmt::format("{}", v.as_number());
    case Json::Kind::string: text = v.as_string(); break;
    case Json::Kind::array:
    case Json::Kind::object: text = v.dump(0); break;
  }
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

[[noreturn]] void io_error(const char* what, const std::string& path, int err) {
  throw std::runtime_error(fmt::format("{} '{}': {}", what, path, std::strerror(err)));
}

// --- markdown -------------------------------------------------------------------------------

struct Column {
  std::string_view title;
  size_t width;  // cells are padded to at least this width so streamed rows line up
  bool right;    // numbers are right-aligned
};

std::string md_line(const std::vector<Column>& columns, const std::vector<std::string>& cells) {
  std::string line = "|";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].right) {
      fmt::format_to(std::back_inserter(line), " {:>{}} |", cells.at(i), columns[i].width);
    } else {
      fmt::format_to(std::back_inserter(line), " {:<{}} |", cells.at(i), columns[i].width);
    }
  }
  line += '\n';
  return line;
}

std::string md_header(const std::vector<Column>& columns) {
  std::vector<std::string> titles;
  std::string rule = "|";
  for (const Column& c : columns) {
    titles.emplace_back(c.title);
    const size_t dashes = std::max(c.width, c.title.size());
    rule += c.right ? fmt::format(" {:->{}}: |", "", dashes - 1) : fmt::format(" {:->{}} |", "", dashes);
  }
  return md_line(columns, titles) + rule + "\n";
}

// The table columns of `op` (they mirror markdown_row's cells); with `graph`, the median column
// is titled for graph replays.
std::vector<Column> columns_of(std::string_view op, bool graph) {
  const bool memory = op == "memory", gradient = is_gradient_op(op);
  std::vector<Column> c = {{"op", memory ? 6u : gradient ? 8u : 7u, false},
                           {"variant", gradient ? 15u : 7u, false},
                           {"B", 5, true},
                           {"I", 5, true},
                           {"D", 5, true},
                           {"dtype", 5, false},
                           {"layout", 6, false},
                           {"bias", 4, false}};
  if (memory) {
    c.insert(c.end(), {{"saved MiB", 9, true},
                       {"saved MiB measured", 18, true},
                       {"ws MiB", 8, true},
                       {"ws MiB measured", 15, true},
                       {"saved vs cublas2", 16, true},
                       {"ws vs cublas2", 13, true},
                       {"peak MiB measured", 17, true},
                       {"peak vs cublas2", 15, true}});
  } else {
    if (gradient) c.push_back({"grads", 5, false});
    c.push_back({"tile", 18, false});
    c.push_back(graph ? Column{"graph median ms", 15, true} : Column{"median ms", 9, true});
    c.push_back({"noise %", 7, true});
    c.push_back({"TFLOP/s", 7, true});
    if (!gradient) c.insert(c.end(), {{"GB/s", 6, true}, {"% copy", 6, true}});
    c.push_back({"vs cublas2", 10, true});
    c.push_back({"vs cublas1", 10, true});
  }
  c.push_back({"rel err", 7, true});
  c.push_back({"status", 6, false});
  return c;
}

}  // namespace

Json row_to_json(const Row& r) {
  Json j = Json::object();
  j.as_object().reserve(56);  // every key below, so that building a row allocates once
  j.set("op", r.op);
  j.set("variant", r.variant);
  j.set("batch", r.batch);
  j.set("in", r.in);
  j.set("hidden", r.hidden);
  j.set("ldx", r.ldx);
  j.set("dtype", r.dtype);
  j.set("layout", r.layout);
  j.set("math", r.math);
  j.set("bias", r.bias);
  j.set("tile", r.tile);
  j.set("status", r.status);
  j.set("reason", r.reason);
  j.set("reference", r.reference);
  j.set("rel_l2", number_or_null(r.rel_l2));
  j.set("max_abs", number_or_null(r.max_abs));
  j.set("max_rel", number_or_null(r.max_rel));
  j.set("tol_rel_l2", number_or_null(r.tol_rel_l2));
  j.set("worst_index", r.worst_index >= 0 ? Json(r.worst_index) : Json());
  j.set("worst_got", number_or_null(r.worst_got));
  j.set("worst_expected", number_or_null(r.worst_expected));
  j.set("median_ms", number_or_null(r.median_ms));
  j.set("p25_ms", number_or_null(r.p25_ms));
  j.set("p75_ms", number_or_null(r.p75_ms));
  j.set("min_ms", number_or_null(r.min_ms));
  j.set("noise", number_or_null(r.noise));
  j.set("samples", r.samples);
  j.set("tflops", number_or_null(r.tflops));
  j.set("gbps", number_or_null(r.gbps));
  j.set("speedup_vs_cublas2", number_or_null(r.speedup_vs_cublas2));
  j.set("speedup_vs_cublas1", number_or_null(r.speedup_vs_cublas1));
  j.set("sm_clock_mhz", number_or_null(r.sm_clock_mhz));
  j.set("cold_l2", r.cold_l2);
  j.set("cuda_graph", r.cuda_graph);
  // Why last: a column added later goes after every existing one, in every op's CSV.
  if (!is_gradient_op(r.op)) {
    j.set("tile_choice", r.tile_choice);
    j.set("copy_fraction", number_or_null(r.copy_fraction));
    j.set("rel_l2_unquantised", number_or_null(r.rel_l2_unquantised));
    return j;
  }
  j.set("policy", r.policy);
  j.set("grads", r.grads);
  j.set("gate_placement", r.gate_placement);
  j.set("tile_forward", r.tile_forward);
  j.set("tile_recompute", r.tile_recompute);
  j.set("tile_dx", r.tile_dx);
  j.set("tile_dw", r.tile_dw);
  j.set("worst_output", r.worst_output);
  j.set("rel_l2_z", number_or_null(r.rel_l2_z));
  j.set("rel_l2_dx", number_or_null(r.rel_l2_dx));
  j.set("rel_l2_dw", number_or_null(r.rel_l2_dw));
  j.set("rel_l2_dbias", number_or_null(r.rel_l2_dbias));
  j.set("requested_saved_bytes", bytes_or_null(r.requested_saved_bytes));
  j.set("measured_saved_bytes", bytes_or_null(r.measured_saved_bytes));
  j.set("requested_workspace_bytes", bytes_or_null(r.requested_workspace_bytes));
  j.set("measured_workspace_bytes", bytes_or_null(r.measured_workspace_bytes));
  j.set("saved_vs_cublas2", number_or_null(r.saved_vs_cublas2));
  j.set("workspace_vs_cublas2", number_or_null(r.workspace_vs_cublas2));
  j.set("cublas_workspace_bytes", bytes_or_null(r.cublas_workspace_bytes));
  j.set("meminfo_granularity_bytes", bytes_or_null(r.meminfo_granularity_bytes));
  j.set("measured_peak_bytes", bytes_or_null(r.measured_peak_bytes));
  j.set("peak_vs_cublas2", number_or_null(r.peak_vs_cublas2));
  j.set("tile_choice", r.tile_choice);
  return j;
}

void set_problem(Row& r, const Problem& p) {
  r.batch = p.batch;
  r.in = p.in_features;
  r.hidden = p.hidden;
  r.ldx = p.x_stride();
  r.dtype = std::string(to_string(p.dtype));
  r.layout = std::string(to_string(p.layout));
  r.math = std::string(to_string(p.dtype == DType::f32 ? p.math : Math::exact));
  r.bias = p.bias;
}

bool is_gradient_op(std::string_view op) {
  return op == "backward" || op == "step" || op == "memory";
}

const std::vector<std::string>& csv_columns(std::string_view op) {
  const auto columns_of = [](std::string_view o) {
    Row r;
    r.op = std::string(o);
    std::vector<std::string> names;
    const Json row = row_to_json(r);
    for (const auto& [key, value] : row.as_object()) names.push_back(key);
    return names;
  };
  // Why two lists: every gradient op has the same keys, every other op the forward ones.
  static const std::vector<std::string> forward = columns_of("forward");
  static const std::vector<std::string> gradient = columns_of("backward");
  return is_gradient_op(op) ? gradient : forward;
}

std::string csv_line(const Row& row) {
  std::string line;
  bool first = true;
  // Why: a named object; iterating row_to_json(row).as_object() would outlive the temporary.
  const Json fields = row_to_json(row);
  for (const auto& [key, value] : fields.as_object()) {
    if (!first) line += ',';
    first = false;
    line += csv_field(value);
  }
  return line;
}

CsvWriter::CsvWriter(const std::string& path, std::string_view op) : path_(path) {
  file_ = create_file_replacing(path);
  std::string header;
  for (const std::string& name : csv_columns(op)) {
    if (!header.empty()) header += ',';
    header += name;
  }
  put(header);
}

CsvWriter::~CsvWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void CsvWriter::write(const Row& row) { put(csv_line(row)); }

void CsvWriter::put(const std::string& line) {
  if (std::fputs(line.c_str(), file_) < 0 || std::fputc('\n', file_) == EOF ||
      std::fflush(file_) != 0) {
    io_error("cannot write", path_, errno);
  }
}

namespace {

// A value as it sits `depth` levels deep in a result document (indent 2).
std::string nested_text(const Json& v, int depth) {
  std::string out;
  v.dump_to(out, 2, depth);
  return out;
}

// The document of Json::dump(2) for {"schema", "provenance", "rows", "complete"}, assembled from
// texts made by nested_text, so that a writer need not keep a Json tree of every row.
std::string assemble_document(const std::string& provenance, const std::vector<std::string>& rows,
                              size_t row_bytes, bool complete) {
  std::string out;
  out.reserve(provenance.size() + row_bytes + 6 * rows.size() + 128);
  out += "{\n  \"schema\": \"swiglubench/1\",\n  \"provenance\": ";
  out += provenance;
  out += ",\n  \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    out += i == 0 ? "\n    " : ",\n    ";
    out += rows[i];
  }
  out += rows.empty() ? "]" : "\n  ]";
  out += complete ? ",\n  \"complete\": true\n}\n" : ",\n  \"complete\": false\n}\n";
  return out;
}

}  // namespace

std::string result_document(const Json& provenance, const std::vector<Row>& rows, bool complete) {
  std::vector<std::string> texts;
  texts.reserve(rows.size());
  size_t bytes = 0;
  for (const Row& r : rows) {
    texts.push_back(nested_text(row_to_json(r), 2));
    bytes += texts.back().size();
  }
  return assemble_document(nested_text(provenance, 1), texts, bytes, complete);
}

JsonWriter::JsonWriter(std::string path, Json provenance)
    : path_(std::move(path)), provenance_text_(nested_text(provenance, 1)) {
  write(false);
}

JsonWriter::~JsonWriter() {
  try {
    flush();
  } catch (const std::exception&) {
    // Why: a destructor must not throw; the run has already reported its own outcome.
  }
}

void JsonWriter::add(const Row& row) {
  rows_.push_back(row);
  row_texts_.push_back(nested_text(row_to_json(row), 2));
  row_bytes_ += row_texts_.back().size();
  const double since =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_write_).count();
  if (row_bytes_ < kJsonEveryRowBytes || since >= kJsonRewriteSeconds) write(false);
}

void JsonWriter::flush() {
  if (!finished_ && written_rows_ < rows_.size()) write(false);
}

void JsonWriter::finish() {
  write(true);
  finished_ = true;
}

std::string JsonWriter::document(bool complete) const {
  return assemble_document(provenance_text_, row_texts_, row_bytes_, complete);
}

void JsonWriter::write(bool complete) {
  write_file_atomic(path_, document(complete));
  written_rows_ = rows_.size();
  ++rewrites_;
  last_write_ = std::chrono::steady_clock::now();
}

std::string format_significant(double x, int digits) {
  if (!std::isfinite(x)) return "-";
  if (x == 0) return "0";
  const int exponent = static_cast<int>(std::floor(std::log10(std::fabs(x))));
  int decimals = std::max(0, digits - 1 - exponent);
  std::string text = fmt::format("{:.{}f}", x, decimals);
  // Why: rounding can carry into a new leading digit (9.9996 -> "10.000"); drop one decimal then.
  double rounded = 0;
  std::from_chars(text.data(), text.data() + text.size(), rounded);
  if (decimals > 0 && std::fabs(rounded) >= std::pow(10.0, exponent + 1)) {
    text = fmt::format("{:.{}f}", x, decimals - 1);
  }
  return text;
}

std::string markdown_cell(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

double measured_ratio(int64_t measured, int64_t base_measured, int64_t requested, int64_t base_requested,
                      int64_t granularity) {
  if (measured < 0 || base_measured <= 0 || base_requested < granularity || requested < 0 ||
      (requested > 0 && requested < granularity))
    return kNaN;
  return static_cast<double>(measured) / static_cast<double>(base_measured);
}

std::string fixed_or_dash(double x, const char* spec) {
  return std::isfinite(x) ? fmt::format(fmt::runtime(spec), x) : "-";
}

std::string markdown_header(std::string_view op, bool graph) {
  return md_header(columns_of(op, graph));
}

namespace {

// Columns a cell takes: its UTF-8 code points, as fmt counts them when it pads (no cell holds a
// double-width character).
size_t display_width(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// The cells of r in the columns of r.op (columns_of).
std::vector<std::string> markdown_cells(const Row& r) {
  std::string status = r.status;
  if (!r.reason.empty()) status += ": " + r.reason;
  const auto mib = [](int64_t b) { return b == -1 ? std::string("-") : fmt::format("{:.3f}", b / 1048576.0); };
  // The problem's cells lead every table; the rest depends on the op.
  std::vector<std::string> cells = {markdown_cell(r.op),           markdown_cell(r.variant),
                                    fmt::format("{}", r.batch), fmt::format("{}", r.in),
                                    fmt::format("{}", r.hidden), markdown_cell(r.dtype),
                                    markdown_cell(r.layout),        r.bias ? "yes" : "no"};
  std::vector<std::string> rest;
  if (r.op == "memory") {
    rest = {mib(r.requested_saved_bytes), mib(r.measured_saved_bytes),
            mib(r.requested_workspace_bytes), mib(r.measured_workspace_bytes),
            fixed_or_dash(r.saved_vs_cublas2, "{:.2f}x"), fixed_or_dash(r.workspace_vs_cublas2, "{:.2f}x"),
            mib(r.measured_peak_bytes), fixed_or_dash(r.peak_vs_cublas2, "{:.2f}x")};
  } else {
    if (is_gradient_op(r.op)) rest.push_back(markdown_cell(r.grads));
    rest.push_back(markdown_cell(r.tile));
    rest.push_back(format_significant(r.median_ms, 4));
    rest.push_back(fixed_or_dash(r.noise * 100.0, "{:.1f}"));
    rest.push_back(format_significant(r.tflops, 3));
    if (!is_gradient_op(r.op)) {
      rest.push_back(format_significant(r.gbps, 3));
      rest.push_back(fixed_or_dash(r.copy_fraction * 100.0, "{:.0f}"));
    }
    rest.push_back(fixed_or_dash(r.speedup_vs_cublas2, "{:.2f}x"));
    rest.push_back(fixed_or_dash(r.speedup_vs_cublas1, "{:.2f}x"));
  }
  cells.insert(cells.end(), rest.begin(), rest.end());
  cells.push_back(fixed_or_dash(r.rel_l2, "{:.1e}"));
  cells.push_back(markdown_cell(status));
  return cells;
}

}  // namespace

std::string markdown_row(const Row& r) {
  return md_line(columns_of(r.op, r.cuda_graph), markdown_cells(r));
}

// Why wider columns than markdown_row's: the table is written once all its rows are known, so
// each column can be as wide as its widest cell (a step row's three tiles, a long variant or
// reason) and every line of the file lines up; rows streamed to stdout keep the fixed widths.
std::string markdown_table(const std::vector<Row>& rows) {
  if (rows.empty()) return markdown_header();
  const Row& first = rows.front();
  const auto in_first_columns = [&](const Row& r) { return r.op == first.op && r.cuda_graph == first.cuda_graph; };
  std::vector<Column> columns = columns_of(first.op, first.cuda_graph);
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (const Row& row : rows) {
    cells.push_back(markdown_cells(row));
    if (!in_first_columns(row)) continue;
    for (size_t i = 0; i < columns.size(); ++i) {
      columns[i].width = std::max(columns[i].width, display_width(cells.back().at(i)));
    }
  }
  std::string table = md_header(columns);
  for (size_t k = 0; k < rows.size(); ++k) {
    table += md_line(in_first_columns(rows[k]) ? columns : columns_of(rows[k].op, rows[k].cuda_graph), cells[k]);
  }
  return table;
}

}  // namespace swiglu::bench
