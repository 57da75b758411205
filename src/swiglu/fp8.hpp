// Internal: the FP8 forward's sm_90a launcher (kernels/fwd_sm90_fp8.cuh) and the e4m3 quantiser's,
// behind the public forward_fp8 and quantize_e4m3 (swiglu.hpp, src/swiglu/fp8_api.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernels/params.cuh"
#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// Which FP8 forward kernel runs: the one fp8_forward_decode picks for B, the 128-row wgmma tiles
// (kernels/fwd_sm90_fp8.cuh), or the decode kernel (kernels/fwd_fp8_decode.cuh: mma.sync, a warp
// a group of 8 Z columns, for a few rows).
enum class Fp8Kernel { automatic, tiles, decode };

// The largest B the decode kernel takes when not told (fp8_forward_decode), and its cluster for
// an e4m3 Z (the blocks that share a scale block's 128 columns).
inline constexpr int64_t kFp8DecodeMaxBatch = 16;
inline constexpr int kFp8DecodeCluster = 2;

// Z (and H when q.base.saved) from e4m3 X and W12 (linear layout) and their fp32 scales
// (Fp8FwdParams). H and the bias are in `out` (bf16 or fp16), and so is Z unless z_e4m3: then Z is
// e4m3 with 1×128 scales in q.z_scale (and its amax raised in q.z_amax when set). Needs a build
// with sm_90a code and a compute capability 9.0 device; I and the X row stride multiples of 16
// (TMA), X and W 16-byte aligned. Sets vec_store. cluster: for the tiles, 1 or 2 blocks a cluster
// (2: pairs of row tiles share the W loads), or 0 for fp8_forward_cluster's choice; for the decode
// kernel with z_e4m3, 1, 2 or 4 (0: kFp8DecodeCluster).
Status fp8_forward_sm90(const kernels::Fp8FwdParams& q, DType out, bool z_e4m3, cudaStream_t stream, int cluster = 0,
                        Fp8Kernel kernel = Fp8Kernel::automatic);

// Whether the automatic choice for `batch` rows is the decode kernel.
bool fp8_forward_decode(int64_t batch);

// The cluster size fp8_forward_sm90 takes for `batch` rows when it is not told.
int fp8_forward_cluster(int64_t batch);

// Quantises a rows×cols matrix `a` (`in`: fp32, fp16 or bf16; row stride lda) to e4m3 in q (row
// stride ldq) with fp32 scales in blocks of block_rows (1 or 128) × 128 (kernels/quantize.cuh):
// scale holds ceil(rows / block_rows) × ceil(cols / 128) of them, row-major.
Status quantize_e4m3(DType in, const void* a, int64_t lda, void* q, int64_t ldq, float* scale, int64_t rows,
                     int64_t cols, int block_rows, cudaStream_t stream);

// quantize_e4m3 with Aᵀ as well (kernels/quantize.cuh): qt (cols×rows, row stride ldqt) and its
// scales scale_t, blocks along A's rows (see quantize_e4m3_transposed in swiglu.hpp); q and scale
// may both be null.
Status quantize_e4m3_transposed(DType in, const void* a, int64_t lda, void* q, int64_t ldq, float* scale, void* qt,
                                int64_t ldqt, float* scale_t, int64_t rows, int64_t cols, int block_rows,
                                cudaStream_t stream);

// The FP8 backward's gate step: dH = [dG | dU] from dZ and the saved H = [G | U] (`dtype`, bf16 or
// fp16), computed in fp32 (silu from one IEEE reciprocal), quantised to e4m3 twice in one pass, each
// element as v · (1/scale) (kernels::gate_backward_e4m3_kernel); needs compute capability 9.0+:
//   dh:  B×2D (row stride lddh bytes) with 1×128 scales along each half (a block never straddles
//        dG and dU), dh_scale B × 2·ceil(D/128) row-major: row b's dG blocks, then its dU blocks;
//        the dX GEMM's A. Both may be null.
//   dht: dHᵀ, 2D×B (row stride lddht bytes) with 1×128 scales along B, dht_scale
//        2D × ceil(B/128); the dW GEMM's A.
// col_sums, when set: fp32 partial column sums of dH (dbias), ceil(B/128) × 2D row-major; a
// column sum over them gives dbias, deterministically.
struct Fp8GateBackward {
  DType dtype = DType::bf16;
  const void* dz = nullptr;
  int64_t lddz = 0;
  const void* h = nullptr;
  int64_t ldh = 0;
  int64_t rows = 0, d = 0;
  void* dh = nullptr;
  int64_t lddh = 0;
  float* dh_scale = nullptr;
  void* dht = nullptr;
  int64_t lddht = 0;
  float* dht_scale = nullptr;
  float* col_sums = nullptr;
};
Status gate_backward_e4m3(const Fp8GateBackward& g, cudaStream_t stream);

// The FP8 backward's GEMMs (kernels/gemm_sm90_fp8.cuh): C (m×n, row stride ldc, `out`) = A·Bᵀ
// (or C += A·Bᵀ with accumulate), A (m×k) and B (n×k) e4m3, row-major with row strides lda and ldb
// bytes, over `segments` K ranges of k each (segment s's operands at a[s] and b[s]: the dX GEMM's
// dG half and dU half). Scales along K in blocks of 128, fp32: A's of row i, block kb of segment s
// at a_scale[s·a_seg + i·a_m + kb·a_kb]; B's at b_scale[s·b_seg + j·b_n + kb·b_kb], j = the row
// (b_rows) or the row / 128 (128×128 blocks); a stride of 0 repeats a scale. Needs sm_90a and a
// compute capability 9.0 device; the A and B strides multiples of 16, operands 16-byte aligned (K
// itself any: the loads past it read zeros). split_workspace (fp8_gemm_split_bytes(m, n) bytes,
// 16-byte aligned; may be null) lets the launcher split K when the tiles are too few to fill the
// SMs: slices add fp32 sums there (it zeroes it first), and C is rounded once from their total.
struct Fp8Gemm {
  int64_t m = 0, n = 0, k = 0;
  int segments = 1;
  const void* a[2] = {nullptr, nullptr};
  const void* b[2] = {nullptr, nullptr};
  int64_t lda = 0, ldb = 0;
  const float* a_scale = nullptr;
  int64_t a_seg = 0, a_m = 0, a_kb = 0;
  const float* b_scale = nullptr;
  int64_t b_seg = 0, b_n = 0, b_kb = 0;
  bool b_rows = false;
  DType out = DType::f32;
  void* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
  void* split_workspace = nullptr;
};
Status fp8_gemm_sm90(const Fp8Gemm& g, cudaStream_t stream);
// The split-K workspace of an m×n FP8 GEMM: 0 where it has more than kFp8GemmMaxSplitTiles tiles
// of 128×128, which never split.
inline constexpr int64_t kFp8GemmMaxSplitTiles = 64;
size_t fp8_gemm_split_bytes(int64_t m, int64_t n);

// The FP8 backward with the save policy, in four launches: gate_backward_e4m3 (dH and dHᵀ in e4m3),
// the dX GEMM (dH·W12 over the dG and dU halves), the dW GEMM (dHᵀ·X), and dbias's column sum.
// The forward's operands come as the transposed copies quantize_e4m3_transposed writes:
//   w12t: W12ᵀ, I × 2D e4m3 (row stride 2D bytes): Wa's qt (128×128 blocks) in columns [0, D),
//         Wb's in [D, 2D); w12t_scale: Wa's scale_t (ceil(I/128) × ceil(D/128)), then Wb's;
//   xt:   Xᵀ, I × B e4m3 (row stride ldxt bytes, a multiple of 16) with 1×128 scales along B,
//         xt_scale I × ceil(B/128).
// dz (B×D) and h (B×2D, the forward's saved [G | U]) are dense in `dtype` (bf16 or fp16); dx (B×I)
// is written in dx_dtype, dw (2D×I, dW12) in dw_dtype (fp32: the master weights' gradient, which
// accumulate adds to), dbias (2D) in dbias_dtype, each only when set. D must be a multiple of 16.
struct Fp8Backward {
  DType dtype = DType::bf16;
  int64_t rows = 0, in = 0, d = 0;
  const void* dz = nullptr;
  const void* h = nullptr;
  const void* w12t = nullptr;
  const float* w12t_scale = nullptr;
  const void* xt = nullptr;
  int64_t ldxt = 0;
  const float* xt_scale = nullptr;
  void* dx = nullptr;
  DType dx_dtype = DType::bf16;
  void* dw = nullptr;
  DType dw_dtype = DType::f32;
  bool accumulate = false;
  void* dbias = nullptr;
  DType dbias_dtype = DType::f32;
};
// The workspace backward_fp8_sm90 needs (dH and dHᵀ in e4m3, their scales, dbias's partial sums,
// the dX GEMM's split-K sums where it may split),
// and where each part lies in it (offsets in bytes, 256-byte aligned).
struct Fp8BackwardWorkspace {
  size_t dh = 0, dh_scale = 0, dht = 0, dht_scale = 0, col_sums = 0, split = 0, split_bytes = 0, bytes = 0;
  int64_t lddht = 0;
};
Fp8BackwardWorkspace fp8_backward_workspace(int64_t rows, int64_t in, int64_t d);
Status backward_fp8_sm90(const Fp8Backward& b, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// check_fp8_scales' test on host copies of the scales: the first of `n` that is not finite and
// > 0, described for an error ("w_scale[5] (Wa, row block 0, K block 5) is nan"), or "" when all
// are. `is_w` says which operand (and layout) `scale` is for p's.
std::string describe_bad_scale(const Fp8Problem& p, bool is_w, const float* scale, int64_t n);

// The number of scales forward_fp8 reads for X (is_w false) or W12 under p's scalings.
int64_t fp8_scale_count(const Fp8Problem& p, bool is_w);

}  // namespace swiglu::detail
