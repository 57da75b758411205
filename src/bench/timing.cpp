#include "bench/timing.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <exception>
#include <memory>

#include "baselines/cublas_baselines.hpp"
#include "baselines/lt_gemm.hpp"
#include "common/device.hpp"
#include "common/host_data.hpp"
#include "common/stats.hpp"

namespace swiglu::bench {

using common::CudaError;
using common::DeviceInfo;
using common::current_sm_clock_mhz;
using common::DeviceBuffer;
using common::Event;
using common::Graph;
using common::GraphExec;
using common::summarize;
using common::uniform_values;
using common::to_dtype_bytes;

GraphExec capture_graph(cudaStream_t stream, const std::function<void(cudaStream_t)>& run,
                        std::string* reason) {
  const auto error_text = [](const char* call, cudaError_t e) {
    return fmt::format("{}: {} ({})", call, cudaGetErrorName(e), cudaGetErrorString(e));
  };
  // Why ThreadLocal: a call in `run` that is illegal under capture (a synchronisation, cudaMalloc)
  // must fail the capture rather than run, and only this thread's calls are the variant's.
  if (const cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
      e != cudaSuccess) {
    (void)cudaGetLastError();
    *reason = error_text("cudaStreamBeginCapture", e);
    return GraphExec();
  }
  std::string run_error;
  try {
    run(stream);
  } catch (const std::exception& e) {
    run_error = e.what();
  } catch (...) {
    run_error = "unknown exception";
  }
  cudaGraph_t raw = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &raw);
  const Graph graph(raw);  // destroyed on every path below
  // Why: a failed or invalidated capture leaves its error to be returned by the next call.
  (void)cudaGetLastError();
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  if (capturing != cudaStreamCaptureStatusNone)
    throw CudaError("capture_graph: the stream is still capturing after cudaStreamEndCapture");
  if (!run_error.empty() || end != cudaSuccess || !graph) {
    *reason = run_error.empty() ? error_text("cudaStreamEndCapture", end)
                                : fmt::format("the variant failed under stream capture: {}{}", run_error,
                                              end != cudaSuccess ? "; " + error_text("cudaStreamEndCapture", end) : "");
    return GraphExec();
  }
  cudaGraphExec_t exec_raw = nullptr;
  if (const cudaError_t e = cudaGraphInstantiate(&exec_raw, graph.get(), 0); e != cudaSuccess) {
    (void)cudaGetLastError();
    *reason = error_text("cudaGraphInstantiate", e);
    return GraphExec();
  }
  GraphExec exec(exec_raw);
  // Why upload now: the first launch of a graph would otherwise pay for it (warm-up hides it too).
  if (const cudaError_t e = cudaGraphUpload(exec.get(), stream); e != cudaSuccess) {
    (void)cudaGetLastError();
    *reason = error_text("cudaGraphUpload", e);
    return GraphExec();
  }
  return exec;
}

Timer::Timer(const DeviceInfo& dev, cudaStream_t stream)
    : dev_(dev), stream_(stream),
      flush_(static_cast<size_t>(std::max<int64_t>(2 * dev.l2_bytes, int64_t{8} << 20))) {}

double Timer::measure(std::vector<TimedVariant>& variants, const TimingOptions& opt,
                      const std::atomic<bool>* stop) const {
  const auto stopped = [&] { return stop != nullptr && stop->load(); };
  {
    nvtx3::scoped_range r{"warmup"};
    for (int i = 0; i < opt.warmup && !stopped(); ++i)
      for (auto& v : variants) v.run(stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  nvtx3::scoped_range r{"timing"};
  // Rounds are enqueued in batches so the host stays ahead of the GPU; each sample has its own
  // pair of events.
  constexpr int kRoundsPerBatch = 8;
  const size_t nv = variants.size();
  std::vector<std::unique_ptr<Event>> start(nv * kRoundsPerBatch), end(nv * kRoundsPerBatch);
  for (auto& e : start) e = std::make_unique<Event>();
  for (auto& e : end) e = std::make_unique<Event>();
  std::vector<double> total_ms(nv, 0.0);
  std::vector<double> clocks;
  for (auto& v : variants) v.samples_ms.clear();

  const auto done = [&] {
    for (size_t i = 0; i < nv; ++i) {
      const auto& s = variants[i].samples_ms;
      if (static_cast<int>(s.size()) >= opt.max_samples) continue;
      if (static_cast<int>(s.size()) < opt.min_samples || total_ms[i] < opt.min_time_s * 1e3) return false;
      if (summarize(s).rel_noise > opt.max_noise) return false;
    }
    return true;
  };
  while (!done() && !stopped()) {
    for (int round = 0; round < kRoundsPerBatch; ++round) {
      for (size_t i = 0; i < nv; ++i) {
        if (opt.cold) {
          CUDA_CHECK(cudaMemsetAsync(flush_.get(), round & 0xFF, flush_.bytes(), stream_));
        }
        CUDA_CHECK(cudaEventRecord(start[round * nv + i]->get(), stream_));
        variants[i].run(stream_);
        CUDA_CHECK(cudaEventRecord(end[round * nv + i]->get(), stream_));
      }
    }
    // Why here: the GPU is busy with the batch just enqueued, so this reads the clock under load.
    if (const int mhz = current_sm_clock_mhz(dev_); mhz > 0) clocks.push_back(mhz);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int round = 0; round < kRoundsPerBatch; ++round) {
      for (size_t i = 0; i < nv; ++i) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, start[round * nv + i]->get(), end[round * nv + i]->get()));
        if (static_cast<int>(variants[i].samples_ms.size()) < opt.max_samples) {
          variants[i].samples_ms.push_back(ms);
          total_ms[i] += ms;
        }
      }
    }
  }
  if (clocks.empty()) return -1;
  std::nth_element(clocks.begin(), clocks.begin() + clocks.size() / 2, clocks.end());
  return clocks[clocks.size() / 2];
}

namespace {

// The median of `samples` event-timed runs of `run` on `stream`, after `warmup` untimed ones.
double median_ms_of(cudaStream_t stream, const std::function<void()>& run) {
  constexpr int warmup = 3, samples = 10;
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  Event start, end;
  for (int i = 0; i < samples; ++i) {
    CUDA_CHECK(cudaEventRecord(start.get(), stream));
    run();
    CUDA_CHECK(cudaEventRecord(end.get(), stream));
    CUDA_CHECK(cudaEventSynchronize(end.get()));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, start.get(), end.get()));
    ms.push_back(t);
  }
  return summarize(ms).median;
}

}  // namespace

bool measure_gemm_peak(const DeviceInfo& dev, const baselines::Cublas& cublas, cudaStream_t stream,
                       GemmPeak* out) {
  nvtx3::scoped_range r{"peak gemm"};
  constexpr int64_t n = 8192;
  const DType dtype = dev.cc_major >= 8 ? DType::bf16 : DType::f16;
  const size_t bytes = static_cast<size_t>(n * n) * dtype_size(dtype);
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (free_b < 3 * bytes + (size_t{256} << 20)) return false;
  // Why random data: a GEMM on zeros runs measurably faster than on real values.
  const auto host = to_dtype_bytes(uniform_values(static_cast<size_t>(n * n), -1, 1, 7, dtype), dtype);
  DeviceBuffer a(bytes), b(bytes), c(bytes);
  CUDA_CHECK(cudaMemcpy(a.get(), host.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(b.get(), host.data(), bytes, cudaMemcpyHostToDevice));
  baselines::GemmSpec spec;
  spec.rows = spec.cols = spec.k = n;
  spec.x = a.get();
  spec.ldx = n;
  spec.w = b.get();
  spec.ldw = n;
  spec.out = c.get();
  spec.ld_out = n;
  spec.in_type = spec.out_type = baselines::cuda_type(dtype);
  baselines::LtGemm gemm;
  if (Status s = gemm.plan(cublas.handle(), spec, cublas.workspace_bytes()); !s.ok()) return false;
  const auto run = [&] {
    if (Status s = gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream); !s.ok())
      throw CudaError(s.message);
  };
  const double median = median_ms_of(stream, run);
  out->dtype = std::string(to_string(dtype));
  out->n = n;
  out->median_ms = median;
  out->tflops = 2.0 * n * n * n / (median * 1e-3) / 1e12;
  return true;
}

std::string ceilings_line(const GemmPeak* peak, const CopyCeiling* copy) {
  std::vector<std::string> parts;
  if (peak != nullptr)
    parts.push_back(fmt::format("{} GEMM {}x{}x{} at {:.0f} TFLOP/s", peak->dtype, peak->n, peak->n, peak->n,
                                peak->tflops));
  if (copy != nullptr)
    parts.push_back(fmt::format("device copy of {:.0f} MiB at {:.0f} GB/s (read + write)",
                                static_cast<double>(copy->bytes) / 1048576.0, copy->gbps));
  return parts.empty() ? std::string() : fmt::format("measured ceilings: {}", fmt::join(parts, "; "));
}

bool measure_copy_ceiling(const DeviceInfo& dev, cudaStream_t stream, CopyCeiling* out) {
  nvtx3::scoped_range r{"copy ceiling"};
  const size_t bytes = std::clamp(16 * static_cast<size_t>(dev.l2_bytes), size_t{256} << 20, size_t{1} << 30);
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (free_b < 2 * bytes + (size_t{256} << 20)) return false;
  DeviceBuffer src(bytes), dst(bytes);
  // Why: the first touch of a page costs more than a copy of it; the warm-up runs do the same.
  CUDA_CHECK(cudaMemsetAsync(src.get(), 0x5a, bytes, stream));
  const double median = median_ms_of(stream, [&] {
    CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  out->bytes = static_cast<int64_t>(bytes);
  out->median_ms = median;
  out->gbps = 2.0 * static_cast<double>(bytes) / (median * 1e-3) / 1e9;
  return true;
}

}  // namespace swiglu::bench
