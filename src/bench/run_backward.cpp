// The runner behind `swiglubench backward`, `step` and `memory` (run.cpp has check and forward).
//
//   backward: each variant's saved activations are produced once (fused-save: the fused forward with
//             ForwardOptions::saved; fused-recompute: nothing; cublas2/cublas1: their forward Plan,
//             whose scratch is what they keep), the requested gradients are poisoned, the backward
//             runs once and is checked against the reference, then the backwards of the variants
//             that passed are timed, interleaved.
//   step:     forward + backward timed as one unit (fused-save: forward with saved H + backward
//             save; fused-recompute: forward + backward recompute; baselines: forward Plan +
//             BackwardPlan); Z and the gradients are checked first.
//   memory:   variant by variant, the saved activations and then the backward's workspace are
//             allocated alone between cudaMemGetInfo readings; forward + backward run once and are
//             checked; nothing is timed.
//
// --dtype fp8 runs the same steps on the FP8 recipe (run_fp8.hpp): fused-save is forward_fp8 keeping
// H, then backward_fp8 on the transposed copies of X and W12 made in the same quantiser pass;
// cublas2 and cublas1 are baselines::Fp8Plan keeping H, then baselines::Fp8BackwardPlan. The
// quantisation of X and W12 (the forward's inputs) is outside every timed unit, as in forward.
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "baselines/fp8_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/run_fp8.hpp"
#include "bench/session.hpp"
#include "common/device.hpp"
#include "common/host_data.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

using common::Json;
using common::CudaError;
using common::DeviceBuffer;
using common::kPoisonByte;
namespace {

// One variant of a case in the gradient commands.
struct GradVariant {
  std::string name;                            // fused-save | fused-recompute | cublas2 | cublas1
  std::optional<baselines::Variant> baseline;  // unset: the fused library
  BackwardOptions options;                     // fused: policy, grads, placement, tiles
  std::optional<TileConfig> forward_tile;      // fused forward; unset: the heuristic
  size_t saved_bytes = 0;                      // kept between forward and backward
  size_t workspace_bytes = 0;                  // the backward's own scratch
  size_t forward_scratch_bytes = 0;            // fp8 baselines: Fp8Plan's (Z before its quantisation, scales)
  DeviceBuffer saved, forward_scratch;
  // fp8 baselines: their backward's own workspace, not the case's shared one: create() writes W12ᵀ's
  // and Xᵀ's scale copies and dHᵀ's zero padding there, which another variant would overwrite.
  DeviceBuffer own_workspace;
  baselines::Plan forward_plan;
  baselines::BackwardPlan backward_plan;
  baselines::Fp8Plan fp8_forward_plan;
  baselines::Fp8BackwardPlan fp8_backward_plan;
  TileConfig forward_used;   // what the last fused forward ran
  BackwardTiles backward_used;
  Row row;
  bool runnable = false;  // checked and passed
};

std::string grads_name(Grads g) { return g.dx && g.dw ? "dx,dw" : g.dx ? "dx" : "dw"; }

// The kernels of the timed unit, for the row's `tile`: "recompute=... dx=... dw=..." (step and
// memory: "fwd=..." first); "cublasLt" for the baselines.
void set_tile_label(Row& r, bool with_forward) {
  if (r.variant == "cublas2" || r.variant == "cublas1") {
    r.tile = "cublasLt";
    return;
  }
  std::string label;
  const auto add = [&](const char* what, const std::string& name) {
    if (name.empty()) return;
    if (!label.empty()) label += ' ';
    label += fmt::format("{}={}", what, name);
  };
  if (with_forward) add("fwd", r.tile_forward);
  add("recompute", r.tile_recompute);
  add("dx", r.tile_dx);
  add("dw", r.tile_dw);
  r.tile = label;
}

std::string tile_name(const TileConfig& t) { return t.block_m == 0 ? std::string() : t.name(); }

// One tile of --tiles, --dx-tiles or --dw-tiles: "auto" is the heuristic (unset), a name must be
// among `compiled`. Returns false, with the reason, for a name that is not.
bool resolve_tile(const TileChoice& t, const std::vector<TileConfig>& compiled, const Problem& p,
                  const DeviceTraits& traits, const char* what, std::optional<TileConfig>* out,
                  std::string* reason) {
  if (t.kind == TileChoice::Kind::automatic) {
    out->reset();
    return true;
  }
  if (std::find(compiled.begin(), compiled.end(), t.tile) == compiled.end()) {
    *reason = fmt::format("{} tile {} is not compiled for {}/{} on sm_{}{}", what, t.word,
                          to_string(p.dtype), to_string(p.layout), traits.cc_major, traits.cc_minor);
    return false;
  }
  *out = t.tile;
  return true;
}

// "auto" and names as given, each once; "all" becomes every compiled tile.
std::vector<TileChoice> expand_tiles(const std::vector<TileChoice>& choices,
                                     const std::vector<TileConfig>& compiled) {
  std::vector<TileChoice> out;
  const auto add = [&](const TileChoice& t) {
    const auto same = [&](const TileChoice& o) { return o.word == t.word; };
    if (std::none_of(out.begin(), out.end(), same)) out.push_back(t);
  };
  for (const TileChoice& t : choices) {
    if (t.kind != TileChoice::Kind::all) {
      add(t);
      continue;
    }
    for (const TileConfig& tc : compiled) add(TileChoice::named(tc));
  }
  return out;
}

// A baseline's variant: G and U (or H) kept by its forward, a backward of its own.
GradVariant baseline_variant(const Session& s, const Case& c, Variant v, size_t saved_bytes, size_t workspace_bytes) {
  const Grads g = s.options().gradient.grads;
  GradVariant var;
  var.name = std::string(to_string(v));
  var.baseline = baseline_of(v);
  var.saved_bytes = saved_bytes;
  var.workspace_bytes = workspace_bytes;
  var.row = s.base_row(c, var.name);
  var.row.policy = "save";
  var.row.gate_placement = "separate";
  var.row.tile_forward = "cublasLt";
  if (g.dx) var.row.tile_dx = "cublasLt";
  if (g.dw) var.row.tile_dw = "cublasLt";
  return var;
}

// The FP8 backward's GEMMs (kernels/gemm_sm90_fp8.cuh), for the rows' tile columns.
constexpr const char* kFp8GemmKernel = "sm90a-fp8-gemm";

// --dtype fp8: `fused` is fused-save alone (backward_fp8 reads the H its forward kept and keeps dH in
// e4m3, with dHᵀ, in its workspace); every other fused mode the options ask for, and a named tile
// (the FP8 kernels are chosen by B), is a SKIP row saying so. Every variant keeps H in bf16.
std::vector<GradVariant> make_fp8_variants(const Session& s, const Case& c) {
  const GradientOptions& g = s.options().gradient;
  const Problem& p = c.problem;
  const Fp8Problem fp = fp8_problem(p);
  const auto saved = static_cast<size_t>(p.batch * 2 * p.hidden) * dtype_size(fp.out);
  const auto named = [](const std::vector<TileChoice>& tiles) {
    return std::any_of(tiles.begin(), tiles.end(),
                       [](const TileChoice& t) { return t.kind == TileChoice::Kind::named; });
  };
  const bool any_named = named(c.tiles) || (g.grads.dx && named(g.dx_tiles)) || (g.grads.dw && named(g.dw_tiles));
  std::vector<GradVariant> out;
  for (const Variant v : c.variants) {
    if (v != Variant::fused) {
      const baselines::Variant b = baseline_of(v);
      GradVariant var = baseline_variant(s, c, v, saved, baselines::fp8_backward_scratch_bytes(b, fp, g.grads));
      var.forward_scratch_bytes = baselines::fp8_scratch_bytes(b, fp);
      out.push_back(std::move(var));
      continue;
    }
    const auto add = [&](Policy policy, const char* name, const std::string& placement, const std::string& skip) {
      GradVariant var;
      var.name = name;
      var.row = s.base_row(c, var.name);
      var.row.policy = std::string(to_string(policy));
      var.row.gate_placement = placement;
      var.row.tile_choice = "auto";
      var.row.tile_forward = std::string(forward_fp8_kernel(fp));
      if (g.grads.dx) var.row.tile_dx = kFp8GemmKernel;
      if (g.grads.dw) var.row.tile_dw = kFp8GemmKernel;
      var.options.policy = policy;
      var.options.grads = g.grads;
      var.saved_bytes = policy == Policy::save ? saved : 0;
      var.workspace_bytes = backward_fp8_workspace_bytes(fp);
      if (!skip.empty()) {
        var.row.status = "SKIP";
        var.row.reason = skip;
      }
      out.push_back(std::move(var));
    };
    for (const Policy policy : g.policies) {
      if (policy == Policy::save) {
        for (const DhStorage dh : g.save_dh) {
          if (dh == DhStorage::tensors) {
            add(policy, "fused-save-inplace", "separate",
                "the FP8 backward keeps dH in e4m3, with its transposed copy, in its workspace: it has no in-place "
                "dH (--dh workspace)");
          } else {
            add(policy, "fused-save", "separate",
                any_named ? "the FP8 forward and backward pick their kernels by B: --tiles, --dx-tiles and "
                            "--dw-tiles auto or all"
                          : "");
          }
        }
        continue;
      }
      for (const GatePlacement placement : g.placements) {
        add(policy, placement == GatePlacement::prologue ? "fused-recompute-prologue" : "fused-recompute",
            std::string(to_string(placement)),
            "the FP8 backward has the save policy only: it reads the H the FP8 forward kept (--policy save)");
      }
    }
  }
  return out;
}

// fp32, fp16 and bf16: the baselines, and the fused variants per mode and tile.
std::vector<GradVariant> make_tiled_variants(const Session& s, const Case& c) {
  const RunOptions& o = s.options();
  const GradientOptions& g = o.gradient;
  const Problem& p = c.problem;
  const DeviceTraits traits = s.traits();
  const size_t es = dtype_size(p.dtype);
  const auto fwd_compiled = forward_tiles(p, traits);
  const auto dx_compiled = backward_dx_tiles(p, traits);
  const auto dw_compiled = backward_dw_tiles(p, traits);
  const std::vector<TileChoice> just_auto = {TileChoice()};

  std::vector<GradVariant> out;
  for (const Variant v : c.variants) {
    if (v != Variant::fused) {
      const baselines::Variant b = baseline_of(v);
      out.push_back(baseline_variant(s, c, v, baselines::scratch_bytes(b, p), baselines::backward_scratch_bytes(b, p)));
      continue;
    }
    // One fused variant per mode: save once per dH storage (the prologue reads H; over the saved H,
    // a gate pass writes dH first), recompute once per requested placement.
    struct FusedMode {
      Policy policy;
      GatePlacement placement;
      DhStorage dh;
      const char* name;
    };
    std::vector<FusedMode> modes;
    for (const Policy policy : g.policies) {
      if (policy == Policy::save) {
        for (const DhStorage dh : g.save_dh) {
          modes.push_back(dh == DhStorage::tensors
                              ? FusedMode{policy, GatePlacement::automatic, dh, "fused-save-inplace"}
                              : FusedMode{policy, GatePlacement::prologue, dh, "fused-save"});
        }
      } else {
        for (const GatePlacement placement : g.placements) {
          modes.push_back({policy, placement, DhStorage::workspace,
                           placement == GatePlacement::prologue ? "fused-recompute-prologue" : "fused-recompute"});
        }
      }
    }
    for (const FusedMode& m : modes) {
      const bool forward_matters = m.policy == Policy::recompute || o.op != Op::backward;
      const auto fwd_words = forward_matters ? expand_tiles(c.tiles, fwd_compiled) : just_auto;
      const auto dx_words = g.grads.dx ? expand_tiles(g.dx_tiles, dx_compiled) : just_auto;
      const auto dw_words = g.grads.dw ? expand_tiles(g.dw_tiles, dw_compiled) : just_auto;
      for (const TileChoice& ft : fwd_words) {
        for (const TileChoice& dxt : dx_words) {
          for (const TileChoice& dwt : dw_words) {
            for (const size_t bound : g.max_workspace_bytes) {
              GradVariant var;
              var.name = m.name;
              var.row = s.base_row(c, var.name);
              var.row.policy = std::string(to_string(m.policy));
              var.row.gate_placement = std::string(to_string(m.placement));
              var.options.policy = m.policy;
              var.options.grads = g.grads;
              var.options.placement = m.placement;
              var.options.dh_storage = m.dh;
              // Names as asked until the check run reports what ran.
              var.row.tile_forward = ft.word;
              if (m.policy == Policy::recompute) var.row.tile_recompute = ft.word;
              if (g.grads.dx) var.row.tile_dx = dxt.word;
              if (g.grads.dw) var.row.tile_dw = dwt.word;
              // Unused choices are "auto" (just_auto), so a row is auto when the heuristic chose all.
              const bool automatic = ft.kind == TileChoice::Kind::automatic &&
                                     dxt.kind == TileChoice::Kind::automatic &&
                                     dwt.kind == TileChoice::Kind::automatic;
              // A bounded workspace is not the default configuration either: keep it out of the
              // comparisons of heuristic rows.
              var.row.tile_choice = automatic && bound == 0 ? "auto" : "forced";
              std::string reason;
              if (!resolve_tile(ft, fwd_compiled, p, traits, "forward", &var.forward_tile, &reason) ||
                  !resolve_tile(dxt, dx_compiled, p, traits, "dx", &var.options.dx_tile, &reason) ||
                  !resolve_tile(dwt, dw_compiled, p, traits, "dw", &var.options.dw_tile, &reason)) {
                var.row.status = "SKIP";
                var.row.reason = reason;
              }
              if (m.policy == Policy::recompute) var.options.recompute_tile = var.forward_tile;
              var.options.max_workspace_bytes = bound;
              var.saved_bytes = m.policy == Policy::save ? static_cast<size_t>(p.batch * 2 * p.hidden) * es : 0;
              if (const Status ws = backward_workspace_bytes(p, var.options, &var.workspace_bytes);
                  !ws.ok() && var.row.status.empty()) {
                var.row.status = "SKIP";
                var.row.reason = ws.message;
              }
              out.push_back(std::move(var));
            }
          }
        }
      }
    }
  }
  return out;
}

std::vector<GradVariant> make_variants(const Session& s, const Case& c) {
  const RunOptions& o = s.options();
  std::vector<GradVariant> out = c.problem.dtype == DType::e4m3 ? make_fp8_variants(s, c) : make_tiled_variants(s, c);
  for (GradVariant& v : out) {
    v.row.grads = grads_name(o.gradient.grads);
    v.row.requested_saved_bytes = static_cast<int64_t>(v.saved_bytes);
    v.row.requested_workspace_bytes = static_cast<int64_t>(v.workspace_bytes);
    set_tile_label(v.row, o.op != Op::backward);
  }
  return out;
}

// A reference output, fp64 from the CPU or fp32 from the GPU reference.
struct RefOutput {
  std::vector<double> f64;
  std::vector<float> f32;
};

struct Reference {
  std::string name;  // cpu-fp64 | gpu-fp32
  RefOutput z, dx, dw, dbias;
};

// The case's device tensors: inputs, Z, the gradients asked for, and (backward, step) the one
// workspace every variant's backward uses in turn. --dtype fp8: X and W12 as `fp8` (x and w stay
// empty), Z in e4m3 with its 1×128 scales, the bias, dZ and the gradients in bf16.
struct Tensors {
  DeviceBuffer x, w, bias, dz, z, dx, dw, dbias, workspace;
  Fp8Operands fp8;
  DeviceBuffer z_scale;
};

// One output a variant is checked on.
struct Output {
  const char* name;  // z | dx | dw | dbias
  const DeviceBuffer* device;
  size_t n;
  int64_t cols;  // of the output seen as a row-major matrix, for the worst element's position
  Tolerance tol;
  const RefOutput* ref;
  double Row::*rel_l2;
  DType dtype;                          // as stored
  const DeviceBuffer* scale = nullptr;  // an e4m3 output's 1×128 scales along `cols`
};

class GradientCase {
 public:
  GradientCase(Session& s, const Case& c)
      : s_(s), o_(s.options()), c_(c), p_(c.problem), label_(case_label(c)) {}
  void run();

 private:
  bool fp8() const { return p_.dtype == DType::e4m3; }
  double device_bytes(bool cpu_ref) const;
  bool make_inputs_and_reference(bool cpu_ref);
  bool make_fp8_inputs_and_reference(bool cpu_ref);
  bool computes_reference(const Problem& p, const void* x, const void* w, const void* bias, const void* dz,
                          const void* x_dw);
  Fp8Tensors fp8_forward_tensors(const GradVariant& v) const;
  Fp8BackwardTensors fp8_backward_tensors(const GradVariant& v) const;
  std::vector<float> read(const Output& out) const;
  DeviceBuffer& workspace_of(GradVariant& v) { return fp8() && v.baseline ? v.own_workspace : t_.workspace; }
  Status prepare(GradVariant& v);
  Status run_forward(GradVariant& v, cudaStream_t st);
  Status run_backward(GradVariant& v, cudaStream_t st);
  void poison(bool z);
  void check(GradVariant& v, bool with_z);
  std::string mismatch(const GradVariant& v, bool with_z) const;
  void check_variant(GradVariant& v);
  void measure_variant(GradVariant& v, int64_t granularity);
  void fill_tiles(GradVariant& v);
  std::vector<Output> outputs(const GradVariant& v, bool with_z) const;

  Session& s_;
  const RunOptions& o_;
  const Case& c_;
  const Problem p_;
  const std::string label_;
  std::vector<GradVariant> variants_;
  Tensors t_;
  Reference ref_;
};

void GradientCase::run() {
  nvtx3::scoped_range case_range{fmt::format("{}/case {}", to_string(o_.op), label_).c_str()};
  variants_ = make_variants(s_, c_);
  std::vector<Row*> rows;
  for (GradVariant& v : variants_) rows.push_back(&v.row);
  if (fp8()) {
    if (const auto why = fp8_unsupported_reason(p_, s_.traits(), true)) {
      s_.emit_all(rows, "SKIP", *why);
      return;
    }
  }
  const bool memory = o_.op == Op::memory;
  const bool cpu_ref = use_cpu_reference(o_, forward_flops(p_) / 2);
  if (s_.skip_if_too_large(device_bytes(cpu_ref), rows)) return;
  if (!(fp8() ? make_fp8_inputs_and_reference(cpu_ref) : make_inputs_and_reference(cpu_ref))) return;

  if (memory) {
    // Why a constant: cudaMalloc maps device memory in 2 MiB pages, so cudaMemGetInfo moves in
    // those steps; a smaller allocation may land in a page an earlier one opened and read as 0. A
    // 1-byte probe would measure the allocator's state, not the granularity.
    const int64_t granularity = int64_t{2} << 20;
    for (GradVariant& v : variants_) {
      if (!v.row.status.empty() || s_.stopped() || s_.fatal()) continue;
      measure_variant(v, granularity);
    }
    // Ratios to cublas2's measured bytes in this case, when its pipeline ran (PASS or FAIL): an
    // ERROR or SKIP row allocated its buffers but never ran, so it is no baseline.
    const auto base = std::find_if(variants_.begin(), variants_.end(), [](const GradVariant& v) {
      return v.name == "cublas2" && v.row.measured_saved_bytes >= 0 &&
             (v.row.status == "PASS" || v.row.status == "FAIL");
    });
    for (GradVariant& v : variants_) {
      if (v.row.measured_saved_bytes >= 0 && v.row.measured_workspace_bytes >= 0)
        v.row.measured_peak_bytes = v.row.measured_saved_bytes + v.row.measured_workspace_bytes;
    }
    // None where a buffer is under a page (measured_ratio): it reads as 0 or 2 MiB.
    const auto requested_peak = [](const Row& r) {
      return r.requested_saved_bytes < 0 || r.requested_workspace_bytes < 0
                 ? int64_t{-1}
                 : r.requested_saved_bytes + r.requested_workspace_bytes;
    };
    for (GradVariant& v : variants_) {
      if (base == variants_.end() || v.row.measured_saved_bytes < 0) continue;
      const Row& b = base->row;
      v.row.peak_vs_cublas2 = measured_ratio(v.row.measured_peak_bytes, b.measured_peak_bytes, requested_peak(v.row),
                                             requested_peak(b), granularity);
      v.row.saved_vs_cublas2 = measured_ratio(v.row.measured_saved_bytes, b.measured_saved_bytes,
                                              v.row.requested_saved_bytes, b.requested_saved_bytes, granularity);
      v.row.workspace_vs_cublas2 =
          measured_ratio(v.row.measured_workspace_bytes, b.measured_workspace_bytes, v.row.requested_workspace_bytes,
                         b.requested_workspace_bytes, granularity);
    }
  } else {
    size_t ws = 0;
    for (GradVariant& v : variants_)
      if (v.row.status.empty() && &workspace_of(v) == &t_.workspace) ws = std::max(ws, v.workspace_bytes);
    t_.workspace = DeviceBuffer(ws);
    for (GradVariant& v : variants_) {
      if (!v.row.status.empty() || s_.stopped()) continue;
      check_variant(v);
      if (s_.fatal()) break;
    }
    std::vector<TimedRow> timed;
    const bool step = o_.op == Op::step;
    // --graph's checked replay: the outputs the timed unit writes (Z only for step), poisoned.
    const auto poison_outputs = [this, step](cudaStream_t) { poison(step); };
    for (GradVariant& v : variants_) {
      if (!v.runnable) continue;
      const auto verify = [this, &v, step] { return mismatch(v, step); };
      timed.push_back({&v.row,
                       [this, &v, step](cudaStream_t st) {
                         Status r = step ? run_forward(v, st) : Status::success();
                         if (r.ok()) r = run_backward(v, st);
                         if (!r.ok()) throw CudaError(r.message);
                       },
                       poison_outputs, verify});
    }
    const double flops = backward_flops(p_, o_.gradient.grads) + (step ? forward_flops(p_) : 0.0);
    s_.profile_or_time(label_, timed, flops, kNaN);
  }
  // Why: as in forward, an interrupted case is dropped whole.
  if (s_.stopped()) return;
  s_.emit_all(rows, "ERROR", "not run: an earlier CUDA error left the device unusable");
}

// Device memory the case needs at its peak: inputs and outputs, then the larger of the reference
// (or, fp8, the bf16 originals being quantised) and the variants' buffers (the GPU reference is
// freed before they are allocated).
double GradientCase::device_bytes(bool cpu_ref) const {
  const Grads g = o_.gradient.grads;
  const double B = static_cast<double>(p_.batch), I = static_cast<double>(p_.in_features),
               D = static_cast<double>(p_.hidden), ldx = static_cast<double>(p_.x_stride());
  const double bias = p_.bias ? 2 * D : 0;
  double tensors = 0, ref_bytes = 0;
  if (fp8()) {
    const double kb = std::ceil(I / 128), db = std::ceil(D / 128), rb = std::ceil(B / 128);
    const double ldxt = std::ceil(B / 16) * 16;
    // X, Xᵀ, W12 and W12ᵀ in e4m3 with their scales; the bias, dZ and the gradients in bf16; Z in
    // e4m3 with its scales.
    tensors = B * ldx + I * ldxt + 4 * D * I + 4 * (B * kb + I * rb + 4 * db * kb) +
              2 * (bias + B * D + (g.dx ? B * I : 0) + (g.dw ? 2 * D * I + bias : 0)) + B * D + 4 * B * db;
    ref_bytes = 2 * (B * ldx + 2 * D * I);
    if (!cpu_ref) {
      Problem exact = p_;
      exact.dtype = DType::f32;
      exact.math = Math::exact;
      ref_bytes = std::max(ref_bytes, 4 * (2 * B * ldx + 2 * D * I + bias + B * D) +
                                          static_cast<double>(baselines::reference_backward_scratch_bytes(exact)) +
                                          4 * (B * I + 2 * D * I + 2 * D) +
                                          static_cast<double>(baselines::reference_scratch_bytes(exact)) + 4 * B * D);
    }
  } else {
    const double es = static_cast<double>(dtype_size(p_.dtype));
    tensors = es * (B * ldx + 2 * D * I + bias + 2 * B * D + (g.dx ? B * I : 0) + (g.dw ? 2 * D * I + bias : 0));
    if (!cpu_ref) {
      ref_bytes = static_cast<double>(baselines::reference_backward_scratch_bytes(p_)) +
                  4 * (B * I + 2 * D * I + 2 * D) + static_cast<double>(baselines::reference_scratch_bytes(p_)) +
                  4 * B * D;
    }
  }
  const bool memory = o_.op == Op::memory;
  double variant_bytes = 0, max_workspace = 0;
  for (const GradVariant& v : variants_) {
    if (!v.row.status.empty()) continue;
    const double kept = static_cast<double>(v.saved_bytes + v.forward_scratch_bytes);
    const double ws = static_cast<double>(v.workspace_bytes);
    const bool own = fp8() && v.baseline;  // workspace_of(): its own, not the shared one
    if (!own) max_workspace = std::max(max_workspace, ws);
    variant_bytes = memory ? std::max(variant_bytes, kept + ws) : variant_bytes + kept + (own ? ws : 0);
  }
  if (!memory) variant_bytes += max_workspace;
  return tensors + std::max(ref_bytes, variant_bytes);
}

// Seeded inputs in the dtype, the outputs, and the reference on the host. False (rows emitted) when
// the reference fails.
bool GradientCase::make_inputs_and_reference(bool cpu_ref) {
  const Grads g = o_.gradient.grads;
  const size_t es = dtype_size(p_.dtype);
  const auto B = static_cast<size_t>(p_.batch), I = static_cast<size_t>(p_.in_features),
             D = static_cast<size_t>(p_.hidden);
  HostInputs in;
  {
    nvtx3::scoped_range r{"inputs"};
    in = make_inputs(p_, o_.seed, true);
    t_.x = upload(in.x, p_.dtype);
    t_.w = upload(in.w, p_.dtype);
    if (p_.bias) t_.bias = upload(in.bias, p_.dtype);
    t_.dz = upload(in.dz, p_.dtype);
    t_.z = DeviceBuffer(B * D * es);
    if (g.dx) t_.dx = DeviceBuffer(B * I * es);
    if (g.dw) t_.dw = DeviceBuffer(2 * D * I * es);
    if (g.dw && p_.bias) t_.dbias = DeviceBuffer(2 * D * es);
  }
  nvtx3::scoped_range r{"reference"};
  if (!cpu_ref) return computes_reference(p_, t_.x.get(), t_.w.get(), t_.bias.get(), t_.dz.get(), nullptr);
  ref_.name = "cpu-fp64";
  if (o_.op != Op::backward) ref_.z.f64 = cpu_reference(p_, in.x, in.w, in.bias);
  CpuGrads cg = cpu_reference_backward(p_, in.x, in.w, in.bias, in.dz);
  ref_.dx.f64 = std::move(cg.dx);
  ref_.dw.f64 = std::move(cg.dw);
  ref_.dbias.f64 = std::move(cg.dbias);
  return true;
}

// --dtype fp8: the bf16 case's seeded inputs (the same seed and shape, so the two compare), X and
// W12 quantised with the backward's transposed copies (run_fp8.hpp), the outputs, and the reference
// on the dequantised operands: Z and the gradients of X (the forward's 1×128 blocks along I) and
// W12, with dW12 = dHᵀ·X on X as Xᵀ's blocks along B give it, the bias and dZ as rounded to bf16.
// (q·scale rounds to fp32 here, 2^-24 relative: far below e4m3's.) False (rows emitted) on failure.
bool GradientCase::make_fp8_inputs_and_reference(bool cpu_ref) {
  const Grads g = o_.gradient.grads;
  const Fp8Problem fp = fp8_problem(p_);
  const size_t es = dtype_size(fp.out);
  const auto B = static_cast<size_t>(p_.batch), I = static_cast<size_t>(p_.in_features),
             D = static_cast<size_t>(p_.hidden), db = (D + 127) / 128;
  Problem original = p_;
  original.dtype = DType::bf16;
  HostInputs in;
  {
    nvtx3::scoped_range r{"inputs"};
    in = make_inputs(original, o_.seed, true);
    if (Status st = quantise_fp8_operands(p_, in, true, s_.stream(), &t_.fp8); !st.ok()) {
      std::vector<Row*> rows;
      for (GradVariant& v : variants_) rows.push_back(&v.row);
      s_.emit_all(rows, "ERROR", "quantising the inputs: " + st.message);
      return false;
    }
    if (p_.bias) t_.bias = upload(in.bias, fp.out);
    t_.dz = upload(in.dz, fp.out);
    t_.z = DeviceBuffer(B * D);
    t_.z_scale = DeviceBuffer(B * db * sizeof(float));
    if (g.dx) t_.dx = DeviceBuffer(B * I * es);
    if (g.dw) t_.dw = DeviceBuffer(2 * D * I * es);
    if (g.dw && p_.bias) t_.dbias = DeviceBuffer(2 * D * es);
  }
  nvtx3::scoped_range r{"reference"};
  Problem exact = p_;
  exact.dtype = DType::f32;
  exact.math = Math::exact;
  const Fp8Operands& q = t_.fp8;
  bool ok = true;
  if (cpu_ref) {
    ref_.name = "cpu-fp64";
    if (o_.op != Op::backward) ref_.z.f64 = cpu_reference(exact, q.x, q.w, in.bias);
    CpuGrads cg = cpu_reference_backward(exact, q.x, q.w, in.bias, in.dz, 0, q.x_dw);
    ref_.dx.f64 = std::move(cg.dx);
    ref_.dw.f64 = std::move(cg.dw);
    ref_.dbias.f64 = std::move(cg.dbias);
  } else {
    const DeviceBuffer x = upload(q.x, DType::f32), w = upload(q.w, DType::f32), x_dw = upload(q.x_dw, DType::f32);
    const DeviceBuffer bias = p_.bias ? upload(in.bias, DType::f32) : DeviceBuffer();
    const DeviceBuffer dz = upload(in.dz, DType::f32);
    ok = computes_reference(exact, x.get(), w.get(), bias.get(), dz.get(), x_dw.get());
  }
  // The host copies are the reference's alone.
  t_.fp8.x = {};
  t_.fp8.w = {};
  t_.fp8.x_dw = {};
  return ok;
}

// The fp32 GPU reference (large shapes) of problem p (p_ or, fp8, its fp32 twin on the dequantised
// operands) from device inputs: Z (step, memory) and the gradients, copied to the host; x_dw as for
// gpu_reference_backward. On failure every row becomes ERROR and it returns false.
bool GradientCase::computes_reference(const Problem& p, const void* x, const void* w, const void* bias,
                                      const void* dz, const void* x_dw) {
  const Grads g = o_.gradient.grads;
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  ref_.name = "gpu-fp32";
  const auto to_host = [](const DeviceBuffer& d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d.get(), n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  };
  Status st;
  if (o_.op != Op::backward) {
    DeviceBuffer h(baselines::reference_scratch_bytes(p));
    DeviceBuffer zr(static_cast<size_t>(B * D) * sizeof(float));
    st = baselines::gpu_reference(s_.cublas(), p, x, w, bias, h.as<float>(), zr.as<float>(), s_.stream());
    if (st.ok()) ref_.z.f32 = to_host(zr, static_cast<size_t>(B * D));
  }
  if (st.ok()) {
    DeviceBuffer scratch(baselines::reference_backward_scratch_bytes(p));
    DeviceBuffer dx(static_cast<size_t>(B * I) * sizeof(float));
    DeviceBuffer dw(static_cast<size_t>(2 * D * I) * sizeof(float));
    DeviceBuffer db(p.bias ? static_cast<size_t>(2 * D) * sizeof(float) : 0);
    st = baselines::gpu_reference_backward(s_.cublas(), p, x, w, bias, dz, scratch.get(), dx.as<float>(),
                                           dw.as<float>(), db.as<float>(), s_.stream(), x_dw);
    if (st.ok()) {
      if (g.dx) ref_.dx.f32 = to_host(dx, static_cast<size_t>(B * I));
      if (g.dw) ref_.dw.f32 = to_host(dw, static_cast<size_t>(2 * D * I));
      if (g.dw && p.bias) ref_.dbias.f32 = to_host(db, static_cast<size_t>(2 * D));
    }
  }
  if (st.ok()) return true;
  std::vector<Row*> rows;
  for (GradVariant& v : variants_) rows.push_back(&v.row);
  s_.emit_all(rows, "ERROR", "GPU reference failed: " + st.message);
  return false;
}

// The FP8 forward's tensors for a variant: the case's e4m3 operands, Z in e4m3 with its scales, and
// H into the variant's saved buffer.
Fp8Tensors GradientCase::fp8_forward_tensors(const GradVariant& v) const {
  Fp8Tensors t;
  t.x = t_.fp8.xq.get();
  t.x_scale = t_.fp8.x_scale.as<float>();
  t.w = t_.fp8.wq.get();
  t.w_scale = t_.fp8.w_scale.as<float>();
  t.bias = t_.bias.get();
  t.z = t_.z.get();
  t.z_scale = t_.z_scale.as<float>();
  t.saved = v.saved.get();
  return t;
}

// The FP8 backward's tensors for a variant: dZ, its saved H, the transposed copies, and the
// gradients asked for, in bf16.
Fp8BackwardTensors GradientCase::fp8_backward_tensors(const GradVariant& v) const {
  const Grads g = o_.gradient.grads;
  const DType out = fp8_problem(p_).out;
  Fp8BackwardTensors t;
  t.dz = t_.dz.get();
  t.saved = v.saved.get();
  t.xt = t_.fp8.xt.get();
  t.ldxt = t_.fp8.ldxt;
  t.xt_scale = t_.fp8.xt_scale.as<float>();
  if (g.dx) {
    t.wt = t_.fp8.wt.get();
    t.wt_scale = t_.fp8.wt_scale.as<float>();
    t.dx = t_.dx.get();
    t.dx_dtype = out;
  }
  if (g.dw) {
    t.dw = t_.dw.get();
    t.dw_dtype = out;
    t.dbias = t_.dbias.get();
    t.dbias_dtype = out;
  }
  return t;
}

// An output's values as floats: as stored, or an e4m3 one dequantised with the scales it came with.
std::vector<float> GradientCase::read(const Output& out) const {
  if (out.scale == nullptr) return download(out.device->get(), out.n, out.dtype);
  const int64_t rows = static_cast<int64_t>(out.n) / out.cols, blocks = (out.cols + 127) / 128;
  std::vector<unsigned char> q(out.n);
  std::vector<float> scale(static_cast<size_t>(rows * blocks));
  CUDA_CHECK(cudaMemcpy(q.data(), out.device->get(), q.size(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(scale.data(), out.scale->get(), scale.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return dequantise_e4m3(q, scale, rows, out.cols, out.cols, 1);
}

// Allocates the variant's saved activations (and an fp8 baseline's own buffers) and, for the
// baselines, builds its plans.
Status GradientCase::prepare(GradVariant& v) {
  if (v.saved_bytes > 0 && v.saved.bytes() == 0) v.saved = DeviceBuffer(v.saved_bytes);
  if (!v.baseline) return Status::success();
  DeviceBuffer& workspace = workspace_of(v);
  if (fp8()) {
    if (v.forward_scratch_bytes > 0 && v.forward_scratch.bytes() == 0)
      v.forward_scratch = DeviceBuffer(v.forward_scratch_bytes);
    if (v.workspace_bytes > 0 && workspace.bytes() == 0) workspace = DeviceBuffer(v.workspace_bytes);
    const Fp8Problem fp = fp8_problem(p_);
    if (Status st = baselines::Fp8Plan::create(s_.cublas(), *v.baseline, fp, fp8_forward_tensors(v),
                                               v.forward_scratch.get(), &v.fp8_forward_plan);
        !st.ok())
      return st;
    return baselines::Fp8BackwardPlan::create(s_.cublas(), *v.baseline, fp, fp8_backward_tensors(v),
                                              workspace.get(), &v.fp8_backward_plan);
  }
  const Grads g = o_.gradient.grads;
  if (Status st = baselines::Plan::create(s_.cublas(), *v.baseline, p_, t_.x.get(), t_.w.get(),
                                          t_.bias.get(), t_.z.get(), v.saved.get(), &v.forward_plan);
      !st.ok())
    return st;
  return baselines::BackwardPlan::create(s_.cublas(), *v.baseline, p_, t_.x.get(), t_.w.get(),
                                         v.saved.get(), t_.dz.get(), g, t_.dx.get(), t_.dw.get(),
                                         t_.dbias.get(), workspace.get(), &v.backward_plan);
}

Status GradientCase::run_forward(GradVariant& v, cudaStream_t st) {
  if (fp8()) return v.baseline ? v.fp8_forward_plan.run(st) : forward_fp8(fp8_problem(p_), fp8_forward_tensors(v), st);
  if (v.baseline) return v.forward_plan.run(st);
  ForwardOptions fo;
  fo.tile = v.forward_tile;
  fo.saved = v.options.policy == Policy::save ? v.saved.get() : nullptr;
  return forward(p_, t_.x.get(), t_.w.get(), t_.bias.get(), t_.z.get(), st, fo, &v.forward_used);
}

Status GradientCase::run_backward(GradVariant& v, cudaStream_t st) {
  if (fp8()) {
    if (v.baseline) return v.fp8_backward_plan.run(st);
    return backward_fp8(fp8_problem(p_), fp8_backward_tensors(v), t_.workspace.get(), t_.workspace.bytes(), st);
  }
  if (v.baseline) return v.backward_plan.run(st);
  BackwardTensors bt;
  bt.x = t_.x.get();
  bt.w = t_.w.get();
  bt.bias = t_.bias.get();
  bt.dz = t_.dz.get();
  bt.saved = v.saved.get();
  bt.dx = t_.dx.get();
  bt.dw = t_.dw.get();
  bt.dbias = t_.dbias.get();
  // fused-save-inplace: dH over the saved H. A timed repetition reads what the previous one left
  // there as H: the same arithmetic on other values, which only the checked run (from a fresh
  // forward) compares.
  if (v.options.dh_storage == DhStorage::tensors) bt.dh = v.saved.get();
  return backward(p_, bt, v.options, t_.workspace.get(), t_.workspace.bytes(), st, &v.backward_used);
}

// NaN into every output the check reads.
void GradientCase::poison(bool z) {
  for (const DeviceBuffer* b : {z ? &t_.z : nullptr, z ? &t_.z_scale : nullptr, &t_.dx, &t_.dw, &t_.dbias})
    if (b != nullptr && b->bytes() > 0)
      CUDA_CHECK(cudaMemsetAsync(b->get(), kPoisonByte, b->bytes(), s_.stream()));
}

std::vector<Output> GradientCase::outputs(const GradVariant& v, bool with_z) const {
  const Grads g = o_.gradient.grads;
  const int64_t B = p_.batch, I = p_.in_features, D = p_.hidden;
  Tolerance dx_tol, dw_tol, z_tol;
  DType dtype = p_.dtype;
  const DeviceBuffer* z_scale = nullptr;
  if (fp8()) {
    // The baselines store dH in bf16 before quantising it, G and U in bf16 before the gate, and may
    // reduce split-K slices in bf16; the fused kernels do none of these. (dbias, whose dH is never
    // quantised, is held to dW's looser bound.)
    dtype = fp8_problem(p_).out;
    const int64_t k_fwd = I + (p_.bias ? 1 : 0);
    const auto grad = [&](int slices) { return v.baseline ? Rounding{1, slices} : kFusedRounding; };
    dx_tol = fp8_gradient_tolerance(2 * D, k_fwd, dtype, grad(v.fp8_backward_plan.dx_slices()));
    dw_tol = fp8_gradient_tolerance(B, k_fwd, dtype, grad(v.fp8_backward_plan.dw_slices()));
    z_tol = fp8_tolerance(k_fwd, DType::e4m3, dtype, grad(v.fp8_forward_plan.output_type_slices()));
    z_scale = &t_.z_scale;
  } else {
    // The baselines store G and U, and may reduce split-K slices in the dtype; the fused kernels do
    // not, but a fused backward in row chunks adds its chunks' dW and dbias up in the dtype (checked
    // after the run, which says how many it took).
    dx_tol = gradient_tolerance(p_, 2 * D, v.baseline ? v.backward_plan.dx_slices() : 1);
    dw_tol = gradient_tolerance(p_, B,
                                v.baseline ? v.backward_plan.dw_slices() : static_cast<int>(v.backward_used.chunks));
    z_tol = tolerance(p_, v.baseline ? Rounding{1, v.forward_plan.output_type_slices()} : kFusedRounding);
  }
  std::vector<Output> out;
  if (with_z) {
    out.push_back({"z", &t_.z, static_cast<size_t>(B * D), D, z_tol, &ref_.z, &Row::rel_l2_z,
                   z_scale != nullptr ? DType::e4m3 : dtype, z_scale});
  }
  if (g.dx) out.push_back({"dx", &t_.dx, static_cast<size_t>(B * I), I, dx_tol, &ref_.dx, &Row::rel_l2_dx, dtype});
  if (g.dw) {
    out.push_back({"dw", &t_.dw, static_cast<size_t>(2 * D * I), p_.layout == Layout::linear ? I : 2 * D,
                   dw_tol, &ref_.dw, &Row::rel_l2_dw, dtype});
    if (p_.bias)
      out.push_back(
          {"dbias", &t_.dbias, static_cast<size_t>(2 * D), 2 * D, dw_tol, &ref_.dbias, &Row::rel_l2_dbias, dtype});
  }
  return out;
}

// Compares every output with the reference. The row is PASS only when all pass; its parity fields
// describe the output furthest over its tolerance.
void GradientCase::check(GradVariant& v, bool with_z) {
  Row& row = v.row;
  row.reference = ref_.name;
  double worst_severity = -1;
  bool pass = true;
  for (const Output& out : outputs(v, with_z)) {
    const std::vector<float> got = read(out);
    const ParityResult pr = out.ref->f64.empty() ? compare(got, out.ref->f32, out.tol)
                                                 : compare(got, out.ref->f64, out.tol);
    row.*out.rel_l2 = pr.rel_l2;
    const double severity = pr.severity();
    // Why the most severe: a failing output is always over 1, so the reported one is a failure.
    if (severity > worst_severity) {
      worst_severity = severity;
      set_parity(row, pr);
      row.tol_rel_l2 = out.tol.rel_l2;
      row.worst_output = out.name;
      if (!pr.pass) {
        const int64_t r = pr.worst_index >= 0 ? pr.worst_index / out.cols : -1;
        const int64_t col = pr.worst_index >= 0 ? pr.worst_index % out.cols : -1;
        row.reason = fmt::format("parity: {} {} at (row {}, col {}); {}", out.name, pr.summary(), r, col,
                                 pr.tolerance());
      }
    }
    pass = pass && pr.pass;
  }
  row.status = pass ? "PASS" : "FAIL";
  v.runnable = pass;
  if (!pass)
    std::fprintf(stderr, "FAIL %s %s tile=%s: %s\n", row.variant.c_str(), label_.c_str(),
                 row.tile.c_str(), row.reason.c_str());
}

// The first output that does not match the reference, as "parity: <output> <summary>", or "" when
// all do; the row is left alone. What --graph's checked replay reports.
std::string GradientCase::mismatch(const GradVariant& v, bool with_z) const {
  for (const Output& out : outputs(v, with_z)) {
    const std::vector<float> got = read(out);
    const ParityResult pr = out.ref->f64.empty() ? compare(got, out.ref->f32, out.tol)
                                                 : compare(got, out.ref->f64, out.tol);
    if (!pr.pass)
      return fmt::format("parity: {} {}; {}", out.name, pr.summary(), pr.tolerance());
  }
  return {};
}

// What ran, from the library's reports, into the row's tile columns.
void GradientCase::fill_tiles(GradVariant& v) {
  if (v.baseline || fp8()) return;  // fp8: the names make_fp8_variants gave
  Row& r = v.row;
  const bool forward_ran = o_.op != Op::backward || v.options.policy == Policy::save;
  r.tile_forward = forward_ran ? tile_name(v.forward_used) : "";
  r.tile_recompute = tile_name(v.backward_used.recompute);
  r.tile_dx = tile_name(v.backward_used.dx);
  r.tile_dw = tile_name(v.backward_used.dw);
  set_tile_label(r, o_.op != Op::backward);
  // A bounded row names its bound, so that the rows of a list of bounds tell themselves apart.
  if (v.options.max_workspace_bytes != 0)
    r.tile += fmt::format(" max-ws={}MiB chunks={}", v.options.max_workspace_bytes >> 20, v.backward_used.chunks);
}

// Status codes of the library and the plans: unsupported is a SKIP, anything else an ERROR.
void fail_row(Row& r, const Status& st) {
  r.status = st.code == StatusCode::unsupported ? "SKIP" : "ERROR";
  r.reason = st.message;
}

// backward and step: prepare, produce the saved activations (backward), poison, run, check.
void GradientCase::check_variant(GradVariant& v) {
  nvtx3::scoped_range r{fmt::format("check/{} {} tile={}", v.name, label_, v.row.tile).c_str()};
  const bool step = o_.op == Op::step;
  try {
    if (Status st = prepare(v); !st.ok()) return fail_row(v.row, st);
    if (!step && (v.baseline || v.options.policy == Policy::save)) {
      if (Status st = run_forward(v, s_.stream()); !st.ok()) return fail_row(v.row, st);
    }
    poison(step);
    if (step) {
      if (Status st = run_forward(v, s_.stream()); !st.ok()) return fail_row(v.row, st);
    }
    if (Status st = run_backward(v, s_.stream()); !st.ok()) return fail_row(v.row, st);
    CUDA_CHECK(cudaStreamSynchronize(s_.stream()));
    fill_tiles(v);
    check(v, step);
  } catch (const CudaError& e) {
    v.row.status = "ERROR";
    v.row.reason = e.what();
    s_.note_cuda_failure();
  }
}

// memory: the variant's saved activations, then its workspace, allocated alone between readings of
// the free device memory (synchronised first); then forward + backward once, checked; then freed.
void GradientCase::measure_variant(GradVariant& v, int64_t granularity) {
  nvtx3::scoped_range r{fmt::format("memory/{} {} tile={}", v.name, label_, v.row.tile).c_str()};
  Row& row = v.row;
  row.meminfo_granularity_bytes = granularity;
  row.cublas_workspace_bytes = v.baseline ? static_cast<int64_t>(s_.cublas().workspace_bytes()) : 0;
  try {
    const auto free_now = [] {
      size_t free_b = 0, total_b = 0;
      CUDA_CHECK(cudaDeviceSynchronize());
      CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      return static_cast<int64_t>(free_b);
    };
    const int64_t f0 = free_now();
    if (v.saved_bytes > 0) v.saved = DeviceBuffer(v.saved_bytes);
    const int64_t f1 = free_now();
    workspace_of(v) = DeviceBuffer(v.workspace_bytes);
    const int64_t f2 = free_now();
    row.measured_saved_bytes = f0 - f1;
    row.measured_workspace_bytes = f1 - f2;
    if (Status st = prepare(v); !st.ok()) {
      fail_row(row, st);
    } else {
      poison(true);
      Status st2 = run_forward(v, s_.stream());
      if (st2.ok()) st2 = run_backward(v, s_.stream());
      if (!st2.ok()) {
        fail_row(row, st2);
      } else {
        CUDA_CHECK(cudaStreamSynchronize(s_.stream()));
        fill_tiles(v);
        check(v, true);
      }
    }
  } catch (const CudaError& e) {
    row.status = "ERROR";
    row.reason = e.what();
    s_.note_cuda_failure();
  }
  v.forward_plan = baselines::Plan();
  v.backward_plan = baselines::BackwardPlan();
  v.fp8_forward_plan = baselines::Fp8Plan();
  v.fp8_backward_plan = baselines::Fp8BackwardPlan();
  v.saved = DeviceBuffer();
  v.forward_scratch = DeviceBuffer();
  workspace_of(v) = DeviceBuffer();
}

}  // namespace

int run_gradient_sweep(const std::vector<Case>& cases, const RunOptions& options,
                       const Json& resolved_config, const std::atomic<bool>& stop) {
  return with_session(options, stop, [&](Session& s) {
    return s.run(cases, resolved_config, [&s](const Case& c) { GradientCase(s, c).run(); });
  });
}

}  // namespace swiglu::bench
