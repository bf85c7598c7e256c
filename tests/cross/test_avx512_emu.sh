#!/usr/bin/env bash
# test_avx512_emu.sh: the CPU backend's AVX-512 (+VNNI) kernels on a machine
# without AVX-512. Builds test_cpu_gemv statically and runs its avx512 level
# under x86_emu.py, Bochs' CPU model from PyPI (bochscpu-python): every
# AVX-512 kernel (R16 mat-vecs, tiles, packed and integer mat-mat, norms,
# attention rows, exp/GELU/SwiGLU) against the scalar reference.
# On a CPU with AVX-512 VNNI test_cpu_gemv runs them natively: skip.
set -euo pipefail
src="${VKI_SOURCE_DIR:?}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(uname -m)" != x86_64 ]; then
  echo "SKIPPED: not an x86-64 host"; exit 77
fi
if grep -qw avx512_vnni /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then
  echo "SKIPPED: this CPU has AVX-512 VNNI; test_cpu_gemv runs those kernels natively"; exit 77
fi
py=python3
pyver=$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tools="${VKI_TOOLS_DIR:-$HOME/.local/share/vkinfer/tools}"
dir="$tools/bochscpu-py$pyver"
if [ ! -d "$dir/bochscpu" ]; then
  echo "installing bochscpu-python from PyPI into $dir"
  # No PyPI is a failure, not a skip: the kernels would go unchecked.
  $py -m pip install -q --disable-pip-version-check --target "$dir" bochscpu-python==0.4.0 \
    || { echo "FAILED: could not install bochscpu-python==0.4.0 from PyPI (needed to run the AVX-512 kernels)"; exit 1; }
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
# The wheel's native module is built against glibc 2.38 and references two
# of its C23 entry points; older glibc (Debian 12: 2.36) gets them here.
if ! $py -c 'import bochscpu' 2>/dev/null; then
  cat > "$tmp/c23.c" <<'EOF'
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
unsigned long long __isoc23_strtoull(const char *s, char **end, int base) { return strtoull(s, end, base); }
int __isoc23_sscanf(const char *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsscanf(s, fmt, ap);
    va_end(ap);
    return n;
}
EOF
  cc -shared -fPIC -O1 -o "$tmp/libc23.so" "$tmp/c23.c"
  export LD_PRELOAD="$tmp/libc23.so${LD_PRELOAD:+:$LD_PRELOAD}"
  $py -c 'import bochscpu' || { echo "FAILED: bochscpu does not import (see above)"; exit 1; }
fi

# The same sources and per-level flags as the library (CMakeLists.txt),
# with one addition for the AVX-512 files: Bochs raises #UD on a VSIB gather
# whose index is zmm16-31 (EVEX.V' set), which real CPUs run, so those files
# keep to zmm0-15 here. The kernels' arithmetic is the same C either way.
fixed=()
for i in $(seq 16 31); do fixed+=(-ffixed-xmm$i); done
objs=()
for f in "$src"/engine/cpu/*.c "$src"/engine/backend.c "$src"/engine/common/*.c \
         "$src"/loader/types.c "$src"/loader/quants.c "$src"/tests/test_util.c \
         "$src"/tests/engine/test_cpu_gemv.c; do
  flags=()
  case "$f" in
    *_neon.c) continue ;;
    *_avx2.c) flags=(-mavx2 -mfma -mf16c) ;;
    *_avx512.c) flags=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c "${fixed[@]}") ;;
  esac
  o="$tmp/$(basename "$(dirname "$f")")_$(basename "$f" .c).o"
  cc -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE -fno-pie "${flags[@]}" \
    -I"$src/include" -I"$src" -I"$src/engine/common" -I"$src/tests" -c "$f" -o "$o"
  objs+=("$o")
done
cc -static -no-pie "${objs[@]}" -o "$tmp/test_cpu_gemv" -lm -lpthread

echo "== test_cpu_gemv --isa avx512, emulated =="
start=$(date +%s)
set +e
$py "$here/x86_emu.py" --bochscpu "$dir" "$tmp/test_cpu_gemv" --isa avx512 > "$tmp/out.txt" 2>&1
rc=$?
set -e
cat "$tmp/out.txt"
echo "(emulated in $(( $(date +%s) - start )) s, exit $rc)"
[ $rc -eq 0 ] || exit 1
# The level must have run, with VNNI (the emulated CPU has it), not skipped.
grep -q '^avx512+vnni: .*repacked gemv' "$tmp/out.txt" \
  || { echo "FAILED: no avx512+vnni summary line: the AVX-512 kernels did not run"; exit 1; }
