#!/usr/bin/env bash
# Installs the dependencies, builds, and runs swiglubench. With no arguments it runs the main job,
# the parity-checked MNIST-shape forward benchmark; otherwise the arguments go to swiglubench.
#   scripts/bench.sh
#   scripts/bench.sh forward --shapes configs/seed.yaml --dtype bf16
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_deps
configure_and_build
cd "$ROOT"
if (($#)); then
  exec "$BUILD_DIR/swiglubench" "$@"
fi
exec "$BUILD_DIR/swiglubench" forward --shapes configs/mnist.yaml
