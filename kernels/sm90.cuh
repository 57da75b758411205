// Hopper (sm_90a) building blocks of the wgmma kernels (fwd_sm90.cuh, bwd_sm90.cuh): mbarriers, TMA
// loads and stores, clusters, warpgroup register hand-off, named barriers, 128-byte-swizzle matrix
// descriptors, the m64nNk16 wgmma, and the persistent producer/consumer skeleton both share.
// Bodies exist for sm_90a only (SWIGLU_SM90A_DEVICE); a kernel that uses them guards its body alike.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SWIGLU_SM90A_DEVICE 1
#else
#define SWIGLU_SM90A_DEVICE 0
#endif

namespace swiglu::kernels {

namespace sm90 {

// ---- mbarrier ------------------------------------------------------------------------------------

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
#endif
}

// Makes the initialised barriers visible to the async proxy (TMA) and the other threads.
__device__ __forceinline__ void mbar_fence_init() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
#endif
}

// Waits until the barrier's phase with parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
#if SWIGLU_SM90A_DEVICE
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
  } while (done == 0);
#endif
}

// ---- thread-block clusters ----------------------------------------------------------------------

// This block's rank in its cluster (0 when the launch has no cluster).
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r = 0;
#if SWIGLU_SM90A_DEVICE
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
#endif
  return r;
}

// Every thread of every block in the cluster arrives and waits. Why not .aligned: the producer
// warp's lanes reach it from different branches (only lane 0 issues loads).
__device__ __forceinline__ void cluster_sync() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("barrier.cluster.arrive.release;\n barrier.cluster.wait.acquire;" ::: "memory");
#endif
}

// Arrives on `bar`'s offset in cluster block `cta`'s shared memory. Why .release.cta, not .cluster:
// the stage it hands over needs no fence, and a cluster-scope release also orders the epilogue's
// global stores (1.7x slower; docs/kernels-sm90.md).
__device__ __forceinline__ void mbar_arrive_cluster(uint64_t* bar, uint32_t cta) {
#if SWIGLU_SM90A_DEVICE
  asm volatile(
      "{\n"
      ".reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
      "}\n" ::"r"(smem_u32(bar)),
      "r"(cta)
      : "memory");
#endif
}

// ---- TMA -----------------------------------------------------------------------------------------

// Box at element (col, row) of the 2-D tensor `map` into shared memory at `dst`, completing
// transaction bytes on `bar`.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar, int32_t col,
                                            int32_t row) {
#if SWIGLU_SM90A_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::
          "r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(col), "r"(row)
      : "memory");
#endif
}

// The same box to `dst`'s offset in every cluster block in `mask` (bit r: rank r), each completing
// on its own `bar`.
__device__ __forceinline__ void tma_load_2d_multicast(void* dst, const CUtensorMap* map, uint64_t* bar,
                                                      int32_t col, int32_t row, uint16_t mask) {
#if SWIGLU_SM90A_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(col), "r"(row), "h"(mask)
      : "memory");
#endif
}

__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
#endif
}

// ---- global reductions ---------------------------------------------------------------------------

// Adds 4 floats to the 16-byte aligned p in L2, returning nothing (red, where atomicAdd on a float4
// is an atom whose results the compiler may keep).
__device__ __forceinline__ void red_add_v4(float* p, float4 v) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
#endif
}

// Lane ^ 1's x. Why not __shfl_xor_sync: on wgmma accumulators in a split-K epilogue, ptxas
// (CUDA 13.0) then serialised every wgmma of the kernel behind a compiler-inserted warpgroup arrive
// (warning C7520), which slowed the large-batch GEMMs that never split; the bare
// instruction does not.
__device__ __forceinline__ float shfl_xor1(float x) {
  float y = x;
#if SWIGLU_SM90A_DEVICE
  asm("shfl.sync.bfly.b32 %0, %1, 1, 31, -1;" : "=f"(y) : "f"(x));
#endif
  return y;
}

// ---- warpgroup -----------------------------------------------------------------------------------

template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegs));
#endif
}

template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegs));
#endif
}

// Named barrier `id` (1..15) over `threads` threads: arrive without waiting, or arrive and wait.
__device__ __forceinline__ void named_arrive(int id, int threads) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
#endif
}

__device__ __forceinline__ void named_sync(int id, int threads) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
#endif
}

__device__ __forceinline__ void wgmma_fence() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}

template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
#endif
}

// Descriptor of a K-major tile in the 128-byte swizzle: 128-byte rows, 1024-byte atoms along M/N.
// +32 bytes on the address steps 32 bytes of K inside the swizzled row.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>(1) << 16;            // leading byte offset (16 bytes; ignored)
  d |= static_cast<uint64_t>(1024 >> 4) << 32;    // stride byte offset: one swizzle atom
  d |= static_cast<uint64_t>(1) << 62;            // 128-byte swizzle
  return d;
}

// smem_desc(addr) rebuilt from its low word, the start address in 16-byte units: the high word is
// the same for every address. A main loop keeps the ring's first stage's low words and advances
// them by 32-bit adds (a stage, 32 bytes of K = 2 units), which do not carry out of the 18-bit
// field while the address stays inside shared memory's 256 KB window.
__device__ __forceinline__ uint64_t smem_desc_lo(uint32_t lo) {
  return (smem_desc(0) & 0xFFFFFFFF00000000ull) | lo;
}

// Descriptor of an MN-major tile (M or N contiguous) in the 128-byte swizzle: boxes of 64 MN
// elements × BK K rows, `chunk_bytes` apart, each K row one swizzle row. +2048 bytes steps 16 of K.
__device__ __forceinline__ uint64_t smem_desc_mn(uint32_t addr, uint32_t chunk_bytes) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>((chunk_bytes & 0x3FFFF) >> 4) << 16;  // leading: next 64 MN elements
  d |= static_cast<uint64_t>(1024 >> 4) << 32;                      // stride: next 8 K rows
  d |= static_cast<uint64_t>(1) << 62;                              // 128-byte swizzle
  return d;
}

#if SWIGLU_SM90A_DEVICE
// m64nN, fp32 accumulators (N/2 a thread), operands through descriptors; scale_d = 0 overwrites D.
// TA/TB = 1: A/B MN-major (smem_desc_mn). Inline asm must spell out each of the N/2 accumulator
// operands: N = 128 takes the first 64, 200 the first 100, 256 all 128, in the fragments below.
// INSTR is the K and types, TRANS the transpose operands (none for tf32 and e4m3).
#define SWIGLU_WGMMA_ACC_0_63                                                                      \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"                           \
  ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"               \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"               \
  ", %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define SWIGLU_WGMMA_ACC_64_99                                                                     \
  ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"               \
  ", %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"               \
  ", %96, %97, %98, %99"
#define SWIGLU_WGMMA_ACC_100_127                                                                   \
  ", %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113"          \
  ", %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define SWIGLU_WGMMA_D_0_63                                                                        \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5])                           \
  , "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])                       \
  , "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17])                   \
  , "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])                   \
  , "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29])                   \
  , "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])                   \
  , "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41])                   \
  , "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])                   \
  , "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53])                   \
  , "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59])                   \
  , "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define SWIGLU_WGMMA_D_64_99                                                                       \
  , "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69])                   \
  , "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75])                   \
  , "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81])                   \
  , "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])                   \
  , "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93])                   \
  , "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99])
#define SWIGLU_WGMMA_D_100_127                                                                     \
  , "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105])             \
  , "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111])             \
  , "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117])             \
  , "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123])             \
  , "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
// SHAPE "m64nN", ACC the accumulators' placeholders, DESCS and SCALE the placeholders that follow
// them; the accumulator operands last.
#define SWIGLU_WGMMA_M64(SHAPE, ACC, DESCS, SCALE, INSTR, TRANS, ...)                              \
  asm volatile("{\n"                                                                               \
               ".reg .pred p;\n"                                                                   \
               "setp.ne.b32 p, " SCALE ", 0;\n"                                                    \
               "wgmma.mma_async.sync.aligned." SHAPE INSTR " {" ACC "}, " DESCS                    \
               ", p, 1, 1" TRANS ";\n"                                                             \
               "}\n"                                                                               \
               : __VA_ARGS__                                                                       \
               : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(TA), "n"(TB))
#define SWIGLU_WGMMA_M64N256(INSTR, TRANS)                                                         \
  SWIGLU_WGMMA_M64("m64n256", SWIGLU_WGMMA_ACC_0_63 SWIGLU_WGMMA_ACC_64_99                         \
                   SWIGLU_WGMMA_ACC_100_127, "%128, %129", "%130", INSTR, TRANS,                   \
                   SWIGLU_WGMMA_D_0_63 SWIGLU_WGMMA_D_64_99 SWIGLU_WGMMA_D_100_127)
#define SWIGLU_WGMMA_M64N200(INSTR, TRANS)                                                         \
  SWIGLU_WGMMA_M64("m64n200", SWIGLU_WGMMA_ACC_0_63 SWIGLU_WGMMA_ACC_64_99, "%100, %101", "%102",  \
                   INSTR, TRANS, SWIGLU_WGMMA_D_0_63 SWIGLU_WGMMA_D_64_99)
#define SWIGLU_WGMMA_M64N128(INSTR, TRANS)                                                         \
  SWIGLU_WGMMA_M64("m64n128", SWIGLU_WGMMA_ACC_0_63, "%64, %65", "%66", INSTR, TRANS,              \
                   SWIGLU_WGMMA_D_0_63)

// One wgmma over 32 bytes of K: k16 for __nv_bfloat16 and __half, k8 tf32 for float and k32 for
// __nv_fp8_e4m3 (both K-major only).
template <class T, int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_m64n256(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SWIGLU_WGMMA_M64N256("k16.f32.bf16.bf16", ", %131, %132");
  } else if constexpr (std::is_same_v<T, __half>) {
    SWIGLU_WGMMA_M64N256("k16.f32.f16.f16", ", %131, %132");
  } else if constexpr (std::is_same_v<T, __nv_fp8_e4m3>) {
    static_assert(TA == 0 && TB == 0, "wgmma: e4m3 operands are K-major only");
    SWIGLU_WGMMA_M64N256("k32.f32.e4m3.e4m3", "");
  } else {
    static_assert(std::is_same_v<T, float> && TA == 0 && TB == 0, "wgmma: tf32 operands are K-major only");
    SWIGLU_WGMMA_M64N256("k8.f32.tf32.tf32", "");
  }
}

template <class T, int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_m64n128(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SWIGLU_WGMMA_M64N128("k16.f32.bf16.bf16", ", %67, %68");
  } else if constexpr (std::is_same_v<T, __half>) {
    SWIGLU_WGMMA_M64N128("k16.f32.f16.f16", ", %67, %68");
  } else if constexpr (std::is_same_v<T, __nv_fp8_e4m3>) {
    static_assert(TA == 0 && TB == 0, "wgmma: e4m3 operands are K-major only");
    SWIGLU_WGMMA_M64N128("k32.f32.e4m3.e4m3", "");
  } else {
    static_assert(std::is_same_v<T, float> && TA == 0 && TB == 0, "wgmma: tf32 operands are K-major only");
    SWIGLU_WGMMA_M64N128("k8.f32.tf32.tf32", "");
  }
}

// The 16-bit types only: the backward GEMMs' tile whose four columns of tiles hold 784 (or up to
// 800) columns, which 256 would pad by a third (docs/kernels-sm90.md).
template <class T, int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_m64n200(float (&d)[100], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SWIGLU_WGMMA_M64N200("k16.f32.bf16.bf16", ", %103, %104");
  } else {
    static_assert(std::is_same_v<T, __half>, "wgmma_m64n200: fp16 or bf16 operands");
    SWIGLU_WGMMA_M64N200("k16.f32.f16.f16", ", %103, %104");
  }
}

#undef SWIGLU_WGMMA_M64N256
#undef SWIGLU_WGMMA_M64N128
#undef SWIGLU_WGMMA_M64N200
#undef SWIGLU_WGMMA_M64
#undef SWIGLU_WGMMA_ACC_0_63
#undef SWIGLU_WGMMA_ACC_64_99
#undef SWIGLU_WGMMA_ACC_100_127
#undef SWIGLU_WGMMA_D_0_63
#undef SWIGLU_WGMMA_D_64_99
#undef SWIGLU_WGMMA_D_100_127

// m64nN over 32 bytes of K for N = 256, 200 (16-bit types) or 128. Why 32 bytes: one descriptor
// step in a swizzled K-major row, two atoms of an MN-major tile, whatever the type.
template <int N, class T, int TA = 0, int TB = 0>
__device__ __forceinline__ void wgmma_m64nk(float (&d)[N / 2], uint64_t a, uint64_t b, int scale_d) {
  static_assert(N == 256 || N == 200 || N == 128, "wgmma_m64nk: N must be 256, 200 or 128");
  if constexpr (N == 256) {
    wgmma_m64n256<T, TA, TB>(d, a, b, scale_d);
  } else if constexpr (N == 200) {
    wgmma_m64n200<T, TA, TB>(d, a, b, scale_d);
  } else {
    wgmma_m64n128<T, TA, TB>(d, a, b, scale_d);
  }
}

#endif  // SWIGLU_SM90A_DEVICE

// Each 32-bit word w at offset o of a filled stage becomes op(w) at offset o of `dst`, shared by
// `threads` consumer threads; then the writes are fenced for wgmma and the threads meet on `barrier`.
template <int kStageBytes, class Op>
__device__ __forceinline__ void transform_stage(uint32_t stage, uint32_t dst, int thread, int threads, int barrier,
                                                Op op) {
#if SWIGLU_SM90A_DEVICE
  for (int off = thread * 16; off < kStageBytes; off += threads * 16) {
    uint32_t v[4];
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3])
                 : "r"(stage + off));
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = op(v[i]);
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(dst + off), "r"(v[0]), "r"(v[1]), "r"(v[2]),
                 "r"(v[3])
                 : "memory");
  }
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  named_sync(barrier, threads);
#endif
}

// Rounds a filled stage to tf32 in place (nearest, ties away, as sm80 and cuBLAS). Why: wgmma's
// tf32 truncates the fp32 operands, a bias rounding does not have (docs/kernels-sm90.md).
template <int kStageBytes>
__device__ __forceinline__ void round_stage_tf32(uint32_t stage, int thread, int threads, int barrier) {
  transform_stage<kStageBytes>(stage, stage, thread, threads, barrier, cvt_tf32);
}

// 3xTF32's split of a filled stage: small = tf32(x − trunc(x)) to `small`'s same offset, trunc(x)
// being what the tf32 wgmma reads of x, so x stays as the big part unwritten (docs/kernels-sm90.md).
template <int kStageBytes>
__device__ __forceinline__ void split_stage_tf32x3(uint32_t stage, uint32_t small, int thread, int threads,
                                                   int barrier) {
  transform_stage<kStageBytes>(stage, small, thread, threads, barrier, [](uint32_t w) {
    return cvt_tf32(__float_as_uint(__uint_as_float(w) - __uint_as_float(w & 0xffffe000u)));
  });
}

// ---- TMA stores ---------------------------------------------------------------------------------

// The box of `map` at (col, row) from shared `src` (the map's box and swizzle); edges clip it.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, uint32_t src, int32_t col, int32_t row) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(col), "r"(row)
               : "memory");
#endif
}

// Closes this thread's bulk async group of stores issued since the last commit.
__device__ __forceinline__ void tma_store_commit() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}

// Waits until at most N of this thread's store groups have not yet read their shared memory.
template <int N>
__device__ __forceinline__ void tma_store_wait_read() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
#endif
}

// Waits until at most N of this thread's committed store groups are incomplete (their writes done).
template <int N>
__device__ __forceinline__ void tma_store_wait() {
#if SWIGLU_SM90A_DEVICE
  asm volatile("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory");
#endif
}

// ---- the TMA-store epilogue both sm90 kernels share ----------------------------------------------
// A consumer warpgroup owns a buffer of 64-row × 128-byte swizzled boxes and a named barrier. Per
// output block: acquire, each thread's pairs in place, release (the leader stores the boxes). The
// next acquire waits only for the stores to read the buffer; the kernel waits for all before exit.

constexpr int kStoreBoxBytes = 64 * 128;

// Waits (leader) until the buffer's last stores have read it, then meets the warpgroup.
__device__ __forceinline__ void store_buffer_acquire(bool leader, int barrier) {
  if (leader) tma_store_wait_read<0>();
  named_sync(barrier, 128);
}

// The 32-bit `pair` of accumulator group j, row `row` + 8h, into box j / 8 (mod kBoxes). Why no
// bank conflicts: chunk c of row r sits at c ^ (r % 8), and r % 8 is lane / 4 for all its rows.
template <int kBoxes>
__device__ __forceinline__ void store_buffer_pair(uint32_t buf, int j, int h, uint32_t row, int lane, uint32_t pair) {
#if SWIGLU_SM90A_DEVICE
  const uint32_t at = buf + ((j / 8) % kBoxes) * kStoreBoxBytes + ((j % 8) ^ (lane / 4)) * 16 + 4 * (lane % 4);
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(at + (row + 8 * h) * 128), "r"(pair) : "memory");
#endif
}

// Fences the warpgroup's shared stores for TMA, meets it, and has the leader store kBoxes boxes of
// `map`, box b at (col + 64·b, row); TMA clips them at the edges.
template <int kBoxes>
__device__ __forceinline__ void store_buffer_release(bool leader, int barrier, const CUtensorMap* map, uint32_t buf,
                                                     int64_t col, int64_t row) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  named_sync(barrier, 128);
  if (leader) {
#pragma unroll
    for (int b = 0; b < kBoxes; ++b)
      tma_store_2d(map, buf + b * kStoreBoxBytes, static_cast<int32_t>(col + 64 * b), static_cast<int32_t>(row));
    tma_store_commit();
  }
#endif
}

// A consumer warpgroup's 64 rows × N columns of 16-bit C from accumulators in the m64nN wgmma
// layout (register 4j + 2h + e: row 8h of the warp's quad row `row`, column 8j + 2·(lane % 4) + e)
// through its buffer of kBoxes boxes, kBoxes·64 columns a round, to `map` at (col, row0).
template <class T, int N, int kBoxes>
__device__ __forceinline__ void store_tile_c(const float (&acc)[N / 2], uint32_t buf, uint32_t row, int lane,
                                             bool leader, int barrier, const CUtensorMap* map, int64_t col,
                                             int64_t row0) {
  static_assert(N % (64 * kBoxes) == 0, "store_tile_c: N must be whole rounds of kBoxes boxes");
#pragma unroll
  for (int round = 0; round < N / 64 / kBoxes; ++round) {
    store_buffer_acquire(leader, barrier);
#pragma unroll
    for (int j = 8 * kBoxes * round; j < 8 * kBoxes * (round + 1); ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
        store_buffer_pair<kBoxes>(buf, j, h, row, lane, pack_pair<T>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]));
    }
    store_buffer_release<kBoxes>(leader, barrier, map, buf, col + 64 * kBoxes * round, row0);
  }
}

// ---- the persistent, warp-specialised skeleton both sm90 kernels share ---------------------------

// S stages from the first 1024-byte boundary, then S full and S empty mbarriers. With C > 1 blocks
// a cluster share B, so a stage is refilled only once every consumer of every block released it.
template <int S, int kStageBytes, int C = 1>
struct Ring {
  uint8_t* smem;
  uint64_t* full;
  uint64_t* empty;

  // A consumer warpgroup's leader hands `stage` back to the producers that fill it.
  __device__ __forceinline__ void release(int stage) const {
    if constexpr (C == 1) {
      mbar_arrive(&empty[stage]);
    } else {
#pragma unroll
      for (int r = 0; r < C; ++r) mbar_arrive_cluster(&empty[stage], static_cast<uint32_t>(r));
    }
  }
};

// Lays the ring out and initialises its barriers (full: one expect-tx arrival; empty: `consumers`
// from each block), then syncs the block, or the cluster: a peer's multicasts target these barriers.
template <int S, int kStageBytes, int C = 1>
__device__ __forceinline__ Ring<S, kStageBytes, C> make_ring(uint8_t* smem_raw, uint32_t consumers) {
  Ring<S, kStageBytes, C> r;
  r.smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  r.full = reinterpret_cast<uint64_t*>(r.smem + S * kStageBytes);
  r.empty = r.full + S;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(&r.full[s], 1);
      mbar_init(&r.empty[s], consumers * C);
    }
    mbar_fence_init();
  }
  if constexpr (C == 1) {
    __syncthreads();
  } else {
    cluster_sync();
  }
  return r;
}

// A position in the ring: the stage and the parity of its current fill.
template <int S>
struct RingPos {
  int stage = 0;
  uint32_t phase = 0;
  __device__ __forceinline__ explicit RingPos(int64_t step = 0)
      : stage(static_cast<int>(step % S)), phase(static_cast<uint32_t>((step / S) & 1)) {}
  __device__ __forceinline__ void next() {
    if (++stage == S) {
      stage = 0;
      phase ^= 1;
    }
  }
};

// Tile t in the grouped order: bands of kGroupM M tiles walked N column by N column, so one wave
// of blocks reads a band of A and a band of B that fit in L2.
template <int kGroupM>
__device__ __forceinline__ void grouped_tile(int64_t t, int64_t m_tiles, int64_t n_tiles, int64_t* mt,
                                             int64_t* nt) {
  const int64_t band = kGroupM * n_tiles;
  const int64_t first_m = (t / band) * kGroupM;
  const int64_t rows = m_tiles - first_m < kGroupM ? m_tiles - first_m : kGroupM;
  const int64_t r = t % band;
  *mt = first_m + r % rows;
  *nt = r / rows;
}

// One block's walk over the persistent grid's tiles. With clusters a unit is C vertically adjacent
// tiles sharing B, rank r taking the r-th; a unit's tiles below the output still load and multiply
// (the peer needs their share of B) and store nothing.
template <int kGroupM, int C>
struct TileWalk {
  static_assert(kGroupM % C == 0, "TileWalk: the group must hold whole clusters");
  int64_t m_units, n_tiles, units;
  int64_t rank;

  __device__ __forceinline__ TileWalk(int64_t m_tiles, int64_t n_tiles_)
      : m_units((m_tiles + C - 1) / C), n_tiles(n_tiles_), units(m_units * n_tiles_), rank(C == 1 ? 0 : cluster_rank()) {}
  __device__ __forceinline__ int64_t first() const { return blockIdx.x / C; }
  __device__ __forceinline__ int64_t stride() const { return gridDim.x / C; }
  // The M and N tile indices of unit u for this block.
  __device__ __forceinline__ void tile(int64_t u, int64_t* mt, int64_t* nt) const {
    grouped_tile<kGroupM / C>(u, m_units, n_tiles, mt, nt);
    *mt = *mt * C + rank;
  }
  // The first row and column of this block's tile of unit u, for BM×BN tiles.
  template <int BM, int BN>
  __device__ __forceinline__ void origin(int64_t u, int64_t* m0, int64_t* n0) const {
    tile(u, m0, n0);
    *m0 *= BM;
    *n0 *= BN;
  }
};

// The producer over one tile's stages from `pos`: waits for a free stage, arms its full barrier for
// kStageBytes (peers' multicasts included), and has load(stage, full_barrier, k) issue the loads.
template <int S, int kStageBytes, int C, class Load>
__device__ __forceinline__ void produce_tile(const Ring<S, kStageBytes, C>& ring, RingPos<S>& pos, int k_steps,
                                             Load&& load) {
  for (int k = 0; k < k_steps; ++k, pos.next()) {
    mbar_wait(&ring.empty[pos.stage], pos.phase ^ 1);
    mbar_arrive_expect_tx(&ring.full[pos.stage], kStageBytes);
    load(ring.smem + pos.stage * kStageBytes, &ring.full[pos.stage], k);
  }
}

// Split-K over a persistent grid: `splits` slices of each tile's K steps, `per` steps a slice (the
// last may be shorter), unit v = slice · tiles + tile. One slice: the whole K, per = k_steps.
struct KSlices {
  int splits = 1;
  int per = 0;
  __device__ __forceinline__ int64_t units(int64_t tiles) const { return tiles * splits; }
  // Unit v of `tiles`: its tile, first K step and K step count.
  __device__ __forceinline__ void unit(int64_t v, int64_t tiles, int k_steps, int64_t* tile, int* k_begin,
                                       int* k_count) const {
    const int s = static_cast<int>(v / tiles);
    *tile = v - s * tiles;
    *k_begin = s * per;
    *k_count = min(per, k_steps - *k_begin);
  }
};

// A split-K consumer's hand-off after its slice's partial sums went to the fp32 workspace: fences
// them, and its leader counts the slice in on `counter`. True for all 128 threads of the consumer
// whose slice came last, which then reads the sums back; `flags` is the block's shared word a
// consumer (the named barrier 4 + consumer spans its 128 threads).
__device__ __forceinline__ bool last_slice_arrived(int* counter, int splits, bool leader, int (&flags)[2],
                                                   int consumer) {
  __threadfence();
  named_sync(4 + consumer, 128);
  if (leader) flags[consumer] = atomicAdd(counter, 1) == splits - 1;
  named_sync(4 + consumer, 128);
  if (!flags[consumer]) return false;
  __threadfence();
  return true;
}

// The producer warpgroup: gives registers back, and its first thread calls
// load(stage, full_barrier, k, m0, n0) for each K step of this block's tiles (of each K slice of
// them, with `slices`). Why the cluster barrier at the end: a peer may still multicast into this
// block until it has finished.
template <int BM, int BN, int S, int kStageBytes, int C, int kGroupM, class Load>
__device__ __forceinline__ void run_producer(const Ring<S, kStageBytes, C>& ring, const TileWalk<kGroupM, C>& walk,
                                             int k_steps, const CUtensorMap* a_map, const CUtensorMap* b_map,
                                             Load&& load, KSlices slices = {}) {
  setmaxnreg_dec<40>();
  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(a_map);
    tma_prefetch_descriptor(b_map);
    if (slices.splits <= 1) slices = KSlices{1, k_steps};
    RingPos<S> pos;
    for (int64_t v = walk.first(); v < slices.units(walk.units); v += walk.stride()) {
      int64_t u, m0, n0;
      int k_begin, k_count;
      slices.unit(v, walk.units, k_steps, &u, &k_begin, &k_count);
      walk.template origin<BM, BN>(u, &m0, &n0);
      produce_tile(ring, pos, k_count,
                   [&](uint8_t* stage, uint64_t* full, int k) { load(stage, full, k_begin + k, m0, n0); });
    }
  }
  if constexpr (C > 1) {
    __syncwarp();
    cluster_sync();
  }
}

// A consumer's main loop over one tile's stages from `first`: mma(stage_addr, k) on each full stage,
// one wgmma group in flight, a stage released once the group that read it has completed.
template <int S, int kStageBytes, int C, class Mma>
__device__ __forceinline__ void consume_tile(const Ring<S, kStageBytes, C>& ring, int64_t first, int k_steps,
                                             bool leader, Mma&& mma) {
  RingPos<S> pos(first);
  int release = -1;  // the stage whose wgmma group may still be reading it
  for (int k = 0; k < k_steps; ++k) {
    mbar_wait(&ring.full[pos.stage], pos.phase);
    wgmma_fence();
    mma(smem_u32(ring.smem + pos.stage * kStageBytes), k);
    wgmma_commit();
    wgmma_wait<1>();
    if (release >= 0 && leader) ring.release(release);
    release = pos.stage;
    pos.next();
  }
  wgmma_wait<0>();
  if (release >= 0 && leader) ring.release(release);
}

// One box into this block's stage, or (C > 1) multicast to the same offset in every cluster block.
template <int C>
__device__ __forceinline__ void tma_load_shared(void* dst, const CUtensorMap* map, uint64_t* bar, int32_t col,
                                                int32_t row) {
  if constexpr (C == 1) {
    tma_load_2d(dst, map, bar, col, row);
  } else {
    tma_load_2d_multicast(dst, map, bar, col, row, static_cast<uint16_t>((1u << C) - 1));
  }
}

}  // namespace sm90

}  // namespace swiglu::kernels
