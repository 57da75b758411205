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
    }
  }
  return Status::success();
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
  const size_t row_bytes = static_cast<size_t>(two_d) * sizeof(float);
  if (p.bias) {
    // Every row of H starts as the bias; the GEMM then adds X·Wᵀ with beta = 1. Rows are copied in
    // doubling blocks so the broadcast costs log2(B) copies.
    std::vector<float> b;
    if (Status s = bias_as_float(p, bias, &b); !s.ok()) return s;
    if (cudaError_t e = cudaMemcpyAsync(h, b.data(), row_bytes, cudaMemcpyHostToDevice, stream); e != cudaSuccess)
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
  if (Status st = gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream); !st.ok())
    return st;
  if (cudaError_t e = detail::launch_gate(DType::f32, DType::f32, h, two_d, h + D, two_d, z_ref, D,
                                          p.batch, D, stream);
      e != cudaSuccess)
    return cuda_fail("reference gate launch", e);
  if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess)
    return cuda_fail("GPU reference", e);
  return Status::success();
}

}  // namespace swiglu::baselines
