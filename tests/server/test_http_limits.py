#!/usr/bin/env python3
"""test_http_limits.py: what keeps hostile or slow HTTP clients from hurting
`vkinfer serve` (issue 17), on loopback only, bounded in count and time.

A body over max_body is cut off at once: an endless chunked upload within
1 s of passing the limit, a Content-Length over it answered 413 before any
body byte is sent. Conflicting Content-Length headers get 400; the bearer
scheme is case-insensitive. Slow clients: the per-address limit refuses
the connection past it while /health answers another address at once,
connections whose headers do not arrive by header_timeout are closed; past
max_connections the oldest idle connection makes room for a new client, and
when all are being answered (streams) only /health is served. Client
disconnects are counted in /metrics (every one), not written to the log. Config numbers that are not finite or
not in range are refused with file:line:column and the key.
Usage: test_http_limits.py --vkinfer PATH --model default.gguf"""
import argparse, http.client, os, re, socket, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402  (its Server harness and check)

check = ts.check
MAX_BODY = 64 * 1024
PER_IP = 6
MAX_CONNS = 18
HEADER_TIMEOUT = 2.0


def connect(s, src="127.0.0.1", timeout=5, sndbuf=None):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sndbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    c.settimeout(timeout)
    c.bind((src, 0))
    c.connect((s.host, s.port))
    return c


def read_answer(c, limit=5.0):
    """Reads until the peer closes or a whole answer is in; returns the bytes."""
    data, t0 = b"", time.time()
    c.settimeout(0.5)
    while time.time() - t0 < limit:
        try:
            chunk = c.recv(65536)
        except socket.timeout:
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_head(c, limit=5.0):
    """Reads until an answer's headers are in (or the peer closes); returns the bytes."""
    data, t0 = b"", time.time()
    c.settimeout(0.5)
    while b"\r\n\r\n" not in data and time.time() - t0 < limit:
        try:
            chunk = c.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def status_of(data):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def closed_by_peer(c, wait=0.2):
    """True when the server has closed c (EOF or reset)."""
    c.settimeout(wait)
    try:
        return c.recv(1) == b""
    except (socket.timeout, BlockingIOError):
        return False
    except OSError:
        return True


def test_body_limits(s, auth):
    # An endless chunked upload: cut off soon after it passes max_body.
    # `sent` counts what the kernel took, not what the server read: with an
    # autotuned send buffer (tcp_wmem's max, 4 MiB on Debian) a loopback
    # socket takes megabytes the server never reads, so the bytes check below
    # failed once at 4.3 MB. A pinned 64 KiB buffer leaves the server's read
    # (max_body plus the lingering close's drain) and its receive window.
    c = connect(s, sndbuf=64 * 1024)
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n" + auth + b"\r\n")
    piece = b"a" * 16384
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent, t_pass, t_cut, t0 = 0, None, None, time.time()
    c.settimeout(1.0)
    while time.time() - t0 < 15:
        try:
            c.send(chunk)
        except socket.timeout:
            continue  # the server is not reading: it stopped, or is slow
        except OSError:
            t_cut = time.time()
            break
        sent += len(piece)
        if t_pass is None and sent > MAX_BODY:
            t_pass = time.time()
        # not reading any more and closed: the next sends fail
        if t_pass is not None and time.time() - t_pass > 0.05 and closed_by_peer(c, 0):
            t_cut = time.time()
            break
    cut_s = t_cut - t_pass if t_cut and t_pass else None
    print("endless chunked upload: %d KiB sent, cut off %s s after passing max_body (%d KiB)"
          % (sent // 1024, "%.3f" % cut_s if cut_s is not None else "never", MAX_BODY // 1024))
    check(cut_s is not None and cut_s < 1.0, "endless chunked upload cut off within 1 s: %s" % cut_s)
    check(sent < 64 * MAX_BODY, "the server stopped reading near max_body (%d bytes sent)" % sent)
    c.close()

    # A chunked body a little over the limit, sent whole: its 413 is readable.
    c = connect(s)
    body = b"x" * (MAX_BODY + 100)
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + auth + b"\r\n" +
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    data = read_answer(c)
    check(status_of(data) == 413 and b"body_too_large" in data, "chunked over the limit: 413: %r" % data[:200])
    c.close()

    # A chunked body twice the limit from a client that reads only once it
    # has sent everything (Python's http.client, requests): the server cuts
    # it off at the limit but keeps draining (lingering close), so the rest
    # is sent without a reset and the 413 is read. Closing at once failed
    # this with a broken pipe on most runs.
    for run in range(5):
        hc = http.client.HTTPConnection(s.host, s.port, timeout=10)

        def slow_body():
            for _ in range(2 * MAX_BODY // 16384):
                time.sleep(0.01)  # the server has cut the body before the client is done
                yield b"a" * 16384
        hdrs = {"Content-Type": "application/json"}
        if auth:
            hdrs["Authorization"] = auth.decode().split(":", 1)[1].strip()
        try:
            hc.request("POST", "/v1/completions", body=slow_body(), headers=hdrs, encode_chunked=True)
            r = hc.getresponse()
            got = (r.status, r.read())
        except OSError as e:
            got = (None, repr(e).encode())
        hc.close()
        check(got[0] == 413 and b"body_too_large" in got[1],
              "slow chunked body at 2x the limit, run %d: the 413 is read: %r" % (run, got))

    # Content-Length over the limit: 413 before any body byte is sent.
    c = connect(s)
    t0 = time.time()
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000000000\r\n" + auth + b"\r\n")
    data = read_answer(c)
    print("Content-Length 1e9: %s in %.3f s, no body sent" % (status_of(data), time.time() - t0))
    check(status_of(data) == 413 and b"body_too_large" in data, "Content-Length over the limit: 413: %r" % data[:200])
    check(time.time() - t0 < 2, "the 413 came at once")
    c.close()

    # The same with Expect: 100-continue: no 100, the 413 at once.
    c = connect(s)
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n" +
              auth + b"\r\n")
    data = read_answer(c)
    check(status_of(data) == 413, "Expect: 100-continue over the limit: 413, not 100: %r" % data[:100])
    c.close()

    # Conflicting Content-Length headers: 400; equal ones are one header.
    for lengths, want in (((b"2", b"3"), 400), ((b"2", b"2"), 200)):
        c = connect(s)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\nContent-Length: %s\r\n\r\n{}"
                  % lengths)
        data = read_answer(c)
        check(status_of(data) == want, "Content-Length %s: %s, expected %d" % (lengths, status_of(data), want))
        c.close()


def test_bearer(s):
    for h, want in (("bearer sekrit", 200), ("BEARER sekrit", 200), ("Bearer sekrit", 200), ("bearer wrong", 401),
                    ("Basic sekrit", 401)):
        st, _, _, _ = s.request("GET", "/v1/models", headers={"Authorization": h})
        check(st == want, "Authorization: %s -> %s, expected %d" % (h, st, want))


def health_ms(s, src):
    c = connect(s, src)
    t0 = time.time()
    c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_answer(c, 3)
    c.close()
    return status_of(data), (time.time() - t0) * 1e3


def test_slow_clients(s, auth):
    # Slowloris from one address: one header byte every 0.5 s.
    slow, refused = [], 0
    for _ in range(PER_IP + 3):
        c = connect(s, "127.0.0.3")  # an address no other check uses: earlier connections still closing would count
        c.send(b"G")
        slow.append(c)
    # Which three the server refuses depends on the order it accepts them in,
    # and a loaded (or ASan) server may take a while: poll them all, well
    # inside the header deadline that would close the accepted ones too.
    closed, t_end = set(), time.time() + min(1.5, HEADER_TIMEOUT * 0.6)
    while len(closed) < 3 and time.time() < t_end:
        for i, c in enumerate(slow):
            if i not in closed and closed_by_peer(c, 0.02):
                closed.add(i)
    refused = len(closed)
    check(refused == 3, "the %d connections past max_connections_per_ip (%d) refused: %d" % (3, PER_IP, refused))
    slow = [c for i, c in enumerate(slow) if i not in closed]
    t0 = time.time()
    worst, cut_at = 0.0, None
    while time.time() - t0 < HEADER_TIMEOUT + 3:
        st, ms = health_ms(s, "127.0.0.2")
        check(st == 200, "/health from another address during the slow clients: %s" % st)
        worst = max(worst, ms)
        alive = []
        for c in slow:
            try:
                c.send(b"E")
                alive.append(c)
            except OSError:
                pass
        if not alive or all(closed_by_peer(c, 0) for c in alive):
            cut_at = time.time() - t0
            break
        time.sleep(0.5)
    print("slow clients: %d refused past the per-address limit, /health worst %.1f ms, slow headers closed after "
          "%s s (header_timeout %.1f s)" % (refused, worst, "%.2f" % cut_at if cut_at else "never", HEADER_TIMEOUT))
    check(worst < 1000, "/health answered within 1 s during the slow clients (worst %.1f ms)" % worst)
    check(cut_at is not None and cut_at < HEADER_TIMEOUT + 1.5, "slow headers closed at the deadline: %s" % cut_at)
    for c in slow:
        c.close()
    time.sleep(0.3)

    # Past max_connections with idle connections (from several addresses):
    # the oldest idle one makes room, and the new client is served.
    idle = []
    for i in range(MAX_CONNS):
        idle.append(connect(s, "127.0.0.%d" % (10 + i // PER_IP)))
        time.sleep(0.01)  # so "oldest" is the first
    time.sleep(0.3)
    c = connect(s, "127.0.0.51")
    c.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n")
    data = read_answer(c, 3)
    c.close()
    check(status_of(data) == 200, "a new client past max_connections of idle ones is served: %r" % data[:120])
    evicted = [i for i, c in enumerate(idle) if closed_by_peer(c, 0.05)]
    check(evicted[:1] == [0], "the oldest idle connection made room: closed %s" % evicted)
    for c in idle:
        c.close()
    print("past max_connections (%d) of idle connections: a new client served (%s), closed to make room: %s"
          % (MAX_CONNS, status_of(data), evicted))
    time.sleep(0.3)

    # Past max_connections of connections being answered (streams): none is
    # taken; /health is still served, the rest 503.
    body = b'{"prompt":"x","max_tokens":4000,"ignore_eos":true,"stream":true}'
    busy = []
    for i in range(MAX_CONNS):
        c = connect(s, "127.0.0.%d" % (60 + i // PER_IP))
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) + auth +
                  b"\r\n" + body)
        busy.append(c)
    # Each stream is being answered once its status line arrives. A fixed
    # sleep was not enough: on a loaded 2-core CI runner the server had not
    # yet read every request after 0.5 s, so one still counted as sending its
    # request, was evicted for the new client and /v1/models got 200.
    heads = [read_head(c, 15) for c in busy]
    started = sum(1 for h in heads if status_of(h) == 200)
    check(started == MAX_CONNS, "every stream started: %d of %d (%r)" % (started, MAX_CONNS, heads[:1]))
    st, ms = health_ms(s, "127.0.0.50")
    check(st == 200, "/health past max_connections: %s (%.1f ms)" % (st, ms))
    c = connect(s, "127.0.0.52")
    c.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n")
    data = read_answer(c, 3)
    c.close()
    check(status_of(data) == 503 and b"too_many_connections" in data,
          "other routes past max_connections of busy ones: 503: %r" % data[:120])
    alive = sum(1 for c in busy if not closed_by_peer(c, 0))
    check(alive == MAX_CONNS, "no stream was closed to make room: %d of %d open" % (alive, MAX_CONNS))
    for c in busy:
        c.close()
    print("past max_connections (%d) of streams: /health %s in %.1f ms, /v1/models %s, streams open %d"
          % (MAX_CONNS, st, ms, status_of(data), alive))


def disconnects(s):
    st, _, text, _ = s.request("GET", "/metrics", headers={"Authorization": "Bearer sekrit"})
    m = re.search(r"^vkinfer_client_disconnects_total (\d+)$", text, re.M)
    return int(m.group(1)) if m else -1


def test_disconnects(s, auth):
    # What earlier checks left (their closed streams) is counted first.
    base, t0 = disconnects(s), time.time()
    while time.time() - t0 < 5:
        time.sleep(0.3)
        n = disconnects(s)
        if n == base:
            break
        base = n
    # A body that stops halfway, then the client leaves.
    for _ in range(3):
        c = connect(s)
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + auth + b"\r\n{\"pro")
        time.sleep(0.05)
        c.close()
    # A stream the client leaves.
    c = connect(s)
    # long enough that the answer is still being written when the client leaves
    body = b'{"prompt":"x","max_tokens":1500,"ignore_eos":true,"stream":true}'
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              % len(body) + auth + b"\r\n" + body)
    c.settimeout(10)
    c.recv(100)
    c.close()
    t0, n = time.time(), 0
    while time.time() - t0 < 5:
        n = disconnects(s) - base
        if n >= 4:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    n = disconnects(s) - base  # and no more than 4
    print("client disconnects counted: %d of 4" % n)
    check(n == 4, "vkinfer_client_disconnects_total counts the disconnects: %d of 4" % n)


def test_bad_numbers(exe, tmp):
    cases = [
        ("server:\n  max_body: nan\n", r":2:13: server.max_body: expected a size"),
        ("server:\n  max_body: -inf\n", r":2:13: server.max_body: expected a size"),
        ("server:\n  max_body: 1e400\n", r":2:13: server.max_body: expected a size"),
        ("server:\n  max_body: 2GiB\n", r":2:13: server.max_body: expected 64 bytes to 1GiB"),
        ("device:\n  vram_budget: nan%\n", r":2:16: device.vram_budget: expected a percentage"),
        ("device:\n  vram_budget: inf\n", r":2:16: device.vram_budget: expected a size"),
        ("server:\n  header_timeout: nan\n", r":2:19: server.header_timeout: expected a duration"),
        ("server:\n  body_timeout: 0\n", r":2:17: server.body_timeout: expected a duration"),
        ("server:\n  drain_timeout: nan\n", r":2:18: server.drain_timeout: expected a duration"),
        ("server:\n  drain_timeout: 2h\n", r":2:18: server.drain_timeout: expected a duration in \[0, 3600s\]"),
        ("server:\n  max_connections: 1e9\n", r":2:20: server.max_connections: expected an integer"),
        ("server:\n  max_connections_per_ip: 0\n", r":2:27: server.max_connections_per_ip: expected an integer"),
        ("models:\n  - path: a.gguf\n    keep_alive: nan\n", r":3:17: models\[\].keep_alive: expected a duration"),
        ("models:\n  - path: a.gguf\n    keep_alive: inf\n", r":3:17: models\[\].keep_alive: expected a duration"),
    ]
    ts.expect_refused_configs(exe, tmp, cases, "num")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent" % a.model)
        return 77
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        test_bad_numbers(a.vkinfer, tmp)
        cfg = os.path.join(tmp, "limits.yaml")
        with open(cfg, "w") as f:
            f.write("server: {host: 127.0.0.1, api_key_env: VKI_TEST_KEY, max_body: %d, max_connections: %d, "
                    "max_connections_per_ip: %d, header_timeout: %gs, body_timeout: 5s}\n"
                    "device: {prefer: cpu}\n"
                    "models:\n  - id: default\n    path: %s\n    kind: chat\n"
                    % (MAX_BODY, MAX_CONNS, PER_IP, HEADER_TIMEOUT, os.path.abspath(a.model)))
        s = ts.Server(a.vkinfer, ["--config", cfg], env=dict(os.environ, VKI_TEST_KEY="sekrit"))
        s.wait_ready()
        auth = b"Authorization: Bearer sekrit\r\n"
        test_body_limits(s, auth)
        test_bearer(s)
        test_slow_clients(s, auth)
        test_disconnects(s, auth)
        st, _, _, _ = s.request("GET", "/health")
        check(st == 200, "still serving at the end: %s" % st)
        log = s.stop()
        noise = [l for l in log.splitlines() if "http: " in l]
        check(not noise, "no per-connection lines in the log without VKI_LOG_LEVEL=debug:\n%s" % "\n".join(noise[:5]))
    print("test_http_limits: %s (%.1f s)" % ("passed" if not ts.failures else "%d failures" % ts.failures,
                                              time.time() - t0))
    return 1 if ts.failures else 0


if __name__ == "__main__":
    sys.exit(main())
