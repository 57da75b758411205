#include "bench/harness.hpp"

#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <memory>

#include "bench/stats.hpp"

namespace swiglu::bench {

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

}  // namespace swiglu::bench
