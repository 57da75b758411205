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

// e4m3 (OCP FP8 E4M3, spelled fp8) is the FP8 forward's operand type: it takes forward_fp8 and an
// Fp8Problem, with fp32 scales; every Problem-based entry point refuses it.
enum class DType { f32, f16, bf16, e4m3 };

// How Wa and Wb are stored.
//  linear: PyTorch nn.Linear. W12 = [Wa; Wb] is 2D×I row-major (Wa rows 0..D-1, Wb rows D..2D-1).
//  packed: Wf = [Wa | Wb] is I×2D row-major (column n < D is Wa's output n, column D+n is Wb's).
enum class Layout { linear, packed };

// Arithmetic for fp32 inputs. exact: fp32 FMA. tf32: operands rounded to tf32 and multiplied on the
// tensor cores (sm_80+), fp32 accumulation. tf32x3 ("3xtf32"): each operand split into two tf32
// parts, big + small, and each product taken as big·big + big·small + small·big on the tensor
// cores (sm_80+), fp32 accumulation: three times tf32's tensor-core work for about fp32's accuracy.
// With tf32x3 an infinite element of X (or W) makes its row (column) of Z NaN, where exact gives
// the IEEE infinities; NaN propagates as in exact. Ignored for fp16/bf16.
enum class Math { exact, tf32, tf32x3 };

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
// mma.sync tensor cores, ldmatrix and a cp.async pipeline (sm_80+, fp16/bf16, and fp32 with tf32
// or tf32x3);
// wgmma_sm90 uses Hopper's wgmma fed by TMA with warp specialisation (compute capability 9.0 in
// builds that include sm_90a; fp16/bf16, either layout; I and the X row stride multiples of 8, D a
// multiple of 8 with the packed layout and of 4 for the backward; X and W 16-byte aligned, else
// forward() and backward() take an sm80 tile instead); gemv is for a few rows of X: the forward on
// CUDA cores (sm_70+, every dtype, the linear layout), which streams the weights at memory speed,
// and the backward's dX (the linear layout) and dW (either) on tensor cores (sm_80+, fp16/bf16).
enum class Family { simt, mma_sm80, wgmma_sm90, gemv };

// One compiled tile configuration of the fused forward kernel.
struct TileConfig {
  Family family = Family::simt;
  int block_m = 0;  // rows of Z per thread block
  int block_n = 0;  // columns of Z per block (the block computes block_n gate and block_n up columns)
  int block_k = 0;  // reduction step per pipeline stage
  int stages = 0;   // shared-memory pipeline depth
  int warps = 0;    // warps per block
  int cluster = 1;  // blocks per thread-block cluster (sm90: 2 shares each W tile by TMA multicast)

  // "sm80:128x64x32s3w4", "simt:64x64x16s2w8", or with a cluster "sm90:128x128x64s4w12c2";
  // parse() accepts exactly this form (the "c" part only for a cluster of more than one block).
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
  // When set, the same launch also writes the pre-activations H = [G | U] (B×2D row-major, row b
  // is G[b][0..D) then U[b][0..D), bias included, rounded to the dtype) for backward(..) with
  // Policy::save. Must not overlap any other argument.
  void* saved = nullptr;
};

// Launches the fused forward on `stream` (one kernel launch). Returns after the launch, not after
// the kernel finishes. `used_tile`, when not null, receives the configuration that ran.
Status forward(const Problem& p, const void* x, const void* w, const void* bias, void* z,
               cudaStream_t stream, const ForwardOptions& options = {},
               TileConfig* used_tile = nullptr);

// ---- backward ----------------------------------------------------------------------------------
//
// Given dZ (B×D), computes, for the same problem:
//   dG = dZ ⊙ U ⊙ SiLU′(G),  dU = dZ ⊙ SiLU(G),  dH = [dG | dU]   (B×2D, never a separate pass)
//   dX  = dH · W12             (B×I, row-major, row stride I)   one GEMM with K = 2D
//   dW12 = dHᵀ · X             (same layout and shape as w)      one GEMM with K = B
//   dbias = Σ_b dH[b][·]       (2D elements [dba | dbb])         fused into the dW GEMM
// SiLU′(g) = s·(1 + g·(1 − s)), s = sigmoid(g). Products accumulate in fp32; outputs are written in
// the problem's dtype. fp32 problems run the exact fp32 GEMMs (CUDA cores) whatever p.math says;
// Math::tf32 and Math::tf32x3 apply to the recompute GEMM only.

// Where G and U come from.
//   save:      forward(.., ForwardOptions{.saved = H}) kept H = [G | U]; backward reads it.
//   recompute: backward recomputes G and U from X and W in a fused kernel (needs no saved H, which
//              is 2·B·D elements less activation memory per layer, at the cost of the forward's
//              GEMM again).
enum class Policy { save, recompute };

// Where the gate backward runs (recompute only; save uses the prologue, or with DhStorage::tensors
// a gate-backward pass).
//   epilogue: the recompute GEMM's epilogue turns G, U and dZ into dH (workspace), and the dX and
//             dW GEMMs read dH directly. The gate runs once per element.
//   prologue: the recompute GEMM writes H (workspace); the dX GEMM computes dH from dZ and H while
//             loading its operand tiles (once per column of its blocks), and its first column of
//             blocks stores dH for the dW GEMM (which computes it itself when dX is not wanted).
//   automatic: epilogue for recompute.
// The sm90 (Hopper) dX and dW GEMMs take no prologue: when they run, the gate backward is a separate
// pass that writes dH to the workspace first (save, or recompute with the prologue placement).
enum class GatePlacement { automatic, epilogue, prologue };

// Where the backward stores dH = [dG | dU] (B×2D elements in the dtype) for the GEMMs that read it.
//   workspace: in the workspace, when a GEMM needs it stored (see backward_workspace_bytes).
//   tensors:   always stored, in BackwardTensors::dh, the caller's memory; the workspace then holds
//              no dH. dh may be the saved H itself (Policy::save): the gate backward reads each
//              element of H before writing dH over it, so the backward needs no B×2D buffer beyond
//              what the forward kept (as an in-place gate backward keeps it), and H is gone after
//              the call: a second backward needs H again. dH is then computed once, by the
//              gate-backward pass or the recompute's epilogue, never in a GEMM's prologue, and
//              GatePlacement::prologue is refused.
enum class DhStorage { workspace, tensors };

// Which gradients to compute. dbias is part of the weight gradient: it is written when dw is
// requested and the problem has bias.
struct Grads {
  bool dx = true;
  bool dw = true;
};

struct BackwardTensors {
  const void* x = nullptr;      // B×I, row stride p.ldx
  const void* w = nullptr;      // in p.layout
  const void* bias = nullptr;   // 2D elements; read by recompute when p.bias
  const void* dz = nullptr;     // B×D row-major
  const void* saved = nullptr;  // B×2D H = [G | U] from forward (Policy::save); else ignored
  void* dx = nullptr;           // B×I row-major (row stride I), when grads.dx
  void* dw = nullptr;           // same layout and shape as w, when grads.dw
  void* dbias = nullptr;        // 2D elements, when grads.dw and p.bias
  void* dh = nullptr;           // B×2D dH, with DhStorage::tensors: another buffer, or saved itself
};

struct BackwardOptions {
  Policy policy = Policy::save;
  Grads grads;
  GatePlacement placement = GatePlacement::automatic;
  DhStorage dh_storage = DhStorage::workspace;
  std::optional<TileConfig> recompute_tile;  // forward tile of the recompute GEMM; unset: heuristic
  std::optional<TileConfig> dx_tile;         // unset: heuristic
  std::optional<TileConfig> dw_tile;         // unset: heuristic
  // The most workspace the backward may take, in bytes; 0: no bound. Where the whole batch needs
  // more, the backward runs in row chunks (as few as fit, of equal size to a row, at least
  // kMinBackwardChunkRows each): each chunk's recompute or gate backward, the dX of its rows, and
  // its part of dW and dbias added onto what the earlier chunks wrote (in the problem's dtype: one
  // rounding more a chunk). A bound below the smallest chunk's workspace is refused.
  size_t max_workspace_bytes = 0;
};

// The fewest rows a chunk of a bounded backward takes (BackwardOptions::max_workspace_bytes).
inline constexpr int64_t kMinBackwardChunkRows = 64;

// The configurations one backward call ran (a kernel that did not run has block_m == 0).
struct BackwardTiles {
  TileConfig recompute, dx, dw;
  // Split-K slices of the dX GEMM (small batches). With more than one, the slices add their fp32
  // partial sums with atomics, so dX is not bitwise reproducible from run to run (it stays within
  // the same tolerance); everything else is.
  int dx_splits = 1;
  // Row chunks the backward ran in (BackwardOptions::max_workspace_bytes); the tiles above are
  // those of the first chunk.
  int64_t chunks = 1;
};

// Device workspace backward() needs for `p` and `options` on the current device (for one row
// chunk of it under options.max_workspace_bytes, when the whole batch needs more): B×2D elements
// for dH (recompute, both gradients, or any problem the device's sm90 GEMMs could take; never with
// DhStorage::tensors), B×2D more for H (recompute with the prologue placement),
// plus B×I fp32 split-K sums of dX when B×I gives the dX GEMM too few blocks for the device (small
// batches). Its contents need no initialisation. Returns 0 for an invalid problem or options; the
// overload below says why.
size_t backward_workspace_bytes(const Problem& p, const BackwardOptions& options);
// The same into *bytes, failing (invalid_argument, *bytes = 0) on an invalid problem or options,
// when the size does not fit in size_t, or when max_workspace_bytes is below what a chunk of
// kMinBackwardChunkRows rows needs.
Status backward_workspace_bytes(const Problem& p, const BackwardOptions& options, size_t* bytes);

// The compiled tiles of the dX GEMM (K = 2D) and of the dW GEMM (K = B) for `p` on `dev`.
std::vector<TileConfig> backward_dx_tiles(const Problem& p, const DeviceTraits& dev);
std::vector<TileConfig> backward_dw_tiles(const Problem& p, const DeviceTraits& dev);

// Checks a backward call without launching anything.
Status validate_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& options,
                         const void* workspace, size_t workspace_bytes);

// Launches the backward on `stream`: with recompute, one fused GEMM for G and U, then the dX GEMM
// and the dW GEMM as requested (at most 3 kernels, plus a memset of the split-K sums when dX is
// split; with sm90 or gemv GEMMs or DhStorage::tensors, plus a gate-backward pass unless the
// recompute epilogue wrote dH; with sm90 or gemv dW GEMMs, a dbias column sum), once a row chunk
// when max_workspace_bytes splits the batch (a chunked dW takes the sm90, sm80 or SIMT tiles, which
// add onto C: a forced gemv dW tile is refused). Returns after the launches. B = 0 launches no GEMM
// and sets dw and dbias (when requested) to zero.
Status backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& options,
                void* workspace, size_t workspace_bytes, cudaStream_t stream,
                BackwardTiles* used_tiles = nullptr);

// ---- FP8 forward (e4m3 operands, sm_90a) --------------------------------------------------------
//
// The forward on dequantised operands: X = Xq·sx and W12 = Wq·sw, where Xq (B×I, row stride ldx
// bytes) and Wq (W12 = [Wa; Wb], 2D×I row-major: the linear layout) are e4m3 (OCP FP8 E4M3:
// __nv_fp8_e4m3, torch.float8_e4m3fn) and the scales are fp32, laid out as Fp8Scaling says:
//
//   Z = silu(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)
//
// Products accumulate in fp32 on the FP8 tensor cores, promoted to fp32 registers every 128 of K.
// Z is written in the output dtype (bf16 or fp16), or in e4m3 with 1×128 scales along D, ready
// for an FP8 down projection. Needs compute capability 9.0 and a build with sm_90a code.

// How an operand's fp32 scales are laid out (a dequantised element is its e4m3 value × its scale).
// k_blocks = ceil(I / 128), d_blocks = ceil(D / 128).
enum class Fp8Scaling {
  tensor,   // one scale for the whole operand (the delayed-scaling recipes)
  blocks,   // X: 1×128 blocks, B × k_blocks scales, row-major (row b's scale of columns kb·128 ..
            // kb·128 + 127 at b·k_blocks + kb); W12: 128×128 blocks, 2 × d_blocks × k_blocks: Wa's
            // (row block, K block) row-major, then Wb's
  channel,  // W12 only: one scale a row, 2D of them: Wa's D, then Wb's D
};

struct Fp8Problem {
  int64_t batch = 0;        // B. B == 0 is a valid no-op.
  int64_t in_features = 0;  // I: a multiple of 16 (the TMA loads' 16-byte rows)
  int64_t hidden = 0;       // D
  int64_t ldx = 0;          // X's row stride in elements (bytes); 0 means I; a multiple of 16
  Fp8Scaling x_scaling = Fp8Scaling::blocks;  // tensor or blocks
  Fp8Scaling w_scaling = Fp8Scaling::blocks;  // tensor, blocks or channel
  DType out = DType::bf16;  // bf16 or fp16: the bias, H, and Z unless z_e4m3
  bool bias = false;        // when true, Fp8Tensors::bias holds 2D elements [ba | bb] in `out`
  bool z_e4m3 = false;      // Z in e4m3 with 1×128 scales along D (Fp8Tensors::z_scale)

  int64_t x_stride() const { return ldx == 0 ? in_features : ldx; }
};

struct Fp8Tensors {
  const void* x = nullptr;         // e4m3, B×I, row stride x_stride(); 16-byte aligned
  const float* x_scale = nullptr;  // X's scales (Fp8Problem::x_scaling)
  const void* w = nullptr;         // e4m3, W12, 2D×I row-major; 16-byte aligned
  const float* w_scale = nullptr;  // W12's scales (Fp8Problem::w_scaling)
  const void* bias = nullptr;      // when Fp8Problem::bias
  // Z, B×D row-major: `out` elements, or e4m3 bytes when z_e4m3. May be null when saved is set.
  void* z = nullptr;
  // z_e4m3 with z set: Z's scales, B × d_blocks fp32, row-major: a row's 128 columns share
  // amax/448 (1 when they are all zero), and Z = e4m3 × scale.
  float* z_scale = nullptr;
  // z_e4m3, optional: raised (atomically) to the largest |Z| this call computes, before Z is
  // quantised: the caller sets it (to 0) first. For delayed scaling.
  float* z_amax = nullptr;
  // Optional: H = [G | U] (B×2D in `out`, bias included) for the backward.
  void* saved = nullptr;
};

// Checks the arguments as forward_fp8 does, launching nothing (no device needed).
Status validate_forward_fp8(const Fp8Problem& p, const Fp8Tensors& t);

// Launches the FP8 forward on `stream` (one kernel launch). No output may overlap an input or
// another output.
Status forward_fp8(const Fp8Problem& p, const Fp8Tensors& t, cudaStream_t stream);

// The kernel forward_fp8 runs for `p`, for reports: "sm90a-fp8" (wgmma tiles of 128 rows) or, for a
// few rows, "sm90a-fp8-decode" (mma.sync, a warp per 8 Z columns).
std::string_view forward_fp8_kernel(const Fp8Problem& p);

// Checks the values of the scales forward_fp8 would read for `p` from t.x_scale and t.w_scale:
// each must be finite and > 0. A NaN, an infinity, a zero or a negative scale is no recipe's, and
// the kernel cannot tell what it makes of an operand from data. The error names the operand, the
// index and the block. Copies the scales to the host on `stream` and waits for it, so it belongs
// where scales are made or loaded (a checkpoint, a quantiser of the caller's own), not in a timed
// loop. The scales quantize_e4m3 writes always pass. Either pointer may be null, to check the other
// operand's only (weights quantised once, say); the other tensors are not read.
Status check_fp8_scales(const Fp8Problem& p, const Fp8Tensors& t, cudaStream_t stream);

// The quantiser that makes those operands: a rows×cols matrix `a` (fp32, fp16 or bf16, row
// stride lda elements) to e4m3 `q` (row stride ldq bytes) with one fp32 scale a block, amax/448
// (1 for an all-zero block), written to `scale` row-major: rows × ceil(cols/128) for row_1x128
// (X, and Z's layout), ceil(rows/128) × ceil(cols/128) for tile_128x128 (for W12: quantise it as
// one 2D×I matrix when D is a multiple of 128, else Wa and Wb one at a time, so that no block
// straddles them). Each element rounds to the nearest e4m3, saturating at ±448.
enum class Fp8Blocks { row_1x128, tile_128x128 };
Status quantize_e4m3(DType in, const void* a, int64_t lda, int64_t rows, int64_t cols, Fp8Blocks blocks,
                     void* q, int64_t ldq, float* scale, cudaStream_t stream);

// quantize_e4m3 that also writes Aᵀ in e4m3 in one pass over `a`: qt (cols×rows, row stride ldqt
// bytes) with scales scale_t, for an FP8 GEMM that reads the matrix K-major the other way (the
// backward's dW = dHᵀ·X). Its blocks run along A's rows:
//   row_1x128:    qt is quantize_e4m3(Aᵀ, row_1x128): one scale a column of A for each 128 of its
//                 rows, scale_t cols × ceil(rows/128);
//   tile_128x128: the same blocks as q, so qt is q transposed and scale_t is ceil(cols/128) ×
//                 ceil(rows/128), scale transposed.
// q and scale are written as quantize_e4m3 writes them, or neither when both are null.
Status quantize_e4m3_transposed(DType in, const void* a, int64_t lda, int64_t rows, int64_t cols, Fp8Blocks blocks,
                                void* q, int64_t ldq, float* scale, void* qt, int64_t ldqt, float* scale_t,
                                cudaStream_t stream);

// ---- FP8 backward (the blockwise recipe, save policy, sm_90a) ------------------------------------
//
// The gradients of forward_fp8 that kept H (Fp8Tensors::saved), as Transformer Engine's
// Float8BlockScaling and DeepSeek-V3 compute them: dH = [dG | dU] in fp32 from dZ and H (the gate's
// derivative, as the bf16 backward computes it), quantised to e4m3 with 1×128 scales twice in one
// pass (along D for dX, and transposed, along B, for dW; each element as v·(1/scale), as the
// forward's e4m3 Z), then FP8 GEMMs with fp32 accumulation:
//
//   dX = dH·W12 (K = 2D)      dW12 = dHᵀ·X (K = B)      dbias = Σ_rows dH (fp32, deterministic)
//
// FP8 wgmma reads both operands K-major, so the forward's X and W12 come as the transposed copies
// that quantize_e4m3_transposed writes in the same pass as the forward's:
//   W12ᵀ: quantize_e4m3_transposed(Wa, tile_128x128, ..., qt = wt, ldqt = 2D, scale_t = wt_scale)
//         and the same for Wb with qt = wt + D bytes and scale_t after Wa's
//   Xᵀ:   quantize_e4m3_transposed(X, row_1x128, ..., qt = xt, ldqt = ldxt, scale_t = xt_scale)
// dz and saved are dense, in Fp8Problem::out (bf16 or fp16). Fp8Problem's batch, in_features,
// hidden, out and bias describe the layer; its scalings, ldx and z_e4m3 are the forward's, checked as
// forward_fp8 checks them and not used here. Needs D a multiple of 16 (the dU half of dH and of W12ᵀ
// starts 16-byte aligned) and compute capability 9.0.
struct Fp8BackwardTensors {
  const void* dz = nullptr;     // dZ, B×D, row stride D
  const void* saved = nullptr;  // H = [G | U], B×2D, row stride 2D, as forward_fp8 wrote it
  // W12ᵀ, I×2D e4m3, row stride 2D bytes, 16-byte aligned: Wa's 128×128-block copy transposed in
  // columns [0, D), Wb's in [D, 2D); wt_scale: Wa's scale_t, ceil(I/128) × ceil(D/128) row-major,
  // then Wb's.
  const void* wt = nullptr;
  const float* wt_scale = nullptr;
  // Xᵀ, I×B e4m3, row stride ldxt bytes (>= B, a multiple of 16), 16-byte aligned, with 1×128
  // scales along B: xt_scale, I × ceil(B/128) row-major.
  const void* xt = nullptr;
  int64_t ldxt = 0;
  const float* xt_scale = nullptr;
  // Outputs, each written only when set (at least one): dX (B×I), dW12 (2D×I, the linear layout)
  // and dbias (2D, Fp8Problem::bias only), in fp32, bf16 or fp16 each. accumulate_dw adds dW12 to
  // what dw holds (fp32 master gradients, say) instead of overwriting it.
  void* dx = nullptr;
  DType dx_dtype = DType::bf16;
  void* dw = nullptr;
  DType dw_dtype = DType::f32;
  bool accumulate_dw = false;
  void* dbias = nullptr;
  DType dbias_dtype = DType::f32;
};

// The workspace backward_fp8 needs for `p` (dH and dHᵀ in e4m3, their scales, dbias's partial sums):
// about 4·B·D bytes, 256-byte aligned (as cudaMalloc returns). 0 for B = 0, and for a problem
// validate_backward_fp8 refuses; the overload below says why.
size_t backward_fp8_workspace_bytes(const Fp8Problem& p);
// The same into *bytes, failing (invalid_argument, *bytes = 0) on a problem the FP8 backward refuses.
Status backward_fp8_workspace_bytes(const Fp8Problem& p, size_t* bytes);

// Checks the arguments as backward_fp8 does, launching nothing (no device needed).
Status validate_backward_fp8(const Fp8Problem& p, const Fp8BackwardTensors& t, const void* workspace,
                             size_t workspace_bytes);

// Launches the FP8 backward on `stream` (four launches: the gate step, the dX and dW GEMMs, dbias's
// column sum; the ones whose output is not asked for are left out). B = 0 launches nothing but sets
// dw (unless accumulate_dw) and dbias to zero. No output may overlap an input, another output or the
// workspace.
Status backward_fp8(const Fp8Problem& p, const Fp8BackwardTensors& t, void* workspace, size_t workspace_bytes,
                    cudaStream_t stream);

std::string_view to_string(DType);
std::string_view to_string(Policy);
std::string_view to_string(GatePlacement);
std::string_view to_string(DhStorage);
std::optional<Policy> parse_policy(std::string_view);
std::optional<GatePlacement> parse_gate_placement(std::string_view);
std::optional<DhStorage> parse_dh_storage(std::string_view);
std::string_view to_string(Layout);
std::string_view to_string(Math);
std::string_view to_string(Family);
std::string_view to_string(Fp8Scaling);
std::optional<DType> parse_dtype(std::string_view);
std::optional<Layout> parse_layout(std::string_view);
std::optional<Math> parse_math(std::string_view);
size_t dtype_size(DType);

}  // namespace swiglu
