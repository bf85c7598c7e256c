/*
 * routes_gen.c: POST /v1/completions and POST /v1/chat/completions: the
 * OpenAI request fields (each refused by name when wrong), the chat template
 * from the model, and the answer as one JSON object or, with stream: true,
 * as Server-Sent Events in OpenAI's chunk shape ending with data: [DONE].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/tokenizer/chat_template.h"
#include "server/srv_internal.h"
#include "util.h"

#define MAX_STOPS 16
/* How often a waiting handler looks whether its client went away. */
#define POLL_MS 100

/* ===== Request fields ===================================================== */

typedef struct gen_fields {
    vki_generate_params gp;
    const char         *stops[MAX_STOPS + 1]; /* borrowed from the JSON tree */
    bool                stream;
    bool                include_usage; /* stream_options.include_usage    */
} gen_fields;

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
 * change nothing here (user, metadata, store, service_tier,
 * parallel_tool_calls without tools) are accepted. */
static const char *const chat_fields[] = {
    "model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
    "presence_penalty", "frequency_penalty", "seed", "stop", "stream", "stream_options", "ignore_eos", "priority",
    "timeout", "model_fallback", "user", "metadata", "store", "service_tier", "parallel_tool_calls", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice", "functions", "function_call", "logit_bias", NULL};
static const char *const completion_fields[] = {
    "model", "prompt", "n", "max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty",
    "frequency_penalty", "seed", "stop", "stream", "stream_options", "ignore_eos", "priority", "timeout",
    "model_fallback", "user", "logprobs", "echo", "suffix", "best_of", "logit_bias", NULL};

static bool unsupported_fields(srv_conn *cn, const cJSON *body, bool chat, enum MHD_Result *ret)
{
    static const char *const none[] = {NULL}, *const no_false[] = {"false", NULL}, *const one[] = {"1", NULL},
                             *const empty_obj[] = {"{}", NULL}, *const empty_arr[] = {"[]", NULL},
                             *const text_fmt[] = {"{\"type\":\"text\"}", NULL},
                             *const tc_none[] = {"\"none\"", NULL}, *const no_suffix[] = {"\"\"", NULL};
    if (!srv_check_fields(cn, body, chat ? chat_fields : completion_fields, ret)) return false;
    if (!neutral_field(cn, body, "logit_bias", empty_obj, "not supported (send {} or leave it out)", ret)) return false;
    if (!chat)
        return neutral_field(cn, body, "logprobs", none, "not supported (leave it out or null)", ret) &&
               neutral_field(cn, body, "echo", no_false, "not supported (false or leave it out)", ret) &&
               neutral_field(cn, body, "suffix", no_suffix, "not supported (leave it out)", ret) &&
               neutral_field(cn, body, "best_of", one, "only 1 is supported", ret);
    return neutral_field(cn, body, "logprobs", no_false, "not supported (false or leave it out)", ret) &&
           neutral_field(cn, body, "top_logprobs", none, "not supported (leave it out)", ret) &&
           neutral_field(cn, body, "response_format", text_fmt,
                         "only {\"type\":\"text\"} is supported (no JSON mode or schemas)", ret) &&
           neutral_field(cn, body, "tools", empty_arr, "tool calling is not supported", ret) &&
           neutral_field(cn, body, "tool_choice", tc_none, "tool calling is not supported (\"none\" only)", ret) &&
           neutral_field(cn, body, "functions", empty_arr, "function calling is not supported", ret) &&
           neutral_field(cn, body, "function_call", tc_none, "function calling is not supported", ret);
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

static bool parse_fields(srv_conn *cn, const cJSON *body, bool chat, gen_fields *f, enum MHD_Result *ret)
{
    static atomic_uint_fast64_t seed_counter;
    vki_generate_params *gp = &f->gp;
    *gp = vki_generate_default_params();
    /* OpenAI's defaults: temperature 1 and no other filter. */
    gp->temperature = 1.0f;
    gp->top_p = 1.0f;
    gp->top_k = 0;
    gp->min_p = 0.0f;
    gp->n_predict = chat ? 0 : 16;
    gp->seed = (uint64_t)time(NULL) * 6364136223846793005ull + atomic_fetch_add(&seed_counter, 1);
    if (!unsupported_fields(cn, body, chat, ret)) return false;
    double v;
    const char *mt = chat && cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens") ? "max_completion_tokens"
                                                                                             : "max_tokens";
    if (!num_field(cn, body, "n", 1, 1, true, &v, ret)) return false; /* one choice per request */
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
            if (!cJSON_IsString(it) || !it->valuestring[0] || n_stop == MAX_STOPS) {
                *ret = srv_send_error(cn, 400, "invalid_field", 0, "stop: expected a string or up to %d non-empty "
                                      "strings", MAX_STOPS);
                return false;
            }
            f->stops[n_stop++] = it->valuestring;
        }
    } else if (j && !cJSON_IsNull(j)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "stop: expected a string or an array of strings");
        return false;
    }
    f->stops[n_stop] = NULL;
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
    return true;
}

/* The prompt of a completion: a string, or an array holding one string. */
static const char *completion_prompt(srv_conn *cn, const cJSON *body, enum MHD_Result *ret)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1) j = cJSON_GetArrayItem(j, 0);
    if (!cJSON_IsString(j)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt: %s", !j ? "required"
                              : cJSON_IsArray(j) ? "arrays of several prompts are not supported; send one string"
                                                 : "expected a string");
        return NULL;
    }
    return j->valuestring;
}

/* Renders the chat messages with the model's template into *prompt. */
static bool chat_prompt(srv_conn *cn, const cJSON *body, int32_t model, vki_generate_params *gp, char **prompt,
                        vki_text_span **spans, size_t *n_spans, enum MHD_Result *ret)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n < 1) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "messages: expected a non-empty array of {role, content}");
        return false;
    }
    vki_chat_msg *m = calloc((size_t)n, sizeof *m);
    char **owned = calloc((size_t)n, sizeof *owned);
    bool ok = m && owned;
    for (int i = 0; ok && i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant") && strcmp(role->valuestring, "developer"))) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0,
                                  "messages[%d].role: expected \"system\", \"user\" or \"assistant\"", i);
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
        const vki_model_file *file = sched_model_file(cn->srv->s, model);
        const vki_tokenizer *tok = sched_model_tokenizer(cn->srv->s, model);
        if (!file || !tok) {
            *ret = srv_send_error(cn, 503, "model_failed", 0, "the model stopped serving");
            ok = false;
            goto done;
        }
        const char *tmpl = cn->srv->cfg->models[model].chat_template;
        /* The messages' content stays text (spans): a user's "<|im_end|>" must
         * not become the control token; only the template's markers do. */
        vki_status s = vki_chat_apply_spans(file, tmpl, m, (size_t)n, true, prompt, spans, n_spans);
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
done:
    for (int i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(m);
    return ok;
}

/* ===== Answers ============================================================ */

typedef struct gen_job {
    srv_server            *srv;
    struct MHD_Connection *c;
    sched_request         *r;
    bool                   chat;
    char                   id[48];
    char                  *model;
    size_t                 have;   /* text bytes already sent              */
    bool                   sent_role;
    bool                   include_usage; /* a last chunk with the usage */
    srv_buf                out;    /* SSE bytes not yet handed to MHD      */
    size_t                 pos_out;
    int                    phase;  /* 0 text, 1 [DONE] next, 2 ended       */
    bool                   streaming; /* MHD owns it: log when it is freed */
    srv_req_log            log;    /* a stream's log line, written at its end */
} gen_job;

static const char *finish_reason(const sched_result *res)
{
    return res->stopped_by_eos || res->stopped_by_string ? "stop" : "length";
}

static cJSON *usage_json(const sched_result *res)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", res->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", res->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", res->n_prompt + res->n_generated);
    return u;
}

/* The envelope every answer and chunk shares. */
static cJSON *envelope(const gen_job *j, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", j->model);
    return o;
}

/* One chunk: text (may be NULL) and, at the end, the finish reason. */
static cJSON *chunk_json(gen_job *j, const char *text, const sched_result *end)
{
    cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (j->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (!j->sent_role) cJSON_AddStringToObject(d, "role", "assistant");
        j->sent_role = true;
        if (text) cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (end) cJSON_AddStringToObject(c, "finish_reason", finish_reason(end));
    else cJSON_AddNullToObject(c, "finish_reason");
    if (end) cJSON_AddItemToObject(o, "usage", usage_json(end));
    return o;
}

static bool out_append(gen_job *j, const char *a, const char *b, const char *c)
{
    return srv_buf_printf(&j->out, "%s%s%s", a, b, c);
}

/* The request's counts as the scheduler has them now. */
static void log_counts(srv_req_log *l, const sched_result *res)
{
    l->prompt_tokens = res->n_prompt;
    l->completion_tokens = res->n_generated;
    if (res->start_order) l->queue_ms = res->queue_ms;
}

static bool out_event(gen_job *j, cJSON *o)
{
    char *s = srv_json_print(o);
    cJSON_Delete(o);
    bool ok = s && out_append(j, "data: ", s, "\n\n");
    free(s);
    return ok;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gen_job *j = cls;
    while (j->pos_out == j->out.n) {
        j->pos_out = j->out.n = 0;
        if (j->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (j->phase == 1) {
            out_append(j, "data: [DONE]\n\n", "", "");
            j->phase = 2;
            continue;
        }
        char *chunk = NULL;
        size_t n = 0;
        sched_result res;
        if (sched_request_poll(j->r, j->have, POLL_MS, &chunk, &n, &res) != VKI_OK) return MHD_CONTENT_READER_END_WITH_ERROR;
        log_counts(&j->log, &res);
        if (chunk) {
            j->have += n;
            bool ok = out_event(j, chunk_json(j, chunk, NULL));
            free(chunk);
            if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (res.done) {
            if (res.status == VKI_OK) {
                out_event(j, chunk_json(j, NULL, &res));
                if (j->include_usage) {
                    cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage_json(&res));
                    out_event(j, o);
                }
            } else {
                cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
                cJSON_AddStringToObject(e, "message", res.error ? res.error : vki_status_str(res.status));
                cJSON_AddStringToObject(e, "type", res.status == VKI_ERR_TIMEOUT ? "timeout_error" : "server_error");
                cJSON_AddStringToObject(e, "code", vki_status_str(res.status));
                out_event(j, o);
            }
            j->phase = 1;
        } else if (!chunk && srv_client_gone(j->c)) {
            sched_request_cancel(j->r);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = VKI_MIN(max, j->out.n - j->pos_out);
    memcpy(buf, j->out.p + j->pos_out, n);
    j->pos_out += n;
    return (ssize_t)n;
}

static void job_free(void *cls)
{
    gen_job *j = cls;
    if (!j) return;
    if (j->streaming) srv_log_done(j->srv, &j->log);
    sched_request_release(j->r);
    free(j->model);
    free(j->out.p);
    free(j);
}

/* Waits until the request has text (stream) or is done; false when the
 * client went away (the request is cancelled then). */
static bool wait_for(gen_job *j, bool any_text, char **text, size_t *n_text, sched_result *res)
{
    for (;;) {
        char *chunk = NULL;
        size_t n = 0;
        if (sched_request_poll(j->r, *n_text, POLL_MS, &chunk, &n, res) != VKI_OK) return false;
        if (chunk) {
            char *nt = realloc(*text, *n_text + n + 1);
            if (!nt) {
                free(chunk);
                return false;
            }
            memcpy(nt + *n_text, chunk, n + 1);
            *text = nt;
            *n_text += n;
            free(chunk);
        }
        if (res->done || (any_text && res->n_generated > 0)) return true;
        if (srv_client_gone(j->c)) {
            sched_request_cancel(j->r);
            return false;
        }
    }
}

/* One try of a generation on model i: render (chat), submit, wait for the
 * first text (stream) or the end. 1: served (*jp, text, res hold it);
 * 0: an answer was queued (*ret); -1: the scheduler refused or the request
 * ended before any output, with the status, message and wait in st/msg/eta. */
static int gen_try(srv_conn *cn, const cJSON *body, bool chat, const gen_fields *f0, const char *completion,
                   int32_t i, sched_prio prio, double deadline, gen_job **jp, char **text, size_t *n_text,
                   sched_result *res, vki_status *st, char *msg, size_t msg_size, double *eta, enum MHD_Result *ret)
{
    gen_fields f = *f0;
    if (f0->gp.stop) f.gp.stop = f.stops; /* the copy's own array */
    char *rendered = NULL;
    const char *prompt = completion;
    vki_text_span *spans = NULL;
    size_t n_spans = 0;
    if (chat) {
        if (!chat_prompt(cn, body, i, &f.gp, &rendered, &spans, &n_spans, ret)) {
            free(spans);
            return 0;
        }
        prompt = rendered;
    }
    gen_job *j = calloc(1, sizeof *j);
    sched_model_info info;
    sched_model_get_info(cn->srv->s, i, &info);
    if (!j || !(j->model = strdup(info.id))) {
        free(j);
        free(rendered);
        free(spans);
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return 0;
    }
    j->srv = cn->srv;
    j->c = cn->c;
    j->chat = chat;
    j->include_usage = f.include_usage;
    /* the response id is the request's, so the log line names it */
    snprintf(j->id, sizeof j->id, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)cn->n);
    snprintf(cn->log.id, sizeof cn->log.id, "%s", j->id);
    *eta = 0;
    *st = sched_submit_generate_spans(cn->srv->s, i, prompt, spans, n_spans, &f.gp, prio, deadline, &j->r, eta);
    free(rendered);
    free(spans);
    if (*st != VKI_OK) {
        snprintf(msg, msg_size, "%s", vki_last_error());
        job_free(j);
        return -1;
    }
    bool waited = wait_for(j, f.stream, text, n_text, res);
    log_counts(&cn->log, res);
    if (!waited) {
        job_free(j);
        *ret = MHD_NO; /* the client is gone: close */
        return 0;
    }
    if (res->done && res->status != VKI_OK) {
        *st = res->status;
        snprintf(msg, msg_size, "%s", res->error ? res->error : "");
        *eta = 0;
        job_free(j);
        if (*n_text == 0 && res->n_generated == 0) return -1;
        *ret = srv_send_status(cn, *st, msg, 0);
        return 0;
    }
    *jp = j;
    return 1;
}

enum MHD_Result srv_route_generate(srv_conn *cn, const cJSON *body, bool chat)
{
    enum MHD_Result ret = MHD_NO;
    int32_t model = srv_pick_serving(cn, body, SCHED_KIND_CHAT, &ret);
    if (model < 0) return ret;
    gen_fields f;
    sched_prio prio;
    double deadline;
    if (!parse_fields(cn, body, chat, &f, &ret)) return ret;
    if (!srv_parse_common(cn, body, model, SCHED_PRIO_INTERACTIVE, &prio, &deadline, &ret)) return ret;
    const char *completion = NULL;
    if (!chat && !(completion = completion_prompt(cn, body, &ret))) return ret;
    /* Candidates are ranked by room for about a token per 4 bytes of body, and the completion. */
    sched_needs need = {.n_tokens = (int32_t)VKI_MIN(cn->body.n / 4 + (size_t)VKI_MAX(f.gp.n_predict, 0), 1u << 30)};
    int32_t order[16];
    const int32_t n_try = srv_fb_plan(cn, body, model, &need, order, 16, &ret);
    if (!n_try) return ret;
    gen_job *j = NULL;
    char *text = NULL;
    size_t n_text = 0;
    sched_result res;
    srv_fb_error first = {0}, e;
    int first_reason = -1, served = -1;
    for (int32_t k = 0; k < n_try && served < 0; k++) {
        const int32_t i = order[k];
        /* The ETA matters only when another model could answer in time. */
        int reason = srv_fb_precheck(cn, i, deadline, k + 1 < n_try, &e);
        if (reason < 0) {
            vki_status st;
            double eta;
            char msg[1024];
            int r = gen_try(cn, body, chat, &f, completion, i, prio, deadline, &j, &text, &n_text, &res, &st, msg,
                            sizeof msg, &eta, &ret);
            if (r == 0) {
                free(text);
                return ret;
            }
            if (r == 1) {
                served = i;
                break;
            }
            if ((reason = srv_fb_judge(cn, i, st, msg, eta, &e)) < 0) return srv_send_status(cn, st, msg, eta);
        }
        if (first_reason < 0) {
            first = e;
            first_reason = reason;
        }
    }
    if (served < 0) return srv_send_error(cn, first.http, first.code, first.retry, "%s", first.msg);
    if (served != model) srv_fb_count(cn->srv, model, served, first_reason);
    sched_model_info si;
    sched_model_get_info(cn->srv->s, served, &si);
    cn->served_by = cn->log.model = si.id; /* valid until sched_destroy */
    if (f.stream) {
        /* Headers go out with the first text; the rest follows as it comes. */
        j->have = n_text;
        if (n_text && !out_event(j, chunk_json(j, text, NULL))) j->phase = 2;
        free(text);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, job_free);
        if (!r) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "X-Vkinfer-Served-By", j->model);
        /* The stream outlives the handler: its line is written when it ends. */
        cn->log.status = 200;
        j->log = cn->log;
        j->streaming = cn->streamed = true;
        ret = MHD_queue_response(cn->c, 200, r);
        MHD_destroy_response(r);
        srv_count(cn->srv, cn->route, 200);
        return ret;
    }
    cJSON *o = envelope(j, chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
        cJSON_AddNullToObject(c, "logprobs");
    }
    cJSON_AddStringToObject(c, "finish_reason", finish_reason(&res));
    cJSON_AddItemToObject(o, "usage", usage_json(&res));
    free(text);
    job_free(j);
    return srv_send_json(cn, 200, o);
}
