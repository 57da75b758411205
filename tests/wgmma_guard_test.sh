#!/usr/bin/env bash
# scripts/wgmma_guard.sh on stand-in compile commands: a clean one passes with its output, a failing
# one keeps its exit status, and one whose ptxas output reports C7520 fails with the guard's error.
guard="$(dirname "$0")/../scripts/wgmma_guard.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$(bash "$guard" sh -c 'echo "ptxas info    : Used 168 registers" >&2' 2>&1) || fail "a clean compile failed"
[[ $out == *"Used 168 registers"* ]] || fail "the compile's output was lost: $out"
bash "$guard" sh -c 'exit 3' 2>/dev/null
[ $? -eq 3 ] || fail "a failing compile's status was not kept"
msg='ptxas info    : (C7520) Potential Performance Loss: wgmma.mma_async instructions are serialized'
out=$(bash "$guard" sh -c "echo '$msg' >&2" 2>&1)
[ $? -eq 1 ] || fail "a compile reporting C7520 passed"
[[ $out == *"$msg"* && $out == *"error: ptxas serialised wgmma"* ]] || fail "the report or the error is missing: $out"
echo "wgmma guard: ok"
