"""pytest setup for the swiglu package's tests: import the package from this source tree.

test_host*.py run anywhere (CPU only); test_gpu.py needs a CUDA device and libswiglu_c, and skips
without a device. See TESTING.md, "The PyTorch package".
"""

import importlib.util
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="module")
def bench_torch():
    """scripts/bench_torch.py as a module (its helpers; main() is not run)."""
    pytest.importorskip("yaml")
    path = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_torch.py"
    spec = importlib.util.spec_from_file_location("bench_torch", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_torch"] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench_torch"]
    return module


@pytest.fixture(scope="module")
def real_library():
    """libswiglu_c: $SWIGLU_LIBRARY must load when set (CTest sets it); otherwise the default
    search is tried and the tests skip when it finds nothing."""
    import swiglu
    from swiglu import _lib

    try:
        return _lib.library()
    except swiglu.LibraryError as e:
        if os.environ.get("SWIGLU_LIBRARY"):
            raise
        pytest.skip(f"libswiglu_c not built: {e}")
