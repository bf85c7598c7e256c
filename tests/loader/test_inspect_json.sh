#!/bin/bash
# test_inspect_json.sh: `vkinfer inspect --json` on every model in
# ../shared/models agrees with the independent Python reader gguf_ref.py.
set -u
models=("${VKI_SHARED_DIR:-../shared}"/models/*.gguf)
if [ ! -e "${models[0]}" ]; then
    echo "SKIPPED: no models in ${VKI_SHARED_DIR:-../shared}/models (set VKI_SHARED_DIR to the shared data folder)"
    exit 77
fi
exec python3 "$(dirname "$0")/compare_inspect.py" "$VKINFER" "${models[@]}"
