#!/usr/bin/env bash
# run.sh: the quick start's main job. Installs what is missing, builds (the
# build also generates the small default model with our own generator), and
# runs it with --backend auto: a Vulkan GPU if there is one, else the CPU.
# Extra arguments go to `vkinfer run` (e.g. -m your.gguf -p "Hello").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
. scripts/env.sh
model=build/models/default.gguf
if [ $# -eq 0 ]; then
  set -- -m "$model" -p "Once upon a time" -n 32
fi
exec ./build/cli/vkinfer run --backend auto "$@"
