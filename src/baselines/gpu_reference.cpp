#include "baselines/gpu_reference.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "baselines/lt_gemm.hpp"
#include "swiglu/gate.hpp"

namespace swiglu::baselines {
namespace {

Status cuda_fail(const char* what, cudaError_t e) {
  return Status{StatusCode::cuda_error, std::string(what) + ": " + cudaGetErrorString(e)};
}

// The bias as fp32 values, read back from the device in its own dtype.
Status bias_as_float(const Problem& p, const void* bias, std::vector<float>* out) {
  const size_t n = static_cast<size_t>(2 * p.hidden);
  std::vector<unsigned char> raw(n * dtype_size(p.dtype));
  if (cudaError_t e = cudaMemcpy(raw.data(), bias, raw.size(), cudaMemcpyDeviceToHost); e != cudaSuccess)
    return cuda_fail("reading bias", e);
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    switch (p.dtype) {
      case DType::f32: std::memcpy(&(*out)[i], raw.data() + 4 * i, 4); break;
      case DType::f16: {
        __half h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        (*out)[i] = __half2float(h);
        break;
      }
      case DType::bf16: {
        __nv_bfloat16 h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        (*out)[i] = __bfloat162float(h);
        break;
      }
      case DType::e4m3: return Status{StatusCode::unsupported, "an fp8 bias"};  // refused by reference_h
    }
  }
  return Status::success();
}

// H = X·W12ᵀ + bias (B×2D row-major fp32) on `stream`: an fp32-output GEMM on the dtype inputs with
// fp32 accumulation and no tf32, the bias added through beta = 1 on an fp32 bias broadcast. Shared
// by the forward and the backward reference, so both see the same H.
Status reference_h(const Cublas& cublas, const Problem& p, const void* x, const void* w,
                   const void* bias, float* h, cudaStream_t stream) {
  if (p.dtype == DType::e4m3) {
    return Status{StatusCode::unsupported,
                  "the GPU reference reads fp32, fp16 or bf16 operands: give it dequantised fp8 ones in fp32"};
  }
  const int64_t two_d = 2 * p.hidden;
  const size_t row_bytes = static_cast<size_t>(two_d) * sizeof(float);
  if (p.bias) {
    // Every row of H starts as the bias; the GEMM then adds X·Wᵀ with beta = 1. Rows are copied in
    // doubling blocks so the broadcast costs log2(B) copies.
    std::vector<float> b;
    if (Status s = bias_as_float(p, bias, &b); !s.ok()) return s;
    if (cudaError_t e = cudaMemcpyAsync(h, b.data(), row_bytes, cudaMemcpyHostToDevice, stream);
        e != cudaSuccess)
      return cuda_fail("bias broadcast", e);
    for (int64_t done = 1; done < p.batch; done *= 2) {
      const int64_t n = std::min(done, p.batch - done);
      if (cudaError_t e = cudaMemcpyAsync(h + done * two_d, h, static_cast<size_t>(n) * row_bytes,
                                          cudaMemcpyDeviceToDevice, stream);
          e != cudaSuccess)
        return cuda_fail("bias broadcast", e);
    }
  }
  GemmSpec s;
  s.rows = p.batch;
  s.cols = two_d;
  s.k = p.in_features;
  s.x = x;
  s.ldx = p.x_stride();
  s.w = w;
  s.layout = p.layout;
  s.ldw = p.layout == Layout::linear ? p.in_features : two_d;
  s.out = h;
  s.ld_out = two_d;
  s.in_type = cuda_type(p.dtype);
  s.out_type = CUDA_R_32F;
  s.compute = CUBLAS_COMPUTE_32F;
  s.beta = p.bias ? 1.0f : 0.0f;
  LtGemm gemm;
  if (Status st = gemm.plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok()) return st;
  return gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream);
}

// The backward reference's scratch, in 256-byte aligned pieces (byte offsets): H, then dH in place
// (B×2D fp32), and for fp16/bf16 problems fp32 copies of dZ (B×D), X (B×I) and W (2D·I elements).
struct BackwardScratch {
  size_t h = 0, dz = 0, x = 0, w = 0, total = 0;
};

BackwardScratch backward_scratch(const Problem& p) {
  const auto piece = [](int64_t elems) {
    return (static_cast<size_t>(elems) * sizeof(float) + 255) & ~size_t{255};
  };
  BackwardScratch b;
  if (p.batch == 0) return b;
  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  b.total = piece(B * 2 * D);
  if (p.dtype != DType::f32) {
    b.dz = b.total;
    b.total += piece(B * D);
    b.x = b.total;
    b.total += piece(B * I);
    b.w = b.total;
    b.total += piece(2 * D * I);
  }
  return b;
}

}  // namespace

size_t reference_scratch_bytes(const Problem& p) {
  return static_cast<size_t>(p.batch) * 2 * static_cast<size_t>(p.hidden) * sizeof(float);
}

Status gpu_reference(const Cublas& cublas, const Problem& p, const void* x, const void* w,
                     const void* bias, float* h, float* z_ref, cudaStream_t stream) {
  nvtx3::scoped_range range{"reference::gpu-fp32"};
  if (p.batch == 0) return Status::success();
  const int64_t D = p.hidden, two_d = 2 * p.hidden;
  if (Status s = reference_h(cublas, p, x, w, bias, h, stream); !s.ok()) return s;
  if (cudaError_t e = detail::launch_gate(DType::f32, DType::f32, h, two_d, h + D, two_d, z_ref, D,
                                          p.batch, D, stream);
      e != cudaSuccess)
    return cuda_fail("reference gate launch", e);
  if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess)
    return cuda_fail("GPU reference", e);
  return Status::success();
}

size_t reference_backward_scratch_bytes(const Problem& p) { return backward_scratch(p).total; }

Status gpu_reference_backward(const Cublas& cublas, const Problem& p, const void* x, const void* w,
                              const void* bias, const void* dz, void* scratch, float* dx_ref,
                              float* dw_ref, float* dbias_ref, cudaStream_t stream,
                              const void* x_dw) {
  nvtx3::scoped_range range{"reference::gpu-fp32-backward"};
  if (p.batch == 0) return Status::success();
  const auto invalid = [](const std::string& what) {
    return Status{StatusCode::invalid_argument, "backward reference: " + what};
  };
  if (x == nullptr || w == nullptr || dz == nullptr) return invalid("x, w or dz is null");
  if (scratch == nullptr) return invalid("scratch is null");
  if (p.bias && bias == nullptr) return invalid("problem has bias but the bias pointer is null");

  const int64_t B = p.batch, D = p.hidden, I = p.in_features, two_d = 2 * p.hidden;
  const bool linear = p.layout == Layout::linear;
  const BackwardScratch layout = backward_scratch(p);
  auto* base = static_cast<char*>(scratch);
  float* h = reinterpret_cast<float*>(base + layout.h);

  // 1. H = X·W12ᵀ + bias in fp32, exactly as the forward reference computes it.
  if (Status s = reference_h(cublas, p, x, w, bias, h, stream); !s.ok()) return s;

  // 2. fp32 views of dZ, X and W: the inputs themselves for fp32, converted copies otherwise
  // (cuBLASLt cannot mix an fp32 dH with 16-bit X or W in one GEMM).
  const void* xd = x_dw != nullptr ? x_dw : x;  // the X that dW multiplies
  const void* dz32 = dz;
  const void* x32 = xd;
  const void* w32 = w;
  int64_t ldx32 = p.x_stride();
  if (p.dtype != DType::f32) {
    void* dzc = base + layout.dz;
    void* xc = base + layout.x;
    void* wc = base + layout.w;
    const int64_t w_rows = linear ? two_d : I, w_cols = linear ? I : two_d;
    cudaError_t e = detail::launch_convert(p.dtype, DType::f32, dz, D, dzc, D, B, D, stream);
    if (e == cudaSuccess && dw_ref != nullptr)
      e = detail::launch_convert(p.dtype, DType::f32, xd, p.x_stride(), xc, I, B, I, stream);
    if (e == cudaSuccess && dx_ref != nullptr)
      e = detail::launch_convert(p.dtype, DType::f32, w, w_cols, wc, w_cols, w_rows, w_cols,
                                 stream);
    if (e != cudaSuccess) return cuda_fail("reference fp32 conversion launch", e);
    dz32 = dzc;
    x32 = xc;
    w32 = wc;
    ldx32 = I;
  }

  // 3. dH = [dG | dU] in fp32, in place over H (G -> dG, U -> dU).
  if (cudaError_t e = detail::launch_gate_backward(DType::f32, DType::f32, h, two_d, h + D, two_d,
                                                   dz32, D, h, two_d, h + D, two_d, B, D, stream);
      e != cudaSuccess)
    return cuda_fail("reference gate backward launch", e);

  // 4. The GEMMs, fp32 in and out, no tf32. Kept alive until the stream is synchronized.
  MatmulSpec f32;
  f32.in_type = f32.out_type = CUDA_R_32F;
  f32.compute = CUBLAS_COMPUTE_32F;
  LtGemm dx_gemm, dw_gemm;
  if (dx_ref != nullptr) {
    // dX (B×I) = dH (B×2D) · W12 (2D×I); a packed Wf (I×2D) is W12ᵀ, so op(B) = Wfᵀ.
    MatmulSpec s = f32;
    s.m = B;
    s.n = I;
    s.k = two_d;
    s.a = h;
    s.lda = two_d;
    s.b = w32;
    s.ldb = linear ? I : two_d;
    s.trans_b = !linear;
    s.out = dx_ref;
    s.ld_out = I;
    if (Status st = dx_gemm.plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok()) return st;
    if (Status st =
            dx_gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream);
        !st.ok())
      return st;
  }
  if (dw_ref != nullptr) {
    MatmulSpec s = f32;
    s.k = B;
    if (linear) {
      // dW12 (2D×I) = dHᵀ (2D×B) · X (B×I); dH is stored B×2D, so op(A) = dHᵀ.
      s.m = two_d;
      s.n = I;
      s.a = h;
      s.lda = two_d;
      s.trans_a = true;
      s.b = x32;
      s.ldb = ldx32;
      s.ld_out = I;
    } else {
      // dWf (I×2D) = Xᵀ (I×B) · dH (B×2D); X is stored B×I, so op(A) = Xᵀ.
      s.m = I;
      s.n = two_d;
      s.a = x32;
      s.lda = ldx32;
      s.trans_a = true;
      s.b = h;
      s.ldb = two_d;
      s.ld_out = two_d;
    }
    s.out = dw_ref;
    if (Status st = dw_gemm.plan(cublas.handle(), s, cublas.workspace_bytes()); !st.ok()) return st;
    if (Status st =
            dw_gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream);
        !st.ok())
      return st;
  }

  // 5. dbias = column sums of dH, fp32.
  if (p.bias && dbias_ref != nullptr) {
    if (cudaError_t e = detail::launch_column_sum(DType::f32, DType::f32, h, two_d, dbias_ref, B,
                                                  two_d, stream);
        e != cudaSuccess)
      return cuda_fail("reference column-sum launch", e);
  }
  if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess)
    return cuda_fail("GPU backward reference", e);
  return Status::success();
}

}  // namespace swiglu::baselines
