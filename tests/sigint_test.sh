#!/usr/bin/env bash
# An interrupted sweep keeps every finished row: start `swiglubench forward` on a config that runs
# for about a minute, send SIGINT once a few rows are in the CSV, then check the exit code (130),
# that the CSV and the JSON hold the same finished rows, every one complete, and that the JSON is
# valid and marked incomplete. Exits 77 (skipped) where there is no CUDA device.
#   tests/sigint_test.sh SWIGLUBENCH CONFIG OUTDIR
set -u
bench=$1 cfg=$2 out=$3
"$bench" info >/dev/null 2>&1 || { echo "SKIPPED: no CUDA device (swiglubench info failed)"; exit 77; }
name=$(sed -n 's/^name: *//p' "$cfg" | head -1)
csv="$out/forward_$name.csv" json="$out/forward_$name.json"
rm -rf "$out" && mkdir -p "$out"
"$bench" forward --shapes "$cfg" --out "$out" >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  [ -f "$csv" ] && [ "$(wc -l <"$csv")" -ge 7 ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
fail() { echo "FAIL: $*"; cat "$out/log"; exit 1; }
[ "$rc" -eq 130 ] || fail "exit code $rc, expected 130"
rows=$(($(wc -l <"$csv") - 1))
[ "$rows" -ge 6 ] || fail "only $rows rows in the CSV"
grep -q "interrupted: $rows finished rows kept" "$out/log" || fail "no 'interrupted: $rows finished rows kept' line"
python3 - "$json" "$rows" <<'PY' || fail "JSON check"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["complete"] is False, "JSON says complete"
assert len(d["rows"]) == int(sys.argv[2]), f'{len(d["rows"])} JSON rows, {sys.argv[2]} CSV rows'
assert all(r["status"] in ("PASS", "FAIL", "SKIP", "ERROR") for r in d["rows"])
PY
echo "PASS: interrupted after $rows rows; CSV and JSON agree"
