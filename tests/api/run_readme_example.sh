#!/usr/bin/env bash
# run_readme_example.sh EXE CHAT EMBED: runs README.md's Library example and
# checks that it ends well and that each job and both models show in its
# output. Skips (77) when the generated models are absent.
set -u
exe=$1 chat=$2 embed=$3
for f in "$chat" "$embed"; do
    [ -f "$f" ] || { echo "SKIP: $f is absent (the build generates it)"; exit 77; }
done
out=$(timeout 100 "$exe" "$chat" "$embed" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || { echo "FAIL: the README example exited with $rc"; exit 1; }
for want in "[interactive] ok by chat: 24 tokens" "[batch] ok by chat: 24 tokens" "[batch] ok by embed" \
            "3 embeddings of " "chat: resident-" "embed: resident-"; do
    case "$out" in
        *"$want"*) ;;
        *) echo "FAIL: the output lacks '$want'"; exit 1 ;;
    esac
done
# The interactive job, submitted last, must not finish after the batch generation.
i=$(printf '%s\n' "$out" | grep -n '^\[interactive\]' | cut -d: -f1)
b=$(printf '%s\n' "$out" | grep -n '^\[batch\] ok by chat' | cut -d: -f1)
[ "$i" -lt "$b" ] || { echo "FAIL: the interactive job ended after the batch one"; exit 1; }
echo "test_readme_example: ok"
