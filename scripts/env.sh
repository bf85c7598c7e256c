# env.sh: sourced by the scripts: the environment Vulkan on lavapipe needs.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/vkinfer-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
VKI_JOBS="${VKI_JOBS:-$(nproc)}"
