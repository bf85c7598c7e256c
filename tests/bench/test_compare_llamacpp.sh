#!/usr/bin/env bash
# test_compare_llamacpp.sh SCRIPT VKINFER_BENCH MODEL (see CMakeLists.txt)
set -euo pipefail
script=$1 bench=$2 model=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check NAME FILE EXTENDED-REGEX
    if grep -Eq -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1: no line matching '$3' in:"; cat "$2"; fail=1; fi
}

# No peer: our figures alone, no empty llama.cpp columns.
python3 "$script" --vkinfer-bench "$bench" -m "$model" -p 16 -n 8 --rounds 1 -r 1 --threads 2 --membw \
    > "$tmp/alone.md" 2> "$tmp/alone.err"
check "alone: header" "$tmp/alone.md" '^\| model \| vkinfer tg8 \| vkinfer pp16 \| tg bound \| vkinfer / bound \|$'
check "alone: figures" "$tmp/alone.md" '^\| default\.gguf \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9]+% \|$'
check "alone: says so" "$tmp/alone.md" 'our figures alone'
if grep -q 'llama.cpp tg' "$tmp/alone.md"; then echo "FAIL: alone: peer columns printed"; fail=1; fi

# A stand-in llama-bench: tg 10 t/s, pp 20 t/s (its JSON: one object per test).
mkdir "$tmp/peer"
cat > "$tmp/peer/llama-bench" <<'PEER'
#!/usr/bin/env python3
import json, os, sys
a = sys.argv
with open(os.path.join(os.path.dirname(os.path.abspath(a[0])), "args"), "a") as f:
    f.write(" ".join(a[1:]) + "\n")
p, n = int(a[a.index("-p") + 1]), int(a[a.index("-n") + 1])
out = []
if p: out.append({"build_commit": "cafe123", "n_prompt": p, "n_gen": 0, "avg_ts": 20.0, "samples_ts": [20.0, 20.0]})
if n: out.append({"build_commit": "cafe123", "n_prompt": 0, "n_gen": n, "avg_ts": 10.0, "samples_ts": [10.0]})
print(json.dumps(out))
PEER
chmod +x "$tmp/peer/llama-bench"
python3 "$script" --vkinfer-bench "$bench" --llama-cpp-bin "$tmp/peer" -m "$model" -p 16 -n 8 --rounds 2 -r 1 \
    --threads 2 --membw > "$tmp/peer.md" 2> "$tmp/peer.err"
check "peer: header" "$tmp/peer.md" '^\| model \| vkinfer tg8 \| llama.cpp tg8 \| ratio \| vkinfer pp16 \| llama.cpp pp16 \| ratio \| tg bound \| vkinfer / bound \| llama.cpp / bound \|$'
check "peer: commit" "$tmp/peer.md" 'llama.cpp cafe123'
check "peer: alternates" "$tmp/peer.err" '^round 2 llama.cpp default\.gguf'
# the ratio columns are ours / 10 and ours / 20
python3 - "$tmp/peer.md" <<'PY' || fail=1
import sys
line = [ln for ln in open(sys.argv[1]).read().split("\n") if ln.startswith("| default.gguf")][0]
row = [c.strip() for c in line.split("|")[1:-1]]
tg, ptg, rtg, pp, ppp, rpp, bound, share, pshare = row[1:10]
assert ptg == "10.0" and ppp == "20.0", row
# (figures past 1000 print as integers, ratios to two decimals)
assert abs(float(rtg) * 10 - float(tg)) <= 1 and abs(float(rpp) * 20 - float(pp)) <= 1, row
assert abs(float(pshare[:-1]) - 1000 / float(bound)) <= 1, row
print("ok: peer: ratios and shares")
PY

# Depth: both engines run after -d tokens, and the columns say so.
python3 "$script" --vkinfer-bench "$bench" --llama-cpp-bin "$tmp/peer" -m "$model" -p 8 -n 4 -d 16 --rounds 1 -r 1 \
    --threads 2 > "$tmp/depth.md" 2> "$tmp/depth.err"
check "depth: header" "$tmp/depth.md" '^\| model \| vkinfer tg4 @ d16 \| llama.cpp tg4 @ d16 \| ratio \| vkinfer pp8 @ d16 \| llama.cpp pp8 @ d16 \| ratio \|$'
check "depth: figures" "$tmp/depth.md" '^\| default\.gguf \| [0-9.]+ \| 10\.0 \| [0-9.]+ \| [0-9.]+ \| 20\.0 \| [0-9.]+ \|$'
check "depth: the peer was asked" "$tmp/peer/args" ' -d 16( |$)'

# A folder without llama-bench is refused with its name.
if python3 "$script" --vkinfer-bench "$bench" --llama-cpp-bin "$tmp/nowhere" -m "$model" > "$tmp/none.out" 2>&1; then
    echo "FAIL: a folder without llama-bench was accepted"; fail=1
else
    check "refusal" "$tmp/none.out" "no llama-bench in $tmp/nowhere"
fi
exit $fail
