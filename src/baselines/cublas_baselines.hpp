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
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <memory>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::baselines {

enum class Variant { cublas2, cublas1 };

std::string_view to_string(Variant);

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swiglu::baselines
