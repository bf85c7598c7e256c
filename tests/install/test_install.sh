#!/usr/bin/env bash
# test_install.sh BUILD_DIR CONSUMER_DIR: install, then build and run a
# consumer program through pkg-config (shared and static) and find_package.
set -euo pipefail
build="$1"; consumer="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"

cc -std=c11 -Wall -Wextra -Werror "$consumer/main.c" -o "$tmp/pc_shared" $(pkg-config --cflags --libs vkinfer)
LD_LIBRARY_PATH="$libdir" "$tmp/pc_shared"

cc -std=c11 "$consumer/main.c" -o "$tmp/pc_static" $(pkg-config --cflags vkinfer) \
   "$libdir/libvkinfer.a" $(pkg-config --libs --static vkinfer | sed 's/-lvkinfer//')
"$tmp/pc_static"

cmake -S "$consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/consumer"
echo "install: pkg-config (shared, static) and find_package consumers ran"
