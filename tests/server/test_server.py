#!/usr/bin/env python3
"""test_server.py: `vkinfer serve` end to end on the CPU backend.

Starts the server on a free port with the generated default model (and the
shared BERT model when ../shared is present), then checks every route, that
an SSE stream reassembles to the non-stream text for greedy decoding, that
embeddings match `vkinfer embed`, every error status (400 401 404 405 413 429
503 504), 8 concurrent clients, client-disconnect cancellation, malformed
config files (file:line:column), and a clean exit on SIGTERM (under ASan a
leak makes that exit non-zero).
Usage: test_server.py --vkinfer PATH --model default.gguf"""
import argparse, http.client, json, os, re, signal, subprocess, sys, tempfile, threading, time

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("CHECK failed:", what, file=sys.stderr)
    return cond


class Server:
    def __init__(self, exe, args, env=None):
        self.proc = subprocess.Popen([exe, "serve", "--port", "0", "--backend", "cpu", "--threads", "2"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"http://([^:]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit("server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.host, self.port = m.group(1), int(m.group(2))

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
        events, buf = [], b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
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
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            check(False, "server did not exit within 60 s of SIGTERM")
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
    check(len(events) > 3, "stream came in several chunks (%d)" % len(events))

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
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "default", "input": "x"})
        check(st == 400 and "chat" in error_of(js).get("message", ""), "embeddings on a chat model: %s" % js)
        st, js, _, _ = s.request("POST", "/v1/embeddings", {"model": "embed", "input": [1, 2]})
        check(st == 400 and "input" in error_of(js).get("message", ""), "token-array input refused")
    else:
        print("embeddings vs vkinfer embed: skipped (../shared/models/synthetic-bert-mini-f32.gguf is absent)")
    return text


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
    err(400, "POST", "/v1/completions", {"prompt": "x", "n": 2}, field="n")
    err(400, "POST", "/v1/completions", {"prompt": "x", "stop": 5}, field="stop")
    err(400, "POST", "/v1/completions", {"prompt": "x", "top_p": 0}, field="top_p")
    err(400, "POST", "/v1/completions", {"max_tokens": 3}, field="prompt")
    err(400, "POST", "/v1/completions", {"prompt": "x", "priority": "urgent"}, field="priority")
    err(400, "POST", "/v1/completions", {"prompt": "a " * 3000}, field="context")
    err(400, "POST", "/v1/chat/completions", {"messages": []}, field="messages")
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
    c.request("POST", "/v1/completions", body=iter([b'{"prompt":"', b"a" * 5000, b'"}']),
              headers=dict(auth, **{"Content-Type": "application/json"}), encode_chunked=True)
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
    # Feeding the FIFO garbage makes that load fail: 503 failed, with why.
    fd = os.open(fifo, os.O_WRONLY)  # unblocks the loader's open()
    try:
        os.write(fd, b"this is not a gguf file")
    except BrokenPipeError:  # the loader may give up before reading it
        pass
    os.close(fd)
    t0 = time.time()
    while time.time() - t0 < 10:
        st, js, _, _ = s.request("GET", "/health")
        if js["status"] == "failed":
            break
        time.sleep(0.02)
    check(st == 503 and js["status"] == "failed" and "error" in js["models"][1], "health after failed load: %s" % js)
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
    s.stop()
    th.join(30)
    check(queued["r"][0] in (200, 503), "in-flight request at shutdown answered: %s" % queued["r"][0])


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
        ("models:\n  - path: a.gguf\n    fallback: [cpu, other]\n", r":3:21: models\[\].fallback: only 'cpu'"),
        ("- just a list\n", r":1:1: the top level: expected a mapping"),
    ]
    for i, (text, pattern) in enumerate(cases):
        path = os.path.join(tmp, "bad%d.yaml" % i)
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([exe, "serve", "--config", path], capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and re.search(re.escape(path) + pattern, p.stderr),
              "bad config %d: rc %d, stderr %r (expected %s)" % (i, p.returncode, p.stderr, pattern))
    p = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "--port" in p.stdout and "--config" in p.stdout, "serve --help")
    p = subprocess.run([exe, "serve"], capture_output=True, text=True)
    check(p.returncode == 1 and "no models" in p.stderr, "serve without models: %r" % p.stderr)


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
        test_errors(s)
        test_garbage(s)
        test_concurrent(s)
        test_metrics(s)
        s.stop()
        test_second_server(a.vkinfer, a.model, tmp)
    print("test_server: %s (%.1f s)" % ("passed" if not failures else "%d failures" % failures, time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
