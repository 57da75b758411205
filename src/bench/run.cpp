#include "bench/run.hpp"

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "baselines/cublas_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/device.hpp"
#include "bench/host_data.hpp"
#include "bench/parity.hpp"
#include "bench/stats.hpp"
#include "bench/writers.hpp"
#include "bench/version.hpp"

namespace swiglu::bench {

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

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string iso_time_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

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

// One variant of one case: what runs, where its output goes, and what came of it.
struct Variant {
  std::string name;  // fused | cublas2 | cublas1
  std::optional<TileConfig> tile;
  baselines::Plan plan;
  Row row;
  bool runnable = false;  // prepared without error
};

Row base_row(const RunOptions& o, const Case& c, const std::string& variant) {
  Row r;
  r.op = "forward";
  r.variant = variant;
  r.batch = c.batch;
  r.in = c.in;
  r.hidden = c.hidden;
  r.ldx = c.ldx();
  r.dtype = std::string(to_string(c.dtype));
  r.layout = std::string(to_string(c.layout));
  r.math = std::string(to_string(c.dtype == DType::f32 ? c.math : Math::exact));
  r.bias = c.bias;
  r.cold_l2 = o.timing.cold;
  r.tile = variant == "fused" ? "" : "cublasLt";
  return r;
}

std::string case_label(const Case& c) {
  return fmt::format("B={} I={} D={} {}{}{}{}", c.batch, c.in, c.hidden, to_string(c.dtype),
                     c.layout == Layout::packed ? " packed" : "", c.bias ? " bias" : "",
                     c.dtype == DType::f32 && c.math == Math::tf32 ? " tf32" : "");
}

// Everything a case allocates on the device.
struct CaseBuffers {
  DeviceBuffer x, w, bias, z, scratch;
};

class SweepRunner {
 public:
  SweepRunner(const RunOptions& o, const DeviceInfo& dev, const std::atomic<bool>& stop)
      : o_(o), dev_(dev), stop_(stop) {}

  int run(const std::vector<Case>& cases, const Json& resolved_config);

 private:
  void run_case(const Case& c);
  std::vector<Variant> make_variants(const Case& c, const DeviceTraits& traits);
  void emit(Row& r);
  bool stopped() const { return stop_.load(); }

  const RunOptions& o_;
  const DeviceInfo& dev_;
  const std::atomic<bool>& stop_;
  Stream stream_;
  baselines::Cublas cublas_;
  std::unique_ptr<Timer> timer_;
  std::unique_ptr<CsvWriter> csv_;
  std::unique_ptr<JsonWriter> json_;
  std::vector<Row> rows_;
  bool fatal_ = false;  // a sticky CUDA error: the context is unusable
};

std::vector<Variant> SweepRunner::make_variants(const Case& c, const DeviceTraits& traits) {
  std::vector<Variant> out;
  const Problem p = c.problem();
  for (const std::string& v : c.variants) {
    if (v != "fused") {
      Variant var;
      var.name = v;
      var.row = base_row(o_, c, v);
      out.push_back(std::move(var));
      continue;
    }
    // Tiles: "auto" is the heuristic's pick, "all" every compiled tile, otherwise names.
    std::vector<std::string> names;
    for (const std::string& t : c.tiles) {
      if (t == "all") {
        for (const TileConfig& tc : forward_tiles(p, traits)) names.push_back(tc.name());
      } else {
        names.push_back(t);
      }
    }
    for (const std::string& t : names) {
      Variant var;
      var.name = "fused";
      var.row = base_row(o_, c, "fused");
      if (t == "auto") {
        TileConfig tc;
        if (Status s = choose_forward_tile(p, traits, &tc); !s.ok()) {
          var.row.status = "SKIP";
          var.row.reason = s.message;
          var.row.tile = "auto";
        } else {
          var.tile = tc;
          var.row.tile = tc.name();
        }
      } else {
        const auto tc = TileConfig::parse(t);
        const auto avail = forward_tiles(p, traits);
        var.row.tile = t;
        if (!tc || std::find(avail.begin(), avail.end(), *tc) == avail.end()) {
          var.row.status = "SKIP";
          var.row.reason = fmt::format("tile {} is not compiled for {}/{} on sm_{}{}", t,
                                       to_string(c.dtype), to_string(c.layout), traits.cc_major,
                                       traits.cc_minor);
        } else {
          var.tile = *tc;
        }
      }
      // The same tile twice (auto picked a listed one) runs once.
      const bool dup = std::any_of(out.begin(), out.end(), [&](const Variant& o) {
        return o.name == "fused" && o.tile && var.tile && *o.tile == *var.tile;
      });
      if (!dup) out.push_back(std::move(var));
    }
  }
  return out;
}

void SweepRunner::emit(Row& r) {
  rows_.push_back(r);
  std::fputs(markdown_row(r).c_str(), stdout);
  std::fflush(stdout);
  if (csv_) csv_->write(r);
  if (json_) json_->add(r);
}

void SweepRunner::run_case(const Case& c) {
  const Problem p = c.problem();
  const std::string label = case_label(c);
  nvtx3::scoped_range case_range{fmt::format("{}/case {}", o_.op, label).c_str()};
  DeviceTraits traits{dev_.cc_major, dev_.cc_minor, dev_.sm_count};
  std::vector<Variant> variants = make_variants(c, traits);
  const size_t es = dtype_size(p.dtype);

  // Device memory this case needs, against what is free now.
  const bool any_baseline = std::any_of(variants.begin(), variants.end(),
                                        [](const Variant& v) { return v.name != "fused"; });
  const bool use_cpu_ref =
      o_.reference == ReferenceMode::cpu ||
      (o_.reference == ReferenceMode::automatic &&
       forward_flops(p) / 2 <= static_cast<double>(o_.cpu_reference_max_macs));
  const double x_bytes = static_cast<double>(p.batch) * p.x_stride() * es;
  const double w_bytes = 2.0 * p.hidden * p.in_features * es;
  const double z_bytes = static_cast<double>(p.batch) * p.hidden * es;
  const double scratch = any_baseline ? 2.0 * p.batch * p.hidden * es : 0.0;
  const double ref_bytes =
      use_cpu_ref ? 0.0 : static_cast<double>(p.batch) * p.hidden * (2 * 4 + 4);
  const double need = x_bytes + w_bytes + 2.0 * p.hidden * es + z_bytes + scratch + ref_bytes;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double margin = 256.0 * 1024 * 1024;
  if (need + margin > static_cast<double>(free_b)) {
    for (auto& v : variants) {
      if (v.row.status.empty()) {
        v.row.status = "SKIP";
        v.row.reason = fmt::format("needs {:.1f} GiB, device has {:.1f} GiB free of {:.1f} GiB",
                                   need / kGiB, free_b / kGiB, total_b / kGiB);
      }
      emit(v.row);
    }
    return;
  }

  // Seeded inputs: X ~ U(-1, 1), W and bias ~ U(-1/sqrt(I), 1/sqrt(I)) as nn.Linear initialises
  // them, so the pre-activations have the spread real layers see. Each case has its own stream of
  // numbers derived from the seed and the shape, independent of the order cases run in.
  const uint64_t case_seed = o_.seed ^ (static_cast<uint64_t>(p.batch) * 0x9E3779B97F4A7C15ull) ^
                             (static_cast<uint64_t>(p.in_features) << 20) ^
                             (static_cast<uint64_t>(p.hidden) << 40) ^
                             static_cast<uint64_t>(p.dtype) ^ (static_cast<uint64_t>(p.layout) << 4);
  const float wscale = 1.0f / std::sqrt(static_cast<float>(p.in_features));
  CaseBuffers buf;
  std::vector<float> hx, hw, hb;
  {
    nvtx3::scoped_range r{"inputs"};
    hx = uniform_values(static_cast<size_t>(p.batch * p.x_stride()), -1.0f, 1.0f, case_seed + 1, p.dtype);
    hw = uniform_values(static_cast<size_t>(2 * p.hidden * p.in_features), -wscale, wscale, case_seed + 2, p.dtype);
    if (p.bias) hb = uniform_values(static_cast<size_t>(2 * p.hidden), -wscale, wscale, case_seed + 3, p.dtype);
    const auto upload = [&](DeviceBuffer& d, const std::vector<float>& v) {
      const auto bytes = to_dtype_bytes(v, p.dtype);
      d = DeviceBuffer(bytes.size());
      if (!bytes.empty()) CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    };
    upload(buf.x, hx);
    upload(buf.w, hw);
    if (p.bias) upload(buf.bias, hb);
    buf.z = DeviceBuffer(static_cast<size_t>(z_bytes));
    if (any_baseline) buf.scratch = DeviceBuffer(static_cast<size_t>(scratch));
  }

  // The reference: fp64 on the CPU, or the fp32-accumulating cuBLAS path for large shapes.
  std::vector<double> ref64;
  std::vector<float> ref32;
  std::string ref_name;
  {
    nvtx3::scoped_range r{"reference"};
    if (use_cpu_ref) {
      ref64 = cpu_reference(p, hx, hw, hb);
      ref_name = "cpu-fp64";
    } else {
      DeviceBuffer h(baselines::reference_scratch_bytes(p));
      DeviceBuffer zr(static_cast<size_t>(p.batch * p.hidden) * sizeof(float));
      if (Status s = baselines::gpu_reference(cublas_, p, buf.x.get(), buf.w.get(), buf.bias.get(),
                                              h.as<float>(), zr.as<float>(), stream_.get());
          !s.ok()) {
        for (auto& v : variants) {
          if (v.row.status.empty()) {
            v.row.status = "ERROR";
            v.row.reason = "GPU reference failed: " + s.message;
          }
          emit(v.row);
        }
        return;
      }
      ref32.resize(static_cast<size_t>(p.batch * p.hidden));
      CUDA_CHECK(cudaMemcpy(ref32.data(), zr.get(), ref32.size() * sizeof(float), cudaMemcpyDeviceToHost));
      ref_name = "gpu-fp32";
    }
  }
  hx.clear();
  hw.clear();
  hx.shrink_to_fit();
  hw.shrink_to_fit();

  // Prepare, then check each variant on a poisoned output.
  const Tolerance tol = tolerance(p.dtype, p.math);
  const auto launch = [&](Variant& v, cudaStream_t s) {
    if (v.name == "fused") {
      ForwardOptions fo;
      fo.tile = v.tile;
      if (Status st = forward(p, buf.x.get(), buf.w.get(), buf.bias.get(), buf.z.get(), s, fo); !st.ok())
        throw CudaError(st.message);
    } else if (Status st = v.plan.run(s); !st.ok()) {
      throw CudaError(st.message);
    }
  };
  for (Variant& v : variants) {
    if (!v.row.status.empty() || stopped()) continue;
    nvtx3::scoped_range r{fmt::format("check/{} {} tile={}", v.name, label, v.row.tile).c_str()};
    v.row.reference = ref_name;
    v.row.tol_rel_l2 = tol.rel_l2;
    try {
      if (v.name != "fused") {
        const auto which = v.name == "cublas2" ? baselines::Variant::cublas2 : baselines::Variant::cublas1;
        if (Status s = baselines::Plan::create(cublas_, which, p, buf.x.get(), buf.w.get(),
                                               buf.bias.get(), buf.z.get(), buf.scratch.get(), &v.plan);
            !s.ok()) {
          v.row.status = s.code == StatusCode::unsupported ? "SKIP" : "ERROR";
          v.row.reason = s.message;
          continue;
        }
      }
      CUDA_CHECK(cudaMemsetAsync(buf.z.get(), kPoisonByte, buf.z.bytes(), stream_.get()));
      launch(v, stream_.get());
      CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      std::vector<unsigned char> raw(buf.z.bytes());
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.z.get(), raw.size(), cudaMemcpyDeviceToHost));
      const std::vector<float> got = from_dtype_bytes(raw.data(), static_cast<size_t>(p.batch * p.hidden), p.dtype);
      const ParityResult pr = use_cpu_ref ? compare(got, ref64, tol) : compare(got, ref32, tol);
      v.row.rel_l2 = pr.rel_l2;
      v.row.max_abs = pr.max_abs;
      v.row.max_rel = pr.max_rel;
      v.row.worst_index = pr.worst_index;
      v.row.worst_got = pr.worst_got;
      v.row.worst_expected = pr.worst_expected;
      v.row.status = pr.pass ? "PASS" : "FAIL";
      v.runnable = pr.pass;
      if (!pr.pass) {
        const int64_t m = pr.worst_index >= 0 ? pr.worst_index / p.hidden : -1;
        const int64_t n = pr.worst_index >= 0 ? pr.worst_index % p.hidden : -1;
        v.row.reason = fmt::format("parity: {} at (row {}, col {}); tolerance rel_l2<={:.1e} max_rel<={:.1e}",
                                   pr.summary(), m, n, tol.rel_l2, tol.max_rel);
        std::fprintf(stderr, "FAIL %s %s tile=%s: %s\n", v.name.c_str(), label.c_str(),
                     v.row.tile.c_str(), v.row.reason.c_str());
      }
    } catch (const CudaError& e) {
      v.row.status = "ERROR";
      v.row.reason = e.what();
      // A sticky error (an illegal address, say) poisons the context for every later case.
      if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) fatal_ = true;
    }
    if (fatal_) break;
  }

  // Profile or time what passed.
  std::vector<Variant*> timed;
  for (Variant& v : variants)
    if (v.runnable) timed.push_back(&v);
  if (!fatal_ && !stopped() && !timed.empty() && o_.op == "forward") {
    try {
      if (o_.profile) {
        for (Variant* v : timed) {
          nvtx3::scoped_range r{fmt::format("profile/{} {} tile={}", v->name, label, v->row.tile).c_str()};
          CUDA_CHECK(cudaProfilerStart());
          launch(*v, stream_.get());
          CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
          CUDA_CHECK(cudaProfilerStop());
        }
      } else {
        std::vector<TimedVariant> tv;
        for (Variant* v : timed) {
          TimedVariant t;
          t.name = v->name;
          t.run = [&launch, v](cudaStream_t s) { launch(*v, s); };
          tv.push_back(std::move(t));
        }
        nvtx3::scoped_range r{fmt::format("time/{}", label).c_str()};
        const double clock = timer_->measure(tv, o_.timing, &stop_);
        std::map<std::string, double> baseline_ms;
        for (size_t i = 0; i < tv.size(); ++i) {
          if (tv[i].samples_ms.empty()) continue;
          const Summary s = summarize(tv[i].samples_ms);
          Row& row = timed[i]->row;
          row.median_ms = s.median;
          row.p25_ms = s.p25;
          row.p75_ms = s.p75;
          row.min_ms = s.min;
          row.noise = s.rel_noise;
          row.samples = s.n;
          row.tflops = forward_flops(p) / (s.median * 1e-3) / 1e12;
          row.gbps = forward_min_bytes(p) / (s.median * 1e-3) / 1e9;
          row.sm_clock_mhz = clock > 0 ? clock : kNaN;
          if (s.rel_noise > o_.timing.max_noise)
            row.reason = fmt::format("noisy: IQR/median {:.1f}% > {:.1f}%", 100 * s.rel_noise, 100 * o_.timing.max_noise);
          if (row.variant != "fused") baseline_ms[row.variant] = s.median;
        }
        for (Variant* v : timed) {
          if (v->name != "fused" || std::isnan(v->row.median_ms)) continue;
          if (auto it = baseline_ms.find("cublas2"); it != baseline_ms.end())
            v->row.speedup_vs_cublas2 = it->second / v->row.median_ms;
          if (auto it = baseline_ms.find("cublas1"); it != baseline_ms.end())
            v->row.speedup_vs_cublas1 = it->second / v->row.median_ms;
        }
      }
    } catch (const CudaError& e) {
      for (Variant* v : timed) {
        v->row.status = "ERROR";
        v->row.reason = std::string("timing: ") + e.what();
      }
      if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) fatal_ = true;
    }
  }
  // Why: an interrupt may have cut the checks or the sampling of this case short; its rows would
  // carry fewer samples than asked for, so the case is dropped whole and only finished ones stay.
  if (stopped()) return;
  for (Variant& v : variants) {
    if (v.row.status.empty()) {
      v.row.status = "ERROR";
      v.row.reason = "not run: an earlier CUDA error left the device unusable";
    }
    emit(v.row);
  }
}

int SweepRunner::run(const std::vector<Case>& cases, const Json& resolved_config) {
  CUDA_CHECK(cudaSetDevice(dev_.index));
  if (Status s = cublas_.init(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message.c_str());
    return kExitError;
  }
  timer_ = std::make_unique<Timer>(dev_, stream_.get());

  const std::string dir = o_.out_dir.empty() ? "results/" + dev_.slug : o_.out_dir;
  std::filesystem::create_directories(dir);
  const std::string stem = fmt::format("{}/{}_{}", dir, o_.op, o_.name);
  Json prov = Json::object();
  prov.set("tool", "swiglubench");
  prov.set("version", SWIGLU_VERSION);
  prov.set("git_sha", git_sha());
  prov.set("started_utc", iso_time_utc());
  Json argv = Json::array();
  for (const auto& a : o_.argv) argv.push_back(a);
  prov.set("argv", argv);
  prov.set("device", device_json(dev_));
  Json timing = Json::object();
  timing.set("cold_l2", o_.timing.cold);
  timing.set("warmup", o_.timing.warmup);
  timing.set("min_samples", o_.timing.min_samples);
  timing.set("max_samples", o_.timing.max_samples);
  timing.set("min_time_s", o_.timing.min_time_s);
  timing.set("max_noise", o_.timing.max_noise);
  timing.set("flush_bytes", static_cast<int64_t>(std::max<int64_t>(2 * dev_.l2_bytes, int64_t{8} << 20)));
  prov.set("timing", timing);
  prov.set("seed", static_cast<int64_t>(o_.seed));
  prov.set("config", resolved_config);
  GemmPeak peak;
  const bool have_peak = o_.op == "forward" && !o_.profile && measure_gemm_peak(dev_, cublas_, stream_.get(), &peak);
  if (have_peak) {
    Json pk = Json::object();
    pk.set("dtype", peak.dtype);
    pk.set("m", peak.n);
    pk.set("n", peak.n);
    pk.set("k", peak.n);
    pk.set("median_ms", peak.median_ms);
    pk.set("tflops", peak.tflops);
    prov.set("peak", pk);
  }
  if (o_.write_csv) csv_ = std::make_unique<CsvWriter>(stem + ".csv");
  if (o_.write_json) json_ = std::make_unique<JsonWriter>(stem + ".json", prov);

  std::printf("swiglubench %s on %s (sm_%d%d, %d SMs, L2 %.0f MiB), %zu cases, %s L2\n\n",
              o_.op.c_str(), dev_.name.c_str(), dev_.cc_major, dev_.cc_minor, dev_.sm_count,
              dev_.l2_bytes / 1048576.0, cases.size(), o_.timing.cold ? "cold" : "hot");
  if (have_peak) {
    std::printf("measured peak: %s GEMM %lldx%lldx%lld at %.0f TFLOP/s\n\n", peak.dtype.c_str(),
                static_cast<long long>(peak.n), static_cast<long long>(peak.n),
                static_cast<long long>(peak.n), peak.tflops);
  }
  std::fputs(markdown_header().c_str(), stdout);
  for (const Case& c : cases) {
    if (stopped() || fatal_) break;
    try {
      run_case(c);
    } catch (const CudaError& e) {
      Row r = base_row(o_, c, "fused");
      r.status = "ERROR";
      r.reason = e.what();
      emit(r);
      if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) fatal_ = true;
    }
  }
  if (json_ && !stopped() && !fatal_) json_->finish();
  if (o_.write_md) {
    std::FILE* f = std::fopen((stem + ".md").c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "error: cannot write %s.md\n", stem.c_str());
      return kExitError;
    }
    std::fprintf(f, "swiglubench %s on %s (sm_%d%d, %d SMs), %s L2, git %s\n\n", o_.op.c_str(),
                 dev_.name.c_str(), dev_.cc_major, dev_.cc_minor, dev_.sm_count,
                 o_.timing.cold ? "cold" : "hot", git_sha().c_str());
    std::fputs(markdown_table(rows_).c_str(), f);
    std::fclose(f);
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

}  // namespace

int run_sweep(const std::vector<Case>& cases, const RunOptions& options, const Json& resolved_config,
              const std::atomic<bool>& stop) {
  try {
    const DeviceInfo dev = query_device(options.device);
    SweepRunner runner(options, dev, stop);
    return runner.run(cases, resolved_config);
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

int print_info(int device) {
  try {
    const DeviceInfo d = query_device(device);
    std::printf("device %d: %s\n", d.index, d.name.c_str());
    std::printf("  compute capability  %d.%d\n", d.cc_major, d.cc_minor);
    std::printf("  SMs                 %d\n", d.sm_count);
    std::printf("  L2 cache            %.1f MiB\n", d.l2_bytes / 1048576.0);
    std::printf("  memory              %.1f GiB, %d-bit bus, %d MHz\n", d.memory_bytes / kGiB,
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
      for (Math m : {Math::exact, Math::tf32}) {
        if (dt != DType::f32 && m == Math::tf32) continue;
        Problem p;
        p.dtype = dt;
        p.math = m;
        std::string list;
        for (const auto& tc : forward_tiles(p, t)) list += (list.empty() ? "" : " ") + tc.name();
        std::printf("  fused tiles %-4s %-5s %s\n", std::string(to_string(dt)).c_str(),
                    std::string(to_string(m)).c_str(), list.empty() ? "(none)" : list.c_str());
      }
    }
    return kExitOk;
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

}  // namespace swiglu::bench
