/* fuzz_http.c: libFuzzer target for the request bodies of POST
 * /v1/chat/completions, /v1/completions, /v1/embeddings and the legacy
 * /generate, through the functions the routes call (server/request.c,
 * routes_legacy.c): the fields into the parsed request
 * (srv_parse_generate_legacy, srv_parse_generate, srv_parse_embeddings),
 * then for chat the
 * messages, tools and template into the rendered prompt (srv_render_chat,
 * srv_tools_grammar), up to but not including the submission. No
 * scheduler: the config names the build's generated chat model twice (its
 * own template, and llama3's) and a generated BERT model; the chat model's
 * file and tokenizer are opened once per process.
 * Checks: a body is accepted or answered with an error status, never both
 * or neither; what is accepted is within the ranges the README gives; the
 * rendered prompt's spans are ordered and inside it; /generate keeps one
 * prompt (the body's), a class from service_type, and a session_id that
 * the log line can print.
 * Input: [route] body; route % 4: chat, completions, embeddings, /generate;
 * for chat (route / 4) % 2 picks the model (its own template, or llama3). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "server/srv_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                        \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);           \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

static srv_config      cfg;
static srv_server      srv;
static vki_model_file *chat_file;
static vki_tokenizer  *chat_tok;
static bool            ready;

static void quiet(const char *msg, void *user) { (void)msg, (void)user; }

static void teardown(void)
{
    vki_tokenizer_destroy(chat_tok);
    vki_file_close(chat_file);
    srv_config_deinit(&cfg);
}

static void setup(void)
{
    char yaml[4096], err[512];
    snprintf(yaml, sizeof yaml,
             "models:\n"
             "  - { id: chat, path: \"%s\", kind: chat }\n"
             "  - { id: chat-llama3, path: \"%s\", kind: chat, chat_template: llama3, priority: batch }\n"
             "  - { id: embed, path: \"%s\", kind: embedding }\n",
             VKI_FUZZ_MODEL, VKI_FUZZ_MODEL, VKI_FUZZ_EMBED_MODEL);
    srv_config_init(&cfg);
    if (srv_config_parse(&cfg, "fuzz.yaml", "/", yaml, strlen(yaml), err, sizeof err) != VKI_OK ||
        srv_config_resolve(&cfg, err, sizeof err) != VKI_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        __builtin_trap();
    }
    if (vki_file_open(VKI_FUZZ_MODEL, &chat_file) != VKI_OK || vki_tokenizer_create(chat_file, &chat_tok) != VKI_OK) {
        fprintf(stderr, "fuzz_http: %s: %s\n", VKI_FUZZ_MODEL, vki_last_error());
        __builtin_trap();
    }
    vki_set_warn_handler(quiet, NULL);
    srv.cfg = &cfg;
    srv.created = time(NULL);
    atexit(teardown);
    ready = true;
}

static void check_generate(const srv_gen_req *rq, srv_gen_shape shape)
{
    const bool chat = shape == SRV_GEN_CHAT;
    const vki_generate_params *gp = &rq->gp;
    /* chat and /generate run to the end unless told */
    FZ_CHECK(gp->n_predict >= 0 && gp->n_predict <= 1 << 20 && (shape != SRV_GEN_COMPLETION || gp->n_predict >= 1));
    FZ_CHECK(gp->temperature >= 0 && gp->temperature <= 2 && gp->top_p > 0 && gp->top_p <= 1);
    FZ_CHECK(gp->top_k >= 0 && gp->min_p >= 0 && gp->min_p <= 1);
    FZ_CHECK(gp->presence_penalty >= -2 && gp->presence_penalty <= 2);
    FZ_CHECK(gp->frequency_penalty >= -2 && gp->frequency_penalty <= 2);
    FZ_CHECK(gp->n_top_logprobs >= 0 && gp->n_top_logprobs <= VKI_MAX_TOP_LOGPROBS);
    FZ_CHECK(rq->n >= 1 && rq->n <= 128);
    FZ_CHECK(!rq->include_usage || rq->stream);
    FZ_CHECK(rq->deadline_ms >= 0);
    FZ_CHECK(!rq->grammar || gp->grammar == rq->grammar); /* json_object: a static text */
    int n_stop = 0;
    if (gp->stop) {
        FZ_CHECK(gp->stop == rq->stops);
        while (gp->stop[n_stop]) n_stop++;
        FZ_CHECK(n_stop >= 1 && n_stop <= SRV_MAX_STOPS);
    }
    if (chat) {
        FZ_CHECK(!rq->prompts);
        return;
    }
    FZ_CHECK(rq->tools.choice == SRV_TOOL_NONE);
    FZ_CHECK(rq->prompts && rq->n_prompts >= 1 && rq->n_prompts <= 64);
    if (shape == SRV_GEN_PLAIN) /* no choices, no usage chunk: one prompt, one answer */
        FZ_CHECK(rq->n_prompts == 1 && rq->prompts[0].text && rq->prompts[0].text[0] && rq->n == 1 &&
                 !rq->include_usage && !gp->logprobs);
    for (int32_t k = 0; k < rq->n_prompts; k++) {
        const srv_prompt *p = &rq->prompts[k];
        FZ_CHECK(!p->text == !rq->prompts[0].text); /* never mixed */
        if (p->text) continue;
        FZ_CHECK(p->ids && p->n_ids >= 1);
        for (int32_t i = 0; i < p->n_ids; i++) FZ_CHECK(p->ids[i] >= 0);
    }
}

/* Renders as gen_submit does for one candidate model. */
static bool render(srv_conn *cn, const cJSON *body, srv_gen_req *rq, int32_t model, enum MHD_Result *ret)
{
    char *prompt = NULL, *grammar = NULL;
    vki_text_span *spans = NULL;
    size_t n_spans = 0;
    srv_tool_format fmt = SRV_TOOLS_GENERIC;
    vki_generate_params gp = rq->gp;
    bool ok = srv_render_chat(cn, body, &rq->tools, chat_file, chat_tok, cfg.svc.models[model].chat_template, &gp, &prompt,
                              &spans, &n_spans, &fmt, ret);
    FZ_CHECK(ok == !!prompt);
    ok = ok && srv_tools_grammar(cn, &rq->tools, fmt, &grammar, ret);
    if (ok) {
        FZ_CHECK(prompt && gp.parse_special);
        size_t len = strlen(prompt), at = 0;
        for (size_t k = 0; k < n_spans; k++) {
            FZ_CHECK(spans[k].off >= at && spans[k].off + spans[k].len <= len);
            at = spans[k].off + spans[k].len;
        }
        /* a forced call comes with its grammar; only then */
        FZ_CHECK(!grammar == !(rq->tools.choice == SRV_TOOL_REQUIRED || rq->tools.choice == SRV_TOOL_NAMED));
    }
    free(prompt);
    free(spans);
    free(grammar);
    return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!ready) setup();
    return 0;
}

/* POST /generate: its own fields, then the PLAIN generation's, as
 * srv_route_generate_legacy and srv_route_generate_as read them. */
static bool legacy(srv_conn *cn, const cJSON *body, enum MHD_Result *ret)
{
    int prio = 7;
    if (!srv_parse_generate_legacy(cn, body, &prio, ret)) return false;
    FZ_CHECK(prio >= -1 && prio <= VKI_PRIORITY_BATCH);
    /* the log line prints the id between quotes as it is */
    const char *sid = cn->log.session;
    FZ_CHECK(strlen(sid) < sizeof cn->log.session);
    for (const char *c = sid; *c; c++) FZ_CHECK(*c > ' ' && *c < 127 && *c != '"' && *c != '\\');
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    FZ_CHECK(cJSON_IsString(jp) && jp->valuestring[0]);
    srv_gen_req rq;
    if (!srv_parse_generate(cn, body, SRV_GEN_PLAIN, 0, &rq, ret)) {
        FZ_CHECK(!rq.prompts && !rq.grammar);
        return false;
    }
    check_generate(&rq, SRV_GEN_PLAIN);
    FZ_CHECK(rq.prompts[0].text == jp->valuestring);
    FZ_CHECK(cn->log.status == 0);
    srv_gen_req_free(&rq);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) setup();
    if (size < 1) return 0;
    const int route = data[0] % 4;
    const char *end = NULL;
    /* as http.c's dispatch reads it */
    cJSON *body = cJSON_ParseWithLengthOpts((const char *)data + 1, size - 1, &end, false);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return 0;
    }
    srv_conn cn = {.srv = &srv, .c = NULL};
    enum MHD_Result ret;
    bool ok;
    if (route < 2) {
        const bool chat = route == 0;
        const int32_t model = chat ? (data[0] / 4) % 2 : 0;
        cn.route = chat ? SRV_ROUTE_CHAT : SRV_ROUTE_COMPLETIONS;
        srv_gen_req rq;
        ok = srv_parse_generate(&cn, body, chat ? SRV_GEN_CHAT : SRV_GEN_COMPLETION, model, &rq, &ret);
        if (ok) {
            check_generate(&rq, chat ? SRV_GEN_CHAT : SRV_GEN_COMPLETION);
            FZ_CHECK(cn.log.status == 0);
            if (chat) ok = render(&cn, body, &rq, model, &ret);
            srv_gen_req_free(&rq);
        } else {
            FZ_CHECK(!rq.prompts && !rq.grammar);
        }
    } else if (route == 3) {
        cn.route = SRV_ROUTE_GENERATE;
        ok = legacy(&cn, body, &ret);
    } else {
        cn.route = SRV_ROUTE_EMBEDDINGS;
        srv_embed_req rq;
        ok = srv_parse_embeddings(&cn, body, 2, &rq, &ret);
        if (ok) {
            FZ_CHECK(rq.n >= 1 && rq.n <= 2048 && rq.want_dim >= 0 && rq.want_dim <= 1 << 20);
            for (int32_t i = 0; i < rq.n; i++) FZ_CHECK(rq.texts[i]);
            srv_embed_req_free(&rq);
        } else {
            FZ_CHECK(!rq.texts);
        }
    }
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("VKI_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "route %d: %s %u\n", route, ok ? "accepted" : "refused", cn.log.status);
    /* accepted, or refused with an answer: never both, never neither */
    FZ_CHECK(ok == (cn.log.status == 0));
    FZ_CHECK(ok || cn.log.status == 400 || cn.log.status == 503);
    cJSON_Delete(body);
    return 0;
}
