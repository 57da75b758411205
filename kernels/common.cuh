// Device helpers every kernel shares: dtype conversion (to_f32, from_f32 with round-to-nearest),
// paired stores, streamed loads, the split-K hand-off, and thin PTX wrappers for the sm_80
// tensor-core path (cp.async, ldmatrix, mma.sync, tf32 conversion and 3xTF32's split).
// Arch: sm_70+. Each PTX wrapper is compiled only where its instruction exists and is __trap()
// elsewhere, so a kernel that reaches one on the wrong GPU stops loudly instead of computing garbage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define SWIGLU_SM80_DEVICE 1
#else
#define SWIGLU_SM80_DEVICE 0
#endif

namespace swiglu::kernels {

template <class T>
inline constexpr bool is_swiglu_dtype_v = std::is_same_v<T, float> || std::is_same_v<T, __half> ||
                                          std::is_same_v<T, __nv_bfloat16>;

// ---- dtype traits ------------------------------------------------------------------------------

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_f32(float v) {
  static_assert(is_swiglu_dtype_v<T>, "from_f32: T must be float, __half or __nv_bfloat16");
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(v);
  } else {
    return __float2bfloat16_rn(v);
  }
}

// v, plus what dst holds when accumulating (C += v): the value to store at dst.
template <class T>
__device__ __forceinline__ float plus_held(const T* dst, float v, int accumulate) {
  return accumulate != 0 ? v + to_f32(*dst) : v;
}

// Two adjacent outputs as one store; dst is 2-element aligned.
template <class T>
__device__ __forceinline__ void store_pair(T* dst, float v0, float v1) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
  } else if constexpr (std::is_same_v<T, __half>) {
    *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(v0, v1);
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "store_pair: unsupported dtype");
    *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(v0, v1);
  }
}

// Two values rounded to a 16-bit T in one 32-bit word, v0 in the low half (the lower address).
template <class T>
__device__ __forceinline__ uint32_t pack_pair(float v0, float v1) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(v0, v1);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "pack_pair: fp16 or bf16");
    const __nv_bfloat162 h = __floats2bfloat162_rn(v0, v1);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}

// ---- loads ----------------------------------------------------------------------------------------

// 16 bytes of a stream read once (a weight, read-only during the kernel): not kept in L1, which
// then holds the small operands that are read many times.
__device__ __forceinline__ uint4 load_streamed_16(const void* src) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(src));
  return v;
}

// ---- split-K --------------------------------------------------------------------------------------

// Called by every thread of a block once its K slice of the tile is added into the fp32 sums: true
// in the tile's last slice to finish, which then reads the sums back and stores the tile. Why the
// fences: this slice's adds are performed device-wide before its ticket, and the last slice's
// reads of the sums come after every other slice's adds.
__device__ __forceinline__ bool split_k_last_slice(int* counter, int splits) {
  __threadfence();
  __syncthreads();
  __shared__ int last_slice;
  if (threadIdx.x == 0) last_slice = atomicAdd(counter, 1) == splits - 1;
  __syncthreads();
  if (!last_slice) return false;
  __threadfence();
  return true;
}

// ---- PTX wrappers (sm_80) -----------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; !valid reads nothing and zero-fills, but src must be a valid address.
__device__ __forceinline__ void cp_async_16_zfill(uint32_t dst, const void* src, bool valid) {
#if SWIGLU_SM80_DEVICE
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(src)), "r"(src_bytes)
               : "memory");
#else
  (void)dst; (void)src; (void)valid;
  __trap();
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if SWIGLU_SM80_DEVICE
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
  __trap();
#endif
}

// Waits until at most N of this thread's committed cp.async groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if SWIGLU_SM80_DEVICE
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}

// Four 8x8 b16 matrices; lane i gives the address of row i%8 of matrix i/8, lane l receives row
// l/4, columns 2(l%4) and 2(l%4)+1 of each (.trans: column l/4, rows 2(l%4) and 2(l%4)+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
#if SWIGLU_SM80_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  (void)addr;
  r[0] = r[1] = r[2] = r[3] = 0;
  __trap();
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
#if SWIGLU_SM80_DEVICE
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  (void)addr;
  r[0] = r[1] = r[2] = r[3] = 0;
  __trap();
#endif
}

// D += A·B for one 16x8x16 tile, fp32 accumulate. T selects f16 or bf16 operands.
// Fragments (g = lane/4, t = lane%4): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..),
// a3 (g+8, 2t+8..); b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g); d0,d1 (g, 2t..2t+1), d2,d3 (g+8, ..).
template <class T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>,
                "mma_m16n8k16: T must be __half or __nv_bfloat16");
#if SWIGLU_SM80_DEVICE
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  (void)d; (void)a; (void)b;
  __trap();
#endif
}

// D += A·B for one 16x8x8 tf32 tile, fp32 accumulate. Operands must already be tf32 (cvt_tf32).
// Fragments: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k t, n g), b1 (k t+4, n g);
// d as for m16n8k16.
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2]) {
#if SWIGLU_SM80_DEVICE
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  (void)d; (void)a; (void)b;
  __trap();
#endif
}

// fp32 bits -> tf32 bits (10-bit mantissa), round to nearest with ties away from zero.
__device__ __forceinline__ uint32_t cvt_tf32(uint32_t f32_bits) {
#if SWIGLU_SM80_DEVICE
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(f32_bits)));
  return r;
#else
  (void)f32_bits;
  __trap();
  return 0;
#endif
}

// 3xTF32's split: x (fp32 bits) = big + small + r, big = tf32(x), small = tf32(x − big), |r| ≤ 2^-22·|x|.
// ±inf gives small = NaN, so every product with it is NaN (docs/kernels-sm80.md says why).
__device__ __forceinline__ void split_tf32(uint32_t f32_bits, uint32_t& big, uint32_t& small) {
  big = cvt_tf32(f32_bits);
  small = cvt_tf32(__float_as_uint(__uint_as_float(f32_bits) - __uint_as_float(big)));
}

}  // namespace swiglu::kernels
