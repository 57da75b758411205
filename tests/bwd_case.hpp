// Shared by the backward GPU tests and the fuzz test: one problem's seeded inputs and dZ on the
// device, the reference gradients (fp64 CPU, or fp32 cuBLAS for large shapes), and one backward
// call whose outputs are poisoned first and then checked, requested gradients against the
// reference and the others for still holding the poison. An optional edit of the host inputs and
// dZ (NaN, inf, large values) runs before anything is uploaded or referenced.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu_case.hpp"

namespace swiglu::test {

struct Mode {
  Policy policy;
  GatePlacement placement;
  DhStorage dh = DhStorage::workspace;
  bool over_saved = false;  // DhStorage::tensors with save: dH over the saved H (else a buffer of its own)
};

inline std::string describe_mode(const Mode& m) {
  std::string s = std::string(to_string(m.policy)) + "/" + std::string(to_string(m.placement));
  if (m.dh == DhStorage::tensors) s += m.over_saved ? "/dh over saved" : "/dh in a tensor";
  return s;
}

inline BackwardOptions options_for(const Mode& m) {
  BackwardOptions o;
  o.policy = m.policy;
  o.placement = m.placement;
  o.dh_storage = m.dh;
  return o;
}

// Seeded inputs and dZ on the device, the reference gradients, and the outputs of one backward.
class BwdCase {
 public:
  // Edits the seeded host inputs in place: x, w and bias as GpuCase::InputEdit takes them, and
  // dz (B×D, row-major). The sizes must stay. The edited values are rounded to the dtype (so NaN,
  // ±inf and values the dtype cannot hold exactly are fine), then uploaded and given to both
  // references (the forward's Z, which save_forward() checks, and the gradients).
  using InputEdit = std::function<void(std::vector<float>& x, std::vector<float>& w,
                                       std::vector<float>& bias, std::vector<float>& dz)>;

  // gpu_ref: use the fp32 cuBLAS reference instead of the fp64 CPU one.
  BwdCase(const Problem& p, uint64_t seed, bool gpu_ref = false, const InputEdit& edit = {})
      : p_(p),
        hdz_(common::uniform_values(static_cast<size_t>(p.batch * p.hidden), -1, 1, seed + 3,
                                   p.dtype)),
        fwd_(p, seed, gpu_ref, forward_edit(edit)) {
    dz_ = upload(hdz_);
    const size_t es = dtype_size(p.dtype);
    n_dx_ = static_cast<size_t>(p.batch * p.in_features);
    n_dw_ = static_cast<size_t>(2 * p.hidden * p.in_features);
    n_db_ = p.bias ? static_cast<size_t>(2 * p.hidden) : 0;
    dx_ = DeviceBuffer(std::max<size_t>(n_dx_, 1) * es);
    dw_ = DeviceBuffer(n_dw_ * es);
    db_ = DeviceBuffer(std::max<size_t>(n_db_, 1) * es);
    const size_t h_bytes = std::max<size_t>(static_cast<size_t>(p.batch * 2 * p.hidden), 1) * es;
    saved_ = DeviceBuffer(h_bytes);
    saved_copy_ = DeviceBuffer(h_bytes);
    dh_ = DeviceBuffer(h_bytes);
    if (gpu_ref) {
      baselines::Cublas cublas;
      const Status s = cublas.init();
      EXPECT_TRUE(s.ok()) << s.message;
      DeviceBuffer scratch(baselines::reference_backward_scratch_bytes(p));
      DeviceBuffer rdx(n_dx_ * 4), rdw(n_dw_ * 4), rdb(std::max<size_t>(n_db_, 1) * 4);
      const Status r = baselines::gpu_reference_backward(
          cublas, p, fwd_.x(), fwd_.w(), fwd_.bias(), dz_.get(), scratch.get(), rdx.as<float>(),
          rdw.as<float>(), p.bias ? rdb.as<float>() : nullptr, nullptr);
      EXPECT_TRUE(r.ok()) << r.message;
      ref32_dx_ = download_f32(rdx, n_dx_);
      ref32_dw_ = download_f32(rdw, n_dw_);
      ref32_db_ = download_f32(rdb, n_db_);
    } else {
      ref_ = bench::cpu_reference_backward(p, fwd_.host_x(), fwd_.host_w(), fwd_.host_bias(), hdz_);
    }
  }

  const GpuCase& fwd() const { return fwd_; }
  // Where save_forward() puts H, for callers that run the saving forward themselves.
  void* saved() const { return saved_.get(); }
  // dZ exactly as uploaded (after the edit and the rounding), and the fp64 reference gradients
  // (empty with gpu_ref).
  const std::vector<float>& host_dz() const { return hdz_; }
  const bench::CpuGrads& reference() const { return ref_; }

  // dX (B×I), dW (in p.layout) and dbias (2D, empty without bias) as the last backward left them,
  // requested or not.
  struct Outputs {
    std::vector<float> dx, dw, dbias;
  };
  Outputs outputs() const {
    auto read = [&](const DeviceBuffer& b, size_t n) {
      std::vector<unsigned char> raw(n * dtype_size(p_.dtype));
      if (n > 0) CUDA_CHECK(cudaMemcpy(raw.data(), b.get(), raw.size(), cudaMemcpyDeviceToHost));
      return common::from_dtype_bytes(raw.data(), n, p_.dtype);
    };
    return Outputs{read(dx_, n_dx_), read(dw_, n_dw_), read(db_, n_db_)};
  }

  // This case's inputs and outputs as backward() takes them.
  BackwardTensors tensors() const {
    BackwardTensors t;
    t.x = fwd_.x();
    t.w = fwd_.w();
    t.bias = fwd_.bias();
    t.dz = dz_.get();
    t.saved = saved_.get();
    t.dx = dx_.get();
    t.dw = dw_.get();
    t.dbias = p_.bias ? db_.get() : nullptr;
    return t;
  }

  // The bytes of the outputs `g` selects (dX, then dW and dbias), as the last backward left them.
  std::vector<unsigned char> output_bytes(Grads g) const {
    const size_t es = dtype_size(p_.dtype);
    std::vector<unsigned char> out;
    auto append = [&](const DeviceBuffer& b, size_t n) {
      const size_t at = out.size();
      out.resize(at + n * es);
      if (n > 0) CUDA_CHECK(cudaMemcpy(out.data() + at, b.get(), n * es, cudaMemcpyDeviceToHost));
    };
    if (g.dx) append(dx_, n_dx_);
    if (g.dw) {
      append(dw_, n_dw_);
      append(db_, n_db_);
    }
    return out;
  }

  // Runs the saving forward into saved() (and Z, which is checked), for Policy::save, and keeps a
  // copy of H from which a backward that writes dH over it starts.
  bench::ParityResult save_forward(const TileConfig* tile = nullptr) const {
    ForwardOptions o;
    o.saved = saved_.get();
    if (tile != nullptr) o.tile = *tile;
    const bench::ParityResult r = fwd_.check([&] {
      const Status st = forward(p_, fwd_.x(), fwd_.w(), fwd_.bias(), fwd_.z(), nullptr, o);
      ASSERT_TRUE(st.ok()) << st.message;
    });
    CUDA_CHECK(cudaMemcpy(saved_copy_.get(), saved_.get(), saved_.bytes(), cudaMemcpyDeviceToDevice));
    return r;
  }

  struct Result {
    bench::ParityResult dx, dw, dbias;
    bool dx_untouched = true, dw_untouched = true, dbias_untouched = true;
    bool dh_written = true;  // DhStorage::tensors into a buffer of its own: no poison left in it
    BackwardTiles tiles;
    std::string error;
  };

  // Poisons every output, runs backward, checks the requested gradients and that the others still
  // hold the poison. misaligned: X and dZ are read from copies one element past a 256-byte aligned
  // allocation, which the kernels must take through their element-wise paths. poison: the byte
  // every output is filled with first (the NaN of common::kPoisonByte unless a test needs a finite
  // fill to tell an expected NaN from an unwritten element). With DhStorage::tensors, dH goes over
  // the saved H when dh_over_saved and the policy is save (H restored first from the last
  // save_forward()), else to a poisoned buffer of the case's, which must be written in full.
  Result run(const BackwardOptions& o, bool misaligned = false, unsigned char poison = common::kPoisonByte,
             bool dh_over_saved = true) const {
    Result res;
    const size_t es = dtype_size(p_.dtype);
    for (const DeviceBuffer* b : {&dx_, &dw_, &db_, &dh_})
      CUDA_CHECK(cudaMemset(b->get(), poison, b->bytes()));
    const size_t ws_bytes = backward_workspace_bytes(p_, o);
    DeviceBuffer ws(std::max<size_t>(ws_bytes, 1));
    BackwardTensors t = tensors();
    const bool dh_own = o.dh_storage == DhStorage::tensors && !(o.policy == Policy::save && dh_over_saved);
    if (o.dh_storage == DhStorage::tensors) {
      if (dh_own) {
        t.dh = dh_.get();
      } else {
        CUDA_CHECK(cudaMemcpy(saved_.get(), saved_copy_.get(), saved_.bytes(), cudaMemcpyDeviceToDevice));
        t.dh = saved_.get();
      }
    }
    DeviceBuffer x_shifted, dz_shifted;
    if (misaligned) {
      const size_t x_bytes = static_cast<size_t>(p_.batch * p_.x_stride()) * es;
      const size_t dz_bytes = static_cast<size_t>(p_.batch * p_.hidden) * es;
      t.x = shifted_copy(fwd_.x(), x_bytes, &x_shifted);
      t.dz = shifted_copy(dz_.get(), dz_bytes, &dz_shifted);
    }
    const Status st = backward(p_, t, o, ws.get(), ws_bytes, nullptr, &res.tiles);
    if (!st.ok()) {
      res.error = st.message;
      return res;
    }
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    // k: the output's reduction length (dX: 2D, dW and dbias: B); slices: partial sums of it added
    // up in the dtype (dW and dbias of a backward in row chunks).
    auto check = [&](const DeviceBuffer& buf, size_t n, const std::vector<double>& r64,
                     const std::vector<float>& r32, int64_t k, int64_t slices = 1) {
      const auto tol = bench::gradient_tolerance(p_, k, static_cast<int>(slices));
      std::vector<unsigned char> raw(n * es);
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.get(), raw.size(), cudaMemcpyDeviceToHost));
      const auto got = common::from_dtype_bytes(raw.data(), n, p_.dtype);
      return r64.empty() && !r32.empty() ? bench::compare(got, r32, tol) : bench::compare(got, r64, tol);
    };
    auto untouched = [&](const DeviceBuffer& buf, size_t n) {
      std::vector<unsigned char> raw(n * es);
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.get(), raw.size(), cudaMemcpyDeviceToHost));
      for (unsigned char c : raw)
        if (c != poison) return false;
      return true;
    };
    // No element left as poison (an element of all poison bytes).
    auto written = [&](const DeviceBuffer& buf, size_t n) {
      std::vector<unsigned char> raw(n * es);
      CUDA_CHECK(cudaMemcpy(raw.data(), buf.get(), raw.size(), cudaMemcpyDeviceToHost));
      for (size_t e = 0; e < n; ++e) {
        if (std::all_of(raw.begin() + e * es, raw.begin() + (e + 1) * es, [&](unsigned char c) { return c == poison; }))
          return false;
      }
      return true;
    };
    if (dh_own) res.dh_written = written(dh_, static_cast<size_t>(p_.batch * 2 * p_.hidden));
    if (o.grads.dx) {
      res.dx = check(dx_, n_dx_, ref_.dx, ref32_dx_, 2 * p_.hidden);
    } else {
      res.dx_untouched = untouched(dx_, n_dx_);
    }
    if (o.grads.dw) {
      res.dw = check(dw_, n_dw_, ref_.dw, ref32_dw_, p_.batch, res.tiles.chunks);
      if (p_.bias) res.dbias = check(db_, n_db_, ref_.dbias, ref32_db_, p_.batch, res.tiles.chunks);
    } else {
      res.dw_untouched = untouched(dw_, n_dw_);
      if (p_.bias) res.dbias_untouched = untouched(db_, n_db_);
    }
    return res;
  }

 private:
  // The edit as GpuCase applies it to x, w and bias: it also edits (and rounds) hdz_, which is
  // constructed before fwd_ (see the member order) and so exists while fwd_'s constructor runs it.
  GpuCase::InputEdit forward_edit(const InputEdit& edit) {
    if (!edit) return {};
    return [this, edit](std::vector<float>& x, std::vector<float>& w, std::vector<float>& bias) {
      const size_t n = hdz_.size();
      edit(x, w, bias, hdz_);
      if (hdz_.size() != n)
        throw std::invalid_argument("BwdCase: the input edit changed the size of dz");
      for (float& e : hdz_) e = common::round_to(e, p_.dtype);
    };
  }
  // A copy of `bytes` at `src` placed one element into a fresh allocation held by `*holder`.
  const void* shifted_copy(const void* src, size_t bytes, DeviceBuffer* holder) const {
    const size_t es = dtype_size(p_.dtype);
    *holder = DeviceBuffer(bytes + es);
    char* dst = static_cast<char*>(holder->get()) + es;
    if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
    return dst;
  }
  DeviceBuffer upload(const std::vector<float>& v) const {
    const auto bytes = common::to_dtype_bytes(v, p_.dtype);
    DeviceBuffer d(std::max<size_t>(bytes.size(), 1));
    if (!bytes.empty())
      CUDA_CHECK(cudaMemcpy(d.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    return d;
  }
  static std::vector<float> download_f32(const DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    if (n > 0) CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * 4, cudaMemcpyDeviceToHost));
    return v;
  }

  // Why this order: hdz_ before fwd_, whose constructor runs forward_edit() on it.
  Problem p_;
  std::vector<float> hdz_;
  GpuCase fwd_;
  bench::CpuGrads ref_;
  std::vector<float> ref32_dx_, ref32_dw_, ref32_db_;
  size_t n_dx_ = 0, n_dw_ = 0, n_db_ = 0;
  DeviceBuffer dz_, dx_, dw_, db_, saved_, saved_copy_, dh_;
};

// What failed in `r` ("" when everything requested passed and nothing else was written).
inline std::string failures(const BwdCase::Result& r, const BackwardOptions& o, const Problem& p) {
  if (!r.error.empty()) return "backward failed: " + r.error;
  std::string f;
  if (o.grads.dx && !r.dx.pass) f += " dx: " + r.dx.summary() + ";";
  if (o.grads.dw && !r.dw.pass) f += " dw: " + r.dw.summary() + ";";
  if (o.grads.dw && p.bias && !r.dbias.pass) f += " dbias: " + r.dbias.summary() + ";";
  if (!r.dx_untouched) f += " dx written though not requested;";
  if (!r.dw_untouched) f += " dw written though not requested;";
  if (!r.dbias_untouched) f += " dbias written though not requested;";
  if (!r.dh_written) f += " dh not written in full;";
  return f;
}

inline void expect_pass(const BwdCase::Result& r, const BackwardOptions& o, const Problem& p,
                 const std::string& what) {
  ASSERT_TRUE(r.error.empty()) << what << ": " << r.error;
  if (o.grads.dx) {
    EXPECT_TRUE(r.dx.pass) << what << " dx: " << r.dx.summary();
  }
  if (o.grads.dw) {
    EXPECT_TRUE(r.dw.pass) << what << " dw: " << r.dw.summary();
    if (p.bias) {
      EXPECT_TRUE(r.dbias.pass) << what << " dbias: " << r.dbias.summary();
    }
  }
  EXPECT_TRUE(r.dx_untouched) << what << ": dx written though not requested";
  EXPECT_TRUE(r.dw_untouched) << what << ": dw written though not requested";
  EXPECT_TRUE(r.dbias_untouched) << what << ": dbias written though not requested";
  EXPECT_TRUE(r.dh_written) << what << ": dh not written in full";
}


}  // namespace swiglu::test
