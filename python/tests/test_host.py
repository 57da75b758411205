"""Host tests of the swiglu package: no GPU needed (CI runs them on a machine without one).

What they cover: the CPU fallback (its values, gradients, warning, autocast), argument checking,
the module (initialisation, from_linears, state dicts with gate_proj/up_proj names), the operators'
fake implementations, and loading libswiglu_c (every failure mode's message, and the real library
through ctypes: its version and its error messages). The fused kernels themselves are test_gpu.py's.
"""

import ctypes.util
import math
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import swiglu
from swiglu import _lib, _ops, functional

PYTHON_DIR = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_fallback_warnings():
    """Each test sees the one-time fallback warnings as not yet issued."""
    functional._warned.clear()
    yield
    functional._warned.clear()


def linear_pair(in_features, hidden, bias, dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Linear(in_features, hidden, bias=bias, dtype=dtype), nn.Linear(in_features, hidden, bias=bias, dtype=dtype)


# ---- the fallback ------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(7,), (4, 7), (2, 3, 7), (0, 7)])
def test_cpu_fallback_matches_linear_pair_and_gate(shape, bias):
    fc1_a, fc1_b = linear_pair(7, 5, bias)
    fused = swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b)
    x = torch.randn(shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    with pytest.warns(swiglu.FallbackWarning, match="tensors on cpu"):
        z = fused(x)
    z_ref = F.silu(fc1_a(x_ref)) * fc1_b(x_ref)
    torch.testing.assert_close(z, z_ref)
    dz = torch.randn_like(z)
    z.backward(dz)
    z_ref.backward(dz)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(fused.weight.grad, torch.cat([fc1_a.weight.grad, fc1_b.weight.grad]))
    if bias:
        torch.testing.assert_close(fused.bias.grad, torch.cat([fc1_a.bias.grad, fc1_b.bias.grad]))


def test_fallback_warns_once_per_reason():
    w12 = torch.randn(8, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        swiglu.fused_swiglu(torch.randn(2, 3), w12)
        swiglu.fused_swiglu(torch.randn(2, 3), w12, policy="recompute")
        swiglu.fused_swiglu(torch.randn(2, 3, dtype=torch.float64), w12.double())
    messages = [str(w.message) for w in caught if issubclass(w.category, swiglu.FallbackWarning)]
    assert len(messages) == 1, messages  # the float64 call fell back for the same reason: CPU
    assert "tensors on cpu" in messages[0] and "PyTorch reference" in messages[0]


def test_fallback_is_the_reference_under_cpu_autocast():
    x, w12, b = torch.randn(4, 6), torch.randn(10, 6), torch.randn(10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.warns(swiglu.FallbackWarning):
            z = swiglu.fused_swiglu(x, w12, b)
        z_ref = swiglu.reference_swiglu(x, w12, b)
    assert z.dtype == torch.bfloat16
    torch.testing.assert_close(z, z_ref)


def test_meta_tensors_fall_back_to_shapes():
    """A model built on the meta device (shape inference, deferred initialisation) runs."""
    m = swiglu.FusedSwiGLU(6, 4, device="meta")
    with pytest.warns(swiglu.FallbackWarning, match="tensors on meta"):
        z = m(torch.empty(2, 3, 6, device="meta"))
    assert z.shape == (2, 3, 4) and z.device.type == "meta"


def test_gradcheck_of_the_reference_in_float64():
    """torch.autograd.gradcheck on the float64 CPU path. What this checks: the fallback (autograd
    through reference_swiglu) against finite differences. It does not check the fused kernels,
    which have no float64; test_gpu.py checks their gradients against a float64 reference."""
    torch.manual_seed(1)
    x = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    w12 = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", swiglu.FallbackWarning)
        for policy in ("save", "recompute"):
            assert torch.autograd.gradcheck(lambda *t: swiglu.fused_swiglu(*t, policy=policy), (x, w12, b))
            assert torch.autograd.gradgradcheck(lambda *t: swiglu.fused_swiglu(*t, policy=policy), (x, w12, b))


def test_reference_formula():
    x = torch.tensor([[1.0, -2.0]])
    w12 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])  # Wa = rows 0-1, Wb = rows 2-3
    b = torch.tensor([0.5, 0.0, 0.0, 1.0])
    g = torch.tensor([[1.5, -2.0]])
    u = torch.tensor([[-1.0, 3.0]])
    torch.testing.assert_close(swiglu.reference_swiglu(x, w12, b), g * torch.sigmoid(g) * u)


# ---- argument checking -------------------------------------------------------------------------


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((torch.randn(2, 3), torch.randn(8, 4)), {}, ValueError, r"in_features = 4.*x of shape \(2, 3\)"),
    ((torch.randn(2, 3), torch.randn(7, 3)), {}, ValueError, r"w12 must be \[Wa; Wb\].*\(7, 3\)"),
    ((torch.randn(2, 3), torch.randn(8, 3, 1)), {}, ValueError, r"w12 must be .*\(8, 3, 1\)"),
    ((torch.randn(2, 3), torch.randn(0, 3)), {}, ValueError, r"w12 must be"),
    ((torch.tensor(1.0), torch.randn(8, 1)), {}, ValueError, r"last dimension"),
    ((torch.randn(2, 3), torch.randn(8, 3), torch.randn(4)), {}, ValueError, r"bias must be .*\(8,\), got \(4,\)"),
    ((torch.randn(2, 3), torch.randn(8, 3)), {"policy": "keep"}, ValueError, r"policy must be 'save' or 'recompute', got 'keep'"),
    ((torch.randn(2, 3), torch.randn(8, 3, dtype=torch.float64)), {}, TypeError, r"x is torch.float32 but w12 is torch.float64"),
    ((torch.randn(2, 3), torch.randn(8, 3), torch.randn(8, dtype=torch.float16)), {}, TypeError, r"bias is torch.float16"),
    ((torch.randn(2, 3), torch.randn(8, 3, device="meta")), {}, ValueError, r"x is on cpu but w12 is on meta"),
    (([[1.0, 2.0, 3.0]], torch.randn(8, 3)), {}, TypeError, r"x must be a torch.Tensor, got list"),
    ((torch.randn(2, 3), torch.randn(8, 3), 1.0), {}, TypeError, r"bias must be a torch.Tensor, got float"),
])
def test_bad_arguments_raise(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        swiglu.fused_swiglu(*args, **kwargs)


def test_module_bad_arguments_raise():
    with pytest.raises(ValueError, match="in_features and hidden must be positive"):
        swiglu.FusedSwiGLU(0, 4)
    with pytest.raises(ValueError, match="policy must be"):
        swiglu.FusedSwiGLU(4, 4, policy="Save")
    with pytest.raises(ValueError, match="in_features = 4"):
        swiglu.FusedSwiGLU(4, 4)(torch.randn(2, 5))


# ---- the module --------------------------------------------------------------------------------


def test_module_parameters_follow_nn_linear():
    m = swiglu.FusedSwiGLU(64, 32, bias=True, dtype=torch.float64)
    assert m.weight.shape == (64, 64) and m.bias.shape == (64,)
    assert m.weight.dtype == torch.float64
    bound = 1 / 64 ** 0.5
    for p in (m.weight, m.bias):
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.8 * bound  # spread over the interval, not a constant
    assert swiglu.FusedSwiGLU(8, 4, bias=False).bias is None
    assert "policy='recompute'" in repr(swiglu.FusedSwiGLU(8, 4, policy="recompute"))


def test_from_linears_copies_weights():
    fc1_a, fc1_b = linear_pair(6, 3, bias=True, dtype=torch.float64)
    fc1_b.bias.requires_grad_(False)
    fused = swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b, policy="recompute")
    assert fused.policy == "recompute" and fused.weight.dtype == torch.float64
    torch.testing.assert_close(fused.weight[:3], fc1_a.weight.detach())
    torch.testing.assert_close(fused.weight[3:], fc1_b.weight.detach())
    torch.testing.assert_close(fused.bias, torch.cat([fc1_a.bias, fc1_b.bias]).detach())
    assert fused.weight.requires_grad and fused.bias.requires_grad
    with torch.no_grad():
        fused.weight.zero_()
    assert fc1_a.weight.abs().sum() > 0  # copied, not shared


def test_from_linears_frozen_layers_give_frozen_parameters():
    fc1_a, fc1_b = linear_pair(6, 3, bias=False)
    for p in (fc1_a.weight, fc1_b.weight):
        p.requires_grad_(False)
    assert not swiglu.FusedSwiGLU.from_linears(fc1_a, fc1_b).weight.requires_grad


def test_from_linears_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="same shape"):
        swiglu.FusedSwiGLU.from_linears(nn.Linear(4, 3), nn.Linear(4, 5))
    with pytest.raises(ValueError, match="both have a bias"):
        swiglu.FusedSwiGLU.from_linears(nn.Linear(4, 3), nn.Linear(4, 3, bias=False))
    with pytest.raises(ValueError, match="one dtype and device"):
        swiglu.FusedSwiGLU.from_linears(nn.Linear(4, 3), nn.Linear(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="must be an nn.Linear"):
        swiglu.FusedSwiGLU.from_linears(nn.Linear(4, 3), nn.Conv1d(4, 3, 1))


class GateUp(nn.Module):
    """The layout of a HF-style MLP's up-projections."""

    def __init__(self, i, d, bias):
        super().__init__()
        self.gate_proj = nn.Linear(i, d, bias=bias)
        self.up_proj = nn.Linear(i, d, bias=bias)


@pytest.mark.parametrize("bias", [False, True])
def test_loads_gate_proj_up_proj_state_dict(bias):
    old = GateUp(6, 4, bias)
    sd = old.state_dict()
    keys = set(sd)
    fused = swiglu.FusedSwiGLU(6, 4, bias=bias)
    fused.load_state_dict(sd)  # strict
    assert set(sd) == keys  # the caller's dict is left as it was
    torch.testing.assert_close(fused.weight.detach(), torch.cat([old.gate_proj.weight, old.up_proj.weight]).detach())
    if bias:
        torch.testing.assert_close(fused.bias.detach(), torch.cat([old.gate_proj.bias, old.up_proj.bias]).detach())
    # Its own state dict (stacked names) round-trips.
    again = swiglu.FusedSwiGLU(6, 4, bias=bias)
    again.load_state_dict(fused.state_dict())
    torch.testing.assert_close(again.weight, fused.weight)


def test_loads_gate_proj_up_proj_state_dict_of_a_submodule():
    old = nn.Sequential(nn.Identity(), GateUp(6, 4, False))
    new = nn.Sequential(nn.Identity(), swiglu.FusedSwiGLU(6, 4, bias=False))
    new.load_state_dict(old.state_dict())
    torch.testing.assert_close(new[1].weight.detach(), torch.cat([old[1].gate_proj.weight, old[1].up_proj.weight]).detach())


def test_state_dict_with_only_gate_proj_is_an_error():
    sd = {"gate_proj.weight": torch.randn(4, 6)}
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*\"weight\".*Unexpected key.*\"gate_proj.weight\""):
        swiglu.FusedSwiGLU(6, 4, bias=False).load_state_dict(sd)


def test_state_dict_bias_mismatch_is_an_error():
    with pytest.raises(RuntimeError, match=r"Unexpected key.*\"bias\""):
        swiglu.FusedSwiGLU(6, 4, bias=False).load_state_dict(GateUp(6, 4, True).state_dict())


# ---- the operators' fake implementations (what torch.compile traces with) ----------------------


@pytest.mark.parametrize("save_h", [False, True])
def test_forward_operator_shapes_on_meta(save_h):
    x, w = torch.empty(5, 7, device="meta"), torch.empty(6, 7, device="meta")
    z, h = torch.ops.swiglu.forward(x, w, None, save_h, False)
    assert z.shape == (5, 3) and h.shape == ((5, 6) if save_h else (0,))


@pytest.mark.parametrize("need_dx, need_dw", [(True, True), (True, False), (False, True)])
def test_backward_operator_shapes_on_meta(need_dx, need_dw):
    meta = {"device": "meta"}
    dz, x, w, b, h = (torch.empty(5, 3, **meta), torch.empty(5, 7, **meta), torch.empty(6, 7, **meta),
                      torch.empty(6, **meta), torch.empty(5, 6, **meta))
    dx, dw, db = torch.ops.swiglu.backward(dz, x, w, b, h, False, need_dx, need_dw, False)
    assert dx.shape == ((5, 7) if need_dx else (0,))
    assert dw.shape == ((6, 7) if need_dw else (0,))
    assert db.shape == ((6,) if need_dw else (0,))


# ---- loading libswiglu_c -----------------------------------------------------------------------


@pytest.fixture
def unloaded(monkeypatch):
    """A process state with no library loaded yet (restored afterwards)."""
    monkeypatch.setattr(_lib, "_loaded", None)
    return monkeypatch


def test_import_does_not_load_the_library():
    env = dict(os.environ, SWIGLU_LIBRARY="/nonexistent/libswiglu_c.so", PYTHONPATH=str(PYTHON_DIR))
    code = ("import torch, swiglu, swiglu._lib as l; "
            "z = swiglu.FusedSwiGLU(4, 2)(torch.randn(3, 4)); assert l._loaded is None; print('ok')")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_missing_explicit_library_names_the_variable(unloaded, tmp_path):
    path = tmp_path / "libswiglu_c.so"
    unloaded.setenv("SWIGLU_LIBRARY", str(path))
    with pytest.raises(swiglu.LibraryError) as e:
        swiglu.load_library()
    msg = str(e.value)
    assert f"{path} ($SWIGLU_LIBRARY): no such file" in msg
    assert "SWIGLU_LIBRARY must be the path of libswiglu_c.so" in msg and "unset it" in msg
    assert msg.count("\n  ") == 1  # an explicit path is the only place tried


def test_not_a_shared_library(unloaded, tmp_path):
    path = tmp_path / "libswiglu_c.so"
    path.write_text("not an ELF file\n")
    unloaded.setenv("SWIGLU_LIBRARY", str(path))
    with pytest.raises(swiglu.LibraryError, match=rf"{path} \(\$SWIGLU_LIBRARY\): .*"):
        swiglu.load_library()


def test_library_without_the_functions(unloaded):
    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm found to stand in for a foreign library")
    unloaded.setenv("SWIGLU_LIBRARY", libm)
    with pytest.raises(swiglu.LibraryError, match=r"does not export swiglu_abi_version\(\): it is not libswiglu_c"):
        swiglu.load_library()


def test_library_with_another_abi_version(unloaded, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in library")
    src = tmp_path / "stub.c"
    src.write_text("\n".join(
        ["int swiglu_abi_version(void) { return 99; }", "const char* swiglu_last_error(void) { return \"\"; }"]
        + [f"int {f}(void) {{ return 0; }}" for f in ("swiglu_forward", "swiglu_backward_workspace_bytes3", "swiglu_backward3")]))
    lib = tmp_path / "libswiglu_c.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    unloaded.setenv("SWIGLU_LIBRARY", str(lib))
    with pytest.raises(swiglu.LibraryError, match=rf"has C ABI version 99; this swiglu package needs version {_lib.ABI_VERSION}"):
        swiglu.load_library()


def test_default_search_lists_every_place_and_the_fix(unloaded, tmp_path):
    unloaded.delenv("SWIGLU_LIBRARY", raising=False)
    unloaded.setattr(_lib, "_PACKAGE_DIR", tmp_path / "site-packages" / "swiglu")
    unloaded.setattr(_lib, "LIBRARY_FILE", "libswiglu_c_absent_for_this_test.so")
    with pytest.raises(swiglu.LibraryError) as e:
        swiglu.load_library()
    msg = str(e.value)
    assert "(next to the swiglu package): no such file" in msg
    assert "libswiglu_c_absent_for_this_test.so (the system loader: LD_LIBRARY_PATH, ld.so cache)" in msg
    assert "cmake --build build --target swiglu_c" in msg and "SWIGLU_LIBRARY=" in msg


def test_source_tree_build_directory_is_searched(unloaded):
    unloaded.delenv("SWIGLU_LIBRARY", raising=False)
    places = [p for p, _ in _lib.candidates()]
    assert str(PYTHON_DIR.parent / "build" / "libswiglu_c.so") in places


# ---- the real library through ctypes (no GPU needed for these calls) ---------------------------


def problem(**fields):
    p = dict(batch=64, in_features=784, hidden=512, ldx=0, dtype=_lib.DTYPE_BF16,
             layout=_lib.LAYOUT_LINEAR, bias=0, math=_lib.MATH_EXACT)
    p.update(fields)
    return _lib.Problem(**p)


def test_real_library_version(real_library):
    assert real_library.abi_version() == _lib.ABI_VERSION


@pytest.mark.parametrize("fields, match", [
    ({"batch": -1}, "batch must be >= 0, got -1"),
    ({"hidden": 0}, "hidden must be > 0, got 0"),
    ({"dtype": 7}, "dtype 7 is not SWIGLU_DTYPE_F32, _F16 or _BF16"),
    ({"ldx": 5}, r"ldx \(5\) is smaller than in_features \(784\)"),
])
def test_real_library_errors_reach_python(real_library, fields, match):
    with pytest.raises(swiglu.SwigluError, match="swiglu_forward: SWIGLU_INVALID_ARGUMENT: " + match) as e:
        real_library.forward(problem(**fields), 0, 0, 0, 0, 0, 0)
    assert e.value.status == "SWIGLU_INVALID_ARGUMENT"


def test_real_library_takes_every_math_value(real_library):
    assert (_lib.MATH_EXACT, _lib.MATH_TF32, _lib.MATH_TF32X3) == (0, 1, 2)  # the header's values
    for math in (_lib.MATH_EXACT, _lib.MATH_TF32, _lib.MATH_TF32X3):
        with pytest.raises(swiglu.SwigluError, match="x is null"):
            real_library.forward(problem(dtype=_lib.DTYPE_F32, math=math), 0, 0, 0, 0, 0, 0)
    with pytest.raises(swiglu.SwigluError, match="math 3 is not SWIGLU_MATH_EXACT, _TF32 or _TF32X3"):
        real_library.forward(problem(dtype=_lib.DTYPE_F32, math=3), 0, 0, 0, 0, 0, 0)


def test_real_library_null_pointer_is_named(real_library):
    with pytest.raises(swiglu.SwigluError, match="x is null"):
        real_library.forward(problem(), 0, 0, 0, 0, 0, 0)


def test_real_library_workspace_query(real_library):
    both = real_library.backward_workspace_bytes(problem(), _lib.POLICY_RECOMPUTE, True, True)
    assert both >= 64 * 2 * 512 * 2  # at least dH, B×2D bf16
    assert real_library.backward_workspace_bytes(problem(batch=0), _lib.POLICY_SAVE, True, True) == 0
    with pytest.raises(swiglu.SwigluError, match="policy 3 is not SWIGLU_POLICY_SAVE or _RECOMPUTE"):
        real_library.backward_workspace_bytes(problem(), 3, True, True)


def test_real_library_workspace_bound(real_library):
    """max_workspace_bytes: the whole batch's size when it fits, a chunk's when not, refused below
    a 64-row chunk's."""
    p = problem(batch=4096, in_features=4096, hidden=11008)
    whole = real_library.backward_workspace_bytes(p, _lib.POLICY_SAVE, True, True)
    assert real_library.backward_workspace_bytes(p, _lib.POLICY_SAVE, True, True, max_workspace_bytes=whole) == whole
    half = real_library.backward_workspace_bytes(p, _lib.POLICY_SAVE, True, True, max_workspace_bytes=whole // 2)
    assert 0 < half <= whole // 2
    with pytest.raises(swiglu.SwigluError, match="swiglu_backward_workspace_bytes3: .*max_workspace_bytes 4096 is below"):
        real_library.backward_workspace_bytes(p, _lib.POLICY_SAVE, True, True, max_workspace_bytes=4096)


class _SizeOnlyLibrary:
    """Stands in for the library's workspace query: one byte a row, the rows it was asked about logged."""

    def __init__(self):
        self.batches = []

    def backward_workspace_bytes(self, p, policy, dx, dw, dh_storage, max_workspace_bytes=0):
        self.batches.append(p.batch)
        return p.batch


@pytest.mark.parametrize("batch, rows, chunk", [
    (4096, 2048, 2048), (4097, 2048, 1366), (2048, 2048, None), (100, 2048, None), (4096, 0, None),
    (300, 64, 75),   # five chunks of 60 rows would be below the 64-row least: four of 75
    (300, 10, 75),   # as few as 64 rows whatever is asked
    (127, 64, None),  # two chunks would be below 64 rows: one piece
])
def test_backward_chunk_bound(batch, rows, chunk):
    """The bound _backward_cuda passes: one chunk's workspace, for the fewest chunks of at most
    `rows` rows (and at least 64), or 0 for one piece."""
    lib = _SizeOnlyLibrary()
    bound = _ops._workspace_bound(lib, problem(batch=batch), _lib.POLICY_RECOMPUTE, True, True, _lib.DH_WORKSPACE,
                                  rows)
    assert bound == (0 if chunk is None else chunk)
    assert lib.batches == ([] if chunk is None else [chunk])


def test_backward_chunk_rows_from_the_environment(monkeypatch):
    monkeypatch.delenv(_ops.CHUNK_ROWS_ENV, raising=False)
    assert _ops.chunk_rows() == _ops.CHUNK_ROWS
    for text, rows in (("", _ops.CHUNK_ROWS), ("0", 0), ("512", 512)):
        monkeypatch.setenv(_ops.CHUNK_ROWS_ENV, text)
        assert _ops.chunk_rows() == rows
    for text in ("-1", "many", "1.5"):
        monkeypatch.setenv(_ops.CHUNK_ROWS_ENV, text)
        with pytest.raises(ValueError, match=f"SWIGLU_BACKWARD_CHUNK_ROWS must be an integer >= 0 .*{text!r}"):
            _ops.chunk_rows()


def test_bench_torch_check_failures_are_rows(bench_torch):
    """A contender whose check raises: ours is ERROR, another's SKIP, each with the first line of
    the error; out of memory is SKIP for anyone."""
    ours, theirs, oom = {}, {}, {}
    bench_torch.record_check_failure(ours, RuntimeError("bad launch\nmore"), ours=True)
    bench_torch.record_check_failure(theirs, ValueError("needs TMA"), ours=False)
    bench_torch.record_check_failure(oom, torch.cuda.OutOfMemoryError("CUDA out of memory"), ours=True)
    assert ours == {"status": "ERROR", "reason": "RuntimeError: bad launch"}
    assert theirs == {"status": "SKIP", "reason": "ValueError: needs TMA"}
    assert oom == {"status": "SKIP", "reason": "out of memory in the check"}


def test_bench_torch_command_line_has_no_machine_paths(bench_torch):
    root = bench_torch.ROOT
    args = ["--shapes", str(root / "configs" / "llama.yaml"), "--out", "/somewhere/out/results", "--time-limit", "90"]
    assert bench_torch.command_args(args) == ["--shapes", "configs/llama.yaml", "--out", "OUT", "--time-limit", "90"]
    args = ["--out=/elsewhere", "--out", str(root / "results" / "h200" / "torch"), "--shapes", "/etc/a.yaml"]
    assert bench_torch.command_args(args) == ["--out=OUT", "--out", "results/h200/torch", "--shapes", "/etc/a.yaml"]


def test_bench_torch_summary_compares_fp8_training_with_fused_save_case_by_case(bench_torch):
    case = dict(config="llama", I=4096, D=14336, dtype="bf16", bias=False)
    rows = [dict(case, B=4096, contender="fused-save", status="PASS", step_median_ms=2.0),
            dict(case, B=4096, contender="fp8-train", status="PASS", step_median_ms=1.0, step_speedup=2.2),
            dict(case, B=8192, contender="fused-save", status="PASS", step_median_ms=4.0),
            dict(case, B=8192, contender="fp8-train", status="PASS", step_median_ms=2.5, step_speedup=1.8),
            dict(case, B=1, contender="fp8-train", status="PASS", step_median_ms=0.1)]  # no fused-save row
    lines = bench_torch.summary_lines(rows)
    assert lines[-1] == "fp8-train against fused-save, fwd+bwd, geometric mean over 2 cases: 1.79x (range 1.60-2.00)"
    assert any(line.startswith("fp8-train against linear2+liger") for line in lines)


def test_bench_torch_summary_compares_fp8_training_with_the_torch_pipeline(bench_torch):
    case = dict(config="llama", B=4096, I=4096, D=14336, dtype="bf16", bias=False)
    rows = [dict(case, contender="fp8-scaled-mm-train", status="PASS", step_median_ms=3.0),
            dict(case, contender="fp8-train", status="PASS", step_median_ms=2.0),
            dict(case, B=16, contender="fp8-scaled-mm-train", status="SKIP"),
            dict(case, B=16, contender="fp8-train", status="PASS", step_median_ms=0.2)]
    lines = bench_torch.summary_lines(rows)
    assert lines == ["fp8-train against fp8-scaled-mm-train, fwd+bwd, geometric mean over 1 cases: 1.50x "
                     "(range 1.50-1.50)"]


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"),
                    reason="this torch has no float8_e4m3fn or torch._scaled_mm")
@pytest.mark.parametrize("bias", [False, True])
def test_bench_torch_scaled_mm_training_pipeline(bench_torch, bias):
    """fp8-scaled-mm-train's arithmetic on the CPU (torch._scaled_mm takes per-tensor scales there),
    eager: Z, dX, dW12 and dbias against float32 on the unquantised inputs at the bench's FP8
    tolerances, which a gradient from the wrong operand or a lost scale would far exceed."""
    try:
        torch._scaled_mm(torch.zeros(16, 16, dtype=torch.float8_e4m3fn), torch.zeros(16, 16, dtype=torch.float8_e4m3fn).t(),
                         scale_a=torch.tensor(1.0), scale_b=torch.tensor(1.0), out_dtype=torch.bfloat16)
    except (RuntimeError, NotImplementedError) as e:
        pytest.skip(f"torch._scaled_mm does not run on this CPU build: {str(e).splitlines()[0]}")
    gen = torch.Generator().manual_seed(7)
    batch, in_features, hidden = 64, 256, 144
    bound = 1 / math.sqrt(in_features)
    x = (torch.rand(batch, in_features, generator=gen) * 2 - 1).to(torch.bfloat16).requires_grad_()
    w12 = ((torch.rand(2 * hidden, in_features, generator=gen) * 2 - 1) * bound).to(torch.bfloat16).requires_grad_()
    b12 = ((torch.rand(2 * hidden, generator=gen) * 2 - 1) * bound).to(torch.bfloat16).requires_grad_() if bias else None
    dz = (torch.rand(batch, hidden, generator=gen) * 2 - 1).to(torch.bfloat16)
    fns = bench_torch.ScaledMmTrainingFns(bench_torch.quantize_per_tensor, bench_torch.gate_bf16,
                                          bench_torch.gate_backward_bf16, hidden)
    z = bench_torch.ScaledMmTraining.apply(x, w12, b12, fns)
    z.backward(dz)
    xr, wr = x.detach().float().requires_grad_(), w12.detach().float().requires_grad_()
    br = b12.detach().float().requires_grad_() if bias else None
    h = xr @ wr.t() + (br if bias else 0)
    zr = torch.nn.functional.silu(h[:, :hidden]) * h[:, hidden:]
    zr.backward(dz.float())
    pairs = [("z", z, zr), ("dx", x.grad, xr.grad), ("dw", w12.grad, wr.grad)] + ([("db", b12.grad, br.grad)] if bias else [])
    for name, got, ref in pairs:
        assert got.dtype == torch.bfloat16 and got.shape == ref.shape, name
        rel_l2, max_rel = bench_torch.rel_errors(got.detach(), ref.detach())
        tol = bench_torch.FP8_TOL if name == "z" else bench_torch.FP8_GRADIENT_TOL
        assert rel_l2 <= tol and max_rel <= bench_torch.fp8_max_rel(tol, got.numel()), (name, rel_l2, max_rel)
        assert rel_l2 > 2 ** -8, (name, rel_l2)  # FP8's error, not bf16's: the operands were quantised
    # The gate backward alone, in float32, against autograd.
    hh = torch.randn(8, 2 * hidden, generator=gen)
    dzz = torch.randn(8, hidden, generator=gen)
    hr = hh.clone().requires_grad_()
    (torch.nn.functional.silu(hr[:, :hidden]) * hr[:, hidden:]).backward(dzz)
    torch.testing.assert_close(bench_torch.gate_backward_bf16(dzz, hh, hidden), hr.grad, rtol=1e-5, atol=1e-6)


def test_bench_torch_summary_names_the_cases_a_ratio_covers(bench_torch):
    rows = [dict(contender="fused-save", status="PASS", fwd_speedup=1.1, step_speedup=1.0, peak_vs_baseline=1.2),
            dict(contender="fused-save", status="PASS", fwd_speedup=1.2, step_speedup=1.1),
            dict(contender="fused-save", status="SKIP")]
    (line,) = bench_torch.summary_lines(rows)
    assert "geometric mean over 2 cases" in line
    assert "fwd+bwd 1.05x (range 1.00-1.10)" in line
    assert "peak memory 1.20x (range 1.20-1.20, 1 of the 2)" in line
