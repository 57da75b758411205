"""FP8 (e4m3) inference with the fused SwiGLU forward: quantised weights, per-call quantised
activations, Z in bf16/fp16 or in e4m3 with its scales. FusedSwiGLU.to_fp8() is the module's way
in; this is the functional one, for weights quantised once by quantize_weight_e4m3().

    w_q, w_scale = swiglu.quantize_weight_e4m3(w12)                # once: 128×128 blocks
    z = swiglu.fused_swiglu_fp8(x, w_q, w_scale, bias)             # per call: X in 1×128 blocks
    zq = swiglu.fused_swiglu_fp8(x, w_q, w_scale, out_dtype=torch.float8_e4m3fn)   # ScaledFp8

Each block's scale is amax/448 (448: e4m3's largest finite value; 1 for an all-zero block) and an
element is stored as round-to-nearest(v / scale), saturated to ±448; v ≈ e4m3 · scale.

These are inference only: a call that would need a gradient (grad mode on and an input that
requires grad) raises. FP8 training is fused_swiglu_fp8_training(x, w12, bias) (and
FusedSwiGLU.to_fp8_training()): master weights quantised every call, the blockwise recipe's
forward and backward. The kernel needs a GPU of compute capability 9.0 (Hopper) and
libswiglu_c built with sm_90a code; anywhere else these functions raise instead of falling back.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _fp8_ops
from ._fp8_ops import E4M3, E4M3_MAX, n_blocks
from .functional import _compute_capability_major

WEIGHT_SCALINGS = ("blocks", "channel", "tensor")
OUT_DTYPES = (torch.bfloat16, torch.float16) + ((E4M3,) if E4M3 is not None else ())
_INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class ScaledFp8(NamedTuple):
    """Z in e4m3 with its 1×128 block scales, as the FP8 forward writes it for an FP8 down
    projection: Z[..., j] ≈ data[..., j] · scale[..., j // 128].

    data: (..., D) torch.float8_e4m3fn. scale: (..., ceil(D/128)) float32, each amax/448 of its
    128 columns of the fp32 Z (1 for an all-zero block)."""

    data: torch.Tensor
    scale: torch.Tensor

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """data · scale, expanded over each scale's 128 columns, in dtype."""
        d = self.data.shape[-1]
        scale = self.scale.repeat_interleave(_fp8_ops.BLOCK, dim=-1)[..., :d]
        return (self.data.float() * scale).to(dtype)


def unsupported_reason(t: torch.Tensor) -> str | None:
    """Why the FP8 kernels cannot run on t's device with this torch, or None when they can."""
    if E4M3 is None:
        return f"torch {torch.__version__} has no torch.float8_e4m3fn"
    if t.device.type != "cuda":
        return f"tensors on {t.device.type} (the FP8 kernels are CUDA-only)"
    major = _compute_capability_major(t.device.index)
    if major != 9:
        return f"a GPU of compute capability {major}.x (the FP8 kernel is built for 9.0, Hopper)"
    return None


def _require_kernels(t: torch.Tensor, what: str) -> None:
    reason = unsupported_reason(t)
    if reason is not None:
        raise RuntimeError(f"{what}: FP8 cannot run here: {reason}; the bf16 path (FusedSwiGLU, "
                           f"fused_swiglu) runs everywhere")


def check_inference(what: str, *tensors) -> None:
    """RuntimeError when a gradient would be needed: the FP8 inference path has none (FP8 training is
    fused_swiglu_fp8_training)."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise RuntimeError(f"{what} is inference only: run it under torch.no_grad() or "
                           f"torch.inference_mode(), or with inputs and parameters that do not require "
                           f"grad; for FP8 training use fused_swiglu_fp8_training (FusedSwiGLU.to_fp8_training)")


def _check_weight(w12: torch.Tensor, what: str) -> tuple[int, int]:
    if not isinstance(w12, torch.Tensor) or w12.dim() != 2 or w12.shape[0] % 2 != 0 or w12.shape[0] == 0:
        shape = tuple(w12.shape) if isinstance(w12, torch.Tensor) else type(w12).__name__
        raise ValueError(f"{what}: w12 must be [Wa; Wb], 2*hidden rows by in_features columns, got {shape}")
    hidden, in_features = w12.shape[0] // 2, w12.shape[1]
    if in_features % 16 != 0 or in_features == 0:
        raise ValueError(f"{what}: in_features must be a positive multiple of 16 for FP8 (the kernel "
                         f"loads 16-byte rows), got {in_features}")
    return hidden, in_features


def _magnitudes(w: torch.Tensor) -> torch.Tensor:
    """|w| in float32 with NaNs as 0: they do not count towards amax, as in the library's quantiser."""
    mag = w.float().abs()
    return torch.where(torch.isnan(mag), torch.zeros_like(mag), mag)


def _quantize_by_amax(w: torch.Tensor, amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w / s in e4m3 with s = amax/448 (1 where amax is 0), amax broadcasting over w; the library's
    rounding: float32 quotients, round to nearest, saturated to ±448 before the cast (torch's cast
    does not saturate)."""
    # Why a tensor divisor: torch divides a CUDA tensor by a Python number as a product with its
    # reciprocal, which misses the IEEE quotient amax/448 by an ulp for some amax.
    scale = torch.where(amax > 0, amax / torch.full_like(amax, E4M3_MAX), torch.ones_like(amax))
    # Why contiguous: element-wise ops keep a strided w's strides, and the kernel reads dense rows.
    q = (w.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3).contiguous()
    return q, scale


def _concat_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Why through uint8: torch 2.1 has no cat for float8 tensors.
    return torch.cat([a.view(torch.uint8), b.view(torch.uint8)]).view(a.dtype)


def quantize_weight_e4m3(w12: torch.Tensor, scaling: str = "blocks") -> tuple[torch.Tensor, torch.Tensor]:
    """W12 = [Wa; Wb] (2*hidden × in_features, float32/float16/bfloat16) in e4m3, for
    fused_swiglu_fp8: (w_e4m3, w_scale), w_e4m3 contiguous torch.float8_e4m3fn and w_scale float32:

    - "blocks": 128×128 blocks, (2·ceil(D/128), ceil(I/128)) scales, Wa's rows of blocks then
      Wb's (each half quantised on its own, so that no block spans both when D % 128 != 0);
    - "channel": one scale a row, (2·D,);
    - "tensor": one scale, ().

    Each scale is amax/448 of what it covers (1 when that is all zero; NaNs are left out of amax,
    as the library's quantiser does, and stay NaN). The scales are not checked here;
    FusedSwiGLU.to_fp8() checks them (a weight with an infinity gives an infinite scale).
    """
    hidden, _ = _check_weight(w12, "quantize_weight_e4m3")
    if scaling not in WEIGHT_SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(map(repr, WEIGHT_SCALINGS))}, got {scaling!r}")
    if w12.dtype not in _INPUT_DTYPES:
        raise TypeError(f"w12 must be float32, float16 or bfloat16, got {w12.dtype}")
    _require_kernels(w12, "quantize_weight_e4m3")
    with torch.no_grad():
        w12 = w12.detach()
        if scaling == "channel":
            q, scale = _quantize_by_amax(w12, _magnitudes(w12).amax(dim=1, keepdim=True))
            return q, scale.reshape(2 * hidden)
        if scaling == "tensor":
            q, scale = _quantize_by_amax(w12, _magnitudes(w12).amax())
            return q, scale
        if hidden % _fp8_ops.BLOCK == 0:
            return torch.ops.swiglu.quantize_e4m3(w12, "128x128")
        qa, sa = torch.ops.swiglu.quantize_e4m3(w12[:hidden], "128x128")
        qb, sb = torch.ops.swiglu.quantize_e4m3(w12[hidden:], "128x128")
        return _concat_rows(qa, qb), torch.cat([sa, sb])


def fused_swiglu_fp8(x: torch.Tensor, w12_e4m3: torch.Tensor, w12_scale: torch.Tensor,
                     bias: torch.Tensor | None = None, *, weight_scaling: str = "blocks",
                     out_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor | ScaledFp8:
    """Z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) with x quantised to e4m3 in 1×128 blocks (one launch)
    and W12 given in e4m3 (quantize_weight_e4m3), in one FP8 kernel launch.

    Args:
        x: (..., in_features), float32, float16 or bfloat16; in_features a multiple of 16.
        w12_e4m3, w12_scale: quantize_weight_e4m3(w12, weight_scaling)'s pair.
        bias: (2*hidden,), [ba | bb], or None; used in out_dtype (bfloat16 when Z is e4m3, unless
            the bias is float16).
        weight_scaling: the scales' layout: "blocks", "channel" or "tensor".
        out_dtype: torch.bfloat16 or torch.float16 for Z in that dtype; torch.float8_e4m3fn for Z
            in e4m3 with 1×128 scales (a ScaledFp8).

    Returns:
        Z (..., hidden) in out_dtype, or ScaledFp8(data (..., hidden), scale (..., ceil(hidden/128))).

    Runs on the current CUDA stream with no host synchronisation, so CUDA graphs capture it and
    torch.compile keeps its two launches as the operators torch.ops.swiglu.quantize_e4m3 and
    torch.ops.swiglu.forward_fp8. Raises RuntimeError where the FP8 kernel cannot run (see the
    module's docstring) and when a gradient would be needed; ValueError or TypeError on bad
    arguments.
    """
    for name, t in (("x", x), ("w12_e4m3", w12_e4m3), ("w12_scale", w12_scale)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if weight_scaling not in WEIGHT_SCALINGS:
        raise ValueError(f"weight_scaling must be one of {', '.join(map(repr, WEIGHT_SCALINGS))}, "
                         f"got {weight_scaling!r}")
    if out_dtype not in OUT_DTYPES:
        raise ValueError(f"out_dtype must be torch.bfloat16, torch.float16 or torch.float8_e4m3fn, got {out_dtype}")
    hidden, in_features = _check_weight(w12_e4m3, "fused_swiglu_fp8")
    if w12_e4m3.dtype != E4M3:
        raise TypeError(f"w12_e4m3 must be torch.float8_e4m3fn (quantize_weight_e4m3), got {w12_e4m3.dtype}")
    if x.dim() == 0 or x.shape[-1] != in_features:
        raise ValueError(f"x's last dimension must be in_features = {in_features}, got x of shape {tuple(x.shape)}")
    if x.dtype not in _INPUT_DTYPES:
        raise TypeError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    if bias is not None and tuple(bias.shape) != (2 * hidden,):
        raise ValueError(f"bias must be [ba | bb] of shape ({2 * hidden},), got {tuple(bias.shape)}")
    _require_kernels(x, "fused_swiglu_fp8")
    check_inference("fused_swiglu_fp8", x, bias)
    z_e4m3 = out_dtype == E4M3
    kernel_dtype = out_dtype if not z_e4m3 else (
        torch.float16 if bias is not None and bias.dtype == torch.float16 else torch.bfloat16)
    if bias is not None:
        bias = bias.to(kernel_dtype)
    x_q, x_scale = torch.ops.swiglu.quantize_e4m3(x.reshape(-1, in_features), "1x128")
    z, z_scale = torch.ops.swiglu.forward_fp8(x_q, x_scale, w12_e4m3, w12_scale, bias, "blocks", weight_scaling,
                                              kernel_dtype, z_e4m3)
    lead = x.shape[:-1]
    if z_e4m3:
        return ScaledFp8(z.reshape(*lead, hidden), z_scale.reshape(*lead, n_blocks(hidden)))
    return z.reshape(*lead, hidden)


def fused_swiglu_fp8_training(x: torch.Tensor, w12: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) in FP8 with its gradient: the blockwise recipe
    (Transformer Engine's Float8BlockScaling, DeepSeek-V3's), from master weights.

    Each call quantises x in 1×128 blocks and w12 in 128×128 blocks (Wa and Wb apart) to e4m3,
    amax/448 a block, and runs the FP8 forward, keeping H = [G | U] and an e4m3 copy of xᵀ (1×128
    blocks along the batch) for the backward. The backward quantises dH (1×128 blocks, and its
    transpose) and w12ᵀ, and computes dX and dW12 by FP8 GEMMs with float32 accumulation, and dbias
    from float32 dH: dX in x's dtype, dW12 in w12's (float32 master weights get a float32
    gradient), dbias in the bias's. Only the gradients autograd asks for are computed.

    Args:
        x: (..., in_features), float32, float16 or bfloat16.
        w12: (2*hidden, in_features), [Wa; Wb], float32, float16 or bfloat16: the master weights.
        bias: (2*hidden,), [ba | bb], or None; any of the three dtypes.
        in_features and hidden must be multiples of 16.

    Returns:
        Z (..., hidden) in bfloat16 (float16 when x is float16).

    Runs on the current CUDA stream with no host synchronisation (CUDA graphs capture it), as the
    operators torch.ops.swiglu.forward_fp8_training and torch.ops.swiglu.backward_fp8 under
    torch.compile. Needs compute capability 9.0 and a libswiglu_c with the FP8 backward; raises
    RuntimeError elsewhere, ValueError or TypeError on bad arguments. A weight or input that is not
    finite makes its blocks' outputs NaN (the scales are not checked on the host, which would
    synchronise every step).
    """
    for name, t in (("x", x), ("w12", w12)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    hidden, in_features = _check_weight(w12, "fused_swiglu_fp8_training")
    if hidden % 16 != 0:
        raise ValueError(f"fused_swiglu_fp8_training: hidden must be a multiple of 16 for the FP8 backward (the "
                         f"dU half of dH starts 16-byte aligned), got {hidden}")
    if x.dim() == 0 or x.shape[-1] != in_features:
        raise ValueError(f"x's last dimension must be in_features = {in_features}, got x of shape {tuple(x.shape)}")
    for name, t in (("x", x), ("w12", w12), ("bias", bias)):
        if t is not None and t.dtype not in _INPUT_DTYPES:
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if bias is not None and tuple(bias.shape) != (2 * hidden,):
        raise ValueError(f"bias must be [ba | bb] of shape ({2 * hidden},), got {tuple(bias.shape)}")
    _require_kernels(x, "fused_swiglu_fp8_training")
    out_dtype = torch.float16 if x.dtype == torch.float16 else torch.bfloat16
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, w12, bias))
    z = _fp8_ops.forward_fp8_training(x.reshape(-1, in_features), w12, bias, out_dtype, save)
    return z.reshape(*x.shape[:-1], hidden)
