"""ctypes bindings of libswiglu_c, the library's C ABI (include/swiglu/swiglu_c.h).

The shared library is loaded on first use, not at import, so that the CPU fallback works on a
machine that has no GPU and no library. Where it is looked for, in this order:

1. ``$SWIGLU_LIBRARY``: an explicit path to the file. When set, it is the only place tried.
2. ``libswiglu_c.so`` next to this package (a copy installed with it).
3. ``build/libswiglu_c.so`` of the source tree this package sits in, when it sits in one
   (``python/swiglu/`` of a swiglu checkout, after ``cmake --build build --target swiglu_c``).
4. ``libswiglu_c.so`` through the system loader (``LD_LIBRARY_PATH``, the ld.so cache).

A library that loads but lacks the ``swiglu_*`` functions, or reports another
``swiglu_abi_version()``, is rejected like a missing one, and the error lists every attempt.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import threading

ABI_VERSION = 4  # SWIGLU_C_ABI_VERSION this package is written against
LIBRARY_FILE = "libswiglu_c.so"
ENV_VAR = "SWIGLU_LIBRARY"

# The header's enums.
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2
LAYOUT_LINEAR = 0
MATH_EXACT, MATH_TF32, MATH_TF32X3 = 0, 1, 2
POLICY_SAVE, POLICY_RECOMPUTE = 0, 1
DH_WORKSPACE, DH_TENSORS = 0, 1
FP8_SCALE_TENSOR, FP8_SCALE_BLOCKS, FP8_SCALE_CHANNEL = 0, 1, 2
FP8_BLOCKS_1X128, FP8_BLOCKS_128X128 = 0, 1

_STATUS_NAMES = {
    0: "SWIGLU_OK",
    1: "SWIGLU_INVALID_ARGUMENT",
    2: "SWIGLU_UNSUPPORTED",
    3: "SWIGLU_CUDA_ERROR",
    4: "SWIGLU_CUBLAS_ERROR",
    5: "SWIGLU_INTERNAL",
}

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


class LibraryError(OSError):
    """libswiglu_c could not be loaded, or is not the version this package needs."""


class SwigluError(RuntimeError):
    """A call into libswiglu_c failed. ``status`` is the swiglu_status name, ``message`` the
    library's swiglu_last_error()."""

    def __init__(self, call: str, status: int, message: str):
        self.status = _STATUS_NAMES.get(status, f"status {status}")
        self.message = message
        super().__init__(f"{call}: {self.status}: {message}")


class Problem(ctypes.Structure):
    """swiglu_problem."""

    _fields_ = [
        ("batch", ctypes.c_int64),
        ("in_features", ctypes.c_int64),
        ("hidden", ctypes.c_int64),
        ("ldx", ctypes.c_int64),
        ("dtype", ctypes.c_int32),
        ("layout", ctypes.c_int32),
        ("bias", ctypes.c_int32),
        ("math", ctypes.c_int32),
    ]


class Fp8Problem(ctypes.Structure):
    """swiglu_fp8_problem (ABI version 3)."""

    _fields_ = [
        ("batch", ctypes.c_int64),
        ("in_features", ctypes.c_int64),
        ("hidden", ctypes.c_int64),
        ("ldx", ctypes.c_int64),  # X's row stride in bytes; 0 means in_features
        ("x_scaling", ctypes.c_int32),
        ("w_scaling", ctypes.c_int32),
        ("out_dtype", ctypes.c_int32),
        ("bias", ctypes.c_int32),
        ("z_e4m3", ctypes.c_int32),
    ]


def candidates() -> list[tuple[str, str]]:
    """The places tried, in order, as (path or loader name, what it is)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return [(explicit, f"${ENV_VAR}")]
    places = [(str(_PACKAGE_DIR / LIBRARY_FILE), "next to the swiglu package")]
    tree = _PACKAGE_DIR.parent.parent
    if (tree / "CMakeLists.txt").is_file() and (tree / "include" / "swiglu").is_dir():
        places.append((str(tree / "build" / LIBRARY_FILE), "this source tree's build directory"))
    places.append((LIBRARY_FILE, "the system loader: LD_LIBRARY_PATH, ld.so cache"))
    return places


class Library:
    """One loaded libswiglu_c with its function signatures set. Every method raises SwigluError
    on a failed call; pointers are integers (0 for NULL), the stream a cudaStream_t as an int."""

    def __init__(self, cdll: ctypes.CDLL, path: str):
        self.path = path
        p_problem, p_fp8 = ctypes.POINTER(Problem), ctypes.POINTER(Fp8Problem)
        vp, i32, i64, size_t = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_size_t
        # Why in two groups: the first names the library (one missing: not libswiglu_c), and the
        # version is read before the second (an older library lacks the FP8 functions and is
        # reported by its version).
        identity = {
            "swiglu_abi_version": (i32, []),
            "swiglu_last_error": (ctypes.c_char_p, []),
            "swiglu_forward": (ctypes.c_int, [p_problem, vp, vp, vp, vp, vp, vp]),
            "swiglu_backward_workspace_bytes3": (size_t, [p_problem, i32, i32, i32, i32, size_t]),
            "swiglu_backward3": (
                ctypes.c_int,
                [p_problem, i32, i32, i32, i32, size_t, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, size_t, vp],
            ),
        }
        fp8 = {
            "swiglu_forward_fp8": (ctypes.c_int, [p_fp8, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp]),
            "swiglu_quantize_e4m3": (ctypes.c_int, [i32, vp, i64, i64, i64, i32, vp, i64, vp, vp]),
            "swiglu_check_fp8_scales": (ctypes.c_int, [p_fp8, vp, vp, vp]),
            "swiglu_quantize_e4m3_transposed": (ctypes.c_int, [i32, vp, i64, i64, i64, i32, vp, i64, vp, vp, i64,
                                                               vp, vp]),
            "swiglu_backward_fp8_workspace_bytes": (size_t, [p_fp8]),
            "swiglu_backward_fp8": (ctypes.c_int, [p_fp8, vp, vp, vp, vp, vp, i64, vp, vp, i32, vp, i32, i32, vp,
                                                   i32, vp, size_t, vp]),
        }
        self._c = cdll
        self._bind(identity, lambda name: f"{path} does not export {name}(): it is not libswiglu_c")
        version = cdll.swiglu_abi_version()
        if version != ABI_VERSION:
            raise LibraryError(
                f"{path} has C ABI version {version}; this swiglu package needs version "
                f"{ABI_VERSION}: rebuild the library (CMake target swiglu_c) from the same "
                f"swiglu source as this package")
        self._bind(fp8, lambda name: f"{path} reports C ABI version {version} but does not export "
                                     f"{name}(): rebuild the library (CMake target swiglu_c)")

    def _bind(self, signatures: dict, missing) -> None:
        """Sets each function's restype and argtypes; LibraryError(missing(name)) for one absent."""
        for name, (restype, argtypes) in signatures.items():
            try:
                fn = getattr(self._c, name)
            except AttributeError:
                raise LibraryError(missing(name)) from None
            fn.restype = restype
            fn.argtypes = argtypes

    def last_error(self) -> str:
        return self._c.swiglu_last_error().decode("utf-8", "replace")

    def _check(self, call: str, status: int) -> None:
        if status != 0:
            raise SwigluError(call, status, self.last_error())

    def abi_version(self) -> int:
        return self._c.swiglu_abi_version()

    def forward(self, p: Problem, x: int, w: int, bias: int, z: int, saved: int, stream: int) -> None:
        self._check("swiglu_forward", self._c.swiglu_forward(ctypes.byref(p), x, w, bias, z, saved, stream))

    def backward_workspace_bytes(self, p: Problem, policy: int, dx: bool, dw: bool,
                                 dh_storage: int = DH_WORKSPACE, max_workspace_bytes: int = 0) -> int:
        """swiglu_backward_workspace_bytes3: the workspace of the backward, in row chunks when
        max_workspace_bytes (0: no bound) is below what the whole batch needs."""
        n = self._c.swiglu_backward_workspace_bytes3(ctypes.byref(p), policy, int(dx), int(dw), dh_storage,
                                                     max_workspace_bytes)
        # Why: 0 is both a valid size and the error value; the error message tells them apart.
        if n == 0 and self.last_error():
            raise SwigluError("swiglu_backward_workspace_bytes3", 1, self.last_error())
        return n

    def backward(self, p: Problem, policy: int, dx_wanted: bool, dw_wanted: bool, x: int, w: int,
                 bias: int, dz: int, saved: int, dx: int, dw: int, dbias: int, workspace: int,
                 workspace_bytes: int, stream: int, dh_storage: int = DH_WORKSPACE, dh: int = 0,
                 max_workspace_bytes: int = 0) -> None:
        """swiglu_backward3; with DH_TENSORS, dH goes to ``dh``, which may be ``saved`` (then
        overwritten); max_workspace_bytes as in backward_workspace_bytes."""
        self._check("swiglu_backward3", self._c.swiglu_backward3(
            ctypes.byref(p), policy, int(dx_wanted), int(dw_wanted), dh_storage, max_workspace_bytes, x, w,
            bias, dz, saved, dx, dw, dbias, dh, workspace, workspace_bytes, stream))

    def forward_fp8(self, p: Fp8Problem, x: int, x_scale: int, w: int, w_scale: int, bias: int, z: int,
                    z_scale: int, z_amax: int, saved: int, stream: int) -> None:
        """swiglu_forward_fp8: Z (and/or H in ``saved``) from e4m3 X and W12 with fp32 scales."""
        self._check("swiglu_forward_fp8", self._c.swiglu_forward_fp8(
            ctypes.byref(p), x, x_scale, w, w_scale, bias, z, z_scale, z_amax, saved, stream))

    def quantize_e4m3(self, in_dtype: int, a: int, lda: int, rows: int, cols: int, blocks: int, q: int,
                      ldq: int, scale: int, stream: int) -> None:
        """swiglu_quantize_e4m3: rows×cols ``a`` (row stride lda elements) to e4m3 ``q`` (row
        stride ldq bytes) with amax/448 fp32 scales in FP8_BLOCKS_* blocks."""
        self._check("swiglu_quantize_e4m3", self._c.swiglu_quantize_e4m3(
            in_dtype, a, lda, rows, cols, blocks, q, ldq, scale, stream))

    def check_fp8_scales(self, p: Fp8Problem, x_scale: int, w_scale: int, stream: int) -> None:
        """swiglu_check_fp8_scales: SwigluError (SWIGLU_INVALID_ARGUMENT) naming the first scale
        forward_fp8 would read that is not finite and > 0. Copies the scales to the host and waits
        for ``stream``."""
        self._check("swiglu_check_fp8_scales", self._c.swiglu_check_fp8_scales(
            ctypes.byref(p), x_scale, w_scale, stream))

    def quantize_e4m3_transposed(self, in_dtype: int, a: int, lda: int, rows: int, cols: int, blocks: int,
                                 q: int, ldq: int, scale: int, qt: int, ldqt: int, scale_t: int,
                                 stream: int) -> None:
        """swiglu_quantize_e4m3_transposed: as quantize_e4m3 (q and scale may both be 0), and Aᵀ
        in e4m3 to ``qt`` (cols×rows, row stride ldqt bytes) with its scales, blocks along A's rows."""
        self._check("swiglu_quantize_e4m3_transposed", self._c.swiglu_quantize_e4m3_transposed(
            in_dtype, a, lda, rows, cols, blocks, q, ldq, scale, qt, ldqt, scale_t, stream))

    def backward_fp8_workspace_bytes(self, p: Fp8Problem) -> int:
        n = self._c.swiglu_backward_fp8_workspace_bytes(ctypes.byref(p))
        if n == 0 and self.last_error():  # Why: 0 is also B = 0's size
            raise SwigluError("swiglu_backward_fp8_workspace_bytes", 1, self.last_error())
        return n

    def backward_fp8(self, p: Fp8Problem, dz: int, saved: int, wt: int, wt_scale: int, xt: int, ldxt: int,
                     xt_scale: int, dx: int, dx_dtype: int, dw: int, dw_dtype: int, accumulate_dw: bool,
                     dbias: int, dbias_dtype: int, workspace: int, workspace_bytes: int, stream: int) -> None:
        """swiglu_backward_fp8: dX, dW12 and dbias (each when its pointer is not 0) from dZ, the
        forward's H and the transposed e4m3 copies of W12 and X."""
        self._check("swiglu_backward_fp8", self._c.swiglu_backward_fp8(
            ctypes.byref(p), dz, saved, wt, wt_scale, xt, ldxt, xt_scale, dx, dx_dtype, dw, dw_dtype,
            int(accumulate_dw), dbias, dbias_dtype, workspace, workspace_bytes, stream))


_lock = threading.Lock()
_loaded: Library | None = None


def _open(path: str, what: str) -> Library:
    if os.sep in path and not os.path.isfile(path):
        raise LibraryError(f"{path} ({what}): no such file")
    try:
        cdll = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryError(f"{path} ({what}): {e}") from None
    return Library(cdll, path)


def library() -> Library:
    """The loaded library, loading it on the first call. Raises LibraryError naming every place
    tried and how to fix it. A failure is not remembered: a later call tries again."""
    global _loaded
    if _loaded is not None:  # Why outside the lock: every kernel call asks, and it is set once
        return _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        failures = []
        for path, what in candidates():
            try:
                _loaded = _open(path, what)
                return _loaded
            except LibraryError as e:
                failures.append(str(e))
        if os.environ.get(ENV_VAR):
            fix = (f"${ENV_VAR} must be the path of libswiglu_c.so (CMake target swiglu_c); "
                   f"unset it to search the default places")
        else:
            fix = (f"build it in the swiglu source tree with `cmake -S . -B build && cmake --build "
                   f"build --target swiglu_c`, then set {ENV_VAR}=/path/to/build/libswiglu_c.so "
                   f"or copy the file next to the swiglu package ({_PACKAGE_DIR})")
        raise LibraryError("cannot load libswiglu_c, the fused kernels' C library. Tried:\n  "
                           + "\n  ".join(failures) + f"\nTo fix: {fix}.")
