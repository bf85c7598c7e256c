#!/usr/bin/env bash
# deps.sh: installs the Debian packages vkinfer needs that are missing.
# Runs apt-get only when something is missing, so a second run is instant.
set -euo pipefail
pkgs=(build-essential cmake git pkg-config python3
      libvulkan-dev glslc glslang-tools spirv-tools
      libcjson-dev libmicrohttpd-dev libyaml-dev
      mesa-vulkan-drivers vulkan-validationlayers vulkan-tools
      gcc-aarch64-linux-gnu qemu-user)
[ "${VKI_DEPS_EXTRA:-}" ] && pkgs+=(${VKI_DEPS_EXTRA})
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
