// swiglubench's output side against hostile files and names, end to end: `compare` and
// `--update-baseline` on files that are not regular files, oversize files, YAML alias and nesting
// bombs, implausible numbers, baselines that compare nothing, a 20,000-row update and planted
// symlinks; result names that would leave --out (config `name:`, `train --name`). Each command runs
// as a child under a time and a memory bound (bounded_run.hpp): a hang or an unbounded allocation
// fails the test, it does not stall CI. Nothing here needs a GPU; no test can touch /dev/null.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/writers.hpp"
#include "bounded_run.hpp"
#include "common/json.hpp"
#include "temp_dir.hpp"

namespace swiglu::bench {
namespace {

using common::Json;

namespace fs = std::filesystem;

// Why these bounds: the slowest case, the 20,000-row update, takes about 2.5 s under ASan on a busy
// 2-core machine; any swiglubench process starts at about 350 MiB resident under ASan (the CUDA
// libraries), and the 20,000-row update peaks near 420 MiB. A regression (quadratic rewrites, an
// unbounded read, a bomb expanded) overshoots both by far.
constexpr double kMaxSeconds = 10;
constexpr long kMaxRssMib = 512;

// Why: ASan keeps up to 256 MiB of freed memory in quarantine, which would count against the bound
// without being held by the program; the children run with a small quarantine (ASAN_OPTIONS is
// read when a process starts, so this process keeps its own).
const bool kSmallQuarantine = [] {
  const char* given = std::getenv("ASAN_OPTIONS");
  std::string options = given != nullptr && *given != '\0' ? std::string(given) + ":" : "";
  options += "quarantine_size_mb=16";
  return ::setenv("ASAN_OPTIONS", options.c_str(), 1) == 0;
}();

// Runs `write` in a child process. Why: a child that run_bounded forks starts with this process's
// resident memory, so the large files are made where their memory goes away with the process.
void in_child(const std::function<void()>& write) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      write();
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writing a test file failed";
}

std::string fixture(const std::string& name) {
  return std::string(SWIGLU_SOURCE_DIR) + "/tests/data/compare/" + name;
}

using test::slurp;
using test::spit;

// The child ended by itself (no signal, no bound hit) with `code`, and its output holds `what`.
::testing::AssertionResult exited(const test::BoundedResult& r, int code, const std::string& what) {
  if (!r.ended_by_itself() || r.exit_code != code ||
      r.output.find(what) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "expected exit " << code << " with '" << what << "', got " << r.describe();
  }
  std::printf("  exit %d in %.2f s, peak RSS %ld MiB\n", r.exit_code, r.seconds,
              r.max_rss_kib / 1024);
  return ::testing::AssertionSuccess();
}

Json provenance() {
  Json device = Json::object();
  device.set("name", "NVIDIA H200");
  device.set("sm_count", 132);
  device.set("driver", "580.159.04");
  device.set("cuda_driver_api", "13.0");
  device.set("cublas", 130100);
  Json prov = Json::object();
  prov.set("tool", "swiglubench");
  prov.set("git_sha", "unknown");
  prov.set("device", device);
  return prov;
}

// The three rows of one timed case: fused (speedup 1.5 over cublas2, 1.2 over cublas1), cublas2,
// cublas1; `batch` tells cases apart.
std::vector<Row> case_rows(int64_t batch) {
  Row fused;
  fused.variant = "fused";
  fused.batch = batch;
  fused.in = 784;
  fused.hidden = 1024;
  fused.ldx = 784;
  fused.dtype = "bf16";
  fused.layout = "linear";
  fused.math = "exact";
  fused.tile = "sm80:16x32x64s6w2";
  fused.status = "PASS";
  fused.median_ms = 0.01;
  fused.noise = 0.02;
  fused.samples = 200;
  fused.speedup_vs_cublas2 = 1.5;
  fused.speedup_vs_cublas1 = 1.2;
  Row c2 = fused, c1 = fused;
  c2.variant = "cublas2";
  c2.tile = c1.tile = "cublasLt";
  c1.variant = "cublas1";
  c2.speedup_vs_cublas2 = c2.speedup_vs_cublas1 = kNaN;
  c1.speedup_vs_cublas2 = c1.speedup_vs_cublas1 = kNaN;
  c2.median_ms = 0.015;
  c1.median_ms = 0.012;
  return {fused, c2, c1};
}

void write_result(const fs::path& path, const std::vector<Row>& rows) {
  spit(path, result_document(provenance(), rows, /*complete=*/true));
}

// The last `n` bytes of a file.
std::string tail(const fs::path& path, size_t n) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(static_cast<std::streamoff>(size > n ? size - n : 0));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class Hostile : public test::TempDirTest {
 protected:
  static test::BoundedResult run(std::vector<std::string> args) {
    args.insert(args.begin(), SWIGLUBENCH_EXE);
    return test::run_bounded(args, kMaxSeconds, kMaxRssMib);
  }
  static test::BoundedResult compare(const std::string& baseline, const std::string& current) {
    return run({"compare", "--baseline", baseline, "--current", current});
  }
  // A copy of the fixture base.json (three timed cases) with `from` replaced by `to` once.
  std::string edited_base(const std::string& name, const std::string& from, const std::string& to) {
    std::string text = slurp(fixture("base.json"));
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    spit(path(name), text);
    return path(name);
  }
};

// --- reading -------------------------------------------------------------------------------------

TEST_F(Hostile, DevZeroIsRefusedNotRead) {
  ASSERT_TRUE(kSmallQuarantine);
  EXPECT_TRUE(exited(compare("/dev/zero", fixture("base.json")), 3, "not a regular file"));
  EXPECT_TRUE(exited(compare(fixture("base.json"), "/dev/zero"), 3, "not a regular file"));
}

TEST_F(Hostile, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  const std::string why = "not a regular file (a FIFO)";
  EXPECT_TRUE(exited(compare(path("fifo"), fixture("base.json")), 3, why));
  EXPECT_TRUE(exited(compare(fixture("base.json"), path("fifo")), 3, why));
}

TEST_F(Hostile, DirectoryIsRefused) {
  EXPECT_TRUE(exited(compare(dir_.string(), fixture("base.json")), 3, "not a regular file"));
}

TEST_F(Hostile, OversizeFileIsRefused) {
  // A valid result file padded past the limit with whitespace.
  in_child([&] {
    std::ofstream out(path("big.json"), std::ios::binary);
    out << slurp(fixture("base.json"));
    const std::string spaces(size_t{1} << 20, ' ');
    for (int i = 0; i < 64; ++i) out << spaces;
  });
  EXPECT_TRUE(exited(compare(path("big.json"), fixture("base.json")), 3, "64 MiB"));
}

TEST_F(Hostile, YamlAliasBombIsRefused) {
  // Ten levels of ten aliases each: 10^10 strings once expanded.
  std::string bomb = "\"lol0\": &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", "
                     "\"lol\", \"lol\", \"lol\", \"lol\"],";
  for (int i = 1; i <= 9; ++i) {
    bomb += "\"lol" + std::to_string(i) + "\": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
    bomb += "],";
  }
  const std::string f = edited_base("alias.json", "\"provenance\": {", "\"provenance\": {" + bomb);
  EXPECT_TRUE(exited(compare(f, fixture("base.json")), 3, "anchors and aliases"));
}

TEST_F(Hostile, NestingBombIsRefused) {
  const int depth = 1000000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  const std::string at = "\"provenance\": {";
  const std::string f = edited_base("deep.json", at, at + "\"deep\": " + deep + ",");
  EXPECT_TRUE(exited(compare(f, fixture("base.json")), 3, "nested deeper than"));
  std::string objects;
  for (int i = 0; i < depth / 8; ++i) objects += "{\"a\":";
  objects += "1" + std::string(depth / 8, '}');
  const std::string g = edited_base("deep2.json", at, at + "\"deep\": " + objects + ",");
  EXPECT_TRUE(exited(compare(fixture("base.json"), g), 3, "nested deeper than"));
}

TEST_F(Hostile, ImplausibleNumbersAreAMalformedFile) {
  // Case A's fused row in base.json: speedup_vs_cublas2 1.5, median_ms 0.01 (its first such keys).
  struct Edit {
    const char* from;
    const char* to;
  };
  const std::vector<Edit> edits = {
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": 1e308"},
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": 4e-320"},  // denormal
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": 0"},
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": -1.5"},
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": 2e6"},
      {"\"speedup_vs_cublas2\": 1.5", "\"speedup_vs_cublas2\": 1e999"},  // overflows: inf
      {"\"median_ms\": 0.01,", "\"median_ms\": 1e7,"},
      {"\"median_ms\": 0.01,", "\"median_ms\": 0,"},
      {"\"median_ms\": 0.01,", "\"median_ms\": 1e-310,"},
      {"\"noise\": 0.02,", "\"noise\": 1e300,"},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.to);
    const std::string f = edited_base("odd.json", e.from, e.to);
    // As the baseline and as the current file: a malformed file (3), naming the file and the case.
    for (const bool as_baseline : {true, false}) {
      const test::BoundedResult r =
          as_baseline ? compare(f, fixture("base.json")) : compare(fixture("base.json"), f);
      EXPECT_TRUE(exited(r, 3, f + ":"));
      EXPECT_NE(r.output.find("B=64 I=784 D=1024"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("verdict:"), std::string::npos) << r.output;
    }
  }
}

// --- what the gate compares ----------------------------------------------------------------------

TEST_F(Hostile, BaselineWithoutUsableCasesIsAMismatch) {
  // Every case untimed: no fused row with a speedup.
  std::vector<Row> rows;
  for (int64_t b : {64, 128}) {
    for (Row r : case_rows(b)) {
      r.status = "SKIP";
      r.reason = "not compiled";
      r.median_ms = r.speedup_vs_cublas2 = r.speedup_vs_cublas1 = kNaN;
      rows.push_back(r);
    }
  }
  write_result(path("untimed.json"), rows);
  write_result(path("empty.json"), {});
  write_result(path("current.json"), case_rows(64));
  for (const char* base : {"untimed.json", "empty.json"}) {
    SCOPED_TRACE(base);
    const test::BoundedResult r = compare(path(base), path("current.json"));
    EXPECT_TRUE(exited(r, 3, "no case to compare"));
    EXPECT_NE(r.output.find("verdict: MISMATCH"), std::string::npos) << r.output;
  }
}

TEST_F(Hostile, IncompleteBaselineIsAMismatch) {
  const test::BoundedResult r = compare(fixture("incomplete.json"), fixture("base.json"));
  EXPECT_TRUE(exited(r, 3, "is not complete"));
  EXPECT_NE(r.output.find("baseline"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("verdict: MISMATCH"), std::string::npos) << r.output;
}

TEST_F(Hostile, UpdateBaselineWith20000RowsIsFastAndWritesOnce) {
  // 6,667 cases (the last one without its cublas1 row).
  in_child([&] {
    std::vector<Row> rows;
    for (size_t i = 0; i < 20000; ++i) rows.push_back(case_rows(static_cast<int64_t>(i / 3) + 1)[i % 3]);
    write_result(path("big.json"), rows);
  });
  // An old baseline in place: replaced whole, or not at all.
  spit(path("baseline.json"), slurp(fixture("base.json")));
  test::BoundedResult r =
      run({"compare", "--baseline", path("baseline.json"), "--current", path("big.json"),
           "--update-baseline"});
  EXPECT_TRUE(exited(r, 0, "(20000 rows)"));
  EXPECT_NE(tail(path("baseline.json"), 64).find("\"complete\": true\n}"), std::string::npos);
  // Nothing else left in the directory (no temporary file).
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 2u);
  // And the new baseline reads back within the same bounds: every case SAME (exit 0; the report's
  // end is past the megabyte of output run_bounded keeps).
  r = compare(path("baseline.json"), path("big.json"));
  EXPECT_TRUE(exited(r, 0, "| SAME |"));
}

// --- writing -------------------------------------------------------------------------------------

TEST_F(Hostile, UpdateBaselineRefusesATargetThatIsNotARegularFile) {
  // A FIFO stands in for /dev/null and other device files: the rename would replace it.
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  test::BoundedResult r = run({"compare", "--baseline", path("fifo"), "--current",
                               fixture("base.json"), "--update-baseline"});
  EXPECT_TRUE(exited(r, 3, "not a regular file"));
  struct stat st {};
  ASSERT_EQ(::lstat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  fs::create_directories(path("dir"));
  r = run({"compare", "--baseline", path("dir"), "--current", fixture("base.json"),
           "--update-baseline"});
  EXPECT_TRUE(exited(r, 3, "not a regular file"));
  EXPECT_TRUE(fs::is_directory(path("dir")));
}

TEST_F(Hostile, UpdateBaselineReplacesASymlinkAndLeavesItsTargetAlone) {
  spit(path("victim"), "precious\n");
  fs::create_symlink(path("victim"), path("baseline.json"));
  const test::BoundedResult r = run({"compare", "--baseline", path("baseline.json"), "--current",
                                     fixture("base.json"), "--update-baseline"});
  EXPECT_TRUE(exited(r, 0, "rewritten"));
  EXPECT_EQ(slurp(path("victim")), "precious\n");
  EXPECT_FALSE(fs::is_symlink(path("baseline.json")));
  EXPECT_NE(slurp(path("baseline.json")).find("\"schema\": \"swiglubench/1\""), std::string::npos);
}

// --- result names --------------------------------------------------------------------------------

TEST_F(Hostile, ConfigNameThatLeavesOutIsRefusedBeforeTheDevice) {
  fs::create_directories(path("out/a/b"));
  spit(path("escape.yaml"),
       "name: ../../../escape\nsweeps:\n  - batch: 1\n    in: 8\n    hidden: 8\n    dtype: bf16\n");
  for (const char* op : {"check", "forward", "backward", "memory", "gate"}) {
    SCOPED_TRACE(op);
    const test::BoundedResult r =
        run({op, "--shapes", path("escape.yaml"), "--out", path("out/a/b")});
    EXPECT_TRUE(exited(r, 3, "not a safe result name"));
    EXPECT_NE(r.output.find("'../../../escape'"), std::string::npos) << r.output;
  }
  // Nothing was written anywhere under the test directory.
  for (const auto& e : fs::recursive_directory_iterator(dir_))
    EXPECT_TRUE(e.is_directory() || e.path().filename() == "escape.yaml") << e.path();
}

TEST_F(Hostile, TrainNameThatLeavesOutIsRefusedBeforeTheData) {
  for (const char* name : {"../x", "/tmp/x", "..", ".hidden", "a/b", "a b"}) {
    SCOPED_TRACE(name);
    const test::BoundedResult r = run({"train", "--name", name, "--data", path("no-data"), "--out",
                                       path("out")});
    EXPECT_TRUE(exited(r, 3, "not a safe result name"));
    EXPECT_EQ(r.output.find("Fashion-MNIST not found"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(path("out")));
}

}  // namespace
}  // namespace swiglu::bench
