#!/usr/bin/env python3
"""test_utf8.py: every byte vkinfer prints is valid UTF-8, checked with strict
decoders (bytes.decode("utf-8") without errors=, then json.loads), on models
that generate byte-fallback and split UTF-8 tokens on purpose (utf8_model.py:
an SPM vocabulary with <0xNN> tokens, and a byte-level BPE one without
tokenizer.ggml.pre, which must load with a warning).

The rule everywhere: a character split across tokens arrives whole with the
token that completes it (held back, never replaced); only bytes that cannot
become a character turn into U+FFFD, one per maximal broken part, which is
exactly what Python's bytes.decode("utf-8", "replace") gives for the same
bytes. Paths: `vkinfer run --json` (steps and text), `vkinfer run` text,
`vkinfer detokenize`, and the server's JSON answers, SSE chunks, logprobs
(split tokens as "bytes:\\xNN" with their bytes), error bodies and JSON log
lines.
Usage: test_utf8.py --vkinfer PATH [--no-server]"""
import argparse, http.client, json, os, re, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import utf8_model  # noqa: E402

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("CHECK failed:", what, file=sys.stderr)
    return cond


def strict(b, what):
    """b decoded as UTF-8 with no replacement; None (and a failure) if invalid."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, "%s is not valid UTF-8: %s near %r" % (what, e, b[max(0, e.start - 20):e.end + 20]))
        return None


def strict_json(b, what):
    s = strict(b, what)
    if s is None:
        return None
    try:
        return json.loads(s)
    except ValueError as e:
        check(False, "%s is not JSON: %s: %r" % (what, e, s[:200]))
        return None


EXPECTED = utf8_model.chain_bytes().decode("utf-8", "replace")


def test_cli(exe, models):
    for kind, (path, chain, eos) in models.items():
        p = subprocess.run([exe, "run", "-m", path, "-p", "S", "-n", "0", "--temp", "0", "--json", "--backend", "cpu",
                            "--threads", "2"], capture_output=True)
        check(p.returncode == 0, "%s: run --json exit %d: %r" % (kind, p.returncode, p.stderr[-500:]))
        strict(p.stderr, "%s: run stderr" % kind)
        o = strict_json(p.stdout, "%s: run --json" % kind)
        if not o:
            continue
        ids = [s["id"] for s in o["steps"]]
        check(ids == chain + [eos], "%s: the model walks its chain: %s" % (kind, ids))
        check(o["text"] == EXPECTED, "%s: text %r, expected %r" % (kind, o["text"], EXPECTED))
        check("".join(s["text"] for s in o["steps"]) == o["text"], "%s: steps add up to text" % kind)
        # split characters come whole with their last byte, not as U+FFFD
        texts = [s["text"] for s in o["steps"]]
        for ch, n in (("\u20ac", 3), ("\u00e9", 2), ("\U0001f600", 4)):
            at = [i for i, t in enumerate(texts) if ch in t]
            check(len(at) == 1 and all(t == "" for t in texts[at[0] - n + 1:at[0]]),
                  "%s: %r held back over %d tokens: %r" % (kind, ch, n, texts))
        check(o["stopped_by_eos"] is True, "%s: ends at EOS" % kind)
        # the generation stops inside a character: the tail is one U+FFFD
        p = subprocess.run([exe, "run", "-m", path, "-p", "S", "-n", "2", "--temp", "0", "--json", "--backend", "cpu"],
                           capture_output=True)
        o = strict_json(p.stdout, "%s: run --json -n 2" % kind)
        check(o and o["text"] == "\ufffd", "%s: cut inside U+20AC: %r" % (kind, o and o["text"]))
        # the streamed text (no --json)
        p = subprocess.run([exe, "run", "-m", path, "-p", "S", "-n", "0", "--temp", "0", "--backend", "cpu"],
                           capture_output=True)
        s = strict(p.stdout, "%s: run text" % kind)
        check(s == EXPECTED + "\n", "%s: run text %r" % (kind, s))
        if kind == "bpe":
            check(b"tokenizer.ggml.pre" in p.stderr and b"warning" in p.stderr,
                  "bpe without tokenizer.ggml.pre warns: %r" % p.stderr[-300:])
    # detokenize one byte token that is not a character
    path, chain, _ = models["spm"]
    p = subprocess.run([exe, "detokenize", "-m", path, str(chain[4])], capture_output=True)
    check(strict(p.stdout, "detokenize <0x8C>") == "\ufffd\n", "detokenize <0x8C>: %r" % p.stdout)
    p = subprocess.run([exe, "detokenize", "-m", path] + [str(i) for i in chain], capture_output=True)
    check(strict(p.stdout, "detokenize the chain") == EXPECTED + "\n", "detokenize the chain: %r" % p.stdout)


class Server:
    def __init__(self, exe, args):
        self.proc = subprocess.Popen([exe, "serve", "--port", "0", "--backend", "cpu", "--threads", "2"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        m = re.search(rb"http://([^:]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit("server did not start: %r %r" % (line, self.proc.stderr.read()))
        self.host, self.port = m.group(1).decode(), int(m.group(2))
        # the models open in the background: until then a request gets 503 model_loading
        t0 = time.time()
        while time.time() - t0 < 60 and self.raw("GET", "/health")[0] != 200:
            time.sleep(0.05)

    def raw(self, method, path, body=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=60)
        check(self.proc.returncode == 0, "server exit status %s" % self.proc.returncode)
        return out, err


def sse_events(data, what):
    events = []
    for ev in data.split(b"\n\n"):
        if not ev or ev.startswith(b": "):  # an SSE comment (the queue place) is not an event
            continue
        check(ev.startswith(b"data: "), "%s: event %r" % (what, ev[:40]))
        if ev == b"data: [DONE]":
            events.append("[DONE]")
            continue
        o = strict_json(ev[6:], "%s: SSE event" % what)
        if o:
            events.append(o)
    return events


def test_server(exe, models):
    args = ["--log-format", "json"]
    for kind, (path, _, _) in models.items():
        args += ["-m", path, "--id", kind]
    s = Server(exe, args)
    try:
        for kind in models:
            body = {"model": kind, "prompt": "S", "max_tokens": 64, "temperature": 0}
            st, data = s.raw("POST", "/v1/completions", json.dumps(body))
            o = strict_json(data, "%s: completion" % kind)
            check(st == 200 and o and o["choices"][0]["text"] == EXPECTED and
                  o["choices"][0]["finish_reason"] == "stop", "%s: completion %s %r" % (kind, st, data[:300]))
            st, data = s.raw("POST", "/v1/completions", json.dumps(dict(body, stream=True)))
            evs = sse_events(data, "%s: completion stream" % kind)
            text = "".join(e["choices"][0]["text"] for e in evs if e != "[DONE]")
            check(st == 200 and evs and evs[-1] == "[DONE]" and text == EXPECTED,
                  "%s: stream %r, expected %r" % (kind, text, EXPECTED))
            chat = {"model": kind, "messages": [{"role": "user", "content": "S"}], "temperature": 0}
            st, data = s.raw("POST", "/v1/chat/completions", json.dumps(chat))
            o = strict_json(data, "%s: chat" % kind)
            check(st == 200 and o and o["choices"][0]["message"]["content"] == EXPECTED,
                  "%s: chat %s %r" % (kind, st, data[:300]))
            st, data = s.raw("POST", "/v1/chat/completions", json.dumps(dict(chat, stream=True)))
            evs = sse_events(data, "%s: chat stream" % kind)
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in evs if e != "[DONE]")
            check(st == 200 and text == EXPECTED, "%s: chat stream %r" % (kind, text))
            # logprobs: a token holding part of a character is "bytes:\xNN" with its
            # exact bytes, and the tokens' bytes decoded as above are the text
            st, data = s.raw("POST", "/v1/chat/completions", json.dumps(dict(chat, logprobs=True, top_logprobs=1)))
            o = strict_json(data, "%s: chat logprobs" % kind)
            ents = o["choices"][0]["logprobs"]["content"] if o and st == 200 else []
            spelled = b"".join(bytes(e["bytes"]) for e in ents)
            split = [e for e in ents if e["token"].startswith("bytes:")]
            check(ents and spelled.decode("utf-8", "replace") == EXPECTED and split and
                  all(e["token"] == "bytes:" + "".join("\\x%02x" % v for v in e["bytes"]) for e in split),
                  "%s: chat logprobs %r" % (kind, data[:400]))
            st, data = s.raw("POST", "/v1/completions", json.dumps(dict(body, max_tokens=2)))
            o = strict_json(data, "%s: completion cut inside a character" % kind)
            check(o and o["choices"][0]["text"] == "\ufffd", "%s: max_tokens 2: %r" % (kind, data[:300]))
        # an error body quoting invalid bytes the client sent
        st, data = s.raw("POST", "/v1/completions", b'{"model":"bad\xff\xc3name","prompt":"x"}')
        o = strict_json(data, "error body")
        check(st == 404 and o and "bad\ufffd\ufffdname" in o["error"]["message"], "error body %s %r" % (st, data))
        for route in ("/health", "/v1/models"):
            st, data = s.raw("GET", route)
            strict_json(data, route)
    finally:
        _, err = s.stop()
    lines = [strict_json(ln, "log line") for ln in err.splitlines() if ln.strip()]
    check(lines and all(isinstance(x, dict) and "event" in x for x in lines), "log lines are JSON objects")
    events = [x for x in lines if x]
    check(any(x["event"] == "model" and x.get("state", "").startswith("resident") and x["model"] == k
              for x in events for k in models), "the log says where the models are")
    check(any(x["event"] == "warning" and "tokenizer.ggml.pre" in x["message"] for x in events),
          "the BPE model's missing tokenizer.ggml.pre is a warning in the log")
    reqs = [x for x in events if x["event"] == "request"]
    check(any(x["status"] == 404 and x["model"] is None for x in reqs), "the 404 is logged: %s" % reqs[-3:])
    check(any(x["path"] == "/v1/chat/completions" and x["completion_tokens"] == len(utf8_model.CHAIN) + 1
              for x in reqs), "chat requests logged with their tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--no-server", action="store_true", help="vkinfer was built without the server")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for kind in ("spm", "bpe"):
            path = os.path.join(tmp, "utf8-%s.gguf" % kind)
            chain, eos = utf8_model.write(path, kind)
            models[kind] = (path, chain, eos)
        test_cli(a.vkinfer, models)
        if a.no_server:
            print("server paths: skipped (vkinfer was built without the server)")
        else:
            test_server(a.vkinfer, models)
    print("test_utf8: %s" % ("passed" if not failures else "%d failures" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
