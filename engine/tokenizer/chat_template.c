/*
 * chat_template.c: a conversation rendered with the model's own Jinja
 * template (through engine/template), or natively for the common families
 * (their output follows each model's own template; llama.cpp's
 * llm_chat_detect_template for the markers that recognise them). Must not:
 * guess a family for a template it was not asked to replace.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "engine/template/jinja.h"
#include "error.h"
#include "util.h"

static const char *const names[] = {
    "unknown", "chatml", "qwen", "llama2", "llama3", "mistral", "phi3", "gemma", "zephyr",
};

const char *vki_chat_family_name(vki_chat_family fam)
{
    return (unsigned)fam < VKI_COUNT(names) ? names[fam] : "unknown";
}

vki_chat_family vki_chat_family_from_name(const char *name)
{
    if (!name) return VKI_CHAT_UNKNOWN;
    for (size_t i = 1; i < VKI_COUNT(names); i++)
        if (strcmp(name, names[i]) == 0) return (vki_chat_family)i;
    /* common aliases */
    if (!strcmp(name, "llama-2")) return VKI_CHAT_LLAMA2;
    if (!strcmp(name, "llama-3")) return VKI_CHAT_LLAMA3;
    if (!strcmp(name, "mistral-instruct") || !strcmp(name, "mistral-v1")) return VKI_CHAT_MISTRAL;
    if (!strcmp(name, "phi-3")) return VKI_CHAT_PHI3;
    return VKI_CHAT_UNKNOWN;
}

static bool has(const char *s, size_t n, const char *what)
{
    size_t m = strlen(what);
    if (m > n) return false;
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == what[0] && memcmp(s + i, what, m) == 0) return true;
    return false;
}

/* Qwen2's template writes this system turn when the conversation has none.
 * TODO(#3): Qwen2.5's longer default sentence is not rendered yet. */
static const char QWEN_SYS_2[] = "You are a helpful assistant.";

vki_chat_family vki_chat_detect(const char *t, size_t n)
{
    if (!t) return VKI_CHAT_UNKNOWN;
    if (has(t, n, "<|im_start|>"))
        return has(t, n, "<|im_start|>system\\n") || has(t, n, "<|im_start|>system\n") ? (has(t, n, QWEN_SYS_2) ? VKI_CHAT_QWEN : VKI_CHAT_CHATML)
                                                                                       : VKI_CHAT_CHATML;
    if (has(t, n, "<|start_header_id|>") && has(t, n, "<|end_header_id|>")) return VKI_CHAT_LLAMA3;
    if (has(t, n, "<start_of_turn>")) return VKI_CHAT_GEMMA;
    if (has(t, n, "<|assistant|>") && has(t, n, "<|end|>")) return VKI_CHAT_PHI3;
    if (has(t, n, "<|user|>") && has(t, n, "<|assistant|>")) return VKI_CHAT_ZEPHYR;
    if (has(t, n, "[INST]")) return has(t, n, "<<SYS>>") ? VKI_CHAT_LLAMA2 : VKI_CHAT_MISTRAL;
    return VKI_CHAT_UNKNOWN;
}

/* ----- output buffer ----- */
/* The text, and where the messages' content lies in it (spans may be NULL:
 * not recorded). */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
    vki_text_span *spans;
    size_t n_spans, cap_spans;
    bool record;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* Jinja's |trim and Python's str.strip(): ASCII whitespace at both ends */
static void put_trim(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    while (n && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')) { s++; n--; }
    put(b, s, n);
}

/* Message content: written as put/put_trim do, its range recorded. */
static void content_span(sbuf *b, size_t from)
{
    if (!b->record || b->oom || b->n == from) return;
    if (b->n_spans == b->cap_spans) {
        size_t cap = b->cap_spans ? 2 * b->cap_spans : 8;
        vki_text_span *p = realloc(b->spans, cap * sizeof *p);
        if (!p) { b->oom = true; return; }
        b->spans = p;
        b->cap_spans = cap;
    }
    b->spans[b->n_spans++] = (vki_text_span){.off = from, .len = b->n - from};
}

static void put_content(sbuf *b, const char *s)
{
    size_t from = b->n;
    puts_(b, s);
    content_span(b, from);
}

static void put_content_trim(sbuf *b, const char *s)
{
    size_t from = b->n;
    put_trim(b, s);
    content_span(b, from);
}

static bool is_role(const char *r, const char *what) { return r && strcmp(r, what) == 0; }

static vki_status render(vki_chat_family fam, const vki_chat_msg *msgs, size_t n, bool add_generation_prompt,
                         const char *bos, const char *eos, char **out, vki_text_span **spans, size_t *n_spans)
{
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template: message %zu has no role or content", i);
        if (!is_role(msgs[i].role, "system") && !is_role(msgs[i].role, "user") && !is_role(msgs[i].role, "assistant"))
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template: message %zu has role '%s' (system, user or assistant expected)",
                            i, msgs[i].role);
    }
    sbuf b = {.record = spans != NULL};
    put(&b, "", 0);
    switch (fam) {
    case VKI_CHAT_CHATML:
    case VKI_CHAT_QWEN:
        if (fam == VKI_CHAT_QWEN && (n == 0 || !is_role(msgs[0].role, "system"))) {
            puts_(&b, "<|im_start|>system\n");
            puts_(&b, QWEN_SYS_2);
            puts_(&b, "<|im_end|>\n");
        }
        for (size_t i = 0; i < n; i++) {
            puts_(&b, "<|im_start|>");
            puts_(&b, msgs[i].role);
            puts_(&b, "\n");
            put_content(&b, msgs[i].content);
            puts_(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) puts_(&b, "<|im_start|>assistant\n");
        break;
    case VKI_CHAT_LLAMA3:
        /* Meta's template: bos, then each turn with its content trimmed */
        puts_(&b, bos ? bos : "<|begin_of_text|>");
        for (size_t i = 0; i < n; i++) {
            puts_(&b, "<|start_header_id|>");
            puts_(&b, msgs[i].role);
            puts_(&b, "<|end_header_id|>\n\n");
            put_content_trim(&b, msgs[i].content);
            puts_(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case VKI_CHAT_LLAMA2: {
        /* Meta's llama-2 template: the system prompt goes inside the first
         * [INST] block; each user turn opens with bos, each answer ends with
         * eos; there is no separate generation prompt */
        size_t i = 0;
        const char *sys = NULL;
        if (n && is_role(msgs[0].role, "system")) { sys = msgs[0].content; i = 1; }
        bool first = true;
        for (; i < n; i++) {
            if (is_role(msgs[i].role, "user")) {
                puts_(&b, bos ? bos : "<s>");
                puts_(&b, "[INST] ");
                if (first && sys) {
                    puts_(&b, "<<SYS>>\n");
                    put_content(&b, sys);
                    puts_(&b, "\n<</SYS>>\n\n");
                }
                put_content_trim(&b, msgs[i].content);
                puts_(&b, " [/INST]");
            } else if (is_role(msgs[i].role, "assistant")) {
                puts_(&b, " ");
                put_content_trim(&b, msgs[i].content);
                puts_(&b, " ");
                puts_(&b, eos ? eos : "</s>");
            } else {
                free(b.p);
                free(b.spans);
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template llama2: a system message is only allowed first (message %zu)", i);
            }
            first = false;
        }
        break;
    }
    case VKI_CHAT_MISTRAL: {
        /* Mistral-7B-Instruct: bos once, [INST] .. [/INST] per user turn,
         * answers followed by eos. Its template has no system role; like
         * llama.cpp we put a system message before the first user text. */
        puts_(&b, bos ? bos : "<s>");
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            if (is_role(msgs[i].role, "system")) { sys = msgs[i].content; continue; }
            if (is_role(msgs[i].role, "user")) {
                puts_(&b, "[INST] ");
                if (sys) { put_content(&b, sys); puts_(&b, "\n\n"); sys = NULL; }
                put_content(&b, msgs[i].content);
                puts_(&b, " [/INST]");
            } else {
                put_content(&b, msgs[i].content);
                puts_(&b, eos ? eos : "</s>");
            }
        }
        break;
    }
    case VKI_CHAT_PHI3:
        for (size_t i = 0; i < n; i++) {
            puts_(&b, "<|");
            puts_(&b, msgs[i].role);
            puts_(&b, "|>\n");
            put_content(&b, msgs[i].content);
            puts_(&b, "<|end|>\n");
        }
        if (add_generation_prompt) puts_(&b, "<|assistant|>\n");
        else puts_(&b, eos ? eos : "<|endoftext|>");
        break;
    case VKI_CHAT_GEMMA: {
        /* Gemma: "assistant" is "model"; no system role, so (as llama.cpp
         * does) a system message is prepended to the first user turn */
        puts_(&b, bos ? bos : "<bos>");
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            if (is_role(msgs[i].role, "system")) { sys = msgs[i].content; continue; }
            bool user = is_role(msgs[i].role, "user");
            puts_(&b, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
            if (user && sys) { put_content_trim(&b, sys); puts_(&b, "\n\n"); sys = NULL; }
            put_content_trim(&b, msgs[i].content);
            puts_(&b, "<end_of_turn>\n");
        }
        if (add_generation_prompt) puts_(&b, "<start_of_turn>model\n");
        break;
    }
    case VKI_CHAT_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            puts_(&b, "<|");
            puts_(&b, msgs[i].role);
            puts_(&b, "|>\n");
            put_content(&b, msgs[i].content);
            puts_(&b, eos ? eos : "</s>");
            puts_(&b, "\n");
        }
        if (add_generation_prompt) puts_(&b, "<|assistant|>\n");
        break;
    default:
        free(b.p);
        free(b.spans);
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template: no family given");
    }
    if (b.oom) {
        free(b.p);
        free(b.spans);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    }
    *out = b.p;
    if (spans) {
        *spans = b.spans;
        *n_spans = b.n_spans;
    }
    return VKI_OK;
}

vki_status vki_chat_render(vki_chat_family fam, const vki_chat_msg *msgs, size_t n, bool add_generation_prompt,
                           const char *bos, const char *eos, char **out)
{
    return render(fam, msgs, n, add_generation_prompt, bos, eos, out, NULL, NULL);
}

vki_status vki_chat_render_spans(vki_chat_family fam, const vki_chat_msg *msgs, size_t n, bool add_generation_prompt,
                                 const char *bos, const char *eos, char **out, vki_text_span **spans,
                                 size_t *n_spans)
{
    if (!spans || !n_spans) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_chat_render_spans: spans is NULL");
    return render(fam, msgs, n, add_generation_prompt, bos, eos, out, spans, n_spans);
}

/* The text of special token `key` (an id key) as a NUL-terminated copy. */
static char *token_text(const vki_model_file *f, const char *key)
{
    uint32_t id;
    const vki_kv *toks = vki_file_find_kv(f, "tokenizer.ggml.tokens");
    if (!vki_file_get_u32(f, key, &id) || !toks || toks->type != VKI_KV_ARRAY ||
        toks->v.arr.elem != VKI_KV_STRING || id >= toks->v.arr.n)
        return NULL;
    vki_str s = toks->v.arr.items[id].v.s;
    char *c = malloc(s.n + 1);
    if (c) {
        memcpy(c, s.p, s.n);
        c[s.n] = 0;
    }
    return c;
}

static vki_status render_family(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                                bool add_generation_prompt, char **out, vki_text_span **spans, size_t *n_spans)
{
    vki_chat_family fam = vki_chat_family_from_name(name);
    if (fam == VKI_CHAT_UNKNOWN)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template '%s' is not one of chatml, qwen, llama2, llama3, "
                        "mistral, phi3, gemma, zephyr", name);
    char *bos = token_text(f, "tokenizer.ggml.bos_token_id");
    char *eos = token_text(f, "tokenizer.ggml.eos_token_id");
    vki_status st = render(fam, msgs, n, add_generation_prompt, bos, eos, out, spans, n_spans);
    free(bos);
    free(eos);
    return st;
}

/* The model's template through the Jinja interpreter. */
static vki_status render_jinja(const vki_model_file *f, const cJSON *messages, const cJSON *tools, const cJSON *extra,
                               bool add_generation_prompt, char **out, vki_text_span **spans, size_t *n_spans)
{
    vki_str t;
    if (!vki_file_get_str(f, "tokenizer.chat_template", &t))
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: no tokenizer.chat_template; name a template (chatml, llama3, ...)",
                        vki_file_path(f));
    char where[1100];
    snprintf(where, sizeof where, "%.1000s: tokenizer.chat_template", vki_file_path(f));
    jinja_template *jt = NULL;
    cJSON *ctx = NULL;
    enum { N_TOK = 7 };
    char *tok[N_TOK] = {NULL};
    static const char *const tok_keys[N_TOK][2] = {
        {"bos_token", "tokenizer.ggml.bos_token_id"},     {"eos_token", "tokenizer.ggml.eos_token_id"},
        {"unk_token", "tokenizer.ggml.unknown_token_id"}, {"pad_token", "tokenizer.ggml.padding_token_id"},
        {"sep_token", "tokenizer.ggml.seperator_token_id"}, {"cls_token", "tokenizer.ggml.cls_token_id"},
        {"mask_token", "tokenizer.ggml.mask_token_id"},
    };
    vki_status st = jinja_parse(t.p, (size_t)t.n, where, &jt);
    if (st != VKI_OK) return st;
    ctx = cJSON_CreateObject();
    if (!ctx) goto oom;
    /* transformers: the special tokens and documents=None, then the
     * caller's kwargs over them */
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = token_text(f, tok_keys[i][1]);
        if (tok[i] && !cJSON_AddStringToObject(ctx, tok_keys[i][0], tok[i])) goto oom;
    }
    if (!cJSON_GetObjectItemCaseSensitive(extra, "documents") && !cJSON_AddNullToObject(ctx, "documents")) goto oom;
    const cJSON *e;
    if (extra) cJSON_ArrayForEach(e, extra) {
        if (!strcmp(e->string, "messages") || !strcmp(e->string, "tools") || !strcmp(e->string, "add_generation_prompt")) {
            st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template: extra variable '%s' would replace the conversation",
                          e->string);
            goto done;
        }
        cJSON *copy = cJSON_Duplicate(e, true);
        if (!copy) goto oom;
        cJSON_AddItemToObject(ctx, e->string, copy);
    }
    if (!cJSON_AddItemReferenceToObject(ctx, "messages", (cJSON *)messages) ||
        !(tools ? cJSON_AddItemReferenceToObject(ctx, "tools", (cJSON *)tools) : cJSON_AddNullToObject(ctx, "tools") != NULL) ||
        !cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt))
        goto oom;
    st = jinja_render(jt, ctx, NULL, out, NULL, spans, n_spans);
    goto done;
oom:
    st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
done:
    for (int i = 0; i < N_TOK; i++) free(tok[i]);
    cJSON_Delete(ctx);
    jinja_template_destroy(jt);
    return st;
}

vki_status vki_chat_apply_json(const vki_model_file *f, const char *name, const cJSON *messages, const cJSON *tools,
                               const cJSON *extra, bool add_generation_prompt, char **out, vki_text_span **spans,
                               size_t *n_spans)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_chat_apply_json: out is NULL");
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (!f || !cJSON_IsArray(messages))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_chat_apply_json: %s", !f ? "no model file" : "messages is not an array");
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_chat_apply_json: tools is not an array");
    if (extra && !cJSON_IsObject(extra)) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_chat_apply_json: extra is not an object");
    if (!name) return render_jinja(f, messages, cJSON_IsNull(tools) ? NULL : tools, extra, add_generation_prompt, out, spans, n_spans);
    if (cJSON_GetArraySize(tools) > 0)
        return vki_fail(VKI_ERR_UNSUPPORTED, "chat template '%s' renders no tools; use the model's own template", name);
    /* the family renderers take text messages */
    size_t n = (size_t)cJSON_GetArraySize(messages), i = 0;
    vki_chat_msg *m = calloc(n + 1, sizeof *m);
    char **owned = calloc(n + 1, sizeof *owned);
    vki_status st = VKI_OK;
    const cJSON *it;
    if (!m || !owned) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "chat template: out of memory"); goto done; }
    cJSON_ArrayForEach(it, messages) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(r)) { st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "messages[%zu]: no string \"role\"", i); goto done; }
        m[i].role = r->valuestring;
        if (cJSON_IsString(c)) {
            m[i].content = c->valuestring;
        } else if (!c || cJSON_IsNull(c)) {
            m[i].content = "";
        } else if (cJSON_IsArray(c)) {
            size_t len = 0;
            const cJSON *part;
            cJSON_ArrayForEach(part, c) {
                const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(tx)) {
                    st = vki_fail(VKI_ERR_UNSUPPORTED, "messages[%zu].content: template '%s' renders text parts only", i, name);
                    goto done;
                }
                len += strlen(tx->valuestring);
            }
            if (!(owned[i] = calloc(len + 1, 1))) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "chat template: out of memory"); goto done; }
            cJSON_ArrayForEach(part, c) strcat(owned[i], cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
            m[i].content = owned[i];
        } else {
            st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "messages[%zu].content: expected a string, null or parts", i);
            goto done;
        }
        i++;
    }
    st = render_family(f, name, m, n, add_generation_prompt, out, spans, n_spans);
done:
    for (size_t k = 0; owned && k < n; k++) free(owned[k]);
    free(owned);
    free(m);
    return st;
}

vki_status vki_chat_apply_spans(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                                bool add_generation_prompt, char **out, vki_text_span **spans, size_t *n_spans)
{
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (name) return render_family(f, name, msgs, n, add_generation_prompt, out, spans, n_spans);
    cJSON *arr = cJSON_CreateArray();
    vki_status st = VKI_OK;
    for (size_t i = 0; arr && i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            cJSON_Delete(arr);
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "chat template: message %zu has no role or content", i);
        }
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "role", msgs[i].role) || !cJSON_AddStringToObject(o, "content", msgs[i].content)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, o);
    }
    if (!arr) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    st = render_jinja(f, arr, NULL, NULL, add_generation_prompt, out, spans, n_spans);
    cJSON_Delete(arr);
    return st;
}

vki_status vki_chat_apply(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                          bool add_generation_prompt, char **out)
{
    return vki_chat_apply_spans(f, name, msgs, n, add_generation_prompt, out, NULL, NULL);
}
