// swiglu_microbench: the fused SwiGLU forward and the two cuBLAS baselines as Google Benchmark
// benchmarks, for quick A/B runs and Google Benchmark's tooling (JSON output, compare.py).
// swiglubench stays the tool of record: it sweeps configs, samples to a noise target and writes
// the result tables; this program times a few fixed shapes the Google Benchmark way.
//
//   swiglu_microbench [--benchmark_filter=REGEX] [--benchmark_format=json]
//                     [--benchmark_repetitions=N] [--benchmark_out=F.json]
//
// Names: <variant>/<dtype>/B:<B>/I:<I>/D:<D>, e.g. fused/bf16/B:1024/I:784/D:1024, so that
// `compare.py filters run.json '^fused/' '^cublas2/'` compares fused against a baseline.
//
// Every variant of a shape is checked once, on a NaN-poisoned output, against the fp32 cuBLAS
// reference (baselines::gpu_reference) with swiglubench's tolerances before it is timed; a mismatch
// skips that benchmark with the worst element in the error. Timing is manual: one CUDA event pair
// around each iteration on the benchmark stream, with the L2 flushed (a memset of twice its size)
// before the start event, outside the timed region. Counters: TFLOP/s from forward_flops() over the
// measured GPU time; the label is the tile (fused) or "cublasLt".
//
// Exit codes: 0 ok (also with no CUDA device: every benchmark is skipped with "no CUDA device"),
// 1 unrecognised argument, 2 a parity mismatch, 3 a CUDA or cuBLAS error.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/parity.hpp"
#include "bench/run.hpp"
#include "common/device.hpp"
#include "common/host_data.hpp"
#include "common/provenance.hpp"
#include "swiglu/swiglu.hpp"

namespace {

using namespace swiglu;
using common::DeviceBuffer;

// --- what is benchmarked: extend these lists -----------------------------------------------------

struct ShapeFamily {
  int64_t in = 0, hidden = 0;
  std::vector<int64_t> batches;
};

const std::vector<ShapeFamily> kFamilies = {
    {784, 1024, {1, 64, 1024, 8192}},  // MNIST-like: decode-sized to large batches
    {4096, 11008, {4096}},             // LLaMA-7B MLP at 4096 tokens
};
const std::vector<DType> kDTypes = {DType::bf16};

enum class Kind { fused, cublas2, cublas1 };
constexpr Kind kKinds[] = {Kind::fused, Kind::cublas2, Kind::cublas1};

const char* name_of(Kind k) {
  switch (k) {
    case Kind::fused: return "fused";
    case Kind::cublas2: return "cublas2";
    case Kind::cublas1: return "cublas1";
  }
  return "?";
}

Problem make_problem(const ShapeFamily& f, int64_t batch, DType dtype) {
  Problem p;
  p.batch = batch;
  p.in_features = f.in;
  p.hidden = f.hidden;
  p.dtype = dtype;
  p.layout = Layout::linear;
  p.bias = false;
  return p;
}

// The seed of swiglubench's default run; the inputs differ from its per-case streams, which is
// fine: both are seeded random values, never constants.
constexpr uint64_t kSeed = 1234;

// Exit status, raised by the benchmarks as they fail.
int g_exit = 0;
bool g_have_device = false;

void raise_exit(int code) { g_exit = std::max(g_exit, code); }

void check_status(const Status& s, const char* what) {
  if (!s.ok()) throw std::runtime_error(fmt::format("{}: {}", what, s.message));
}

// --- device state --------------------------------------------------------------------------------

// Process-wide device resources, made in main() when there is a device.
struct Gpu {
  common::DeviceInfo info;
  DeviceTraits traits;
  common::Stream stream;
  common::Event start, stop;
  baselines::Cublas cublas;
  DeviceBuffer flush;  // twice the L2: one memset of it evicts every line

  explicit Gpu(int device) : info(common::query_device(device)) {
    check_status(device_traits(device, &traits), "device_traits");
    check_status(cublas.init(), "cuBLASLt init");
    flush = DeviceBuffer(
        static_cast<size_t>(std::max<int64_t>(2 * info.l2_bytes, int64_t{8} << 20)));
  }
};

std::unique_ptr<Gpu> g_gpu;
std::string g_gpu_error;  // why g_gpu could not be made, when there is a device

// One problem's seeded inputs, output and scratch on the device, its fp32 reference on the host,
// each variant's plan and the verdict of its parity check. Benchmarks are registered shape by
// shape, so one problem is alive at a time and the next shape's replaces it.
struct ProblemData {
  Problem p;
  DeviceBuffer x, w, z, scratch;
  std::vector<float> ref;
  TileConfig tile;
  std::map<Kind, baselines::Plan> plans;
  std::map<Kind, std::string> verdict;  // checked variants: "" passed, else why not

  explicit ProblemData(const Problem& problem, Gpu& g) : p(problem) {
    nvtx3::scoped_range r{"microbench/inputs and reference"};
    const size_t es = dtype_size(p.dtype);
    const float ws = 1.0f / std::sqrt(static_cast<float>(p.in_features));
    // As nn.Linear initialises them: X ~ U(-1, 1), W ~ U(-1/sqrt(I), 1/sqrt(I)).
    x = upload(common::uniform_values(static_cast<size_t>(p.batch * p.in_features), -1, 1, kSeed,
                                     p.dtype));
    w = upload(common::uniform_values(static_cast<size_t>(2 * p.hidden * p.in_features), -ws, ws,
                                     kSeed + 1, p.dtype));
    const size_t zn = static_cast<size_t>(p.batch * p.hidden);
    z = DeviceBuffer(zn * es);
    scratch = DeviceBuffer(std::max(baselines::scratch_bytes(baselines::Variant::cublas2, p),
                                    baselines::scratch_bytes(baselines::Variant::cublas1, p)));
    {
      DeviceBuffer h(baselines::reference_scratch_bytes(p));
      DeviceBuffer zr(zn * sizeof(float));
      check_status(baselines::gpu_reference(g.cublas, p, x.get(), w.get(), nullptr, h.as<float>(),
                                            zr.as<float>(), g.stream.get()),
                   "GPU reference");
      ref.resize(zn);
      CUDA_CHECK(cudaMemcpy(ref.data(), zr.get(), zn * sizeof(float), cudaMemcpyDeviceToHost));
    }
    check_status(choose_forward_tile(p, g.traits, &tile), "choose_forward_tile");
  }

  DeviceBuffer upload(const std::vector<float>& values) const {
    const auto bytes = common::to_dtype_bytes(values, p.dtype);
    DeviceBuffer d(bytes.size());
    CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    return d;
  }

  std::string label(Kind k) const { return k == Kind::fused ? tile.name() : "cublasLt"; }

  // Enqueues one run of variant `k` on `s`; throws on failure.
  void launch(Kind k, cudaStream_t s) const {
    if (k == Kind::fused) {
      ForwardOptions o;
      o.tile = tile;
      check_status(forward(p, x.get(), w.get(), nullptr, z.get(), s, o), "swiglu::forward");
    } else {
      check_status(plans.at(k).run(s), name_of(k));
    }
  }

  // Plans and checks variant `k` once; returns "" when it may be timed, else the reason.
  const std::string& check(Kind k, Gpu& g) {
    if (auto it = verdict.find(k); it != verdict.end()) return it->second;
    nvtx3::scoped_range r{fmt::format("microbench/check {}", name_of(k)).c_str()};
    if (k != Kind::fused) {
      const auto which =
          k == Kind::cublas2 ? baselines::Variant::cublas2 : baselines::Variant::cublas1;
      baselines::Plan plan;
      if (Status s = baselines::Plan::create(g.cublas, which, p, x.get(), w.get(), nullptr, z.get(),
                                             scratch.get(), &plan);
          !s.ok())
        return verdict[k] = fmt::format("{} plan: {}", name_of(k), s.message);
      plans.emplace(k, std::move(plan));
    }
    CUDA_CHECK(cudaMemsetAsync(z.get(), common::kPoisonByte, z.bytes(), g.stream.get()));
    launch(k, g.stream.get());
    CUDA_CHECK(cudaStreamSynchronize(g.stream.get()));
    std::vector<unsigned char> raw(z.bytes());
    CUDA_CHECK(cudaMemcpy(raw.data(), z.get(), raw.size(), cudaMemcpyDeviceToHost));
    const auto got = common::from_dtype_bytes(raw.data(), ref.size(), p.dtype);
    const bench::Tolerance tol =
        bench::tolerance(p, k == Kind::fused ? bench::kFusedRounding
                                             : bench::Rounding{1, plans.at(k).output_type_slices()});
    const bench::ParityResult pr = bench::compare(got, ref, tol);
    if (pr.pass) return verdict[k] = "";
    const int64_t row = pr.worst_index >= 0 ? pr.worst_index / p.hidden : -1;
    const int64_t col = pr.worst_index >= 0 ? pr.worst_index % p.hidden : -1;
    return verdict[k] = fmt::format("parity FAIL vs gpu-fp32 reference: {} at (row {}, col {}); {}",
                                    pr.summary(), row, col, pr.tolerance());
  }
};

std::unique_ptr<ProblemData> g_data;

bool same_problem(const Problem& a, const Problem& b) {
  return a.batch == b.batch && a.in_features == b.in_features && a.hidden == b.hidden &&
         a.dtype == b.dtype && a.layout == b.layout && a.bias == b.bias && a.math == b.math &&
         a.x_stride() == b.x_stride();
}

ProblemData& problem_data(const Problem& p, Gpu& g) {
  if (!g_data || !same_problem(g_data->p, p)) {
    g_data.reset();  // free the last shape's buffers before allocating this one's
    g_data = std::make_unique<ProblemData>(p, g);
  }
  return *g_data;
}

// --- the benchmark -------------------------------------------------------------------------------

void bm_forward(benchmark::State& state, Problem p, Kind kind) {
  if (!g_have_device) {
    state.SkipWithError("no CUDA device");
    return;
  }
  if (!g_gpu) {
    state.SkipWithError(g_gpu_error.c_str());
    return;
  }
  try {
    Gpu& g = *g_gpu;
    ProblemData& d = problem_data(p, g);
    if (const std::string& why = d.check(kind, g); !why.empty()) {
      raise_exit(why.rfind("parity", 0) == 0 ? common::kExitParity : common::kExitError);
      state.SkipWithError(why.c_str());
      return;
    }
    state.SetLabel(d.label(kind));
    const cudaStream_t s = g.stream.get();
    d.launch(kind, s);  // warm: the first launch of a kernel or plan pays for its loading
    CUDA_CHECK(cudaStreamSynchronize(s));

    nvtx3::scoped_range r{fmt::format("microbench/time {}", name_of(kind)).c_str()};
    double total_s = 0;
    int fill = 0;
    for (auto _ : state) {
      // Why before the start event: the flush runs on the stream but outside the timed interval.
      CUDA_CHECK(cudaMemsetAsync(g.flush.get(), ++fill & 0xFF, g.flush.bytes(), s));
      CUDA_CHECK(cudaEventRecord(g.start.get(), s));
      d.launch(kind, s);
      CUDA_CHECK(cudaEventRecord(g.stop.get(), s));
      CUDA_CHECK(cudaEventSynchronize(g.stop.get()));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, g.start.get(), g.stop.get()));
      state.SetIterationTime(ms * 1e-3);
      total_s += ms * 1e-3;
    }
    // A plain value, not a rate flag: rate counters would divide by CPU time, not the GPU time.
    const double flops = bench::forward_flops(p) * static_cast<double>(state.iterations());
    state.counters["TFLOP/s"] = total_s > 0 ? flops / total_s / 1e12 : 0.0;
  } catch (const std::exception& e) {
    raise_exit(common::kExitError);
    state.SkipWithError(e.what());
  }
}

void register_benchmarks() {
  for (const DType dtype : kDTypes) {
    for (const ShapeFamily& f : kFamilies) {
      for (const int64_t batch : f.batches) {
        const Problem p = make_problem(f, batch, dtype);
        for (const Kind k : kKinds) {
          const std::string name = fmt::format("{}/{}/B:{}/I:{}/D:{}", name_of(k), to_string(dtype),
                                               batch, f.in, f.hidden);
          benchmark::RegisterBenchmark(name.c_str(), bm_forward, p, k)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  g_have_device = e == cudaSuccess && count > 0;
  if (!g_have_device) {
    std::fprintf(stderr, "swiglu_microbench: no CUDA device (%s); every benchmark is skipped\n",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
  } else {
    try {
      CUDA_CHECK(cudaSetDevice(0));
      g_gpu = std::make_unique<Gpu>(0);
      // Why here: the context is printed once, before the first benchmark runs.
      benchmark::AddCustomContext("swiglu_device", g_gpu->info.name);
      benchmark::AddCustomContext("swiglu_git_sha", common::git_sha());
      benchmark::AddCustomContext("swiglu_l2_flush_bytes", std::to_string(g_gpu->flush.bytes()));
    } catch (const std::exception& ex) {
      g_gpu_error = std::string("device setup: ") + ex.what();
      std::fprintf(stderr, "swiglu_microbench: %s\n", g_gpu_error.c_str());
      raise_exit(common::kExitError);
    }
  }
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // Device resources go before the CUDA runtime tears itself down at exit.
  g_data.reset();
  g_gpu.reset();
  return g_exit;
}
