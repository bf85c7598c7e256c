#!/usr/bin/env python3
"""test_system_status.py: GET /v1/system/status against /metrics on a server
with two models (the generated default model and a tiny one) and an API key.

While requests run on both models, every counter the status shows is at
most what a /metrics read right after it shows (the two move forward
together); once traffic stops, the figures agree exactly: device budget and
use, each model's state, breaker, queue depths, running, finished requests
by outcome, tokens, loads and evictions, resident bytes, the HTTP counters,
and the window's request count against the model routes' HTTP answers. Also
the events ring (the two loads; then, on a second server, a breaker
that opens and a request served by the other model), the caches' shape, the key (401 without
it), and the status page's headers: / and /ui without the key,
text/html, a Content-Security-Policy that allows no other origin, no
external URL in the page, and 304 for a matching ETag.
Usage: test_system_status.py --vkinfer PATH --gen vkinfer-gen --model default.gguf"""
import argparse, os, re, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

KEY = "status-test-key"
AUTH = {"Authorization": "Bearer " + KEY}


def metrics(s):
    st, _, text, _ = s.request("GET", "/metrics", headers=AUTH)
    check(st == 200, "/metrics: %s" % st)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, v = line.rsplit(" ", 1)
            out[name] = float(v)
    return out


def status(s):
    st, js, text, r = s.request("GET", "/v1/system/status", headers=AUTH)
    check(st == 200 and js and js.get("object") == "system.status", "status: %s %s" % (st, text[:300]))
    check(r.getheader("Content-Type", "").startswith("application/json"), "status content type")
    return js


def lab(name, **labels):
    return name + "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"


def pairs(js):
    """(what, status value, metric name) for every figure both have."""
    out = []
    devs = {d["id"]: d for d in js["devices"]}
    if "gpu" in devs:
        out.append(("gpu total", devs["gpu"]["memory"]["total"], "vkinfer_device_budget_bytes"))
        out.append(("gpu used", devs["gpu"]["memory"]["used"], "vkinfer_device_used_bytes"))
    for m in js["models"]:
        i = m["id"]
        for st in ("unloaded", "loading", "resident-gpu", "resident-cpu", "failed"):
            out.append(("%s state %s" % (i, st), 1 if m["state"] == st else 0, lab("vkinfer_model_state", model=i, state=st)))
        for b in ("closed", "open", "half-open"):
            out.append(("%s breaker %s" % (i, b), 1 if m["breaker"]["state"] == b else 0,
                        lab("vkinfer_breaker_state", model=i, state=b)))
        out.append(("%s trips" % i, m["breaker"]["trips"], lab("vkinfer_breaker_trips_total", model=i)))
        for p in ("interactive", "normal", "batch"):
            out.append(("%s queued %s" % (i, p), m["queued"][p], lab("vkinfer_queue_depth", model=i, priority=p)))
        out.append(("%s running" % i, m["running"], lab("vkinfer_active_sequences", model=i)))
        for k, o in (("ok", "ok"), ("failed", "failed"), ("cancelled", "cancelled"), ("timeout", "timeout")):
            out.append(("%s %s" % (i, k), m["requests"][k], lab("vkinfer_requests_finished_total", model=i, outcome=o)))
        out.append(("%s rejected" % i, m["requests"]["rejected"], lab("vkinfer_queue_rejected_total", model=i)))
        out.append(("%s prompt tokens" % i, m["tokens"]["prompt"], lab("vkinfer_prompt_tokens_total", model=i)))
        out.append(("%s generated" % i, m["tokens"]["generated"], lab("vkinfer_generated_tokens_total", model=i)))
        out.append(("%s bytes" % i, m["bytes"], lab("vkinfer_model_resident_bytes", model=i)))
        for k, n in (("loads", "loads"), ("evictions", "evictions"), ("idle_unloads", "idle_unloads"),
                     ("cpu_fallbacks", "fallbacks"), ("refused_loads", "refused_loads"), ("swaps", "swaps")):
            out.append(("%s %s" % (i, k), m["residency"][k], lab("vkinfer_model_%s_total" % n, model=i)))
    ec = js["caches"]["embedding"]
    for k in ("bytes", "entries", "budget_bytes"):
        out.append(("cache %s" % k, ec[k], "vkinfer_embedding_cache_%s" % k))
    out.append(("cache evictions", ec["evictions"], "vkinfer_embedding_cache_evictions_total"))
    return out


MONOTONE = ("ok", "generated", "prompt tokens", "loads", "trips")


def http_sum(m, routes=None):
    t = 0
    for k, v in m.items():
        mm = re.match(r'vkinfer_http_requests_total\{route="([^"]+)",status="\d+"\}', k)
        if mm and (routes is None or mm.group(1) in routes):
            t += v
    return t


def traffic(s, stop, errors):
    i = 0
    while not stop.is_set():
        model = "a" if i % 2 == 0 else "b"
        st, js, text, _ = s.request("POST", "/v1/completions", {"model": model, "prompt": "Once upon a time",
                                                                 "max_tokens": 6, "temperature": 0}, headers=AUTH)
        if st != 200:
            errors.append("%s: %s %s" % (model, st, text[:200]))
        i += 1


def test_status(exe, model, tiny, tmp):
    cfg = os.path.join(tmp, "status.yaml")
    with open(cfg, "w") as f:
        f.write("server: {api_key_env: VKI_STATUS_KEY}\ndevice: {prefer: cpu}\nscheduler: {embedding_cache: 1MiB}\n"
                "models:\n"
                "  - {id: a, path: %s}\n  - {id: b, path: %s}\n" % (model, tiny))
    s = Server(exe, ["--config", cfg], env=dict(os.environ, VKI_STATUS_KEY=KEY))
    try:
        s.wait_ready()
        st, js, _, r = s.request("GET", "/v1/system/status")
        check(st == 401 and r.getheader("WWW-Authenticate") == "Bearer", "status without the key: %s" % st)
        st, _, _, _ = s.request("GET", "/v1/system/status", headers={"Authorization": "Bearer wrong"})
        check(st == 401, "status with a wrong key: %s" % st)

        # the page: no key needed, strict headers, nothing external
        for path in ("/", "/ui"):
            st, _, page, r = s.request("GET", path)
            csp = r.getheader("Content-Security-Policy", "")
            check(st == 200 and r.getheader("Content-Type") == "text/html; charset=utf-8", "%s: %s" % (path, st))
            check("default-src 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp,
                  "%s CSP: %s" % (path, csp))
            check(r.getheader("Cache-Control") == "no-cache" and r.getheader("ETag"), "%s cache headers" % path)
            check("<title>vkinfer status</title>" in page and 'name="viewport"' in page, "%s: the page" % path)
            ext = re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', page) + re.findall(r"url\(\s*['\"]?https?:", page)
            check(not ext, "%s: external references %s" % (path, ext))
            check("Authorization" in page and "sessionStorage" in page, "%s: sends the key as a header" % path)
            etag = r.getheader("ETag")
            st, _, body, r = s.request("GET", path, headers={"If-None-Match": etag})
            check(st == 304 and body == "", "%s with its ETag: %s" % (path, st))
        st, _, _, r = s.request("POST", "/ui", {})
        check(st == 405 and r.getheader("Allow") == "GET", "POST /ui: %s" % st)

        js = status(s)
        check([d["id"] for d in js["devices"]][-1] == "cpu", "devices end with the CPU: %s" % js["devices"])
        cpu = js["devices"][-1]
        check(cpu["memory"]["total"] > 0 and cpu["memory"]["used"] + cpu["memory"]["free"] == cpu["memory"]["total"],
              "cpu memory: %s" % cpu["memory"])
        check(cpu["serving"] and sorted(x["id"] for x in cpu["models"]) == ["a", "b"],
              "both models on the CPU: %s" % cpu)
        check([q["class"] for q in js["queues"]] == ["interactive", "normal", "batch"], "queues: %s" % js["queues"])
        ec = js["caches"]["embedding"]
        check(ec["enabled"] and ec["budget_bytes"] == 1 << 20 and "hit_rate" in ec and
              all(v is None or "hit_rate" in v for v in js["caches"].values()), "caches: %s" % js["caches"])
        check(js["traffic"]["window_s"] == 900 and len(js["traffic"]["minutes"]) == 15, "traffic shape")
        loads = [e for e in js["events"] if e["kind"] == "load"]
        check(sorted(e["model"] for e in loads) == ["a", "b"], "load events: %s" % js["events"])

        # under traffic: status then metrics, the counters never ahead of /metrics
        stop, errors = threading.Event(), []
        th = [threading.Thread(target=traffic, args=(s, stop, errors)) for _ in range(3)]
        for t in th:
            t.start()
        seen_running = False
        t0 = time.time()
        while time.time() - t0 < 4:
            js = status(s)
            m = metrics(s)
            seen_running |= any(x["running"] > 0 for x in js["models"])
            for what, v, name in pairs(js):
                if what.split(" ", 1)[1] in MONOTONE:
                    check(v <= m.get(name, -1), "under traffic: %s: status %s > metrics %s" % (what, v, m.get(name)))
        stop.set()
        for t in th:
            t.join()
        check(not errors, "traffic errors: %s" % errors[:3])
        check(seen_running, "a request was seen running")

        # at rest: exact agreement
        time.sleep(0.3)
        js = status(s)
        m = metrics(s)
        for what, v, name in pairs(js):
            check(name in m and v == m[name], "at rest: %s: status %s, metrics %s (%s)" % (what, v, m.get(name), name))
        pk = js["caches"]["prefix_kv"]
        for k, n in (("hits", "vkinfer_prompt_tokens_reused_total"), ("misses", "vkinfer_prompt_tokens_evaluated_total")):
            tot = sum(v for name, v in m.items() if name.startswith(n + "{"))
            check(pk[k] == tot and tot == sum(x["tokens"]["prompt_" + ("reused" if k == "hits" else "evaluated")]
                                               for x in js["models"]), "prefix_kv %s: status %s, metrics %s" % (k, pk[k], tot))
        for k in ("hits", "misses"):  # /metrics has them by model
            tot = sum(v for n, v in m.items() if n.startswith("vkinfer_embedding_cache_%s_total" % k))
            check(js["caches"]["embedding"][k] == tot, "cache %s: status %s, metrics %s" %
                  (k, js["caches"]["embedding"][k], tot))
        # the status answer is not in its own count; the /metrics one counts itself
        check(m and http_sum(m) == js["http"]["requests_total"] + 2,
              "http: status %s, metrics %s" % (js["http"]["requests_total"], http_sum(m)))
        model_answers = http_sum(m, ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"))
        tr = js["traffic"]
        check(tr["requests"] == model_answers and model_answers > 10,
              "window requests %s, model routes' answers %s" % (tr["requests"], model_answers))
        done = sum(x["requests"]["ok"] for x in js["models"])
        gen = sum(x["tokens"]["generated"] for x in js["models"])
        check(tr["completion_tokens"] == gen and done == model_answers, "window tokens %s vs %s generated; ok %s" %
              (tr["completion_tokens"], gen, done))
        lat = tr["latency_ms"]
        check(0 < lat["p50"] <= lat["p95"] <= lat["p99"], "percentiles %s" % lat)
        check(tr["tokens_per_s"] > 0 and tr["requests_per_min"] > 0, "rates %s" % tr)
        check(sum(x["requests"] for x in tr["minutes"]) == tr["requests"], "minutes add up")
    finally:
        s.stop()


def test_events(exe, model, tiny, tmp):
    """A breaker that opens and a request served by another model become
    events, named as /metrics counts them."""
    cfg = os.path.join(tmp, "events.yaml")
    with open(cfg, "w") as f:
        f.write("device: {prefer: cpu}\nmodels:\n"
                "  - id: a\n    path: %s\n    fallback: [b]\n"
                "    breaker: {failures: 1, window: 60s, recovery: 60s}\n    test_fail: {steps: 1000}\n"
                "  - {id: b, path: %s}\n" % (model, tiny))
    s = Server(exe, ["--config", cfg])
    try:
        s.wait_ready()
        st, js, _, _ = s.request("POST", "/v1/completions", {"model": "a", "prompt": "hi", "max_tokens": 2})
        check(st == 200 and js.get("model") == "b", "a's failure is served by b: %s %s" % (st, js))
        t0, evs = time.time(), []
        while time.time() - t0 < 10:  # the unload that follows the trip runs on a's thread
            js = status(s)
            evs = [(e["kind"], e["model"]) for e in js["events"]]
            if ("unload", "a") in evs:
                break
            time.sleep(0.1)
        for want in (("breaker_trip", "a"), ("fallback", "a"), ("unload", "a"), ("load", "b")):
            check(want in evs, "event %s in %s" % (want, js["events"]))
        fb = [e for e in js["events"] if e["kind"] == "fallback"]
        check(fb and "served by b" in fb[0]["detail"], "the fallback event names b and why: %s" % fb)
        seqs = [e["seq"] for e in js["events"]]
        check(seqs == sorted(seqs, reverse=True) and all(e["t"] > 1.6e9 for e in js["events"]), "events newest first")
        m = metrics(s)
        a = next(x for x in js["models"] if x["id"] == "a")
        check(a["breaker"]["state"] == "open" and a["breaker"]["trips"] == 1 ==
              m[lab("vkinfer_breaker_trips_total", model="a")], "a's breaker: %s" % a["breaker"])
        n_fb = sum(v for k, v in m.items() if k.startswith('vkinfer_fallbacks_total{model="a"'))
        check(n_fb == len(fb), "fallback events %d, vkinfer_fallbacks_total %s" % (len(fb), n_fb))
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        tiny = os.path.join(tmp, "tiny.gguf")
        subprocess.run([a.gen, "--preset", "tiny", "-o", tiny], check=True, capture_output=True)
        test_status(a.vkinfer, a.model, tiny, tmp)
        test_events(a.vkinfer, a.model, tiny, tmp)
    failures = test_server.failures
    print("test_system_status: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
