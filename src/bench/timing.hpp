// The timing harness: CUDA events on the benchmark stream, warm-up, L2 flushed before every sample
// (cold mode), variants interleaved round by round in one process, and samples taken until both a
// minimum count and a minimum measured time are reached, or longer while the noise is too high.
// With --graph the same loop replays each variant's captured CUDA graph (capture_graph).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "common/device.hpp"

namespace swiglu::bench {

struct TimingOptions {
  int warmup = 10;          // untimed runs of each variant before sampling
  int min_samples = 30;     // per variant
  int max_samples = 2000;   // per variant, a hard cap
  double min_time_s = 0.05; // measured kernel time per variant, at least
  double max_noise = 0.05;  // keep sampling (up to max_samples) while IQR/median is above this
  bool cold = true;         // flush L2 before each sample
  // --graph: each variant's timed work is captured once into a CUDA graph (capture_graph) and every
  // warm-up run and sample is one cudaGraphLaunch of it; the L2 flush and the events stay outside.
  bool graph = false;
};

struct TimedVariant {
  std::string name;
  std::function<void(cudaStream_t)> run;  // enqueues one execution; throws on failure
  std::vector<double> samples_ms;
};

// --graph: captures what `run` enqueues on `stream` into a CUDA graph (thread-local capture mode,
// so a call in `run` that would synchronise or allocate fails the capture instead of running) and
// instantiates and uploads it. Nothing is executed. On failure (BeginCapture, `run` throwing, the
// capture invalidated, EndCapture, Instantiate or Upload) it returns an empty GraphExec and sets
// *reason; the stream is out of capture mode again and the error is cleared, so the caller can go
// on using it. Any allocation `run` needs must be done before. Throws CudaError only when the stream
// cannot be brought out of capture mode.
common::GraphExec capture_graph(cudaStream_t stream, const std::function<void(cudaStream_t)>& run,
                        std::string* reason);

class Timer {
 public:
  // The flush buffer is twice the device's L2, so one memset of it evicts every line.
  Timer(const common::DeviceInfo& dev, cudaStream_t stream);

  // Fills each variant's samples_ms. Stops early (with what it has) when *stop becomes true.
  // Returns the median SM clock seen while sampling, or -1 when it cannot be read.
  double measure(std::vector<TimedVariant>& variants, const TimingOptions& opt,
                 const std::atomic<bool>* stop) const;

 private:
  const common::DeviceInfo& dev_;
  cudaStream_t stream_;
  common::DeviceBuffer flush_;
};

}  // namespace swiglu::bench

namespace swiglu::bench {

// The device's dense GEMM ceiling, measured: one square cuBLASLt GEMM (bf16 on sm_80+, fp16
// before) on seeded random inputs, median of a few timed runs. TFLOP/s figures are read against it.
struct GemmPeak {
  std::string dtype;
  int64_t n = 0;  // m = n = k
  double median_ms = 0;
  double tflops = 0;
};

// Returns false (and leaves *out alone) when the device lacks the memory for it.
bool measure_gemm_peak(const common::DeviceInfo& dev, const baselines::Cublas& cublas,
                       cudaStream_t stream, GemmPeak* out);

// The device's copy ceiling, measured the same way: one device-to-device cudaMemcpyAsync of a
// buffer 16 times the L2 (256 MiB to 1 GiB), so that it streams from and to HBM. GB/s count the
// bytes read plus the bytes written, as a forward row's GB/s do.
struct CopyCeiling {
  int64_t bytes = 0;  // copied each run
  double median_ms = 0;
  double gbps = 0;
};

// "measured ceilings: bf16 GEMM 8192x8192x8192 at 790 TFLOP/s; device copy of 1024 MiB at
// 4150 GB/s (read + write)" for the console and markdown headers, naming what was measured; ""
// when neither was.
std::string ceilings_line(const GemmPeak* peak, const CopyCeiling* copy);

// Returns false (and leaves *out alone) when the device lacks the memory for it.
bool measure_copy_ceiling(const common::DeviceInfo& dev, cudaStream_t stream, CopyCeiling* out);

}  // namespace swiglu::bench
