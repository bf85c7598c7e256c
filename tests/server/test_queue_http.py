#!/usr/bin/env python3
"""test_queue_http.py: the scheduler's turns, queue headers and /health
states seen over HTTP (`vkinfer serve`).

1. Turns (Vulkan, lavapipe; skipped without a device): two models that
   cannot fit together under the configured budget, steady traffic to both
   (VKI_TURNS_SECONDS, default 20 s): every request answers 200 (before
   turns the second model answered 503 to all of them), each answer carries
   X-Queue-Position and X-Queue-ETA, a stream's first bytes are the SSE
   comment with its place, and /health stays "ok" throughout.
2. Priorities by service name ("chat", "npc", "search", "summary") in a
   request and in the config; an unknown one is refused by name.
3. Bad values of the new config keys (health_degraded_status, quantum,
   quantum_loads, chunk_tokens, aging, drain) refused with file:line:column.
4. /health with a failed model: "degraded", 200 by default and the code
   server.health_degraded_status asks for; no loader error or path without
   the API key, both with it.
Usage: test_queue_http.py --vkinfer PATH --model default.gguf"""
import argparse, http.client, json, os, re, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402  (its Server harness and check)
from test_server import check  # noqa: E402


class Server(ts.Server):
    """test_server's harness on the device the config asks for (turns need
    Vulkan), with what these tests add: a stream read whole with its
    headers, and a wait for the models to settle."""

    def __init__(self, exe, args, env=None):
        super().__init__(exe, args, env=env, backend=None)

    def stream_head(self, path, body):
        """Status, headers and the whole SSE text of a stream."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=300)
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, r, text

    def wait_settled(self, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, js, _, _ = self.request("GET", "/health", timeout=300)
            if js and js["status"] != "loading":
                return st, js
            time.sleep(0.05)
        raise SystemExit("server still loading after %d s" % timeout)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def have_vulkan(exe):
    """Whether `vkinfer devices` lists a Vulkan device (lavapipe counts)."""
    try:
        out = subprocess.run([exe, "devices"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and re.search(r"vulkan|llvmpipe|lavapipe", out.stdout, re.I) is not None


def turns_config(tmp, model, budget):
    return write(os.path.join(tmp, "turns.yaml"),
                 "device:\n  prefer: vulkan\n  vram_budget: %d\n  quantum: 2s\n  quantum_loads: 2\n"
                 "models:\n"
                 "  - {id: left, path: %s, kind: chat, n_ctx: 256, n_seq_max: 2, keep_alive: -1}\n"
                 "  - {id: right, path: %s, kind: chat, n_ctx: 256, n_seq_max: 2, keep_alive: -1}\n"
                 % (budget, model, model))


def test_turns(exe, model, tmp, seconds):
    # The estimate first, under a budget that holds both, to size one that holds one.
    s = Server(exe, ["--config", turns_config(tmp, model, 1 << 30)])
    s.wait_settled()
    st, js, _, _ = s.request("GET", "/v1/models")
    est = max(m.get("estimated_bytes", 0) for m in js["data"])  # "auto" is listed too
    s.stop()
    budget = int(est * 1.5)
    s = Server(exe, ["--config", turns_config(tmp, model, budget)])
    s.wait_settled()
    results = {"left": [], "right": []}
    problems = []
    lock = threading.Lock()
    until = time.time() + seconds

    def client(mid, stream):
        while time.time() < until:
            body = {"model": mid, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
            t0 = time.time()
            if stream:
                body["stream"] = True
                st, r, text = s.stream_head("/v1/completions", body)
                first = text.split("\n\n", 1)[0]
                ok = st == 200 and first.startswith(": queue position=") and text.rstrip().endswith("data: [DONE]")
            else:
                st, js, _, r = s.request("POST", "/v1/completions", body, timeout=300)
                first = ""
                ok = st == 200 and js["usage"]["completion_tokens"] == 8
            pos, eta = r.getheader("X-Queue-Position"), r.getheader("X-Queue-ETA")
            with lock:
                if not ok or pos is None or eta is None:
                    problems.append((mid, st, pos, eta, first[:80]))
                else:
                    results[mid].append((float(eta), time.time() - t0))

    threads = [threading.Thread(target=client, args=(mid, k == 1)) for mid in results for k in range(2)]
    for t in threads:
        t.start()
    health = []
    while any(t.is_alive() for t in threads):
        st, js, _, _ = s.request("GET", "/health")
        health.append((st, js["status"]))
        time.sleep(0.5)
    for t in threads:
        t.join()
    st, js, _, _ = s.request("GET", "/metrics")
    s.stop()
    n = {k: len(v) for k, v in results.items()}
    waited = [e for v in results.values() for e in v if e[0] >= 1.0]
    print("turns over HTTP: budget %.1f MiB (each model about %.1f MiB), %d s: served left %d, right %d; %d "
          "problems; %d answers had an ETA of 1 s or more (a turn to wait for), longest ETA %.1f s"
          % (budget / 2**20, est / 2**20, seconds, n["left"], n["right"], len(problems), len(waited),
             max([e[0] for v in results.values() for e in v] or [0])))
    check(not problems, "requests that failed or lacked the queue headers / SSE comment: %s" % problems[:5])
    check(n["left"] > 0 and n["right"] > 0, "both models served: %s" % n)
    check(all(h == (200, "ok") for h in health), "/health during turns: %s" % sorted(set(health)))
    check(seconds < 10 or waited, "some request waited for a turn (ETA >= 1 s)")


def test_priority_names(exe, model, tmp):
    cfg = write(os.path.join(tmp, "prio.yaml"),
                "device: {prefer: cpu}\nmodels:\n  - {id: m, path: %s, kind: chat, n_ctx: 256, priority: summary}\n"
                % model)
    s = Server(exe, ["--config", cfg])
    s.wait_settled()
    for name in ("chat", "npc", "search", "summary", "interactive", "normal", "batch"):
        st, js, _, r = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1, "priority": name})
        check(st == 200 and r.getheader("X-Queue-ETA") is not None, "priority %s: %s %s" % (name, st, js))
    st, js, _, _ = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1, "priority": "urgent"})
    check(st == 400 and "priority" in js["error"]["message"] and "summary" in js["error"]["message"],
          "an unknown priority: %s %s" % (st, js))
    st, js, _, r = s.request("POST", "/v1/embeddings", {"input": "x"})
    check(st in (400, 404), "embeddings without an embedding model: %s %s" % (st, js))
    s.stop()
    bad = write(os.path.join(tmp, "prio_bad.yaml"),
                "models:\n  - {id: m, path: %s, priority: urgent}\n" % model)
    p = subprocess.run([exe, "serve", "--port", "0", "--config", bad], capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and re.search(r"prio_bad.yaml:\d+:\d+: models\[\]\.priority: .*summary", p.stderr),
          "config priority 'urgent' refused with the names: %s" % p.stderr[-300:])


def test_bad_keys(exe, model, tmp):
    """The new keys' bad values are refused with file:line:column and what was expected."""
    cases = [("server: {health_degraded_status: 99}\n", r"server\.health_degraded_status: expected an integer in \[200, 599\]"),
             ("device: {quantum: -1s}\n", r"device\.quantum: expected a duration"),
             ("device: {quantum_loads: 0}\n", r"device\.quantum_loads: expected an integer in \[1, 1000\]"),
             ("device: {chunk_tokens: lots}\n", r"device\.chunk_tokens: expected an integer"),
             ("device: {aging: nan}\n", r"device\.aging: expected a duration"),
             ("device: {drain: 0}\n", r"device\.drain: expected a duration")]
    for k, (text, pattern) in enumerate(cases):
        cfg = write(os.path.join(tmp, "bad%d.yaml" % k), text + "models:\n  - {id: m, path: %s}\n" % model)
        p = subprocess.run([exe, "serve", "--port", "0", "--config", cfg], capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and re.search(r"bad%d\.yaml:\d+:\d+: " % k + pattern, p.stderr),
              "config %r refused: %s" % (text.strip(), p.stderr[-300:]))


def test_health(exe, model, tmp):
    absent = os.path.join(tmp, "absent-model.gguf")
    for code in (None, 503):
        cfg = write(os.path.join(tmp, "health.yaml"),
                    ("server: {api_key_env: VKI_TEST_KEY%s}\n" % (", health_degraded_status: %d" % code if code else ""))
                    + "device: {prefer: cpu}\nmodels:\n"
                    "  - {id: broken, path: %s, kind: chat}\n  - {id: good, path: %s, kind: chat, n_ctx: 256}\n"
                    % (absent, model))
        env = dict(os.environ, VKI_TEST_KEY="k123")
        s = Server(exe, ["--config", cfg], env=env)
        st, js = s.wait_settled()
        want = code or 200
        check(st == want and js["status"] == "degraded", "health with a failed model (want %d): %s %s" % (want, st, js))
        text = json.dumps(js)
        check("absent-model" not in text and "error" not in js["models"][0],
              "no path or loader error without the key: %s" % text)
        st, js, _, _ = s.request("GET", "/health", headers={"Authorization": "Bearer k123"})
        check(st == want and "absent-model" in js["models"][0].get("error", ""), "the error with the key: %s" % js)
        # Still serving: the good model answers, a request naming none goes to it.
        st, js, _, _ = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1},
                                 headers={"Authorization": "Bearer k123"})
        check(st == 200 and js["model"] == "good", "degraded still serves: %s %s" % (st, js))
        s.stop()
    print("health: degraded answers 200 by default, 503 with health_degraded_status: 503; paths only with the key")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    model = os.path.abspath(a.model)
    seconds = float(os.environ.get("VKI_TURNS_SECONDS", "20"))
    with tempfile.TemporaryDirectory() as tmp:
        test_priority_names(a.vkinfer, model, tmp)
        test_bad_keys(a.vkinfer, model, tmp)
        test_health(a.vkinfer, model, tmp)
        if have_vulkan(a.vkinfer):
            test_turns(a.vkinfer, model, tmp, seconds)
        else:
            print("turns: skipped (no Vulkan device: `vkinfer devices` lists none)")
    print("test_queue_http: %s" % ("FAILED (%d checks)" % ts.failures if ts.failures else "passed"))
    return 1 if ts.failures else 0


if __name__ == "__main__":
    sys.exit(main())
