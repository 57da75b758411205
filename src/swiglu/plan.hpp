// Internal: what forward() and backward() launch, decided in full before the first launch: each
// kernel, the tile it runs and its parameters; for the backward also the workspace's regions, where
// dH comes from, and the dX GEMM's split-K.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "kernels/params.cuh"
#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// One launch of the fused forward.
struct ForwardPlan {
  const Kernel* kernel = nullptr;
  TileConfig tile;  // the tile that runs: the requested one, unless sm90 could not take the pointers
  FwdParams params;
};

// The forward kernel for `requested` (unset: the heuristic's tile). An sm90 tile whose X or W TMA
// cannot address (not 16-byte aligned) is replaced by the heuristic's choice among the other
// families. The outputs are FwdParams's: z and saved, or dz and dh for the backward's recompute.
Status plan_forward(const Problem& p, const DeviceTraits& dev, const std::optional<TileConfig>& requested,
                    const void* x, const void* w, const void* bias, void* z, void* saved, const void* dz,
                    void* dh, ForwardPlan* out);

// The backward's workspace, each region 256-byte aligned:
//   h:       H = [G | U] from the recompute GEMM (recompute with the prologue placement)
//   dh:      dH = [dG | dU], from the recompute's epilogue (epilogue placement), from the dX GEMM's
//            first column of blocks for the dW GEMM (prologue, both gradients), or from the gate
//            backward before the GEMMs that read dH as stored, sm90 (through TMA) and gemv (any
//            problem they could take); none with DhStorage::tensors (BackwardTensors::dh instead)
//   partial: split-K sums of dX, B×I fp32 (zeroed with the counters before each split launch)
//   counter: split-K tile counters
struct WorkspaceLayout {
  size_t h_offset = 0, h_bytes = 0;
  size_t dh_offset = 0, dh_bytes = 0;
  size_t partial_offset = 0, partial_bytes = 0;
  size_t counter_offset = 0, counter_bytes = 0;
  size_t total = 0;
  bool overflow = false;  // the total does not fit in size_t
};

// For a problem that passed check_dims (every region fits in int64; only their sum can wrap).
WorkspaceLayout workspace_layout(const Problem& p, const BackwardOptions& o, const DeviceTraits& dev);

// How backward() splits its batch under BackwardOptions::max_workspace_bytes: chunk i takes rows
// [B·i/chunks, B·(i+1)/chunks), and the workspace of the largest chunk is `workspace` bytes.
// chunks == 0: not even chunks of kMinBackwardChunkRows rows fit the bound (`workspace` is then
// what such a chunk needs).
struct Chunking {
  int64_t chunks = 1;
  size_t workspace = 0;
  bool overflow = false;  // a workspace size does not fit in size_t
};

// For a problem that passed check_dims.
Chunking backward_chunking(const Problem& p, const BackwardOptions& o, const DeviceTraits& dev);

// One launch of a backward GEMM.
struct GemmPlan {
  const Kernel* kernel = nullptr;
  TileConfig tile;
  BwdParams params;
  size_t clear_bytes = 0;  // split-K: the sums and counters to zero first, from params.partial
};

struct BackwardPlan {
  std::optional<ForwardPlan> recompute;
  // The gate backward writes dH = [dG | dU] to dh_store from H (h) and dZ first, for sm90 or gemv
  // GEMMs (which have no gate prologue) or DhStorage::tensors, when no GEMM would write it. dh_store
  // is the workspace's region or BackwardTensors::dh, which may be h itself.
  bool gate_pass = false;
  const void* h = nullptr;
  void* dh_store = nullptr;
  std::optional<GemmPlan> dx, dw;
  // dbias as a column sum of dH (dbias_source) after an sm90 or gemv dW GEMM, which leave it out.
  const void* dbias_source = nullptr;
};

// The backward of a validated call with B > 0 on dev.
Status plan_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o, void* workspace,
                     const DeviceTraits& dev, BackwardPlan* out);

}  // namespace swiglu::detail
