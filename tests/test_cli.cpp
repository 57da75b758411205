// Host tests of swiglubench's command line: options and defaults, config overrides, and the exit
// codes of bad usage. No GPU: parsing never touches the device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench/cli.hpp"

namespace swiglu::bench {
namespace {

Command parse(std::vector<std::string> args) {
  args.insert(args.begin(), "swiglubench");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

const std::string kSmoke = std::string(SWIGLU_SOURCE_DIR) + "/configs/smoke.yaml";
const std::string kMnist = std::string(SWIGLU_SOURCE_DIR) + "/configs/mnist.yaml";

TEST(Cli, ForwardInlineSweepWithDefaults) {
  const Command c = parse({"forward", "--batch", "1,64", "--in", "784", "--hidden", "pow2:512:1024"});
  ASSERT_EQ(c.kind, Command::Kind::forward);
  ASSERT_EQ(c.cases.size(), 4u);  // 2 batches × 2 hidden sizes, bf16 by default
  for (const Case& k : c.cases) {
    EXPECT_EQ(k.problem.in_features, 784);
    EXPECT_EQ(k.problem.dtype, DType::bf16);
    EXPECT_EQ(k.problem.layout, Layout::linear);
    EXPECT_FALSE(k.problem.bias);
    EXPECT_EQ(k.variants, (std::vector<Variant>{Variant::fused, Variant::cublas2, Variant::cublas1}));
    EXPECT_EQ(words(k.tiles), (std::vector<std::string>{"auto"}));
  }
  const RunOptions& o = c.options;
  EXPECT_EQ(o.op, Op::forward);
  EXPECT_EQ(o.name, "inline");
  EXPECT_TRUE(o.timing.cold);
  EXPECT_EQ(o.timing.warmup, 10);
  EXPECT_EQ(o.timing.min_samples, 30);
  EXPECT_EQ(o.seed, 1234u);
  EXPECT_EQ(o.reference, ReferenceMode::automatic);
  EXPECT_TRUE(o.write_csv && o.write_json && o.write_md);
  EXPECT_TRUE(o.out_dir.empty());
  EXPECT_FALSE(o.timing.graph);  // stream launches unless --graph
}

TEST(Cli, MeasurementAndOutputOptions) {
  const Command c = parse({"forward", "--batch", "8", "--in", "16", "--hidden", "16", "--hot",
                           "--warmup", "3", "--min-samples", "7", "--max-samples", "9",
                           "--min-time", "0", "--max-noise", "0.2", "--seed", "99", "--device",
                           "1", "--reference", "gpu", "--json", "--out", "some/dir", "--profile"});
  ASSERT_EQ(c.kind, Command::Kind::forward);
  const RunOptions& o = c.options;
  EXPECT_FALSE(o.timing.cold);
  EXPECT_EQ(o.timing.warmup, 3);
  EXPECT_EQ(o.timing.min_samples, 7);
  EXPECT_EQ(o.timing.max_samples, 9);
  EXPECT_EQ(o.timing.min_time_s, 0.0);
  EXPECT_DOUBLE_EQ(o.timing.max_noise, 0.2);
  EXPECT_EQ(o.seed, 99u);
  EXPECT_EQ(o.device, 1);
  EXPECT_EQ(o.reference, ReferenceMode::gpu);
  EXPECT_FALSE(o.write_csv);
  EXPECT_TRUE(o.write_json);
  EXPECT_FALSE(o.write_md);
  EXPECT_EQ(o.out_dir, "some/dir");
  EXPECT_TRUE(o.profile);
}

TEST(Cli, OptionsOverrideTheConfigFile) {
  const Command all = parse({"check", "--shapes", kMnist});
  ASSERT_EQ(all.kind, Command::Kind::check);
  EXPECT_EQ(all.options.name, "mnist");
  EXPECT_EQ(all.cases.size(), 96u);
  const Command c = parse({"check", "--shapes", kMnist, "--dtype", "bf16", "--layout", "packed",
                           "--bias", "true", "--variants", "fused", "--tiles", "all"});
  ASSERT_EQ(c.kind, Command::Kind::check);
  EXPECT_EQ(c.cases.size(), 32u);  // the fp16 and fp32 cases collapse onto the bf16 ones
  for (const Case& k : c.cases) {
    EXPECT_EQ(k.problem.dtype, DType::bf16);
    EXPECT_EQ(k.problem.layout, Layout::packed);
    EXPECT_TRUE(k.problem.bias);
    EXPECT_EQ(k.variants, (std::vector<Variant>{Variant::fused}));
    EXPECT_EQ(words(k.tiles), (std::vector<std::string>{"all"}));
  }
  const Command b = parse({"check", "--shapes", kMnist, "--batch", "1"});
  EXPECT_EQ(b.cases.size(), 12u);  // 4 hidden sizes × 3 dtypes
}

TEST(Cli, RepeatedShapesFilesMerge) {
  const Command c = parse({"check", "--shapes", kSmoke, "--shapes", kMnist});
  ASSERT_EQ(c.kind, Command::Kind::check);
  EXPECT_EQ(c.options.name, "smoke+mnist");
  EXPECT_EQ(c.cases.size(), 30u + 96u);
}

TEST(Cli, MathAppliesToFp32Only) {
  const Command c = parse({"check", "--batch", "4", "--in", "8", "--hidden", "8", "--dtype",
                           "fp32,bf16", "--math", "tf32"});
  ASSERT_EQ(c.cases.size(), 2u);
  EXPECT_EQ(c.cases[0].problem.math, Math::tf32);
  EXPECT_EQ(c.cases[1].problem.math, Math::exact);
}

TEST(Cli, MathTakes3xtf32AndLists) {
  // `swiglubench forward --dtype fp32 --math 3xtf32`: one fp32 case in 3xTF32, every variant.
  const Command c = parse({"forward", "--batch", "64", "--in", "4096", "--hidden", "256", "--dtype",
                           "fp32", "--math", "3xtf32"});
  ASSERT_EQ(c.kind, Command::Kind::forward);
  ASSERT_EQ(c.cases.size(), 1u);
  EXPECT_EQ(c.cases[0].problem.math, Math::tf32x3);
  EXPECT_EQ(c.cases[0].variants, (std::vector<Variant>{Variant::fused, Variant::cublas2, Variant::cublas1}));
  EXPECT_NE(describe(c.cases[0]).find("math=3xtf32"), std::string::npos) << describe(c.cases[0]);
  // A list is a sweep axis for fp32 and collapses to exact for bf16; the existing spellings stay.
  const Command all = parse({"check", "--batch", "4", "--in", "8", "--hidden", "8", "--dtype",
                             "fp32,bf16", "--math", "exact,tf32,3xtf32"});
  ASSERT_EQ(all.cases.size(), 4u);
  EXPECT_EQ(all.cases[0].problem.math, Math::exact);
  EXPECT_EQ(all.cases[1].problem.math, Math::tf32);
  EXPECT_EQ(all.cases[2].problem.math, Math::tf32x3);
  EXPECT_EQ(all.cases[3].problem.dtype, DType::bf16);
  EXPECT_EQ(all.cases[3].problem.math, Math::exact);
  // The backward and step take it too (their fp32 GEMMs are exact; the recompute GEMM is 3xTF32).
  const Command b = parse({"step", "--batch", "4", "--in", "8", "--hidden", "8", "--dtype", "fp32",
                           "--math", "3xtf32"});
  ASSERT_EQ(b.cases.size(), 1u);
  EXPECT_EQ(b.cases[0].problem.math, Math::tf32x3);
  // The smoke config runs it end to end on a GPU (cli_smoke_gpu and the gradient smoke tests).
  int smoke_3x = 0;
  for (const Case& k : parse({"check", "--shapes", kSmoke}).cases) smoke_3x += k.problem.math == Math::tf32x3;
  EXPECT_EQ(smoke_3x, 4);
}

TEST(Cli, HelpAndVersionExitZero) {
  EXPECT_EQ(parse({"--help"}).exit_code, 0);
  EXPECT_EQ(parse({"forward", "--help"}).exit_code, 0);
  EXPECT_EQ(parse({"--version"}).exit_code, 0);
  EXPECT_EQ(parse({"--help"}).kind, Command::Kind::exit);
}

TEST(Cli, InfoTakesADevice) {
  const Command c = parse({"info", "--device", "2"});
  EXPECT_EQ(c.kind, Command::Kind::info);
  EXPECT_EQ(c.device, 2);
}

TEST(Cli, CompareTakesTwoFilesAndTolerances) {
  const std::string base = std::string(SWIGLU_SOURCE_DIR) + "/tests/data/compare/base.json";
  const Command c = parse({"compare", "--baseline", base, "--current", base, "--floor", "0.1",
                           "--k", "2", "--abs-floor", "0.2", "--max-tolerance", "0.4",
                           "--against", "cublas1", "--allow-missing"});
  ASSERT_EQ(c.kind, Command::Kind::compare);
  EXPECT_EQ(c.baseline, base);
  EXPECT_EQ(c.current, base);
  EXPECT_DOUBLE_EQ(c.regression.compare.floor, 0.1);
  EXPECT_DOUBLE_EQ(c.regression.compare.k, 2);
  EXPECT_DOUBLE_EQ(c.regression.compare.abs_floor, 0.2);
  EXPECT_DOUBLE_EQ(c.regression.compare.max_tolerance, 0.4);
  EXPECT_EQ(c.regression.compare.reference, "cublas1");
  EXPECT_TRUE(c.regression.compare.allow_missing);
  EXPECT_FALSE(c.regression.update_baseline);
  EXPECT_EQ(parse({"compare", "--baseline", base}).exit_code, 3);  // --current missing
  EXPECT_EQ(parse({"compare", "--baseline", base, "--current", base, "--against", "x"}).exit_code, 3);
}

TEST(Cli, GateRunsCasesWithCompareOptions) {
  const std::string ci = std::string(SWIGLU_SOURCE_DIR) + "/configs/ci.yaml";
  const Command c = parse({"gate", "--shapes", ci, "--retries", "1", "--baseline", "b.json",
                           "--floor", "0.08", "--min-samples", "50", "--csv"});
  ASSERT_EQ(c.kind, Command::Kind::regression);
  EXPECT_EQ(c.options.name, "ci");
  EXPECT_EQ(c.options.op, Op::forward);
  EXPECT_EQ(c.cases.size(), 22u);
  EXPECT_EQ(c.regression.retries, 1);
  EXPECT_EQ(c.regression.baseline, "b.json");
  EXPECT_DOUBLE_EQ(c.regression.compare.floor, 0.08);
  EXPECT_EQ(c.options.timing.min_samples, 50);
  EXPECT_TRUE(c.options.write_json);  // the gate reads its own JSON back
  const Command d = parse({"gate", "--shapes", ci});
  EXPECT_EQ(d.regression.retries, 2);
  EXPECT_TRUE(d.regression.baseline.empty());
  EXPECT_FALSE(d.regression.update_baseline);
  // The cases run as forward and step by default; the step with the gradient ops' defaults.
  EXPECT_EQ(d.regression.ops, (std::vector<Op>{Op::forward, Op::step}));
  EXPECT_TRUE(d.options.gradient.grads.dx && d.options.gradient.grads.dw);
  EXPECT_EQ(d.options.gradient.policies, (std::vector<Policy>{Policy::save, Policy::recompute}));
  EXPECT_EQ(d.options.gradient.placements, std::vector<GatePlacement>{GatePlacement::epilogue});
  const Command e = parse({"gate", "--shapes", ci, "--ops", "step,backward,step"});
  EXPECT_EQ(e.regression.ops, (std::vector<Op>{Op::step, Op::backward}));
  for (const char* bad : {"memory", "check", "", "forward,,step", "fwd"})
    EXPECT_EQ(parse({"gate", "--shapes", ci, "--ops", bad}).exit_code, 3) << bad;
}

TEST(Cli, BackwardDefaults) {
  const Command c = parse({"backward", "--shapes", kSmoke});
  ASSERT_EQ(c.kind, Command::Kind::backward);
  EXPECT_EQ(c.options.op, Op::backward);
  EXPECT_EQ(c.options.name, "smoke");
  EXPECT_EQ(c.cases.size(), 30u);
  const GradientOptions& g = c.options.gradient;
  EXPECT_TRUE(g.grads.dx);
  EXPECT_TRUE(g.grads.dw);
  EXPECT_EQ(g.policies, (std::vector<Policy>{Policy::save, Policy::recompute}));
  EXPECT_EQ(g.placements, (std::vector<GatePlacement>{GatePlacement::epilogue}));
  EXPECT_EQ(g.save_dh, (std::vector<DhStorage>{DhStorage::workspace}));
  EXPECT_EQ(words(g.dx_tiles), (std::vector<std::string>{"auto"}));
  EXPECT_EQ(words(g.dw_tiles), (std::vector<std::string>{"auto"}));
  EXPECT_EQ(g.max_workspace_bytes, (std::vector<size_t>{0}));
  // The forward's measurement defaults apply.
  EXPECT_TRUE(c.options.timing.cold);
  EXPECT_EQ(c.options.timing.min_samples, 30);
  EXPECT_EQ(c.options.reference, ReferenceMode::automatic);
}

TEST(Cli, BackwardOptions) {
  const Command c = parse({"backward", "--batch", "64", "--in", "784", "--hidden", "1024",
                           "--grads", "dw", "--policy", "recompute", "--gate-placement", "prologue",
                           "--dx-tiles", "all", "--dw-tiles", "auto,sm80:128x64x32s4w4",
                           "--variants", "fused,cublas2", "--dtype", "fp16", "--bias", "true",
                           "--min-samples", "5", "--reference", "cpu", "--csv"});
  ASSERT_EQ(c.kind, Command::Kind::backward);
  const GradientOptions& g = c.options.gradient;
  EXPECT_FALSE(g.grads.dx);
  EXPECT_TRUE(g.grads.dw);
  EXPECT_EQ(g.policies, (std::vector<Policy>{Policy::recompute}));
  EXPECT_EQ(g.placements, (std::vector<GatePlacement>{GatePlacement::prologue}));
  EXPECT_EQ(words(g.dx_tiles), (std::vector<std::string>{"all"}));
  EXPECT_EQ(words(g.dw_tiles), (std::vector<std::string>{"auto", "sm80:128x64x32s4w4"}));
  ASSERT_EQ(c.cases.size(), 1u);
  EXPECT_EQ(c.cases[0].variants, (std::vector<Variant>{Variant::fused, Variant::cublas2}));
  EXPECT_EQ(c.cases[0].problem.dtype, DType::f16);
  EXPECT_TRUE(c.cases[0].problem.bias);
  EXPECT_EQ(c.options.timing.min_samples, 5);
  EXPECT_EQ(c.options.reference, ReferenceMode::cpu);
  EXPECT_TRUE(c.options.write_csv);
  EXPECT_FALSE(c.options.write_json);
  const Command m = parse({"step", "--batch", "8", "--in", "8", "--hidden", "8", "--max-workspace-mib", "48"});
  EXPECT_EQ(m.options.gradient.max_workspace_bytes, (std::vector<size_t>{size_t{48} << 20}));
  const Command bounds =
      parse({"step", "--batch", "8", "--in", "8", "--hidden", "8", "--max-workspace-mib", "0,64,1024"});
  EXPECT_EQ(bounds.options.gradient.max_workspace_bytes,
            (std::vector<size_t>{0, size_t{64} << 20, size_t{1024} << 20}));
  // The --batch forms; an empty item (a trailing or doubled comma) is refused, not dropped.
  const Command range =
      parse({"step", "--batch", "8", "--in", "8", "--hidden", "8", "--max-workspace-mib", "pow2:64:256"});
  EXPECT_EQ(range.options.gradient.max_workspace_bytes,
            (std::vector<size_t>{size_t{64} << 20, size_t{128} << 20, size_t{256} << 20}));
  for (const char* bad : {"-1", "1.5", "x", "2000000000", "64,-1", "0,64,", ",64", "0,,64", ""})
    EXPECT_EQ(parse({"step", "--batch", "8", "--in", "8", "--hidden", "8", "--max-workspace-mib", bad}).exit_code, 3)
        << bad;
  const Command d = parse({"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", "dx",
                           "--policy", "save", "--gate-placement", "epilogue"});
  EXPECT_TRUE(d.options.gradient.grads.dx);
  EXPECT_FALSE(d.options.gradient.grads.dw);
  EXPECT_EQ(d.options.gradient.policies, (std::vector<Policy>{Policy::save}));
  EXPECT_EQ(d.options.gradient.placements, (std::vector<GatePlacement>{GatePlacement::epilogue}));
  // A list runs each placement once (auto is the epilogue).
  const Command l = parse({"backward", "--batch", "8", "--in", "8", "--hidden", "8",
                           "--gate-placement", "auto,prologue,epilogue"});
  EXPECT_EQ(l.options.gradient.placements,
            (std::vector<GatePlacement>{GatePlacement::epilogue, GatePlacement::prologue}));
}

// --dtype fp8 in the gradient commands: the FP8 backward has fused-save alone. When every case is FP8
// and lists fused, a --policy without save or a --dh without workspace would leave it nothing to
// run and is refused; otherwise (the defaults, a mixed sweep, no fused) the FP8 rows of the other
// modes are SKIP rows with the reason, at run time.
TEST(Cli, Fp8GradientCommands) {
  for (const char* op : {"backward", "step", "memory"}) {
    const Command c = parse({op, "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8"});
    ASSERT_NE(c.kind, Command::Kind::exit) << op;
    ASSERT_EQ(c.cases.size(), 1u) << op;
    EXPECT_EQ(c.cases[0].problem.dtype, DType::e4m3) << op;
    EXPECT_EQ(c.options.gradient.policies, (std::vector<Policy>{Policy::save, Policy::recompute})) << op;
  }
  const Command mixed = parse({"backward", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8,bf16",
                               "--policy", "recompute"});
  EXPECT_EQ(mixed.cases.size(), 2u);
  const Command baselines = parse({"backward", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8",
                                   "--variants", "cublas2,cublas1", "--policy", "recompute"});
  EXPECT_EQ(baselines.cases.size(), 1u);
  const Command save = parse({"step", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8", "--policy",
                              "save", "--dh", "workspace,inplace", "--grads", "dx"});
  EXPECT_EQ(save.options.gradient.policies, (std::vector<Policy>{Policy::save}));
  EXPECT_EQ(save.cases.size(), 1u);
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"backward", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8", "--policy", "recompute"},
           {"step", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "e4m3", "--variants", "fused",
            "--policy", "recompute", "--gate-placement", "prologue"},
           {"memory", "--batch", "64", "--in", "256", "--hidden", "128", "--dtype", "fp8", "--dh", "inplace"}}) {
    const Command c = parse(bad);
    EXPECT_EQ(c.kind, Command::Kind::exit) << bad[0] << " " << bad.back();
    EXPECT_EQ(c.exit_code, 3) << bad[0] << " " << bad.back();
  }
}

TEST(Cli, StepAndMemory) {
  const Command s = parse({"step", "--shapes", kSmoke, "--policy", "save", "--warmup", "2", "--hot"});
  ASSERT_EQ(s.kind, Command::Kind::step);
  EXPECT_EQ(s.options.op, Op::step);
  EXPECT_EQ(s.options.timing.warmup, 2);
  EXPECT_FALSE(s.options.timing.cold);
  EXPECT_EQ(s.options.gradient.policies, (std::vector<Policy>{Policy::save}));
  const Command m = parse({"memory", "--batch", "1024", "--in", "4096", "--hidden", "14336",
                           "--grads", "dx,dw", "--out", "mem"});
  ASSERT_EQ(m.kind, Command::Kind::memory);
  EXPECT_EQ(m.options.op, Op::memory);
  EXPECT_EQ(m.options.out_dir, "mem");
  EXPECT_EQ(m.cases.size(), 1u);
  // memory compares fused-save's dH storages by default; --dh picks, each word once.
  EXPECT_EQ(m.options.gradient.save_dh, (std::vector<DhStorage>{DhStorage::workspace, DhStorage::tensors}));
  EXPECT_EQ(s.options.gradient.save_dh, (std::vector<DhStorage>{DhStorage::workspace}));
  EXPECT_EQ(parse({"step", "--batch", "8", "--in", "8", "--hidden", "8", "--dh", "inplace,inplace"})
                .options.gradient.save_dh,
            (std::vector<DhStorage>{DhStorage::tensors}));
  EXPECT_EQ(parse({"memory", "--batch", "8", "--in", "8", "--hidden", "8", "--dh", "over"}).exit_code, 3);
  // memory measures, it does not time: the timing options are not its options.
  EXPECT_EQ(parse({"memory", "--batch", "8", "--in", "8", "--hidden", "8", "--warmup", "3"}).exit_code, 3);
  EXPECT_EQ(parse({"memory", "--batch", "8", "--in", "8", "--hidden", "8", "--profile"}).exit_code, 3);
  // The forward commands do not take the gradient options.
  EXPECT_EQ(parse({"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", "dx"}).exit_code, 3);
}

TEST(Cli, GraphTimesReplaysInForwardBackwardAndStep) {
  for (const char* op : {"forward", "backward", "step"}) {
    SCOPED_TRACE(op);
    const Command c = parse({op, "--batch", "8", "--in", "16", "--hidden", "16", "--graph"});
    ASSERT_NE(c.kind, Command::Kind::exit);
    EXPECT_EQ(to_string(c.options.op), op);
    EXPECT_TRUE(c.options.timing.graph);
    // The other measurement options keep their defaults and combine with it.
    EXPECT_TRUE(c.options.timing.cold);
    EXPECT_EQ(c.options.timing.min_samples, 30);
    EXPECT_FALSE(parse({op, "--batch", "8", "--in", "16", "--hidden", "16"}).options.timing.graph);
    const Command h = parse({op, "--shapes", kSmoke, "--graph", "--hot", "--min-samples", "5"});
    EXPECT_TRUE(h.options.timing.graph);
    EXPECT_FALSE(h.options.timing.cold);
    EXPECT_EQ(h.options.timing.min_samples, 5);
  }
  // Commands that do not time, and the gate (its baselines are stream-launch times), refuse it.
  const std::string ci = std::string(SWIGLU_SOURCE_DIR) + "/configs/ci.yaml";
  EXPECT_EQ(parse({"check", "--batch", "8", "--in", "8", "--hidden", "8", "--graph"}).exit_code, 3);
  EXPECT_EQ(parse({"memory", "--batch", "8", "--in", "8", "--hidden", "8", "--graph"}).exit_code, 3);
  EXPECT_EQ(parse({"gate", "--shapes", ci, "--graph"}).exit_code, 3);
}

TEST(Cli, GradientHelpExitsZero) {
  for (const char* sub : {"backward", "step", "memory"}) {
    const Command c = parse({sub, "--help"});
    EXPECT_EQ(c.kind, Command::Kind::exit) << sub;
    EXPECT_EQ(c.exit_code, 0) << sub;
  }
}

TEST(Cli, InlineSweepRunsBatchOutermost) {
  const Command c = parse({"check", "--batch", "1,2", "--in", "8", "--hidden", "16,32", "--dtype",
                           "fp32,bf16"});
  ASSERT_EQ(c.kind, Command::Kind::check);
  ASSERT_EQ(c.cases.size(), 8u);
  const auto starts = [&c](size_t i, const std::string& head) {
    return describe(c.cases[i]).rfind(head, 0) == 0;
  };
  EXPECT_TRUE(starts(0, "B=1 I=8 D=16 dtype=fp32")) << describe(c.cases[0]);
  EXPECT_TRUE(starts(1, "B=1 I=8 D=16 dtype=bf16")) << describe(c.cases[1]);
  EXPECT_TRUE(starts(2, "B=1 I=8 D=32 dtype=fp32")) << describe(c.cases[2]);
  EXPECT_TRUE(starts(7, "B=2 I=8 D=32 dtype=bf16")) << describe(c.cases[7]);
  EXPECT_EQ(c.cases[0].origin, "command line");
}

TEST(Cli, MaxCasesCapsTheProductBeforeItIsMade) {
  const std::vector<std::string> twelve = {"check", "--batch", "1:6:1", "--in", "8", "--hidden",
                                           "16,32"};
  EXPECT_EQ(parse(twelve).cases.size(), 12u);  // under the default cap
  std::vector<std::string> args = twelve;
  args.insert(args.end(), {"--max-cases", "12"});
  EXPECT_EQ(parse(args).cases.size(), 12u);
  args.back() = "11";
  EXPECT_EQ(parse(args).exit_code, 3);
  // The options multiply the config's cases, counted before repeats are dropped: mnist's 96 × 2.
  EXPECT_EQ(parse({"check", "--shapes", kMnist, "--batch", "1,2", "--max-cases", "192"}).kind,
            Command::Kind::check);
  EXPECT_EQ(parse({"check", "--shapes", kMnist, "--batch", "1,2", "--max-cases", "191"}).exit_code,
            3);
  // The --shapes files themselves.
  EXPECT_EQ(parse({"check", "--shapes", kMnist, "--max-cases", "95"}).exit_code, 3);
}

TEST(Cli, ValuesAtTheirCapsAreTaken) {
  const Command c = parse({"check", "--batch", "2147483647", "--in", "2147483647", "--hidden",
                           "2147483647", "--x-stride-pad", "2147483647", "--seed",
                           "18446744073709551615", "--device", "0"});
  ASSERT_EQ(c.kind, Command::Kind::check);
  ASSERT_EQ(c.cases.size(), 1u);
  EXPECT_EQ(c.cases[0].problem.ldx, int64_t{4294967294});
  EXPECT_EQ(c.options.seed, UINT64_MAX);
  const Command t = parse({"train", "--variant", "cublas1,fused", "--seed", "7"});
  ASSERT_EQ(t.kind, Command::Kind::train);
  EXPECT_EQ(t.train.variants.size(), 2u);
  EXPECT_EQ(t.train.seed, 7u);
}

TEST(Cli, BadUsageExitsThree) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                                        // no subcommand
      {"bogus"},                                                 // unknown subcommand
      {"forward"},                                               // nothing to run
      {"forward", "--batch", "8", "--in", "8"},                  // --hidden missing
      {"forward", "--batch", "0", "--in", "8", "--hidden", "8"}, // size 0
      {"forward", "--batch", "8x", "--in", "8", "--hidden", "8"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--dtype", "int8"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--layout", "colmajor"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--bias", "maybe"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--variants", "triton"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--tiles", "sm80:1x2"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--math", "fp8"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--math", "tf32x3"},  // it is 3xtf32
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--reference", "cuda"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--min-samples", "10",
       "--max-samples", "5"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--hot", "--cold"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--warmup", "-1"},
      {"forward", "--shapes", "no/such/file.yaml"},
      {"forward", "--shapes", std::string(SWIGLU_SOURCE_DIR) + "/tests/data/bad_unknown_key.yaml"},
      {"check", "--shapes", kSmoke, "--shapes", kSmoke},          // every case twice
      {"check", "--batch", "8", "--in", "8", "--hidden", "8", "--warmup", "3"},  // not a check option
      {"backward"},                                                             // nothing to run
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", "dz"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", ""},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", "dx,,dw"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--policy", "keep"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--policy", "save,fast"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--gate-placement", "middle"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--gate-placement", "epilogue,,prologue"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--dx-tiles", "sm80:1x2"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--dw-tiles", "biggest"},
      {"backward", "--batch", "8", "--in", "8", "--hidden", "8", "--variants", "fused-save"},
      {"step", "--batch", "8", "--in", "8", "--hidden", "8", "--policy", "both"},
      {"memory", "--batch", "8", "--in", "8", "--hidden", "8", "--grads", "db"},
      // Values that used to be taken without a word.
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--min-time", "nan"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--min-time", "inf"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--max-noise", "nan"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--seed", "-1"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--seed", "18446744073709551616"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--tiles", ""},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--dtype", ""},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--variants", ""},
      {"forward", "--batch", "", "--in", "8", "--hidden", "8"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--device", "-1"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--min-samples", "0"},
      {"forward", "--batch", "8", "--in", "2147483648", "--hidden", "8"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--x-stride-pad",
       "9223372036854775807"},
      {"forward", "--batch", "8", "--in", "8", "--hidden", "8", "--x-stride-pad", "2147483648"},
      {"check", "--batch", "8", "--in", "8", "--hidden", "8", "--max-cases", "0"},
      {"check", "--batch", "1:1000:1", "--in", "8", "--hidden", "1:101:1"},  // 101000 cases
      {"check", "--shapes", kMnist, "--batch", "1:1100:1"},                  // 96 × 1100
      {"info", "--device", "-1"},
      {"train", "--variant", "fused,fused"},
      {"train", "--seed", "-1"},
      {"train", "--device", "-1"},
      {"compare", "--baseline", "a.json", "--current", kMnist, "--floor", "nan"},
      {"--frobnicate"},
      {"frobnicate", "--batch", "8"},
  };
  for (const auto& args : bad) {
    const Command c = parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(c.kind, Command::Kind::exit) << joined;
    EXPECT_EQ(c.exit_code, 3) << joined;
  }
}

}  // namespace
}  // namespace swiglu::bench
