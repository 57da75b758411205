#!/usr/bin/env bash
# The CUDA compiler launcher (CMakeLists.txt, SWIGLU_WGMMA_GUARD): runs one compile command and
# fails it when ptxas reports that it serialised a kernel's wgmma instructions (C7520, and the same
# report under C7514 and C7518, which name other causes: an accumulator read between a wgmma and
# its wait, a wait ptxas injected in divergent code). Such a
# kernel still computes the right result, so no test catches it, but its tensor cores wait on each
# instruction in turn: a Hopper GEMM then runs at a fraction of its speed.
#   wgmma_guard.sh COMMAND [ARGS...]   (COMMAND may be another launcher, such as ccache)
# Exit status: the command's, or 1 when it succeeded with such a report in its output.
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
"$@" 2>"$log"
rc=$?
cat "$log" >&2
if [ "$rc" -eq 0 ] && grep -q 'wgmma.mma_async instructions are serialized' "$log"; then
  echo "error: ptxas serialised wgmma instructions (above) in a kernel of this file: keep the" \
       "accumulator registers of an in-flight wgmma out of divergent code (docs/kernels-sm90.md," \
       "\"wgmma serialisation\"), or configure with -DSWIGLU_WGMMA_GUARD=OFF to build anyway" >&2
  exit 1
fi
exit "$rc"
