#!/bin/bash
# test_cli_devices.sh: `vkinfer devices` lists the Vulkan devices as text and
# JSON, and --help names the command.
set -u
out=$("$VKINFER" devices 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "no Vulkan"; then echo "skipped: $out"; exit 77; fi
[ $rc -eq 0 ] || { echo "devices failed ($rc): $out"; exit 1; }
echo "$out"
echo "$out" | grep -q "^0: " || { echo "no device 0 line"; exit 1; }
echo "$out" | grep -q "maxStorageBufferRange" || { echo "no limits shown"; exit 1; }
json=$("$VKINFER" devices --json) || { echo "--json failed"; exit 1; }
echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["devices"] and "subgroup_size" in d["devices"][0] and "best" in d, d' \
  || { echo "bad json: $json"; exit 1; }
"$VKINFER" devices --help | grep -q "usage: vkinfer devices" || { echo "no help"; exit 1; }
"$VKINFER" devices --bogus >/dev/null 2>&1 && { echo "--bogus accepted"; exit 1; }
exit 0
