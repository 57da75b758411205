#!/usr/bin/env python3
"""PyTorch side by side on one GPU, in one run: swiglu.FusedSwiGLU against what people run today.

Every contender computes z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb) from the same weights:

  linear2+liger    two nn.Linear, then Liger-Kernel's LigerSiLUMulFunction (the baseline)
  linear2+torch    two nn.Linear, then F.silu(a) * b
  liger-mlp        Liger's fused gate/up-projection Triton kernel (liger_kernel.ops.mlp.gemm_swiglu,
                   the up-projection of LigerMLPFunction), forward only: Liger fuses its backward
                   with the down projection, so there is no up-projection backward to time. It
                   applies without bias, to fp16/bf16 (its float32 dot runs TF32, so also to fp32
                   with math tf32), on GPUs with TMA (sm_90+); elsewhere its rows say why not.
  fused-save       swiglu.fused_swiglu, policy "save" (FusedSwiGLU(policy="save"))
  fused-recompute  swiglu.fused_swiglu, policy "recompute"
  fp8-train        swiglu.fused_swiglu_fp8_training: FP8 training (the blockwise recipe, x and W12
                   quantised to e4m3 each call, FP8 forward and backward), on bf16/fp16 cases with
                   I and D multiples of 16 on a GPU of compute capability 9.0; checked at FP8's
                   tolerance (below), and summarised against fused-save and fp8-scaled-mm-train
  fp8-scaled-mm-train  the unfused FP8 training pipeline built from torch: x and W12 quantised per
                   tensor each call, H = torch._scaled_mm(x, W12ᵀ) in bf16, the gate in a
                   torch.compile'd function; its backward the compiled gate backward, dH quantised
                   per tensor, dX and dW12 by torch._scaled_mm on transposed copies, dbias a sum
                   (compiled quantisers; per-tensor scales, what torch._scaled_mm takes everywhere).
                   bf16 cases with B, I and D multiples of 16 (every _scaled_mm dimension) on a GPU
                   of compute capability 8.9 or newer; checked at FP8's tolerance

For each case of the configs' sweeps (configs/*.yaml, read as swiglubench reads them; `variants`
and `tiles` are swiglubench's and ignored here, `layout: packed` cases are skipped):

1. Check: every contender runs forward + backward once; Z, dX, dW and dbias are compared with a
   float32 reference (cuBLAS without TF32, from the same rounded inputs) at TESTING.md's
   tolerances. A contender that fails is not timed, and the run exits 2.
2. Time, with CUDA events, contenders interleaved round by round, L2 flushed (a memset of twice
   its size) before every sample, after --warmup untimed runs: the forward (inference, under
   torch.no_grad) and the forward + backward (a training step: dX, dW, dbias; x and the weights
   require grad). Times include the gaps where the GPU waits for Python to launch the next
   kernel, as an eager training loop sees them. Reported: median, IQR/median, speedup over
   linear2+liger measured in the same rounds.
3. Memory, one contender at a time, relative to torch.cuda.memory_allocated() with the inputs and
   weights allocated: `kept` is what the forward leaves allocated for the backward (Z and the
   saved activations), `peak` the most allocated during forward + backward (the gradients
   included).

With --fp8, FP8 inference instead (bf16 cases; a GPU of compute capability 9.0), each contender
taking bf16 x and the weights quantised once, and returning Z in e4m3 with 1×128 scales along D
(for an FP8 down projection):

  fp8-scaled-mm          the baseline: x quantised per tensor, one torch._scaled_mm over the
                         stacked [Wa; Wb] (per-tensor scales, what it supports everywhere), then
                         SiLU·mul and the 1×128 quantisation of Z in one torch.compile'd function
  fp8-scaled-mm-rowwise  the same with a scale per row of x and per row of W12 (torch._scaled_mm's
                         rowwise scaling, torch 2.5 and newer; its rows say why where it does not run)
  fp8-fused              swiglu.fused_swiglu_fp8: x in 1×128 blocks and W12 in 128×128 blocks (two
                         launches: the quantisation of x, then the FP8 forward writing e4m3 Z)

Checked (Z dequantised, against the float32 reference at FP8's tolerance) and timed as the forward
above (under torch.inference_mode); no step or memory columns.

Output: a markdown table on stdout as cases finish, and torch_[fp8_]<config>[_<dtypes>].csv and .md
under --out (default results/<gpu>/). Exit codes: 0 ok, 2 a check failed, 3 usage, config or setup
error, 130 interrupted (finished rows are kept).

    scripts/bench_torch.py --shapes configs/llama.yaml
    scripts/bench_torch.py --shapes configs/mnist.yaml --dtype bf16 --time-limit 420
    scripts/bench_torch.py --shapes configs/llama.yaml --fp8
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gc
import importlib.metadata
import math
import os
import pathlib
import subprocess
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
import yaml
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import swiglu  # noqa: E402  (the package of this source tree)

CONTENDERS = ["linear2+liger", "linear2+torch", "liger-mlp", "fused-save", "fused-recompute", "fp8-train",
              "fp8-scaled-mm-train"]
FP8_TRAINING = ("fp8-train", "fp8-scaled-mm-train")  # checked at FP8's tolerances
BASELINE = "linear2+liger"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_ALIASES = {"fp32": "fp32", "f32": "fp32", "float32": "fp32", "fp16": "fp16", "f16": "fp16",
                 "float16": "fp16", "half": "fp16", "bf16": "bf16", "bfloat16": "bf16"}
FP8_CONTENDERS = ["fp8-scaled-mm", "fp8-scaled-mm-rowwise", "fp8-fused"]
FP8_BASELINE = "fp8-scaled-mm"
# rel_l2 bounds of a dequantised FP8 Z against the float32 reference on the unquantised inputs:
# test_host_fp8's 2.4·u, u = 2^-4 (e4m3's unit roundoff: X's and W's rounding through the gate, then
# Z's own); and of fp8-train's gradients, test_host_fp8's 2·u (dX and dW12 each a GEMM of two e4m3
# operands, dH's rounding on top of X's or W's). max_rel is fp8_max_rel() of these.
FP8_TOL = 2.4 * 2 ** -4
FP8_GRADIENT_TOL = 2 * 2 ** -4
# (rel_l2, max_rel) for Z and for the gradients: TESTING.md's tables (src/bench/parity.cpp).
FORWARD_TOL = {"fp32": (2e-5, 2e-4), "tf32": (5e-3, 5e-2), "fp16": (3e-3, 1e-2), "bf16": (1e-2, 3e-2)}
GRADIENT_TOL = {"fp32": (1e-4, 1e-3), "tf32": (1e-2, 1e-1), "fp16": (5e-3, 3e-2), "bf16": (2e-2, 8e-2)}
MIB = 2 ** 20


# ---- configs -----------------------------------------------------------------------------------


class ConfigError(Exception):
    pass


@dataclasses.dataclass
class Case:
    batch: int
    in_features: int
    hidden: int
    dtype: str  # fp32 | fp16 | bf16
    layout: str
    bias: bool
    math: str  # exact | tf32
    x_stride_pad: int
    config: str

    def key(self) -> str:
        math_ = f" {self.math}" if self.dtype == "fp32" else ""
        pad = f" ldx+{self.x_stride_pad}" if self.x_stride_pad else ""
        return (f"B={self.batch} I={self.in_features} D={self.hidden} {self.dtype}{math_} "
                f"{self.layout} bias={'yes' if self.bias else 'no'}{pad}")


SWEEP_KEYS = {"batch", "in", "hidden", "dtype", "layout", "bias", "math", "variants", "tiles", "x_stride_pad"}


def parse_ints(text: str, where: str, min_value: int) -> list[int]:
    """`N`, `a,b,c`, `a:b:step` or `pow2:a:b` (and comma lists of them), as swiglubench reads them."""
    values: list[int] = []
    for item in str(text).split(","):
        fields = item.strip().split(":")
        try:
            nums = [int(f) for f in fields[1:]] if fields[0] == "pow2" else [int(f) for f in fields]
        except ValueError:
            raise ConfigError(f"{where}: '{item.strip()}' is not an integer, a:b:step or pow2:a:b") from None
        if fields[0] == "pow2" and len(nums) == 2:
            p = 1
            while p < nums[0]:
                p *= 2
            got = []
            while p <= nums[1]:
                got.append(p)
                p *= 2
        elif len(nums) == 3 and fields[0] != "pow2":
            if nums[2] <= 0:
                raise ConfigError(f"{where}: step must be > 0 in '{item.strip()}'")
            got = list(range(nums[0], nums[1] + 1, nums[2]))
        elif len(nums) == 1 and fields[0] != "pow2":
            got = nums
        else:
            raise ConfigError(f"{where}: wrong number of ':' fields in '{item.strip()}'")
        if not got:
            raise ConfigError(f"{where}: '{item.strip()}' is an empty range")
        for v in got:
            if v < min_value:
                raise ConfigError(f"{where}: {v} is below the minimum {min_value}")
            if v not in values:
                values.append(v)
    return values


def int_values(value, where: str, min_value: int) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{where}: empty list")
    out: list[int] = []
    for item in items:
        for v in parse_ints(item, where, min_value):
            if v not in out:
                out.append(v)
    return out


def word_values(value, where: str, allowed: dict) -> list:
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        word = str(item).strip()
        if word not in allowed:
            raise ConfigError(f"{where}: unknown value '{word}'; expected one of {', '.join(allowed)}")
        out.append(allowed[word])
    return out


def bool_values(value, where: str) -> list[bool]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, bool) for v in items):
        raise ConfigError(f"{where}: must be true, false or a list of them, got {value!r}")
    return items


def sweep_values(mapping: dict, where: str) -> dict:
    unknown = set(mapping) - SWEEP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    out = {}
    for key, value in mapping.items():
        label = f"{where}: {key}"
        if key in ("batch", "in", "hidden"):
            out[key] = int_values(value, label, 1)
        elif key == "x_stride_pad":
            out[key] = int_values(value, label, 0)
        elif key == "dtype":
            out[key] = word_values(value, label, DTYPE_ALIASES)
        elif key == "layout":
            out[key] = word_values(value, label, {"linear": "linear", "packed": "packed"})
        elif key == "math":
            out[key] = word_values(value, label, {"exact": "exact", "tf32": "tf32", "3xtf32": "3xtf32"})
        elif key == "bias":
            out[key] = bool_values(value, label)
    return out


def load_config(path: str, overrides: dict) -> tuple[str, list[Case]]:
    """The config's name and its cases in swiglubench's order (dtype, layout, math, bias, pad,
    hidden, in, batch; math only for fp32). `overrides` replace the file's values in every sweep."""
    try:
        with open(path) as f:
            root = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(root, dict) or "name" not in root or "sweeps" not in root:
        raise ConfigError(f"{path}: expected a mapping with 'name' and 'sweeps'")
    unknown = set(root) - {"name", "description", "defaults", "sweeps"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    defaults = sweep_values(root.get("defaults") or {}, f"{path}: defaults")
    if not isinstance(root["sweeps"], list) or not root["sweeps"]:
        raise ConfigError(f"{path}: 'sweeps' must be a non-empty list")
    cases: list[Case] = []
    for n, sweep in enumerate(root["sweeps"]):
        where = f"{path}: sweeps[{n}]"
        if not isinstance(sweep, dict):
            raise ConfigError(f"{where}: must be a mapping")
        s = {"layout": ["linear"], "bias": [False], "math": ["exact"], "x_stride_pad": [0]}
        s.update(defaults)
        s.update(sweep_values(sweep, where))
        s.update(overrides)
        for key in ("batch", "in", "hidden", "dtype"):
            if key not in s:
                raise ConfigError(f"{where}: missing required key '{key}' (set it in the sweep or in defaults)")
        for dtype in s["dtype"]:
            for layout in s["layout"]:
                for math_ in (s["math"] if dtype == "fp32" else ["exact"]):
                    for bias in s["bias"]:
                        for pad in s["x_stride_pad"]:
                            for hidden in s["hidden"]:
                                for in_features in s["in"]:
                                    for batch in s["batch"]:
                                        c = Case(batch, in_features, hidden, dtype, layout, bias, math_, pad,
                                                 str(root["name"]))
                                        if c not in cases:
                                            cases.append(c)
    return str(root["name"]), cases


# ---- contenders --------------------------------------------------------------------------------


@dataclasses.dataclass
class Contender:
    name: str
    forward: Callable | None  # x -> z; None when skipped
    params: list  # tensors whose .grad a training step sets
    trains: bool = True  # has a backward to time
    skip: str = ""  # why it does not run this case ("" when it does)


def make_contenders(case: Case, wanted: list[str], w12: torch.Tensor, b12: torch.Tensor | None) -> list[Contender]:
    """The contenders for one case, sharing weights: one nn.Linear pair for the two linear2
    contenders and liger-mlp, one stacked (w12, b12) for both fused policies."""
    d = case.hidden
    fc_a = nn.Linear(case.in_features, d, bias=case.bias, device=w12.device, dtype=w12.dtype)
    fc_b = nn.Linear(case.in_features, d, bias=case.bias, device=w12.device, dtype=w12.dtype)
    with torch.no_grad():
        fc_a.weight.copy_(w12[:d])
        fc_b.weight.copy_(w12[d:])
        if case.bias:
            fc_a.bias.copy_(b12[:d])
            fc_b.bias.copy_(b12[d:])
    linears = [*fc_a.parameters(), *fc_b.parameters()]
    fused_params = [w12] + ([b12] if b12 is not None else [])
    out = []
    for name in wanted:
        if name == "linear2+liger":
            try:
                from liger_kernel.ops.swiglu import LigerSiLUMulFunction
            except ImportError as e:
                out.append(Contender(name, None, [], skip=f"liger-kernel not importable: {e}"))
                continue
            out.append(Contender(name, lambda x, f=LigerSiLUMulFunction: f.apply(fc_a(x), fc_b(x)), linears))
        elif name == "linear2+torch":
            out.append(Contender(name, lambda x: F.silu(fc_a(x)) * fc_b(x), linears))
        elif name == "liger-mlp":
            out.append(liger_mlp(case, fc_a.weight, fc_b.weight))
        elif name in ("fused-save", "fused-recompute"):
            policy = name.split("-")[1]
            out.append(Contender(name, lambda x, p=policy: swiglu.fused_swiglu(x, w12, b12, policy=p), fused_params))
        elif name == "fp8-train":
            out.append(fp8_train(case, w12, b12, fused_params))
        elif name == "fp8-scaled-mm-train":
            out.append(scaled_mm_train(case, w12, b12, fused_params))
    return out


def fp8_train(case: Case, w12: torch.Tensor, b12: torch.Tensor | None, params: list) -> Contender:
    name = "fp8-train"
    if case.dtype not in ("bf16", "fp16"):
        return Contender(name, None, [], skip="FP8 training is compared on bf16 and fp16 cases")
    if case.in_features % 16 or case.hidden % 16:
        return Contender(name, None, [], skip="FP8 training needs I and D to be multiples of 16")
    reason = swiglu.fp8.unsupported_reason(w12)
    if reason is not None:
        return Contender(name, None, [], skip=f"FP8 cannot run here: {reason}")
    return Contender(name, lambda x: swiglu.fused_swiglu_fp8_training(x, w12, b12), params)


def scaled_mm_train(case: Case, w12: torch.Tensor, b12: torch.Tensor | None, params: list) -> Contender:
    name = "fp8-scaled-mm-train"
    if case.dtype != "bf16":
        return Contender(name, None, [], skip="the torch FP8 training pipeline is compared on bf16 cases")
    if case.batch % 16 or case.in_features % 16 or case.hidden % 16:
        return Contender(name, None, [], skip="torch._scaled_mm needs B, I and D to be multiples of 16")
    if E4M3 is None or not hasattr(torch, "_scaled_mm"):
        return Contender(name, None, [], skip=f"torch {torch.__version__} has no float8_e4m3fn or torch._scaled_mm")
    if w12.device.type == "cuda" and torch.cuda.get_device_capability(w12.device) < (8, 9):
        return Contender(name, None, [], skip="torch._scaled_mm needs compute capability 8.9 or newer")
    # Why compiled with dynamic=False and reset per case: as fp8_contenders.
    torch._dynamo.reset()
    fns = ScaledMmTrainingFns(torch.compile(quantize_per_tensor, dynamic=False),
                              torch.compile(gate_bf16, dynamic=False),
                              torch.compile(gate_backward_bf16, dynamic=False), case.hidden)
    return Contender(name, lambda x: ScaledMmTraining.apply(x, w12, b12, fns), params)


def liger_mlp(case: Case, wa: torch.Tensor, wb: torch.Tensor) -> Contender:
    name = "liger-mlp"
    if case.bias:
        return Contender(name, None, [], skip="no bias in Liger's fused MLP")
    if case.dtype == "fp32" and case.math == "exact":
        return Contender(name, None, [], skip="its float32 dot runs TF32 (compare with math: tf32)")
    try:
        from liger_kernel.ops.mlp import gemm_swiglu
    except ImportError as e:
        return Contender(name, None, [], skip=f"liger_kernel.ops.mlp.gemm_swiglu not importable: {e}")

    def forward(x):
        # Its input is (B, S, I); the tokens go in S. store_preact=False: the inference kernel.
        return gemm_swiglu(x.reshape(1, -1, x.shape[-1]), wa, wb, 1.0, store_preact=False)[0].view(*x.shape[:-1], -1)

    return Contender(name, forward, [], trains=False)


# ---- FP8 contenders (--fp8) ---------------------------------------------------------------------


E4M3 = getattr(torch, "float8_e4m3fn", None)
E4M3_MAX = 448.0


def _scale_of(amax: torch.Tensor) -> torch.Tensor:
    """amax/448, 1 where amax is 0, in float32 (the library's scales)."""
    amax = amax.float()
    return torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))


def _to_e4m3(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # Why the clamp: torch's cast to float8_e4m3fn does not saturate.
    return (v.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)


def quantize_per_tensor(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = _scale_of(t.abs().amax())
    return _to_e4m3(t, scale), scale


def quantize_per_row(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows × 1 scales, as torch._scaled_mm's rowwise scaling takes them for its first operand."""
    scale = _scale_of(t.abs().amax(dim=1, keepdim=True))
    return _to_e4m3(t, scale), scale


def gate_fp32(h: torch.Tensor, hidden: int) -> torch.Tensor:
    """Z = SiLU(G)·U from H = [G | U], in fp32."""
    g, u = h.float().split(hidden, dim=-1)
    return F.silu(g) * u


def gate_e4m3(h: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Z = SiLU(G)·U from H = [G | U] in e4m3 with 1×128 scales along D (fused_swiglu_fp8's ScaledFp8)."""
    z = gate_fp32(h, hidden)
    blocks = (hidden + 127) // 128
    padded = F.pad(z, (0, blocks * 128 - hidden)).view(z.shape[0], blocks, 128)
    scale = _scale_of(padded.abs().amax(dim=-1, keepdim=True))
    # Why the cast last, on the slice: torch 2.1's inductor cannot lower a copy of a float8 view.
    q = (padded / scale).clamp(-E4M3_MAX, E4M3_MAX).view(z.shape[0], blocks * 128)[:, :hidden].to(E4M3)
    return q, scale.squeeze(-1)


def gate_bf16(h: torch.Tensor, hidden: int) -> torch.Tensor:
    """Z = SiLU(G)·U from H = [G | U], in fp32, rounded to H's dtype."""
    return gate_fp32(h, hidden).to(h.dtype)


def gate_backward_bf16(dz: torch.Tensor, h: torch.Tensor, hidden: int) -> torch.Tensor:
    """dH = [dZ·U·silu'(G) | dZ·silu(G)], in fp32, rounded to H's dtype."""
    g, u = h.float().split(hidden, dim=-1)
    s = torch.sigmoid(g)
    dzf = dz.float()
    return torch.cat([dzf * u * (s * (1 + g * (1 - s))), dzf * (g * s)], dim=-1).to(h.dtype)


@dataclasses.dataclass
class ScaledMmTrainingFns:
    quantize: Callable  # t -> (e4m3, per-tensor scale)
    gate: Callable  # (H, D) -> Z
    gate_backward: Callable  # (dZ, H, D) -> dH
    hidden: int


def col_major(t: torch.Tensor) -> torch.Tensor:
    """The same matrix stored column by column, as torch._scaled_mm takes its second operand."""
    return t.t().contiguous().t()


class ScaledMmTraining(torch.autograd.Function):
    """fp8-scaled-mm-train: the forward keeps H (bf16), x's and W12's e4m3 copies and their scales."""

    @staticmethod
    def forward(ctx, x, w12, b12, fns):
        x2 = x.reshape(-1, x.shape[-1])
        x_q, x_scale = fns.quantize(x2)
        w_q, w_scale = fns.quantize(w12)
        bias = b12.to(torch.bfloat16) if b12 is not None else None
        h = scaled_mm(x_q, w_q.t(), x_scale, w_scale, bias)
        ctx.save_for_backward(h, x_q, x_scale, w_q, w_scale)
        ctx.fns, ctx.x_shape, ctx.has_bias = fns, x.shape, b12 is not None
        ctx.dtypes = (x.dtype, w12.dtype, b12.dtype if b12 is not None else None)
        return fns.gate(h, fns.hidden).view(*x.shape[:-1], fns.hidden)

    @staticmethod
    def backward(ctx, dz):
        h, x_q, x_scale, w_q, w_scale = ctx.saved_tensors
        fns = ctx.fns
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        dh = fns.gate_backward(dz.reshape(-1, fns.hidden), h, fns.hidden)
        dh_q, dh_scale = fns.quantize(dh)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = scaled_mm(dh_q, col_major(w_q), dh_scale, w_scale, None).to(x_dtype).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            dw = scaled_mm(dh_q.t().contiguous(), col_major(x_q), dh_scale, x_scale, None).to(w_dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dh.float().sum(0).to(b_dtype)
        return dx, dw, db, None


def dequantize_z(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.repeat_interleave(128, dim=-1)[..., :q.shape[-1]]


def scaled_mm(a, b, scale_a, scale_b, bias) -> torch.Tensor:
    """torch._scaled_mm into bf16 (it returns (out, amax) before torch 2.5)."""
    out = torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=torch.bfloat16)
    return out[0] if isinstance(out, tuple) else out


def fp8_contenders(case: Case, wanted: list[str], w12: torch.Tensor, b12: torch.Tensor | None) -> list[Contender]:
    """The FP8 contenders for one case, each x -> (e4m3 Z, its 1×128 scales), with W12 quantised
    here, once, as each one takes it."""
    d = case.hidden
    # Why compiled with dynamic=False and reset per case: one graph per shape, and a sweep of
    # shapes would otherwise reach dynamo's recompile limit and fall back to eager.
    torch._dynamo.reset()
    quantize_x = {"fp8-scaled-mm": torch.compile(quantize_per_tensor, dynamic=False),
                  "fp8-scaled-mm-rowwise": torch.compile(quantize_per_row, dynamic=False)}
    gate = torch.compile(gate_e4m3, dynamic=False)
    out = []
    for name in wanted:
        if name == "fp8-fused":
            w_q, w_scale = swiglu.quantize_weight_e4m3(w12, "blocks")

            def fused(x, w_q=w_q, w_scale=w_scale):
                z = swiglu.fused_swiglu_fp8(x, w_q, w_scale, b12, weight_scaling="blocks", out_dtype=E4M3)
                return z.data, z.scale
            out.append(Contender(name, fused, [], trains=False))
            continue
        if not hasattr(torch, "_scaled_mm"):
            out.append(Contender(name, None, [], skip=f"torch {torch.__version__} has no torch._scaled_mm"))
            continue
        w_q, w_scale = quantize_per_tensor(w12) if name == "fp8-scaled-mm" else quantize_per_row(w12)
        w_scale = w_scale.reshape(1, -1) if name == "fp8-scaled-mm-rowwise" else w_scale  # 1 × 2D

        def baseline(x, w_t=w_q.t(), w_scale=w_scale, quantize=quantize_x[name]):
            x_q, x_scale = quantize(x)
            return gate(scaled_mm(x_q, w_t, x_scale, w_scale, b12), d)
        out.append(Contender(name, baseline, [], trains=False))
    return out


# ---- measurement -------------------------------------------------------------------------------


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics, as src/common/stats.cpp."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    if lo + 1 >= len(sorted_values):
        return sorted_values[-1]
    return sorted_values[lo] + (h - lo) * (sorted_values[lo + 1] - sorted_values[lo])


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    med = quantile(s, 0.5)
    q1, q3 = quantile(s, 0.25), quantile(s, 0.75)
    return {"median_ms": med, "q1_ms": q1, "q3_ms": q3, "min_ms": s[0], "samples": len(s),
            "noise": (q3 - q1) / med if med > 0 else float("nan")}


def fp8_max_rel(rel_l2_bound: float, numel: int) -> float:
    """The max_rel screen of an FP8 output of numel elements whose rel_l2 bound is rel_l2_bound.

    Why not a fixed multiple of u, as for the 16-bit dtypes: there an element's error is its own
    rounding, at most u·|ref|. In FP8 it is the sum of K operand roundings (about normal, of rms up to
    rel_l2_bound·rms(ref)), and for Z multiplied through the gate by another such factor: a product
    of two normals has an exponential tail, whose largest of N draws lies near ln N of its rms. At
    4096×11008 that is 18.6·rel_l2_bound (0.8·rms(ref) was seen at rel_l2 0.051 on an H100); a
    wrong scale or tile, off by |ref| or more over a block, still stands out in rel_l2 or here.
    """
    return rel_l2_bound * max(math.log(max(numel, 1)), 1.0)


def rel_errors(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(rel_l2, max_rel) as TESTING.md defines them, in float32 on the GPU."""
    d = (out.float() - ref).abs_()
    ref_norm = torch.linalg.vector_norm(ref).item()
    if not torch.isfinite(d).all():
        return float("inf"), float("inf")
    rel_l2 = torch.linalg.vector_norm(d).item() / ref_norm if ref_norm > 0 else torch.linalg.vector_norm(d).item()
    rms = ref_norm / math.sqrt(ref.numel()) if ref.numel() else 1.0
    max_rel = d.div_(ref.abs().clamp_(min=rms if rms > 0 else 1.0)).max().item() if ref.numel() else 0.0
    return rel_l2, max_rel


def record_check_failure(row: dict, e: Exception, ours: bool) -> None:
    """A contender's check raised: out of memory is SKIP (the cache emptied for the next one); any
    other error is ERROR for our own contenders and SKIP, with its first line, for the others."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        row.update(status="SKIP", reason="out of memory in the check")
        torch.cuda.empty_cache()
        return
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    row.update(status="ERROR" if ours else "SKIP", reason=f"{type(e).__name__}: {first_line[:200]}")


def zero_grads(tensors) -> None:
    for t in tensors:
        t.grad = None


class Bench:
    def __init__(self, args, device: torch.device):
        self.args = args
        self.device = device
        props = torch.cuda.get_device_properties(device)
        l2 = getattr(props, "L2_cache_size", 0) or 64 * MIB
        self.flush = torch.empty(max(2 * l2, 8 * MIB), dtype=torch.uint8, device=device)

    def time_interleaved(self, fns: dict) -> dict:
        """name -> samples (ms) of fn(), round by round over the contenders, L2 flushed before each,
        until every one has --min-samples and the rounds took --min-time, or --max-samples."""
        a = self.args
        samples = {name: [] for name in fns}
        start_wall = time.perf_counter()
        for rnd in range(a.max_samples):
            events = []
            for name, (prep, fn) in fns.items():
                prep()
                self.flush.zero_()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events.append((name, start, end))
            torch.cuda.synchronize(self.device)
            for name, start, end in events:
                samples[name].append(start.elapsed_time(end))
            if rnd + 1 >= a.min_samples and time.perf_counter() - start_wall >= a.min_time:
                break
        return samples

    def run_case(self, case: Case) -> list[dict]:
        """One row per contender (also for those skipped or failed)."""
        a = self.args
        dtype = DTYPES[case.dtype]
        tol_key = "tf32" if case.dtype == "fp32" and case.math == "tf32" else case.dtype
        base = {"config": case.config, "B": case.batch, "I": case.in_features, "D": case.hidden,
                "dtype": case.dtype, "math": case.math if case.dtype == "fp32" else "", "bias": case.bias,
                "x_stride_pad": case.x_stride_pad}
        if case.layout != "linear":
            return [dict(base, contender=c, status="SKIP", reason="packed layout: nn.Linear weights are the linear layout")
                    for c in a.contenders]
        if case.dtype == "fp32" and case.math == "3xtf32":
            return [dict(base, contender=c, status="SKIP", reason="math 3xtf32: not in the PyTorch package (swiglubench runs it)")
                    for c in a.contenders]
        need, free = self.bytes_needed(case), torch.cuda.mem_get_info(self.device)[0]
        if need > free:
            return [dict(base, contender=c, status="SKIP",
                         reason=f"needs about {need / 2**30:.1f} GiB, device has {free / 2**30:.1f} GiB free")
                    for c in a.contenders]

        g = torch.Generator(device=self.device).manual_seed(a.seed)

        def uniform(*shape, scale=1.0):
            return ((torch.rand(*shape, generator=g, device=self.device) * 2 - 1) * scale).to(dtype)

        k = 1 / math.sqrt(case.in_features)
        x_storage = uniform(case.batch, case.in_features + case.x_stride_pad)
        x = x_storage[:, :case.in_features]
        w12 = nn.Parameter(uniform(2 * case.hidden, case.in_features, scale=k))
        b12 = nn.Parameter(uniform(2 * case.hidden, scale=k)) if case.bias else None
        dz = uniform(case.batch, case.hidden)
        x_train = x.detach().requires_grad_(True)
        previous_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = case.math == "tf32"
        try:
            contenders = make_contenders(case, a.contenders, w12, b12)
            rows = {c.name: dict(base, contender=c.name, status="SKIP" if c.skip else "", reason=c.skip)
                    for c in contenders}
            live = [c for c in contenders if not c.skip]
            live = self.check(live, rows, x, x_train, w12, b12, dz, tol_key)
            live = self.timing(live, rows, x, x_train, dz)
            self.memory(live, rows, x_train, dz)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous_tf32
        for row in rows.values():
            if not row["status"]:
                row["status"] = "PASS"
        return [rows[c.name] for c in contenders]

    def bytes_needed(self, case: Case) -> int:
        """A generous estimate of the case's peak: the weights twice (linear pair and w12) with
        their gradients, the float32 reference with its gradients, and a training step's
        activations and gradients in the largest contender."""
        es = DTYPES[case.dtype].itemsize
        b, i, d2 = case.batch, case.in_features, 2 * case.hidden
        weights = 4 * d2 * i * es
        reference = 4 * (3 * b * i + 2 * d2 * i + 4 * b * d2)
        step = es * (3 * b * i + 6 * b * d2)
        return weights + reference + step + self.flush.numel()

    def check(self, live, rows, x, x_train, w12, b12, dz, tol_key) -> list[Contender]:
        """Forward + backward of each contender once against the float32 reference; returns
        those that passed."""
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is exact float32
        x32 = x.detach().float().requires_grad_(True)
        w32 = w12.detach().float().requires_grad_(True)
        b32 = None if b12 is None else b12.detach().float().requires_grad_(True)
        z_ref = swiglu.reference_swiglu(x32, w32, b32)
        z_ref.backward(dz.float())
        refs = {"z": z_ref.detach(), "dx": x32.grad, "dw": w32.grad, "dbias": None if b32 is None else b32.grad}
        del z_ref, x32, w32, b32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        passed = []
        for c in live:
            row = rows[c.name]
            try:
                zero_grads([x_train, *c.params])
                z = c.forward(x_train if c.trains else x)
                got = {"z": z.detach()}
                if c.trains:
                    z.backward(dz)
                    got["dx"] = x_train.grad
                    got["dw"] = torch.cat([p.grad for p in c.params if p.dim() == 2])
                    if refs["dbias"] is not None:
                        got["dbias"] = torch.cat([p.grad for p in c.params if p.dim() == 1])
                torch.cuda.synchronize(self.device)
            except Exception as e:  # noqa: BLE001: any failure of a contender is reported in its row
                # Why: an error of ours fails the run; the others' (liger-mlp needs TMA and
                # 16-byte-aligned rows, for one) only mean that they do not apply here.
                record_check_failure(row, e, ours=c.name.startswith("fused"))
                continue
            worst = 0.0
            failures = []
            for out, value in got.items():
                rel_l2, max_rel = rel_errors(value, refs[out])
                row[f"rel_l2_{out}"], row[f"max_rel_{out}"] = rel_l2, max_rel
                if c.name in FP8_TRAINING:
                    l2 = FP8_TOL if out == "z" else FP8_GRADIENT_TOL
                    tol = (l2, fp8_max_rel(l2, value.numel()))
                else:
                    tol = FORWARD_TOL[tol_key] if out == "z" else GRADIENT_TOL[tol_key]
                worst = max(worst, rel_l2)
                if not (rel_l2 <= tol[0] and max_rel <= tol[1]):
                    failures.append(f"{out}: rel_l2 {rel_l2:.1e} max_rel {max_rel:.1e} (tol {tol[0]:.2g}, {tol[1]:.2g})")
            row["rel_err"] = worst
            del got, z
            if failures:
                row.update(status="FAIL", reason="; ".join(failures))
            else:
                passed.append(c)
        zero_grads([x_train] + [p for c in live for p in c.params])
        return passed

    def timing(self, live, rows, x, x_train, dz) -> list[Contender]:
        a = self.args

        def step(c):
            def run():
                c.forward(x_train).backward(dz)
            return run

        def forward(c):
            def run():
                with torch.no_grad():
                    c.forward(x)
            return run

        def prep(c):
            return lambda: zero_grads([x_train, *c.params])

        modes = {"fwd": {c.name: (lambda: None, forward(c)) for c in live},
                 "step": {c.name: (prep(c), step(c)) for c in live if c.trains}}
        try:
            for mode, fns in modes.items():
                if not fns:
                    continue
                for prep_fn, fn in fns.values():
                    for _ in range(a.warmup):
                        prep_fn()
                        fn()
                for name, samples in self.time_interleaved(fns).items():
                    for key, value in summary(samples).items():
                        rows[name][f"{mode}_{key}"] = value
        except torch.cuda.OutOfMemoryError:
            for c in live:
                rows[c.name].update(status="SKIP", reason="out of memory while timing")
            torch.cuda.empty_cache()
            return []
        finally:
            zero_grads([x_train] + [p for c in live for p in c.params])
        baseline = rows.get(BASELINE, {})
        for c in live:
            for mode in modes:
                t, t0 = rows[c.name].get(f"{mode}_median_ms"), baseline.get(f"{mode}_median_ms")
                if t and t0 and c.name != BASELINE:
                    rows[c.name][f"{mode}_speedup"] = t0 / t
        return live

    def memory(self, live, rows, x_train, dz) -> None:
        for c in (c for c in live if c.trains):
            row = rows[c.name]
            zero_grads([x_train, *c.params])
            # Why collect, then hold the collector: tensors of the timing runs that only a reference
            # cycle still holds would otherwise be freed whenever the collector runs, in the middle
            # of the measured step (most likely why an H200 run read kept as -580 MiB).
            gc.collect()
            gc.disable()
            try:
                torch.cuda.synchronize(self.device)
                before = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                z = c.forward(x_train)
                torch.cuda.synchronize(self.device)
                kept = torch.cuda.memory_allocated(self.device) - before
                z.backward(dz)
                del z
                torch.cuda.synchronize(self.device)
                peak = torch.cuda.max_memory_allocated(self.device) - before
                if kept < 0 or peak < kept:
                    row["reason"] = "memory not recorded: tensors allocated before the step were freed during it"
                else:
                    row["kept_mib"], row["peak_mib"] = kept / MIB, peak / MIB
            except torch.cuda.OutOfMemoryError:
                row.update(status="SKIP", reason="out of memory while measuring memory")
                torch.cuda.empty_cache()
            finally:
                gc.enable()
            zero_grads([x_train, *c.params])
        base_peak = rows.get(BASELINE, {}).get("peak_mib")
        for c in live:
            if base_peak and rows[c.name].get("peak_mib") and c.name != BASELINE:
                rows[c.name]["peak_vs_baseline"] = rows[c.name]["peak_mib"] / base_peak


    def run_fp8_case(self, case: Case) -> list[dict]:
        """--fp8: one row per FP8 contender, the forward checked against the float32 reference
        and timed under torch.inference_mode."""
        a = self.args
        base = {"config": case.config, "B": case.batch, "I": case.in_features, "D": case.hidden,
                "dtype": case.dtype, "math": "", "bias": case.bias, "x_stride_pad": case.x_stride_pad}

        def skipped(reason):
            return [dict(base, contender=c, status="SKIP", reason=reason) for c in a.contenders]

        major, minor = torch.cuda.get_device_capability(self.device)
        if E4M3 is None:
            return skipped(f"torch {torch.__version__} has no float8_e4m3fn")
        if major != 9:
            return skipped(f"the FP8 kernel needs compute capability 9.0 (this GPU is {major}.{minor})")
        if case.dtype != "bf16" or case.layout != "linear":
            return skipped("FP8 rows take bf16 inputs in the linear layout (--dtype bf16)")
        if case.in_features % 16 != 0:
            return skipped(f"in_features {case.in_features} is not a multiple of 16 (the FP8 kernel's rows)")
        need, free = self.bytes_needed(case), torch.cuda.mem_get_info(self.device)[0]
        if need > free:
            return skipped(f"needs about {need / 2**30:.1f} GiB, device has {free / 2**30:.1f} GiB free")
        g = torch.Generator(device=self.device).manual_seed(a.seed)

        def uniform(*shape, scale=1.0):
            return ((torch.rand(*shape, generator=g, device=self.device) * 2 - 1) * scale).to(torch.bfloat16)

        k = 1 / math.sqrt(case.in_features)
        x = uniform(case.batch, case.in_features + case.x_stride_pad)[:, :case.in_features]
        w12 = uniform(2 * case.hidden, case.in_features, scale=k)
        b12 = uniform(2 * case.hidden, scale=k) if case.bias else None
        z_ref = swiglu.reference_swiglu(x.float(), w12.float(), None if b12 is None else b12.float())
        contenders = fp8_contenders(case, a.contenders, w12, b12)
        rows = {c.name: dict(base, contender=c.name, status="SKIP" if c.skip else "", reason=c.skip)
                for c in contenders}
        live = []
        for c in (c for c in contenders if not c.skip):
            row = rows[c.name]
            try:
                with torch.inference_mode():
                    z = dequantize_z(*c.forward(x))
                torch.cuda.synchronize(self.device)
            except Exception as e:  # noqa: BLE001: any failure of a contender is reported in its row
                # Why: an error of ours fails the run; torch._scaled_mm's (rowwise scaling needs
                # torch 2.5, some shapes none) only mean that it does not apply here.
                record_check_failure(row, e, ours=c.name == "fp8-fused")
                continue
            rel_l2, max_rel = rel_errors(z, z_ref)
            row.update(rel_l2_z=rel_l2, max_rel_z=max_rel, rel_err=rel_l2)
            tol = (FP8_TOL, fp8_max_rel(FP8_TOL, z.numel()))
            if rel_l2 <= tol[0] and max_rel <= tol[1]:
                live.append(c)
            else:
                row.update(status="FAIL", reason=f"z: rel_l2 {rel_l2:.1e} max_rel {max_rel:.1e} "
                                                 f"(tol {tol[0]:.2g}, {tol[1]:.2g})")
        del z_ref

        def forward(c):
            def run():
                with torch.inference_mode():
                    c.forward(x)
            return run

        fns = {c.name: (lambda: None, forward(c)) for c in live}
        try:
            for _, fn in fns.values():
                for _ in range(a.warmup):
                    fn()
            for name, samples in (self.time_interleaved(fns) if fns else {}).items():
                for key, value in summary(samples).items():
                    rows[name][f"fwd_{key}"] = value
        except torch.cuda.OutOfMemoryError:
            for c in live:
                rows[c.name].update(status="SKIP", reason="out of memory while timing")
            torch.cuda.empty_cache()
        t0 = rows.get(FP8_BASELINE, {}).get("fwd_median_ms")
        for c in live:
            t = rows[c.name].get("fwd_median_ms")
            if t and t0 and c.name != FP8_BASELINE:
                rows[c.name]["fwd_speedup"] = t0 / t
        for row in rows.values():
            if not row["status"]:
                row["status"] = "PASS"
        return [rows[c.name] for c in contenders]


# ---- output ------------------------------------------------------------------------------------


COLUMNS = ["config", "B", "I", "D", "dtype", "math", "bias", "x_stride_pad", "contender", "status", "reason",
           "fwd_median_ms", "fwd_q1_ms", "fwd_q3_ms", "fwd_min_ms", "fwd_noise", "fwd_samples", "fwd_speedup",
           "step_median_ms", "step_q1_ms", "step_q3_ms", "step_min_ms", "step_noise", "step_samples", "step_speedup",
           "kept_mib", "peak_mib", "peak_vs_baseline", "rel_err",
           "rel_l2_z", "max_rel_z", "rel_l2_dx", "max_rel_dx", "rel_l2_dw", "max_rel_dw", "rel_l2_dbias", "max_rel_dbias"]
MD_HEADER = ("| B | I | D | dtype | bias | contender | fwd ms | noise | fwd vs liger | fwd+bwd ms | noise | "
             "fwd+bwd vs liger | kept MiB | peak MiB | peak vs liger | rel err | status |\n"
             "| ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


def fmt(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None or value == "" else f"{value:{spec}}{suffix}"


def md_row(r: dict) -> str:
    dtype = r["dtype"] + (f" {r['math']}" if r.get("math") in ("tf32", "3xtf32") else "") + (f" ldx+{r['x_stride_pad']}" if r["x_stride_pad"] else "")
    status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
    cells = [r["B"], r["I"], r["D"], dtype, "yes" if r["bias"] else "no", r["contender"],
             fmt(r.get("fwd_median_ms"), ".4g"), fmt(r.get("fwd_noise") and 100 * r["fwd_noise"], ".1f", "%"),
             fmt(r.get("fwd_speedup"), ".2f", "x"),
             fmt(r.get("step_median_ms"), ".4g"), fmt(r.get("step_noise") and 100 * r["step_noise"], ".1f", "%"),
             fmt(r.get("step_speedup"), ".2f", "x"),
             fmt(r.get("kept_mib"), ".1f"), fmt(r.get("peak_mib"), ".1f"), fmt(r.get("peak_vs_baseline"), ".2f", "x"),
             fmt(r.get("rel_err"), ".1e"), status]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary_lines(rows: list[dict]) -> list[str]:
    """Geometric means over the cases of each fused contender's speedups and peak memory ratio."""
    lines = []
    for name in ("fused-save", "fused-recompute", *FP8_TRAINING):
        mine = [r for r in rows if r["contender"] == name and r["status"] == "PASS"]
        parts = []
        for key, label in (("fwd_speedup", "fwd"), ("step_speedup", "fwd+bwd"), ("peak_vs_baseline", "peak memory")):
            values = [r[key] for r in mine if r.get(key)]
            if values:
                fewer = f", {len(values)} of the {len(mine)}" if len(values) < len(mine) else ""
                parts.append(f"{label} {geomean(values):.2f}x (range {min(values):.2f}-{max(values):.2f}{fewer})")
        if parts:
            lines.append(f"{name} against {BASELINE}, geometric mean over {len(mine)} cases: " + ", ".join(parts))
    # FP8 training against the bf16 fused step, case by case in the same run.
    def case_of(r):
        return tuple(r.get(k) for k in ("config", "B", "I", "D", "dtype", "bias"))

    for against in ("fused-save", "fp8-scaled-mm-train"):
        theirs = {case_of(r): r for r in rows if r["contender"] == against and r["status"] == "PASS"}
        ratios = []
        for r in rows:
            other = theirs.get(case_of(r))
            if r["contender"] == "fp8-train" and r["status"] == "PASS" and other:
                if r.get("step_median_ms") and other.get("step_median_ms"):
                    ratios.append(other["step_median_ms"] / r["step_median_ms"])
        if ratios:
            lines.append(f"fp8-train against {against}, fwd+bwd, geometric mean over {len(ratios)} cases: "
                         f"{geomean(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
    return lines


FP8_MD_HEADER = ("| B | I | D | dtype | bias | contender | fwd ms | noise | fwd vs scaled-mm | rel err | status |\n"
                 "| ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- |")


def fp8_md_row(r: dict) -> str:
    dtype = r["dtype"] + (f" ldx+{r['x_stride_pad']}" if r["x_stride_pad"] else "")
    status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
    cells = [r["B"], r["I"], r["D"], dtype, "yes" if r["bias"] else "no", r["contender"],
             fmt(r.get("fwd_median_ms"), ".4g"), fmt(r.get("fwd_noise") and 100 * r["fwd_noise"], ".1f", "%"),
             fmt(r.get("fwd_speedup"), ".2f", "x"), fmt(r.get("rel_err"), ".1e"), status]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def fp8_summary_lines(rows: list[dict]) -> list[str]:
    """Geometric means over the cases of the FP8 contenders' forward speedups over the baseline."""
    lines = []
    for name in (c for c in FP8_CONTENDERS if c != FP8_BASELINE):
        mine = [r for r in rows if r["contender"] == name and r["status"] == "PASS"]
        values = [r["fwd_speedup"] for r in mine if r.get("fwd_speedup")]
        if values:
            lines.append(f"{name} against {FP8_BASELINE}, geometric mean over {len(values)} cases: fwd "
                         f"{geomean(values):.2f}x (range {min(values):.2f}-{max(values):.2f})")
    return lines


def slugify_gpu(name: str) -> str:
    """The results/<gpu>/ name swiglubench uses (src/common/device.cpp)."""
    s = ""
    for ch in name:
        if ch.isascii() and ch.isalnum():
            s += ch.lower()
        elif s and not s.endswith("-"):
            s += "-"
    s = s.rstrip("-")
    for vendor in ("nvidia-", "tesla-"):
        if s.startswith(vendor):
            s = s[len(vendor):]
    return s or "unknown-gpu"


def relative_to_root(arg: str) -> str:
    """An argument naming a path inside the source tree, relative to it (result files are
    committed; machine paths do not belong in them)."""
    path = pathlib.Path(arg)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else arg


def command_args(argv: list[str]) -> list[str]:
    """The command line as the result files record it: paths inside the source tree relative to it,
    and an --out directory outside it written OUT (machine paths do not belong in them)."""
    def out_dir(value: str) -> str:
        value = relative_to_root(value)
        return "OUT" if pathlib.Path(value).is_absolute() else value

    out = []
    for i, arg in enumerate(argv):
        if arg.startswith("--out="):
            out.append("--out=" + out_dir(arg[len("--out="):]))
        elif i > 0 and argv[i - 1] == "--out":
            out.append(out_dir(arg))
        else:
            out.append(relative_to_root(arg))
    return out


def provenance(args, device) -> list[str]:
    props = torch.cuda.get_device_properties(device)
    versions = {"torch": torch.__version__, "CUDA (torch)": torch.version.cuda}
    for package in ("triton", "liger-kernel"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    # SWIGLU_GIT_SHA, as the CMake build reads it, names the commit where the checkout's own git
    # history is missing or stale (a copied tree).
    sha = os.environ.get("SWIGLU_GIT_SHA", "")[:12]
    if not sha:
        try:
            sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            sha = "unknown"
    l2 = getattr(props, "L2_cache_size", 0)
    library = pathlib.Path(swiglu.load_library()).resolve()
    library = library.relative_to(ROOT) if library.is_relative_to(ROOT) else library.name
    return [f"{props.name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, L2 {l2 // MIB} MiB), "
            + ", ".join(f"{k} {v}" for k, v in versions.items()) + f", libswiglu_c {library}",
            f"git {sha}, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            "command: scripts/bench_torch.py " + " ".join(command_args(sys.argv[1:])),
            f"timing: {args.warmup} warm-up runs, {args.min_samples}-{args.max_samples} samples and at least "
            f"{args.min_time} s per mode and case, L2 flushed before each sample, contenders interleaved"]


@dataclasses.dataclass
class Table:
    """How a run's rows read in markdown: the table's header, a row, the summary lines."""

    header: str
    row: Callable[[dict], str]
    summary: Callable[[list], list]


TABLE = Table(MD_HEADER, md_row, summary_lines)
FP8_TABLE = Table(FP8_MD_HEADER, fp8_md_row, fp8_summary_lines)


class Output:
    """CSV written row by row, markdown rewritten after every case, for one config."""

    def __init__(self, out_dir: pathlib.Path, stem: str, header: list[str], table: Table = TABLE):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path, self.md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
        self.header = header
        self.table = table
        self.rows: list[dict] = []
        self.csv_file = open(self.csv_path, "w", newline="")
        self.csv = csv.DictWriter(self.csv_file, fieldnames=COLUMNS, extrasaction="ignore")
        self.csv.writeheader()

    def add(self, rows: list[dict]) -> None:
        for r in rows:
            self.csv.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
        self.csv_file.flush()
        self.rows.extend(rows)
        self.write_md()

    def write_md(self, complete: bool = False) -> None:
        lines = [f"# {self.md_path.stem}", ""] + [f"{h}  " for h in self.header] + [""]
        lines += [self.table.header] + [self.table.row(r) for r in self.rows] + [""]
        lines += self.table.summary(self.rows) + ([] if complete else ["", "(run not finished)"])
        tmp = self.md_path.with_suffix(".md.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.md_path)

    def close(self, complete: bool) -> None:
        self.write_md(complete)
        self.csv_file.close()


# ---- main --------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """Usage errors exit 3, as swiglubench's do."""
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(3)


def parse_args(argv):
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", action="append", metavar="F.yaml",
                   help="a sweep config (repeatable; default configs/mnist.yaml)")
    p.add_argument("--dtype", help="override the configs' dtypes: fp32,fp16,bf16")
    p.add_argument("--batch", help="override the configs' batches: N, a,b, a:b:step or pow2:a:b")
    p.add_argument("--in", dest="in_features", help="override in_features (same forms)")
    p.add_argument("--hidden", help="override hidden (same forms)")
    p.add_argument("--contenders", help=f"subset of {','.join(CONTENDERS)} (default all), or with --fp8 "
                                        f"of {','.join(FP8_CONTENDERS)}")
    p.add_argument("--fp8", action="store_true", help="FP8 inference contenders instead (see above)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per contender and mode (default 3)")
    p.add_argument("--min-samples", type=int, default=10, help="samples per contender and mode (default 10)")
    p.add_argument("--max-samples", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--min-time", type=float, default=0.2,
                   help="keep sampling a mode until its rounds took this many seconds (default 0.2)")
    p.add_argument("--time-limit", type=float, default=450,
                   help="start no case after this many seconds; the rest are SKIP rows (default 450)")
    p.add_argument("--max-cases", type=int, help="run at most this many cases in all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--out", help="output directory (default results/<gpu>/)")
    args = p.parse_args(argv)
    known = FP8_CONTENDERS if args.fp8 else CONTENDERS
    args.contenders = [c.strip() for c in (args.contenders or ",".join(known)).split(",") if c.strip()]
    bad = [c for c in args.contenders if c not in known]
    if bad or not args.contenders:
        p.error(f"--contenders: unknown {', '.join(bad) or '(empty)'}; expected a subset of {','.join(known)}")
    if args.min_samples < 1 or args.max_samples < args.min_samples or args.warmup < 0:
        p.error("need --min-samples >= 1, --max-samples >= --min-samples and --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {}
    try:
        if args.dtype:
            overrides["dtype"] = word_values(args.dtype, "--dtype", DTYPE_ALIASES)
        for key, value in (("batch", args.batch), ("in", args.in_features), ("hidden", args.hidden)):
            if value:
                overrides[key] = int_values(value, f"--{key}", 1)
        configs = [load_config(path, overrides) for path in (args.shapes or [str(ROOT / "configs" / "mnist.yaml")])]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("error: no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 3
    device = torch.device("cuda", args.device)
    torch.cuda.set_device(device)
    try:
        header = provenance(args, device)
    except swiglu.LibraryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    out_dir = pathlib.Path(args.out) if args.out else ROOT / "results" / slugify_gpu(torch.cuda.get_device_name(device))
    bench = Bench(args, device)
    print("\n".join(header))
    started = time.perf_counter()
    budget = args.max_cases
    failed = interrupted = False
    for name, cases in configs:
        stem = (f"torch_{'fp8_' if args.fp8 else ''}{name}"
                + (f"_{'-'.join(overrides['dtype'])}" if "dtype" in overrides else ""))
        output = Output(out_dir, stem, header, FP8_TABLE if args.fp8 else TABLE)
        print(f"\n{name}: {len(cases)} cases -> {output.md_path}\n\n{output.table.header}", flush=True)
        try:
            for case in cases:
                reason = ""
                if budget is not None and budget <= 0:
                    reason = "--max-cases reached"
                elif time.perf_counter() - started > args.time_limit:
                    reason = f"--time-limit {args.time_limit:g} s reached"
                if reason:
                    rows = [dict(config=name, B=case.batch, I=case.in_features, D=case.hidden, dtype=case.dtype,
                                 math=case.math if case.dtype == "fp32" else "", bias=case.bias,
                                 x_stride_pad=case.x_stride_pad, contender=c, status="SKIP", reason=reason)
                            for c in args.contenders]
                else:
                    if budget is not None:
                        budget -= 1
                    rows = bench.run_fp8_case(case) if args.fp8 else bench.run_case(case)
                    torch.cuda.empty_cache()
                failed |= any(r["status"] in ("FAIL", "ERROR") for r in rows)
                output.add(rows)
                for r in rows:
                    print(output.table.row(r), flush=True)
        except KeyboardInterrupt:
            interrupted = True
        output.close(complete=not interrupted)
        for line in output.table.summary(output.rows):
            print(line)
        print(f"wrote {output.csv_path} and {output.md_path}")
        if interrupted:
            break
    return 130 if interrupted else 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
