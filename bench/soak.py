#!/usr/bin/env python3
"""soak.py: `vkinfer serve` under a long, mixed, partly hostile load (issue 17).

Starts the server (or uses one given with --url and --pid), then N client
threads loop for T minutes, each call drawn from the mix:

  chat_stream   streaming chat completion, read to data: [DONE]
  completion    non-streaming completion
  embedding     /v1/embeddings (only with --embed-model)
  disconnect    streaming completion the client leaves after the first event
  bad_body      a hostile body: invalid JSON, a body over max_body, a
                Content-Length the client never finishes (then leaves), a
                large JSON (~200 KiB, 40k array items) in a field that does
                not exist (400 once parsed: memory churn in the server)
  unknown_model a completion naming a model that does not exist (404)

Client-side outcomes are tallied per kind and HTTP status and compared with
the server's /metrics at the end (vkinfer_http_requests_total by route and
status, vkinfer_client_disconnects_total); the server's RSS (VmRSS) is
sampled every second. Prints a summary (and --json FILE for machines).
Exit status 1 when a call got an unexpected answer or the tallies disagree.

Example (3 minutes, 64 clients, nice'd):
  nice -n 19 python3 bench/soak.py --vkinfer build/cli/vkinfer \\
      --model build/models/default.gguf --clients 64 --minutes 3
"""
import argparse, http.client, json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from collections import Counter

MAX_BODY = 256 * 1024
MIX = [("chat_stream", 30), ("completion", 25), ("embedding", 10), ("disconnect", 10), ("bad_body", 15),
       ("unknown_model", 10)]
ROUTE = {"chat_stream": "/v1/chat/completions", "completion": "/v1/completions", "embedding": "/v1/embeddings",
         "disconnect": "/v1/completions", "unknown_model": "/v1/completions"}


class Soak:
    def __init__(self, host, port, chat_model, embed_model, max_tokens):
        self.host, self.port = host, port
        self.chat_model, self.embed_model, self.max_tokens = chat_model, embed_model, max_tokens
        self.lock = threading.Lock()
        self.tally = Counter()        # (kind, outcome)
        self.routes = Counter()       # (route, status) answered, client side
        self.left = 0                 # calls the client left before the answer ended
        self.unexpected = []
        self.latency = {}             # kind -> [seconds]

    def note(self, kind, outcome, route=None, status=None, secs=None, left=False, unexpected=None):
        with self.lock:
            self.tally[(kind, outcome)] += 1
            if route and status:
                self.routes[(route, status)] += 1
            if left:
                self.left += 1
            if unexpected and len(self.unexpected) < 50:
                self.unexpected.append("%s: %s" % (kind, unexpected))
            if secs is not None:
                self.latency.setdefault(kind, []).append(secs)

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def post(self, path, body):
        c = self.conn()
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        return c, c.getresponse()

    def chat_stream(self):
        t = time.time()
        c, r = self.post("/v1/chat/completions", {"model": self.chat_model, "stream": True,
                                                  "max_tokens": self.max_tokens,
                                                  "messages": [{"role": "user", "content": "tell me a story"}]})
        if r.status != 200:
            r.read()
            c.close()
            return r.status, "status %d" % r.status, t
        data = r.read()
        c.close()
        ok = data.endswith(b"data: [DONE]\n\n")
        return 200, None if ok else "stream without [DONE]: %r" % data[-80:], t

    def completion(self):
        t = time.time()
        c, r = self.post("/v1/completions", {"model": self.chat_model, "prompt": "once upon a time",
                                             "max_tokens": self.max_tokens})
        js = json.loads(r.read())
        c.close()
        ok = r.status != 200 or js["choices"][0]["finish_reason"] in ("stop", "length")
        return r.status, None if ok else "bad answer %r" % js, t

    def embedding(self):
        t = time.time()
        c, r = self.post("/v1/embeddings", {"model": self.embed_model, "input": ["a soak test", "of the server"]})
        js = json.loads(r.read())
        c.close()
        ok = r.status != 200 or len(js["data"]) == 2
        return r.status, None if ok else "bad answer", t

    def disconnect(self):
        t = time.time()
        c, r = self.post("/v1/completions", {"model": self.chat_model, "prompt": "x", "stream": True,
                                             "max_tokens": 2000, "ignore_eos": True})
        if r.status != 200:
            r.read()
            c.close()
            return r.status, "status %d" % r.status, t
        r.read1(64)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        return 200, None, t

    def bad_body(self):
        t = time.time()
        how = random.choice(["json", "too_big", "half", "fields"])
        s = socket.create_connection((self.host, self.port), timeout=30)
        try:
            if how == "json":
                body = b'{"model": "x", "prompt": [1, 2,'
            elif how == "too_big":
                body = b"x" * (MAX_BODY + 1)
            elif how == "fields":
                body = b'{"prompt": "x", "no_such_field": [' + b",".join(b"%d" % i for i in range(40000)) + b"]}"
            else:
                body = b'{"prompt":'
            declared = len(body) + (100 if how == "half" else 0)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % declared + (b"" if how == "too_big"
                                                                                       else body))
            if how == "half":
                time.sleep(0.05)
                return None, "half", t  # the client leaves with its body unfinished
            data = b""
            while True:
                k = s.recv(65536)
                if not k:
                    break
                data += k
            m = re.match(rb"HTTP/1\.1 (\d+)", data)
            st = int(m.group(1)) if m else None
            want = 413 if how == "too_big" else 400
            return st, None if st == want else "%s: expected %d, got %r" % (how, want, data[:80]), t
        finally:
            s.close()

    def unknown_model(self):
        t = time.time()
        c, r = self.post("/v1/completions", {"model": "no-such-model", "prompt": "x"})
        r.read()
        c.close()
        return r.status, None if r.status == 404 else "status %d" % r.status, t

    def one(self, kind):
        try:
            st, problem, t = getattr(self, kind)()
        except Exception as e:  # a reset or a broken answer: unexpected under this load
            self.note(kind, "exception", unexpected="%s: %s" % (type(e).__name__, e))
            return
        route = "/v1/completions" if kind == "bad_body" else ROUTE[kind]
        if kind == "bad_body" and problem == "half":
            self.note(kind, "left", left=True)
            return
        if kind == "disconnect" and st == 200:
            self.note(kind, "left", route, st, left=True)
            return
        outcome = "ok" if st == 200 else "status %s" % st
        # 429 (queue full) and 503 under load are answers, not failures
        self.note(kind, outcome, route, st, time.time() - t,
                  unexpected=problem if st in (200, 400, 404, 413) or st is None else None)


def metrics(host, port):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    req = Counter()
    for m in re.finditer(r'^vkinfer_http_requests_total\{route="([^"]+)",status="(\d+)"\} (\d+)$', text, re.M):
        req[(m.group(1), int(m.group(2)))] = int(m.group(3))
    d = re.search(r"^vkinfer_client_disconnects_total (\d+)$", text, re.M)
    return req, int(d.group(1)) if d else -1


def q(values, p):
    """The p-quantile (nearest rank) of values."""
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vkinfer", help="the vkinfer binary (the script starts the server)")
    ap.add_argument("--model", help="chat model (GGUF) for the started server")
    ap.add_argument("--embed-model", help="embedding model (GGUF) for the started server")
    ap.add_argument("--url", help="an already running server instead, e.g. http://127.0.0.1:8080")
    ap.add_argument("--pid", type=int, help="its process id, for RSS samples")
    ap.add_argument("--chat-id", default="default", help="with --url: the chat model's id")
    ap.add_argument("--embed-id", help="with --url: an embedding model's id (else no embeddings)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="the started server's compute threads")
    ap.add_argument("--weights", help="override the mix, e.g. bad_body=100,chat_stream=0 (default %s)"
                    % ",".join("%s=%d" % kw for kw in MIX))
    ap.add_argument("--json", help="write the summary here too")
    a = ap.parse_args()
    proc, tmp = None, None
    if a.url:
        m = re.match(r"http://([^:/]+):(\d+)", a.url)
        host, port, pid = m.group(1), int(m.group(2)), a.pid
        chat_model, embed_model = a.chat_id, a.embed_id
    else:
        if not a.vkinfer or not a.model:
            ap.error("give --vkinfer and --model, or --url")
        tmp = tempfile.mkdtemp(prefix="vki-soak-")
        cfg = os.path.join(tmp, "soak.yaml")
        with open(cfg, "w") as f:
            f.write("server: {host: 127.0.0.1, port: 0, max_body: %d, max_queue: 256, max_connections_per_ip: %d}\n"
                    "device: {prefer: cpu}\nmodels:\n  - {id: default, path: %s, kind: chat}\n"
                    % (MAX_BODY, 4 * a.clients + 16, os.path.abspath(a.model)))
            if a.embed_model:
                f.write("  - {id: embed, path: %s, kind: embedding}\n" % os.path.abspath(a.embed_model))
        # its warm-up history stays in the temporary folder, not the user's state
        proc = subprocess.Popen([a.vkinfer, "serve", "--config", cfg, "--threads", str(a.threads), "--state-dir", tmp],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = proc.stdout.readline().decode()
        m = re.search(r"http://([^:]+):(\d+)", line)
        if not m:
            proc.kill()
            sys.exit("soak: the server did not start: %r" % line)
        host, port, pid = m.group(1), int(m.group(2)), proc.pid
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        chat_model, embed_model = "default", "embed" if a.embed_model else None
        for _ in range(600):  # ready
            try:
                c = http.client.HTTPConnection(host, port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
    weights = dict(MIX)
    for kw in (a.weights.split(",") if a.weights else []):
        k, _, w = kw.partition("=")
        if k not in weights or not w.isdigit():
            ap.error("--weights: %r is not kind=integer (kinds: %s)" % (kw, ", ".join(weights)))
        weights[k] = int(w)
    mix = [(k, w) for k, w in weights.items() if w > 0 and (k != "embedding" or embed_model)]
    kinds, weights = [k for k, _ in mix], [w for _, w in mix]
    soak = Soak(host, port, chat_model, embed_model, a.max_tokens)
    base_req, base_disc = metrics(host, port)
    rss, stop_at = [], time.time() + a.minutes * 60

    def client(seed):
        rnd = random.Random(seed)
        while time.time() < stop_at:
            soak.one(rnd.choices(kinds, weights)[0])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        v = rss_mb(pid) if pid else None
        if v is not None:
            rss.append((round(time.time() - t0, 1), round(v, 1)))
        time.sleep(1)
    for t in threads:
        t.join()
    time.sleep(1.0)  # the last disconnects are counted
    req, disc = metrics(host, port)
    server_side = Counter({k: v - base_req.get(k, 0) for k, v in req.items() if v - base_req.get(k, 0)})
    server_side.pop(("/metrics", 200), None)
    mismatch = {"%s %d" % k: (soak.routes.get(k, 0), server_side.get(k, 0))
                for k in set(soak.routes) | set(server_side) if soak.routes.get(k, 0) != server_side.get(k, 0)}
    disconnects = disc - base_disc
    if proc:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
        shutil.rmtree(tmp, ignore_errors=True)
    calls = sum(soak.tally.values())
    peak = max((v for _, v in rss), default=None)
    summary = {
        "clients": a.clients, "minutes": a.minutes, "calls": calls,
        "calls_per_s": round(calls / max(1e-9, time.time() - t0), 1),
        "outcomes": {"%s %s" % k: v for k, v in sorted(soak.tally.items())},
        "latency_p50_p99_s": {k: [round(q(v, 0.5), 3), round(q(v, 0.99), 3)] for k, v in soak.latency.items()},
        "client_left": soak.left, "server_disconnects": disconnects,
        "route_status_mismatch_client_vs_server": mismatch,
        "rss_mb": {"first": rss[0][1] if rss else None, "peak": peak, "last": rss[-1][1] if rss else None},
        "unexpected": soak.unexpected[:10], "server_exit": rc if proc else None,
    }
    print(json.dumps(summary, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(summary, rss_samples=rss), f, indent=1)
    bad = soak.unexpected or mismatch or disconnects != soak.left or (proc and rc != 0)
    print("soak: %s" % ("FAILED" if bad else "passed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
