// swiglubench's command line: subcommands, options, and the cases they resolve to.
#include "bench/cli.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "bench/cli_values.hpp"
#include "bench/sweeps.hpp"
#include "common/exit_codes.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

using common::Json;
using common::kExitOk;
using common::kExitError;
namespace {

Command exit_with(int code) {
  Command c;
  c.kind = Command::Kind::exit;
  c.exit_code = code;
  return c;
}

// Options shared by the case-running commands; an unset optional: the option was not given
// (so `--tiles ""` is an empty list, an error, not a missing option).
struct CaseOptions {
  std::vector<std::string> shapes;
  std::optional<std::string> batch, in, hidden, dtype, layout, bias, variants, tiles, math;
  std::optional<int64_t> x_stride_pad;
  int64_t max_cases = static_cast<int64_t>(kDefaultMaxCases);
};

// Range checks that read as people write ranges ("must be ≥ 1, got 0"; print_usage_error() puts
// the option's name in front) and that refuse nan and inf.
// Why: CLI11's PositiveNumber and Range print bounds of 309 digits, and every comparison with nan
// is false, so they let it through. `desc` is what --help shows after the type.
CLI::Validator integer_in(int64_t lo, int64_t hi, std::string desc) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size()) {
          return hi == std::numeric_limits<int64_t>::max()
                     ? fmt::format("must be an integer ≥ {}, got '{}'", lo, text)
                     : fmt::format("must be an integer from {} to {}, got '{}'", lo, hi, text);
        }
        if (v < lo) return fmt::format("must be ≥ {}, got {}", lo, text);
        if (v > hi) return fmt::format("must be ≤ {}, got {}", hi, text);
        return std::string();
      },
      std::move(desc));
}

// Any uint64_t; CLI11 itself reads "-1" as 2^64 - 1 and saturates what is larger.
CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size()) {
          return fmt::format("must be an integer from 0 to {}, got '{}'",
                             std::numeric_limits<uint64_t>::max(), text);
        }
        return std::string();
      },
      "");
}

// Whether a range includes its end.
enum class End { closed, open };

// A finite number from lo to hi, either end open or closed; hi = infinity: no upper bound.
CLI::Validator number_in(double lo, End lo_end, double hi, End hi_end, std::string desc) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return fmt::format("must be a number, got '{}'", text);
        } catch (const std::exception&) {
          return fmt::format("must be a number, got '{}'", text);
        }
        if (!std::isfinite(v)) return fmt::format("must be a finite number, got {}", text);
        if (lo_end == End::open ? !(v > lo) : !(v >= lo)) {
          return fmt::format("must be {} {}, got {}", lo_end == End::open ? ">" : "≥", lo, text);
        }
        if (hi_end == End::open ? !(v < hi) : !(v <= hi)) {
          return fmt::format("must be {} {}, got {}", hi_end == End::open ? "<" : "≤", hi, text);
        }
        return std::string();
      },
      std::move(desc));
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

CLI::Validator device_index() { return integer_in(0, kIntMax, "NONNEGATIVE"); }
CLI::Validator nonnegative_number() {
  return number_in(0, End::closed, kInf, End::closed, "NONNEGATIVE");
}
CLI::Validator positive_number() { return number_in(0, End::open, kInf, End::closed, "POSITIVE"); }

struct Measure {
  TimingOptions timing;
  bool hot = false;
  bool cold = false;
};

constexpr const char* kForwardTilesHelp =
    "fused tile configs: auto (heuristic), all (the block sweep) or names like "
    "sm80:128x64x32s4w4; `swiglubench info` lists them [default: auto]";
constexpr const char* kGradientTilesHelp =
    "fused forward tiles: the forward of step and memory and of fused-save's saved H, and the "
    "recompute GEMM of fused-recompute: auto (heuristic), all or names [default: auto]";
constexpr const char* kForwardVariantsHelp = "fused, cublas2, cublas1 as a comma list [default: all]";
constexpr const char* kGradientVariantsHelp =
    "fused (one variant per --policy: fused-save, fused-recompute), cublas2, cublas1 as a comma "
    "list [default: all]";

void add_case_options(CLI::App* cmd, CaseOptions& c, bool gradient) {
  cmd->add_option("--shapes", c.shapes,
                  "YAML sweep config (repeatable; a regular file of at most 1 MiB); see configs/ "
                  "and README")
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch", c.batch, "batch sizes B: N, a,b,c, a:b:step or pow2:a:b");
  cmd->add_option("--in", c.in, "in-features I (same forms as --batch)");
  cmd->add_option("--hidden", c.hidden, "hidden size D (same forms as --batch)");
  cmd->add_option("--dtype", c.dtype,
                  gradient ? "fp32, fp16, bf16, fp8 (e4m3 operands with block scales, the blockwise recipe's "
                             "backward: fused-save only, Hopper, D a multiple of 16; see docs/swiglubench.md) or "
                             "a comma list [default: bf16]"
                           : "fp32, fp16, bf16, fp8 (e4m3 operands with block scales: see docs/swiglubench.md) "
                             "or a comma list [default: bf16]");
  cmd->add_option("--layout", c.layout, "linear (nn.Linear W12, 2D×I) or packed (Wf, I×2D) [default: linear]");
  cmd->add_option("--bias", c.bias, "true, false or true,false [default: false]");
  cmd->add_option("--variants", c.variants, gradient ? kGradientVariantsHelp : kForwardVariantsHelp);
  cmd->add_option("--tiles", c.tiles, gradient ? kGradientTilesHelp : kForwardTilesHelp);
  cmd->add_option("--math", c.math, "fp32 arithmetic: exact, tf32, 3xtf32 or a comma list (applies to the baselines too; their 3xtf32 is exact fp32) [default: exact]");
  cmd->add_option("--x-stride-pad", c.x_stride_pad,
                  fmt::format("extra elements per X row (ldx = I + pad), 0 to {}", kMaxStridePad))
      ->check(integer_in(0, kMaxStridePad, ""));
  cmd->add_option("--max-cases", c.max_cases,
                  "the most cases the --shapes files and the options may expand to, counted "
                  "before anything is expanded (and before repeated cases are dropped)")
      ->capture_default_str()
      ->check(integer_in(1, std::numeric_limits<int64_t>::max(), "POSITIVE"));
}

void add_run_options(CLI::App* cmd, RunOptions& o, std::string& reference) {
  cmd->add_option("--seed", o.seed, "seed of the random inputs")->capture_default_str()
      ->check(unsigned_integer());
  cmd->add_option("--device", o.device, "CUDA device index")->capture_default_str()
      ->check(device_index());
  cmd->add_option("--out", o.out_dir, "directory for CSV/JSON/MD results [default: results/<gpu>]");
  cmd->add_option("--reference", reference,
                  "auto (fp64 CPU for B·I·2D <= 2^31, else fp32-accumulating cuBLAS), cpu or gpu")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}))
      ->capture_default_str();
}

// Options of the gradient commands (backward, step, memory), as given.
struct GradientWords {
  std::string grads = "dx,dw";
  std::string policy = "save,recompute";
  std::string placement = "auto";
  std::string dh;  // empty: the command's default
  std::string dx_tiles = "auto", dw_tiles = "auto";
  std::string max_workspace_mib = "0";
};

void add_gradient_options(CLI::App* cmd, GradientWords& g) {
  cmd->add_option("--grads", g.grads,
                  "gradients to compute: dx, dw or dx,dw (dbias comes with dw when --bias)")
      ->capture_default_str();
  cmd->add_option("--policy", g.policy,
                  "where fused's G and U come from: save (forward keeps H), recompute, or both")
      ->capture_default_str();
  cmd->add_option("--gate-placement", g.placement,
                  "fused-recompute's gate backward: auto, epilogue (of the recompute GEMM), "
                  "prologue (of the dX GEMM) or a comma list (prologue runs as "
                  "fused-recompute-prologue); fused-save always uses the prologue, except where the GEMMs "
                  "read dH as stored (Hopper's sm90 GEMMs, the gemv ones and fp32's SIMT ones), which a "
                  "separate gate-backward pass writes first")
      ->capture_default_str();
  cmd->add_option("--dh", g.dh,
                  "where fused-save's backward stores dH: workspace (fused-save), inplace "
                  "(fused-save-inplace: over the saved H, which the backward consumes, as the PyTorch "
                  "package does; no workspace for dH) or a comma list [default: workspace; memory: "
                  "workspace,inplace]");
  cmd->add_option("--dx-tiles", g.dx_tiles, "tiles of the fused dX GEMM: auto, all or names")
      ->capture_default_str();
  cmd->add_option("--dw-tiles", g.dw_tiles, "tiles of the fused dW GEMM: auto, all or names")
      ->capture_default_str();
  cmd->add_option("--max-workspace-mib", g.max_workspace_mib,
                  "bounds on the fused backward's workspace in MiB (N, a,b,c, a:b:step or pow2:a:b, each "
                  "in [0, 2^30]), one set of fused rows each, timed in the same rounds "
                  "(BackwardOptions::max_workspace_bytes; 0: none): above one the backward runs in row "
                  "chunks, shown as max-ws=NMiB chunks=K in the tile column")
      ->capture_default_str();
}

// split_words with the option's name in its error message.
std::vector<std::string> option_words(const std::string& text, const char* option) {
  try {
    return split_words(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(option) + ": " + e.what());
  }
}

// gate --ops: forward, backward and step, each once, in the order given.
std::vector<Op> gate_op_words(const std::string& text) {
  std::vector<Op> ops;
  for (const auto& word : option_words(text, "--ops")) {
    Op op;
    if (word == "forward") op = Op::forward;
    else if (word == "backward") op = Op::backward;
    else if (word == "step") op = Op::step;
    else throw std::invalid_argument("--ops: '" + word + "' is not forward, backward or step");
    if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
  }
  if (ops.empty()) throw std::invalid_argument("--ops: no op given (forward, backward or step)");
  return ops;
}

// --grads: dx, dw or both.
Grads grads_option(const std::string& text) {
  Grads g;
  g.dx = g.dw = false;
  for (const auto& word : option_words(text, "--grads")) {
    if (word == "dx") g.dx = true;
    else if (word == "dw") g.dw = true;
    else throw std::invalid_argument("--grads: '" + word + "' is not dx or dw");
  }
  return g;
}

std::vector<TileChoice> tile_words(const std::string& text, const char* option) {
  const std::vector<std::string> words = option_words(text, option);
  if (words.size() > kMaxTileNames)
    throw std::invalid_argument(fmt::format("{}: more than {} tile names ('all' runs every "
                                            "compiled tile)", option, kMaxTileNames));
  std::vector<TileChoice> tiles;
  for (const auto& w : words) {
    const std::optional<TileChoice> t = TileChoice::parse(w);
    if (!t)
      throw std::invalid_argument(std::string(option) + ": '" + w +
                                  "' is not auto, all or a tile name like sm80:128x64x32s4w4");
    tiles.push_back(*t);
  }
  return tiles;
}

GradientOptions resolve_gradient(const GradientWords& w, Op op) {
  GradientOptions g;
  g.save_dh.clear();
  const std::string dh = w.dh.empty() ? (op == Op::memory ? "workspace,inplace" : "workspace") : w.dh;
  for (const auto& word : option_words(dh, "--dh")) {
    if (word != "workspace" && word != "inplace")
      throw std::invalid_argument("--dh: '" + word + "' is not workspace or inplace");
    const DhStorage d = word == "workspace" ? DhStorage::workspace : DhStorage::tensors;
    if (std::find(g.save_dh.begin(), g.save_dh.end(), d) == g.save_dh.end()) g.save_dh.push_back(d);
  }
  g.grads = grads_option(w.grads);
  g.policies.clear();
  for (const auto& word : option_words(w.policy, "--policy")) {
    const auto p = parse_policy(word);
    if (!p) throw std::invalid_argument("--policy: '" + word + "' is not save or recompute");
    g.policies.push_back(*p);
  }
  g.placements.clear();
  for (const auto& word : option_words(w.placement, "--gate-placement")) {
    const auto placement = parse_gate_placement(word);
    if (!placement)
      throw std::invalid_argument("--gate-placement: '" + word + "' is not auto, epilogue or prologue");
    // auto is the epilogue for recompute; a list naming both runs it once.
    const GatePlacement eff =
        *placement == GatePlacement::prologue ? GatePlacement::prologue : GatePlacement::epilogue;
    if (std::find(g.placements.begin(), g.placements.end(), eff) == g.placements.end())
      g.placements.push_back(eff);
  }
  g.dx_tiles = tile_words(w.dx_tiles, "--dx-tiles");
  g.dw_tiles = tile_words(w.dw_tiles, "--dw-tiles");
  g.max_workspace_bytes.clear();
  try {
    for (const int64_t mib : parse_int_list(w.max_workspace_mib, 0, int64_t{1} << 30))
      g.max_workspace_bytes.push_back(static_cast<size_t>(mib) << 20);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("--max-workspace-mib: {}", e.what()));
  }
  return g;
}

// Why: the FP8 backward has one fused mode (fused-save, dH in its workspace). When every case is
// FP8 and lists fused, options that leave it no such mode would only write SKIP rows; they are
// refused instead. (In a mixed sweep the FP8 rows of another mode are SKIP with the reason.)
void check_fp8_gradient_options(const std::vector<Case>& cases, const GradientOptions& g) {
  const bool all_fp8_fused = !cases.empty() && std::all_of(cases.begin(), cases.end(), [](const Case& c) {
    return c.problem.dtype == DType::e4m3 &&
           std::find(c.variants.begin(), c.variants.end(), Variant::fused) != c.variants.end();
  });
  if (!all_fp8_fused) return;
  if (std::find(g.policies.begin(), g.policies.end(), Policy::save) == g.policies.end())
    throw std::invalid_argument(
        "--dtype fp8 has the save policy only (the FP8 backward reads the H its forward kept): --policy must "
        "include save");
  if (std::find(g.save_dh.begin(), g.save_dh.end(), DhStorage::workspace) == g.save_dh.end())
    throw std::invalid_argument(
        "--dtype fp8 keeps dH in the backward's workspace (in e4m3, with its transposed copy): --dh must include "
        "workspace");
}

struct Formats {
  bool csv = false, json = false, md = false;
};

void add_output_flags(CLI::App* cmd, Formats& f) {
  cmd->add_flag("--csv", f.csv, "write CSV (default: CSV, JSON and MD unless any of these is given)");
  cmd->add_flag("--json", f.json, "write JSON");
  cmd->add_flag("--md", f.md, "write the markdown table file (the table is always printed)");
}

void add_measure_options(CLI::App* cmd, Measure& m, RunOptions& o) {
  cmd->add_option("--warmup", m.timing.warmup, "untimed runs of each variant")->capture_default_str()
      ->check(integer_in(0, kIntMax, "NONNEGATIVE"));
  cmd->add_option("--min-samples", m.timing.min_samples, "timed samples per variant, at least")
      ->capture_default_str()->check(integer_in(1, kIntMax, "POSITIVE"));
  cmd->add_option("--max-samples", m.timing.max_samples, "timed samples per variant, at most")
      ->capture_default_str()->check(integer_in(1, kIntMax, "POSITIVE"));
  cmd->add_option("--min-time", m.timing.min_time_s, "measured seconds per variant, at least")
      ->capture_default_str()->check(nonnegative_number());
  cmd->add_option("--max-noise", m.timing.max_noise,
                  "keep sampling while IQR/median exceeds this fraction (up to --max-samples)")
      ->capture_default_str()->check(positive_number());
  auto* cold = cmd->add_flag("--cold", m.cold, "flush L2 before every sample (default)");
  cmd->add_flag("--hot", m.hot, "do not flush L2: inputs may stay cached")->excludes(cold);
  cmd->add_flag("--profile", o.profile,
                "after the parity check run each variant once inside cudaProfilerStart/Stop "
                "(for ncu --profile-from-start off / nsys --capture-range=cudaProfilerApi); no timing");
}

// forward, backward and step (not gate, whose baselines are stream-launch times).
void add_graph_flag(CLI::App* cmd, Measure& m) {
  cmd->add_flag("--graph", m.timing.graph,
                "time CUDA-graph replays: after its parity check, each variant's timed work (one "
                "call: the fused launch(es) or the cuBLAS GEMMs + gate; for step, forward + "
                "backward) is captured once into a CUDA graph, one replay of it is checked "
                "against the reference on poisoned outputs, and every sample times one "
                "cudaGraphLaunch (the L2 flush stays outside the graph): times without launch "
                "overhead. A variant that cannot be captured is a SKIP row with the reason. Rows "
                "record cuda_graph=true");
}

// The words of an option's value, each parsed by `parse` (a std::optional) or refused with
// "--dtype: 'int8' is not fp32, fp16 or bf16"; an option not given: no words.
template <typename Parse>
auto option_values(const std::optional<std::string>& text, const char* option, Parse parse,
                   const char* expected) {
  std::vector<typename std::invoke_result_t<Parse, std::string>::value_type> values;
  if (!text) return values;
  for (const auto& w : option_words(*text, option)) {
    const auto v = parse(w);
    if (!v) throw std::invalid_argument(fmt::format("{}: '{}' is not {}", option, w, expected));
    values.push_back(*v);
  }
  return values;
}

std::vector<int64_t> option_sizes(const std::optional<std::string>& text, const char* option) {
  if (!text) return {};
  try {
    return parse_int_list(*text, 1, kMaxDim);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("{}: {}", option, e.what()));
  }
}

// The case options as given, parsed; the first bad word throws std::invalid_argument naming its
// option.
CaseOverrides case_overrides(const CaseOptions& c) {
  CaseOverrides o;
  o.shapes = c.shapes;
  o.batch = option_sizes(c.batch, "--batch");
  o.in = option_sizes(c.in, "--in");
  o.hidden = option_sizes(c.hidden, "--hidden");
  o.dtype = option_values(c.dtype, "--dtype", parse_dtype, "fp32, fp16, bf16 or fp8");
  o.layout = option_values(c.layout, "--layout", parse_layout, "linear or packed");
  o.bias = option_values(
      c.bias, "--bias",
      [](const std::string& w) -> std::optional<bool> {
        if (w == "true" || w == "on" || w == "yes" || w == "1") return true;
        if (w == "false" || w == "off" || w == "no" || w == "0") return false;
        return std::nullopt;
      },
      "true or false");
  o.math = option_values(c.math, "--math", parse_math, "exact, tf32 or 3xtf32");
  o.x_stride_pad = c.x_stride_pad;
  o.variants = option_values(c.variants, "--variants", parse_variant, "fused, cublas2 or cublas1");
  if (c.tiles) o.tiles = tile_words(*c.tiles, "--tiles");
  o.max_cases = static_cast<size_t>(c.max_cases);
  return o;
}

// The options of one case-running subcommand (check, forward, gate, backward, step, memory).
struct RunCommand {
  // What each one is, in the order --help lists them.
  struct Spec {
    const char* name;
    Command::Kind kind;
    Op op;
    bool timed, gradient;
    const char* help;
  };
  static constexpr Spec kSpecs[] = {
      {"check", Command::Kind::check, Op::check, false, false,
       "parity only: every variant against the reference"},
      {"forward", Command::Kind::forward, Op::forward, true, false,
       "parity, then timing of the fused forward against the cuBLAS baselines"},
      {"gate", Command::Kind::regression, Op::forward, true, false,
       "the regression gate: run the cases (as forward and step; --ops), compare them with a "
       "baseline result file, re-measure SLOW and AMBG cases, exit 0/1/2/3"},
      {"backward", Command::Kind::backward, Op::backward, true, true,
       "parity, then timing of the backward (dX, dW, dbias from dZ) of the fused variants "
       "(fused-save, fused-recompute) against the cuBLAS baselines' backward; each variant's "
       "saved activations are produced once, outside the timing"},
      {"step", Command::Kind::step, Op::step, true, true,
       "parity (Z and the gradients), then timing of forward + backward as one unit, fused "
       "variants against the cuBLAS baselines"},
      {"memory", Command::Kind::memory, Op::memory, false, true,
       "device memory per variant, measured with cudaMemGetInfo (2 MiB granularity): the "
       "activations kept between forward and backward, and the backward's workspace; each "
       "variant also runs forward + backward once and is parity-checked; no timing"},
  };

  const Spec* spec = nullptr;
  CLI::App* app = nullptr;
  CaseOptions cases;
  RunOptions run;
  std::string reference = "auto";
  Measure measure;
  Formats formats;
  GradientWords gradient_words;
};

void add_compare_options(CLI::App* cmd, CompareOptions& c) {
  cmd->add_option("--floor", c.floor, "smallest tolerance on a speedup ratio")
      ->capture_default_str()->check(nonnegative_number());
  cmd->add_option("--k", c.k, "tolerance = max(floor, k × combined relative noise)")
      ->capture_default_str()->check(nonnegative_number());
  cmd->add_option("--abs-floor", c.abs_floor,
                  "smallest tolerance on the fused kernel's absolute median (looser than --floor)")
      ->capture_default_str()->check(nonnegative_number());
  cmd->add_option("--max-tolerance", c.max_tolerance,
                  "a case whose tolerance would exceed this is AMBG (too noisy to tell)")
      ->capture_default_str()->check(positive_number());
  cmd->add_option("--against", c.reference, "the speedup compared: over cublas2 or cublas1")
      ->capture_default_str()->check(CLI::IsMember({"cublas2", "cublas1"}));
  cmd->add_flag("--allow-missing", c.allow_missing,
                "a baseline case absent from the current run is not a failure");
}

// `swiglubench train`: the options as given, resolved into TrainOptions after parsing.
struct TrainWords {
  std::string variant = "fused,cublas2";
  std::string policy = "save";
  std::string grads = "dx,dw";
  std::string dtype = "bf16";
  std::string optimizer = "sgd";
  bool csv = false, json = false;
};

void add_train_options(CLI::App* cmd, train::TrainOptions& o, TrainWords& w,
                       std::optional<double>& lr, std::optional<double>& wd,
                       std::optional<double>& tol) {
  cmd->add_option("--data", o.data_dir,
                  "directory with the Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, "
                  "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                  "t10k-labels-idx1-ubyte.gz; gzip or plain), as the Debian/Ubuntu package "
                  "dataset-fashion-mnist installs them")
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "epochs, >= 1")->capture_default_str()
      ->check(integer_in(1, 1000000, "in [1, 1000000]"));
  cmd->add_option("--batch", o.batch, "batch size, >= 1 (an epoch's last batch may be partial)")
      ->capture_default_str()->check(integer_in(1, int64_t{1} << 20, "in [1, 2^20]"));
  cmd->add_option("--hidden", o.hidden, "SwiGLU hidden size D, >= 1")->capture_default_str()
      ->check(integer_in(1, int64_t{1} << 16, "in [1, 2^16]"));
  cmd->add_option("--lr", lr, "learning rate, > 0 [default: 0.01 for sgd, 0.001 for adamw]")
      ->check(number_in(0, End::open, 1e6, End::closed, "POSITIVE"));
  cmd->add_option("--seed", o.seed, "seed of the initial weights and of the batch order")
      ->capture_default_str()->check(unsigned_integer());
  cmd->add_option("--variant", w.variant,
                  "the SwiGLU layer: fused, cublas2 (two cuBLASLt GEMMs + gate), cublas1, or a "
                  "comma list, trained side by side from the same seed, whose per-step losses "
                  "must agree (the first is the reference)")
      ->capture_default_str();
  cmd->add_option("--policy", w.policy,
                  "the fused layer's activations for the backward: save (the forward keeps "
                  "H = [G | U]) or recompute")
      ->capture_default_str()->check(CLI::IsMember({"save", "recompute"}));
  cmd->add_option("--grads", w.grads,
                  "the SwiGLU layer's gradients: dx,dw (training), dx (frozen SwiGLU weights, dX "
                  "only; the output layer still trains) or dw (weights only: the input needs no dX)")
      ->capture_default_str();
  cmd->add_option("--dtype", w.dtype,
                  "compute dtype of the forward and backward: fp32, fp16 or bf16 (master weights "
                  "and the optimizer stay fp32); fp8: the SwiGLU layer in FP8 (e4m3, the blockwise "
                  "recipe, forward and backward; Hopper, the save policy, hidden a multiple of 16) "
                  "in the fused variant, which must be listed; the rest of the model, and the "
                  "cuBLASLt variants' layer (the bf16 reference), in bf16")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "fp16", "bf16", "fp8"}));
  cmd->add_option("--optimizer", w.optimizer, "sgd (with momentum) or adamw")
      ->capture_default_str()->check(CLI::IsMember({"sgd", "adamw"}));
  cmd->add_option("--momentum", o.momentum, "SGD momentum, in [0, 1)")->capture_default_str()
      ->check(number_in(0, End::closed, 1, End::open, "in [0, 1)"));
  cmd->add_option("--weight-decay", wd,
                  "weight decay, >= 0 (AdamW: decoupled) [default: 0 for sgd, 0.01 for adamw]")
      ->check(number_in(0, End::closed, 1e6, End::closed, "NONNEGATIVE"));
  cmd->add_option("--agree-tol", tol,
                  "largest |per-step training loss difference| between variants that counts as "
                  "agreement [default: by dtype and optimizer, see TESTING.md]")
      ->check(number_in(0, End::open, 1e6, End::closed, "POSITIVE"));
  cmd->add_option("--max-steps", o.max_steps,
                  "training steps per epoch, at most (0: the whole training split)")
      ->capture_default_str()
      ->check(integer_in(0, std::numeric_limits<int64_t>::max(), "NONNEGATIVE"));
  cmd->add_option("--device", o.device, "CUDA device index")->capture_default_str()
      ->check(device_index());
  cmd->add_option("--out", o.out_dir, "directory for the CSV and JSON results [default: results/<gpu>]");
  cmd->add_option("--name", o.name,
                  "file stem of the results [default: "
                  "train_<dtype>_b<batch>_d<hidden>_<grads>_<policy>_<optimizer>]");
  cmd->add_flag("--csv", w.csv, "write CSV (default: CSV and JSON unless either is given)");
  cmd->add_flag("--json", w.json, "write JSON");
}

void resolve_train(const TrainWords& w, train::TrainOptions& o) {
  o.variants.clear();
  // Why: a repeat is refused, not dropped: "fused,fused" would train one variant and check no
  // agreement at all.
  std::vector<std::string> variant_words;
  try {
    variant_words = split_distinct_words(w.variant);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--variant: ") + e.what());
  }
  for (const auto& word : variant_words) {
    const auto v = parse_variant(word);
    if (!v) throw std::invalid_argument("--variant: '" + word + "' is not fused, cublas2 or cublas1");
    o.variants.push_back(*v);
  }
  o.policy = *parse_policy(w.policy);
  o.grads = grads_option(w.grads);
  o.dtype = *parse_dtype(w.dtype);
  if (o.dtype == DType::e4m3) {
    // Why: FP8 is the fused layer's; a cuBLASLt variant beside it trains the same model in bf16
    // (train::layer_dtype), the reference the FP8 run's losses are held to.
    if (std::find(o.variants.begin(), o.variants.end(), train::LayerVariant::fused) == o.variants.end())
      throw std::invalid_argument("--dtype fp8 runs the fused layer in FP8: --variant must include fused");
    if (o.policy != Policy::save)
      throw std::invalid_argument("--dtype fp8 has the save policy only (the FP8 backward reads the forward's H)");
    if (o.hidden % 16 != 0)
      throw std::invalid_argument("--dtype fp8 needs --hidden to be a multiple of 16, got " + std::to_string(o.hidden));
  }
  o.optimizer = *train::parse_optimizer(w.optimizer);
  if (w.csv || w.json) {
    o.write_csv = w.csv;
    o.write_json = w.json;
  }
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

// The message for a first word that is neither a subcommand nor --help/--version, else "".
// Why: CLI11 says only "A subcommand is required" for `swiglubench frobnicate` and for
// `swiglubench --frobnicate`.
std::string unknown_first_word(const CLI::App& app, int argc, const char* const* argv) {
  const std::vector<std::string> names = subcommand_names(app);
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  if (argc < 2) {
    return fmt::format("no subcommand given; the subcommands are {} (see --help)", list);
  }
  const std::string first = argv[1];
  if (std::find(names.begin(), names.end(), first) != names.end()) return "";
  for (const char* flag : {"-h", "--help", "--help-all", "--version"})
    if (first == flag) return "";
  if (!first.empty() && first[0] == '-') {
    return fmt::format("unknown option '{}'; options come after a subcommand: {} (see --help)",
                       first, list);
  }
  return fmt::format("unknown subcommand '{}'; the subcommands are {} (see --help)", first, list);
}

// CLI11's errors in the tool's style: "error: ..." on stderr, and where to find the options.
void print_usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string message = e.what();
  // Our validators' messages start "must be", after CLI11's "--min-samples: ".
  if (const size_t at = message.find(": must be"); at != std::string::npos && message[0] == '-')
    message.erase(at, 1);
  std::string command = "swiglubench";
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* a) { return a->parsed(); }))
    command += " " + sub->get_name();
  std::fprintf(stderr, "error: %s\n(%s --help lists the options)\n", message.c_str(),
               command.c_str());
}

}  // namespace

Command parse_command_line(int argc, const char* const* argv) {
  CLI::App app{"swiglubench: parity-checked benchmarks of the fused SwiGLU forward and backward\n"
               "  Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)\n"
               "against cuBLAS (two GEMMs + gate, or one packed GEMM + gate).\n"
               "Exit codes: 0 ok, 1 performance regression (compare, gate), 2 parity failure\n"
               "(train: the variants' losses disagree, or a loss is not finite), 3 usage/config/\n"
               "data/device error or mismatched results, 130 interrupted."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("swiglubench ") + SWIGLU_VERSION);

  int info_device = 0;
  CLI::App* info = app.add_subcommand("info", "device, SM count, L2, clocks, driver/runtime/cuBLAS versions and compiled tiles");
  info->add_option("--device", info_device, "CUDA device index")->capture_default_str()
      ->check(device_index());

  // Why an array: CLI11 keeps pointers to each command's option fields.
  std::array<RunCommand, std::size(RunCommand::kSpecs)> run_commands;
  for (size_t i = 0; i < run_commands.size(); ++i) {
    RunCommand& rc = run_commands[i];
    rc.spec = &RunCommand::kSpecs[i];
    rc.app = app.add_subcommand(rc.spec->name, rc.spec->help);
    add_case_options(rc.app, rc.cases, rc.spec->gradient);
    add_run_options(rc.app, rc.run, rc.reference);
    if (rc.spec->timed) add_measure_options(rc.app, rc.measure, rc.run);
    if (rc.spec->timed && rc.spec->kind != Command::Kind::regression)
      add_graph_flag(rc.app, rc.measure);
    if (rc.spec->gradient) add_gradient_options(rc.app, rc.gradient_words);
    add_output_flags(rc.app, rc.formats);
  }
  RunCommand& regression =
      *std::find_if(run_commands.begin(), run_commands.end(), [](const RunCommand& rc) {
        return rc.spec->kind == Command::Kind::regression;
      });
  RegressionOptions regression_opts;
  regression.app->add_option("--baseline", regression_opts.baseline,
                       "baseline result file [default: results/<gpu>/baseline.json]");
  regression.app
      ->add_option("--retries", regression_opts.retries, "re-measurements of SLOW/AMBG cases")
      ->capture_default_str()->check(integer_in(0, kIntMax, "NONNEGATIVE"));
  regression.app->add_flag("--update-baseline", regression_opts.update_baseline,
                     "record this run as the baseline instead of comparing");
  add_compare_options(regression.app, regression_opts.compare);
  std::string gate_ops = "forward,step";
  regression.app
      ->add_option("--ops", gate_ops,
                   "what the cases run as, compared as one file: forward, backward, step or a comma "
                   "list; the gradient ops with their defaults (--grads dx,dw, --policy save,recompute)")
      ->capture_default_str();

  std::string cmp_base, cmp_cur;
  CompareOptions cmp_opts;
  bool cmp_update = false;
  CLI::App* cmp = app.add_subcommand(
      "compare", "compare two result files: speedups per case within each run, SAME/FAST/SLOW/"
                 "AMBG/MISSING, geomean; exit 0 pass, 1 regression, 2 parity failure, 3 mismatch");
  cmp->add_option("--baseline", cmp_base, "the baseline result file (JSON)")->required();
  cmp->add_option("--current", cmp_cur, "the current result file (JSON)")->required()
      ->check(CLI::ExistingFile);
  cmp->add_flag("--update-baseline", cmp_update, "rewrite the baseline from the current file");
  add_compare_options(cmp, cmp_opts);

  train::TrainOptions train_opts;
  TrainWords train_words;
  std::optional<double> train_lr, train_wd, train_tol;
  CLI::App* tr = app.add_subcommand(
      "train",
      "end-to-end training on Fashion-MNIST of 784 -> SwiGLU(hidden) -> Linear(10) with softmax "
      "cross-entropy, all on the GPU: per epoch the training loss, test accuracy, time (CUDA "
      "events), images/s and inference time for each --variant; two or more variants start "
      "from the same weights and batch order, and their per-step losses must agree (exit 2 "
      "otherwise)");
  add_train_options(tr, train_opts, train_words, train_lr, train_wd, train_tol);

  if (const std::string unknown = unknown_first_word(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "error: %s\n", unknown.c_str());
    return exit_with(kExitError);
  }
  Command cmd;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(e);  // --help, --help-all, --version
      return exit_with(kExitOk);
    }
    print_usage_error(app, e);
    return exit_with(kExitError);
  }

  if (info->parsed()) {
    cmd.kind = Command::Kind::info;
    cmd.device = info_device;
    return cmd;
  }
  if (tr->parsed()) {
    try {
      resolve_train(train_words, train_opts);
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return exit_with(kExitError);
    }
    train_opts.lr = train_lr;
    train_opts.weight_decay = train_wd;
    train_opts.agree_tol = train_tol;
    train_opts.argv.assign(argv, argv + argc);
    cmd.kind = Command::Kind::train;
    cmd.train = train_opts;
    return cmd;
  }
  if (cmp->parsed()) {
    cmd.kind = Command::Kind::compare;
    cmd.baseline = cmp_base;
    cmd.current = cmp_cur;
    cmd.regression.compare = cmp_opts;
    cmd.regression.update_baseline = cmp_update;
    return cmd;
  }

  RunCommand& rc = *std::find_if(run_commands.begin(), run_commands.end(),
                                 [](const RunCommand& r) { return r.app->parsed(); });
  RunOptions& opts = rc.run;
  opts.op = rc.spec->op;
  opts.reference = rc.reference == "cpu"   ? ReferenceMode::cpu
                   : rc.reference == "gpu" ? ReferenceMode::gpu
                                           : ReferenceMode::automatic;
  opts.argv.assign(argv, argv + argc);
  cmd.kind = rc.spec->kind;
  if (rc.spec->timed) {
    opts.timing = rc.measure.timing;
    opts.timing.cold = !rc.measure.hot;
    if (opts.timing.max_samples < opts.timing.min_samples) {
      std::fprintf(stderr, "error: --max-samples (%d) is below --min-samples (%d)\n",
                   opts.timing.max_samples, opts.timing.min_samples);
      return exit_with(kExitError);
    }
  }
  if (const Formats& f = rc.formats; f.csv || f.json || f.md) {
    opts.write_csv = f.csv;
    // The gate reads its JSON back.
    opts.write_json = f.json || cmd.kind == Command::Kind::regression;
    opts.write_md = f.md;
  }

  try {
    if (rc.spec->gradient) opts.gradient = resolve_gradient(rc.gradient_words, opts.op);
    if (cmd.kind == Command::Kind::regression) {
      regression_opts.ops = gate_op_words(gate_ops);
      opts.gradient = resolve_gradient(GradientWords{}, Op::step);
    }
    ResolvedCases resolved = resolve_cases(case_overrides(rc.cases));
    if (rc.spec->gradient) check_fp8_gradient_options(resolved.cases, opts.gradient);
    cmd.cases = std::move(resolved.cases);
    opts.name = std::move(resolved.name);
    cmd.resolved = std::move(resolved.record);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_with(kExitError);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_with(kExitError);
  }
  if (cmd.cases.empty()) {
    std::fprintf(stderr, "error: no cases to run\n");
    return exit_with(kExitError);
  }
  cmd.options = opts;
  cmd.regression = regression_opts;
  return cmd;
}

}  // namespace swiglu::bench
