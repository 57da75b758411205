#include "bench/run.hpp"

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "baselines/cublas_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/parity.hpp"
#include "bench/run_internal.hpp"
#include "bench/writers.hpp"
#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/host_data.hpp"
#include "common/json.hpp"
#include "common/provenance.hpp"
#include "common/stats.hpp"

namespace swiglu::bench {

using common::Json;
using common::string_list;
using common::write_file_atomic;
using common::check_result_name;
using common::CudaError;
using common::DeviceInfo;
using common::query_device;
using common::current_sm_clock_mhz;
using common::DeviceBuffer;
using common::GraphExec;
using common::Summary;
using common::summarize;
using common::uniform_values;
using common::to_dtype_bytes;
using common::from_dtype_bytes;
using common::kPoisonByte;
using common::git_sha;
using common::iso_time_utc;
using common::kExitOk;
using common::kExitParity;
using common::kExitError;
using common::kExitInterrupted;

double forward_flops(const Problem& p) {
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.in_features) * 2.0 *
         static_cast<double>(p.hidden);
}

double forward_min_bytes(const Problem& p) {
  const double B = static_cast<double>(p.batch), I = static_cast<double>(p.in_features),
               D = static_cast<double>(p.hidden);
  return static_cast<double>(dtype_size(p.dtype)) *
         (B * I + 2 * D * I + B * D + (p.bias ? 2 * D : 0));
}

double backward_flops(const Problem& p, Grads grads) {
  const double gemm = 2.0 * static_cast<double>(p.batch) * 2.0 * static_cast<double>(p.hidden) *
                      static_cast<double>(p.in_features);
  return (grads.dx ? gemm : 0.0) + (grads.dw ? gemm : 0.0);
}

namespace {

std::string version_string(int v) { return fmt::format("{}.{}", v / 1000, (v % 1000) / 10); }

Json device_json(const DeviceInfo& d) {
  Json j = Json::object();
  j.set("index", d.index);
  j.set("name", d.name);
  j.set("compute_capability", fmt::format("{}.{}", d.cc_major, d.cc_minor));
  j.set("sm_count", d.sm_count);
  j.set("l2_bytes", d.l2_bytes);
  j.set("memory_bytes", d.memory_bytes);
  j.set("max_sm_clock_mhz", d.max_sm_clock_mhz);
  j.set("max_mem_clock_mhz", d.max_mem_clock_mhz);
  j.set("memory_bus_bits", d.memory_bus_bits);
  j.set("pci_bus_id", d.pci_bus_id);
  j.set("driver", d.driver_release.empty() ? Json() : Json(d.driver_release));
  j.set("cuda_driver_api", version_string(d.driver_version));
  j.set("cuda_runtime", version_string(d.runtime_version));
  j.set("cublas", d.cublas_version);
  return j;
}

bool is_baseline(const std::string& variant) { return variant == "cublas2" || variant == "cublas1"; }

}  // namespace

namespace detail {

std::string case_label(const Case& c) {
  const Problem& p = c.problem;
  const bool math = p.dtype == DType::f32 && p.math != Math::exact;
  return fmt::format("B={} I={} D={} {}{}{}{}{}", p.batch, p.in_features, p.hidden,
                     to_string(p.dtype), p.layout == Layout::packed ? " packed" : "",
                     p.bias ? " bias" : "", math ? " " : "", math ? to_string(p.math) : "");
}

baselines::Variant baseline_of(Variant v) {
  return v == Variant::cublas1 ? baselines::Variant::cublas1 : baselines::Variant::cublas2;
}

HostInputs make_inputs(const Problem& p, uint64_t seed, bool with_dz) {
  const uint64_t case_seed = seed ^ (static_cast<uint64_t>(p.batch) * 0x9E3779B97F4A7C15ull) ^
                             (static_cast<uint64_t>(p.in_features) << 20) ^
                             (static_cast<uint64_t>(p.hidden) << 40) ^
                             static_cast<uint64_t>(p.dtype) ^ (static_cast<uint64_t>(p.layout) << 4);
  const float wscale = 1.0f / std::sqrt(static_cast<float>(p.in_features));
  HostInputs in;
  in.x = uniform_values(static_cast<size_t>(p.batch * p.x_stride()), -1.0f, 1.0f, case_seed + 1, p.dtype);
  in.w = uniform_values(static_cast<size_t>(2 * p.hidden * p.in_features), -wscale, wscale, case_seed + 2, p.dtype);
  if (p.bias) in.bias = uniform_values(static_cast<size_t>(2 * p.hidden), -wscale, wscale, case_seed + 3, p.dtype);
  if (with_dz) in.dz = uniform_values(static_cast<size_t>(p.batch * p.hidden), -1.0f, 1.0f, case_seed + 4, p.dtype);
  return in;
}

DeviceBuffer upload(const std::vector<float>& values, DType dtype) {
  const auto bytes = to_dtype_bytes(values, dtype);
  DeviceBuffer d(bytes.size());
  if (!bytes.empty()) CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  return d;
}

std::vector<float> download(const void* device, size_t n, DType dtype) {
  std::vector<unsigned char> raw(n * dtype_size(dtype));
  if (!raw.empty()) CUDA_CHECK(cudaMemcpy(raw.data(), device, raw.size(), cudaMemcpyDeviceToHost));
  return from_dtype_bytes(raw.data(), n, dtype);
}

bool use_cpu_reference(const RunOptions& o, double macs) {
  return o.reference == ReferenceMode::cpu ||
         (o.reference == ReferenceMode::automatic &&
          macs <= static_cast<double>(o.cpu_reference_max_macs));
}

void set_parity(Row& row, const ParityResult& pr) {
  row.rel_l2 = pr.rel_l2;
  row.max_abs = pr.max_abs;
  row.max_rel = pr.max_rel;
  row.worst_index = pr.worst_index;
  row.worst_got = pr.worst_got;
  row.worst_expected = pr.worst_expected;
}

Session::Session(const RunOptions& o, const DeviceInfo& dev, const std::atomic<bool>& stop)
    : o_(o), dev_(dev), stop_(stop) {}

Row Session::base_row(const Case& c, const std::string& variant) const {
  Row r;
  r.op = o_.op == "check" ? "forward" : o_.op;
  r.variant = variant;
  set_problem(r, c.problem);
  r.cold_l2 = o_.timing.cold;
  r.cuda_graph = o_.timing.graph;
  r.tile = is_baseline(variant) ? "cublasLt" : "";
  return r;
}

void Session::emit(Row& r) {
  rows_.push_back(r);
  std::fputs(markdown_row(r).c_str(), stdout);
  std::fflush(stdout);
  if (csv_) csv_->write(r);
  if (json_) json_->add(r);
}

void Session::emit_all(const std::vector<Row*>& rows, const std::string& status,
                       const std::string& reason) {
  for (Row* r : rows) {
    if (r->status.empty()) {
      r->status = status;
      r->reason = reason;
    }
    emit(*r);
  }
}

bool Session::skip_if_too_large(double need_bytes, const std::vector<Row*>& rows) {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double margin = 256.0 * 1024 * 1024;
  if (need_bytes + margin <= static_cast<double>(free_b)) return false;
  emit_all(rows, "SKIP",
           fmt::format("needs {:.1f} GiB, device has {:.1f} GiB free of {:.1f} GiB",
                       need_bytes / kGiB, free_b / kGiB, total_b / kGiB));
  return true;
}

void Session::note_cuda_failure() {
  if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) fatal_ = true;
}

std::vector<TimedRow> Session::graph_replays(const std::string& label,
                                             const std::vector<TimedRow>& items,
                                             std::vector<GraphExec>& graphs) {
  std::vector<TimedRow> out;
  for (const TimedRow& item : items) {
    if (stopped()) break;
    Row& row = *item.row;
    nvtx3::scoped_range r{fmt::format("capture/{} {} tile={}", row.variant, label, row.tile).c_str()};
    std::string reason;
    GraphExec exec = capture_graph(stream(), item.run, &reason);
    if (!exec) {
      row.status = "SKIP";
      row.reason = "CUDA graph capture failed, not timed: " + reason;
      std::fprintf(stderr, "SKIP %s %s tile=%s: %s\n", row.variant.c_str(), label.c_str(),
                   row.tile.c_str(), row.reason.c_str());
      continue;
    }
    const cudaGraphExec_t g = exec.get();
    const auto replay = [g](cudaStream_t st) { CUDA_CHECK(cudaGraphLaunch(g, st)); };
    if (item.poison && item.verify) {
      // Why: proves the graph computes what the checked launch computed, on poisoned outputs.
      item.poison(stream());
      replay(stream());
      CUDA_CHECK(cudaStreamSynchronize(stream()));
      if (const std::string bad = item.verify(); !bad.empty()) {
        row.status = "FAIL";
        row.reason = "CUDA graph replay: " + bad;
        std::fprintf(stderr, "FAIL %s %s tile=%s: %s\n", row.variant.c_str(), label.c_str(),
                     row.tile.c_str(), row.reason.c_str());
        continue;
      }
    }
    graphs.push_back(std::move(exec));
    out.push_back({item.row, replay, {}, {}});
  }
  return out;
}

void Session::profile_or_time(const std::string& label, const std::vector<TimedRow>& in_items,
                              double flops, double bytes) {
  if (in_items.empty() || fatal_ || stopped()) return;
  try {
    // Owned here: the graphs outlive the profiling or timing that replays them.
    std::vector<GraphExec> graphs;
    const std::vector<TimedRow> items = o_.timing.graph ? graph_replays(label, in_items, graphs) : in_items;
    if (items.empty() || stopped()) return;
    if (o_.profile) {
      for (const TimedRow& item : items) {
        nvtx3::scoped_range r{fmt::format("profile/{} {} tile={}", item.row->variant, label, item.row->tile).c_str()};
        CUDA_CHECK(cudaProfilerStart());
        item.run(stream());
        CUDA_CHECK(cudaStreamSynchronize(stream()));
        CUDA_CHECK(cudaProfilerStop());
      }
      return;
    }
    std::vector<TimedVariant> tv;
    for (const TimedRow& item : items) {
      TimedVariant t;
      t.name = item.row->variant;
      t.run = item.run;
      tv.push_back(std::move(t));
    }
    nvtx3::scoped_range r{fmt::format("time/{}", label).c_str()};
    const double clock = timer_->measure(tv, o_.timing, &stop_);
    std::map<std::string, double> baseline_ms;
    for (size_t i = 0; i < tv.size(); ++i) {
      if (tv[i].samples_ms.empty()) continue;
      const Summary s = summarize(tv[i].samples_ms);
      Row& row = *items[i].row;
      row.median_ms = s.median;
      row.p25_ms = s.p25;
      row.p75_ms = s.p75;
      row.min_ms = s.min;
      row.noise = s.rel_noise;
      row.samples = s.n;
      row.tflops = flops / (s.median * 1e-3) / 1e12;
      row.gbps = bytes / (s.median * 1e-3) / 1e9;
      row.sm_clock_mhz = clock > 0 ? clock : kNaN;
      if (s.rel_noise > o_.timing.max_noise)
        row.reason = fmt::format("noisy: IQR/median {:.1f}% > {:.1f}%", 100 * s.rel_noise, 100 * o_.timing.max_noise);
      if (is_baseline(row.variant)) baseline_ms[row.variant] = s.median;
    }
    for (const TimedRow& item : items) {
      Row& row = *item.row;
      if (is_baseline(row.variant) || std::isnan(row.median_ms)) continue;
      if (auto it = baseline_ms.find("cublas2"); it != baseline_ms.end())
        row.speedup_vs_cublas2 = it->second / row.median_ms;
      if (auto it = baseline_ms.find("cublas1"); it != baseline_ms.end())
        row.speedup_vs_cublas1 = it->second / row.median_ms;
    }
  } catch (const CudaError& e) {
    for (const TimedRow& item : in_items) {
      item.row->status = "ERROR";
      item.row->reason = std::string("timing: ") + e.what();
    }
    note_cuda_failure();
  }
}

Json Session::provenance(const Json& resolved_config, const GemmPeak* peak) const {
  Json prov = Json::object();
  prov.set("tool", "swiglubench");
  prov.set("version", SWIGLU_VERSION);
  prov.set("git_sha", git_sha());
  prov.set("started_utc", iso_time_utc());
  prov.set("argv", string_list(o_.argv));
  prov.set("device", device_json(dev_));
  Json timing = Json::object();
  timing.set("cold_l2", o_.timing.cold);
  timing.set("cuda_graph", o_.timing.graph);
  timing.set("warmup", o_.timing.warmup);
  timing.set("min_samples", o_.timing.min_samples);
  timing.set("max_samples", o_.timing.max_samples);
  timing.set("min_time_s", o_.timing.min_time_s);
  timing.set("max_noise", o_.timing.max_noise);
  timing.set("flush_bytes", static_cast<int64_t>(std::max<int64_t>(2 * dev_.l2_bytes, int64_t{8} << 20)));
  prov.set("timing", timing);
  prov.set("seed", static_cast<int64_t>(o_.seed));
  prov.set("config", resolved_config);
  if (is_gradient_op(o_.op)) {
    const GradientOptions& g = o_.gradient;
    Json b = Json::object();
    Json grads = Json::array();
    if (g.grads.dx) grads.push_back("dx");
    if (g.grads.dw) grads.push_back("dw");
    b.set("grads", grads);
    Json policies = Json::array();
    for (Policy pol : g.policies) policies.push_back(to_string(pol));
    b.set("policies", policies);
    std::string placements;
    for (GatePlacement pl : g.placements) placements += (placements.empty() ? "" : ",") + std::string(to_string(pl));
    b.set("gate_placement", placements);
    b.set("dx_tiles", string_list(words(g.dx_tiles)));
    b.set("dw_tiles", string_list(words(g.dw_tiles)));
    prov.set("gradient", b);
  }
  if (peak != nullptr) {
    Json pk = Json::object();
    pk.set("dtype", peak->dtype);
    pk.set("m", peak->n);
    pk.set("n", peak->n);
    pk.set("k", peak->n);
    pk.set("median_ms", peak->median_ms);
    pk.set("tflops", peak->tflops);
    prov.set("peak", pk);
  }
  return prov;
}

int Session::run(const std::vector<Case>& cases, const Json& resolved_config,
                 const std::function<void(const Case&)>& run_case) {
  CUDA_CHECK(cudaSetDevice(dev_.index));
  if (Status s = cublas_.init(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message.c_str());
    return kExitError;
  }
  timer_ = std::make_unique<Timer>(dev_, stream_.get());

  const std::string dir = o_.out_dir.empty() ? "results/" + dev_.slug : o_.out_dir;
  check_result_name(o_.name);  // with_session checked it before the device; the stem needs it
  std::filesystem::create_directories(dir);
  const std::string stem = fmt::format("{}/{}_{}", dir, o_.op, o_.name);
  const bool timed = o_.op != "check" && o_.op != "memory";
  GemmPeak peak;
  const bool have_peak = timed && !o_.profile && measure_gemm_peak(dev_, cublas_, stream_.get(), &peak);
  const std::string row_op = o_.op == "check" ? "forward" : o_.op;
  if (o_.write_csv) csv_ = std::make_unique<CsvWriter>(stem + ".csv", row_op);
  if (o_.write_json) json_ = std::make_unique<JsonWriter>(stem + ".json", provenance(resolved_config, have_peak ? &peak : nullptr));

  const std::string l2 = !timed ? std::string("no timing")
                                : std::string(o_.timing.cold ? "cold L2" : "hot L2") +
                                      (o_.timing.graph ? ", CUDA-graph replays" : "");
  std::printf("swiglubench %s on %s (sm_%d%d, %d SMs, L2 %.0f MiB), %zu cases, %s\n\n",
              o_.op.c_str(), dev_.name.c_str(), dev_.cc_major, dev_.cc_minor, dev_.sm_count,
              dev_.l2_bytes / 1048576.0, cases.size(), l2.c_str());
  if (have_peak) {
    std::printf("measured peak: %s GEMM %lldx%lldx%lld at %.0f TFLOP/s\n\n", peak.dtype.c_str(),
                static_cast<long long>(peak.n), static_cast<long long>(peak.n),
                static_cast<long long>(peak.n), peak.tflops);
  }
  std::fputs(markdown_header(row_op, o_.timing.graph).c_str(), stdout);
  for (const Case& c : cases) {
    if (stopped() || fatal_) break;
    try {
      run_case(c);
    } catch (const CudaError& e) {
      Row r = base_row(c, "fused");
      r.status = "ERROR";
      r.reason = e.what();
      emit(r);
      note_cuda_failure();
    }
  }
  if (json_) {
    // An interrupted or broken sweep keeps its finished rows, marked incomplete.
    if (!stopped() && !fatal_) {
      json_->finish();
    } else {
      json_->flush();
    }
  }
  if (o_.write_md) {
    const std::string md =
        fmt::format("swiglubench {} on {} (sm_{}{}, {} SMs), {}, git {}\n\n", o_.op, dev_.name,
                    dev_.cc_major, dev_.cc_minor, dev_.sm_count, l2, git_sha()) +
        (rows_.empty() ? markdown_header(row_op, o_.timing.graph) : markdown_table(rows_));
    try {
      write_file_atomic(stem + ".md", md);
    } catch (const std::runtime_error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return kExitError;
    }
  }

  size_t pass = 0, fail = 0, skip = 0, err = 0;
  for (const Row& r : rows_) {
    if (r.status == "PASS") ++pass;
    else if (r.status == "FAIL") ++fail;
    else if (r.status == "SKIP") ++skip;
    else ++err;
  }
  std::printf("\n%zu rows: %zu passed, %zu failed, %zu skipped, %zu errors\n", rows_.size(), pass,
              fail, skip, err);
  std::printf("results: %s.{%s%s%s}\n", stem.c_str(), o_.write_csv ? "csv," : "",
              o_.write_json ? "json," : "", o_.write_md ? "md" : "");
  if (stopped()) {
    std::printf("interrupted: %zu finished rows kept\n", rows_.size());
    return kExitInterrupted;
  }
  if (fail > 0) return kExitParity;
  if (err > 0 || fatal_) return kExitError;
  return kExitOk;
}

int with_session(const RunOptions& options, const std::atomic<bool>& stop,
                 const std::function<int(Session&)>& body) {
  try {
    // Before the device: a name that would put result files outside --out ends the run here.
    check_result_name(options.name);
    const DeviceInfo dev = query_device(options.device);
    Session session(options, dev, stop);
    return body(session);
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

}  // namespace detail

namespace {

using detail::Session;

// One variant of a forward case: what runs, and what came of it.
struct ForwardVariant {
  Variant kind = Variant::fused;
  std::optional<TileConfig> tile;
  baselines::Plan plan;
  Row row;
  bool runnable = false;  // checked and passed
};

std::vector<ForwardVariant> make_variants(const Session& s, const Case& c) {
  const DeviceTraits traits = s.traits();
  const Problem& p = c.problem;
  std::vector<ForwardVariant> out;
  for (const Variant v : c.variants) {
    if (v != Variant::fused) {
      ForwardVariant var;
      var.kind = v;
      var.row = s.base_row(c, std::string(to_string(v)));
      out.push_back(std::move(var));
      continue;
    }
    std::vector<TileChoice> choices;
    for (const TileChoice& t : c.tiles) {
      if (t.kind != TileChoice::Kind::all) {
        choices.push_back(t);
        continue;
      }
      for (const TileConfig& tc : forward_tiles(p, traits)) choices.push_back(TileChoice::named(tc));
    }
    for (const TileChoice& t : choices) {
      ForwardVariant var;
      var.row = s.base_row(c, "fused");
      var.row.tile_choice = t.kind == TileChoice::Kind::automatic ? "auto" : "forced";
      if (t.kind == TileChoice::Kind::automatic) {
        TileConfig tc;
        if (Status st = choose_forward_tile(p, traits, &tc); !st.ok()) {
          var.row.status = "SKIP";
          var.row.reason = st.message;
          var.row.tile = "auto";
        } else {
          var.tile = tc;
          var.row.tile = tc.name();
        }
      } else {
        const auto avail = forward_tiles(p, traits);
        var.row.tile = t.word;
        if (std::find(avail.begin(), avail.end(), t.tile) == avail.end()) {
          var.row.status = "SKIP";
          var.row.reason = fmt::format("tile {} is not compiled for {}/{} on sm_{}{}", t.word,
                                       to_string(p.dtype), to_string(p.layout), traits.cc_major,
                                       traits.cc_minor);
        } else {
          var.tile = t.tile;
        }
      }
      // The same tile twice (auto picked a listed one) runs once.
      const bool dup = std::any_of(out.begin(), out.end(), [&](const ForwardVariant& o) {
        return o.kind == Variant::fused && o.tile && var.tile && *o.tile == *var.tile;
      });
      if (!dup) out.push_back(std::move(var));
    }
  }
  return out;
}

void run_forward_case(Session& s, const Case& c) {
  const RunOptions& o = s.options();
  const Problem& p = c.problem;
  const std::string label = detail::case_label(c);
  nvtx3::scoped_range case_range{fmt::format("{}/case {}", o.op, label).c_str()};
  std::vector<ForwardVariant> variants = make_variants(s, c);
  std::vector<Row*> rows;
  for (ForwardVariant& v : variants) rows.push_back(&v.row);
  const size_t es = dtype_size(p.dtype);

  // Device memory this case needs, against what is free now.
  const bool any_baseline = std::any_of(variants.begin(), variants.end(),
                                        [](const ForwardVariant& v) { return v.kind != Variant::fused; });
  const bool use_cpu_ref = detail::use_cpu_reference(o, forward_flops(p) / 2);
  const double x_bytes = static_cast<double>(p.batch) * p.x_stride() * es;
  const double w_bytes = 2.0 * p.hidden * p.in_features * es;
  const double z_bytes = static_cast<double>(p.batch) * p.hidden * es;
  const double scratch = any_baseline ? 2.0 * p.batch * p.hidden * es : 0.0;
  const double ref_bytes =
      use_cpu_ref ? 0.0 : static_cast<double>(p.batch) * p.hidden * (2 * 4 + 4);
  if (s.skip_if_too_large(x_bytes + w_bytes + 2.0 * p.hidden * es + z_bytes + scratch + ref_bytes, rows))
    return;

  DeviceBuffer x, w, bias, z, scratch_buf;
  detail::HostInputs in;
  {
    nvtx3::scoped_range r{"inputs"};
    in = detail::make_inputs(p, o.seed, false);
    x = detail::upload(in.x, p.dtype);
    w = detail::upload(in.w, p.dtype);
    if (p.bias) bias = detail::upload(in.bias, p.dtype);
    z = DeviceBuffer(static_cast<size_t>(z_bytes));
    if (any_baseline) scratch_buf = DeviceBuffer(static_cast<size_t>(scratch));
  }

  // The reference: fp64 on the CPU, or the fp32-accumulating cuBLAS path for large shapes.
  std::vector<double> ref64;
  std::vector<float> ref32;
  std::string ref_name;
  {
    nvtx3::scoped_range r{"reference"};
    if (use_cpu_ref) {
      ref64 = cpu_reference(p, in.x, in.w, in.bias);
      ref_name = "cpu-fp64";
    } else {
      DeviceBuffer h(baselines::reference_scratch_bytes(p));
      DeviceBuffer zr(static_cast<size_t>(p.batch * p.hidden) * sizeof(float));
      if (Status st = baselines::gpu_reference(s.cublas(), p, x.get(), w.get(), bias.get(),
                                               h.as<float>(), zr.as<float>(), s.stream());
          !st.ok()) {
        s.emit_all(rows, "ERROR", "GPU reference failed: " + st.message);
        return;
      }
      ref32.resize(static_cast<size_t>(p.batch * p.hidden));
      CUDA_CHECK(cudaMemcpy(ref32.data(), zr.get(), ref32.size() * sizeof(float), cudaMemcpyDeviceToHost));
      ref_name = "gpu-fp32";
    }
  }
  in = {};

  // Prepare, then check each variant on a poisoned output.
  // The baselines store G and U in the dtype between their launches, and may reduce split-K
  // slices in it; the fused kernel does neither.
  const auto tol_of = [&p](const ForwardVariant& v) {
    return tolerance(p, v.kind == Variant::fused ? kFusedRounding
                                                 : Rounding{1, v.plan.output_type_slices()});
  };
  const auto launch = [&](ForwardVariant& v, cudaStream_t st) {
    if (v.kind == Variant::fused) {
      ForwardOptions fo;
      fo.tile = v.tile;
      if (Status r = forward(p, x.get(), w.get(), bias.get(), z.get(), st, fo); !r.ok())
        throw CudaError(r.message);
    } else if (Status r = v.plan.run(st); !r.ok()) {
      throw CudaError(r.message);
    }
  };
  const auto poison = [&z](cudaStream_t st) {
    CUDA_CHECK(cudaMemsetAsync(z.get(), kPoisonByte, z.bytes(), st));
  };
  // Z (after a synchronisation) against the reference.
  const auto check_z = [&](const ForwardVariant& v) {
    const std::vector<float> got = detail::download(z.get(), static_cast<size_t>(p.batch * p.hidden), p.dtype);
    return use_cpu_ref ? compare(got, ref64, tol_of(v)) : compare(got, ref32, tol_of(v));
  };
  const auto mismatch = [&](const ParityResult& pr) {
    const int64_t m = pr.worst_index >= 0 ? pr.worst_index / p.hidden : -1;
    const int64_t n = pr.worst_index >= 0 ? pr.worst_index % p.hidden : -1;
    return fmt::format("parity: {} at (row {}, col {}); {}", pr.summary(), m, n, pr.tolerance());
  };
  for (ForwardVariant& v : variants) {
    if (!v.row.status.empty() || s.stopped()) continue;
    nvtx3::scoped_range r{fmt::format("check/{} {} tile={}", v.row.variant, label, v.row.tile).c_str()};
    v.row.reference = ref_name;
    v.row.tol_rel_l2 = tol_of(v).rel_l2;
    try {
      if (v.kind != Variant::fused) {
        if (Status st = baselines::Plan::create(s.cublas(), detail::baseline_of(v.kind), p, x.get(), w.get(), bias.get(),
                                                z.get(), scratch_buf.get(), &v.plan);
            !st.ok()) {
          v.row.status = st.code == StatusCode::unsupported ? "SKIP" : "ERROR";
          v.row.reason = st.message;
          continue;
        }
      }
      poison(s.stream());
      launch(v, s.stream());
      CUDA_CHECK(cudaStreamSynchronize(s.stream()));
      const ParityResult pr = check_z(v);
      detail::set_parity(v.row, pr);
      v.row.status = pr.pass ? "PASS" : "FAIL";
      v.runnable = pr.pass;
      if (!pr.pass) {
        v.row.reason = mismatch(pr);
        std::fprintf(stderr, "FAIL %s %s tile=%s: %s\n", v.row.variant.c_str(), label.c_str(),
                     v.row.tile.c_str(), v.row.reason.c_str());
      }
    } catch (const CudaError& e) {
      v.row.status = "ERROR";
      v.row.reason = e.what();
      s.note_cuda_failure();
    }
    if (s.fatal()) break;
  }

  // Profile or time what passed.
  if (o.op == "forward") {
    std::vector<detail::TimedRow> timed;
    for (ForwardVariant& v : variants) {
      const auto verify = [&check_z, &mismatch, &v] {
        const ParityResult pr = check_z(v);
        return pr.pass ? std::string() : mismatch(pr);
      };
      if (v.runnable)
        timed.push_back({&v.row, [&launch, &v](cudaStream_t st) { launch(v, st); }, poison, verify});
    }
    s.profile_or_time(label, timed, forward_flops(p), forward_min_bytes(p));
  }
  // Why: an interrupt may have cut the checks or the sampling of this case short; its rows would
  // carry fewer samples than asked for, so the case is dropped whole and only finished ones stay.
  if (s.stopped()) return;
  s.emit_all(rows, "ERROR", "not run: an earlier CUDA error left the device unusable");
}

}  // namespace

int run_sweep(const std::vector<Case>& cases, const RunOptions& options, const Json& resolved_config,
              const std::atomic<bool>& stop) {
  return detail::with_session(options, stop, [&](Session& s) {
    return s.run(cases, resolved_config, [&s](const Case& c) { run_forward_case(s, c); });
  });
}

int print_info(int device) {
  try {
    const DeviceInfo d = query_device(device);
    std::printf("device %d: %s\n", d.index, d.name.c_str());
    std::printf("  compute capability  %d.%d\n", d.cc_major, d.cc_minor);
    std::printf("  SMs                 %d\n", d.sm_count);
    std::printf("  L2 cache            %.1f MiB\n", d.l2_bytes / 1048576.0);
    std::printf("  memory              %.1f GiB, %d-bit bus, %d MHz\n", d.memory_bytes / detail::kGiB,
                d.memory_bus_bits, d.max_mem_clock_mhz);
    const int cur = current_sm_clock_mhz(d);
    std::printf("  SM clock            max %d MHz, now %s\n", d.max_sm_clock_mhz,
                cur > 0 ? fmt::format("{} MHz", cur).c_str() : "unknown (no NVML)");
    std::printf("  driver              %s (CUDA %s)\n",
                d.driver_release.empty() ? "unknown" : d.driver_release.c_str(),
                version_string(d.driver_version).c_str());
    std::printf("  CUDA runtime        %s\n", version_string(d.runtime_version).c_str());
    std::printf("  cuBLAS              %d\n", d.cublas_version);
    std::printf("  swiglu              %s (git %s)\n", SWIGLU_VERSION, git_sha().c_str());
    const DeviceTraits t{d.cc_major, d.cc_minor, d.sm_count};
    for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
      for (Math m : {Math::exact, Math::tf32, Math::tf32x3}) {
        if (dt != DType::f32 && m != Math::exact) continue;
        Problem p;
        p.dtype = dt;
        p.math = m;
        std::string list;
        for (const auto& tc : forward_tiles(p, t)) list += (list.empty() ? "" : " ") + tc.name();
        std::printf("  fused tiles %-4s %-6s %s\n", std::string(to_string(dt)).c_str(),
                    std::string(to_string(m)).c_str(), list.empty() ? "(none)" : list.c_str());
      }
    }
    // The backward GEMMs' tiles (the same list for dX and dW, and for both layouts).
    for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
      Problem p;
      p.dtype = dt;
      std::string list;
      for (const auto& tc : backward_dx_tiles(p, t)) list += (list.empty() ? "" : " ") + tc.name();
      std::printf("  dX/dW tiles %-4s        %s\n", std::string(to_string(dt)).c_str(),
                  list.empty() ? "(none)" : list.c_str());
    }
    return kExitOk;
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

}  // namespace swiglu::bench
