#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test. GPU tests (label `gpu`) run where there
# is a CUDA device and are reported as skipped where there is none. Extra arguments go to ctest,
# e.g. scripts/test.sh -L gpu.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_deps
configure_and_build
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" "$@"
