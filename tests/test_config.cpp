// YAML sweep configs (config.hpp): expansion of good files and one test per class of bad file.
#include "bench/config.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <string>

#include "temp_dir.hpp"

namespace swiglu::bench {
namespace {

namespace fs = std::filesystem;

const std::string kSourceDir = SWIGLU_SOURCE_DIR;

// Whether `run` throws a ConfigError whose message starts with `location` ("t.yaml:4:5:") and
// contains every one of `parts`; `run` returns what happened when it does not throw.
template <typename Run>
::testing::AssertionResult throws_config_error(const Run& run, const std::string& location,
                                               std::initializer_list<std::string> parts) {
  try {
    return ::testing::AssertionFailure() << run();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    if (msg.rfind(location, 0) != 0) {
      return ::testing::AssertionFailure() << "message does not start with '" << location
                                           << "': " << msg;
    }
    for (const std::string& part : parts) {
      if (msg.find(part) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks '" << part << "': " << msg;
      }
    }
    return ::testing::AssertionSuccess() << msg;
  }
}

// parse_config(yaml) as source "t.yaml" fails as throws_config_error checks.
::testing::AssertionResult fails_with(const std::string& yaml, const std::string& location,
                                      std::initializer_list<std::string> parts,
                                      size_t max_cases = kDefaultMaxCases) {
  return throws_config_error(
      [&] {
        const SweepConfig c = parse_config(yaml, "t.yaml", max_cases);
        return "parsed without error (" + std::to_string(c.cases.size()) + " cases)";
      },
      location, parts);
}

// The same for load_config(path).
::testing::AssertionResult load_fails_with(const std::string& path, const std::string& location,
                                           std::initializer_list<std::string> parts) {
  return throws_config_error(
      [&] {
        load_config(path);
        return std::string("loaded without error");
      },
      location, parts);
}

// A valid single sweep with `extra` lines appended to it (4-space indented keys).
std::string sweep_with(const std::string& extra) {
  return "name: t\n"
         "sweeps:\n"
         "  - batch: 64\n"
         "    in: 784\n"
         "    hidden: 512\n"
         "    dtype: bf16\n" +
         extra;
}

// --- good configs ----------------------------------------------------------------------------

TEST(ConfigGood, MinimalSweepAndDefaults) {
  const SweepConfig c = parse_config(sweep_with(""), "t.yaml");
  EXPECT_EQ(c.name, "t");
  EXPECT_EQ(c.description, "");
  EXPECT_EQ(c.source, "t.yaml");
  ASSERT_EQ(c.cases.size(), 1u);
  const Case& k = c.cases[0];
  EXPECT_EQ(k.problem.batch, 64);
  EXPECT_EQ(k.problem.in_features, 784);
  EXPECT_EQ(k.problem.hidden, 512);
  EXPECT_EQ(k.problem.dtype, DType::bf16);
  EXPECT_EQ(k.problem.layout, Layout::linear);
  EXPECT_FALSE(k.problem.bias);
  EXPECT_EQ(k.problem.math, Math::exact);
  EXPECT_EQ(k.x_stride_pad(), 0);
  EXPECT_EQ(k.problem.ldx, 784);
  EXPECT_EQ(k.variants, (std::vector<Variant>{Variant::fused, Variant::cublas2, Variant::cublas1}));
  EXPECT_EQ(words(k.tiles), (std::vector<std::string>{"auto"}));
  EXPECT_EQ(k.origin, "t.yaml:3 (sweep 1)");
  EXPECT_EQ(k.file, "t.yaml");
  EXPECT_EQ(k.line, 3);
  EXPECT_EQ(k.column, 5);
}

TEST(ConfigGood, ExpansionOrder) {
  // Outermost first: dtype, layout, math, bias, x_stride_pad, hidden, in, batch.
  const SweepConfig c = parse_config(
      "name: order\n"
      "sweeps:\n"
      "  - batch: [2, 1]\n"
      "    in: [10, 20]\n"
      "    hidden: 30\n"
      "    dtype: [fp32, bf16]\n"
      "    math: [exact, tf32]\n",
      "t.yaml");
  std::vector<std::string> got;
  for (const Case& k : c.cases) got.push_back(describe(k));
  const std::vector<std::string> want = {
      "B=2 I=10 D=30 dtype=fp32 layout=linear bias=false math=exact x_stride_pad=0",
      "B=1 I=10 D=30 dtype=fp32 layout=linear bias=false math=exact x_stride_pad=0",
      "B=2 I=20 D=30 dtype=fp32 layout=linear bias=false math=exact x_stride_pad=0",
      "B=1 I=20 D=30 dtype=fp32 layout=linear bias=false math=exact x_stride_pad=0",
      "B=2 I=10 D=30 dtype=fp32 layout=linear bias=false math=tf32 x_stride_pad=0",
      "B=1 I=10 D=30 dtype=fp32 layout=linear bias=false math=tf32 x_stride_pad=0",
      "B=2 I=20 D=30 dtype=fp32 layout=linear bias=false math=tf32 x_stride_pad=0",
      "B=1 I=20 D=30 dtype=fp32 layout=linear bias=false math=tf32 x_stride_pad=0",
      // bf16: math collapses to exact.
      "B=2 I=10 D=30 dtype=bf16 layout=linear bias=false math=exact x_stride_pad=0",
      "B=1 I=10 D=30 dtype=bf16 layout=linear bias=false math=exact x_stride_pad=0",
      "B=2 I=20 D=30 dtype=bf16 layout=linear bias=false math=exact x_stride_pad=0",
      "B=1 I=20 D=30 dtype=bf16 layout=linear bias=false math=exact x_stride_pad=0",
  };
  EXPECT_EQ(got, want);
}

TEST(ConfigGood, ValueForms) {
  const SweepConfig c = parse_config(
      "name: forms\n"
      "description: \"all the forms\"\n"
      "sweeps:\n"
      "  - batch: \"pow2:1:8\"\n"
      "    in: [\"64:192:64\", 64, 7]\n"
      "    hidden: \"5,3,5\"\n"
      "    dtype: \"bf16, fp16\"\n"
      "    layout: [packed, linear]\n"
      "    bias: [true, false]\n"
      "    variants: [cublas1, fused]\n"
      "    tiles: [\"sm80:128x64x32s4w4\", auto, \"simt:64x64x16s2w8\", all]\n"
      "    x_stride_pad: [0, 8]\n",
      "t.yaml");
  EXPECT_EQ(c.description, "all the forms");
  // 4 batches x 4 ins x 2 hiddens x 2 dtypes x 2 layouts x 2 biases x 2 pads.
  ASSERT_EQ(c.cases.size(), 4u * 4 * 2 * 2 * 2 * 2 * 2);
  const Case& first = c.cases.front();
  EXPECT_EQ(first.problem.dtype, DType::bf16);
  EXPECT_EQ(first.problem.layout, Layout::packed);
  EXPECT_TRUE(first.problem.bias);
  EXPECT_EQ(first.x_stride_pad(), 0);
  EXPECT_EQ(first.problem.hidden, 5);
  EXPECT_EQ(first.problem.in_features, 64);
  EXPECT_EQ(first.problem.batch, 1);
  EXPECT_EQ(first.variants, (std::vector<Variant>{Variant::cublas1, Variant::fused}));
  EXPECT_EQ(words(first.tiles),
            (std::vector<std::string>{"sm80:128x64x32s4w4", "auto", "simt:64x64x16s2w8", "all"}));
  const Case& last = c.cases.back();
  EXPECT_EQ(last.problem.dtype, DType::f16);
  EXPECT_EQ(last.problem.layout, Layout::linear);
  EXPECT_FALSE(last.problem.bias);
  EXPECT_EQ(last.x_stride_pad(), 8);
  EXPECT_EQ(last.problem.ldx, 15);
  EXPECT_EQ(last.problem.hidden, 3);
  EXPECT_EQ(last.problem.in_features, 7);
  EXPECT_EQ(last.problem.batch, 8);
  // in: "64:192:64" then 64 again (dropped) then 7.
  std::vector<int64_t> ins;
  for (size_t i = 0; i < 16; i += 4) ins.push_back(c.cases[i].problem.in_features);
  EXPECT_EQ(ins, (std::vector<int64_t>{64, 128, 192, 7}));
}

TEST(ConfigGood, DefaultsApplyUnlessTheSweepSetsTheKey) {
  const SweepConfig c = parse_config(
      "name: d\n"
      "defaults:\n"
      "  dtype: [bf16, fp32]\n"
      "  bias: true\n"
      "  in: 784\n"
      "sweeps:\n"
      "  - batch: 1\n"
      "    hidden: 512\n"
      "  - batch: 2\n"
      "    hidden: 512\n"
      "    dtype: fp16\n"
      "    bias: false\n",
      "t.yaml");
  ASSERT_EQ(c.cases.size(), 3u);
  EXPECT_EQ(c.cases[0].problem.dtype, DType::bf16);
  EXPECT_EQ(c.cases[1].problem.dtype, DType::f32);
  EXPECT_TRUE(c.cases[0].problem.bias);
  EXPECT_EQ(c.cases[0].problem.in_features, 784);
  EXPECT_EQ(c.cases[2].problem.dtype, DType::f16);
  EXPECT_FALSE(c.cases[2].problem.bias);
  EXPECT_EQ(c.cases[2].problem.in_features, 784);
  EXPECT_EQ(c.cases[2].origin, "t.yaml:9 (sweep 2)");
}

TEST(ConfigGood, MathTakes3xtf32) {
  const SweepConfig c = parse_config(
      "name: x3\nsweeps:\n  - {batch: 64, in: 4096, hidden: 256, dtype: fp32, math: [tf32, 3xtf32]}\n",
      "t.yaml");
  ASSERT_EQ(c.cases.size(), 2u);
  EXPECT_EQ(c.cases[0].problem.math, Math::tf32);
  EXPECT_EQ(c.cases[1].problem.math, Math::tf32x3);
  EXPECT_EQ(describe(c.cases[1]),
            "B=64 I=4096 D=256 dtype=fp32 layout=linear bias=false math=3xtf32 x_stride_pad=0");
}

TEST(ConfigGood, FlowStyleSweepAndProblem) {
  const SweepConfig c = parse_config(
      "name: flow\nsweeps: [{batch: 3, in: 5, hidden: 7, dtype: fp32, math: tf32, layout: packed, "
      "bias: true, x_stride_pad: 4}]\n",
      "t.yaml");
  ASSERT_EQ(c.cases.size(), 1u);
  const Problem p = c.cases[0].problem;
  EXPECT_EQ(p.batch, 3);
  EXPECT_EQ(p.in_features, 5);
  EXPECT_EQ(p.hidden, 7);
  EXPECT_EQ(p.dtype, DType::f32);
  EXPECT_EQ(p.math, Math::tf32);
  EXPECT_EQ(p.layout, Layout::packed);
  EXPECT_TRUE(p.bias);
  EXPECT_EQ(p.ldx, 9);
  EXPECT_EQ(c.cases[0].origin, "t.yaml:2 (sweep 1)");
  EXPECT_EQ(c.cases[0].column, 10);
}

TEST(ConfigGood, RealFile) {
  const std::string path = kSourceDir + "/tests/data/good_small.yaml";
  const SweepConfig c = load_config(path);
  EXPECT_EQ(c.name, "good_small");
  EXPECT_EQ(c.description, "test data");
  EXPECT_EQ(c.source, path);
  // Sweep 1: 3 batches x 2 dtypes. Sweep 2: 4 batches x 2 biases.
  ASSERT_EQ(c.cases.size(), 14u);
  EXPECT_EQ(c.cases[0].origin, path + ":8 (sweep 1)");
  EXPECT_EQ(c.cases[0].problem.hidden, 512);
  EXPECT_EQ(c.cases[6].origin, path + ":10 (sweep 2)");
  EXPECT_EQ(c.cases[6].problem.batch, 3);
  EXPECT_EQ(c.cases[6].problem.dtype, DType::f16);
  EXPECT_EQ(c.cases[13].problem.batch, 9);
  EXPECT_TRUE(c.cases[13].problem.bias);
  EXPECT_EQ(c.cases[13].problem.ldx, 785);
  EXPECT_EQ(c.cases[13].variants, (std::vector<Variant>{Variant::fused}));
}

// Every config in configs/ parses; the four standard ones have the sizes their header comments
// state and no case in common (so they can be given to one run together).
TEST(ConfigGood, ShippedConfigs) {
  const std::map<std::string, size_t> expected = {
      {"mnist.yaml", 96}, {"seed.yaml", 12}, {"llama.yaml", 9}, {"smoke.yaml", 30}};
  // Not standard (they share cases with llama.yaml), but their sizes are their headers'.
  const std::map<std::string, size_t> other = {{"tp.yaml", 84}, {"fp8.yaml", 36}};
  std::vector<SweepConfig> standard;
  for (const auto& entry : fs::directory_iterator(kSourceDir + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    SweepConfig c;
    ASSERT_NO_THROW(c = load_config(entry.path().string()));
    EXPECT_FALSE(c.name.empty());
    EXPECT_FALSE(c.description.empty());
    EXPECT_FALSE(c.cases.empty());
    const auto it = expected.find(entry.path().filename().string());
    if (it != expected.end()) {
      EXPECT_EQ(c.cases.size(), it->second);
      standard.push_back(std::move(c));
    } else if (const auto o = other.find(entry.path().filename().string()); o != other.end()) {
      EXPECT_EQ(c.cases.size(), o->second);
    }
  }
  EXPECT_EQ(standard.size(), expected.size());
  EXPECT_NO_THROW(merge_configs(standard));
  const SweepConfig smoke = load_config(kSourceDir + "/configs/smoke.yaml");
  EXPECT_LE(smoke.cases.size(), 30u);
  // fp8.yaml: each FP8 case next to the bf16 case of the same inputs.
  const SweepConfig fp8 = load_config(kSourceDir + "/configs/fp8.yaml");
  const auto n_fp8 = std::count_if(fp8.cases.begin(), fp8.cases.end(),
                                   [](const Case& c) { return c.problem.dtype == DType::e4m3; });
  EXPECT_EQ(n_fp8, 18);
}

TEST(ConfigGood, MergeConcatenates) {
  const SweepConfig a = parse_config(sweep_with(""), "a.yaml");
  const SweepConfig b = parse_config(
      "name: b\ndescription: second\nsweeps:\n  - {batch: [1, 2], in: 8, hidden: 8, dtype: fp32}\n",
      "b.yaml");
  const SweepConfig m = merge_configs({a, b});
  EXPECT_EQ(m.name, "t+b");
  EXPECT_EQ(m.description, "second");
  EXPECT_EQ(m.source, "a.yaml, b.yaml");
  ASSERT_EQ(m.cases.size(), 3u);
  EXPECT_EQ(m.cases[0].origin, "a.yaml:3 (sweep 1)");
  EXPECT_EQ(m.cases[2].origin, "b.yaml:4 (sweep 1)");
}

// --- bad configs -----------------------------------------------------------------------------

TEST(ConfigBad, MissingFile) {
  const std::string path = kSourceDir + "/tests/data/no_such_file.yaml";
  EXPECT_TRUE(load_fails_with(path, path + ":1:1:", {"cannot read", "No such file"}));
}

TEST(ConfigBad, DirectoryInsteadOfFile) {
  const std::string path = kSourceDir + "/tests/data";
  EXPECT_TRUE(load_fails_with(path, path + ":1:1:", {"cannot read", "directory"}));
}

TEST(ConfigBad, SyntaxError) {
  const std::string path = kSourceDir + "/tests/data/bad_syntax.yaml";
  EXPECT_TRUE(load_fails_with(path, path + ":", {"YAML syntax error"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: 1\n   in: 2\n", "t.yaml:4:",
                         {"YAML syntax error"}));
  EXPECT_TRUE(fails_with("name: [t\n", "t.yaml:", {"YAML syntax error"}));
}

TEST(ConfigBad, UnknownKeyInFile) {
  const std::string path = kSourceDir + "/tests/data/bad_unknown_key.yaml";
  EXPECT_TRUE(load_fails_with(path, path + ":7:5:",
                              {"sweep 1", "unknown key 'hiden'", "did you mean 'hidden'",
                               "allowed keys: batch, in, hidden, dtype, layout, bias, math, "
                               "variants, tiles, x_stride_pad"}));
}

TEST(ConfigBad, UnknownKeys) {
  EXPECT_TRUE(fails_with(sweep_with("    colour: red\n"), "t.yaml:7:5:",
                         {"sweep 1", "unknown key 'colour'", "allowed keys"}));
  EXPECT_TRUE(fails_with("name: t\nversion: 2\nsweeps: []\n", "t.yaml:2:1:",
                         {"top level", "unknown key 'version'",
                          "allowed keys: name, description, defaults, sweeps"}));
  EXPECT_TRUE(fails_with("name: t\ndefaults:\n  dtypes: bf16\nsweeps: []\n", "t.yaml:3:3:",
                         {"defaults", "unknown key 'dtypes'", "did you mean 'dtype'"}));
}

TEST(ConfigBad, DuplicateKeys) {
  EXPECT_TRUE(fails_with(sweep_with("    batch: 128\n"), "t.yaml:7:5:",
                         {"sweep 1", "duplicate key 'batch'", "line 3"}));
  EXPECT_TRUE(fails_with("name: a\nname: b\nsweeps: []\n", "t.yaml:2:1:",
                         {"duplicate key 'name'", "line 1"}));
  EXPECT_TRUE(fails_with("name: t\ndefaults: {dtype: bf16, dtype: fp16}\nsweeps: []\n",
                         "t.yaml:2:25:", {"defaults", "duplicate key 'dtype'"}));
}

TEST(ConfigBad, WrongTypes) {
  EXPECT_TRUE(fails_with("name: [a, b]\nsweeps: []\n", "t.yaml:1:7:",
                         {"'name'", "must be a string"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps: {batch: 1}\n", "t.yaml:2:9:", {"'sweeps'", "list"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - 64\n", "t.yaml:3:5:", {"sweep 1", "mapping"}));
  EXPECT_TRUE(fails_with("name: t\ndefaults: [1]\nsweeps: []\n", "t.yaml:2:11:",
                         {"'defaults'", "mapping"}));
  EXPECT_TRUE(fails_with("- name: t\n", "t.yaml:1:1:", {"top level", "mapping"}));
  EXPECT_TRUE(fails_with(
      "name: t\nsweeps:\n  - batch: {a: 1}\n    in: 784\n    hidden: 512\n    dtype: bf16\n",
      "t.yaml:3:12:", {"'batch'", "integer", "mapping"}));
  EXPECT_TRUE(fails_with(
      "name: t\nsweeps:\n  - batch: [1, [2]]\n    in: 784\n    hidden: 512\n    dtype: bf16\n",
      "t.yaml:3:16:", {"'batch'", "list"}));
  EXPECT_TRUE(fails_with(sweep_with("    bias: maybe\n"), "t.yaml:7:11:",
                         {"'bias'", "true, false", "'maybe'"}));
  EXPECT_TRUE(fails_with(sweep_with("    layout: {a: b}\n"), "t.yaml:7:13:", {"'layout'", "word"}));
  EXPECT_TRUE(fails_with(sweep_with("    x_stride_pad: 1.5\n"), "t.yaml:7:19:",
                         {"'x_stride_pad'", "'1.5'"}));
  EXPECT_TRUE(fails_with(sweep_with("    tiles:\n"), "t.yaml:7:5:", {"'tiles'", "no value"}));
}

TEST(ConfigBad, Sizes) {
  const std::string tail = "    in: 784\n    hidden: 512\n    dtype: bf16\n";
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: -1\n" + tail, "t.yaml:3:12:",
                         {"'batch'", "'-1'", "negative"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: [64, 0]\n" + tail, "t.yaml:3:17:",
                         {"'batch'", "'0'", "minimum 1"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: \"0:64:8\"\n" + tail, "t.yaml:3:12:",
                         {"'batch'", "minimum 1"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: 12x\n" + tail, "t.yaml:3:12:",
                         {"'batch'", "'12x'", "pow2:a:b"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: \"64:1:8\"\n" + tail, "t.yaml:3:12:",
                         {"'batch'", "greater than its end"}));
  EXPECT_TRUE(fails_with(sweep_with("    x_stride_pad: -8\n"), "t.yaml:7:19:",
                         {"'x_stride_pad'", "negative"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - {batch: 1, in: 0, hidden: 1, dtype: bf16}\n",
                         "t.yaml:3:20:", {"'in'", "minimum 1"}));
  EXPECT_TRUE(fails_with(
      "name: t\nsweeps:\n  - {batch: 1, in: 1, hidden: 99999999999999999999, dtype: bf16}\n",
      "t.yaml:3:31:", {"'hidden'", "does not fit"}));
}

TEST(ConfigBad, EnumValues) {
  const std::string head = "name: t\nsweeps:\n  - batch: 64\n    in: 784\n    hidden: 512\n";
  EXPECT_TRUE(fails_with(head + "    dtype: [bf16, fp4]\n", "t.yaml:6:19:",
                         {"'dtype'", "'fp4'", "fp32, fp16, bf16, fp8"}));
  EXPECT_TRUE(fails_with(sweep_with("    layout: transposed\n"), "t.yaml:7:13:",
                         {"'layout'", "'transposed'", "linear, packed"}));
  EXPECT_TRUE(fails_with(sweep_with("    math: fast\n"), "t.yaml:7:11:",
                         {"'math'", "'fast'", "exact, tf32, 3xtf32"}));
  EXPECT_TRUE(fails_with(sweep_with("    variants: [fused, cublas3]\n"), "t.yaml:7:23:",
                         {"'variants'", "'cublas3'", "fused, cublas2, cublas1"}));
  EXPECT_TRUE(fails_with(sweep_with("    tiles: [auto, \"sm80:128x64\"]\n"), "t.yaml:7:19:",
                         {"'tiles'", "'sm80:128x64'", "auto"}));
  EXPECT_TRUE(fails_with(sweep_with("    tiles: heuristic\n"), "t.yaml:7:12:",
                         {"'tiles'", "'heuristic'"}));
}

TEST(ConfigBad, RepeatedWords) {
  EXPECT_TRUE(fails_with(sweep_with("    variants: [fused, fused]\n"), "t.yaml:7:23:",
                         {"'variants'", "'fused' is listed twice"}));
  EXPECT_TRUE(fails_with(sweep_with("    bias: [true, true]\n"), "t.yaml:7:18:",
                         {"'bias'", "listed twice"}));
  EXPECT_TRUE(fails_with(sweep_with("    layout: \"linear,linear\"\n"), "t.yaml:7:13:",
                         {"'layout'", "listed twice"}));
}

TEST(ConfigBad, EmptyLists) {
  const std::string tail = "    in: 784\n    hidden: 512\n    dtype: bf16\n";
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: []\n" + tail, "t.yaml:3:12:",
                         {"'batch'", "empty list"}));
  EXPECT_TRUE(fails_with(sweep_with("    variants: []\n"), "t.yaml:7:15:",
                         {"'variants'", "empty list"}));
  EXPECT_TRUE(fails_with(sweep_with("    layout: \"\"\n"), "t.yaml:7:13:", {"'layout'", "empty"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: 64\n" + tail.substr(0, 28) +
                             "    dtype: \"bf16,\"\n",
                         "t.yaml:6:12:", {"'dtype'", "empty item"}));
}

TEST(ConfigBad, Sweeps) {
  EXPECT_TRUE(fails_with("name: t\nsweeps: []\n", "t.yaml:2:9:", {"'sweeps'", "empty list"}));
  EXPECT_TRUE(fails_with("name: t\n", "t.yaml:1:1:", {"missing required key 'sweeps'"}));
  EXPECT_TRUE(fails_with("sweeps: []\n", "t.yaml:1:1:", {"missing required key 'name'"}));
  EXPECT_TRUE(fails_with("name: \"\"\nsweeps: []\n", "t.yaml:1:7:", {"'name'", "empty"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - batch: 1\n    in: 2\n    dtype: bf16\n",
                         "t.yaml:3:5:", {"sweep 1", "missing required key 'hidden'"}));
  EXPECT_TRUE(fails_with("", "t.yaml:1:1:", {"empty config"}));
  EXPECT_TRUE(fails_with("# nothing\n", "t.yaml:1:1:", {"empty config"}));
  EXPECT_TRUE(fails_with(sweep_with("---\nname: u\n"), "t.yaml:", {"more than one YAML document"}));
}

TEST(ConfigBad, DuplicateCasesNameBothOrigins) {
  EXPECT_TRUE(fails_with(
      "name: t\n"
      "sweeps:\n"
      "  - {batch: [1, 2], in: 8, hidden: 8, dtype: bf16}\n"
      "  - {batch: [3, 2], in: 8, hidden: 8, dtype: [fp32, bf16]}\n",
      "t.yaml:4:5:",
      {"duplicate case B=2 I=8 D=8 dtype=bf16", "t.yaml:3 (sweep 1)", "t.yaml:4 (sweep 2)"}));
  // bf16 ignores math, so exact and tf32 are the same bf16 problem.
  EXPECT_TRUE(fails_with(
      "name: t\n"
      "sweeps:\n"
      "  - {batch: 1, in: 8, hidden: 8, dtype: bf16}\n"
      "  - {batch: 1, in: 8, hidden: 8, dtype: bf16, math: tf32}\n",
      "t.yaml:4:5:", {"duplicate case", "(sweep 1)", "(sweep 2)"}));
}

TEST(ConfigBad, DuplicateCasesAcrossFiles) {
  const SweepConfig a = parse_config(sweep_with(""), "a.yaml");
  const SweepConfig b = parse_config(
      "name: b\nsweeps:\n  - {batch: [1, 64], in: 784, hidden: 512, dtype: bf16}\n", "b.yaml");
  try {
    merge_configs({a, b});
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("b.yaml:3:5: duplicate case B=64 I=784 D=512", 0), 0u) << msg;
    EXPECT_NE(msg.find("a.yaml:3 (sweep 1)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("b.yaml:3 (sweep 1)"), std::string::npos) << msg;
  }
}

TEST(ConfigBad, CheckUniqueWithoutFile) {
  SweepSpec spec;
  spec.batch = {1};
  spec.in = {2};
  spec.hidden = {3};
  spec.dtype = {DType::f32};
  std::vector<Case> cases = expand_sweep(spec, "--batch 1");
  const std::vector<Case> more = expand_sweep(spec, "--shapes x");
  cases.insert(cases.end(), more.begin(), more.end());
  try {
    check_unique(cases);
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--shapes x: duplicate case", 0), 0u) << e.what();
  }
}

// --- limits: what a hostile config cannot make the parser do ---------------------------------

TEST(ConfigLimits, OnlyRegularFilesOfAtMostOneMiB) {
  EXPECT_TRUE(load_fails_with("/dev/zero", "/dev/zero:1:1:",
                              {"cannot read", "a character device, not a regular file"}));
  const test::TempDir dir;
  const std::string fifo = dir.path("fifo.yaml");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(load_fails_with(fifo, fifo + ":1:1:", {"a FIFO, not a regular file"}));
  const std::string big =
      dir.write("big.yaml", sweep_with("") + "#" + std::string(kMaxConfigBytes, ' ') + "\n");
  EXPECT_TRUE(load_fails_with(big, big + ":1:1:",
                              {"bytes, more than the limit of 1048576 bytes (1 MiB)"}));
  const std::string text = sweep_with("");
  const std::string edge = dir.write(
      "edge.yaml", text + "#" + std::string(kMaxConfigBytes - text.size() - 2, ' ') + "\n");
  EXPECT_EQ(fs::file_size(edge), kMaxConfigBytes);
  EXPECT_EQ(load_config(edge).cases.size(), 1u);
}

TEST(ConfigLimits, SizesAndPaddingsHaveCaps) {
  EXPECT_TRUE(fails_with(sweep_with("    x_stride_pad: 9223372036854775807\n"), "t.yaml:7:19:",
                         {"'x_stride_pad'", "above the maximum 2147483647"}));
  EXPECT_TRUE(fails_with(
      "name: t\nsweeps:\n  - {batch: 1, in: 9223372036854775807, hidden: 8, dtype: bf16}\n",
      "t.yaml:3:20:", {"'in'", "above the maximum 2147483647"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - {batch: \"1,2147483648\", in: 8, hidden: 8, "
                         "dtype: bf16}\n",
                         "t.yaml:3:13:", {"'batch'", "above the maximum 2147483647"}));
  // At the caps, ldx = in + pad is far from overflowing.
  const SweepConfig c = parse_config(
      "name: t\nsweeps:\n  - {batch: 2147483647, in: 2147483647, hidden: 2147483647, "
      "dtype: bf16, x_stride_pad: 2147483647}\n",
      "t.yaml");
  ASSERT_EQ(c.cases.size(), 1u);
  EXPECT_EQ(c.cases[0].problem.ldx, int64_t{4294967294});
}

TEST(ConfigLimits, CasesAreCountedBeforeTheyAreExpanded) {
  // 3 batches × 2 hidden sizes × (fp32 × 3 maths + bf16) = 24 cases.
  const std::string yaml =
      "name: t\nsweeps:\n  - {batch: [1, 2, 3], in: 8, hidden: [8, 16], dtype: [fp32, bf16], "
      "math: [exact, tf32, 3xtf32]}\n";
  EXPECT_EQ(parse_config(yaml, "t.yaml", 24).cases.size(), 24u);
  EXPECT_TRUE(fails_with(yaml, "t.yaml:3:5:",
                         {"sweep 1", "24 cases", "the limit of 23", "--max-cases"}, 23));
  // The count covers every sweep so far.
  EXPECT_TRUE(fails_with(yaml + "  - {batch: 4, in: 8, hidden: [8, 16], dtype: fp16}\n",
                         "t.yaml:4:5:", {"sweep 2", "26 cases (this sweep: 2)"}, 25));
  // 10^8 cases fail at once, without being made.
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - {batch: \"1:1000000:1\", in: 8, "
                         "hidden: \"1:100:1\", dtype: bf16}\n",
                         "t.yaml:3:5:", {"100000000 cases", "the limit of 100000"}));
}

TEST(ConfigLimits, CountMatchesExpansionAndSaturates) {
  SweepSpec spec;
  spec.batch = {1, 2, 3};
  spec.in = {8, 9};
  spec.hidden = {16};
  spec.dtype = {DType::bf16, DType::f32, DType::f16};
  spec.math = {Math::exact, Math::tf32, Math::tf32x3};
  spec.layout = {Layout::linear, Layout::packed};
  spec.bias = {false, true};
  spec.x_stride_pad = {0, 8};
  EXPECT_EQ(count_cases(spec), expand_sweep(spec, "x").size());
  EXPECT_EQ(count_cases(spec), uint64_t{3 * 2 * 1 * (1 + 3 + 1) * 2 * 2 * 2});
  const std::vector<int64_t> million(1'000'000, 1);
  spec.batch = spec.in = spec.hidden = spec.x_stride_pad = million;  // 10^24 cases
  EXPECT_EQ(count_cases(spec), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(saturating_mul(uint64_t{1} << 32, uint64_t{1} << 32),
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(saturating_mul(uint64_t{1} << 31, uint64_t{1} << 32), uint64_t{1} << 63);
  EXPECT_EQ(saturating_mul(0, std::numeric_limits<uint64_t>::max()), 0u);
}

TEST(ConfigLimits, MergedConfigsHaveACap) {
  const SweepConfig a = parse_config(sweep_with(""), "a.yaml");
  const SweepConfig b = parse_config(
      "name: b\nsweeps:\n  - {batch: [1, 2], in: 8, hidden: 8, dtype: fp32}\n", "b.yaml");
  EXPECT_EQ(merge_configs({a, b}, 3).cases.size(), 3u);
  try {
    merge_configs({a, b}, 2);
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("3 cases together (a.yaml: 1, b.yaml: 2), more than the "
                                         "limit of 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(ConfigLimits, LongListsAreBounded) {
  std::string tiles;
  for (size_t i = 1; i <= kMaxTileNames + 1; ++i) {
    tiles += (i > 1 ? ", " : "") + ("sm80:" + std::to_string(i) + "x64x32s4w4");
  }
  EXPECT_TRUE(fails_with(sweep_with("    tiles: [" + tiles + "]\n"), "t.yaml:7:",
                         {"'tiles'", "more than 64 tile names"}));
  // Items of a list are counted together, not one by one.
  EXPECT_TRUE(fails_with(sweep_with("").replace(sweep_with("").find("batch: 64"), 9,
                                                "batch: [\"1:600000:1\", \"600001:1200000:1\"]"),
                         "t.yaml:3:", {"'batch'", "more than 1000000 values"}));
}

TEST(ConfigLimits, DegenerateYamlIsAClearError) {
  // Why: yaml-cpp 0.7 reads "," as an endless stream of empty documents; YAML::LoadAll kept
  // collecting them until the process ran out of memory and aborted.
  EXPECT_TRUE(fails_with(",", "t.yaml:1:1:", {"top level must be a mapping", "got nothing"}));
  const std::string chars = ",[]{}-:?&*!|>'\"%@`# \n\t~.0a\\";
  for (const char a : chars) {
    for (const char b : chars) {
      const std::string text{a, b};
      EXPECT_THROW(parse_config(text, "t.yaml"), ConfigError) << "'" << text << "'";
    }
  }
}

TEST(ConfigLimits, NoAnchorsAliasesDeepNestingOrHugeNodeCounts) {
  EXPECT_TRUE(fails_with("name: t\ndefaults:\n  batch: &b [1, 2]\nsweeps:\n  - batch: *b\n"
                         "    in: 8\n    hidden: 8\n    dtype: bf16\n",
                         "t.yaml:3:10:", {"anchor (&b)", "not supported", "'defaults'"}));
  EXPECT_TRUE(fails_with("name: t\nsweeps:\n  - {batch: 1, in: 8, hidden: 8, dtype: &d bf16}\n",
                         "t.yaml:3:", {"anchor", "not supported"}));
  EXPECT_TRUE(fails_with(std::string(100000, '['), "t.yaml:1:", {"nested more than 16 deep"}));
  EXPECT_TRUE(fails_with(sweep_with("    tiles: [[[[[[[[[[[[[[[auto]]]]]]]]]]]]]]]\n"), "t.yaml:7:",
                         {"nested more than 16 deep"}));
  std::string many = "name: t\nsweeps:\n  - batch: [";
  for (size_t i = 0; i < kMaxYamlNodes; ++i) many += i ? ",1" : "1";
  EXPECT_TRUE(fails_with(many + "]\n", "t.yaml:3:", {"more than 100000 YAML nodes"}));
}

}  // namespace
}  // namespace swiglu::bench
