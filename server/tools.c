/*
 * tools.c: OpenAI tool calling on /v1/chat/completions: the tools,
 * tool_choice and parallel_tool_calls fields checked, the tool messages
 * checked, and the conversation rendered with the model's tool-aware
 * template or, for a template that knows no tools, in the generic format of
 * tool_calls.c. The output is read back into calls by routes_gen.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "engine/tokenizer/chat_template.h"
#include "server/srv_internal.h"

/* Queues a 400 naming what is wrong; false. */
#define FAIL(...) (*ret = srv_send_error(cn, 400, "invalid_field", 0, __VA_ARGS__), false)

/* OpenAI: 1 to 64 of a-z, A-Z, 0-9, '_' and '-'. */
static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

static bool check_tool(srv_conn *cn, const cJSON *t, int i, enum MHD_Result *ret)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type"), *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
    if (!cJSON_IsObject(t) || !cJSON_IsString(type) || strcmp(type->valuestring, "function"))
        return FAIL("tools[%d].type: expected \"function\"", i);
    const cJSON *it;
    cJSON_ArrayForEach(it, t) if (strcmp(it->string, "type") && strcmp(it->string, "function"))
        return FAIL("tools[%d].%.64s: not a field a tool takes", i, it->string);
    if (!cJSON_IsObject(fn)) return FAIL("tools[%d].function: expected an object with name", i);
    cJSON_ArrayForEach(it, fn) {
        static const char *const known[] = {"name", "description", "parameters", "strict", NULL};
        size_t k = 0;
        while (known[k] && strcmp(known[k], it->string)) k++;
        if (!known[k]) return FAIL("tools[%d].function.%.64s: not a field a function takes", i, it->string);
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
    const cJSON *strict = cJSON_GetObjectItemCaseSensitive(fn, "strict");
    if (!cJSON_IsString(name) || !good_name(name->valuestring))
        return FAIL("tools[%d].function.name: expected 1 to 64 characters of a-z, A-Z, 0-9, _ and -", i);
    if (desc && !cJSON_IsNull(desc) && !cJSON_IsString(desc))
        return FAIL("tools[%d].function.description: expected a string", i);
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return FAIL("tools[%d].function.parameters: expected a JSON Schema object", i);
    if (strict && !cJSON_IsNull(strict) && !cJSON_IsBool(strict))
        return FAIL("tools[%d].function.strict: expected true or false", i);
    if (cJSON_IsTrue(strict) && cJSON_IsObject(params)) {
        /* strict promises arguments valid against the schema: a keyword the
         * grammar cannot enforce is refused now, whatever tool_choice says */
        char *text = cJSON_PrintUnformatted(params), *g = NULL;
        vki_status st = text ? gram_from_json_schema(text, strlen(text), &g) : VKI_ERR_OUT_OF_MEMORY;
        free(text);
        free(g);
        if (st != VKI_OK) {
            *ret = srv_send_error(cn, st == VKI_ERR_OUT_OF_MEMORY ? 503 : 400,
                                  st == VKI_ERR_UNSUPPORTED ? "unsupported_field" : "invalid_field", 0,
                                  "tools[%d].function.parameters (strict): %s", i,
                                  st == VKI_ERR_OUT_OF_MEMORY ? "out of memory" : vki_last_error());
            return false;
        }
    }
    return true;
}

bool srv_tools_parse(srv_conn *cn, const cJSON *body, srv_tool_req *t, enum MHD_Result *ret)
{
    memset(t, 0, sizeof *t);
    t->parallel = true;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(body, "parallel_tool_calls");
    if (par && !cJSON_IsNull(par)) {
        if (!cJSON_IsBool(par)) return FAIL("parallel_tool_calls: expected true or false");
        t->parallel = cJSON_IsTrue(par);
    }
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools)) return FAIL("tools: expected an array of {type: \"function\", function}");
        int n = cJSON_GetArraySize(tools);
        if (n > 128) return FAIL("tools: %d tools; at most 128", n);
        for (int i = 0; i < n; i++) {
            const cJSON *ti = cJSON_GetArrayItem(tools, i);
            if (!check_tool(cn, ti, i, ret)) return false;
            const char *ni = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ti, "function"), "name")->valuestring;
            for (int k = 0; k < i; k++) {
                const cJSON *fk = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tools, k), "function");
                if (!strcmp(cJSON_GetObjectItemCaseSensitive(fk, "name")->valuestring, ni))
                    return FAIL("tools[%d].function.name: \"%s\" is named twice", i, ni);
            }
        }
        if (n > 0) t->tools = tools;
    }
    t->choice = t->tools ? SRV_TOOL_AUTO : SRV_TOOL_NONE;
    if (!choice || cJSON_IsNull(choice)) return true;
    if (cJSON_IsString(choice)) {
        const char *c = choice->valuestring;
        if (!strcmp(c, "none")) t->choice = SRV_TOOL_NONE;
        else if (!strcmp(c, "auto")) t->choice = SRV_TOOL_AUTO;
        else if (!strcmp(c, "required")) t->choice = SRV_TOOL_REQUIRED;
        else return FAIL("tool_choice: \"%.32s\" is not none, auto, required or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}", c);
    } else {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(choice, "type");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
        if (!cJSON_IsObject(choice) || !cJSON_IsString(type) || strcmp(type->valuestring, "function") ||
            !cJSON_IsString(name))
            return FAIL("tool_choice: expected none, auto, required or {\"type\": \"function\", "
                        "\"function\": {\"name\": ...}}");
        t->choice = SRV_TOOL_NAMED;
        t->name = name->valuestring;
        bool found = false;
        const cJSON *ti;
        cJSON_ArrayForEach(ti, t->tools) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(ti, "function");
            found |= !strcmp(cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring, t->name);
        }
        if (!found) return FAIL("tool_choice.function.name: \"%.64s\" is not one of tools", t->name);
    }
    if (t->choice != SRV_TOOL_NONE && !t->tools)
        return FAIL("tool_choice: only with tools (send a non-empty tools array)");
    return true;
}

/* The messages' shapes the tool features add: role "tool" (tool_call_id,
 * content) and an assistant's tool_calls. *any = some message uses them. */
static bool check_messages(srv_conn *cn, const cJSON *msgs, bool *any, enum MHD_Result *ret)
{
    *any = false;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *part;
        if (!cJSON_IsArray(content)) content = NULL;
        /* the renderings below read text parts only: others are refused, not dropped */
        cJSON_ArrayForEach(part, content) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(part, "text")))
                return FAIL("messages[%d].content: only {\"type\":\"text\",\"text\":...} parts are supported", i);
        }
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "tool")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsString(id)) return FAIL("messages[%d].tool_call_id: a tool message needs it", i);
            if (!cJSON_IsString(c) && !cJSON_IsArray(c))
                return FAIL("messages[%d].content: a tool message's result, expected a string", i);
            *any = true;
        }
        if (calls && !cJSON_IsNull(calls)) {
            if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant"))
                return FAIL("messages[%d].tool_calls: only assistant messages carry them", i);
            if (!cJSON_IsArray(calls)) return FAIL("messages[%d].tool_calls: expected an array", i);
            const cJSON *tc;
            cJSON_ArrayForEach(tc, calls) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
                const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
                if (!cJSON_IsString(id) || !cJSON_IsString(name) || !(cJSON_IsString(args) || cJSON_IsObject(args)))
                    return FAIL("messages[%d].tool_calls: expected [{id, type: \"function\", function: "
                                "{name, arguments}}]", i);
            }
            *any = true;
        }
        i++;
    }
    return true;
}

bool srv_tools_render(srv_conn *cn, const cJSON *msgs, const srv_tool_req *t, const vki_model_file *file,
                      const char *family, cJSON **generic, char **prompt, vki_text_span **spans, size_t *n_spans,
                      srv_tool_format *fmt, enum MHD_Result *ret)
{
    *generic = NULL;
    *fmt = SRV_TOOLS_GENERIC;
    bool any;
    if (!check_messages(cn, msgs, &any, ret)) return false;
    if (!any && !t->tools) return true; /* nothing of tools: the plain path */
    vki_str tmpl = {0};
    if (!family && vki_file_get_str(file, "tokenizer.chat_template", &tmpl))
        *fmt = srv_tool_format_detect(tmpl.p, (size_t)tmpl.n);
    /* with tool_choice "none" the model still sees the tools (as vLLM
     * renders them): a conversation holding calls reads the same; its
     * output is just not parsed */
    const cJSON *tools = t->tools;
    if (*fmt == SRV_TOOLS_GENERIC) {
        /* the template knows no tools: they go in as text (tool_calls.h) */
        if (!(*generic = srv_tool_generic_messages(msgs, tools))) {
            *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
            return false;
        }
        return true;
    }
    cJSON *m = srv_tool_template_messages(msgs);
    if (!m) {
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return false;
    }
    vki_status s = vki_chat_apply_json(file, NULL, m, tools, NULL, true, prompt, spans, n_spans);
    cJSON_Delete(m);
    if (s != VKI_OK) {
        *ret = srv_send_error(cn, s == VKI_ERR_OUT_OF_MEMORY ? 503 : 400, "chat_template", 0, "%s", vki_last_error());
        return false;
    }
    return true;
}

bool srv_tools_grammar(srv_conn *cn, const srv_tool_req *t, srv_tool_format fmt, char **grammar,
                       enum MHD_Result *ret)
{
    *grammar = NULL;
    if (t->choice != SRV_TOOL_REQUIRED && t->choice != SRV_TOOL_NAMED) return true;
    vki_status st;
    if (!(*grammar = srv_tool_grammar(fmt, t->tools, t->choice == SRV_TOOL_NAMED ? t->name : NULL, &st))) {
        *ret = srv_send_error(cn, st == VKI_ERR_OUT_OF_MEMORY ? 503 : 400,
                              st == VKI_ERR_UNSUPPORTED ? "unsupported_field" : "invalid_field", 0,
                              "tools: a function's parameters cannot force the call: %s", vki_last_error());
        return false;
    }
    return true;
}
