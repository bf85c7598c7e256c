/*
 * request.c: the bodies of POST /v1/chat/completions, /v1/completions and
 * /v1/embeddings turned into what the routes submit (srv_gen_req,
 * srv_embed_req, and per candidate model the rendered chat prompt): every
 * OpenAI field read or refused by name. Nothing here touches the scheduler
 * or the connection beyond queueing an error answer, so the same functions
 * serve the routes and tests/fuzz/fuzz_http.c (which has no connection:
 * srv_send_error then only records the status).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/tokenizer/chat_template.h"
#include "server/srv_internal.h"
#include "util.h"

/* ===== Generation fields ================================================== */

bool srv_check_fields(srv_conn *cn, const cJSON *body, const char *const *known, enum MHD_Result *ret)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, body) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], it->string)) k++;
        if (!known[k]) {
            *ret = srv_send_error(cn, 400, "unsupported_field", 0, "%.64s: not a field %s takes (fields we do not "
                                  "implement are refused, not ignored)", it->string, srv_route_path[cn->route]);
            return false;
        }
    }
    return true;
}

/* An OpenAI field we do not implement: accepted only absent, null or with a
 * value that asks for nothing (`neutral`, JSON texts, NULL-terminated), so
 * it is never ignored silently. false = queued 400 naming it. */
static bool neutral_field(srv_conn *cn, const cJSON *body, const char *name, const char *const *neutral,
                          const char *why, enum MHD_Result *ret)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!j || cJSON_IsNull(j)) return true;
    for (size_t k = 0; neutral[k]; k++) {
        cJSON *n = cJSON_Parse(neutral[k]);
        bool same = n && cJSON_Compare(j, n, true);
        cJSON_Delete(n);
        if (same) return true;
    }
    *ret = srv_send_error(cn, 400, "unsupported_field", 0, "%s: %s", name, why);
    return false;
}

/* The fields each route reads; the rest are refused by name. Those that
 * change nothing here (user, metadata, store, service_tier) are accepted. */
static const char *const chat_fields[] = {
    "model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
    "presence_penalty", "frequency_penalty", "seed", "stop", "stream", "stream_options", "ignore_eos", "priority",
    "timeout", "model_fallback", "user", "metadata", "store", "service_tier", "parallel_tool_calls", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice", "functions", "function_call", "logit_bias", NULL};
const char *const srv_gen_plain_fields[] = {
    "model", "prompt", "service_type", "priority", "stream", "session_id", "max_tokens", "temperature", "top_p",
    "top_k", "min_p", "presence_penalty", "frequency_penalty", "seed", "stop", "ignore_eos", "timeout",
    "model_fallback", "response_format", NULL};
static const char *const completion_fields[] = {
    "model", "prompt", "n", "max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty",
    "frequency_penalty", "seed", "stop", "stream", "stream_options", "ignore_eos", "priority", "timeout",
    "model_fallback", "user", "logprobs", "echo", "suffix", "best_of", "logit_bias", "response_format", NULL};

static bool unsupported_fields(srv_conn *cn, const cJSON *body, bool chat, enum MHD_Result *ret)
{
    static const char *const no_false[] = {"false", NULL}, *const one[] = {"1", NULL},
                             *const empty_obj[] = {"{}", NULL}, *const empty_arr[] = {"[]", NULL},
                             *const tc_none[] = {"\"none\"", NULL}, *const no_suffix[] = {"\"\"", NULL};
    if (!srv_check_fields(cn, body, chat ? chat_fields : completion_fields, ret)) return false;
    if (!neutral_field(cn, body, "logit_bias", empty_obj, "not supported (send {} or leave it out)", ret)) return false;
    if (!chat)
        return neutral_field(cn, body, "echo", no_false, "not supported (false or leave it out)", ret) &&
               neutral_field(cn, body, "suffix", no_suffix, "not supported (leave it out)", ret) &&
               neutral_field(cn, body, "best_of", one, "only 1 is supported", ret);
    return neutral_field(cn, body, "functions", empty_arr, "the deprecated functions field is not supported (send "
                         "tools)", ret) &&
           neutral_field(cn, body, "function_call", tc_none, "the deprecated function_call field is not supported "
                         "(send tool_choice)", ret);
}

/* JSON text is UTF-8, but cJSON passes broken bytes through. */
static bool utf8_valid(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int k = vki_utf8_next(s + i, n - i);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}

/* A number field in [lo, hi]; absent or null leaves *v. false = queued 400. */
static bool num_field(srv_conn *cn, const cJSON *body, const char *name, double lo, double hi, bool integer,
                      double *v, enum MHD_Result *ret)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!j || cJSON_IsNull(j)) return true;
    if (!cJSON_IsNumber(j) || j->valuedouble < lo || j->valuedouble > hi ||
        (integer && j->valuedouble != (double)(long long)j->valuedouble)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "%s: expected %s in [%g, %g]", name,
                              integer ? "an integer" : "a number", lo, hi);
        return false;
    }
    *v = j->valuedouble;
    return true;
}

/* Chat: logprobs (bool) and top_logprobs (0..20, only with logprobs: true);
 * completions: logprobs (0..5, the alternatives per token). */
static bool logprob_fields(srv_conn *cn, const cJSON *body, bool chat, vki_generate_params *gp, enum MHD_Result *ret)
{
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    double v = 0;
    if (!chat) {
        if (!num_field(cn, body, "logprobs", 0, 5, true, &v, ret)) return false;
        gp->logprobs = lp && !cJSON_IsNull(lp);
        gp->n_top_logprobs = (int32_t)v;
        return true;
    }
    if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "logprobs: expected true or false");
        return false;
    }
    gp->logprobs = cJSON_IsTrue(lp);
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(body, "top_logprobs");
    if (top && !cJSON_IsNull(top) && !gp->logprobs) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "top_logprobs: only with logprobs: true");
        return false;
    }
    if (!num_field(cn, body, "top_logprobs", 0, VKI_MAX_TOP_LOGPROBS, true, &v, ret)) return false;
    gp->n_top_logprobs = (int32_t)v;
    return true;
}

static bool parse_fields(srv_conn *cn, const cJSON *body, srv_gen_shape shape, srv_gen_req *f, enum MHD_Result *ret)
{
    static atomic_uint_fast64_t seed_counter;
    const bool chat = shape == SRV_GEN_CHAT;
    vki_generate_params *gp = &f->gp;
    *gp = vki_generate_default_params();
    /* OpenAI's defaults: temperature 1 and no other filter. */
    gp->temperature = 1.0f;
    gp->top_p = 1.0f;
    gp->top_k = 0;
    gp->min_p = 0.0f;
    /* 16 is OpenAI's completions default; chat and /generate run to the end */
    gp->n_predict = shape == SRV_GEN_COMPLETION ? 16 : 0;
    gp->seed = (uint64_t)time(NULL) * 6364136223846793005ull + atomic_fetch_add(&seed_counter, 1);
    if (shape == SRV_GEN_PLAIN ? !srv_check_fields(cn, body, srv_gen_plain_fields, ret)
                               : !unsupported_fields(cn, body, chat, ret))
        return false;
    double v;
    const char *mt = chat && cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens") ? "max_completion_tokens"
                                                                                             : "max_tokens";
    /* the model's own limit (n_seq_max) is checked when the request is submitted */
    v = 1;
    if (!num_field(cn, body, "n", 1, 128, true, &v, ret)) return false;
    f->n = (int32_t)v;
    if (!logprob_fields(cn, body, chat, gp, ret)) return false;
    v = gp->n_predict;
    if (!num_field(cn, body, mt, 1, 1 << 20, true, &v, ret)) return false;
    gp->n_predict = (int32_t)v;
    v = gp->temperature;
    if (!num_field(cn, body, "temperature", 0, 2, false, &v, ret)) return false;
    gp->temperature = (float)v;
    v = gp->top_p;
    if (!num_field(cn, body, "top_p", 1e-9, 1, false, &v, ret)) return false;
    gp->top_p = (float)v;
    v = gp->top_k;
    if (!num_field(cn, body, "top_k", 0, 1 << 20, true, &v, ret)) return false;
    gp->top_k = (int32_t)v;
    v = gp->min_p;
    if (!num_field(cn, body, "min_p", 0, 1, false, &v, ret)) return false;
    gp->min_p = (float)v;
    v = gp->presence_penalty;
    if (!num_field(cn, body, "presence_penalty", -2, 2, false, &v, ret)) return false;
    gp->presence_penalty = (float)v;
    v = gp->frequency_penalty;
    if (!num_field(cn, body, "frequency_penalty", -2, 2, false, &v, ret)) return false;
    gp->frequency_penalty = (float)v;
    v = -1;
    if (!num_field(cn, body, "seed", -9.007199254740992e15, 9.007199254740992e15, true, &v, ret)) return false;
    if (v != -1 || cJSON_GetObjectItemCaseSensitive(body, "seed")) gp->seed = (uint64_t)(int64_t)v;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "stop");
    int n_stop = 0;
    if (cJSON_IsString(j)) {
        f->stops[n_stop++] = j->valuestring;
    } else if (cJSON_IsArray(j)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            if (!cJSON_IsString(it) || !it->valuestring[0] || n_stop == SRV_MAX_STOPS) {
                *ret = srv_send_error(cn, 400, "invalid_field", 0, "stop: expected a string or up to %d non-empty "
                                      "strings", SRV_MAX_STOPS);
                return false;
            }
            f->stops[n_stop++] = it->valuestring;
        }
    } else if (j && !cJSON_IsNull(j)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "stop: expected a string or an array of strings");
        return false;
    }
    f->stops[n_stop] = NULL;
    for (int i = 0; i < n_stop; i++)
        if (!utf8_valid(f->stops[i])) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "stop: the strings must be valid UTF-8");
            return false;
        }
    gp->stop = n_stop ? f->stops : NULL;
    j = cJSON_GetObjectItemCaseSensitive(body, "stream");
    if (j && !cJSON_IsNull(j) && !cJSON_IsBool(j)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "stream: expected true or false");
        return false;
    }
    f->stream = cJSON_IsTrue(j);
    /* stream_options: {include_usage}: a last chunk with no choices and the usage, as OpenAI sends it. */
    j = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    f->include_usage = false;
    if (j && !cJSON_IsNull(j)) {
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(j, "include_usage"), *it;
        if (!cJSON_IsObject(j) || (iu && !cJSON_IsNull(iu) && !cJSON_IsBool(iu))) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "stream_options: expected {\"include_usage\": bool}");
            return false;
        }
        cJSON_ArrayForEach(it, j) if (strcmp(it->string, "include_usage")) {
            *ret = srv_send_error(cn, 400, "unsupported_field", 0, "stream_options.%.64s: not supported "
                                  "(include_usage only)", it->string);
            return false;
        }
        if (!f->stream) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "stream_options: only allowed with stream: true");
            return false;
        }
        f->include_usage = cJSON_IsTrue(iu);
    }
    j = cJSON_GetObjectItemCaseSensitive(body, "ignore_eos");
    if (j && !cJSON_IsNull(j) && !cJSON_IsBool(j)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "ignore_eos: expected true or false");
        return false;
    }
    gp->ignore_eos = cJSON_IsTrue(j);
    memset(&f->tools, 0, sizeof f->tools);
    if (chat && !srv_tools_parse(cn, body, &f->tools, ret)) return false;
    if (!srv_response_format(cn, body, gp, &f->grammar, ret)) return false;
    if (gp->grammar && (f->tools.choice == SRV_TOOL_REQUIRED || f->tools.choice == SRV_TOOL_NAMED)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "tool_choice: a required or named call cannot be "
                              "forced together with response_format json_object/json_schema");
        return false;
    }
    return true;
}

/* At most this many prompts in one /v1/completions (each is a request). */
#define MAX_PROMPTS 64

static void prompts_free(srv_prompt *p, int32_t n)
{
    for (int32_t i = 0; p && i < n; i++) free(p[i].ids);
    free(p);
}

/* A JSON array of token ids into p (malloc'd ids); false when it is not one. */
static bool id_array(const cJSON *a, srv_prompt *p)
{
    int n = cJSON_GetArraySize(a);
    if (n < 1 || !(p->ids = malloc(sizeof *p->ids * (size_t)n))) return false;
    const cJSON *it;
    p->n_ids = 0;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX ||
            it->valuedouble != (double)(int32_t)it->valuedouble)
            return false;
        p->ids[p->n_ids++] = (int32_t)it->valuedouble;
    }
    return true;
}

/* The prompts of a completion, as OpenAI takes them: a string, an array of
 * strings, an array of token ids, or an array of such arrays. */
static srv_prompt *completion_prompts(srv_conn *cn, const cJSON *body, int32_t *n_out, enum MHD_Result *ret)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
    const cJSON *first = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : j;
    /* a flat array of numbers is one prompt of ids */
    bool flat_ids = cJSON_IsArray(j) && cJSON_IsNumber(first);
    if (flat_ids) n = 1;
    if (!j || (cJSON_IsArray(j) && n < 1) || (!cJSON_IsArray(j) && !cJSON_IsString(j))) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt: %s", !j ? "required"
                              : "expected a string, an array of strings, an array of token ids or an array of "
                                "token id arrays (not empty)");
        return NULL;
    }
    if (n > MAX_PROMPTS) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt: %d prompts; at most %d in one request", n,
                              MAX_PROMPTS);
        return NULL;
    }
    srv_prompt *p = calloc((size_t)n, sizeof *p);
    if (!p) {
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *it = !cJSON_IsArray(j) ? j : flat_ids ? j : cJSON_GetArrayItem(j, i);
        bool ok;
        if (cJSON_IsString(it)) {
            p[i].text = it->valuestring;
            ok = true;
        } else {
            ok = cJSON_IsArray(it) && id_array(it, &p[i]);
        }
        if (!ok) {
            prompts_free(p, n);
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt[%d]: expected a string or a non-empty array "
                                  "of token ids (integers >= 0), like the other prompts", i);
            return NULL;
        }
        /* every element the same kind, as OpenAI's types have it */
        if (i > 0 && !p[i].text != !p[0].text) {
            prompts_free(p, n);
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt: strings and token id arrays mixed");
            return NULL;
        }
    }
    *n_out = n;
    return p;
}

bool srv_render_chat(srv_conn *cn, const cJSON *body, const srv_tool_req *tr, const vki_model_file *file,
                     const vki_tokenizer *tok, const char *tmpl, vki_generate_params *gp, char **prompt,
                     vki_text_span **spans, size_t *n_spans, srv_tool_format *fmt, enum MHD_Result *ret)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n < 1) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "messages: expected a non-empty array of {role, content}");
        return false;
    }
    /* checked after the messages: a body that is wrong is a 400 whatever the model's state */
    if (!file || !tok) {
        *ret = srv_send_error(cn, 503, "model_failed", 0, "the model stopped serving");
        return false;
    }
    /* Tools and tool messages: a tool-aware template renders them here, else
     * they come back as plain messages for the path below. */
    cJSON *generic = NULL;
    *prompt = NULL;
    if (!srv_tools_render(cn, msgs, tr, file, tmpl, &generic, prompt, spans, n_spans, fmt, ret)) return false;
    if (generic) {
        msgs = generic;
        n = cJSON_GetArraySize(msgs);
    }
    vki_chat_msg *m = calloc((size_t)n, sizeof *m);
    char **owned = calloc((size_t)n, sizeof *owned);
    bool ok = m && owned;
    if (!ok) *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    for (int i = 0; ok && !*prompt && i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant") && strcmp(role->valuestring, "developer"))) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0,
                                  "messages[%d].role: expected \"system\", \"user\", \"assistant\", \"developer\" "
                                  "or \"tool\"", i);
            ok = false;
            break;
        }
        m[i].role = strcmp(role->valuestring, "developer") ? role->valuestring : "system";
        if (cJSON_IsString(c)) {
            m[i].content = c->valuestring;
        } else if (!c || cJSON_IsNull(c)) {
            m[i].content = "";
        } else if (cJSON_IsArray(c)) {
            /* content parts: the text ones, joined */
            size_t len = 0;
            const cJSON *part;
            cJSON_ArrayForEach(part, c) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
                if (!cJSON_IsString(t) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text")) {
                    *ret = srv_send_error(cn, 400, "invalid_field", 0,
                                          "messages[%d].content: only {\"type\":\"text\",\"text\":...} parts are "
                                          "supported", i);
                    ok = false;
                    break;
                }
                len += strlen(t->valuestring);
            }
            if (!ok) break;
            owned[i] = calloc(len + 1, 1);
            if (!owned[i]) {
                ok = false;
                *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
                break;
            }
            cJSON_ArrayForEach(part, c) strcat(owned[i], cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
            m[i].content = owned[i];
        } else {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "messages[%d].content: expected a string", i);
            ok = false;
        }
    }
    if (ok) {
        /* The messages' content stays text (spans): a user's "<|im_end|>" must
         * not become the control token; only the template's markers do. */
        vki_status s = *prompt ? VKI_OK : vki_chat_apply_spans(file, tmpl, m, (size_t)n, true, prompt, spans, n_spans);
        /* A model without a template gets ChatML, as llama.cpp's server does. */
        if (s == VKI_ERR_NOT_FOUND && !tmpl)
            s = vki_chat_apply_spans(file, "chatml", m, (size_t)n, true, prompt, spans, n_spans);
        if (s != VKI_OK) {
            *ret = srv_send_error(cn, 400, "chat_template", 0, "%s (set chat_template for this model, or use "
                                  "/v1/completions)", vki_last_error());
            ok = false;
        } else {
            /* The rendered text carries its own special tokens, BOS included when the family writes it. */
            char bos[64];
            int32_t nb = vki_tokenizer_bos(tok) >= 0 ? vki_tokenizer_piece(tok, vki_tokenizer_bos(tok), bos, sizeof bos - 1, false) : 0;
            bos[nb > 0 ? nb : 0] = '\0';
            gp->parse_special = true;
            gp->add_special = !(nb > 0 && !strncmp(*prompt, bos, (size_t)nb));
        }
    }
    for (int i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(m);
    cJSON_Delete(generic);
    if (!ok) {
        free(*prompt);
        *prompt = NULL;
    }
    return ok;
}

bool srv_parse_generate(srv_conn *cn, const cJSON *body, srv_gen_shape shape, int32_t model, srv_gen_req *rq,
                        enum MHD_Result *ret)
{
    const bool chat = shape == SRV_GEN_CHAT;
    memset(rq, 0, sizeof *rq);
    rq->n_prompts = 1;
    if (!parse_fields(cn, body, shape, rq, ret) ||
        !srv_parse_common(cn, body, model, VKI_PRIORITY_INTERACTIVE, &rq->prio, &rq->deadline_ms, ret) ||
        (!chat && !(rq->prompts = completion_prompts(cn, body, &rq->n_prompts, ret)))) {
        srv_gen_req_free(rq);
        return false;
    }
    return true;
}

void srv_gen_req_free(srv_gen_req *rq)
{
    prompts_free(rq->prompts, rq->prompts ? rq->n_prompts : 0);
    free(rq->grammar); /* response_format's grammar text, read by every try */
    rq->prompts = NULL;
    rq->grammar = NULL;
    rq->gp.grammar = NULL;
}

/* ===== Embeddings ========================================================= */

const char *const srv_embed_fields[] = {"model", "input", "encoding_format", "dimensions", "user", "priority",
                                        "timeout", "model_fallback", NULL};

bool srv_parse_embeddings(srv_conn *cn, const cJSON *body, int32_t model, srv_embed_req *rq, enum MHD_Result *ret)
{
    memset(rq, 0, sizeof *rq);
    /* the route has checked the fields before looking up the model; again
     * here so that the function stands alone (the fuzzer's entry) */
    if (!srv_check_fields(cn, body, srv_embed_fields, ret)) return false;
    if (!srv_parse_common(cn, body, model, VKI_PRIORITY_NORMAL, &rq->prio, &rq->deadline_ms, ret)) return false;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(body, "encoding_format");
    rq->b64 = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64");
    if (fmt && !cJSON_IsNull(fmt) && !rq->b64 && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "float"))) {
        if (cJSON_IsString(fmt))
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "encoding_format: '%.64s' is not supported; expected "
                                  "\"float\" or \"base64\"", fmt->valuestring);
        else
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "encoding_format: expected \"float\" or \"base64\"");
        return false;
    }
    /* The width is checked once the serving model is known: its full width
     * or one of its declared Matryoshka widths (config `dimensions`). */
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(body, "dimensions");
    if (jd && !cJSON_IsNull(jd)) {
        if (!cJSON_IsNumber(jd) || jd->valuedouble < 1 || jd->valuedouble > 1 << 20 ||
            jd->valuedouble != (double)(long long)jd->valuedouble) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "dimensions: expected an integer >= 1");
            return false;
        }
        rq->want_dim = jd->valuedouble;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input");
    int32_t n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    if (n < 1 || n > 2048) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "input: expected a string or an array of 1 to 2048 strings");
        return false;
    }
    if (!(rq->texts = calloc((size_t)n, sizeof *rq->texts))) {
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        const cJSON *t = cJSON_IsString(in) ? in : cJSON_GetArrayItem(in, i);
        if (!cJSON_IsString(t)) {
            srv_embed_req_free(rq);
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "input[%d]: expected a string (token arrays are not "
                                  "supported)", i);
            return false;
        }
        rq->texts[i] = t->valuestring;
    }
    rq->n = n;
    return true;
}

void srv_embed_req_free(srv_embed_req *rq)
{
    free(rq->texts);
    rq->texts = NULL;
    rq->n = 0;
}
