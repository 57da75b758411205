#!/usr/bin/env bash
# compute-sanitizer over the GPU test suite: memcheck (with leak checking), racecheck, synccheck and
# initcheck, one log per tool. test_large_gpu (tens of GB, minutes even unsanitised) is left out,
# and the fuzz test runs SWIGLU_FUZZ_CASES (default here 60) cases instead of 500.
#   scripts/sanitize.sh OUTDIR [tool ...]
# Environment: BUILD_DIR (default build), SANITIZE_TIMEOUT (seconds per tool and test, default 900),
# SANITIZE_TESTS (the test programs, space-separated; default every GPU test program but
# test_large_gpu), GTEST_FILTER (read by GoogleTest itself: a subset of each program's tests).
# Exit status: 0 when every tool finished clean, 1 when one reported errors or did not finish.
set -uo pipefail
OUTDIR=${1:?usage: scripts/sanitize.sh OUTDIR [tool ...]}
shift
TOOLS=("$@")
((${#TOOLS[@]})) || TOOLS=(memcheck racecheck synccheck initcheck)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
read -r -a TESTS <<<"${SANITIZE_TESTS:-test_forward_gpu test_backward_gpu test_baselines_gpu test_numerics_gpu test_fuzz_gpu}"
export SWIGLU_FUZZ_CASES=${SWIGLU_FUZZ_CASES:-60}
command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found" >&2; exit 1; }
mkdir -p "$OUTDIR"
status=0
for tool in "${TOOLS[@]}"; do
  extra=()
  [ "$tool" = memcheck ] && extra=(--leak-check full)
  log="$OUTDIR/sanitize-$tool.log"
  : >"$log"
  for t in "${TESTS[@]}"; do
    exe="$BUILD_DIR/tests/$t"
    [ -x "$exe" ] || { echo "missing $exe" | tee -a "$log"; status=1; continue; }
    echo "== compute-sanitizer --tool $tool $t" >>"$log"
    timeout "${SANITIZE_TIMEOUT:-900}" compute-sanitizer --tool "$tool" "${extra[@]}" \
      --error-exitcode 99 "$exe" >>"$log" 2>&1
    rc=$?
    case $rc in
      0) verdict="clean" ;;
      77) verdict="skipped (no GPU)" ;;
      99) verdict="ERRORS"; status=1 ;;
      124) verdict="did not finish in ${SANITIZE_TIMEOUT:-900} s"; status=1 ;;
      *) verdict="test failed (exit $rc)"; status=1 ;;
    esac
    echo "$tool $t: $verdict" | tee -a "$OUTDIR/sanitize-summary.txt"
    echo "== $t: $verdict" >>"$log"
  done
done
exit $status
