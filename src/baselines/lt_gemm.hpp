// Internal: one cuBLASLt GEMM, planned once and enqueued many times. Used by the baselines and by
// the GPU reference.
//
// Everything is expressed in swiglu's row-major terms and mapped to cuBLAS's column-major view
// here, once: a row-major R×C matrix is a column-major C×R one.
#pragma once

#include <cublasLt.h>

#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::baselines {

// Out (rows×cols row-major, ld_out) = beta·Out + X (rows×k, ldx) · Wᵀ, where W's `cols` output
// rows start at `w` and are laid out per `layout` (linear: row n at w + n·ldw, K contiguous; packed:
// column n at w + n, row k at w + k·ldw). With `bias` set, bias[n] is added in the epilogue.
struct GemmSpec {
  int64_t rows = 0, cols = 0, k = 0;
  const void* x = nullptr;
  int64_t ldx = 0;
  const void* w = nullptr;
  int64_t ldw = 0;
  Layout layout = Layout::linear;
  const void* bias = nullptr;  // optional, in out_type
  void* out = nullptr;
  int64_t ld_out = 0;
  cudaDataType_t in_type = CUDA_R_16BF;
  cudaDataType_t out_type = CUDA_R_16BF;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  float beta = 0.0f;
};

class LtGemm {
 public:
  LtGemm() = default;
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  Status plan(cublasLtHandle_t handle, const GemmSpec& spec, size_t workspace_bytes);
  Status run(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
             cudaStream_t stream) const;

 private:
  void release();
  GemmSpec spec_{};
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
};

cudaDataType_t cuda_type(DType t);
std::string cublas_error(cublasStatus_t s);

}  // namespace swiglu::baselines
