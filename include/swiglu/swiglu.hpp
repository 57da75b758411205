// swiglu: fused SwiGLU kernels.
//
//   Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb),   SiLU(g) = g · sigmoid(g)
//
// X is B×I (row stride ldx elements), Wa and Wb are D×I (nn.Linear layout), Z is B×D row-major.
// Products accumulate in fp32, the gate is computed in fp32, and Z is written in the input dtype.
//
// This is the library's only public header. Every call takes device pointers and a stream, returns
// a Status and never exits or aborts.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swiglu {

enum class DType { f32, f16, bf16 };

// How Wa and Wb are stored.
//  linear: PyTorch nn.Linear. W12 = [Wa; Wb] is 2D×I row-major (Wa rows 0..D-1, Wb rows D..2D-1).
//  packed: Wf = [Wa | Wb] is I×2D row-major (column n < D is Wa's output n, column D+n is Wb's).
enum class Layout { linear, packed };

// Arithmetic for fp32 inputs. exact: fp32 FMA. tf32: operands rounded to tf32 and multiplied on the
// tensor cores (sm_80+), fp32 accumulation. Ignored for fp16/bf16.
enum class Math { exact, tf32 };

struct Problem {
  int64_t batch = 0;         // B: rows of X and Z. B == 0 is a valid no-op.
  int64_t in_features = 0;   // I
  int64_t hidden = 0;        // D: columns of Z
  DType dtype = DType::bf16;
  bool bias = false;         // when true, bias points to 2D elements [ba | bb] in dtype
  Layout layout = Layout::linear;
  int64_t ldx = 0;           // row stride of X in elements; 0 means in_features
  Math math = Math::exact;

  int64_t x_stride() const { return ldx == 0 ? in_features : ldx; }
};

enum class StatusCode { ok, invalid_argument, unsupported, cuda_error, cublas_error, internal };

struct Status {
  StatusCode code = StatusCode::ok;
  std::string message;

  bool ok() const { return code == StatusCode::ok; }
  static Status success() { return {}; }
};

// Kernel families. simt runs on every supported GPU (sm_70+) and in every dtype; mma_sm80 uses
// mma.sync tensor cores, ldmatrix and a cp.async pipeline (sm_80+, fp16/bf16, and fp32 with tf32).
enum class Family { simt, mma_sm80 };

// One compiled tile configuration of the fused forward kernel.
struct TileConfig {
  Family family = Family::simt;
  int block_m = 0;  // rows of Z per thread block
  int block_n = 0;  // columns of Z per block (the block computes block_n gate and block_n up columns)
  int block_k = 0;  // reduction step per pipeline stage
  int stages = 0;   // shared-memory pipeline depth
  int warps = 0;    // warps per block

  // "sm80:128x64x32s3w4" or "simt:64x64x16s2w8"; parse() accepts exactly this form.
  std::string name() const;
  static std::optional<TileConfig> parse(std::string_view text);
  bool operator==(const TileConfig&) const = default;
};

// What the tile heuristic needs to know about the device.
struct DeviceTraits {
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
};

// Reads the traits of a CUDA device.
Status device_traits(int device, DeviceTraits* out);

// All compiled forward tiles that can run `p` on a device with `dev` (correct family, dtype, math).
std::vector<TileConfig> forward_tiles(const Problem& p, const DeviceTraits& dev);

// The heuristic's choice for `p` on `dev`. Fails only when no compiled tile can run the problem.
Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, TileConfig* out);

// Checks a problem and its pointers without launching anything. bias may be null when !p.bias.
Status validate_forward(const Problem& p, const void* x, const void* w, const void* bias,
                        const void* z);

struct ForwardOptions {
  std::optional<TileConfig> tile;  // unset: the heuristic picks
};

// Launches the fused forward on `stream` (one kernel launch). Returns after the launch, not after
// the kernel finishes. `used_tile`, when not null, receives the configuration that ran.
Status forward(const Problem& p, const void* x, const void* w, const void* bias, void* z,
               cudaStream_t stream, const ForwardOptions& options = {},
               TileConfig* used_tile = nullptr);

std::string_view to_string(DType);
std::string_view to_string(Layout);
std::string_view to_string(Math);
std::string_view to_string(Family);
std::optional<DType> parse_dtype(std::string_view);
std::optional<Layout> parse_layout(std::string_view);
std::optional<Math> parse_math(std::string_view);
size_t dtype_size(DType);

}  // namespace swiglu
