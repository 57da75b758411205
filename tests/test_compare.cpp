// Result files read back, and the regression gate's comparison (result_file.hpp,
// regression.hpp). The fixtures under
// tests/data/compare/ are result files in JsonWriter's format: base.json is the baseline (three
// cases A, B, C × fused/cublas2/cublas1), each other file a current run with one outcome:
//   case A: B=64 I=784 D=1024 bf16        speedup vs cublas2 1.5, noise 2%  → tolerance ±12%
//   case B: B=4096 I=4096 D=4096 bf16     speedup vs cublas2 1.2, noise 1%  → tolerance ±6%
//   case C: B=777 I=1000 D=2048 fp16 bias speedup vs cublas2 1.2, noise 1%  → tolerance ±6%
//   case D: B=1 I=4096 D=11008 bf16       only in missing.json (NEW)
#include "bench/result_file.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench/config.hpp"
#include "bench/regression.hpp"
#include "bench/run.hpp"
#include "bench/writers.hpp"
#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/json.hpp"
#include "temp_dir.hpp"

namespace swiglu::bench {
namespace {

using common::Json;
using common::write_file_atomic;
using common::kExitOk;
using common::kExitRegression;
using common::kExitParity;
using common::kExitError;

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return std::string(SWIGLU_SOURCE_DIR) + "/tests/data/compare/" + name;
}

ResultFile load(const std::string& name) { return load_result_file(fixture(name)); }

CompareReport compare_files(const std::string& base, const std::string& cur,
                            const CompareOptions& o = {}) {
  return compare_results(load(base), load(cur), o);
}

// The verdict of the case whose batch size is `batch` (A 64, B 4096, C 777).
const CaseVerdict& verdict(const CompareReport& rep, int batch) {
  const std::string tag = " B=" + std::to_string(batch) + " ";
  for (const CaseVerdict& v : rep.cases)
    if (v.key.find(tag) != std::string::npos) return v;
  ADD_FAILURE() << "no case with" << tag;
  static const CaseVerdict none;
  return none;
}

std::vector<std::string> labels(const CompareReport& rep) {
  std::vector<std::string> out;
  for (const CaseVerdict& v : rep.cases) out.push_back(v.label);
  return out;
}

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

int count(const CompareReport& rep, std::string_view label) {
  return rep.counts.at(std::string(label));
}

// --- loading -------------------------------------------------------------------------------------

TEST(LoadResultFile, ReadsProvenanceAndRows) {
  const ResultFile f = load("base.json");
  EXPECT_EQ(f.path, fixture("base.json"));
  EXPECT_EQ(f.device_name, "NVIDIA H200");
  EXPECT_EQ(f.sm_count, 132);
  EXPECT_EQ(f.cublas_version, 130100);
  EXPECT_EQ(f.driver, "580.159.04");
  EXPECT_EQ(f.cuda_driver_api, "13.0");
  EXPECT_EQ(f.git_sha, "bffb3fbe10e78097a68d03a33df2d4367c47fe0e");
  EXPECT_TRUE(f.complete);
  ASSERT_NE(f.provenance.find("timing"), nullptr);
  EXPECT_EQ(f.provenance.find("timing")->find("warmup")->as_int(), 10);
  EXPECT_EQ(f.provenance.find("device")->find("memory_bytes")->as_int(), 150109880320);
  ASSERT_EQ(f.rows.size(), 9u);
  const Row& r = f.rows[0];
  EXPECT_EQ(r.op, "forward");
  EXPECT_EQ(r.variant, "fused");
  EXPECT_EQ(r.batch, 64);
  EXPECT_EQ(r.in, 784);
  EXPECT_EQ(r.hidden, 1024);
  EXPECT_EQ(r.ldx, 784);
  EXPECT_EQ(r.dtype, "bf16");
  EXPECT_EQ(r.tile, "sm80:16x32x64s6w2");
  EXPECT_EQ(r.status, "PASS");
  EXPECT_DOUBLE_EQ(r.median_ms, 0.01);
  EXPECT_DOUBLE_EQ(r.noise, 0.02);
  EXPECT_DOUBLE_EQ(r.speedup_vs_cublas2, 1.5);
  EXPECT_EQ(r.samples, 200u);
  EXPECT_EQ(f.rows[1].variant, "cublas2");
  EXPECT_EQ(f.rows[1].tile, "cublasLt");
  EXPECT_TRUE(std::isnan(f.rows[1].speedup_vs_cublas2));
  EXPECT_TRUE(f.rows[8].bias);  // case C has a bias
  EXPECT_EQ(f.rows.at(0).policy, "");
  const ResultFile c = load("missing.json");
  EXPECT_TRUE(std::isnan(c.rows[3].median_ms));  // B's fused row: ERROR, not timed
  EXPECT_EQ(c.rows[3].samples, 0u);
}

TEST(LoadResultFile, RealResultFileLoads) {
  const ResultFile f =
      load_result_file(std::string(SWIGLU_SOURCE_DIR) + "/results/h200/forward_mnist.json");
  EXPECT_EQ(f.device_name, "NVIDIA H200");
  EXPECT_GT(f.rows.size(), 0u);
  EXPECT_TRUE(f.complete);
}

// Calls load_result_file and returns the ResultFileError message ("" when nothing was thrown).
std::string load_error(const std::string& path) {
  try {
    load_result_file(path);
  } catch (const ResultFileError& e) {
    return e.what();
  }
  return "";
}

TEST(LoadResultFile, SyntaxErrorNamesFileAndLine) {
  const std::string msg = load_error(fixture("bad_syntax.json"));
  EXPECT_NE(msg.find(fixture("bad_syntax.json") + ":"), std::string::npos) << msg;
  EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
}

TEST(LoadResultFile, WrongSchema) {
  const std::string msg = load_error(fixture("bad_schema.json"));
  EXPECT_NE(msg.find(fixture("bad_schema.json")), std::string::npos) << msg;
  EXPECT_NE(msg.find("schema is 'swiglubench/0'"), std::string::npos) << msg;
}

TEST(LoadResultFile, RowMissingAKeyField) {
  const std::string msg = load_error(fixture("missing_field.json"));
  EXPECT_NE(msg.find(fixture("missing_field.json")), std::string::npos) << msg;
  EXPECT_NE(msg.find("rows[1]: missing key 'tile'"), std::string::npos) << msg;
}

TEST(LoadResultFile, RowFieldOfTheWrongType) {
  const std::string msg = load_error(fixture("wrong_type.json"));
  EXPECT_NE(msg.find(fixture("wrong_type.json")), std::string::npos) << msg;
  EXPECT_NE(msg.find("rows[0]: 'batch' must be an integer"), std::string::npos) << msg;
}

TEST(LoadResultFile, MissingDeviceField) {
  const std::string msg = load_error(fixture("missing_device.json"));
  EXPECT_NE(msg.find(fixture("missing_device.json")), std::string::npos) << msg;
  EXPECT_NE(msg.find("provenance.device: missing key 'sm_count'"), std::string::npos) << msg;
}

TEST(LoadResultFile, UnreadableFile) {
  const std::string path = fixture("no_such_file.json");
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(path + ": cannot read"), std::string::npos) << msg;
}

// A fresh, empty directory per test, removed afterwards.
using TempDir = test::TempDirTest;

Json small_provenance() {
  Json device = Json::object();
  device.set("name", "NVIDIA H100 80GB HBM3");
  device.set("sm_count", 132);
  device.set("driver", Json());
  device.set("cuda_driver_api", "12.8");
  device.set("cublas", 120805);
  Json prov = Json::object();
  prov.set("tool", "swiglubench");
  prov.set("git_sha", "unknown");
  prov.set("device", device);
  return prov;
}

using LoadText = TempDir;

// Writes `text` as a file and returns load_error for it.
std::string text_error(const std::string& path, const std::string& text) {
  write_file_atomic(path, text);
  return load_error(path);
}

TEST_F(LoadText, StructuralErrors) {
  const std::string prov = small_provenance().dump(0);
  const std::string row = row_to_json(Row{}).dump(0);
  const auto doc = [&](const std::string& rows, const std::string& extra = "") {
    return "{\"schema\": \"swiglubench/1\", \"provenance\": " + prov + ", \"rows\": " + rows +
           ", \"complete\": true" + extra + "}";
  };
  // The well-formed document loads; each broken one names what is wrong.
  const std::string p = path("f.json");
  EXPECT_EQ(text_error(p, doc("[" + row + "]")), "");
  EXPECT_NE(text_error(p, "").find("empty file"), std::string::npos);
  EXPECT_NE(text_error(p, "[1, 2]").find("the file must be an object"), std::string::npos);
  EXPECT_NE(text_error(p, doc("{}")).find("'rows' must be an array"), std::string::npos);
  EXPECT_NE(text_error(p, doc("[3]")).find("rows[0] must be an object"), std::string::npos);
  EXPECT_NE(
      text_error(p, doc("[" + row + "]", ", \"complete\": false")).find("duplicate key 'complete'"),
      std::string::npos);
  EXPECT_NE(text_error(p, doc("[" + row + "]") + "\n{}").find("text after the end"),
            std::string::npos);
  std::string no_schema = doc("[]");
  no_schema.replace(no_schema.find("\"schema\""), 8, "\"schemo\"");
  EXPECT_NE(text_error(p, no_schema).find("missing key 'schema'"), std::string::npos);
  // Types: a quoted number is not a number, a number is not a string, 1 is not a boolean.
  std::string quoted_median = row;
  quoted_median.replace(quoted_median.find("\"median_ms\":null"), 16, "\"median_ms\":\"0.5\"");
  EXPECT_NE(
      text_error(p, doc("[" + quoted_median + "]")).find("'median_ms' must be a number or null"),
      std::string::npos);
  std::string numeric_tile = row;
  numeric_tile.replace(numeric_tile.find("\"tile\":\"\""), 9, "\"tile\":7");
  EXPECT_NE(text_error(p, doc("[" + numeric_tile + "]")).find("'tile' must be a string"),
            std::string::npos);
  std::string int_bias = row;
  int_bias.replace(int_bias.find("\"bias\":false"), 12, "\"bias\":1");
  EXPECT_NE(text_error(p, doc("[" + int_bias + "]")).find("'bias' must be true or false"),
            std::string::npos);
  std::string negative_samples = row;
  negative_samples.replace(negative_samples.find("\"samples\":0"), 11, "\"samples\":-3");
  EXPECT_NE(
      text_error(p, doc("[" + negative_samples + "]")).find("'samples' must be a non-negative"),
      std::string::npos);
}

TEST_F(LoadText, RequiredAndOptionalRowKeys) {
  const std::string prov = small_provenance().dump(0);
  const std::vector<std::string> required = {"op",
                                             "variant",
                                             "batch",
                                             "in",
                                             "hidden",
                                             "ldx",
                                             "dtype",
                                             "layout",
                                             "math",
                                             "bias",
                                             "tile",
                                             "status",
                                             "median_ms",
                                             "noise",
                                             "speedup_vs_cublas2",
                                             "speedup_vs_cublas1"};
  // Every key row_to_json writes: removing a required one fails, removing another one does not.
  const Json full = row_to_json(Row{});
  for (const auto& [key, value] : full.as_object()) {
    Json row = Json::object();
    for (const auto& [k, v] : full.as_object())
      if (k != key) row.set(k, v);
    const std::string text = "{\"schema\": \"swiglubench/1\", \"provenance\": " + prov +
                             ", \"rows\": [" + row.dump(2) + "], \"complete\": true}";
    const std::string msg = text_error(path("f.json"), text);
    const bool is_required = std::find(required.begin(), required.end(), key) != required.end();
    if (is_required) {
      EXPECT_NE(msg.find("missing key '" + key + "'"), std::string::npos) << key << ": " << msg;
    } else {
      EXPECT_EQ(msg, "") << key;
    }
  }
  // Why: a tripwire. A new Row field needs a reader in result_file.cpp and a place in RoundTrip.
  EXPECT_EQ(full.size(), 37u) << "Row gained or lost a field: update read_row and this file";
}

TEST_F(LoadText, PolicyIsReadIntoTheKey) {
  Json row = row_to_json(Row{});
  row.set("policy", "heuristic");
  Json doc = Json::object();
  doc.set("schema", "swiglubench/1");
  doc.set("provenance", small_provenance());
  doc.set("rows", Json(Json::Array{row, row_to_json(Row{})}));
  doc.set("complete", true);
  write_file_atomic(path("p.json"), doc.dump(2));
  const ResultFile f = load_result_file(path("p.json"));
  ASSERT_EQ(f.rows.size(), 2u);
  EXPECT_EQ(f.rows.at(0).policy, "heuristic");
  EXPECT_EQ(f.rows.at(1).policy, "");
  EXPECT_EQ(f.driver, "");  // null
  EXPECT_EQ(f.cuda_driver_api, "12.8");
}

// --- bounded reading -----------------------------------------------------------------------------

using Bounded = TempDir;

TEST_F(Bounded, OnlyRegularFilesAreRead) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);  // opening it to read would block
  EXPECT_EQ(load_error(path("fifo")),
            path("fifo") + ": cannot read: not a regular file (a FIFO); a result file must be one");
  EXPECT_NE(load_error("/dev/zero").find("not a regular file (a character device)"),
            std::string::npos);
  EXPECT_NE(load_error(dir_.string()).find("not a regular file (a directory)"), std::string::npos);
  // A symlink to a regular file is read.
  fs::create_symlink(fixture("base.json"), path("link.json"));
  EXPECT_EQ(load_error(path("link.json")), "");
}

TEST_F(Bounded, FilesOverTheSizeLimitAreRefused) {
  test::spit(path("big.json"), "{}");
  fs::resize_file(path("big.json"), kMaxResultFileBytes + 1);  // sparse: nothing is written
  EXPECT_EQ(load_error(path("big.json")),
            path("big.json") + ": cannot read: 67108865 bytes, over the 64 MiB (67108864 bytes) "
                               "limit for a result file");
}

TEST_F(Bounded, StrictJson) {
  const std::string prov = small_provenance().dump(0);
  const auto doc = [&](const std::string& extra) {
    return "{\"schema\": \"swiglubench/1\", \"provenance\": " + prov + ", \"rows\": [], " + extra +
           "\"complete\": true}";
  };
  const std::string p = path("f.json");
  EXPECT_EQ(text_error(p, doc("")), "");
  EXPECT_EQ(text_error(p, "\xEF\xBB\xBF" + doc("")), "");  // a byte order mark
  EXPECT_EQ(text_error(p, doc("\"x\": [1, -0.5e-3, 2E+8, true, null, "
                              "\"\\u00e9\\ud83d\\ude00\\n\"], ")),
            "");
  // Nesting: 64 levels in all (the root is the first) load, 65 do not.
  const auto nested = [](int levels) {
    return std::string(levels, '[') + std::string(levels, ']');
  };
  EXPECT_EQ(text_error(p, doc("\"x\": " + nested(kMaxResultDepth - 1) + ", ")), "");
  const std::string too_deep = doc("\"x\": " + nested(kMaxResultDepth) + ", ");
  // The error points at the bracket that opens level 65 (columns are 1-based).
  const size_t column = too_deep.find('[', too_deep.find("\"x\"")) + kMaxResultDepth;
  EXPECT_EQ(text_error(p, too_deep), p + ":1:" + std::to_string(column) +
                                         ": arrays and objects nested deeper than 64 levels");
  // YAML that is not JSON: anchors and aliases, and other forms.
  EXPECT_NE(text_error(p, doc("\"x\": &a [1], \"y\": *a, "))
                .find("syntax error: '&': YAML anchors and aliases are not allowed; a result "
                      "file is JSON"),
            std::string::npos);
  for (const std::string bad :
       {"\"x\": [1,], ", "\"x\": 'q', ", "\"x\": NaN, ", "\"x\": .5, ", "\"x\": 01, ",
        "\"x\": +1, ", "\"x\": tru, ", "\"x\": \"\\x41\", ", "\"x\": \"\\ud800\", ",
        "\"x\": \"a\tb\", ", "x: 1, ", "# c\n", "\"x\": ~, ", "\"x\": !!str 1, "}) {
    EXPECT_NE(text_error(p, doc(bad)).find(": syntax error: "), std::string::npos) << bad;
  }
  EXPECT_NE(text_error(p, "{\"schema\": \"swiglu").find("syntax error: a string is not closed"),
            std::string::npos);
  EXPECT_NE(text_error(p, "{\"schema\": ").find("syntax error: unexpected end of file"),
            std::string::npos);
}

TEST_F(Bounded, ImplausibleMeasurementsNameTheCase) {
  const std::string prov = small_provenance().dump(0);
  Row ok;
  ok.variant = "fused";
  ok.batch = 64;
  ok.median_ms = 0.01;
  ok.noise = 0.02;
  ok.speedup_vs_cublas2 = 1.5;
  ok.speedup_vs_cublas1 = 1.2;
  const auto file = [&](const std::string& key, const std::string& value) {
    std::string row = row_to_json(ok).dump(0);
    const std::string from = "\"" + key + "\":";
    const size_t at = row.find(from) + from.size();
    row.replace(at, row.find(',', at) - at, value);
    return "{\"schema\": \"swiglubench/1\", \"provenance\": " + prov + ",\n\"rows\": [" + row +
           "], \"complete\": true}";
  };
  EXPECT_EQ(text_error(path("f.json"), file("median_ms", "0.01")), "");
  EXPECT_EQ(text_error(path("f.json"), file("noise", "0")), "");
  EXPECT_EQ(text_error(path("f.json"), file("speedup_vs_cublas2", "null")), "");
  for (const char* key : {"median_ms", "speedup_vs_cublas2", "speedup_vs_cublas1"}) {
    for (const char* value : {"0", "-1", "1e-310", "5e-324", "2e6", "1e308", "1e999", "-1e999"}) {
      const std::string msg = text_error(path("f.json"), file(key, value));
      EXPECT_EQ(msg.rfind(path("f.json") + ":2:", 0), 0u) << msg;
      EXPECT_NE(msg.find("rows[0]: case forward fused B=64 I=0 D=0 ldx=0"), std::string::npos)
          << msg;
      EXPECT_NE(msg.find(std::string("'") + key + "' is " + value + ", not a measurement"),
                std::string::npos)
          << msg;
    }
  }
  EXPECT_NE(text_error(path("f.json"), file("noise", "1e300")).find("'noise' is 1e300"),
            std::string::npos);
  EXPECT_NE(text_error(path("f.json"), file("noise", "-0.5")).find("'noise' is -0.5"),
            std::string::npos);
}

// --- round trip through the real writer
// ------------------------------------------------------------

using RoundTrip = TempDir;

void expect_same_double(double want, double got, const char* field) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << field << ": " << got;
  } else {
    EXPECT_EQ(want, got) << field;  // exact: the writer's text reads back to the same double
  }
}

void expect_same_row(const Row& a, const Row& b) {
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.variant, b.variant);
  EXPECT_EQ(a.batch, b.batch);
  EXPECT_EQ(a.in, b.in);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.ldx, b.ldx);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.layout, b.layout);
  EXPECT_EQ(a.math, b.math);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.tile, b.tile);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.reference, b.reference);
  expect_same_double(a.rel_l2, b.rel_l2, "rel_l2");
  expect_same_double(a.max_abs, b.max_abs, "max_abs");
  expect_same_double(a.max_rel, b.max_rel, "max_rel");
  expect_same_double(a.tol_rel_l2, b.tol_rel_l2, "tol_rel_l2");
  EXPECT_EQ(a.worst_index, b.worst_index);
  expect_same_double(a.worst_got, b.worst_got, "worst_got");
  expect_same_double(a.worst_expected, b.worst_expected, "worst_expected");
  expect_same_double(a.median_ms, b.median_ms, "median_ms");
  expect_same_double(a.p25_ms, b.p25_ms, "p25_ms");
  expect_same_double(a.p75_ms, b.p75_ms, "p75_ms");
  expect_same_double(a.min_ms, b.min_ms, "min_ms");
  expect_same_double(a.noise, b.noise, "noise");
  EXPECT_EQ(a.samples, b.samples);
  expect_same_double(a.tflops, b.tflops, "tflops");
  expect_same_double(a.gbps, b.gbps, "gbps");
  expect_same_double(a.copy_fraction, b.copy_fraction, "copy_fraction");
  expect_same_double(a.rel_l2_unquantised, b.rel_l2_unquantised, "rel_l2_unquantised");
  expect_same_double(a.speedup_vs_cublas2, b.speedup_vs_cublas2, "speedup_vs_cublas2");
  expect_same_double(a.speedup_vs_cublas1, b.speedup_vs_cublas1, "speedup_vs_cublas1");
  expect_same_double(a.sm_clock_mhz, b.sm_clock_mhz, "sm_clock_mhz");
  EXPECT_EQ(a.cold_l2, b.cold_l2);
  EXPECT_EQ(a.cuda_graph, b.cuda_graph);
  EXPECT_EQ(a.tile_choice, b.tile_choice);
  EXPECT_EQ(a.policy, b.policy);
  EXPECT_EQ(a.grads, b.grads);
  EXPECT_EQ(a.gate_placement, b.gate_placement);
  EXPECT_EQ(a.tile_forward, b.tile_forward);
  EXPECT_EQ(a.tile_recompute, b.tile_recompute);
  EXPECT_EQ(a.tile_dx, b.tile_dx);
  EXPECT_EQ(a.tile_dw, b.tile_dw);
  EXPECT_EQ(a.worst_output, b.worst_output);
  expect_same_double(a.rel_l2_z, b.rel_l2_z, "rel_l2_z");
  expect_same_double(a.rel_l2_dx, b.rel_l2_dx, "rel_l2_dx");
  expect_same_double(a.rel_l2_dw, b.rel_l2_dw, "rel_l2_dw");
  expect_same_double(a.rel_l2_dbias, b.rel_l2_dbias, "rel_l2_dbias");
  EXPECT_EQ(a.requested_saved_bytes, b.requested_saved_bytes);
  EXPECT_EQ(a.measured_saved_bytes, b.measured_saved_bytes);
  EXPECT_EQ(a.requested_workspace_bytes, b.requested_workspace_bytes);
  EXPECT_EQ(a.measured_workspace_bytes, b.measured_workspace_bytes);
  expect_same_double(a.saved_vs_cublas2, b.saved_vs_cublas2, "saved_vs_cublas2");
  expect_same_double(a.workspace_vs_cublas2, b.workspace_vs_cublas2, "workspace_vs_cublas2");
  EXPECT_EQ(a.cublas_workspace_bytes, b.cublas_workspace_bytes);
  EXPECT_EQ(a.meminfo_granularity_bytes, b.meminfo_granularity_bytes);
  EXPECT_EQ(a.measured_peak_bytes, b.measured_peak_bytes);
  expect_same_double(a.peak_vs_cublas2, b.peak_vs_cublas2, "peak_vs_cublas2");
}

std::vector<Row> varied_rows() {
  std::vector<Row> rows;
  Row a;  // every field measured, awkward values
  a.variant = "fused";
  a.batch = 777;
  a.in = 4096;
  a.hidden = 11008;
  a.ldx = 4104;
  a.dtype = "bf16";
  a.layout = "linear";
  a.math = "exact";
  a.bias = true;
  a.tile = "sm80:128x64x32s4w4";
  a.status = "PASS";
  a.reason = "noisy: IQR/median 8.1% > 5.0%";
  a.reference = "gpu-fp32";
  a.rel_l2 = 0.0017489298742366665;
  a.max_abs = 1e-300;
  a.max_rel = 123456789.125;
  a.tol_rel_l2 = 0.01;
  a.worst_index = 9007199254740993;
  a.worst_got = -0.06396484375;
  a.worst_expected = -1.7976931348623157e308;
  a.median_ms = 0.1 + 0.2;
  a.p25_ms = 1.0 / 3.0;
  a.p75_ms = 2.0;  // integral: written as "2"
  a.min_ms = 5e-324;
  a.noise = 0.08076928587707527;
  a.samples = 2000;
  a.tflops = 812.5;
  a.gbps = 3350.123;
  a.copy_fraction = 0.8071233245;
  a.rel_l2_unquantised = 0.0331;
  a.speedup_vs_cublas2 = 1.7923076785307313;
  a.speedup_vs_cublas1 = 0.5;
  a.sm_clock_mhz = 1980;
  a.cold_l2 = false;
  a.cuda_graph = true;
  a.tile_choice = "forced";
  rows.push_back(a);

  Row b;  // nothing measured: every NaN and -1 becomes null and must come back as NaN and -1
  b.variant = "cublas2";
  b.batch = 1;
  b.in = 1;
  b.hidden = 1;
  b.ldx = 1;
  b.dtype = "fp32";
  b.layout = "linear";
  b.math = "tf32";
  b.tile = "cublasLt";
  b.status = "ERROR";
  b.reason =
      "CUDA error: \"an illegal memory access\"\n\tat src\\x.cu:12 {a: [b, c]} # not a comment, "
      "'q' ü ⊙";
  rows.push_back(b);

  Row c = a;  // strings YAML would read as other things if they were not quoted
  c.variant = "cublas1";
  c.dtype = "null";
  c.layout = "true";
  c.math = "1e5";
  c.tile = "~";
  c.status = "FAIL";
  c.reason = "";
  c.reference = "- x";
  rows.push_back(c);

  Row d = a;  // a gradient row: its own keys come back too (a baseline written from it keeps them)
  d.op = "step";
  d.variant = "fused-recompute";
  d.tile = "fwd=sm90:128x128x64s6w12 recompute=sm90:128x128x64s6w12 dx=sm90:128x200x64s4w12c2 dw=gemv:128x64x16s1w4";
  d.copy_fraction = kNaN;  // forward rows only
  d.rel_l2_unquantised = kNaN;
  d.tile_choice = "auto";
  d.policy = "recompute";
  d.grads = "dx,dw";
  d.gate_placement = "epilogue";
  d.tile_forward = "sm90:128x128x64s6w12";
  d.tile_recompute = "sm90:128x128x64s6w12";
  d.tile_dx = "sm90:128x200x64s4w12c2";
  d.tile_dw = "gemv:128x64x16s1w4";
  d.worst_output = "dw";
  d.rel_l2_z = 0.0021;
  d.rel_l2_dx = 1.0 / 3.0;
  d.rel_l2_dw = 5e-324;
  d.rel_l2_dbias = kNaN;
  d.requested_saved_bytes = 0;
  d.measured_saved_bytes = -2097152;  // a difference of cudaMemGetInfo readings may come out below 0
  d.requested_workspace_bytes = 9007199254740993;
  d.measured_workspace_bytes = -1;
  d.saved_vs_cublas2 = 0.5;
  d.workspace_vs_cublas2 = kNaN;
  d.cublas_workspace_bytes = 33554432;
  d.meminfo_granularity_bytes = 2097152;
  d.measured_peak_bytes = 123;
  d.peak_vs_cublas2 = 1.0625;
  rows.push_back(d);
  return rows;
}

TEST_F(RoundTrip, RowsWrittenByJsonWriterReadBackEqual) {
  const std::vector<Row> rows = varied_rows();
  Json prov = small_provenance();
  prov.set("timing", Json::object()).set("max_noise", 0.05);
  {
    JsonWriter w(path("out.json"), prov);
    for (const Row& r : rows) w.add(r);
    // Unfinished: "complete" is false.
    const ResultFile partial = load_result_file(path("out.json"));
    EXPECT_FALSE(partial.complete);
    EXPECT_EQ(partial.rows.size(), rows.size());
    w.finish();
  }
  const ResultFile f = load_result_file(path("out.json"));
  EXPECT_TRUE(f.complete);
  EXPECT_EQ(f.device_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(f.cublas_version, 120805);
  EXPECT_EQ(f.git_sha, "unknown");
  EXPECT_EQ(f.provenance.dump(2), prov.dump(2));
  ASSERT_EQ(f.rows.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    expect_same_row(rows[i], f.rows[i]);
    // And the loaded row writes the same JSON again.
    EXPECT_EQ(row_to_json(f.rows[i]).dump(2), row_to_json(rows[i]).dump(2));
  }
}

TEST(RoundTripCheck, ComparisonOfRowsCanFail) {
  // The field-by-field comparison above must notice a difference, NaN against a number included.
  const std::vector<Row> rows = varied_rows();
  Row changed = rows[1];
  changed.median_ms = 0.5;
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    expect_same_row(rows[1], changed);
    Row other = rows[0];
    other.reason += " ";
    expect_same_row(rows[0], other);
  }
  EXPECT_EQ(failures.size(), 2);
}

// --- case keys and merging
// -------------------------------------------------------------------------

TEST(CaseKey, EveryKeyFieldCounts) {
  const Row r = varied_rows()[0];
  const std::string key = case_key(r);
  EXPECT_EQ(key,
            "forward fused B=777 I=4096 D=11008 ldx=4104 bf16 linear exact bias=true "
            "tile=sm80:128x64x32s4w4");
  EXPECT_EQ(case_key(r, "auto"),
            "forward fused B=777 I=4096 D=11008 ldx=4104 bf16 linear exact "
            "bias=true policy=auto tile=sm80:128x64x32s4w4");
  const std::vector<std::function<void(Row&)>> changes = {
      [](Row& x) { x.op = "backward"; },
      [](Row& x) { x.variant = "cublas2"; },
      [](Row& x) { x.batch += 1; },
      [](Row& x) { x.in += 1; },
      [](Row& x) { x.hidden += 1; },
      [](Row& x) { x.ldx += 1; },
      [](Row& x) { x.dtype = "fp16"; },
      [](Row& x) { x.layout = "other"; },
      [](Row& x) { x.math = "fast"; },
      [](Row& x) { x.bias = !x.bias; },
      [](Row& x) { x.tile = "sm80:16x32x64s6w2"; }};
  for (size_t i = 0; i < changes.size(); ++i) {
    Row x = r;
    changes[i](x);
    EXPECT_NE(case_key(x), key) << "change " << i;
  }
  // Measurements and status are not part of the key.
  Row y = r;
  y.median_ms = 9;
  y.status = "FAIL";
  y.reason = "x";
  EXPECT_EQ(case_key(y), key);
}

TEST(MergeRows, ReplacesByKeyKeepsOrderAppendsTheRest) {
  const ResultFile f = load("base.json");
  const ResultFile s = load("slower.json");
  // Newer: B's three rows (re-measured) plus a row no old row has, B's fused given twice.
  std::vector<Row> newer = {s.rows[3], s.rows[4], s.rows[5]};
  Row extra = s.rows[0];
  extra.batch = 5;
  newer.push_back(extra);
  Row twice = s.rows[3];
  twice.median_ms = 0.25;
  newer.push_back(twice);
  const std::vector<Row> merged = merge_rows(f.rows, newer);
  ASSERT_EQ(merged.size(), 10u);
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(case_key(merged[i]), case_key(f.rows[i])) << i;
  EXPECT_DOUBLE_EQ(merged[0].median_ms, f.rows[0].median_ms);  // A kept
  EXPECT_DOUBLE_EQ(merged[3].median_ms, 0.25);                 // B fused: the last newer row
  EXPECT_DOUBLE_EQ(merged[4].median_ms, s.rows[4].median_ms);  // B cublas2 replaced
  EXPECT_DOUBLE_EQ(merged[6].median_ms, f.rows[6].median_ms);  // C kept
  EXPECT_EQ(merged[9].batch, 5);
  EXPECT_EQ(merge_rows(f.rows, {}).size(), 9u);
}

// --- tiles chosen by the heuristic ---------------------------------------------------------------

TEST(CaseKey, AutoRowsAreKeyedByTheirProblem) {
  Row r = varied_rows()[0];
  r.tile_choice = "auto";
  EXPECT_EQ(case_key(r),
            "forward fused B=777 I=4096 D=11008 ldx=4104 bf16 linear exact bias=true tile=auto");
  Row other = r;
  other.tile = "sm90:128x128x64s4w8";
  EXPECT_EQ(case_key(other), case_key(r));
  other.tile_choice = "forced";
  EXPECT_NE(case_key(other), case_key(r));
}

TEST(Compare, AnAutoTileThatChangedIsMeasuredAndNoted) {
  const ResultFile base = load("base.json");  // no tile_choice: one fused row per case, so auto
  for (const Row& r : base.rows) EXPECT_EQ(r.tile_choice, r.variant == "fused" ? "auto" : "");
  ResultFile cur = load("same.json");
  cur.rows[3].tile = "sm90:128x128x64s4w8";  // B's fused row: the heuristic picked another tile
  const CompareReport rep = compare_results(base, cur, {});
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SAME", "SAME"}));
  EXPECT_EQ(verdict(rep, 4096).note, "tile sm80:128x64x32s4w4 → sm90:128x128x64s4w8");
  EXPECT_EQ(rep.exit_code, kExitOk);
  EXPECT_NE(format_report(rep).find("| SAME | tile sm80:128x64x32s4w4 → sm90:128x128x64s4w8 |"),
            std::string::npos);
  // A forced tile is part of the case: another tile is another case.
  ResultFile forced_base = base, forced_cur = cur;
  for (ResultFile* f : {&forced_base, &forced_cur})
    for (Row& r : f->rows)
      if (r.variant == "fused") r.tile_choice = "forced";
  const CompareReport rep2 = compare_results(forced_base, forced_cur, {});
  EXPECT_EQ(verdict(rep2, 4096).label, "MISSING");
  EXPECT_EQ(rep2.new_cases.size(), 1u);
  EXPECT_EQ(rep2.exit_code, kExitError);
}

using TileChoice = TempDir;

TEST_F(TileChoice, ReadBackOrInferredForOldFiles) {
  const auto write = [&](const std::string& name, const std::vector<Json>& rows) {
    Json doc = Json::object();
    doc.set("schema", "swiglubench/1");
    doc.set("provenance", small_provenance());
    doc.set("rows", Json(Json::Array(rows.begin(), rows.end())));
    doc.set("complete", true);
    write_file_atomic(path(name), doc.dump(2));
    return load_result_file(path(name));
  };
  Row fused = varied_rows()[0];
  Row other_tile = fused;
  other_tile.tile = "sm80:16x32x64s6w2";
  Row other_case = fused;
  other_case.batch = 1;
  Row cublas = varied_rows()[1];
  const auto old_format = [](const Row& r) {
    Json j = Json::object();
    const Json full = row_to_json(r);  // named: the loop must not outlive a temporary
    for (const auto& [k, v] : full.as_object())
      if (k != "tile_choice") j.set(k, v);
    return j;
  };
  // Old files: the only fused row of its problem is auto; two tiles of one problem are forced.
  const ResultFile f = write("old.json", {old_format(fused), old_format(other_tile),
                                          old_format(other_case), old_format(cublas)});
  EXPECT_EQ(f.rows[0].tile_choice, "forced");
  EXPECT_EQ(f.rows[1].tile_choice, "forced");
  EXPECT_EQ(f.rows[2].tile_choice, "auto");
  EXPECT_EQ(f.rows[3].tile_choice, "");
  // New files: what the row says.
  fused.tile_choice = "auto";
  other_case.tile_choice = "forced";
  const ResultFile g = write("new.json", {row_to_json(fused), row_to_json(other_case)});
  EXPECT_EQ(g.rows[0].tile_choice, "auto");
  EXPECT_EQ(g.rows[1].tile_choice, "forced");
  // Gradient rows once written with it empty: the same rule, each fused variant on its own.
  Row save = fused;
  save.op = "backward";
  save.variant = "fused-save";
  save.policy = "save";
  save.grads = "dx,dw";
  save.tile = "dx=gemv:16x64x64s4w4 dw=gemv:128x64x16s1w4";
  save.tile_choice.clear();
  Row save_other_tile = save;
  save_other_tile.tile = "dx=sm80:64x64x32s4w4 dw=gemv:128x64x16s1w4";
  Row inplace = save;
  inplace.variant = "fused-save-inplace";
  Row recompute = save;
  recompute.variant = "fused-recompute";
  recompute.policy = "recompute";
  Row grad_cublas = cublas;
  grad_cublas.op = "backward";
  grad_cublas.policy = "save";
  const ResultFile h = write("grad.json", {row_to_json(save), row_to_json(save_other_tile), row_to_json(inplace),
                                           row_to_json(recompute), row_to_json(grad_cublas)});
  EXPECT_EQ(h.rows[0].tile_choice, "forced");
  EXPECT_EQ(h.rows[1].tile_choice, "forced");
  EXPECT_EQ(h.rows[2].tile_choice, "auto");
  EXPECT_EQ(h.rows[3].tile_choice, "auto");
  EXPECT_EQ(h.rows[4].tile_choice, "");
}

// The shipped gate: configs/ci.yaml and every committed baseline describe the same cases, so
// `swiglubench gate --shapes configs/ci.yaml` compares all of them. A baseline holds every case of
// each op it was recorded as (forward at least; a baseline recorded with `--ops forward` leaves
// the step cases NEW until it is recorded again), and no case that ci.yaml does not make.
TEST(CommittedBaselines, DescribeTheCasesOfCiYaml) {
  const std::string root = SWIGLU_SOURCE_DIR;
  const SweepConfig ci = load_config(root + "/configs/ci.yaml");
  const RegressionOptions gate;
  ASSERT_EQ(gate.ops, (std::vector<Op>{Op::forward, Op::step}));
  std::map<std::string, std::set<std::string>> want;  // op → keys
  for (const Case& c : ci.cases) {
    ASSERT_NE(std::find(c.variants.begin(), c.variants.end(), Variant::cublas2), c.variants.end());
    for (const std::string& t : words(c.tiles)) {
      ASSERT_NE(t, "all") << "the gate's cases need tiles that name one row each";
      for (const Op op : gate.ops)
        for (const std::string& key : fused_case_keys(c, t, op)) want[row_op(op)].insert(key);
    }
  }
  // 22 forward cases, and each as fused-save and fused-recompute steps.
  ASSERT_EQ(want["forward"].size(), 22u);
  ASSERT_EQ(want["step"].size(), 44u);
  const auto lines = [](const std::vector<std::string>& keys) {
    std::string out;
    for (const std::string& k : keys) out += "\n  " + k;
    return out;
  };
  size_t baselines = 0;
  for (const auto& entry : fs::directory_iterator(root + "/results")) {
    const fs::path file = entry.path() / "baseline.json";
    if (!fs::is_regular_file(file)) continue;
    ++baselines;
    SCOPED_TRACE(file.string());
    const ResultFile base = load_result_file(file.string());
    EXPECT_TRUE(base.complete);
    // The cases the gate compares: what a comparison of the baseline with itself judges.
    const CompareReport self = compare_results(base, base, {});
    std::map<std::string, std::set<std::string>> have;  // op → keys
    for (const CaseVerdict& v : self.cases) have[v.key.substr(0, v.key.find(' '))].insert(v.key);
    EXPECT_EQ(have.count("forward"), 1u) << "no forward case";
    for (const auto& [op, keys] : have) {
      SCOPED_TRACE(op);
      const std::set<std::string>& wanted = want[op];
      std::vector<std::string> only_ci, only_base;
      std::set_difference(wanted.begin(), wanted.end(), keys.begin(), keys.end(), std::back_inserter(only_ci));
      std::set_difference(keys.begin(), keys.end(), wanted.begin(), wanted.end(), std::back_inserter(only_base));
      EXPECT_TRUE(only_ci.empty()) << "in configs/ci.yaml, not usable in the baseline:" << lines(only_ci);
      EXPECT_TRUE(only_base.empty()) << "in the baseline, not in configs/ci.yaml:" << lines(only_base);
    }
    EXPECT_EQ(self.exit_code, kExitOk) << format_report(self);
  }
  EXPECT_GE(baselines, 2u);
}

// --- outcomes
// --------------------------------------------------------------------------------------

TEST(Compare, SameWithinTolerance) {
  const CompareReport rep = compare_files("base.json", "same.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SAME", "SAME"}));
  EXPECT_EQ(rep.exit_code, kExitOk);
  EXPECT_EQ(count(rep, "SAME"), 3);
  EXPECT_EQ(count(rep, "SLOW"), 0);
  EXPECT_TRUE(rep.mismatches.empty());
  EXPECT_TRUE(rep.parity_failures.empty());
  EXPECT_TRUE(rep.missing.empty());
  EXPECT_TRUE(rep.new_cases.empty());
  EXPECT_TRUE(keys_to_remeasure(rep).empty());
  const CaseVerdict& a = verdict(rep, 64);
  EXPECT_DOUBLE_EQ(a.base_speedup, 1.5);
  EXPECT_NEAR(a.cur_speedup, 0.0152 / 0.0103, 1e-6);
  EXPECT_NEAR(a.ratio, a.cur_speedup / 1.5, 1e-12);
  // The floor: 3 · sqrt(4 · e²) with e = 0.929 · 0.02 / sqrt(200), the median's standard error.
  EXPECT_NEAR(a.tolerance, 0.05, 1e-12);
  EXPECT_NEAR(a.abs_ratio, 1.03, 1e-12);
  EXPECT_NEAR(a.abs_tolerance, 0.15, 1e-12);  // abs_floor wins over 3 · sqrt(2) · 0.02
  EXPECT_NEAR(a.ref_abs_ratio, 0.0152 / 0.0150, 1e-12);
  EXPECT_NEAR(verdict(rep, 4096).tolerance, 0.05, 1e-12);
  EXPECT_EQ(rep.geomean_cases, 3u);
  EXPECT_NEAR(rep.geomean_base, std::cbrt(1.5 * 1.2 * 1.2), 1e-12);
  EXPECT_EQ(last_line(format_report(rep)), "verdict: PASS");
}

TEST(Compare, Faster) {
  const CompareReport rep = compare_files("base.json", "faster.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "FAST", "SAME"}));
  EXPECT_NEAR(verdict(rep, 4096).ratio, 1.25, 1e-6);
  EXPECT_EQ(rep.exit_code, kExitOk);
  EXPECT_TRUE(keys_to_remeasure(rep).empty());
  EXPECT_EQ(last_line(format_report(rep)), "verdict: PASS");
}

TEST(Compare, SlowerSpeedup) {
  const CompareReport rep = compare_files("base.json", "slower.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SLOW", "SAME"}));
  const CaseVerdict& b = verdict(rep, 4096);
  EXPECT_NEAR(b.ratio, (0.24 / 0.22) / 1.2, 1e-6);  // 0.909 < 1 - 0.05
  EXPECT_NEAR(b.abs_ratio, 1.1, 1e-12);  // inside the absolute ±15%: the speedup decides
  EXPECT_NE(b.note.find("speedup ratio"), std::string::npos) << b.note;
  EXPECT_EQ(b.note.find("fused time"), std::string::npos) << b.note;
  EXPECT_EQ(rep.exit_code, kExitRegression);
  EXPECT_EQ(count(rep, "SLOW"), 1);
  EXPECT_EQ(keys_to_remeasure(rep), std::vector<std::string>{b.key});
  EXPECT_EQ(last_line(format_report(rep)), "verdict: REGRESSION");
}

TEST(Compare, NoisyIsAmbiguousAndGreen) {
  const CompareReport rep = compare_files("base.json", "noisy.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"AMBG", "SAME", "SAME"}));
  const CaseVerdict& a = verdict(rep, 64);
  EXPECT_NEAR(a.ratio, 0.8, 1e-6);  // looks 20% slower, but the noise cannot tell
  EXPECT_GT(a.tolerance, 0.25);
  EXPECT_EQ(rep.exit_code, kExitOk);
  EXPECT_EQ(keys_to_remeasure(rep), std::vector<std::string>{a.key});
  // A smaller k brings the tolerance under the limit: then it is a real slowdown.
  CompareOptions strict;
  strict.k = 1.0;
  const CompareReport rep2 = compare_files("base.json", "noisy.json", strict);
  EXPECT_EQ(verdict(rep2, 64).label, "SLOW");
  EXPECT_EQ(rep2.exit_code, kExitRegression);
}

TEST(Compare, UnknownNoiseIsAmbiguous) {
  ResultFile base = load("base.json");
  base.rows[1].noise = kNaN;  // A's cublas2 row
  const CompareReport rep = compare_results(base, load("same.json"), {});
  EXPECT_EQ(verdict(rep, 64).label, "AMBG");
  EXPECT_TRUE(std::isnan(verdict(rep, 64).tolerance));
  EXPECT_EQ(rep.exit_code, kExitOk);
}

TEST(Compare, AbsoluteSlowdownWithUnchangedSpeedup) {
  const CompareReport rep = compare_files("base.json", "abs_slower.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SLOW", "SAME"}));
  const CaseVerdict& b = verdict(rep, 4096);
  EXPECT_NEAR(b.ratio, 1.0, 1e-6);
  EXPECT_NEAR(b.abs_ratio, 1.2, 1e-12);
  EXPECT_NEAR(b.ref_abs_ratio, 1.2, 1e-12);
  EXPECT_NE(b.note.find("fused time ratio"), std::string::npos) << b.note;
  EXPECT_EQ(rep.exit_code, kExitRegression);
  // With a looser absolute floor the same files pass.
  CompareOptions loose;
  loose.abs_floor = 0.25;
  EXPECT_EQ(compare_files("base.json", "abs_slower.json", loose).exit_code, kExitOk);
}

TEST(Compare, MissingCases) {
  const CompareReport rep = compare_files("base.json", "missing.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "MISSING", "MISSING"}));
  EXPECT_NE(verdict(rep, 4096).note.find("not timed (ERROR: timing:"), std::string::npos)
      << verdict(rep, 4096).note;
  EXPECT_EQ(verdict(rep, 777).note, "no row in the current file");
  EXPECT_EQ(rep.missing.size(), 2u);
  EXPECT_EQ(count(rep, "MISSING"), 2);
  ASSERT_EQ(rep.new_cases.size(), 1u);
  EXPECT_NE(rep.new_cases[0].find(" B=1 I=4096 D=11008 "), std::string::npos);
  EXPECT_EQ(count(rep, "NEW"), 1);
  EXPECT_EQ(rep.exit_code, kExitError);
  const std::string text = format_report(rep);
  EXPECT_NE(text.find("missing: " + verdict(rep, 777).key), std::string::npos);
  EXPECT_NE(text.find("new: " + rep.new_cases[0]), std::string::npos);
  EXPECT_EQ(last_line(text), "verdict: MISMATCH");
  CompareOptions allow;
  allow.allow_missing = true;
  const CompareReport rep2 = compare_files("base.json", "missing.json", allow);
  EXPECT_EQ(rep2.exit_code, kExitOk);
  EXPECT_EQ(rep2.geomean_cases, 1u);  // only A is in both

  // A row marked ERROR or SKIP has no timing to trust, even where a median was written before the
  // error (a CUDA error mid-measurement marks every variant of the case ERROR).
  for (const char* status : {"ERROR", "SKIP"}) {
    ResultFile cur = load("same.json");
    cur.rows[3].status = status;  // B's fused row, its median kept
    const CompareReport rep3 = compare_results(load("base.json"), cur, {});
    EXPECT_EQ(verdict(rep3, 4096).label, "MISSING") << status;
    EXPECT_EQ(rep3.exit_code, kExitError) << status;
    cur = load("same.json");
    cur.rows[4].status = status;  // B's cublas2 row
    EXPECT_EQ(verdict(compare_results(load("base.json"), cur, {}), 4096).label, "MISSING")
        << status;
  }
}

TEST(Compare, ParityFailureWinsOverSlowdownAndMismatch) {
  const CompareReport rep = compare_files("base.json", "parity.json");
  EXPECT_EQ(verdict(rep, 64).label, "SLOW");
  EXPECT_EQ(verdict(rep, 777).label, "MISSING");
  ASSERT_EQ(rep.parity_failures.size(), 1u);
  EXPECT_NE(rep.parity_failures[0].find(" B=777 "), std::string::npos);
  EXPECT_NE(rep.parity_failures[0].find("parity: rel_l2 3.1e-01"), std::string::npos);
  EXPECT_EQ(rep.exit_code, kExitParity);
  EXPECT_EQ(last_line(format_report(rep)), "verdict: PARITY FAILURE");
  ResultFile cur = load("parity.json");
  cur.device_name = "NVIDIA A100-SXM4-80GB";
  cur.complete = false;
  EXPECT_EQ(compare_results(load("base.json"), cur, {}).exit_code, kExitParity);
  CompareOptions allow;
  allow.allow_missing = true;
  EXPECT_EQ(compare_files("base.json", "parity.json", allow).exit_code, kExitParity);
}

TEST(Compare, ParityFailureInTheBaselineDoesNotCount) {
  // Reversed: the FAIL row is in the baseline; its case simply is not a baseline case.
  const CompareReport rep = compare_files("parity.json", "base.json");
  EXPECT_TRUE(rep.parity_failures.empty());
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"FAST", "SAME"}));
  ASSERT_EQ(rep.new_cases.size(), 1u);
  EXPECT_NE(rep.new_cases[0].find(" B=777 "), std::string::npos);
  EXPECT_EQ(rep.exit_code, kExitOk);
}

TEST(Compare, OtherDevice) {
  const CompareReport rep = compare_files("base.json", "other_device.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SAME", "SAME"}));
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("'NVIDIA H200'"), std::string::npos) << rep.mismatches[0];
  EXPECT_NE(rep.mismatches[0].find("'NVIDIA H100 80GB HBM3'"), std::string::npos)
      << rep.mismatches[0];
  EXPECT_EQ(rep.exit_code, kExitError);
  EXPECT_EQ(last_line(format_report(rep)), "verdict: MISMATCH");

  ResultFile cur = load("base.json");
  cur.sm_count = 114;
  const CompareReport sm = compare_results(load("base.json"), cur, {});
  ASSERT_EQ(sm.mismatches.size(), 1u);
  EXPECT_NE(sm.mismatches[0].find("SM count: baseline 132, current 114"), std::string::npos);
  EXPECT_EQ(sm.exit_code, kExitError);
}

TEST(Compare, OtherCublasMajor) {
  const CompareReport rep = compare_files("base.json", "other_cublas.json");
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(
      rep.mismatches[0].find("cuBLAS major version: baseline 13 (130100), current 12 (120904)"),
      std::string::npos)
      << rep.mismatches[0];
  EXPECT_EQ(rep.exit_code, kExitError);
  // A minor or patch release is not a mismatch.
  ResultFile cur = load("base.json");
  cur.cublas_version = 130205;
  EXPECT_EQ(compare_results(load("base.json"), cur, {}).exit_code, kExitOk);
}

TEST(Compare, DriverMajor) {
  const ResultFile base = load("base.json");
  ResultFile cur = base;
  cur.driver = "580.65.06";  // same major
  EXPECT_EQ(compare_results(base, cur, {}).exit_code, kExitOk);
  cur.driver = "575.57.08";
  CompareReport rep = compare_results(base, cur, {});
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("driver major version: baseline 580"), std::string::npos);
  EXPECT_EQ(rep.exit_code, kExitError);
  // A null driver on either side: the CUDA driver API major decides.
  cur.driver = "";
  EXPECT_EQ(compare_results(base, cur, {}).exit_code, kExitOk);  // API 13.0 on both
  cur.cuda_driver_api = "13.1";
  EXPECT_EQ(compare_results(base, cur, {}).exit_code, kExitOk);
  cur.cuda_driver_api = "12.9";
  rep = compare_results(base, cur, {});
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("CUDA driver API major version: baseline 13"),
            std::string::npos);
  EXPECT_EQ(rep.exit_code, kExitError);
}

TEST_F(LoadText, CudaGraphTimingIsReadFromTheProvenance) {
  Json prov = small_provenance();
  Json doc = Json::object();
  doc.set("schema", "swiglubench/1");
  doc.set("provenance", prov);
  doc.set("rows", Json::array());
  doc.set("complete", true);
  write_file_atomic(path("none.json"), doc.dump(2));
  EXPECT_FALSE(load_result_file(path("none.json")).cuda_graph);  // no timing object: stream times
  prov.set("timing", Json::object()).set("cuda_graph", true);
  doc.set("provenance", prov);
  write_file_atomic(path("graph.json"), doc.dump(2));
  EXPECT_TRUE(load_result_file(path("graph.json")).cuda_graph);
  prov.set("timing", Json::object()).set("cuda_graph", "yes");
  doc.set("provenance", prov);
  EXPECT_NE(text_error(path("bad.json"), doc.dump(2)).find("'cuda_graph' must be true or false"),
            std::string::npos);
}

TEST(Compare, GraphReplaysAgainstStreamLaunchesIsAMismatch) {
  const ResultFile base = load("base.json");
  EXPECT_FALSE(base.cuda_graph);
  ResultFile cur = base;
  cur.cuda_graph = true;
  const CompareReport rep = compare_results(base, cur, {});
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_EQ(rep.mismatches[0],
            "timing: baseline times stream launches, current times CUDA-graph replays (--graph)");
  EXPECT_EQ(rep.exit_code, kExitError);
  ResultFile graph_base = base;
  graph_base.cuda_graph = true;
  EXPECT_EQ(compare_results(graph_base, cur, {}).exit_code, kExitOk);  // both graph replays
}

TEST(Compare, IncompleteCurrentFile) {
  const CompareReport rep = compare_files("base.json", "incomplete.json");
  EXPECT_EQ(labels(rep), (std::vector<std::string>{"SAME", "SAME", "MISSING"}));
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("not complete"), std::string::npos);
  EXPECT_EQ(rep.exit_code, kExitError);
  CompareOptions allow;
  allow.allow_missing = true;  // the missing case is allowed, the cut-short sweep is not
  EXPECT_EQ(compare_files("base.json", "incomplete.json", allow).exit_code, kExitError);
  // An incomplete baseline is a mismatch too: it compares only part of the cases.
  const CompareReport rev = compare_files("incomplete.json", "base.json");
  ASSERT_EQ(rev.mismatches.size(), 1u);
  EXPECT_EQ(rev.mismatches[0], "baseline file '" + fixture("incomplete.json") +
                                   "' is not complete (the sweep was cut short)");
  EXPECT_EQ(rev.exit_code, kExitError);
  EXPECT_EQ(last_line(format_report(rev)), "verdict: MISMATCH");
}

TEST(Compare, NothingToCompareIsAMismatch) {
  // A baseline whose fused rows have no speedup (all SKIP): it would pass without comparing.
  ResultFile base = load("base.json");
  for (Row& r : base.rows) {
    r.status = "SKIP";
    r.median_ms = r.speedup_vs_cublas2 = r.speedup_vs_cublas1 = kNaN;
  }
  CompareReport rep = compare_results(base, load("same.json"), {});
  EXPECT_TRUE(rep.cases.empty());
  EXPECT_EQ(rep.new_cases.size(), 3u);
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("has no case to compare"), std::string::npos)
      << rep.mismatches[0];
  EXPECT_EQ(rep.exit_code, kExitError);
  base.rows.clear();
  EXPECT_EQ(compare_results(base, load("same.json"), {}).exit_code, kExitError);
  // Every baseline case missing from the current file, missing cases allowed: nothing compared.
  ResultFile cur = load("same.json");
  for (Row& r : cur.rows) r.batch += 1;
  CompareOptions allow;
  allow.allow_missing = true;
  rep = compare_results(load("base.json"), cur, allow);
  EXPECT_EQ(count(rep, "MISSING"), 3);
  ASSERT_EQ(rep.mismatches.size(), 1u);
  EXPECT_NE(rep.mismatches[0].find("none of the baseline's 3 cases was measured"),
            std::string::npos)
      << rep.mismatches[0];
  EXPECT_EQ(rep.exit_code, kExitError);
}

TEST_F(TempDir, UpdateBaselineRefusesAFileWithNothingToCompare) {
  // A finished run with no PASS row, as the current file of `compare --update-baseline`: refused
  // (3), the old baseline untouched; a file with cases replaces it.
  std::string text = test::slurp(fixture("base.json"));
  for (size_t at = 0; (at = text.find("\"status\": \"PASS\"", at)) != std::string::npos;)
    text.replace(at, 16, "\"status\": \"SKIP\"");
  const std::string current = path("current.json"), baseline = path("baseline.json");
  test::spit(current, text);
  ASSERT_TRUE(load_result_file(current).complete);
  test::spit(baseline, "old");
  EXPECT_EQ(run_compare(baseline, current, {}, /*update_baseline=*/true), kExitError);
  EXPECT_EQ(test::slurp(baseline), "old");
  EXPECT_EQ(run_compare(baseline, fixture("same.json"), {}, /*update_baseline=*/true), kExitOk);
  EXPECT_EQ(load_result_file(baseline).rows.size(), load("same.json").rows.size());
}

// A step run's rows: fused-save and fused-recompute, each keyed by its policy, and one cublas2 row
// (policy save, as the baselines' always is) that both fused rows are compared against. A baseline
// written from such a file keeps the policies, so the same run compares with it case for case.
TEST_F(TempDir, StepRowsCompareAndABaselineWrittenFromThemKeepsTheirKeys) {
  Row save = varied_rows()[0];
  save.op = "step";
  save.variant = "fused-save";
  save.policy = "save";
  save.grads = "dx,dw";
  save.status = "PASS";
  save.reason.clear();
  save.tile_choice = "auto";
  save.copy_fraction = kNaN;
  save.rel_l2_unquantised = kNaN;
  Row recompute = save;
  recompute.variant = "fused-recompute";
  recompute.policy = "recompute";
  recompute.speedup_vs_cublas2 = 0.8;
  Row cublas = save;
  cublas.variant = "cublas2";
  cublas.tile = "cublasLt";
  cublas.tile_choice.clear();
  cublas.speedup_vs_cublas2 = kNaN;
  {
    JsonWriter w(path("step.json"), small_provenance());
    for (const Row& r : {save, recompute, cublas}) w.add(r);
    w.finish();
  }
  const ResultFile run = load_result_file(path("step.json"));
  const CompareReport self = compare_results(run, run, {});
  ASSERT_EQ(self.cases.size(), 2u) << format_report(self);
  for (const CaseVerdict& v : self.cases) EXPECT_EQ(v.label, "SAME") << v.key << ": " << v.note;
  EXPECT_NE(self.cases[1].key.find("fused-recompute"), std::string::npos);
  EXPECT_NE(self.cases[1].key.find("policy=recompute"), std::string::npos);
  EXPECT_EQ(self.exit_code, kExitOk);

  ASSERT_EQ(run_compare(path("baseline.json"), path("step.json"), {}, /*update_baseline=*/true), kExitOk);
  const ResultFile base = load_result_file(path("baseline.json"));
  ASSERT_EQ(base.rows.size(), 3u);
  EXPECT_EQ(base.rows.at(1).policy, "recompute");
  EXPECT_EQ(base.rows[1].tile_dx, save.tile_dx);
  const CompareReport again = compare_results(base, run, {});
  ASSERT_EQ(again.cases.size(), 2u) << format_report(again);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(again.cases[i].key, self.cases[i].key);
    EXPECT_EQ(again.cases[i].label, "SAME") << again.cases[i].note;
  }
  EXPECT_EQ(again.counts.at("NEW"), 0);
  EXPECT_EQ(again.exit_code, kExitOk) << format_report(again);
}

// The keys the gate's default ops expect of a case: its forward row, and its step rows per policy.
TEST(CaseKey, FusedCaseKeysOfEachOp) {
  Case c;
  c.problem.batch = 64;
  c.problem.in_features = 784;
  c.problem.hidden = 1024;
  c.problem.ldx = 784;
  c.problem.dtype = DType::bf16;
  const std::vector<std::string> fwd = fused_case_keys(c, "auto", Op::forward);
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0], "forward fused B=64 I=784 D=1024 ldx=784 bf16 linear exact bias=false tile=auto");
  const std::vector<std::string> step = fused_case_keys(c, "auto", Op::step);
  ASSERT_EQ(step.size(), 2u);
  EXPECT_EQ(step[0], "step fused-save B=64 I=784 D=1024 ldx=784 bf16 linear exact bias=false policy=save tile=auto");
  EXPECT_EQ(step[1],
            "step fused-recompute B=64 I=784 D=1024 ldx=784 bf16 linear exact bias=false policy=recompute tile=auto");
}

TEST(Compare, ReferenceCublas1) {
  CompareOptions o;
  o.reference = "cublas1";
  const CompareReport rep = compare_files("base.json", "slower.json", o);
  const CaseVerdict& b = verdict(rep, 4096);
  EXPECT_DOUBLE_EQ(b.base_speedup, 1.25);  // 0.25 / 0.2
  EXPECT_EQ(b.label, "SLOW");
  EXPECT_NEAR(b.ref_abs_ratio, 1.0, 1e-12);  // cublas1 unchanged
  EXPECT_EQ(rep.exit_code, kExitRegression);
  EXPECT_NE(format_report(rep).find("cublas1 abs ratio"), std::string::npos);
  o.reference = "cublas3";
  EXPECT_THROW(compare_files("base.json", "same.json", o), std::invalid_argument);
  CompareOptions negative;
  negative.k = -1;
  EXPECT_THROW(compare_files("base.json", "same.json", negative), std::invalid_argument);
}

TEST(Compare, SelfComparisonIsAllSame) {
  for (const char* name : {"base.json", "same.json", "slower.json", "noisy.json"}) {
    const CompareReport rep = compare_files(name, name);
    for (const CaseVerdict& v : rep.cases) {
      EXPECT_TRUE(v.label == "SAME" || v.label == "AMBG") << name << " " << v.key << " " << v.label;
      if (v.label == "SAME") {
        EXPECT_EQ(v.ratio, 1.0);
      }
    }
    EXPECT_EQ(rep.exit_code, kExitOk) << name;
  }
}

TEST(FormatReport, TableCountsGeomeanVerdict) {
  const CompareReport rep = compare_files("base.json", "slower.json");
  const std::string text = format_report(rep);
  EXPECT_EQ(
      text.rfind("| case | base speedup | current speedup | ratio | tolerance | abs ratio |", 0),
      0u)
      << text;
  const CaseVerdict& b = verdict(rep, 4096);
  EXPECT_NE(text.find("| " + b.key +
                      " | 1.20x | 1.09x | 0.909 | ±5.0% | 1.100 | ±15.0% | 1.000 | SLOW |"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("counts: SAME 2, FAST 0, SLOW 1, AMBG 0, MISSING 0, NEW 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "geomean speedup vs cublas2 over 3 cases in both: baseline 1.293x, current 1.252x\n"),
      std::string::npos)
      << text;
  // One table line per case: header, rule, three cases.
  size_t table_lines = 0;
  for (size_t pos = 0; (pos = text.find("\n|", pos)) != std::string::npos; ++pos) ++table_lines;
  EXPECT_EQ(table_lines + 1, 5u) << text;
  EXPECT_EQ(last_line(text), "verdict: REGRESSION");
}

}  // namespace
}  // namespace swiglu::bench
