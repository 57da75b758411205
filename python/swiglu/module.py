"""FusedSwiGLU: the two up-projections of a SwiGLU MLP and its gate as one nn.Module."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from . import _fp8_ops
from . import fp8 as _fp8
from .functional import POLICIES, fused_swiglu

try:  # Why: DTensor is public from torch 2.5; older torch (or one built without distributed) has none
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:
    _DTensor = None


def _is_dtensor(t) -> bool:
    return _DTensor is not None and isinstance(t, _DTensor)


# The FP8 mode's output words and the dtypes they stand for.
_FP8_OUTPUTS = {"bf16": torch.bfloat16, "fp16": torch.float16, "e4m3": _fp8.E4M3}
_FP8_BUFFERS = ("weight_e4m3", "weight_e4m3_scale")
_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling  # torch < 2.3


@dataclasses.dataclass(frozen=True)
class Fp8Mode:
    """A FusedSwiGLU's FP8 inference mode (FusedSwiGLU.to_fp8): its weights' scaling and the
    output, parsed."""

    weight_scaling: str  # "blocks", "channel" or "tensor"
    output: str  # "bf16", "fp16" or "e4m3"

    @property
    def out_dtype(self) -> torch.dtype:
        return _FP8_OUTPUTS[self.output]


def _stack_gate_up(state_dict: dict, prefix: str) -> None:
    """Replaces prefix+gate_proj.{weight,bias} and prefix+up_proj.{weight,bias} with the stacked
    prefix+{weight,bias}, where both halves are present and the stacked key is not."""
    for name in ("weight", "bias"):
        gate, up, stacked = f"{prefix}gate_proj.{name}", f"{prefix}up_proj.{name}", prefix + name
        if gate in state_dict and up in state_dict and stacked not in state_dict:
            state_dict[stacked] = torch.cat([state_dict.pop(gate), state_dict.pop(up)], dim=0)


class FusedSwiGLU(nn.Module):
    """z = SiLU(x·Waᵀ + ba) ⊙ (x·Wbᵀ + bb): the fc1_a/fc1_b (gate_proj/up_proj) pair of a SwiGLU
    MLP and its gate, computed by swiglu.fused_swiglu() in one launch.

    Args:
        in_features: size of each input's last dimension (I).
        hidden: size of each output's last dimension (D).
        bias: whether the two projections have a bias.
        policy: "save" (the forward keeps the pre-activations for the backward: more memory, no
            second GEMM) or "recompute" (it keeps nothing but x; the backward recomputes them).
        device, dtype: of the parameters, as for nn.Linear.

    Parameters, in nn.Linear's layout and initialisation:
        weight: (2*hidden, in_features), [Wa; Wb]: rows [0, hidden) are fc1_a's (the gate's),
            rows [hidden, 2*hidden) fc1_b's.
        bias: (2*hidden,), [ba | bb], or None.

    The state dict holds ``weight`` and ``bias``; load_state_dict() also accepts one written by a
    module with ``gate_proj`` and ``up_proj`` nn.Linear children (``gate_proj.weight``,
    ``up_proj.weight``, and their biases), and stacks them.

    Tensor parallelism: swiglu.parallel.SwiGLUColwiseParallel shards the module over a device
    mesh, after which ``weight`` is a (2, hidden, in_features) DTensor and ``bias`` (2, hidden),
    sharded along hidden (see swiglu.parallel).

    FP8 inference: to_fp8() quantises the weight to e4m3 once and switches the forward to the FP8
    kernel (Hopper); see there. FP8 training: to_fp8_training() (the blockwise recipe, from the
    master weights every call).
    """

    fp8_mode: Fp8Mode | None = None  # set by to_fp8()
    fp8_training: bool = False  # set by to_fp8_training()

    def __init__(self, in_features: int, hidden: int, bias: bool = True, policy: str = "save",
                 device=None, dtype=None):
        super().__init__()
        if in_features <= 0 or hidden <= 0:
            raise ValueError(f"in_features and hidden must be positive, got {in_features} and {hidden}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be 'save' or 'recompute', got {policy!r}")
        self.in_features = in_features
        self.hidden = hidden
        self.policy = policy
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((2 * hidden, in_features), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(2 * hidden, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation, which for the stacked weight is each half's: U(-k, k) with
        k = 1/sqrt(in_features) for the weight (kaiming_uniform_ with a = sqrt(5)) and the bias."""
        # Why not kaiming_uniform_ itself: it reads fan_in off the shape, and a tensor-parallel
        # weight is (2, hidden, in_features). This is its formula with fan_in = in_features.
        std = nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(self.in_features)
        bounds = ((self.weight, math.sqrt(3.0) * std), (self.bias, 1.0 / math.sqrt(self.in_features)))
        for param, bound in bounds:
            if param is None:
                continue
            if not _is_dtensor(param):
                nn.init.uniform_(param, -bound, bound)
                continue
            # Why: a sharded parameter drawn shard by shard can repeat one shard on every rank (on
            # the CPU each rank draws its own from the same seed). Drawn whole, as one process
            # draws it, and scattered from rank 0, it is one process's weight whatever the ranks.
            from torch.distributed.tensor import distribute_tensor

            with torch.no_grad():
                whole = torch.empty(param.shape, dtype=param.dtype, device=param.to_local().device)
                param.copy_(distribute_tensor(whole.uniform_(-bound, bound), param.device_mesh, param.placements))

    @classmethod
    def from_linears(cls, fc1_a: nn.Linear, fc1_b: nn.Linear, policy: str = "save") -> "FusedSwiGLU":
        """A FusedSwiGLU computing SiLU(fc1_a(x)) * fc1_b(x), on fc1_a's device and dtype.

        The weights are copied into new parameters (an optimizer built over the old layers must be
        rebuilt); each requires grad when either layer's weight (bias) does.
        """
        for name, layer in (("fc1_a", fc1_a), ("fc1_b", fc1_b)):
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"{name} must be an nn.Linear, got {type(layer).__name__}")
        wa, wb = fc1_a.weight, fc1_b.weight
        if wa.shape != wb.shape:
            raise ValueError(f"fc1_a and fc1_b must have the same shape, got {tuple(wa.shape)} and {tuple(wb.shape)}")
        if (fc1_a.bias is None) != (fc1_b.bias is None):
            raise ValueError("fc1_a and fc1_b must both have a bias or both have none")
        if wa.dtype != wb.dtype or wa.device != wb.device:
            raise ValueError(f"fc1_a and fc1_b must have one dtype and device, got {wa.dtype} on "
                             f"{wa.device} and {wb.dtype} on {wb.device}")
        hidden, in_features = wa.shape
        fused = torch.nn.utils.skip_init(cls, in_features, hidden, bias=fc1_a.bias is not None,
                                         policy=policy, device=wa.device, dtype=wa.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([wa, wb], dim=0))
            if fused.bias is not None:
                fused.bias.copy_(torch.cat([fc1_a.bias, fc1_b.bias], dim=0))
        fused.weight.requires_grad_(wa.requires_grad or wb.requires_grad)
        if fused.bias is not None:
            fused.bias.requires_grad_(fc1_a.bias.requires_grad or fc1_b.bias.requires_grad)
        return fused

    def to_fp8(self, weight_scaling: str = "blocks", output: str | None = None) -> "FusedSwiGLU":
        """Switches this module to FP8 (e4m3) inference, in place, and returns it.

        The weight is quantised now, once: ``weight_e4m3`` (torch.float8_e4m3fn, the weight's
        shape) and ``weight_e4m3_scale`` (float32) become buffers of the module, left out of its
        state dict (which still holds ``weight`` and ``bias``). Each call then quantises x in 1×128
        blocks (amax/448 a block) and runs swiglu.fused_swiglu_fp8: one quantisation and one FP8
        GEMM launch, no host synchronisation, so CUDA graphs capture it and torch.compile keeps
        both as operators.

        Args:
            weight_scaling: the weight's scales: "blocks" (128×128 blocks, Wa's and Wb's apart),
                "channel" (one a row) or "tensor" (one). Finer scales follow the weights more
                closely; see swiglu.quantize_weight_e4m3.
            output: what forward() returns: "bf16" or "fp16" for Z in that dtype, or "e4m3" for
                a swiglu.ScaledFp8 (Z in e4m3 with its 1×128 scales, for an FP8 down projection).
                None: the module's dtype when that is bfloat16 or float16, else "bf16".

        The quantised weight is refreshed from ``weight`` by refresh_fp8(), which load_state_dict()
        calls itself, and which an eager forward() calls when ``weight`` changed since (an in-place
        update of the parameter bumps its version; a new tensor is another one); the bias is read
        as it is at each call. Writes through ``weight.data`` (``m.weight.data.copy_(w)``) bump no
        version the module can see, and compiled graphs and CUDA graph replays do not look at all:
        call refresh_fp8() after changing the weight there (before capturing a graph, too: a
        refresh checks the scales on the host, which a capture forbids). It updates the buffers in
        place, so that graphs captured before see the new values. ``.to()`` moves the buffers with
        the module and keeps their dtypes.

        Inference only: forward() raises when a gradient would be needed (grad mode on and x or a
        parameter requiring grad; run it under torch.no_grad() or torch.inference_mode()). Needs
        in_features to be a multiple of 16 and the weight on a GPU of compute capability 9.0;
        raises RuntimeError elsewhere, and ValueError when a scale comes out unusable (a weight
        with an infinity).
        """
        if _is_dtensor(self.weight):
            raise TypeError("to_fp8: this FusedSwiGLU is tensor-parallel (a DTensor weight); the FP8 mode "
                            "takes a plain module")
        if weight_scaling not in _fp8.WEIGHT_SCALINGS:
            raise ValueError(f"weight_scaling must be one of {', '.join(map(repr, _fp8.WEIGHT_SCALINGS))}, "
                             f"got {weight_scaling!r}")
        if output is None:
            output = {torch.float16: "fp16"}.get(self.weight.dtype, "bf16")
        if output not in _FP8_OUTPUTS:
            raise ValueError(f"output must be 'bf16', 'fp16' or 'e4m3', got {output!r}")
        if self.fp8_training:
            raise RuntimeError("to_fp8: this FusedSwiGLU is in FP8 training mode; call to_fp8_training(False) first")
        mode = Fp8Mode(weight_scaling, output)
        self._quantize_weight(mode)  # first: a failure leaves the module as it was
        self.fp8_mode = mode
        return self

    def to_fp8_training(self, enabled: bool = True) -> "FusedSwiGLU":
        """Switches this module's forward to FP8 training (True) or back (False), in place, and
        returns it: each call runs swiglu.fused_swiglu_fp8_training(x, weight, bias), which
        quantises x and the weight (the master weights, float32 or bfloat16, which the optimizer
        updates as before) to e4m3 in the blockwise recipe's blocks and computes forward and
        backward in FP8. Z comes out in bfloat16 (float16 for a float16 x), and the gradients in
        their parameters' dtypes. Nothing is cached, so the weights may change between calls.

        Needs in_features and hidden to be multiples of 16 and a GPU of compute capability 9.0
        (the call raises RuntimeError elsewhere). Not with the FP8 inference mode (to_fp8()) or a
        tensor-parallel module.
        """
        if enabled and _is_dtensor(self.weight):
            raise TypeError("to_fp8_training: this FusedSwiGLU is tensor-parallel (a DTensor weight); FP8 "
                            "training takes a plain module")
        if enabled and self.fp8_mode is not None:
            raise RuntimeError("to_fp8_training: this FusedSwiGLU is in FP8 inference mode (to_fp8())")
        if enabled and (self.in_features % 16 != 0 or self.hidden % 16 != 0):
            raise ValueError(f"to_fp8_training: in_features and hidden must be multiples of 16, got "
                             f"{self.in_features} and {self.hidden}")
        self.fp8_training = bool(enabled)
        return self

    def refresh_fp8(self) -> None:
        """Quantises ``weight`` again (after it changed) into the FP8 mode's buffers, in place
        where their shapes allow. Checks the new scales (a host synchronisation)."""
        if self.fp8_mode is None:
            raise RuntimeError("refresh_fp8: this FusedSwiGLU is not in FP8 mode (to_fp8())")
        self._quantize_weight(self.fp8_mode)

    def _quantize_weight(self, mode: Fp8Mode) -> None:
        q, scale = _fp8.quantize_weight_e4m3(self.weight, mode.weight_scaling)
        try:
            _fp8_ops.check_weight_scales(scale, mode.weight_scaling, self.hidden, self.in_features)
        except ValueError as e:
            raise ValueError(f"FusedSwiGLU FP8: the quantised weight is unusable: {e}") from None
        # Why outside inference mode: buffers made inside it are inference tensors, which a later
        # refresh outside it could not update in place (captured graphs would keep the old ones).
        with torch.inference_mode(False), torch.no_grad():
            for name, value in zip(_FP8_BUFFERS, (q, scale)):
                old = self._buffers.get(name)
                if value.is_inference():
                    value = value.clone()
                if (old is not None and old.shape == value.shape and old.dtype == value.dtype
                        and old.device == value.device and not old.is_inference()):
                    old.copy_(value)
                else:
                    self.register_buffer(name, value, persistent=False)
        self._fp8_seen = self._fp8_weight_key()

    def _fp8_weight_key(self) -> tuple:
        """What tells an eager forward that the weight changed since it was quantised (the bias is
        read as it is at each call)."""
        w = self.weight
        # Why not for inference tensors: they keep no version (and cannot change outside inference mode).
        return w.data_ptr(), None if w.is_inference() else w._version

    def _forward_fp8(self, x: torch.Tensor):
        mode = self.fp8_mode
        if _is_dtensor(self.weight) or _is_dtensor(x):
            raise TypeError("FusedSwiGLU in FP8 mode takes plain tensors (it is not tensor-parallel)")
        _fp8.check_inference("FusedSwiGLU in FP8 mode", x, self.weight, self.bias)
        if not _is_compiling() and self._fp8_seen != self._fp8_weight_key():
            if x.is_cuda and torch.cuda.is_current_stream_capturing():
                raise RuntimeError("FusedSwiGLU in FP8 mode: the weight changed since it was quantised, and a "
                                   "refresh (which checks the scales on the host) cannot run inside a CUDA "
                                   "graph capture: call refresh_fp8() before capturing")
            self.refresh_fp8()
        return _fp8.fused_swiglu_fp8(x, self.weight_e4m3, self.weight_e4m3_scale, self.bias,
                                     weight_scaling=mode.weight_scaling, out_dtype=mode.out_dtype)

    def _apply(self, fn, *args, **kwargs):
        if self.fp8_mode is None:
            return super()._apply(fn, *args, **kwargs)
        # Why: nn.Module.to(dtype) and .half() convert every floating buffer, e4m3 ones included;
        # the quantised weight follows the module's device but keeps its dtypes.
        held = {name: self._buffers.pop(name) for name in _FP8_BUFFERS}
        try:
            return super()._apply(fn, *args, **kwargs)
        finally:
            for name, t in held.items():
                self._buffers[name] = t.to(self.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8_mode is not None:
            return self._forward_fp8(x)
        if self.fp8_training:
            if _is_dtensor(x):
                raise TypeError("FusedSwiGLU in FP8 training mode takes plain tensors (it is not tensor-parallel)")
            return _fp8.fused_swiglu_fp8_training(x, self.weight, self.bias)
        if _is_dtensor(self.weight):
            from .parallel import parallel_forward

            return parallel_forward(self, x)
        if _is_dtensor(x):
            raise TypeError("x is a DTensor but this FusedSwiGLU is not tensor-parallel (its weight is a "
                            "plain tensor); shard it with swiglu.parallel.SwiGLUColwiseParallel, or pass "
                            "x.to_local()")
        return fused_swiglu(x, self.weight, self.bias, policy=self.policy)

    def extra_repr(self) -> str:
        fp8 = "" if self.fp8_mode is None else (
            f", fp8(weight_scaling={self.fp8_mode.weight_scaling!r}, output={self.fp8_mode.output!r})")
        if self.fp8_training:
            fp8 = ", fp8_training=True"
        return (f"in_features={self.in_features}, hidden={self.hidden}, "
                f"bias={self.bias is not None}, policy={self.policy!r}{fp8}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Why: nn.Module.load_state_dict hands every module a copy of the caller's dict, so the
        # renaming below does not change what the caller passed.
        _stack_gate_up(state_dict, prefix)
        for name in ("weight", "bias"):
            key, param = prefix + name, getattr(self, name)
            if key in state_dict and param is not None:
                state_dict[key] = self._as_parameter_layout(name, state_dict[key], param)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.fp8_mode is not None:
            self.refresh_fp8()

    def _as_parameter_layout(self, name, value, param):
        """A loaded weight or bias in the shape and sharding of `param`. Parameters are the stacked
        (2*hidden, ...) tensor, or (2, hidden, ...) sharded along hidden on a tensor-parallel
        module (swiglu.parallel); a checkpoint may hold either, full or as a DTensor. Anything else
        is left for nn.Module's own shape check to report."""
        tail = (self.in_features,) if name == "weight" else ()
        if not isinstance(value, torch.Tensor) or tuple(value.shape) not in (
                (2 * self.hidden, *tail), (2, self.hidden, *tail)):
            return value
        if _is_dtensor(value):
            if _is_dtensor(param) and value.shape == param.shape:
                return value
            value = value.full_tensor()
        if _is_dtensor(param):
            from torch.distributed.tensor import distribute_tensor

            return distribute_tensor(value.reshape(param.shape), param.device_mesh, param.placements)
        return value.reshape(param.shape)
