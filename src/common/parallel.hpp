// Host-side data parallelism for the harness's large host passes (seeded inputs, dtype conversions,
// the fp64 reference, parity over outputs of hundreds of millions of elements).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace swiglu::common {

// Calls body(i0, i1) on contiguous slices of [0, n) spread over `threads` host threads (0: all
// hardware threads); the calling thread takes the first slice, and with one thread runs it alone.
// Each index belongs to exactly one slice, so results written per index do not depend on the
// thread count.
template <typename Body>
void parallel_for(int64_t n, unsigned threads, const Body& body) {
  if (n <= 0) return;
  unsigned n_threads = threads != 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  n_threads = static_cast<unsigned>(std::min<int64_t>(n_threads, n));
  const int64_t per = (n + n_threads - 1) / n_threads;
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n_threads; ++t) {
    const int64_t i0 = t * per, i1 = std::min(n, i0 + per);
    if (i0 < i1) pool.emplace_back(body, i0, i1);
  }
  body(int64_t{0}, std::min(n, per));
  for (auto& th : pool) th.join();
}

// All hardware threads for a pass over n elements, or one below `grain` elements (where starting
// threads would cost more than the pass).
inline unsigned threads_for(size_t n, size_t grain = size_t{1} << 22) { return n < grain ? 1 : 0; }

}  // namespace swiglu::common
