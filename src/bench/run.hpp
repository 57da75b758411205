// The sweep runner behind `swiglubench check` and `swiglubench forward`: for every case, allocate and
// fill seeded inputs, compute the reference, run each variant on poisoned outputs and check it,
// then (forward) time the variants that passed, interleaved, and write one row per variant.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/config.hpp"
#include "bench/harness.hpp"
#include "bench/json.hpp"

namespace swiglu::bench {

// Exit codes of swiglubench (1 is kept for the regression gate).
inline constexpr int kExitOk = 0;
inline constexpr int kExitParity = 2;
inline constexpr int kExitError = 3;  // usage, config or device error
inline constexpr int kExitInterrupted = 130;

enum class ReferenceMode { automatic, cpu, gpu };

struct RunOptions {
  std::string op = "forward";  // "check": parity only; "forward": parity, then timing
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
};

// FLOPs and minimum bytes of one fused forward; every TFLOP/s and GB/s figure comes from here.
//   flops = 2·B·I·2D             (two projections; the gate's few ops per output are not counted)
//   bytes = es·(B·I + 2D·I + B·D + 2D·bias)   (each input read once, Z written once)
double forward_flops(const Problem& p);
double forward_min_bytes(const Problem& p);

// Runs every case; returns the process exit code. Never throws for a per-case failure: such a
// case becomes ERROR or SKIP rows and the sweep goes on. `stop` set (SIGINT) ends the sweep after
// the current step, keeping every finished row.
int run_sweep(const std::vector<Case>& cases, const RunOptions& options, const Json& resolved_config,
              const std::atomic<bool>& stop);

// Prints device and library facts for `swiglubench info`; returns the exit code.
int print_info(int device);

}  // namespace swiglu::bench
