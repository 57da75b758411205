// The fused forward on Hopper (sm_90a): wgmma tensor cores fed by TMA, warp-specialised, over a
// persistent grid.
//
// Block: three warpgroups (384 threads). Warpgroup 0 is the producer: after giving registers back
// (setmaxnreg), one of its threads walks this block's tiles and, for each K step, waits for a free
// pipeline stage and issues three TMA loads into it: the X tile (BM×BK) and two W12 boxes, the gate
// rows [n0, n0+BN) of Wa and the up rows [D+n0, D+n0+BN) of Wb, stacked as one 2·BN-row operand.
// Warpgroups 1 and 2 are consumers. Cooperative schedule: each owns 64 rows of the BM = 128 tile
// and runs one m64n(2·BN)k16 wgmma per 16 of K on the whole stage, so the gate column c and the up
// column c of its rows land in the same thread's accumulators (registers i and i + BN/2). That is
// the gate placement issue 8 asks for, with no repacking of the weights. Ping-pong schedule
// (Sm90FwdConfig's PINGPONG): each consumer takes whole tiles in turn (two m64 products per 16 of
// K), so that one's epilogue runs during the other's main loop.
//
// Shared memory per stage: X tile BM×64 and W tile 2·BN×64 (BK = 64 elements = 128 bytes, one
// 128-byte swizzle row), written by TMA with the 128-byte swizzle that the wgmma descriptors name.
// Full barriers (TMA transaction bytes) and empty barriers (one arrival per consumer warpgroup)
// hand the stages around the ring; the ring's position carries on from one tile to the next, so the
// producer loads the next tile while the consumers run this tile's epilogue.
//
// Tiles are visited in a grouped order (kGroupM M tiles share each N column in turn) so that one
// wave of blocks reads a band of X and a band of W12 that fit in L2.
//
// Tails need no code: TMA zero-fills rows and K columns past the tensor's edge, gate rows past D
// read Wb rows whose results land in columns that are never stored, and the epilogue masks rows
// past B and columns past D. The host (src/swiglu/fwd_sm90_launch.cuh) sends here only problems
// TMA can address: X and W 16-byte aligned, row strides of whole 16-byte units.
//
// Compiled only for sm_90a (wgmma and setmaxnreg do not exist elsewhere): the body is empty in
// every other target, and the registry lists these instances only in builds that include sm_90a.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common.cuh"
#include "kernels/fwd_epilogue.cuh"
#include "swiglu/registry.hpp"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SWIGLU_SM90A_DEVICE 1
#else
#define SWIGLU_SM90A_DEVICE 0
#endif

namespace swiglu::kernels {

// PINGPONG = false: the two consumers split each 128-row tile (64 rows each). true: each takes
// whole tiles in turn, so that one's epilogue overlaps the other's main loop.
template <class T, int BN, int STAGES, bool PINGPONG = false>
struct Sm90FwdConfig {
  using Elem = T;
  static constexpr bool kPingpong = PINGPONG;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = BN;   // Z columns per tile; the wgmma is m64n(2·BN)k16
  static constexpr int kBlockK = 64;   // 128 bytes of a 16-bit type: one swizzle row
  static constexpr int kStages = STAGES;
  static constexpr int kWarps = 12;
  static constexpr int kThreads = 384;
  static constexpr int kGroupM = 8;
  static constexpr int kABytes = kBlockM * kBlockK * 2;
  static constexpr int kBBytes = 2 * BN * kBlockK * 2;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // Stages, 1024 bytes of slack to align the first to the swizzle atom, then the barriers.
  static constexpr int kSmemBytes = STAGES * kStageBytes + 1024 + 2 * STAGES * 8;
  static constexpr bool kFastMath = true;
  static_assert(BN == 64 || BN == 128, "the wgmma N is 2·BN: 128 or 256");
  static_assert(kStageBytes % 1024 == 0, "stages must keep the 1024-byte swizzle alignment");
};

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

__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
#if SWIGLU_SM90A_DEVICE
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
#endif
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

// The shared-memory matrix descriptor of a K-major operand tile written by TMA with the 128-byte
// swizzle: rows of 128 bytes, 8-row (1024-byte) swizzle atoms stacked along M/N, so the stride
// between atoms is 1024 bytes; the leading offset is unused for this layout. Advancing the start
// address by 32 bytes steps 16 elements along K inside the swizzled row.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>(1) << 16;            // leading byte offset (16 bytes; ignored)
  d |= static_cast<uint64_t>(1024 >> 4) << 32;    // stride byte offset: one swizzle atom
  d |= static_cast<uint64_t>(1) << 62;            // 128-byte swizzle
  return d;
}

#if SWIGLU_SM90A_DEVICE
// m64nNk16 with fp32 accumulators (N/2 registers a thread), A and B from shared memory through
// descriptors, both K-major; scale_d = 0 overwrites D instead of adding to it. T (__nv_bfloat16 or
// __half) selects the input type; the macros spell out the N/2 accumulator operands once per N.
#define SWIGLU_WGMMA_M64N256K16(TYPE)                                                                     \
  asm volatile(                                                                                           \
      "{\n"                                                                                               \
      ".reg .pred p;\n"                                                                                   \
      "setp.ne.b32 p, %130, 0;\n"                                                                         \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " {"                                   \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                            \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                  \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                  \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                  \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                  \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                  \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "      \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, " \
      "%128, %129, p, 1, 1, 0, 0;\n"                                                                      \
      "}\n"                                                                                               \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),                           \
        "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),                         \
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),                     \
        "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),                     \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),                     \
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),                     \
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),                     \
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),                     \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),                     \
        "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),                     \
        "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]),                     \
        "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),                     \
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),                     \
        "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),                     \
        "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]),                     \
        "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),                     \
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]),                   \
        "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]),               \
        "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]),               \
        "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),               \
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),               \
        "+f"(d[126]), "+f"(d[127])                                                                        \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d))
#define SWIGLU_WGMMA_M64N128K16(TYPE)                                                     \
  asm volatile(                                                                           \
      "{\n"                                                                               \
      ".reg .pred p;\n"                                                                   \
      "setp.ne.b32 p, %66, 0;\n"                                                          \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {"                   \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "            \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "  \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "  \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
      "%64, %65, p, 1, 1, 0, 0;\n"                                                        \
      "}\n"                                                                               \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),           \
        "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),         \
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),     \
        "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),     \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),     \
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),     \
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),     \
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),     \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),     \
        "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),     \
        "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d))

template <class T>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SWIGLU_WGMMA_M64N256K16("bf16");
  } else {
    SWIGLU_WGMMA_M64N256K16("f16");
  }
}

template <class T>
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SWIGLU_WGMMA_M64N128K16("bf16");
  } else {
    SWIGLU_WGMMA_M64N128K16("f16");
  }
}

#undef SWIGLU_WGMMA_M64N256K16
#undef SWIGLU_WGMMA_M64N128K16

// The m64n(2·BN)k16 product of a tile: gate and up columns side by side.
template <int BN, class T>
__device__ __forceinline__ void wgmma_m64n2bn(float (&d)[BN], uint64_t a, uint64_t b, int scale_d) {
  if constexpr (BN == 128) {
    wgmma_m64n256k16<T>(d, a, b, scale_d);
  } else {
    wgmma_m64n128k16<T>(d, a, b, scale_d);
  }
}

#endif  // SWIGLU_SM90A_DEVICE

}  // namespace sm90

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    swiglu_fwd_sm90(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                    const swiglu::detail::FwdParams p) {
#if SWIGLU_SM90A_DEVICE
  using T = typename Cfg::Elem;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BK = Cfg::kBlockK, S = Cfg::kStages;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + S * Cfg::kStageBytes);
  uint64_t* empty = full + S;

  const int warpgroup = static_cast<int>(threadIdx.x) / 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      sm90::mbar_init(&full[s], 1);
      sm90::mbar_init(&empty[s], Cfg::kPingpong ? 1 : 2);  // one arrival per consumer of a stage
    }
    sm90::mbar_fence_init();
  }
  __syncthreads();

  const int64_t m_tiles = (p.B + BM - 1) / BM;
  const int64_t n_tiles = (p.D + BN - 1) / BN;
  const int64_t tiles = m_tiles * n_tiles;
  const int k_steps = static_cast<int>((p.I + BK - 1) / BK);
  // Tile t of the grouped order: bands of kGroupM M tiles, each band walked N column by N column.
  auto tile_coords = [&](int64_t t, int64_t* m0, int64_t* n0) {
    const int64_t band = Cfg::kGroupM * n_tiles;
    const int64_t first_m = (t / band) * Cfg::kGroupM;
    const int64_t rows = m_tiles - first_m < Cfg::kGroupM ? m_tiles - first_m : Cfg::kGroupM;
    const int64_t r = t % band;
    *m0 = (first_m + r % rows) * BM;
    *n0 = (r / rows) * BN;
  };

  if (warpgroup == 0) {
    sm90::setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      sm90::tma_prefetch_descriptor(&x_map);
      sm90::tma_prefetch_descriptor(&w_map);
      int stage = 0;
      uint32_t phase = 0;
      for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        int64_t m0, n0;
        tile_coords(t, &m0, &n0);
        for (int k = 0; k < k_steps; ++k) {
          sm90::mbar_wait(&empty[stage], phase ^ 1);
          uint8_t* a = smem + stage * Cfg::kStageBytes;
          uint8_t* b = a + Cfg::kABytes;
          sm90::mbar_arrive_expect_tx(&full[stage], Cfg::kStageBytes);
          sm90::tma_load_2d(a, &x_map, &full[stage], k * BK, static_cast<int32_t>(m0));
          sm90::tma_load_2d(b, &w_map, &full[stage], k * BK, static_cast<int32_t>(n0));
          sm90::tma_load_2d(b + BN * BK * 2, &w_map, &full[stage], k * BK, static_cast<int32_t>(p.D + n0));
          if (++stage == S) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
    return;
  }

  sm90::setmaxnreg_inc<232>();
  const int consumer = warpgroup - 1;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = (static_cast<int>(threadIdx.x) % 128) / 32;
  const bool leader = threadIdx.x % 128 == 0;
  const T* __restrict__ bias = static_cast<const T*>(p.bias);

  // The epilogue of one m64n(2·BN) accumulator block whose first row is `row_base`: register
  // 4j + e holds row r0 (e < 2) or r0 + 8 (e >= 2) and column 8j + 2·(lane % 4) + (e & 1); j < BN/8
  // is the gate, j >= BN/8 the up.
  auto epilogue = [&](const float (&acc)[BN], int64_t row_base, int64_t n0) {
    const int64_t r0 = row_base + warp * 16 + lane / 4;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int64_t col = n0 + 8 * j + 2 * (lane % 4);
      float bg0 = 0, bg1 = 0, bu0 = 0, bu1 = 0;
      if (p.has_bias && col < p.D) {
        bg0 = to_f32(bias[col]);
        bu0 = to_f32(bias[p.D + col]);
        if (col + 1 < p.D) {
          bg1 = to_f32(bias[col + 1]);
          bu1 = to_f32(bias[p.D + col + 1]);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = r0 + 8 * h;
        if (row < p.B) {
          const int g = 4 * j + 2 * h, u = g + BN / 2;
          fwd_epilogue_pair<T, Cfg::kFastMath>(p, row, col, acc[g] + bg0, acc[u] + bu0,
                                               acc[g + 1] + bg1, acc[u + 1] + bu1, p.vec_store != 0);
        }
      }
    }
  };

  // The main loop of one tile from ring position `first`: waits for each stage, runs `mma(a, b,
  // scale_d)` on it (a, b: the stage's X and W tiles), keeps one wgmma group in flight and hands a
  // stage back once the group that read it is done.
  auto main_loop = [&](int64_t first, auto&& mma) {
    int stage = static_cast<int>(first % S);
    uint32_t phase = static_cast<uint32_t>((first / S) & 1);
    int release = -1;  // the stage whose wgmma group may still be reading it
    for (int k = 0; k < k_steps; ++k) {
      sm90::mbar_wait(&full[stage], phase);
      const uint32_t a = smem_u32(smem + stage * Cfg::kStageBytes);
      sm90::wgmma_fence();
      mma(a, a + Cfg::kABytes, k);
      sm90::wgmma_commit();
      sm90::wgmma_wait<1>();
      if (release >= 0 && leader) sm90::mbar_arrive(&empty[release]);
      release = stage;
      if (++stage == S) {
        stage = 0;
        phase ^= 1;
      }
    }
    sm90::wgmma_wait<0>();
    if (release >= 0 && leader) sm90::mbar_arrive(&empty[release]);
  };

  if constexpr (!Cfg::kPingpong) {
    // Cooperative: both consumers share each tile, rows [64·consumer, 64·consumer + 64) each.
    float acc[BN];
    int64_t first = 0;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x, first += k_steps) {
      int64_t m0, n0;
      tile_coords(t, &m0, &n0);
      main_loop(first, [&](uint32_t a, uint32_t b, int k) {
        a += consumer * 64 * BK * 2;
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk)
          sm90::wgmma_m64n2bn<BN, T>(acc, sm90::smem_desc(a + kk * 32), sm90::smem_desc(b + kk * 32),
                                  k > 0 || kk > 0 ? 1 : 0);
      });
      epilogue(acc, m0 + consumer * 64, n0);
    }
  } else {
    // Ping-pong: the consumers take this block's tiles in turn, each a whole 128-row tile (two
    // m64 products on the same W tile), so one consumer's epilogue runs while the other's main
    // loop does and the tensor cores stay busy. The main loops take turns too: a consumer starts
    // tile j only once the other has finished tile j-1's (named barrier 1 + its index). Why: a
    // stage's full barrier is waited on by parity, which is only sound when every earlier fill of
    // that stage has been waited for; in tile order that holds.
    constexpr int kTurnThreads = 256;  // both consumer warpgroups
    float acc0[BN], acc1[BN];
    int64_t local = 0;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x, ++local) {
      if ((local & 1) != consumer) continue;
      int64_t m0, n0;
      tile_coords(t, &m0, &n0);
      if (local > 0) sm90::named_sync(1 + consumer, kTurnThreads);
      main_loop(local * k_steps, [&](uint32_t a, uint32_t b, int k) {
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
          const uint64_t db = sm90::smem_desc(b + kk * 32);
          const int scale = k > 0 || kk > 0 ? 1 : 0;
          sm90::wgmma_m64n2bn<BN, T>(acc0, sm90::smem_desc(a + kk * 32), db, scale);
          sm90::wgmma_m64n2bn<BN, T>(acc1, sm90::smem_desc(a + 64 * BK * 2 + kk * 32), db, scale);
        }
      });
      // The other consumer's next tile (if this block has one) may start its main loop.
      if (t + gridDim.x < tiles) sm90::named_arrive(1 + (1 - consumer), kTurnThreads);
      epilogue(acc0, m0, n0);
      epilogue(acc1, m0 + 64, n0);
    }
  }
#endif
}

}  // namespace swiglu::kernels
