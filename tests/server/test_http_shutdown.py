#!/usr/bin/env python3
"""test_http_shutdown.py: `vkinfer serve` stops gracefully on SIGTERM (issue 17).

Each run starts a server, puts 64 streaming clients (and 8 non-streaming
ones) in flight against the default model, some short enough to finish
within the drain period and most not, then sends SIGTERM. Every client must
get a complete answer or a proper error: a stream ends with data: [DONE]
after a finish_reason or an SSE error event; a request not yet answered
gets a whole JSON 503 shutting_down. New connections are refused once the
signal is taken, a new request on an open keep-alive connection gets 503
shutting_down with Connection: close, and the server exits 0 within the
drain period (the error answers take milliseconds more). 10 runs by default.
Usage: test_http_shutdown.py --vkinfer PATH --model default.gguf [--runs N]"""
import argparse, http.client, json, os, signal, socket, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402  (its Server harness and check)

check = ts.check
N_STREAMS, N_PLAIN = 64, 8
N_SHORT = 16
DRAIN_S = 2.0
FLUSH_S = 5.0  # what srv_stop gives the error answers (FLUSH_MS)


def stream_client(host, port, body, out):
    """Runs one request; out gets ("ok"|"error"|"bad", detail)."""
    try:
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            js = json.loads(r.read())
            code = js.get("error", {}).get("code")
            out.append(("error", code) if r.status == 503 and code == "shutting_down"
                       else ("bad", "status %d %r" % (r.status, js)))
            return
        if not body.get("stream"):
            js = json.loads(r.read())
            ok = js["choices"][0]["finish_reason"] in ("stop", "length")
            out.append(("ok", "json") if ok else ("bad", "json %r" % js))
            return
        events, buf = [], b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                events.append(ev)
        c.close()
        if not events or events[-1] != b"data: [DONE]" or buf:
            out.append(("bad", "stream without data: [DONE] at its end (%d events, last %r)"
                        % (len(events), events[-1][:80] if events else None)))
            return
        last = json.loads(events[-2][6:]) if len(events) >= 2 else {}
        if "error" in last:
            out.append(("error", "sse"))
        elif last.get("choices") and last["choices"][0].get("finish_reason") in ("stop", "length"):
            out.append(("ok", "sse"))
        else:
            out.append(("bad", "stream ends without finish_reason or error: %r" % events[-2][:120]))
    except Exception as e:  # a reset, a cut stream, broken JSON: none is a proper ending
        out.append(("bad", "%s: %s" % (type(e).__name__, e)))


def refused(host, port):
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect((host, port))
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        return c.recv(100) == b""  # accepted by the kernel, closed unanswered: refused too
    except OSError:
        return True
    finally:
        c.close()


def one_run(exe, cfg, run):
    s = ts.Server(exe, ["--config", cfg])
    try:
        checked_run(s, run)
    finally:
        if s.proc.poll() is None:  # a failed check must not leave it running
            s.proc.kill()
            s.proc.wait()


def checked_run(s, run):
    s.wait_ready()
    out, threads = [], []

    def wait_in_flight(n):
        t0 = time.time()
        while time.time() - t0 < 10:
            st, _, text, _ = s.request("GET", "/metrics")
            if "vkinfer_http_in_flight %d\n" % (n + 1) in text:  # and this /metrics
                return
            time.sleep(0.02)

    # The short ones first, so they are ahead in the queue and end within the
    # drain; the long ones are ended by it (streaming or still queued).
    for i in range(N_STREAMS + N_PLAIN):
        n = 24 if i < N_SHORT else 3000
        body = {"prompt": "once upon a time", "max_tokens": n, "ignore_eos": True, "stream": i % 9 != 8}
        t = threading.Thread(target=stream_client, args=(s.host, s.port, body, out), daemon=True)
        t.start()
        threads.append(t)
        if i == N_SHORT - 1:
            wait_in_flight(N_SHORT)
    wait_in_flight(N_STREAMS + N_PLAIN)
    keep = http.client.HTTPConnection(s.host, s.port, timeout=10)  # a keep-alive client, idle at the signal
    keep.request("GET", "/health")
    keep.getresponse().read()
    # The exit is timed by a thread of its own: the probes below may take
    # seconds when they fail, and their time is not the server's.
    exited = []
    waiter = threading.Thread(target=lambda: exited.append((s.proc.wait(), time.time())), daemon=True)
    t_sig = time.time()
    s.proc.send_signal(signal.SIGTERM)
    waiter.start()
    time.sleep(0.3)
    t_probe = time.time()
    gone = refused(s.host, s.port)
    t_keep = time.time()
    keep.request("GET", "/health")
    r = keep.getresponse()
    js = json.loads(r.read())
    keep.close()
    probes = "probes: refused() %.2f s, keep-alive request %.2f s" % (t_keep - t_probe, time.time() - t_keep)
    check(r.status == 503 and js["error"]["code"] == "shutting_down" and r.getheader("Connection") == "close",
          "a new request on an open connection while draining: 503 shutting_down, Connection: close: %s %s %s"
          % (r.status, js, r.getheader("Connection")))
    waiter.join(DRAIN_S + FLUSH_S + 10)  # FLUSH_S: what srv_stop allows at most
    if exited:
        rc, took = exited[0][0], exited[0][1] - t_sig
    else:
        s.proc.kill()
        rc, took = None, time.time() - t_sig
    for t in threads:
        t.join(30)
    for r in s.readers:
        r.join(5)
    log = b"".join(s.err).decode("utf-8", "replace")
    bad = [d for k, d in out if k == "bad"]
    n_ok = sum(1 for k, _ in out if k == "ok")
    n_err = sum(1 for k, _ in out if k == "error")
    n_sse = sum(1 for k, d in out if k == "error" and d == "sse")
    print("run %d: exit %s in %.2f s after SIGTERM; %d complete, %d ended with an error (%d as an SSE error event, "
          "%d as a JSON 503), %d bad; new connection refused: %s" % (run, rc, took, n_ok, n_err, n_sse, n_err - n_sse,
                                                                    len(bad), gone))
    check(rc == 0, "exit status 0 after SIGTERM: %s\n%s" % (rc, log[-2000:]))
    # the error answers at the drain's end take milliseconds, not the FLUSH_S allowed
    check(took < DRAIN_S + 2.5, "exited within the drain period: %.2f s (%s)\n%s" % (took, probes, log[-3000:]))
    check(len(out) == N_STREAMS + N_PLAIN, "every client finished: %d of %d" % (len(out), N_STREAMS + N_PLAIN))
    check(not bad, "every client got a complete answer or a proper error: %s" % bad[:3])
    check(n_ok > 0 and n_err > 0, "some finished within the drain (%d), the rest were ended (%d)" % (n_ok, n_err))
    check(gone, "new connections are refused once SIGTERM is taken")
    check("still in flight: ended with an error" in log, "the log says the drain ended requests:\n%s" % log[-1000:])
    warnings = [l for l in log.splitlines() if "warning" in l]
    check(not warnings, "no warnings in the log: %s" % warnings[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent" % a.model)
        return 77
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "drain.yaml")
        with open(cfg, "w") as f:
            f.write("server: {host: 127.0.0.1, max_queue: 256, max_connections_per_ip: 256, drain_timeout: %gs}\n"
                    "models:\n  - id: default\n    path: %s\n    kind: chat\n    n_ctx: 4096\n"
                    % (DRAIN_S, os.path.abspath(a.model)))
        for run in range(a.runs):
            one_run(a.vkinfer, cfg, run)
    print("test_http_shutdown: %s (%.1f s)" % ("passed" if not ts.failures else "%d failures" % ts.failures,
                                                time.time() - t0))
    return 1 if ts.failures else 0


if __name__ == "__main__":
    sys.exit(main())
