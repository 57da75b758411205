#!/usr/bin/env bash
# The one command a GPU CI job runs. Builds, runs the GPU tests, then the speedup gate: the cases
# of configs/ci.yaml against the committed baseline of this card (results/<gpu>/baseline.json).
#   scripts/gpu-ci.sh [extra swiglubench gate options, e.g. --baseline FILE]
# Exit status: 0 pass, 1 performance regression, 2 parity failure (tests or gate), 3 mismatch
# (no baseline for this card, another card, driver or cuBLAS major version) or a build/usage error.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_deps
configure_and_build
cd "$BUILD_DIR"
if ! ctest -L gpu --output-on-failure; then
  echo "gpu-ci: GPU tests failed" >&2
  exit 2
fi
cd "$ROOT"
exec "$BUILD_DIR/swiglubench" gate --shapes configs/ci.yaml "$@"
