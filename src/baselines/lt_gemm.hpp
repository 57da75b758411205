// Internal: one cuBLASLt GEMM, planned once and enqueued many times. Used by the baselines and by
// the GPU reference.
//
// Everything is expressed in swiglu's row-major terms and mapped to cuBLAS's column-major view
// here, once (LtGemm::plan): a row-major R×C matrix is a column-major C×R one.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <span>
#include <string>

#include "swiglu/swiglu.hpp"

namespace swiglu::baselines {

// The general GEMM, row-major:
//   Out (m×n, row stride ld_out) = beta·Out + op(A) (m×k) · op(B) (k×n)  [+ bias[j] on column j]
// A is stored row-major as m×k (trans_a false) or as k×m (trans_a true, op(A) = Aᵀ), row stride
// lda; B likewise as k×n (trans_b false) or n×k (trans_b true, op(B) = Bᵀ), row stride ldb. A and B
// are in_type, Out and bias out_type. Products accumulate per `compute`.
struct MatmulSpec {
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  bool trans_a = false;
  const void* b = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  const void* bias = nullptr;  // optional: n elements in out_type, added in the epilogue
  void* out = nullptr;
  int64_t ld_out = 0;
  cudaDataType_t in_type = CUDA_R_16BF;
  cudaDataType_t out_type = CUDA_R_16BF;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  float beta = 0.0f;
  // FP8 operands only (in_type CUDA_R_8F_E4M3): the fp32 scale factors of A and B (device pointers,
  // null for 1) and how cuBLASLt reads them, as cublasLtMatmulMatrixScale_t values: 0 is
  // SCALAR_32F (one per tensor); any other needs cuBLAS 12.8+ headers (fp8_baselines.hpp gives the
  // layouts). FP8 GEMMs run with fast accumulation off (partial sums promoted to fp32).
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  int32_t a_scale_mode = 0;
  int32_t b_scale_mode = 0;
};

// The forward's shorthand: Out (rows×cols row-major, ld_out) = beta·Out + X (rows×k, ldx) · Wᵀ,
// where W's `cols` output rows start at `w` and are laid out per `layout` (linear: row n at
// w + n·ldw, K contiguous; packed: column n at w + n, row k at w + k·ldw). With `bias` set, bias[n]
// is added in the epilogue. See to_matmul for its general form.
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

// A = X (m = rows, not transposed); op(B) = Wᵀ: a linear W is stored cols×k (trans_b), a packed
// W k×cols.
MatmulSpec to_matmul(const GemmSpec& s);

class LtGemm {
 public:
  LtGemm() = default;
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Checks the spec (sizes > 0, pointers set, leading dimensions large enough), builds the
  // descriptors and queries the heuristic for one algorithm. Failures name the cuBLAS status; an
  // FP8 GEMM that cuBLASLt has no algorithm for (none found, or CUBLAS_STATUS_NOT_SUPPORTED) is
  // StatusCode::unsupported.
  Status plan(cublasLtHandle_t handle, const MatmulSpec& spec, size_t workspace_bytes);
  Status plan(cublasLtHandle_t handle, const GemmSpec& spec, size_t workspace_bytes) {
    return plan(handle, to_matmul(spec), workspace_bytes);
  }
  // The chosen algorithm: "algo <id> splitK <n> reduction <scheme>" (what its rounding depends on).
  std::string describe() const;
  // The partial sums of C rounded to C's type: the split-K slices when they are reduced in the
  // output type (in place or in the workspace), else 1.
  int output_type_slices() const;
  // Enqueues the planned GEMM; nothing else.
  Status run(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
             cudaStream_t stream) const;

 private:
  void release();
  MatmulSpec spec_{};
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  bool planned_ = false;
};

// Partial sums rounded to the output type by GEMMs that write one output: chained (each after the
// first adds onto it, beta = 1: their slices add up) or apart (the most any one rounds). 1 at least.
int chained_output_type_slices(std::span<const LtGemm> gemms);
int most_output_type_slices(std::span<const LtGemm> gemms);

cudaDataType_t cuda_type(DType t);
std::string cublas_error(cublasStatus_t s);

}  // namespace swiglu::baselines
