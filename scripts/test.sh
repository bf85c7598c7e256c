#!/usr/bin/env bash
# test.sh: installs what is missing, builds, and runs every test with ctest;
# then builds again under AddressSanitizer + UndefinedBehaviorSanitizer and
# runs the suite there too (set VKI_NO_SANITIZE=1 to skip that pass).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
. scripts/env.sh
bash scripts/build.sh build
status=0
(cd build && ctest --output-on-failure -j "$VKI_JOBS") || status=1
if [ -z "${VKI_NO_SANITIZE:-}" ]; then
  echo "== the same tests under ASan + UBSan ==" >&2
  VKI_BUILD_TYPE=RelWithDebInfo bash scripts/build.sh build-asan -DVKI_SANITIZE=ON
  (cd build-asan && ctest --output-on-failure -j "$VKI_JOBS" -LE no-sanitize) || status=1
fi
exit $status
