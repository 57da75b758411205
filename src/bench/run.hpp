// The sweep runners behind `swiglubench check`, `forward`, `backward`, `step` and `memory`: for every
// case, allocate and fill seeded inputs, compute the reference, run each variant on poisoned outputs
// and check it, then (forward, backward, step) time the variants that passed, interleaved, or
// (memory) measure what each variant allocates, and write one row per variant.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/case.hpp"
#include "bench/timing.hpp"
#include "common/exit_codes.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

enum class ReferenceMode { automatic, cpu, gpu };

// What a case-running command does. check: parity only; forward: parity, then timing; backward,
// step: the same for the backward and for forward + backward; memory: parity and measured device
// memory, no timing. The gate runs forward.
enum class Op { check, forward, backward, step, memory };
std::string_view to_string(Op op);
// The rows' op: check writes forward rows.
std::string row_op(Op op);

// What the gradient commands (backward, step, memory) run. The `fused` variant becomes one variant
// per policy: fused-save and fused-recompute, the recompute one once per gate placement
// (fused-recompute for the epilogue, fused-recompute-prologue for the prologue) and the save one
// once per dH storage (fused-save: the workspace; fused-save-inplace: dH over the saved H, as the
// PyTorch package runs it).
struct GradientOptions {
  Grads grads;  // --grads: dx, dw or both
  std::vector<Policy> policies = {Policy::save, Policy::recompute};
  std::vector<GatePlacement> placements = {GatePlacement::automatic};
  std::vector<DhStorage> save_dh = {DhStorage::workspace};  // --dh
  // The fused dX and dW GEMMs' tiles.
  std::vector<TileChoice> dx_tiles = {TileChoice()}, dw_tiles = {TileChoice()};
  // --max-workspace-mib: the fused backward's bounds (0: none), one set of fused rows each.
  std::vector<size_t> max_workspace_bytes = {0};
};

struct RunOptions {
  Op op = Op::forward;
  TimingOptions timing;
  ReferenceMode reference = ReferenceMode::automatic;
  // Cases with at most this many multiply-adds (B·I·2D) use the fp64 CPU reference in auto mode.
  int64_t cpu_reference_max_macs = int64_t{1} << 31;
  uint64_t seed = 1234;
  int device = 0;
  std::string out_dir;  // empty: results/<gpu slug>
  bool write_csv = true, write_json = true, write_md = true;
  bool profile = false;  // run each variant once inside cudaProfilerStart/Stop instead of timing
  std::string name = "inline";  // file stem: <op>_<name>.{csv,json,md}
  std::vector<std::string> argv;
  GradientOptions gradient;  // backward, step, memory
};

// FLOPs and minimum bytes of one fused forward; every TFLOP/s and GB/s figure comes from here.
//   flops = 2·B·I·2D             (two projections; the gate's few ops per output are not counted)
//   bytes = es·(B·I + 2D·I + B·D + 2D·bias)   (each input read once, Z written once)
//   fp8:  B·I + 2D·I + B·D (e4m3) + 4·(B·⌈I/128⌉ + 2⌈D/128⌉·⌈I/128⌉ + B·⌈D/128⌉) (the fp32 scales
//         of X, W12 and Z) + 2·2D·bias (bf16)
double forward_flops(const Problem& p);
double forward_min_bytes(const Problem& p);

// FLOPs of one backward: the useful work, the same for every variant of a row so that TFLOP/s
// compare (a policy's recompute of G and U is the price of the policy, not work done):
//   flops = (dx ? 2·B·2D·I : 0) + (dw ? 2·B·I·2D : 0)    (dX = dH·W12, dW12 = dHᵀ·X)
// One step (forward + backward) is forward_flops + backward_flops.
double backward_flops(const Problem& p, Grads grads);

// Runs backward, step or memory (options.op) over the cases, with run_sweep's rows, outputs, exit
// codes and SIGINT handling.
int run_gradient_sweep(const std::vector<Case>& cases, const RunOptions& options,
                       const common::Json& resolved_config, const std::atomic<bool>& stop);

// Runs every case; returns the process exit code. Never throws for a per-case failure: such a
// case becomes ERROR or SKIP rows and the sweep goes on. `stop` set (SIGINT) ends the sweep after
// the current step, keeping every finished row.
int run_sweep(const std::vector<Case>& cases, const RunOptions& options,
              const common::Json& resolved_config, const std::atomic<bool>& stop);

// Prints device and library facts for `swiglubench info`; returns the exit code.
int print_info(int device);

}  // namespace swiglu::bench
