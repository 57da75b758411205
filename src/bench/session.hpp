// What the case runners share (run.cpp: check and forward; run_backward.cpp: backward, step and
// memory): the Session that owns the device resources, the result files and the rows, and the
// steps every runner takes (seeded inputs, the reference choice, parity fields, timing).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "bench/case.hpp"
#include "bench/parity.hpp"
#include "bench/run.hpp"
#include "bench/timing.hpp"
#include "bench/writers.hpp"
#include "common/device.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// "B=1024 I=784 D=1024 fp32 packed bias tf32" (or "3xtf32"), for NVTX ranges and messages.
std::string case_label(const Case& c);

// The baselines' name for cublas2 or cublas1.
baselines::Variant baseline_of(Variant v);

// Seeded inputs of one case: X ~ U(−1, 1), W and bias ~ U(−1/√I, 1/√I) as nn.Linear initialises
// them, so the pre-activations have the spread real layers see, and (with_dz) dZ ~ U(−1, 1). All
// rounded to the dtype. Each case has its own stream of numbers derived from the seed and the
// shape, independent of the order cases run in.
struct HostInputs {
  std::vector<float> x, w, bias, dz;
};
HostInputs make_inputs(const Problem& p, uint64_t seed, bool with_dz);

// A new device buffer holding `values` in `dtype` (empty values: an empty buffer).
common::DeviceBuffer upload(const std::vector<float>& values, DType dtype);
// n values of `dtype` from the device, as floats.
std::vector<float> download(const void* device, size_t n, DType dtype);

// Whether a case of `macs` multiply-adds uses the fp64 CPU reference (--reference, and in auto mode
// RunOptions::cpu_reference_max_macs).
bool use_cpu_reference(const RunOptions& o, double macs);

// Copies the metrics and the worst element of `pr` into the row's parity fields.
void set_parity(Row& row, const ParityResult& pr);

// One variant to time: its row receives the summary.
struct TimedRow {
  Row* row = nullptr;
  std::function<void(cudaStream_t)> run;  // enqueues one execution; throws CudaError on failure
  // --graph: before timing, one replay of the captured graph is checked: `poison` enqueues NaN into
  // the outputs `run` writes, the graph is replayed, and `verify` compares the outputs with the
  // reference ("" when they match, else what does not). Either unset: the replay is not checked.
  std::function<void(cudaStream_t)> poison;
  std::function<std::string()> verify;
};

// What one swiglubench process holds while it runs a sweep: the stream, the cuBLASLt handle and
// workspace, the timer, the result writers and the rows so far. run() drives the cases; a runner
// supplies what one case does.
class Session {
 public:
  Session(const RunOptions& o, const common::DeviceInfo& dev, const std::atomic<bool>& stop);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Writes the provenance, runs `run_case` for each case (a CudaError it throws becomes an ERROR
  // row), writes the markdown file and the summary line; returns the process exit code.
  int run(const std::vector<Case>& cases, const common::Json& resolved_config,
          const std::function<void(const Case&)>& run_case);

  // The row as printed and written (markdown on stdout, CSV line, JSON rewrite).
  void emit(Row& r);
  // Gives every row that has no status yet `status` and `reason`, then emits all of them.
  void emit_all(const std::vector<Row*>& rows, const std::string& status, const std::string& reason);
  // When `need_bytes` (plus a margin) does not fit in the device's free memory: every row becomes
  // SKIP with the sizes as its reason, is emitted, and the call returns true.
  bool skip_if_too_large(double need_bytes, const std::vector<Row*>& rows);

  // A row of this sweep's op for one variant of a case, before parity and timing.
  Row base_row(const Case& c, const std::string& variant) const;

  // After a CudaError: a sticky error (an illegal address, say) poisons the context for every later
  // case, so the sweep stops.
  void note_cuda_failure();

  // --profile: runs each item once inside cudaProfilerStart/Stop. Otherwise times the items
  // interleaved (TimingOptions) and fills each row's timing fields, TFLOP/s = flops / t,
  // GB/s = bytes / t (bytes NaN: not reported) and its fraction of the run's copy ceiling, and,
  // for rows other than the baselines, the speedups over cublas2 and cublas1 measured in the same
  // rounds. A CudaError makes every item's row ERROR. With --graph each item's run is first
  // captured into a CUDA graph, and what is profiled or timed is a replay of it (graph_replays).
  void profile_or_time(const std::string& label, const std::vector<TimedRow>& items, double flops,
                       double bytes);

  bool stopped() const { return stop_.load(); }
  bool fatal() const { return fatal_; }
  const RunOptions& options() const { return o_; }
  const common::DeviceInfo& device() const { return dev_; }
  DeviceTraits traits() const { return {dev_.cc_major, dev_.cc_minor, dev_.sm_count}; }
  cudaStream_t stream() const { return stream_.get(); }
  const baselines::Cublas& cublas() const { return cublas_; }

 private:
  common::Json provenance(const common::Json& resolved_config, const GemmPeak* peak,
                          const CopyCeiling* copy) const;
  // --graph: captures each item's run (capture_graph) into `graphs` and returns the items whose
  // run replays it. An item whose capture fails becomes SKIP with the reason, one whose checked
  // replay does not match its reference FAIL; neither is returned.
  std::vector<TimedRow> graph_replays(const std::string& label, const std::vector<TimedRow>& items,
                                      std::vector<common::GraphExec>& graphs);

  const RunOptions& o_;
  const common::DeviceInfo& dev_;
  const std::atomic<bool>& stop_;
  common::Stream stream_;
  baselines::Cublas cublas_;
  std::unique_ptr<Timer> timer_;
  std::unique_ptr<CsvWriter> csv_;
  std::unique_ptr<JsonWriter> json_;
  std::vector<Row> rows_;
  bool fatal_ = false;  // a sticky CUDA error: the context is unusable
  double copy_gbps_ = kNaN;  // the copy ceiling measured at the start of the run (NaN: none)
};

// The check of one forward variant (run.cpp, run_fp8.cpp): `poison` its outputs, `run` it once on
// the session's stream and wait, then `check` them. The row gets the parity fields and the bound
// it was held to, and PASS, or FAIL with `mismatch`'s words (printed to stderr too); a CudaError
// makes it ERROR and is noted (Session::note_cuda_failure). Returns whether it passed.
bool check_forward_variant(Session& s, Row& row, const std::string& label,
                           const std::function<void(cudaStream_t)>& poison,
                           const std::function<void(cudaStream_t)>& run,
                           const std::function<ParityResult()>& check,
                           const std::function<std::string(const ParityResult&)>& mismatch);

// Runs `body(session)` on the device of `options` and turns escaping errors into exit code 3.
int with_session(const RunOptions& options, const std::atomic<bool>& stop,
                 const std::function<int(Session&)>& body);

}  // namespace swiglu::bench
