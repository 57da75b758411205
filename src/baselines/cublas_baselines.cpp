#include "baselines/cublas_baselines.hpp"

#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <cstdint>
#include <string>

#include "baselines/lt_gemm.hpp"
#include "swiglu/gate.hpp"

namespace swiglu::baselines {
namespace {

Status cuda_fail(const char* what, cudaError_t e) {
  return Status{StatusCode::cuda_error, std::string(what) + ": " + cudaGetErrorString(e)};
}

#define SWIGLU_LT_CHECK(call)                                                                  \
  do {                                                                                        \
    if (cublasStatus_t st_ = (call); st_ != CUBLAS_STATUS_SUCCESS) {                          \
      return Status{StatusCode::cublas_error,                                                 \
                    std::string(#call) + " failed at " __FILE__ ":" + std::to_string(__LINE__) + \
                        ": " + cublas_error(st_)};                                            \
    }                                                                                         \
  } while (0)

uint32_t alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

}  // namespace

std::string cublas_error(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ")";
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

std::string_view to_string(Variant v) { return v == Variant::cublas2 ? "cublas2" : "cublas1"; }

// --- LtGemm --------------------------------------------------------------------------------------

LtGemm::~LtGemm() { release(); }

void LtGemm::release() {
  if (op_) cublasLtMatmulDescDestroy(op_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  op_ = nullptr;
  a_ = b_ = c_ = nullptr;
}

Status LtGemm::plan(cublasLtHandle_t handle, const GemmSpec& s, size_t workspace_bytes) {
  release();
  spec_ = s;
  // Column-major view: Outᵀ (cols×rows, ld_out) = op(A) (cols×k) · Xᵀ (k×rows, ldx).
  //  linear W: stored as a column-major k×cols matrix (ld = ldw), used transposed.
  //  packed W: stored as a column-major cols×k matrix (ld = ldw), used as is.
  const cublasOperation_t trans_a = s.layout == Layout::linear ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  const cudaDataType_t scale = CUDA_R_32F;
  SWIGLU_LT_CHECK(cublasLtMatmulDescCreate(&op_, s.compute, scale));
  SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  if (s.bias != nullptr) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &s.bias, sizeof(s.bias)));
  }
  if (s.layout == Layout::linear) {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&a_, s.in_type, s.k, s.cols, s.ldw));
  } else {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&a_, s.in_type, s.cols, s.k, s.ldw));
  }
  SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&b_, s.in_type, s.k, s.rows, s.ldx));
  SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&c_, s.out_type, s.cols, s.rows, s.ld_out));

  cublasLtMatmulPreference_t pref = nullptr;
  SWIGLU_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  // Why: cuBLASLt assumes 256-byte aligned pointers unless told otherwise, and may then pick an
  // algorithm that faults on the offset views (Wb = W + D·I) this project passes.
  // The alignment attributes are uint32_t, the workspace size uint64_t (cublasLt.h).
  const uint32_t align_a = alignment_of(s.w), align_b = alignment_of(s.x),
                 align_c = alignment_of(s.out);
  const uint64_t ws = workspace_bytes;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(handle, op_, a_, b_, c_, c_, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  SWIGLU_LT_CHECK(st);
  if (found == 0) {
    return Status{StatusCode::unsupported,
                  "cuBLASLt has no algorithm for a " + std::to_string(s.rows) + "x" +
                      std::to_string(s.cols) + "x" + std::to_string(s.k) + " GEMM"};
  }
  algo_ = result.algo;
  return Status::success();
}

Status LtGemm::run(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream) const {
  const float alpha = 1.0f;
  SWIGLU_LT_CHECK(cublasLtMatmul(handle, op_, &alpha, spec_.w, a_, spec_.x, b_, &spec_.beta,
                                 spec_.out, c_, spec_.out, c_, &algo_, workspace, workspace_bytes,
                                 stream));
  return Status::success();
}

// --- Cublas --------------------------------------------------------------------------------------

Cublas::~Cublas() {
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Status Cublas::init(size_t workspace_bytes) {
  SWIGLU_LT_CHECK(cublasLtCreate(&handle_));
  if (cudaError_t e = cudaMalloc(&workspace_, workspace_bytes); e != cudaSuccess)
    return cuda_fail("cudaMalloc(cuBLASLt workspace)", e);
  workspace_bytes_ = workspace_bytes;
  return Status::success();
}

// --- Plan ----------------------------------------------------------------------------------------

struct Plan::Impl {
  const Cublas* cublas = nullptr;
  Variant variant = Variant::cublas2;
  Problem problem;
  LtGemm gemm[2];
  const void* gate_a = nullptr;
  const void* gate_b = nullptr;
  int64_t gate_ld = 0;
  void* z = nullptr;
};

Plan::Plan() = default;
Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

size_t scratch_bytes(Variant, const Problem& p) {
  // Both variants hold B×2D intermediates: G and U side by side, or H = [G | U].
  return static_cast<size_t>(p.batch) * 2 * static_cast<size_t>(p.hidden) * dtype_size(p.dtype);
}

Status Plan::create(const Cublas& cublas, Variant v, const Problem& p, const void* x,
                    const void* w, const void* bias, void* z, void* scratch, Plan* out) {
  if (Status s = validate_forward(p, x, w, bias, z); !s.ok()) return s;
  if (p.batch > 0 && scratch == nullptr)
    return Status{StatusCode::invalid_argument, "baseline scratch is null"};
  auto impl = std::make_unique<Impl>();
  impl->cublas = &cublas;
  impl->variant = v;
  impl->problem = p;
  impl->z = z;
  const size_t es = dtype_size(p.dtype);
  const int64_t D = p.hidden, I = p.in_features;
  const auto* wb = static_cast<const char*>(w);
  const auto* bb = static_cast<const char*>(bias);
  auto* sc = static_cast<char*>(scratch);

  GemmSpec g;
  g.rows = p.batch;
  g.k = I;
  g.x = x;
  g.ldx = p.x_stride();
  g.layout = p.layout;
  g.ldw = p.layout == Layout::linear ? I : 2 * D;
  g.in_type = g.out_type = cuda_type(p.dtype);
  g.compute = p.dtype == DType::f32 && p.math == Math::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                            : CUBLAS_COMPUTE_32F;
  if (p.batch > 0) {
    if (v == Variant::cublas2) {
      // G = scratch[0 .. B·D), U = scratch[B·D .. 2·B·D), each B×D.
      const int64_t w_step = p.layout == Layout::linear ? D * I : D;  // where Wb starts, in elements
      for (int j = 0; j < 2; ++j) {
        GemmSpec s = g;
        s.cols = D;
        s.w = wb + static_cast<size_t>(j * w_step) * es;
        s.bias = p.bias ? bb + static_cast<size_t>(j * D) * es : nullptr;
        s.out = sc + static_cast<size_t>(j) * static_cast<size_t>(p.batch * D) * es;
        s.ld_out = D;
        if (Status st = impl->gemm[j].plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok())
          return st;
      }
      impl->gate_a = sc;
      impl->gate_b = sc + static_cast<size_t>(p.batch * D) * es;
      impl->gate_ld = D;
    } else {
      GemmSpec s = g;
      s.cols = 2 * D;
      s.w = w;
      s.bias = p.bias ? bias : nullptr;
      s.out = sc;
      s.ld_out = 2 * D;
      if (Status st = impl->gemm[0].plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok())
        return st;
      impl->gate_a = sc;
      impl->gate_b = sc + static_cast<size_t>(D) * es;
      impl->gate_ld = 2 * D;
    }
  }
  out->impl_ = std::move(impl);
  return Status::success();
}

Status Plan::run(cudaStream_t stream) const {
  if (!impl_) return Status{StatusCode::invalid_argument, "baseline plan is empty"};
  const Impl& m = *impl_;
  if (m.problem.batch == 0) return Status::success();
  nvtx3::scoped_range range{m.variant == Variant::cublas2 ? "baseline::cublas2" : "baseline::cublas1"};
  const int gemms = m.variant == Variant::cublas2 ? 2 : 1;
  for (int j = 0; j < gemms; ++j) {
    if (Status s = m.gemm[j].run(m.cublas->handle(), m.cublas->workspace(),
                                 m.cublas->workspace_bytes(), stream);
        !s.ok())
      return s;
  }
  const cudaError_t e = detail::launch_gate(m.problem.dtype, m.problem.dtype, m.gate_a, m.gate_ld,
                                            m.gate_b, m.gate_ld, m.z, m.problem.hidden,
                                            m.problem.batch, m.problem.hidden, stream);
  if (e != cudaSuccess) return cuda_fail("gate kernel launch", e);
  return Status::success();
}

}  // namespace swiglu::baselines
