"""test_pull.py: `vkinfer pull` and `serve -m hf://...` against the loopback
hub imitation (hub.py): a fresh pull (bytes identical to the source), a
resume after a dropped connection (a Range request from where it broke, no
byte fetched twice) and after an interrupted run (.part left behind), a
server that ignores Range, a stall past --stall-timeout, 503 then success,
a wrong published sha256 (exit 1, both digests named, no file left), 404s
(repository, file, URL), not enough disk space (the VKI_PULL_TEST_FREE_BYTES
hook, and a real 2 MiB tmpfs where user namespaces allow one), a gated repository and its token (never printed), a paged listing
and a repository with several GGUF files (the error lists them), an unsafe
path in a listing, a safetensors folder (git sha1 of small files checked),
a plain URL (X-Linked-Etag checked), a second pull that fetches nothing,
and `serve -m hf://...` reaching /health 200.

Models: the build's generated default.gguf and an HF folder made by
vkinfer-gen; the shared models (../shared/models) when present (their cases
are skipped with a note otherwise)."""
import argparse
import fcntl
import filecmp
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub as hubmod  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


class Ctx:
    pass


def pull(c, *args, env=None, dirname=None):
    """Runs vkinfer pull; returns (rc, stdout, stderr)."""
    d = dirname or c.dir
    e = dict(os.environ)
    e.pop("HF_TOKEN", None)
    e.update(env or {})
    p = subprocess.run([c.exe, "pull", "--dir", d, "--hub", c.url] + list(args), capture_output=True, text=True,
                       env=e, timeout=120)
    return p.returncode, p.stdout.strip(), p.stderr


def fresh(c):
    c.hub.reset()
    shutil.rmtree(c.dir, ignore_errors=True)
    os.makedirs(c.dir)


def byte_requests(c, name):
    return [r for r in c.hub.log if r["path"].startswith("/_cdn/") and name in r["path"] and r["method"] == "GET"]


def t_fresh(c):
    fresh(c)
    rc, out, err = pull(c, "hf://gen/default")
    want = os.path.join(c.dir, "gen/default/default.gguf")
    check(rc == 0 and out == want, "fresh pull exits 0 and prints the path (%s; %s)" % (out, err.strip()[-300:]))
    check(os.path.exists(want) and filecmp.cmp(want, c.model, shallow=False), "fresh pull: file identical to source")
    check(not os.path.exists(want + ".part"), "fresh pull: no .part left")
    check("(verified)" in err, "fresh pull: says the sha256 was verified")
    sent = sum(r["sent"] for r in byte_requests(c, "default.gguf"))
    check(sent == c.size, "fresh pull: %d bytes served for a %d-byte file" % (sent, c.size))
    # Again: nothing is fetched, the complete file is kept.
    c.hub.reset()
    rc, out, err = pull(c, "hf://gen/default")
    check(rc == 0 and "already present" in err and not byte_requests(c, "default.gguf"),
          "a second pull fetches nothing (%s)" % err.strip()[-200:])
    rc, out, err = pull(c, "-q", "hf://gen/default")
    check(rc == 0 and out == want and err == "", "--quiet: only the path, on stdout (%r)" % err)
    rc, out, err = pull(c)
    check(rc == 1 and "which model?" in err, "no model named: a clear error (%s)" % err.strip())
    rc, out, err = pull(c, "--retries", "x", "hf://gen/default")
    check(rc == 1 and "--retries" in err, "a bad option value: a clear error (%s)" % err.strip())


def t_resume_drop(c):
    fresh(c)
    c.hub.knobs["drop_once"].add("gen/default/default.gguf")
    rc, out, err = pull(c, "hf://gen/default")
    want = os.path.join(c.dir, "gen/default/default.gguf")
    check(rc == 0 and filecmp.cmp(want, c.model, shallow=False),
          "dropped connection: pull retries and the file is identical (%s)" % err.strip()[-300:])
    reqs = byte_requests(c, "default.gguf")
    check(len(reqs) == 2, "dropped connection: two byte requests (%d)" % len(reqs))
    if len(reqs) == 2:
        first = reqs[0]["sent"]
        check(reqs[0]["range"] is None and reqs[1]["range"] == "bytes=%d-" % first and reqs[1]["status"] == 206,
              "dropped connection: the retry asks Range bytes=%d- (got %s, %s)" % (first, reqs[1]["range"],
                                                                                    reqs[1]["status"]))
        check(first + reqs[1]["sent"] == c.size, "dropped connection: no byte fetched twice (%d + %d of %d)" % (
            first, reqs[1]["sent"], c.size))
    check("resuming at byte" in err, "dropped connection: the resume is reported")


def t_resume_part(c):
    fresh(c)
    dest = os.path.join(c.dir, "gen/default")
    os.makedirs(dest)
    half = c.size // 3
    with open(c.model, "rb") as f, open(os.path.join(dest, "default.gguf.part"), "wb") as o:
        o.write(f.read(half))
    rc, out, err = pull(c, "hf://gen/default")
    reqs = byte_requests(c, "default.gguf")
    check(rc == 0 and filecmp.cmp(os.path.join(dest, "default.gguf"), c.model, shallow=False),
          "interrupted run: the .part is resumed to an identical file")
    check(len(reqs) == 1 and reqs[0]["range"] == "bytes=%d-" % half and reqs[0]["sent"] == c.size - half,
          "interrupted run: one Range request for the missing %d bytes (%s)" % (
              c.size - half, [(r["range"], r["sent"]) for r in reqs]))


def t_locked(c):
    fresh(c)
    dest = os.path.join(c.dir, "gen/default")
    os.makedirs(dest)
    with open(os.path.join(dest, "default.gguf.part"), "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        rc, out, err = pull(c, "hf://gen/default")
    check(rc == 1 and "another vkinfer is downloading it" in err and not byte_requests(c, "default.gguf"),
          "a .part another pull holds is left alone: %s" % err.strip())
    rc, out, err = pull(c, "hf://gen/default")
    check(rc == 0 and filecmp.cmp(out, c.model, shallow=False), "once released, the pull goes through")


def t_ignore_range(c):
    fresh(c)
    c.hub.knobs["drop_once"].add("gen/default/default.gguf")
    c.hub.knobs["ignore_range"] = True
    rc, out, err = pull(c, "hf://gen/default")
    want = os.path.join(c.dir, "gen/default/default.gguf")
    check(rc == 0 and filecmp.cmp(want, c.model, shallow=False),
          "server ignoring Range: restarted cleanly, file identical (%s)" % err.strip()[-300:])
    check("ignored the Range request" in err, "server ignoring Range: reported")


def t_stall_and_503(c):
    fresh(c)
    c.hub.knobs["stall_once"]["gen/default/default.gguf"] = 40
    c.hub.knobs["fail_503"]["gen/default/default.gguf"] = 1
    t0 = time.time()
    rc, out, err = pull(c, "--stall-timeout", "1", "hf://gen/default")
    want = os.path.join(c.dir, "gen/default/default.gguf")
    check(rc == 0 and filecmp.cmp(want, c.model, shallow=False),
          "503 then a stall: retried, resumed, identical (%s)" % err.strip()[-400:])
    check("503" in err and "timed out" in err, "503 and the stall are reported as retried")
    check(time.time() - t0 < 30, "a stall ends after --stall-timeout, not the server's 40 s hang (%.1f s)" % (
        time.time() - t0))
    fresh(c)
    c.hub.knobs["fail_503"]["gen/default/default.gguf"] = 10
    rc, out, err = pull(c, "--retries", "1", "hf://gen/default")
    check(rc == 1 and "HTTP 503 service unavailable" in err and "after 2 tries" in err,
          "503 every time: fails after the retries, naming the status (%s)" % err.strip()[-200:])


def t_checksum(c):
    fresh(c)
    c.hub.knobs["wrong_sha"].add("gen/default/default.gguf")
    rc, out, err = pull(c, "hf://gen/default")
    wrong = c.hub.published_sha("gen/default", "default.gguf")
    real = c.hub.repos["gen/default"]["default.gguf"]["sha256"]
    dest = os.path.join(c.dir, "gen/default")
    check(rc == 1 and "checksum mismatch" in err and wrong in err and real in err,
          "checksum mismatch: exit 1 naming both digests (%s)" % err.strip()[-300:])
    check(not os.path.exists(os.path.join(dest, "default.gguf")) and
          not os.path.exists(os.path.join(dest, "default.gguf.part")), "checksum mismatch: no file and no .part left")


def t_404(c):
    fresh(c)
    rc, out, err = pull(c, "hf://nobody/nothing")
    check(rc == 1 and "repository not found" in err and "404" in err, "404 repo: %s" % err.strip())
    rc, out, err = pull(c, "hf://gen/default:missing.gguf")
    check(rc == 1 and "no file 'missing.gguf'" in err and "default.gguf" in err, "404 file: %s" % err.strip())
    rc, out, err = pull(c, "--revision", "v9", "hf://gen/default")
    check(rc == 1 and "revision not found" in err, "404 revision: %s" % err.strip())
    rc, out, err = pull(c, c.url + "/gen/default/resolve/main/missing.gguf")
    check(rc == 1 and "HTTP 404 file not found in the repository" in err, "404 URL: %s" % err.strip())
    check(not any(f for _, _, fs in os.walk(c.dir) for f in fs), "404s leave no files")
    rc, out, err = pull(c, "hf://../etc")
    check(rc == 1 and "expected hf://ORG/REPO" in err, "a malformed hf:// spec is refused: %s" % err.strip())
    p = subprocess.run([c.exe, "pull", "--dir", c.dir, "--hub", "http://127.0.0.1:9", "--retries", "0",
                        "hf://gen/default"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and "cannot connect" in p.stderr, "connection refused: %s" % p.stderr.strip())


def t_disk_full(c):
    fresh(c)
    rc, out, err = pull(c, "hf://gen/default", env={"VKI_PULL_TEST_FREE_BYTES": "1000"})
    check(rc == 1 and "not enough disk space" in err and "1000 B free" in err, "disk full: %s" % err.strip())
    check(not byte_requests(c, "default.gguf"), "disk full: checked before any byte is fetched")
    check(not any(f for _, _, fs in os.walk(c.dir) for f in fs), "disk full: no files")
    # A URL gives its size only in the answer: checked there.
    rc, out, err = pull(c, c.url + "/gen/default/resolve/main/default.gguf",
                        env={"VKI_PULL_TEST_FREE_BYTES": "4096"})
    check(rc == 1 and "not enough disk space" in err, "disk full on a URL (size from the answer): %s" % err.strip())
    check(not os.path.exists(os.path.join(c.dir, "default.gguf")), "disk full on a URL: no file")


def t_tmpfs(c):
    """A real small filesystem (a 2 MiB tmpfs in a private mount namespace):
    statvfs refuses the pull up front; a file whose size the server does not
    say fills the disk and stops with ENOSPC, its .part kept."""
    fresh(c)
    mnt = os.path.join(c.dir, "tmpfs")
    os.makedirs(mnt)
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=2m tmpfs %s" % mnt],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("skip: real tmpfs cases: cannot mount a tmpfs in a user namespace (%s)" % probe.stderr.strip())
        return

    def pull_ns(*args):
        script = 'mount -t tmpfs -o size=2m tmpfs "$1" && shift && exec "$@"'
        p = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", mnt, c.exe, "pull", "--dir", mnt, "--hub",
                            c.url] + list(args), capture_output=True, text=True, timeout=120)
        return p.returncode, p.stderr

    rc, err = pull_ns("hf://gen/default")
    check(rc == 1 and "not enough disk space" in err and "14.0 MiB to download" in err,
          "tmpfs: statvfs says the file does not fit, before any byte (%s)" % err.strip())
    check(not byte_requests(c, "default.gguf"), "tmpfs: nothing fetched")
    c.hub.knobs["no_length"].add("gen/default/default.gguf")
    rc, err = pull_ns("--retries", "0", c.url + "/gen/default/resolve/main/default.gguf")
    check(rc == 1 and "No space left on device" in err and ".part is kept" in err,
          "tmpfs: a file of unknown size fills the disk: ENOSPC named (%s)" % err.strip()[-300:])


def t_gated(c):
    fresh(c)
    c.hub.knobs["gated"]["gated/default"] = "sekrit-token-123"
    rc, out, err = pull(c, "hf://gated/default")
    check(rc == 1 and "gated" in err and "token" in err, "gated without a token: %s" % err.strip())
    c.hub.log.clear()
    rc, out, err = pull(c, "--token", "sekrit-token-123", "hf://gated/default")
    check(rc == 0 and filecmp.cmp(out, c.model, shallow=False), "gated with --token: pulled (%s)" % err.strip()[-200:])
    check("sekrit" not in out + err, "the token is never printed")
    cdn = [r for r in c.hub.log if r["path"].startswith("/_cdn/")]
    check(cdn and all(r["auth"] is None for r in cdn), "the token is not sent to the CDN (another host)")
    api = [r for r in c.hub.log if r["path"].startswith("/api/")]
    check(api and all(r["auth"] == "Bearer sekrit-token-123" for r in api), "the token is sent to the hub")
    fresh(c)
    c.hub.knobs["gated"]["gated/default"] = "sekrit-token-123"
    rc, out, err = pull(c, "hf://gated/default", env={"HF_TOKEN": "sekrit-token-123"})
    check(rc == 0, "gated with HF_TOKEN: pulled")
    rc, out, err = pull(c, "hf://gated/default", env={"HF_TOKEN": "wrong"})
    check(rc == 1 and "this token has no access" in err and "wrong" not in err,
          "gated with a refused token: says so: %s" % err.strip())


def t_listing(c):
    if not c.shared:
        print("skip: several GGUF files / paged listing: %s/models is absent" % c.shared_dir)
        return
    fresh(c)
    c.hub.knobs["page_size"] = 3
    rc, out, err = pull(c, "hf://shared/tiny")
    n = len(c.hub.repos["shared/tiny"])
    pages = [r for r in c.hub.log if r["path"].startswith("/api/")]
    check(rc == 1 and "holds %d GGUF files; choose one" % n in err and "hf://shared/tiny:stories260K.gguf" in err,
          "several GGUF files: an error lists them (%s)" % err.strip()[:300])
    check(len(pages) == (n + 2) // 3, "the listing is read over every page (%d requests)" % len(pages))
    rc, out, err = pull(c, "hf://shared/tiny:stories260K.gguf")
    src = os.path.join(c.shared_dir, "models/stories260K.gguf")
    check(rc == 0 and filecmp.cmp(out, src, shallow=False), "hf://ORG/REPO:FILE pulls that shared model")
    # A hub that lists a path outside the repository folder is refused.
    c.hub.knobs["extra_entries"]["shared/tiny"] = [{"type": "file", "path": "../../evil.gguf", "size": 1,
                                                     "oid": "0" * 40}]
    rc, out, err = pull(c, "hf://shared/tiny:../../evil.gguf")
    check(rc == 1 and "not a file path inside the repository" in err, "an unsafe FILE is refused")
    c.hub.knobs["extra_entries"]["shared/tiny"] = [{"type": "file", "path": "x/../../evil.gguf", "size": 1,
                                                     "oid": "0" * 40}]
    c.hub.repos["unsafe/one"] = {}
    c.hub.knobs["extra_entries"]["unsafe/one"] = [{"type": "file", "path": "../evil.gguf", "size": 1,
                                                    "lfs": {"oid": "0" * 64, "size": 1}}]
    rc, out, err = pull(c, "hf://unsafe/one")
    check(rc == 1 and "unsafe path" in err, "a listed unsafe path is refused: %s" % err.strip())
    check(not os.path.exists(os.path.join(c.dir, "evil.gguf")), "nothing written outside the folder")
    del c.hub.repos["unsafe/one"]


def t_safetensors(c):
    fresh(c)
    rc, out, err = pull(c, "hf://gen/hf-tiny")
    want = os.path.join(c.dir, "gen/hf-tiny")
    check(rc == 0 and out == want, "safetensors folder: path is the folder (%s; %s)" % (out, err.strip()[-300:]))
    files = sorted(c.hub.repos["gen/hf-tiny"])
    same = all(filecmp.cmp(os.path.join(want, f), c.hub.repos["gen/hf-tiny"][f]["local"], shallow=False)
               for f in files if os.path.exists(os.path.join(want, f)))
    got = sorted(os.listdir(want)) if os.path.isdir(want) else []
    check(same and got == files, "safetensors folder: every file identical (%s)" % got)
    check("git sha1 verified" in err, "small files: git blob sha1 verified")
    p = subprocess.run([c.exe, "inspect", want], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "the pulled folder opens (vkinfer inspect): %s" % p.stderr.strip()[-200:])


def t_url(c):
    fresh(c)
    rc, out, err = pull(c, c.url + "/gen/default/resolve/main/default.gguf")
    want = os.path.join(c.dir, "default.gguf")
    check(rc == 0 and out == want and filecmp.cmp(want, c.model, shallow=False),
          "plain URL: saved as DIR/FILE, identical (%s)" % err.strip()[-200:])
    check("(verified)" in err, "plain URL: X-Linked-Etag checked")
    # A whole file left as .part (a run stopped before the rename): the
    # server's 416 says it is complete; checked, renamed, nothing fetched.
    os.rename(want, want + ".part")
    c.hub.log.clear()
    rc, out, err = pull(c, c.url + "/gen/default/resolve/main/default.gguf")
    reqs = byte_requests(c, "default.gguf")
    check(rc == 0 and filecmp.cmp(want, c.model, shallow=False) and [r["status"] for r in reqs] == [416],
          "plain URL: a complete .part is verified and kept after the server's 416 (%s)" % [
              (r["range"], r["status"]) for r in reqs])
    fresh(c)
    rc, out, err = pull(c, "--sha256", "ab" * 32, c.url + "/gen/default/resolve/main/default.gguf")
    check(rc == 1 and "checksum mismatch" in err and "ab" * 32 in err, "plain URL: --sha256 mismatch refused")


def wait_health(port, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def t_serve(c):
    fresh(c)
    xdg = os.path.join(c.dir, "xdg")
    env = dict(os.environ, VKI_HUB_URL=c.url, XDG_DATA_HOME=xdg)
    env.pop("HF_TOKEN", None)
    cfg = os.path.join(c.dir, "serve.yaml")
    with open(cfg, "w") as f:
        f.write("models:\n  - id: st\n    path: hf://gen/hf-tiny\n")
    proc = subprocess.Popen([c.exe, "serve", "-m", "hf://gen/default", "--config", cfg, "--port", "0", "--backend",
                             "cpu", "--threads", "2", "--no-warmup"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"http://[^:]+:(\d+)", line)
        ok = bool(m) and wait_health(int(m.group(1)), proc)
        check(ok, "serve -m hf://gen/default --config (path: hf://gen/hf-tiny): /health 200 (%r)" % line)
        pulled = os.path.join(xdg, "vkinfer/models/gen/default/default.gguf")
        check(os.path.exists(pulled) and filecmp.cmp(pulled, c.model, shallow=False),
              "serve pulled into $XDG_DATA_HOME/vkinfer/models")
        if m:
            conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=10)
            conn.request("GET", "/v1/models")
            body = conn.getresponse().read().decode()
            check('"id":"default"' in body, "the pulled -m model's id is its file name: %s" % body[:200])
            check('"id":"st"' in body, "the config's path: hf://gen/hf-tiny is pulled and served")
        check(os.path.isdir(os.path.join(xdg, "vkinfer/models/gen/hf-tiny")), "the config's model is in the folder")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    p = subprocess.run([c.exe, "serve", "-m", "hf://nobody/nothing", "--port", "0"], capture_output=True, text=True,
                       env=env, timeout=60)
    check(p.returncode == 1 and "repository not found" in p.stderr, "serve -m of a missing repo: a clear error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True, help="the build's default.gguf")
    a = ap.parse_args()
    c = Ctx()
    c.exe, c.model = a.vkinfer, a.model
    # libcurl honours the proxy variables: the loopback hub is never behind one.
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    if subprocess.run([c.exe, "pull", "--help"], capture_output=True).returncode != 0 or b"built without" in \
            subprocess.run([c.exe, "pull", "x"], capture_output=True).stderr:
        print("skip: this vkinfer was built without libcurl/libcrypto")
        return 77
    c.size = os.path.getsize(c.model)
    c.shared_dir = os.environ.get("VKI_SHARED_DIR", "")
    tmp = tempfile.mkdtemp(prefix="vki-pull-")
    try:
        hf = os.path.join(tmp, "hf-tiny")
        subprocess.run([a.gen, "--preset", "default", "--format", "hf", "--shard-mb", "6", "-o", hf], check=True,
                       capture_output=True)
        repos = {"gen/default": {"default.gguf": c.model}, "gated/default": {"default.gguf": c.model},
                 "gen/hf-tiny": {f: os.path.join(hf, f) for f in os.listdir(hf)}}
        sm = os.path.join(c.shared_dir, "models")
        c.shared = os.path.isdir(sm) and os.path.exists(os.path.join(sm, "stories260K.gguf"))
        if c.shared:
            repos["shared/tiny"] = {f: os.path.join(sm, f) for f in sorted(os.listdir(sm)) if f.endswith(".gguf")}
        c.hub = hubmod.Hub(repos)
        srv, c.url = hubmod.serve(c.hub)
        c.dir = os.path.join(tmp, "models")
        for t in (t_fresh, t_resume_drop, t_resume_part, t_locked, t_ignore_range, t_stall_and_503, t_checksum, t_404,
                  t_disk_full, t_tmpfs, t_gated, t_listing, t_safetensors, t_url, t_serve):
            print("--", t.__name__, flush=True)
            t0 = time.time()
            t(c)
            print("   (%.1f s)" % (time.time() - t0), flush=True)
        srv.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d FAILED:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
