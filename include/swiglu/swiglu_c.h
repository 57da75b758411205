/* swiglu's C ABI: the fused SwiGLU forward and backward for callers that cannot compile against the
 * C++ header (Python through ctypes, other frameworks). Built as the shared library libswiglu_c.
 *
 *   Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb)        see include/swiglu/swiglu.hpp for the layouts
 *
 * Plain types only: device pointers as void*, the CUDA stream as void* (a cudaStream_t; NULL is
 * the legacy default stream), enums as int32_t. Every call returns a swiglu_status; on failure the
 * calling thread's swiglu_last_error() names the bad value. Nothing aborts or exits.
 */
#ifndef SWIGLU_C_H
#define SWIGLU_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SWIGLU_C_API __declspec(dllexport)
#else
#define SWIGLU_C_API __attribute__((visibility("default")))
#endif

/* Bumped when a signature or struct below changes. */
#define SWIGLU_C_ABI_VERSION 4

typedef enum {
  SWIGLU_OK = 0,
  SWIGLU_INVALID_ARGUMENT = 1,
  SWIGLU_UNSUPPORTED = 2,
  SWIGLU_CUDA_ERROR = 3,
  SWIGLU_CUBLAS_ERROR = 4,
  SWIGLU_INTERNAL = 5
} swiglu_status;

enum { SWIGLU_DTYPE_F32 = 0, SWIGLU_DTYPE_F16 = 1, SWIGLU_DTYPE_BF16 = 2 };
enum { SWIGLU_LAYOUT_LINEAR = 0, SWIGLU_LAYOUT_PACKED = 1 };
/* SWIGLU_MATH_TF32X3: 3xTF32, fp32-level accuracy on the tensor cores (Math::tf32x3). Values are
 * only ever appended. */
enum { SWIGLU_MATH_EXACT = 0, SWIGLU_MATH_TF32 = 1, SWIGLU_MATH_TF32X3 = 2 };
enum { SWIGLU_POLICY_SAVE = 0, SWIGLU_POLICY_RECOMPUTE = 1 };
/* Where the backward stores dH = [dG | dU] (DhStorage in swiglu.hpp): in the workspace, or in the
 * caller's `dh` (since ABI version 2). */
enum { SWIGLU_DH_WORKSPACE = 0, SWIGLU_DH_TENSORS = 1 };

/* One layer's shape and types. All fields are read; set ldx to 0 for a contiguous X. */
typedef struct {
  int64_t batch;       /* B, rows of X and Z; 0 is a valid no-op */
  int64_t in_features; /* I */
  int64_t hidden;      /* D */
  int64_t ldx;         /* row stride of X in elements; 0 means in_features */
  int32_t dtype;       /* SWIGLU_DTYPE_* */
  int32_t layout;      /* SWIGLU_LAYOUT_*: linear is nn.Linear's [Wa; Wb], 2D×I */
  int32_t bias;        /* nonzero: bias points to 2D elements [ba | bb] */
  int32_t math;        /* SWIGLU_MATH_*: fp32 arithmetic (ignored for fp16/bf16) */
} swiglu_problem;

/* SWIGLU_C_ABI_VERSION of the loaded library. */
SWIGLU_C_API int32_t swiglu_abi_version(void);

/* The message of the calling thread's last failed call ("" if none). Valid until that thread's next
 * call into this library. */
SWIGLU_C_API const char* swiglu_last_error(void);

/* Z (B×D) from X and W; when `saved` is not NULL the same launch also writes H = [G | U] (B×2D) for
 * the save policy's backward. */
SWIGLU_C_API swiglu_status swiglu_forward(const swiglu_problem* p, const void* x, const void* w, const void* bias,
                             void* z, void* saved, void* stream);

/* Bytes of device workspace swiglu_backward needs on the current device. 0 with swiglu_last_error()
 * set on a bad argument or a size that does not fit in size_t; 0 with it empty when none is needed. */
SWIGLU_C_API size_t swiglu_backward_workspace_bytes(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                       int32_t grad_dw);

/* dX (B×I, row stride I) when grad_dx, dW (W's layout) and dbias (2D, when p->bias) when grad_dw,
 * from dZ (B×D). `saved` is the forward's H for SWIGLU_POLICY_SAVE, else ignored. */
SWIGLU_C_API swiglu_status swiglu_backward(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                              int32_t grad_dw, const void* x, const void* w, const void* bias,
                              const void* dz, const void* saved, void* dx, void* dw, void* dbias,
                              void* workspace, size_t workspace_bytes, void* stream);

/* Since ABI version 2: swiglu_backward_workspace_bytes for a dH storage (SWIGLU_DH_*); with
 * SWIGLU_DH_TENSORS the workspace holds no dH. */
SWIGLU_C_API size_t swiglu_backward_workspace_bytes2(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                                     int32_t grad_dw, int32_t dh_storage);
/* Since ABI version 2: swiglu_backward for a dH storage (SWIGLU_DH_*). With SWIGLU_DH_TENSORS, dH
 * (B×2D, the dtype) is written to `dh`, which may be `saved` itself (SWIGLU_POLICY_SAVE): the call
 * then writes dH over H, so that it needs no B×2D buffer beyond H, and H is gone afterwards. With
 * SWIGLU_DH_WORKSPACE `dh` is ignored and this is swiglu_backward. */
SWIGLU_C_API swiglu_status swiglu_backward2(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                            int32_t grad_dw, int32_t dh_storage, const void* x, const void* w,
                                            const void* bias, const void* dz, const void* saved, void* dx,
                                            void* dw, void* dbias, void* dh, void* workspace,
                                            size_t workspace_bytes, void* stream);

/* Since ABI version 4: swiglu_backward_workspace_bytes2 and swiglu_backward2 under a workspace bound
 * (BackwardOptions::max_workspace_bytes in swiglu.hpp; 0: none). Where the whole batch needs more
 * than max_workspace_bytes, the backward runs in row chunks (as few as fit, each of at least 64
 * rows), dW and dbias added onto the earlier chunks' sums; a bound below what a chunk of 64 rows
 * needs is refused (the size query returns 0 with the error set). The workspace passed must hold
 * the size the query returned for the same arguments. */
SWIGLU_C_API size_t swiglu_backward_workspace_bytes3(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                                     int32_t grad_dw, int32_t dh_storage,
                                                     size_t max_workspace_bytes);
SWIGLU_C_API swiglu_status swiglu_backward3(const swiglu_problem* p, int32_t policy, int32_t grad_dx,
                                            int32_t grad_dw, int32_t dh_storage, size_t max_workspace_bytes,
                                            const void* x, const void* w, const void* bias, const void* dz,
                                            const void* saved, void* dx, void* dw, void* dbias, void* dh,
                                            void* workspace, size_t workspace_bytes, void* stream);

/* Since ABI version 3: the FP8 forward (forward_fp8 and Fp8Scaling in swiglu.hpp: the scales'
 * layouts, the requirements). X (B×I, row stride ldx bytes) and W12 (linear layout, 2D×I) are e4m3
 * bytes with fp32 scales. */
enum { SWIGLU_FP8_SCALE_TENSOR = 0, SWIGLU_FP8_SCALE_BLOCKS = 1, SWIGLU_FP8_SCALE_CHANNEL = 2 };
enum { SWIGLU_FP8_BLOCKS_1X128 = 0, SWIGLU_FP8_BLOCKS_128X128 = 1 };

typedef struct {
  int64_t batch;       /* B; 0 is a valid no-op */
  int64_t in_features; /* I, a multiple of 16 */
  int64_t hidden;      /* D */
  int64_t ldx;         /* X's row stride in bytes, a multiple of 16; 0 means in_features */
  int32_t x_scaling;   /* SWIGLU_FP8_SCALE_TENSOR or _BLOCKS */
  int32_t w_scaling;   /* SWIGLU_FP8_SCALE_* */
  int32_t out_dtype;   /* SWIGLU_DTYPE_BF16 or _F16: the bias, H, and Z unless z_e4m3 */
  int32_t bias;        /* nonzero: bias points to 2D elements [ba | bb] in out_dtype */
  int32_t z_e4m3;      /* nonzero: Z in e4m3 with 1×128 scales in z_scale (and its amax in z_amax) */
} swiglu_fp8_problem;

/* Z and/or H (`saved`) from e4m3 X and W12. z_scale and z_amax only with z_e4m3 (z_amax may be
 * NULL; else the caller zeroes it and the call raises it to max |Z|). */
SWIGLU_C_API swiglu_status swiglu_forward_fp8(const swiglu_fp8_problem* p, const void* x, const float* x_scale,
                                              const void* w, const float* w_scale, const void* bias, void* z,
                                              float* z_scale, float* z_amax, void* saved, void* stream);

/* Checks the values of the scales swiglu_forward_fp8 would read for `p` (check_fp8_scales): each
 * must be finite and > 0; the error names the first that is not. Either pointer may be NULL (that
 * operand is not checked). Copies the scales to the host and waits for `stream`. */
SWIGLU_C_API swiglu_status swiglu_check_fp8_scales(const swiglu_fp8_problem* p, const float* x_scale,
                                                   const float* w_scale, void* stream);

/* A rows×cols matrix `a` (in_dtype: SWIGLU_DTYPE_*, row stride lda elements) to e4m3 `q` (row
 * stride ldq bytes) with fp32 scales in SWIGLU_FP8_BLOCKS_* blocks, amax/448 each (quantize_e4m3). */
SWIGLU_C_API swiglu_status swiglu_quantize_e4m3(int32_t in_dtype, const void* a, int64_t lda, int64_t rows,
                                                int64_t cols, int32_t blocks, void* q, int64_t ldq, float* scale,
                                                void* stream);

/* quantize_e4m3_transposed: swiglu_quantize_e4m3 that also writes Aᵀ in e4m3 (qt, cols×rows, row
 * stride ldqt bytes) with scales scale_t, blocks along A's rows, for the FP8 backward's operands; q
 * and scale may both be NULL. (Added late within ABI version 3, as swiglu_check_fp8_scales was;
 * every version 4 library exports both.) */
SWIGLU_C_API swiglu_status swiglu_quantize_e4m3_transposed(int32_t in_dtype, const void* a, int64_t lda, int64_t rows,
                                                           int64_t cols, int32_t blocks, void* q, int64_t ldq,
                                                           float* scale, void* qt, int64_t ldqt, float* scale_t,
                                                           void* stream);

/* The FP8 backward (backward_fp8 and Fp8BackwardTensors in swiglu.hpp: the blockwise recipe, the
 * operands' layouts, the requirements), added late within ABI version 3 as above. dz and saved (the
 * forward's H) are in p->out_dtype; wt is W12ᵀ (I×2D e4m3) with wt_scale, xt is Xᵀ (I×B e4m3, row
 * stride ldxt bytes) with xt_scale; dx (B×I), dw (2D×I) and dbias (2D, with p->bias) are written when
 * non-NULL, in their SWIGLU_DTYPE_*; accumulate_dw nonzero adds dW to what dw holds. The workspace
 * size comes from swiglu_backward_fp8_workspace_bytes (0 with the error set for a refused problem;
 * 0 and no error for B = 0). */
SWIGLU_C_API size_t swiglu_backward_fp8_workspace_bytes(const swiglu_fp8_problem* p);
SWIGLU_C_API swiglu_status swiglu_backward_fp8(const swiglu_fp8_problem* p, const void* dz, const void* saved,
                                               const void* wt, const float* wt_scale, const void* xt, int64_t ldxt,
                                               const float* xt_scale, void* dx, int32_t dx_dtype, void* dw,
                                               int32_t dw_dtype, int32_t accumulate_dw, void* dbias,
                                               int32_t dbias_dtype, void* workspace, size_t workspace_bytes,
                                               void* stream);

#ifdef __cplusplus
}
#endif

#endif /* SWIGLU_C_H */
