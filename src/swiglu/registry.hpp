// Internal: the table of compiled forward kernel instances.
//
// Each instance file (fwd_simt_*.cu, fwd_sm80_*.cu) appends its instances through a register_*
// function. The public API (api.cpp) validates the problem, asks heuristics.cpp for a tile, finds
// the matching entry here and calls its launcher.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// Plain-old-data parameters passed by value to every forward kernel.
struct FwdParams {
  const void* x = nullptr;     // B×I, row stride ldx
  const void* w = nullptr;     // linear: 2D×I row-major; packed: I×2D row-major
  const void* bias = nullptr;  // 2D elements [ba | bb], or null
  void* z = nullptr;           // B×D row-major
  int64_t B = 0, I = 0, D = 0;
  int64_t ldx = 0;             // elements
  int has_bias = 0;
  // 1 when x and w are 16-byte aligned and every row the loads walk (X: I and ldx; linear W: I;
  // packed W: D) is a whole number of 16-byte vectors, so 16-byte loads and cp.async never
  // straddle a row or a matrix edge.
  int vec_load = 0;
  // 1 when z is 16-byte aligned and D is a whole number of 16-byte vectors, so a thread's pair or
  // quad of adjacent Z columns is all in range or all out, and aligned.
  int vec_store = 0;
};

using FwdLaunch = cudaError_t (*)(const FwdParams&, cudaStream_t);

struct FwdKernel {
  TileConfig tile;
  DType dtype;
  Layout layout;
  Math math;             // exact for fp16/bf16 instances
  int min_cc;            // lowest compute capability (major*10+minor) the instance runs on
  FwdLaunch launch;
};

void register_fwd_simt_f32(std::vector<FwdKernel>& out);
void register_fwd_simt_f16(std::vector<FwdKernel>& out);
void register_fwd_simt_bf16(std::vector<FwdKernel>& out);
void register_fwd_sm80_f16(std::vector<FwdKernel>& out);
void register_fwd_sm80_bf16(std::vector<FwdKernel>& out);
void register_fwd_sm80_tf32(std::vector<FwdKernel>& out);

// Every instance, built once on first use.
const std::vector<FwdKernel>& fwd_kernels();

}  // namespace swiglu::detail
