#!/usr/bin/env bash
# scripts/wgmma_guard.sh on stand-in compile commands: a clean one passes with its output, a failing
# one keeps its exit status, and one whose ptxas output reports serialised wgmmas (C7520, C7514 or
# C7518) fails with the guard's error; an injected wait or arrive alone (C7517, C7519) passes.
guard="$(dirname "$0")/../scripts/wgmma_guard.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$(bash "$guard" sh -c 'echo "ptxas info    : Used 168 registers" >&2' 2>&1) || fail "a clean compile failed"
[[ $out == *"Used 168 registers"* ]] || fail "the compile's output was lost: $out"
bash "$guard" sh -c 'exit 3' 2>/dev/null
[ $? -eq 3 ] || fail "a failing compile's status was not kept"
for code in C7520 C7514 C7518; do
  msg="ptxas info    : ($code) Potential Performance Loss: wgmma.mma_async instructions are serialized"
  out=$(bash "$guard" sh -c "echo '$msg' >&2" 2>&1)
  [ $? -eq 1 ] || fail "a compile reporting $code passed"
  [[ $out == *"$msg"* && $out == *"error: ptxas serialised wgmma"* ]] || fail "the report or the error is missing: $out"
done
msg='ptxas info    : (C7517) warpgroup.wait is injected in around line 1 by compiler'
bash "$guard" sh -c "echo '$msg' >&2" 2>/dev/null || fail "a compile reporting only an injected wait (C7517) failed"
echo "wgmma guard: ok"
