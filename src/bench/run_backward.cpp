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
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
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
  DeviceBuffer saved;
  baselines::Plan forward_plan;
  baselines::BackwardPlan backward_plan;
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

std::vector<GradVariant> make_variants(const Session& s, const Case& c) {
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
      GradVariant var;
      var.name = std::string(to_string(v));
      var.baseline = baseline_of(v);
      var.saved_bytes = baselines::scratch_bytes(*var.baseline, p);
      var.workspace_bytes = baselines::backward_scratch_bytes(*var.baseline, p);
      var.row = s.base_row(c, var.name);
      var.row.policy = "save";
      var.row.gate_placement = "separate";
      var.row.tile_forward = "cublasLt";
      if (g.grads.dx) var.row.tile_dx = "cublasLt";
      if (g.grads.dw) var.row.tile_dw = "cublasLt";
      out.push_back(std::move(var));
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
            var.row.tile_choice = automatic ? "auto" : "forced";
            std::string reason;
            if (!resolve_tile(ft, fwd_compiled, p, traits, "forward", &var.forward_tile, &reason) ||
                !resolve_tile(dxt, dx_compiled, p, traits, "dx", &var.options.dx_tile, &reason) ||
                !resolve_tile(dwt, dw_compiled, p, traits, "dw", &var.options.dw_tile, &reason)) {
              var.row.status = "SKIP";
              var.row.reason = reason;
            }
            if (m.policy == Policy::recompute) var.options.recompute_tile = var.forward_tile;
            var.saved_bytes = m.policy == Policy::save ? static_cast<size_t>(p.batch * 2 * p.hidden) * es : 0;
            var.workspace_bytes = backward_workspace_bytes(p, var.options);
            out.push_back(std::move(var));
          }
        }
      }
    }
  }
  for (GradVariant& v : out) {
    v.row.grads = grads_name(g.grads);
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
// workspace every variant's backward uses in turn.
struct Tensors {
  DeviceBuffer x, w, bias, dz, z, dx, dw, dbias, workspace;
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
};

class GradientCase {
 public:
  GradientCase(Session& s, const Case& c)
      : s_(s), o_(s.options()), c_(c), p_(c.problem), label_(case_label(c)) {}
  void run();

 private:
  bool computes_reference();
  Status prepare(GradVariant& v, void* workspace);
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
  if (p_.dtype == DType::e4m3) {
    s_.emit_all(rows, "SKIP",
                "swiglubench does not run the FP8 backward yet (the library's backward_fp8: train --dtype fp8 and "
                "the PyTorch package do): --dtype fp8 runs check and forward");
    return;
  }
  const Grads g = o_.gradient.grads;
  const double es = static_cast<double>(dtype_size(p_.dtype));
  const double B = static_cast<double>(p_.batch), I = static_cast<double>(p_.in_features),
               D = static_cast<double>(p_.hidden);
  const bool memory = o_.op == Op::memory;
  const bool cpu_ref = use_cpu_reference(o_, forward_flops(p_) / 2);

  // Device memory: inputs and outputs, then the larger of the reference and the variants'
  // buffers (the GPU reference is freed before they are allocated).
  const double tensors = es * (B * p_.x_stride() + 2 * D * I + (p_.bias ? 2 * D : 0) + 2 * B * D +
                               (g.dx ? B * I : 0) + (g.dw ? 2 * D * I + (p_.bias ? 2 * D : 0) : 0));
  double ref_bytes = 0;
  if (!cpu_ref) {
    ref_bytes = static_cast<double>(baselines::reference_backward_scratch_bytes(p_)) +
                4.0 * (B * I + 2 * D * I + 2 * D) +
                static_cast<double>(baselines::reference_scratch_bytes(p_)) + 4.0 * B * D;
  }
  double variant_bytes = 0, max_workspace = 0;
  for (const GradVariant& v : variants_) {
    if (!v.row.status.empty()) continue;
    max_workspace = std::max(max_workspace, static_cast<double>(v.workspace_bytes));
    variant_bytes = memory ? std::max(variant_bytes, static_cast<double>(v.saved_bytes + v.workspace_bytes))
                           : variant_bytes + static_cast<double>(v.saved_bytes);
  }
  if (!memory) variant_bytes += max_workspace;
  if (s_.skip_if_too_large(tensors + std::max(ref_bytes, variant_bytes), rows)) return;

  HostInputs in;
  {
    nvtx3::scoped_range r{"inputs"};
    in = make_inputs(p_, o_.seed, true);
    t_.x = upload(in.x, p_.dtype);
    t_.w = upload(in.w, p_.dtype);
    if (p_.bias) t_.bias = upload(in.bias, p_.dtype);
    t_.dz = upload(in.dz, p_.dtype);
    t_.z = DeviceBuffer(static_cast<size_t>(B * D * es));
    if (g.dx) t_.dx = DeviceBuffer(static_cast<size_t>(B * I * es));
    if (g.dw) t_.dw = DeviceBuffer(static_cast<size_t>(2 * D * I * es));
    if (g.dw && p_.bias) t_.dbias = DeviceBuffer(static_cast<size_t>(2 * D * es));
  }
  {
    nvtx3::scoped_range r{"reference"};
    if (cpu_ref) {
      ref_.name = "cpu-fp64";
      if (o_.op != Op::backward) ref_.z.f64 = cpu_reference(p_, in.x, in.w, in.bias);
      CpuGrads cg = cpu_reference_backward(p_, in.x, in.w, in.bias, in.dz);
      ref_.dx.f64 = std::move(cg.dx);
      ref_.dw.f64 = std::move(cg.dw);
      ref_.dbias.f64 = std::move(cg.dbias);
    } else if (!computes_reference()) {
      return;
    }
  }
  in = {};

  if (memory) {
    // Why a constant: cudaMalloc maps device memory in 2 MiB pages, so cudaMemGetInfo moves in
    // those steps; a smaller allocation may land in a page an earlier one opened and read as 0. A
    // 1-byte probe would measure the allocator's state, not the granularity.
    const int64_t granularity = int64_t{2} << 20;
    for (GradVariant& v : variants_) {
      if (!v.row.status.empty() || s_.stopped() || s_.fatal()) continue;
      measure_variant(v, granularity);
    }
    // Ratios to cublas2's measured bytes in this case.
    const auto base = std::find_if(variants_.begin(), variants_.end(), [](const GradVariant& v) {
      return v.name == "cublas2" && v.row.measured_saved_bytes >= 0;
    });
    for (GradVariant& v : variants_) {
      if (v.row.measured_saved_bytes >= 0 && v.row.measured_workspace_bytes >= 0)
        v.row.measured_peak_bytes = v.row.measured_saved_bytes + v.row.measured_workspace_bytes;
    }
    for (GradVariant& v : variants_) {
      if (base == variants_.end() || v.row.measured_saved_bytes < 0) continue;
      if (base->row.measured_peak_bytes > 0 && v.row.measured_peak_bytes >= 0)
        v.row.peak_vs_cublas2 = static_cast<double>(v.row.measured_peak_bytes) / base->row.measured_peak_bytes;
      if (base->row.measured_saved_bytes > 0)
        v.row.saved_vs_cublas2 = static_cast<double>(v.row.measured_saved_bytes) / base->row.measured_saved_bytes;
      if (base->row.measured_workspace_bytes > 0)
        v.row.workspace_vs_cublas2 = static_cast<double>(v.row.measured_workspace_bytes) / base->row.measured_workspace_bytes;
    }
  } else {
    size_t ws = 0;
    for (const GradVariant& v : variants_)
      if (v.row.status.empty()) ws = std::max(ws, v.workspace_bytes);
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
    const double flops = backward_flops(p_, g) + (step ? forward_flops(p_) : 0.0);
    s_.profile_or_time(label_, timed, flops, kNaN);
  }
  // Why: as in forward, an interrupted case is dropped whole.
  if (s_.stopped()) return;
  s_.emit_all(rows, "ERROR", "not run: an earlier CUDA error left the device unusable");
}

// The fp32 GPU reference (large shapes): Z (step, memory) and the gradients, copied to the host.
// On failure every row becomes ERROR and it returns false.
bool GradientCase::computes_reference() {
  const Grads g = o_.gradient.grads;
  const int64_t B = p_.batch, I = p_.in_features, D = p_.hidden;
  ref_.name = "gpu-fp32";
  const auto to_host = [](const DeviceBuffer& d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d.get(), n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  };
  Status st;
  if (o_.op != Op::backward) {
    DeviceBuffer h(baselines::reference_scratch_bytes(p_));
    DeviceBuffer zr(static_cast<size_t>(B * D) * sizeof(float));
    st = baselines::gpu_reference(s_.cublas(), p_, t_.x.get(), t_.w.get(), t_.bias.get(),
                                  h.as<float>(), zr.as<float>(), s_.stream());
    if (st.ok()) ref_.z.f32 = to_host(zr, static_cast<size_t>(B * D));
  }
  if (st.ok()) {
    DeviceBuffer scratch(baselines::reference_backward_scratch_bytes(p_));
    DeviceBuffer dx(static_cast<size_t>(B * I) * sizeof(float));
    DeviceBuffer dw(static_cast<size_t>(2 * D * I) * sizeof(float));
    DeviceBuffer db(p_.bias ? static_cast<size_t>(2 * D) * sizeof(float) : 0);
    st = baselines::gpu_reference_backward(s_.cublas(), p_, t_.x.get(), t_.w.get(), t_.bias.get(),
                                           t_.dz.get(), scratch.get(), dx.as<float>(),
                                           dw.as<float>(), db.as<float>(), s_.stream());
    if (st.ok()) {
      if (g.dx) ref_.dx.f32 = to_host(dx, static_cast<size_t>(B * I));
      if (g.dw) ref_.dw.f32 = to_host(dw, static_cast<size_t>(2 * D * I));
      if (g.dw && p_.bias) ref_.dbias.f32 = to_host(db, static_cast<size_t>(2 * D));
    }
  }
  if (st.ok()) return true;
  std::vector<Row*> rows;
  for (GradVariant& v : variants_) rows.push_back(&v.row);
  s_.emit_all(rows, "ERROR", "GPU reference failed: " + st.message);
  return false;
}

// Allocates the variant's saved activations and, for the baselines, builds its plans.
Status GradientCase::prepare(GradVariant& v, void* workspace) {
  if (v.saved_bytes > 0 && v.saved.bytes() == 0) v.saved = DeviceBuffer(v.saved_bytes);
  if (!v.baseline) return Status::success();
  const Grads g = o_.gradient.grads;
  if (Status st = baselines::Plan::create(s_.cublas(), *v.baseline, p_, t_.x.get(), t_.w.get(),
                                          t_.bias.get(), t_.z.get(), v.saved.get(), &v.forward_plan);
      !st.ok())
    return st;
  return baselines::BackwardPlan::create(s_.cublas(), *v.baseline, p_, t_.x.get(), t_.w.get(),
                                         v.saved.get(), t_.dz.get(), g, t_.dx.get(), t_.dw.get(),
                                         t_.dbias.get(), workspace, &v.backward_plan);
}

Status GradientCase::run_forward(GradVariant& v, cudaStream_t st) {
  if (v.baseline) return v.forward_plan.run(st);
  ForwardOptions fo;
  fo.tile = v.forward_tile;
  fo.saved = v.options.policy == Policy::save ? v.saved.get() : nullptr;
  return forward(p_, t_.x.get(), t_.w.get(), t_.bias.get(), t_.z.get(), st, fo, &v.forward_used);
}

Status GradientCase::run_backward(GradVariant& v, cudaStream_t st) {
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
  for (const DeviceBuffer* b : {z ? &t_.z : nullptr, &t_.dx, &t_.dw, &t_.dbias})
    if (b != nullptr && b->bytes() > 0)
      CUDA_CHECK(cudaMemsetAsync(b->get(), kPoisonByte, b->bytes(), s_.stream()));
}

std::vector<Output> GradientCase::outputs(const GradVariant& v, bool with_z) const {
  const Grads g = o_.gradient.grads;
  const int64_t B = p_.batch, I = p_.in_features, D = p_.hidden;
  // The baselines store G and U, and may reduce split-K slices in the dtype; the fused kernels do not.
  const Tolerance dx_tol = gradient_tolerance(p_, 2 * D, v.baseline ? v.backward_plan.dx_slices() : 1);
  const Tolerance dw_tol = gradient_tolerance(p_, B, v.baseline ? v.backward_plan.dw_slices() : 1);
  const Tolerance z_tol =
      tolerance(p_, v.baseline ? Rounding{1, v.forward_plan.output_type_slices()} : kFusedRounding);
  std::vector<Output> out;
  if (with_z) out.push_back({"z", &t_.z, static_cast<size_t>(B * D), D, z_tol, &ref_.z, &Row::rel_l2_z});
  if (g.dx) out.push_back({"dx", &t_.dx, static_cast<size_t>(B * I), I, dx_tol, &ref_.dx, &Row::rel_l2_dx});
  if (g.dw) {
    out.push_back({"dw", &t_.dw, static_cast<size_t>(2 * D * I), p_.layout == Layout::linear ? I : 2 * D,
                   dw_tol, &ref_.dw, &Row::rel_l2_dw});
    if (p_.bias) out.push_back({"dbias", &t_.dbias, static_cast<size_t>(2 * D), 2 * D, dw_tol, &ref_.dbias, &Row::rel_l2_dbias});
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
    const std::vector<float> got = download(out.device->get(), out.n, p_.dtype);
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
    const std::vector<float> got = download(out.device->get(), out.n, p_.dtype);
    const ParityResult pr = out.ref->f64.empty() ? compare(got, out.ref->f32, out.tol)
                                                 : compare(got, out.ref->f64, out.tol);
    if (!pr.pass)
      return fmt::format("parity: {} {}; {}", out.name, pr.summary(), pr.tolerance());
  }
  return {};
}

// What ran, from the library's reports, into the row's tile columns.
void GradientCase::fill_tiles(GradVariant& v) {
  if (v.baseline) return;
  Row& r = v.row;
  const bool forward_ran = o_.op != Op::backward || v.options.policy == Policy::save;
  r.tile_forward = forward_ran ? tile_name(v.forward_used) : "";
  r.tile_recompute = tile_name(v.backward_used.recompute);
  r.tile_dx = tile_name(v.backward_used.dx);
  r.tile_dw = tile_name(v.backward_used.dw);
  set_tile_label(r, o_.op != Op::backward);
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
    if (Status st = prepare(v, t_.workspace.get()); !st.ok()) return fail_row(v.row, st);
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
    t_.workspace = DeviceBuffer(v.workspace_bytes);
    const int64_t f2 = free_now();
    row.measured_saved_bytes = f0 - f1;
    row.measured_workspace_bytes = f1 - f2;
    if (Status st = prepare(v, t_.workspace.get()); !st.ok()) {
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
  v.saved = DeviceBuffer();
  t_.workspace = DeviceBuffer();
}

}  // namespace

int run_gradient_sweep(const std::vector<Case>& cases, const RunOptions& options,
                       const Json& resolved_config, const std::atomic<bool>& stop) {
  return with_session(options, stop, [&](Session& s) {
    return s.run(cases, resolved_config, [&s](const Case& c) { GradientCase(s, c).run(); });
  });
}

}  // namespace swiglu::bench
