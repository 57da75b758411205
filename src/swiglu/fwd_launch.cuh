// Internal, host side: the launcher template behind every kernel instance (launch_tiles; the
// forward's launch_fwd here, the backward's launch_bwd in bwd_launch.cuh), and the helpers that
// turn a kernel config into a registry entry. Included only by the fwd_*.cu and bwd_*.cu instance
// files (it needs nvcc for the <<<>>> launch).
//
// A kernel config (kernels/fwd_*.cuh, kernels/bwd_*.cuh) exposes kBlockM, kBlockN, kBlockK,
// kStages, kWarps, kThreads and kSmemBytes (dynamic shared memory, 0 when the kernel only uses
// static shared memory).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <vector>

#include <nvtx3/nvtx3.hpp>

#include "swiglu/registry.hpp"

namespace swiglu::detail {

// Raises the kernel's dynamic shared-memory limit once per device (the attribute belongs to the
// current device's context, so a process that uses two GPUs needs it set on each). Thread-safe: a
// race only sets the same attribute twice.
template <class Cfg, auto Kernel>
cudaError_t ensure_dynamic_smem(int bytes) {
  static std::atomic<uint64_t> done_mask{0};  // bit d: set on device d (d < 64)
  int device = 0;
  if (const cudaError_t err = cudaGetDevice(&device); err != cudaSuccess) return err;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (done_mask.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  const cudaError_t err =
      cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err == cudaSuccess && bit != 0) done_mask.fetch_or(bit, std::memory_order_release);
  return err;
}

// Launches Kernel(p) over an M×N output in Cfg's tiles: M tiles on gridDim.x (limit 2^31-1), N
// tiles on gridDim.y (limit 65535), `splits` on gridDim.z. An empty output launches nothing.
template <class Cfg, auto Kernel, class Params>
cudaError_t launch_tiles(const Params& p, int64_t m, int64_t n, int splits, cudaStream_t stream) {
  const int64_t tiles_m = (m + Cfg::kBlockM - 1) / Cfg::kBlockM;
  const int64_t tiles_n = (n + Cfg::kBlockN - 1) / Cfg::kBlockN;
  if (tiles_m == 0 || tiles_n == 0) return cudaSuccess;
  if (tiles_m < 0 || tiles_n < 0 || tiles_m > INT_MAX || tiles_n > 65535 || splits < 1 ||
      splits > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  if constexpr (Cfg::kSmemBytes > 48 * 1024) {
    if (const cudaError_t err = ensure_dynamic_smem<Cfg, Kernel>(Cfg::kSmemBytes);
        err != cudaSuccess) {
      return err;
    }
  }
  const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n),
                  static_cast<unsigned>(splits));
  Kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// The compiled configuration of Cfg, as the registry and the heuristics name it.
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

// The forward: Z is B×D. B == 0 launches nothing.
template <class Cfg, auto Kernel>
cudaError_t launch_fwd(const FwdParams& p, cudaStream_t stream) {
  nvtx3::scoped_range range{"swiglu::launch_fwd"};
  return launch_tiles<Cfg, Kernel>(p, p.B, p.D, 1, stream);
}

template <class Cfg, auto Kernel>
FwdKernel make_fwd_kernel(Family family, int min_cc, DType dtype, Layout layout, Math math) {
  return FwdKernel{tile_of<Cfg>(family), dtype, layout, math, min_cc, &launch_fwd<Cfg, Kernel>};
}

}  // namespace swiglu::detail
