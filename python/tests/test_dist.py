"""Multi-process tests of swiglu.parallel and FSDP2 on the CPU (gloo), at world sizes 2 and 4.

Every rank runs the package's reference path (the CPU fallback), so what is tested is the
sharding: which rows of [Wa; Wb] a rank holds, the collectives around them, and the checkpoints.
Each case compares the distributed model's output, input gradient, parameter gradients (and, with
an optimizer, its updated weights) with the same model in one process, at the tolerances of
checks.py. The fused kernels under DTensor are test_gpu.py's (NCCL, world size 1). Needs torch 2.8
or newer, skipped below it: on gloo, torch 2.6's FSDP2 fails on the CPU and 2.6 and 2.7 hang in
some of these cases.
"""

import os
import pathlib
import subprocess
import sys
import warnings

import pytest
import torch

if torch.__version__ < (2, 8):
    pytest.skip(f"swiglu.parallel needs torch 2.8 or newer, this is {torch.__version__}", allow_module_level=True)
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch has no gloo backend", allow_module_level=True)

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402
from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard  # noqa: E402
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor  # noqa: E402
from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel,  # noqa: E402
                                               parallelize_module)

import swiglu  # noqa: E402
from checks import FORWARD_TOL, GRADIENT_TOL, assert_close  # noqa: E402
from swiglu import functional  # noqa: E402
from swiglu.parallel import (SwiGLUColwiseParallel, fsdp_shard_placement, full_state_dict,  # noqa: E402
                             load_full_state_dict)

REPO = pathlib.Path(__file__).resolve().parents[2]
# float64 against float64: the sharded sums differ from one process's only in their order.
EXACT_TOL = (1e-13, 1e-12)
IN, HIDDEN, TOKENS, SEQ = 24, 32, 6, 4  # HIDDEN divides by 4 ranks; TOKENS × SEQ inputs


class Block(nn.Module):
    """A SwiGLU MLP block: up (FusedSwiGLU), down (nn.Linear), and a residual."""

    def __init__(self, bias, dtype):
        super().__init__()
        self.up = swiglu.FusedSwiGLU(IN, HIDDEN, bias=bias, dtype=dtype)
        self.down = nn.Linear(HIDDEN, IN, bias=bias, dtype=dtype)

    def forward(self, x):
        return x + self.down(self.up(x))


class Model(nn.Module):
    def __init__(self, bias=True, dtype=torch.float64):
        super().__init__()
        self.blocks = nn.ModuleList([Block(bias, dtype), Block(bias, dtype)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def tp_plan(sequence_parallel=False):
    """The plan of each block: SwiGLU colwise, down projection rowwise (with sequence parallelism:
    the input arrives, and the output leaves, sharded along the sequence)."""
    if not sequence_parallel:
        return {"up": SwiGLUColwiseParallel(), "down": RowwiseParallel()}
    return {"up": SwiGLUColwiseParallel(input_layouts=Shard(1)), "down": RowwiseParallel(output_layouts=Shard(1))}


def parallelize(model, tp_mesh, sequence_parallel=False):
    for b in model.blocks:
        parallelize_module(b, tp_mesh, tp_plan(sequence_parallel))
    return model


def full(t):
    """A parameter or gradient as one process holds it: gathered, and the tensor-parallel
    (2, hidden, in_features) weight and (2, hidden) bias back in their stacked shapes."""
    if isinstance(t, DTensor):
        t = t.full_tensor()
    return t.reshape(2 * HIDDEN, -1).squeeze(-1) if t.dim() == 3 or tuple(t.shape) == (2, HIDDEN) else t


def reference(dtype=torch.float64, bias=True):
    """The one-process model every rank builds from the same seed (in float64, then cast)."""
    torch.manual_seed(1234)
    return Model(bias).to(dtype)


def inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(99)
    x = torch.randn(TOKENS, SEQ, IN, generator=g, dtype=torch.float64)
    dz = torch.randn(TOKENS, SEQ, IN, generator=g, dtype=torch.float64)
    return x.to(dtype), dz.to(dtype)


def run_and_backward(model, x, dz):
    x = x.clone().requires_grad_(True)
    z = model(x)
    if isinstance(z, DTensor):
        z = z.full_tensor()
    z.backward(dz)
    return z.detach(), x.grad


def compare_model(what, got_model, ref_model, tol_z, tol_grad, got, ref):
    assert_close(f"{what}: z", got[0], ref[0], tol_z)
    assert_close(f"{what}: dx", got[1], ref[1], tol_grad)
    ref_params = dict(ref_model.named_parameters())
    for name, p in got_model.named_parameters():
        assert p.grad is not None, f"{what}: {name} has no gradient"
        assert_close(f"{what}: d{name}", full(p.grad), ref_params[name].grad, tol_grad)


# ---- the cases, each run on every rank -----------------------------------------------------------


def case_tensor_parallel(rank, world):
    """TP over every rank, float64 (sums reordered only) and float32 (checks.py's tolerances against
    float64), with bias."""
    mesh = init_device_mesh("cpu", (world,))
    x64, dz64 = inputs()
    ref = reference()
    ref_out = run_and_backward(ref, x64, dz64)
    tp = parallelize(reference(), mesh)
    w = tp.blocks[0].up.weight
    assert isinstance(w, DTensor) and tuple(w.to_local().shape) == (2, HIDDEN // world, IN)
    # Rank r holds rows r of Wa's and of Wb's split, [Wa_r; Wb_r]: the trap is all of Wa on rank 0.
    rows = slice(rank * HIDDEN // world, (rank + 1) * HIDDEN // world)
    stacked = ref.blocks[0].up.weight.detach()
    assert torch.equal(w.to_local()[0], stacked[:HIDDEN][rows]) and torch.equal(w.to_local()[1], stacked[HIDDEN:][rows])
    compare_model("TP float64", tp, ref, EXACT_TOL, EXACT_TOL, run_and_backward(tp, x64, dz64), ref_out)
    x32, dz32 = inputs(torch.float32)
    tp32 = parallelize(reference(torch.float32), mesh)
    compare_model("TP float32", tp32, ref, FORWARD_TOL[torch.float32], GRADIENT_TOL[torch.float32],
                  run_and_backward(tp32, x32, dz32), ref_out)
    # Built on the meta device, parallelized, then materialised and initialised, as large models
    # are: the weights one process draws from the same seed.
    with torch.device("meta"):
        lazy = swiglu.FusedSwiGLU(IN, HIDDEN, dtype=torch.float64)
    parallelize_module(lazy, mesh, SwiGLUColwiseParallel())
    lazy.to_empty(device="cpu")
    torch.manual_seed(5)
    lazy.reset_parameters()
    torch.manual_seed(5)
    one = swiglu.FusedSwiGLU(IN, HIDDEN, dtype=torch.float64)
    assert torch.equal(full(lazy.weight.detach()), one.weight.detach()), "TP initialisation"
    assert torch.equal(full(lazy.bias.detach()), one.bias.detach()), "TP initialisation of the bias"


def case_sequence_parallel(rank, world):
    """TP with the sequence dimension sharded outside the SwiGLU blocks: x arrives as Shard(1),
    is all-gathered for the up projection, and its gradient reduce-scattered back. Twice: through
    SwiGLUColwiseParallel's input_layouts, and through torch's PrepareModuleInput before it."""
    mesh = init_device_mesh("cpu", (world,))
    x, dz = inputs()
    x, dz = x.repeat(1, world, 1), dz.repeat(1, world, 1)  # a sequence that splits over the ranks
    ref = reference()
    ref_z, ref_dx = run_and_backward(ref, x, dz)
    ref_params = dict(ref.named_parameters())
    prepared = reference()
    for b in prepared.blocks:
        parallelize_module(b.up, mesh, PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)))
        parallelize_module(b, mesh, {"up": SwiGLUColwiseParallel(), "down": RowwiseParallel(output_layouts=Shard(1))})
    for what, tp in (("SP", parallelize(reference(), mesh, sequence_parallel=True)), ("SP, PrepareModuleInput", prepared)):
        local = slice(rank * SEQ, (rank + 1) * SEQ)
        x_local = x[:, local].clone().requires_grad_(True)
        z_local = tp(x_local)
        z_local.backward(dz[:, local])
        assert_close(f"{what}: z", z_local.detach(), ref_z[:, local], EXACT_TOL)
        assert_close(f"{what}: dx", x_local.grad, ref_dx[:, local], EXACT_TOL)
        for name, p in tp.named_parameters():
            assert_close(f"{what}: d{name}", full(p.grad), ref_params[name].grad, EXACT_TOL)


def train(model, batches, steps, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        x, dz = batches(step)
        opt.zero_grad()
        z = model(x)
        (z.float() * dz.float()).sum().backward()
        opt.step()


def batches(share, shares, dtype):
    """Step s's batch of one data-parallel rank: share `share` of `shares` of the global batch, with
    dZ scaled so that FSDP2's average of the ranks' gradients is the global batch's mean gradient."""
    def batch(step):
        g = torch.Generator().manual_seed(100 + step)
        x = torch.randn(4 * TOKENS, SEQ, IN, generator=g, dtype=torch.float64)
        dz = torch.randn(4 * TOKENS, SEQ, IN, generator=g, dtype=torch.float64) / (4 * TOKENS * SEQ)
        rows = slice(share * 4 * TOKENS // shares, (share + 1) * 4 * TOKENS // shares)
        return x[rows].to(dtype), dz[rows] * shares
    return batch


def check_training(what, model, data_rank, data_parallel, tol, steps=3):
    """`steps` SGD steps of `model` on its shares of the global batches against one process on the
    global batches, float64: compared are the updates (new minus initial weights)."""
    ref = reference()
    initial = {n: p.detach().clone() for n, p in ref.named_parameters()}
    start = {n: full(p.detach()).double() for n, p in model.named_parameters()}
    train(ref, batches(0, 1, torch.float64), steps)
    train(model, batches(data_rank, data_parallel, torch.float32), steps)
    for name, p in model.named_parameters():
        got = full(p.detach()).double() - start[name]
        assert_close(f"{what}: update of {name}", got, dict(ref.named_parameters())[name].detach() - initial[name], tol)


def sum_then_divide(model):
    """gloo's reduce-scatter has no average (torch 2.8's FSDP2 asks it for one and gets the sum):
    have FSDP2 sum and divide by the ranks itself."""
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_force_sum_reduction_for_comms(True)
    return model


def mixed_precision():
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def case_fsdp(rank, world):
    """FSDP2 alone over every rank, bf16 parameters and fp32 gradient reduction: the kernels see
    the gathered (2*hidden, in_features) weights."""
    mesh = init_device_mesh("cpu", (world,))
    model = reference(torch.float32)
    for b in model.blocks:
        fully_shard(b, mesh=mesh, mp_policy=mixed_precision())
    sum_then_divide(fully_shard(model, mesh=mesh, mp_policy=mixed_precision()))
    assert tuple(model.blocks[0].up.weight.to_local().shape) == (2 * HIDDEN // world, IN)
    check_training("FSDP2 bf16", model, rank, world, GRADIENT_TOL[torch.bfloat16])


def case_tp_fsdp(rank, world):
    """TP inside, FSDP2 outside, on a (data, tensor) mesh: 1×2 at world size 2, 2×2 at 4, with
    bf16 parameters and the FusedSwiGLU weights FSDP-sharded along in_features."""
    tp = 2
    mesh = init_device_mesh("cpu", (world // tp, tp), mesh_dim_names=("dp", "tp"))
    model = parallelize(reference(torch.float32), mesh["tp"])
    for b in model.blocks:
        fully_shard(b, mesh=mesh["dp"], mp_policy=mixed_precision(), shard_placement_fn=fsdp_shard_placement)
    sum_then_divide(fully_shard(model, mesh=mesh["dp"], mp_policy=mixed_precision(),
                                shard_placement_fn=fsdp_shard_placement))
    w = model.blocks[0].up.weight
    assert tuple(w.to_local().shape) == (2, HIDDEN // tp, IN // (world // tp)), w.to_local().shape
    check_training("TP+FSDP2 bf16", model, mesh["dp"].get_local_rank(), world // tp, GRADIENT_TOL[torch.bfloat16])


def case_fsdp_default_placement(rank, world):
    """TP + FSDP2 with FSDP's default placement (dimension 0, two entries): still right, as FSDP2
    pads the short dimension; fsdp_shard_placement only balances the memory."""
    mesh = init_device_mesh("cpu", (world // 2, 2), mesh_dim_names=("dp", "tp"))
    model = parallelize(reference(torch.float32), mesh["tp"])
    sum_then_divide(fully_shard(model, mesh=mesh["dp"]))
    check_training("TP+FSDP2 fp32, default placement", model, mesh["dp"].get_local_rank(), world // 2,
                   GRADIENT_TOL[torch.float32])


def gate_up_names(sd):
    """A one-process state dict with each FusedSwiGLU's tensors as gate_proj / up_proj halves."""
    out = {}
    for key, value in sd.items():
        if ".up." in key:
            out[key.replace(".up.", ".up.gate_proj.")], out[key.replace(".up.", ".up.up_proj.")] = value.chunk(2, dim=0)
        else:
            out[key] = value
    return out


def case_checkpoints(rank, world):
    """Checkpoints of one process in and out of TP and TP+FSDP2 models: load_full_state_dict takes
    one process's state dict (stacked, or gate_proj / up_proj), and full_state_dict gives it back,
    whatever the number of ranks; load_state_dict of a FusedSwiGLU takes either weight shape."""
    x, dz = inputs()
    ref = reference()
    ref_out = run_and_backward(ref, x, dz)
    sd = ref.state_dict()
    mesh = init_device_mesh("cpu", (world,))
    mesh_2d = init_device_mesh("cpu", (world // 2, 2), mesh_dim_names=("dp", "tp"))
    for what in ("TP", "TP+FSDP2"):
        for names in ("stacked", "gate_proj/up_proj"):
            torch.manual_seed(7)  # other weights, so that loading is what makes them equal
            if what == "TP":
                model = parallelize(Model(), mesh)
            else:
                model = parallelize(Model(), mesh_2d["tp"])
                fully_shard(model, mesh=mesh_2d["dp"], shard_placement_fn=fsdp_shard_placement)
            load_full_state_dict(model, sd if names == "stacked" else gate_up_names(sd))
            compare_model(f"{what} after load_full_state_dict ({names})", model, ref, EXACT_TOL, EXACT_TOL,
                          run_and_backward(model, x, dz), ref_out)
            for cpu_offload in (False, True):
                out = full_state_dict(model, cpu_offload=cpu_offload)
                if cpu_offload and rank != 0:
                    assert out == {}
                    continue
                assert out.keys() == sd.keys()
                for key, value in out.items():
                    assert value.shape == sd[key].shape and torch.equal(value, sd[key]), f"{what}: {key}"
    # A FusedSwiGLU's own load_state_dict: full tensors into a TP module, (2, hidden, in) into one process.
    tp = parallelize_module(swiglu.FusedSwiGLU(IN, HIDDEN, dtype=torch.float64), mesh, SwiGLUColwiseParallel())
    up = ref.blocks[0].up.state_dict()
    tp.load_state_dict(up)
    assert torch.equal(full(tp.weight.detach()), up["weight"]) and torch.equal(full(tp.bias.detach()), up["bias"])
    one = swiglu.FusedSwiGLU(IN, HIDDEN, dtype=torch.float64)
    one.load_state_dict({k: v.full_tensor() for k, v in tp.state_dict().items()})
    assert torch.equal(one.weight, up["weight"]) and torch.equal(one.bias, up["bias"])


def case_dcp_save(rank, world, path):
    """A sharded checkpoint of a TP model (torch.distributed.checkpoint), read by case_dcp_load at
    another world size."""
    import torch.distributed.checkpoint as dcp

    model = parallelize(reference(), init_device_mesh("cpu", (world,)))
    dcp.save(get_model_state_dict(model), checkpoint_id=path)


def case_dcp_load(rank, world, path):
    import torch.distributed.checkpoint as dcp

    x, dz = inputs()
    ref = reference()
    ref_out = run_and_backward(ref, x, dz)
    torch.manual_seed(7)
    model = parallelize(Model(), init_device_mesh("cpu", (world,)))
    sd = get_model_state_dict(model)
    dcp.load(sd, checkpoint_id=path)
    set_model_state_dict(model, sd)
    compare_model(f"TP on {world} ranks from a checkpoint of another size", model, ref, EXACT_TOL, EXACT_TOL,
                  run_and_backward(model, x, dz), ref_out)


def operators_path(world, compiled):
    """TP and FSDP2 models on the operators path: CPU stand-in kernels for torch.ops.swiglu.*
    (standin.py), so that the models call the operators as they do on a GPU, compiled or eager.
    Z and the gradients match the eager one-process model; returns each model's stand-in
    backward calls, and the blocks a model has."""
    import standin

    functional._fallback_reason = lambda x: None  # fused_swiglu() calls the operators on CPU
    x, dz = inputs()
    ref = reference()
    ref_out = run_and_backward(ref, x, dz)
    mesh = init_device_mesh("cpu", (world,))
    tp = parallelize(reference(), mesh)
    fsdp = reference()
    for b in fsdp.blocks:
        fully_shard(b, mesh=mesh)
    sum_then_divide(fully_shard(fsdp, mesh=mesh))
    calls = {}
    for what, model in (("TP", tp), ("FSDP2", fsdp)):
        standin.CALLS.clear()
        got = run_and_backward(torch.compile(model) if compiled else model, x, dz)
        calls[what] = list(standin.CALLS)
        # FSDP2: every rank ran the whole batch, so the average of the ranks' gradients is its own.
        compare_model(f"{'compiled' if compiled else 'eager'} {what}", model, ref, EXACT_TOL, EXACT_TOL, got,
                      ref_out)
    return calls, len(ref.blocks)


def case_compiled_operators(rank, world):
    """torch.compile over a TP model and over an FSDP2 model: each block's FusedSwiGLU runs one
    backward operator."""
    calls, blocks = operators_path(world, compiled=True)
    for what, c in calls.items():
        assert len(c) == blocks, f"{what}: {len(c)} backward operator calls"


def case_eager_operators(rank, world):
    """TP and FSDP2 in eager mode: save's backward writes dH over the saved H (backward_over_h) in
    every block, under DTensor and FSDP2's hooks as in one process."""
    calls, blocks = operators_path(world, compiled=False)
    for what, c in calls.items():
        assert [call["over_h"] for call in c] == [True] * blocks, f"{what}: {c}"


def case_errors(rank, world):
    """What cannot work fails with a message that says why."""
    mesh = init_device_mesh("cpu", (world,))
    with pytest.raises(NotImplementedError):  # torch's own ColwiseParallel refuses a FusedSwiGLU
        parallelize_module(swiglu.FusedSwiGLU(IN, HIDDEN), mesh, ColwiseParallel())
    with pytest.raises(TypeError, match="shards a swiglu.FusedSwiGLU"):
        parallelize_module(nn.Linear(IN, HIDDEN), mesh, SwiGLUColwiseParallel())
    with pytest.raises(ValueError, match="not a multiple of the"):
        parallelize_module(swiglu.FusedSwiGLU(IN, 2 * world + 1), mesh, SwiGLUColwiseParallel())
    if world % 2 == 0:
        with pytest.raises(ValueError, match="1-?D"):
            parallelize_module(swiglu.FusedSwiGLU(IN, HIDDEN), init_device_mesh("cpu", (2, world // 2)),
                               SwiGLUColwiseParallel())
    # The trap itself, built by hand: [Wa; Wb] split by rows.
    m = swiglu.FusedSwiGLU(IN, HIDDEN, bias=False, dtype=torch.float64)
    m.weight = nn.Parameter(distribute_tensor(m.weight.detach(), mesh, [Shard(0)]))
    with pytest.raises(RuntimeError, match="SwiGLUColwiseParallel"):
        m(torch.randn(3, IN, dtype=torch.float64))
    with pytest.raises(TypeError, match="not tensor-parallel"):
        swiglu.FusedSwiGLU(IN, HIDDEN)(distribute_tensor(torch.randn(3, IN), mesh, [Shard(0)]))
    fsdp_first = swiglu.FusedSwiGLU(IN, HIDDEN)
    fully_shard(fsdp_first, mesh=mesh)
    with pytest.raises(ValueError, match="already a DTensor"):
        parallelize_module(fsdp_first, mesh, SwiGLUColwiseParallel())


CASES = {f.__name__[len("case_"):]: f for f in (case_tensor_parallel, case_sequence_parallel, case_fsdp, case_tp_fsdp,
                                                case_fsdp_default_placement, case_checkpoints, case_compiled_operators,
                                                case_eager_operators, case_errors)}


def _worker(rank, world, case, store, *args):
    warnings.simplefilter("ignore", swiglu.FallbackWarning)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        globals()["case_" + case](rank, world, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_distributed(case, world, tmp_path):
    mp.spawn(_worker, args=(world, case, str(tmp_path / "store")), nprocs=world, join=True)


@pytest.mark.parametrize("saved, loaded", [(2, 4), (4, 2)])
def test_sharded_checkpoint_loads_on_another_world_size(saved, loaded, tmp_path):
    path = str(tmp_path / "checkpoint")
    mp.spawn(_worker, args=(saved, "dcp_save", str(tmp_path / "store-save"), path), nprocs=saved, join=True)
    mp.spawn(_worker, args=(loaded, "dcp_load", str(tmp_path / "store-load"), path), nprocs=loaded, join=True)


def test_tp_example_trains_under_torchrun(tmp_path):
    """scripts/tp_example.py as the README runs it: TP × FSDP2 on 4 CPU processes, a few steps;
    its loss must fall."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
                          str(REPO / "scripts" / "tp_example.py"), "--tp", "2", "--steps", "8", "--cpu"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "loss fell" in out.stdout, out.stdout[-3000:]
