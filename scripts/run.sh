#!/usr/bin/env bash
# run.sh: the quick start's main job. Installs what is missing, builds (the
# build also generates the small default model with our own generator), and
# serves it over HTTP (OpenAI-compatible) with --backend auto: a Vulkan GPU if
# there is one, else the CPU. Extra arguments go to `vkinfer serve` (e.g.
# -m your.gguf, --config serve.yaml); VKI_PORT sets the port (default 8080;
# 0: any free port, which the server prints).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
. scripts/env.sh
port="${VKI_PORT:-8080}"
if [ $# -eq 0 ]; then
  set -- -m build/models/default.gguf --id default
fi
url="http://127.0.0.1:$port"
if [ "$port" = 0 ]; then
  echo "vkinfer: starting the server on a free port; it prints its URL below (Ctrl-C stops it)."
else
  cat <<MSG
vkinfer: starting the server on $url (Ctrl-C stops it). Try:
  curl $url/health
  curl $url/v1/completions -H 'Content-Type: application/json' \\
    -d '{"prompt":"Once upon a time","max_tokens":32}'
  curl -N $url/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"messages":[{"role":"user","content":"Tell me a story"}],"stream":true}'
MSG
fi
exec ./build/cli/vkinfer serve --backend auto --port "$port" "$@"
