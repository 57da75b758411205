// Block quantisation to e4m3 (the FP8 forward's inputs, and with a transposed copy the operands an
// FP8 backward reads K-major):
//
//   q[r][c] = e4m3(a[r][c] / s),   s = amax(block) / 448 (1 for an all-zero block)
//
// over blocks of kRows rows × 128 columns of a rows×cols matrix (row stride lda), the last ones
// partial; s goes to scale[(r / kRows) · ceil(cols / 128) + c / 128]. kRows = 128 is the weights'
// 128×128 (the launcher takes the activations' 1×128, kRows = 1, to quantize_e4m3_rows_kernel
// below). One block of 128 threads a scale block: thread t owns column t. e4m3 rounds to nearest
// even and saturates to ±448 (NaN stays NaN). Arch: sm_89+ for the cvt, any other through
// cuda_fp8.h's software path.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class Tin, int kRows>
__global__ void __launch_bounds__(128) quantize_e4m3_kernel(const Tin* __restrict__ a, int64_t lda,
                                                            __nv_fp8_storage_t* __restrict__ q, int64_t ldq,
                                                            float* __restrict__ scale, int64_t rows, int64_t cols) {
  static_assert(kRows == 1 || kRows == 128, "quantize: blocks of 1×128 or 128×128");
  __shared__ float warp_max[4];
  const int64_t k_blocks = (cols + 127) / 128, row_blocks = (rows + kRows - 1) / kRows;
  const int64_t col_block = blockIdx.x;
  const int64_t c = col_block * 128 + threadIdx.x;
  // Row blocks grid-strided: gridDim.y is at most 65535.
  for (int64_t row_block = blockIdx.y; row_block < row_blocks; row_block += gridDim.y) {
    const int64_t r0 = row_block * kRows;
    const int64_t r1 = r0 + kRows < rows ? r0 + kRows : rows;
    float amax = 0.0f;
    // Why unrolled: a thread walks up to 128 rows of its column, and 8 loads in flight a thread
    // (not one) is what keeps DRAM busy.
    if (c < cols) {
#pragma unroll 8
      for (int64_t r = r0; r < r1; ++r) amax = fmaxf(amax, fabsf(to_f32(a[r * lda + c])));
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
    __syncthreads();
    amax = fmaxf(fmaxf(warp_max[0], warp_max[1]), fmaxf(warp_max[2], warp_max[3]));
    __syncthreads();  // warp_max is rewritten by the next row block
    // Why __fdiv_rn: the same IEEE quotients as the host reference, whatever the compiler flags.
    const float s = amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f;
    if (threadIdx.x == 0) scale[row_block * k_blocks + col_block] = s;
    if (c < cols) {
#pragma unroll 8
      for (int64_t r = r0; r < r1; ++r)
        q[r * ldq + c] = __nv_cvt_float_to_fp8(__fdiv_rn(to_f32(a[r * lda + c]), s), __NV_SATFINITE, __NV_E4M3);
    }
  }
}

// The 1×128 quantisation again, a warp a block and 8 blocks a 256-thread block, grid-strided over
// rows × ceil(cols/128) blocks: each lane takes 4 consecutive elements, so that with kVec the loads
// are one 8- or 16-byte vector and the stores one 4-byte word (the launcher checks the alignment).
// Why: quantize_e4m3_kernel<Tin, 1> gives each 128 elements a block of their own, and activations
// are quantised on every call. The same quotients, so the same bytes and scales.
template <class Tin, bool kVec>
__global__ void __launch_bounds__(256) quantize_e4m3_rows_kernel(const Tin* __restrict__ a, int64_t lda,
                                                                 __nv_fp8_storage_t* __restrict__ q, int64_t ldq,
                                                                 float* __restrict__ scale, int64_t rows, int64_t cols) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t k_blocks = (cols + 127) / 128, blocks = rows * k_blocks;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * 8;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32; b < blocks; b += warps) {
    const int64_t r = b / k_blocks, c = (b % k_blocks) * 128 + 4 * lane;
    const Tin* src = a + r * lda + c;
    float v[4];
    if (kVec && c + 4 <= cols) {
      if constexpr (sizeof(Tin) == 4) {
        const float4 w = *reinterpret_cast<const float4*>(src);
        v[0] = w.x, v[1] = w.y, v[2] = w.z, v[3] = w.w;
      } else {
        const uint2 w = *reinterpret_cast<const uint2*>(src);
        Tin e[4];
        memcpy(e, &w, sizeof(w));
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = to_f32(e[j]);
      }
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = c + j < cols ? to_f32(src[j]) : 0.0f;
    }
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    // Why __fdiv_rn: the same IEEE quotients as quantize_e4m3_kernel and the host reference.
    const float s = amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f;
    if (lane == 0) scale[b] = s;  // b = r · k_blocks + the column block
    __nv_fp8_storage_t e[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) e[j] = __nv_cvt_float_to_fp8(__fdiv_rn(v[j], s), __NV_SATFINITE, __NV_E4M3);
    __nv_fp8_storage_t* dst = q + r * ldq + c;
    if (kVec && c + 4 <= cols) {
      uint32_t word;
      memcpy(&word, e, sizeof(word));
      *reinterpret_cast<uint32_t*>(dst) = word;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (c + j < cols) dst[j] = e[j];
    }
  }
}

// Where the tile kernel below reads its values, in two steps so that a warp's loads for several
// rows are all in flight before any arithmetic: load(r, c) reads what element (r, c) needs (Raw;
// Raw{} for an element outside the matrix) and value(raw) makes it, 0 from Raw{}.
// A matrix (fp32, fp16 or bf16, row stride lda):
template <class Tin>
struct MatrixSource {
  struct Raw {
    float v = 0.0f;
  };
  const Tin* a;
  int64_t lda;
  __device__ __forceinline__ Raw load(int64_t r, int64_t c) const { return {to_f32(a[r * lda + c])}; }
  __device__ __forceinline__ float value(const Raw& x) const { return x.v; }
};

// Or the gate's backward, one half of dH = [dG | dU] from dZ (B×D, row stride lddz) and the saved
// H = [G | U] (B×2D, row stride ldh), in fp32 as the fused backward's epilogue computes it
// (epilogue.cuh): dG = dZ·U·silu'(G) (kDu false), dU = dZ·silu(G). Raw{} (dZ = G = U = 0) gives +0.
template <class T, bool kDu>
struct GateBackwardSource {
  struct Raw {
    float dz = 0.0f, g = 0.0f, u = 0.0f;
  };
  const T* dz;
  int64_t lddz;
  const T* h;
  int64_t ldh, d;
  __device__ __forceinline__ Raw load(int64_t r, int64_t c) const {
    Raw x;
    x.dz = to_f32(dz[r * lddz + c]);
    x.g = to_f32(h[r * ldh + c]);
    if constexpr (!kDu) x.u = to_f32(h[r * ldh + d + c]);
    return x;
  }
  __device__ __forceinline__ float value(const Raw& x) const {
    float s, ds;
    silu_and_grad<FastMath::off>(x.g, &s, &ds);
    if constexpr (kDu) return x.dz * s;
    return x.dz * x.u * ds;
  }
};

// The same quantisation of one 128×128 tile of a rows×cols matrix a block (its values from `src`),
// written twice: q as above (q may be null; its scales at scale[r · ld_scale + column block], or
// r / 128 for kRows = 128), and qt = e4m3 of Aᵀ (cols×rows, row stride ldqt), whose blocks run
// along A's rows:
//   kRows = 1:   qt is the 1×128 quantisation of Aᵀ: 1×128 blocks of qt (128 rows of one column of
//                A), scale_t[c · ceil(rows/128) + r / 128];
//   kRows = 128: the same 128×128 blocks, so qt is q transposed and scale_t the scales transposed,
//                scale_t[(c / 128) · ceil(rows/128) + r / 128].
// col_sums, when set: each tile's fp32 column sums over its rows, at col_sums[(r / 128) · ld_sums
// + c], in a fixed order (a column sum over those rows then gives the whole column's,
// deterministically: the backward's dbias).
// The tile sits in shared memory as fp32 (kQuantizeTileFloats, a padded row each: column reads
// conflict-free); each warp takes rows for q and columns for qt, so both stores are coalesced. 256 threads.
inline constexpr int kQuantizeTileStride = 129;  // floats a tile row in shared memory
inline constexpr int kQuantizeTileFloats = 128 * kQuantizeTileStride;

// Where the tile kernels write one matrix's quantisation (q may be null; col_sums too).
struct TileOutputs {
  __nv_fp8_storage_t* q;
  int64_t ldq;
  float* scale;
  int64_t ld_scale;
  __nv_fp8_storage_t* qt;
  int64_t ldqt;
  float* scale_t;
  float* col_sums;
  int64_t ld_sums;
};

// The shared memory of the tile kernels: the tile (dynamic, kQuantizeTileFloats) and its scales.
struct TileShared {
  float* tile;
  float* row_scale;  // [128]
  float* col_scale;  // [128]
  float (*col_half)[128];
  float (*col_sum_half)[128];
};

// Row block rb of column block cb (of a rows×cols matrix, values from `src`) into `o`, by the whole
// thread block (256 threads); returns with the shared memory free for the next tile.
template <class Src, int kRows>
__device__ __forceinline__ void quantize_tile(const Src& src, const TileOutputs& o, const TileShared& sh, int64_t rows,
                                              int64_t cols, int64_t cb, int64_t rb) {
  float* const tile = sh.tile;
  float* const row_scale = sh.row_scale;
  float* const col_scale = sh.col_scale;
  float (*const col_half)[128] = sh.col_half;
  float (*const col_sum_half)[128] = sh.col_sum_half;
  __nv_fp8_storage_t* __restrict__ q = o.q;
  __nv_fp8_storage_t* __restrict__ qt = o.qt;
  float* __restrict__ scale = o.scale;
  float* __restrict__ scale_t = o.scale_t;
  float* __restrict__ col_sums = o.col_sums;
  const int64_t ldq = o.ldq, ld_scale = o.ld_scale, ldqt = o.ldqt, ld_sums = o.ld_sums;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t row_blocks = (rows + 127) / 128;
  const int64_t c0 = cb * 128;
  const int tc = cols - c0 < 128 ? static_cast<int>(cols - c0) : 128;  // the tile's columns
  const int64_t r0 = rb * 128;
  const int tr = rows - r0 < 128 ? static_cast<int>(rows - r0) : 128;  // the tile's rows
  // Rows in, a warp a row at a time: its amax is the row's 1×128 block's. Why kBatch rows' loads
  // before their arithmetic: one row's at a time left a lane a few loads in flight, and the gate
  // backward ran at a fraction of DRAM speed.
  constexpr int kBatch = 4;
  for (int rb0 = warp; rb0 < 128; rb0 += 8 * kBatch) {
    typename Src::Raw raw[kBatch][4];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int r = rb0 + 8 * i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = lane + 32 * j;
        if (r < tr && c < tc) raw[i][j] = src.load(r0 + r, c0 + c);
      }
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int r = rb0 + 8 * i;
      float amax = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = lane + 32 * j;
        const float v = src.value(raw[i][j]);  // +0 outside the matrix: raw stayed Raw{}
        tile[r * kQuantizeTileStride + c] = v;
        amax = fmaxf(amax, fabsf(v));
      }
#pragma unroll
      for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
      if (lane == 0) row_scale[r] = amax;  // the amax for now
    }
  }
  __syncthreads();
  // Columns: two halves of the rows, one a thread, then joined.
  {
    const int c = static_cast<int>(threadIdx.x) % 128, half = static_cast<int>(threadIdx.x) / 128;
    float amax = 0.0f, sum = 0.0f;
    for (int r = 64 * half; r < 64 * half + 64; ++r) {
      const float v = tile[r * kQuantizeTileStride + c];
      amax = fmaxf(amax, fabsf(v));
      sum += v;
    }
    col_half[half][c] = amax;
    col_sum_half[half][c] = sum;
  }
  __syncthreads();
  if (col_sums != nullptr && threadIdx.x < 128 && static_cast<int>(threadIdx.x) < tc)
    col_sums[rb * ld_sums + c0 + threadIdx.x] = col_sum_half[0][threadIdx.x] + col_sum_half[1][threadIdx.x];
  // Why __fdiv_rn: the same IEEE quotients as quantize_e4m3_kernel and the host reference.
  const auto scale_of = [](float amax) { return amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f; };
  if (kRows == 1) {
    if (threadIdx.x < 128) {
      row_scale[threadIdx.x] = scale_of(row_scale[threadIdx.x]);
    } else {
      const int c = static_cast<int>(threadIdx.x) - 128;
      col_scale[c] = scale_of(fmaxf(col_half[0][c], col_half[1][c]));
    }
  } else if (warp == 0) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, row_scale[lane + 32 * j]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (lane == 0) row_scale[0] = scale_of(amax);
  }
  __syncthreads();
  const float block_scale = row_scale[0];  // kRows = 128: the tile's one scale
  if (threadIdx.x < 128) {
    const int i = static_cast<int>(threadIdx.x);
    if (kRows == 1) {
      if (scale != nullptr && i < tr) scale[(r0 + i) * ld_scale + cb] = row_scale[i];
      if (i < tc) scale_t[(c0 + i) * row_blocks + rb] = col_scale[i];
    } else if (i == 0) {
      if (scale != nullptr) scale[rb * ld_scale + cb] = block_scale;
      scale_t[cb * row_blocks + rb] = block_scale;
    }
  }
  // q: a warp a row, 4 columns a lane.
  if (q != nullptr) {
    for (int r = warp; r < tr; r += 8) {
      const float s = kRows == 1 ? row_scale[r] : block_scale;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = lane + 32 * j;
        if (c < tc)
          q[(r0 + r) * ldq + c0 + c] =
              __nv_cvt_float_to_fp8(__fdiv_rn(tile[r * kQuantizeTileStride + c], s), __NV_SATFINITE, __NV_E4M3);
      }
    }
  }
  // qt: a warp a column of the tile (a row of qt), lanes along A's rows.
  for (int c = warp; c < tc; c += 8) {
    const float s = kRows == 1 ? col_scale[c] : block_scale;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = lane + 32 * j;
      if (r < tr)
        qt[(c0 + c) * ldqt + r0 + r] =
            __nv_cvt_float_to_fp8(__fdiv_rn(tile[r * kQuantizeTileStride + c], s), __NV_SATFINITE, __NV_E4M3);
    }
  }
  __syncthreads();  // the tile and the scales are rewritten by the next tile
}

template <class Src, int kRows>
__global__ void __launch_bounds__(256) quantize_e4m3_tile_kernel(
    const Src src, __nv_fp8_storage_t* __restrict__ q, int64_t ldq, float* __restrict__ scale, int64_t ld_scale,
    __nv_fp8_storage_t* __restrict__ qt, int64_t ldqt, float* __restrict__ scale_t, float* __restrict__ col_sums,
    int64_t ld_sums, int64_t rows, int64_t cols) {
  static_assert(kRows == 1 || kRows == 128, "quantize: blocks of 1×128 or 128×128");
  extern __shared__ float tile[];  // kQuantizeTileFloats
  __shared__ float row_scale[128], col_scale[128], col_half[2][128], col_sum_half[2][128];
  const TileShared sh{tile, row_scale, col_scale, col_half, col_sum_half};
  const TileOutputs o{q, ldq, scale, ld_scale, qt, ldqt, scale_t, col_sums, ld_sums};
  const int64_t row_blocks = (rows + 127) / 128;
  for (int64_t rb = blockIdx.y; rb < row_blocks; rb += gridDim.y)
    quantize_tile<Src, kRows>(src, o, sh, rows, cols, blockIdx.x, rb);
}

// The gate's backward into e4m3, both halves of dH: for each tile of dZ's rows×columns the dG
// tile, then the dU tile, so that the second reads dZ and G back from L2 rather than DRAM (two
// launches, one a half, read them twice from DRAM). Each half's outputs as quantize_tile writes
// them with kRows = 1.
template <class T>
__global__ void __launch_bounds__(256) gate_backward_e4m3_kernel(const GateBackwardSource<T, false> dg_src,
                                                                 const GateBackwardSource<T, true> du_src,
                                                                 const TileOutputs dg, const TileOutputs du,
                                                                 int64_t rows, int64_t cols) {
  extern __shared__ float tile[];  // kQuantizeTileFloats
  __shared__ float row_scale[128], col_scale[128], col_half[2][128], col_sum_half[2][128];
  const TileShared sh{tile, row_scale, col_scale, col_half, col_sum_half};
  const int64_t row_blocks = (rows + 127) / 128;
  for (int64_t rb = blockIdx.y; rb < row_blocks; rb += gridDim.y) {
    quantize_tile<GateBackwardSource<T, false>, 1>(dg_src, dg, sh, rows, cols, blockIdx.x, rb);
    quantize_tile<GateBackwardSource<T, true>, 1>(du_src, du, sh, rows, cols, blockIdx.x, rb);
  }
}

}  // namespace swiglu::kernels
