#!/usr/bin/env bash
# On a GPU machine: build, run the whole test suite (GPU tests included), then the benchmarks on
# the given configs (default: the MNIST and seed shapes), writing everything to OUTDIR.
#   scripts/gpu-run.sh OUTDIR [config ...]
# Environment: CUDA_ARCHS (default 90a-real on Hopper, else native), BUILD_DIR (default build-gpu),
# OPS (swiglubench commands to run on each config, default "forward"; e.g. "backward step memory"),
# BENCH_ARGS (extra swiglubench arguments, e.g. "--tiles all"), SKIP_TESTS=1 (benchmarks only),
# SWIGLU_PYTHON (the Python for the python/ tests; default python3 when it has torch and pytest).
# Exit status: non-zero when the build, a test or a parity check failed.
set -uo pipefail
OUTDIR=${1:?usage: scripts/gpu-run.sh OUTDIR [config ...]}
shift
CONFIGS=("$@")
((${#CONFIGS[@]})) || CONFIGS=(configs/mnist.yaml configs/seed.yaml)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
export BUILD_DIR=${BUILD_DIR:-$ROOT/build-gpu}
if [ -z "${CUDA_ARCHS:-}" ]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
  if [ "$cc" = "90" ]; then export CUDA_ARCHS="90a-real"; else export CUDA_ARCHS="native"; fi
fi
if [ -z "${SWIGLU_PYTHON:-}" ] && python3 -c 'import torch, pytest' >/dev/null 2>&1; then
  SWIGLU_PYTHON=$(command -v python3)
fi
[ -n "${SWIGLU_PYTHON:-}" ] && export SWIGLU_CMAKE_ARGS="${SWIGLU_CMAKE_ARGS:-} -DSWIGLU_PYTHON=$SWIGLU_PYTHON"
status=0
source "$ROOT/scripts/common.sh"
set +e
{
  nvidia-smi
  install_deps
  configure_and_build
} >"$OUTDIR/build.log" 2>&1 || { echo "build failed"; tail -50 "$OUTDIR/build.log"; exit 3; }
echo "build ok ($CUDA_ARCHS)"
BENCH="$BUILD_DIR/swiglubench"
"$BENCH" info | tee "$OUTDIR/info.txt"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  (cd "$BUILD_DIR" && ctest --output-on-failure -j 4) >"$OUTDIR/ctest.log" 2>&1 || status=1
  tail -15 "$OUTDIR/ctest.log"
fi
cd "$ROOT"
for op in ${OPS:-forward}; do
  for cfg in "${CONFIGS[@]}"; do
    log="$OUTDIR/${op}_$(basename "$cfg" .yaml).log"
    # shellcheck disable=SC2086
    "$BENCH" "$op" --shapes "$cfg" --out "$OUTDIR" ${BENCH_ARGS:-} >"$log" 2>&1 || status=$?
    tail -3 "$log"
  done
done
exit $status
