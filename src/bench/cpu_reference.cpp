#include "bench/cpu_reference.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/parallel.hpp"

namespace swiglu::bench {

using common::parallel_for;

double silu(double g) {
  // g·sigmoid(g) written so that exp never overflows into inf·0: for g < 0, e = exp(g) <= 1.
  if (g >= 0) return g / (1.0 + std::exp(-g));
  const double e = std::exp(g);
  return g * e / (1.0 + e);
}

namespace {

void check_sizes(const Problem& p, const std::vector<float>& x, const std::vector<float>& w,
                 const std::vector<float>& bias, const char* who) {
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  if (static_cast<int64_t>(x.size()) < (B > 0 ? (B - 1) * ldx + I : 0) ||
      static_cast<int64_t>(w.size()) != 2 * D * I ||
      (p.bias && static_cast<int64_t>(bias.size()) != 2 * D)) {
    throw std::invalid_argument(std::string(who) + ": buffer sizes do not match the problem");
  }
}

// Weights as 2D rows of I doubles (the linear layout), so the inner loops are contiguous.
std::vector<double> weight_rows(const Problem& p, const std::vector<float>& w) {
  const int64_t I = p.in_features, D = p.hidden;
  std::vector<double> wt(static_cast<size_t>(2 * D * I));
  for (int64_t n = 0; n < 2 * D; ++n)
    for (int64_t k = 0; k < I; ++k)
      wt[n * I + k] = p.layout == Layout::linear ? w[n * I + k] : w[k * 2 * D + n];
  return wt;
}

// G and U of row m (bias included) into g[0..D) and u[0..D); xr receives the row of X.
void pre_activations(const Problem& p, const std::vector<float>& x, const std::vector<double>& wt,
                     const std::vector<float>& bias, int64_t m, double* xr, double* g, double* u) {
  const int64_t I = p.in_features, D = p.hidden, ldx = p.x_stride();
  for (int64_t k = 0; k < I; ++k) xr[k] = x[m * ldx + k];
  for (int64_t n = 0; n < D; ++n) {
    double gn = p.bias ? bias[n] : 0.0, un = p.bias ? bias[D + n] : 0.0;
    const double* wa = &wt[n * I];
    const double* wb = &wt[(D + n) * I];
    for (int64_t k = 0; k < I; ++k) {
      gn += xr[k] * wa[k];
      un += xr[k] * wb[k];
    }
    g[n] = gn;
    u[n] = un;
  }
}

double sigmoid(double g) {
  // Written so that exp never overflows: for g < 0, e = exp(g) <= 1.
  if (g >= 0) return 1.0 / (1.0 + std::exp(-g));
  const double e = std::exp(g);
  return e / (1.0 + e);
}

}  // namespace

std::vector<double> cpu_reference(const Problem& p, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& bias,
                                  unsigned threads) {
  check_sizes(p, x, w, bias, "cpu_reference");
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  const std::vector<double> wt = weight_rows(p, w);
  std::vector<double> z(static_cast<size_t>(B * D));
  parallel_for(B, threads, [&](int64_t r0, int64_t r1) {
    std::vector<double> xr(static_cast<size_t>(I)), g(static_cast<size_t>(D)), u(static_cast<size_t>(D));
    for (int64_t m = r0; m < r1; ++m) {
      pre_activations(p, x, wt, bias, m, xr.data(), g.data(), u.data());
      for (int64_t n = 0; n < D; ++n) z[m * D + n] = silu(g[n]) * u[n];
    }
  });
  return z;
}

CpuGrads cpu_reference_backward(const Problem& p, const std::vector<float>& x,
                                const std::vector<float>& w, const std::vector<float>& bias,
                                const std::vector<float>& dz, unsigned threads,
                                std::span<const float> x_dw) {
  check_sizes(p, x, w, bias, "cpu_reference_backward");
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  if (static_cast<int64_t>(dz.size()) != B * D)
    throw std::invalid_argument("cpu_reference_backward: dz size does not match the problem");
  if (!x_dw.empty() && x_dw.size() != x.size())
    throw std::invalid_argument("cpu_reference_backward: x_dw size does not match x");
  const std::span<const float> xw = x_dw.empty() ? std::span<const float>(x) : x_dw;
  const std::vector<double> wt = weight_rows(p, w);

  // Per row of X: G and U, then dH = [dG | dU] (kept, B×2D) and dX = dH·W12.
  CpuGrads out;
  out.dx.resize(static_cast<size_t>(B * I));
  std::vector<double> dh(static_cast<size_t>(B * 2 * D));
  parallel_for(B, threads, [&](int64_t r0, int64_t r1) {
    std::vector<double> xr(static_cast<size_t>(I)), g(static_cast<size_t>(D)), u(static_cast<size_t>(D));
    for (int64_t m = r0; m < r1; ++m) {
      pre_activations(p, x, wt, bias, m, xr.data(), g.data(), u.data());
      double* dhm = &dh[m * 2 * D];
      for (int64_t n = 0; n < D; ++n) {
        const double s = sigmoid(g[n]);
        const double d = dz[m * D + n];
        dhm[n] = d * u[n] * s * (1.0 + g[n] * (1.0 - s));  // dG = dZ·U·SiLU′(G)
        dhm[D + n] = d * silu(g[n]);                       // dU = dZ·SiLU(G)
      }
      double* dxm = &out.dx[m * I];
      std::fill(dxm, dxm + I, 0.0);
      for (int64_t n = 0; n < 2 * D; ++n) {
        const double* wn = &wt[n * I];
        for (int64_t k = 0; k < I; ++k) dxm[k] += dhm[n] * wn[k];
      }
    }
  });

  // dW12[n][·] = Σ_b dH[b][n]·X[b][·] and dbias[n] = Σ_b dH[b][n]. Why over n: each thread owns
  // whole rows of dW12 and sums over b in order, so the result does not depend on the threads.
  out.dw.resize(static_cast<size_t>(2 * D * I));
  if (p.bias) out.dbias.assign(static_cast<size_t>(2 * D), 0.0);
  parallel_for(2 * D, threads, [&](int64_t n0, int64_t n1) {
    std::vector<double> acc(static_cast<size_t>(I));
    for (int64_t n = n0; n < n1; ++n) {
      std::fill(acc.begin(), acc.end(), 0.0);
      double db = 0;
      for (int64_t m = 0; m < B; ++m) {
        const double d = dh[m * 2 * D + n];
        const float* xm = &xw[static_cast<size_t>(m * ldx)];
        for (int64_t k = 0; k < I; ++k) acc[k] += d * xm[k];
        db += d;
      }
      for (int64_t k = 0; k < I; ++k)
        out.dw[p.layout == Layout::linear ? n * I + k : k * 2 * D + n] = acc[k];
      if (p.bias) out.dbias[n] = db;
    }
  });
  return out;
}

}  // namespace swiglu::bench
