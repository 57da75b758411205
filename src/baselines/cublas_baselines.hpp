// The cuBLAS baselines: what users run today, as named variants of the benchmark.
//
//   cublas2: two cuBLASLt GEMMs (G = X·Waᵀ + ba, U = X·Wbᵀ + bb, bias fused in the GEMM epilogue as
//            nn.Linear does) written in the input dtype, then the SiLU-mul gate kernel (reads G and
//            U, writes Z), the equivalent of Liger's LigerSiLUMulFunction. Three launches.
//   cublas1: one cuBLASLt GEMM on the stacked/packed weight producing H = [G | U] (B×2D), then the
//            same gate kernel. Two launches.
//
// Plans are built once per problem and buffer set (descriptor creation and the algorithm query stay
// out of the timed region), then run() only enqueues work on the stream.
//
// fp32 math, forward and backward alike (compute_type()): exact runs CUBLAS_COMPUTE_32F, tf32
// CUBLAS_COMPUTE_32F_FAST_TF32, and 3xtf32 CUBLAS_COMPUTE_32F again: cuBLAS has no 3xTF32 compute
// type on Hopper, and the mode's point is fp32 accuracy, so the baseline it is measured against
// is exact fp32.
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <memory>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::baselines {

enum class Variant { cublas2, cublas1 };

std::string_view to_string(Variant);

// The cuBLASLt compute type of p's GEMMs in the math mode that matches p.math (see above).
cublasComputeType_t compute_type(const Problem& p);

// A cuBLASLt handle plus the GEMM workspace, shared by every plan of one benchmark process.
class Cublas {
 public:
  Cublas() = default;
  ~Cublas();
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;

  Status init(size_t workspace_bytes = size_t{32} << 20);
  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// Device bytes of intermediates a variant needs (G and U, or H), in the input dtype.
size_t scratch_bytes(Variant v, const Problem& p);

// One baseline bound to its buffers. x, w, bias (when p.bias), z and scratch are device pointers.
class Plan {
 public:
  Plan();
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;

  static Status create(const Cublas& cublas, Variant v, const Problem& p, const void* x,
                       const void* w, const void* bias, void* z, void* scratch, Plan* out);
  // Enqueues the GEMM(s) and the gate on `stream`.
  Status run(cudaStream_t stream) const;
  // The cuBLASLt algorithm of each GEMM (LtGemm::describe), for reports.
  std::string algorithms() const;
  // The most partial sums of G or U it rounds to the dtype (LtGemm::output_type_slices).
  int output_type_slices() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- backward baselines ---------------------------------------------------------------------------
//
// What a user of two nn.Linear layers plus Liger's LigerSiLUMulFunction runs for the backward:
//   cublas2: the gate backward kernel (reads dZ, G, U; writes dG and dU, the equivalent of Liger's
//            silu-mul backward), dX = dG·Wa + dU·Wb as two GEMMs (the second with beta = 1),
//            dWa = dGᵀ·X and dWb = dUᵀ·X as two GEMMs, then a column-sum kernel for [dba | dbb].
//   cublas1: the same gate backward into dH = [dG | dU], one GEMM for dX (K = 2D), one for dW12
//            (K = B), and the column sum.
// The saved activations are the forward plan's scratch (G and U of cublas2, H of cublas1; see
// Plan::create), which is what the baseline keeps alive between forward and backward.

// Device bytes of the backward's own intermediates in the input dtype: dG at scratch[0, B·D) and
// dU at scratch[B·D, 2·B·D), each B×D (cublas2), or dH = [dG | dU] as B×2D (cublas1).
size_t backward_scratch_bytes(Variant v, const Problem& p);

class BackwardPlan {
 public:
  BackwardPlan();
  ~BackwardPlan();
  BackwardPlan(BackwardPlan&&) noexcept;
  BackwardPlan& operator=(BackwardPlan&&) noexcept;

  // `saved` is the scratch the forward Plan of the same variant wrote. dx (B×I row-major, row
  // stride I) when grads.dx; dw (w's layout) and dbias (2D, when p.bias) when grads.dw. x is needed
  // only for dw, w only for dx; saved, dz (B×D) and scratch always. All in p.dtype; the GEMMs run
  // in compute_type(p) (fp32 with Math::tf32: CUBLAS_COMPUTE_32F_FAST_TF32; with Math::tf32x3:
  // exact fp32). A missing or misaligned pointer is invalid_argument. B == 0, or no gradient
  // requested, plans a no-op that writes nothing (not even the zeros dW and dbias would be), like
  // the library's backward.
  static Status create(const Cublas& cublas, Variant v, const Problem& p, const void* x,
                       const void* w, const void* saved, const void* dz, Grads grads, void* dx,
                       void* dw, void* dbias, void* scratch, BackwardPlan* out);
  // Enqueues the gate backward, the GEMMs and the bias reduction on `stream`.
  Status run(cudaStream_t stream) const;
  // Partial sums of dX (of dW) rounded to the dtype: their GEMMs' output-type split-K slices.
  int dx_slices() const;
  int dw_slices() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swiglu::baselines
