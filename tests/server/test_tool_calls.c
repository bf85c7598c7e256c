/*
 * test_tool_calls: server/tool_calls.c without HTTP: format detection from
 * template text; each format's output parsed (one call, several, text
 * before, malformed JSON and stray text read as plain text); the stream's
 * held-back prefix fed byte by byte; the forcing grammar run through the
 * grammar matcher (a right call passes, a wrong name or argument type does
 * not); the generic rendering of tools and tool messages; 20,000 mutated
 * outputs through the parser and the prefix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "server/tool_calls.h"
#include "test_util.h"

/* Parses text in fmt; checks the number of calls, the content before them
 * and the first call's name and arguments (NULL = not checked). */
static void parse_case(srv_tool_format fmt, const char *text, int want, const char *content, const char *name0,
                       const char *args0)
{
    size_t cl = 0;
    srv_tool_call *c = NULL;
    int n = srv_tool_parse(fmt, text, strlen(text), &cl, &c);
    CHECKF(n == want, "%s: %d calls, want %d in %s", srv_tool_format_name(fmt), n, want, text);
    if (n == want && want > 0) {
        CHECKF(cl == strlen(content) && !memcmp(text, content, cl), "%s: content %zu bytes in %s",
               srv_tool_format_name(fmt), cl, text);
        if (name0) CHECKF(!strcmp(c[0].name, name0), "name %s", c[0].name);
        if (args0) CHECKF(!strcmp(c[0].arguments, args0), "arguments %s, want %s", c[0].arguments, args0);
    }
    if (want == 0) CHECKF(cl == strlen(text), "plain text keeps all %zu bytes (got %zu)", strlen(text), cl);
    srv_tool_calls_free(c, n);
}

static void test_detect(void)
{
    CHECK(srv_tool_format_detect(NULL, 0) == SRV_TOOLS_GENERIC);
    const char *chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}";
    CHECK(srv_tool_format_detect(chatml, strlen(chatml)) == SRV_TOOLS_GENERIC);
    const char *qwen = "{% if tools %}<tools>{{ tools }}</tools> answer <tool_call>{\"name\": ..}</tool_call>{% endif %}";
    CHECK(srv_tool_format_detect(qwen, strlen(qwen)) == SRV_TOOLS_HERMES);
    const char *l3 = "{% if tools %}<|start_header_id|>ipython<|end_header_id|>{\"name\": name, \"parameters\": "
                     "dict}<|python_tag|>{% endif %}";
    CHECK(srv_tool_format_detect(l3, strlen(l3)) == SRV_TOOLS_LLAMA3);
    const char *mi = "{% if tools %}[AVAILABLE_TOOLS]{{ tools|tojson }}[/AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]";
    CHECK(srv_tool_format_detect(mi, strlen(mi)) == SRV_TOOLS_MISTRAL);
    const char *mi2 = "{% if tools %}[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]{{ name }}[ARGS]";
    CHECK(srv_tool_format_detect(mi2, strlen(mi2)) == SRV_TOOLS_MISTRAL_ARGS);
    /* <tool_call> around XML-like calls (Qwen3-Coder, GLM) is not the JSON format */
    const char *xml = "{% if tools %}<tools></tools>{% endif %}<tool_call>\n<function={{ name }}>\n";
    CHECK(srv_tool_format_detect(xml, strlen(xml)) == SRV_TOOLS_GENERIC);
    /* tools read, but markers we do not know: our own rendering */
    const char *odd = "{% if tools %}functions: {{ tools }}{% endif %}";
    CHECK(srv_tool_format_detect(odd, strlen(odd)) == SRV_TOOLS_GENERIC);
}

static void test_parse(void)
{
    const srv_tool_format H = SRV_TOOLS_HERMES, L = SRV_TOOLS_LLAMA3, M = SRV_TOOLS_MISTRAL;
    parse_case(H, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", 1, "", "f", "{\"a\":1}");
    parse_case(SRV_TOOLS_GENERIC, "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", 1, "", "f", "{}");
    parse_case(H, "Let me look.\n<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>\n<tool_call>\n"
                  "{\"name\":\"g\",\"arguments\":\"{\\\"x\\\": [1, 2]}\"}\n</tool_call>\n", 2, "Let me look.", "f", "{}");
    /* the closing tag cut off by a stop string */
    parse_case(H, "<tool_call>{\"name\":\"f\",\"arguments\":{\"q\":\"</tool_call>\"}}", 1, "", "f",
               "{\"q\":\"</tool_call>\"}");
    parse_case(H, "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":}</tool_call>", 0, NULL, NULL, NULL);
    parse_case(H, "<tool_call>{\"name\":\"f\"}</tool_call>", 0, NULL, NULL, NULL);           /* no arguments */
    parse_case(H, "<tool_call>{\"name\":\"f\",\"arguments\":[1]}</tool_call>", 0, NULL, NULL, NULL);
    parse_case(H, "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call> and more", 0, NULL, NULL, NULL);
    parse_case(H, "no call here", 0, NULL, NULL, NULL);
    parse_case(L, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", 1, "", "get_weather",
               "{\"city\":\"Paris\"}");
    parse_case(L, "  <|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {}}", 2,
               "", "a", "{}");
    parse_case(L, "Sure.<|python_tag|>{\"name\": \"a\", \"arguments\": {\"k\": true}}", 1, "Sure.", "a",
               "{\"k\":true}");
    parse_case(L, "{\"name\": \"a\", \"parameters\": {", 0, NULL, NULL, NULL);
    parse_case(L, "The answer is {\"name\": 1}", 0, NULL, NULL, NULL);
    parse_case(L, "{\"not\": \"a call\"}", 0, NULL, NULL, NULL);
    parse_case(M, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": \"b\", \"arguments\": {}}]",
               2, "", "a", "{\"x\":1}");
    parse_case(M, "ok [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}]", 1, "ok", "a", "{}");
    parse_case(M, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}", 0, NULL, NULL, NULL);
    parse_case(M, "[TOOL_CALLS] []", 0, NULL, NULL, NULL);
    const srv_tool_format MA = SRV_TOOLS_MISTRAL_ARGS;
    parse_case(MA, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", 1, "", "get_weather", "{\"city\":\"Paris\"}");
    parse_case(MA, "Sure. [TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b[ARGS]{\"x\": 1}", 2, "Sure.", "a", "{}");
    parse_case(MA, "[TOOL_CALLS]a[ARGS]{\"x\": }", 0, NULL, NULL, NULL);
    parse_case(MA, "[TOOL_CALLS][ARGS]{}", 0, NULL, NULL, NULL);
    parse_case(MA, "[TOOL_CALLS]a[ARGS][1]", 0, NULL, NULL, NULL);
}

/* The text fed as a stream in pieces of `step` bytes: what goes out as
 * content never shrinks, never includes a marker, and for plain text ends
 * up all of it. */
static void stream_case(srv_tool_format fmt, const char *text, size_t want_final, size_t step)
{
    size_t n = strlen(text), prev = 0;
    for (size_t k = 0;; k += step) {
        size_t len = k < n ? k : n;
        size_t safe = srv_tool_safe_prefix(fmt, text, len);
        CHECKF(safe >= prev && safe <= len, "%s: safe %zu after %zu at %zu of %s", srv_tool_format_name(fmt), safe,
               prev, len, text);
        prev = safe;
        if (len == n) break;
    }
    CHECKF(prev == want_final, "%s: %zu bytes released of %s, want %zu", srv_tool_format_name(fmt), prev, text,
           want_final);
}

static void test_stream(void)
{
    const char *h = "Checking.<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>";
    for (size_t step = 1; step <= 7; step += 3) {
        stream_case(SRV_TOOLS_HERMES, h, 9, step);
        stream_case(SRV_TOOLS_HERMES, "a < b, and <tool is not a tag", 29, step);
        stream_case(SRV_TOOLS_LLAMA3, " {\"name\": \"f\", \"parameters\": {}}", 0, step);
        stream_case(SRV_TOOLS_LLAMA3, "Hi <|python_tag|>{\"name\": \"f\", \"parameters\": {}}", 3, step);
        stream_case(SRV_TOOLS_LLAMA3, "Plain words", 11, step);
        stream_case(SRV_TOOLS_MISTRAL, "x[TOOL_CALLS] []", 1, step);
    }
    /* a tail that may begin the marker is held until it cannot */
    CHECK(srv_tool_safe_prefix(SRV_TOOLS_HERMES, "abc<tool_c", 10) == 3);
    CHECK(srv_tool_safe_prefix(SRV_TOOLS_HERMES, "abc<tool_x", 10) == 10);
    CHECK(srv_tool_safe_prefix(SRV_TOOLS_MISTRAL, "abc[TOOL", 8) == 3);
}

/* Whether the grammar's language holds text (whole). */
static bool accepts(const char *grammar, const char *text)
{
    static const char *texts[256];
    static int32_t lens[256];
    static char bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        texts[i] = &bytes[i];
        lens[i] = 1;
    }
    gram_grammar *g = NULL;
    gram_vocab *v = NULL;
    gram_matcher *m = NULL;
    bool ok = gram_parse(grammar, strlen(grammar), &g) == VKI_OK && gram_vocab_create_from_texts(256, texts, lens, NULL, &v) == VKI_OK &&
              gram_matcher_create(g, v, &m) == VKI_OK && gram_matcher_accept_bytes(m, text, strlen(text)) == VKI_OK &&
              gram_matcher_can_end(m);
    gram_matcher_destroy(m);
    gram_vocab_destroy(v);
    gram_destroy(g);
    return ok;
}

static void test_grammar(void)
{
    cJSON *tools = cJSON_Parse(
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}},\"required\":[\"city\"],"
        "\"additionalProperties\":false}}},{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]");
    vki_status st;
    char *g = srv_tool_grammar(SRV_TOOLS_HERMES, tools, "get_weather", &st);
    CHECKF(g && st == VKI_OK, "named grammar: %s", vki_last_error());
    if (g) {
        CHECK(accepts(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":3}}\n"
                         "</tool_call>"));
        CHECK(accepts(g, "<tool_call>\n{ \"name\": \"get_weather\", \"arguments\": {\"city\": \"\"}}\n</tool_call>"));
        CHECK(!accepts(g, "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>"));
        CHECK(!accepts(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":1}}\n</tool_call>"));
        CHECK(!accepts(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"days\":1}}\n</tool_call>"));
        /* whitespace is at most one space at a time */
        CHECK(!accepts(g, "<tool_call>\n{  \"name\":\"get_weather\",\"arguments\":{\"city\":\"P\"}}\n</tool_call>"));
    }
    free(g);
    g = srv_tool_grammar(SRV_TOOLS_HERMES, tools, NULL, &st);
    CHECKF(g && st == VKI_OK, "required grammar: %s", vki_last_error());
    if (g) {
        CHECK(accepts(g, "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>"));
        CHECK(!accepts(g, "<tool_call>\n{\"name\":\"now\",\"arguments\":{\"x\":1}}\n</tool_call>"));
        CHECK(accepts(g, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"a\"}}\n</tool_call>"));
        CHECK(!accepts(g, "plain text"));
    }
    free(g);
    g = srv_tool_grammar(SRV_TOOLS_LLAMA3, tools, "get_weather", &st);
    CHECK(g && accepts(g, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"x\"}}"));
    free(g);
    g = srv_tool_grammar(SRV_TOOLS_MISTRAL, tools, "now", &st);
    CHECK(g && accepts(g, "[TOOL_CALLS][{\"name\":\"now\",\"arguments\":{}}]"));
    free(g);
    /* name[ARGS]: each function's arguments follow its own schema */
    g = srv_tool_grammar(SRV_TOOLS_MISTRAL_ARGS, tools, NULL, &st);
    CHECKF(g && st == VKI_OK, "mistral-args grammar: %s", vki_last_error());
    if (g) {
        CHECK(accepts(g, "[TOOL_CALLS]now[ARGS]{}"));
        CHECK(accepts(g, "[TOOL_CALLS]get_weather[ARGS]{\"city\":\"x\",\"days\":2}"));
        CHECK(!accepts(g, "[TOOL_CALLS]now[ARGS]{\"city\":\"x\"}"));
        CHECK(!accepts(g, "[TOOL_CALLS]get_weather[ARGS]{}"));
        CHECK(!accepts(g, "[TOOL_CALLS]other[ARGS]{}"));
    }
    free(g);
    cJSON_Delete(tools);
    /* parameters {}: any object, never another JSON value */
    tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"free\",\"parameters\":{}}}]");
    g = srv_tool_grammar(SRV_TOOLS_GENERIC, tools, NULL, &st);
    CHECK(g && accepts(g, "<tool_call>\n{\"name\":\"free\",\"arguments\":{\"a\":[1]}}\n</tool_call>"));
    CHECK(g && !accepts(g, "<tool_call>\n{\"name\":\"free\",\"arguments\":1}\n</tool_call>"));
    free(g);
    cJSON_Delete(tools);
    /* a keyword the grammar cannot enforce is named */
    tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                        "\"properties\":{\"n\":{\"type\":\"number\",\"multipleOf\":3}}}}}]");
    g = srv_tool_grammar(SRV_TOOLS_HERMES, tools, NULL, &st);
    CHECKF(!g && st == VKI_ERR_UNSUPPORTED && strstr(vki_last_error(), "multipleOf"), "multipleOf: %s",
           vki_last_error());
    free(g);
    cJSON_Delete(tools);
}

static void test_generic(void)
{
    cJSON *msgs = cJSON_Parse(
        "[{\"role\":\"developer\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"warm\"}]}]");
    cJSON *tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]");
    cJSON *out = srv_tool_generic_messages(msgs, tools);
    CHECK(out && cJSON_GetArraySize(out) == 4);
    char *s = cJSON_PrintUnformatted(out);
    const char *want[][2] = {
        {"system", "Be brief.\n\n# Tools\n"},
        {"user", "Weather?"},
        {"assistant", "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"},
        {"user", "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwarm\n</tool_response>"},
    };
    for (int i = 0; out && i < 4; i++) {
        const cJSON *m = cJSON_GetArrayItem(out, i);
        const char *role = cJSON_GetObjectItem(m, "role")->valuestring, *c = cJSON_GetObjectItem(m, "content")->valuestring;
        CHECKF(!strcmp(role, want[i][0]) && !strncmp(c, want[i][1], strlen(want[i][1])), "generic[%d]: %s", i, s);
    }
    CHECK(s && strstr(s, "{\\\"type\\\":\\\"function\\\",\\\"function\\\":{\\\"name\\\":\\\"get_weather\\\"}}"));
    free(s);
    cJSON_Delete(out);
    /* no system message: one is added first; no tools: none */
    cJSON_DeleteItemFromArray(msgs, 0);
    out = srv_tool_generic_messages(msgs, tools);
    CHECK(out && !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(out, 0), "role")->valuestring, "system"));
    cJSON_Delete(out);
    out = srv_tool_generic_messages(msgs, NULL);
    CHECK(out && cJSON_GetArraySize(out) == 3 &&
          !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(out, 0), "role")->valuestring, "user"));
    cJSON_Delete(out);
    /* templates get the arguments as an object */
    out = srv_tool_template_messages(msgs);
    const cJSON *args = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(out, 1), "tool_calls"), 0),
                            "function"),
        "arguments");
    CHECK(cJSON_IsObject(args) && !strcmp(cJSON_GetObjectItem(args, "city")->valuestring, "Paris"));
    cJSON_Delete(out);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
}

/* Mutated outputs (bytes flipped, cut, spliced from each format's samples)
 * never break the parser or the prefix: counts within bounds, content
 * within the text, the prefix never shrinking as the text grows. */
static void test_mutations(void)
{
    static const char *const samples[] = {
        "Hm.<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, {\"b\": \"\\u00e9\"}]}}\n</tool_call>",
        "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"x\": null}}; {\"name\": \"g\", \"parameters\": {}}",
        "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 1}\"}]",
    };
    uint64_t rng = 0x5eed;
    char buf[256];
    for (int it = 0; it < 20000; it++) {
        const char *a = samples[test_rand_u64(&rng) % 3], *b = samples[test_rand_u64(&rng) % 3];
        size_t na = strlen(a), cut = test_rand_u64(&rng) % (na + 1), nb = strlen(b), from = test_rand_u64(&rng) % (nb + 1);
        size_t n = 0;
        memcpy(buf, a, cut);
        n = cut;
        memcpy(buf + n, b + from, nb - from);
        n += nb - from;
        for (int k = (int)(test_rand_u64(&rng) % 3); k > 0 && n; k--) buf[test_rand_u64(&rng) % n] = (char)test_rand_u64(&rng);
        for (int f = 0; f < 5; f++) {
            size_t cl;
            srv_tool_call *c = NULL;
            int nc = srv_tool_parse((srv_tool_format)f, buf, n, &cl, &c);
            CHECKF(nc >= 0 && cl <= n && (nc > 0 || cl == n), "mutation %d format %d: %d calls, content %zu of %zu",
                   it, f, nc, cl, n);
            for (int k = 0; k < nc; k++) CHECK(c[k].name[0] && c[k].arguments[0] == '{');
            srv_tool_calls_free(c, nc);
            size_t prev = 0;
            for (size_t len = 0; len <= n; len += 1 + len / 4) {
                size_t safe = srv_tool_safe_prefix((srv_tool_format)f, buf, len);
                CHECKF(safe >= prev && safe <= len, "mutation %d format %d: prefix %zu after %zu at %zu", it, f, safe,
                       prev, len);
                prev = safe;
            }
        }
    }
}

int main(void)
{
    test_detect();
    test_parse();
    test_stream();
    test_grammar();
    test_generic();
    test_mutations();
    return test_finish("test_tool_calls");
}
