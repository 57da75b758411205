# Sourced by the scripts: installs what the build needs and configures/builds the tree.
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release), CUDA_ARCHS (default: every
# architecture the toolkit supports from 7.0 up, see CMakeLists.txt), JOBS (default nproc),
# SWIGLU_CMAKE_ARGS (extra configure arguments, e.g. -DSWIGLU_SANITIZE=ON).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
BUILD_TYPE=${BUILD_TYPE:-Release}
JOBS=${JOBS:-$(nproc)}

DEB_PACKAGES=(cmake ninja-build g++ pkg-config libcli11-dev libfmt-dev libyaml-cpp-dev
              libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev dataset-fashion-mnist)

install_deps() {
  local missing=()
  if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${DEB_PACKAGES[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
  fi
  if ((${#missing[@]})); then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
      # Images without a package registry often carry the headers anyway; the configure step
      # names whatever is really missing.
      echo "warning: could not install ${missing[*]}; continuing with what is installed" >&2
    fi
  fi
  if ! command -v nvcc >/dev/null 2>&1; then
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
      if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
    done
  fi
  command -v nvcc >/dev/null 2>&1 || {
    echo "error: nvcc not found: install the CUDA Toolkit (12.0 or newer) and put its bin/ on PATH" >&2
    exit 3
  }
}

configure_and_build() {
  # shellcheck disable=SC2206
  local extra=(${SWIGLU_CMAKE_ARGS:-})
  set -- "${extra[@]}" "$@"
  local gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  local archs=()
  [ -n "${CUDA_ARCHS:-}" ] && archs=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${archs[@]}" "$@"
  elif ((${#archs[@]})) || (($#)); then
    cmake "$BUILD_DIR" "${archs[@]}" "$@"
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# Runs ctest in BUILD_DIR with the given arguments, then prints one line per skip reason (the first
# line of a skipped test's output that says why), so that a CPU-only run is not mistaken for a
# GPU-verified one. Returns ctest's status.
run_ctest() {
  local junit="$BUILD_DIR/Testing/junit.xml" status=0
  (cd "$BUILD_DIR" && ctest --output-on-failure --output-junit "$junit" "$@") || status=$?
  [ -f "$junit" ] && awk '
    /<testcase / { match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7); skipped = 0; reason = ""; out = 0 }
    /<skipped/ { skipped = 1 }
    /<system-out>/ { out = 1; sub(/.*<system-out>/, "") }
    out && reason == "" && tolower($0) ~ /skip/ { reason = $0; sub(/^[ \t]+/, "", reason) }
    /<\/system-out>/ { out = 0 }
    /<\/testcase>/ {
      if (skipped) {
        if (reason == "") reason = "(no reason printed)"
        if (!(reason in count)) order[++n] = reason
        count[reason]++; names[reason] = names[reason] " " name; total++
      }
    }
    END {
      if (total == 0) exit
      printf "%d test(s) skipped, so this run did not check what they cover:\n", total
      for (i = 1; i <= n; i++) printf "  %d x %s:%s\n", count[order[i]], order[i], names[order[i]]
    }' "$junit"
  return $status
}
