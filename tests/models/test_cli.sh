#!/bin/bash
# test_cli.sh: `vkinfer run --json` and `vkinfer embed --json` end to end on
# the shared models, checked against the float64 references by python3;
# `run --json` on every generation model parsed by a strict JSON decoder;
# `tokenize`/`detokenize -m tokenizer.json`.
set -u
S=${VKI_SHARED_DIR:-../shared}
[ -f "$S/models/stories260K.gguf" ] || { echo "SKIPPED: $S/models/stories260K.gguf is absent"; exit 77; }
command -v python3 >/dev/null || { echo "SKIPPED: python3 is absent"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

"$VKINFER" run -m "$S/models/stories260K.gguf" -p "Once upon a time" -n 20 --temp 0 --json --backend cpu \
    --threads 2 >"$T/run.json" 2>"$T/run.err" || { echo "vkinfer run failed:"; cat "$T/run.err"; exit 1; }
"$VKINFER" run -m "$S/models/stories260K.gguf" --ids 1,403,407,261,378 -n 20 --temp 0 --json --backend cpu \
    >"$T/ids.json" 2>"$T/ids.err" || { echo "vkinfer run --ids failed:"; cat "$T/ids.err"; exit 1; }
"$VKINFER" run -m "$S/models/stories260K.gguf" --ids 1,403,407,261,378 -n 8 --temp 0.9 --seed 3 --json \
    --logprobs 5 --backend cpu >"$T/lp.json" 2>"$T/lp.err" || { echo "vkinfer run --logprobs failed:"; cat "$T/lp.err"; exit 1; }
"$VKINFER" run -m "$S/models/stories260K.gguf" -p x --logprobs 3 >/dev/null 2>&1 \
    && { echo "run --logprobs without --json was accepted"; fail=1; }
"$VKINFER" embed -m "$S/models/synthetic-bert-mini-f32.gguf" --json --backend cpu \
    "The quick brown fox jumps over the lazy dog." >"$T/embed.json" 2>"$T/embed.err" \
    || { echo "vkinfer embed failed:"; cat "$T/embed.err"; exit 1; }

python3 - "$T" "$S" <<'PY' || fail=1
import json, math, sys
t, s = sys.argv[1], sys.argv[2]
ref = json.load(open(s + "/reference/stories260K.greedy.json"))["cases"][1]
for name in ("run.json", "ids.json"):
    out = json.load(open(t + "/" + name))
    assert out["prompt_ids"] == ref["prompt_ids_with_bos"], (name, out["prompt_ids"])
    ids = [st["id"] for st in out["steps"]]
    assert ids == ref["greedy_ids"][:20], (name, ids)
    for st, rt in zip(out["steps"], ref["top5_per_step"]):
        assert len(st["top5"]) == 5
        for (i, l), (ri, rl) in zip(st["top5"], rt):
            assert abs(l - rl) <= 1e-3 * max(1, abs(rl)), (name, l, rl)
    assert out["text"] == "".join(st["text"] for st in out["steps"])
    assert ref["greedy_text"].startswith(out["text"]), (out["text"], ref["greedy_text"])
    tm = out["timings"]
    assert all(k in tm for k in ("prompt_ms", "gen_ms", "prompt_tok_s", "gen_tok_s"))
# --logprobs: the differences of the top-5 logprobs are those of the raw
# logits (what log-softmax keeps), the first step matches the float64
# reference's log-softmax, and the sampled token's logprob is its own
lp = json.load(open(t + "/lp.json"))
fl = ref["first_step_logits"]
m = max(fl)
lse = m + math.log(sum(math.exp(x - m) for x in fl))
worst = max(abs(v - (fl[i] - lse)) for i, v in lp["steps"][0]["top_logprobs"])
assert worst < 1e-3, worst
for k, st in enumerate(lp["steps"]):
    tops = st["top_logprobs"]
    assert len(tops) == 5 and all(v <= 0 for _, v in tops) and st["logprob"] <= 0, st
    assert [i for i, _ in tops] == [i for i, _ in st["top5"]], st
    for (_, v), (_, l) in zip(tops, st["top5"]):
        assert abs((v - tops[0][1]) - (l - st["top5"][0][1])) < 1e-4, st
    for i, v in tops:
        if i == st["id"]:
            assert abs(v - st["logprob"]) < 1e-6, st
emb = json.load(open(t + "/embed.json"))
want = json.load(open(s + "/reference/synthetic.json"))["models"]["synthetic-bert-mini-f32.gguf"]["cases"][0]["embedding"]
got = emb["embeddings"][0]
assert emb["dim"] == len(want) == len(got)
cos = sum(a * b for a, b in zip(got, want)) / math.sqrt(sum(a * a for a in got) * sum(b * b for b in want))
assert cos >= 0.9999, cos
print("vkinfer run/embed --json: ok (embedding cosine %.7f, first-step logprobs within %.1e)" % (cos, worst))
PY

# every generation model in ../shared: `run --json` prints JSON that a strict
# decoder accepts (valid UTF-8 included), whatever bytes the model emits.
# Embedding models are skipped; so is an architecture this build does not
# support yet, saying so.
for m in "$S"/models/*.gguf; do
    name=$(basename "$m")
    "$VKINFER" run -m "$m" --ids 1 -n 24 --temp 0 --json --backend cpu --threads 2 >"$T/m.json" 2>"$T/m.err"
    rc=$?
    if [ $rc -ne 0 ] && grep -q "embedding model" "$T/m.err"; then
        echo "run --json $name: skipped (an embedding model)"
        continue
    fi
    if [ $rc -ne 0 ] && grep -q "not supported" "$T/m.err"; then
        echo "run --json $name: skipped ($(head -c 200 "$T/m.err"))"
        continue
    fi
    if [ $rc -ne 0 ]; then
        echo "run --json $name failed:"; cat "$T/m.err"; fail=1; continue
    fi
    python3 - "$T/m.json" "$name" <<'PY' || fail=1
import json, sys
raw = open(sys.argv[1], "rb").read()
try:
    out = json.loads(raw.decode("utf-8"))  # strict: no errors= on the decode
except (UnicodeDecodeError, ValueError) as e:
    sys.exit("run --json %s: not strict UTF-8 JSON: %s" % (sys.argv[2], e))
assert out["text"] == "".join(st["text"] for st in out["steps"]), sys.argv[2]
assert out["n_generated"] == len(out["steps"]) > 0, sys.argv[2]
print("run --json %s: %d steps, strict JSON" % (sys.argv[2], len(out["steps"])))
PY
done

# tokenize / detokenize take a tokenizer.json as --help says (read with the
# files beside it), and agree with the folder
for d in tok-llama3-hf tok-bert-base-uncased; do
    j="$S/vocab/$d/tokenizer.json"
    [ -f "$j" ] || { echo "tokenizer.json $d: skipped ($j is absent)"; continue; }
    text="Hello world, it's 2024!"
    a=$("$VKINFER" tokenize -m "$j" -p "$text" 2>"$T/tok.err") || { echo "tokenize -m $j failed:"; cat "$T/tok.err"; fail=1; }
    b=$("$VKINFER" tokenize -m "$S/vocab/$d" -p "$text")
    [ -n "$a" ] && [ "$a" = "$b" ] || { echo "tokenize -m $j: '$a', the folder gives '$b'"; fail=1; }
    back=$("$VKINFER" detokenize -m "$j" $a 2>"$T/tok.err") || { echo "detokenize -m $j failed:"; cat "$T/tok.err"; fail=1; }
    fold=$("$VKINFER" detokenize -m "$S/vocab/$d" $a)
    [ "$back" = "$fold" ] && [ -n "$back" ] || { echo "detokenize -m $j: '$back' vs '$fold'"; fail=1; }
done
"$VKINFER" tokenize -m "$T/nowhere/tokenizer.json" -p hi 2>"$T/err" && fail=1
[ "$(wc -l <"$T/err")" = 1 ] && grep -q "nowhere/tokenizer.json" "$T/err" || { echo "bad error:"; cat "$T/err"; fail=1; }

# errors are one line on stderr and exit 1
"$VKINFER" run -m "$T/missing.gguf" -p x 2>"$T/err" && fail=1
[ "$(wc -l <"$T/err")" = 1 ] && grep -q "missing.gguf" "$T/err" || { echo "bad error output:"; cat "$T/err"; fail=1; }
"$VKINFER" run -m "$S/models/stories260K.gguf" --ids 1,x 2>"$T/err" && fail=1
grep -q "ids" "$T/err" || { echo "bad --ids error:"; cat "$T/err"; fail=1; }
exit $fail
