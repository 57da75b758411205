// The FP8 forward's case runner (`--dtype fp8`, run_fp8.cpp), behind run_sweep for the cases whose
// dtype is e4m3.
//
// The recipe: X quantised in 1×128 blocks along I, W12 in 128×128 blocks (Wa and Wb on their own),
// all by the library's quantize_e4m3 from the case's seeded bf16 inputs (the bf16 case's own, so the
// two compare); Z in e4m3 with 1×128 scales along D, the bias and H in bf16. Every variant produces
// that Z: the fused FP8 forward, and the cuBLASLt FP8 GEMMs + the gate + the same quantiser
// (baselines/fp8_baselines.hpp). Parity is against a reference on the dequantised operands
// (fp8_tolerance); rows of a device or problem the FP8 forward does not take are SKIP with the reason.
//
// The gradient commands' FP8 cases (run_backward.cpp) share the operands below: the same X and W12,
// with the backward's transposed copies (Xᵀ in 1×128 blocks along B, W12ᵀ from Wa's and Wb's
// 128×128 blocks) made in the same quantiser pass, as swiglu.hpp's "FP8 backward" says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/session.hpp"
#include "common/device.hpp"

namespace swiglu::bench {

// The Fp8Problem of a case (dtype e4m3, the linear layout) under the recipe above.
Fp8Problem fp8_problem(const Problem& p);

// Why a case's FP8 rows cannot run on this device (another compute capability than 9.0, the packed
// layout, I or X's row stride not a multiple of 16, and with `backward` D not a multiple of 16), or
// nothing.
std::optional<std::string> fp8_unsupported_reason(const Problem& p, const DeviceTraits& t, bool backward);

// rows × cols e4m3 bytes (row stride ld) with their scales in blocks of block_rows × 128, row-major
// (ceil(cols/128) a row of blocks), as dequantised floats q·scale (rows × ld; elements past cols in
// a row stay 0).
std::vector<float> dequantise_e4m3(const std::vector<unsigned char>& q, const std::vector<float>& scale, int64_t rows,
                                   int64_t cols, int64_t ld, int64_t block_rows);

// A case's X and W12 in the recipe, quantised by the library from the case's bf16 inputs (`in`,
// make_inputs of its bf16 twin), their scales checked (check_fp8_scales), and dequantised on the host
// for the reference. With `transposed`, also the backward's copies in the same pass
// (quantize_e4m3_transposed): Xᵀ (I × ldxt, ldxt = B rounded up to 16, the padding zero) with
// scales I × ceil(B/128), and W12ᵀ (I × 2D) with Wa's scale_t then Wb's.
struct Fp8Operands {
  common::DeviceBuffer xq, x_scale, wq, w_scale;    // forward_fp8's X and W12
  common::DeviceBuffer xt, xt_scale, wt, wt_scale;  // backward_fp8's Xᵀ and W12ᵀ (transposed only)
  int64_t ldxt = 0;
  // Dequantised: X (B×ldx), W12 (2D×I), and (transposed only) X as Xᵀ's blocks give it (B×ldx), the
  // X that dW = dHᵀ·X multiplies. W12ᵀ's blocks are W12's, so W12 serves dX as it is.
  std::vector<float> x, w, x_dw;
};
// Throws CudaError for a CUDA failure; returns the library's Status otherwise.
Status quantise_fp8_operands(const Problem& p, const HostInputs& in, bool transposed, cudaStream_t stream,
                             Fp8Operands* out);

void run_fp8_forward_case(Session& s, const Case& c);

}  // namespace swiglu::bench
