"""A two-layer SwiGLU MLP trained for a few steps under tensor parallelism and FSDP2.

    torchrun --nproc-per-node 4 scripts/tp_example.py --tp 2          # GPUs: NCCL, the fused kernels
    torchrun --nproc-per-node 4 scripts/tp_example.py --tp 2 --cpu    # CPU: gloo, the reference path

The ranks form a (data, tensor) mesh of (world / tp) × tp. Each block's up projection is a
FusedSwiGLU sharded by swiglu.parallel.SwiGLUColwiseParallel (each rank holds matching slices of
Wa and Wb), its down projection an nn.Linear sharded by RowwiseParallel; fully_shard then shards
every parameter again over the data-parallel ranks, with bf16 compute and fp32 gradient reduction.
The task: match a fixed random teacher network on random inputs. Rank 0 prints the loss each step,
and at the end whether it fell. Needs torch 2.8 or newer and the swiglu package on PYTHONPATH
(python/ of this repository); on GPUs also libswiglu_c (SWIGLU_LIBRARY).
"""

import argparse
import os
import sys
import warnings

import torch

if torch.__version__ < (2, 8):
    sys.exit(f"error: tp_example.py needs torch 2.8 or newer, this is {torch.__version__}")

import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard  # noqa: E402
from torch.distributed.tensor.parallel import RowwiseParallel, parallelize_module  # noqa: E402

import swiglu  # noqa: E402
from swiglu.parallel import SwiGLUColwiseParallel, fsdp_shard_placement  # noqa: E402


class Block(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.up = swiglu.FusedSwiGLU(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        return x + self.down(self.up(x))


class MLP(nn.Module):
    def __init__(self, width, hidden, layers=2):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, hidden) for _ in range(layers))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tp", type=int, default=2, help="tensor-parallel ranks (divides the world size)")
    ap.add_argument("--width", type=int, default=256, help="model width (in_features)")
    ap.add_argument("--hidden", type=int, default=704, help="SwiGLU hidden width (a multiple of --tp)")
    ap.add_argument("--batch", type=int, default=8, help="sequences per data-parallel rank")
    ap.add_argument("--seq", type=int, default=32, help="tokens per sequence")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--cpu", action="store_true", help="gloo on the CPU instead of NCCL on GPUs")
    args = ap.parse_args()

    if "RANK" not in os.environ:
        print("error: launch it with torchrun, e.g. torchrun --nproc-per-node 4 scripts/tp_example.py --tp 2",
              file=sys.stderr)
        return 2
    for name in ("tp", "width", "hidden", "batch", "seq", "steps"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world % args.tp != 0 or args.hidden % args.tp != 0:
        print(f"error: --tp {args.tp} must divide the world size ({world}) and --hidden ({args.hidden})",
              file=sys.stderr)
        return 2
    if args.cpu:
        warnings.simplefilter("ignore", swiglu.FallbackWarning)  # the reference path is what --cpu asks for
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    else:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    try:
        mesh = init_device_mesh(device.type, (world // args.tp, args.tp), mesh_dim_names=("dp", "tp"))
        torch.manual_seed(0)  # the same initial weights and teacher on every rank
        teacher = MLP(args.width, args.hidden).to(device)
        model = MLP(args.width, args.hidden).to(device)
        for block in model.blocks:
            parallelize_module(block, mesh["tp"], {"up": SwiGLUColwiseParallel(), "down": RowwiseParallel()})
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in model.blocks:
            fully_shard(block, mesh=mesh["dp"], mp_policy=policy, shard_placement_fn=fsdp_shard_placement)
        fully_shard(model, mesh=mesh["dp"], mp_policy=policy, shard_placement_fn=fsdp_shard_placement)
        if args.cpu:  # gloo has no averaging reduce-scatter: FSDP2 sums, then divides itself
            for module in model.modules():
                if isinstance(module, FSDPModule):
                    module.set_force_sum_reduction_for_comms(True)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr)

        # Each data-parallel rank draws its own batches; the tensor-parallel ranks of one share them.
        gen = torch.Generator(device=device).manual_seed(1000 + mesh["dp"].get_local_rank())
        losses = []
        for step in range(args.steps):
            x = torch.randn(args.batch, args.seq, args.width, device=device, generator=gen)
            with torch.no_grad():
                target = teacher(x)
            loss = nn.functional.mse_loss(model(x).float(), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mean = loss.detach().clone()
            dist.all_reduce(mean, op=dist.ReduceOp.SUM)
            losses.append(mean.item() / world)
            if dist.get_rank() == 0:
                print(f"step {step:3d}  loss {losses[-1]:.5f}")
        if dist.get_rank() == 0:
            verdict = "fell" if losses[-1] < losses[0] else "did not fall"
            print(f"{world} ranks, tp={args.tp} × dp={world // args.tp}, {device.type}: "
                  f"loss {verdict} from {losses[0]:.5f} to {losses[-1]:.5f}")
        return 0 if losses[-1] < losses[0] else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
