"""Host tests of the FP8 inference mode (FusedSwiGLU.to_fp8, swiglu.fused_swiglu_fp8,
swiglu.quantize_weight_e4m3) and of FP8 training (FusedSwiGLU.to_fp8_training,
swiglu.fused_swiglu_fp8_training), without a GPU.

The FP8 kernels need a Hopper GPU, so, as test_host_ops.py does for the bf16 operators, these tests
give torch.ops.swiglu.quantize_e4m3 and .forward_fp8 CPU kernels in plain torch (standin.py: the
library's arithmetic, from the tests' own e4m3 code in fp8_reference.py) and let the FP8 API run on
CPU tensors. What runs is everything of the package but the kernels and ctypes: the weight's
quantisation and its scale layouts (odd shapes included), the per-call quantisation of x, the
operators' arguments, the weight cache and its refresh, the errors, and the graphs torch.compile
builds. test_gpu.py runs the same on the kernels. The real library's FP8 entry points are reached
through ctypes at the end (argument errors only; no device needed).
"""

import copy
import ctypes
import shutil
import subprocess
import warnings

import pytest
import torch

import fp8_reference as ref
import swiglu
from swiglu import _fp8_ops, _lib, fp8

from standin import FP8_CALLS  # noqa: F401  (registers the stand-in kernels)

if ref.E4M3 is None:
    pytest.skip(f"torch {torch.__version__} has no float8_e4m3fn", allow_module_level=True)

E4M3 = ref.E4M3
U = ref.U_E4M3
# (leading dimensions of x, I, D): I a multiple of 16 but not of 128, D not a multiple of 128, one
# row, and both multiples of 128.
SHAPES = [((1,), 16, 8), ((3, 5), 144, 130), ((2,), 272, 200), ((4,), 256, 128)]
SCALINGS = ["blocks", "channel", "tensor"]


def shape_id(shape):
    lead, i, d = shape
    return "x".join(map(str, lead)) + f"-I{i}-D{d}"


@pytest.fixture(autouse=True)
def fp8_on_cpu(monkeypatch):
    """The FP8 API runs on CPU tensors, through the stand-in operators."""
    monkeypatch.setattr(fp8, "unsupported_reason", lambda t: None)
    FP8_CALLS.clear()


def uniform(gen, *shape):
    return torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1


def structured(gen, rows, cols, row_blocks_of=None):
    """Seeded values whose rows, 128-column blocks and (row_blocks_of: 128-row blocks of halves of
    that many rows) differ in magnitude, so that a scale read from the wrong row, block or half of
    W12 shows in the result; float64."""
    row = 0.25 + 0.75 * torch.rand(rows, 1, generator=gen, dtype=torch.float64)
    col_block = torch.tensor([1.0, 0.3, 0.7], dtype=torch.float64)[torch.arange(cols) // 128 % 3]
    v = uniform(gen, rows, cols) * row * col_block
    if row_blocks_of is not None:  # W12: Wb at 0.6 of Wa, and row blocks of each half at 1, 0.4, 0.8
        r = torch.arange(rows)
        v = v * (torch.where(r < row_blocks_of, 1.0, 0.6)
                 * torch.tensor([1.0, 0.4, 0.8], dtype=torch.float64)[r % row_blocks_of // 128 % 3])[:, None]
    return v


def make_module(in_features, hidden, bias, dtype=torch.bfloat16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    m = swiglu.FusedSwiGLU(in_features, hidden, bias=bias, dtype=dtype)
    with torch.no_grad():
        m.weight.copy_(structured(gen, 2 * hidden, in_features, row_blocks_of=hidden) / in_features ** 0.5)
        if bias:
            m.bias.copy_(uniform(gen, 2 * hidden) / in_features ** 0.5)
    return m


def make_x(lead, in_features, dtype=torch.bfloat16, seed=1):
    gen = torch.Generator().manual_seed(seed)
    rows = 1
    for n in lead:
        rows *= n
    return structured(gen, rows, in_features).to(dtype).reshape(*lead, in_features)


def bf16_module(m, x):
    """The module's bf16 path (on CPU: the PyTorch reference, with its one-time warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", swiglu.FallbackWarning)
        return m(x)


def rel_l2(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


# ---- the tests' own e4m3 arithmetic ---------------------------------------------------------------


def test_reference_reads_every_scale_layout():
    """fp8_reference's layouts, by hand: W12 with D = 130 and I = 144 has 2 row blocks a half and 2
    K blocks; scale s[b, k] must land on exactly its block."""
    d, i = 130, 144
    q = torch.ones(2 * d, i).to(E4M3)
    s = torch.arange(1, 9, dtype=torch.float32).reshape(4, 2)
    full = ref.dequantize_w(q, s, "blocks")
    for (r, c), want in {(0, 0): 1, (127, 143): 2, (128, 0): 3, (129, 128): 4,  # Wa
                         (130, 0): 5, (257, 127): 5, (258, 0): 7, (259, 143): 8}.items():  # Wb
        assert full[r, c] == want, (r, c)
    assert torch.equal(ref.dequantize_w(q, torch.arange(2 * d, dtype=torch.float32), "channel")[:, 5],
                       torch.arange(2 * d, dtype=torch.float64))
    xs = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    xd = ref.dequantize_x(torch.ones(2, i).to(E4M3), xs, "blocks")
    assert (xd[1, 127], xd[1, 128], xd[0, 0]) == (3, 4, 1)
    assert torch.equal(ref.dequantize_x(torch.ones(2, i).to(E4M3), torch.tensor(0.5), "tensor"),
                       torch.full((2, i), 0.5, dtype=torch.float64))


def test_reference_quantiser_follows_the_library():
    """amax/448 scales, 1 for an all-zero block, round to nearest even, saturation at the block's
    largest element, NaN left out of amax."""
    a = torch.zeros(2, 256)
    a[0, 0], a[0, 1], a[0, 2] = 896.0, 2.125, -3.0   # s = 2: 1.0625 rounds to 1 (even), -1.5 exact
    a[0, 128] = 634.0786743164062   # amax / (amax / 448) is 448.00003 in float32: saturates to 448
    a[1, 5], a[1, 6] = float("nan"), 7.0
    q, s = ref.quantize_blocks(a, 1)
    amax = torch.tensor([[896.0, 634.0786743164062], [7.0, 448.0]])  # float32, as the quotients
    assert torch.equal(s, torch.where(amax == 448.0, torch.ones_like(amax), amax / 448))
    assert q.float()[0, :3].tolist() == [448.0, 1.0, -1.5] and q.float()[0, 128] == 448.0
    assert torch.isnan(q.float()[1, 5]) and q.float()[1, 6] == 448.0 and q.float()[1, 128:].abs().sum() == 0


# ---- the weight's quantisation --------------------------------------------------------------------


def reference_weight(w12, scaling):
    """quantize_weight_e4m3 as the library's contract says: W12's scales per layout."""
    hidden = w12.shape[0] // 2
    if scaling == "blocks":
        qa, sa = ref.quantize_blocks(w12[:hidden], 128)
        qb, sb = ref.quantize_blocks(w12[hidden:], 128)
        return torch.cat([qa.float(), qb.float()]), torch.cat([sa, sb])
    mag = w12.float().abs()
    amax = mag.amax(dim=1, keepdim=True) if scaling == "channel" else mag.amax()
    scale = torch.where(amax > 0, amax / torch.full_like(amax, ref.E4M3_MAX), torch.ones_like(amax))
    q = (w12.float() / scale).clamp(-ref.E4M3_MAX, ref.E4M3_MAX).to(E4M3)
    return q.float(), scale.reshape(-1) if scaling == "channel" else scale


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_weight_quantisation_and_scale_layouts(shape, scaling, dtype):
    _, i, d = shape
    w12 = make_module(i, d, False, dtype).weight
    q, s = swiglu.quantize_weight_e4m3(w12, scaling)
    assert q.dtype == E4M3 and q.shape == (2 * d, i) and q.is_contiguous()
    assert s.dtype == torch.float32 and tuple(s.shape) == _fp8_ops.w_scale_shape(scaling, d, i)
    assert tuple(s.shape) == {"blocks": (2 * ((d + 127) // 128), (i + 127) // 128), "channel": (2 * d,),
                              "tensor": ()}[scaling]
    q_ref, s_ref = reference_weight(w12.detach(), scaling)
    assert torch.equal(s, s_ref)
    assert torch.equal(q.float(), q_ref)
    # Dequantised, every element is within e4m3's rounding of the weight: u·|w| + 2^-10·s.
    s_full = ref.w_scales(s, scaling, d, i)
    ref.assert_within("dequantised W12", ref.dequantize_w(q, s, scaling), w12.detach(),
                      U * w12.detach().double().abs() + ref.SUBNORMAL_HALF_SPACING * s_full)
    assert not q.requires_grad and not s.requires_grad


@pytest.mark.parametrize("scaling", SCALINGS)
def test_nan_weights_are_left_out_of_amax(scaling):
    """As the library's quantiser does (CUDA's fmaxf drops NaN): a NaN weight stays NaN and its
    block's (row's, tensor's) scale is that of the other elements, whatever the scaling."""
    w12 = make_module(144, 130, False).weight.detach().clone()
    w12[3, 5] = float("nan")
    q, s = swiglu.quantize_weight_e4m3(w12, scaling)
    clean = w12.clone()
    clean[3, 5] = 0
    _, s_clean = reference_weight(clean, scaling)
    assert torch.equal(s, s_clean) and torch.isnan(q.float()[3, 5])


@pytest.mark.parametrize("scaling", ["channel", "tensor"])
def test_weight_of_a_strided_view_quantises_to_dense_rows(scaling):
    """A transposed view's weight: e4m3 rows come out contiguous, as the kernel reads them."""
    gen = torch.Generator().manual_seed(11)
    w = uniform(gen, 144, 2 * 130).to(torch.bfloat16).t()  # 260×144, column-major
    q, scale = swiglu.quantize_weight_e4m3(w, scaling)
    q_dense, scale_dense = swiglu.quantize_weight_e4m3(w.contiguous(), scaling)
    assert q.is_contiguous()
    assert torch.equal(q.view(torch.uint8), q_dense.view(torch.uint8)) and torch.equal(scale, scale_dense)


def test_blocks_of_wa_and_wb_stay_apart():
    """D = 130: W12's third row block would hold Wa's last 2 rows and Wb's first 126 if W12 were
    quantised whole; Wa's rows get a block (and scale) of their own instead."""
    w12 = torch.ones(260, 16)
    w12[:130] *= 0.01  # Wa small, Wb large: a shared block would crush Wa's last rows' resolution
    _, s = swiglu.quantize_weight_e4m3(w12, "blocks")
    assert s.shape == (4, 1)
    assert torch.allclose(s[:, 0], torch.tensor([0.01, 0.01, 1.0, 1.0]) / 448)


# ---- the module's numbers -------------------------------------------------------------------------


def expected(m, x, mode_scaling):
    """What the FP8 module must compute, from the tests' own quantisation of x and the module's
    quantised weight: (reference Z on the dequantised operands, its tight bound but for the output
    rounding, reference Z on the unquantised operands, its bound, g, u)."""
    i, d = m.in_features, m.hidden
    x2 = x.reshape(-1, i)
    xq, xs = ref.quantize_blocks(x2, 1)
    xd = ref.dequantize_x(xq, xs, "blocks")
    wd = ref.dequantize_w(m.weight_e4m3, m.weight_e4m3_scale, mode_scaling)
    bias = None if m.bias is None else m.bias.detach()
    z_deq, g_deq, u_deq = ref.swiglu64(xd, wd, bias)
    # The stand-in sums in float32 (and so, promoted every 128 of K, does the kernel).
    tight = ref.gate_bound(ref.accumulation_bound(xd, wd, 2.0 ** -24), g_deq, u_deq)
    z, g, u = ref.swiglu64(x2, m.weight.detach(), bias)
    e_h = (ref.quantisation_bound(x2, ref.x_scales(xs, "blocks", *x2.shape), m.weight.detach(),
                                  ref.w_scales(m.weight_e4m3_scale, mode_scaling, d, i))
           + ref.accumulation_bound(xd, wd, 2.0 ** -24))
    return z_deq, tight, z, ref.gate_bound(e_h, g, u), g, u


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_fp8_module_bf16_output(shape, scaling, bias):
    """Z against (1) float64 on the dequantised operands, within float32 accumulation and bf16's
    rounding: what the operators were given is what was meant; (2) float64 on the unquantised
    operands, within the quantisation's bound (fp8_reference.quantisation_bound); (3) the bf16
    module, within (2)'s bound plus the bf16 path's own (H rounded to bf16, then SiLU and the
    product: 2^-8 each), and in rel_l2 within 2.1·u: each operand's rounding error is at most
    u·|v|, so its rms is too, and G's relative rms error from X's and W's is at most √2·u; Z takes
    G's through silu (|silu'| ≤ 1.1) and U's: √(1.1² + 1)·√2·u ≈ 2.1·u."""
    lead, i, d = shape
    m = make_module(i, d, bias)
    x = make_x(lead, i)
    m8 = copy.deepcopy(m).to_fp8(weight_scaling=scaling)
    assert m8.fp8_mode.output == "bf16"
    with torch.no_grad():
        z8 = m8(x)
        z16 = bf16_module(m, x)
    assert z8.shape == (*lead, d) and z8.dtype == torch.bfloat16
    assert FP8_CALLS[-2:] == [("quantize_e4m3", "1x128"), ("forward_fp8", "blocks", scaling)]
    z_deq, tight, z, bound, g, u = expected(m8, x, scaling)
    u_out = ref.UNIT_ROUNDOFF[torch.bfloat16]
    z8 = z8.reshape(-1, d)
    ref.assert_within("Z against float64 on the dequantised operands", z8, z_deq,
                      tight + 2 * u_out * z_deq.abs() + 1e-30)
    ref.assert_within("Z against float64 on the unquantised operands", z8, z, bound + 2 * u_out * (z.abs() + bound))
    h = torch.cat([g, u], dim=-1)
    bound16 = (ref.gate_bound(u_out * h.abs() + ref.accumulation_bound(x.reshape(-1, i), m.weight, 2.0 ** -24), g, u)
               + 2 * u_out * z.abs())
    ref.assert_within("Z against the bf16 module", z8, z16.reshape(-1, d),
                      bound + 2 * u_out * (z.abs() + bound) + bound16)
    assert rel_l2(z8, z16.reshape(-1, d)) <= 2.1 * U


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_fp8_module_e4m3_output(shape, scaling):
    """Z in e4m3 with 1×128 scales: the layout (..., D) and (..., ceil(D/128)), each scale amax/448
    of its block of Z, and dequantised Z within e4m3's own rounding (u·|z| + 2^-10·s) of the float64
    Z on the dequantised operands; in rel_l2, within √(2.1² + 1)·u ≈ 2.4·u of the bf16 module."""
    lead, i, d = shape
    m = make_module(i, d, True)
    x = make_x(lead, i)
    m8 = copy.deepcopy(m).to_fp8(weight_scaling=scaling, output="e4m3")
    with torch.no_grad():
        out = m8(x)
        z16 = bf16_module(m, x)
    assert isinstance(out, swiglu.ScaledFp8)
    assert out.data.dtype == E4M3 and out.data.shape == (*lead, d)
    assert out.scale.dtype == torch.float32 and out.scale.shape == (*lead, (d + 127) // 128)
    z_deq, tight, *_ = expected(m8, x, scaling)
    data, scale = out.data.reshape(-1, d), out.scale.reshape(-1, (d + 127) // 128)
    # Each block's scale is amax/448 of the (float32) Z it was computed from, within Z's bound.
    padded = torch.nn.functional.pad(z_deq.abs(), (0, (128 - d % 128) % 128))
    block_max = padded.reshape(z_deq.shape[0], -1, 128).amax(dim=-1)
    block_tight = torch.nn.functional.pad(tight, (0, (128 - d % 128) % 128)).reshape(z_deq.shape[0], -1, 128).amax(-1)
    ref.assert_within("Z's scales", scale, block_max / 448, (block_tight + 1e-6 * block_max) / 448)
    s_full = ref.expand(scale.double(), *data.shape, 1)
    ref.assert_within("dequantised Z", ref.dequantize_z(data, scale), z_deq,
                      (1 + U) * tight + U * z_deq.abs() + ref.SUBNORMAL_HALF_SPACING * s_full + 1e-6 * z_deq.abs())
    torch.testing.assert_close(out.dequantize(), ref.dequantize_z(data, scale).float().reshape(*lead, d))
    assert rel_l2(out.dequantize(), z16) <= 2.4 * U


def test_fp16_and_float32_modules():
    """A float32 module writes bf16 by default; output="fp16" writes float16 (the bias with it)."""
    m = make_module(144, 130, True, dtype=torch.float32)
    x = make_x((6,), 144, dtype=torch.float32)
    with torch.no_grad():
        z16 = bf16_module(m, x)
        m8 = copy.deepcopy(m).to_fp8()
        assert m8(x).dtype == torch.bfloat16
        zh = m8.to_fp8(output="fp16")(x)
    assert zh.dtype == torch.float16
    assert rel_l2(zh, z16) <= 2.1 * U
    mh = make_module(144, 130, True, dtype=torch.float16).to_fp8()
    assert mh.fp8_mode.output == "fp16"


def test_empty_batch():
    m = make_module(144, 130, True).to_fp8()
    with torch.no_grad():
        assert m(torch.empty(0, 144, dtype=torch.bfloat16)).shape == (0, 130)
        out = m.to_fp8(output="e4m3")(torch.empty(2, 0, 144, dtype=torch.bfloat16))
    assert out.data.shape == (2, 0, 130) and out.scale.shape == (2, 0, 2)


def test_functional_matches_the_module():
    m = make_module(272, 200, True)
    x = make_x((5,), 272)
    w_q, w_s = swiglu.quantize_weight_e4m3(m.weight, "channel")
    with torch.no_grad():
        z = swiglu.fused_swiglu_fp8(x, w_q, w_s, m.bias, weight_scaling="channel")
        zq = swiglu.fused_swiglu_fp8(x, w_q, w_s, m.bias, weight_scaling="channel", out_dtype=E4M3)
        m.to_fp8(weight_scaling="channel")
        assert torch.equal(z, m(x))
    assert isinstance(zq, swiglu.ScaledFp8) and zq.data.shape == (5, 200)


# ---- the weight cache -----------------------------------------------------------------------------


def test_buffers_stay_out_of_the_state_dict_and_keep_their_dtypes():
    m = make_module(144, 130, True).to_fp8()
    assert set(m.state_dict()) == {"weight", "bias"}
    assert {n for n, _ in m.named_buffers()} == {"weight_e4m3", "weight_e4m3_scale"}
    m.to(torch.float32)  # converts floating buffers: not these
    assert m.weight.dtype == torch.float32
    assert m.weight_e4m3.dtype == E4M3 and m.weight_e4m3_scale.dtype == torch.float32
    m.half()
    assert m.weight_e4m3.dtype == E4M3
    fresh = swiglu.FusedSwiGLU(144, 130)
    fresh.load_state_dict(m.state_dict())  # strict: the FP8 mode adds no keys


def test_in_place_weight_change_is_seen_by_an_eager_call():
    m = make_module(144, 130, True).to_fp8()
    q, s = m.weight_e4m3, m.weight_e4m3_scale
    x = make_x((4,), 144)
    with torch.no_grad():
        z1 = m(x).float()
        calls = len(FP8_CALLS)
        z_again = m(x).float()
        assert len(FP8_CALLS) == calls + 2  # no re-quantisation without a change
        m.weight.mul_(2)
        m.bias.mul_(2)
        z2 = m(x).float()
    assert ("quantize_e4m3", "128x128") in FP8_CALLS[calls + 2:]
    assert m.weight_e4m3 is q and m.weight_e4m3_scale is s  # updated in place
    torch.testing.assert_close(z_again, z1)
    torch.testing.assert_close(z2, 4 * z1, rtol=2 ** -7, atol=1e-2)  # scale-invariant quantisation


def test_new_weight_and_load_state_dict_refresh():
    m = make_module(144, 130, True).to_fp8(weight_scaling="channel")
    other = make_module(144, 130, True, seed=5)
    x = make_x((4,), 144)
    with torch.no_grad():
        m.weight = torch.nn.Parameter(other.weight.detach().clone())
        m.bias = torch.nn.Parameter(other.bias.detach().clone())
        z_new = m(x)
        m.load_state_dict(make_module(144, 130, True, seed=7).state_dict())
        q_loaded = m.weight_e4m3.float().clone()
        z_loaded = m(x)
        want_new = copy.deepcopy(other).to_fp8(weight_scaling="channel")(x)
        want_loaded = make_module(144, 130, True, seed=7).to_fp8(weight_scaling="channel")(x)
    assert torch.equal(z_new, want_new) and torch.equal(z_loaded, want_loaded)
    assert torch.equal(q_loaded, swiglu.quantize_weight_e4m3(m.weight, "channel")[0].float())


def test_refresh_fp8_and_inference_mode():
    m = make_module(144, 130, True)
    with pytest.raises(RuntimeError, match=r"not in FP8 mode \(to_fp8\(\)\)"):
        m.refresh_fp8()
    with torch.inference_mode():
        m.to_fp8()
        x = make_x((3,), 144)
        z = m(x)
    saved = m.weight.detach().clone()
    q, s = m.weight_e4m3, m.weight_e4m3_scale
    assert not q.is_inference() and not s.is_inference()  # made outside inference mode all the same
    with torch.no_grad():
        m.weight.add_(0.01)
        m.refresh_fp8()  # written over in place, as graphs captured before need
        assert m.weight_e4m3 is q and m.weight_e4m3_scale is s
        assert not torch.equal(m(x), z)
    with torch.inference_mode():
        m.weight.copy_(saved)
        m.refresh_fp8()
        assert torch.equal(m(x), z)


# ---- errors -------------------------------------------------------------------------------------


def test_gradient_is_refused():
    m = make_module(144, 130, True).to_fp8()
    x = make_x((3,), 144)
    with pytest.raises(RuntimeError, match=r"inference only: run it under torch.no_grad.*fused_swiglu_fp8_training"):
        m(x)  # the parameters require grad
    m.requires_grad_(False)
    assert m(x).shape == (3, 130)  # nothing requires grad: no gradient needed
    with pytest.raises(RuntimeError, match="inference only"):
        m(x.requires_grad_(True))
    with pytest.raises(RuntimeError, match="fused_swiglu_fp8 is inference only"):
        swiglu.fused_swiglu_fp8(x, m.weight_e4m3, m.weight_e4m3_scale)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"weight_scaling": "row"}, ValueError, r"weight_scaling must be one of 'blocks', 'channel', 'tensor', got 'row'"),
    ({"output": "fp32"}, ValueError, r"output must be 'bf16', 'fp16' or 'e4m3', got 'fp32'"),
])
def test_to_fp8_bad_arguments(kwargs, error, match):
    m = make_module(144, 130, True)
    with pytest.raises(error, match=match):
        m.to_fp8(**kwargs)
    assert m.fp8_mode is None


def test_in_features_must_be_a_multiple_of_16():
    m = make_module(136, 8, True)
    with pytest.raises(ValueError, match=r"in_features must be a positive multiple of 16 for FP8.*got 136"):
        m.to_fp8()
    assert m.fp8_mode is None and not list(m.buffers())


@pytest.mark.parametrize("scaling, where", [
    ("blocks", r"w_scale\[5\] \(Wb, row block 0, K block 1\) is inf"),
    ("channel", r"w_scale\[131\] \(Wb, row 1\) is inf"),
    ("tensor", r"w_scale\[0\] \(the operand's one scale\) is inf"),
])
def test_unusable_weight_scales_are_named(scaling, where):
    """A weight with an infinity quantises to an infinite scale: to_fp8 names it (the library's
    swiglu_check_fp8_scales on CUDA, its test in torch here) and leaves the module as it was."""
    m = make_module(144, 130, True)
    with torch.no_grad():
        m.weight[131, 130] = float("inf")  # Wb's row 1, K block 1
    with pytest.raises(ValueError, match=r"quantised weight is unusable: " + where + ": every scale must be finite and > 0"):
        m.to_fp8(weight_scaling=scaling)
    assert m.fp8_mode is None and not list(m.buffers())
    m8 = make_module(144, 130, True).to_fp8()
    with torch.no_grad():
        m8.weight[131, 130] = float("inf")
    with pytest.raises(ValueError, match=where):
        m8.to_fp8(weight_scaling=scaling)  # a module in FP8 mode keeps its mode and buffers
    assert m8.fp8_mode.weight_scaling == "blocks" and m8.weight_e4m3_scale.isfinite().all()


def test_fp8_needs_cuda_and_hopper(monkeypatch):
    monkeypatch.undo()  # the real unsupported_reason
    m = make_module(144, 130, True)
    with pytest.raises(RuntimeError, match=r"quantize_weight_e4m3: FP8 cannot run here: tensors on cpu \(the FP8 "
                                           r"kernels are CUDA-only\); the bf16 path"):
        m.to_fp8()
    with torch.no_grad(), pytest.raises(RuntimeError, match="fused_swiglu_fp8: FP8 cannot run here: tensors on cpu"):
        swiglu.fused_swiglu_fp8(make_x((2,), 144), torch.ones(260, 144).to(E4M3), torch.ones(()),
                                weight_scaling="tensor")


def test_compute_capability_reason(monkeypatch):
    class FakeCuda:
        type, index = "cuda", 0

    class FakeTensor:
        device = FakeCuda()

    monkeypatch.undo()
    monkeypatch.setattr(fp8, "_compute_capability_major", lambda index: 8)
    assert fp8.unsupported_reason(FakeTensor()) == "a GPU of compute capability 8.x (the FP8 kernel is built for 9.0, Hopper)"
    monkeypatch.setattr(fp8, "_compute_capability_major", lambda index: 10)
    assert "compute capability 10.x" in fp8.unsupported_reason(FakeTensor())
    monkeypatch.setattr(fp8, "_compute_capability_major", lambda index: 9)
    assert fp8.unsupported_reason(FakeTensor()) is None


def test_functional_bad_arguments():
    m = make_module(144, 130, True).to_fp8()
    q, s = m.weight_e4m3, m.weight_e4m3_scale
    x = make_x((3,), 144)
    with torch.no_grad():
        with pytest.raises(TypeError, match="x must be float32, float16 or bfloat16, got torch.float64"):
            swiglu.fused_swiglu_fp8(x.double(), q, s)
        with pytest.raises(TypeError, match="w12_e4m3 must be torch.float8_e4m3fn"):
            swiglu.fused_swiglu_fp8(x, m.weight, s)
        with pytest.raises(ValueError, match=r"x's last dimension must be in_features = 144"):
            swiglu.fused_swiglu_fp8(x[:, :128], q, s)
        with pytest.raises(ValueError, match=r"out_dtype must be .*got torch.float32"):
            swiglu.fused_swiglu_fp8(x, q, s, out_dtype=torch.float32)
        with pytest.raises(ValueError, match=r"bias must be \[ba \| bb\] of shape \(260,\)"):
            swiglu.fused_swiglu_fp8(x, q, s, m.bias[:130])
        with pytest.raises(ValueError, match=r"w_scale must be torch.float32 \(4, 2\) for 'blocks' scaling, got "
                                             r"torch.float32 \(260,\)"):
            swiglu.fused_swiglu_fp8(x, q, torch.ones(260), weight_scaling="blocks")
        with pytest.raises(ValueError, match=r"w_scale must be torch.float32 \(260,\) for 'channel' scaling"):
            swiglu.fused_swiglu_fp8(x, q, s, weight_scaling="channel")
        with pytest.raises(ValueError, match="w12 must be \\[Wa; Wb\\]"):
            swiglu.quantize_weight_e4m3(torch.ones(3, 16))
        with pytest.raises(TypeError, match="w12 must be float32, float16 or bfloat16, got torch.float64"):
            swiglu.quantize_weight_e4m3(torch.ones(4, 16, dtype=torch.float64))


def test_operator_arguments_are_checked():
    """The operators' own checks (what the CUDA kernels run before the library sees pointers)."""
    xq, xs = torch.ops.swiglu.quantize_e4m3(torch.ones(4, 32), "1x128")
    wq, ws = torch.ops.swiglu.quantize_e4m3(torch.ones(6, 32), "128x128")
    assert (xs.shape, ws.shape) == ((4, 1), (1, 1))
    with pytest.raises(ValueError, match="blocks must be '1x128' or '128x128', got '1x64'"):
        torch.ops.swiglu.quantize_e4m3(torch.ones(4, 32), "1x64")
    with pytest.raises(ValueError, match=r"a must be 2-D float32, float16 or bfloat16, got torch.float64"):
        torch.ops.swiglu.quantize_e4m3(torch.ones(4, 32, dtype=torch.float64), "1x128")
    ws2 = torch.ones(2, 1)  # D = 3: one row block a half
    ok = (xq, xs, wq, ws2, None, "blocks", "blocks", torch.bfloat16, False)
    assert torch.ops.swiglu.forward_fp8(*ok)[0].shape == (4, 3)
    for change, match in [
        ({0: xq.float()}, r"x must be 2-D torch.float8_e4m3fn, got torch.float32"),
        ({0: xq[:, :24]}, r"in_features must be a positive multiple of 16.*got 24"),
        ({1: xs.t()}, r"x_scale must be torch.float32 \(4, 1\) for 'blocks' scaling, got torch.float32 \(1, 4\)"),
        ({3: ws}, r"w_scale must be torch.float32 \(2, 1\) for 'blocks' scaling"),
        ({4: torch.ones(6)}, r"bias must be torch.bfloat16 \(6,\), got torch.float32"),
        ({5: "channel"}, r"x_scaling must be 'tensor' or 'blocks', got 'channel'"),
        ({6: "rows"}, r"w_scaling must be 'tensor', 'blocks' or 'channel', got 'rows'"),
        ({7: torch.float32}, r"out_dtype must be torch.bfloat16 or torch.float16, got torch.float32"),
        ({2: wq[:5]}, r"w must be torch.float8_e4m3fn \(2\*hidden, 32\), got torch.float8_e4m3fn \(5, 32\)"),
    ]:
        args = list(ok)
        for k, v in change.items():
            args[k] = v
        with pytest.raises(ValueError, match=match):
            torch.ops.swiglu.forward_fp8(*args)
    z, z_scale = torch.ops.swiglu.forward_fp8(xq, torch.tensor(1.0), wq, torch.ones(1), None, "tensor", "tensor",
                                              torch.float16, True)
    assert z.dtype == E4M3 and z_scale.shape == (4, 1)


# ---- torch.compile --------------------------------------------------------------------------------


def graph_recorder():
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    nodes = set()

    def compiler(gm, example_inputs):
        nodes.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    return aot_autograd(fw_compiler=compiler), nodes


@pytest.mark.parametrize("output", ["bf16", "e4m3"])
def test_compiled_graph_calls_the_fp8_operators(output):
    """fullgraph=True (no graph break: the eager-only weight check is skipped while tracing),
    dynamic batch sizes; the graph holds both operators and matches eager."""
    backend, nodes = graph_recorder()
    torch._dynamo.reset()
    m = make_module(144, 130, True).to_fp8(output=output)
    compiled = torch.compile(m, backend=backend, fullgraph=True, dynamic=True)
    with torch.no_grad():
        for batch in (3, 7):
            x = make_x((batch,), 144, seed=batch)
            got, want = compiled(x), m(x)
            if output == "e4m3":
                assert isinstance(got, swiglu.ScaledFp8)
                assert torch.equal(got.data.view(torch.uint8), want.data.view(torch.uint8))
                assert torch.equal(got.scale, want.scale)
            else:
                assert torch.equal(got, want)
    assert {"swiglu.quantize_e4m3.default", "swiglu.forward_fp8.default"} <= nodes, nodes


def test_compiled_graph_sees_refresh_fp8():
    """refresh_fp8() writes the buffers in place, so a compiled graph (which does not check the
    weight's version) sees the new weight without being traced again."""
    torch._dynamo.reset()
    m = make_module(144, 130, True).to_fp8()
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    x = make_x((3,), 144)
    with torch.no_grad():
        z1 = compiled(x)
        m.weight.mul_(-1)
        m.bias.mul_(-1)
        m.refresh_fp8()
        z2 = compiled(x)
        torch.testing.assert_close(z2.float(), (copy.deepcopy(m).to_fp8()(x)).float())
    assert not torch.equal(z1, z2)


# torch.library.opcheck's schema test perturbs the inputs to see what an operator mutates, and
# torch has no arithmetic on float8 tensors: forward_fp8, whose inputs are e4m3, goes without it.
OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


@pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck needs torch 2.4")
def test_opcheck_on_the_standins():
    """torch's checks of the operators' registration (schema, fake implementations, aot_autograd
    against eager) with the CPU stand-ins as the kernels; test_gpu.py runs them on CUDA."""
    xq, xs = torch.ops.swiglu.quantize_e4m3(torch.randn(5, 144), "1x128")
    wq, ws = swiglu.quantize_weight_e4m3(torch.randn(260, 144), "blocks")
    for blocks in ("1x128", "128x128"):
        torch.library.opcheck(torch.ops.swiglu.quantize_e4m3.default, (torch.randn(5, 144), blocks),
                              test_utils=OPCHECK_UTILS)
    for z_e4m3 in (False, True):
        torch.library.opcheck(torch.ops.swiglu.forward_fp8.default,
                              (xq, xs, wq, ws, torch.randn(260).bfloat16(), "blocks", "blocks", torch.bfloat16, z_e4m3),
                              test_utils=OPCHECK_UTILS[1:])


def test_fake_implementations_on_meta():
    x = torch.empty(5, 144, device="meta", dtype=torch.bfloat16)
    q, s = torch.ops.swiglu.quantize_e4m3(x, "1x128")
    assert (q.dtype, q.shape, s.shape) == (E4M3, (5, 144), (5, 2))
    assert torch.ops.swiglu.quantize_e4m3(x, "128x128")[1].shape == (1, 2)
    w = torch.empty(260, 144, device="meta", dtype=E4M3)
    z, zs = torch.ops.swiglu.forward_fp8(q, s, w, torch.empty(4, 2, device="meta"), None, "blocks", "blocks",
                                         torch.float16, False)
    assert (z.dtype, z.shape, zs.shape) == (torch.float16, (5, 130), (0,))
    z, zs = torch.ops.swiglu.forward_fp8(q, s, w, torch.empty(260, device="meta"), None, "blocks", "channel",
                                         torch.bfloat16, True)
    assert (z.dtype, z.shape, zs.shape) == (E4M3, (5, 130), (5, 2))


# ---- FP8 training (fused_swiglu_fp8_training, FusedSwiGLU.to_fp8_training) ------------------------

# (leading dimensions of x, I, D), I and D multiples of 16: one row, D not a multiple of 128, and more
# than 128 rows (two blocks of Xᵀ's scales along the batch).
TRAINING_SHAPES = [((1,), 16, 16), ((3, 5), 144, 208), ((130,), 272, 128)]


def training_inputs(shape, bias, master=torch.float32, x_dtype=torch.bfloat16, seed=0):
    lead, in_features, hidden = shape
    gen = torch.Generator().manual_seed(seed)
    w = (structured(gen, 2 * hidden, in_features, row_blocks_of=hidden) / in_features ** 0.5).to(master)
    b = (uniform(gen, 2 * hidden) / in_features ** 0.5).to(master) if bias else None
    x = uniform(gen, *lead, in_features).to(x_dtype)
    return x, w, b


def grads64(x, w, b):
    """Z and the gradients of sum(Z·c) in float64 on the unquantised inputs, c a fixed pattern."""
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = None if b is None else b.detach().double().requires_grad_()
    z = swiglu.reference_swiglu(x64, w64, b64)
    (z * cotangent(z)).sum().backward()
    return z.detach(), x64.grad, w64.grad, None if b is None else b64.grad


def cotangent(z):
    return torch.linspace(-1, 1, z.numel(), dtype=torch.float64).reshape(z.shape).flip(-1)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("master", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", TRAINING_SHAPES, ids=shape_id)
def test_fp8_training_gradients(shape, master, bias):
    """Z in bf16 and each gradient in its input's dtype, through the two operators (once each, H
    and Xᵀ kept), equal to the operators called directly on what the forward kept, and within the
    recipe's quantisation of float64 on the unquantised inputs (dX and dW12 each carry two e4m3
    operands' roundings, 2·2^-4 of an element at most: rel L2 ≤ 2·2^-4 leaves room for H's)."""
    x, w, b = training_inputs(shape, bias, master)
    x.requires_grad_()
    w.requires_grad_()
    if b is not None:
        b.requires_grad_()
    z = swiglu.fused_swiglu_fp8_training(x, w, b)
    assert z.dtype == torch.bfloat16 and z.shape == (*shape[0], shape[2])
    (z.double() * cotangent(z)).sum().backward()
    assert [c[0] for c in FP8_CALLS] == ["forward_fp8_training", "backward_fp8"]
    assert FP8_CALLS[0][1] is True and FP8_CALLS[1][1:] == (True, True, bias)
    assert x.grad.dtype == x.dtype and w.grad.dtype == master and (b is None or b.grad.dtype == master)
    # The same through the operators by hand.
    in_features = shape[1]
    z2, h, xt, xts = torch.ops.swiglu.forward_fp8_training(x.detach().reshape(-1, in_features), w.detach(),
                                                           None if b is None else b.detach(), torch.bfloat16, True)
    assert torch.equal(z2.reshape(z.shape), z)
    dz = cotangent(z).to(torch.bfloat16).reshape(-1, shape[2])
    dx, dw, db = torch.ops.swiglu.backward_fp8(dz, w.detach(), h, xt, xts, True, True, bias, x.dtype,
                                               master if bias else torch.float32)
    assert torch.equal(dx.reshape(x.shape), x.grad) and torch.equal(dw, w.grad)
    if bias:
        assert torch.equal(db, b.grad)
    z64, dx64, dw64, db64 = grads64(x, w, b)
    assert rel_l2(z, z64) <= 2 * U
    assert rel_l2(x.grad, dx64) <= 2 * U
    assert rel_l2(w.grad, dw64) <= 2 * U
    if bias:
        assert rel_l2(b.grad, db64) <= 2 * U


@pytest.mark.parametrize("wants", [(True, False, False), (False, True, False), (False, False, True),
                                   (True, True, False)])
def test_fp8_training_computes_only_the_gradients_asked_for(wants):
    x, w, b = training_inputs(((6,), 144, 208), True)
    for t, want in zip((x, w, b), wants):
        t.requires_grad_(want)
    swiglu.fused_swiglu_fp8_training(x, w, b).float().sum().backward()
    assert FP8_CALLS[-1] == ("backward_fp8", *wants)
    for t, want in zip((x, w, b), wants):
        assert (t.grad is not None) == want


def test_fp8_training_without_grad_keeps_nothing():
    x, w, b = training_inputs(((4,), 144, 208), True)
    w.requires_grad_()
    with torch.no_grad():
        z = swiglu.fused_swiglu_fp8_training(x, w, b)
    assert FP8_CALLS == [("forward_fp8_training", False)] and not z.requires_grad
    zs = swiglu.fused_swiglu_fp8_training(x, w, b)
    assert FP8_CALLS[-1] == ("forward_fp8_training", True) and torch.equal(z, zs)


def test_fp8_training_fp16_input_and_empty_batch():
    x, w, b = training_inputs(((4,), 144, 208), True, master=torch.float16, x_dtype=torch.float16)
    x.requires_grad_()
    z = swiglu.fused_swiglu_fp8_training(x, w, b)
    assert z.dtype == torch.float16
    z.float().sum().backward()
    assert x.grad.dtype == torch.float16
    w.requires_grad_()
    empty = torch.empty(0, 144, dtype=torch.bfloat16, requires_grad=True)
    ze = swiglu.fused_swiglu_fp8_training(empty, w, b)
    assert ze.shape == (0, 208)
    ze.float().sum().backward()
    assert empty.grad.shape == (0, 144) and torch.count_nonzero(w.grad) == 0


def test_fp8_training_module():
    """to_fp8_training(): the forward runs the training operators from the parameters as they are
    at each call (nothing cached: an SGD step changes the next forward); to_fp8_training(False) goes
    back to the bf16 kernels' path; the modes exclude each other."""
    m = make_module(144, 208, True, dtype=torch.float32)
    x = make_x((5,), 144)
    assert m.to_fp8_training() is m and "fp8_training=True" in repr(m)
    z1 = m(x)
    z1.float().sum().backward()
    assert [c[0] for c in FP8_CALLS] == ["forward_fp8_training", "backward_fp8"]
    assert m.weight.grad.dtype == torch.float32
    with torch.no_grad():
        m.weight.sub_(0.5 * m.weight.grad)
    assert not torch.equal(m(x), z1)
    with pytest.raises(RuntimeError, match="FP8 training mode"):
        m.to_fp8()
    m.to_fp8_training(False)
    FP8_CALLS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", swiglu.FallbackWarning)
        m(x.float())
    assert FP8_CALLS == []
    with pytest.raises(RuntimeError, match="FP8 inference mode"):
        make_module(144, 208, True).to_fp8().to_fp8_training()
    with pytest.raises(ValueError, match="multiples of 16"):
        make_module(144, 130, True).to_fp8_training()


def test_fp8_training_bad_arguments():
    x, w, b = training_inputs(((4,), 144, 208), True)
    with pytest.raises(ValueError, match="hidden must be a multiple of 16"):
        swiglu.fused_swiglu_fp8_training(x, w[:260], None)
    with pytest.raises(ValueError, match="in_features must be a positive multiple of 16"):
        swiglu.fused_swiglu_fp8_training(x[:, :136], w[:, :136], b)
    with pytest.raises(TypeError, match="w12 must be float32, float16 or bfloat16"):
        swiglu.fused_swiglu_fp8_training(x, w.double(), b)
    with pytest.raises(ValueError, match=r"bias must be \[ba \| bb\]"):
        swiglu.fused_swiglu_fp8_training(x, w, b[:10])
    with pytest.raises(ValueError, match="last dimension"):
        swiglu.fused_swiglu_fp8_training(x[:, :128], w, b)
    with pytest.raises(ValueError, match="xt must be"):
        torch.ops.swiglu.backward_fp8(torch.zeros(4, 208, dtype=torch.bfloat16), w, torch.zeros(4, 416, dtype=torch.bfloat16),
                                      torch.zeros(144, 4).to(E4M3), torch.zeros(144, 1), True, True, False,
                                      torch.bfloat16, torch.float32)


def test_fp8_training_needs_cuda_and_hopper(monkeypatch):
    monkeypatch.undo()  # the real unsupported_reason
    x, w, b = training_inputs(((4,), 144, 208), True)
    with pytest.raises(RuntimeError, match="FP8 cannot run here: tensors on cpu"):
        swiglu.fused_swiglu_fp8_training(x, w, b)


def test_compiled_fp8_training_calls_both_operators():
    """fullgraph=True: the forward and backward graphs hold the two training operators, and the
    compiled gradients equal eager's."""
    backend, nodes = graph_recorder()
    torch._dynamo.reset()
    m = make_module(144, 208, True, dtype=torch.float32).to_fp8_training()
    compiled = torch.compile(m, backend=backend, fullgraph=True)
    x = make_x((6,), 144)
    compiled(x).float().sum().backward()
    got = m.weight.grad.clone()
    m.weight.grad = None
    m(x).float().sum().backward()
    assert torch.equal(got, m.weight.grad)
    assert {"swiglu.forward_fp8_training.default", "swiglu.backward_fp8.default"} <= nodes, nodes


def test_fp8_training_fake_implementations_on_meta():
    x = torch.empty(5, 144, device="meta", dtype=torch.bfloat16)
    w = torch.empty(416, 144, device="meta", dtype=torch.float32)
    z, h, xt, xts = torch.ops.swiglu.forward_fp8_training(x, w, None, torch.bfloat16, True)
    assert (z.shape, h.shape, xt.shape, xt.dtype, xts.shape) == ((5, 208), (5, 416), (144, 16), E4M3, (144, 1))
    assert torch.ops.swiglu.forward_fp8_training(x, w, None, torch.float16, False)[1].shape == (0,)
    dx, dw, db = torch.ops.swiglu.backward_fp8(z, w, h, xt, xts, True, False, True, torch.bfloat16, torch.float32)
    assert (dx.shape, dw.shape, db.shape, db.dtype) == ((5, 144), (0,), (416,), torch.float32)


# ---- the real library's FP8 entry points through ctypes -------------------------------------------


def fp8_problem(**fields):
    p = dict(batch=64, in_features=144, hidden=130, ldx=0, x_scaling=_lib.FP8_SCALE_BLOCKS,
             w_scaling=_lib.FP8_SCALE_BLOCKS, out_dtype=_lib.DTYPE_BF16, bias=0, z_e4m3=0)
    p.update(fields)
    return _lib.Fp8Problem(**p)


def test_fp8_problem_matches_the_header():
    assert ctypes.sizeof(_lib.Fp8Problem) == 4 * 8 + 5 * 4 + 4  # four int64, five int32, tail padding
    assert (_lib.FP8_SCALE_TENSOR, _lib.FP8_SCALE_BLOCKS, _lib.FP8_SCALE_CHANNEL) == (0, 1, 2)
    assert (_lib.FP8_BLOCKS_1X128, _lib.FP8_BLOCKS_128X128) == (0, 1)


@pytest.mark.parametrize("fields, match", [
    ({"in_features": 136}, r"in_features \(136\) and X's row stride \(136\) must be multiples of 16"),
    ({"x_scaling": _lib.FP8_SCALE_CHANNEL}, r"x_scaling 2 is not tensor or blocks"),
    ({"w_scaling": 3}, r"w_scaling 3 is not SWIGLU_FP8_SCALE_TENSOR, _BLOCKS or _CHANNEL"),
    ({"out_dtype": _lib.DTYPE_F32}, r"out_dtype 0 is not SWIGLU_DTYPE_BF16 or _F16"),
    ({}, r"x is null"),
])
def test_real_library_forward_fp8_errors(real_library, fields, match):
    with pytest.raises(swiglu.SwigluError, match="swiglu_forward_fp8: SWIGLU_INVALID_ARGUMENT: " + match):
        real_library.forward_fp8(fp8_problem(**fields), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def test_real_library_quantize_errors(real_library):
    with pytest.raises(swiglu.SwigluError, match="blocks 2 is not SWIGLU_FP8_BLOCKS_1X128 or _128X128"):
        real_library.quantize_e4m3(_lib.DTYPE_BF16, 0, 16, 4, 16, 2, 0, 16, 0, 0)
    with pytest.raises(swiglu.SwigluError, match="quantize: a null pointer"):
        real_library.quantize_e4m3(_lib.DTYPE_BF16, 0, 16, 4, 16, _lib.FP8_BLOCKS_1X128, 0, 16, 0, 0)
    real_library.quantize_e4m3(_lib.DTYPE_BF16, 0, 16, 0, 16, _lib.FP8_BLOCKS_1X128, 0, 16, 0, 0)  # no rows


def test_real_library_check_fp8_scales(real_library):
    with pytest.raises(swiglu.SwigluError, match="swiglu_check_fp8_scales: SWIGLU_INVALID_ARGUMENT: .*multiples of 16"):
        real_library.check_fp8_scales(fp8_problem(in_features=136), 0, 0, 0)


@pytest.mark.parametrize("fields, match", [
    ({"hidden": 130}, r"hidden \(130\) must be a multiple of 16 for the FP8 backward"),
    ({"out_dtype": _lib.DTYPE_F32}, r"out_dtype 0 is not SWIGLU_DTYPE_BF16 or _F16"),
    ({"hidden": 128}, r"dz is null"),
])
def test_real_library_backward_fp8_errors(real_library, fields, match):
    with pytest.raises(swiglu.SwigluError, match="swiglu_backward_fp8: SWIGLU_INVALID_ARGUMENT: " + match):
        real_library.backward_fp8(fp8_problem(**fields), 0, 0, 0, 0, 0, 64, 0, 1 << 20, _lib.DTYPE_BF16, 0,
                                  _lib.DTYPE_F32, False, 0, _lib.DTYPE_F32, 0, 0, 0)
    assert real_library.backward_fp8_workspace_bytes(fp8_problem(hidden=128)) > 4 * 64 * 128
    assert real_library.backward_fp8_workspace_bytes(fp8_problem(hidden=128, batch=0)) == 0
    with pytest.raises(swiglu.SwigluError, match="swiglu_backward_fp8_workspace_bytes: .*multiple of 16"):
        real_library.backward_fp8_workspace_bytes(fp8_problem())
    with pytest.raises(swiglu.SwigluError, match="blocks 2 is not SWIGLU_FP8_BLOCKS_1X128 or _128X128"):
        real_library.quantize_e4m3_transposed(_lib.DTYPE_BF16, 0, 16, 4, 16, 2, 0, 16, 0, 0, 16, 0, 0)


def stub_library(tmp_path, version, functions):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in library")
    src = tmp_path / "stub.c"
    src.write_text("\n".join(
        [f"int swiglu_abi_version(void) {{ return {version}; }}", "const char* swiglu_last_error(void) { return \"\"; }"]
        + [f"int {f}(void) {{ return 0; }}" for f in functions]))
    lib = tmp_path / "libswiglu_c.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return str(lib)


BF16_FUNCTIONS = ["swiglu_forward", "swiglu_backward_workspace_bytes3", "swiglu_backward3"]


@pytest.mark.parametrize("missing", ["swiglu_forward_fp8", "swiglu_check_fp8_scales", "swiglu_backward_fp8"])
def test_library_of_this_version_without_an_fp8_function(tmp_path, monkeypatch, missing):
    """Every function of the package's ABI version is required: one absent names itself."""
    monkeypatch.setattr(_lib, "_loaded", None)
    fp8 = ["swiglu_forward_fp8", "swiglu_quantize_e4m3", "swiglu_check_fp8_scales", "swiglu_quantize_e4m3_transposed",
           "swiglu_backward_fp8_workspace_bytes", "swiglu_backward_fp8"]
    monkeypatch.setenv("SWIGLU_LIBRARY", stub_library(
        tmp_path, _lib.ABI_VERSION, BF16_FUNCTIONS + [f for f in fp8 if f != missing]))
    with pytest.raises(swiglu.LibraryError, match=rf"reports C ABI version {_lib.ABI_VERSION} but does not export "
                                                  rf"{missing}\(\)"):
        swiglu.load_library()


# ---- scripts/bench_torch.py --fp8: its baseline's arithmetic ---------------------------------------


def test_bench_fp8_baseline_quantises_as_the_library(bench_torch):
    """The torch._scaled_mm baseline's SiLU·mul + 1×128 quantisation (eager here; the benchmark
    compiles it) writes what fused_swiglu_fp8's e4m3 Z holds: the same scales and bytes as the
    tests' own quantiser; its x and W quantisers are amax/448 per tensor and per row."""
    gen = torch.Generator().manual_seed(3)
    h = structured(gen, 6, 400).to(torch.bfloat16)
    q, s = bench_torch.gate_e4m3(h, 200)
    g, u = h.float().split(200, dim=-1)
    q_ref, s_ref = ref.quantize_blocks(torch.nn.functional.silu(g) * u, 1)
    assert torch.equal(s, s_ref) and torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8))
    torch.testing.assert_close(bench_torch.dequantize_z(q, s), ref.dequantize_z(q, s).float())
    x = structured(gen, 5, 144).float()
    xq, xs = bench_torch.quantize_per_row(x)
    assert xs.shape == (5, 1) and torch.equal(xs, x.abs().amax(dim=1, keepdim=True) / 448)
    xq, xs = bench_torch.quantize_per_tensor(x)
    assert xs.shape == () and torch.equal(xq.float(), (x / xs).clamp(-448, 448).to(E4M3).float())


def test_bench_fp8_options(bench_torch):
    assert bench_torch.parse_args(["--fp8"]).contenders == bench_torch.FP8_CONTENDERS
    assert bench_torch.parse_args([]).contenders == bench_torch.CONTENDERS
    assert bench_torch.parse_args(["--fp8", "--contenders", "fp8-fused"]).contenders == ["fp8-fused"]
    with pytest.raises(SystemExit) as e:
        bench_torch.parse_args(["--fp8", "--contenders", "fused-save"])
    assert e.value.code == 3
    row = dict(B=1, I=16, D=8, dtype="bf16", x_stride_pad=0, bias=False, contender="fp8-fused", status="PASS",
               fwd_median_ms=0.0123, fwd_noise=0.02, fwd_speedup=1.5, rel_err=0.05)
    assert bench_torch.fp8_md_row(row) == "| 1 | 16 | 8 | bf16 | no | fp8-fused | 0.0123 | 2.0% | 1.50x | 5.0e-02 | PASS |"
    assert bench_torch.fp8_summary_lines([row, dict(row, fwd_speedup=1.0 / 1.5)]) == [
        "fp8-fused against fp8-scaled-mm, geometric mean over 2 cases: fwd 1.00x (range 0.67-1.50)"]
