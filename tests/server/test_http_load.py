#!/usr/bin/env python3
"""test_http_load.py: `vkinfer serve` keeps answering while hundreds of
hostile connections are held open (issue 17), on loopback only.

600 slow connections (a header byte every 2 s) and 600 idle ones, from
several addresses, are held for DURATION seconds (those the header deadline
closes are opened again at once), while one client keeps calling /health
and a short completion: every call must be answered within 1 s. During the
load an endless chunked upload must be cut off within 1 s of passing
max_body. At the end the server's thread count stays that of its fixed pool
(no thread per connection) and /metrics still answers.
Usage: test_http_load.py --vkinfer PATH --model default.gguf [--duration S]"""
import argparse, os, resource, select, socket, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402  (its Server harness and check)
import test_http_limits as tl  # noqa: E402  (connect, read_answer, status_of, closed_by_peer)

check = ts.check
N_SLOW, N_IDLE = 600, 600
PER_ADDR = 60          # under the default per-address limit of 64
MAX_BODY = 64 * 1024
HEADER_TIMEOUT = 10.0  # the default


class Crowd:
    """n connections from 127.0.<net>.x that send one header byte every
    `every` seconds (None: never); closed ones are opened again."""

    def __init__(self, s, n, net, every):
        self.s, self.net, self.every = s, net, every
        self.socks = [None] * n
        self.reopened = 0
        self.stop = False

    def open(self, i):
        try:
            c = tl.connect(self.s, "127.0.%d.%d" % (self.net, 1 + i // PER_ADDR), timeout=2)
            c.setblocking(False)
            self.socks[i] = c
        except OSError:
            self.socks[i] = None

    def run(self):
        for i in range(len(self.socks)):
            self.open(i)
        t_last = time.time()
        while not self.stop:
            # those the server closed (EOF) come back at once
            p = select.poll()
            for c in self.socks:
                if c is not None:
                    p.register(c, select.POLLIN)
            closed = {fd for fd, ev in p.poll(200)}
            for i, c in enumerate(self.socks):
                if c is None or c.fileno() in closed:
                    if c is not None:
                        c.close()
                    self.open(i)
                    self.reopened += 1
            if self.every and time.time() - t_last >= self.every:
                t_last = time.time()
                for c in self.socks:
                    try:
                        if c is not None:
                            c.send(b"G")
                    except OSError:
                        pass
        for c in self.socks:
            if c is not None:
                c.close()


def endless_upload(s):
    """Seconds from passing max_body to the server closing; None if never."""
    c = tl.connect(s, "127.0.9.1")
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * 16384
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent, t_pass, t0 = 0, None, time.time()
    c.settimeout(1.0)
    try:
        while time.time() - t0 < 15:
            try:
                c.send(chunk)
            except socket.timeout:
                continue
            except OSError:
                return time.time() - t_pass if t_pass else None
            sent += len(piece)
            if t_pass is None and sent > MAX_BODY:
                t_pass = time.time()
            if t_pass is not None and time.time() - t_pass > 0.05 and tl.closed_by_peer(c, 0):
                return time.time() - t_pass
    finally:
        c.close()
    return None


def server_threads(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--duration", type=float, default=30)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent" % a.model)
        return 77
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = N_SLOW + N_IDLE + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        print("skipped: the open-file limit (hard %d) is below the %d this test needs" % (hard, need))
        return 77
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else need, hard))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "load.yaml")
        with open(cfg, "w") as f:
            f.write("server: {host: 127.0.0.1, max_body: %d, max_connections: %d}\n"
                    "models:\n  - id: default\n    path: %s\n    kind: chat\n"
                    % (MAX_BODY, N_SLOW + N_IDLE + 100, os.path.abspath(a.model)))
        s = ts.Server(a.vkinfer, ["--config", cfg])
        try:
            load(s, a.duration)
        finally:
            if s.proc.poll() is None:  # a failed check must not leave it running
                s.proc.kill()
                s.proc.wait()
    print("test_http_load: %s (%.1f s)" % ("passed" if not ts.failures else "%d failures" % ts.failures,
                                            time.time() - t0))
    return 1 if ts.failures else 0


def load(s, duration):
    s.wait_ready()
    threads_idle = server_threads(s.proc.pid)
    crowds = [Crowd(s, N_SLOW, 1, 2.0), Crowd(s, N_IDLE, 2, None)]
    runners = [threading.Thread(target=c.run, daemon=True) for c in crowds]
    for r in runners:
        r.start()
    time.sleep(3)  # all 1200 open
    worst = {"health": 0.0, "completion": 0.0}
    n_calls, failed, cut_s = 0, [], None
    t_load = time.time()
    while time.time() - t_load < duration:
        for what in ("health", "completion"):
            t = time.time()
            try:
                if what == "health":
                    st, js, _, _ = s.request("GET", "/health", timeout=5)
                else:
                    st, js, _, _ = s.request("POST", "/v1/completions", {"prompt": "hello", "max_tokens": 8},
                                             timeout=5)
            except OSError as e:
                st, js = str(e), None
            ms = (time.time() - t) * 1e3
            worst[what] = max(worst[what], ms)
            n_calls += 1
            if st != 200 or ms > 1000:
                failed.append((what, st, round(ms)))
        if cut_s is None and time.time() - t_load > duration / 2:
            cut_s = endless_upload(s) or -1
        time.sleep(0.05)
    open_now = sum(1 for c in crowds for k in c.socks if k is not None)
    threads_load = server_threads(s.proc.pid)
    st, _, text, _ = s.request("GET", "/metrics")
    for c in crowds:
        c.stop = True
    for r in runners:
        r.join(10)
    print("held %d slow + %d idle connections for %.0f s (%d opened again after the header deadline); %d calls, "
          "worst /health %.1f ms, worst completion %.1f ms; endless chunked upload cut %.3f s after max_body; "
          "server threads %d idle, %d under load" % (N_SLOW, N_IDLE, duration, crowds[0].reopened +
                                                      crowds[1].reopened, n_calls, worst["health"],
                                                      worst["completion"], cut_s or -1, threads_idle,
                                                      threads_load))
    check(open_now >= (N_SLOW + N_IDLE) * 0.95, "the crowd was held open: %d" % open_now)
    check(not failed, "every call answered 200 within 1 s: %s" % failed[:5])
    check(cut_s is not None and 0 <= cut_s < 1.0, "endless chunked upload cut off within 1 s: %s" % cut_s)
    check(threads_load <= threads_idle + 2, "no thread per connection: %d threads idle, %d under load"
          % (threads_idle, threads_load))
    check(st == 200 and "vkinfer_http_in_flight" in text, "/metrics answers after the load: %s" % st)
    log = s.stop()
    noise = [l for l in log.splitlines() if "http: " in l]
    check(not noise, "no per-connection lines in the log:\n%s" % "\n".join(noise[:5]))


if __name__ == "__main__":
    sys.exit(main())
