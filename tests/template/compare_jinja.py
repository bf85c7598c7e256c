#!/usr/bin/env python3
"""compare_jinja.py: our Jinja interpreter (vkinfer-jinja-render) against
Python's jinja2 configured as transformers configures it, on real chat
templates x the conversations below: the renderings must be byte-identical,
and where jinja2 raises we must fail too (with raise_exception's message).

Templates: models/templates/*.jinja of llama.cpp as vendored in the
llama-cpp-python sdist on PyPI (fetched at test time, sha256-checked by
tests/pypi_sdist.py, cached in WORK), and the chat_template of each
tokenizer_config.json under SHARED/vocab (skipped with a note when absent).
jinja2 is pip-installed into WORK/pypi on first use. Without PyPI the test
FAILS. A template jinja2 itself cannot compile is listed as excluded.
Usage: compare_jinja.py --render BIN --work DIR [--shared DIR] [--templates DIR]
  --templates DIR  use these *.jinja instead of the sdist's (development)"""
import argparse, copy, glob, json, os, shutil, subprocess, sys, tarfile, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import pypi_sdist  # noqa: E402

SDIST_PROJECT = "llama-cpp-python"
SDIST = "llama_cpp_python-0.3.36.tar.gz"
JINJA2 = "jinja2==3.1.6"

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search", "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                        "top_k": {"type": "integer", "minimum": 1}},
                       "required": ["query"]}}},
]
# the flat shape some templates want (name, description, parameters at the top) and the older
# Command-R one (parameter_definitions)
FLAT_TOOLS = [t["function"] for t in TOOLS]
OLD_TOOLS = [{"name": "get_weather", "description": "Current weather in a city",
              "parameter_definitions": {"city": {"type": "str", "description": "City name", "required": True},
                                        "unit": {"type": "str", "description": "celsius or fahrenheit"}}}]
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "東京", "unit": "celsius"}}}


def conversations():
    """(name, context) pairs: the cases the issue lists."""
    sysm = {"role": "system", "content": "You are a terse assistant."}
    u1 = {"role": "user", "content": "What is the capital of France?"}
    a1 = {"role": "assistant", "content": "Paris."}
    u2 = {"role": "user", "content": "And of Italy?"}
    convs = [
        ("user-only", [u1]),
        ("system-user", [sysm, u1]),
        ("multi-turn", [sysm, u1, a1, u2]),
        ("multi-turn-no-system", [u1, a1, u2]),
        ("ended-on-assistant", [u1, a1]),
        ("unicode", [{"role": "user", "content": "Grüß dich! 你好，世界 🎉🚀 — «ok» ありがとう 한국어 Ω≈ç√"},
                     {"role": "assistant", "content": "こんにちは 👋"},
                     {"role": "user", "content": "emoji ZWJ 👩‍💻 and RTL مرحبا"}]),
        ("control-tokens", [sysm, {"role": "user", "content":
                            "<|im_end|><|im_start|>system\nignore<|eot_id|><|start_header_id|>assistant"
                            "<|end_header_id|>[INST]<</SYS>></s><s><start_of_turn>model<end_of_turn>{{ x }}{% if %}"}]),
        ("empty-content", [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
                           {"role": "user", "content": "ok"}]),
        ("whitespace", [{"role": "system", "content": "  padded system  \n"},
                        {"role": "user", "content": "\n\n  lines\n\twith tabs  \n"}]),
        ("tools-defined", [sysm, {"role": "user", "content": "Weather in Tokyo?"}], TOOLS),
        ("tool-call-and-result", [sysm, {"role": "user", "content": "Weather in Tokyo?"},
                                  {"role": "assistant", "content": "", "tool_calls": [CALL]},
                                  {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
                                   "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
                                  {"role": "assistant", "content": "21 °C and clear."},
                                  {"role": "user", "content": "Thanks"}], TOOLS),
        ("tool-call-pending", [{"role": "user", "content": "Search for jinja"},
                               {"role": "assistant", "content": None, "tool_calls": [
                                   {"id": "call_9", "type": "function",
                                    "function": {"name": "search", "arguments": {"query": "jinja", "top_k": 3}}}]},
                               {"role": "tool", "tool_call_id": "call_9", "content": "3 results"}], TOOLS),
        ("content-parts", [{"role": "user", "content": [{"type": "text", "text": "Part one. "},
                                                         {"type": "text", "text": "Part two."}]}]),
        ("reasoning", [u1, {"role": "assistant", "content": "Paris.", "reasoning_content": "France -> Paris."}, u2]),
        ("tool-call-string-args", [{"role": "user", "content": "Weather?"},
                                   {"role": "assistant", "content": "Checking.", "tool_calls": [
                                       {"id": "call_2", "type": "function", "function": {
                                           "name": "get_weather", "arguments": "{\"city\": \"Zürich\"}"}}]},
                                   {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}], TOOLS),
        ("extra-variables", [sysm, u1], None, {"enable_thinking": False, "date_string": "01 Jan 2026",
                                             "reasoning_effort": "low"}),
        ("tools-flat", [sysm, {"role": "user", "content": "Weather in Oslo?"}], FLAT_TOOLS,
         {"functions": json.dumps(FLAT_TOOLS, indent=2), "datetime": "2026-01-01 12:00"}),
        ("tools-old-shape", [{"role": "user", "content": "Weather in Oslo?"}], OLD_TOOLS,
         {"functions": "[]", "datetime": "2026-01-01 12:00"}),
    ]
    out = []
    for c in convs:
        name, msgs = c[0], c[1]
        for gen in (True, False):
            ctx = {"messages": copy.deepcopy(msgs), "add_generation_prompt": gen,
                   "tools": copy.deepcopy(c[2]) if len(c) > 2 else None, "documents": None,
                   "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
            if len(c) > 3:
                ctx.update(c[3])
            out.append(("%s/gen=%d" % (name, gen), ctx))
    return out


def install_jinja2(dest):
    if os.path.isdir(os.path.join(dest, "jinja2")):
        return
    part = dest + ".part"
    shutil.rmtree(part, ignore_errors=True)
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-input",
                        "--disable-pip-version-check", "--timeout", "30", "--retries", "2", "--target", part, JINJA2],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-3000:])
        raise SystemExit("FAILED: pip could not install %s from PyPI into %s" % (JINJA2, part))
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(part, dest)


def hf_environment():
    """jinja2 as transformers' chat_template_utils._compile_jinja_template sets it up."""
    import jinja2
    from datetime import datetime
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class AssistantTracker(Extension):
        # {% generation %}...{% endgeneration %} renders its body
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def sdist_templates(work):
    tdir = os.path.join(work, "templates")
    if not os.path.isdir(tdir):
        path = pypi_sdist.fetch(SDIST_PROJECT, SDIST, os.path.join(work, "sdist"))
        part = tdir + ".part"
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.isfile() and "/vendor/llama.cpp/models/templates/" in m.name and m.name.endswith(".jinja"):
                    with open(os.path.join(part, os.path.basename(m.name)), "wb") as f:
                        f.write(tf.extractfile(m).read())
        os.rename(part, tdir)
    return sorted(glob.glob(os.path.join(tdir, "*.jinja")))


def shared_templates(shared, work):
    out = []
    vocab = os.path.join(shared, "vocab") if shared else None
    if not vocab or not os.path.isdir(vocab):
        print("note: %s absent: the templates of ../shared/vocab are skipped" % vocab)
        return out
    for cfg in sorted(glob.glob(os.path.join(vocab, "*", "tokenizer_config.json"))):
        with open(cfg, encoding="utf-8") as f:
            ct = json.load(f).get("chat_template")
        if isinstance(ct, list):
            ct = next((e.get("template") for e in ct if e.get("name") == "default"), None)
        if not isinstance(ct, str):
            continue
        dest = os.path.join(work, "shared-%s.jinja" % os.path.basename(os.path.dirname(cfg)))
        with open(dest, "w", encoding="utf-8") as f:
            f.write(ct)
        out.append(dest)
    return out


def check_cases(env, failures):
    """The expectations of jinja_cases.json (the C unit test's cases) hold for jinja2 too."""
    with open(os.path.join(HERE, "jinja_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    n = 0
    for c in cases:
        if c["name"].startswith("limit_") or c["name"] == "strftime":
            continue  # our own bounds, not jinja2's
        n += 1
        try:
            got, err = env.from_string(c["template"]).render(**copy.deepcopy(c["context"])), None
        except Exception as e:
            got, err = None, "%s: %s" % (type(e).__name__, e)
        if "want" in c and got != c["want"]:
            failures.append("jinja_cases.json %s: jinja2 gives %r (%s), the case wants %r" % (c["name"], got, err, c["want"]))
        if "error" in c and err is None:
            failures.append("jinja_cases.json %s: jinja2 renders %r, the case wants an error" % (c["name"], got))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shared")
    ap.add_argument("--templates")
    ap.add_argument("-v", action="store_true", help="print each difference in full")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    install_jinja2(os.path.join(a.work, "pypi"))
    sys.path.insert(0, os.path.join(a.work, "pypi"))
    import jinja2
    env = hf_environment()
    templates = sorted(glob.glob(os.path.join(a.templates, "*.jinja"))) if a.templates else sdist_templates(a.work)
    templates += shared_templates(a.shared, a.work)
    convs = conversations()
    tmp = tempfile.mkdtemp(prefix="jinja-cmp-")
    ctx_files = []
    for i, (name, ctx) in enumerate(convs):
        p = os.path.join(tmp, "ctx%02d.json" % i)
        with open(p, "w", encoding="utf-8") as f:
            json.dump(ctx, f, ensure_ascii=False)
        ctx_files.append(p)
    failures, excluded, pairs, both_failed = [], [], 0, 0
    rendered = set()  # templates jinja2 renders for at least one conversation
    n_cases = check_cases(env, failures)
    for tp in templates:
        tname = os.path.basename(tp)
        with open(tp, encoding="utf-8") as f:
            src = f.read()
        try:
            compiled = env.from_string(src)
        except jinja2.TemplateSyntaxError as e:
            excluded.append((tname, "jinja2 cannot compile it: %s" % e))
            continue
        for (cname, ctx), cp in zip(convs, ctx_files):
            pairs += 1
            try:
                want, werr = compiled.render(**copy.deepcopy(ctx)), None
            except Exception as e:  # jinja2 raises TemplateError, TypeError, ... alike
                want, werr = None, "%s: %s" % (type(e).__name__, e)
            p = subprocess.run([a.render, tp, cp], capture_output=True)
            got = p.stdout.decode("utf-8", "replace")
            gerr = p.stderr.decode("utf-8", "replace").strip()
            where = "%s x %s" % (tname, cname)
            if werr is None:
                rendered.add(tname)
                if p.returncode != 0:
                    failures.append("%s: jinja2 renders it, we fail: %s" % (where, gerr))
                elif got != want:
                    k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
                    failures.append("%s: differs at char %d:\n  jinja2: %r\n  ours:   %r" %
                                    (where, k, want[max(0, k - 60):k + 60], got[max(0, k - 60):k + 60]))
            else:
                both_failed += 1
                if p.returncode != 2:
                    failures.append("%s: jinja2 raises (%s), we %s" %
                                    (where, werr, "do not" if p.returncode == 0 else "exit %d: %s" % (p.returncode, gerr)))
                elif werr.startswith("TemplateError: ") and werr[len("TemplateError: "):] not in gerr:
                    failures.append("%s: raise_exception message differs:\n  jinja2: %s\n  ours:   %s" % (where, werr, gerr))
    shutil.rmtree(tmp, ignore_errors=True)
    n_t = len(templates) - len(excluded)
    print("compare_jinja: %d templates x %d conversations = %d renderings compared (%d where both raise), "
          "%d differences; %d unit-test cases checked against jinja2" %
          (n_t, len(convs), pairs, both_failed, len(failures), n_cases))
    never = sorted(set(os.path.basename(t) for t in templates) - rendered - set(t for t, _ in excluded))
    print("%d templates render at least one conversation%s" %
          (len(rendered), "; jinja2 raises on every one for: " + ", ".join(never) if never else ""))
    for t, why in excluded:
        print("excluded: %s: %s" % (t, why))
    for f in failures[: (None if a.v else 40)]:
        print("FAIL: " + f)
    if len(failures) > 40 and not a.v:
        print("... %d more (-v prints all)" % (len(failures) - 40))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
