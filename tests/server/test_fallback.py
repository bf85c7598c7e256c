#!/usr/bin/env python3
"""test_fallback: fallback chains and circuit breakers through `vkinfer serve`.

Each trigger sends a request for model "a" that "b" serves instead: a missing
file, a model whose breaker opens (test_fail.steps injects failed decode
steps), that model failed for good (its probe fails after the reload), an ETA
past the request's timeout, and (Vulkan with a small budget, skipped without
a device) no device memory. Checks the answer's model field and the
X-Vkinfer-Served-By header, that model_fallback: false gets the error
instead (503 with Retry-After while the breaker is open), the breaker's state
in /health, /v1/models and /metrics, and vkinfer_fallbacks_total{model,to,reason}.
Models: the generated default model and a tiny one generated here with
vkinfer-gen.
"""
import argparse, os, re, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check, error_of  # noqa: E402
import test_server  # noqa: E402

BODY = {"prompt": "Once upon a time", "max_tokens": 2, "temperature": 0}


def metric(s, name, labels):
    st, _, text, _ = s.request("GET", "/metrics")
    want = name + "{" + ",".join('%s="%s"' % kv for kv in labels) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def served(s, path, body, want, what):
    st, js, _, r = s.request("POST", path, body)
    ok = check(st == 200 and js.get("model") == want and r.getheader("X-Vkinfer-Served-By") == want,
               "%s: served by %s (%s %s, header %s)" % (what, want, st, js, r.getheader("X-Vkinfer-Served-By")))
    return ok


def stop_and_tell(s, failures_before):
    """Stops s; a sub-test that failed a check prints the end of the server's log."""
    err = s.stop()
    if test_server.failures > failures_before:
        print("--- the server's log (end) ---\n%s\n---" % err[-6000:], file=sys.stderr)


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_missing_and_breaker(exe, model, tiny, tmp):
    cfg = write(tmp, "fb.yaml",
                "device: {prefer: cpu}\n"
                "models:\n"
                "  - {id: gone, path: %s, kind: chat, fallback: [b]}\n"
                "  - id: a\n    path: %s\n    fallback: [b]\n"
                "    breaker: {failures: 1, window: 60s, recovery: 1s}\n"
                "    test_fail: {steps: 1000}\n"
                "  - {id: b, path: %s}\n"
                "  - {id: emb-less, path: %s, fallback: [auto]}\n"
                % (os.path.join(tmp, "absent.gguf"), model, tiny, tiny))
    s = Server(exe, ["--config", cfg])
    t0 = time.time()
    while time.time() - t0 < 60:
        st, js, _, _ = s.request("GET", "/health")
        if js and js["status"] != "loading":
            break
        time.sleep(0.05)
    check(all("breaker" in m for m in js["models"]) and js["models"][1]["breaker"] == "closed",
          "/health names each model's breaker: %s" % js)
    # missing file
    served(s, "/v1/completions", dict(BODY, model="gone"), "b", "missing")
    check(metric(s, "vkinfer_fallbacks_total", [("model", "gone"), ("to", "b"), ("reason", "missing")]) == 1,
          "fallbacks_total counts the missing model")
    st, js, _, r = s.request("POST", "/v1/completions", dict(BODY, model="gone", model_fallback=False))
    check(st == 503 and error_of(js).get("code") == "model_failed" and r.getheader("X-Vkinfer-Served-By") is None,
          "model_fallback false: the missing model's error: %s %s" % (st, js))
    st, js, _, _ = s.request("POST", "/v1/completions", dict(BODY, model="gone", model_fallback="no"))
    check(st == 400 and "model_fallback" in error_of(js).get("message", ""), "model_fallback must be a bool: %s" % js)
    # a's first step fails: its breaker (failures: 1) opens; b answers
    served(s, "/v1/chat/completions", {"model": "a", "messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 2}, "b", "breaker opened by the failure")
    st, js, _, _ = s.request("GET", "/v1/models/a")
    check(st == 200 and js.get("breaker", {}).get("state") == "open" and js["breaker"]["trips"] == 1 and
          js["fallback"] == ["b"], "/v1/models: the open breaker: %s" % js)
    st, js, _, r = s.request("POST", "/v1/completions", dict(BODY, model="a", model_fallback=False))
    check(st == 503 and error_of(js).get("code") == "breaker_open" and r.getheader("Retry-After") == "1",
          "breaker open, no fallback: fast 503 with Retry-After: %s %s %s" % (st, js, r.getheader("Retry-After")))
    served(s, "/v1/completions", dict(BODY, model="a"), "b", "breaker open")
    check(metric(s, "vkinfer_fallbacks_total", [("model", "a"), ("to", "b"), ("reason", "breaker_open")]) == 2,
          "fallbacks_total counts both breaker fallbacks")
    check(metric(s, "vkinfer_breaker_state", [("model", "a"), ("state", "open")]) == 1 and
          metric(s, "vkinfer_breaker_trips_total", [("model", "a")]) == 1, "/metrics: a's breaker is open, 1 trip")
    # after the recovery time the probe reloads a, fails again: a has failed
    time.sleep(1.2)
    served(s, "/v1/completions", dict(BODY, model="a", stream=False), "b", "the probe fails: a failed")
    st, js, _, _ = s.request("GET", "/health")
    check(js["models"][1]["state"] == "failed" and js["status"] == "degraded", "a failed: %s" % js)
    # streamed, from a failed model
    st, events = s.stream("/v1/completions", dict(BODY, model="a", stream=True))
    check(st == 200 and events and '"model":"b"' in events[0], "stream served by b: %s %s" % (st, events[:1]))
    _, _, text, _ = s.request("GET", "/metrics")
    check(metric(s, "vkinfer_fallbacks_total", [("model", "a"), ("to", "b"), ("reason", "failed")]) == 2,
          "fallbacks_total counts the failed model: %s" % re.findall(r"vkinfer_fallbacks_total\{.*", text))
    # served by itself: the header names it
    served(s, "/v1/completions", dict(BODY, model="b"), "b", "b itself")
    s.stop()


def test_eta(exe, model, tiny, tmp):
    cfg = write(tmp, "eta.yaml",
                "device: {prefer: cpu}\n"
                "models:\n"
                "  - {id: a, path: %s, n_seq_max: 1, fallback: [b]}\n"
                "  - {id: b, path: %s}\n" % (model, tiny))
    s = Server(exe, ["--config", cfg])
    s.wait_ready()
    # a's service time is measured on a long answer; b answers 1 token fast
    st, js, _, _ = s.request("POST", "/v1/completions", dict(BODY, model="a", max_tokens=200, ignore_eos=True))
    check(st == 200, "warm-up on a: %s %s" % (st, js))
    svc = metric(s, "vkinfer_service_time_avg_seconds", [("model", "a")])
    timeout = max(svc / 3, 0.05)
    st, js, _, r = s.request("POST", "/v1/completions", dict(BODY, model="a", max_tokens=1, timeout=timeout))
    check(st == 200 and js.get("model") == "b" and r.getheader("X-Vkinfer-Served-By") == "b",
          "ETA %.3f s past a %.3f s timeout: served by b (%s %s)" % (svc, timeout, st, js))
    check(metric(s, "vkinfer_fallbacks_total", [("model", "a"), ("to", "b"), ("reason", "eta")]) == 1,
          "fallbacks_total counts the ETA fallback")
    st, js, _, r = s.request("POST", "/v1/completions", dict(BODY, model="a", max_tokens=1, timeout=60))
    check(st == 200 and js.get("model") == "a", "a timeout a can meet: a serves (%s %s)" % (st, js))
    s.stop()


def test_memory(exe, model, tiny, tmp):
    cfg = write(tmp, "mem.yaml",
                "device: {prefer: vulkan, vram_budget: 24MiB}\n"
                "models:\n"
                "  - {id: a, path: %s, fallback: [b], keep_alive: 0}\n"
                "  - {id: b, path: %s}\n" % (model, tiny))
    p = subprocess.run([exe, "run", "--backend", "vulkan", "-m", tiny, "-n", "1", "-p", "x"], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        print("memory trigger: skipped (no Vulkan device: %s)" % p.stderr.strip()[-200:])
        return
    n0 = test_server.failures
    s = Server(exe, ["--config", cfg, "--backend", "vulkan"])  # the later --backend wins
    s.wait_ready()
    st, js, _, _ = s.request("GET", "/v1/models/a")
    if st != 200 or js.get("estimated_bytes", 0) <= 24 << 20:
        check(False, "model a should not fit 24 MiB: %s" % js)
    served(s, "/v1/completions", dict(BODY, model="a"), "b", "no device memory for a")
    check(metric(s, "vkinfer_fallbacks_total", [("model", "a"), ("to", "b"), ("reason", "memory")]) == 1,
          "fallbacks_total counts the memory fallback")
    st, js, _, _ = s.request("POST", "/v1/completions", dict(BODY, model="a", model_fallback=False))
    check(st == 503 and error_of(js).get("code") == "out_of_memory", "no fallback: out of memory: %s %s" % (st, js))
    stop_and_tell(s, n0)


def test_embeddings(exe, gen, tmp):
    paths = {}
    for name, extra in (("bert", []), ("bert64", ["--n-embd", "64"])):
        paths[name] = os.path.join(tmp, name + ".gguf")
        subprocess.run([gen, "--preset", "bert-mini", "-o", paths[name]] + extra, check=True, capture_output=True)
    cfg = write(tmp, "emb.yaml",
                "device: {prefer: cpu}\n"
                "models:\n"
                "  - id: e1\n    path: %s\n    fallback: [auto]\n"
                "    breaker: {failures: 1, recovery: 60s}\n    test_fail: {steps: 1000}\n"
                "  - {id: narrow, path: %s}\n"
                "  - {id: e2, path: %s}\n" % (paths["bert"], paths["bert64"], paths["bert"]))
    s = Server(exe, ["--config", cfg])
    s.wait_ready()
    # narrow comes first in the file but gives 64 values, not 128: never a stand-in
    st, js, _, r = s.request("POST", "/v1/embeddings", {"model": "e1", "input": ["a b c", "d"]})
    check(st == 200 and js.get("model") == "e2" and r.getheader("X-Vkinfer-Served-By") == "e2" and
          len(js["data"][0]["embedding"]) == 128, "embeddings: the same width serves (%s %s)" % (st, str(js)[:200]))
    check(metric(s, "vkinfer_fallbacks_total", [("model", "e1"), ("to", "e2"), ("reason", "breaker_open")]) == 1,
          "fallbacks_total counts the embeddings fallback")
    st, js, _, r = s.request("POST", "/v1/embeddings", {"model": "e1", "input": "a", "model_fallback": False})
    check(st == 503 and error_of(js).get("code") == "breaker_open" and int(r.getheader("Retry-After") or 0) >= 59,
          "embeddings, no fallback: breaker_open with Retry-After: %s %s" % (st, js))
    st, js, _, r = s.request("POST", "/v1/embeddings", {"model": "narrow", "input": "a"})
    check(st == 200 and r.getheader("X-Vkinfer-Served-By") == "narrow" and len(js["data"][0]["embedding"]) == 64,
          "narrow serves its own requests")
    s.stop()


def test_concurrent(exe, model, tiny, tmp):
    """8 clients at once while a's breaker opens, half-opens and a fails: every answer comes from b."""
    cfg = write(tmp, "conc.yaml",
                "device: {prefer: cpu}\n"
                "models:\n"
                "  - id: a\n    path: %s\n    fallback: [b]\n"
                "    breaker: {failures: 3, window: 60s, recovery: 300ms}\n"
                "    test_fail: {steps: 1000}\n"
                "  - {id: b, path: %s, n_seq_max: 8}\n" % (model, tiny))
    n0 = test_server.failures
    s = Server(exe, ["--config", cfg])
    s.wait_ready()
    results, odd = [], []

    def client():
        for _ in range(6):
            st, js, payload, r = s.request("POST", "/v1/completions", dict(BODY, model="a"))
            results.append((st, js and js.get("model"), r.getheader("X-Vkinfer-Served-By")))
            if results[-1] != (200, "b", "b"):
                odd.append(payload[:300])
            time.sleep(0.05)
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    bad = [x for x in results if x != (200, "b", "b")]
    check(len(results) == 48 and not bad, "8 clients x 6: all served by b (%d answers, odd ones: %s %s)"
          % (len(results), bad[:5], odd[:3]))
    st, js, _, _ = s.request("GET", "/v1/models/a")
    check(js["state"] in ("failed", "unloaded") and js["breaker"]["trips"] >= 1,
          "a's breaker opened under load: %s" % js)
    stop_and_tell(s, n0)


def test_bad_chain(exe, model, tmp):
    for text, pattern in (
            ("models:\n  - {id: a, path: %s, fallback: [zzz]}\n" % model, "fallback names 'zzz', which is not"),
            ("models:\n  - {id: a, path: %s, fallback: [a]}\n" % model, "fallback names 'a', the model itself"),
            ("models:\n  - {id: a, path: %s, compatible: {q: 0.5}}\n" % model, "compatible names 'q'")):
        path = write(tmp, "bad.yaml", text)
        p = subprocess.run([exe, "serve", "--config", path], capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and pattern in p.stderr, "bad chain refused: %s %r" % (p.returncode, p.stderr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--only", help="run one sub-test (bad_chain, missing_and_breaker, eta, memory, embeddings, "
                    "concurrent), e.g. to repeat it")
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        tiny = os.path.join(tmp, "tiny.gguf")
        subprocess.run([a.gen, "--preset", "tiny", "-o", tiny], check=True, capture_output=True)
        tests = {"bad_chain": lambda: test_bad_chain(a.vkinfer, a.model, tmp),
                 "missing_and_breaker": lambda: test_missing_and_breaker(a.vkinfer, a.model, tiny, tmp),
                 "eta": lambda: test_eta(a.vkinfer, a.model, tiny, tmp),
                 "memory": lambda: test_memory(a.vkinfer, a.model, tiny, tmp),
                 "embeddings": lambda: test_embeddings(a.vkinfer, a.gen, tmp),
                 "concurrent": lambda: test_concurrent(a.vkinfer, a.model, tiny, tmp)}
        if a.only and a.only not in tests:
            ap.error("--only %s: expected one of %s" % (a.only, ", ".join(tests)))
        for name, run in tests.items():
            if not a.only or a.only == name:
                run()
    failures = test_server.failures
    print("test_fallback: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
