#!/usr/bin/env python3
"""test_schema_fuzz.py: random JSON Schemas from the supported subset, each
answered by a random-weight model under json_schema constraints (schema_run,
one process per model), and every answer parsed with Python's json and
validated with the `jsonschema` package from PyPI (installed into the build
folder on first use; without PyPI the test FAILS).

Schemas are bounded (maxLength, maxItems, no free-form members, no
recursion), so every sentence of their language is finite and each answer
must end complete (stopped by the grammar or EOS) well within max_tokens;
unbounded and recursive schemas are covered by test_grammar's accept/reject
cases. A few unsupported schemas check the refusal path.

Models: build/models/default.gguf (N schemas), and when ../shared is present
synthetic-llama-gqa-q4_0 (another SPM vocabulary) and a tiny generated model
with the GPT-2 byte-level BPE vocabulary (N/5 schemas each); absent ones are
skipped with the reason printed.
Usage: test_schema_fuzz.py --schema-run PATH --gen PATH --model default.gguf
                           --pypi DIR --work DIR [--n 1000] [--seed 1]"""
import argparse, json, os, random, shutil, subprocess, sys, time


def install(dest, pkgs):
    if os.path.isdir(os.path.join(dest, pkgs[0])):
        return
    part = dest + ".part"
    shutil.rmtree(part, ignore_errors=True)
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-input",
                        "--disable-pip-version-check", "--timeout", "30", "--retries", "2", "--target", part] + pkgs,
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-3000:])
        raise SystemExit("FAILED: pip could not install %s from PyPI into %s (no network to PyPI?)" % (pkgs, part))
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(part, dest)


# ===== Random schemas =========================================================

NAMES = ["a", "b", "id", "name", "x y", "q\"uote", "back\\slash", "caf\u00e9", "\u4e2d", "ab", "abc", "", "n1",
         "\U0001F600", "tab\tkey"]
STRS = ["", "a", "hello", "q\"", "\\", "line\nbreak", "caf\u00e9", "\u4e2d\u6587", "\U0001F600", "\u0001", "/"]


def rand_literal(rng, depth=0):
    k = rng.randrange(8 if depth < 2 else 6)
    if k == 0:
        return rng.choice(STRS)
    if k == 1:
        return rng.randint(-1000, 1000)
    if k == 2:
        return rng.choice([0.5, -2.25, 1e-3, 3.0e10, 0.1])
    if k == 3:
        return rng.choice([True, False])
    if k == 4:
        return None
    if k == 5:
        return rng.choice(STRS)
    if k == 6:
        return [rand_literal(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return {rng.choice(NAMES): rand_literal(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def rand_string(rng):
    if rng.random() < 0.15:
        return {"type": "string", "format": rng.choice(["date", "time", "date-time", "uuid"])}
    mx = rng.randint(0, 6)
    s = {"type": "string", "maxLength": mx}
    if rng.random() < 0.5:
        s["minLength"] = rng.randint(0, mx)
    return s


def rand_integer(rng):
    s = {"type": "integer"}
    lo = rng.randint(-2000, 2000)
    hi = lo + rng.choice([0, 1, 9, 10, 99, 100, 12345, 10 ** 12])
    r = rng.random()
    if r < 0.3:
        s.update(minimum=lo, maximum=hi)
    elif r < 0.45:
        s.update(exclusiveMinimum=lo - 1, exclusiveMaximum=hi + 1)
    elif r < 0.6:
        s["minimum"] = lo
    elif r < 0.7:
        s["maximum"] = hi
    elif r < 0.75:
        s.update(minimum=lo + 0.5, maximum=hi + 0.5) if hi > lo else s.update(minimum=lo, maximum=hi)
    return s


def rand_schema(rng, depth, defs):
    scalar = ["string", "integer", "number", "boolean", "null", "enum", "const", "typearr"]
    kinds = scalar + (["object", "object", "array", "array", "anyOf", "oneOf", "allOf", "ref"] if depth < 3 else [])
    k = rng.choice(kinds)
    s = None
    if k == "string":
        s = rand_string(rng)
    elif k == "integer":
        s = rand_integer(rng)
    elif k == "number":
        s = {"type": "number"}
    elif k == "boolean":
        s = {"type": "boolean"}
    elif k == "null":
        s = {"type": "null"}
    elif k == "enum":
        vals = []
        for _ in range(rng.randint(1, 4)):
            v = rand_literal(rng)
            if v not in vals:
                vals.append(v)
        s = {"enum": vals}
    elif k == "const":
        s = {"const": rand_literal(rng)}
    elif k == "typearr":
        ts = rng.sample(["string", "integer", "number", "boolean", "null"], rng.randint(1, 3))
        s = {"type": ts}
        if "string" in ts:
            s["maxLength"] = rng.randint(0, 5)
        if "integer" in ts and "number" not in ts and rng.random() < 0.5:
            s.update(minimum=-5, maximum=5)
    elif k == "object":
        names = rng.sample(NAMES, rng.randint(0, 4))
        props = {n: rand_schema(rng, depth + 1, defs) for n in names}
        s = {"type": "object", "properties": props,
             "required": [n for n in names if rng.random() < 0.6]}
        if rng.random() < 0.7 or not names:
            s["additionalProperties"] = False
        if not names:
            s.pop("properties")
    elif k == "array":
        mn = rng.randint(0, 2)
        s = {"type": "array", "maxItems": mn + rng.randint(0, 2)}
        if mn:
            s["minItems"] = mn
        if rng.random() < 0.3:
            s["prefixItems"] = [rand_schema(rng, depth + 1, defs) for _ in range(rng.randint(1, 2))]
            s["items"] = False if rng.random() < 0.5 else rand_schema(rng, depth + 1, defs)
            s["maxItems"] = max(s["maxItems"], mn)
            if s["items"] is False:
                s["maxItems"] = min(s["maxItems"], len(s["prefixItems"]))
                if mn > len(s["prefixItems"]):
                    s["minItems"] = len(s["prefixItems"])
        else:
            s["items"] = rand_schema(rng, depth + 1, defs)
    elif k == "anyOf":
        s = {"anyOf": [rand_schema(rng, depth + 1, defs) for _ in range(rng.randint(1, 3))]}
    elif k == "oneOf":
        # branches of distinct types, so that exactly one matches
        a, b = rng.sample(["string", "boolean", "null", "array"], 2)
        mk = {"string": lambda: {"type": "string", "maxLength": 3}, "boolean": lambda: {"type": "boolean"},
              "null": lambda: {"type": "null"}, "array": lambda: {"type": "array", "items": {"type": "null"},
                                                                    "maxItems": 2}}
        s = {"oneOf": [mk[a](), mk[b]()]}
    elif k == "allOf":
        s = {"allOf": [rand_schema(rng, depth + 1, defs), {"description": "only words"}]}
    elif k == "ref":
        name = "d%d" % len(defs)
        defs[name] = None  # reserved: a nested $ref takes the next name
        defs[name] = rand_schema(rng, depth + 1, defs)
        s = {"$ref": "#/$defs/" + name}
    if rng.random() < 0.1 and "$ref" not in s:
        s["title"] = "T"
        s["description"] = "annotation, ignored"
    return s


def make_schemas(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        defs = {}
        s = rand_schema(rng, 0, defs)
        if defs:
            s = dict(s, **{"$defs": defs})
        out.append(s)
    return out


REFUSED = [({"type": "string", "pattern": "^[a-z]+$"}, "pattern"),
           ({"type": "object", "properties": {"n": {"type": "number", "multipleOf": 3}}}, "multipleOf"),
           ({"type": "array", "uniqueItems": True}, "uniqueItems")]


# ===== Run and validate =======================================================

def run_model(args, model, schemas, jsonschema, label):
    path_in = os.path.join(args.work, label + ".schemas.jsonl")
    path_out = os.path.join(args.work, label + ".answers.jsonl")
    lines = [json.dumps(s, ensure_ascii=False) for s in schemas] + [json.dumps(s) for s, _ in REFUSED]
    with open(path_in, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    t0 = time.time()
    p = subprocess.run([args.schema_run, model, path_in, path_out, str(args.max_tokens)], capture_output=True,
                       text=True)
    dt = time.time() - t0
    if p.returncode != 0:
        print("FAILED: schema_run on %s: %s" % (model, p.stderr[-2000:]))
        return 1
    with open(path_out, encoding="utf-8") as f:
        res = [json.loads(l) for l in f]
    if len(res) != len(lines):
        print("FAILED: %s: %d answers for %d schemas" % (label, len(res), len(lines)))
        return 1
    fails, tokens = 0, 0
    fmt = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for i, s in enumerate(schemas):
        r = res[i]
        tokens += r["n_generated"]
        why = None
        if r["status"] != "ok":
            why = "refused: %s" % r["error"]
        elif not r["stopped_by_eos"]:
            why = "not complete after %d tokens" % r["n_generated"]
        else:
            try:
                doc = json.loads(r["text"])
                jsonschema.validate(doc, s, cls=jsonschema.Draft202012Validator, format_checker=fmt)
            except Exception as e:  # noqa: BLE001
                why = "%s: %s" % (type(e).__name__, str(e)[:300])
        if why:
            fails += 1
            if fails <= 10:
                print("FAIL %s #%d: %s\n  schema: %s\n  text:   %r" % (label, i, why, json.dumps(s, ensure_ascii=False),
                                                                    r["text"][:400]))
    for k, (s, kw) in enumerate(REFUSED):
        r = res[len(schemas) + k]
        if r["status"] != "unsupported" or kw not in r["error"]:
            fails += 1
            print("FAIL %s: %s should be refused naming %s: %s %s" % (label, json.dumps(s), kw, r["status"],
                                                                     r["error"]))
    print("%s: %d schemas, %d answers valid, %d tokens in %.1f s, %d refusals checked" %
          (label, len(schemas), len(schemas) - min(fails, len(schemas)), tokens, dt, len(REFUSED)))
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema-run", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pypi", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=1024)
    args = ap.parse_args()
    install(args.pypi, ["jsonschema"])
    sys.path.insert(0, args.pypi)
    import jsonschema  # noqa: E402
    os.makedirs(args.work, exist_ok=True)
    fails = 0
    schemas = make_schemas(args.n, args.seed)
    # the generator must produce schemas that are themselves valid
    for s in schemas:
        jsonschema.Draft202012Validator.check_schema(s)
    fails += run_model(args, args.model, schemas, jsonschema, "default")
    shared = os.environ.get("VKI_SHARED_DIR", "")
    q4 = os.path.join(shared, "models", "synthetic-llama-gqa-q4_0.gguf")
    gpt2 = os.path.join(shared, "vocab", "llamacpp", "ggml-vocab-gpt-2.gguf")
    few = make_schemas(max(1, args.n // 5), args.seed + 1)
    if shared and os.path.isfile(q4):
        fails += run_model(args, q4, few, jsonschema, "llama-gqa-q4_0")
    else:
        print("skipped: synthetic-llama-gqa-q4_0.gguf (../shared absent: %r)" % shared)
    if shared and os.path.isfile(gpt2):
        bpe = os.path.join(args.work, "tiny-gpt2-bpe.gguf")
        if not os.path.isfile(bpe):
            p = subprocess.run([args.gen, "--preset", "tiny", "--vocab-from", gpt2, "-o", bpe], capture_output=True,
                               text=True)
            if p.returncode != 0:
                print("FAILED: vkinfer-gen with the GPT-2 vocabulary: %s" % p.stderr[-1000:])
                return 1
        fails += run_model(args, bpe, few, jsonschema, "tiny-gpt2-bpe")
    else:
        print("skipped: the GPT-2 BPE vocabulary (../shared absent: %r)" % shared)
    if fails:
        print("FAILED: %d answers" % fails)
        return 1
    print("test_schema_fuzz: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
