#!/usr/bin/env python3
"""test_openai_sdk.py: `vkinfer serve` driven by the official `openai` Python
SDK, as users call it. The SDK is installed from PyPI at test time into a
private folder (pip --target, once per build folder); without PyPI the test
FAILS, it is not skipped. Checks models.list/retrieve, chat and completions
plain and streamed with stream_options.include_usage, max_completion_tokens,
embeddings with the SDK's defaults (base64) equal to encoding_format float,
dimensions, and the typed errors (NotFoundError, BadRequestError) for unknown
models and for fields we do not implement.
Usage: test_openai_sdk.py --vkinfer PATH --model default.gguf --pypi DIR"""
import argparse, array, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402


def install_sdk(dest):
    """Installs openai into dest (once); exits 1 with pip's reason when it cannot."""
    if os.path.isdir(os.path.join(dest, "openai")):
        return
    part = dest + ".part"
    shutil.rmtree(part, ignore_errors=True)
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-input",
                        "--disable-pip-version-check", "--timeout", "30", "--retries", "2", "--target", part, "openai"],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-3000:])
        raise SystemExit("FAILED: pip could not install openai from PyPI into %s (no network to PyPI?)" % part)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(part, dest)


def raises(exc_type, fn, what, needle=None):
    """Calls fn; checks it raises exc_type whose message holds needle."""
    try:
        fn()
    except exc_type as e:
        return check(needle is None or needle in str(e), "%s: %s lacks %r" % (what, e, needle))
    except Exception as e:  # noqa: BLE001
        return check(False, "%s: raised %s (%s), expected %s" % (what, type(e).__name__, e, exc_type.__name__))
    return check(False, "%s: no error, expected %s" % (what, exc_type.__name__))


def test_models(openai, client, bert):
    ids = [m.id for m in client.models.list()]
    check("default" in ids and ("embed" in ids) == bool(bert), "models.list: %s" % ids)
    m = client.models.retrieve("default")
    check(m.id == "default" and m.object == "model" and m.owned_by == "vkinfer", "models.retrieve: %s" % m)
    raises(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"), "models.retrieve unknown",
           "no-such-model")


def test_chat(openai, client):
    msgs = [{"role": "user", "content": "Once upon a time"}]
    r = client.chat.completions.create(model="default", messages=msgs, max_tokens=8, temperature=0)
    text = r.choices[0].message.content
    check(r.object == "chat.completion" and isinstance(text, str) and r.usage.prompt_tokens > 0 and
          0 < r.usage.completion_tokens <= 8 and r.choices[0].finish_reason in ("stop", "length"), "chat: %s" % r)
    chunks = list(client.chat.completions.create(model="default", messages=msgs, max_tokens=8, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(last.choices == [] and last.usage is not None and last.usage.completion_tokens == r.usage.completion_tokens
          and last.usage.prompt_tokens == r.usage.prompt_tokens, "chat stream include_usage: last chunk %s" % last)
    check(streamed == text, "chat stream text %r != plain %r" % (streamed, text))
    chunks = list(client.chat.completions.create(model="default", messages=msgs, max_tokens=4, temperature=0,
                                                 stream=True))
    check(all(c.choices for c in chunks), "chat stream without include_usage: no usage-only chunk")
    r = client.chat.completions.create(model="default", messages=msgs, max_completion_tokens=3, temperature=0,
                                       user="u1", metadata={"k": "v"})
    check(r.usage.completion_tokens <= 3, "max_completion_tokens: %s" % r.usage)


def test_completions(openai, client):
    r = client.completions.create(model="default", prompt="Once upon a time", max_tokens=8, temperature=0)
    text = r.choices[0].text
    check(r.object == "text_completion" and isinstance(text, str) and r.usage.completion_tokens > 0,
          "completions: %s" % r)
    chunks = list(client.completions.create(model="default", prompt="Once upon a time", max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    check(last.choices == [] and last.usage and last.usage.total_tokens == r.usage.total_tokens,
          "completions stream include_usage: last chunk %s" % last)
    check("".join(c.choices[0].text for c in chunks if c.choices) == text, "completions stream text")


def test_embeddings(openai, client, bert):
    if not bert:
        print("embeddings through the SDK: skipped (../shared/models/synthetic-bert-mini-f32.gguf is absent)")
        return
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    b64 = client.embeddings.create(model="embed", input=texts)  # the SDK asks for base64
    flt = client.embeddings.create(model="embed", input=texts, encoding_format="float")
    check(len(b64.data) == 2 and len(flt.data) == 2, "embeddings: %s" % b64)
    # Both carry the same float32 values: base64 exactly, the JSON numbers
    # within cJSON's printing (15 digits when they read back within an ulp
    # of the double), so they are compared as float32.
    f32 = lambda v: array.array("f", v).tobytes()  # noqa: E731
    same = all(f32(a.embedding) == f32(b.embedding) for a, b in zip(b64.data, flt.data))
    worst = max(abs(x - y) for a, b in zip(b64.data, flt.data) for x, y in zip(a.embedding, b.embedding))
    check(same and len(b64.data[0].embedding) == len(flt.data[0].embedding) > 0,
          "embeddings base64 vs float differ as float32 (by %g)" % worst)
    width = len(flt.data[0].embedding)
    full = client.embeddings.create(model="embed", input=texts[0], dimensions=width, encoding_format="float")
    check(full.data[0].embedding == flt.data[0].embedding, "dimensions = the full width is a no-op")
    raises(openai.BadRequestError, lambda: client.embeddings.create(model="embed", input="x", dimensions=width // 2),
           "dimensions below the width", "dimensions")
    raises(openai.BadRequestError, lambda: client.embeddings.create(model="embed", input="x", encoding_format="int8"),
           "encoding_format int8", "int8")


def test_errors(openai, client):
    msgs = [{"role": "user", "content": "hi"}]
    raises(openai.NotFoundError, lambda: client.chat.completions.create(model="nope", messages=msgs), "unknown model",
           "nope")
    chat = client.chat.completions.create
    for name, kw in (("response_format", {"response_format": {"type": "json_object"}}),
                     ("tools", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
                     ("tool_choice", {"tool_choice": "required"}),
                     ("logprobs", {"logprobs": True}),
                     ("top_logprobs", {"top_logprobs": 2}),
                     ("n", {"n": 2}),
                     ("logit_bias", {"logit_bias": {"1": 5}}),
                     ("frobnicate", {"extra_body": {"frobnicate": 1}})):
        raises(openai.BadRequestError, lambda: chat(model="default", messages=msgs, max_tokens=2, **kw),
               "chat %s" % name, name)
    raises(openai.BadRequestError, lambda: chat(model="default", messages=msgs, stream_options={"include_usage": True}),
           "stream_options without stream", "stream_options")
    for name, kw in (("echo", {"echo": True}), ("best_of", {"best_of": 2}), ("logprobs", {"logprobs": 2}),
                     ("suffix", {"suffix": "end"})):
        raises(openai.BadRequestError,
               lambda: client.completions.create(model="default", prompt="x", max_tokens=2, **kw),
               "completions %s" % name, name)
    # neutral values ask for nothing and are accepted
    r = chat(model="default", messages=msgs, max_tokens=2, response_format={"type": "text"}, tool_choice="none",
             logprobs=False, n=1, logit_bias={})
    check(r.choices[0].message.role == "assistant", "neutral values accepted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pypi", required=True, help="folder the openai package is installed into")
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent" % a.model)
        return 77
    install_sdk(a.pypi)
    sys.path.insert(0, a.pypi)
    import openai
    shared = os.environ.get("VKI_SHARED_DIR") or os.path.join(os.path.dirname(__file__), "../../../shared")
    bert = os.path.join(shared, "models/synthetic-bert-mini-f32.gguf")
    bert = bert if os.path.exists(bert) else None
    t0 = time.time()
    args = ["-m", a.model, "--id", "default", "--parallel", "2"]
    if bert:
        args += ["-m", bert, "--id", "embed"]
    s = Server(a.vkinfer, args)
    s.wait_ready()
    client = openai.OpenAI(base_url="http://%s:%d/v1" % (s.host, s.port), api_key="unused", max_retries=0,
                           timeout=60)
    print("openai %s" % openai.__version__)
    test_models(openai, client, bert)
    test_chat(openai, client)
    test_completions(openai, client)
    test_embeddings(openai, client, bert)
    test_errors(openai, client)
    s.stop()
    failures = test_server.failures
    print("test_openai_sdk: %s (%.1f s)" % ("passed" if not failures else "%d failures" % failures, time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
