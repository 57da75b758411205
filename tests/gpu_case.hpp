// Shared by the GPU tests: one problem's seeded inputs on the device, its fp64 CPU reference (or
// the fp32 GPU reference for large shapes), and a check of an output written by any variant.
// An optional edit of the host inputs (NaN, inf, large values) runs before they are uploaded.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/parity.hpp"
#include "common/device.hpp"
#include "common/host_data.hpp"

namespace swiglu::test {

using common::DeviceBuffer;

// Tails in every dimension, aligned and unaligned row lengths, and one shape of the MNIST family,
// shared by the forward and backward tests. 33×784×1001 keeps the 16-byte loads of the forward
// (rows of I = 784) but not its paired Z stores (odd D); D = 1001 and 136 break the backward's
// 16-byte dH vectors (D % 8), I = 777 and the padded X stride its B-operand vectors.
struct TailShape {
  int64_t b, i, d, pad;  // B, I, D and the X row padding (ldx = I + pad)

  Problem problem(DType dtype, Layout layout, bool bias, Math math = Math::exact) const {
    Problem p;
    p.batch = b;
    p.in_features = i;
    p.hidden = d;
    p.ldx = i + pad;
    p.dtype = dtype;
    p.layout = layout;
    p.bias = bias;
    p.math = math;
    return p;
  }
};
inline constexpr TailShape kTailShapes[] = {{1, 777, 1001, 0}, {37, 64, 72, 0},
                                            {130, 256, 264, 0}, {64, 784, 512, 0},
                                            {19, 200, 136, 3},  {33, 784, 1001, 0}};

inline std::string describe(const Problem& p) {
  std::string s = "B=" + std::to_string(p.batch) + " I=" + std::to_string(p.in_features) +
                  " D=" + std::to_string(p.hidden) + " ldx=" + std::to_string(p.x_stride()) + " " +
                  std::string(to_string(p.dtype)) + " " + std::string(to_string(p.layout)) +
                  (p.bias ? " bias" : "");
  if (p.math != Math::exact) {  // Why not " " + ...: GCC 12 warns (-Wrestrict) on that form
    s += ' ';
    s += to_string(p.math);
  }
  return s;
}

inline DeviceTraits current_traits() {
  int dev = 0;
  cudaGetDevice(&dev);
  DeviceTraits t;
  const Status s = device_traits(dev, &t);
  EXPECT_TRUE(s.ok()) << s.message;
  return t;
}

class GpuCase {
 public:
  // Edits the seeded host inputs in place: x is B×ldx, w is 2D×I (linear) or I×2D (packed), bias is
  // 2D values or empty. The sizes must stay. The edited values are then rounded to the dtype (so
  // NaN, ±inf and values the dtype cannot hold exactly are fine), uploaded, and given to the
  // reference.
  using InputEdit =
      std::function<void(std::vector<float>& x, std::vector<float>& w, std::vector<float>& bias)>;

  // gpu_ref: use the fp32 cuBLAS reference instead of the fp64 CPU one.
  GpuCase(const Problem& p, uint64_t seed, bool gpu_ref = false, const InputEdit& edit = {}) : p_(p) {
    const float ws = 1.0f / std::sqrt(static_cast<float>(p.in_features));
    const size_t xn = static_cast<size_t>(p.batch * p.x_stride());
    hx_ = common::uniform_values(xn, -1, 1, seed, p.dtype);
    hw_ = common::uniform_values(static_cast<size_t>(2 * p.hidden * p.in_features), -ws, ws, seed + 1, p.dtype);
    if (p.bias) hb_ = common::uniform_values(static_cast<size_t>(2 * p.hidden), -ws, ws, seed + 2, p.dtype);
    if (edit) {
      const size_t nx = hx_.size(), nw = hw_.size(), nb = hb_.size();
      edit(hx_, hw_, hb_);
      if (hx_.size() != nx || hw_.size() != nw || hb_.size() != nb)
        throw std::invalid_argument("GpuCase: the input edit changed the size of x, w or bias");
      for (std::vector<float>* v : {&hx_, &hw_, &hb_})
        for (float& e : *v) e = common::round_to(e, p.dtype);
    }
    x_ = upload(hx_);
    w_ = upload(hw_);
    if (p.bias) b_ = upload(hb_);
    z_ = DeviceBuffer(static_cast<size_t>(p.batch * p.hidden) * dtype_size(p.dtype));
    if (gpu_ref) {
      baselines::Cublas cublas;
      const Status s = cublas.init();
      EXPECT_TRUE(s.ok()) << s.message;
      DeviceBuffer h(baselines::reference_scratch_bytes(p));
      DeviceBuffer zr(static_cast<size_t>(p.batch * p.hidden) * sizeof(float));
      const Status r = baselines::gpu_reference(cublas, p, x_.get(), w_.get(), b_.get(), h.as<float>(),
                                                zr.as<float>(), nullptr);
      EXPECT_TRUE(r.ok()) << r.message;
      ref32_.resize(static_cast<size_t>(p.batch * p.hidden));
      CUDA_CHECK(cudaMemcpy(ref32_.data(), zr.get(), ref32_.size() * 4, cudaMemcpyDeviceToHost));
    } else {
      ref64_ = bench::cpu_reference(p, hx_, hw_, hb_);
    }
  }

  const void* x() const { return x_.get(); }
  const void* w() const { return w_.get(); }
  const void* bias() const { return b_.get(); }
  void* z() const { return z_.get(); }

  // The host inputs exactly as uploaded (after the edit and the rounding), and the fp64 reference
  // (empty with gpu_ref).
  const std::vector<float>& host_x() const { return hx_; }
  const std::vector<float>& host_w() const { return hw_; }
  const std::vector<float>& host_bias() const { return hb_; }
  const std::vector<double>& reference() const { return ref64_; }

  // Poisons Z, calls `run` (which must write Z on the default stream), then checks Z at the
  // tolerance of a variant that rounds as `rounding` says (the fused kernel's by default).
  bench::ParityResult check(const std::function<void()>& run,
                            bench::Rounding rounding = bench::kFusedRounding) const {
    CUDA_CHECK(cudaMemset(z_.get(), common::kPoisonByte, z_.bytes()));
    run();
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<unsigned char> raw(z_.bytes());
    CUDA_CHECK(cudaMemcpy(raw.data(), z_.get(), raw.size(), cudaMemcpyDeviceToHost));
    const auto got = common::from_dtype_bytes(raw.data(), static_cast<size_t>(p_.batch * p_.hidden), p_.dtype);
    const auto tol = bench::tolerance(p_, rounding);
    return ref64_.empty() ? bench::compare(got, ref32_, tol) : bench::compare(got, ref64_, tol);
  }

 private:
  DeviceBuffer upload(const std::vector<float>& v) const {
    const auto bytes = common::to_dtype_bytes(v, p_.dtype);
    DeviceBuffer d(bytes.size());
    CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    return d;
  }

  Problem p_;
  std::vector<float> hx_, hw_, hb_;
  std::vector<double> ref64_;
  std::vector<float> ref32_;
  DeviceBuffer x_, w_, b_, z_;
};

}  // namespace swiglu::test
