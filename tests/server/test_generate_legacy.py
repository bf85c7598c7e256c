#!/usr/bin/env python3
"""test_generate_legacy: the legacy POST /generate through `vkinfer serve`.

On the generated default model: the plain answer (text/plain, the same text
/v1/completions gives for the same greedy request, X-Queue-* headers),
stream: true (a chunked text/plain body, no SSE framing, that joins to the
same text, read as it comes), each service_type's class and the session_id
in the request's log line (priority over service_type), the session_id in
no answer, and bad input answered with JSON errors (missing or empty prompt,
unknown service_type, unknown fields, bad session_id, bad stream, unknown
model, wrong method).
"""
import argparse, http.client, json, os, re, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check, error_of  # noqa: E402
import test_server  # noqa: E402

BODY = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "ignore_eos": True}


def stream(s, body):
    """Returns (status, content type, chunked, list of reads, text)."""
    c = http.client.HTTPConnection(s.host, s.port, timeout=60)
    c.request("POST", "/generate", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    reads = []
    while True:
        b = r.read1(65536)
        if not b:
            break
        reads.append(b)
    c.close()
    return (r.status, r.getheader("Content-Type", ""), r.getheader("Transfer-Encoding", "") == "chunked",
            r.getheader("X-Queue-Position"), reads, b"".join(reads).decode("utf-8"))


def log_line(s, session):
    """The request log line that names session (written when the answer ends)."""
    for _ in range(100):
        for line in b"".join(s.err).decode("utf-8").splitlines():
            if "POST /generate" in line and "session_id=%s" % session in line:
                return line
        time.sleep(0.05)
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    s = Server(a.vkinfer, ["-m", a.model, "--id", "default"])
    s.wait_ready()

    st, js, _, _ = s.request("POST", "/v1/completions", BODY)
    want = js["choices"][0]["text"] if check(st == 200, "completion answered") else ""
    check(want != "", "the completion has text")

    st, _, text, r = s.request("POST", "/generate", dict(BODY, session_id="s-plain"))
    check(st == 200 and r.getheader("Content-Type") == "text/plain; charset=utf-8",
          "plain answer (%s %s)" % (st, r.getheader("Content-Type")))
    check(text == want, "plain text is the completion's (%r vs %r)" % (text, want))
    check(r.getheader("X-Queue-Position") is not None and r.getheader("X-Queue-ETA") is not None,
          "X-Queue-Position and X-Queue-ETA")
    check(r.getheader("X-Vkinfer-Served-By") == "default", "served-by header")
    check("s-plain" not in text, "the session_id is not in the answer")
    line = log_line(s, "s-plain")
    check(re.search(r"request gen-\d+ POST /generate model=default status=200 .*priority=interactive", line),
          "log line with the default class (interactive): %r" % line)

    status, ctype, chunked, qpos, reads, text = stream(s, dict(BODY, stream=True, session_id="s-stream"))
    check(status == 200 and ctype == "text/plain; charset=utf-8" and chunked and qpos is not None,
          "streamed: 200 text/plain chunked with X-Queue-Position (%s %s %s)" % (status, ctype, chunked))
    check(text == want, "streamed text joins to the plain one (%r vs %r)" % (text, want))
    check("data:" not in text, "no SSE framing")
    print("stream: %d reads for %d bytes" % (len(reads), len(text)))

    # Each service_type's class, and priority before it.
    for k, (extra, cls) in enumerate([({"service_type": "chat"}, "interactive"), ({"service_type": "npc"}, "normal"),
                                      ({"service_type": "summary"}, "batch"),
                                      ({"service_type": "summary", "priority": "interactive"}, "interactive"),
                                      ({"priority": "batch"}, "batch")]):
        sid = "svc-%d" % k
        body = dict(BODY, max_tokens=2, session_id=sid, **extra)
        st, _, text, _ = s.request("POST", "/generate", body)
        check(st == 200 and text, "%s answered (%s)" % (extra, st))
        line = log_line(s, sid)
        check(" priority=%s " % cls in line + " ", "%s runs as %s: %r" % (extra, cls, line))
    st, _, text, _ = s.request("POST", "/generate", dict(BODY, max_tokens=2, session_id=12345))
    check(st == 200 and log_line(s, "12345"), "an integer session_id is logged")

    bad = [({"max_tokens": 2}, 400, "prompt"), (dict(BODY, prompt=""), 400, "prompt"),
           (dict(BODY, prompt=["a", "b"]), 400, "prompt"), (dict(BODY, service_type="game"), 400, "service_type"),
           (dict(BODY, n=2), 400, "n"), (dict(BODY, logprobs=1), 400, "logprobs"),
           (dict(BODY, session_id="has space"), 400, "session_id"), (dict(BODY, session_id="x" * 200), 400, "session_id"),
           (dict(BODY, stream="yes"), 400, "stream"), (dict(BODY, model="nope"), 404, "nope"),
           (dict(BODY, priority="urgent"), 400, "priority"), (dict(BODY, temperature=9), 400, "temperature")]
    for body, code, word in bad:
        st, js, raw, r = s.request("POST", "/generate", body)
        check(st == code and r.getheader("Content-Type") == "application/json" and word in error_of(js).get("message", ""),
              "%s -> %d naming %s (%s %s)" % (json.dumps(body)[:80], code, word, st, raw[:200]))
    st, js, _, _ = s.request("POST", "/generate", raw=b"{not json")
    check(st == 400 and error_of(js).get("code") == "invalid_json", "bad JSON -> 400")
    st, js, _, _ = s.request("GET", "/generate")
    check(st == 405, "GET /generate -> 405")
    st, _, text, _ = s.request("GET", "/metrics")
    check('vkinfer_http_requests_total{route="/generate",status="200"}' in text, "/generate counted in /metrics")
    check("s-plain" not in text, "the session_id is not in /metrics")

    log = s.stop()
    check("session_id=s-stream" in log, "the stream's log line names its session")
    failures = test_server.failures
    print("test_generate_legacy: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
