#!/usr/bin/env bash
# Compares the device code of two builds of the library kernel by kernel: the SASS of every
# function, with its name, its addresses and any mangled symbol in it normalised away, so that a
# change that only renames (template flags, namespaces, files) compares equal.
#
#   scripts/sass_diff.sh [--map SEDFILE] [--keep DIR] OLD NEW
#
# OLD and NEW: a build folder (its libswiglu.a), a static library, an object file, or a folder of
# object files. Bodies are compared per architecture as multisets (each body with the number of
# times it occurs). --map SEDFILE: a sed -E script that rewrites OLD's demangled names into NEW's; the
# kernels are then also paired by name, which catches two kernels that traded bodies. --keep DIR
# keeps the normalised bodies there (DIR/old, DIR/new) for a diff.
# Needs cuobjdump and nvdisasm (PATH, CUDA_HOME/bin, or CUOBJDUMP=... and NVDISASM_PATH=...; PyPI's
# nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm have them) and c++filt. Exit status: 0 identical,
# 1 different, 2 usage or tool error.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

map="" keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --map) map="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "sass_diff: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ $# -eq 2 ]] || usage

cuobjdump="${CUOBJDUMP:-$(command -v cuobjdump || echo "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump")}"
[[ -x "$cuobjdump" ]] || { echo "sass_diff: cuobjdump not found (set CUOBJDUMP)" >&2; exit 2; }
command -v c++filt >/dev/null || { echo "sass_diff: c++filt not found" >&2; exit 2; }

work="${keep:-$(mktemp -d)}"
[[ -n "$keep" ]] || trap 'rm -rf "$work"' EXIT

# The files to disassemble for one side.
inputs() {
  if [[ -d "$1" && -f "$1/libswiglu.a" ]]; then echo "$1/libswiglu.a"
  elif [[ -d "$1" ]]; then find "$1" -name '*.o' | sort
  elif [[ -f "$1" ]]; then echo "$1"
  else echo "sass_diff: $1 is neither a build folder, a library nor an object" >&2; return 2
  fi
}

# Splits the SASS of one side into one normalised body per function: DIR/N.sass, listed in
# DIR/index as "N<TAB>arch<TAB>mangled name". Normalised: the address column dropped, every
# mangled symbol replaced by SYM, blank lines and the function header dropped.
split_side() {
  local side="$1" dir="$work/$2"
  mkdir -p "$dir"
  local files
  files="$(inputs "$side")" || exit 2
  # shellcheck disable=SC2086
  "$cuobjdump" -sass $files 2>"$dir/cuobjdump.err" | awk -v dir="$dir" '
    function flush() { if (out != "") close(out); out = "" }
    /^[ \t]*arch = sm_/ { arch = $3; next }
    /^[ \t]*\.target[ \t]/ { arch = $2; next }
    /Function : / {
      flush()
      n++
      name = $0; sub(/.*Function : /, "", name)
      out = dir "/" n ".sass"
      printf "%d\t%s\t%s\n", n, arch, name > (dir "/index")
      next
    }
    out == "" { next }
    /^[ \t]*\.\.\.\.\.\.\.\.\./ { flush(); next }
    /^[ \t]*$/ { next }
    {
      line = $0
      sub(/^[ \t]*\/\*[0-9a-f]+\*\/[ \t]*/, "", line)
      gsub(/_Z[A-Za-z0-9_$.]+/, "SYM", line)
      gsub(/[ \t]+/, " ", line)
      print line > out
    }
    END { flush() }'
  if [[ ! -s "$dir/index" ]]; then
    echo "sass_diff: no device functions found in $side" >&2
    cat "$dir/cuobjdump.err" >&2
    exit 2
  fi
  # index + hash + demangled name: "arch<TAB>hash<TAB>name"
  while IFS=$'\t' read -r n arch name; do
    printf '%s\t%s\t%s\n' "$arch" "$(sha256sum < "$dir/$n.sass" | cut -c1-16)" "$name"
  done < "$dir/index" > "$dir/hashes.mangled"
  cut -f3 "$dir/hashes.mangled" | c++filt > "$dir/names"
  paste <(cut -f1,2 "$dir/hashes.mangled") "$dir/names" > "$dir/hashes"
}

split_side "$1" old
split_side "$2" new

old_n=$(wc -l < "$work/old/hashes")
new_n=$(wc -l < "$work/new/hashes")
status=0

# Multisets of (arch, body): what one side has more often than the other.
cut -f1,2 "$work/old/hashes" | sort > "$work/old/bodies"
cut -f1,2 "$work/new/hashes" | sort > "$work/new/bodies"
comm -23 "$work/old/bodies" "$work/new/bodies" > "$work/only_old"
comm -13 "$work/old/bodies" "$work/new/bodies" > "$work/only_new"
echo "old: $old_n device functions, new: $new_n"
if [[ -s "$work/only_old" || -s "$work/only_new" ]]; then
  status=1
  echo "DIFFERENT: $(wc -l < "$work/only_old") bodies only in old, $(wc -l < "$work/only_new") only in new"
  for side in old new; do
    [[ -s "$work/only_$side" ]] || continue
    echo "  functions whose body is only in $side:"
    while IFS=$'\t' read -r arch hash; do
      awk -F'\t' -v a="$arch" -v h="$hash" '$1 == a && $2 == h { printf "    %s %s  %s\n", $1, $2, $3 }' \
        "$work/$side/hashes"
    done < <(sort -u "$work/only_$side")
  done
else
  echo "identical: the $old_n per-function SASS bodies match as a multiset per architecture"
fi

# Pairing by name: OLD's demangled names rewritten by the map must name NEW's kernels.
if [[ -n "$map" ]]; then
  sed -E -f "$map" "$work/old/names" > "$work/old/names.mapped"
  paste <(cut -f1,2 "$work/old/hashes") "$work/old/names.mapped" | awk -F'\t' '{print $1 "\t" $3 "\t" $2}' \
    | sort > "$work/old/by_name"
  awk -F'\t' '{print $1 "\t" $3 "\t" $2}' "$work/new/hashes" | sort > "$work/new/by_name"
  if cmp -s "$work/old/by_name" "$work/new/by_name"; then
    echo "identical by name: every kernel's body is the one of the kernel of the same (mapped) name"
  else
    status=1
    echo "DIFFERENT by name (< old mapped, > new):"
    diff <(cut -f1,2,3 "$work/old/by_name") <(cut -f1,2,3 "$work/new/by_name") | grep '^[<>]' | cut -c1-400 || true
  fi
fi
exit $status
