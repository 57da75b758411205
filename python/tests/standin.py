"""CPU kernels in plain torch for torch.ops.swiglu.forward, .backward and .backward_over_h, and for
the FP8 operators .quantize_e4m3, .forward_fp8, .forward_fp8_training and .backward_fp8, registered
on import.

The fused kernels are CUDA-only. These stand-ins keep the C ABI's contract (H only when asked, an
empty tensor for every gradient not asked for), so that with functional._fallback_reason patched
to return None, fused_swiglu() on CPU tensors runs everything of the package but the kernels and
ctypes: the operators, their autograd, and the graphs torch.compile builds around them. Each call
is recorded, so a test can tell that the operators ran.

The FP8 stand-ins do what the library's kernels do, from fp8_reference (the tests' own e4m3
arithmetic): quantise with amax/448 block scales, dequantise, compute in float32, and write Z in
the output dtype or quantised again in 1×128 blocks. They check their arguments with the package's
own checks, as the CUDA kernels do, so that those run on the host too. With swiglu.fp8's
unsupported_reason patched to return None, the FP8 mode then runs on CPU tensors.
"""

import torch
import torch.nn.functional as F

import fp8_reference as ref
from swiglu import _fp8_ops

SAVES = []  # save_h of each stand-in forward call
CALLS = []  # one dict per stand-in backward call
FP8_CALLS = []  # (operator, its string arguments) per stand-in FP8 call


def standin_forward(x, w, bias, save_h, tf32):
    SAVES.append(save_h)
    h = F.linear(x, w, bias)
    g, u = h.chunk(2, dim=-1)
    return F.silu(g) * u, (h if save_h else x.new_empty((0,)))


def standin_backward(dz, x, w, bias, h, recompute, need_dx, need_dw, tf32, over_h=False):
    CALLS.append({"recompute": recompute, "need_dx": need_dx, "need_dw": need_dw, "h_numel": h.numel(),
                  "over_h": over_h})
    if recompute:
        h = F.linear(x, w, bias)
    g, u = h.chunk(2, dim=-1)
    s = torch.sigmoid(g)
    dh = torch.cat([dz * u * s * (1 + g * (1 - s)), dz * g * s], dim=-1)
    if over_h:  # as the library does: H is gone, dH is in its place
        h.copy_(dh)
    dx = dh @ w if need_dx else x.new_empty((0,))
    dw = dh.t() @ x if need_dw else w.new_empty((0,))
    dbias = dh.sum(0) if need_dw and bias is not None else w.new_empty((0,))
    return dx, dw, dbias


def standin_quantize_e4m3(a, blocks):
    _fp8_ops._check_quantize(a, blocks)
    FP8_CALLS.append(("quantize_e4m3", blocks))
    return ref.quantize_blocks(a, 1 if blocks == "1x128" else 128)


def standin_forward_fp8(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype, z_e4m3):
    _fp8_ops._check_forward_fp8(x, x_scale, w, w_scale, bias, x_scaling, w_scaling, out_dtype)
    FP8_CALLS.append(("forward_fp8", x_scaling, w_scaling))
    # The kernel's arithmetic: products of the dequantised operands summed in float32.
    h = ref.dequantize_x(x, x_scale, x_scaling).float() @ ref.dequantize_w(w, w_scale, w_scaling).float().t()
    if bias is not None:
        h = h + bias.float()
    g, u = h.chunk(2, dim=-1)
    z = F.silu(g) * u
    if z_e4m3:
        return ref.quantize_blocks(z, 1)
    return z.to(out_dtype), x.new_empty((0,), dtype=torch.float32)


def _deq(q, scale, block_rows):
    """q (rows×cols e4m3) with its block_rows×128 scales, float32."""
    return q.float() * ref.expand(scale, q.shape[0], q.shape[1], block_rows).float()


def _weight_dequantised(w):
    """W12 quantised as the training operators do (128×128 blocks, Wa and Wb apart), dequantised."""
    hidden = w.shape[0] // 2
    return torch.cat([_deq(*ref.quantize_blocks(half, 128), 128) for half in (w[:hidden], w[hidden:])])


def standin_forward_fp8_training(x, w, bias, out_dtype, save):
    _fp8_ops._check_fp8_training(x, w, bias, out_dtype)
    FP8_CALLS.append(("forward_fp8_training", save))
    batch, in_features = x.shape
    h = _deq(*ref.quantize_blocks(x, 1), 1) @ _weight_dequantised(w).t()
    if bias is not None:
        h = h + bias.to(out_dtype).float()
    g, u = h.chunk(2, dim=-1)
    z = (F.silu(g) * u).to(out_dtype)
    if not save:
        return (z, x.new_empty((0,), dtype=out_dtype), x.new_empty((0,), dtype=_fp8_ops.E4M3),
                x.new_empty((0,), dtype=torch.float32))
    xtq, xt_scale = ref.quantize_blocks(x.t(), 1)  # Xᵀ, 1×128 blocks along the batch
    xt = torch.zeros((in_features, _fp8_ops.padded16(batch)), dtype=torch.float32).to(_fp8_ops.E4M3)
    xt[:, :batch] = xtq
    return z, h.to(out_dtype), xt, xt_scale


def standin_backward_fp8(dz, w, h, xt, xt_scale, need_dx, need_dw, need_dbias, dx_dtype, dbias_dtype):
    _fp8_ops._check_backward_fp8(dz, w, h, xt, xt_scale)
    FP8_CALLS.append(("backward_fp8", need_dx, need_dw, need_dbias))
    batch, hidden = dz.shape
    dz32 = dz.float()
    g, u = h.float().chunk(2, dim=-1)
    s = torch.sigmoid(g)
    dg, du = dz32 * u * s * (1 + g * (1 - s)), dz32 * g * s
    empty = dz.new_empty((0,))
    dx = dw = dbias = empty
    if need_dx:  # dH in 1×128 blocks along each half, W12 in 128×128 blocks
        dh = torch.cat([_deq(*ref.quantize_blocks(dg, 1), 1), _deq(*ref.quantize_blocks(du, 1), 1)], dim=1)
        dx = (dh @ _weight_dequantised(w)).to(dx_dtype)
    if need_dw:  # dHᵀ and Xᵀ in 1×128 blocks along the batch
        dht = _deq(*ref.quantize_blocks(torch.cat([dg, du], dim=1).t(), 1), 1)
        dw = (dht @ _deq(xt[:, :batch], xt_scale, 1).t()).to(w.dtype)
    if need_dbias:
        dbias = torch.cat([dg, du], dim=1).sum(0).to(dbias_dtype)
    return (dx if need_dx else dz.new_empty((0,), dtype=dx_dtype), dw if need_dw else w.new_empty((0,)),
            dbias if need_dbias else dz.new_empty((0,), dtype=dbias_dtype))


_standin = torch.library.Library("swiglu", "IMPL")
_standin.impl("forward", standin_forward, "CPU")
_standin.impl("backward", standin_backward, "CPU")
_standin.impl("backward_over_h",
              lambda dz, x, w, bias, h, need_dx, need_dw, tf32:
              standin_backward(dz, x, w, bias, h, False, need_dx, need_dw, tf32, over_h=True), "CPU")
if _fp8_ops.E4M3 is not None:
    _standin.impl("quantize_e4m3", standin_quantize_e4m3, "CPU")
    _standin.impl("forward_fp8", standin_forward_fp8, "CPU")
    _standin.impl("forward_fp8_training", standin_forward_fp8_training, "CPU")
    _standin.impl("backward_fp8", standin_backward_fp8, "CPU")
