#!/usr/bin/env bash
# test_neon_qemu.sh: builds the CPU backend and its op tests for aarch64 (the
# plain armv8-a baseline the arm64 build uses, and armv8.2-a with dotprod and
# fp16) and runs them under qemu-aarch64: every op on cpu-neon against the
# scalar reference, and the per-ISA kernel tests.
set -euo pipefail
src="${VKI_SOURCE_DIR:?}"
cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "SKIPPED: $cc or qemu-aarch64 is not installed (Debian: gcc-aarch64-linux-gnu qemu-user)"
  exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
lib=()
for f in "$src"/engine/cpu/*.c "$src"/engine/backend.c "$src"/engine/common/*.c \
         "$src"/loader/types.c "$src"/loader/quants.c "$src"/tests/test_util.c; do
  case "$f" in *_avx2.c|*_avx512.c) continue ;; esac
  lib+=("$f")
done
for march in armv8-a armv8.2-a+dotprod+fp16; do
  for t in test_ops test_cpu_isa test_cpu_gemv; do
    [ -f "$src/tests/engine/$t.c" ] || continue
    extra=()
    [ "$t" = test_ops ] && extra=("$src/tests/engine/test_ops_cases.c") # its case tables
    "$cc" -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE -march="$march" \
      -I"$src/include" -I"$src" -I"$src/engine/common" -I"$src/tests" \
      "${lib[@]}" "$src/tests/engine/$t.c" "${extra[@]}" -o "$tmp/$t" -static -lm -lpthread
    args=()
    [ "$t" = test_ops ] && args=(-b cpu-neon)
    echo "== $t ($march) =="
    qemu-aarch64 "$tmp/$t" "${args[@]}" | tail -n 3
  done
done
