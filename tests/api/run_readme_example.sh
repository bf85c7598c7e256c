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
# No order between the two generations is checked: the example's chat model
# decodes up to 4 sequences together, so when the model's thread picks the
# batch job up before the interactive one is submitted (an ASan run did),
# the batch job rightly ends first. The order of waiting jobs by class is
# test_service's to check.
echo "test_readme_example: ok"
