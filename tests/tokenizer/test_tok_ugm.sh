#!/usr/bin/env bash
# test_tok_ugm.sh: the UGM (SentencePiece unigram) tokenizer on real
# vocabularies: fetches the sentencepiece 0.2.3 sdist from PyPI (its
# test/botchan_en_unigram_1000.model and test/kyoto_ja_unigram_8000.model),
# converts them with vkinfer-spm-convert into the GGUF and tokenizer.json
# forms users load, runs test_tok_ugm on the reference vectors in data/, and
# checks `vkinfer tokenize` on one of them.
#   test_tok_ugm.sh TEST_BIN CONVERT_BIN VKINFER_BIN WORK_DIR DATA_DIR
# The vocabularies cannot live in the repository; without PyPI the test
# fails (it does not skip): set VKI_UGM_MODELS=DIR to use a folder that
# already holds the two .model files.
set -euo pipefail
test_bin=$1 convert=$2 vkinfer=$3 work=$4 data=$5

# the files the vectors were made from (tools/spm/gen_ugm_vectors.py)
declare -A sha=(
  [botchan_en_unigram_1000.model]=f8c7e5e0fa9e948783d20ea9dccf0e2611f567bc1a4e468a658becd5015f458e
  [kyoto_ja_unigram_8000.model]=e39551e7ab937745b25edf55a7399d3c78948fda1dabca6b1781df2fcec67f65
)
mkdir -p "$work"
models=${VKI_UGM_MODELS:-$work}
have() { for m in "${!sha[@]}"; do [[ -f $models/$m ]] || return 1; done; }
if ! have; then
  [[ -z ${VKI_UGM_MODELS:-} ]] || { echo "test_tok_ugm: $models lacks the .model files" >&2; exit 1; }
  py=$(command -v python3 || command -v python || true)
  [[ -n $py ]] || { echo "test_tok_ugm: FAILED: no python to run pip" >&2; exit 1; }
  rm -rf "$work/sdist"
  mkdir -p "$work/sdist"
  # the sdist straight from the registry's simple index, sha256-checked (tests/pypi_sdist.py)
  if ! "$py" "$(dirname "$0")/../pypi_sdist.py" sentencepiece sentencepiece-0.2.3.tar.gz "$work/sdist" \
       >"$work/pip.log" 2>&1
  then
    cat "$work/pip.log" >&2
    echo "test_tok_ugm: FAILED: cannot download the sentencepiece 0.2.3 sdist from PyPI (the vocabularies" \
         "come from it; VKI_UGM_MODELS=DIR uses local copies)" >&2
    exit 1
  fi
  for m in "${!sha[@]}"; do
    tar -xzf "$work"/sdist/sentencepiece-0.2.3.tar.gz -O "sentencepiece-0.2.3/test/$m" >"$work/$m"
  done
fi
for m in "${!sha[@]}"; do
  got=$(sha256sum "$models/$m" | cut -d' ' -f1)
  [[ $got == "${sha[$m]}" ]] || { echo "test_tok_ugm: FAILED: $models/$m has sha256 $got, the vectors were made from ${sha[$m]}" >&2; exit 1; }
done

botchan=$models/botchan_en_unigram_1000.model kyoto=$models/kyoto_ja_unigram_8000.model
bf=(--byte-fallback --user-defined '<sep>' --user-defined '[MASK]')
"$convert" "$botchan" --gguf "$work/botchan.gguf" --hf "$work/botchan-xlmr" --style xlmr
"$convert" "$botchan" --hf "$work/botchan-t5-legacy" --style t5-legacy
"$convert" "$kyoto" --gguf "$work/kyoto.gguf" --hf "$work/kyoto-t5" --style t5
"$convert" "$botchan" "${bf[@]}" --gguf "$work/botchan_bf.gguf" --hf "$work/botchan_bf-t5" --style t5

"$test_bin" \
  spm "$work/botchan.gguf" "$data/ugm_botchan.spm.json" \
  hf "$work/botchan-xlmr" "$data/ugm_botchan.hf-xlmr.json" \
  hf "$work/botchan-t5-legacy" "$data/ugm_botchan.hf-t5-legacy.json" \
  spm "$work/kyoto.gguf" "$data/ugm_kyoto.spm.json" \
  hf "$work/kyoto-t5" "$data/ugm_kyoto.hf-t5.json" \
  spm "$work/botchan_bf.gguf" "$data/ugm_botchan_bf.spm.json" \
  hf "$work/botchan_bf-t5" "$data/ugm_botchan_bf.hf-t5.json"

# the CLI on the same files (ids of case "吾輩は猫である。名前はまだ無い。" + </s>)
want=$(python3 -c 'import json,sys; c=[c for c in json.load(open(sys.argv[1]))["cases"] if c["text"]==sys.argv[2]][0]; print(json.dumps(c["ids_with_special"]))' \
       "$data/ugm_kyoto.spm.json" '吾輩は猫である。名前はまだ無い。')
got=$("$vkinfer" tokenize -m "$work/kyoto.gguf" --json -p '吾輩は猫である。名前はまだ無い。')
[[ $got == "$want" ]] || { echo "test_tok_ugm: FAILED: vkinfer tokenize gave $got, want $want" >&2; exit 1; }
echo "vkinfer tokenize -m kyoto.gguf: $got (matches)"
