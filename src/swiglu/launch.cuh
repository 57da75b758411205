// Internal, host side (nvcc only): what every family's launchers share: the element type of a
// precision, the dynamic shared-memory attribute, the launch of a grid of output tiles, and the
// table entry of a compiled configuration. A kernel configuration (kernels/*.cuh) exposes Element,
// kBlockM, kBlockN, kBlockK, kStages, kWarps, kThreads, kSmemBytes (0: static shared memory only),
// and kCluster when it runs in clusters.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <type_traits>

#include <nvtx3/nvtx3.hpp>

#include "kernels/params.cuh"
#include "swiglu/registry.hpp"

namespace swiglu::detail {

using kernels::BwdKind;

template <Precision P>
using ElementOf = std::conditional_t<P == Precision::f16, __half,
                                     std::conditional_t<P == Precision::bf16, __nv_bfloat16, float>>;

// Raises Kernel's dynamic shared-memory limit once per device (the attribute belongs to the current
// device's context). Thread-safe: a race only sets the same attribute twice.
template <class Cfg, auto Kernel>
cudaError_t ensure_dynamic_smem(int bytes) {
  static std::atomic<uint64_t> done_mask{0};  // bit d: set on device d (d < 64)
  int device = 0;
  if (const cudaError_t err = cudaGetDevice(&device); err != cudaSuccess) return err;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (done_mask.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  const cudaError_t err = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err == cudaSuccess && bit != 0) done_mask.fetch_or(bit, std::memory_order_release);
  return err;
}

// A cudaLaunchKernelEx (or cluster occupancy) configuration in clusters of `cluster` blocks along
// x; no cluster attribute for 1. Not copyable: config.attrs points into it.
struct ClusterLaunch {
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute attr{};
  ClusterLaunch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, unsigned cluster) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = cluster;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem_bytes;
    config.stream = stream;
    config.attrs = &attr;
    config.numAttrs = cluster > 1 ? 1 : 0;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

// How many blocks of Kernel (`threads` threads, static shared memory only) the current device holds
// at once: its multiprocessors times the blocks each holds. Kept per kernel and device after the
// first call (device < 64); thread-safe (a race only computes the same count twice).
template <auto Kernel>
cudaError_t resident_blocks(int threads, int* out) {
  static std::atomic<int> known[64] = {};
  int device = 0;
  if (const cudaError_t err = cudaGetDevice(&device); err != cudaSuccess) return err;
  if (device < 64 && (*out = known[device].load(std::memory_order_relaxed)) > 0) return cudaSuccess;
  int sms = 0, per_sm = 0;
  if (const cudaError_t err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device); err != cudaSuccess)
    return err;
  if (const cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, threads, 0);
      err != cudaSuccess)
    return err;
  *out = std::max(sms * per_sm, 1);
  if (device < 64) known[device].store(*out, std::memory_order_relaxed);
  return cudaSuccess;
}

// Kernel(p) over an M×N output in Cfg's tiles: M tiles on gridDim.x (up to 2^31-1), N tiles on
// gridDim.y (up to 65535), `splits` on gridDim.z. An empty output launches nothing.
template <class Cfg, auto Kernel, class Params>
cudaError_t launch_tiles(const Params& p, int64_t m, int64_t n, int splits, cudaStream_t stream) {
  const int64_t tiles_m = (m + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t tiles_n = (n + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (tiles_m == 0 || tiles_n == 0) return cudaSuccess;
  if (tiles_m < 0 || tiles_n < 0 || tiles_m > INT_MAX || tiles_n > 65535 || splits < 1 || splits > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  if constexpr (Cfg::kSmemBytes > 48 * 1024) {
    if (const cudaError_t err = ensure_dynamic_smem<Cfg, Kernel>(Cfg::kSmemBytes); err != cudaSuccess) return err;
  }
  const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n), static_cast<unsigned>(splits));
  Kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// The forward on a grid of tiles: Z is B×D.
template <class Cfg, auto Kernel>
cudaError_t launch_forward_grid(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd"};
  return launch_tiles<Cfg, Kernel>(p, p.B, p.D, 1, stream);
}

// A backward GEMM on a grid of tiles: C is M×N, split-K slices on gridDim.z.
template <class Cfg, auto Kernel>
cudaError_t launch_backward_grid(const BwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_bwd"};
  return launch_tiles<Cfg, Kernel>(p, p.M, p.N, p.splits, stream);
}

// The compiled configuration Cfg, as the registry and the heuristic name it.
template <class Cfg>
TileConfig tile_of(Family family) {
  TileConfig tile;
  tile.family = family;
  tile.block_m = Cfg::kBlockM;
  tile.block_n = Cfg::kBlockN;
  tile.block_k = Cfg::kBlockK;
  tile.stages = Cfg::kStages;
  tile.warps = Cfg::kWarps;
  if constexpr (requires { Cfg::kCluster; }) tile.cluster = Cfg::kCluster;
  return tile;
}

// Table entries: compute capabilities [min_cc, max_cc] (major·10 + minor).
template <class Cfg>
Kernel forward_entry(Family family, Precision p, Layout layout, int min_cc, int max_cc, FwdLaunch launch) {
  return Kernel{tile_of<Cfg>(family), Gemm::forward, dtype_of(p), layout, math_of(p), min_cc, max_cc, launch, nullptr};
}

template <class Cfg>
Kernel backward_entry(Family family, Precision p, BwdKind kind, int min_cc, int max_cc, BwdLaunch launch) {
  const Gemm gemm = kind == BwdKind::dw ? Gemm::dw : Gemm::dx;
  const Layout layout = kind == BwdKind::dx_packed ? Layout::packed : Layout::linear;
  return Kernel{tile_of<Cfg>(family), gemm, dtype_of(p), layout, Math::exact, min_cc, max_cc, nullptr, launch};
}

// Every compute capability from min_cc on (code for older architectures runs on newer ones).
inline constexpr int kAnyNewer = 1000;

}  // namespace swiglu::detail
