"""swiglu for PyTorch: the fused SwiGLU kernels as a drop-in for two nn.Linear layers and a gate.

    fc1 = swiglu.FusedSwiGLU(in_features, hidden, bias=False)   # or FusedSwiGLU.from_linears(a, b)
    z = fc1(x)                                                   # SiLU(x·Waᵀ) ⊙ x·Wbᵀ, one launch

FP8 inference on Hopper: fc1.to_fp8() quantises the weight to e4m3 once, and each call x in 1×128
blocks (swiglu.fp8: fused_swiglu_fp8, quantize_weight_e4m3, ScaledFp8). FP8 training:
fc1.to_fp8_training() (fused_swiglu_fp8_training: the blockwise recipe, forward and backward).

Tensor parallelism and FSDP2: swiglu.parallel (torch 2.8 and newer; imported on its own).

Pure Python: the kernels come from libswiglu_c (the CMake target swiglu_c), loaded with ctypes on
the first CUDA call; see swiglu._lib for where it is looked for. Works with torch 2.1 and newer.
"""

from ._lib import LibraryError, SwigluError
from .fp8 import ScaledFp8, fused_swiglu_fp8, fused_swiglu_fp8_training, quantize_weight_e4m3
from .functional import FallbackWarning, fused_swiglu, reference_swiglu
from .module import FusedSwiGLU


def load_library() -> str:
    """Loads libswiglu_c now rather than on the first CUDA call, and returns its path. Raises
    LibraryError, naming every place tried, when it cannot be loaded."""
    from ._lib import library

    return library().path


__all__ = ["FusedSwiGLU", "fused_swiglu", "reference_swiglu", "load_library", "FallbackWarning",
           "LibraryError", "SwigluError", "fused_swiglu_fp8", "fused_swiglu_fp8_training", "quantize_weight_e4m3",
           "ScaledFp8"]
