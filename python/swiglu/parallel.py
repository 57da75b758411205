"""Tensor parallelism for FusedSwiGLU on DTensor (torch 2.8 or newer).

``ColwiseParallel`` cannot shard the stacked weight [Wa; Wb]: it splits its rows, so with two ranks
rank 0 would hold all of Wa and rank 1 all of Wb. SwiGLU needs each rank to hold the matching
slices [Wa_r; Wb_r], so that its output Z_r is its own slice of the hidden dimension::

    from torch.distributed.tensor.parallel import RowwiseParallel, parallelize_module
    from swiglu.parallel import SwiGLUColwiseParallel

    parallelize_module(mlp, tp_mesh, {"up": SwiGLUColwiseParallel(), "down": RowwiseParallel()})

How the weight is held: SwiGLUColwiseParallel views the (2*hidden, in_features) weight as
(2, hidden, in_features), [Wa, Wb], and shards that along the hidden dimension (``Shard(1)``);
the bias (2*hidden,) becomes (2, hidden) the same way. A rank's local shard (2, hidden/N,
in_features) is, in memory, exactly [Wa_r; Wb_r], so the fused kernel runs on the rank's own
(B, in_features, hidden/N) problem without a copy. The parameter keeps that 3-D shape while the
module is parallel: ``state_dict()`` holds it as that DTensor, without communication, and
torch.distributed.checkpoint saves it and loads it onto any number of ranks as any other DTensor.
Checkpoints of one process (the stacked shapes, or ``gate_proj``/``up_proj``) go in and out with
``load_full_state_dict`` and ``full_state_dict`` below. ``load_state_dict()`` of a FusedSwiGLU,
parallel or not, accepts its weight in either shape, full or as a DTensor.

FSDP2 (``fully_shard``) composes with it: it shards each rank's (2, hidden/N, in_features) slice
again on its own mesh, and gathers it back before the kernel runs. Its default shard dimension is
the first, which has only two entries here; pass ``shard_placement_fn=fsdp_shard_placement`` to
``fully_shard`` so that the FusedSwiGLU weights are sharded along in_features instead, evenly over
any number of ranks.
"""

from __future__ import annotations

import torch
from torch import nn

if torch.__version__ < (2, 8):
    raise ImportError(f"swiglu.parallel needs torch 2.8 or newer (what its tests run on); "
                      f"this is torch {torch.__version__}")

from torch.distributed.device_mesh import DeviceMesh  # noqa: E402
from torch.distributed.tensor import DTensor, Partial, Placement, Replicate, Shard, distribute_module, distribute_tensor  # noqa: E402
from torch.distributed.tensor.parallel import ParallelStyle  # noqa: E402

from .functional import fused_swiglu  # noqa: E402
from .module import FusedSwiGLU  # noqa: E402

__all__ = ["SwiGLUColwiseParallel", "fsdp_shard_placement", "full_state_dict", "load_full_state_dict"]


def _stacked_view(t: torch.Tensor, hidden: int) -> torch.Tensor:
    """The stacked weight (2*hidden, I) or bias (2*hidden,) as (2, hidden, ...)."""
    return t.reshape(2, hidden, *t.shape[1:])


class SwiGLUColwiseParallel(ParallelStyle):
    """Shards a FusedSwiGLU over a 1-D device mesh along its hidden dimension, Wa and Wb alike.

    Each of the N ranks holds [Wa_r; Wb_r] (hidden/N rows of each) and computes its slice Z_r of
    the output, the input of a following ``RowwiseParallel`` down projection. hidden must be a
    multiple of N.

    Keyword Args:
        input_layouts: how the input arrives: ``Replicate()`` (the default: every rank has all of
            x), or ``Shard(1)`` for sequence parallelism (each rank has a slice of the sequence;
            it is all-gathered, and the input's gradient reduce-scattered back).
        output_layouts: the output's layout; ``Shard(-1)`` (the default) is each rank's Z_r, as
            ``RowwiseParallel`` expects. Anything else is redistributed to.
        use_local_output: return each rank's local tensor (default) instead of the DTensor.
    """

    def __init__(self, *, input_layouts: Placement | None = None, output_layouts: Placement | None = None,
                 use_local_output: bool = True):
        super().__init__()
        self.input_layouts = (input_layouts or Replicate(),)
        self.output_layouts = (output_layouts or Shard(-1),)
        self.use_local_output = use_local_output

    def _partition(self, name: str, module: nn.Module, mesh: DeviceMesh) -> None:
        if not isinstance(module, FusedSwiGLU):
            # Why: distribute_module calls this for every submodule too; only the target is ours.
            return
        if mesh.ndim != 1:
            raise ValueError(f"SwiGLUColwiseParallel needs a 1-D (tensor-parallel) device mesh, got "
                             f"{mesh.ndim} dimensions; pass mesh['tp'] of a larger mesh")
        ranks = mesh.size()
        if module.hidden % ranks != 0:
            raise ValueError(f"FusedSwiGLU hidden = {module.hidden} is not a multiple of the {ranks} "
                             f"ranks of the tensor-parallel mesh")
        for pname in ("weight", "bias"):
            param = getattr(module, pname)
            if param is None:
                continue
            if isinstance(param, DTensor):
                raise ValueError(f"FusedSwiGLU.{pname} is already a DTensor ({param.placements}); apply "
                                 f"SwiGLUColwiseParallel to the module before any other sharding")
            local = distribute_tensor(_stacked_view(param.detach(), module.hidden), mesh, [Shard(1)])
            module.register_parameter(pname, nn.Parameter(local, requires_grad=param.requires_grad))

    @staticmethod
    def _prepare_input(input_layouts, module, inputs, mesh):
        x = inputs[0]
        if not isinstance(x, DTensor):
            x = DTensor.from_local(x, mesh, input_layouts, run_check=False)
        if x.placements != (Replicate(),):
            x = x.redistribute(placements=[Replicate()])
        return (x, *inputs[1:])

    @staticmethod
    def _prepare_output(output_layouts, use_local_output, module, output, mesh):
        output_layouts = tuple(Shard(p.dim % output.ndim) if isinstance(p, Shard) else p for p in output_layouts)
        if output.placements != output_layouts:
            output = output.redistribute(placements=output_layouts)
        return output.to_local() if use_local_output else output

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        if not isinstance(module, FusedSwiGLU):
            raise TypeError(f"SwiGLUColwiseParallel shards a swiglu.FusedSwiGLU, got {type(module).__name__}; "
                            f"use ColwiseParallel for nn.Linear")
        return distribute_module(
            module, device_mesh, self._partition,
            lambda mod, inputs, mesh: self._prepare_input(self.input_layouts, mod, inputs, mesh),
            lambda mod, output, mesh: self._prepare_output(self.output_layouts, self.use_local_output,
                                                           mod, output, mesh))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_layouts={self.input_layouts[0]}, "
                f"output_layouts={self.output_layouts[0]}, use_local_output={self.use_local_output})")


def fsdp_shard_placement(param: nn.Parameter) -> Shard | None:
    """For ``fully_shard(..., shard_placement_fn=fsdp_shard_placement)``: FSDP2 shards a tensor-
    parallel FusedSwiGLU weight (2, hidden/N, in_features) along in_features, and every other
    parameter as it would by default (dimension 0). FSDP2 shards a dimension other than the first
    only evenly, so in_features must be a multiple of the data-parallel ranks (it says so if not)."""
    if isinstance(param, DTensor) and param.ndim == 3 and param.placements[-1] == Shard(1):
        return Shard(2)
    return None


def parallel_forward(module: FusedSwiGLU, x: torch.Tensor) -> torch.Tensor:
    """FusedSwiGLU.forward on a rank of a tensor-parallel module: the fused kernel (or its
    fallback) on the local problem, x (replicated) times [Wa_r; Wb_r]. Returns the rank's Z_r as
    a DTensor sharded along the last dimension."""
    weight, bias = module.weight, module.bias
    mesh = weight.device_mesh
    if weight.ndim != 3 or mesh.ndim != 1 or weight.placements != (Shard(1),):
        raise RuntimeError(
            f"FusedSwiGLU's weight is a DTensor of shape {tuple(weight.shape)} with placements "
            f"{weight.placements}, which the kernel cannot take: shard the module for tensor "
            f"parallelism with swiglu.parallel.SwiGLUColwiseParallel (a row split of [Wa; Wb] would "
            f"give one rank all of Wa and another all of Wb); a module sharded by fully_shard gathers "
            f"its weights only when called through FSDP2's hooks")
    if not isinstance(x, DTensor):
        x = DTensor.from_local(x, mesh, [Replicate()], run_check=False)
    if x.device_mesh != mesh or x.placements != (Replicate(),):
        raise RuntimeError(f"a tensor-parallel FusedSwiGLU takes x replicated on its mesh, got placements "
                           f"{x.placements}; let SwiGLUColwiseParallel's input_layouts redistribute it")
    # Why Partial: every rank's dX is its slice's share of the sum over the hidden dimension; the
    # DTensor the input came from adds them up (all-reduce, or reduce-scatter with Shard(1) input).
    x_local = x.to_local(grad_placements=[Partial()])
    w_local = weight.to_local().reshape(-1, module.in_features)
    b_local = None if bias is None else bias.to_local().reshape(-1)
    z = fused_swiglu(x_local, w_local, b_local, policy=module.policy)
    shape = (*x.shape[:-1], module.hidden)
    return DTensor.from_local(z, mesh, [Shard(z.dim() - 1)], run_check=False, shape=shape,
                              stride=torch.empty(shape, device="meta").stride())


def _parallel_modules(model: nn.Module) -> dict[str, FusedSwiGLU]:
    """The tensor-parallel FusedSwiGLU modules of `model`, by state-dict prefix."""
    return {f"{name}." if name else "": m for name, m in model.named_modules()
            if isinstance(m, FusedSwiGLU) and isinstance(m.weight, DTensor) and m.weight.ndim == 3}


def full_state_dict(model: nn.Module, cpu_offload: bool = True) -> dict[str, torch.Tensor]:
    """The state dict `model` would have in one process: every parameter and buffer gathered, and
    each tensor-parallel FusedSwiGLU's weight and bias in their stacked (2*hidden, ...) shapes.
    Collective: every rank of the model's meshes calls it. With cpu_offload (the default) the
    tensors land on the CPU of rank 0 only and the other ranks get an empty dict, as
    torch.distributed.checkpoint does; without, every rank gets all of them on its device."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload))
    for prefix, m in _parallel_modules(model).items():
        for name in ("weight", "bias"):
            if prefix + name in sd:
                sd[prefix + name] = sd[prefix + name].reshape(2 * m.hidden, *sd[prefix + name].shape[2:])
    return sd


def load_full_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool = True):
    """Loads a state dict of one process (every rank passes the whole of it) into `model`, tensor-
    and FSDP-parallel or not: FusedSwiGLU weights and biases in their stacked shapes, or as
    ``gate_proj``/``up_proj`` pairs. Collective. Returns torch.distributed.checkpoint's
    missing/unexpected keys; with strict, either is an error."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    from .module import _stack_gate_up

    sd = dict(state_dict)
    for prefix, m in _parallel_modules(model).items():
        _stack_gate_up(sd, prefix)
        for name in ("weight", "bias"):
            value = sd.get(prefix + name)
            if isinstance(value, torch.Tensor) and not isinstance(value, DTensor) and value.dim() >= 1 \
                    and value.shape[0] == 2 * m.hidden:
                sd[prefix + name] = value.reshape(2, m.hidden, *value.shape[1:])
    return set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, strict=strict))
