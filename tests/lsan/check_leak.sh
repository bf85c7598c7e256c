#!/usr/bin/env bash
# check_leak.sh TEST_LSAN_LEAK: runs the deliberate leaks with the environment
# ctest gives every test of the sanitizer build, and passes only when
# LeakSanitizer fails each: the heap leak alone (4242 bytes from
# leak_on_purpose, nothing from the Vulkan driver), and a VkBuffer never
# destroyed (that part is skipped when there is no Vulkan device).
set -uo pipefail
bin=$1
fail() { echo "FAIL: $*"; exit 1; }

out="$("$bin" heap 2>&1)"; rc=$?
printf '%s\n' "$out"
[ "$rc" -ne 0 ] || fail "heap: exit 0: LeakSanitizer let the leak pass"
grep -q "ERROR: LeakSanitizer: detected memory leaks" <<<"$out" || fail "heap: no LeakSanitizer report (exit $rc)"
grep -q "Direct leak of 4242 byte(s) in 1 object(s)" <<<"$out" || fail "heap: the deliberate leak is not reported"
grep -q " in leak_on_purpose " <<<"$out" || fail "heap: the report does not name leak_on_purpose"
grep -q "SUMMARY: AddressSanitizer: 4242 byte(s) leaked in 1 allocation(s)" <<<"$out" \
  || fail "heap: more than the deliberate leak was reported"
echo "check_leak: heap: LeakSanitizer caught the deliberate leak (exit $rc) and nothing else"

out="$("$bin" vulkan 2>&1)"; rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 3 ] && grep -q "no Vulkan" <<<"$out"; then
  echo "check_leak: vulkan: skipped (no Vulkan device)"
  exit 0
fi
[ "$rc" -ne 0 ] || fail "vulkan: exit 0: LeakSanitizer let the VkBuffer pass"
grep -q "ERROR: LeakSanitizer: detected memory leaks" <<<"$out" || fail "vulkan: no LeakSanitizer report (exit $rc)"
echo "check_leak: vulkan: LeakSanitizer caught the VkBuffer never destroyed (exit $rc)"
