#!/bin/bash
# test_gen_vocab.sh: vkinfer-gen --arch bert --vocab-from takes the
# vocabulary of a real WordPiece GGUF (llama.cpp's BGE conversion, whose
# word starts carry U+2581): the model tokenizes as that file does, has its
# 30522 rows, and embeds; a non-WordPiece vocabulary and --format hf are
# refused by name; without --vocab-from, an --n-vocab larger than the
# generated vocabulary is said, not silently dropped.
# Usage: test_gen_vocab.sh PATH/vkinfer-gen   (VKINFER, VKI_SHARED_DIR from ctest)
set -u
GEN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
shape="--arch bert --n-embd 64 --n-head 4 --n-layer 2 --n-ff 128 --type F32"

# the synthetic vocabulary: smaller than asked, and it says so
"$GEN" $shape --n-vocab 30522 -o "$T/synth.gguf" >"$T/out" 2>&1 || { cat "$T/out"; fail "synthetic bert"; }
grep -q "generated WordPiece vocabulary has [0-9]* tokens, not 30522" "$T/out" || { cat "$T/out"; fail "no note on the vocabulary size"; }

V="${VKI_SHARED_DIR:-}/vocab/llamacpp"
[ -f "$V/ggml-vocab-bert-bge.gguf" ] || { echo "SKIPPED: $V/ggml-vocab-bert-bge.gguf is absent (../shared)"; exit 77; }
"$GEN" $shape --vocab-from "$V/ggml-vocab-bert-bge.gguf" -o "$T/bge.gguf" >"$T/out" 2>&1 || { cat "$T/out"; fail "bert --vocab-from"; }
"$VKINFER" inspect --json "$T/bge.gguf" >"$T/inspect.json" || fail "inspect"
python3 - "$T/inspect.json" <<'PY' || fail "the copied vocabulary's shape"
import json, sys
d = json.load(open(sys.argv[1]))
emb = [t for t in d["tensors"] if t["name"] == "token_embd.weight"][0]
assert emb["shape"] == [64, 30522], emb
assert d["metadata"]["tokenizer.ggml.model"] == "bert", d["metadata"]["tokenizer.ggml.model"]
assert d["metadata"]["tokenizer.ggml.token_type_count"] == 2
PY
for text in "river stone light market" "Hello, World! unaffable tokenization" "naïve café 東京"; do
    want=$("$VKINFER" tokenize -m "$V/ggml-vocab-bert-bge.gguf" -p "$text") || fail "tokenize with the vocabulary file"
    got=$("$VKINFER" tokenize -m "$T/bge.gguf" -p "$text") || fail "tokenize with the generated model"
    [ "$got" = "$want" ] || fail "'$text': $got vs the vocabulary's $want"
done
# one token a word where the vocabulary has the word (2314 is "river" in BGE's vocabulary)
[ "$("$VKINFER" tokenize -m "$T/bge.gguf" --no-special -p "river")" = "2314" ] || fail "'river' is not one token"
"$VKINFER" embed -m "$T/bge.gguf" --backend cpu --threads 1 --json "river stone" >"$T/emb.json" || fail "embed"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['dim'] == 64 and len(d['embeddings']) == 1" "$T/emb.json" \
    || fail "embedding shape"

# refusals
if "$GEN" $shape --vocab-from "$V/ggml-vocab-llama-spm.gguf" -o "$T/x.gguf" >"$T/out" 2>&1; then fail "an SPM vocabulary accepted for bert"; fi
grep -q 'needs a "bert" vocabulary, not "llama"' "$T/out" || { cat "$T/out"; fail "the refusal does not say why"; }
if "$GEN" $shape --vocab-from "$V/ggml-vocab-bert-bge.gguf" --format hf -o "$T/hf" >"$T/out" 2>&1; then fail "--format hf accepted"; fi
grep -q "GGUF output only" "$T/out" || { cat "$T/out"; fail "the hf refusal does not say why"; }
echo "test_gen_vocab: passed"
