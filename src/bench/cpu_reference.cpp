#include "bench/cpu_reference.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>

namespace swiglu::bench {

double silu(double g) {
  // g·sigmoid(g) written so that exp never overflows into inf·0: for g < 0, e = exp(g) <= 1.
  if (g >= 0) return g / (1.0 + std::exp(-g));
  const double e = std::exp(g);
  return g * e / (1.0 + e);
}

std::vector<double> cpu_reference(const Problem& p, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& bias,
                                  unsigned threads) {
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  if (static_cast<int64_t>(x.size()) < (B > 0 ? (B - 1) * ldx + I : 0) ||
      static_cast<int64_t>(w.size()) != 2 * D * I ||
      (p.bias && static_cast<int64_t>(bias.size()) != 2 * D)) {
    throw std::invalid_argument("cpu_reference: buffer sizes do not match the problem");
  }
  // Weights as 2D rows of I doubles (the linear layout), so the inner loop is contiguous.
  std::vector<double> wt(static_cast<size_t>(2 * D * I));
  for (int64_t n = 0; n < 2 * D; ++n)
    for (int64_t k = 0; k < I; ++k)
      wt[n * I + k] = p.layout == Layout::linear ? w[n * I + k] : w[k * 2 * D + n];

  std::vector<double> z(static_cast<size_t>(B * D));
  const auto rows = [&](int64_t r0, int64_t r1) {
    std::vector<double> xr(static_cast<size_t>(I));
    for (int64_t m = r0; m < r1; ++m) {
      for (int64_t k = 0; k < I; ++k) xr[k] = x[m * ldx + k];
      for (int64_t n = 0; n < D; ++n) {
        double g = p.bias ? bias[n] : 0.0, u = p.bias ? bias[D + n] : 0.0;
        const double* wa = &wt[n * I];
        const double* wb = &wt[(D + n) * I];
        for (int64_t k = 0; k < I; ++k) {
          g += xr[k] * wa[k];
          u += xr[k] * wb[k];
        }
        z[m * D + n] = silu(g) * u;
      }
    }
  };
  unsigned n_threads = threads != 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  n_threads = static_cast<unsigned>(std::min<int64_t>(n_threads, std::max<int64_t>(B, 1)));
  std::vector<std::thread> pool;
  const int64_t per = (B + n_threads - 1) / n_threads;
  for (unsigned t = 0; t < n_threads; ++t) {
    const int64_t r0 = t * per, r1 = std::min(B, r0 + per);
    if (r0 < r1) pool.emplace_back(rows, r0, r1);
  }
  for (auto& th : pool) th.join();
  return z;
}

}  // namespace swiglu::bench
