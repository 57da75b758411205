#!/usr/bin/env bash
# A/B timing of two source trees on one GPU: builds A (another checkout, e.g. from `git archive`)
# and B (this tree) alike, then runs the same swiglubench command from each in turn, A B A B ...,
# each writing its tables under OUTDIR/<round>_<A|B>/. Speedups over cuBLAS are measured inside
# each process; comparing them across rounds shows whether B moved the speed.
#   scripts/ab.sh A_SRC OUTDIR ROUNDS -- swiglubench-arguments...
#   scripts/ab.sh .ab/old out 2 -- forward --shapes configs/llama.yaml
# Environment: CUDA_ARCHS (default 90a-real), JOBS (split between the two builds).
set -euo pipefail
A_SRC=$(cd "${1:?usage: scripts/ab.sh A_SRC OUTDIR ROUNDS -- args}" && pwd)
OUTDIR=${2:?usage}
ROUNDS=${3:?usage}
shift 3
[ "${1:-}" = "--" ] && shift
B_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
export CUDA_ARCHS=${CUDA_ARCHS:-90a-real}
JOBS=${JOBS:-$(nproc)}
# Both builds at once, half the cores each: only swiglubench, with the same flags.
build() {
  cmake -S "$1" -B "$1/build-ab" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" \
    -DSWIGLU_BUILD_TESTS=OFF && cmake --build "$1/build-ab" --target swiglubench -j $((JOBS / 2 > 0 ? JOBS / 2 : 1))
}
build "$A_SRC" >"$OUTDIR/build_A.log" 2>&1 & a=$!
build "$B_SRC" >"$OUTDIR/build_B.log" 2>&1 & b=$!
wait $a || { echo "ab: build of A failed (build_A.log)" >&2; exit 3; }
wait $b || { echo "ab: build of B failed (build_B.log)" >&2; exit 3; }
status=0
for ((r = 1; r <= ROUNDS; r++)); do
  for side in A B; do
    src=$A_SRC
    [ "$side" = B ] && src=$B_SRC
    out="$OUTDIR/${r}_$side"
    mkdir -p "$out"
    (cd "$B_SRC" && "$src/build-ab/swiglubench" "$@" --out "$out") >"$out/run.log" 2>&1 || status=$?
    echo "round $r $side: exit $status ($(tail -1 "$out/run.log"))"
  done
done
exit $status
