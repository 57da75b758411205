"""The fused kernels as PyTorch operators: ``torch.ops.swiglu.forward``, ``torch.ops.swiglu.backward``
and ``torch.ops.swiglu.backward_over_h`` (the save policy's backward, writing dH over H).

All take 2-D X (B×I), run on CUDA tensors only, and have a fake (meta) implementation, so that
torch.compile traces them as single nodes of its graphs and CUDA graphs capture their launches.
``forward()`` below is the forward operator with its gradient attached; it returns Z.

How they are registered depends on what the installed torch offers:

==============  ===============================  ======================  ========================
torch           define + CUDA kernel              fake tensors            autograd
==============  ===============================  ======================  ========================
>= 2.4          ``torch.library.custom_op``       ``register_fake``       ``register_autograd``
2.2, 2.3        ``torch.library.Library``         ``impl_abstract``       ``autograd.Function``
2.1             ``torch.library.Library``         a ``Meta`` kernel       ``autograd.Function``
==============  ===============================  ======================  ========================

The CUDA kernels make their inputs acceptable to the library (unit column stride, element-aligned;
X keeps a padded row stride when it can), allocate the outputs and the backward's workspace with
torch (the caching allocator, so CUDA graphs capture them too) and launch on the current stream of
the tensors' device.
"""

from __future__ import annotations

import os

import torch

from . import _lib

# tf32: for float32, TF32 math (True), exact (False), or None: torch.backends.cuda.matmul.allow_tf32
# read when the kernel runs, as nn.Linear does (and so that torch.compile need not trace the flag).
_FORWARD_SCHEMA = "(Tensor x, Tensor w, Tensor? bias, bool save_h, bool? tf32) -> (Tensor, Tensor)"
_BACKWARD_SCHEMA = ("(Tensor dz, Tensor x, Tensor w, Tensor? bias, Tensor h, bool recompute, "
                    "bool need_dx, bool need_dw, bool? tf32) -> (Tensor, Tensor, Tensor)")
# The save policy's backward that writes dH = [dG | dU] over H (which it consumes), so that it needs
# no B×2D buffer beyond the saved H. _backward() runs it only where H dies with the graph.
_BACKWARD_OVER_H_SCHEMA = ("(Tensor dz, Tensor x, Tensor w, Tensor? bias, Tensor(a!) h, bool need_dx, "
                           "bool need_dw, bool? tf32) -> (Tensor, Tensor, Tensor)")

_DTYPES = {torch.float32: _lib.DTYPE_F32, torch.float16: _lib.DTYPE_F16, torch.bfloat16: _lib.DTYPE_BF16}


def _aligned(t: torch.Tensor) -> bool:
    return t.data_ptr() % t.element_size() == 0


def _dense(t: torch.Tensor) -> torch.Tensor:
    """t as a contiguous, element-aligned tensor (a copy only when it is not one)."""
    t = t.contiguous()
    return t if _aligned(t) else t.clone()


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """X (B×I) and the row stride the library reads it with (0: contiguous). Rows padded at the
    end (a unit column stride, a row stride above I, every row inside the storage) are read in
    place; anything else is copied."""
    batch, in_features = x.shape
    if x.is_contiguous() and _aligned(x):
        return x, 0
    ldx = x.stride(0)
    end = x.storage_offset() + batch * ldx  # the library treats X as B·ldx elements
    if (x.stride(1) == 1 and ldx > in_features and _aligned(x)
            and end * x.element_size() <= x.untyped_storage().nbytes()):
        return x, ldx
    return _dense(x), 0


def _math(x: torch.Tensor, tf32: bool | None) -> int:
    """The library's math for this call: TF32 only for float32, when asked for (or allowed by torch
    when tf32 is None), on compute capability 8.0 and newer."""
    if x.dtype != torch.float32:
        return _lib.MATH_EXACT
    if tf32 is None:
        tf32 = torch.backends.cuda.matmul.allow_tf32
    return _lib.MATH_TF32 if tf32 and torch.cuda.get_device_capability(x.device)[0] >= 8 else _lib.MATH_EXACT


def _problem(x: torch.Tensor, w: torch.Tensor, ldx: int, has_bias: bool, tf32: bool | None) -> _lib.Problem:
    return _lib.Problem(batch=x.shape[0], in_features=x.shape[1], hidden=w.shape[0] // 2, ldx=ldx,
                        dtype=_DTYPES[x.dtype], layout=_lib.LAYOUT_LINEAR, bias=int(has_bias),
                        math=_math(x, tf32))


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _check_operands(x, w, bias, dz=None, h=None) -> None:
    """The shapes, dtypes and device the kernels assume of the operators' arguments. The library
    sees raw pointers only, so a mismatch is a ValueError here instead of a read out of bounds."""
    if x.dim() != 2 or x.dtype not in _DTYPES or x.device.type != "cuda":
        raise ValueError(f"x must be 2-D float32, float16 or bfloat16 on CUDA, got {x.dtype} "
                         f"{tuple(x.shape)} on {x.device}")
    if w.dim() != 2 or w.shape[0] % 2 != 0 or w.shape[1] != x.shape[1]:
        raise ValueError(f"w must be (2*hidden, {x.shape[1]}), got {tuple(w.shape)}")
    batch, hidden = x.shape[0], w.shape[0] // 2
    for name, t, shape in (("w", w, tuple(w.shape)), ("bias", bias, (2 * hidden,)),
                           ("dz", dz, (batch, hidden)), ("h", h, (batch, 2 * hidden))):
        if t is not None and (tuple(t.shape) != shape or t.dtype != x.dtype or t.device != x.device):
            raise ValueError(f"{name} must be {x.dtype} {shape} on {x.device}, got {t.dtype} "
                             f"{tuple(t.shape)} on {t.device}")


def _forward_cuda(x, w, bias, save_h, tf32):
    """Z = SiLU(X·Waᵀ + ba) ⊙ (X·Wbᵀ + bb) in one launch; H = [G | U] (B×2D) from the same
    launch when save_h, else an empty tensor. H belongs to the autograd graph: the save policy's
    backward writes dH over it when the graph dies (backward_over_h)."""
    _check_operands(x, w, bias)
    lib = _lib.library()
    x, ldx = _rows(x)
    w = _dense(w)
    bias = None if bias is None else _dense(bias)
    batch, hidden = x.shape[0], w.shape[0] // 2
    z = x.new_empty((batch, hidden))
    h = x.new_empty((batch, 2 * hidden) if save_h else (0,))
    with torch.cuda.device(x.device):
        lib.forward(_problem(x, w, ldx, bias is not None, tf32), x.data_ptr(), w.data_ptr(),
                    _ptr(bias), z.data_ptr(), h.data_ptr() if save_h else 0,
                    torch.cuda.current_stream().cuda_stream)
    return z, h


def _forward_fake(x, w, bias, save_h, tf32):
    batch, hidden = x.shape[0], w.shape[0] // 2
    return x.new_empty((batch, hidden)), x.new_empty((batch, 2 * hidden) if save_h else (0,))


# The backward's row chunks: where its workspace would hold dH (and, with recompute, H) for more
# than this many rows of X, it runs in chunks of at most this many rows (at least 64 each; the
# library's max_workspace_bytes), so that the buffer is a chunk's and not the batch's.
# SWIGLU_BACKWARD_CHUNK_ROWS overrides it, 0 turning chunks off. The default is measured: see
# docs/heuristics.md ("Row chunks of the backward").
CHUNK_ROWS = 4096
CHUNK_ROWS_ENV = "SWIGLU_BACKWARD_CHUNK_ROWS"
_MIN_CHUNK_ROWS = 64  # kMinBackwardChunkRows


def chunk_rows() -> int:
    """CHUNK_ROWS, or $SWIGLU_BACKWARD_CHUNK_ROWS when set (a ValueError unless an integer >= 0)."""
    text = os.environ.get(CHUNK_ROWS_ENV)
    if text is None or text == "":
        return CHUNK_ROWS
    try:
        rows = int(text)
    except ValueError:
        rows = -1
    if rows < 0:
        raise ValueError(f"{CHUNK_ROWS_ENV} must be an integer >= 0 (0: the backward in one piece), got {text!r}")
    return rows


def _workspace_bound(lib, problem, policy, need_dx, need_dw, dh_storage, rows) -> int:
    """The max_workspace_bytes that splits the backward into chunks of at most `rows` rows (0: one
    piece): the workspace of one such chunk, which the library then fits as few chunks into as
    it can."""
    batch = problem.batch
    if rows == 0 or batch <= rows:
        return 0
    n = min(-(-batch // max(rows, _MIN_CHUNK_ROWS)), batch // _MIN_CHUNK_ROWS)
    if n <= 1:
        return 0
    chunk = _lib.Problem.from_buffer_copy(problem)
    chunk.batch = -(-batch // n)
    return lib.backward_workspace_bytes(chunk, policy, need_dx, need_dw, dh_storage)


def _backward_cuda(dz, x, w, bias, h, recompute, need_dx, need_dw, tf32, over_h=False):
    """(dX, dW, dbias) from dZ; each one not asked for (dbias: also without bias) is an empty
    tensor. H is the forward's saved [G | U] unless recompute. over_h: dH is written over H
    (the library's DhStorage::tensors with dh = H), which the workspace then leaves out."""
    _check_operands(x, w, bias, dz, None if recompute else h)
    lib = _lib.library()
    x, ldx = _rows(x)
    w, dz = _dense(w), _dense(dz)
    bias = None if bias is None else _dense(bias)
    h = None if recompute else _dense(h)
    dh_storage = _lib.DH_TENSORS if over_h else _lib.DH_WORKSPACE
    dx = x.new_empty(x.shape if need_dx else (0,))
    dw = w.new_empty(w.shape if need_dw else (0,))
    dbias = bias.new_empty(bias.shape) if need_dw and bias is not None else w.new_empty((0,))
    problem = _problem(x, w, ldx, bias is not None, tf32)
    policy = _lib.POLICY_RECOMPUTE if recompute else _lib.POLICY_SAVE
    with torch.cuda.device(x.device):
        # Why: the workspace query reads the current device's SM count, so it runs inside the
        # device context like the launch.
        # (dH over H leaves no rows' buffer in the workspace to bound.)
        bound = 0 if over_h else _workspace_bound(lib, problem, policy, need_dx, need_dw, dh_storage, chunk_rows())
        ws_bytes = lib.backward_workspace_bytes(problem, policy, need_dx, need_dw, dh_storage, bound)
        workspace = torch.empty(ws_bytes, dtype=torch.uint8, device=x.device) if ws_bytes else None
        lib.backward(problem, policy, need_dx, need_dw, x.data_ptr(), w.data_ptr(), _ptr(bias),
                     dz.data_ptr(), _ptr(h), dx.data_ptr() if need_dx else 0,
                     dw.data_ptr() if need_dw else 0, _ptr(dbias) if need_dw and bias is not None else 0,
                     _ptr(workspace), ws_bytes, torch.cuda.current_stream().cuda_stream,
                     dh_storage, _ptr(h) if over_h else 0, bound)
    return dx, dw, dbias


def _backward_over_h_cuda(dz, x, w, bias, h, need_dx, need_dw, tf32):
    """The save policy's (dX, dW, dbias), with dH written over H."""
    return _backward_cuda(dz, x, w, bias, h, False, need_dx, need_dw, tf32, over_h=True)


def _backward_fake(dz, x, w, bias, h, recompute, need_dx, need_dw, tf32):
    dx = x.new_empty(x.shape if need_dx else (0,))
    dw = w.new_empty(w.shape if need_dw else (0,))
    dbias = bias.new_empty(bias.shape) if need_dw and bias is not None else w.new_empty((0,))
    return dx, dw, dbias


def _backward_over_h_fake(dz, x, w, bias, h, need_dx, need_dw, tf32):
    return _backward_fake(dz, x, w, bias, h, False, need_dx, need_dw, tf32)


# Whether the running backward keeps its graph (retain_graph, create_graph); None on a torch that
# cannot tell, which then never writes over H.
_KEEP_GRAPH = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def _h_dies_with_this_backward(*tensors) -> bool:
    """Whether the save policy's backward may write dH over the saved H: autograd frees the graph
    when this backward is done (no retain_graph or create_graph), and the tensors are plain eager
    ones (not a torch.compile trace, whose graph calls the operator that keeps H)."""
    if _KEEP_GRAPH is None or any(type(t) is not torch.Tensor for t in tensors):
        return False
    try:
        return not _KEEP_GRAPH()
    except RuntimeError:  # no graph task: not inside autograd's engine
        return False


def _save(ctx, x, w, bias, h, save_h, tf32):
    """What the backward needs: the inputs, H (empty unless save_h) and the math."""
    ctx.recompute = not save_h
    ctx.tf32 = tf32
    ctx.save_for_backward(x, w, bias, h)


def _backward(ctx, dz, wants):
    """Only the gradients autograd asks for (wants: whether x, w and bias need one): dX when X
    needs one, dW (with dbias, which the library computes together with dW) when W or the bias
    needs one. Frozen weights skip dW."""
    x, w, bias, h = ctx.saved_tensors
    want_x, want_w, want_b = wants[:3]
    need_dw = want_w or want_b
    if dz is None or not (want_x or need_dw):
        return None, None, None, None, None
    dz = dz.to(x.dtype)
    if not ctx.recompute and _h_dies_with_this_backward(dz, h):
        # H is needed by nobody after this call: dH goes over it instead of into a B×2D workspace
        # (a retained graph keeps H intact for the next backward, at the workspace's cost).
        dx, dw, dbias = torch.ops.swiglu.backward_over_h(dz, x, w, bias, h, want_x, need_dw, ctx.tf32)
    else:
        dx, dw, dbias = torch.ops.swiglu.backward(dz, x, w, bias, h, ctx.recompute, want_x, need_dw,
                                                  ctx.tf32)
    return (dx if want_x else None, dw if want_w else None, dbias if want_b else None, None, None)


if hasattr(torch.library, "custom_op"):  # torch >= 2.4

    def _setup_context(ctx, inputs, output):
        x, w, bias, save_h, tf32 = inputs
        _save(ctx, x, w, bias, output[1], save_h, tf32)
        ctx.mark_non_differentiable(output[1])
        # Why: H's gradient is always absent; materialising it would allocate B×2D zeros.
        ctx.set_materialize_grads(False)

    _forward_op = torch.library.custom_op("swiglu::forward", _forward_cuda, mutates_args=(),
                                          device_types="cuda", schema=_FORWARD_SCHEMA)
    _forward_op.register_fake(_forward_fake)
    _forward_op.register_autograd(lambda ctx, dz, _dh: _backward(ctx, dz, ctx.needs_input_grad),
                                  setup_context=_setup_context)
    _backward_op = torch.library.custom_op("swiglu::backward", _backward_cuda, mutates_args=(),
                                           device_types="cuda", schema=_BACKWARD_SCHEMA)
    _backward_op.register_fake(_backward_fake)
    _backward_over_h_op = torch.library.custom_op("swiglu::backward_over_h", _backward_over_h_cuda,
                                                  mutates_args=("h",), device_types="cuda",
                                                  schema=_BACKWARD_OVER_H_SCHEMA)
    _backward_over_h_op.register_fake(_backward_over_h_fake)

    def forward(x, w, bias, save_h, tf32):
        """Z of the fused forward, differentiable in x, w and bias."""
        return torch.ops.swiglu.forward(x, w, bias, save_h, tf32)[0]

else:  # torch 2.1 to 2.3
    _library = torch.library.Library("swiglu", "DEF")
    for _name, _schema, _cuda, _fake in (("forward", _FORWARD_SCHEMA, _forward_cuda, _forward_fake),
                                         ("backward", _BACKWARD_SCHEMA, _backward_cuda, _backward_fake),
                                         ("backward_over_h", _BACKWARD_OVER_H_SCHEMA,
                                          _backward_over_h_cuda, _backward_over_h_fake)):
        _library.define(_name + _schema)
        _library.impl(_name, _cuda, "CUDA")
        if hasattr(torch.library, "impl_abstract"):  # torch 2.2, 2.3
            torch.library.impl_abstract("swiglu::" + _name, _fake, lib=_library)
        else:  # torch 2.1: fake tensors fall back to Meta kernels
            _library.impl(_name, _fake, "Meta")

    class _Forward(torch.autograd.Function):
        # Why Z alone is the output (H is only saved) and the inputs' requires_grad stands in for
        # ctx.needs_input_grad: torch 2.1's compiler traces neither mark_non_differentiable (which
        # an H output would need) nor needs_input_grad.
        @staticmethod
        def forward(ctx, x, w, bias, save_h, tf32):
            z, h = torch.ops.swiglu.forward(x, w, bias, save_h, tf32)
            _save(ctx, x, w, bias, h, save_h, tf32)
            ctx.wants = (x.requires_grad, w.requires_grad, bias is not None and bias.requires_grad)
            return z

        @staticmethod
        def backward(ctx, dz):
            return _backward(ctx, dz, ctx.wants)

    def forward(x, w, bias, save_h, tf32):
        """Z of the fused forward, differentiable in x, w and bias."""
        return _Forward.apply(x, w, bias, save_h, tf32)
