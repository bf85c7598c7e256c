/*
 * tool_calls.c: tool-call formats (see tool_calls.h). The formats follow
 * what the model families print: Hermes/Qwen wrap each call's JSON in
 * <tool_call> tags, Llama 3.1+ prints a bare JSON object (after
 * <|python_tag|> where the token is rendered), Mistral prints [TOOL_CALLS]
 * and a JSON array. Anything that does not read as calls is plain text.
 */
#include "server/tool_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common/error.h"
#include "engine/grammar/grammar.h"

static const char HERMES_OPEN[] = "<tool_call>", HERMES_CLOSE[] = "</tool_call>";
static const char PY_TAG[] = "<|python_tag|>", MISTRAL_TAG[] = "[TOOL_CALLS]";

srv_tool_format srv_tool_format_detect(const char *t, size_t len)
{
    if (!t) return SRV_TOOLS_GENERIC;
    char *s = strndup(t, len);
    if (!s) return SRV_TOOLS_GENERIC;
    srv_tool_format f = SRV_TOOLS_GENERIC;
    /* a template that never reads `tools` cannot show them to the model */
    if (!strstr(s, "tools")) f = SRV_TOOLS_GENERIC;
    /* <tool_call> also wraps XML-like calls (<function=...>, <arg_key>): not ours */
    else if (strstr(s, "<function=") || strstr(s, "<arg_key>")) f = SRV_TOOLS_GENERIC;
    else if (strstr(s, HERMES_OPEN) && strstr(s, "\"name\"")) f = SRV_TOOLS_HERMES;
    else if (strstr(s, MISTRAL_TAG)) f = strstr(s, "[ARGS]") ? SRV_TOOLS_MISTRAL_ARGS : SRV_TOOLS_MISTRAL;
    else if (strstr(s, "<|start_header_id|>") && (strstr(s, PY_TAG) || strstr(s, "\"parameters\"")))
        f = SRV_TOOLS_LLAMA3;
    free(s);
    return f;
}

const char *srv_tool_format_name(srv_tool_format fmt)
{
    static const char *const names[] = {"generic", "hermes", "llama3", "mistral", "mistral-args"};
    return (unsigned)fmt < 5 ? names[fmt] : "?";
}

void srv_tool_calls_free(srv_tool_call *calls, int n)
{
    for (int i = 0; calls && i < n; i++) {
        free(calls[i].name);
        free(calls[i].arguments);
    }
    free(calls);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static size_t trim_right(const char *text, size_t n)
{
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
    return n;
}

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; p + n <= end; p++)
        if (!memcmp(p, needle, n)) return p;
    return NULL;
}

static bool starts(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && !memcmp(p, lit, n);
}

/* One JSON value at p (not past end); *after = where it stopped. */
static cJSON *json_at(const char *p, const char *end, const char **after)
{
    const char *stop = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, false);
    *after = j ? stop : p;
    return j;
}

typedef struct calls_acc {
    srv_tool_call *v;
    int            n, cap;
    bool           oom;
} calls_acc;

/* A call object {name, arguments|parameters: object or JSON text of one};
 * false when it is not one. */
static bool add_call(calls_acc *a, const cJSON *o)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "arguments");
    if (!args) args = cJSON_GetObjectItemCaseSensitive(o, "parameters");
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !name->valuestring[0] || !args) return false;
    cJSON *parsed = NULL;
    if (cJSON_IsString(args)) args = parsed = cJSON_Parse(args->valuestring);
    bool ok = cJSON_IsObject(args);
    if (ok && a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 4;
        srv_tool_call *nv = realloc(a->v, sizeof *nv * (size_t)cap);
        if (!nv) a->oom = true;
        else {
            a->v = nv;
            a->cap = cap;
        }
    }
    if (ok && !a->oom) {
        srv_tool_call *c = &a->v[a->n];
        c->name = strdup(name->valuestring);
        c->arguments = cJSON_PrintUnformatted(args);
        if (!c->name || !c->arguments) {
            free(c->name);
            free(c->arguments);
            a->oom = true;
        } else {
            a->n++;
        }
    }
    cJSON_Delete(parsed);
    return ok;
}

/* <tool_call> JSON </tool_call>, repeated; the last closing tag may be
 * missing (a stop string or the length limit took it). */
static bool parse_hermes(calls_acc *a, const char *p, const char *end)
{
    for (;;) {
        p = skip_ws(p, end);
        if (p == end) return a->n > 0;
        if (!starts(p, end, HERMES_OPEN)) return false;
        const char *after;
        cJSON *o = json_at(p + strlen(HERMES_OPEN), end, &after);
        bool ok = o && add_call(a, o);
        cJSON_Delete(o);
        if (!ok || a->oom) return false;
        p = skip_ws(after, end);
        if (starts(p, end, HERMES_CLOSE)) p += strlen(HERMES_CLOSE);
        else if (p != end) return false;
    }
}

/* JSON objects separated by ';' or whitespace. */
static bool parse_llama3(calls_acc *a, const char *p, const char *end)
{
    for (;;) {
        p = skip_ws(p, end);
        if (p == end) return a->n > 0;
        const char *after;
        cJSON *o = json_at(p, end, &after);
        bool ok = o && add_call(a, o);
        cJSON_Delete(o);
        if (!ok || a->oom) return false;
        p = skip_ws(after, end);
        if (p < end && *p == ';') p++;
    }
}

/* One JSON array of call objects (or a single object). */
static bool parse_mistral(calls_acc *a, const char *p, const char *end)
{
    const char *after;
    cJSON *j = json_at(skip_ws(p, end), end, &after);
    bool ok = j && skip_ws(after, end) == end;
    if (ok && cJSON_IsArray(j)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, j) if (ok) ok = add_call(a, it) && !a->oom;
    } else if (ok) {
        ok = add_call(a, j) && !a->oom;
    }
    cJSON_Delete(j);
    return ok && a->n > 0;
}

/* [TOOL_CALLS]name[ARGS]{...}, repeated. */
static bool parse_mistral_args(calls_acc *a, const char *p, const char *end)
{
    for (;;) {
        p = skip_ws(p, end);
        if (p == end) return a->n > 0;
        if (!starts(p, end, MISTRAL_TAG)) return false;
        const char *name = p + strlen(MISTRAL_TAG), *args = find(name, end, "[ARGS]");
        if (!args || args == name || args - name > 64) return false;
        const char *after;
        cJSON *o = json_at(args + 6, end, &after), *call = cJSON_CreateObject();
        bool ok = cJSON_IsObject(o) && call;
        if (ok) {
            char nm[65];
            memcpy(nm, name, (size_t)(args - name));
            nm[args - name] = '\0';
            cJSON_AddStringToObject(call, "name", nm);
            cJSON_AddItemToObject(call, "arguments", o);
            o = NULL;
            ok = add_call(a, call);
        }
        cJSON_Delete(o);
        cJSON_Delete(call);
        if (!ok || a->oom) return false;
        p = after;
    }
}

int srv_tool_parse(srv_tool_format fmt, const char *text, size_t len, size_t *content_len, srv_tool_call **calls)
{
    const char *end = text + len, *m;
    calls_acc a = {0};
    bool ok = false;
    *calls = NULL;
    *content_len = len;
    switch (fmt) {
    case SRV_TOOLS_GENERIC:
    case SRV_TOOLS_HERMES:
        if ((m = find(text, end, HERMES_OPEN))) ok = parse_hermes(&a, m, end);
        break;
    case SRV_TOOLS_LLAMA3:
        if ((m = find(text, end, PY_TAG))) {
            ok = parse_llama3(&a, m + strlen(PY_TAG), end);
        } else {
            /* without the tag the call is the whole output */
            m = skip_ws(text, end);
            ok = m < end && *m == '{' && parse_llama3(&a, m, end);
            m = text;
        }
        break;
    case SRV_TOOLS_MISTRAL:
        if ((m = find(text, end, MISTRAL_TAG))) ok = parse_mistral(&a, m + strlen(MISTRAL_TAG), end);
        break;
    case SRV_TOOLS_MISTRAL_ARGS:
        if ((m = find(text, end, MISTRAL_TAG))) ok = parse_mistral_args(&a, m, end);
        break;
    }
    if (a.oom) {
        srv_tool_calls_free(a.v, a.n);
        return -1;
    }
    if (!ok) {
        srv_tool_calls_free(a.v, a.n);
        return 0;
    }
    *content_len = trim_right(text, (size_t)(m - text));
    *calls = a.v;
    return a.n;
}

size_t srv_tool_safe_prefix(srv_tool_format fmt, const char *text, size_t len)
{
    const char *end = text + len;
    const char *marker = fmt == SRV_TOOLS_LLAMA3                                   ? PY_TAG
                       : fmt == SRV_TOOLS_MISTRAL || fmt == SRV_TOOLS_MISTRAL_ARGS ? MISTRAL_TAG
                                                                                     : HERMES_OPEN;
    if (fmt == SRV_TOOLS_LLAMA3) {
        /* a bare call starts the output: hold it all while it may be one */
        const char *q = skip_ws(text, end);
        if (q == end || *q == '{') return 0;
    }
    const char *m = find(text, end, marker);
    if (m) return (size_t)(m - text);
    /* the longest tail that may begin the marker */
    size_t ml = strlen(marker);
    for (size_t k = ml - 1 < len ? ml - 1 : len; k > 0; k--)
        if (!memcmp(end - k, marker, k)) return len - k;
    return len;
}

/* ===== The forcing grammar ================================================ */

/* Where the line defining `rule` ("name ::=") starts in grammar text g;
 * NULL when none does. */
static char *rule_line(char *g, const char *rule)
{
    size_t n = strlen(rule);
    for (char *p = g; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, rule, n)) return p;
    return NULL;
}

/* {"type":"object","properties":{"name":{"const":N},KEY:PARAMS},...} for one
 * function of tools. */
static cJSON *call_schema(const cJSON *fn, const char *args_key)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
    cJSON *s = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(s, "properties"), *req;
    cJSON_AddStringToObject(s, "type", "object");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "name"), "const", name->valuestring);
    if (cJSON_IsObject(params) && params->child) {
        cJSON_AddItemToObject(props, args_key, cJSON_Duplicate(params, true));
    } else if (cJSON_IsObject(params)) {
        /* {} would admit any JSON value; arguments are an object */
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, args_key), "type", "object");
    } else {
        /* no parameters: an empty argument list */
        cJSON *e = cJSON_AddObjectToObject(props, args_key);
        cJSON_AddStringToObject(e, "type", "object");
        cJSON_AddObjectToObject(e, "properties");
        cJSON_AddFalseToObject(e, "additionalProperties");
    }
    cJSON_AddItemToObject(s, "required", req = cJSON_CreateArray());
    cJSON_AddItemToArray(req, cJSON_CreateString("name"));
    cJSON_AddItemToArray(req, cJSON_CreateString(args_key));
    cJSON_AddFalseToObject(s, "additionalProperties");
    return s;
}

/* Grammar text g with every rule name prefixed by pre (so several
 * grammars can live in one); literals, classes, counts and comments are
 * left alone. malloc'd; NULL when out of memory. */
static char *prefixed(const char *g, const char *pre)
{
    size_t pl = strlen(pre);
    char *o = malloc(strlen(g) * (1 + pl) + 1), *q = o;
    if (!o) return NULL;
    for (const char *p = g; *p;) {
        if (*p == '"' || *p == '[') {
            const char close = *p == '"' ? '"' : ']';
            *q++ = *p++;
            while (*p && *p != close) {
                if (*p == '\\' && p[1]) *q++ = *p++;
                *q++ = *p++;
            }
            if (*p) *q++ = *p++;
        } else if (*p == '{' || *p == '#') {
            const char close = *p == '{' ? '}' : '\n';
            while (*p && *p != close) *q++ = *p++;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                   *p == '_') {
            memcpy(q, pre, pl);
            q += pl;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                   *p == '_')
                *q++ = *p++;
        } else {
            *q++ = *p++;
        }
    }
    *q = '\0';
    return o;
}

/* The rules of a schema (JSON value) with names prefixed by pre: its start
 * rule is PREroot. A call is compact JSON: whitespace between its tokens
 * at most one space, so a weak model cannot spend max_tokens on blanks. */
static char *schema_rules(cJSON *schema, const char *pre, vki_status *st)
{
    char *text = cJSON_PrintUnformatted(schema), *g = NULL;
    if (!text) {
        *st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    *st = gram_from_json_schema(text, strlen(text), &g);
    free(text);
    if (*st != VKI_OK) return NULL;
    char *ws = rule_line(g, "ws ::=");
    if (ws) {
        char *eol = strchr(ws, '\n');
        const char *rule = "ws ::= \" \"?";
        size_t rl = strlen(rule), old = (size_t)((eol ? eol : ws + strlen(ws)) - ws);
        if (rl <= old) {
            memcpy(ws, rule, rl);
            memmove(ws + rl, ws + old, strlen(ws + old) + 1);
        }
    }
    char *out = prefixed(g, pre);
    free(g);
    if (!out) *st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
    return out;
}

static bool add(char **s, const char *a, const char *b)
{
    size_t n = *s ? strlen(*s) : 0, na = strlen(a), nb = b ? strlen(b) : 0;
    char *p = realloc(*s, n + na + nb + 1);
    if (!p) return false;
    memcpy(p + n, a, na);
    if (b) memcpy(p + n + na, b, nb);
    p[n + na + nb] = '\0';
    *s = p;
    return true;
}

char *srv_tool_grammar(srv_tool_format fmt, const cJSON *tools, const char *name, vki_status *st)
{
    const char *args_key = fmt == SRV_TOOLS_LLAMA3 ? "parameters" : "arguments";
    char *out = NULL, *alts = NULL;
    const cJSON *t;
    cJSON *any = cJSON_CreateArray();
    bool ok = any != NULL;
    int n = 0;
    *st = VKI_OK;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *fname = cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring;
        if (!ok || (name && strcmp(fname, name))) continue;
        cJSON *call = call_schema(fn, args_key);
        if (fmt != SRV_TOOLS_MISTRAL_ARGS) {
            cJSON_AddItemToArray(any, call);
            n++;
            continue;
        }
        /* name[ARGS]{arguments}: each function's own rules, its name before */
        char pre[32], lit[160];
        snprintf(pre, sizeof pre, "vki-t%d-", n++);
        cJSON *params = cJSON_DetachItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(call, "properties"),
                                                                args_key);
        char *rules = schema_rules(params, pre, st);
        cJSON_Delete(params);
        cJSON_Delete(call);
        snprintf(lit, sizeof lit, "%s\"%s[ARGS]\" %sroot", alts ? " | " : "", fname, pre);
        ok = rules && add(&alts, lit, NULL) && add(&out, rules, NULL);
        free(rules);
    }
    if (ok && fmt != SRV_TOOLS_MISTRAL_ARGS) {
        cJSON *schema = any;
        if (n == 1) {
            schema = cJSON_DetachItemFromArray(any, 0);
        } else {
            schema = cJSON_CreateObject();
            cJSON_AddItemToObject(schema, "anyOf", any);
        }
        any = n == 1 ? any : NULL;
        out = schema_rules(schema, "vki-", st);
        cJSON_Delete(schema);
        ok = out != NULL;
    }
    cJSON_Delete(any);
    static const char *const wrap[] = {
        [SRV_TOOLS_GENERIC] = "root ::= \"<tool_call>\\n\" vki-root \"\\n</tool_call>\"\n",
        [SRV_TOOLS_HERMES] = "root ::= \"<tool_call>\\n\" vki-root \"\\n</tool_call>\"\n",
        [SRV_TOOLS_LLAMA3] = "root ::= vki-root\n",
        [SRV_TOOLS_MISTRAL] = "root ::= \"[TOOL_CALLS]\" vki-ws \"[\" vki-root vki-ws \"]\"\n",
        [SRV_TOOLS_MISTRAL_ARGS] = "root ::= \"[TOOL_CALLS]\" (",
    };
    char *g = NULL;
    ok = ok && add(&g, wrap[fmt], NULL) && (!alts || add(&g, alts, " )\n")) && add(&g, out, NULL);
    free(alts);
    free(out);
    if (!ok) {
        free(g);
        if (*st == VKI_OK) *st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    return g;
}

/* ===== Messages ============================================================ */

/* A message's content as one string (text parts joined); NULL when it has
 * none or it is not text. */
static char *content_text(const cJSON *c)
{
    if (cJSON_IsString(c)) return strdup(c->valuestring);
    if (!cJSON_IsArray(c)) return strdup("");
    size_t len = 1;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) len += strlen(t->valuestring);
    }
    char *s = calloc(len, 1);
    if (!s) return NULL;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) strcat(s, t->valuestring);
    }
    return s;
}

/* Appends fmt to the malloc'd *s. */
static bool cat(char **s, const char *a, const char *b)
{
    size_t n = strlen(*s), na = strlen(a), nb = b ? strlen(b) : 0;
    char *p = realloc(*s, n + na + nb + 1);
    if (!p) return false;
    memcpy(p + n, a, na);
    if (b) memcpy(p + n + na, b, nb);
    p[n + na + nb] = '\0';
    *s = p;
    return true;
}

/* The arguments of a call as an object (OpenAI sends JSON text). */
static cJSON *args_object(const cJSON *args)
{
    if (cJSON_IsString(args)) {
        cJSON *o = cJSON_Parse(args->valuestring);
        if (o) return o;
        return cJSON_CreateString(args->valuestring);
    }
    return args ? cJSON_Duplicate(args, true) : cJSON_CreateObject();
}

static char *tools_system_text(const cJSON *tools)
{
    char *s = strdup("# Tools\nFunctions you may call, one JSON signature per line:\n<tools>\n");
    const cJSON *t;
    bool ok = s != NULL;
    cJSON_ArrayForEach(t, tools) {
        char *j = ok ? cJSON_PrintUnformatted(t) : NULL;
        ok = j && cat(&s, j, "\n");
        free(j);
    }
    ok = ok && cat(&s, "</tools>\nTo call one, answer with a block per call:\n<tool_call>\n"
                       "{\"name\": <name>, \"arguments\": <arguments object>}\n</tool_call>", NULL);
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

static bool add_msg(cJSON *arr, const char *role, char *content)
{
    cJSON *m = cJSON_CreateObject();
    if (!m || !content) {
        cJSON_Delete(m);
        free(content);
        return false;
    }
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    free(content);
    cJSON_AddItemToArray(arr, m);
    return true;
}

cJSON *srv_tool_generic_messages(const cJSON *messages, const cJSON *tools)
{
    cJSON *out = cJSON_CreateArray();
    char *sys = tools && cJSON_GetArraySize(tools) ? tools_system_text(tools) : NULL;
    bool ok = out && (!(tools && cJSON_GetArraySize(tools)) || sys);
    const cJSON *m, *first = cJSON_GetArrayItem(messages, 0);
    const cJSON *r0 = cJSON_GetObjectItemCaseSensitive(first, "role");
    bool sys_first = cJSON_IsString(r0) && (!strcmp(r0->valuestring, "system") || !strcmp(r0->valuestring, "developer"));
    if (ok && sys && !sys_first) {
        ok = add_msg(out, "system", sys);
        sys = NULL;
    }
    char *tool_results = NULL; /* consecutive tool messages, one user turn */
    cJSON_ArrayForEach(m, messages) {
        if (!ok) break;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        char *c = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (!c) {
            ok = false;
            break;
        }
        if (!strcmp(r, "tool")) {
            ok = (tool_results || (tool_results = strdup(""))) &&
                 cat(&tool_results, *tool_results ? "\n<tool_response>\n" : "<tool_response>\n", c) &&
                 cat(&tool_results, "\n</tool_response>", NULL);
            free(c);
            continue;
        }
        if (tool_results) {
            ok = add_msg(out, "user", tool_results);
            tool_results = NULL;
        }
        if (!strcmp(r, "developer")) r = "system";
        if (m == first && sys) {
            ok = ok && (!*c || cat(&c, "\n\n", NULL)) && cat(&c, sys, NULL);
            free(sys);
            sys = NULL;
        }
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *tc;
        cJSON_ArrayForEach(tc, calls) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "name", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(fn, "name"), true));
            cJSON_AddItemToObject(o, "arguments", args_object(cJSON_GetObjectItemCaseSensitive(fn, "arguments")));
            char *j = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            ok = ok && j && cat(&c, *c ? "\n<tool_call>\n" : "<tool_call>\n", j) && cat(&c, "\n</tool_call>", NULL);
            free(j);
        }
        if (ok) ok = add_msg(out, r, c);
        else free(c);
    }
    if (ok && tool_results) {
        ok = add_msg(out, "user", tool_results);
        tool_results = NULL;
    }
    free(tool_results);
    free(sys);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

cJSON *srv_tool_template_messages(const cJSON *messages)
{
    cJSON *out = cJSON_Duplicate(messages, true), *m;
    cJSON_ArrayForEach(m, out) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "developer"))
            cJSON_ReplaceItemInObjectCaseSensitive(m, "role", cJSON_CreateString("system"));
        cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
            if (cJSON_IsString(args)) cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", args_object(args));
        }
    }
    return out;
}
