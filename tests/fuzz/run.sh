#!/usr/bin/env bash
# run.sh BUILD_DIR TARGET SECONDS [CORPUS_DIR]: runs one libFuzzer target of
# a -DVKI_FUZZ=ON build for SECONDS at the lowest priority, one process, its
# corpus in CORPUS_DIR (default /tmp/vki-fuzz-corpus/TARGET, outside the
# repository) seeded from tests/fuzz/seeds_*; findings (crash-*, leak-*,
# timeout-*) land in CORPUS_DIR/../artifacts-TARGET. Prints the executions.
# VKI_FUZZ_RUNS=N ends the run after N inputs if that comes first (a
# campaign tops a target up to a total without overshooting it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1" target="$2" secs="$3"
corpus="${4:-/tmp/vki-fuzz-corpus/$target}"
declare -A seeds=([gguf]=seeds_gguf [safetensors]=seeds_st [hf_json]=seeds_hf [config]=seeds_config)
seed_dir="$here/${seeds[$target]:-seeds_$target}"
# Inputs past these sizes teach a target nothing new and cost it its speed
# (the tokenizer repeats a short text to 256 bytes anyway).
declare -A max_len=([tokenizer]=1024 [stop]=1024 [chat]=2048 [jinja]=2048)
extra=()
[ "${max_len[$target]:-}" ] && extra=(-max_len="${max_len[$target]}")
[ "${VKI_FUZZ_RUNS:-}" ] && extra+=(-runs="$VKI_FUZZ_RUNS")
art="$(dirname "$corpus")/artifacts-$target"
mkdir -p "$corpus" "$art"
# A target that brings Vulkan up (one that starts a scheduler asks for the
# device budget) would end with lavapipe's known block reported as a leak
# once the driver is unloaded: keep it mapped, as the sanitizer build's
# tests do (tests/lsan/lsan.supp has the proof).
pin="$(dirname "$corpus")/libvki_lsan_pin.so"
[ -f "$pin" ] || cc -std=c11 -O2 -shared -fPIC "$here/../lsan/lsan_pin.c" -o "$pin" -ldl
export LD_PRELOAD="$pin" VKI_LSAN_PIN=libvulkan_lvp.so ASAN_OPTIONS=verify_asan_link_order=0
# -jobs=1 runs the fuzzing in a child that writes fuzz-0.log in its folder
run="$(dirname "$corpus")/run-$target"
mkdir -p "$run"
build="$(cd "$build" && pwd)"
cd "$run"
rm -f fuzz-0.log
log="$run/fuzz-0.log"
nice -n 19 "$build/tests/fuzz/fuzz_$target" -jobs=1 -workers=1 -max_total_time="$secs" -rss_limit_mb=2048 "${extra[@]}" \
  -print_final_stats=1 -artifact_prefix="$art/" "$corpus" "$seed_dir" >"$run/parent.log" 2>&1 || {
  echo "fuzz_$target stopped with a finding; see $log and $art" >&2
  tail -n 30 "$log" >&2
  exit 1
}
grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$log"
