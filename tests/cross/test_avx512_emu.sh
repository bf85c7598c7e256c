#!/usr/bin/env bash
# test_avx512_emu.sh: the CPU backend's AVX-512 (+VNNI) kernels on a machine
# without AVX-512. Builds test_cpu_gemv and test_ops statically and runs them
# under x86_emu.py, Bochs' CPU model from PyPI (bochscpu-python):
#   - test_cpu_gemv --isa avx512: every AVX-512 kernel (R16 mat-vecs, tiles,
#     packed and integer mat-mat, norms, attention rows, exp/GELU/SwiGLU)
#     against the scalar reference;
#   - test_ops -b cpu-avx512 on the mat-mul cases that take the packed
#     paths (16+ activation rows) and ATTN: the level's kernel table as the
#     backend assembles it (AVX-512 over AVX2), which the kernel test does
#     not see. One thread: the emulator runs no threads.
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
         "$src"/loader/types.c "$src"/loader/quants.c "$src"/tests/test_util.c; do
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
for t in test_cpu_gemv test_ops; do
  extra=()
  [ $t = test_ops ] && extra=("$src/tests/engine/test_ops_cases.c") # its case tables
  cc -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE -fno-pie \
    -I"$src/include" -I"$src" -I"$src/engine/common" -I"$src/tests" \
    "$src/tests/engine/$t.c" "${extra[@]}" "${objs[@]}" -o "$tmp/$t" -static -no-pie -lm -lpthread
done

emulate() { # CPU NAME ARGS...: runs $tmp/NAME on that CPU model into $tmp/NAME.out
  local cpu=$1 name=$2 start rc
  shift 2
  echo "== $name $*, emulated $cpu =="
  start=$(date +%s)
  set +e
  VKI_TEST_CPU_THREADS=1 $py "$here/x86_emu.py" --cpu "$cpu" --bochscpu "$dir" "$tmp/$name" "$@" > "$tmp/$name.out" 2>&1
  rc=$?
  set -e
  grep -v ': OK (' "$tmp/$name.out" || true
  echo "(emulated in $(( $(date +%s) - start )) s, exit $rc)"
  return $rc
}
status=0
# Tiger Lake: AVX-512 with VNNI (Ice Lake on, Zen 4). Cannon Lake: without
# VNNI (as Skylake-SP), where the level keeps AVX2's quantized kernels.
for cpu in tigerlake cannonlake; do
  level=avx512
  [ $cpu = tigerlake ] && level=avx512+vnni
  emulate $cpu test_cpu_gemv --isa avx512 || status=1
  # The level must have run, as that CPU has it, not skipped.
  grep -q "^$level: .*repacked gemv" "$tmp/test_cpu_gemv.out" \
    || { echo "FAILED: no '$level:' summary line: the AVX-512 kernels did not run on $cpu"; status=1; }
  # 67 rows and the 2 x 9 strided views: the packed paths (f32 tiles for
  # float and dequantized types, integer tiles for the rest); every ATTN.
  emulate $cpu test_ops -b cpu-avx512 -o "MATMUL|MATMUL_ID|ATTN" -f "n=67|2x9|ATTN" || status=1
  grep -q "^cpu-avx512-r16 (cpu ($level, 1 thread)): [1-9][0-9]* passed, 0 failed" "$tmp/test_ops.out" \
    || { echo "FAILED: test_ops did not pass on cpu-avx512-r16 ($cpu)"; status=1; }
done
exit $status
