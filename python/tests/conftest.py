"""pytest setup for the swiglu package's tests: import the package from this source tree.

test_host*.py run anywhere (CPU only); test_gpu.py needs a CUDA device and libswiglu_c, and skips
without a device. See TESTING.md, "The PyTorch package".
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
