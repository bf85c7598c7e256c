#!/usr/bin/env bash
# device-bundle.sh [--build DIR] [--out DIR] [--models N_MB] [--pick M1,M2,...]
#                  [--tests REGEX]: packs what the
# Vulkan tests and the bench need into OUT/bundle.tar.xz, one file that the
# device tool can carry (its machines have no Vulkan headers, glslc, dev
# packages or network, so nothing can be built or installed there; 64 MiB
# travel in all, the working tree included). The archive holds:
#   build    the build tree's CTestTestfile.cmake files, the Vulkan test
#                and bench binaries (stripped), libvkinfer
#   lib          every shared library they need beyond glibc (libvulkan,
#                libmicrohttpd, libcjson, libyaml, libcurl and its own)
#   shared       ../shared/reference and the smallest models of
#                ../shared/models up to N_MB (default 46), a list of the
#                models left out in shared/LEFT_OUT; --pick takes exactly
#                the named models instead (a second carry for those the
#                first left out)
# --tests REGEX keeps only the test binaries whose path matches (the tools
# and the bench always travel); ctest then runs just those (-R).
# On the device, scripts/device-check.sh --bundle OUT puts them where the
# build's absolute paths point. Default OUT: .devbundle (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bdir=build out=.devbundle models_mb=46 pick="" tests_re=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) bdir="$2"; shift ;;
    --out) out="$2"; shift ;;
    --models) models_mb="$2"; shift ;;
    --pick) pick="$2"; shift ;;
    --tests) tests_re="$2"; shift ;;
    *) echo "usage: $0 [--build DIR] [--out DIR] [--models N_MB] [--pick M1,M2,...] [--tests REGEX]" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$bdir/CTestTestfile.cmake" ] || { echo "device-bundle: $bdir is not a configured build (scripts/build.sh first)" >&2; exit 1; }
bdir=$(cd "$bdir" && pwd)
shared=$(sed -n 's/^VKI_SHARED_DIR:[A-Z]*=//p' "$bdir/CMakeCache.txt")
[ -n "$shared" ] || shared="$root/../shared"
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage="$out/stage"
final="$out"
out="$stage"
mkdir -p "$out/build" "$out/lib" "$out/shared"

# the ctest files, so that ctest runs the same commands as here
(cd "$bdir" && find . -name CTestTestfile.cmake) | while read -r f; do
  mkdir -p "$out/build/$(dirname "$f")"
  cp "$bdir/$f" "$out/build/$f"
done
bins=(cli/vkinfer tools/gen/vkinfer-gen bench/vkinfer-bench)
for t in tests/engine/test_ops_cpu tests/engine/test_backend_check_vulkan tests/api/test_service; do
  [ -z "$tests_re" ] || [[ "$t" =~ $tests_re ]] && bins+=("$t")
done
for t in "$bdir"/tests/models/*_vulkan "$bdir"/tests/models/test_arch "$bdir"/tests/vulkan/test_vk_*; do
  [ -x "$t" ] || continue
  [ -z "$tests_re" ] || [[ "$t" =~ $tests_re ]] || continue
  bins+=("${t#"$bdir"/}")
done
for b in "${bins[@]}"; do
  [ -x "$bdir/$b" ] || { echo "device-bundle: $bdir/$b not built" >&2; exit 1; }
  mkdir -p "$out/build/$(dirname "$b")"
  strip -o "$out/build/$b" "$bdir/$b"
done
for l in "$bdir"/libvkinfer.so*; do cp -P "$l" "$out/build/"; done
strip "$out/build/libvkinfer.so.0.1.0" 2> /dev/null || true
# the build's generated models are deterministic: device-check.sh makes
# them again there (vkinfer-gen), which leaves room for ../shared's models
grep -q '^VKI_GLSLANG_BLOBS:INTERNAL=.' "$bdir/CMakeCache.txt" &&
  echo "cooperative_matrix yes (glslang >= 13 at configure time)" > "$out/build/configure-info"
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.devbundle' || echo '+uncommitted')" >> "$out/build/configure-info"

# shared libraries past glibc, resolved here (the loader's own names kept)
glibc='^(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux-x86-64)\.so'
for b in "${bins[@]}"; do ldd "$out/build/$b"; done | awk '/=> \// {print $1, $3}' | sort -u |
  while read -r name path; do
    [[ "$name" =~ $glibc ]] && continue
    [[ "$name" == libvkinfer* ]] && continue
    cp -L "$path" "$out/lib/$name"
  done

# test data: reference outputs, and models smallest first up to the cap
if [ -d "$shared/models" ]; then
  cp -r "$shared/reference" "$out/shared/"
  mkdir -p "$out/shared/models"
  cap=$((models_mb * 1024 * 1024)) used=0
  : > "$out/shared/LEFT_OUT"
  while read -r size f; do
    name=$(basename "$f")
    if [ -n "$pick" ]; then
      [[ ",$pick," == *",$name,"* ]] && cp "$f" "$out/shared/models/" || echo "$name" >> "$out/shared/LEFT_OUT"
    elif [ $((used + size)) -le "$cap" ]; then
      cp "$f" "$out/shared/models/"
      used=$((used + size))
    else
      basename "$f" >> "$out/shared/LEFT_OUT"
    fi
  done < <(find "$shared/models" -maxdepth 1 -name '*.gguf' -printf '%s %p\n' | sort -n)
fi
left=$(wc -l < "$out/shared/LEFT_OUT" 2> /dev/null || echo all)
tar cf - -C "$stage" build lib shared | xz -T0 -6 > "$final/bundle.tar.xz"
rm -rf "$stage"
echo "device-bundle: $final/bundle.tar.xz $(du -h "$final/bundle.tar.xz" | cut -f1) (models left out: $left)"
