#!/usr/bin/env bash
# build.sh [BUILD_DIR] [cmake args...]: configures and builds vkinfer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
dir="${1:-build}"; shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${VKI_BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$dir" -j "$VKI_JOBS"
