#!/bin/bash
# test_corpus.sh: every file of the committed malformed-file corpus makes
# `vkinfer inspect` exit with status 1 and exactly one stderr line of the form
# "vkinfer: FILE: what is wrong", and nothing on stdout. The corpus is written
# by `test_gguf_defects --write-corpus tests/loader/corpus`.
set -u
dir="$(dirname "$0")/corpus"
fail=0 n=0
for f in "$dir"/*; do
    n=$((n + 1))
    err=$("$VKINFER" inspect "$f" 2>&1 >/tmp/vki_corpus_out.$$)
    rc=$?
    lines=$(printf '%s\n' "$err" | wc -l)
    if [ $rc -ne 1 ] || [ "$lines" -ne 1 ] || [ -s /tmp/vki_corpus_out.$$ ] || [[ "$err" != "vkinfer: $f: "* ]]; then
        echo "FAIL $f: exit $rc, $lines stderr lines: $err"
        fail=$((fail + 1))
    else
        echo "ok   $(basename "$f"): ${err#vkinfer: $f: }"
    fi
done
rm -f /tmp/vki_corpus_out.$$
[ $n -gt 40 ] || { echo "FAIL: only $n corpus files"; exit 1; }
echo "$((n - fail))/$n corpus files refused correctly"
[ $fail -eq 0 ]
