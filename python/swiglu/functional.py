"""fused_swiglu(), the PyTorch reference it falls back to, and the fallback's warning."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from . import _ops

POLICIES = ("save", "recompute")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class FallbackWarning(UserWarning):
    """A call ran on the PyTorch reference instead of the fused kernels (issued once per reason)."""


_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(f"swiglu: {reason}: running the PyTorch reference (F.linear, then F.silu(g) * u) "
                  f"instead of the fused CUDA kernels; this warning is issued once",
                  FallbackWarning, stacklevel=3)


def reference_swiglu(x: torch.Tensor, w12: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) in plain PyTorch, w12 = [Wa; Wb] and bias = [ba | bb].

    This is what the fallback runs, on any device and dtype torch supports, under autograd and
    autocast like the two nn.Linear layers it replaces.
    """
    g, u = F.linear(x, w12, bias).chunk(2, dim=-1)
    return F.silu(g) * u


_PER_DEVICE_AUTOCAST = hasattr(torch, "get_autocast_dtype")  # torch >= 2.4


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype CUDA or CPU autocast gives F.linear, or None when it is off. Other device types
    give None: only their fallback runs, and its F.linear follows their autocast itself."""
    if device_type not in ("cuda", "cpu"):
        return None
    if _PER_DEVICE_AUTOCAST:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def _check_arguments(x, w12, bias, policy) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy must be 'save' or 'recompute', got {policy!r}")
    for name, t in (("x", x), ("w12", w12), ("bias", bias)):
        if not isinstance(t, torch.Tensor) and not (name == "bias" and t is None):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if w12.dim() != 2 or w12.shape[0] % 2 != 0 or w12.shape[0] == 0:
        raise ValueError("w12 must be [Wa; Wb], 2*hidden rows by in_features columns (nn.Linear "
                         f"layout), got shape {tuple(w12.shape)}")
    if x.dim() == 0 or x.shape[-1] != w12.shape[1]:
        raise ValueError(f"x's last dimension must be in_features = {w12.shape[1]} (w12 is "
                         f"{tuple(w12.shape)}), got x of shape {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (w12.shape[0],):
        raise ValueError(f"bias must be [ba | bb] of shape ({w12.shape[0]},), got {tuple(bias.shape)}")
    for name, t in (("w12", w12), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"x is on {x.device} but {name} is on {t.device}")


def _check_dtypes(x, w12, bias) -> None:
    for name, t in (("w12", w12), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"x is {x.dtype} but {name} is {t.dtype}; use one dtype, or autocast")


@torch.compiler.assume_constant_result
def _compute_capability_major(index: int) -> int:
    """A device's compute capability major. Why the decorator: torch.compile evaluates it once
    instead of tracing the device query, which torch before 2.4 cannot trace."""
    return torch.cuda.get_device_capability(index)[0]


def _fallback_reason(x: torch.Tensor) -> str | None:
    """Why the fused kernels cannot run this call, or None when they can."""
    if x.device.type != "cuda":
        return f"tensors on {x.device.type}"
    if x.dtype not in KERNEL_DTYPES:
        return f"dtype {x.dtype} (the kernels take float32, float16 and bfloat16)"
    if x.shape[-1] == 0:
        return "in_features = 0"
    if _compute_capability_major(x.device.index) < 7:
        return "a GPU below compute capability 7.0"
    return None


def fused_swiglu(x: torch.Tensor, w12: torch.Tensor, bias: torch.Tensor | None = None,
                 policy: str = "save", tf32: bool | None = None) -> torch.Tensor:
    """Z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) in one kernel launch, with its gradient.

    Args:
        x: (..., in_features): any leading dimensions, any strides.
        w12: (2*hidden, in_features), the stacked weights [Wa; Wb] of two nn.Linear layers.
        bias: (2*hidden,), [ba | bb], or None.
        policy: what the backward starts from. "save": the forward also writes the
            pre-activations H = [G | U] (2*hidden per row of x) and keeps them; "recompute": it
            keeps nothing but its inputs and the backward recomputes H (another forward GEMM).
            H is written only when a gradient will be needed (grad mode on and an input that
            requires grad). With torch 2.5 and newer, save's backward writes dG and dU over H
            when autograd frees the graph after it (no retain_graph or create_graph, eager
            tensors), so that it needs no 2*hidden-per-row buffer beyond H.
        tf32: for float32, multiply on the tensor cores in TF32 (compute capability 8.0 and
            newer; ignored below). None follows torch.backends.cuda.matmul.allow_tf32 at the time
            the kernel runs, like nn.Linear. It applies to the forward and to the backward's
            recompute of H; the backward's dX and dW GEMMs are exact float32 whatever it says.

    Returns:
        (..., hidden), x's dtype (the autocast dtype under CUDA autocast).

    The backward computes only the gradients autograd asks for: dX when x requires grad, dW and
    dbias when w12 or bias does; a frozen w12 (and bias) skips the dW GEMM.

    CUDA tensors in float32, float16 or bfloat16 run the fused kernels on the current stream
    (CUDA graphs capture them; torch.compile keeps them as one operator, torch.ops.swiglu.forward).
    Anything else (CPU or MPS tensors, float64, in_features = 0, a GPU older than compute
    capability 7.0) runs reference_swiglu() and issues a FallbackWarning once per reason.
    Raises ValueError or TypeError on bad arguments, swiglu.LibraryError when libswiglu_c cannot
    be loaded, and swiglu.SwigluError when a kernel call fails.
    """
    _check_arguments(x, w12, bias, policy)
    autocast_dtype = _autocast_dtype(x.device.type)
    if autocast_dtype is not None and x.device.type == "cuda":
        # As autocast does for F.linear: floating tensors other than float64 take its dtype.
        x, w12, bias = (t.to(autocast_dtype) if t is not None and t.dtype in KERNEL_DTYPES else t
                        for t in (x, w12, bias))
    reason = _fallback_reason(x)
    if reason is not None:
        if autocast_dtype is None and x.device.type in ("cuda", "cpu"):
            _check_dtypes(x, w12, bias)
        _warn_once(reason)
        return reference_swiglu(x, w12, bias)
    _check_dtypes(x, w12, bias)
    wants_grad = torch.is_grad_enabled() and (
        x.requires_grad or w12.requires_grad or (bias is not None and bias.requires_grad))
    in_features, hidden = w12.shape[1], w12.shape[0] // 2
    z = _ops.forward(x.reshape(-1, in_features), w12, bias, policy == "save" and wants_grad, tf32)
    return z.reshape(*x.shape[:-1], hidden)
