#!/usr/bin/env python3
"""ttft_prefix.py: time to first token of turn 10 of a chat, with and without
prompt-prefix KV reuse (issue 14), through `vkinfer serve` on the CPU.

The conversation (a system prompt and ten user messages of a few sentences)
is first played once against a server with reuse on (`--max-tokens` greedy
tokens per reply), which fixes the history; the replies are the same either
way (greedy; tests/server/test_prefix_http.py checks it). Then two fresh
servers (one model each, n_seq_max 1, `prefix_reuse: true` and `false`) are
measured --runs times, alternating run by run so that both see the same
load on a shared machine (the idle one waits):

  on   turns 1-9 are played (each resends the whole history, as clients
       do), then turn 10 is timed; before each further run turn 9 is sent
       again, so the slot holds turn 9's history and its reply, as after a
       real turn 9, and turn 10 is timed again
  off  turn 10 is timed alone: without reuse every request evaluates its
       whole prompt, whatever came before

The time of turn 10 is the wall time of a request with max_tokens 1 (prompt
evaluation and one sampled token; no streaming overhead). Prints the
median, min and max of each mode, the prompt length and the tokens reused
(usage.prompt_tokens_details.cached_tokens), and the ratio of the medians.
Progress goes to stderr, the table to stdout.

Example (2 threads, on a shared machine nice'd by the caller if needed):
  python3 bench/ttft_prefix.py --vkinfer build/cli/vkinfer \\
      --model /work/models/tl1b-q4_0.gguf --threads 2 --runs 5
"""
import argparse, http.client, json, os, re, statistics, subprocess, sys, tempfile, threading, time

SYSTEM = "You are a friendly assistant who answers briefly and precisely."
USER = [
    "Hello! I am planning a trip to the coast next month and I would like some advice on what to pack.",
    "The weather there is usually mild in the mornings but it can get windy in the afternoons. What jacket?",
    "I also want to go hiking in the hills behind the town. Are trail shoes enough or do I need boots?",
    "What food should I bring for a day hike of about six hours with a few steep climbs along the way?",
    "How much water is reasonable for that, assuming it is warm and there is no stream on the route?",
    "Can you suggest a simple plan for the first day, arriving by train around eleven in the morning?",
    "The hotel is near the harbour. Is it a good idea to walk along the sea front in the evening?",
    "I read that there is an old lighthouse a few kilometres north of the town. Is it worth a visit?",
    "On the last day I have a free morning before my train at two. What would you do with those hours?",
    "Thank you. To sum up, could you list the five most important things to remember for this trip?",
]


class Server:
    def __init__(self, exe, model, reuse, threads, n_ctx, log):
        self.tmp = tempfile.TemporaryDirectory()
        cfg = os.path.join(self.tmp.name, "bench.yaml")
        with open(cfg, "w") as f:
            f.write("device: {prefer: cpu}\nwarmup: {enabled: false}\nmodels:\n"
                    "  - {id: m, path: %s, n_ctx: %d, n_seq_max: 1, prefix_reuse: %s}\n"
                    % (os.path.abspath(model), n_ctx, "true" if reuse else "false"))
        self.proc = subprocess.Popen([exe, "serve", "--config", cfg, "--port", "0", "--backend", "cpu",
                                      "--threads", str(threads)], stdout=subprocess.PIPE, stderr=log)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"http://([^:]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit("server did not start: %r" % line)
        self.host, self.port = m.group(1), int(m.group(2))
        threading.Thread(target=lambda: [None for _ in iter(self.proc.stdout.readline, b"")], daemon=True).start()
        t0 = time.time()
        while time.time() - t0 < 600:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("server not ready after 600 s")

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, (json.loads(data) if data else None)

    def chat(self, messages, max_tokens):
        t0 = time.perf_counter()
        st, js = self.request("POST", "/v1/chat/completions",
                              {"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0})
        secs = time.perf_counter() - t0
        if st != 200:
            raise SystemExit("chat failed: %s %s" % (st, js))
        return js["choices"][0]["message"]["content"], js["usage"], secs

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.tmp.cleanup()


def history(replies, k):
    """The messages of turn k (1-based): the system prompt, k user messages, k-1 replies."""
    msgs = [{"role": "system", "content": SYSTEM}]
    for i in range(k):
        msgs.append({"role": "user", "content": USER[i]})
        if i < k - 1:
            msgs.append({"role": "assistant", "content": replies[i]})
    return msgs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vkinfer", required=True, help="the vkinfer executable")
    ap.add_argument("--model", required=True, help="chat model (e.g. /work/models/tl1b-q4_0.gguf)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=24, help="tokens per reply of turns 1-9")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--log", default=os.devnull, help="where the servers' logs go")
    a = ap.parse_args()
    log = open(a.log, "ab")

    print("playing the conversation once (reuse on) to fix the history ...", file=sys.stderr)
    s = Server(a.vkinfer, a.model, True, a.threads, a.n_ctx, log)
    replies = []
    for k in range(1, 10):
        text, u, secs = s.chat(history(replies, k), a.max_tokens)
        replies.append(text)
        print("  turn %d: %d prompt tokens, %d cached, %.2f s" % (k, u["prompt_tokens"],
              u["prompt_tokens_details"]["cached_tokens"], secs), file=sys.stderr)
    s.stop()

    turn10 = history(replies, 10)
    servers = {"on": Server(a.vkinfer, a.model, True, a.threads, a.n_ctx, log),
               "off": Server(a.vkinfer, a.model, False, a.threads, a.n_ctx, log)}
    results = {name: ([], [], 0) for name in servers}
    for k in range(1, 10):
        servers["on"].chat(history(replies, k), a.max_tokens)
    for run in range(a.runs):
        for name, s in servers.items():
            if name == "on" and run > 0:
                s.chat(history(replies, 9), a.max_tokens)  # the slot as after turn 9
            _, u, secs = s.chat(turn10, 1)
            times, cached, _ = results[name]
            times.append(secs)
            cached.append(u["prompt_tokens_details"]["cached_tokens"])
            results[name] = (times, cached, u["prompt_tokens"])
            print("  reuse %s run %d: %.3f s (%d of %d prompt tokens reused)" % (name, run + 1, secs, cached[-1],
                  u["prompt_tokens"]), file=sys.stderr)
    for s in servers.values():
        s.stop()

    print("| prefix reuse | turn-10 prompt tokens | reused | TTFT median (s) | min | max | runs |")
    print("|---|---|---|---|---|---|---|")
    for name in ("on", "off"):
        times, cached, n_prompt = results[name]
        print("| %s | %d | %d | %.3f | %.3f | %.3f | %d |" % (name, n_prompt, statistics.median(cached),
              statistics.median(times), min(times), max(times), len(times)))
    on, off = statistics.median(results["on"][0]), statistics.median(results["off"][0])
    print("\nmodel %s, CPU backend, %d threads, %d-token replies in the history; off/on median ratio %.1fx"
          % (os.path.basename(a.model), a.threads, a.max_tokens, off / on))


if __name__ == "__main__":
    main()
