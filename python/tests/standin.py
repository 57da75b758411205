"""CPU kernels in plain torch for torch.ops.swiglu.forward, .backward and .backward_over_h,
registered on import.

The fused kernels are CUDA-only. These stand-ins keep the C ABI's contract (H only when asked, an
empty tensor for every gradient not asked for), so that with functional._fallback_reason patched
to return None, fused_swiglu() on CPU tensors runs everything of the package but the kernels and
ctypes: the operators, their autograd, and the graphs torch.compile builds around them. Each call
is recorded, so a test can tell that the operators ran.
"""

import torch
import torch.nn.functional as F

SAVES = []  # save_h of each stand-in forward call
CALLS = []  # one dict per stand-in backward call


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


_standin = torch.library.Library("swiglu", "IMPL")
_standin.impl("forward", standin_forward, "CPU")
_standin.impl("backward", standin_backward, "CPU")
_standin.impl("backward_over_h",
              lambda dz, x, w, bias, h, need_dx, need_dw, tf32:
              standin_backward(dz, x, w, bias, h, False, need_dx, need_dw, tf32, over_h=True), "CPU")
