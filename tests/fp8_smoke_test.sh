#!/usr/bin/env bash
# `--dtype fp8` end to end, on odd shapes (I a multiple of 16 but not of 128, D of neither, B = 1,
# with and without bias). The fused forward alone first: on compute capability 9.0 every row PASS,
# elsewhere every row SKIP with the reason. Then fused against the cuBLASLt FP8 baselines, checked
# and timed: exit 0 and no ERROR row (a shape cuBLASLt turns down is SKIP with its reason). Then
# `backward`, `step` and `memory --dtype fp8` against both baselines (D a multiple of 16 but not of
# 128, and an aligned shape): exit 0, no ERROR or FAIL row, every fused-save row PASS, the
# recompute rows SKIP naming the save policy, and the baselines' rows PASS or SKIP with a reason;
# a D that is not a multiple of 16 SKIP with the reason. Off compute capability 9.0 the backward's
# rows are SKIP with the reason too. Exits 77 (skipped) where there is no device.
#   tests/fp8_smoke_test.sh SWIGLUBENCH OUTDIR
set -u
bench=$1 out=$2
"$bench" info >/dev/null 2>&1 || { echo "SKIPPED: no CUDA device (swiglubench info failed)"; exit 77; }
rm -rf "$out" && mkdir -p "$out"
shapes=(--batch 1,200 --in 272,1024 --hidden 1001 --dtype fp8 --bias false,true --json --out "$out")
timing=(--min-samples 5 --min-time 0 --warmup 2)
fail() { echo "FAIL: $*"; exit 1; }
# "variant status reason" for every row of a result file.
rows() { awk -F'": ' '/"variant":/ { v = $2 } /"status":/ { s = $2 } /"reason":/ { print v, s, $2 }' "$1" | tr -d '",'; }

"$bench" check --variants fused "${shapes[@]}" || fail "check exited $?"
n=$(grep -c '"variant": "fused"' "$out/check_inline.json")
[ "$n" -eq 8 ] || fail "check wrote $n fused rows, not 8"
if grep -q 'needs compute capability 9.0' "$out/check_inline.json"; then
  [ "$(grep -c '"status": "SKIP"' "$out/check_inline.json")" -eq 8 ] || fail "not every row SKIP off Hopper"
  "$bench" backward --batch 64 --in 256 --hidden 128 --dtype fp8 --json --out "$out" || fail "backward exited $?"
  rows "$out/backward_inline.json" | grep -v ' SKIP the FP8 backward needs compute capability 9.0' \
    | grep -v ' SKIP the FP8 backward has the save policy only' | grep . && fail "an fp8 backward row ran off Hopper"
  echo "not a compute capability 9.0 device: every fp8 row SKIP with the reason"
  exit 0
fi
[ "$(grep -c '"status": "PASS"' "$out/check_inline.json")" -eq 8 ] || fail "a fused fp8 row did not PASS"

"$bench" forward "${shapes[@]}" "${timing[@]}" || fail "forward exited $?"
! grep -q '"status": "ERROR"' "$out/forward_inline.json" || fail "an ERROR row in forward"
grep -q '"variant": "cublas2"' "$out/forward_inline.json" || fail "no cublas2 rows"

# The gradient commands: B = 1 and 200 (not a multiple of 16: the baselines' dW pads K), I = 272,
# D = 208 (cublas1's dX refuses it), with and without bias; and 256 x 1024 x 384, where both
# baselines must run.
for op in backward step memory; do
  extra=("${timing[@]}")
  [ "$op" = memory ] && extra=()
  for shape in "--batch 1,200 --in 272 --hidden 208 --bias false,true" "--batch 256 --in 1024 --hidden 384 --bias true"; do
    # shellcheck disable=SC2086
    "$bench" $op $shape --dtype fp8 --variants fused,cublas2,cublas1 --json --out "$out" "${extra[@]}" \
      || fail "$op ($shape) exited $?"
    rows "$out/${op}_inline.json" > "$out/$op.rows"
    ! grep -q -e ' ERROR ' -e ' FAIL ' "$out/$op.rows" \
      || fail "$op ($shape): an ERROR or FAIL row: $(grep -e ' ERROR ' -e ' FAIL ' "$out/$op.rows")"
    ! grep '^fused-save ' "$out/$op.rows" | grep -v '^fused-save PASS' | grep -q . \
      || fail "$op ($shape): a fused-save row did not PASS"
    grep -q '^fused-save PASS' "$out/$op.rows" || fail "$op ($shape): no fused-save row"
    ! grep '^fused-recompute' "$out/$op.rows" | grep -v 'SKIP the FP8 backward has the save policy only' | grep -q . \
      || fail "$op ($shape): a recompute row without the save policy's reason"
    ! grep -e '^cublas' "$out/$op.rows" | grep -e ' SKIP $' | grep -q . \
      || fail "$op ($shape): a baseline SKIP without a reason"
  done
  grep -q '^cublas1 PASS' "$out/$op.rows" || fail "$op: cublas1 did not run at 256 x 1024 x 384"
  grep -q '^cublas2 PASS' "$out/$op.rows" || fail "$op: cublas2 did not run at 256 x 1024 x 384"
done
"$bench" backward --batch 16 --in 256 --hidden 1001 --dtype fp8 --policy save --json --out "$out" "${timing[@]}" \
  || fail "backward (D = 1001) exited $?"
rows "$out/backward_inline.json" | grep -v ' SKIP the FP8 backward needs D to be a multiple of 16' | grep . \
  && fail "a D = 1001 backward row ran"
echo "ok"
