#!/usr/bin/env python3
"""test_prefix_http: prompt-prefix KV reuse through `vkinfer serve`.

A 10-turn chat is replayed turn by turn, each turn resending the whole
history as chat clients do, to two ids of the same file: "on" (prefix reuse,
the default) and "off" (`prefix_reuse: false`). The replies must be the same
(greedy), and /metrics must show that "on" evaluated each token of the
history once:

  sum over turns of vkinfer_prompt_tokens_evaluated_total
      == prompt_tokens(turn 10) - sum_{k=1..9} (completion_tokens(k) - 1)

The reply's last sampled token of each turn is never fed to the model (the
request ends when it is sampled), so it is the one token of history evaluated
at the next turn; every other reply token was fed while decoding. Each turn's
usage.prompt_tokens_details.cached_tokens says the same per request, and the
"off" model evaluates every prompt token of every turn. Also: the config key
refuses anything but true/false.
"""
import argparse, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

TURNS = 10
USER = ["Hello there, who are you?", "Tell me about the sea.", "And the mountains?", "Which is older?",
        "Why do you say so?", "Name three rivers.", "Which is the longest?", "How long is it?",
        "Thank you. One more question: what is rain?", "Goodbye!"]


def metric(s, name, model):
    st, _, text, _ = s.request("GET", "/metrics")
    want = '%s{model="%s"} ' % (name, model)
    for line in text.splitlines():
        if line.startswith(want):
            return int(float(line.split()[-1]))
    check(False, "/metrics has %s for %s" % (name, model))
    return 0


def converse(s, model, max_tokens):
    """Plays the 10 turns; returns [(reply, usage)]."""
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    out = []
    for k in range(TURNS):
        messages.append({"role": "user", "content": USER[k]})
        st, js, text, _ = s.request("POST", "/v1/chat/completions",
                                    {"model": model, "messages": messages, "max_tokens": max_tokens,
                                     "temperature": 0}, timeout=300)
        if not check(st == 200, "%s turn %d: %s %s" % (model, k + 1, st, text[:300])):
            return out
        reply = js["choices"][0]["message"]["content"]
        out.append((reply, js["usage"]))
        messages.append({"role": "assistant", "content": reply})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.exists(a.model):
        print("SKIP: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("models:\n  - {id: on, path: %s, prefix_reuse: maybe}\n" % a.model)
        p = subprocess.run([a.vkinfer, "serve", "--config", bad, "--port", "0"], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode != 0 and "prefix_reuse: expected true or false, found 'maybe'" in p.stderr,
              "prefix_reuse: maybe is refused (%d, %s)" % (p.returncode, p.stderr.strip()[-200:]))

        cfg = os.path.join(tmp, "prefix.yaml")
        with open(cfg, "w") as f:
            f.write("device: {prefer: cpu}\nmodels:\n"
                    "  - {id: on, path: %s, n_ctx: 2048, n_seq_max: 2}\n"
                    "  - {id: off, path: %s, n_ctx: 2048, n_seq_max: 2, prefix_reuse: false}\n" % (a.model, a.model))
        s = Server(a.vkinfer, ["--config", cfg])
        try:
            s.wait_ready()
            on = converse(s, "on", 12)
            off = converse(s, "off", 12)
            check(len(on) == TURNS and len(off) == TURNS, "all turns answered")
            for k, ((ra, ua), (rb, ub)) in enumerate(zip(on, off)):
                check(ra == rb, "turn %d: the same reply with and without reuse (%r vs %r)" % (k + 1, ra, rb))
                check(ua["prompt_tokens"] == ub["prompt_tokens"], "turn %d: the same prompt" % (k + 1))
            n = [u["prompt_tokens"] for _, u in on]
            g = [u["completion_tokens"] for _, u in on]
            cached = [u["prompt_tokens_details"]["cached_tokens"] for _, u in on]
            print("turns: prompt %s\n       completion %s\n       cached %s" % (n, g, cached))
            for k in range(1, len(on)):
                check(cached[k] == n[k - 1] + g[k - 1] - 1,
                      "turn %d: cached %d == the last prompt %d + its reply %d - 1" % (k + 1, cached[k], n[k - 1],
                                                                                    g[k - 1]))
            ev_on = metric(s, "vkinfer_prompt_tokens_evaluated_total", "on")
            re_on = metric(s, "vkinfer_prompt_tokens_reused_total", "on")
            ev_off = metric(s, "vkinfer_prompt_tokens_evaluated_total", "off")
            want = n[-1] - sum(x - 1 for x in g[:-1])
            print("evaluated: on %d (reused %d), off %d; history %d tokens" % (ev_on, re_on, ev_off, n[-1]))
            check(ev_on == want, "each history token evaluated once: %d == %d - sum(completion - 1)" % (ev_on, n[-1]))
            check(re_on == sum(cached) and ev_on + re_on == sum(n), "reused %d == sum of cached_tokens" % re_on)
            check(ev_off == sum(n), "without reuse every prompt token is evaluated (%d == %d)" % (ev_off, sum(n)))
            check(metric(s, "vkinfer_prompt_tokens_reused_total", "off") == 0, "off reuses nothing")
        finally:
            s.stop()
    print("test_prefix_http: %s" % ("passed" if not test_server.failures else "%d failures" % test_server.failures))
    return 1 if test_server.failures else 0


if __name__ == "__main__":
    sys.exit(main())
