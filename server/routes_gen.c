/*
 * routes_gen.c: POST /v1/completions and POST /v1/chat/completions: the
 * request (request.c reads its fields; a chat is rendered by each model the
 * service tries, through gen_render) as one service job per prompt over its
 * fallback plan, and the answer as one JSON object or, with stream: true,
 * as Server-Sent Events in OpenAI's chunk shape ending with data: [DONE].
 * The legacy POST /generate (routes_legacy.c) runs here too, as the PLAIN
 * shape: its answer is the text alone, whole or streamed as it comes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"
#include "util.h"

/* A stream whose expected wait is at least this long starts at once, with
 * its place in the queue, instead of after its first token. */
#define EARLY_STREAM_S 1.0

/* ===== Answers ============================================================ */

/* One choice as the answer has read it and not yet sent. */
typedef struct gen_choice {
    srv_buf        text;      /* read, not yet sent (plain: all of it)        */
    vki_job_token *toks;      /* [n_toks] read, not yet sent (gp.logprobs)    */
    int32_t        n_toks, cap_toks;
    bool           sent_role, sent_end;
    bool           done, stopped_by_eos, stopped_by_string; /* as last polled */
    srv_buf      all;         /* tools: everything read, parsed at the end     */
    size_t       released;    /* tools: bytes of `all` moved to text           */
} gen_choice;

/* A request's answer: one service job per prompt, each with n choices;
 * choice j of prompt i is index i * n + j, as OpenAI numbers them. */
typedef struct gen_job {
    srv_server            *srv;
    struct MHD_Connection *c;
    srv_conn              *cn;      /* valid while MHD calls the reader        */
    vki_job              **jobs;    /* [n_req]                                */
    int32_t                n_req, n;
    vki_job_choice        *polled;  /* [n] one prompt's last vki_job_poll      */
    gen_choice            *ch;      /* [n_req * n]                             */
    vki_job_result        *res;     /* [n_req] as the last poll saw them       */
    int32_t                served;  /* the model's index: token strings for logprobs */
    srv_gen_render        *rx;      /* chat: the renderer's state              */
    srv_waker             *waker;   /* a stream's: what its jobs' hooks wake   */
    bool                   logprobs;
    bool                   chat;
    bool                   plain;   /* POST /generate: the text alone          */
    bool                   tools;   /* the output is parsed for tool calls      */
    srv_tool_format        tool_fmt;
    bool                   tool_parallel;
    char                   id[48];
    char                  *model;
    bool                   include_usage; /* a last chunk with the usage */
    srv_buf                out;     /* SSE bytes not yet handed to MHD         */
    size_t                 pos_out;
    int                    phase;   /* 0 text, 1 [DONE] next, 2 ended          */
    bool                   streaming; /* MHD owns it: log when it is freed     */
    srv_req_log            log;     /* a stream's log line, written at its end */
} gen_job;

static const char *finish_reason(const gen_choice *g)
{
    return g->stopped_by_eos || g->stopped_by_string ? "stop" : "length";
}

/* The calls in choice g's whole output (tools jobs); *content_len the
 * text before them. 0: none; -1: out of memory. */
static int choice_calls(const gen_job *j, const gen_choice *g, size_t *content_len, srv_tool_call **calls)
{
    int n = srv_tool_parse(j->tool_fmt, g->all.n ? g->all.p : "", g->all.n, content_len, calls);
    if (n > 1 && !j->tool_parallel) n = 1; /* parallel_tool_calls: false keeps the first */
    return n;
}

/* OpenAI's tool_calls array for calls[0..n) (index: streamed deltas). */
static cJSON *tool_calls_json(const gen_job *j, int32_t choice, const srv_tool_call *calls, int n, bool index)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < n; k++) {
        cJSON *c = cJSON_CreateObject(), *fn;
        char id[96];
        /* unique within the server's life: the request id, the choice, the call */
        snprintf(id, sizeof id, "call_%s_%d_%d", j->id, (int)choice, k);
        if (j->tool_fmt == SRV_TOOLS_MISTRAL || j->tool_fmt == SRV_TOOLS_MISTRAL_ARGS) {
            /* Mistral's templates refuse any id but 9 letters and digits:
             * the same id hashed (FNV-1a) into that alphabet */
            static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            uint64_t h = 1469598103934665603ull;
            for (const char *p = id; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
            for (int d = 0; d < 9; d++, h /= 62) id[d] = abc[h % 62];
            id[9] = '\0';
        }
        if (index) cJSON_AddNumberToObject(c, "index", k);
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
        fn = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(fn, "name", calls[k].name);
        cJSON_AddStringToObject(fn, "arguments", calls[k].arguments);
        cJSON_AddItemToArray(a, c);
    }
    return a;
}

/* The prompt tokens (each prompt once, however many choices) and the
 * completion tokens of every choice. */
static cJSON *usage_json(const gen_job *j)
{
    int32_t np = 0, ng = 0, nc = 0;
    for (int32_t k = 0; k < j->n_req; k++) {
        np += j->res[k].n_prompt;
        ng += j->res[k].n_generated;
        nc += j->res[k].n_cached;
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", np);
    cJSON_AddNumberToObject(u, "completion_tokens", ng);
    cJSON_AddNumberToObject(u, "total_tokens", np + ng);
    /* OpenAI's field for prompt tokens served from a cache (prefix reuse here) */
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", nc);
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

/* The logprobs of choice g's unsent tokens (null without logprobs); they
 * count as sent afterwards. */
static cJSON *take_logprobs(gen_job *j, gen_choice *g)
{
    if (!j->logprobs) return cJSON_CreateNull();
    cJSON *lp = srv_logprobs_new(j->chat);
    srv_logprobs_add(lp, j->chat, j->srv->svc, j->served, g->toks, g->n_toks);
    g->n_toks = 0;
    return lp;
}

/* One chunk of choice i: its unsent text and tokens and, when `end`, its
 * finish reason (with the usage so far, as this server has always sent). */
static cJSON *chunk_json(gen_job *j, int32_t i, bool end)
{
    gen_choice *g = &j->ch[i];
    cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", i);
    if (j->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (!g->sent_role) cJSON_AddStringToObject(d, "role", "assistant");
        g->sent_role = true;
        if (g->text.n) cJSON_AddStringToObject(d, "content", g->text.p);
    } else {
        cJSON_AddStringToObject(c, "text", g->text.n ? g->text.p : "");
    }
    g->text.n = 0;
    if (j->logprobs && !g->n_toks) cJSON_AddNullToObject(c, "logprobs");
    else cJSON_AddItemToObject(c, "logprobs", take_logprobs(j, g));
    if (end) cJSON_AddStringToObject(c, "finish_reason", finish_reason(g));
    else cJSON_AddNullToObject(c, "finish_reason");
    if (end) cJSON_AddItemToObject(o, "usage", usage_json(j));
    return o;
}

static bool out_append(gen_job *j, const char *a, const char *b, const char *c)
{
    return srv_buf_printf(&j->out, "%s%s%s", a, b, c);
}

/* The request's counts as the jobs have them now. */
static void log_counts(srv_req_log *l, const gen_job *j)
{
    l->prompt_tokens = l->completion_tokens = 0;
    for (int32_t k = 0; k < j->n_req; k++) {
        l->prompt_tokens += j->res[k].n_prompt;
        l->completion_tokens += j->res[k].n_generated;
        if (j->res[k].started && (k == 0 || j->res[k].queue_ms > l->queue_ms)) l->queue_ms = j->res[k].queue_ms;
    }
}

static bool out_event(gen_job *j, cJSON *o)
{
    char *s = srv_json_print(o);
    cJSON_Delete(o);
    bool ok = s && out_append(j, "data: ", s, "\n\n");
    free(s);
    return ok;
}

static bool toks_append(gen_choice *g, const vki_job_token *t, int32_t n)
{
    if (g->n_toks + n > g->cap_toks) {
        int32_t cap = VKI_MAX(2 * g->cap_toks, g->n_toks + n + 16);
        vki_job_token *nt = realloc(g->toks, sizeof *nt * (size_t)cap);
        if (!nt) return false;
        g->toks = nt;
        g->cap_toks = cap;
    }
    memcpy(g->toks + g->n_toks, t, sizeof *t * (size_t)n);
    g->n_toks += n;
    return true;
}

/* Reads what prompt k's choices have produced since the last look into
 * their gen_choice. false: out of memory. */
static bool poll_prompt(gen_job *j, int32_t k)
{
    if (vki_job_poll(j->jobs[k], j->polled, j->n, &j->res[k]) != VKI_OK) return false;
    bool ok = true;
    for (int32_t c = 0; c < j->n; c++) {
        gen_choice *g = &j->ch[(size_t)k * (size_t)j->n + (size_t)c];
        const vki_job_choice *o = &j->polled[c];
        if (o->text_len) ok &= srv_buf_append(j->tools ? &g->all : &g->text, o->text, o->text_len);
        if (o->n_tokens) ok &= toks_append(g, o->tokens, o->n_tokens);
        g->done = o->done;
        g->stopped_by_eos = o->stopped_by_eos;
        g->stopped_by_string = o->stopped_by_string;
    }
    return ok;
}

static void cancel_all(gen_job *j)
{
    for (int32_t k = 0; k < j->n_req; k++) vki_job_cancel(j->jobs[k]);
}

/* The first prompt whose request ended with an error, or -1. */
static int32_t failed_prompt(const gen_job *j)
{
    for (int32_t k = 0; k < j->n_req; k++)
        if (j->res[k].done && j->res[k].status != VKI_OK) return k;
    return -1;
}

static bool all_done(const gen_job *j)
{
    for (int32_t k = 0; k < j->n_req; k++)
        if (!j->res[k].done) return false;
    return true;
}

/* Queues a chunk for every choice with unsent text or tokens, or that
 * ended; returns how many. -1: out of memory. */
static int32_t flush_chunks(gen_job *j)
{
    int32_t sent = 0;
    for (int32_t i = 0; i < j->n_req * j->n; i++) {
        gen_choice *g = &j->ch[i];
        bool end = g->done && !g->sent_end;
        int n_calls = 0;
        srv_tool_call *calls = NULL;
        if (j->tools && !g->sent_end) {
            /* text goes out while it cannot be the start of a call; at the
             * end the held rest is a call or, after all, text */
            size_t upto = srv_tool_safe_prefix(j->tool_fmt, g->all.p ? g->all.p : "", g->all.n), content = 0;
            if (end && (n_calls = choice_calls(j, g, &content, &calls)) < 0) return -1;
            if (end) upto = n_calls ? VKI_MAX(content, g->released) : g->all.n;
            if (upto > g->released && !srv_buf_append(&g->text, g->all.p + g->released, upto - g->released)) {
                srv_tool_calls_free(calls, n_calls);
                return -1;
            }
            g->released = VKI_MAX(upto, g->released);
        }
        /* the text first, then the calls, then the end in a chunk of its own, as OpenAI sends them */
        bool ok = true;
        if (g->text.n || g->n_toks) {
            ok = out_event(j, chunk_json(j, i, false));
            sent++;
        }
        if (ok && n_calls) {
            cJSON *o = chunk_json(j, i, false);
            cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0), "delta");
            cJSON_AddItemToObject(d, "tool_calls", tool_calls_json(j, i, calls, n_calls, true));
            ok = out_event(j, o);
            sent++;
        }
        if (ok && end) {
            g->sent_end = true;
            cJSON *o = chunk_json(j, i, true);
            if (n_calls) {
                cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
                cJSON_ReplaceItemInObjectCaseSensitive(c, "finish_reason", cJSON_CreateString("tool_calls"));
            }
            ok = out_event(j, o);
            sent++;
        }
        srv_tool_calls_free(calls, n_calls);
        if (!ok) return -1;
    }
    return sent;
}

/* The PLAIN stream's bytes: the text as it comes, nothing around it. An
 * error after the headers can only cut the body short: the chunked body
 * then never ends, so the client sees a broken answer, never a complete
 * wrong one. */
static bool plain_fill(gen_job *j, ssize_t *ret)
{
    if (j->phase == 2) {
        *ret = MHD_CONTENT_READER_END_OF_STREAM;
        return false;
    }
    srv_arm(j->cn);
    if (!j->res[0].done && !poll_prompt(j, 0)) {
        *ret = MHD_CONTENT_READER_END_WITH_ERROR;
        return false;
    }
    gen_choice *g = &j->ch[0];
    if (g->text.n && !srv_buf_append(&j->out, g->text.p, g->text.n)) {
        *ret = MHD_CONTENT_READER_END_WITH_ERROR;
        return false;
    }
    g->text.n = 0;
    log_counts(&j->log, j);
    if (j->res[0].done && j->res[0].status != VKI_OK) {
        *ret = MHD_CONTENT_READER_END_WITH_ERROR;
        return false;
    }
    if (j->res[0].done) j->phase = 2;
    else if (!j->out.n) {
        if (srv_client_gone(j->c)) {
            cancel_all(j);
            *ret = MHD_CONTENT_READER_END_WITH_ERROR;
            return false;
        }
        if (srv_pause(j->cn)) {
            *ret = 0;
            return false;
        }
        if (atomic_load(&j->srv->stopping)) {
            *ret = MHD_CONTENT_READER_END_WITH_ERROR;
            return false;
        }
    }
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gen_job *j = cls;
    while (j->plain && j->pos_out == j->out.n) {
        j->pos_out = j->out.n = 0;
        ssize_t ret;
        if (!plain_fill(j, &ret)) return ret;
    }
    while (j->pos_out == j->out.n) {
        j->pos_out = j->out.n = 0;
        if (j->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (j->phase == 1) {
            out_append(j, "data: [DONE]\n\n", "", "");
            j->phase = 2;
            continue;
        }
        /* Everything new at once; with nothing, the connection is suspended
         * until a prompt's next token or end resumes it (returning 0
         * without suspending would have MHD call again at once). */
        srv_arm(j->cn);
        for (int32_t k = 0; k < j->n_req; k++)
            if (!j->res[k].done && !poll_prompt(j, k)) return MHD_CONTENT_READER_END_WITH_ERROR;
        int32_t sent = flush_chunks(j);
        if (sent < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        log_counts(&j->log, j);
        int32_t bad = failed_prompt(j);
        if (bad >= 0) {
            const vki_job_result *res = &j->res[bad];
            cancel_all(j);
            cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(e, "message", res->message[0] ? res->message : vki_status_str(res->status));
            cJSON_AddStringToObject(e, "type", res->status == VKI_ERR_TIMEOUT ? "timeout_error" : "server_error");
            cJSON_AddStringToObject(e, "code", vki_status_str(res->status));
            out_event(j, o);
            j->phase = 1;
        } else if (all_done(j)) {
            if (j->include_usage) {
                cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
                cJSON_AddArrayToObject(o, "choices");
                cJSON_AddItemToObject(o, "usage", usage_json(j));
                out_event(j, o);
            }
            j->phase = 1;
        } else if (!sent) {
            if (srv_client_gone(j->c)) {
                cancel_all(j);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (srv_pause(j->cn)) return 0;
            if (atomic_load(&j->srv->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
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
    /* no callback of a job (its renderer included) runs once it is released */
    for (int32_t k = 0; j->jobs && k < j->n_req; k++) vki_job_release(j->jobs[k]);
    srv_waker_drop(j->waker); /* after the releases: no hook runs any more */
    srv_gen_render_free(j->rx);
    for (int32_t i = 0; j->ch && i < j->n_req * j->n; i++) {
        free(j->ch[i].text.p);
        free(j->ch[i].all.p);
        free(j->ch[i].toks);
    }
    free(j->jobs);
    free(j->polled);
    free(j->ch);
    free(j->res);
    free(j->model);
    free(j->out.p);
    free(j);
}

static gen_job *job_new(srv_conn *cn, int32_t model, bool chat, int32_t n_req, const srv_gen_req *f)
{
    gen_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    size_t nc = (size_t)n_req * (size_t)f->n;
    vki_service_model_info info;
    vki_service_get_model_info(cn->srv->svc, model, &info);
    j->jobs = calloc((size_t)n_req, sizeof *j->jobs);
    j->res = calloc((size_t)n_req, sizeof *j->res);
    j->polled = calloc((size_t)f->n, sizeof *j->polled);
    j->ch = calloc(nc, sizeof *j->ch);
    j->model = strdup(info.id);
    j->n_req = n_req;
    j->n = f->n;
    j->served = model;
    if (!j->jobs || !j->res || !j->polled || !j->ch || !j->model) {
        job_free(j);
        return NULL;
    }
    j->srv = cn->srv;
    j->c = cn->c;
    j->chat = chat;
    j->include_usage = f->include_usage;
    j->logprobs = f->gp.logprobs;
    j->tools = chat && f->tools.choice != SRV_TOOL_NONE;
    j->tool_parallel = f->tools.parallel;
    /* the response id is the request's, so the log line names it */
    snprintf(j->id, sizeof j->id, "%s-%llu", chat ? "chatcmpl" : cn->route == SRV_ROUTE_GENERATE ? "gen" : "cmpl",
             (unsigned long long)cn->n);
    snprintf(cn->log.id, sizeof cn->log.id, "%s", j->id);
    return j;
}

/* The whole answer of a request that is done. */
static cJSON *answer_json(gen_job *j)
{
    cJSON *o = envelope(j, j->chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    for (int32_t i = 0; i < j->n_req * j->n; i++) {
        gen_choice *g = &j->ch[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        cJSON_AddNumberToObject(c, "index", i);
        const char *text = g->text.n ? g->text.p : "";
        int n_calls = 0;
        if (j->chat) {
            cJSON *msg = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            size_t content = 0;
            srv_tool_call *calls = NULL;
            if (j->tools && (n_calls = choice_calls(j, g, &content, &calls)) > 0) {
                /* the text before the calls, or null as OpenAI sends it */
                char *before = content ? strndup(g->all.p, content) : NULL;
                if (before) cJSON_AddStringToObject(msg, "content", before);
                else cJSON_AddNullToObject(msg, "content");
                free(before);
                cJSON_AddItemToObject(msg, "tool_calls", tool_calls_json(j, i, calls, n_calls, false));
            } else {
                n_calls = 0;
                cJSON_AddStringToObject(msg, "content", j->tools ? (g->all.n ? g->all.p : "") : text);
            }
            srv_tool_calls_free(calls, n_calls > 0 ? n_calls : 0);
        } else {
            cJSON_AddStringToObject(c, "text", text);
        }
        cJSON_AddItemToObject(c, "logprobs", take_logprobs(j, g));
        cJSON_AddStringToObject(c, "finish_reason", n_calls ? "tool_calls" : finish_reason(g));
    }
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return o;
}

/* ===== The plan ============================================================ */

/* A generation while it waits: the fields, the prompts, the models the
 * service may try in order, the jobs in flight. Borrows from cn->json
 * (prompts, stop strings) until the jobs are submitted (they copy). */
typedef struct gen_plan {
    bool         chat, plain;
    srv_gen_req  f;          /* the parsed request: a completion's prompts; chat renders per model */
    int32_t      model, order[16], n_try;
    gen_job     *j;          /* the jobs in flight */
    srv_auto    *autoq;      /* model auto: the query's embedding in flight */
} gen_plan;

static void plan_free(srv_conn *cn, gen_plan *p)
{
    if (p->j || p->autoq) srv_unwatch(cn); /* not a stream's, whose jobs went to its answer */
    job_free(p->j); /* releases (and so cancels) the jobs */
    srv_auto_drop(p->autoq);
    srv_gen_req_free(&p->f);
    free(p);
}

/* srv_wait's drop: the connection ended first (it has unwatched). */
static void plan_drop(void *state)
{
    gen_plan *p = state;
    job_free(p->j);
    srv_auto_drop(p->autoq);
    srv_gen_req_free(&p->f);
    free(p);
}

/* The answer to a job that ended with an error: a renderer's refusal as it
 * was found, else the fallback triggers' (srv_send_job_error). */
static enum MHD_Result send_job_failure(srv_conn *cn, const gen_job *j, const vki_job_result *res)
{
    const srv_fb_error *e = j->rx ? srv_gen_render_error(j->rx) : NULL;
    if (e) return srv_send_error(cn, e->http, e->code, e->retry, "%s", e->msg);
    return srv_send_job_error(cn, res);
}

/* Submits one job per prompt over the plan's models (the service renders a
 * chat for each it tries) and waits; answers at once only when the request
 * itself is unusable for the first model that takes it. */
static enum MHD_Result gen_submit(srv_conn *cn, gen_plan *p, bool *wait)
{
    const srv_gen_req *f = &p->f;
    const int32_t n_prompts = p->chat ? 1 : f->n_prompts;
    gen_job *j = p->j = job_new(cn, p->model, p->chat, n_prompts, f);
    if (j) j->plain = p->plain;
    if (!j || (p->chat && !(j->rx = srv_gen_render_new(cn, cn->json)))) {
        plan_free(cn, p);
        return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    }
    if (p->plain) cn->log.priority = vki_priority_name(f->prio); /* final now, `auto` decided */
    vki_gen_params xp = vki_gen_default_params();
    xp.n_choices = f->n;
    if (p->chat) {
        xp.render = srv_gen_render_fn;
        xp.render_user = j->rx;
    }
    vki_request_params rp = vki_request_default_params();
    rp.priority = f->prio;
    /* The service's deadline counts from the submit: the request's has run since it arrived. */
    rp.deadline_ms = f->deadline_ms > 0 ? VKI_MAX(f->deadline_ms - vki_time_ms(), 1e-3) : 0;
    rp.candidates = p->order;
    rp.n_candidates = p->n_try;
    rp.refuse_opening = true; /* answered now (503 model_loading), as a client expects */
    for (int32_t k = 0; k < n_prompts; k++) {
        const srv_prompt *pr = p->chat ? NULL : &f->prompts[k];
        vki_status st = p->chat ? vki_service_chat(cn->srv->svc, NULL, NULL, 0, &xp, &f->gp, &rp, &j->jobs[k])
                                : vki_service_generate_ex(cn->srv->svc, NULL, pr->text, pr->ids, pr->n_ids, &xp,
                                                          &f->gp, &rp, &j->jobs[k]);
        if (st != VKI_OK) {
            /* the prompts queued before this one go too (plan_free) */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", vki_last_error());
            enum MHD_Result ret = j->rx && srv_gen_render_error(j->rx) ? send_job_failure(cn, j, NULL)
                                                                        : srv_send_status(cn, st, msg, 0);
            plan_free(cn, p);
            return ret;
        }
        if (!srv_watch(cn, j->jobs[k])) {
            plan_free(cn, p);
            return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        }
        if (k == 0 && n_prompts > 1) {
            /* the other prompts go where the first went: one model answers them all */
            vki_job_result r0;
            vki_job_get_result(j->jobs[0], &r0);
            const int32_t at = r0.model_index;
            for (int32_t c = 0; r0.queued && c < p->n_try; c++)
                if (p->order[c] == at) {
                    rp.candidates = p->order + c;
                    rp.n_candidates = p->n_try - c;
                }
        }
    }
    vki_job_result last;
    vki_job_get_result(j->jobs[n_prompts - 1], &last); /* the last prompt queued waits longest */
    srv_queue_note_job(cn, &last);
    *wait = true;
    return MHD_YES;
}

/* The answer once a model serves: a stream (headers with the first text)
 * or the whole JSON. Takes j. */
static enum MHD_Result gen_answer(srv_conn *cn, gen_job *j, bool stream)
{
    enum MHD_Result ret;
    if (stream) {
        /* Headers go out with the first text; the rest follows as it comes,
         * the connection still woken by the jobs' news (srv_watch). The
         * headers name the model: no other may take over now. */
        for (int32_t k = 0; k < j->n_req; k++) vki_job_stay(j->jobs[k]);
        /* the response owns the jobs now: it may go before or after the connection ends */
        j->waker = srv_watch_handover(cn);
        srv_drop_json(cn); /* nothing borrows from it any more (the renderer has its copy) */
        /* The first bytes: an SSE comment with the queue place (PLAIN: the
         * headers alone say it; the text read so far is sent by the reader). */
        if (!j->plain) {
            srv_buf_printf(&j->out, ": queue position=%d eta_s=%.1f\n\n", cn->queue_pos, cn->queue_eta_s);
            if (flush_chunks(j) < 0) j->phase = 2;
        }
        j->cn = cn;
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, job_free);
        if (!r) {
            srv_unwatch(cn);
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                j->plain ? "text/plain; charset=utf-8" : "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "X-Vkinfer-Served-By", j->model);
        if (cn->route_hdr[0]) MHD_add_response_header(r, "X-Vkinfer-Route", cn->route_hdr);
        srv_queue_headers(cn, r);
        /* The stream outlives the handler: its line is written when it ends. */
        cn->log.status = 200;
        j->log = cn->log;
        j->streaming = cn->streamed = true;
        ret = srv_queue(cn, 200, r);
        if (ret == MHD_NO) srv_unwatch(cn); /* the response, and j with it, goes now */
        MHD_destroy_response(r);
        srv_count(cn->srv, cn->route, 200);
        return ret;
    }
    if (j->plain) {
        char *text = strdup(j->ch[0].text.n ? j->ch[0].text.p : "");
        srv_unwatch(cn);
        job_free(j);
        if (!text) return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return srv_send_text(cn, 200, text, "text/plain; charset=utf-8");
    }
    cJSON *o = answer_json(j);
    srv_unwatch(cn);
    job_free(j);
    return srv_send_json(cn, 200, o);
}

/* The handler's continuation on each wake-up: reads what every prompt has
 * produced until the jobs are done (or, for a stream, prompt 0 has text);
 * the service has passed a try that failed before any output to the next
 * model meanwhile. */
static enum MHD_Result gen_step(srv_conn *cn, void *state, bool *wait)
{
    gen_plan *p = state;
    if (p->autoq) {
        /* model auto: the query's embedding first, then the decision */
        enum MHD_Result ret = MHD_NO;
        int r = srv_auto_step(cn, &p->autoq, p->order, &p->n_try, &ret);
        if (r == 2) {
            *wait = true;
            return MHD_YES;
        }
        if (r == 0) {
            plan_free(cn, p);
            return ret;
        }
        p->model = p->order[0];
        return gen_submit(cn, p, wait);
    }
    gen_job *j = p->j;
    for (int32_t k = 0; k < j->n_req; k++)
        if (!j->res[k].done && !poll_prompt(j, k)) {
            plan_free(cn, p);
            return MHD_NO; /* out of memory */
        }
    log_counts(&cn->log, j);
    srv_queue_note_job(cn, &j->res[j->n_req - 1]); /* a later try's queue, if one came */
    int32_t bad = failed_prompt(j);
    /* A long wait (a model waiting for its turn on the device, a deep
     * queue): the stream starts now, so the client sees its place at once;
     * errors then come as an error event, as after the first token (and no
     * other model is tried). */
    const bool early = p->f.stream && !p->plain && cn->queue_eta_s >= EARLY_STREAM_S;
    bool ready = bad >= 0 || early ||
                 (p->f.stream ? j->res[0].done || j->res[0].n_generated > 0 : all_done(j));
    if (!ready) {
        if (srv_client_gone(cn->c)) {
            plan_free(cn, p); /* cancels */
            return MHD_NO;    /* the client is gone: close */
        }
        *wait = true;
        return MHD_YES;
    }
    if (bad >= 0) {
        enum MHD_Result ret = send_job_failure(cn, j, &j->res[bad]);
        plan_free(cn, p);
        return ret;
    }
    /* by index: a model removed while it served keeps it (and its info) */
    const int32_t i = j->res[0].model_index;
    vki_service_model_info si;
    const vki_status st = vki_service_get_model_info(cn->srv->svc, i, &si);
    if (st != VKI_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vki_last_error());
        plan_free(cn, p);
        return srv_send_status(cn, st, msg, 0);
    }
    if (i != p->model) srv_fb_count(cn->srv, p->model, i, j->res[0].fallback);
    cn->served_by = cn->log.model = si.id; /* valid until vki_service_destroy */
    j->served = i;
    free(j->model);
    if (!(j->model = strdup(si.id))) {
        plan_free(cn, p);
        return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    }
    if (j->rx) j->tool_fmt = srv_gen_render_format(j->rx); /* the serving model's (its render was the last) */
    const bool stream = p->f.stream;
    p->j = NULL;
    plan_free(cn, p);
    return gen_answer(cn, j, stream);
}

enum MHD_Result srv_route_generate(srv_conn *cn, const cJSON *body, bool chat)
{
    return srv_route_generate_as(cn, body, chat ? SRV_GEN_CHAT : SRV_GEN_COMPLETION, -1);
}

enum MHD_Result srv_route_generate_as(srv_conn *cn, const cJSON *body, srv_gen_shape shape, int req_prio)
{
    enum MHD_Result ret = MHD_NO;
    /* model auto: decided once the fields are read (then the chosen model's priority applies) */
    const bool autoq = srv_auto_asked(body);
    const bool chat = shape == SRV_GEN_CHAT;
    int32_t model = autoq ? cn->srv->cfg->svc.n_models : srv_pick_serving(cn, body, VKI_MODEL_KIND_CHAT, &ret);
    if (model < 0) return ret;
    gen_plan *p = calloc(1, sizeof *p);
    if (!p) return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    p->chat = chat;
    p->plain = shape == SRV_GEN_PLAIN;
    p->model = model;
    if (!srv_parse_generate(cn, body, shape, model, &p->f, &ret)) {
        free(p);
        return ret;
    }
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    const bool own_prio = req_prio >= 0 && (!jp || cJSON_IsNull(jp));
    if (own_prio) p->f.prio = (vki_priority)req_prio;
    /* Candidates are ranked by room for about a token per 4 bytes of body, and the completion. */
    vki_request_needs need = {.n_tokens = (int32_t)VKI_MIN(cn->body.n / 4 + (size_t)VKI_MAX(p->f.gp.n_predict, 0),
                                                           1u << 30)};
    if (autoq) {
        /* a class the request asked for (service_type) is kept, as a priority field is */
        int r = srv_auto_begin(cn, body, VKI_MODEL_KIND_CHAT, need.n_tokens, own_prio ? NULL : &p->f.prio, &p->autoq, p->order,
                               &p->n_try, &ret);
        if (r == 0) {
            plan_free(cn, p);
            return ret;
        }
        if (r == 2) return srv_wait(cn, gen_step, plan_drop, p); /* the query's embedding runs */
        p->model = p->order[0];
    } else {
        p->n_try = srv_fb_plan(cn, body, model, &need, p->order, 16, &ret);
    }
    if (!p->n_try) {
        plan_free(cn, p);
        return ret;
    }
    /* The jobs are submitted here; then each wake-up runs gen_step. */
    bool wait = false;
    ret = gen_submit(cn, p, &wait);
    if (!wait) return ret;
    return srv_wait(cn, gen_step, plan_drop, p);
}
