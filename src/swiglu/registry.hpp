// Internal: the table of compiled kernels, and the one rule of which kernel may run which problem on
// which device (eligibility), used by the tile listings, the heuristic and the launch of a caller's
// tile alike.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::kernels {
struct FwdParams;  // kernels/params.cuh
struct BwdParams;
}  // namespace swiglu::kernels

namespace swiglu::detail {

using kernels::BwdParams;
using kernels::FwdParams;

// What a kernel computes: the fused forward (Z and the saved H, or the backward's recompute), or
// one of the backward's GEMMs.
enum class Gemm { forward, dx, dw };

// The element type and math of an instance file (SWIGLU_INSTANCES in CMakeLists.txt).
enum class Precision { f32, f16, bf16, tf32, tf32x3 };

constexpr DType dtype_of(Precision p) {
  return p == Precision::f16 ? DType::f16 : p == Precision::bf16 ? DType::bf16 : DType::f32;
}
constexpr Math math_of(Precision p) {
  return p == Precision::tf32 ? Math::tf32 : p == Precision::tf32x3 ? Math::tf32x3 : Math::exact;
}

using FwdLaunch = cudaError_t (*)(const FwdParams&, cudaStream_t);
using BwdLaunch = cudaError_t (*)(const BwdParams&, cudaStream_t);

// One compiled kernel and its launcher.
struct Kernel {
  TileConfig tile;
  Gemm gemm = Gemm::forward;
  DType dtype = DType::f32;
  Layout layout = Layout::linear;  // the weight layout it reads; a dW kernel serves both
  Math math = Math::exact;         // the forward's fp32 math; exact for every other kernel
  int min_cc = 0, max_cc = 0;      // compute capabilities (major·10 + minor) its code runs on
  FwdLaunch forward = nullptr;     // gemm == Gemm::forward
  BwdLaunch backward = nullptr;    // gemm == Gemm::dx or Gemm::dw
};

using KernelTable = std::vector<Kernel>;

// Every compiled kernel, in the order of SWIGLU_INSTANCES; built once, on first use.
const KernelTable& kernels();

// Appends every instance of SWIGLU_INSTANCES (defined in the generated instances.cpp).
void register_instances(KernelTable& out);

// The math `gemm` of p runs with: p.math for the fp32 forward, exact for everything else (the
// backward GEMMs of fp32 run exact fp32 whatever p.math says).
Math effective_math(const Problem& p, Gemm gemm);

// ---- eligibility -----------------------------------------------------------------------------------

// Why no kernel of `family` can run `gemm` of p on dev, whatever its tile; empty when one may. Only
// sm90 has such a rule: sm_90a code in the build, compute capability 9.0, and a problem TMA can
// address with 32-bit coordinates (the pointers are checked at launch).
std::string family_obstacle(Family family, const Problem& p, Gemm gemm, const DeviceTraits& dev);

// Whether k may run `gemm` of p on dev: its dtype, layout and math, the device's compute
// capability, and its family's rule.
bool eligible(const Kernel& k, const Problem& p, Gemm gemm, const DeviceTraits& dev);

// The tiles of the kernels eligible for `gemm` of p on dev, each once, in table order.
std::vector<TileConfig> eligible_tiles(const Problem& p, Gemm gemm, const DeviceTraits& dev);

// Whether any sm90 GEMM may run p's backward on dev.
bool sm90_backward_possible(const Problem& p, const DeviceTraits& dev);

// Whether a backward GEMM of `family` reads dH as stored (sm90, gemv, and the SIMT GEMMs of fp32):
// it has no gate prologue, so the gate backward writes dH first, and it leaves dbias to a column
// sum of dH. Why fp32's SIMT GEMMs: a prologue gate is recomputed by every column of blocks (I / BN
// of them); reading dH after a gate pass, with 16-byte loads, made them 2.5-2.9x faster (H100,
// B = 1024, I = D = 4096; docs/kernels-simt.md).
constexpr bool reads_stored_dh(Family family, DType dtype) {
  return family == Family::wgmma_sm90 || family == Family::gemv || (family == Family::simt && dtype == DType::f32);
}

// Whether any GEMM that reads dH as stored may run p's backward on dev; then the workspace holds dH
// for the gate backward to write first.
bool direct_dh_backward_possible(const Problem& p, const DeviceTraits& dev);

// The eligible kernel of `tile` for `gemm` of p on dev, or why there is none (unsupported).
Status find_kernel(const Problem& p, Gemm gemm, const TileConfig& tile, const DeviceTraits& dev,
                   const Kernel** out);

}  // namespace swiglu::detail
