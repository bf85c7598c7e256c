#!/usr/bin/env python3
"""test_server.py: `vkinfer serve` end to end on the CPU backend.

Starts the server on a free port with the generated default model (and the
shared BERT model when ../shared is present), then checks every route, that
an SSE stream reassembles to the non-stream text for greedy decoding (and
ends with a usage chunk on stream_options.include_usage), that embeddings
match `vkinfer embed` (float and base64), fields we do not implement
refused by name, /health "degraded" with one failed model, every error
status (400 401 404 405 413 429 503 504), 8 concurrent clients, client-disconnect cancellation, malformed
config files (file:line:column), the log (one line per model state change
and per request, text and --log-format json), that a -m model which cannot
be opened stops the start, the start-up examples per kind of model, and a
clean exit on SIGTERM (under ASan a leak makes that exit non-zero).
Usage: test_server.py --vkinfer PATH --model default.gguf"""
import argparse, base64, http.client, json, os, re, signal, struct, subprocess, sys, tempfile, threading, time

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("CHECK failed:", what, file=sys.stderr)
    return cond


class Server:
    def __init__(self, exe, args, env=None, backend="cpu"):
        """backend None: the one the config or the machine picks (Vulkan where there is one)."""
        flags = ["--backend", backend] if backend else []
        self.proc = subprocess.Popen([exe, "serve", "--port", "0"] + flags + ["--threads", "2"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"http://([^:]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit("server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.host, self.port = m.group(1), int(m.group(2))
        # The log (stderr) and the rest of stdout are read as they come: a
        # full pipe would stall the server's writes.
        self.out, self.err = [line.encode()], []
        self.readers = [threading.Thread(target=self._drain, args=(f, buf), daemon=True)
                        for f, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    @staticmethod
    def _drain(f, buf):
        for line in iter(f.readline, b""):
            buf.append(line)

    def stdout_text(self):
        return b"".join(self.out).decode("utf-8")

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read().decode("utf-8", "replace")
        c.close()
        try:
            js = json.loads(payload)
        except ValueError:
            js = None
        return r.status, js, payload, r

    def stream(self, path, body, headers=None):
        """Returns (status, list of data payloads)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps(body).encode(), headers=h)
        r = c.getresponse()
        if r.status != 200:
            return r.status, [json.loads(r.read())]
        check(r.getheader("Content-Type", "").startswith("text/event-stream"), "SSE content type")
        check(r.getheader("X-Queue-Position") is not None and r.getheader("X-Queue-ETA") is not None,
              "a stream's answer carries X-Queue-Position and X-Queue-ETA")
        events, buf, first = [], b"", True
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                # The first bytes are an SSE comment with the request's place in its queue.
                if first:
                    check(re.match(rb": queue position=\d+ eta_s=[\d.]+$", ev), "SSE starts with the queue comment "
                          "(%r)" % ev[:60])
                    first = False
                    continue
                check(ev.startswith(b"data: "), "SSE event starts with data: (%r)" % ev[:40])
                events.append(ev[6:].decode())
        c.close()
        return 200, events

    def wait_ready(self, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, js, _, _ = self.request("GET", "/health")
            if st == 200:
                return js
            time.sleep(0.05)
        raise SystemExit("server not ready: %s" % js)

    def stop(self):
        """Stops the server; returns its log (stderr), which must be valid UTF-8."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            check(False, "server did not exit within 60 s of SIGTERM")
        for t in self.readers:
            t.join(10)
        raw = b"".join(self.err)
        try:
            err = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            check(False, "the log is not valid UTF-8: %s" % e)
            err = raw.decode("utf-8", "replace")
        check(self.proc.returncode == 0, "server exit status %s; stderr:\n%s" % (self.proc.returncode, err[-3000:]))
        return err


def error_of(js):
    return js and js.get("error") or {}


def join_stream(events, chat):
    check(events and events[-1] == "[DONE]", "stream ends with [DONE]")
    text, finish, usage = "", None, None
    for ev in events[:-1]:
        o = json.loads(ev)
        ch = o["choices"][0]
        text += (ch["delta"].get("content") or "") if chat else ch["text"]
        if ch.get("finish_reason"):
            finish = ch["finish_reason"]
            usage = o.get("usage")
    return text, finish, usage


def test_routes(s, shared_bert, exe):
    js = s.wait_ready()
    check(js["status"] == "ok" and all(m["state"].startswith("resident-") for m in js["models"]), "health: %s" % js)
    st, js, _, _ = s.request("GET", "/v1/models")
    ids = [m["id"] for m in js["data"]]
    check(st == 200 and js["object"] == "list" and "default" in ids, "models: %s" % js)

    # completions: non-stream vs stream, greedy
    body = {"model": "default", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}
    st, js, _, _ = s.request("POST", "/v1/completions", body)
    check(st == 200 and js["object"] == "text_completion", "completion: %s" % js)
    text = js["choices"][0]["text"]
    check(js["usage"]["completion_tokens"] == 24 and js["choices"][0]["finish_reason"] == "length", "usage %s" % js)
    check(js["usage"]["prompt_tokens"] > 0 and len(text) > 0, "completion text/usage")
    st, events = s.stream("/v1/completions", dict(body, stream=True))
    stext, finish, usage = join_stream(events, False)
    check(st == 200 and stext == text, "stream text %r != %r" % (stext, text))
    check(finish == "length" and usage["completion_tokens"] == 24, "stream end %s %s" % (finish, usage))
    # a tiny model makes its 24 tokens faster than the stream is read, so
    # chunks may coalesce: at least one text chunk, the usage/finish one, [DONE]
    check(len(events) >= 3, "stream came in chunks (%d)" % len(events))
    st, js, _, _ = s.request("GET", "/v1/models/default")
    check(st == 200 and js.get("id") == "default" and js.get("object") == "model", "models/default: %s %s" % (st, js))
    st, js, _, _ = s.request("GET", "/v1/models/nope")
    check(st == 404 and "nope" in error_of(js).get("message", ""), "models/nope: %s %s" % (st, js))

    # the same text as `vkinfer run` greedy
    # the same text as `vkinfer run` (which prints the raw bytes; the server
    # sends valid UTF-8, each broken part as one U+FFFD, as Python decodes)
    run = subprocess.run([exe, "run", "-m", s.model, "-p", "Once upon a time", "-n", "24", "--temp", "0",
                          "--backend", "cpu", "--threads", "2"], capture_output=True)
    check(run.returncode == 0 and run.stdout.decode("utf-8", "replace").rstrip("\n") == text,
          "server text equals vkinfer run: %r vs %r" % (run.stdout, text))

    # stop strings end the text before the stop
    word = re.search(r"(?<=.)[a-z]{2,}", text)
    if check(word, "an ASCII word in %r to stop at" % text):
        stop = word.group(0)
        st, js, _, _ = s.request("POST", "/v1/completions", dict(body, stop=[stop, "zzzz"]))
        check(st == 200 and js["choices"][0]["text"] == text[:text.find(stop)] and
              js["choices"][0]["finish_reason"] == "stop", "stop string: %s" % js)

    # chat: non-stream vs stream
    chat = {"model": "default", "messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": "Tell me a story"}],
            "max_tokens": 16, "temperature": 0}
    st, js, _, _ = s.request("POST", "/v1/chat/completions", chat)
    check(st == 200 and js["object"] == "chat.completion" and js["choices"][0]["message"]["role"] == "assistant",
          "chat: %s" % js)
    ctext = js["choices"][0]["message"]["content"]
    st, events = s.stream("/v1/chat/completions", dict(chat, stream=True))
    sc, finish, _ = join_stream(events, True)
    check(st == 200 and sc == ctext and finish == "length", "chat stream %r != %r" % (sc, ctext))
    check(json.loads(events[0])["choices"][0]["delta"].get("role") == "assistant", "first chunk has the role")
    # stream_options.include_usage: a last chunk with no choices and the usage
    for path, b in (("/v1/chat/completions", chat), ("/v1/completions", body)):
        st, events = s.stream(path, dict(b, stream=True, stream_options={"include_usage": True}))
        last = json.loads(events[-2]) if len(events) > 1 else {}
        check(st == 200 and last.get("choices") == [] and last.get("usage", {}).get("completion_tokens") ==
              b["max_tokens"], "%s include_usage: last chunk %s" % (path, events[-2:]))

    # seeded sampling repeats
    samp = dict(body, temperature=0.9, top_p=0.9, top_k=20, seed=42)
    a = s.request("POST", "/v1/completions", samp)[1]["choices"][0]["text"]
    b = s.request("POST", "/v1/completions", samp)[1]["choices"][0]["text"]
    check(a == b, "same seed, same text")

    # embeddings against `vkinfer embed`
    if shared_bert:
        texts = ["hello world", "the quick brown fox jumps over the lazy dog"]
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": texts})
        check(st == 200 and js["object"] == "list" and len(js["data"]) == 2, "embeddings: %s" % str(js)[:200])
        out = subprocess.run([exe, "embed", "-m", shared_bert, "--backend", "cpu", "--threads", "2", "--json"] + texts,
                             capture_output=True, text=True)
        ref = json.loads(out.stdout)["embeddings"]
        worst = max(abs(x - y) for d, r in zip(js["data"], ref) for x, y in zip(d["embedding"], r))
        check(worst < 1e-5, "embeddings differ from vkinfer embed by %g" % worst)
        check(js["usage"]["prompt_tokens"] > 4 and js["data"][1]["index"] == 1, "embedding usage/index")
        st, js1, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": texts[0],
                                                            "encoding_format": "float"})
        check(st == 200 and len(js1["data"]) == 1 and
              max(abs(x - y) for x, y in zip(js1["data"][0]["embedding"], ref[0])) < 1e-5, "single string input")
        # base64: the same float32 values, little-endian
        st, jb, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": texts,
                                                           "encoding_format": "base64"})
        if check(st == 200 and isinstance(jb["data"][0]["embedding"], str), "base64 embeddings: %s" % str(jb)[:200]):
            for d, r in zip(jb["data"], ref):
                raw = base64.b64decode(d["embedding"])
                got = struct.unpack("<%df" % (len(raw) // 4), raw)
                check(len(got) == len(r) and max(abs(x - y) for x, y in zip(got, r)) < 1e-5, "base64 = float")
        for extra, field in (({"encoding_format": "int8"}, "int8"), ({"dimensions": 3}, "dimensions"),
                             ({"frobnicate": 1}, "frobnicate")):
            st, js, _, _ = s.request("POST", "/v1/embeddings", dict({"model": "embed", "input": "x"}, **extra))
            check(st == 400 and field in error_of(js).get("message", ""), "embeddings %s: %s %s" % (extra, st, js))
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": "x", "dimensions": len(ref[0])})
        check(st == 200, "dimensions = the full width: %s %s" % (st, str(js)[:200]))
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "default", "input": "x"})
        check(st == 400 and "chat" in error_of(js).get("message", ""), "embeddings on a chat model: %s" % js)
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": [1, 2]})
        check(st == 400 and "input" in error_of(js).get("message", ""), "token-array input refused")
    else:
        print("embeddings vs vkinfer embed: skipped (../shared/models/synthetic-bert-mini-f32.gguf is absent)")
    return text


def test_special_text(s):
    """Message content is text: a user's special-token text (the vocabulary's
    BOS/EOS written out) costs the tokens of its characters, never one
    control token each (issue 17: prompt injection)."""
    def prompt_tokens(content):
        st, js, _, _ = s.request("POST", "/v1/chat/completions", {
            "model": "default", "messages": [{"role": "user", "content": content}], "max_tokens": 1, "temperature": 0})
        check(st == 200, "chat for the special-token test: %s %s" % (st, js))
        return js["usage"]["prompt_tokens"] if st == 200 else 0
    base = prompt_tokens("x")
    for sp in ("</s>", "<s>", "<|im_end|>", "<|im_start|>"):
        n = prompt_tokens("x" + sp * 4)
        # as control tokens the four would add exactly 4; as text each is several pieces
        check(n > base + 4, "content %r x4 took %d prompt tokens over %d: parsed as special tokens?" % (sp, n - base, base))


def test_errors(s):
    def err(st_expect, method, path, body=None, raw=None, headers=None, field=None):
        st, js, payload, r = s.request(method, path, body, raw=raw, headers=headers)
        e = error_of(js)
        ok = check(st == st_expect and e.get("message") and e.get("type") and e.get("code"),
                   "%s %s -> %s %s (expected %d)" % (method, path, st, payload[:200], st_expect))
        if ok and field:
            check(field in e["message"], "the message names %r: %s" % (field, e["message"]))
        return r
    err(400, "POST", "/v1/completions", raw=b"{not json")
    err(400, "POST", "/v1/completions", raw=b"[1,2]")
    err(400, "POST", "/v1/completions", {"prompt": "x", "temperature": "hot"}, field="temperature")
    err(400, "POST", "/v1/completions", {"prompt": "x", "max_tokens": -3}, field="max_tokens")
    err(400, "POST", "/v1/completions", {"prompt": "x", "n": 0}, field="n")
    err(400, "POST", "/v1/completions", {"prompt": "x", "n": 5}, field="n_seq_max")  # --parallel 4
    err(400, "POST", "/v1/completions", {"prompt": "x", "stop": 5}, field="stop")
    err(400, "POST", "/v1/completions", {"prompt": "x", "top_p": 0}, field="top_p")
    err(400, "POST", "/v1/completions", {"max_tokens": 3}, field="prompt")
    err(400, "POST", "/v1/completions", {"prompt": "x", "priority": "urgent"}, field="priority")
    err(400, "POST", "/v1/completions", {"prompt": "a " * 3000}, field="context")
    err(400, "POST", "/v1/chat/completions", {"messages": []}, field="messages")
    # fields we do not implement are refused by name; neutral values pass
    for extra, field in (({"response_format": {"type": "xml"}}, "response_format"),
                         ({"tools": [{"type": "function"}]}, "tools"), ({"logprobs": 1}, "logprobs"),
                         ({"top_logprobs": 2}, "top_logprobs"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
                         ({"tool_choice": "auto"}, "tool_choice"), ({"frobnicate": 1}, "frobnicate"),
                         ({"stream_options": {"include_usage": True}}, "stream_options")):
        err(400, "POST", "/v1/chat/completions", dict({"messages": [{"role": "user", "content": "x"}]}, **extra),
            field=field)
    for extra, field in (({"echo": True}, "echo"), ({"best_of": 3}, "best_of"), ({"logprobs": 6}, "logprobs"),
                         ({"logprobs": True}, "logprobs"), ({"suffix": "z"}, "suffix"), ({"prompt": []}, "prompt"),
                         ({"prompt": ["a", [1]]}, "prompt"), ({"prompt": [[1, -2]]}, "prompt"),
                         ({"prompt": [1, 2.5]}, "prompt"), ({"prompt": ["x"] * 65}, "prompt"),
                         ({"max_completion_tokens": 2}, "max_completion_tokens")):
        err(400, "POST", "/v1/completions", dict({"prompt": "x"}, **extra), field=field)
    st, js, _, _ = s.request("POST", "/v1/chat/completions",
                             {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 2,
                              "user": "u", "metadata": {"a": "b"}, "response_format": {"type": "text"},
                              "tools": [], "tool_choice": "none", "logprobs": False})
    check(st == 200 and js["usage"]["completion_tokens"] <= 2, "neutral fields accepted: %s %s" % (st, js))
    err(400, "POST", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, field="role")
    err(404, "POST", "/v1/completions", {"model": "nope", "prompt": "x"}, field="nope")
    err(404, "GET", "/v2/anything")
    r = err(405, "GET", "/v1/completions")
    check(r.getheader("Allow") == "POST", "405 says Allow: POST")
    err(405, "POST", "/health", {})
    # 413: a declared length over the limit is answered before the body is sent ...
    import socket
    sk = socket.create_connection((s.host, s.port), timeout=30)
    sk.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % (2 << 20))
    reply = b""
    while b"\r\n\r\n" not in reply:
        part = sk.recv(4096)
        if not part:
            break
        reply += part
    sk.close()
    check(reply.startswith(b"HTTP/1.1 413"), "declared length over max_body: %r" % reply[:80])
    # ... and a chunked body (no length) is cut off as it passes the limit.
    c = http.client.HTTPConnection(s.host, s.port, timeout=60)
    c.request("POST", "/v1/completions", body=iter([b'{"prompt":"'] + [b"a" * 65536] * 32 + [b'"}']),
              headers={"Content-Type": "application/json"}, encode_chunked=True)
    r = c.getresponse()
    js = json.loads(r.read())
    c.close()
    check(r.status == 413 and error_of(js).get("code") == "body_too_large", "chunked body over max_body: %s" % r.status)


def test_logprob_shapes(s):
    """The raw shapes of logprobs, n and several prompts (the SDK test checks the numbers)."""
    chat = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "temperature": 0, "ignore_eos": True}
    st, js, _, _ = s.request("POST", "/v1/chat/completions", dict(chat, logprobs=True, top_logprobs=2, n=2))
    ok = st == 200 and [c["index"] for c in js["choices"]] == [0, 1]
    for c in js["choices"] if ok else []:
        lp = c["logprobs"]
        ok = ok and sorted(lp) == ["content", "refusal"] and len(lp["content"]) == 3
        for e in lp["content"] if ok else []:
            ok = ok and sorted(e) == ["bytes", "logprob", "token", "top_logprobs"] and len(e["top_logprobs"]) == 2
            ok = ok and all(sorted(t) == ["bytes", "logprob", "token"] for t in e["top_logprobs"])
            ok = ok and all(isinstance(b, int) and 0 <= b < 256 for b in e["bytes"])
    check(ok and js["usage"]["completion_tokens"] == 6, "chat logprobs shape: %s %s" % (st, js))
    st, js, _, _ = s.request("POST", "/v1/chat/completions", chat)
    check(st == 200 and js["choices"][0]["logprobs"] is None, "chat without logprobs: null: %s" % js)
    comp = {"prompt": ["a", "b"], "max_tokens": 2, "temperature": 0, "ignore_eos": True, "logprobs": 0, "n": 2}
    st, js, _, _ = s.request("POST", "/v1/completions", comp)
    ok = st == 200 and [c["index"] for c in js["choices"]] == [0, 1, 2, 3]
    for c in js["choices"] if ok else []:
        lp = c["logprobs"]
        ok = ok and sorted(lp) == ["text_offset", "token_logprobs", "tokens", "top_logprobs"]
        ok = ok and all(len(lp[k]) == 2 for k in lp)
        # logprobs 0: no alternatives, but the sampled token, as OpenAI lists it
        ok = ok and all(list(d) == [t] for d, t in zip(lp["top_logprobs"], lp["tokens"]))
    check(ok and js["usage"]["completion_tokens"] == 8, "completions logprobs shape: %s %s" % (st, js))
    st, events = s.stream("/v1/completions", dict(comp, stream=True))
    idx = sorted({json.loads(e)["choices"][0]["index"] for e in events[:-1]})
    ends = [json.loads(e)["choices"][0]["index"] for e in events[:-1] if json.loads(e)["choices"][0]["finish_reason"]]
    check(st == 200 and idx == [0, 1, 2, 3] and sorted(ends) == [0, 1, 2, 3] and events[-1] == "[DONE]",
          "several prompts streamed: indices %s ends %s" % (idx, ends))
    st, js, _, _ = s.request("POST", "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 1})
    check(st == 200 and js["usage"]["prompt_tokens"] == 3, "one token id prompt: %s %s" % (st, js))


def test_garbage(s):
    """Random and hostile bodies on every POST route: always a 4xx, never a crash."""
    import random
    rng = random.Random(1234)
    samples = [b"", b"null", b"{}", b'{"prompt":null}', b'{"prompt":{"a":1}}', b'{"messages":"hi"}',
               b'{"messages":[null]}', b'{"messages":[{"role":"user","content":[{"type":"image"}]}]}',
               b'{"input":[]}', b'{"input":[null]}', b'{"prompt":"x","max_tokens":1e300}',
               b'{"prompt":"x","stop":["' + b"s" * 100 + b'"],"seed":-1}', b'{"prompt":"\ud800"}',
               b'\xff\xfe\x00', b'{"prompt":"x",' * 50, b"[" * 5000]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(20)]
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"):
        for body in samples:
            st, js, payload, _ = s.request("POST", path, raw=body)
            check(400 <= st < 500 or (st == 200 and js), "%s %r -> %s %s" % (path, body[:40], st, payload[:120]))
    check(s.request("GET", "/health")[0] == 200, "alive after garbage")


def test_concurrent(s, n=8):
    prompts = ["story %d about a %s" % (i, w) for i, w in enumerate("cat dog owl fox bee ant elk yak".split())][:n]
    bodies = [{"model": "default", "prompt": p, "max_tokens": 20 + 3 * i, "temperature": 0}
              for i, p in enumerate(prompts)]
    alone = [s.request("POST", "/v1/completions", b)[1]["choices"][0]["text"] for b in bodies]
    results = [None] * n

    def worker(i):
        results[i] = s.request("POST", "/v1/completions", bodies[i])
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i, (st, js, _, _) in enumerate(results):
        check(st == 200 and js["choices"][0]["text"] == alone[i] and js["usage"]["completion_tokens"] == 20 + 3 * i,
              "concurrent request %d: %s" % (i, str(js)[:200]))


def test_metrics(s):
    st, _, text, r = s.request("GET", "/metrics")
    check(st == 200 and r.getheader("Content-Type", "").startswith("text/plain"), "metrics content type")
    for needle in ['vkinfer_http_requests_total{route="/v1/completions",status="200"}',
                   'vkinfer_http_requests_total{route="/v1/completions",status="400"}',
                   'vkinfer_queue_depth{model="default",priority="interactive"} 0',
                   'vkinfer_generated_tokens_total{model="default"}',
                   'vkinfer_time_to_first_token_seconds_bucket{model="default",le="+Inf"}',
                   'vkinfer_token_latency_seconds_count{model="default"}']:
        check(needle in text, "metrics has %s" % needle)
    m = re.search(r'vkinfer_batch_sequences_total\{model="default"\} (\d+)', text)
    n = re.search(r'vkinfer_batch_steps_total\{model="default"\} (\d+)', text)
    check(m and n and int(m.group(1)) > int(n.group(1)), "some steps decoded several sequences")


def test_degraded(exe, model, tmp):
    """A model that fails leaves /health 200 "degraded" (no key set: the
    error is shown), and a request naming no model goes to the chat model
    that serves, not to the first configured one that failed."""
    cfg = os.path.join(tmp, "degraded.yaml")
    with open(cfg, "w") as f:
        f.write("device: {prefer: cpu}\nmodels:\n"
                "  - id: broken\n    path: %s\n    kind: chat\n"
                "  - id: good\n    path: %s\n    kind: chat\n    n_ctx: 256\n"
                % (os.path.join(tmp, "absent.gguf"), os.path.abspath(model)))
    s = Server(exe, ["--config", cfg])
    t0 = time.time()
    while time.time() - t0 < 60:
        st, js, _, _ = s.request("GET", "/health")
        if js["status"] not in ("loading",):
            break
        time.sleep(0.02)
    check(st == 200 and js["status"] == "degraded" and js["models"][0]["state"] == "failed" and
          "absent.gguf" in js["models"][0].get("error", "") and js["models"][1]["state"].startswith("resident-"),
          "health with one failed model: %s %s" % (st, js))
    for path, body in (("/v1/completions", {"prompt": "x", "max_tokens": 1}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})):
        st, js, _, _ = s.request("POST", path, body)
        check(st == 200 and js["model"] == "good", "%s without a model: the serving one: %s %s" % (path, st, js))
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "broken", "prompt": "x"})
    check(st == 503 and error_of(js).get("code") == "model_failed", "the failed model named: %s %s" % (st, js))
    s.stop()


def test_matryoshka(exe, model, bert, tmp):
    """dimensions: a width the config declares (Matryoshka) gives the first
    values of the full vector normalised again; an undeclared one is a 400
    naming the declared widths; a chat model cannot declare any."""
    if not bert:
        print("matryoshka: skipped (../shared/models/synthetic-bert-mini-f32.gguf absent)")
        return
    cfg = os.path.join(tmp, "mrl.yaml")
    with open(cfg, "w") as f:
        f.write("models:\n  - id: mrl\n    path: %s\n    kind: embedding\n    dimensions: [32, 16]\n"
                % os.path.abspath(bert))
    s = Server(exe, ["--config", cfg])
    s.wait_ready()
    texts = ["the first text", "another one, longer than the first"]
    st, full, _, _ = s.request("POST", "/v1/embeddings", {"model": "mrl", "input": texts})
    check(st == 200, "matryoshka full: %s %s" % (st, str(full)[:200]))
    for d in (32, 16):
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "mrl", "input": texts, "dimensions": d})
        ok = st == 200 and all(len(e["embedding"]) == d for e in js["data"])
        for a, b in zip(full["data"], js["data"] if ok else []):
            pre = a["embedding"][:d]
            norm = sum(x * x for x in pre) ** 0.5
            ok = ok and all(abs(x / norm - y) < 1e-6 for x, y in zip(pre, b["embedding"]))
            ok = ok and abs(sum(y * y for y in b["embedding"]) - 1) < 1e-5
        check(ok, "dimensions %d: the normalised prefix: %s %s" % (d, st, str(js)[:200]))
    st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "mrl", "input": "x", "dimensions": 24})
    check(st == 400 and "32, 16" in error_of(js).get("message", ""), "undeclared width: %s %s" % (st, js))
    s.stop()
    expect_refused = os.path.join(tmp, "mrl_chat.yaml")
    with open(expect_refused, "w") as f:
        f.write("models:\n  - id: c\n    path: %s\n    kind: chat\n    dimensions: [8]\n" % os.path.abspath(model))
    p = subprocess.run([exe, "serve", "--config", expect_refused], capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "embedding models only" in p.stderr, "dimensions on a chat model: %r" % p.stderr)


def test_second_server(exe, model, tmp):
    """auth, queue full (429 + Retry-After), timeout (504), loading/failed (503),
    client-disconnect cancellation, small max_body, shutdown with work in flight."""
    fifo = os.path.join(tmp, "pending.gguf")
    os.mkfifo(fifo)
    cfg = os.path.join(tmp, "serve.yaml")
    with open(cfg, "w") as f:
        f.write("server: {host: 127.0.0.1, port: 8080, api_key_env: VKI_TEST_KEY, max_body: 4KiB, max_queue: 1}\n"
                "device: {prefer: cpu}\n"
                "models:\n"
                "  - id: slow\n    path: %s\n    kind: chat\n    n_ctx: 4096\n    n_seq_max: 1\n"
                "  - id: pending\n    path: pending.gguf\n    kind: chat\n"
                "  - id: idle\n    path: %s\n    kind: chat\n    n_ctx: 256\n    keep_alive: 0\n"
                "    pin: false\n    fallback: [cpu]\n" % (model, model))
    env = dict(os.environ, VKI_TEST_KEY="sekrit")
    s = Server(exe, ["--config", cfg], env=env)
    auth = {"Authorization": "Bearer sekrit"}
    t0 = time.time()
    while "chat/completions" not in s.stdout_text() and time.time() - t0 < 10:
        time.sleep(0.02)
    check("/v1/chat/completions" in s.stdout_text() and "/v1/embeddings" not in s.stdout_text() and
          "Bearer $VKI_TEST_KEY" in s.stdout_text(), "chat-only examples, with the key:\n%s" % s.stdout_text())
    t0 = time.time()
    while time.time() - t0 < 60:  # "slow" loads; "pending" never does
        st, js, _, _ = s.request("GET", "/health")
        if js["models"][0]["state"] == "resident-cpu":
            break
        time.sleep(0.02)
    # The FIFO blocks its loader in open(): that model stays "loading".
    st, js, _, _ = s.request("GET", "/health")
    check(st == 503 and js["status"] == "loading", "health while loading: %s %s" % (st, js))
    st, js, _, r = s.request("POST", "/v1/completions", {"model": "pending", "prompt": "x"}, headers=auth)
    check(st == 503 and error_of(js).get("code") == "model_loading" and r.getheader("Retry-After"),
          "loading model: %s %s" % (st, js))
    # auth
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "slow", "prompt": "x"})
    check(st == 401 and error_of(js).get("type") == "authentication_error", "no key: %s" % st)
    st, js, _, _ = s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    check(st == 401, "bad key: %s" % st)
    st, js, _, _ = s.request("GET", "/v1/models", headers=auth)
    check(st == 200, "good key: %s" % st)
    # max_body from the config (4 KiB)
    c = http.client.HTTPConnection(s.host, s.port, timeout=60)
    try:
        c.request("POST", "/v1/completions", body=iter([b'{"prompt":"', b"a" * 5000, b'"}']),
                  headers=dict(auth, **{"Content-Type": "application/json"}), encode_chunked=True)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answers 413 and closes as soon as the limit passes; the answer is still there to read
    r = c.getresponse()
    r.read()
    c.close()
    check(r.status == 413, "413 at the configured max_body: %s" % r.status)
    # deadline
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "slow", "prompt": "x", "max_tokens": 4000,
                                                         "ignore_eos": True, "timeout": 0.05}, headers=auth)
    check(st == 504 and error_of(js).get("code") == "timeout", "timeout: %s %s" % (st, js))
    # queue full: one running (a long stream), one queued, the third refused
    long = {"model": "slow", "prompt": "x", "max_tokens": 4000, "ignore_eos": True, "temperature": 0}
    c = http.client.HTTPConnection(s.host, s.port, timeout=60)
    c.request("POST", "/v1/completions", body=json.dumps(dict(long, stream=True)),
              headers=dict(auth, **{"Content-Type": "application/json"}))
    resp = c.getresponse()
    check(resp.status == 200, "long stream starts")
    resp.read1(100) if hasattr(resp, "read1") else resp.read(100)
    queued = {}
    th = threading.Thread(target=lambda: queued.update(r=s.request("POST", "/v1/completions",
                                                                   {"model": "slow", "prompt": "y", "max_tokens": 5},
                                                                   headers=auth)))
    th.start()
    t0 = time.time()
    while time.time() - t0 < 10:
        _, _, text, _ = s.request("GET", "/metrics", headers=auth)
        if re.search(r'vkinfer_queue_depth\{model="slow",priority="interactive"\} 1', text):
            break
        time.sleep(0.01)
    t1 = time.time()
    st, js, _, r = s.request("POST", "/v1/completions", {"model": "slow", "prompt": "z", "max_tokens": 5},
                             headers=auth)
    check(st == 429 and error_of(js).get("code") == "queue_full", "queue full: %s %s" % (st, js))
    check(time.time() - t1 < 1.0, "429 comes at once")
    ra = r.getheader("Retry-After")
    check(ra is not None and int(ra) >= 1, "Retry-After: %s" % ra)
    # Closing the stream cancels it; the queued request then runs.
    c.close()
    th.join(30)
    st = queued.get("r", (0,))[0]
    check(st == 200, "the queued request is answered after the cancelled one: %s" % st)
    _, _, text, _ = s.request("GET", "/metrics", headers=auth)
    check(re.search(r'vkinfer_requests_finished_total\{model="slow",outcome="cancelled"\} [1-9]', text),
          "the disconnected stream was cancelled")
    check(re.search(r'vkinfer_queue_rejected_total\{model="slow"\} 1', text), "one rejection counted")
    # Feeding the FIFO garbage makes that load fail: /health says "degraded"
    # (200: the other models serve), and why only to a client with the key.
    fd = os.open(fifo, os.O_WRONLY)  # unblocks the loader's open()
    try:
        os.write(fd, b"this is not a gguf file")
    except BrokenPipeError:  # the loader may give up before reading it
        pass
    os.close(fd)
    t0 = time.time()
    while time.time() - t0 < 10:
        st, js, _, _ = s.request("GET", "/health")
        if js["status"] == "degraded":
            break
        time.sleep(0.02)
    check(st == 200 and js["status"] == "degraded" and js["models"][1]["state"] == "failed" and
          "error" not in js["models"][1] and "pending.gguf" not in json.dumps(js),
          "health after failed load, no key: no loader error or path: %s %s" % (st, js))
    st, js, _, _ = s.request("GET", "/health", headers=auth)
    check(st == 200 and js["status"] == "degraded" and "pending.gguf" in js["models"][1].get("error", ""),
          "health after failed load, with the key: the error: %s" % js)
    st, js, _, _ = s.request("GET", "/health", headers={"Authorization": "Bearer wrong"})
    check(st == 200 and "error" not in js["models"][1], "health with a wrong key: no details: %s" % js)
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "pending", "prompt": "x"}, headers=auth)
    check(st == 503 and error_of(js).get("code") == "model_failed", "failed model: %s %s" % (st, js))
    # keep_alive 0: unloaded until asked for, loaded by the request, unloaded when idle.
    st, js, _, _ = s.request("GET", "/v1/models", headers=auth)
    idle = [m for m in js["data"] if m["id"] == "idle"][0]
    check(idle["state"] == "unloaded" and idle["keep_alive_s"] == 0 and idle["fallback"] == ["cpu"]
          and idle["pin"] is False and idle["estimated_bytes"] > 0, "idle model listed: %s" % idle)
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "idle", "prompt": "x", "max_tokens": 2},
                             headers=auth)
    check(st == 200 and js["usage"]["completion_tokens"] == 2, "request loads the unloaded model: %s %s" % (st, js))
    t0 = time.time()
    while time.time() - t0 < 10:
        st, js, _, _ = s.request("GET", "/health")
        if js["models"][2]["state"] == "unloaded":
            break
        time.sleep(0.02)
    check(js["models"][2]["state"] == "unloaded", "keep_alive 0 unloads when idle: %s" % js)
    _, _, text, _ = s.request("GET", "/metrics", headers=auth)
    check(re.search(r'vkinfer_model_loads_total\{model="idle"\} 1\b', text) and
          re.search(r'vkinfer_model_idle_unloads_total\{model="idle"\} 1\b', text) and
          re.search(r'vkinfer_model_resident_bytes\{model="idle"\} 0\b', text), "residency counters for idle")
    # Shutdown with a request in flight: it ends, the process exits 0.
    th = threading.Thread(target=lambda: queued.update(r=s.request("POST", "/v1/completions", long, headers=auth)))
    th.start()
    time.sleep(0.2)
    log = s.stop()
    th.join(30)
    # the config file's model that failed is in the log, and why; the others served
    check(re.search(r"^\S+ model pending: failed: .*pending\.gguf", log, re.M), "log: pending failed:\n%s" % log[-2000:])
    check(re.search(r"^\S+ model slow: resident-cpu on cpu", log, re.M), "log: slow resident")
    idle = re.findall(r"^\S+ model idle: (\S+)", log, re.M)
    check(idle == ["loading", "unloaded", "loading", "resident-cpu", "unloaded"], "log: idle's states %s" % idle)
    check(re.search(r"^\S+ request \S+ POST /v1/completions model=slow status=504 .*total_ms=", log, re.M),
          "log: the 504")
    check(re.search(r"^\S+ request \S+ POST /v1/completions model=slow status=429 ", log, re.M), "log: the 429")
    check(queued["r"][0] in (200, 503), "in-flight request at shutdown answered: %s" % queued["r"][0])


def test_logs(log):
    """The first server's log (text): model states and one line per request."""
    time_re = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    lines = log.splitlines()
    check(lines and all(re.match(time_re + " ", ln) for ln in lines),
          "every log line starts with the time: %s" % [ln for ln in lines if not re.match(time_re, ln)][:3])
    check(re.search(r"^\S+ model default: loading \S+default\.gguf$", log, re.M), "log: default loading")
    check(re.search(r"^\S+ model default: resident-cpu on cpu .*, \d+\.\d MiB, loaded in [\d.]+ ms$", log, re.M),
          "log: default resident, where and MiB")
    req = r"^\S+ request (\S+) POST /v1/completions model=default status=200 prompt_tokens=(\d+) " \
          r"completion_tokens=24 queue_ms=[\d.]+ total_ms=[\d.]+$"
    ids = [m.group(1) for m in re.finditer(req, log, re.M)]
    check(len(ids) >= 2 and all(i.startswith("cmpl-") for i in ids), "log: completions (stream and not) %s" % ids)
    check(re.search(r"^\S+ request \S+ POST /v1/chat/completions model=default status=200 prompt_tokens=\d+ "
                    r"completion_tokens=16 ", log, re.M), "log: chat")
    check(re.search(r"^\S+ request req-\d+ POST /v1/completions model=- status=404 total_ms=", log, re.M),
          "log: the unknown model's 404")
    check(re.search(r"^\S+ request req-\d+ GET /v2/anything model=- status=404 ", log, re.M), "log: unknown route")
    check(re.search(r"^\S+ request req-\d+ GET /health model=- status=200 ", log, re.M), "log: /health")
    n_req = len(re.findall(r"^\S+ request ", log, re.M))
    check(n_req > 100, "log: one line per request (%d)" % n_req)


def test_start(exe, model, bert, tmp):
    """A -m model that cannot be opened stops the start; the examples fit the models; --log-format json."""
    for bad in ("/nonexistent.gguf", os.path.join(tmp, "garbage.gguf")):
        if bad != "/nonexistent.gguf":
            with open(bad, "wb") as f:
                f.write(b"GGUF but not really")
        t0 = time.time()
        p = subprocess.run([exe, "serve", "-m", model, "-m", bad, "--port", "0"], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode != 0 and bad in p.stderr and time.time() - t0 < 20,
              "serve -m %s: rc %d, stderr %r" % (bad, p.returncode, p.stderr))
        check("serving on" not in p.stdout, "no URL printed for a start that failed")
    p = subprocess.run([exe, "serve", "-m", model, "--log-format", "yaml"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "--log-format" in p.stderr, "bad --log-format: %r" % p.stderr)
    if not bert:
        print("embedding-only server: skipped (../shared/models/synthetic-bert-mini-f32.gguf is absent)")
        return
    s = Server(exe, ["-m", bert, "--id", "emb", "--log-format", "json"])
    s.wait_ready()
    t0 = time.time()
    while "/v1/embeddings" not in s.stdout_text() and time.time() - t0 < 10:
        time.sleep(0.02)
    banner = s.stdout_text()
    check("/v1/embeddings" in banner and "/v1/completions" not in banner and "chat/completions" not in banner,
          "embedding-only examples:\n%s" % banner)
    st, js, _, _ = s.request("POST", "/v1/embeddings", {"input": "hello"})
    check(st == 200, "embedding-only server answers")
    s.request("POST", "/v1/completions", {"prompt": "x"})
    log = s.stop()
    events = []
    for ln in log.splitlines():
        try:
            events.append(json.loads(ln))
        except ValueError:
            check(False, "--log-format json: not JSON: %r" % ln)
    res = [e for e in events if e.get("event") == "model" and e.get("state") == "resident-cpu"]
    check(res and res[0]["model"] == "emb" and res[0]["kind"] == "embedding" and res[0]["resident_mib"] > 0 and
          res[0]["backend"].startswith("cpu"), "json log: resident: %s" % res)
    reqs = [e for e in events if e.get("event") == "request"]
    emb = [e for e in reqs if e["path"] == "/v1/embeddings"]
    check(emb and emb[0]["status"] == 200 and emb[0]["model"] == "emb" and emb[0]["prompt_tokens"] > 0 and
          emb[0]["queue_ms"] >= 0 and emb[0]["total_ms"] >= emb[0]["queue_ms"] and emb[0]["id"].startswith("req-"),
          "json log: the embedding request: %s" % emb)
    check(any(e["path"] == "/v1/completions" and e["status"] == 400 for e in reqs), "json log: the 400")
    check(all(isinstance(e.get("time"), str) for e in events), "json log: every line has the time")


def expect_refused_configs(exe, tmp, cases, name):
    """Each (yaml text, stderr pattern after the file's path): serve exits 1 naming file:line:column."""
    for i, (text, pattern) in enumerate(cases):
        path = os.path.join(tmp, "%s%d.yaml" % (name, i))
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([exe, "serve", "--config", path], capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and re.search(re.escape(path) + pattern, p.stderr),
              "%s config %d: rc %d, stderr %r (expected %s)" % (name, i, p.returncode, p.stderr, pattern))


def test_bad_configs(exe, tmp):
    cases = [
        ("server: {host: [1, 2\n", r":\d+:\d+: did not find expected"),
        ("server:\n  port: abc\n", r":2:9: server.port: expected an integer"),
        ("server:\n  colour: red\n", r":2:3: server: unknown key 'colour'"),
        ("models: {id: x}\n", r":1:9: models: expected a list"),
        ("models:\n  - id: x\n    kind: chat\n", r":2:5: models\[\]: expected a 'path' key"),
        ("models:\n  - path: a.gguf\n    kind: robot\n", r":3:11: models\[\].kind: expected chat or embedding"),
        ("device: {prefer: tpu}\n", r":1:18: device.prefer: expected auto, cpu or vulkan"),
        ("device: {vram_budget: 150%}\n", r":1:23: device.vram_budget: expected a percentage"),
        ("models:\n  - path: a.gguf\n    keep_alive: soon\n", r":3:17: models\[\].keep_alive: expected a duration"),
        ("models:\n  - path: a.gguf\n    pin: maybe\n", r":3:10: models\[\].pin: expected true or false"),
        ("models:\n  - path: a.gguf\n    fallback: [cpu, {x: 1}]\n", r":3:21: models\[\].fallback: expected cpu, auto or a model id"),
        ("models:\n  - path: a.gguf\n    capabilities: [chat, flying]\n", r":3:\d+: models\[\].capabilities: expected chat"),
        ("models:\n  - path: a.gguf\n    compatible: {b: 2}\n", r":3:\d+: models\[\].compatible: expected a number in \[0, 1\]"),
        ("models:\n  - path: a.gguf\n    breaker: {failures: 0}\n", r":3:\d+: breaker.failures"),
        ("models:\n  - path: a.gguf\n    breaker: {recovery: never}\n", r":3:\d+: breaker.recovery: expected a duration"),
        ("models:\n  - path: a.gguf\n    test_fail: {loads: -1}\n", r":3:\d+: models\[\].test_fail"),
        ("fallback_policy: {weights: {declared: x}}\n", r":1:\d+: fallback_policy.weights: expected a number"),
        ("- just a list\n", r":1:1: the top level: expected a mapping"),
        ("models:\n  - path: a.gguf\n    dimensions: [0]\n", r":3:18: models\[\]\.dimensions\[\]: expected an integer"),
        ("warmup: {threshold: 2}\n", r":1:21: warmup.threshold: expected a probability"),
        ("warmup: {colour: red}\n", r":1:10: warmup: unknown key 'colour'"),
        ("warmup: {enabled: sometimes}\n", r":1:19: warmup.enabled: expected true or false"),
        ("warmup: {interval: 10ms}\n", r":1:20: warmup.interval: expected at least 1s"),
    ]
    expect_refused_configs(exe, tmp, cases, "bad")
    p = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "--port" in p.stdout and "--config" in p.stdout, "serve --help")
    p = subprocess.run([exe, "serve"], capture_output=True, text=True)
    check(p.returncode == 1 and "no models" in p.stderr, "serve without models: %r" % p.stderr)


def test_usage_history(tmp):
    """The warm-up usage history is written at shutdown into the state folder
    (XDG_STATE_HOME, set by ctest), with the requests the server took."""
    state = os.environ.get("XDG_STATE_HOME")
    if not state:
        print("usage history: not checked (XDG_STATE_HOME unset: run under ctest)")
        return
    path = os.path.join(state, "vkinfer", "usage.json")
    try:
        with open(path) as f:
            h = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "usage history %s: %s" % (path, e))
        return
    m = h.get("models", {}).get("default", {})
    check(h.get("version") == 1 and m.get("requests", 0) > 0 and len(m.get("hours", [])) == 168,
          "usage history records the default model's requests: %r" % {k: m.get(k) for k in ("requests", "load_ms")})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent" % a.model)
        return 77
    shared = os.environ.get("VKI_SHARED_DIR") or os.path.join(os.path.dirname(__file__), "../../../shared")
    bert = os.path.join(shared, "models/synthetic-bert-mini-f32.gguf")
    bert = bert if os.path.exists(bert) else None
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        test_bad_configs(a.vkinfer, tmp)
        args = ["-m", a.model, "--id", "default", "--parallel", "4"]
        if bert:
            args += ["-m", bert, "--id", "embed"]
        s = Server(a.vkinfer, args)
        s.model = a.model
        test_routes(s, bert, a.vkinfer)
        test_special_text(s)
        test_errors(s)
        test_logprob_shapes(s)
        test_garbage(s)
        test_concurrent(s)
        test_metrics(s)
        check("/v1/completions" in s.stdout_text() and ("/v1/embeddings" in s.stdout_text()) == bool(bert),
              "examples for the kinds served:\n%s" % s.stdout_text())
        test_logs(s.stop())
        test_usage_history(tmp)
        test_matryoshka(a.vkinfer, a.model, bert, tmp)
        test_second_server(a.vkinfer, a.model, tmp)
        test_degraded(a.vkinfer, a.model, tmp)
        test_start(a.vkinfer, a.model, bert, tmp)
    print("test_server: %s (%.1f s)" % ("passed" if not failures else "%d failures" % failures, time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
