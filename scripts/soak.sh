#!/usr/bin/env bash
# The soak run: tests/test_soak_gpu for SWIGLU_SOAK_SECONDS (default 660): every variant, forward
# and backward, in turn, each variant's every tenth run checked against the reference and against
# its first checked output (drift), device and host memory compared from the end of the warm-up to the
# end. The log records the GPU, the start time and the test's progress lines.
#   scripts/soak.sh LOGFILE
# Environment: BUILD_DIR (default build), SWIGLU_SOAK_SECONDS, SWIGLU_SOAK_REPORT_SECONDS (60).
# Exit status: the test's (0 pass, 1 fail, 77 no GPU).
set -uo pipefail
LOG=${1:?usage: scripts/soak.sh LOGFILE}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
export SWIGLU_SOAK_SECONDS=${SWIGLU_SOAK_SECONDS:-660}
exe="$BUILD_DIR/tests/test_soak_gpu"
[ -x "$exe" ] || { echo "missing $exe: build first (scripts/test.sh or cmake --build)" >&2; exit 1; }
{
  echo "== soak: $SWIGLU_SOAK_SECONDS s, started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
} >"$LOG"
"$exe" >>"$LOG" 2>&1
rc=$?
echo "== exit $rc, ended $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG"
exit $rc
