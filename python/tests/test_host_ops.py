"""The operators' autograd and torch.compile plumbing, without a GPU.

The fused kernels are CUDA-only, so these tests give torch.ops.swiglu.forward and .backward a CPU
kernel written in plain torch (a stand-in that keeps the C ABI's contract: H only when asked, an
empty tensor for every gradient not asked for) and make fused_swiglu() take the kernel path on CPU.
What runs is then everything of the package but the kernels and ctypes: which gradients the
backward asks for, what each policy keeps, reshaping of leading dimensions, and the graphs
torch.compile builds. test_gpu.py runs the same paths on the real kernels.

The stand-in kernels (standin.py) stay registered for the rest of the pytest process; nothing else
calls the operators on CPU tensors.
"""

import pytest
import torch

import swiglu
from swiglu import _ops, functional

from standin import CALLS, SAVES  # noqa: F401  (registers the stand-in kernels)


@pytest.fixture(autouse=True)
def kernel_path_on_cpu(monkeypatch):
    """fused_swiglu() on CPU tensors calls the operators instead of falling back."""
    monkeypatch.setattr(functional, "_fallback_reason", lambda x: None)
    SAVES.clear()
    CALLS.clear()


# Whether this torch lets the save policy's backward write dH over H: it must tell whether the
# graph is retained (torch 2.5 and newer).
OVER_H = _ops._KEEP_GRAPH is not None


def inputs(shape=(2, 3, 5), hidden=4, bias=True, dtype=torch.float64):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    w = torch.randn(2 * hidden, shape[-1], dtype=dtype, requires_grad=True)
    b = torch.randn(2 * hidden, dtype=dtype, requires_grad=True) if bias else None
    return x, w, b


def grads_of(fn, x, w, b, dz):
    x, w = x.detach().requires_grad_(x.requires_grad), w.detach().requires_grad_(w.requires_grad)
    b = None if b is None else b.detach().requires_grad_(b.requires_grad)
    z = fn(x, w, b)
    z.backward(dz)
    return z, x.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize("policy", ["save", "recompute"])
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_through_the_operators(policy, bias):
    x, w, b = inputs(bias=bias)
    dz = torch.randn(2, 3, 4, dtype=torch.float64)
    got = grads_of(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    ref = grads_of(swiglu.reference_swiglu, x, w, b, dz)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    assert CALLS == [{"recompute": policy == "recompute", "need_dx": True, "need_dw": True,
                      "h_numel": 0 if policy == "recompute" else 6 * 8,
                      "over_h": policy == "save" and OVER_H}]


@pytest.mark.parametrize("x_grad, w_grad", [(True, True), (True, False), (False, True)])
def test_save_writes_dh_over_h_when_the_graph_dies(x_grad, w_grad):
    """Without retain_graph the save policy's backward consumes H (backward_over_h), frozen
    weights and a frozen input included; the gradients are the same."""
    x, w, b = inputs()
    x.requires_grad_(x_grad)
    w.requires_grad_(w_grad)
    b.requires_grad_(w_grad)
    dz = torch.randn(2, 3, 4, dtype=torch.float64)
    got = grads_of(lambda *t: swiglu.fused_swiglu(*t, policy="save"), x, w, b, dz)
    ref = grads_of(swiglu.reference_swiglu, x, w, b, dz)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    assert [c["over_h"] for c in CALLS] == [OVER_H]


def test_a_retained_graph_keeps_h_for_the_next_backward():
    """retain_graph=True: the first backward leaves H intact, so the second one is right too (and,
    as the graph then dies, consumes H)."""
    x, w, b = inputs()
    dz = torch.randn(2, 3, 4, dtype=torch.float64)
    z = swiglu.fused_swiglu(x, w, b, policy="save")
    z.backward(dz, retain_graph=True)
    first = [t.grad.clone() for t in (x, w, b)]
    z.backward(dz)
    for t, g in zip((x, w, b), first):
        torch.testing.assert_close(t.grad, 2 * g)
    _, *ref = grads_of(swiglu.reference_swiglu, x, w, b, dz)
    for g, r in zip(first, ref):
        torch.testing.assert_close(g, r)
    assert [c["over_h"] for c in CALLS] == [False, OVER_H]
    # torch.autograd.grad with create_graph keeps the graph as well.
    z = swiglu.fused_swiglu(x, w, b, policy="save")
    torch.autograd.grad(z, (x, w, b), dz, create_graph=True)
    assert CALLS[-1]["over_h"] is False


def test_gradcheck_through_the_operators():
    """gradcheck of the autograd plumbing (with the float64 stand-in kernels, not the real ones)."""
    x, w, b = inputs(shape=(3, 4), hidden=2)
    for policy in ("save", "recompute"):
        assert torch.autograd.gradcheck(lambda *t: swiglu.fused_swiglu(*t, policy=policy), (x, w, b))


@pytest.mark.parametrize("x_grad, w_grad, b_grad, need_dx, need_dw", [
    (True, False, False, True, False),   # frozen weights: no dW GEMM
    (False, True, True, False, True),    # first layer: no dX
    (True, False, True, True, True),     # a trainable bias needs the dW pass, which computes dbias
    (False, False, True, False, True),
])
def test_backward_computes_only_what_is_needed(x_grad, w_grad, b_grad, need_dx, need_dw):
    x, w, b = inputs()
    x.requires_grad_(x_grad)
    w.requires_grad_(w_grad)
    b.requires_grad_(b_grad)
    swiglu.fused_swiglu(x, w, b).sum().backward()
    assert [(c["need_dx"], c["need_dw"]) for c in CALLS] == [(need_dx, need_dw)]
    assert (x.grad is not None, w.grad is not None, b.grad is not None) == (x_grad, w_grad, b_grad)


def test_pre_activations_kept_only_for_a_backward():
    x, w, b = inputs()
    with torch.no_grad():
        swiglu.fused_swiglu(x, w, b, policy="save")
    swiglu.fused_swiglu(x.detach(), w.detach(), None, policy="save")  # nothing requires grad
    swiglu.fused_swiglu(x, w, b, policy="recompute")
    swiglu.fused_swiglu(x, w, b, policy="save")
    assert SAVES == [False, False, False, True]


def test_leading_dimensions_and_strides():
    x, w, b = inputs(shape=(3, 4, 5))
    for xv in (x, x.transpose(0, 1), x[:, 1], x[0, 0]):
        z = swiglu.fused_swiglu(xv, w, b)
        assert z.shape == (*xv.shape[:-1], 4)
        torch.testing.assert_close(z, swiglu.reference_swiglu(xv, w, b))


def test_compiled_graphs_call_the_operators():
    """torch.compile with fullgraph=True, both policies: one graph, whose forward calls
    swiglu.forward and whose backward calls swiglu.backward (captured through aot_autograd)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = {}

    def recorder(kind):
        def compiler(gm, example_inputs):
            graphs[kind] = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
            return make_boxed_func(gm.forward)
        return compiler

    torch._dynamo.reset()
    backend = aot_autograd(fw_compiler=recorder("forward"), bw_compiler=recorder("backward"))
    for policy in ("recompute", "save"):
        torch._dynamo.reset()
        fn = torch.compile(lambda x, w, b: swiglu.fused_swiglu(x, w, b, policy=policy),
                           backend=backend, fullgraph=True)
        x, w, b = inputs()
        dz = torch.randn(2, 3, 4, dtype=torch.float64)
        got = grads_of(fn, x, w, b, dz)
        ref = grads_of(swiglu.reference_swiglu, x, w, b, dz)
        for g, r in zip(got, ref):
            torch.testing.assert_close(g, r)
        assert "swiglu.forward.default" in graphs["forward"], graphs
        # A traced backward keeps H (the operator that writes over it is for eager tensors).
        assert "swiglu.backward.default" in graphs["backward"], graphs
