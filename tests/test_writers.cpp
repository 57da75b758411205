// JSON values and files, CSV and markdown output (json.hpp, writers.hpp), and the header's line of
// measured ceilings (timing.hpp).
#include "bench/writers.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "bench/timing.hpp"
#include "common/files.hpp"
#include "common/json.hpp"
#include "temp_dir.hpp"

namespace swiglu::bench {
namespace {

using common::Json;
using common::string_list;
using common::write_file_atomic;
using common::create_file_replacing;
using common::check_replaceable;
using common::check_result_name;

namespace fs = std::filesystem;

using test::slurp;
using test::spit;

// A fresh, empty directory per test, removed afterwards.
class TempDir : public test::TempDirTest {
 protected:
  // Files in dir_ other than `keep`: temporary files left behind would show up here.
  std::vector<std::string> other_files(const std::string& keep) const {
    std::vector<std::string> names;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      if (entry.is_regular_file() && entry.path().filename() != keep) {
        names.push_back(entry.path().filename().string());
      }
    }
    return names;
  }
};

Row sample_row() {
  Row r;
  r.variant = "fused";
  r.batch = 64;
  r.in = 784;
  r.hidden = 1024;
  r.ldx = 784;
  r.dtype = "bf16";
  r.layout = "linear";
  r.math = "exact";
  r.bias = false;
  r.tile = "sm80:128x64x32s4w4";
  r.status = "PASS";
  r.reference = "cpu-fp64";
  r.rel_l2 = 0.0031;
  r.max_abs = 0.5;
  r.max_rel = 0.25;
  r.tol_rel_l2 = 0.01;
  r.worst_index = 12345;
  r.worst_got = 1.5;
  r.worst_expected = 1.25;
  r.median_ms = 0.012346;
  r.p25_ms = 0.012;
  r.p75_ms = 0.0125;
  r.min_ms = 0.0119;
  r.noise = 0.0412;
  r.samples = 200;
  r.tflops = 8.3211;
  r.gbps = 1834.6;
  r.copy_fraction = 0.4421;
  r.speedup_vs_cublas2 = 2.3149;
  r.speedup_vs_cublas1 = 1.5;
  r.sm_clock_mhz = 1755;
  r.cold_l2 = true;
  r.tile_choice = "auto";
  return r;
}

// --- JSON ------------------------------------------------------------------------------------

TEST(Json, Scalars) {
  EXPECT_EQ(Json().dump(), "null");
  EXPECT_EQ(Json(nullptr).dump(), "null");
  EXPECT_EQ(Json(true).dump(), "true");
  EXPECT_EQ(Json(false).dump(), "false");
  EXPECT_EQ(Json(42).dump(), "42");
  EXPECT_EQ(Json(int64_t{-9007199254740993}).dump(), "-9007199254740993");
  EXPECT_EQ(Json(size_t{7}).dump(), "7");
  EXPECT_EQ(Json(0.5).dump(), "0.5");
  EXPECT_EQ(Json(1.0).dump(), "1");
  EXPECT_EQ(Json(0.1).dump(), "0.1");
  EXPECT_EQ(Json(1e-5).dump(), "1e-05");
  EXPECT_EQ(Json(2.5f).dump(), "2.5");
  EXPECT_EQ(Json("hi").dump(), "\"hi\"");
  EXPECT_EQ(Json(std::string("s")).kind(), Json::Kind::string);
}

TEST(Json, NonFiniteNumbersAreNull) {
  EXPECT_EQ(Json(std::numeric_limits<double>::quiet_NaN()).dump(), "null");
  EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).dump(), "null");
  EXPECT_EQ(Json(-std::numeric_limits<double>::infinity()).dump(), "null");
}

TEST(Json, StringEscaping) {
  EXPECT_EQ(Json("a\"b").dump(), R"("a\"b")");
  EXPECT_EQ(Json("a\\b").dump(), R"("a\\b")");
  EXPECT_EQ(Json("line\nnext\ttab\r").dump(), R"("line\u000anext\u0009tab\u000d")");
  EXPECT_EQ(Json(std::string("nul\0x", 5)).dump(), R"("nul\u0000x")");
  EXPECT_EQ(Json("\x01\x1f").dump(), R"("\u0001\u001f")");
  EXPECT_EQ(Json("/ and \x7f").dump(), "\"/ and \x7f\"");
  // UTF-8 passes through byte for byte.
  EXPECT_EQ(Json("Z = SiLU(X·Wₐᵀ) ⊙ µ").dump(), "\"Z = SiLU(X·Wₐᵀ) ⊙ µ\"");
}

TEST(Json, PrettyAndCompact) {
  Json o = Json::object();
  o.set("b", 1);
  o.set("a", Json::array());
  o.set("empty", Json::object());
  Json& list = o.set("list", Json::array());
  list.push_back(1);
  list.push_back("x");
  list.push_back(Json());
  Json inner = Json::object();
  inner.set("k", false);
  list.push_back(inner);
  EXPECT_EQ(o.dump(),
            "{\n"
            "  \"b\": 1,\n"
            "  \"a\": [],\n"
            "  \"empty\": {},\n"
            "  \"list\": [\n"
            "    1,\n"
            "    \"x\",\n"
            "    null,\n"
            "    {\n"
            "      \"k\": false\n"
            "    }\n"
            "  ]\n"
            "}");
  EXPECT_EQ(o.dump(0), R"({"b":1,"a":[],"empty":{},"list":[1,"x",null,{"k":false}]})");
}

TEST(Json, SetKeepsInsertionOrderAndReplacesInPlace) {
  Json o;
  o.set("z", 1);
  o.set("a", 2);
  o.set("z", 3);
  EXPECT_EQ(o.dump(0), R"({"z":3,"a":2})");
  ASSERT_NE(o.find("a"), nullptr);
  EXPECT_EQ(o.find("a")->as_int(), 2);
  EXPECT_EQ(o.find("missing"), nullptr);
  EXPECT_EQ(o.size(), 2u);
}

TEST(Json, WrongKindThrows) {
  EXPECT_THROW(Json(1).as_string(), std::logic_error);
  EXPECT_THROW(Json("x").push_back(1), std::logic_error);
  EXPECT_THROW(Json(1.5).as_int(), std::logic_error);
  EXPECT_DOUBLE_EQ(Json(3).as_number(), 3.0);
}

// --- bounded reads ---------------------------------------------------------------------------

using ReadFile = TempDir;

TEST_F(ReadFile, WholeFileUpToTheLimitAndTheStatedSizeOverIt) {
  spit(path("f"), "0123456789");
  EXPECT_EQ(common::read_regular_file(path("f"), 10), "0123456789");
  try {
    common::read_regular_file(path("f"), 9);
    FAIL() << "a 10-byte file over a 9-byte limit was read";
  } catch (const common::FileReadError& e) {
    EXPECT_EQ(e.why, common::FileReadError::Why::too_large);
    EXPECT_EQ(e.reason({"", "{5}{1} bytes over {2}", ""}), "10 bytes over 9");
  }
}

// A file that holds more than its stated size (/proc files state 0; a file can grow while read):
// the read stops one byte past the limit, and the message says "at least".
TEST(ReadFileProc, MoreThanTheStatedSizeIsALowerBound) {
  struct stat st {};
  if (::stat("/proc/self/status", &st) != 0 || st.st_size != 0) GTEST_SKIP() << "no /proc/self/status of stated size 0";
  try {
    common::read_regular_file("/proc/self/status", 16);
    FAIL() << "/proc/self/status read within 16 bytes";
  } catch (const common::FileReadError& e) {
    EXPECT_EQ(e.why, common::FileReadError::Why::too_large);
    EXPECT_TRUE(e.at_least);
    EXPECT_EQ(e.reason({"", "{5}{1} bytes over {2}", ""}), "at least 17 bytes over 16");
  }
}

// --- atomic writes ---------------------------------------------------------------------------

using AtomicWrite = TempDir;

TEST_F(AtomicWrite, WritesReplacesAndLeavesNoTemporary) {
  const fs::path path = dir_ / "out.json";
  write_file_atomic(path.string(), "first");
  EXPECT_EQ(slurp(path), "first");
  write_file_atomic(path.string(), "second, longer content\n");
  EXPECT_EQ(slurp(path), "second, longer content\n");
  EXPECT_TRUE(other_files("out.json").empty());
}

TEST_F(AtomicWrite, CreatesParentDirectories) {
  const fs::path path = dir_ / "a" / "b" / "out.txt";
  write_file_atomic(path.string(), "x");
  EXPECT_EQ(slurp(path), "x");
}

TEST_F(AtomicWrite, FailureNamesThePathAndLeavesNoTemporary) {
  // The target is an existing directory: the rename must fail.
  const fs::path path = dir_ / "occupied";
  fs::create_directories(path / "child");
  try {
    write_file_atomic(path.string(), "x");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  EXPECT_TRUE(other_files("occupied").empty());
}

TEST_F(AtomicWrite, SymlinkAtATemporaryNameIsNotFollowed) {
  // The old temporary name was "<path>.tmp.<pid>": a link planted there redirected the write.
  const fs::path path = dir_ / "out.json", victim = dir_ / "victim";
  spit(victim, "precious");
  fs::create_symlink(victim, path.string() + ".tmp." + std::to_string(::getpid()));
  write_file_atomic(path.string(), "content");
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_EQ(slurp(path), "content");
  EXPECT_FALSE(fs::is_symlink(path));
}

TEST_F(AtomicWrite, SymlinkAtThePathIsReplacedNotFollowed) {
  const fs::path path = dir_ / "out.json", victim = dir_ / "victim";
  spit(victim, "precious");
  fs::create_symlink(victim, path);
  write_file_atomic(path.string(), "content");
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(path));
  EXPECT_EQ(slurp(path), "content");
  EXPECT_EQ(other_files("out.json").size(), 1u);  // the victim, no temporary file
}

TEST_F(AtomicWrite, RefusesAFifoAndLeavesItAlone) {
  // A FIFO stands in for any file that is not a regular one (/dev/null as root): never replaced.
  const fs::path path = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  try {
    write_file_atomic(path.string(), "x");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'" + path.string() + "': it exists and is not a regular "
                                         "file (a FIFO)"),
              std::string::npos)
        << e.what();
  }
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_THROW(check_replaceable(path.string()), std::runtime_error);
  EXPECT_NO_THROW(check_replaceable((dir_ / "absent").string()));
  EXPECT_TRUE(other_files("fifo").empty());
}

TEST_F(AtomicWrite, FilesAre0644LessTheUmask) {
  const mode_t old = ::umask(027);
  write_file_atomic((dir_ / "a").string(), "x");
  std::fclose(create_file_replacing((dir_ / "b").string()));
  ::umask(old);
  for (const char* name : {"a", "b"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u) << name;
  }
}

// --- CSV -------------------------------------------------------------------------------------

TEST(Csv, Columns) {
  const auto& c = csv_columns();
  ASSERT_EQ(c.size(), 37u);
  EXPECT_EQ(c.front(), "op");
  EXPECT_EQ(c[2], "batch");
  EXPECT_EQ(c[32], "cold_l2");
  EXPECT_EQ(c[33], "cuda_graph");
  EXPECT_EQ(c[34], "tile_choice");
  EXPECT_EQ(c[35], "copy_fraction");
  EXPECT_EQ(c.back(), "rel_l2_unquantised");
}

TEST(Csv, LineQuotingAndEmptyNaN) {
  Row r;
  r.variant = "cublas2";
  r.batch = 1;
  r.in = 2;
  r.hidden = 3;
  r.ldx = 2;
  r.dtype = "fp32";
  r.layout = "packed";
  r.math = "tf32";
  r.bias = true;
  r.tile = "cublasLt";
  r.status = "ERROR";
  r.reason = "cublasLt said \"no\", twice\nsecond line";
  r.samples = 0;
  r.cold_l2 = false;
  EXPECT_EQ(csv_line(r),
            "forward,cublas2,1,2,3,2,fp32,packed,tf32,true,cublasLt,ERROR,"
            "\"cublasLt said \"\"no\"\", twice\nsecond line\","
            ",,,,,,,,,,,,,0,,,,,,false,false,,,");
}

TEST(Csv, NumbersRoundTrip) {
  const std::string line = csv_line(sample_row());
  EXPECT_EQ(line,
            "forward,fused,64,784,1024,784,bf16,linear,exact,false,sm80:128x64x32s4w4,PASS,,"
            "cpu-fp64,0.0031,0.5,0.25,0.01,12345,1.5,1.25,0.012346,0.012,0.0125,0.0119,0.0412,"
            "200,8.3211,1834.6,2.3149,1.5,1755,true,false,auto,0.4421,");
}

using CsvFile = TempDir;

TEST_F(CsvFile, HeaderThenOneFlushedLinePerRow) {
  const fs::path path = dir_ / "sub" / "rows.csv";
  CsvWriter w(path.string());
  const std::string header = slurp(path);
  EXPECT_EQ(header.rfind("op,variant,batch,in,hidden,ldx,", 0), 0u) << header;
  EXPECT_EQ(header.back(), '\n');
  w.write(sample_row());
  // Read while the writer is still open: the row must already be on disk.
  EXPECT_EQ(slurp(path), header + csv_line(sample_row()) + "\n");
}

TEST_F(CsvFile, OpenFailureThrowsWithPath) {
  const fs::path path = dir_ / "is_a_dir";
  fs::create_directories(path);
  try {
    CsvWriter w(path.string());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

TEST_F(CsvFile, SymlinkAtThePathIsReplacedNotFollowed) {
  const fs::path path = dir_ / "rows.csv", victim = dir_ / "victim";
  spit(victim, "precious");
  fs::create_symlink(victim, path);
  {
    CsvWriter w(path.string());
    w.write(sample_row());
  }
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(path));
  EXPECT_NE(slurp(path).find(csv_line(sample_row())), std::string::npos);
}

TEST_F(CsvFile, RefusesAFifo) {
  const fs::path path = dir_ / "rows.csv";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_THROW(CsvWriter w(path.string()), std::runtime_error);
  EXPECT_TRUE(fs::is_fifo(path));
}

// --- JSON results file -----------------------------------------------------------------------

using JsonFile = TempDir;

TEST_F(JsonFile, CompleteDocumentAfterEveryAdd) {
  const fs::path path = dir_ / "results.json";
  Json prov = Json::object();
  prov.set("gpu", "NVIDIA H100");
  prov.set("note", "tab\there");
  JsonWriter w(path.string(), prov);

  const std::string empty = slurp(path);
  EXPECT_EQ(empty,
            "{\n"
            "  \"schema\": \"swiglubench/1\",\n"
            "  \"provenance\": {\n"
            "    \"gpu\": \"NVIDIA H100\",\n"
            "    \"note\": \"tab\\u0009here\"\n"
            "  },\n"
            "  \"rows\": [],\n"
            "  \"complete\": false\n"
            "}\n");

  Row skipped;
  skipped.variant = "fused";
  skipped.status = "SKIP";
  skipped.reason = "no tile";
  w.add(sample_row());
  std::string text = slurp(path);
  EXPECT_NE(text.find("\"rows\": [\n    {\n      \"op\": \"forward\",\n"
                      "      \"variant\": \"fused\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\"median_ms\": 0.012346,"), std::string::npos);
  EXPECT_NE(text.find("\"worst_index\": 12345,"), std::string::npos);
  EXPECT_NE(text.find("\"complete\": false\n}\n"), std::string::npos);

  w.add(skipped);
  text = slurp(path);
  EXPECT_EQ(text, w.document(false));
  EXPECT_NE(text.find("\"median_ms\": null,"), std::string::npos);
  EXPECT_NE(text.find("\"worst_index\": null,"), std::string::npos);
  EXPECT_NE(text.find("\"reason\": \"no tile\","), std::string::npos);
  EXPECT_EQ(w.rows().size(), 2u);
  EXPECT_TRUE(other_files("results.json").empty());

  w.finish();
  text = slurp(path);
  EXPECT_EQ(text, w.document(true));
  EXPECT_NE(text.find("\"complete\": true\n}\n"), std::string::npos);
  EXPECT_EQ(text.find("\"complete\": false"), std::string::npos);
  EXPECT_TRUE(other_files("results.json").empty());
}

// The document, assembled from row texts, is byte for byte the Json tree's dump.
TEST_F(JsonFile, DocumentIsTheJsonTreeDumped) {
  Json prov = Json::object();
  prov.set("device", Json::object()).set("name", "NVIDIA H200");
  prov.set("argv", string_list({"swiglubench", "forward"}));
  prov.set("empty", Json::object());
  std::vector<Row> rows = {sample_row(), Row{}, sample_row()};
  rows[2].op = "backward";
  rows[2].variant = "fused-save";
  rows[2].reason = "a \"quoted\"\nreason";
  const auto tree = [&](size_t n, bool complete) {
    Json doc = Json::object();
    doc.set("schema", "swiglubench/1");
    doc.set("provenance", prov);
    Json a = Json::array();
    for (size_t i = 0; i < n; ++i) a.push_back(row_to_json(rows[i]));
    doc.set("rows", a);
    doc.set("complete", complete);
    return doc.dump(2) + "\n";
  };
  JsonWriter w((dir_ / "r.json").string(), prov);
  EXPECT_EQ(w.document(false), tree(0, false));
  for (size_t i = 0; i < rows.size(); ++i) {
    w.add(rows[i]);
    EXPECT_EQ(w.document(false), tree(i + 1, false)) << i;
  }
  EXPECT_EQ(w.document(true), tree(rows.size(), true));
  EXPECT_EQ(result_document(prov, rows, true), tree(rows.size(), true));
  EXPECT_EQ(result_document(prov, {}, false), tree(0, false));
}

// 20,000 rows: a bounded number of rewrites (the file under 64 KiB: every row; beyond: at most one
// a second), and flush() / the destructor write what is pending.
TEST_F(JsonFile, ManyRowsCostFewRewrites) {
  const fs::path path = dir_ / "big.json";
  const auto t0 = std::chrono::steady_clock::now();
  size_t rewrites = 0;
  {
    JsonWriter w(path.string(), Json::object());
    for (int i = 0; i < 20000; ++i) {
      Row r = sample_row();
      r.batch = i;
      w.add(r);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("20000 rows added in %.2f s with %zu rewrites\n", seconds, w.rewrites());
    // The constructor's write, one a row while the rows are under 64 KiB, then one a second.
    const size_t row_bytes = w.document(false).size() / 20000 + 1;
    const size_t small = kJsonEveryRowBytes / row_bytes + 1;
    EXPECT_LE(w.rewrites(), 1 + small + static_cast<size_t>(seconds / kJsonRewriteSeconds) + 1);
    w.flush();
    rewrites = w.rewrites();
    std::string text = slurp(path);
    EXPECT_EQ(text, w.document(false));
    w.flush();  // nothing pending: no rewrite
    EXPECT_EQ(w.rewrites(), rewrites);
    w.finish();
  }
  EXPECT_NE(slurp(path).find("\"complete\": true\n}"), std::string::npos);
  // A writer destroyed with rows pending writes them (incomplete).
  {
    JsonWriter w(path.string(), Json::object());
    for (int i = 0; i < 200; ++i) w.add(sample_row());
    EXPECT_LT(w.rewrites(), 200u);  // past 64 KiB the rows wait for the next rewrite
  }
  const std::string text = slurp(path);
  EXPECT_NE(text.find("\"complete\": false\n}"), std::string::npos);
  size_t rows = 0;
  for (size_t at = 0; (at = text.find("\"op\": ", at)) != std::string::npos; ++at) ++rows;
  EXPECT_EQ(rows, 200u);
  EXPECT_TRUE(other_files("big.json").empty());
}

// --- result names ------------------------------------------------------------------------------

TEST(ResultName, SafeCharactersOnly) {
  const std::vector<std::string> good = {"mnist",  "ci", "mnist+ci", "a.b-c_d",
                                         "inline", "V2", "x.",
                                         "train_bf16_b128_d1024_dxdw_save_sgd",
                                         std::string(200, 'n')};
  for (const std::string& ok : good) {
    EXPECT_NO_THROW(check_result_name(ok)) << ok;
  }
  const std::vector<std::string> bad_names = {
      "",    "..",   "../..", "../../../escape", "../x", "a/b", "/abs", ".hidden", ".",
      "a..b", "a b", "a\nb", "a\\b", "~", "$HOME", "é", std::string(201, 'n'),
      std::string("a\0b", 3)};
  for (const std::string& bad : bad_names) {
    try {
      check_result_name(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("is not a safe result name"), std::string::npos);
    }
  }
  try {
    check_result_name("../..");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "'../..' is not a safe result name: use 1 to 200 letters, digits, '_', '-', '.' and "
              "'+' (no '/', no leading '.', no '..'); it names the result files");
  }
}

TEST(RowJson, NullsForUnmeasuredValues) {
  const Json j = row_to_json(Row{});
  EXPECT_TRUE(j.find("rel_l2")->is_null());
  EXPECT_TRUE(j.find("worst_index")->is_null());
  EXPECT_TRUE(j.find("tflops")->is_null());
  EXPECT_EQ(j.find("samples")->as_int(), 0);
  EXPECT_EQ(j.find("op")->as_string(), "forward");
  EXPECT_TRUE(j.find("cold_l2")->as_bool());
  EXPECT_FALSE(j.find("cuda_graph")->as_bool());
}

// --- markdown --------------------------------------------------------------------------------

TEST(Markdown, SignificantDigits) {
  EXPECT_EQ(format_significant(0.012346, 4), "0.01235");
  EXPECT_EQ(format_significant(0.01234, 4), "0.01234");
  EXPECT_EQ(format_significant(1.5, 4), "1.500");
  EXPECT_EQ(format_significant(12.3456, 4), "12.35");
  EXPECT_EQ(format_significant(1234.4, 4), "1234");
  EXPECT_EQ(format_significant(98765.4, 4), "98765");
  EXPECT_EQ(format_significant(9.99996, 4), "10.00");
  EXPECT_EQ(format_significant(0.099996, 3), "0.100");
  EXPECT_EQ(format_significant(8.3211, 3), "8.32");
  EXPECT_EQ(format_significant(1834.6, 3), "1835");
  EXPECT_EQ(format_significant(0.0234567, 3), "0.0235");
  EXPECT_EQ(format_significant(0, 3), "0");
  EXPECT_EQ(format_significant(std::numeric_limits<double>::quiet_NaN(), 3), "-");
}

TEST(Markdown, HeaderAndRow) {
  const std::string header = markdown_header();
  EXPECT_EQ(header,
            "| op      | variant |     B |     I |     D | dtype | layout | bias "
            "| tile               | median ms | noise % | TFLOP/s |   GB/s | % copy "
            "| vs cublas2 | vs cublas1 | rel err | status |\n"
            "| ------- | ------- | ----: | ----: | ----: | ----- | ------ | ---- "
            "| ------------------ | --------: | ------: | ------: | -----: | -----: "
            "| ---------: | ---------: | ------: | ------ |\n");
  const std::string row = markdown_row(sample_row());
  EXPECT_EQ(row,
            "| forward | fused   |    64 |   784 |  1024 | bf16  | linear | no   "
            "| sm80:128x64x32s4w4 |   0.01235 |     4.1 |    8.32 |   1835 |     44 "
            "|      2.31x |      1.50x | 3.1e-03 | PASS   |\n");
}

// The code-point columns of a line's '|' separators.
std::vector<size_t> separator_columns(std::string_view line) {
  std::vector<size_t> at;
  size_t column = 0;
  for (const char c : line) {
    if ((static_cast<unsigned char>(c) & 0xC0) == 0x80) continue;  // a UTF-8 continuation byte
    if (c == '|') at.push_back(column);
    ++column;
  }
  return at;
}

TEST(Markdown, TableColumnsAreAsWideAsTheirWidestCell) {
  Row wide = sample_row();
  wide.op = "step";
  wide.variant = "fused-recompute-prologue";
  wide.grads = "dx,dw";
  wide.tile = "fwd=sm90:128x64x64s6w12 dx=sm90:128x200x64s4w12c2 dw=sm90:128x128x64s6w12";
  Row skipped = wide;
  skipped.variant = "cublas2";
  skipped.status = "SKIP";
  skipped.reason = "needs 2.5 GiB × 3 of device memory";
  Row plain = wide;
  plain.variant = "fused";
  plain.tile = "auto";
  const std::string table = markdown_table({wide, skipped, plain});
  std::vector<std::string> lines;
  for (size_t begin = 0, end; (end = table.find('\n', begin)) != std::string::npos; begin = end + 1) {
    lines.push_back(table.substr(begin, end - begin));
  }
  ASSERT_EQ(lines.size(), 5u);
  for (const std::string& line : lines) {
    EXPECT_EQ(separator_columns(line), separator_columns(lines.front())) << line << "\n" << lines.front();
  }
  // Streamed rows keep the fixed widths: the same row alone is narrower than in the table.
  EXPECT_LT(markdown_row(plain).size(), lines.back().size());
  EXPECT_NE(table.find("| fused-recompute-prologue |"), std::string::npos);
}

TEST(Markdown, CeilingsLine) {
  GemmPeak peak;
  peak.dtype = "bf16";
  peak.n = 8192;
  peak.tflops = 789.6;
  CopyCeiling copy;
  copy.bytes = int64_t{1} << 30;
  copy.gbps = 4151.4;
  EXPECT_EQ(ceilings_line(&peak, &copy), "measured ceilings: bf16 GEMM 8192x8192x8192 at 790 TFLOP/s; "
                                         "device copy of 1024 MiB at 4151 GB/s (read + write)");
  EXPECT_EQ(ceilings_line(nullptr, &copy), "measured ceilings: device copy of 1024 MiB at 4151 GB/s (read + write)");
  EXPECT_EQ(ceilings_line(&peak, nullptr), "measured ceilings: bf16 GEMM 8192x8192x8192 at 790 TFLOP/s");
  EXPECT_EQ(ceilings_line(nullptr, nullptr), "");
}

TEST(Markdown, UnmeasuredValuesAndReasons) {
  Row r;
  r.variant = "cublas1";
  r.batch = 1;
  r.in = 777;
  r.hidden = 1001;
  r.dtype = "fp32";
  r.layout = "packed";
  r.bias = true;
  r.tile = "cublasLt";
  r.status = "SKIP";
  r.reason = "packed | unsupported";
  EXPECT_EQ(markdown_row(r),
            "| forward | cublas1 |     1 |   777 |  1001 | fp32  | packed | yes  "
            "| cublasLt           |         - |       - |       - |      - |      - "
            "|          - |          - |       - | SKIP: packed \\| unsupported |\n");
}

TEST(Markdown, TableIsHeaderPlusRows) {
  const std::vector<Row> rows = {sample_row(), sample_row()};
  EXPECT_EQ(markdown_table(rows),
            markdown_header() + markdown_row(rows[0]) + markdown_row(rows[1]));
  EXPECT_EQ(markdown_table({}), markdown_header());
}

// --- --graph runs ------------------------------------------------------------------------------

TEST(GraphRows, EveryOutputSaysTheTimesAreGraphReplays) {
  Row r = sample_row();
  r.cuda_graph = true;
  EXPECT_TRUE(row_to_json(r).find("cuda_graph")->as_bool());
  // cuda_graph is the column before tile_choice, copy_fraction and rel_l2_unquantised (empty for
  // a bf16 row); nothing else changes.
  const std::string line = csv_line(r), plain_line = csv_line(sample_row());
  EXPECT_TRUE(line.ends_with(",true,auto,0.4421,")) << line;
  EXPECT_TRUE(plain_line.ends_with(",false,auto,0.4421,")) << plain_line;
  EXPECT_EQ(plain_line.substr(0, plain_line.size() - 19), line.substr(0, line.size() - 18));
  for (const char* op : {"forward", "backward", "step"}) {
    SCOPED_TRACE(op);
    // Only the median column's title changes, and the rule under it widens with it.
    const std::string plain = markdown_header(op), graph = markdown_header(op, true);
    EXPECT_NE(plain.find("| median ms |"), std::string::npos) << plain;
    EXPECT_EQ(plain.find("graph"), std::string::npos) << plain;
    EXPECT_NE(graph.find("| graph median ms |"), std::string::npos) << graph;
    EXPECT_NE(graph.find("| --------------: |"), std::string::npos) << graph;
    EXPECT_EQ(graph.size(), plain.size() + 2 * (15 - 9));
  }
  // The row's cells line up under the graph header, and a table follows its first row.
  const std::string header = markdown_header("forward", true);
  const std::string row = markdown_row(r);
  EXPECT_EQ(row.size(), header.find('\n') + 1) << row;
  EXPECT_NE(row.find("|         0.01235 |"), std::string::npos) << row;
  EXPECT_EQ(markdown_table({r, r}), header + row + row);
  // A row of a stream-launch run is unchanged.
  EXPECT_EQ(markdown_row(sample_row()).size(), markdown_header().find('\n') + 1);
}

// --- the gradient commands' rows ----------------------------------------------------------------

TEST(GradientRows, ForwardColumnsThenTheGradientOnes) {
  const auto& fwd = csv_columns();
  const auto& grad = csv_columns("backward");
  EXPECT_EQ(&csv_columns("step"), &grad);
  EXPECT_EQ(&csv_columns("memory"), &grad);
  EXPECT_EQ(&csv_columns("check"), &fwd);
  ASSERT_EQ(grad.size(), fwd.size() - 2 + 22);
  // Every column keeps its position: the forward ones, the gradient ones, then tile_choice last
  // in both; forward rows add copy_fraction (gradient rows report no GB/s) and rel_l2_unquantised
  // (fp8 rows) after it.
  EXPECT_TRUE(std::equal(fwd.begin(), fwd.end() - 3, grad.begin()));
  EXPECT_EQ(grad[fwd.size() - 3], "policy");
  EXPECT_EQ(grad[grad.size() - 2], "peak_vs_cublas2");
  EXPECT_EQ(fwd[fwd.size() - 3], "tile_choice");
  EXPECT_EQ(fwd[fwd.size() - 2], "copy_fraction");
  EXPECT_EQ(fwd.back(), "rel_l2_unquantised");
  EXPECT_EQ(grad.back(), "tile_choice");
  for (const char* key : {"grads", "gate_placement", "tile_recompute", "tile_dx", "tile_dw",
                          "rel_l2_dx", "rel_l2_dw", "rel_l2_dbias", "measured_saved_bytes",
                          "requested_workspace_bytes", "saved_vs_cublas2", "meminfo_granularity_bytes",
                          "measured_peak_bytes"})
    EXPECT_NE(std::find(grad.begin(), grad.end(), key), grad.end()) << key;
  // Forward rows keep their schema.
  EXPECT_EQ(row_to_json(Row{}).find("policy"), nullptr);
}

TEST(GradientRows, UnmeasuredBytesAreNullAndCsvMatchesTheHeader) {
  Row r = sample_row();
  r.op = "memory";
  r.variant = "fused-recompute";
  r.policy = "recompute";
  r.requested_saved_bytes = 0;
  r.measured_saved_bytes = 0;
  r.requested_workspace_bytes = 3 << 20;
  const Json j = row_to_json(r);
  EXPECT_EQ(j.find("requested_saved_bytes")->as_int(), 0);
  EXPECT_EQ(j.find("requested_workspace_bytes")->as_int(), 3 << 20);
  EXPECT_TRUE(j.find("measured_workspace_bytes")->is_null());
  EXPECT_TRUE(j.find("rel_l2_dbias")->is_null());
  const std::string line = csv_line(r);
  EXPECT_EQ(static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1,
            csv_columns("memory").size());
}

TEST(GradientRows, MarkdownColumnsByOp) {
  EXPECT_NE(markdown_header("backward").find("| grads "), std::string::npos);
  EXPECT_EQ(markdown_header("backward").find("GB/s"), std::string::npos);
  EXPECT_EQ(markdown_header("backward").find("% copy"), std::string::npos);
  EXPECT_NE(markdown_header("memory").find("saved MiB measured"), std::string::npos);
  Row r = sample_row();
  r.op = "memory";
  r.variant = "fused-save";
  r.requested_saved_bytes = 1 << 20;
  r.measured_saved_bytes = 2 << 20;
  r.saved_vs_cublas2 = 0.5;
  r.measured_peak_bytes = 6 << 20;
  r.peak_vs_cublas2 = 0.75;
  const std::string row = markdown_row(r);
  EXPECT_NE(row.find("1.000"), std::string::npos) << row;
  EXPECT_NE(row.find("2.000"), std::string::npos) << row;
  EXPECT_NE(row.find("0.50x"), std::string::npos) << row;
  EXPECT_NE(row.find("6.000"), std::string::npos) << row;
  EXPECT_NE(row.find("0.75x"), std::string::npos) << row;
  EXPECT_NE(markdown_header("memory").find("peak vs cublas2"), std::string::npos);
  // A table takes the columns of its first row's op.
  EXPECT_EQ(markdown_table({r}), markdown_header("memory") + row);
}

TEST(MemoryRatio, OnlyWhereEveryBufferSpansAPage) {
  constexpr int64_t page = int64_t{2} << 20;
  // Both sides of many pages: the measured ratio.
  EXPECT_DOUBLE_EQ(measured_ratio(6 * page, 8 * page, 6 * page - 7, 8 * page - 3, page), 0.75);
  // A requested buffer under a page reads as 0 or one page: no ratio (the 0.00x of a 0.4 MiB workspace).
  EXPECT_TRUE(std::isnan(measured_ratio(0, page, page / 5, page / 2, page)));
  EXPECT_TRUE(std::isnan(measured_ratio(page, page, page, page - 1, page)));
  // Unmeasured, or cublas2's 0.
  EXPECT_TRUE(std::isnan(measured_ratio(-1, 4 * page, 4 * page, 4 * page, page)));
  EXPECT_TRUE(std::isnan(measured_ratio(4 * page, 0, 4 * page, 4 * page, page)));
  // A row that asked for nothing (fused-recompute keeps nothing) reads 0 against cublas2's pages.
  EXPECT_DOUBLE_EQ(measured_ratio(0, 4 * page, 0, 4 * page, page), 0.0);
  // Exactly a page on both sides counts.
  EXPECT_DOUBLE_EQ(measured_ratio(page, 2 * page, page, page, page), 0.5);
}

}  // namespace
}  // namespace swiglu::bench
