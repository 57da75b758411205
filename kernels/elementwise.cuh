// The unfused elementwise kernels of the baselines, the GPU reference and the sm90 backward, in fp32
// whatever the storage types (Tin in, Tout out; every matrix rows×cols with its own row stride):
//
//   gate:           z = silu(a)·b                          (gate.cuh)
//   gate backward:  dg = dz·b·silu'(a),  db = dz·silu(a)
//   column sum:     out[c] = Σ_r a[r][c]                   deterministic: a fixed order, no atomics
//   convert:        z = a, rounded once to Tout
//
// Arch: sm_70+. Rows are grid-strided, threadIdx.x walks a row's columns; with VEC > 1 a thread
// moves one 16-byte vector of each input a step (the launcher checks every row start is aligned).
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/gate.cuh"
#include "kernels/params.cuh"

namespace swiglu::kernels {

template <class Tin, class Tout, int VEC, FastMath F = FastMath::off>
__global__ void swiglu_gate_kernel(const Tin* __restrict__ a, int64_t lda,
                                   const Tin* __restrict__ b, int64_t ldb, Tout* __restrict__ z,
                                   int64_t ldz, int64_t rows, int64_t cols) {
  static_assert(is_swiglu_dtype_v<Tin> && is_swiglu_dtype_v<Tout>,
                "gate: dtypes must be float, __half or __nv_bfloat16");
  static_assert(VEC == 1 || VEC * sizeof(Tin) == 16, "gate: VEC is 1 or one 16-byte input vector");
  static_assert(VEC == 1 || (VEC * sizeof(Tout)) % 16 == 0,
                "gate: a vector of outputs must be whole 16-byte chunks");

  const int64_t vcols = VEC > 1 ? cols / VEC : 0;  // whole vectors per row
  const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;

  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < rows;
       r += row_step) {
    const Tin* ar = a + r * lda;
    const Tin* br = b + r * ldb;
    Tout* zr = z + r * ldz;

    if constexpr (VEC > 1) {
      constexpr int kOutChunks = static_cast<int>(VEC * sizeof(Tout) / 16);
      for (int64_t v = threadIdx.x; v < vcols; v += blockDim.x) {
        alignas(16) Tin va[VEC];
        alignas(16) Tin vb[VEC];
        alignas(16) Tout vz[VEC];
        *reinterpret_cast<uint4*>(va) = *reinterpret_cast<const uint4*>(ar + v * VEC);
        *reinterpret_cast<uint4*>(vb) = *reinterpret_cast<const uint4*>(br + v * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          vz[e] = from_f32<Tout>(swiglu_gate<F>(to_f32(va[e]), to_f32(vb[e])));
        }
        uint4* zv = reinterpret_cast<uint4*>(zr + v * VEC);
#pragma unroll
        for (int c = 0; c < kOutChunks; ++c) zv[c] = reinterpret_cast<const uint4*>(vz)[c];
      }
    }
    for (int64_t c = vcols * VEC + threadIdx.x; c < cols; c += blockDim.x) {
      zr[c] = from_f32<Tout>(swiglu_gate<F>(to_f32(ar[c]), to_f32(br[c])));
    }
  }
}

// Why no __restrict__: dg and db may alias a and b (the in-place backward), which is safe because
// each element is read and then written by the same thread.
template <class Tin, class Tout, int VEC, FastMath F = FastMath::off>
__global__ void swiglu_gate_backward_kernel(const Tin* a, int64_t lda, const Tin* b, int64_t ldb,
                                            const Tin* dz, int64_t lddz, Tout* dg, int64_t lddg,
                                            Tout* db, int64_t lddb, int64_t rows, int64_t cols) {
  static_assert(is_swiglu_dtype_v<Tin> && is_swiglu_dtype_v<Tout>,
                "gate backward: dtypes must be float, __half or __nv_bfloat16");
  static_assert(VEC == 1 || VEC * sizeof(Tin) == 16,
                "gate backward: VEC is 1 or one 16-byte input vector");
  static_assert(VEC == 1 || (VEC * sizeof(Tout)) % 16 == 0,
                "gate backward: a vector of outputs must be whole 16-byte chunks");

  const auto grad = [](float g, float u, float d, float* dgv, float* dbv) {
    float s, ds;
    silu_and_grad<F>(g, &s, &ds);
    *dgv = d * u * ds;
    *dbv = d * s;
  };
  const int64_t vcols = VEC > 1 ? cols / VEC : 0;
  const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;

  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < rows;
       r += row_step) {
    const Tin* ar = a + r * lda;
    const Tin* br = b + r * ldb;
    const Tin* dzr = dz + r * lddz;
    Tout* dgr = dg + r * lddg;
    Tout* dbr = db + r * lddb;

    if constexpr (VEC > 1) {
      constexpr int kOutChunks = static_cast<int>(VEC * sizeof(Tout) / 16);
      for (int64_t v = threadIdx.x; v < vcols; v += blockDim.x) {
        alignas(16) Tin va[VEC];
        alignas(16) Tin vb[VEC];
        alignas(16) Tin vd[VEC];
        alignas(16) Tout vdg[VEC];
        alignas(16) Tout vdb[VEC];
        *reinterpret_cast<uint4*>(va) = *reinterpret_cast<const uint4*>(ar + v * VEC);
        *reinterpret_cast<uint4*>(vb) = *reinterpret_cast<const uint4*>(br + v * VEC);
        *reinterpret_cast<uint4*>(vd) = *reinterpret_cast<const uint4*>(dzr + v * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          float fg, fb;
          grad(to_f32(va[e]), to_f32(vb[e]), to_f32(vd[e]), &fg, &fb);
          vdg[e] = from_f32<Tout>(fg);
          vdb[e] = from_f32<Tout>(fb);
        }
        uint4* gv = reinterpret_cast<uint4*>(dgr + v * VEC);
        uint4* bv = reinterpret_cast<uint4*>(dbr + v * VEC);
#pragma unroll
        for (int c = 0; c < kOutChunks; ++c) {
          gv[c] = reinterpret_cast<const uint4*>(vdg)[c];
          bv[c] = reinterpret_cast<const uint4*>(vdb)[c];
        }
      }
    }
    for (int64_t c = vcols * VEC + threadIdx.x; c < cols; c += blockDim.x) {
      float fg, fb;
      grad(to_f32(ar[c]), to_f32(br[c]), to_f32(dzr[c]), &fg, &fb);
      dgr[c] = from_f32<Tout>(fg);
      dbr[c] = from_f32<Tout>(fb);
    }
  }
}

// Launch with blockDim = (32, ROWS_Y); the grid strides over chunks of 32 columns.
template <class Tin, class Tout, int ROWS_Y>
__global__ void column_sum_kernel(const Tin* __restrict__ a, int64_t lda, Tout* __restrict__ out,
                                  int64_t rows, int64_t cols, int accumulate) {
  static_assert(is_swiglu_dtype_v<Tin> && is_swiglu_dtype_v<Tout>,
                "column sum: dtypes must be float, __half or __nv_bfloat16");
  static_assert(ROWS_Y >= 1 && ROWS_Y <= 32 && (ROWS_Y & (ROWS_Y - 1)) == 0,
                "column sum: ROWS_Y must be a power of two <= 32 (a 32 x ROWS_Y block)");
  constexpr int kUnroll = 8;
  // Why +1: the tree reads part[y][x] column-wise; the pad keeps it free of bank conflicts.
  __shared__ float part[ROWS_Y][33];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);

  for (int64_t c0 = static_cast<int64_t>(blockIdx.x) * 32; c0 < cols;
       c0 += static_cast<int64_t>(gridDim.x) * 32) {
    const int64_t c = c0 + tx;
    float acc = 0.0f;
    if (c < cols) {
      const Tin* col = a + c;
      int64_t r = ty;
      // Why the unroll: kUnroll independent loads in flight per thread hide DRAM latency; the adds
      // stay in row order, so the sum is the same as the plain loop's.
      for (; r + (kUnroll - 1) * ROWS_Y < rows; r += kUnroll * ROWS_Y) {
        float v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) v[u] = to_f32(col[(r + u * ROWS_Y) * lda]);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) acc += v[u];
      }
      for (; r < rows; r += ROWS_Y) acc += to_f32(col[r * lda]);
    }
    part[ty][tx] = acc;
    __syncthreads();
#pragma unroll
    for (int s = ROWS_Y / 2; s > 0; s /= 2) {
      if (ty < s) part[ty][tx] += part[ty + s][tx];
      __syncthreads();
    }
    if (ty == 0 && c < cols) out[c] = from_f32<Tout>(plus_held(out + c, part[0][tx], accumulate));
    // Why: the next chunk overwrites part[][] only after row 0 has been read.
    __syncthreads();
  }
}

template <class Tin, class Tout, int VEC>
__global__ void convert_kernel(const Tin* __restrict__ a, int64_t lda, Tout* __restrict__ z,
                               int64_t ldz, int64_t rows, int64_t cols) {
  static_assert(is_swiglu_dtype_v<Tin> && is_swiglu_dtype_v<Tout>,
                "convert: dtypes must be float, __half or __nv_bfloat16");
  static_assert(VEC == 1 || VEC * sizeof(Tin) == 16,
                "convert: VEC is 1 or one 16-byte input vector");
  static_assert(VEC == 1 || (VEC * sizeof(Tout)) % 16 == 0,
                "convert: a vector of outputs must be whole 16-byte chunks");

  const int64_t vcols = VEC > 1 ? cols / VEC : 0;
  const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < rows;
       r += row_step) {
    const Tin* ar = a + r * lda;
    Tout* zr = z + r * ldz;
    if constexpr (VEC > 1) {
      constexpr int kOutChunks = static_cast<int>(VEC * sizeof(Tout) / 16);
      for (int64_t v = threadIdx.x; v < vcols; v += blockDim.x) {
        alignas(16) Tin va[VEC];
        alignas(16) Tout vz[VEC];
        *reinterpret_cast<uint4*>(va) = *reinterpret_cast<const uint4*>(ar + v * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) vz[e] = from_f32<Tout>(to_f32(va[e]));
        uint4* zv = reinterpret_cast<uint4*>(zr + v * VEC);
#pragma unroll
        for (int c = 0; c < kOutChunks; ++c) zv[c] = reinterpret_cast<const uint4*>(vz)[c];
      }
    }
    for (int64_t c = vcols * VEC + threadIdx.x; c < cols; c += blockDim.x) {
      zr[c] = from_f32<Tout>(to_f32(ar[c]));
    }
  }
}

}  // namespace swiglu::kernels
