#!/usr/bin/env bash
# `--dtype fp8` end to end, on odd shapes (I a multiple of 16 but not of 128, D of neither, B = 1,
# with and without bias). The fused forward alone first: on compute capability 9.0 every row PASS,
# elsewhere every row SKIP with the reason. Then fused against the cuBLASLt FP8 baselines, checked
# and timed: exit 0 and no ERROR row (a shape cuBLASLt turns down is SKIP with its reason). Then
# `backward --dtype fp8` exits 0 with its rows SKIP. Exits 77 (skipped) where there is no device.
#   tests/fp8_smoke_test.sh SWIGLUBENCH OUTDIR
set -u
bench=$1 out=$2
"$bench" info >/dev/null 2>&1 || { echo "SKIPPED: no CUDA device (swiglubench info failed)"; exit 77; }
rm -rf "$out" && mkdir -p "$out"
shapes=(--batch 1,200 --in 272,1024 --hidden 1001 --dtype fp8 --bias false,true --json --out "$out")
fail() { echo "FAIL: $*"; exit 1; }

"$bench" check --variants fused "${shapes[@]}" || fail "check exited $?"
rows=$(grep -c '"variant": "fused"' "$out/check_inline.json")
[ "$rows" -eq 8 ] || fail "check wrote $rows fused rows, not 8"
if grep -q 'needs compute capability 9.0' "$out/check_inline.json"; then
  [ "$(grep -c '"status": "SKIP"' "$out/check_inline.json")" -eq 8 ] || fail "not every row SKIP off Hopper"
  echo "not a compute capability 9.0 device: every fp8 row SKIP with the reason"
  exit 0
fi
[ "$(grep -c '"status": "PASS"' "$out/check_inline.json")" -eq 8 ] || fail "a fused fp8 row did not PASS"

"$bench" forward "${shapes[@]}" --min-samples 5 --min-time 0 --warmup 2 || fail "forward exited $?"
! grep -q '"status": "ERROR"' "$out/forward_inline.json" || fail "an ERROR row in forward"
grep -q '"variant": "cublas2"' "$out/forward_inline.json" || fail "no cublas2 rows"

"$bench" backward --batch 4 --in 256 --hidden 128 --dtype fp8 --json --out "$out" || fail "backward exited $?"
! grep -q '"status": "PASS"' "$out/backward_inline.json" || fail "an fp8 backward row ran"
echo "ok"
