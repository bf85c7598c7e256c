#!/usr/bin/env python3
"""test_nginx_replicas.py: two `vkinfer serve` replicas behind nginx with
docs/nginx/vkinfer.conf (issue 15), on loopback only.

nginx runs as the current user from a temp folder (its pid, logs and temp
paths there), the documented config included with the replicas' and its own
ports substituted. For DURATION seconds clients send embeddings, non-stream
completions and long streams through nginx; once streams are running on
replica A it is killed with SIGKILL. Checks: no embedding request fails
(nginx passes them to B); every non-stream completion succeeds, directly or
after one client retry of a 502 (as OpenAI's SDK retries); every stream
either ends with data: [DONE] or, cut mid-way by the kill, ends with an
error or EOF within STREAM_CUT_S of it (never a hang), and at least one was
cut; nginx still answers /health at the end. Prints the counts.
Usage: test_nginx_replicas.py --vkinfer PATH --gen PATH --model default.gguf
       --conf docs/nginx/vkinfer.conf [--nginx PATH] [--duration S]"""
import argparse, http.client, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

STREAM_CUT_S = 5.0     # a cut stream must end this soon after the kill
CLIENT_TIMEOUT = 60.0  # a read that takes longer is a hang


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def nginx_conf(tmp, doc, ports, listen):
    """The documented config with our ports, inside a main config that keeps
    everything in tmp and runs as the current user (no master process to
    switch users; fine for a test)."""
    text = open(doc).read()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+[^;]*;", text, re.M)
    check(len(servers) == 2, "the documented upstream lists two replicas")
    for line, port in zip(servers, ports):
        text = text.replace(line, re.sub(r":\d+", ":%d" % port, line), 1)
    text = re.sub(r"listen \d+;", "listen 127.0.0.1:%d;" % listen, text, count=1)
    with open(os.path.join(tmp, "vkinfer.conf"), "w") as f:
        f.write(text)
    for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    main = """daemon off;
master_process off;
worker_processes 1;
pid %(t)s/nginx.pid;
error_log %(t)s/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log %(t)s/logs/access.log;
    client_body_temp_path %(t)s/client;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fastcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    include %(t)s/vkinfer.conf;
}
""" % {"t": tmp}
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(main)
    return path


class Counts:
    def __init__(self):
        self.mu = threading.Lock()
        self.c = {}
        self.notes = []

    def add(self, key, note=None):
        with self.mu:
            self.c[key] = self.c.get(key, 0) + 1
            if note and len(self.notes) < 20:
                self.notes.append("%s: %s" % (key, note))

    def get(self, key):
        return self.c.get(key, 0)


def post(port, path, body, timeout=CLIENT_TIMEOUT):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, data
    finally:
        c.close()


def embed_client(port, stop, n):
    body = {"model": "embed", "input": ["the quick brown fox %d" % i for i in range(4)]}
    while not stop.is_set():
        try:
            st, data = post(port, "/v1/embeddings", body)
            ok = st == 200 and len(json.loads(data)["data"]) == 4
            n.add("embed_ok" if ok else "embed_failed", None if ok else "%s %r" % (st, data[:200]))
        except Exception as e:  # noqa: BLE001 (any failure counts)
            n.add("embed_failed", repr(e))


def completion_client(port, stop, n):
    body = {"model": "chat-c", "prompt": "once upon a time", "max_tokens": 24, "temperature": 0}
    while not stop.is_set():
        for attempt in range(2):
            try:
                st, data = post(port, "/v1/completions", body)
            except Exception as e:  # noqa: BLE001
                st, data = -1, repr(e).encode()
            if st == 200:
                n.add("completion_ok" if attempt == 0 else "completion_retried_ok")
                break
            if attempt == 0 and st in (502, 503, 504):
                n.add("completion_502_retried")  # the client's retry, as the SDK does
                continue
            n.add("completion_failed", "%s %r" % (st, data[:200]))
            break


def stream_client(port, stop, n, kill_time):
    body = {"model": "chat", "messages": [{"role": "user", "content": "tell me a long story"}], "stream": True,
            "max_tokens": 4000, "ignore_eos": True, "temperature": 0}
    while not stop.is_set():
        t0 = time.time()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        done, events, err = False, 0, None
        try:
            c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                # a new stream sent to the dying replica before nginx knew
                err = "status %d" % r.status
            else:
                buf = b""
                while True:
                    chunk = r.read1(65536)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n\n" in buf:
                        ev, buf = buf.split(b"\n\n", 1)
                        if ev == b"data: [DONE]":
                            done = True
                        elif ev.startswith(b"data: "):
                            events += 1
                if not done:
                    err = "EOF without [DONE]"
        except socket.timeout:
            n.add("stream_hung", "no byte for %.0f s" % CLIENT_TIMEOUT)
            continue
        except (http.client.HTTPException, OSError) as e:
            err = repr(e)
        finally:
            c.close()
        t1 = time.time()
        if done:
            n.add("stream_done")
        elif kill_time[0] and t0 < kill_time[0] <= t1:
            # cut mid-way by the kill: it must end soon after it
            n.add("stream_cut")
            if t1 - kill_time[0] > STREAM_CUT_S:
                n.add("stream_cut_late", "%.1f s after the kill" % (t1 - kill_time[0]))
        elif err and err.startswith("status 50"):
            n.add("stream_refused_5xx", err)
        else:
            n.add("stream_failed", "%s after %d events" % (err, events))


def streaming(s):
    """(streams replica s is generating, tokens it has generated for them): the
    model only streams use, from its /metrics; (-1, -1) when it does not answer."""
    try:
        st, _, text, _ = s.request("GET", "/metrics", timeout=5)
    except OSError:
        return -1, -1
    m = re.search(r'^vkinfer_active_sequences\{model="chat"\} (\d+)', text, re.M)
    g = re.search(r'^vkinfer_generated_tokens_total\{model="chat"\} (\d+)', text, re.M)
    return (int(m.group(1)) if m else -1), (int(g.group(1)) if g else -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--conf", required=True)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--duration", type=float, default=20)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    if not os.access(a.nginx, os.X_OK):
        # scripts/deps.sh installs nginx-light: absent only on a machine not set up by it
        print("skipped: nginx is not installed (%s); bash scripts/deps.sh installs nginx-light" % a.nginx)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        bert = os.path.join(tmp, "bert.gguf")
        subprocess.run([a.gen, "--preset", "bert-mini", "-o", bert], check=True, capture_output=True)
        cfg = os.path.join(tmp, "replica.yaml")
        with open(cfg, "w") as f:
            # nginx is one client address with many connections
            f.write("server: {max_connections_per_ip: 256}\n"
                    "device: {prefer: cpu}\n"
                    "models:\n"
                    # streams use chat, non-stream completions chat-c (the same
                    # file): the kill waits for a stream on replica A
                    "  - {id: chat, path: %s, n_seq_max: 8}\n"
                    "  - {id: chat-c, path: %s, n_seq_max: 8}\n"
                    "  - {id: embed, path: %s}\n" % (os.path.abspath(a.model), os.path.abspath(a.model), bert))
        reps = [Server(a.vkinfer, ["--config", cfg, "--threads", "1"]) for _ in range(2)]
        for s in reps:
            s.wait_ready()
        listen = free_port()
        ngx = subprocess.Popen([a.nginx, "-p", tmp, "-c", nginx_conf(tmp, a.conf, [s.port for s in reps], listen)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            return run(a, reps, ngx, listen, tmp)
        finally:
            ngx.kill()
            ngx.wait()
            for s in reps:
                if s.proc.poll() is None:
                    s.stop()


def run(a, reps, ngx, listen, tmp):
    t0 = time.time()
    while True:
        try:
            st, _ = post(listen, "/v1/embeddings", {"model": "embed", "input": "up?"}, timeout=5)
            if st == 200:
                break
        except OSError:
            pass
        if ngx.poll() is not None or time.time() - t0 > 15:
            print(ngx.stdout.read().decode(errors="replace"))
            check(False, "nginx starts with the documented config")
            return 1
        time.sleep(0.1)
    n, stop, kill_time = Counts(), threading.Event(), [0.0]
    threads = [threading.Thread(target=embed_client, args=(listen, stop, n)) for _ in range(3)]
    threads += [threading.Thread(target=completion_client, args=(listen, stop, n)) for _ in range(2)]
    threads += [threading.Thread(target=stream_client, args=(listen, stop, n, kill_time)) for _ in range(4)]
    for t in threads:
        t.start()
    t_start = time.time()
    # Kill replica A while it is streaming (at most half-way through the run).
    time.sleep(a.duration * 0.25)
    victim = reps[0]
    # A stream admitted but not yet generating has sent nginx no byte, so
    # nginx may rightly pass it to B when A dies; one seen generating on two
    # polls apart is mid-way, and lasts seconds more (4000 tokens).
    busy, prev = 0, (0, -1)
    while time.time() - t_start < a.duration * 0.5:
        cur = streaming(victim)
        if cur[0] >= 1 and prev[0] >= 1 and cur[1] > prev[1] >= 0:
            busy = cur[0]
            break
        prev = cur
        time.sleep(0.25)
    kill_time[0] = time.time()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    print("killed replica A (port %d, %d streams running) at %.1f s" % (victim.port, busy,
                                                                         kill_time[0] - t_start))
    time.sleep(max(0.0, a.duration - (time.time() - t_start)))
    stop.set()
    for t in threads:
        t.join(CLIENT_TIMEOUT + 10)
    check(not any(t.is_alive() for t in threads), "every client ended (no hang)")
    c = n.c
    print("counts: " + ", ".join("%s=%d" % kv for kv in sorted(c.items())))
    for note in n.notes:
        print("  " + note)
    check(n.get("embed_ok") > 0 and n.get("embed_failed") == 0,
          "zero failed embedding requests (%d ok, %d failed)" % (n.get("embed_ok"), n.get("embed_failed")))
    check(n.get("completion_failed") == 0 and n.get("completion_ok") > 0,
          "non-stream completions succeed or succeed on a retry (%d, %d retried)" %
          (n.get("completion_ok"), n.get("completion_retried_ok")))
    check(n.get("completion_502_retried") == n.get("completion_retried_ok"),
          "every client retry of a completion succeeded")
    check(n.get("stream_hung") == 0 and n.get("stream_failed") == 0 and n.get("stream_cut_late") == 0,
          "streams end with [DONE] or, cut by the kill, with an error within %.0f s" % STREAM_CUT_S)
    check(n.get("stream_cut") >= 1, "at least one stream was cut mid-way by the kill (%d)" % n.get("stream_cut"))
    check(n.get("stream_done") >= 1, "streams complete on the surviving replica (%d)" % n.get("stream_done"))
    st, _ = post(listen, "/v1/embeddings", {"model": "embed", "input": "still there"}, timeout=10)
    check(st == 200, "nginx still serves through replica B")
    c2 = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
    c2.request("GET", "/health")
    check(c2.getresponse().status == 200, "/health through nginx answers 200")
    c2.close()
    failures = test_server.failures
    print("test_nginx_replicas: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
