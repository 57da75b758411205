#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test. GPU tests (label `gpu`) run where there
# is a CUDA device and are reported as skipped where there is none. Extra arguments go to ctest,
# e.g. scripts/test.sh -L gpu. Ends with a list of the skipped tests and why.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
install_deps
configure_and_build
run_ctest -j "$JOBS" "$@"
