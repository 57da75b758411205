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

#include <cooperative_groups.h>
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
  // before their arithmetic: one row's at a time left a lane a few loads in flight, a fraction of
  // DRAM speed.
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

// The gate's backward into e4m3: dH = [dG | dU], dG = dZ·U·silu'(G) and dU = dZ·silu(G) in fp32
// from dZ (rows×d, row stride lddz) and the saved H = [G | U] (rows×2d, row stride ldh), written
// for each half as quantize_tile writes it with kRows = 1 (q with 1×128 scales along the half, qt
// = its transpose with 1×128 scales along the rows, col_sums), except that an element is
// e4m3(v · (1/scale)) as the forward's e4m3 Z: a reciprocal a block, not a quotient an element.
// Each 128×128 block of dZ's rows×columns is a cluster of two 256-thread blocks, 64 columns each:
// a thread loads 8 columns of 4 consecutive rows (16-byte vectors where GateBackwardAlign allows),
// keeps both halves' 64 values in registers, and the two blocks' row maxima meet in distributed
// shared memory. qt goes through shared memory as bytes, so that every store is 16 bytes along a
// row of qt. Arch: sm_90+ (clusters); elsewhere __trap(). docs/kernels-sm90-fp8.md measures it.
struct GateBackwardAlign {
  bool loads16 = false;  // dZ and H 16-byte aligned, lddz, ldh and d multiples of 8 elements
  bool q8 = false;       // q 8-byte aligned, ldq and d multiples of 8 bytes
  bool qt16 = false;     // qt 16-byte aligned, ldqt a multiple of 16 bytes
};

inline constexpr int kGateBwdThreads = 256;
inline constexpr int kGateBwdCols = 64;  // columns a block, two blocks (a cluster) a 128-column block

namespace gate_bwd {

// The 4-byte word of qt's tile in shared memory holding rows 4q..4q+3 of column c (of 64): 32
// words a column, rotated by c / 8 in groups of four, so that a warp's stores of 8 columns × 4
// word rows hit 32 banks and a 16-byte read of 4 words stays contiguous.
__device__ __forceinline__ int qt_word(int c, int q) { return c * 32 + (((q >> 2) + (c >> 3)) & 7) * 4 + (q & 3); }

__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
  return lo | (hi << 16);
}

}  // namespace gate_bwd

// Why 2 blocks a SM: the 64 values and 12 loads in flight a thread take 128 registers.
template <class T>
__global__ void __launch_bounds__(kGateBwdThreads, 2)
    gate_backward_e4m3_kernel(const T* __restrict__ dz, int64_t lddz, const T* __restrict__ h, int64_t ldh,
                              const TileOutputs dg, const TileOutputs du, int64_t rows, int64_t cols,
                              const GateBackwardAlign align) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  using gate_bwd::pack_e4m3x4;
  using gate_bwd::qt_word;
  const cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  __shared__ float row_part[2][2][128];              // [iteration parity][half][row]: this block's row maxima
  __shared__ float col_part[8][2][kGateBwdCols];     // [warp][half][column]: its 16 rows' maxima
  __shared__ float col_sum_part[8][2][kGateBwdCols];
  __shared__ float row_inv[2][128], col_inv[2][kGateBwdCols];
  __shared__ __align__(16) uint32_t tq[2][kGateBwdCols * 32];  // qt's bytes, [half][qt_word]
  const int t = static_cast<int>(threadIdx.x), warp = t / 32, lane = t % 32;
  const int chunk = t % 8, rq = t / 8;  // columns 8·chunk.., rows 4·rq..4·rq+3 of the tile
  const int64_t cb = blockIdx.x / 2, c_block = cb * 128 + rank * kGateBwdCols;
  const int tc = static_cast<int>(cols - c_block < kGateBwdCols ? (cols - c_block > 0 ? cols - c_block : 0)
                                                                : kGateBwdCols);
  const int64_t c = c_block + 8 * chunk;  // this thread's first column
  const int nc = tc - 8 * chunk < 0 ? 0 : (tc - 8 * chunk > 8 ? 8 : tc - 8 * chunk);
  const int64_t row_blocks = (rows + 127) / 128;
  int parity = 0;
  for (int64_t rb = blockIdx.y; rb < row_blocks; rb += gridDim.y, parity ^= 1) {
    const int64_t r0 = rb * 128;
    const int tr = rows - r0 < 128 ? static_cast<int>(rows - r0) : 128;
    // Every load first (12 a thread), then the arithmetic.
    T zr[4][8], gr[4][8], ur[4][8];
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const int r = 4 * rq + p;
      const int n = r < tr ? nc : 0;
      const T* zp = dz + (r0 + r) * lddz + c;
      const T* gp = h + (r0 + r) * ldh + c;
      if (align.loads16 && n == 8) {
        const uint4 wz = *reinterpret_cast<const uint4*>(zp);
        const uint4 wg = *reinterpret_cast<const uint4*>(gp);
        const uint4 wu = *reinterpret_cast<const uint4*>(gp + cols);
        memcpy(zr[p], &wz, 16);
        memcpy(gr[p], &wg, 16);
        memcpy(ur[p], &wu, 16);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          zr[p][j] = j < n ? zp[j] : from_f32<T>(0.0f);
          gr[p][j] = j < n ? gp[j] : from_f32<T>(0.0f);
          ur[p][j] = j < n ? gp[cols + j] : from_f32<T>(0.0f);
        }
      }
    }
    float v[2][4][8];  // [half][row][column]
#pragma unroll
    for (int p = 0; p < 4; ++p) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float z = to_f32(zr[p][j]), g = to_f32(gr[p][j]), u = to_f32(ur[p][j]);
        // Why one IEEE reciprocal, not silu_and_grad's two quotients: within the few ulps the
        // scales tolerate, for fewer instructions.
        const float s = __frcp_rn(1.0f + expf(-g));
        v[0][p][j] = z * u * (s * (1.0f + g * (1.0f - s)));
        v[1][p][j] = z * (g * s);
      }
    }
    // Row maxima over the thread's 8 columns, then the row's 8 threads (8 consecutive lanes).
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        float m = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(v[half][p][j]));
#pragma unroll
        for (int off = 1; off < 8; off *= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        if (chunk == 0) row_part[parity][half][4 * rq + p] = m;
      }
    }
    // Column maxima (and sums, in a fixed order) over the thread's 4 rows, then the warp's 16.
    const bool sums = dg.col_sums != nullptr;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float m = fmaxf(fmaxf(fabsf(v[half][0][j]), fabsf(v[half][1][j])), fmaxf(fabsf(v[half][2][j]), fabsf(v[half][3][j])));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
        if (lane < 8) col_part[warp][half][8 * chunk + j] = m;
        if (sums) {
          float sm = ((v[half][0][j] + v[half][1][j]) + v[half][2][j]) + v[half][3][j];
          sm += __shfl_xor_sync(0xffffffffu, sm, 8);
          sm += __shfl_xor_sync(0xffffffffu, sm, 16);
          if (lane < 8) col_sum_part[warp][half][8 * chunk + j] = sm;
        }
      }
    }
    // Why a cluster barrier: it is this block's barrier too, and the peer's row maxima are ready.
    cluster.sync();
    const auto scale_of = [](float amax) { return amax > 0.0f ? __fdiv_rn(amax, kE4m3Max) : 1.0f; };
    const auto inv_of = [&](float amax) { return __frcp_rn(scale_of(amax)); };
    {
      const int half = t / 128, r = t % 128;
      const float* peer = cluster.map_shared_rank(&row_part[parity][half][r], rank ^ 1);
      const float amax = fmaxf(row_part[parity][half][r], *peer);
      row_inv[half][r] = inv_of(amax);
      // Why a field, not a reference to dg or du: a runtime-chosen parameter goes to local memory.
      float* const scale = half == 0 ? dg.scale : du.scale;
      if (rank == 0 && scale != nullptr && r < tr) scale[(r0 + r) * dg.ld_scale + cb] = scale_of(amax);
    }
    if (t < 2 * kGateBwdCols) {
      const int half = t / kGateBwdCols, cc = t % kGateBwdCols;
      float amax = 0.0f, sum = 0.0f;
#pragma unroll
      for (int w = 0; w < 8; ++w) {
        amax = fmaxf(amax, col_part[w][half][cc]);
        sum += col_sum_part[w][half][cc];
      }
      col_inv[half][cc] = inv_of(amax);
      if (cc < tc) {
        (half == 0 ? dg.scale_t : du.scale_t)[(c_block + cc) * row_blocks + rb] = scale_of(amax);
        if (sums) (half == 0 ? dg.col_sums : du.col_sums)[rb * dg.ld_sums + c_block + cc] = sum;
      }
    }
    __syncthreads();
    // q from the registers, a row's 8 bytes a thread; qt's bytes into shared memory.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const TileOutputs& o = half == 0 ? dg : du;
      if (o.q != nullptr) {
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const int r = 4 * rq + p;
          const float inv = row_inv[half][r];
          const uint32_t lo = pack_e4m3x4(v[half][p][0] * inv, v[half][p][1] * inv, v[half][p][2] * inv, v[half][p][3] * inv);
          const uint32_t hi = pack_e4m3x4(v[half][p][4] * inv, v[half][p][5] * inv, v[half][p][6] * inv, v[half][p][7] * inv);
          __nv_fp8_storage_t* dst = o.q + (r0 + r) * o.ldq + c;
          if (r < tr && nc > 0) {
            if (align.q8 && nc == 8) {
              *reinterpret_cast<uint2*>(dst) = make_uint2(lo, hi);
            } else {
#pragma unroll
              for (int j = 0; j < 8; ++j)
                if (j < nc) dst[j] = static_cast<__nv_fp8_storage_t>(((j < 4 ? lo : hi) >> (8 * (j % 4))) & 0xffu);
            }
          }
        }
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int cc = 8 * chunk + j;
        const float inv = col_inv[half][cc];
        tq[half][qt_word(cc, rq)] =
            pack_e4m3x4(v[half][0][j] * inv, v[half][1][j] * inv, v[half][2][j] * inv, v[half][3][j] * inv);
      }
    }
    __syncthreads();
    // qt: 16 bytes (16 rows of a column) a store, a warp 4 columns.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const TileOutputs& o = half == 0 ? dg : du;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int idx = t + kGateBwdThreads * i, cc = idx / 8, seg = idx % 8;
        if (cc >= tc || 16 * seg >= tr) continue;
        const uint4 w = *reinterpret_cast<const uint4*>(&tq[half][qt_word(cc, 4 * seg)]);
        __nv_fp8_storage_t* dst = o.qt + (c_block + cc) * o.ldqt + r0 + 16 * seg;
        if (align.qt16 && 16 * seg + 16 <= tr) {
          *reinterpret_cast<uint4*>(dst) = w;
        } else {
#pragma unroll
          for (int b = 0; b < 16; ++b) {
            const uint32_t word = b < 4 ? w.x : b < 8 ? w.y : b < 12 ? w.z : w.w;
            if (16 * seg + b < tr) dst[b] = static_cast<__nv_fp8_storage_t>((word >> (8 * (b % 4))) & 0xffu);
          }
        }
      }
    }
    // The next row block writes col_part after this one's block barriers, tq and the inverses after
    // its cluster barrier, and row_part alternates by parity, so a slow peer still reads this one's.
  }
  // Why: no block may leave (its shared memory gone) while the peer may still read its maxima.
  cluster.sync();
#else
  (void)dz, (void)lddz, (void)h, (void)ldh, (void)dg, (void)du, (void)rows, (void)cols, (void)align;
  __trap();
#endif
}

}  // namespace swiglu::kernels
