#include "baselines/cublas_baselines.hpp"

#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
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
    case DType::e4m3: return CUDA_R_8F_E4M3;
  }
  return CUDA_R_32F;
}

std::string_view to_string(Variant v) { return v == Variant::cublas2 ? "cublas2" : "cublas1"; }

cublasComputeType_t compute_type(const Problem& p) {
  if (p.dtype != DType::f32) return CUBLAS_COMPUTE_32F;
  switch (p.math) {
    case Math::exact: return CUBLAS_COMPUTE_32F;
    case Math::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    // Why exact: cuBLAS has no 3xTF32 compute type on Hopper, and 3xtf32 is there for fp32
    // accuracy, so the matching baseline is exact fp32 (CUBLAS_COMPUTE_32F).
    case Math::tf32x3: return CUBLAS_COMPUTE_32F;
  }
  return CUBLAS_COMPUTE_32F;
}

// --- LtGemm --------------------------------------------------------------------------------------

LtGemm::~LtGemm() { release(); }

void LtGemm::release() {
  if (op_) cublasLtMatmulDescDestroy(op_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  op_ = nullptr;
  a_ = b_ = c_ = nullptr;
  planned_ = false;
}

MatmulSpec to_matmul(const GemmSpec& g) {
  MatmulSpec s;
  s.m = g.rows;
  s.n = g.cols;
  s.k = g.k;
  s.a = g.x;
  s.lda = g.ldx;
  s.trans_a = false;
  s.b = g.w;
  s.ldb = g.ldw;
  // op(B) = Wᵀ (k×cols): a linear W is stored cols×k row-major, a packed W is k×cols row-major.
  s.trans_b = g.layout == Layout::linear;
  s.bias = g.bias;
  s.out = g.out;
  s.ld_out = g.ld_out;
  s.in_type = g.in_type;
  s.out_type = g.out_type;
  s.compute = g.compute;
  s.beta = g.beta;
  return s;
}

Status LtGemm::plan(cublasLtHandle_t handle, const MatmulSpec& s, size_t workspace_bytes) {
  release();
  const std::string shape = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                            std::to_string(s.k);
  if (s.m <= 0 || s.n <= 0 || s.k <= 0)
    return Status{StatusCode::invalid_argument, "GEMM " + shape + ": every size must be > 0"};
  if (s.a == nullptr || s.b == nullptr || s.out == nullptr)
    return Status{StatusCode::invalid_argument, "GEMM " + shape + ": an operand pointer is null"};
  // Row strides of the stored row-major matrices: A is m×k or k×m, B is k×n or n×k, Out is m×n.
  const int64_t a_cols = s.trans_a ? s.m : s.k, b_cols = s.trans_b ? s.k : s.n;
  if (s.lda < a_cols || s.ldb < b_cols || s.ld_out < s.n) {
    return Status{StatusCode::invalid_argument,
                  "GEMM " + shape + ": leading dimension too small (lda " + std::to_string(s.lda) +
                      " < " + std::to_string(a_cols) + ", ldb " + std::to_string(s.ldb) + " < " +
                      std::to_string(b_cols) + " or ld_out " + std::to_string(s.ld_out) + " < " +
                      std::to_string(s.n) + ")"};
  }
  spec_ = s;
  // Column-major view: Outᵀ (n×m, ld_out) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m), so cuBLAS's A is our B and
  // cuBLAS's B is our A. A row-major R×C buffer is a column-major C×R matrix, hence:
  //   B stored k×n (!trans_b) = column-major n×k = op(B)ᵀ itself -> OP_N, layout n×k, ld ldb
  //   B stored n×k ( trans_b) = column-major k×n                 -> OP_T, layout k×n, ld ldb
  //   A stored m×k (!trans_a) = column-major k×m = op(A)ᵀ itself -> OP_N, layout k×m, ld lda
  //   A stored k×m ( trans_a) = column-major m×k                 -> OP_T, layout m×k, ld lda
  const cublasOperation_t lt_trans_a = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t lt_trans_b = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cudaDataType_t scale = CUDA_R_32F;
  SWIGLU_LT_CHECK(cublasLtMatmulDescCreate(&op_, s.compute, scale));
  SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &lt_trans_a,
                                                 sizeof(lt_trans_a)));
  SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &lt_trans_b,
                                                 sizeof(lt_trans_b)));
  const bool fp8 = s.in_type == CUDA_R_8F_E4M3 || s.in_type == CUDA_R_8F_E5M2;
  if (fp8) {
    // Why explicit: fast accumulation (the tensor cores' partial sums never promoted to fp32) is
    // off by default; saying so keeps what is measured the fp32-accumulating GEMM.
    const int8_t fast_accum = 0;
    SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast_accum,
                                                   sizeof(fast_accum)));
    // cuBLAS's A is our B and its B our A (see above), and so are their scales.
    if (s.b_scale != nullptr) {
      SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                     &s.b_scale, sizeof(s.b_scale)));
    }
    if (s.a_scale != nullptr) {
      SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                     &s.a_scale, sizeof(s.a_scale)));
    }
    if (s.a_scale_mode != 0 || s.b_scale_mode != 0) {
#if CUBLAS_VERSION >= 120800
      SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                                     &s.b_scale_mode, sizeof(s.b_scale_mode)));
      SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                                     &s.a_scale_mode, sizeof(s.a_scale_mode)));
#else
      return Status{StatusCode::unsupported,
                    "GEMM " + shape + ": scale modes other than per tensor need cuBLAS 12.8+ headers"};
#endif
    }
  }
  if (s.bias != nullptr) {
    // cuBLAS's bias runs along the rows of its column-major C (n of them): our per-column bias.
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    SWIGLU_LT_CHECK(
        cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &s.bias,
                                                   sizeof(s.bias)));
    if (fp8) {
      // Why explicit: FP8 GEMMs default the bias type from the output type only for some outputs.
      const int32_t bias_type = s.out_type;
      SWIGLU_LT_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                     &bias_type, sizeof(bias_type)));
    }
  }
  if (s.trans_b) {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&a_, s.in_type, s.k, s.n, s.ldb));
  } else {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&a_, s.in_type, s.n, s.k, s.ldb));
  }
  if (s.trans_a) {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&b_, s.in_type, s.m, s.k, s.lda));
  } else {
    SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&b_, s.in_type, s.k, s.m, s.lda));
  }
  SWIGLU_LT_CHECK(cublasLtMatrixLayoutCreate(&c_, s.out_type, s.n, s.m, s.ld_out));

  cublasLtMatmulPreference_t pref = nullptr;
  SWIGLU_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  // Why: cuBLASLt assumes 256-byte aligned pointers unless told otherwise, and may then pick an
  // algorithm that faults on the offset views (Wb = W + D·I, dU = dH + D) this project passes.
  // The alignment attributes are uint32_t, the workspace size uint64_t (cublasLt.h).
  const uint32_t align_a = alignment_of(s.b), align_b = alignment_of(s.a),
                 align_c = alignment_of(s.out);
  const uint64_t ws = workspace_bytes;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  const cublasLtMatmulPreferenceAttributes_t align_attr[] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  const uint32_t align_val[] = {align_a, align_b, align_c, align_c};
  for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; ++i) {
    st = cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align_val[i],
                                              sizeof(align_val[i]));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(handle, op_, a_, b_, c_, c_, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (fp8 && st == CUBLAS_STATUS_NOT_SUPPORTED) {
    return Status{StatusCode::unsupported,
                  "cuBLASLt does not support this FP8 " + shape + " GEMM: " + cublas_error(st)};
  }
  SWIGLU_LT_CHECK(st);
  if (found == 0) {
    return Status{StatusCode::unsupported, "cuBLASLt has no algorithm for a " + shape + " GEMM" +
                                               (s.trans_a ? " (A transposed)" : "") +
                                               (s.trans_b ? " (B transposed)" : "")};
  }
  algo_ = result.algo;
  planned_ = true;
  return Status::success();
}

Status LtGemm::run(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream) const {
  if (!planned_) return Status{StatusCode::internal, "LtGemm::run before a successful plan"};
  const float alpha = 1.0f;
  // cuBLAS's A is our B and its B our A (see plan).
  SWIGLU_LT_CHECK(cublasLtMatmul(handle, op_, &alpha, spec_.b, a_, spec_.a, b_, &spec_.beta,
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

namespace {

// An attribute of a planned algorithm's configuration, or `fallback` when cuBLASLt has none.
template <class T>
T algo_config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attribute, T fallback) {
  T value = fallback;
  size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value, sizeof value, &written) != CUBLAS_STATUS_SUCCESS)
    return fallback;
  return value;
}

}  // namespace

int LtGemm::output_type_slices() const {
  if (!planned_) return 1;
  const auto splits = algo_config<int32_t>(algo_, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, 1);
  const auto scheme = algo_config<uint32_t>(algo_, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, 0);
  const bool in_output_type =
      scheme == CUBLASLT_REDUCTION_SCHEME_INPLACE || scheme == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
  return in_output_type ? std::max<int32_t>(splits, 1) : 1;
}

int chained_output_type_slices(std::span<const LtGemm> gemms) {
  int slices = 0;
  for (const LtGemm& g : gemms) slices += g.output_type_slices();
  return std::max(slices, 1);
}

int most_output_type_slices(std::span<const LtGemm> gemms) {
  int slices = 1;
  for (const LtGemm& g : gemms) slices = std::max(slices, g.output_type_slices());
  return slices;
}

std::string LtGemm::describe() const {
  if (!planned_) return "not planned";
  const auto id = algo_config<int32_t>(algo_, CUBLASLT_ALGO_CONFIG_ID, 0);
  const auto splits = algo_config<int32_t>(algo_, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, 1);
  const auto scheme = algo_config<uint32_t>(algo_, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, 0);
  const char* name = scheme == CUBLASLT_REDUCTION_SCHEME_NONE           ? "none"
                     : scheme == CUBLASLT_REDUCTION_SCHEME_INPLACE       ? "inplace"
                     : scheme == CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE  ? "compute-type"
                     : scheme == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE   ? "output-type"
                                                                         : "other";
  return "algo " + std::to_string(id) + " splitK " + std::to_string(splits) + " reduction " + name;
}

std::string Plan::algorithms() const {
  if (!impl_) return {};
  std::string s = impl_->gemm[0].describe();
  if (impl_->variant == Variant::cublas2) s += "; " + impl_->gemm[1].describe();
  return s;
}

int Plan::output_type_slices() const {
  if (!impl_) return 1;
  return most_output_type_slices({impl_->gemm, impl_->variant == Variant::cublas2 ? size_t{2} : size_t{1}});
}

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
  g.compute = compute_type(p);
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

// --- BackwardPlan --------------------------------------------------------------------------------

struct BackwardPlan::Impl {
  const Cublas* cublas = nullptr;
  Variant variant = Variant::cublas2;
  Problem problem;
  bool noop = true;
  // Gate backward: G, U (saved, row stride ld_saved) and dZ (B×D) -> dG, dU (scratch, ld_dh).
  const void* g = nullptr;
  const void* u = nullptr;
  int64_t ld_saved = 0;
  const void* dz = nullptr;
  void* dg = nullptr;
  void* du = nullptr;
  int64_t ld_dh = 0;
  LtGemm dx_gemm[2], dw_gemm[2];
  int dx_gemms = 0, dw_gemms = 0;
  void* dbias = nullptr;  // set when the bias gradient is computed
};

int BackwardPlan::dx_slices() const {
  // cublas2's second dX GEMM adds onto the first's output (beta = 1).
  return impl_ ? chained_output_type_slices({impl_->dx_gemm, static_cast<size_t>(impl_->dx_gemms)}) : 1;
}

int BackwardPlan::dw_slices() const {
  return impl_ ? most_output_type_slices({impl_->dw_gemm, static_cast<size_t>(impl_->dw_gemms)}) : 1;
}

BackwardPlan::BackwardPlan() = default;
BackwardPlan::~BackwardPlan() = default;
BackwardPlan::BackwardPlan(BackwardPlan&&) noexcept = default;
BackwardPlan& BackwardPlan::operator=(BackwardPlan&&) noexcept = default;

size_t backward_scratch_bytes(Variant, const Problem& p) {
  // dG and dU side by side (cublas2) or dH = [dG | dU] (cublas1): B×2D either way.
  return static_cast<size_t>(p.batch) * 2 * static_cast<size_t>(p.hidden) * dtype_size(p.dtype);
}

namespace {

Status invalid(const std::string& what) {
  return Status{StatusCode::invalid_argument, "backward baseline: " + what};
}

Status check_backward_args(Variant v, const Problem& p, const void* x, const void* w,
                           const void* saved, const void* dz, Grads grads, const void* dx,
                           const void* dw, const void* dbias, const void* scratch) {
  if (v != Variant::cublas2 && v != Variant::cublas1) return invalid("unknown variant");
  if (p.batch < 0) return invalid("batch must be >= 0, got " + std::to_string(p.batch));
  if (p.in_features <= 0)
    return invalid("in_features must be > 0, got " + std::to_string(p.in_features));
  if (p.hidden <= 0) return invalid("hidden must be > 0, got " + std::to_string(p.hidden));
  if (p.ldx != 0 && p.ldx < p.in_features) {
    return invalid("ldx (" + std::to_string(p.ldx) + ") is smaller than in_features (" +
                   std::to_string(p.in_features) + ")");
  }
  // Every element count (X, W, H) and its byte size must fit int64.
  int64_t two_d = 0, n = 0;
  const int64_t es = static_cast<int64_t>(dtype_size(p.dtype));
  const auto bytes_overflow = [&](int64_t rows, int64_t cols) {
    return __builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, es, &n);
  };
  if (__builtin_mul_overflow(p.hidden, int64_t{2}, &two_d) ||
      bytes_overflow(p.batch, p.x_stride()) || bytes_overflow(two_d, p.in_features) ||
      bytes_overflow(two_d, p.batch)) {
    return invalid("problem too large: B=" + std::to_string(p.batch) + " I=" +
                   std::to_string(p.in_features) + " D=" + std::to_string(p.hidden) +
                   " overflows 64-bit sizes");
  }
  if (p.batch == 0 || (!grads.dx && !grads.dw)) return Status::success();  // no-op: no pointers
  const struct {
    const char* name;
    const void* ptr;
    bool needed;
  } ptrs[] = {{"saved", saved, true},
              {"dz", dz, true},
              {"scratch", scratch, true},
              {"w (needed for dx)", w, grads.dx},
              {"dx", dx, grads.dx},
              {"x (needed for dw)", x, grads.dw},
              {"dw", dw, grads.dw},
              {"dbias (needed for dw with bias)", dbias, grads.dw && p.bias}};
  for (const auto& q : ptrs) {
    if (!q.needed) continue;
    if (q.ptr == nullptr) return invalid(std::string(q.name) + " is null");
    if (reinterpret_cast<uintptr_t>(q.ptr) % static_cast<uintptr_t>(es) != 0) {
      return invalid(std::string(q.name) + " is not aligned to its element size (" +
                     std::to_string(es) + " bytes)");
    }
  }
  return Status::success();
}

}  // namespace

Status BackwardPlan::create(const Cublas& cublas, Variant v, const Problem& p, const void* x,
                            const void* w, const void* saved, const void* dz, Grads grads,
                            void* dx, void* dw, void* dbias, void* scratch, BackwardPlan* out) {
  if (out == nullptr) return invalid("out is null");
  if (Status s = check_backward_args(v, p, x, w, saved, dz, grads, dx, dw, dbias, scratch); !s.ok())
    return s;
  auto impl = std::make_unique<Impl>();
  impl->cublas = &cublas;
  impl->variant = v;
  impl->problem = p;
  // B == 0 is a no-op like the library's backward: dW and dbias (which would be zeros) are not
  // written either.
  impl->noop = p.batch == 0 || (!grads.dx && !grads.dw);
  if (impl->noop) {
    out->impl_ = std::move(impl);
    return Status::success();
  }

  const size_t es = dtype_size(p.dtype);
  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  const bool linear = p.layout == Layout::linear;
  const auto* sv = static_cast<const char*>(saved);
  auto* sc = static_cast<char*>(scratch);
  const auto* wp = static_cast<const char*>(w);
  auto* dwp = static_cast<char*>(dw);
  const auto at = [es](int64_t elems) { return static_cast<size_t>(elems) * es; };

  // cublas2: two halves of D columns each, G/U and dG/dU as separate B×D matrices (row stride D).
  // cublas1: one "half" of 2D columns, H = [G | U] and dH = [dG | dU] as B×2D (row stride 2D).
  const bool two = v == Variant::cublas2;
  const int halves = two ? 2 : 1;
  const int64_t hc = two ? D : 2 * D;  // columns of dH per GEMM
  impl->ld_saved = impl->ld_dh = hc;
  impl->g = sv;
  impl->u = two ? sv + at(B * D) : sv + at(D);
  impl->dz = dz;
  impl->dg = sc;
  impl->du = two ? sc + at(B * D) : sc + at(D);
  const void* dh_half[2] = {impl->dg, impl->du};  // the A/B operand of GEMM j (cublas1: j = 0 only)

  MatmulSpec base;
  base.in_type = base.out_type = cuda_type(p.dtype);
  base.compute = compute_type(p);
  for (int j = 0; j < halves; ++j) {
    if (grads.dx) {
      // cublas2: dX (B×I) = dG (B×D) · Wa (D×I), then dX += dU (B×D) · Wb (D×I) (beta = 1).
      // cublas1: dX (B×I) = dH (B×2D) · W12 (2D×I).
      // W12's rows j·D.. are stored row-major D×I (ld I) when linear; when packed, Wf's columns
      // j·D.. hold them transposed (stored I×hc, ld 2D), so op(B) = Bᵀ.
      MatmulSpec s = base;
      s.m = B;
      s.n = I;
      s.k = hc;
      s.a = dh_half[j];
      s.lda = hc;
      s.trans_a = false;
      s.b = wp + at(linear ? j * D * I : j * D);
      s.ldb = linear ? I : 2 * D;
      s.trans_b = !linear;
      s.out = dx;
      s.ld_out = I;
      s.beta = j == 0 ? 0.0f : 1.0f;
      if (Status st = impl->dx_gemm[j].plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok())
        return st;
      impl->dx_gemms = j + 1;
    }
    if (grads.dw) {
      MatmulSpec s = base;
      s.k = B;
      if (linear) {
        // dW12 rows j·D.. (hc×I, ld I) = dHjᵀ (hc×B) · X (B×I); dHj is stored B×hc, so transposed.
        s.m = hc;
        s.n = I;
        s.a = dh_half[j];
        s.lda = hc;
        s.trans_a = true;
        s.b = x;
        s.ldb = p.x_stride();
        s.trans_b = false;
        s.out = dwp + at(j * D * I);
        s.ld_out = I;
      } else {
        // dWf columns j·D.. (I×hc, ld 2D) = Xᵀ (I×B) · dHj (B×hc); X is stored B×I, so transposed.
        s.m = I;
        s.n = hc;
        s.a = x;
        s.lda = p.x_stride();
        s.trans_a = true;
        s.b = dh_half[j];
        s.ldb = hc;
        s.trans_b = false;
        s.out = dwp + at(j * D);
        s.ld_out = 2 * D;
      }
      if (Status st = impl->dw_gemm[j].plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok())
        return st;
      impl->dw_gemms = j + 1;
    }
  }
  if (grads.dw && p.bias) impl->dbias = dbias;
  out->impl_ = std::move(impl);
  return Status::success();
}

Status BackwardPlan::run(cudaStream_t stream) const {
  if (!impl_) return Status{StatusCode::invalid_argument, "backward baseline plan is empty"};
  const Impl& m = *impl_;
  if (m.noop) return Status::success();
  nvtx3::scoped_range range{m.variant == Variant::cublas2 ? "baseline::cublas2-backward"
                                                          : "baseline::cublas1-backward"};
  const Problem& p = m.problem;
  const int64_t B = p.batch, D = p.hidden;
  if (cudaError_t e = detail::launch_gate_backward(p.dtype, p.dtype, m.g, m.ld_saved, m.u,
                                                   m.ld_saved, m.dz, D, m.dg, m.ld_dh, m.du,
                                                   m.ld_dh, B, D, stream);
      e != cudaSuccess)
    return cuda_fail("gate backward launch", e);
  for (int j = 0; j < m.dx_gemms; ++j) {
    if (Status s = m.dx_gemm[j].run(m.cublas->handle(), m.cublas->workspace(),
                                    m.cublas->workspace_bytes(), stream);
        !s.ok())
      return s;
  }
  for (int j = 0; j < m.dw_gemms; ++j) {
    if (Status s = m.dw_gemm[j].run(m.cublas->handle(), m.cublas->workspace(),
                                    m.cublas->workspace_bytes(), stream);
        !s.ok())
      return s;
  }
  if (m.dbias != nullptr) {
    // dbias = [colsum(dG) | colsum(dU)]: one sum over dH's 2D columns (cublas1), or one per half.
    auto* db = static_cast<char*>(m.dbias);
    const size_t es = dtype_size(p.dtype);
    cudaError_t e = cudaSuccess;
    if (m.variant == Variant::cublas1) {
      e = detail::launch_column_sum(p.dtype, p.dtype, m.dg, m.ld_dh, db, B, 2 * D, stream);
    } else {
      e = detail::launch_column_sum(p.dtype, p.dtype, m.dg, m.ld_dh, db, B, D, stream);
      if (e == cudaSuccess) {
        e = detail::launch_column_sum(p.dtype, p.dtype, m.du, m.ld_dh,
                                      db + static_cast<size_t>(D) * es, B, D, stream);
      }
    }
    if (e != cudaSuccess) return cuda_fail("bias column-sum launch", e);
  }
  return Status::success();
}

}  // namespace swiglu::baselines
