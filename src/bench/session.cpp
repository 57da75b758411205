#include "bench/session.hpp"

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/host_data.hpp"
#include "common/provenance.hpp"
#include "common/stats.hpp"

namespace swiglu::bench {

using common::CudaError;
using common::DeviceBuffer;
using common::DeviceInfo;
using common::GraphExec;
using common::Json;
using common::Summary;
using common::check_result_name;
using common::from_dtype_bytes;
using common::git_sha;
using common::iso_time_utc;
using common::kExitError;
using common::kExitInterrupted;
using common::kExitOk;
using common::kExitParity;
using common::query_device;
using common::string_list;
using common::summarize;
using common::to_dtype_bytes;
using common::uniform_values;
using common::write_file_atomic;

namespace {

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
  j.set("cuda_driver_api", common::cuda_version(d.driver_version));
  j.set("cuda_runtime", common::cuda_version(d.runtime_version));
  j.set("cublas", d.cublas_version);
  return j;
}

bool is_baseline(const std::string& variant) { return variant == "cublas2" || variant == "cublas1"; }

}  // namespace


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
  std::tie(row.rel_l2, row.max_abs, row.max_rel, row.worst_index, row.worst_got,
           row.worst_expected) = std::tie(pr.rel_l2, pr.max_abs, pr.max_rel, pr.worst_index,
                                          pr.worst_got, pr.worst_expected);
}

bool check_forward_variant(Session& s, Row& row, const std::string& label,
                           const std::function<void(cudaStream_t)>& poison,
                           const std::function<void(cudaStream_t)>& run,
                           const std::function<ParityResult()>& check,
                           const std::function<std::string(const ParityResult&)>& mismatch) {
  try {
    poison(s.stream());
    run(s.stream());
    CUDA_CHECK(cudaStreamSynchronize(s.stream()));
    const ParityResult pr = check();
    set_parity(row, pr);
    row.tol_rel_l2 = pr.tol.rel_l2;
    row.status = pr.pass ? "PASS" : "FAIL";
    if (!pr.pass) {
      row.reason = mismatch(pr);
      std::fprintf(stderr, "FAIL %s %s%s%s: %s\n", row.variant.c_str(), label.c_str(),
                   row.tile.empty() ? "" : " tile=", row.tile.c_str(), row.reason.c_str());
    }
    return pr.pass;
  } catch (const CudaError& e) {
    row.status = "ERROR";
    row.reason = e.what();
    s.note_cuda_failure();
    return false;
  }
}

Session::Session(const RunOptions& o, const DeviceInfo& dev, const std::atomic<bool>& stop)
    : o_(o), dev_(dev), stop_(stop) {}

Row Session::base_row(const Case& c, const std::string& variant) const {
  Row r;
  r.op = row_op(o_.op);
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
      std::tie(row.median_ms, row.p25_ms, row.p75_ms, row.min_ms, row.noise, row.samples) =
          std::tie(s.median, s.p25, s.p75, s.min, s.rel_noise, s.n);
      row.tflops = flops / (s.median * 1e-3) / 1e12;
      row.gbps = bytes / (s.median * 1e-3) / 1e9;
      row.copy_fraction = row.gbps / copy_gbps_;
      row.sm_clock_mhz = clock > 0 ? clock : kNaN;
      std::vector<std::string> notes;
      if (s.rel_noise > o_.timing.max_noise)
        notes.push_back(fmt::format("noisy: IQR/median {:.1f}% > {:.1f}%", 100 * s.rel_noise, 100 * o_.timing.max_noise));
      if (std::string t = common::throttle_note(row.sm_clock_mhz, dev_.max_sm_clock_mhz); !t.empty())
        notes.push_back(std::move(t));
      if (!notes.empty()) row.reason = fmt::format("{}", fmt::join(notes, "; "));
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

Json Session::provenance(const Json& resolved_config, const GemmPeak* peak, const CopyCeiling* copy) const {
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
  if (is_gradient_op(row_op(o_.op))) {
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
  if (copy != nullptr) {
    Json c = Json::object();
    c.set("bytes", copy->bytes);
    c.set("median_ms", copy->median_ms);
    c.set("gbps", copy->gbps);
    prov.set("copy_ceiling", c);
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
  const std::string stem = fmt::format("{}/{}_{}", dir, to_string(o_.op), o_.name);
  const bool timed = o_.op != Op::check && o_.op != Op::memory;
  GemmPeak peak;
  const bool have_peak = timed && !o_.profile && measure_gemm_peak(dev_, cublas_, stream_.get(), &peak);
  CopyCeiling copy;
  const bool have_copy = timed && !o_.profile && measure_copy_ceiling(dev_, stream_.get(), &copy);
  copy_gbps_ = have_copy ? copy.gbps : kNaN;
  const std::string rows_op = row_op(o_.op);
  if (o_.write_csv) csv_ = std::make_unique<CsvWriter>(stem + ".csv", rows_op);
  if (o_.write_json) {
    json_ = std::make_unique<JsonWriter>(
        stem + ".json", provenance(resolved_config, have_peak ? &peak : nullptr, have_copy ? &copy : nullptr));
  }

  const std::string l2 = !timed ? std::string("no timing")
                                : std::string(o_.timing.cold ? "cold L2" : "hot L2") +
                                      (o_.timing.graph ? ", CUDA-graph replays" : "");
  const std::string op(to_string(o_.op));
  std::printf("swiglubench %s on %s (sm_%d%d, %d SMs, L2 %.0f MiB), %zu cases, %s\n\n", op.c_str(),
              dev_.name.c_str(), dev_.cc_major, dev_.cc_minor, dev_.sm_count,
              dev_.l2_bytes / 1048576.0, cases.size(), l2.c_str());
  const std::string ceilings = ceilings_line(have_peak ? &peak : nullptr, have_copy ? &copy : nullptr);
  if (!ceilings.empty()) std::printf("%s\n\n", ceilings.c_str());
  std::fputs(markdown_header(rows_op, o_.timing.graph).c_str(), stdout);
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
        fmt::format("swiglubench {} on {} (sm_{}{}, {} SMs), {}, git {}\n\n", op, dev_.name,
                    dev_.cc_major, dev_.cc_minor, dev_.sm_count, l2, git_sha()) +
        (ceilings.empty() ? std::string() : ceilings + "\n\n") +
        (rows_.empty() ? markdown_header(rows_op, o_.timing.graph) : markdown_table(rows_));
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


}  // namespace swiglu::bench
