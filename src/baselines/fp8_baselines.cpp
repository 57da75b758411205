#include "baselines/fp8_baselines.hpp"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "baselines/lt_gemm.hpp"
#include "swiglu/elementwise.hpp"

// How cuBLASLt takes FP8 scales, from the cuBLAS documentation (cublasLtMatmulMatrixScale_t; "1D and
// 128x128 2D block scaling for FP8 data types", docs.nvidia.com/cuda/cublas/#element-1d-and-128x128-
// 2d-block-scaling-for-fp8-data-types) as Transformer Engine (common/gemm/cublaslt_gemm.cu,
// pytorch/csrc/quantizer.cpp: Float8BlockQuantizer::get_scale_shape) and PyTorch
// (aten/src/ATen/native/cuda/ScaledBlas.cpp: is_blockwise_1x128_scaling, is_blockwise_128x128_scaling,
// the scaling pairs of _scaled_mm) call it; the modes came with cuBLAS 12.9 and run on Hopper only
// (NVIDIA/CUDALibrarySamples issue 310):
//  - FP8 on Hopper is "TN": both operands K-major. Here cuBLASLt's A is W (m = W's rows) and its B is
//    X (n = B), as in LtGemm; so W's scales are A's and X's are B's.
//  - VEC128_32F (1×128 along K), an operand of `outer` rows: scale (r, kb) at kb·ld + r, the outer
//    index fastest, ld = round_up(outer, 4) (Transformer Engine's padding, 16-byte columns; PyTorch
//    passes ld = outer, the same wherever outer % 4 == 0). X's own layout is r·k_blocks + kb: copied
//    transposed.
//  - BLK128x128_32F: scale (rb, kb) at rb·ld + kb, ld = round_up(k_blocks, 4) (both projects pad it).
//    W's own layout (Wa's row blocks, then Wb's) is rb·k_blocks + kb: copied with padded rows.
//  - OUTER_VEC_32F: m scales for A and n for B, one per W row and per X row (copied too, so that
//    cublas2's Wb vector is 16-byte aligned like the others).
//  - Pairs: scalar × scalar, outer × outer, 1×128 × 1×128, 1×128 × 128×128 and 128×128 × 1×128;
//    a block or vector mode never pairs with a scalar, hence the repeated scalars below.
//  - Transformer Engine also finds m % 8 == 0 needed with block scales (and n % 8 == 0 with a 1×128
//    B): left to cuBLASLt's heuristic to turn down, which create() reports as unsupported.

namespace swiglu::baselines {
namespace {

// cublasLtMatmulMatrixScale_t by value: the file builds against cuBLAS headers without them.
enum class LtScale : int32_t { scalar = 0, outer_vec = 3, vec128 = 4, blk128x128 = 5 };
#if CUBLAS_VERSION >= 120900
static_assert(static_cast<int32_t>(LtScale::outer_vec) == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
static_assert(static_cast<int32_t>(LtScale::vec128) == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F);
static_assert(static_cast<int32_t>(LtScale::blk128x128) == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F);
#endif
constexpr size_t kCublasLtBlockScales = 120900;  // cublasLtGetVersion() of cuBLAS 12.9.0

const char* name(LtScale s) {
  switch (s) {
    case LtScale::scalar: return "per-tensor";
    case LtScale::outer_vec: return "outer-vector";
    case LtScale::vec128: return "1x128";
    case LtScale::blk128x128: return "128x128";
  }
  return "?";
}

Status unsupported(const std::string& why) { return Status{StatusCode::unsupported, "FP8 baseline: " + why}; }
Status invalid(const std::string& why) { return Status{StatusCode::invalid_argument, "FP8 baseline: " + why}; }
Status cuda_fail(const char* what, cudaError_t e) {
  return Status{StatusCode::cuda_error, std::string("FP8 baseline: ") + what + ": " + cudaGetErrorString(e)};
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// How X's and W's scales reach cuBLASLt (the table in fp8_baselines.hpp); `why` when they cannot.
struct ScaleModes {
  LtScale x = LtScale::scalar, w = LtScale::scalar;
  std::string why;  // non-empty: unsupported
};

ScaleModes scale_modes(const Fp8Problem& p) {
  const bool xt = p.x_scaling == Fp8Scaling::tensor;
  switch (p.w_scaling) {
    case Fp8Scaling::tensor: return xt ? ScaleModes{} : ScaleModes{LtScale::vec128, LtScale::blk128x128, {}};
    case Fp8Scaling::blocks: return {LtScale::vec128, LtScale::blk128x128, {}};
    case Fp8Scaling::channel:
      if (xt) return {LtScale::outer_vec, LtScale::outer_vec, {}};
      return {LtScale::scalar, LtScale::scalar,
              "cuBLASLt has no FP8 GEMM with 1x128 X scales and per-channel (outer-vector) W scales: an "
              "outer-vector scale pairs only with another"};
  }
  return {LtScale::scalar, LtScale::scalar, "unknown w_scaling"};
}

// Where Wb's per-channel scales start in the copy of W's: right after Wa's for cublas1 (one vector of
// 2D), 16-byte aligned for cublas2 (two vectors of D).
int64_t w_outer_ld(Variant v, const Fp8Problem& p) { return v == Variant::cublas1 ? p.hidden : round_up(p.hidden, 4); }

// The scale arrays create() writes into scratch, in floats (0: the caller's pointer is passed on).
int64_t x_scale_floats(const Fp8Problem& p, LtScale m) {
  const int64_t k_blocks = (p.in_features + 127) / 128;
  if (m == LtScale::vec128) return k_blocks * round_up(p.batch, 4);
  if (m == LtScale::outer_vec) return p.batch;
  return 0;
}
int64_t w_scale_floats(Variant v, const Fp8Problem& p, LtScale m) {
  const int64_t k_blocks = (p.in_features + 127) / 128, d_blocks = (p.hidden + 127) / 128;
  if (m == LtScale::blk128x128) return 2 * d_blocks * round_up(k_blocks, 4);
  if (m == LtScale::outer_vec) return w_outer_ld(v, p) + p.hidden;
  return 0;
}

// Byte offsets into scratch, each region 256-byte aligned: G and U side by side, each B×D (cublas2),
// or H = [G | U], B×2D (cublas1), in p.out; Z in p.out before its quantisation (z_e4m3); X's and
// W's scales in cuBLASLt's layouts.
struct ScratchLayout {
  size_t h = 0, z16 = 0, x_scale = 0, w_scale = 0, total = 0;
};

ScratchLayout scratch_layout(Variant v, const Fp8Problem& p) {
  const auto align = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const ScaleModes m = scale_modes(p);
  const size_t es = dtype_size(p.out), b = static_cast<size_t>(std::max<int64_t>(p.batch, 0));
  const size_t d = static_cast<size_t>(p.hidden);
  ScratchLayout s;
  s.z16 = align(b * 2 * d * es);
  s.x_scale = align(s.z16 + (p.z_e4m3 ? b * d * es : 0));
  s.w_scale = align(s.x_scale + sizeof(float) * static_cast<size_t>(x_scale_floats(p, m.x)));
  s.total = s.w_scale + sizeof(float) * static_cast<size_t>(w_scale_floats(v, p, m.w));
  return s;
}

// FP8 tensor cores (8.9+) for per-tensor scales; the block and vector modes are Hopper's (9.0).
Status check_device(LtScale x, LtScale w) {
  int device = 0, major = 0, minor = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return cuda_fail("cudaGetDevice", e);
  if (cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device); e != cudaSuccess)
    return cuda_fail("compute capability", e);
  if (cudaError_t e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device); e != cudaSuccess)
    return cuda_fail("compute capability", e);
  const std::string cc = std::to_string(major) + "." + std::to_string(minor);
  if (x == LtScale::scalar && w == LtScale::scalar) {
    if (major * 10 + minor < 89) return unsupported("FP8 GEMMs need compute capability 8.9 or newer; this device is " + cc);
    return Status::success();
  }
  if (major != 9 || minor != 0) {
    return unsupported(std::string("cuBLASLt's ") + name(x) + " x " + name(w) +
                       " FP8 scale modes run on compute capability 9.0 (Hopper) only; this device is " + cc);
  }
#if CUBLAS_VERSION < 120900
  return unsupported("built against cuBLAS " + std::to_string(CUBLAS_VERSION) + "; the " + name(x) + " x " + name(w) +
                     " scale modes need cuBLAS 12.9 or newer");
#else
  if (const size_t v = cublasLtGetVersion(); v < kCublasLtBlockScales) {
    return unsupported("cuBLASLt " + std::to_string(v) + " at run time; the " + name(x) + " x " + name(w) +
                       " scale modes came with 12.9 (" + std::to_string(kCublasLtBlockScales) + ")");
  }
  return Status::success();
#endif
}

// Reads `n` floats of device memory (synchronously).
Status read_floats(const float* d, int64_t n, std::vector<float>* out) {
  out->resize(static_cast<size_t>(n));
  if (cudaError_t e = cudaMemcpy(out->data(), d, out->size() * sizeof(float), cudaMemcpyDeviceToHost); e != cudaSuccess)
    return cuda_fail("reading the scales", e);
  return Status::success();
}

// Writes X's scales in cuBLASLt's layout for mode m (see the top of this file) to `dst`: X's own
// 1×128 scales transposed, or its one scale repeated. Padding entries are 1.
Status write_x_scales(const Fp8Problem& p, LtScale m, const float* x_scale, float* dst) {
  const int64_t B = p.batch, k_blocks = (p.in_features + 127) / 128;
  std::vector<float> src, out(static_cast<size_t>(x_scale_floats(p, m)), 1.0f);
  const bool blocks = p.x_scaling == Fp8Scaling::blocks;
  if (Status s = read_floats(x_scale, blocks ? B * k_blocks : 1, &src); !s.ok()) return s;
  if (m == LtScale::vec128) {
    const int64_t ld = round_up(B, 4);
    for (int64_t r = 0; r < B; ++r)
      for (int64_t kb = 0; kb < k_blocks; ++kb) out[kb * ld + r] = blocks ? src[r * k_blocks + kb] : src[0];
  } else {  // outer_vec, from a per-tensor X
    std::fill(out.begin(), out.end(), src[0]);
  }
  if (cudaError_t e = cudaMemcpy(dst, out.data(), out.size() * sizeof(float), cudaMemcpyHostToDevice); e != cudaSuccess)
    return cuda_fail("writing X's scales", e);
  return Status::success();
}

// Writes W12's scales in cuBLASLt's layout for mode m to `dst`: its 128×128 block scales
// (2·d_blocks rows of blocks: Wa's, then Wb's) with rows padded to round_up(k_blocks, 4), or its one
// scale repeated over them; or its per-channel scales, Wb's at w_outer_ld. Padding entries are 1.
Status write_w_scales(Variant v, const Fp8Problem& p, LtScale m, const float* w_scale, float* dst) {
  const int64_t D = p.hidden, k_blocks = (p.in_features + 127) / 128, rows = 2 * ((D + 127) / 128);
  std::vector<float> src, out(static_cast<size_t>(w_scale_floats(v, p, m)), 1.0f);
  if (m == LtScale::outer_vec) {
    if (Status s = read_floats(w_scale, 2 * D, &src); !s.ok()) return s;
    std::copy(src.begin(), src.begin() + D, out.begin());
    std::copy(src.begin() + D, src.end(), out.begin() + w_outer_ld(v, p));
  } else {
    const int64_t ld = round_up(k_blocks, 4);
    const bool blocks = p.w_scaling == Fp8Scaling::blocks;
    if (Status s = read_floats(w_scale, blocks ? rows * k_blocks : 1, &src); !s.ok()) return s;
    for (int64_t rb = 0; rb < rows; ++rb)
      for (int64_t kb = 0; kb < k_blocks; ++kb) out[rb * ld + kb] = blocks ? src[rb * k_blocks + kb] : src[0];
  }
  if (cudaError_t e = cudaMemcpy(dst, out.data(), out.size() * sizeof(float), cudaMemcpyHostToDevice); e != cudaSuccess)
    return cuda_fail("writing W's scales", e);
  return Status::success();
}

}  // namespace

size_t fp8_scratch_bytes(Variant v, const Fp8Problem& p) {
  if (p.batch <= 0 || p.hidden <= 0 || p.in_features <= 0) return 0;
  return scratch_layout(v, p).total;
}

struct Fp8Plan::Impl {
  const Cublas* cublas = nullptr;
  Variant variant = Variant::cublas2;
  Fp8Problem problem;
  std::string modes;  // "x <mode>, w <mode>"
  LtGemm gemm[2];
  int gemms = 0;
  // The gate: G and U (row stride ld_h) -> z16 (row stride D); then z16 -> Z and its scales when
  // z_e4m3 (z16 is then scratch, else the caller's Z). No gate when the caller's Z is null.
  const void* g = nullptr;
  const void* u = nullptr;
  int64_t ld_h = 0;
  void* z16 = nullptr;
  void* z_e4m3 = nullptr;
  float* z_scale = nullptr;
};

Fp8Plan::Fp8Plan() = default;
Fp8Plan::~Fp8Plan() = default;
Fp8Plan::Fp8Plan(Fp8Plan&&) noexcept = default;
Fp8Plan& Fp8Plan::operator=(Fp8Plan&&) noexcept = default;

Status Fp8Plan::create(const Cublas& cublas, Variant v, const Fp8Problem& p, const Fp8Tensors& t, void* scratch,
                       Fp8Plan* out) {
  if (out == nullptr) return invalid("out is null");
  if (v != Variant::cublas2 && v != Variant::cublas1) return invalid("unknown variant");
  if (Status s = validate_forward_fp8(p, t); !s.ok()) return s;
  if (t.z_amax != nullptr)
    return unsupported("no amax of Z is computed (quantize_e4m3 writes only the 1x128 scales); pass z_amax null");
  auto impl = std::make_unique<Impl>();
  impl->cublas = &cublas;
  impl->variant = v;
  impl->problem = p;
  if (p.batch == 0) {
    out->impl_ = std::move(impl);
    return Status::success();
  }
  if (scratch == nullptr) return invalid("scratch is null");

  const ScaleModes m = scale_modes(p);
  if (!m.why.empty()) return unsupported(m.why);
  impl->modes = std::string("x ") + name(m.x) + ", w " + name(m.w);
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  const int64_t k_blocks = (I + 127) / 128, d_blocks = (D + 127) / 128;
  if (v == Variant::cublas1 && p.w_scaling == Fp8Scaling::blocks && D % 128 != 0) {
    return unsupported("cublas1 with 128x128 W blocks needs D % 128 == 0 (D = " + std::to_string(D) +
                       "): Wa's last row block would straddle Wb in the stacked W12");
  }
  if (Status s = check_device(m.x, m.w); !s.ok()) return s;

  // The scales in cuBLASLt's layouts, once, here (see the top of this file).
  const ScratchLayout layout = scratch_layout(v, p);
  auto* sc = static_cast<char*>(scratch);
  auto* x_copy = reinterpret_cast<float*>(sc + layout.x_scale);
  auto* w_copy = reinterpret_cast<float*>(sc + layout.w_scale);
  if (x_scale_floats(p, m.x) > 0) {
    if (Status s = write_x_scales(p, m.x, t.x_scale, x_copy); !s.ok()) return s;
  }
  if (w_scale_floats(v, p, m.w) > 0) {
    if (Status s = write_w_scales(v, p, m.w, t.w_scale, w_copy); !s.ok()) return s;
  }
  // Why: the copies above ran on the legacy default stream; run() may use any stream.
  if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) return cuda_fail("after writing the scales", e);

  const size_t es = dtype_size(p.out);
  const auto at = [es](int64_t elems) { return static_cast<size_t>(elems) * es; };
  MatmulSpec base;
  base.m = B;
  base.k = I;
  base.a = t.x;
  base.lda = p.x_stride();
  base.trans_a = false;
  base.ldb = I;
  base.trans_b = true;  // W12 rows are K-contiguous: op(B) = Wᵀ, which makes cuBLASLt's GEMM TN
  base.in_type = CUDA_R_8F_E4M3;
  base.out_type = cuda_type(p.out);
  base.compute = CUBLAS_COMPUTE_32F;
  base.a_scale = m.x == LtScale::scalar ? t.x_scale : x_copy;
  base.a_scale_mode = static_cast<int32_t>(m.x);
  base.b_scale_mode = static_cast<int32_t>(m.w);

  // H = [G | U]: the caller's saved (row stride 2D) when given, else scratch (cublas2: G and U as
  // separate B×D matrices; cublas1: B×2D).
  const bool two = v == Variant::cublas2;
  auto* h = t.saved != nullptr ? static_cast<char*>(t.saved) : sc + layout.h;
  const int64_t ld_h = t.saved != nullptr || !two ? 2 * D : D;
  const auto* w = static_cast<const char*>(t.w);
  const auto* bias = static_cast<const char*>(t.bias);
  impl->gemms = two ? 2 : 1;
  for (int j = 0; j < impl->gemms; ++j) {
    MatmulSpec s = base;
    s.n = two ? D : 2 * D;
    s.b = w + static_cast<size_t>(j * D * I);  // e4m3: one byte an element
    s.bias = p.bias ? bias + at(j * D) : nullptr;
    s.out = t.saved != nullptr || !two ? h + at(j * D) : h + at(j * B * D);
    s.ld_out = ld_h;
    switch (m.w) {
      case LtScale::scalar: s.b_scale = t.w_scale; break;
      case LtScale::outer_vec: s.b_scale = w_copy + j * w_outer_ld(v, p); break;  // one a W row
      default: s.b_scale = w_copy + j * d_blocks * round_up(k_blocks, 4); break;  // Wb's row blocks follow Wa's
    }
    if (Status st = impl->gemm[j].plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok()) {
      st.message = std::string(to_string(v)) + " (" + impl->modes + "): " + st.message;
      return st;
    }
  }
  impl->g = h;
  impl->u = t.saved != nullptr || !two ? h + at(D) : h + at(B * D);
  impl->ld_h = ld_h;
  if (t.z != nullptr) {
    if (p.z_e4m3) {
      impl->z16 = sc + layout.z16;
      impl->z_e4m3 = t.z;
      impl->z_scale = t.z_scale;
    } else {
      impl->z16 = t.z;
    }
  }
  out->impl_ = std::move(impl);
  return Status::success();
}

Status Fp8Plan::run(cudaStream_t stream) const {
  if (!impl_) return invalid("the plan is empty");
  const Impl& m = *impl_;
  const Fp8Problem& p = m.problem;
  if (p.batch == 0) return Status::success();
  nvtx3::scoped_range range{m.variant == Variant::cublas2 ? "baseline::fp8-cublas2" : "baseline::fp8-cublas1"};
  for (int j = 0; j < m.gemms; ++j) {
    if (Status s = m.gemm[j].run(m.cublas->handle(), m.cublas->workspace(), m.cublas->workspace_bytes(), stream);
        !s.ok())
      return s;
  }
  if (m.z16 == nullptr) return Status::success();  // H only
  if (cudaError_t e = detail::launch_gate(p.out, p.out, m.g, m.ld_h, m.u, m.ld_h, m.z16, p.hidden, p.batch, p.hidden,
                                          stream);
      e != cudaSuccess)
    return cuda_fail("gate kernel launch", e);
  if (m.z_e4m3 != nullptr) {
    return quantize_e4m3(p.out, m.z16, p.hidden, p.batch, p.hidden, Fp8Blocks::row_1x128, m.z_e4m3, p.hidden,
                         m.z_scale, stream);
  }
  return Status::success();
}

std::string Fp8Plan::algorithms() const {
  if (!impl_ || impl_->gemms == 0) return {};
  std::string s = impl_->modes + ": " + impl_->gemm[0].describe();
  if (impl_->gemms == 2) s += "; " + impl_->gemm[1].describe();
  return s;
}

int Fp8Plan::output_type_slices() const {
  return impl_ ? most_output_type_slices({impl_->gemm, static_cast<size_t>(impl_->gemms)}) : 1;
}

}  // namespace swiglu::baselines

// --- Fp8BackwardPlan -----------------------------------------------------------------------------

namespace swiglu::baselines {
namespace {

Status lt_status(cublasStatus_t st, const std::string& what) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::success();
  return Status{st == CUBLAS_STATUS_NOT_SUPPORTED ? StatusCode::unsupported : StatusCode::cublas_error,
                "FP8 baseline: " + what + ": " + cublas_error(st)};
}

// A row-major rows×cols fp32 matrix written transposed, cols×rows with row stride ld_dst (the
// padding left alone), by cublasLtMatrixTransform: the scale layouts' copy that run() times. In
// cuBLAS's column-major terms src is a cols×rows matrix (ld cols) and dst = srcᵀ, rows×cols (ld
// ld_dst). C = alpha·op(A) + beta·op(B) with beta = 0 and no B: given a B (even with beta = 0
// and a layout that fits), cuBLAS 13.1 turned the call down as an invalid value on an H100.
class LtTranspose {
 public:
  LtTranspose() = default;
  ~LtTranspose() { release(); }
  LtTranspose(const LtTranspose&) = delete;
  LtTranspose& operator=(const LtTranspose&) = delete;

  Status plan(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ld_dst) {
    release();
    src_ = src;
    dst_ = dst;
    const cublasOperation_t t = CUBLAS_OP_T;
    if (Status s = lt_status(cublasLtMatrixTransformDescCreate(&desc_, CUDA_R_32F), "transform descriptor"); !s.ok())
      return s;
    if (Status s = lt_status(cublasLtMatrixTransformDescSetAttribute(desc_, CUBLASLT_MATRIX_TRANSFORM_DESC_TRANSA, &t,
                                                                     sizeof(t)),
                             "transform TRANSA");
        !s.ok())
      return s;
    if (Status s = lt_status(cublasLtMatrixLayoutCreate(&a_, CUDA_R_32F, static_cast<uint64_t>(cols),
                                                        static_cast<uint64_t>(rows), cols),
                             "transform source layout");
        !s.ok())
      return s;
    return lt_status(cublasLtMatrixLayoutCreate(&c_, CUDA_R_32F, static_cast<uint64_t>(rows),
                                                static_cast<uint64_t>(cols), ld_dst),
                     "transform destination layout");
  }

  Status run(cublasLtHandle_t handle, cudaStream_t stream) const {
    const float alpha = 1.0f, beta = 0.0f;
    return lt_status(cublasLtMatrixTransform(handle, desc_, &alpha, src_, a_, &beta, nullptr, nullptr, dst_, c_, stream),
                     "cublasLtMatrixTransform of the scales");
  }

 private:
  void release() {
    if (desc_) cublasLtMatrixTransformDescDestroy(desc_);
    if (a_) cublasLtMatrixLayoutDestroy(a_);
    if (c_) cublasLtMatrixLayoutDestroy(c_);
    desc_ = nullptr;
    a_ = c_ = nullptr;
  }
  cublasLtMatrixTransformDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, c_ = nullptr;
  const float* src_ = nullptr;
  float* dst_ = nullptr;
};

// The backward plan's scratch: byte offsets of its regions (256-byte aligned; a region of a gradient
// not asked for is empty) and the shapes behind them. A "half" is the columns of dH one GEMM reads:
// dG or dU (cublas2), or all of dH (cublas1).
struct BackwardScratch {
  int halves = 1;
  int64_t hc = 0;         // dH's columns a half
  int64_t kbh = 0;        // 1×128 blocks along a half's row: dX's K blocks
  int64_t rb = 0, ib = 0; // 128-blocks along B and along I
  int64_t ldt = 0;        // dHᵀ's row stride in bytes, and the dW GEMM's K: B rounded up to 16
  int64_t ld_dh_lt = 0;   // dH's scales, cuBLASLt's 1×128 layout: B rounded up to 4
  int64_t ld_dht_lt = 0;  // dHᵀ's: hc rounded up to 4
  int64_t ld_wt_lt = 0;   // W12ᵀ's, 128×128 layout: kbh rounded up to 4
  int64_t ld_xt_lt = 0;   // Xᵀ's, 1×128 layout: I rounded up to 4
  // dH in p.out (B×2D); dH in e4m3 (B×2D, row stride 2D) and its scales (a half after the other,
  // B×kbh each), in cuBLASLt's layout (kbh×ld_dh_lt each); dHᵀ in e4m3 (2D×ldt) and its scales
  // (2D×rb), in cuBLASLt's layout (rb×ld_dht_lt a half); W12ᵀ's (ib×ld_wt_lt a half) and Xᵀ's
  // (rb×ld_xt_lt) in cuBLASLt's layouts.
  size_t dh = 0, dhq = 0, dh_scale = 0, dh_scale_lt = 0, dht = 0, dht_scale = 0, dht_scale_lt = 0, wt_scale_lt = 0,
         xt_scale_lt = 0, total = 0;
};

BackwardScratch backward_scratch(Variant v, const Fp8Problem& p, Grads g) {
  BackwardScratch s;
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  s.halves = v == Variant::cublas2 ? 2 : 1;
  s.hc = v == Variant::cublas2 ? D : 2 * D;
  s.kbh = (s.hc + 127) / 128;
  s.rb = (B + 127) / 128;
  s.ib = (I + 127) / 128;
  s.ldt = round_up(B, 16);
  s.ld_dh_lt = round_up(B, 4);
  s.ld_dht_lt = round_up(s.hc, 4);
  s.ld_wt_lt = round_up(s.kbh, 4);
  s.ld_xt_lt = round_up(I, 4);
  size_t at = 0;
  const auto take = [&](bool wanted, int64_t bytes) {
    const size_t here = at;
    if (wanted) at += (static_cast<size_t>(bytes) + 255) / 256 * 256;
    return here;
  };
  const int64_t h = s.halves, f = sizeof(float);
  s.dh = take(true, B * 2 * D * static_cast<int64_t>(dtype_size(p.out)));
  s.dhq = take(g.dx, B * 2 * D);
  s.dh_scale = take(g.dx, h * B * s.kbh * f);
  s.dh_scale_lt = take(g.dx, h * s.kbh * s.ld_dh_lt * f);
  s.wt_scale_lt = take(g.dx, h * s.ib * s.ld_wt_lt * f);
  s.dht = take(g.dw, 2 * D * s.ldt);
  s.dht_scale = take(g.dw, 2 * D * s.rb * f);
  s.dht_scale_lt = take(g.dw, h * s.rb * s.ld_dht_lt * f);
  s.xt_scale_lt = take(g.dw, s.rb * s.ld_xt_lt * f);
  s.total = at;
  return s;
}

// Writes `n` floats of `host` to device memory at `dst` (synchronously).
Status write_floats(const std::vector<float>& host, float* dst, const char* what) {
  if (cudaError_t e = cudaMemcpy(dst, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice); e != cudaSuccess)
    return cuda_fail(what, e);
  return Status::success();
}

// The fixed operands' scales in cuBLASLt's layouts (see the top of this file), from the layouts the
// header gives them, and the padding of the per-step ones set to 1 (run() writes only real entries).
Status write_backward_scales(const Fp8Problem& p, const Fp8BackwardTensors& t, const BackwardScratch& s, char* sc,
                             Grads g) {
  const int64_t I = p.in_features, D = p.hidden, db = (D + 127) / 128, h = s.halves;
  if (g.dx) {
    // W12ᵀ's: Wa's scale_t (ib × db) then Wb's. A half's K blocks are Wa's, Wb's, or (cublas1) both.
    std::vector<float> src, out(static_cast<size_t>(h * s.ib * s.ld_wt_lt), 1.0f);
    if (Status st = read_floats(t.wt_scale, 2 * s.ib * db, &src); !st.ok()) return st;
    for (int64_t j = 0; j < h; ++j)
      for (int64_t ib = 0; ib < s.ib; ++ib)
        for (int64_t kb = 0; kb < s.kbh; ++kb) {
          const int64_t half = j + kb / db, k = kb % db;  // which of Wa and Wb, and its K block
          out[(j * s.ib + ib) * s.ld_wt_lt + kb] = src[(half * s.ib + ib) * db + k];
        }
    if (Status st = write_floats(out, reinterpret_cast<float*>(sc + s.wt_scale_lt), "writing W12^T's scales"); !st.ok())
      return st;
    const std::vector<float> ones(static_cast<size_t>(h * s.kbh * s.ld_dh_lt), 1.0f);
    if (Status st = write_floats(ones, reinterpret_cast<float*>(sc + s.dh_scale_lt), "padding dH's scales"); !st.ok())
      return st;
  }
  if (g.dw) {
    // Xᵀ's: I × rb row-major, to (kb, i) at kb·ld + i.
    std::vector<float> src, out(static_cast<size_t>(s.rb * s.ld_xt_lt), 1.0f);
    if (Status st = read_floats(t.xt_scale, I * s.rb, &src); !st.ok()) return st;
    for (int64_t i = 0; i < I; ++i)
      for (int64_t kb = 0; kb < s.rb; ++kb) out[kb * s.ld_xt_lt + i] = src[i * s.rb + kb];
    if (Status st = write_floats(out, reinterpret_cast<float*>(sc + s.xt_scale_lt), "writing X^T's scales"); !st.ok())
      return st;
    const std::vector<float> ones(static_cast<size_t>(h * s.rb * s.ld_dht_lt), 1.0f);
    if (Status st = write_floats(ones, reinterpret_cast<float*>(sc + s.dht_scale_lt), "padding dH^T's scales"); !st.ok())
      return st;
    // Why zeros: the dW GEMM's K runs to ldt over dHᵀ's padding columns, which the quantiser never writes.
    if (cudaError_t e = cudaMemset(sc + s.dht, 0, static_cast<size_t>(2 * D * s.ldt)); e != cudaSuccess)
      return cuda_fail("zeroing dH^T", e);
  }
  return Status::success();
}

}  // namespace

size_t fp8_backward_scratch_bytes(Variant v, const Fp8Problem& p, Grads grads) {
  if (p.batch <= 0 || p.hidden <= 0 || p.in_features <= 0) return 0;
  return std::max(backward_scratch(v, p, grads).total, backward_fp8_workspace_bytes(p));
}

struct Fp8BackwardPlan::Impl {
  const Cublas* cublas = nullptr;
  Variant variant = Variant::cublas2;
  Fp8Problem problem;
  bool noop = true;
  Grads grads;
  BackwardScratch at;
  char* scratch = nullptr;
  const void* dz = nullptr;
  const void* saved = nullptr;
  void* dbias = nullptr;
  DType dbias_dtype = DType::f32;
  LtTranspose dh_copy[2], dht_copy[2];
  LtGemm dx_gemm[2], dw_gemm[2];
  int dx_gemms = 0, dw_gemms = 0;
};

Fp8BackwardPlan::Fp8BackwardPlan() = default;
Fp8BackwardPlan::~Fp8BackwardPlan() = default;
Fp8BackwardPlan::Fp8BackwardPlan(Fp8BackwardPlan&&) noexcept = default;
Fp8BackwardPlan& Fp8BackwardPlan::operator=(Fp8BackwardPlan&&) noexcept = default;

Status Fp8BackwardPlan::create(const Cublas& cublas, Variant v, const Fp8Problem& p, const Fp8BackwardTensors& t,
                               void* scratch, Fp8BackwardPlan* out) {
  if (out == nullptr) return invalid("out is null");
  if (v != Variant::cublas2 && v != Variant::cublas1) return invalid("unknown variant");
  Grads g;
  g.dx = t.dx != nullptr;
  g.dw = t.dw != nullptr;
  // Why the workspace's checks: the plan takes backward_fp8's arguments, its scratch in the
  // workspace's place (fp8_backward_scratch_bytes is at least backward_fp8_workspace_bytes).
  if (Status s = validate_backward_fp8(p, t, scratch, fp8_backward_scratch_bytes(v, p, g)); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->cublas = &cublas;
  impl->variant = v;
  impl->problem = p;
  impl->grads = g;
  impl->noop = p.batch == 0;
  if (impl->noop) {
    out->impl_ = std::move(impl);
    return Status::success();
  }
  const int64_t B = p.batch, I = p.in_features, D = p.hidden;
  if (t.dbias != nullptr && t.dbias_dtype != DType::f32 && t.dbias_dtype != p.out) {
    return unsupported(std::string("dbias in ") + std::string(to_string(t.dbias_dtype)) +
                       ": the column sum writes fp32 or dH's own dtype (" + std::string(to_string(p.out)) + ")");
  }
  if (v == Variant::cublas1 && g.dx && D % 128 != 0) {
    return unsupported("cublas1's dX GEMM over K = 2D needs D % 128 == 0 (D = " + std::to_string(D) +
                       "): a 128x128 block of W12^T, and a 1x128 block of dH, would straddle the Wa/Wb halves");
  }
  if (Status s = check_device(LtScale::vec128, g.dx ? LtScale::blk128x128 : LtScale::vec128); !s.ok()) return s;

  const BackwardScratch s = backward_scratch(v, p, g);
  auto* sc = static_cast<char*>(scratch);
  if (Status st = write_backward_scales(p, t, s, sc, g); !st.ok()) return st;
  impl->at = s;
  impl->scratch = sc;
  impl->dz = t.dz;
  impl->saved = t.saved;
  impl->dbias = t.dbias;
  impl->dbias_dtype = t.dbias_dtype;

  const auto floats = [sc](size_t offset) { return reinterpret_cast<float*>(sc + offset); };
  const std::string modes_dx = "dX (dH 1x128, W12^T 128x128)", modes_dw = "dW (dH^T 1x128, X^T 1x128)";
  MatmulSpec base;
  base.in_type = CUDA_R_8F_E4M3;
  base.compute = CUBLAS_COMPUTE_32F;
  base.a_scale_mode = static_cast<int32_t>(LtScale::vec128);
  for (int j = 0; j < s.halves; ++j) {
    if (g.dx) {
      // dX (B×I) [+]= dH half (B×hc, row stride 2D) · W12 half (hc×I), op(B) from W12ᵀ's columns.
      if (Status st = impl->dh_copy[j].plan(floats(s.dh_scale) + j * B * s.kbh, B, s.kbh,
                                            floats(s.dh_scale_lt) + j * s.kbh * s.ld_dh_lt, s.ld_dh_lt);
          !st.ok())
        return st;
      MatmulSpec m = base;
      m.m = B;
      m.n = I;
      m.k = s.hc;
      m.a = sc + s.dhq + j * D;
      m.lda = 2 * D;
      m.b = static_cast<const char*>(t.wt) + j * D;
      m.ldb = 2 * D;
      m.trans_b = true;  // W12ᵀ's rows are K-contiguous: TN, as FP8 on Hopper needs
      m.out = t.dx;
      m.ld_out = I;
      m.out_type = cuda_type(t.dx_dtype);
      m.beta = j == 0 ? 0.0f : 1.0f;
      m.a_scale = floats(s.dh_scale_lt) + j * s.kbh * s.ld_dh_lt;
      m.b_scale = floats(s.wt_scale_lt) + j * s.ib * s.ld_wt_lt;
      m.b_scale_mode = static_cast<int32_t>(LtScale::blk128x128);
      if (Status st = impl->dx_gemm[j].plan(cublas.handle(), m, cublas.workspace_bytes()); !st.ok()) {
        st.message = std::string(to_string(v)) + " " + modes_dx + ": " + st.message;
        return st;
      }
      impl->dx_gemms = j + 1;
    }
    if (g.dw) {
      // dW12 rows j·D.. (hc×I) [+]= dHᵀ half (hc×K, K-contiguous) · X (K×I) from Xᵀ (I×K), over
      // K = ldt: the padding columns of both are zeros.
      if (Status st = impl->dht_copy[j].plan(floats(s.dht_scale) + j * D * s.rb, s.hc, s.rb,
                                             floats(s.dht_scale_lt) + j * s.rb * s.ld_dht_lt, s.ld_dht_lt);
          !st.ok())
        return st;
      MatmulSpec m = base;
      m.m = s.hc;
      m.n = I;
      m.k = s.ldt;
      m.a = sc + s.dht + j * D * s.ldt;
      m.lda = s.ldt;
      m.b = t.xt;
      m.ldb = t.ldxt;
      m.trans_b = true;
      m.out = static_cast<char*>(t.dw) + static_cast<size_t>(j * D * I) * dtype_size(t.dw_dtype);
      m.ld_out = I;
      m.out_type = cuda_type(t.dw_dtype);
      m.beta = t.accumulate_dw ? 1.0f : 0.0f;
      m.a_scale = floats(s.dht_scale_lt) + j * s.rb * s.ld_dht_lt;
      m.b_scale = floats(s.xt_scale_lt);
      m.b_scale_mode = static_cast<int32_t>(LtScale::vec128);
      if (Status st = impl->dw_gemm[j].plan(cublas.handle(), m, cublas.workspace_bytes()); !st.ok()) {
        st.message = std::string(to_string(v)) + " " + modes_dw + ": " + st.message;
        return st;
      }
      impl->dw_gemms = j + 1;
    }
  }
  // Why once here: a transform cuBLASLt turns down is a refusal of the plan, not an error of a run.
  for (int j = 0; j < s.halves; ++j) {
    if (g.dx) {
      if (Status st = impl->dh_copy[j].run(cublas.handle(), nullptr); !st.ok()) return st;
    }
    if (g.dw) {
      if (Status st = impl->dht_copy[j].run(cublas.handle(), nullptr); !st.ok()) return st;
    }
  }
  if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) return cuda_fail("after planning the backward", e);
  out->impl_ = std::move(impl);
  return Status::success();
}

Status Fp8BackwardPlan::run(cudaStream_t stream) const {
  if (!impl_) return invalid("the backward plan is empty");
  const Impl& m = *impl_;
  if (m.noop) return Status::success();
  nvtx3::scoped_range range{m.variant == Variant::cublas2 ? "baseline::fp8-cublas2-backward"
                                                          : "baseline::fp8-cublas1-backward"};
  const Fp8Problem& p = m.problem;
  const BackwardScratch& s = m.at;
  const int64_t B = p.batch, D = p.hidden;
  const size_t es = dtype_size(p.out);
  char* sc = m.scratch;
  const auto* h = static_cast<const char*>(m.saved);
  if (cudaError_t e = detail::launch_gate_backward(p.out, p.out, h, 2 * D, h + D * es, 2 * D, m.dz, D, sc + s.dh, 2 * D,
                                                   sc + s.dh + D * es, 2 * D, B, D, stream);
      e != cudaSuccess)
    return cuda_fail("gate backward launch", e);
  const auto floats = [sc](size_t offset) { return reinterpret_cast<float*>(sc + offset); };
  for (int j = 0; j < s.halves && (m.grads.dx || m.grads.dw); ++j) {
    const char* half = sc + s.dh + j * D * es;
    void* q = m.grads.dx ? sc + s.dhq + j * D : nullptr;
    float* q_scale = m.grads.dx ? floats(s.dh_scale) + j * B * s.kbh : nullptr;
    Status st = m.grads.dw ? quantize_e4m3_transposed(p.out, half, 2 * D, B, s.hc, Fp8Blocks::row_1x128, q, 2 * D,
                                                      q_scale, sc + s.dht + j * D * s.ldt, s.ldt,
                                                      floats(s.dht_scale) + j * D * s.rb, stream)
                           : quantize_e4m3(p.out, half, 2 * D, B, s.hc, Fp8Blocks::row_1x128, q, 2 * D, q_scale, stream);
    if (!st.ok()) return st;
    if (m.grads.dx) {
      if (st = m.dh_copy[j].run(m.cublas->handle(), stream); !st.ok()) return st;
    }
    if (m.grads.dw) {
      if (st = m.dht_copy[j].run(m.cublas->handle(), stream); !st.ok()) return st;
    }
  }
  for (int j = 0; j < m.dx_gemms; ++j) {
    if (Status st = m.dx_gemm[j].run(m.cublas->handle(), m.cublas->workspace(), m.cublas->workspace_bytes(), stream);
        !st.ok())
      return st;
  }
  for (int j = 0; j < m.dw_gemms; ++j) {
    if (Status st = m.dw_gemm[j].run(m.cublas->handle(), m.cublas->workspace(), m.cublas->workspace_bytes(), stream);
        !st.ok())
      return st;
  }
  if (m.dbias != nullptr) {
    if (cudaError_t e = detail::launch_column_sum(p.out, m.dbias_dtype, sc + s.dh, 2 * D, m.dbias, B, 2 * D, stream);
        e != cudaSuccess)
      return cuda_fail("bias column-sum launch", e);
  }
  return Status::success();
}

std::string Fp8BackwardPlan::algorithms() const {
  if (!impl_) return {};
  std::string s;
  const auto add = [&s](const char* what, const LtGemm& g) {
    s += (s.empty() ? "" : "; ") + std::string(what) + ": " + g.describe();
  };
  for (int j = 0; j < impl_->dx_gemms; ++j) add(j == 0 ? "dX (dH 1x128 x W12^T 128x128)" : "dX += dU", impl_->dx_gemm[j]);
  for (int j = 0; j < impl_->dw_gemms; ++j) add(j == 0 ? "dW (dH^T 1x128 x X^T 1x128)" : "dWb", impl_->dw_gemm[j]);
  return s;
}

int Fp8BackwardPlan::dx_slices() const {
  return impl_ ? chained_output_type_slices({impl_->dx_gemm, static_cast<size_t>(impl_->dx_gemms)}) : 1;
}

int Fp8BackwardPlan::dw_slices() const {
  return impl_ ? most_output_type_slices({impl_->dw_gemm, static_cast<size_t>(impl_->dw_gemms)}) : 1;
}

}  // namespace swiglu::baselines
