// Hostile inputs to the swiglubench command line: sweeps that expand to huge numbers of cases,
// files that never end, degenerate YAML, values at the edges of their types. Each runs the real
// executable as a child under a time and a resident-memory bound (bounded_run.hpp) and must end
// by itself with exit code 3 and an "error: " line that says what was wrong: never a hang, a
// signal or a runaway allocation. Parsing and case resolution come before any device access, so
// the tests mean the same on a machine without a GPU. A valid input must get through them to the
// device quickly, where the run stops: at the no-GPU error here, at `--device 9999` elsewhere.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "bounded_run.hpp"
#include "temp_dir.hpp"

namespace swiglu::test {
namespace {

// Per child. Every case takes a small part of the time, AddressSanitizer on a slow 2-core machine
// included. Memory is bounded above what the executable holds when it does nothing (under
// AddressSanitizer that is about 350 MiB, most of it the CUDA runtime and the kernels' images);
// the bounds catch a hang or an allocation that grows with the input.
constexpr double kMaxSeconds = 10;
constexpr long kMaxExtraRssMib = 512;

long idle_rss_mib() {
  static const long idle = [] {
    const BoundedResult r = run_bounded({SWIGLUBENCH_EXE, "--version"}, kMaxSeconds, 4096);
    return r.max_rss_kib / 1024;
  }();
  return idle;
}

BoundedResult bench(std::vector<std::string> args) {
  args.insert(args.begin(), SWIGLUBENCH_EXE);
  return run_bounded(args, kMaxSeconds, idle_rss_mib() + kMaxExtraRssMib);
}

// Exit code 3, an "error: " line, and every one of `parts` in the output.
::testing::AssertionResult usage_error(const BoundedResult& r,
                                       std::initializer_list<std::string> parts) {
  if (!r.ended_by_itself() || r.exit_code != 3) return ::testing::AssertionFailure() << r.describe();
  if (r.output.find("error: ") == std::string::npos) {
    return ::testing::AssertionFailure() << "no 'error: ' line; " << r.describe();
  }
  for (const std::string& part : parts) {
    if (r.output.find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "no '" << part << "'; " << r.describe();
    }
  }
  return ::testing::AssertionSuccess() << r.describe();
}

// A valid input: parsed and resolved, then stopped at the device (exit 3), within the bounds.
::testing::AssertionResult reached_the_device(const BoundedResult& r) {
  if (!r.ended_by_itself() || r.exit_code != 3) return ::testing::AssertionFailure() << r.describe();
  for (const char* stop : {"no NVIDIA driver or GPU found", "device 9999 does not exist",
                           "no NVIDIA GPU found", "NVIDIA driver is too old",
                           "no usable CUDA device"}) {
    if (r.output.find(stop) != std::string::npos) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "did not stop at the device; " << r.describe();
}

// One bf16 sweep of batch 1..n_batch × n_hidden hidden sizes: n_batch · n_hidden cases.
std::string product_config(int n_batch, int n_hidden) {
  std::string hidden;
  for (int i = 1; i <= n_hidden; ++i) hidden += (i > 1 ? ", " : "") + std::to_string(16 * i);
  return "name: big\nsweeps:\n  - batch: \"1:" + std::to_string(n_batch) +
         ":1\"\n    in: 64\n    hidden: [" + hidden + "]\n    dtype: bf16\n";
}

const std::vector<std::string> kInline = {"--batch", "8", "--in", "64", "--hidden", "64"};

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// --- sweeps that expand to many cases --------------------------------------------------------

TEST(HostileSweeps, TwentyThousandCaseConfigResolvesQuickly) {
  const TempDir dir;
  const std::string config = dir.write("20k.yaml", product_config(2000, 10));
  EXPECT_TRUE(reached_the_device(bench({"check", "--shapes", config, "--device", "9999"})));
}

TEST(HostileSweeps, TwoHundredThousandCaseConfigIsCappedAtOnce) {
  const TempDir dir;
  const std::string config = dir.write("200k.yaml", product_config(2000, 100));
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", config}),
                          {"200000 cases", "the limit of 100000", "--max-cases"}));
}

TEST(HostileSweeps, BatchListOfTwentyThousandEntriesResolvesQuickly) {
  std::string batches;
  for (int b = 1; b <= 20000; ++b) {
    if (b > 1) batches += ',';  // Why not "," + ...: GCC 12 warns (-Wrestrict) on that form
    batches += std::to_string(b);
  }
  EXPECT_TRUE(reached_the_device(
      bench({"check", "--batch", batches, "--in", "64", "--hidden", "64", "--device", "9999"})));
}

TEST(HostileSweeps, ProductOfLongListsIsCountedBeforeItIsExpanded) {
  EXPECT_TRUE(usage_error(bench({"check", "--batch", "1:1000000:1", "--in", "64", "--hidden",
                                 "1:100:1"}),
                          {"100000000 cases", "--batch 1000000 × --in 1 × --hidden 100",
                           "the limit of 100000", "--max-cases"}));
  const TempDir dir;
  const std::string config = dir.write(
      "product.yaml",
      "name: p\nsweeps:\n  - batch: \"1:1000000:1\"\n    in: 64\n    hidden: \"1:100:1\"\n"
      "    dtype: bf16\n");
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", config}),
                          {"product.yaml:3:5:", "100000000 cases", "--max-cases"}));
  // A small config times long option lists.
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", std::string(SWIGLU_SOURCE_DIR) +
                                 "/configs/mnist.yaml", "--batch", "1:1000000:1"}),
                          {"96000000 cases", "96 from --shapes × --batch 1000000"}));
}

// --- reading without bounds ------------------------------------------------------------------

TEST(HostileFiles, DevZeroIsRefused) {
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", "/dev/zero"}),
                          {"/dev/zero", "a character device, not a regular file"}));
}

TEST(HostileFiles, FifoIsRefusedWithoutBlocking) {
  const TempDir dir;
  const std::string fifo = dir.path("config.yaml");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", fifo}), {"a FIFO, not a regular file"}));
}

TEST(HostileFiles, ConfigOverOneMiBIsRefused) {
  const TempDir dir;
  const std::string config = dir.write(
      "big.yaml", product_config(1, 1) + std::string(3 << 19, '#') + "\n");  // 1.5 MiB
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", config}),
                          {"big.yaml", "1572", "bytes, more than the limit of 1048576 bytes"}));
}

// --- degenerate YAML -------------------------------------------------------------------------

TEST(HostileYaml, LoneCommaIsAClearError) {
  const TempDir dir;
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", dir.write("comma.yaml", ",")}),
                          {"comma.yaml:1:1:", "top level must be a mapping"}));
}

TEST(HostileYaml, TwoByteFilesAreClearErrors) {
  const TempDir dir;
  for (const std::string& text : std::vector<std::string>{
           ",,", ", ", ",\n", "[,", "{,", "-,", ":,", "?,", "&a", "*a", "!!", "%%", "--", "..",
           "[]", "{}", "''", "|-", ">-", "\t,", "\xff\xfe", std::string("\0,", 2), "\n\n"}) {
    EXPECT_TRUE(usage_error(bench({"check", "--shapes", dir.write("two.yaml", text)}),
                            {"two.yaml:"}))
        << "file bytes: '" << text << "'";
  }
}

TEST(HostileYaml, AliasBombIsRefused) {
  const TempDir dir;
  const std::string alias = dir.write(
      "alias.yaml", "name: a\ndefaults:\n  batch: &b [1, 2]\nsweeps:\n  - batch: *b\n"
                    "    in: 64\n    hidden: 64\n    dtype: bf16\n");
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", alias}),
                          {"alias.yaml:3:", "anchors and aliases are not supported"}));
  // The billion laughs: ten references to ten references to ... a list.
  std::string laughs = "name: laughs\nsweeps:\n  - &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string ref = "*l" + std::to_string(level - 1);
    laughs += "  - &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) laughs += (i ? ", " : "") + ref;
    laughs += "]\n";
  }
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", dir.write("laughs.yaml", laughs)}),
                          {"laughs.yaml:3:5:", "anchors and aliases are not supported"}));
}

TEST(HostileYaml, DeepNestingIsRefused) {
  const TempDir dir;
  for (const auto& [name, text] :
       {std::pair{"flow.yaml", std::string(100000, '[')},
        std::pair{"maps.yaml", [] {
                    std::string t;
                    for (int i = 0; i < 20000; ++i) t += "{a: ";
                    return t;
                  }()},
        std::pair{"block.yaml", [] {
                    std::string t;
                    for (int i = 0; i < 20000; ++i) t += "- ";
                    return t + "1\n";
                  }()}}) {
    EXPECT_TRUE(usage_error(bench({"check", "--shapes", dir.write(name, text)}),
                            {name, "nested more than 16 deep"}));
  }
}

TEST(HostileYaml, TooManyNodesAreRefusedBeforeTheyAreBuilt) {
  std::string list = "name: n\nsweeps:\n  - batch: [";
  for (int i = 0; i < 300000; ++i) list += i ? ",1" : "1";
  list += "]\n    in: 64\n    hidden: 64\n    dtype: bf16\n";
  const TempDir dir;
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", dir.write("nodes.yaml", list)}),
                          {"nodes.yaml:3:", "more than 100000 YAML nodes"}));
}

// --- values at the edges of their types ------------------------------------------------------

TEST(HostileValues, Int64MaxSizesAndPadsAreRefused) {
  const std::string max = "9223372036854775807";
  const TempDir dir;
  const std::string in = dir.write(
      "in.yaml", "name: t\nsweeps:\n  - batch: 1\n    in: " + max +
                     "\n    hidden: 64\n    dtype: bf16\n    x_stride_pad: " + max + "\n");
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", in}),
                          {"in.yaml:4:9:", "'in'", "above the maximum 2147483647"}));
  const std::string pad = dir.write(
      "pad.yaml", "name: t\nsweeps:\n  - batch: 1\n    in: 64\n    hidden: 64\n"
                  "    dtype: bf16\n    x_stride_pad: " + max + "\n");
  EXPECT_TRUE(usage_error(bench({"check", "--shapes", pad}),
                          {"pad.yaml:7:19:", "'x_stride_pad'", "above the maximum 2147483647"}));
  EXPECT_TRUE(usage_error(bench({"check", "--batch", "1", "--in", max, "--hidden", "64"}),
                          {"--in:", "above the maximum 2147483647"}));
  EXPECT_TRUE(usage_error(bench(with({"check"}, with(kInline, {"--x-stride-pad", max}))),
                          {"--x-stride-pad must be ≤ 2147483647, got " + max}));
  EXPECT_TRUE(usage_error(
      bench(with({"check"}, with(kInline, {"--x-stride-pad", "1000000000000000000"}))),
      {"--x-stride-pad must be ≤ 2147483647"}));
}

TEST(HostileValues, SilentlyAcceptedValuesAreRefused) {
  const auto forward = [](std::vector<std::string> more) {
    return bench(with(with({"forward"}, kInline), more));
  };
  EXPECT_TRUE(usage_error(forward({"--min-time", "nan"}),
                          {"--min-time must be a finite number, got nan"}));
  EXPECT_TRUE(usage_error(forward({"--max-noise", "nan"}),
                          {"--max-noise must be a finite number, got nan"}));
  EXPECT_TRUE(usage_error(forward({"--min-time", "inf"}), {"--min-time must be a finite number"}));
  EXPECT_TRUE(usage_error(forward({"--seed", "-1"}),
                          {"--seed must be an integer from 0 to 18446744073709551615, got '-1'"}));
  EXPECT_TRUE(usage_error(forward({"--seed", "18446744073709551616"}), {"--seed must be"}));
  EXPECT_TRUE(usage_error(forward({"--tiles", ""}), {"--tiles: empty list"}));
  EXPECT_TRUE(usage_error(forward({"--dtype", ""}), {"--dtype: empty list"}));
  EXPECT_TRUE(usage_error(bench({"train", "--variant", "fused,fused", "--data", "/nonexistent"}),
                          {"--variant: 'fused' is listed twice"}));
  EXPECT_TRUE(usage_error(bench({"train", "--seed", "-1", "--data", "/nonexistent"}),
                          {"--seed must be"}));
}

TEST(HostileValues, RangesReadAsPeopleWriteThem) {
  const BoundedResult min_samples = bench(with(with({"forward"}, kInline), {"--min-samples", "0"}));
  EXPECT_TRUE(usage_error(min_samples, {"error: --min-samples must be ≥ 1, got 0"}));
  EXPECT_EQ(min_samples.output.find("179769"), std::string::npos) << min_samples.output;
  EXPECT_TRUE(usage_error(bench(with(with({"forward"}, kInline), {"--device", "-1"})),
                          {"--device must be ≥ 0, got -1"}));
  EXPECT_TRUE(usage_error(bench({"info", "--device", "-1"}), {"--device must be ≥ 0, got -1"}));
  EXPECT_TRUE(usage_error(bench({"train", "--device", "-1", "--data", "/nonexistent"}),
                          {"--device must be ≥ 0, got -1"}));
  EXPECT_TRUE(usage_error(bench({"train", "--epochs", "0", "--data", "/nonexistent"}),
                          {"--epochs must be ≥ 1, got 0"}));
}

// --- a newcomer's first commands -------------------------------------------------------------

TEST(HostileUsage, UnknownFlagOrSubcommandIsNamed) {
  EXPECT_TRUE(usage_error(bench({"--frobnicate"}),
                          {"unknown option '--frobnicate'", "info, check, forward"}));
  EXPECT_TRUE(usage_error(bench({"frobnicate"}),
                          {"unknown subcommand 'frobnicate'", "info, check, forward", "train"}));
  EXPECT_TRUE(usage_error(bench({}), {"no subcommand given", "info, check, forward"}));
  EXPECT_TRUE(usage_error(bench(with(with({"forward"}, kInline), {"--frobnicate"})),
                          {"error: ", "--frobnicate", "swiglubench forward --help"}));
}

TEST(HostileUsage, EveryUsageErrorHasTheProjectsStyle) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"compare"},                                     // a required option missing
           {"forward", "--hot", "--cold", "--batch", "1"},  // options that exclude each other
           {"forward", "--warmup", "x"},                    // not a number
           {"check", "--shapes", "no/such/file.yaml"}}) {
    const BoundedResult r = bench(args);
    EXPECT_TRUE(usage_error(r, {}));
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.describe();
  }
  const BoundedResult help = bench({"forward", "--help"});
  EXPECT_TRUE(help.ended_by_itself() && help.exit_code == 0) << help.describe();
  EXPECT_NE(help.output.find("--max-cases"), std::string::npos) << help.output;
}

TEST(HostileUsage, NoGpuIsNamedAsSuch) {
  const BoundedResult info = bench({"info"});
  ASSERT_TRUE(info.ended_by_itself()) << info.describe();
  if (info.exit_code == 0) GTEST_SKIP() << "this machine has a GPU";
  if (access("/proc/driver/nvidia/version", F_OK) == 0) {
    GTEST_SKIP() << "an NVIDIA driver is loaded; the no-driver message does not apply";
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"info"}, with({"check"}, kInline), with({"forward"}, kInline),
        with({"backward"}, kInline)}) {
    const BoundedResult r = bench(args);
    EXPECT_TRUE(usage_error(r, {"no NVIDIA driver or GPU found"}));
    EXPECT_EQ(r.output.find("driver version is insufficient"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace swiglu::test
