"""GPU tests of the swiglu package: the fused kernels through PyTorch (needs a CUDA device and
libswiglu_c; the whole file skips without a device).

- The forward and every gradient against a float64 PyTorch reference, at TESTING.md's per-dtype
  tolerances, on the C++ tests' tail shapes, both policies, with and without bias; TF32.
- The same against what people run today: two nn.Linear and Liger-Kernel's LigerSiLUMulFunction
  (skipped when liger-kernel is not installed), and a few training steps against two nn.Linear.
- Gradient checks. torch.autograd.gradcheck needs float64 and the kernels have none, so: gradcheck
  runs on float64 CUDA tensors, which is the fallback (the reference), and the kernels' float32
  analytic gradients are checked against float64 finite differences at a float32 tolerance.
- Only the gradients autograd asks for are computed; what each policy keeps; leading dimensions,
  strides, empty batches, 1-D input; the current stream; another GPU; autocast.
- CUDA graph capture and torch.compile (the compiled graphs call the operators; opcheck).
- README.md's "Swapping it into your model" code, run as written.
- FP8 inference (compute capability 9.0): the quantiser bit for bit against the tests' own; the
  FP8 module element by element against float64 on the dequantised operands (the C++ FP8 test's
  bound) and against the bf16 module, every weight scaling, bf16 and e4m3 Z; the current stream;
  CUDA graph capture (and refresh_fp8 reaching it) and torch.compile; swiglu_check_fp8_scales'
  message on a NaN, zero, negative or infinite weight scale; elsewhere, a clear error.
"""

import math
import pathlib
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import swiglu
from checks import FORWARD_TOL, GRADIENT_TOL, assert_close, errors
from swiglu import _ops, functional

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

DEVICE = "cuda"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
POLICIES = ["save", "recompute"]
# (leading dimensions of x, I, D): the C++ tests' tails (multiples of no tile) and MNIST, and a
# (B, S, I) input.
SHAPES = [((1,), 777, 1001), ((37,), 64, 72), ((130,), 256, 264), ((64,), 784, 512), ((2, 33), 128, 96)]


def shape_id(shape):
    lead, i, d = shape
    return "x".join(map(str, lead)) + f"-I{i}-D{d}"


def twice(tol):
    """The tolerance between two results that are each within tol of the reference."""
    return (2 * tol[0], 2 * tol[1])


@pytest.fixture(autouse=True)
def exact_float32():
    """float32 matmuls (ours and torch's) run exact unless a test turns TF32 on."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


def make_inputs(lead, i, d, dtype, bias, seed=0, device=DEVICE):
    """TESTING.md's inputs: X, dZ ~ U(-1, 1), W and bias ~ U(-1/sqrt(I), 1/sqrt(I))."""
    g = torch.Generator(device=device).manual_seed(seed)

    def uniform(*shape, scale=1.0):
        return ((torch.rand(*shape, generator=g, device=device) * 2 - 1) * scale).to(dtype)

    k = 1 / math.sqrt(i)
    return (uniform(*lead, i), uniform(2 * d, i, scale=k), uniform(2 * d, scale=k) if bias else None,
            uniform(*lead, d))


def run(fn, x, w, b, dz):
    """fn(x, w, b) and its gradients (None where the input is None) for the cotangent dz. The
    inputs keep their strides (detach, not clone: a clone of a padded view is contiguous)."""
    x, w = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
    b = None if b is None else b.detach().requires_grad_(True)
    z = fn(x, w, b)
    z.backward(dz.to(z.dtype))
    return z.detach(), x.grad, w.grad, None if b is None else b.grad


def reference(x, w, b, dz):
    """The float64 reference: the same inputs (already rounded to their dtype) in float64."""
    return run(swiglu.reference_swiglu, x.double(), w.double(), None if b is None else b.double(), dz.double())


def check_all(got, ref, dtype_key, what=""):
    z, dx, dw, db = got
    z_ref, dx_ref, dw_ref, db_ref = ref
    assert_close(f"{what}Z", z, z_ref, FORWARD_TOL[dtype_key])
    assert_close(f"{what}dX", dx, dx_ref, GRADIENT_TOL[dtype_key])
    assert_close(f"{what}dW", dw, dw_ref, GRADIENT_TOL[dtype_key])
    if db_ref is not None:
        assert_close(f"{what}dbias", db, db_ref, GRADIENT_TOL[dtype_key])


# ---- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_and_gradients_match_float64(shape, dtype, bias, policy):
    x, w, b, dz = make_inputs(*shape, dtype, bias)
    got = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    assert got[0].dtype == dtype and got[0].shape == (*shape[0], shape[2])
    check_all(got, reference(x, w, b, dz), dtype)


@pytest.mark.parametrize("policy", POLICIES)
def test_tf32_follows_torch_and_the_argument(policy):
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs compute capability 8.0")
    x, w, b, dz = make_inputs((64,), 784, 512, torch.float32, True)
    ref = reference(x, w, b, dz)
    exact = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    torch.backends.cuda.matmul.allow_tf32 = True
    following = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    torch.backends.cuda.matmul.allow_tf32 = False
    asked = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy, tf32=True), x, w, b, dz)
    check_all(exact, ref, torch.float32)
    for name, got in (("allow_tf32 ", following), ("tf32=True ", asked)):
        check_all(got, ref, "tf32", name)
        # Proof that TF32 ran: Z's error is near 1e-6 in exact float32 here and near 5e-4 with
        # TF32's 10-bit mantissas.
        assert errors(got[0], ref[0])[0] > 1e-5, name


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matches_two_linears_and_liger_gate(dtype, bias, policy):
    liger = pytest.importorskip("liger_kernel.ops.swiglu")
    torch.manual_seed(0)
    fc1_a = nn.Linear(784, 1024, bias=bias, device=DEVICE, dtype=dtype)
    fc1_b = nn.Linear(784, 1024, bias=bias, device=DEVICE, dtype=dtype)
    fused = swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b, policy=policy)
    x = torch.rand(4, 33, 784, device=DEVICE, dtype=dtype) * 2 - 1
    dz = torch.rand(4, 33, 1024, device=DEVICE, dtype=dtype) * 2 - 1

    x_fused = x.clone().requires_grad_(True)
    z = fused(x_fused)
    z.backward(dz)
    x_liger = x.clone().requires_grad_(True)
    z_liger = liger.LigerSiLUMulFunction.apply(fc1_a(x_liger), fc1_b(x_liger))
    z_liger.backward(dz)

    ours = (z.detach(), x_fused.grad, fused.weight.grad, fused.bias.grad if bias else None)
    theirs = (z_liger.detach(), x_liger.grad, torch.cat([fc1_a.weight.grad, fc1_b.weight.grad]),
              torch.cat([fc1_a.bias.grad, fc1_b.bias.grad]) if bias else None)
    ref = reference(x, fused.weight.detach(), fused.bias.detach() if bias else None, dz)
    check_all(ours, ref, dtype, "fused ")
    check_all(theirs, ref, dtype, "Liger ")
    for name, a, c, tol in zip(("Z", "dX", "dW", "dbias"), ours, theirs,
                               (FORWARD_TOL[dtype],) + (GRADIENT_TOL[dtype],) * 3):
        if a is not None:
            assert_close(f"fused against Liger: {name}", a, c, twice(tol))


@pytest.mark.parametrize("policy", POLICIES)
def test_trains_like_two_linears(policy):
    """Twenty SGD steps of a SwiGLU MLP: the fused layer's weights follow the two nn.Linear's."""
    torch.manual_seed(0)
    fc1_a, fc1_b = (nn.Linear(64, 96, device=DEVICE) for _ in range(2))
    fc2 = nn.Linear(96, 64, device=DEVICE)
    fused = swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b, policy=policy)
    fc2_fused = nn.Linear(96, 64, device=DEVICE)
    fc2_fused.load_state_dict(fc2.state_dict())
    ref_params = [*fc1_a.parameters(), *fc1_b.parameters(), *fc2.parameters()]
    opt_ref = torch.optim.SGD(ref_params, lr=0.05)
    opt_fused = torch.optim.SGD([*fused.parameters(), *fc2_fused.parameters()], lr=0.05)
    x = torch.randn(256, 64, device=DEVICE)
    target = torch.tanh(x @ torch.randn(64, 64, device=DEVICE) / 8)  # a function the MLP can learn
    losses = {"two nn.Linear": [], "FusedSwiGLU": []}
    for _ in range(20):
        for opt, model, name in ((opt_ref, lambda t: fc2(F.silu(fc1_a(t)) * fc1_b(t)), "two nn.Linear"),
                                 (opt_fused, lambda t: fc2_fused(fused(t)), "FusedSwiGLU")):
            opt.zero_grad()
            loss = F.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    assert losses["FusedSwiGLU"][-1] < losses["FusedSwiGLU"][0], losses
    torch.testing.assert_close(losses["FusedSwiGLU"], losses["two nn.Linear"], rtol=1e-4, atol=0)
    assert_close("Wa, Wb after training", fused.weight, torch.cat([fc1_a.weight, fc1_b.weight]), (1e-4, 1e-3))
    assert_close("ba, bb after training", fused.bias, torch.cat([fc1_a.bias, fc1_b.bias]), (1e-4, 1e-3))
    assert_close("fc2 after training", fc2_fused.weight, fc2.weight, (1e-4, 1e-3))


def test_gradcheck_float64_runs_the_fallback():
    """torch.autograd.gradcheck in float64 on CUDA tensors. What it checks: the fallback, autograd
    through reference_swiglu (the kernels have no float64, so float64 falls back, and says so).
    The kernels' own gradients are the next test's."""
    functional._warned.clear()
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(3, 2, 5, dtype=torch.float64, device=DEVICE, generator=g, requires_grad=True)
    w = torch.randn(8, 5, dtype=torch.float64, device=DEVICE, generator=g, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, device=DEVICE, generator=g, requires_grad=True)
    with pytest.warns(swiglu.FallbackWarning, match="dtype torch.float64"):
        swiglu.fused_swiglu(x, w, b)
    for policy in POLICIES:
        assert torch.autograd.gradcheck(lambda *t: swiglu.fused_swiglu(*t, policy=policy), (x, w, b))


@pytest.mark.parametrize("policy", POLICIES)
def test_float32_kernel_gradients_match_float64_finite_differences(policy):
    """What this checks: the fused kernels' float32 analytic gradients (dX, dW, dbias) against
    numerical derivatives of L = Σ Z ⊙ dZ, where Z is the float64 reference function of the same
    inputs: central differences at h = 2⁻¹⁰ and 2⁻¹¹ combined by Richardson extrapolation (error
    O(h⁴)), as TESTING.md's check of the C++ reference. The inputs are multiples of 2⁻¹² below 4 in
    magnitude, so θ ± h is exact. The tolerance is float32's: the largest
    |analytic − numeric| / max(|numeric|, 10⁻³·max|numeric|) must stay below 1e-4."""
    gen = torch.Generator().manual_seed(3)

    def quantised(*shape, scale):
        return torch.round((torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale * 4096) / 4096

    x, w, b, dz = quantised(3, 5, scale=2), quantised(8, 5, scale=1), quantised(8, scale=1), quantised(3, 4, scale=1)
    got = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy),
              *(t.float().to(DEVICE) for t in (x, w, b, dz)))

    def loss(x_, w_, b_):
        return (swiglu.reference_swiglu(x_, w_, b_) * dz).sum().item()

    params = [x, w, b]
    for which, analytic in zip(range(3), got[1:]):
        numeric = torch.zeros_like(params[which])
        flat = numeric.view(-1)
        for k in range(flat.numel()):
            def diff(h):
                plus = [p.clone() for p in params]
                minus = [p.clone() for p in params]
                plus[which].view(-1)[k] += h
                minus[which].view(-1)[k] -= h
                return (loss(*plus) - loss(*minus)) / (2 * h)
            flat[k] = (4 * diff(2.0 ** -11) - diff(2.0 ** -10)) / 3
        a = analytic.double().cpu()
        floor = 1e-3 * numeric.abs().max().item()
        worst = ((a - numeric).abs() / torch.clamp(numeric.abs(), min=floor)).max().item()
        assert worst < 1e-4, f"{['dX', 'dW', 'dbias'][which]}: relative error {worst:.2e}"


# ---- what runs ---------------------------------------------------------------------------------


# Whether this torch lets the save policy's backward write dH over H (it tells a backward whether
# its graph is retained from torch 2.5 on).
OVER_H = _ops._KEEP_GRAPH is not None


@pytest.fixture
def backward_calls(monkeypatch):
    """(operator, need_dx, need_dw) of every torch.ops.swiglu.backward and .backward_over_h call."""
    calls = []
    real, real_over_h = torch.ops.swiglu.backward, torch.ops.swiglu.backward_over_h

    def logged(dz, x, w, bias, h, recompute, need_dx, need_dw, tf32):
        calls.append(("backward", need_dx, need_dw))
        return real(dz, x, w, bias, h, recompute, need_dx, need_dw, tf32)

    def logged_over_h(dz, x, w, bias, h, need_dx, need_dw, tf32):
        calls.append(("backward_over_h", need_dx, need_dw))
        return real_over_h(dz, x, w, bias, h, need_dx, need_dw, tf32)

    monkeypatch.setattr(torch.ops.swiglu, "backward", logged)
    monkeypatch.setattr(torch.ops.swiglu, "backward_over_h", logged_over_h)
    return calls


@pytest.mark.parametrize("x_grad, w_grad, b_grad, need_dx, need_dw", [
    (True, False, False, True, False),   # frozen weights: no dW GEMM
    (False, True, True, False, True),    # first layer: no dX
    (True, False, True, True, True),     # a trainable bias needs the dW pass, which computes dbias
])
def test_backward_computes_only_what_is_needed(backward_calls, x_grad, w_grad, b_grad, need_dx, need_dw):
    x, w, b, dz = make_inputs((64,), 784, 512, torch.bfloat16, True)
    x.requires_grad_(x_grad)
    w.requires_grad_(w_grad)
    b.requires_grad_(b_grad)
    swiglu.fused_swiglu(x, w, b).backward(dz)
    assert backward_calls == [("backward_over_h" if OVER_H else "backward", need_dx, need_dw)]
    assert (x.grad is not None, w.grad is not None, b.grad is not None) == (x_grad, w_grad, b_grad)
    ref = reference(x, w, b, dz)
    for got, want, name in ((x.grad, ref[1], "dX"), (w.grad, ref[2], "dW"), (b.grad, ref[3], "dbias")):
        if got is not None:
            assert_close(name, got, want, GRADIENT_TOL[torch.bfloat16])


@pytest.mark.parametrize("policy, grad, kept", [
    ("save", True, "Z and H"), ("recompute", True, "Z"), ("save", False, "Z"), ("recompute", False, "Z")])
def test_memory_kept_by_each_policy(policy, grad, kept):
    """What stays allocated after the forward: Z, plus H = [G | U] only for save with a backward
    to come. The sizes are multiples of the allocator's 512-byte blocks, so the count is exact."""
    batch, i, d = 4096, 256, 1024
    x, w, b, _ = make_inputs((batch,), i, d, torch.bfloat16, True)
    x.requires_grad_(grad)
    w.requires_grad_(grad)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    z = swiglu.fused_swiglu(x, w, b, policy=policy)
    torch.cuda.synchronize()
    z_bytes, h_bytes = batch * d * 2, batch * 2 * d * 2
    assert torch.cuda.memory_allocated() - before == z_bytes + (h_bytes if kept == "Z and H" else 0)
    del z


def backward_peak(x, w, b, dz, policy, retain_graph):
    """A fused forward of x, w, b (leaves that need gradients), then its backward from dz: the
    backward's peak allocation above what the forward left, and (Z, dX, dW, dbias)."""
    xs, ws, bs = (t.detach().requires_grad_(True) for t in (x, w, b))
    z = swiglu.fused_swiglu(xs, ws, bs, policy=policy)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    z.backward(dz, retain_graph=retain_graph)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before, (z.detach(), xs.grad, ws.grad, bs.grad)


@pytest.mark.skipif(not OVER_H, reason="this torch cannot tell a retained graph (torch 2.5 and newer can)")
def test_save_backward_writes_dh_over_h():
    """The save policy's backward needs no B×2D buffer beyond the saved H: dG and dU go over H,
    which dies with the graph. Its peak above what the forward left is the gradients alone (plus
    allocator blocks of 512 bytes), where a retained graph, which keeps H intact, adds dH's
    workspace on top. (I = 1024 gives the dX GEMM enough blocks to need no split-K sums.)"""
    batch, i, d = 4096, 1024, 1024
    x, w, b, dz = make_inputs((batch,), i, d, torch.bfloat16, True)
    grads_bytes = (batch * i + 2 * d * i + 2 * d) * 2
    h_bytes = batch * 2 * d * 2
    extra = {}
    for retain in (False, True):
        extra[retain], got = backward_peak(x, w, b, dz, "save", retain)
        check_all(got, reference(x, w, b, dz), torch.bfloat16, f"retain_graph={retain}: ")
    assert extra[False] <= grads_bytes + 4096, extra
    assert extra[True] >= grads_bytes + h_bytes, extra


@pytest.mark.parametrize("frozen", [False, True])
def test_a_retained_graph_gives_the_same_gradients_twice(backward_calls, frozen):
    """retain_graph: the first backward keeps H (the workspace path), so the second one, which
    may then consume it, gets the same gradients; frozen weights take the same paths."""
    x, w, b, dz = make_inputs((130,), 256, 264, torch.bfloat16, True)
    xs, ws, bs = x.detach().requires_grad_(True), w.detach().requires_grad_(not frozen), b.detach()
    bs.requires_grad_(not frozen)
    z = swiglu.fused_swiglu(xs, ws, bs, policy="save")
    wanted = (xs,) if frozen else (xs, ws, bs)
    first = torch.autograd.grad(z, wanted, dz, retain_graph=True)
    second = torch.autograd.grad(z, wanted, dz)
    ref = reference(x, w, b, dz)[1:]
    for k, (g1, g2) in enumerate(zip(first, second)):
        name = ("dX", "dW", "dbias")[k]
        assert_close(f"first {name}", g1, ref[k], GRADIENT_TOL[torch.bfloat16])
        assert_close(f"second {name}", g2, ref[k], GRADIENT_TOL[torch.bfloat16])
    second_op = "backward_over_h" if OVER_H else "backward"
    assert backward_calls == [("backward", True, not frozen), (second_op, True, not frozen)]


@pytest.mark.parametrize("policy", POLICIES)
def test_backward_in_row_chunks(monkeypatch, policy):
    """SWIGLU_BACKWARD_CHUNK_ROWS=64: a backward whose workspace holds dH (recompute; save through a
    retained graph, which keeps H) runs in four chunks of 75 rows, with the gradients of one piece
    and a peak lower by at least half the rows' buffer it no longer holds."""
    batch, i, d = 300, 256, 264
    x, w, b, dz = make_inputs((batch,), i, d, torch.bfloat16, True)
    ref = reference(x, w, b, dz)
    peaks = {}
    for rows in ("0", "64"):
        monkeypatch.setenv(_ops.CHUNK_ROWS_ENV, rows)
        peaks[rows], got = backward_peak(x, w, b, dz, policy, True)
        check_all(got, ref, torch.bfloat16, f"rows={rows}: ")
    dh_bytes = batch * 2 * d * 2
    assert peaks["64"] <= peaks["0"] - dh_bytes // 2, peaks


# ---- inputs ------------------------------------------------------------------------------------


def strided_views(dtype):
    """(name, x of shape (B, ..., I) as a view of something else)."""
    g = torch.Generator(device=DEVICE).manual_seed(5)
    base = (torch.rand(48, 784 + 8, device=DEVICE, generator=g) * 2 - 1).to(dtype)
    cube = (torch.rand(4, 784, 12, device=DEVICE, generator=g) * 2 - 1).to(dtype)
    return [
        ("padded rows (read in place)", base[:, :784]),
        ("padded rows ending past the storage (copied)", base[:, 8:]),
        ("transposed (copied)", cube.transpose(1, 2)),
        ("every other row", base[::2, :784]),
        ("one row", base[3, :784]),
    ]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_and_shaped_inputs(dtype, policy):
    w_, b_ = make_inputs((1,), 784, 512, dtype, True)[1:3]
    for name, x in strided_views(dtype):
        dz = torch.rand(*x.shape[:-1], 512, device=DEVICE).to(dtype)
        got = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w_, b_, dz)
        assert got[1].shape == x.shape, name
        check_all(got, reference(x, w_, b_, dz), dtype, name + ": ")


def test_gradient_reaches_a_strided_input():
    """A non-contiguous x keeps its gradient flowing through the copy the kernel reads."""
    base = torch.rand(8, 800, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    w, b = make_inputs((1,), 784, 512, torch.bfloat16, True)[1:3]
    z = swiglu.fused_swiglu(base[:, 8:792], w, b)
    z.sum().backward()
    assert base.grad[:, :8].abs().sum() == 0 and base.grad[:, 792:].abs().sum() == 0
    assert base.grad[:, 8:792].abs().sum() > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_empty_batch(policy):
    x, w, b, dz = make_inputs((0,), 784, 512, torch.bfloat16, True)
    z, dx, dw, db = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    assert z.shape == (0, 512) and dx.shape == (0, 784)
    assert dw.abs().sum() == 0 and db.abs().sum() == 0


def test_weights_of_any_layout_are_accepted():
    """A transposed (non-contiguous) weight view: the kernel reads a copy, the gradient reaches the
    base tensor."""
    x, w, b, dz = make_inputs((64,), 256, 128, torch.float32, True)
    base = w.t().contiguous().requires_grad_(True)  # (I, 2D); base.t() is w, not contiguous
    xg = x.clone().requires_grad_(True)
    swiglu.fused_swiglu(xg, base.t(), b).backward(dz)
    ref = reference(x, w, b, dz)
    assert_close("dW through a transposed view", base.grad.t(), ref[2], GRADIENT_TOL[torch.float32])


def test_runs_on_the_current_stream():
    """On a side stream that is still busy (a sleep, then the copy into x), the kernel must wait
    for the copy: it reads the new x only if it was queued on that stream."""
    x_new, w, b, _ = make_inputs((64,), 784, 512, torch.bfloat16, True)
    x = torch.zeros_like(x_new)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)  # tens of milliseconds of GPU time
        x.copy_(x_new)
        z = swiglu.fused_swiglu(x, w, b)
    side.synchronize()
    assert_close("Z on a side stream", z, swiglu.reference_swiglu(x_new.double(), w.double(), b.double()),
                 FORWARD_TOL[torch.bfloat16])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("policy", POLICIES)
def test_tensors_on_another_gpu(policy):
    x, w, b, dz = make_inputs((130,), 256, 264, torch.bfloat16, True, device="cuda:1")
    with torch.cuda.device(0):
        got = run(lambda *t: swiglu.fused_swiglu(*t, policy=policy), x, w, b, dz)
    assert got[0].device == torch.device("cuda:1")
    check_all(got, reference(x, w, b, dz), torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_like_nn_linear(dtype):
    torch.manual_seed(0)
    fc1_a, fc1_b = nn.Linear(784, 512, device=DEVICE), nn.Linear(784, 512, device=DEVICE)
    fused = swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b)
    x = torch.rand(2, 40, 784, device=DEVICE) * 2 - 1
    x_fused, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with torch.autocast("cuda", dtype=dtype):
        z = fused(x_fused)
        z_ref = F.silu(fc1_a(x_ref)) * fc1_b(x_ref)
    assert z.dtype == z_ref.dtype == dtype
    dz = (torch.rand_like(z, dtype=torch.float32) * 2 - 1).to(dtype)
    z.backward(dz)
    z_ref.backward(dz)
    assert fused.weight.grad.dtype == torch.float32 and x_fused.grad.dtype == torch.float32
    assert_close("Z under autocast", z, z_ref, twice(FORWARD_TOL[dtype]))
    assert_close("dX under autocast", x_fused.grad, x_ref.grad, twice(GRADIENT_TOL[dtype]))
    assert_close("dW under autocast", fused.weight.grad, torch.cat([fc1_a.weight.grad, fc1_b.weight.grad]),
                 twice(GRADIENT_TOL[dtype]))


def test_float64_on_cuda_falls_back_once():
    functional._warned.clear()
    x, w = torch.rand(4, 8, device=DEVICE, dtype=torch.float64), torch.rand(6, 8, device=DEVICE, dtype=torch.float64)
    with pytest.warns(swiglu.FallbackWarning, match="float64") as caught:
        swiglu.fused_swiglu(x, w)
        swiglu.fused_swiglu(x, w)
    assert len([c for c in caught if issubclass(c.category, swiglu.FallbackWarning)]) == 1


def test_bad_operator_arguments_are_errors():
    """The operators check what the kernels would otherwise read out of bounds, and the library's
    own errors (here an X pointer off its element alignment) reach Python with their message."""
    x, w, _, dz = make_inputs((64,), 784, 512, torch.bfloat16, False)
    no_h = torch.empty(0, device=DEVICE, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"h must be torch.bfloat16 \(64, 1024\)"):
        torch.ops.swiglu.backward(dz, x, w, None, no_h, False, True, True, None)
    with pytest.raises(ValueError, match=r"dz must be torch.bfloat16 \(64, 512\).*got torch.float32"):
        torch.ops.swiglu.backward(dz.float(), x, w, None, no_h, True, True, True, None)
    with pytest.raises(ValueError, match=r"w must be \(2\*hidden, 784\)"):
        torch.ops.swiglu.forward(x, w[:, :700], None, False, None)
    from swiglu import _lib

    p = _lib.Problem(batch=64, in_features=784, hidden=512, ldx=0, dtype=_lib.DTYPE_BF16,
                     layout=_lib.LAYOUT_LINEAR, bias=0, math=_lib.MATH_EXACT)
    z = torch.empty(64, 512, device=DEVICE, dtype=torch.bfloat16)
    with pytest.raises(swiglu.SwigluError, match="SWIGLU_INVALID_ARGUMENT: x is not aligned to its element size"):
        _lib.library().forward(p, x.data_ptr() + 1, w.data_ptr(), 0, z.data_ptr(), 0,
                               torch.cuda.current_stream().cuda_stream)


# ---- CUDA graphs and torch.compile -------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_cuda_graph_captures_forward_and_backward(policy):
    torch.manual_seed(0)
    fused = swiglu.FusedSwiGLU(784, 512, policy=policy, device=DEVICE, dtype=torch.bfloat16)
    static_x = torch.zeros(256, 784, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    static_dz = torch.zeros(256, 512, device=DEVICE, dtype=torch.bfloat16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graph asks
        for _ in range(2):
            fused(static_x).backward(static_dz)
    torch.cuda.current_stream().wait_stream(side)
    fused.zero_grad(set_to_none=True)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_z = fused(static_x)
        static_z.backward(static_dz)
    for seed in (1, 2):
        x, w, b, dz = make_inputs((256,), 784, 512, torch.bfloat16, True, seed=seed)
        with torch.no_grad():
            static_x.copy_(x)
            static_dz.copy_(dz)
            fused.weight.copy_(w)
            fused.bias.copy_(b)
        graph.replay()
        torch.cuda.synchronize()
        got = (static_z, static_x.grad, fused.weight.grad, fused.bias.grad)
        check_all(got, reference(x, w, b, dz), torch.bfloat16, f"replay {seed}: ")


def graph_recorder():
    """An aot_autograd backend that records the operators its forward and backward graphs call."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = {}

    def recorder(kind):
        def compiler(gm, example_inputs):
            graphs.setdefault(kind, set()).update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
            return make_boxed_func(gm.forward)
        return compiler

    return aot_autograd(fw_compiler=recorder("forward"), bw_compiler=recorder("backward")), graphs


@pytest.mark.parametrize("policy", POLICIES)
def test_compiled_graphs_call_the_operators(policy):
    backend, graphs = graph_recorder()
    torch._dynamo.reset()
    fused = swiglu.FusedSwiGLU(784, 512, policy=policy, device=DEVICE, dtype=torch.bfloat16)
    compiled = torch.compile(fused, backend=backend, fullgraph=True, dynamic=True)
    for batch in (64, 200):  # dynamic=True: the fake implementations see symbolic sizes
        x, w, b, dz = make_inputs((batch,), 784, 512, torch.bfloat16, True)
        with torch.no_grad():
            fused.weight.copy_(w)
            fused.bias.copy_(b)
        fused.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        z = compiled(xg)
        z.backward(dz)
        check_all((z.detach(), xg.grad, fused.weight.grad, fused.bias.grad), reference(x, w, b, dz),
                  torch.bfloat16, f"compiled, B={batch}: ")
    assert "swiglu.forward.default" in graphs["forward"], graphs
    assert "swiglu.backward.default" in graphs["backward"], graphs


def test_compiled_with_inductor_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.LayerNorm(784), swiglu.FusedSwiGLU(784, 1024, bias=False),
                          nn.Linear(1024, 784)).to(DEVICE, torch.bfloat16)
    compiled = torch.compile(model)
    x = torch.rand(128, 784, device=DEVICE, dtype=torch.bfloat16) * 2 - 1
    outs = []
    for fn in (model, compiled):
        model.zero_grad(set_to_none=True)
        out = fn(x)
        out.float().square().mean().backward()
        outs.append((out.detach(), model[1].weight.grad.clone()))
    assert_close("compiled output", outs[1][0], outs[0][0], FORWARD_TOL[torch.bfloat16])
    assert_close("compiled dW", outs[1][1], outs[0][1], GRADIENT_TOL[torch.bfloat16])


@pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck needs torch 2.4")
@pytest.mark.parametrize("save_h", [False, True])
def test_opcheck(save_h):
    """torch's own checks of the operators' registration: schema, fake implementation, autograd
    registration, and aot_autograd against eager."""
    x, w, b, dz = make_inputs((64,), 256, 128, torch.float32, True)
    args = (x.requires_grad_(True), w.requires_grad_(True), b.requires_grad_(True), save_h, None)
    # With save_h, not test_aot_dispatch_dynamic: its eager backward writes dH over H, the
    # operator's second output, which it then compares (fused_swiglu never returns H).
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(torch.ops.swiglu.forward.default, args,
                          test_utils=utils if save_h else utils + ("test_aot_dispatch_dynamic",))
    h = torch.ops.swiglu.forward(x.detach(), w.detach(), b.detach(), True, None)[1]
    torch.library.opcheck(torch.ops.swiglu.backward.default,
                          (dz, x.detach(), w.detach(), b.detach(), h, not save_h, True, True, None))
    if save_h:
        # The operator that writes dH over its h (declared mutated). Not test_aot_dispatch_dynamic:
        # it runs the operator twice on the same arguments, and the second run reads the first's dH
        # as H; the package never traces this operator (compiled graphs call swiglu.backward).
        torch.library.opcheck(torch.ops.swiglu.backward_over_h.default,
                              (dz, x.detach(), w.detach(), b.detach(), h.clone(), True, True, None),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


# ---- the README --------------------------------------------------------------------------------


def test_readme_example_runs_as_written():
    """The Python block of README.md's "In PyTorch" (up to its first subsection), as written."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "\n## In PyTorch\n" in readme, "README's section moved: update this test"
    section = re.split(r"\n##+ ", readme.split("\n## In PyTorch\n", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section's python blocks changed: update this test"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["model"].fc1.weight.grad is not None


# ---- tensor parallelism through DTensor (NCCL) ------------------------------------------------------


@pytest.mark.skipif(torch.__version__ < (2, 8) or not torch.distributed.is_available()
                    or not torch.distributed.is_nccl_available(), reason="needs torch 2.8+ with NCCL")
@pytest.mark.parametrize("policy", POLICIES)
def test_tensor_parallel_world_size_1_runs_the_kernels(policy, tmp_path, monkeypatch):
    """SwiGLUColwiseParallel + RowwiseParallel on a 1-GPU NCCL mesh: the fused kernels run on the
    DTensor's local tensors (no fallback), and Z and every gradient match the plain module's."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import RowwiseParallel, parallelize_module

    from swiglu.parallel import SwiGLUColwiseParallel

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1,
                            device_id=torch.device(DEVICE, torch.cuda.current_device()))
    try:
        torch.manual_seed(0)
        dtype = torch.bfloat16
        ref = nn.Sequential(swiglu.FusedSwiGLU(256, 344, bias=True, policy=policy), nn.Linear(344, 256))
        ref = ref.to(DEVICE, dtype)
        tp = nn.Sequential(swiglu.FusedSwiGLU(256, 344, bias=True, policy=policy), nn.Linear(344, 256))
        tp = tp.to(DEVICE, dtype)
        tp.load_state_dict(ref.state_dict())
        parallelize_module(tp, init_device_mesh("cuda", (1,)), {"0": SwiGLUColwiseParallel(), "1": RowwiseParallel()})
        assert isinstance(tp[0].weight, DTensor)
        functional._warned.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", swiglu.FallbackWarning)  # the reference ran, not the kernels
            x = torch.randn(3, 17, 256, device=DEVICE, dtype=dtype)
            xr, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            zr, zt = ref(xr), tp(xt)
            dz = torch.randn_like(zr)
            zr.backward(dz)
            zt.backward(dz)
        # The same kernels on the same operands: equal up to the order of the all-reduce (none on
        # one rank) and of the down projection's reductions.
        tol = twice(GRADIENT_TOL[dtype])
        assert_close("z", zt, zr, twice(FORWARD_TOL[dtype]))
        assert_close("dx", xt.grad, xr.grad, tol)
        assert_close("dW12", tp[0].weight.grad.full_tensor().reshape(688, 256), ref[0].weight.grad, tol)
        assert_close("dbias", tp[0].bias.grad.full_tensor().reshape(688), ref[0].bias.grad, tol)
    finally:
        dist.destroy_process_group()


# ---- FP8 inference (FusedSwiGLU.to_fp8) -----------------------------------------------------------

HOPPER = torch.cuda.get_device_capability()[0] == 9
needs_hopper = pytest.mark.skipif(not HOPPER, reason="the FP8 kernel needs compute capability 9.0 (Hopper)")
# (leading dimensions of x, I, D): I a multiple of 16 (not of 128), D of neither; one row; a
# LLaMA-like width.
FP8_SHAPES = [((1,), 16, 8), ((37,), 144, 130), ((2, 33), 272, 200), ((130,), 1024, 768), ((256,), 4096, 1408)]
FP8_SCALINGS = ["blocks", "channel", "tensor"]
FP8_DECODE_MAX_ROWS = 16  # the library's decode kernel up to here (kFp8DecodeMaxBatch)


def fp8_module(i, d, bias, seed=0):
    """A bf16 FusedSwiGLU whose rows and 128-column blocks (and Wa, Wb) differ in magnitude, so
    that a scale read from the wrong block shows."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    m = swiglu.FusedSwiGLU(i, d, bias=bias, device=DEVICE, dtype=torch.bfloat16)
    col = torch.tensor([1.0, 0.3, 0.7], device=DEVICE)[torch.arange(i, device=DEVICE) // 128 % 3]
    row = torch.tensor([1.0, 0.4, 0.8], device=DEVICE)[torch.arange(d, device=DEVICE) // 128 % 3]
    with torch.no_grad():
        w = (torch.rand(2 * d, i, device=DEVICE, generator=g) * 2 - 1) * col / math.sqrt(i)
        m.weight.copy_(w * torch.cat([row, 0.6 * row])[:, None])
        if bias:
            m.bias.copy_((torch.rand(2 * d, device=DEVICE, generator=g) * 2 - 1) / math.sqrt(i))
    return m


def fp8_x(lead, i, seed=1):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    rows = math.prod(lead)
    col = torch.tensor([1.0, 0.25, 0.6], device=DEVICE)[torch.arange(i, device=DEVICE) // 128 % 3]
    x = (torch.rand(rows, i, device=DEVICE, generator=g) * 2 - 1) * col
    x = x * (0.1 + torch.rand(rows, 1, device=DEVICE, generator=g))
    return x.to(torch.bfloat16).reshape(*lead, i)


def fp8_reference_on_dequantised(m, x, scaling):
    """The float64 Z on the dequantised operands (X quantised by the tests' own quantiser, W12 as
    the module holds it), and the kernel's error bound but for Z's rounding: the FP8 tensor cores'
    accumulation (fp8_reference.tensor_core_bound) through the gate, as tests/test_fp8_gpu.cpp, in
    the instruction order of the kernel the library runs (decode up to 16 rows, as forward_fp8_kernel
    says)."""
    import fp8_reference as ref

    x2 = x.reshape(-1, m.in_features)
    xq, xs = ref.quantize_blocks(x2, 1)
    xd = ref.dequantize_x(xq, xs, "blocks")
    wd = ref.dequantize_w(m.weight_e4m3, m.weight_e4m3_scale, scaling)
    z, g, u = ref.swiglu64(xd, wd, None if m.bias is None else m.bias.detach())
    order = "decode" if x2.shape[0] <= FP8_DECODE_MAX_ROWS else "contiguous"
    return z, ref.gate_bound(ref.tensor_core_bound(xd, wd, order), g, u)


@needs_hopper
@pytest.mark.parametrize("blocks", ["1x128", "128x128"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_quantize_operator_matches_the_reference_bit_for_bit(dtype, blocks):
    """The library's quantiser (amax/448 in float32, round to nearest even, saturated) against the
    tests' own in torch: the same scales and the same e4m3 bytes, odd sizes and a padded view."""
    import fp8_reference as ref

    base = fp8_x((300,), 784 + 16).to(dtype)
    for a in (base[:, :784], base[:37, :144].contiguous(), base[:1]):
        q, s = torch.ops.swiglu.quantize_e4m3(a, blocks)
        q_ref, s_ref = ref.quantize_blocks(a, 1 if blocks == "1x128" else 128)
        assert torch.equal(s, s_ref), (a.shape, (s - s_ref).abs().max())
        assert torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)), a.shape


@needs_hopper
@pytest.mark.parametrize("output", ["bf16", "e4m3"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("scaling", FP8_SCALINGS)
@pytest.mark.parametrize("shape", FP8_SHAPES, ids=shape_id)
def test_fp8_module_matches_float64_on_the_dequantised_operands(shape, scaling, bias, output):
    """Every element of Z within the kernel's bound of the float64 Z on the same (dequantised)
    operands: bf16's rounding twice (the fp32 gate's few ulp included) plus the tensor cores'
    accumulation, or for an e4m3 Z e4m3's rounding (2^-4·|z| + 2^-10 of the scale) on top; each
    e4m3 Z scale amax/448 of its block. Then against the bf16 module, in rel_l2 within 2.1·u (2.4·u
    for an e4m3 Z), u = 2^-4 (test_host_fp8.py derives both)."""
    import fp8_reference as ref

    lead, i, d = shape
    m = fp8_module(i, d, bias)
    x = fp8_x(lead, i)
    with torch.no_grad():
        z16 = m(x)
        out = m.to_fp8(weight_scaling=scaling, output=output)(x)
    z_ref, acc = fp8_reference_on_dequantised(m, x, scaling)
    if output == "bf16":
        assert out.dtype == torch.bfloat16 and out.shape == (*lead, d)
        ref.assert_within("Z", out.reshape(-1, d), z_ref, 2 * ref.UNIT_ROUNDOFF[torch.bfloat16] * z_ref.abs() + acc)
        assert errors(out, z16)[0] <= 2.1 * ref.U_E4M3
        return
    assert isinstance(out, swiglu.ScaledFp8) and out.data.shape == (*lead, d)
    data, scale = out.data.reshape(-1, d), out.scale.reshape(-1, (d + 127) // 128)
    pad = (0, (128 - d % 128) % 128)
    block_max = F.pad(z_ref.abs(), pad).reshape(z_ref.shape[0], -1, 128).amax(-1)
    block_acc = F.pad(acc, pad).reshape(z_ref.shape[0], -1, 128).amax(-1)
    want = torch.where(block_max > 0, block_max / 448, torch.ones_like(block_max))
    ref.assert_within("Z's scales", scale, want, block_acc / 448 + 1e-6 * want)
    s_full = ref.expand(scale.double(), *data.shape, 1)
    ref.assert_within("dequantised Z", ref.dequantize_z(data, scale), z_ref,
                      ref.U_E4M3 * z_ref.abs() + ref.SUBNORMAL_HALF_SPACING * s_full + (1 + ref.U_E4M3) * acc)
    assert errors(out.dequantize(), z16)[0] <= 2.4 * ref.U_E4M3


@needs_hopper
def test_fp8_runs_on_the_current_stream():
    m = fp8_module(784, 512, True).to_fp8()
    x_new = fp8_x((64,), 784)
    x = torch.zeros_like(x_new)
    with torch.no_grad():
        want = m(x_new)
        side = torch.cuda.Stream()
        torch.cuda.synchronize()
        with torch.cuda.stream(side):
            torch.cuda._sleep(100_000_000)
            x.copy_(x_new)
            z = m(x)
        side.synchronize()
    assert torch.equal(z, want)


@needs_hopper
@pytest.mark.parametrize("output", ["bf16", "e4m3"])
def test_fp8_cuda_graph_capture_and_refresh(output):
    """The FP8 call (x's quantisation and the FP8 GEMM) captured in a CUDA graph: replays follow
    new inputs, and refresh_fp8() after a weight change reaches the captured graph (the buffers
    are written in place)."""
    m = fp8_module(784, 512, True).to_fp8(output=output)
    static_x = torch.zeros(256, 784, device=DEVICE, dtype=torch.bfloat16)

    def plain(t):
        return t if output == "bf16" else t.dequantize()

    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                m(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = m(static_x)
        for seed in (1, 2):
            x = fp8_x((256,), 784, seed=seed)
            static_x.copy_(x)
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(plain(static_out), plain(m(x))), f"replay {seed}"
        m.weight.mul_(-0.5)
        m.refresh_fp8()
        graph.replay()
        assert torch.equal(plain(static_out), plain(m(static_x)))
        # A weight changed and not refreshed before a capture: a clear error, not the capture's.
        m.weight.mul_(2)
        with pytest.raises(RuntimeError, match=r"call refresh_fp8\(\) before capturing"):
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                m(static_x)


@needs_hopper
@pytest.mark.parametrize("output", ["bf16", "e4m3"])
def test_fp8_compiled_graphs_call_the_operators(output):
    backend, graphs = graph_recorder()
    torch._dynamo.reset()
    m = fp8_module(784, 512, True).to_fp8(output=output)
    compiled = torch.compile(m, backend=backend, fullgraph=True, dynamic=True)
    with torch.no_grad():
        for batch in (64, 200):
            x = fp8_x((batch,), 784, seed=batch)
            got, want = compiled(x), m(x)
            if output == "e4m3":
                assert torch.equal(got.data.view(torch.uint8), want.data.view(torch.uint8))
                assert torch.equal(got.scale, want.scale)
            else:
                assert torch.equal(got, want)
    assert {"swiglu.quantize_e4m3.default", "swiglu.forward_fp8.default"} <= graphs["forward"], graphs


@needs_hopper
def test_fp8_compiled_with_inductor_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.LayerNorm(784), swiglu.FusedSwiGLU(784, 1024, bias=False),
                          nn.Linear(1024, 784)).to(DEVICE, torch.bfloat16)
    model[1].to_fp8()
    compiled = torch.compile(model)
    x = fp8_x((128,), 784)
    with torch.inference_mode():
        assert_close("compiled FP8 model", compiled(x), model(x), FORWARD_TOL[torch.bfloat16])


@needs_hopper
@pytest.mark.parametrize("bad", [float("nan"), 0.0, float("inf"), -1.0])
@pytest.mark.parametrize("scaling", FP8_SCALINGS)
def test_fp8_scale_check_names_the_bad_scale(scaling, bad):
    """swiglu_check_fp8_scales on a poisoned weight scale: a ValueError with the library's message,
    which names the scale as the host tests' check in torch does, word for word."""
    from swiglu import _fp8_ops

    _, s = swiglu.quantize_weight_e4m3(fp8_module(272, 200, False).weight, scaling)
    index = {"blocks": 7, "channel": 203, "tensor": 0}[scaling]
    s.view(-1)[index] = bad
    messages = []
    for scales in (s, s.cpu()):
        with pytest.raises(ValueError, match=rf"w_scale\[{index}\] \(.*\) is {bad:g}: every scale must be finite") as e:
            _fp8_ops.check_weight_scales(scales, scaling, 200, 272)
        messages.append(str(e.value))
    assert messages[0] == messages[1]


@needs_hopper
def test_fp8_infinite_weight_is_refused_by_to_fp8():
    m = fp8_module(272, 200, True)
    with torch.no_grad():
        m.weight[201, 130] = float("inf")  # Wb's row 1, K block 1: blocks scale 2·2·3 + 0·3 + 1 = 7
    with pytest.raises(ValueError, match=r"unusable: w_scale\[7\] \(Wb, row block 0, K block 1\) is inf"):
        m.to_fp8()
    assert m.fp8_mode is None


@needs_hopper
def test_fp8_bad_operator_arguments_are_errors():
    from swiglu import _lib

    m = fp8_module(144, 130, False).to_fp8()
    xq, xs = torch.ops.swiglu.quantize_e4m3(fp8_x((4,), 144), "1x128")
    with pytest.raises(ValueError, match=r"x is on cuda:\d but w_scale is on cpu"):
        torch.ops.swiglu.forward_fp8(xq, xs, m.weight_e4m3, m.weight_e4m3_scale.cpu(), None, "blocks", "blocks",
                                     torch.bfloat16, False)
    p = _lib.Fp8Problem(batch=4, in_features=144, hidden=130, ldx=150, x_scaling=_lib.FP8_SCALE_BLOCKS,
                        w_scaling=_lib.FP8_SCALE_BLOCKS, out_dtype=_lib.DTYPE_BF16, bias=0, z_e4m3=0)
    z = torch.empty(4, 130, device=DEVICE, dtype=torch.bfloat16)
    with pytest.raises(swiglu.SwigluError, match=r"SWIGLU_INVALID_ARGUMENT: .*row stride \(150\) must be multiples of 16"):
        _lib.library().forward_fp8(p, xq.data_ptr(), xs.data_ptr(), m.weight_e4m3.data_ptr(),
                                   m.weight_e4m3_scale.data_ptr(), 0, z.data_ptr(), 0, 0, 0,
                                   torch.cuda.current_stream().cuda_stream)


# ---- FP8 training (fused_swiglu_fp8_training, FusedSwiGLU.to_fp8_training) ------------------------

# I and D multiples of 16: one row, D not a multiple of 128, more than 128 rows, a LLaMA-like width.
FP8_TRAINING_SHAPES = [((1,), 16, 16), ((37,), 144, 208), ((2, 33), 272, 128), ((130,), 1024, 768),
                       ((256,), 4096, 1408)]


@needs_hopper
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", FP8_TRAINING_SHAPES, ids=shape_id)
def test_fp8_training_matches_the_recipe(shape, bias):
    """The training operators against the recipe in plain torch (standin.py, the tests' own e4m3
    arithmetic, float32 on the CPU) on the same inputs: Xᵀ's e4m3 copy and its scales bit for bit
    (the library's quantiser is exact); Z, and dX, dW12 and dbias from the kernels' own H and Xᵀ,
    within rel L2 2^-6 (bf16's rounding, the sums' order, and the odd e4m3 tie of dH that the two
    gates' last fp32 bit turn the other way); and the autograd gradients within 2·2^-4 of float64
    on the unquantised inputs (test_host_fp8.py's bound)."""
    import fp8_reference as ref
    import standin

    lead, i, d = shape
    m = fp8_module(i, d, bias)
    m.float()  # float32 master weights
    x = fp8_x(lead, i).reshape(-1, i)
    z, h, xt, xts = torch.ops.swiglu.forward_fp8_training(x, m.weight.detach(), None if m.bias is None else m.bias.detach(),
                                                          torch.bfloat16, True)
    b = x.shape[0]
    xtq, xts_ref = ref.quantize_blocks(x.t().cpu(), 1)
    assert xt.shape == (i, (b + 15) // 16 * 16) and xts.shape == (i, (b + 127) // 128)
    assert torch.equal(xt[:, :b].cpu().view(torch.uint8), xtq.view(torch.uint8))
    assert torch.equal(xts.cpu(), xts_ref)
    cpu = lambda t: None if t is None else t.detach().cpu()  # noqa: E731
    z_ref, h_ref, _, _ = standin.standin_forward_fp8_training(x.cpu(), cpu(m.weight), cpu(m.bias), torch.bfloat16, True)
    assert errors(z.cpu(), z_ref)[0] <= 2.0 ** -6
    assert errors(h.cpu(), h_ref)[0] <= 2.0 ** -6
    dz = fp8_x((b,), d, seed=7).reshape(b, d)
    got = torch.ops.swiglu.backward_fp8(dz, m.weight.detach(), h, xt, xts, True, True, bias, torch.bfloat16,
                                        torch.float32)
    want = standin.standin_backward_fp8(dz.cpu(), cpu(m.weight), h.cpu(), xt.cpu(), xts.cpu(), True, True, bias,
                                        torch.bfloat16, torch.float32)
    for name, g, w in zip(("dx", "dW12", "dbias"), got, want):
        if name == "dbias" and not bias:
            assert g.numel() == 0
            continue
        assert g.dtype == w.dtype and g.shape == w.shape, name
        assert errors(g.cpu(), w)[0] <= 2.0 ** -6, name
    # Autograd, against float64 on the unquantised inputs.
    xg = x.detach().reshape(*lead, i).requires_grad_()
    m.to_fp8_training()
    zt = m(xg)
    cot = torch.linspace(-1, 1, zt.numel(), device=DEVICE, dtype=torch.float64).reshape(zt.shape)
    (zt.double() * cot).sum().backward()
    x64 = xg.detach().double().requires_grad_()
    w64 = m.weight.detach().double().requires_grad_()
    b64 = None if m.bias is None else m.bias.detach().double().requires_grad_()
    z64 = swiglu.reference_swiglu(x64, w64, b64)
    (z64 * cot).sum().backward()
    u = ref.U_E4M3
    assert errors(zt, z64)[0] <= 2 * u
    assert errors(xg.grad, x64.grad)[0] <= 2 * u and xg.grad.dtype == torch.bfloat16
    assert errors(m.weight.grad, w64.grad)[0] <= 2 * u and m.weight.grad.dtype == torch.float32
    if bias:
        assert errors(m.bias.grad, b64.grad)[0] <= 2 * u


@needs_hopper
def test_fp8_training_steps_lower_the_loss_and_capture_in_a_graph():
    """Ten SGD steps towards another layer's outputs (a teacher from another seed): the FP8-trained
    layer's loss falls as the float32 layer's does (to under half; on the CPU the float32 one goes
    from 0.024 to 0.007 at this learning rate, and diverges from about 20), and ends within 1.5× of
    it; a CUDA graph of forward + backward replays to the eager gradients."""
    torch.manual_seed(0)
    x = fp8_x((64,), 256, seed=3)
    with torch.no_grad():
        target = fp8_module(256, 256, True, seed=5).float()(x.float())
    losses = {}
    for mode in ("fp32", "fp8"):
        m = fp8_module(256, 256, True).float()
        if mode == "fp8":
            m.to_fp8_training()
        opt = torch.optim.SGD(m.parameters(), lr=5.0)
        history = []
        for _ in range(10):
            opt.zero_grad()
            loss = (m(x if mode == "fp8" else x.float()).float() - target).pow(2).sum(-1).mean()
            loss.backward()
            opt.step()
            history.append(float(loss))
        assert history[-1] < 0.5 * history[0], (mode, history)
        losses[mode] = history[-1]
    assert losses["fp8"] <= 1.5 * losses["fp32"], losses
    m = fp8_module(256, 256, True).float().to_fp8_training()
    xs = x.clone().requires_grad_()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graph asks
        for _ in range(2):
            m.zero_grad(set_to_none=True)
            m(xs).float().sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    want = m.weight.grad.clone()
    m.zero_grad(set_to_none=True)
    xs.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        m(xs).float().sum().backward()
    m.weight.grad.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(m.weight.grad, want)


@pytest.mark.skipif(HOPPER, reason="checks the error on GPUs other than Hopper")
def test_fp8_elsewhere_is_a_clear_error():
    m = fp8_module(144, 130, False)
    with pytest.raises(RuntimeError, match=r"FP8 cannot run here: a GPU of compute capability \d+\.x"):
        m.to_fp8()


@needs_hopper
@pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck needs torch 2.4")
def test_fp8_opcheck():
    """As test_host_fp8.py's opcheck: forward_fp8 without the schema test, which does arithmetic on
    its e4m3 inputs."""
    utils = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    x = fp8_x((64,), 272)
    for blocks in ("1x128", "128x128"):
        torch.library.opcheck(torch.ops.swiglu.quantize_e4m3.default, (x, blocks), test_utils=utils)
    xq, xs = torch.ops.swiglu.quantize_e4m3(x, "1x128")
    wq, ws = swiglu.quantize_weight_e4m3(fp8_module(272, 200, False).weight, "blocks")
    bias = torch.zeros(400, device=DEVICE, dtype=torch.bfloat16)
    for z_e4m3 in (False, True):
        torch.library.opcheck(torch.ops.swiglu.forward_fp8.default,
                              (xq, xs, wq, ws, bias, "blocks", "blocks", torch.bfloat16, z_e4m3), test_utils=utils[1:])
