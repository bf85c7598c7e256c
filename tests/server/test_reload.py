#!/usr/bin/env python3
"""test_reload: hot reload of `vkinfer serve` under load.

50 client threads run for the whole test: 40 send completions to "stay"
(the generated default model) and 10 embeddings to "emb" (a bert-mini made
here). Meanwhile the config is changed and reloaded, by SIGHUP and by
POST /admin/reload: a model is added, one removed, one swapped to another
file (path change), one changed in place (keep_alive, priority), one made
anew (n_ctx); a model is swapped by POST /admin/models/{id}/reload (another
file, then the same file again); a bad config is refused as a whole with
file:line:column (by the route and by SIGHUP) and the running set stays; a
server setting that needs a restart is reported as such. Checks: zero failed
requests to the models that stay; the added model serves; the removed one
answers 404; the swapped one serves from the new file (/v1/models: path and
generation). Then the admin routes' auth: 403 without a key unless
server.admin, 401 without the bearer key. Models from vkinfer-gen.
Usage: test_reload.py --vkinfer PATH --gen PATH --model default.gguf
"""
import argparse, os, signal, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check, error_of  # noqa: E402
import test_server  # noqa: E402

N_CHAT, N_EMB, N_CHURN = 40, 10, 4
CHURN = ["old", "new", "new2", "swap", "remade"]  # models that come, go or change


class Load:
    """The clients: each loops on its model until stopped, counting answers."""

    def __init__(self, s):
        self.s, self.stop, self.lock = s, threading.Event(), threading.Lock()
        self.ok = {"stay": 0, "emb": 0}
        self.failed = []
        self.threads = [threading.Thread(target=self.run, args=("stay",), daemon=True) for _ in range(N_CHAT)]
        self.threads += [threading.Thread(target=self.run, args=("emb",), daemon=True) for _ in range(N_EMB)]
        # Beside the 50: clients of the models that come and go, which must
        # get an answer or a clean 404 (gone) / 503 model_loading (just added,
        # its file still opening), never another error.
        self.churn_ok, self.churn_404, self.churn_bad = 0, 0, []
        self.threads += [threading.Thread(target=self.churn, args=(k,), daemon=True) for k in range(N_CHURN)]
        for t in self.threads:
            t.start()

    def run(self, model):
        while not self.stop.is_set():
            try:
                if model == "stay":
                    st, js, text, _ = self.s.request("POST", "/v1/completions", {
                        "model": "stay", "prompt": "Once upon a time", "max_tokens": 2, "temperature": 0},
                        timeout=120)
                    good = st == 200 and js["choices"][0]["text"] is not None
                else:
                    st, js, text, _ = self.s.request("POST", "/v1/embeddings", {"model": "emb", "input": "hello"},
                                                     timeout=120)
                    good = st == 200 and len(js["data"][0]["embedding"]) > 0
            except Exception as e:  # a reset connection is a failed request too
                st, good, text = -1, False, repr(e)
            with self.lock:
                if good:
                    self.ok[model] += 1
                else:
                    self.failed.append((model, st, text[:300]))

    def churn(self, k):
        n = k
        while not self.stop.is_set():
            model = CHURN[n % len(CHURN)]
            n += 1
            try:
                st, js, text, _ = self.s.request("POST", "/v1/completions", {
                    "model": model, "prompt": "Hi", "max_tokens": 2, "model_fallback": False}, timeout=120)
                code = error_of(js).get("code")
            except Exception as e:
                st, code, text = -1, None, repr(e)
            with self.lock:
                if st == 200:
                    self.churn_ok += 1
                elif st == 404 and code == "model_not_found" or st == 503 and code == "model_loading":
                    self.churn_404 += 1
                else:
                    self.churn_bad.append((model, st, text[:300]))
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(150)


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # a reader never sees half a file


def config(models, extra=""):
    # 55 clients open a connection per request: room for those still closing
    return "server: {admin: true, max_connections_per_ip: 256%s}\ndevice: {prefer: cpu}\nmodels:\n%s" % (extra, "".join(
        "  - {%s}\n" % ", ".join("%s: %s" % kv for kv in m) for m in models))


def models_by_id(s):
    st, js, _, _ = s.request("GET", "/v1/models")
    # "auto" (routes_auto.c) is the router, listed beside the models, not one of them
    return {m["id"]: m for m in js["data"] if m["id"] != "auto"} if st == 200 else {}


def wait_for(what, cond, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    check(False, "timed out waiting for: %s" % what)
    return None


def serves(s, model, what):
    st, js, _, r = s.request("POST", "/v1/completions", {"model": model, "prompt": "Hi", "max_tokens": 2})
    return check(st == 200 and js.get("model") == model, "%s: %s serves (%s %s)" % (what, model, st, js))


def resident(s, model):
    m = models_by_id(s).get(model)
    return m if m and m["state"].startswith("resident") and not m.get("reloading") else None


def test_under_load(exe, model, tiny, tiny2, emb, tmp):
    cfg = os.path.join(tmp, "reload.yaml")
    base = [("id", "stay"), ("path", model), ("n_seq_max", 4)]
    write(cfg, config([base, [("id", "emb"), ("path", emb)], [("id", "old"), ("path", tiny)],
                       [("id", "swap"), ("path", tiny)], [("id", "remade"), ("path", tiny), ("n_ctx", 128)]]))
    s = Server(exe, ["--config", cfg])
    s.wait_ready()
    load = Load(s)
    t0 = time.time()
    time.sleep(1)

    # 1. SIGHUP: remove old, add new, swap's path changes, stay changes in
    # place, remade's n_ctx needs a new model.
    write(cfg, config([base + [("keep_alive", "10m"), ("priority", "interactive")], [("id", "emb"), ("path", emb)],
                       [("id", "swap"), ("path", tiny2)], [("id", "remade"), ("path", tiny), ("n_ctx", 256)],
                       [("id", "new"), ("path", tiny2)]]))
    s.proc.send_signal(signal.SIGHUP)
    wait_for("the SIGHUP reload: new resident, swap on generation 1",
             lambda: resident(s, "new") and resident(s, "swap") and models_by_id(s)["swap"]["generation"] == 1)
    ms = models_by_id(s)
    check("old" not in ms, "the removed model left /v1/models: %s" % sorted(ms))
    check(ms.get("swap", {}).get("path") == tiny2, "swap serves from the new file: %s" % ms.get("swap"))
    check(ms.get("stay", {}).get("keep_alive_s") == 600, "stay's keep_alive applied in place: %s" % ms.get("stay"))
    wait_for("remade made anew with n_ctx 256",
             lambda: (resident(s, "remade") or {}).get("n_ctx") == 256)
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "old", "prompt": "Hi", "max_tokens": 2})
    check(st == 404 and error_of(js).get("code") == "model_not_found", "the removed model answers 404: %s %s" %
          (st, js))
    st, js, _, _ = s.request("GET", "/v1/models/old")
    check(st == 404, "GET /v1/models/old: 404 (%s)" % st)
    serves(s, "new", "added by SIGHUP")
    serves(s, "swap", "swapped by SIGHUP")
    serves(s, "remade", "made anew by SIGHUP")
    err = b"".join(s.err).decode("utf-8", "replace")
    check("SIGHUP" in err and "removed" in err, "the log tells the SIGHUP reload")

    # 2. The route: new goes, new2 comes, swap back to the first file.
    write(cfg, config([base + [("keep_alive", "10m"), ("priority", "interactive")], [("id", "emb"), ("path", emb)],
                       [("id", "swap"), ("path", tiny)], [("id", "remade"), ("path", tiny), ("n_ctx", 256)],
                       [("id", "new2"), ("path", tiny)]]))
    st, js, _, _ = s.request("POST", "/admin/reload")
    check(st == 200 and js["added"] == ["new2"] and js["removed"] == ["new"] and js["swapped"] == ["swap"] and
          sorted(js["unchanged"]) == ["emb", "remade", "stay"] and js["changed"] == [] and
          js["needs_restart"] == [] and js["errors"] == [], "POST /admin/reload: %s %s" % (st, js))
    wait_for("the route's reload", lambda: resident(s, "new2") and resident(s, "swap") and
             models_by_id(s)["swap"]["generation"] == 2 and "new" not in models_by_id(s))
    check(models_by_id(s)["swap"]["path"] == tiny, "swap back on the first file")
    serves(s, "new2", "added by the route")
    st, js, _, _ = s.request("POST", "/v1/completions", {"model": "new", "prompt": "Hi", "max_tokens": 2})
    check(st == 404, "removed by the route: 404 (%s)" % st)

    # 3. One model's file: another one, then the same file again (replaced on disk).
    st, js, _, _ = s.request("POST", "/admin/models/swap/reload", {"path": tiny2})
    check(st == 202 and js["path"] == tiny2 and js["from"] == tiny, "POST /admin/models/swap/reload: %s %s" % (st, js))
    wait_for("swap on tiny2, generation 3", lambda: resident(s, "swap") and models_by_id(s)["swap"]["generation"] == 3)
    st, js, _, _ = s.request("POST", "/admin/models/swap/reload")
    check(st == 202 and js["path"] == tiny2, "reload of the same file: %s %s" % (st, js))
    wait_for("swap generation 4", lambda: resident(s, "swap") and models_by_id(s)["swap"]["generation"] == 4)
    serves(s, "swap", "swapped by the route")
    st, js, _, _ = s.request("POST", "/admin/models/nosuch/reload")
    check(st == 404, "an unknown model: 404 (%s %s)" % (st, js))
    st, js, _, _ = s.request("POST", "/admin/models/swap/reload", {"path": os.path.join(tmp, "absent.gguf")})
    check(st == 400 and "absent.gguf" in error_of(js).get("message", ""), "a missing file: 400 (%s %s)" % (st, js))
    st, js, _, _ = s.request("POST", "/admin/models/swap/reload", {"file": tiny})
    check(st == 400, "an unknown field: 400 (%s %s)" % (st, js))

    # 4. A bad config: refused whole with file:line:column, the running set stays.
    before = sorted(models_by_id(s))
    with open(cfg) as f:
        good = f.read()
    write(cfg, good.replace("id: new2", "id: new3").replace("n_seq_max: 4", "n_seq_max: lots"))
    st, js, _, _ = s.request("POST", "/admin/reload")
    msg = error_of(js).get("message", "")
    check(st == 400 and (cfg + ":") in msg and "n_seq_max" in msg, "bad config refused with file:line:col: %s %s" %
          (st, js))
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    check(sorted(models_by_id(s)) == before, "the running set stays: %s" % sorted(models_by_id(s)))
    err = b"".join(s.err).decode("utf-8", "replace")
    check(err.count("refused, the running configuration stays") >= 2, "both refusals logged")
    write(cfg, good.replace("path: %s}" % tiny, "path: %s}" % os.path.join(tmp, "absent.gguf"), 1))
    st, js, _, _ = s.request("POST", "/admin/reload")
    check(st == 400 and "absent.gguf" in error_of(js).get("message", "") and ":" in error_of(js).get("message", ""),
          "a path that cannot be opened refuses the reload: %s %s" % (st, js))

    # 5. A server setting that needs a restart is reported, not applied.
    write(cfg, good.replace("admin: true", "admin: true, max_connections: 100, max_body: 2MiB"))
    st, js, _, _ = s.request("POST", "/admin/reload")
    check(st == 200 and js["needs_restart"] == ["server.max_connections"] and js["live"] == ["server.max_body"] and
          sorted(js["unchanged"]) == before, "needs restart: %s %s" % (st, js))
    time.sleep(max(0.0, 8 - (time.time() - t0)))  # the load runs a while past the last reload
    load.finish()
    print("under load: %d completions to stay and %d embeddings to emb in %.1f s, %d failed" %
          (load.ok["stay"], load.ok["emb"], time.time() - t0, len(load.failed)))
    check(not load.failed, "requests to models that stay failed: %s" % load.failed[:5])
    print("models that come and go: %d answered, %d refused cleanly (404 gone / 503 loading), %d other errors" %
          (load.churn_ok, load.churn_404, len(load.churn_bad)))
    check(not load.churn_bad, "requests to models that come and go: errors other than 404/503 loading: %s" %
          load.churn_bad[:5])
    check(load.ok["stay"] > 0 and load.ok["emb"] > 0, "both models answered under load: %s" % load.ok)
    s.stop()


def test_auth(exe, model, tmp):
    cfg = os.path.join(tmp, "auth.yaml")
    write(cfg, "device: {prefer: cpu}\nmodels:\n  - {id: a, path: %s}\n" % model)
    s = Server(exe, ["--config", cfg])
    st, js, _, _ = s.request("POST", "/admin/reload")
    check(st == 403 and error_of(js).get("code") == "admin_disabled", "no key, no admin: 403 (%s %s)" % (st, js))
    st, js, _, _ = s.request("POST", "/admin/models/a/reload")
    check(st == 403, "no key, no admin: 403 for a model too (%s)" % st)
    st, js, _, _ = s.request("GET", "/admin/reload")
    check(st == 405, "GET /admin/reload: 405 (%s)" % st)
    s.proc.send_signal(signal.SIGHUP)  # SIGHUP is the operator's: no key needed, and it never kills
    time.sleep(0.5)
    check(s.proc.poll() is None, "the server survives SIGHUP")
    s.stop()
    env = dict(os.environ, RELOAD_TEST_KEY="sekrit")
    s = Server(exe, ["--config", cfg, "--api-key-env", "RELOAD_TEST_KEY"], env=env)
    st, js, _, _ = s.request("POST", "/admin/reload")
    check(st == 401, "with a key, none given: 401 (%s)" % st)
    st, js, _, _ = s.request("POST", "/admin/reload", headers={"Authorization": "Bearer sekrit"})
    check(st == 200 and js["unchanged"] == ["a"], "with the key: 200 (%s %s)" % (st, js))
    s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skip: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, args in (("tiny", ["--preset", "tiny"]), ("tiny2", ["--preset", "tiny", "--seed", "2"]),
                           ("emb", ["--preset", "bert-mini"])):
            paths[name] = os.path.join(tmp, name + ".gguf")
            subprocess.run([a.gen] + args + ["-o", paths[name]], check=True, capture_output=True)
        test_under_load(a.vkinfer, a.model, paths["tiny"], paths["tiny2"], paths["emb"], tmp)
        test_auth(a.vkinfer, a.model, tmp)
    print("test_reload: %s" % ("ok" if test_server.failures == 0 else "%d failures" % test_server.failures))
    return 1 if test_server.failures else 0


if __name__ == "__main__":
    sys.exit(main())
