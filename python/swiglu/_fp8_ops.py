"""The FP8 kernels as PyTorch operators: for inference ``torch.ops.swiglu.quantize_e4m3`` and
``torch.ops.swiglu.forward_fp8`` (no autograd), and the scale check that runs where weights are
quantised; for training ``torch.ops.swiglu.forward_fp8_training`` (its gradient attached:
``forward_fp8_training()``) and ``torch.ops.swiglu.backward_fp8``, the blockwise recipe (below).

e4m3 data are ``torch.float8_e4m3fn`` tensors and scales float32. The scale layouts are the
library's (include/swiglu/swiglu.hpp, Fp8Scaling), as shapes, with k = ceil(I/128) and
d = ceil(D/128):

============  =====================  ==============================================================
scaling       X (B×I)                W12 = [Wa; Wb] (2D×I)
============  =====================  ==============================================================
``tensor``    ``()``                 ``()``
``blocks``    ``(B, k)``: 1×128      ``(2·d, k)``: 128×128, Wa's d rows of blocks, then Wb's
``channel``   (none)                 ``(2·D,)``: one a row, Wa's D then Wb's D
============  =====================  ==============================================================

A tensor scale may also be ``(1,)``. Like the bf16 operators (swiglu._ops), both have a fake
implementation, so torch.compile traces them as single nodes, run on the current stream of the
tensors' device and allocate with torch, so CUDA graphs capture them.
"""

from __future__ import annotations

import torch

from . import _lib, _ops  # noqa: F401  (_ops defines the swiglu namespace, which this extends)

E4M3 = getattr(torch, "float8_e4m3fn", None)  # None before torch 2.1
E4M3_MAX = 448.0
BLOCK = 128  # the scale blocks' width (along I for X and W12, along D for Z)

X_SCALINGS = {"tensor": _lib.FP8_SCALE_TENSOR, "blocks": _lib.FP8_SCALE_BLOCKS}
W_SCALINGS = {"tensor": _lib.FP8_SCALE_TENSOR, "blocks": _lib.FP8_SCALE_BLOCKS,
              "channel": _lib.FP8_SCALE_CHANNEL}
QUANTIZE_BLOCKS = {"1x128": _lib.FP8_BLOCKS_1X128, "128x128": _lib.FP8_BLOCKS_128X128}
_IN_DTYPES = {torch.float32: _lib.DTYPE_F32, torch.float16: _lib.DTYPE_F16, torch.bfloat16: _lib.DTYPE_BF16}
_OUT_DTYPES = {torch.float16: _lib.DTYPE_F16, torch.bfloat16: _lib.DTYPE_BF16}

_QUANTIZE_SCHEMA = "(Tensor a, str blocks) -> (Tensor, Tensor)"
# z_e4m3: Z in e4m3 with 1×128 scales along D (the second output; an empty tensor otherwise).
# out_dtype (bfloat16 or float16) is the bias's and, unless z_e4m3, Z's.
_FORWARD_FP8_SCHEMA = ("(Tensor x, Tensor x_scale, Tensor w, Tensor w_scale, Tensor? bias, str x_scaling, "
                       "str w_scaling, ScalarType out_dtype, bool z_e4m3) -> (Tensor, Tensor)")


def n_blocks(n):
    """ceil(n / 128), for ints and torch.compile's symbolic sizes."""
    return (n + BLOCK - 1) // BLOCK


def quantize_scale_shape(blocks: str, rows, cols) -> tuple:
    """The scales quantize_e4m3 writes for a rows×cols matrix."""
    return (rows if blocks == "1x128" else n_blocks(rows), n_blocks(cols))


def x_scale_shape(scaling: str, batch, in_features) -> tuple:
    return () if scaling == "tensor" else (batch, n_blocks(in_features))


def w_scale_shape(scaling: str, hidden, in_features) -> tuple:
    if scaling == "tensor":
        return ()
    return (2 * hidden,) if scaling == "channel" else (2 * n_blocks(hidden), n_blocks(in_features))


def z_scale_shape(batch, hidden) -> tuple:
    return (batch, n_blocks(hidden))


def _aligned(t: torch.Tensor, alignment: int) -> bool:
    return t.data_ptr() % alignment == 0


def _dense(t: torch.Tensor, alignment: int) -> torch.Tensor:
    """t contiguous and aligned (a copy only when it is not; torch's allocations are 512-aligned)."""
    t = t.contiguous()
    return t if _aligned(t, alignment) else t.clone()


def _rows(t: torch.Tensor, alignment: int, stride_multiple: int = 1) -> tuple[torch.Tensor, int]:
    """A 2-D t and its row stride in elements for the library: 0 when contiguous, the view's own
    stride when its rows are padded (unit column stride, aligned, a row stride that is a multiple
    of stride_multiple), else a contiguous copy."""
    rows, cols = t.shape
    if t.is_contiguous() and _aligned(t, alignment):
        return t, 0
    if (rows > 1 and t.stride(1) == 1 and t.stride(0) >= cols and t.stride(0) % stride_multiple == 0
            and _aligned(t, alignment)):
        return t, t.stride(0)
    return _dense(t, alignment), 0


def _scale_ok(t: torch.Tensor, shape: tuple) -> bool:
    if shape == ():
        return t.dim() <= 1 and t.numel() == 1
    return tuple(t.shape) == shape


def _check_quantize(a: torch.Tensor, blocks: str) -> None:
    if blocks not in QUANTIZE_BLOCKS:
        raise ValueError(f"blocks must be '1x128' or '128x128', got {blocks!r}")
    if a.dim() != 2 or a.dtype not in _IN_DTYPES:
        raise ValueError(f"a must be 2-D float32, float16 or bfloat16, got {a.dtype} {tuple(a.shape)}")


def _check_forward_fp8(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype) -> None:
    """The shapes, dtypes and devices the FP8 kernel assumes (the library sees raw pointers)."""
    if x_scaling not in X_SCALINGS:
        raise ValueError(f"x_scaling must be 'tensor' or 'blocks', got {x_scaling!r}")
    if w_scaling not in W_SCALINGS:
        raise ValueError(f"w_scaling must be 'tensor', 'blocks' or 'channel', got {w_scaling!r}")
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be torch.bfloat16 or torch.float16, got {out_dtype}")
    if x.dim() != 2 or x.dtype != E4M3:
        raise ValueError(f"x must be 2-D torch.float8_e4m3fn, got {x.dtype} {tuple(x.shape)}")
    batch, in_features = x.shape
    if in_features % 16 != 0 or in_features == 0:
        raise ValueError(f"in_features must be a positive multiple of 16 (the FP8 kernel loads 16-byte "
                         f"rows), got {in_features}")
    if w.dim() != 2 or w.dtype != E4M3 or w.shape[0] % 2 != 0 or w.shape[0] == 0 or w.shape[1] != in_features:
        raise ValueError(f"w must be torch.float8_e4m3fn (2*hidden, {in_features}), got {w.dtype} {tuple(w.shape)}")
    hidden = w.shape[0] // 2
    for name, t, scaling, shape in (("x_scale", x_scale, x_scaling, x_scale_shape(x_scaling, batch, in_features)),
                                    ("w_scale", w_scale, w_scaling, w_scale_shape(w_scaling, hidden, in_features))):
        if t.dtype != torch.float32 or not _scale_ok(t, shape):
            raise ValueError(f"{name} must be torch.float32 {shape} for {scaling!r} scaling, got {t.dtype} "
                             f"{tuple(t.shape)}")
    if bias is not None and (tuple(bias.shape) != (2 * hidden,) or bias.dtype != out_dtype):
        raise ValueError(f"bias must be {out_dtype} ({2 * hidden},), got {bias.dtype} {tuple(bias.shape)}")
    for name, t in (("x_scale", x_scale), ("w", w), ("w_scale", w_scale), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"x is on {x.device} but {name} is on {t.device}")


def _quantize_cuda(a: torch.Tensor, blocks: str):
    """a (rows×cols) to e4m3 with amax/448 scales in 1×128 or 128×128 blocks (the library's
    quantize_e4m3: round to nearest, saturating at ±448)."""
    _check_quantize(a, blocks)
    if a.device.type != "cuda":
        raise ValueError(f"a must be on CUDA, got {a.device}")
    lib = _lib.library()
    a, lda = _rows(a, a.element_size())
    rows, cols = a.shape
    q = torch.empty((rows, cols), dtype=E4M3, device=a.device)
    scale = torch.empty(quantize_scale_shape(blocks, rows, cols), dtype=torch.float32, device=a.device)
    with torch.cuda.device(a.device):
        lib.quantize_e4m3(_IN_DTYPES[a.dtype], a.data_ptr(), lda or cols, rows, cols, QUANTIZE_BLOCKS[blocks],
                          q.data_ptr(), cols, scale.data_ptr(), torch.cuda.current_stream().cuda_stream)
    return q, scale


def _quantize_fake(a, blocks):
    rows, cols = a.shape
    return (a.new_empty((rows, cols), dtype=E4M3),
            a.new_empty(quantize_scale_shape(blocks, rows, cols), dtype=torch.float32))


def _forward_fp8_outputs(x, w, out_dtype, z_e4m3):
    batch, hidden = x.shape[0], w.shape[0] // 2
    z = x.new_empty((batch, hidden), dtype=E4M3 if z_e4m3 else out_dtype)
    z_scale = x.new_empty(z_scale_shape(batch, hidden) if z_e4m3 else (0,), dtype=torch.float32)
    return z, z_scale


def _forward_fp8_cuda(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype, z_e4m3):
    """Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb) on the dequantised operands, in one launch; Z's 1×128
    scales as the second output when z_e4m3, else an empty tensor."""
    _check_forward_fp8(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype)
    if x.device.type != "cuda":
        raise ValueError(f"x must be on CUDA, got {x.device}")
    lib = _lib.library()
    x, ldx = _rows(x, 16, stride_multiple=16)  # Why 16: TMA loads 16-byte rows from 16-byte addresses
    w = _dense(w, 16)
    x_scale, w_scale = _dense(x_scale, 4), _dense(w_scale, 4)
    bias = None if bias is None else _dense(bias, bias.element_size())
    z, z_scale = _forward_fp8_outputs(x, w, out_dtype, z_e4m3)
    problem = _lib.Fp8Problem(batch=x.shape[0], in_features=x.shape[1], hidden=w.shape[0] // 2, ldx=ldx,
                              x_scaling=X_SCALINGS[x_scaling], w_scaling=W_SCALINGS[w_scaling],
                              out_dtype=_OUT_DTYPES[out_dtype], bias=int(bias is not None), z_e4m3=int(z_e4m3))
    with torch.cuda.device(x.device):
        lib.forward_fp8(problem, x.data_ptr(), x_scale.data_ptr(), w.data_ptr(), w_scale.data_ptr(),
                        0 if bias is None else bias.data_ptr(), z.data_ptr(),
                        z_scale.data_ptr() if z_e4m3 else 0, 0, 0, torch.cuda.current_stream().cuda_stream)
    return z, z_scale


def _forward_fp8_fake(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype, z_e4m3):
    return _forward_fp8_outputs(x, w, out_dtype, z_e4m3)


# ---- the weight scales' check --------------------------------------------------------------------


def _describe_scale(scaling: str, index: int, hidden: int, in_features: int) -> str:
    """Where w_scale[index] sits, in the library's words (check_fp8_scales)."""
    if scaling == "tensor":
        return "the operand's one scale"
    if scaling == "channel":
        return f"{'Wa' if index < hidden else 'Wb'}, row {index % hidden}"
    k = n_blocks(in_features)
    half = n_blocks(hidden) * k
    return f"{'Wa' if index < half else 'Wb'}, row block {index % half // k}, K block {index % k}"


def check_weight_scales(w_scale: torch.Tensor, scaling: str, hidden: int, in_features: int) -> None:
    """ValueError naming the first of W12's scales that is not finite and > 0 (a weight with an
    infinity, or one so small that amax/448 underflows, quantises to such a scale).

    On CUDA this is the library's swiglu_check_fp8_scales, which copies the scales to the host and
    waits: it belongs where weights are quantised, not in a call that CUDA graphs capture. Other
    devices (the host tests' CPU operators) run the same test in torch.
    """
    if not _scale_ok(w_scale, w_scale_shape(scaling, hidden, in_features)):
        raise ValueError(f"w_scale must be {w_scale_shape(scaling, hidden, in_features)} for weight scaling "
                         f"{scaling!r}, got {tuple(w_scale.shape)}")
    w_scale = _dense(w_scale.float(), 4)
    if w_scale.device.type == "cuda":
        lib = _lib.library()
        # Why a one-row problem with a tensor X scale of 1: the check reads what forward_fp8 would,
        # and the weights come without an X.
        problem = _lib.Fp8Problem(batch=1, in_features=in_features, hidden=hidden, ldx=0,
                                  x_scaling=_lib.FP8_SCALE_TENSOR, w_scaling=W_SCALINGS[scaling],
                                  out_dtype=_lib.DTYPE_BF16, bias=0, z_e4m3=0)
        one = torch.ones(1, dtype=torch.float32, device=w_scale.device)
        with torch.cuda.device(w_scale.device):
            try:
                lib.check_fp8_scales(problem, one.data_ptr(), w_scale.data_ptr(),
                                     torch.cuda.current_stream().cuda_stream)
            except _lib.SwigluError as e:
                if e.status != "SWIGLU_INVALID_ARGUMENT":
                    raise
                raise ValueError(e.message) from None
        return
    flat = w_scale.reshape(-1)
    bad = (~(torch.isfinite(flat) & (flat > 0))).nonzero()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(f"w_scale[{i}] ({_describe_scale(scaling, i, hidden, in_features)}) is "
                         f"{float(flat[i]):g}: every scale must be finite and > 0 (an all-zero block's "
                         f"scale is 1)")


# ---- FP8 training: the blockwise recipe's forward and backward ------------------------------------
#
# forward_fp8_training quantises X (1×128 blocks) and W12 (128×128 blocks, Wa and Wb apart) from the
# caller's tensors (the master weights), then runs the FP8 forward: Z in out_dtype (bfloat16 or
# float16). With save it also keeps H = [G | U] in out_dtype and Xᵀ in e4m3 for the backward's dW:
# (I, B rounded up to 16) (the library reads its rows 16-byte aligned; columns past B are unused),
# with (I, ceil(B/128)) scales along B. Without save those three are empty.
# backward_fp8 quantises W12ᵀ the same way (from the master weights again: cheaper in memory than
# keeping it), and runs the library's FP8 backward: dX in dx_dtype, dW12 in w's dtype (the master
# gradient), dbias in dbias_dtype; each one not asked for is an empty tensor.
_FORWARD_FP8_TRAINING_SCHEMA = ("(Tensor x, Tensor w, Tensor? bias, ScalarType out_dtype, bool save) "
                                "-> (Tensor, Tensor, Tensor, Tensor)")
_BACKWARD_FP8_SCHEMA = ("(Tensor dz, Tensor w, Tensor h, Tensor xt, Tensor xt_scale, bool need_dx, bool need_dw, "
                        "bool need_dbias, ScalarType dx_dtype, ScalarType dbias_dtype) -> (Tensor, Tensor, Tensor)")


def padded16(n):
    """n rounded up to a multiple of 16 (Xᵀ's row length in bytes)."""
    return (n + 15) // 16 * 16


def _check_fp8_training(x, w, bias, out_dtype) -> None:
    """The shapes and dtypes the FP8 training operators assume (the library sees raw pointers)."""
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be torch.bfloat16 or torch.float16, got {out_dtype}")
    if x.dim() != 2 or x.dtype not in _IN_DTYPES:
        raise ValueError(f"x must be 2-D float32, float16 or bfloat16, got {x.dtype} {tuple(x.shape)}")
    in_features = x.shape[1]
    if w.dim() != 2 or w.dtype not in _IN_DTYPES or w.shape[0] % 2 != 0 or w.shape[1] != in_features:
        raise ValueError(f"w must be float32, float16 or bfloat16 (2*hidden, {in_features}), got {w.dtype} "
                         f"{tuple(w.shape)}")
    hidden = w.shape[0] // 2
    if in_features % 16 != 0 or in_features == 0 or hidden % 16 != 0 or hidden == 0:
        raise ValueError(f"FP8 training needs in_features and hidden to be positive multiples of 16 (the FP8 "
                         f"kernels' 16-byte rows), got in_features={in_features}, hidden={hidden}")
    if bias is not None and (tuple(bias.shape) != (2 * hidden,) or bias.dtype not in _IN_DTYPES):
        raise ValueError(f"bias must be float32, float16 or bfloat16 ({2 * hidden},), got {bias.dtype} "
                         f"{tuple(bias.shape)}")
    for name, t in (("w", w), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"x is on {x.device} but {name} is on {t.device}")


def _fp8_training_outputs(x, w, out_dtype, save):
    batch, in_features = x.shape
    hidden = w.shape[0] // 2
    z = x.new_empty((batch, hidden), dtype=out_dtype)
    if not save:
        return z, x.new_empty((0,), dtype=out_dtype), x.new_empty((0,), dtype=E4M3), x.new_empty((0,), dtype=torch.float32)
    return (z, x.new_empty((batch, 2 * hidden), dtype=out_dtype),
            x.new_empty((in_features, padded16(batch)), dtype=E4M3),
            x.new_empty((in_features, n_blocks(batch)), dtype=torch.float32))


def _forward_fp8_training_cuda(x, w, bias, out_dtype, save):
    _check_fp8_training(x, w, bias, out_dtype)
    if x.device.type != "cuda":
        raise ValueError(f"x must be on CUDA, got {x.device}")
    lib = _lib.library()
    x, w = _dense(x, 16), _dense(w, 16)
    bias = None if bias is None else _dense(bias.to(out_dtype), 16)
    batch, in_features = x.shape
    hidden = w.shape[0] // 2
    kb, db = n_blocks(in_features), n_blocks(hidden)
    z, h, xt, xt_scale = _fp8_training_outputs(x, w, out_dtype, save)
    xq = x.new_empty((batch, in_features), dtype=E4M3)
    x_scale = x.new_empty((batch, kb), dtype=torch.float32)
    wq = w.new_empty((2 * hidden, in_features), dtype=E4M3)
    w_scale = w.new_empty((2 * db, kb), dtype=torch.float32)
    if batch == 0:
        return z, h, xt, xt_scale
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream().cuda_stream
        if save:
            lib.quantize_e4m3_transposed(_IN_DTYPES[x.dtype], x.data_ptr(), in_features, batch, in_features,
                                         _lib.FP8_BLOCKS_1X128, xq.data_ptr(), in_features, x_scale.data_ptr(),
                                         xt.data_ptr(), xt.shape[1], xt_scale.data_ptr(), stream)
        else:
            lib.quantize_e4m3(_IN_DTYPES[x.dtype], x.data_ptr(), in_features, batch, in_features,
                              _lib.FP8_BLOCKS_1X128, xq.data_ptr(), in_features, x_scale.data_ptr(), stream)
        for half in range(2):  # no 128×128 block across Wa and Wb
            lib.quantize_e4m3(_IN_DTYPES[w.dtype], w.data_ptr() + half * hidden * in_features * w.element_size(),
                              in_features, hidden, in_features, _lib.FP8_BLOCKS_128X128,
                              wq.data_ptr() + half * hidden * in_features, in_features,
                              w_scale.data_ptr() + half * db * kb * 4, stream)
        problem = _lib.Fp8Problem(batch=batch, in_features=in_features, hidden=hidden, ldx=0,
                                  x_scaling=_lib.FP8_SCALE_BLOCKS, w_scaling=_lib.FP8_SCALE_BLOCKS,
                                  out_dtype=_OUT_DTYPES[out_dtype], bias=int(bias is not None), z_e4m3=0)
        lib.forward_fp8(problem, xq.data_ptr(), x_scale.data_ptr(), wq.data_ptr(), w_scale.data_ptr(),
                        0 if bias is None else bias.data_ptr(), z.data_ptr(), 0, 0,
                        h.data_ptr() if save else 0, stream)
    return z, h, xt, xt_scale


def _forward_fp8_training_fake(x, w, bias, out_dtype, save):
    return _fp8_training_outputs(x, w, out_dtype, save)


def _check_backward_fp8(dz, w, h, xt, xt_scale) -> None:
    if dz.dim() != 2 or dz.dtype not in _OUT_DTYPES or h.dtype != dz.dtype:
        raise ValueError(f"dz and h must be 2-D bfloat16 or float16 of one dtype, got {dz.dtype} {tuple(dz.shape)} "
                         f"and {h.dtype}")
    batch, hidden = dz.shape
    in_features = w.shape[1] if w.dim() == 2 else -1
    for name, t, shape in (("w", w, (2 * hidden, in_features)), ("h", h, (batch, 2 * hidden)),
                           ("xt", xt, (in_features, padded16(batch))),
                           ("xt_scale", xt_scale, (in_features, n_blocks(batch)))):
        if tuple(t.shape) != shape or t.device != dz.device:
            raise ValueError(f"{name} must be {shape} on {dz.device}, got {tuple(t.shape)} on {t.device}")
    if xt.dtype != E4M3 or xt_scale.dtype != torch.float32 or w.dtype not in _IN_DTYPES:
        raise ValueError(f"xt must be torch.float8_e4m3fn, xt_scale float32 and w float32, float16 or bfloat16, "
                         f"got {xt.dtype}, {xt_scale.dtype} and {w.dtype}")


def _backward_fp8_outputs(dz, w, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype):
    batch, hidden = dz.shape
    in_features = w.shape[1]
    return (dz.new_empty((batch, in_features) if need_dx else (0,), dtype=dx_dtype),
            w.new_empty(w.shape if need_dw else (0,)),
            dz.new_empty((2 * hidden,) if need_dbias else (0,), dtype=dbias_dtype))


def _backward_fp8_cuda(dz, w, h, xt, xt_scale, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype):
    _check_backward_fp8(dz, w, h, xt, xt_scale)
    if dz.device.type != "cuda":
        raise ValueError(f"dz must be on CUDA, got {dz.device}")
    lib = _lib.library()
    dz, h, w = _dense(dz, 16), _dense(h, 16), _dense(w, 16)
    xt, xt_scale = _dense(xt, 16), _dense(xt_scale, 4)
    batch, hidden = dz.shape
    in_features = w.shape[1]
    kb, db = n_blocks(in_features), n_blocks(hidden)
    dx, dw, dbias = _backward_fp8_outputs(dz, w, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype)
    if not (need_dx or need_dw or need_dbias):
        return dx, dw, dbias
    problem = _lib.Fp8Problem(batch=batch, in_features=in_features, hidden=hidden, ldx=0,
                              x_scaling=_lib.FP8_SCALE_BLOCKS, w_scaling=_lib.FP8_SCALE_BLOCKS,
                              out_dtype=_OUT_DTYPES[dz.dtype], bias=int(need_dbias), z_e4m3=0)
    with torch.cuda.device(dz.device):
        stream = torch.cuda.current_stream().cuda_stream
        wt = wt_scale = None
        if need_dx and batch > 0:
            # W12ᵀ (I×2D): Wa's 128×128 blocks transposed into columns [0, D), Wb's into [D, 2D).
            wt = w.new_empty((in_features, 2 * hidden), dtype=E4M3)
            wt_scale = w.new_empty((2 * kb * db,), dtype=torch.float32)
            for half in range(2):
                lib.quantize_e4m3_transposed(
                    _IN_DTYPES[w.dtype], w.data_ptr() + half * hidden * in_features * w.element_size(), in_features,
                    hidden, in_features, _lib.FP8_BLOCKS_128X128, 0, 0, 0, wt.data_ptr() + half * hidden,
                    2 * hidden, wt_scale.data_ptr() + half * kb * db * 4, stream)
        ws_bytes = lib.backward_fp8_workspace_bytes(problem)
        workspace = torch.empty(ws_bytes, dtype=torch.uint8, device=dz.device) if ws_bytes else None
        lib.backward_fp8(problem, dz.data_ptr(), h.data_ptr(), 0 if wt is None else wt.data_ptr(),
                         0 if wt_scale is None else wt_scale.data_ptr(), xt.data_ptr(), xt.shape[1],
                         xt_scale.data_ptr(), dx.data_ptr() if need_dx else 0, _IN_DTYPES[dx_dtype],
                         dw.data_ptr() if need_dw else 0, _IN_DTYPES[w.dtype], False,
                         dbias.data_ptr() if need_dbias else 0, _IN_DTYPES[dbias_dtype],
                         0 if workspace is None else workspace.data_ptr(), ws_bytes, stream)
    return dx, dw, dbias


def _backward_fp8_fake(dz, w, h, xt, xt_scale, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype):
    return _backward_fp8_outputs(dz, w, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype)


def _fp8_training_save(ctx, x, w, bias, h, xt, xt_scale):
    ctx.save_for_backward(w, h, xt, xt_scale)
    ctx.x_dtype = x.dtype
    ctx.bias_dtype = torch.float32 if bias is None else bias.dtype


def _fp8_training_backward(ctx, dz, wants):
    """The gradients autograd asks for (wants: whether x, w and bias need one); frozen weights skip
    dW (and a frozen bias dbias)."""
    w, h, xt, xt_scale = ctx.saved_tensors
    want_x, want_w, want_b = wants[:3]
    if dz is None or not (want_x or want_w or want_b):
        return None, None, None, None, None
    if h.numel() == 0 and dz.numel() != 0:
        raise RuntimeError("fused_swiglu_fp8_training: the forward ran without keeping H (no input required "
                           "grad in grad mode), so there is no backward")
    dx, dw, dbias = torch.ops.swiglu.backward_fp8(dz.to(h.dtype), w, h, xt, xt_scale, want_x, want_w, want_b,
                                                  ctx.x_dtype, ctx.bias_dtype)
    return dx if want_x else None, dw if want_w else None, dbias if want_b else None, None, None


# ---- registration --------------------------------------------------------------------------------

_OPS = (("quantize_e4m3", _QUANTIZE_SCHEMA, _quantize_cuda, _quantize_fake),
        ("forward_fp8", _FORWARD_FP8_SCHEMA, _forward_fp8_cuda, _forward_fp8_fake),
        ("forward_fp8_training", _FORWARD_FP8_TRAINING_SCHEMA, _forward_fp8_training_cuda,
         _forward_fp8_training_fake),
        ("backward_fp8", _BACKWARD_FP8_SCHEMA, _backward_fp8_cuda, _backward_fp8_fake))

if E4M3 is None:
    pass  # no float8 dtype: the FP8 API refuses to run (swiglu.fp8.unsupported_reason)
elif hasattr(torch.library, "custom_op"):  # torch >= 2.4
    _registered = {}
    for _name, _schema, _cuda, _fake in _OPS:
        _registered[_name] = torch.library.custom_op("swiglu::" + _name, _cuda, mutates_args=(),
                                                     device_types="cuda", schema=_schema)
        _registered[_name].register_fake(_fake)

    def _training_setup_context(ctx, inputs, output):
        x, w, bias, _out_dtype, _save = inputs
        _z, h, xt, xt_scale = output
        _fp8_training_save(ctx, x, w, bias, h, xt, xt_scale)
        ctx.mark_non_differentiable(h, xt, xt_scale)
        ctx.set_materialize_grads(False)

    _registered["forward_fp8_training"].register_autograd(
        lambda ctx, dz, *_: _fp8_training_backward(ctx, dz, ctx.needs_input_grad),
        setup_context=_training_setup_context)

    def forward_fp8_training(x, w, bias, out_dtype, save):
        """Z of the FP8 training forward, differentiable in x, w and bias (when save)."""
        return torch.ops.swiglu.forward_fp8_training(x, w, bias, out_dtype, save)[0]
else:  # torch 2.1 to 2.3, as in swiglu._ops (a FRAGMENT: _ops defines the namespace)
    _library = torch.library.Library("swiglu", "FRAGMENT")
    for _name, _schema, _cuda, _fake in _OPS:
        _library.define(_name + _schema)
        _library.impl(_name, _cuda, "CUDA")
        if hasattr(torch.library, "impl_abstract"):  # torch 2.2, 2.3
            torch.library.impl_abstract("swiglu::" + _name, _fake, lib=_library)
        else:  # torch 2.1: fake tensors fall back to Meta kernels
            _library.impl(_name, _fake, "Meta")

    class _Fp8Training(torch.autograd.Function):
        # As swiglu._ops._Forward: Z alone is the output, and requires_grad stands in for
        # ctx.needs_input_grad, which torch 2.1's compiler does not trace.
        @staticmethod
        def forward(ctx, x, w, bias, out_dtype, save):
            z, h, xt, xt_scale = torch.ops.swiglu.forward_fp8_training(x, w, bias, out_dtype, save)
            _fp8_training_save(ctx, x, w, bias, h, xt, xt_scale)
            ctx.wants = (x.requires_grad, w.requires_grad, bias is not None and bias.requires_grad)
            return z

        @staticmethod
        def backward(ctx, dz):
            return _fp8_training_backward(ctx, dz, ctx.wants)

    def forward_fp8_training(x, w, bias, out_dtype, save):
        """Z of the FP8 training forward, differentiable in x, w and bias (when save)."""
        return _Fp8Training.apply(x, w, bias, out_dtype, save)
