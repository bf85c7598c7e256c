/*
 * service_chat.c: generation jobs beyond a text prompt (vkinfer.h's
 * "Generation jobs"): vki_service_chat, whose prompt each candidate model
 * renders with its own template when its try comes (the messages' content
 * kept literal), vki_service_generate_ex (token ids, n choices), and the
 * submit of one try (svc_submit_gen). The tries themselves are
 * service_job.c's; reading choices and tokens is service_poll.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/service/service_internal.h"
#include "engine/tokenizer/chat_template.h"
#include "error.h"
#include "util.h"

_Static_assert(sizeof(vki_prompt_span) == sizeof(vki_text_span), "vki_prompt_span mirrors vki_text_span");

vki_gen_params vki_gen_default_params(void) { return (vki_gen_params){.n_choices = 1}; }

const vki_model_file *svc_model_file(vki_service *svc, int32_t i)
{
    return svc && i >= 0 && i < sched_n_models(svc->s) ? sched_model_file(svc->s, i) : NULL;
}

const vki_tokenizer *svc_model_tokenizer(vki_service *svc, int32_t i)
{
    return svc && i >= 0 && i < sched_n_models(svc->s) ? sched_model_tokenizer(svc->s, i) : NULL;
}

int32_t vki_service_token_piece(vki_service *svc, int32_t i, int32_t id, char *buf, int32_t size)
{
    const vki_tokenizer *tok = svc_model_tokenizer(svc, i);
    if (!tok || !buf || size <= 0 || id < 0 || id >= vki_tokenizer_n_vocab(tok)) return -1;
    return vki_tokenizer_piece(tok, id, buf, size, true);
}

void svc_gen_free(vki_job *j)
{
    for (int32_t k = 0; j->msgs && k < j->n_msgs; k++) {
        free((char *)j->msgs[k].role);
        free((char *)j->msgs[k].content);
    }
    free(j->msgs);
    free(j->tools_json);
    free(j->chat_template);
    free(j->ids);
    for (int32_t c = 0; j->poll_outs && c < j->xp.n_choices; c++) {
        free(j->poll_text[c]);
        free(j->poll_toks[c]);
    }
    free(j->poll_outs);
    free(j->poll_text);
    free(j->poll_toks);
}

/* ===== Rendering one candidate's prompt ================================== */

/* The messages as the JSON renderer takes them (tools need it). */
static cJSON *messages_json(const vki_job *j)
{
    cJSON *a = cJSON_CreateArray();
    for (int32_t k = 0; a && k < j->n_msgs; k++) {
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddStringToObject(m, "role", j->msgs[k].role) ||
            !cJSON_AddStringToObject(m, "content", j->msgs[k].content)) {
            cJSON_Delete(m);
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, m);
    }
    return a;
}

/* The service's renderer: model i's template (or the job's family), ChatML
 * for a file without one; tools through the JSON renderer. */
static vki_status render_builtin(vki_job *j, int32_t i, vki_generate_params *gp, char **prompt, vki_text_span **spans,
                                 size_t *n_spans)
{
    const vki_model_file *file = svc_model_file(j->svc, i);
    const vki_tokenizer *tok = svc_model_tokenizer(j->svc, i);
    if (!file || !tok) return vki_fail(VKI_ERR_UNSUPPORTED, "model %d has no file open (it stopped serving)", i);
    vki_status st;
    if (j->tools_json) {
        cJSON *tools = cJSON_Parse(j->tools_json), *msgs = messages_json(j);
        st = !tools || !msgs ? vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory building the conversation")
                             : vki_chat_apply_json(file, j->chat_template, msgs, tools, NULL, true, prompt, spans,
                                                   n_spans);
        cJSON_Delete(tools);
        cJSON_Delete(msgs);
    } else {
        /* vki_chat_msg is role and content, as vki_chat_message */
        vki_chat_msg *m = calloc((size_t)j->n_msgs, sizeof *m);
        if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory building the conversation");
        for (int32_t k = 0; k < j->n_msgs; k++) m[k] = (vki_chat_msg){j->msgs[k].role, j->msgs[k].content};
        st = vki_chat_apply_spans(file, j->chat_template, m, (size_t)j->n_msgs, true, prompt, spans, n_spans);
        /* A model without a template gets ChatML, as llama.cpp's server does. */
        if (st == VKI_ERR_NOT_FOUND && !j->chat_template)
            st = vki_chat_apply_spans(file, "chatml", m, (size_t)j->n_msgs, true, prompt, spans, n_spans);
        free(m);
    }
    if (st != VKI_OK) return st;
    /* The rendered text carries its own special tokens, BOS included when
     * the template writes it. */
    char bos[64];
    const int32_t nb = vki_tokenizer_bos(tok) >= 0
                           ? vki_tokenizer_piece(tok, vki_tokenizer_bos(tok), bos, sizeof bos - 1, false) : 0;
    gp->parse_special = true;
    gp->add_special = !(nb > 0 && !strncmp(*prompt, bos, (size_t)nb));
    return VKI_OK;
}

/* The caller's renderer, on the dispatcher marked as a callback (so
 * vki_job_release waits for it) and never once released. */
static vki_status render_hook(vki_job *j, int32_t i, vki_generate_params *gp, char **prompt, vki_text_span **spans,
                              size_t *n_spans)
{
    const bool dispatcher = svc_on_dispatcher(j->svc);
    if (dispatcher) {
        pthread_mutex_lock(&j->mu);
        const bool released = atomic_load(&j->news_off);
        j->in_callback = !released;
        pthread_mutex_unlock(&j->mu);
        if (released) return vki_fail(VKI_ERR_CANCELLED, "the job was released");
    }
    vki_prompt_span *lit = NULL;
    vki_status st = j->xp.render(i, gp, prompt, &lit, n_spans, j->xp.render_user);
    *spans = (vki_text_span *)lit;
    if (dispatcher) {
        pthread_mutex_lock(&j->mu);
        j->in_callback = false;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    if (st == VKI_OK && !*prompt) st = vki_fail(VKI_ERR_INTERNAL, "the job's renderer gave no prompt for model %d", i);
    return st;
}

vki_status svc_submit_gen(vki_job *j, int32_t i, sched_request **r, double *eta_s, bool *render_failed)
{
    vki_generate_params gp = j->gp;
    sched_gen_input in = {.prompt = j->prompt, .ids = j->ids, .n_ids = j->n_ids, .n_choices = j->xp.n_choices};
    char *rendered = NULL;
    vki_text_span *spans = NULL;
    size_t n_spans = 0;
    if (j->chat) {
        vki_status st = j->xp.render ? render_hook(j, i, &gp, &rendered, &spans, &n_spans)
                                     : render_builtin(j, i, &gp, &rendered, &spans, &n_spans);
        if (st != VKI_OK) {
            free(rendered);
            free(spans);
            /* a model with no file open is a refusal of that model, not of the conversation */
            *render_failed = st != VKI_ERR_UNSUPPORTED || j->xp.render;
            return st;
        }
        in.prompt = rendered;
        in.literal = spans;
        in.n_literal = n_spans;
    }
    vki_status st = sched_submit_generate_input(j->svc->s, i, &in, &gp, j->prio, j->deadline, r, eta_s);
    free(rendered);
    free(spans);
    return st;
}

/* ===== Submit ============================================================= */

static vki_status copy_gen_params(vki_job *j, const vki_gen_params *xp)
{
    j->xp = *xp;
    if (j->xp.n_choices == 0) j->xp.n_choices = 1;
    j->xp.tools_json = j->xp.chat_template = NULL;
    if ((xp->tools_json && !(j->tools_json = strdup(xp->tools_json))) ||
        (xp->chat_template && !(j->chat_template = strdup(xp->chat_template))))
        return VKI_ERR_OUT_OF_MEMORY;
    j->xp.tools_json = j->tools_json;
    j->xp.chat_template = j->chat_template;
    j->news_fn = xp->on_news;
    j->news_user = xp->news_user;
    return VKI_OK;
}

static vki_status check_gen_params(const vki_gen_params *xp, const char *fn)
{
    if (xp->n_choices < 0 || xp->n_choices > 64)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: n_choices %d: expected 1 to 64 (0 = 1)", fn, xp->n_choices);
    if (xp->tools_json) {
        cJSON *t = cJSON_Parse(xp->tools_json);
        const bool ok = cJSON_IsArray(t);
        cJSON_Delete(t);
        if (!ok) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: tools_json: expected a JSON array of tools", fn);
    }
    return VKI_OK;
}

/* The job for a generation request, its input copied; submit (the first
 * try) follows. */
static vki_status gen_job(vki_service *svc, const char *model, const char *prompt, const vki_gen_params *xp,
                          const vki_generate_params *gp, const vki_request_params *rp, const char *fn, vki_job **out)
{
    const vki_gen_params xdef = vki_gen_default_params();
    const vki_generate_params gdef = vki_generate_default_params();
    const vki_request_params rdef = vki_request_default_params();
    if (!xp) xp = &xdef;
    if (!gp) gp = &gdef;
    if (!rp) rp = &rdef;
    VKI_TRY(check_gen_params(xp, fn));
    int32_t i;
    VKI_TRY(svc_check_request(svc, model, SCHED_KIND_CHAT, rp, fn, &i));
    vki_job *j = svc_job_new(svc, false, rp, i);
    if (!j || !svc_job_copy_gen(j, prompt, gp) || copy_gen_params(j, xp) != VKI_OK) {
        if (j) svc_job_free(j);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    *out = j;
    return VKI_OK;
}

static vki_request_needs needs(const vki_request_params *rp, const vki_generate_params *gp, size_t bytes)
{
    const int32_t n_predict = gp ? VKI_MAX(gp->n_predict, 0) : 0;
    return (vki_request_needs){.capabilities = rp ? rp->capabilities : 0,
                               .n_tokens = (int32_t)VKI_MIN(bytes / 4 + (size_t)n_predict, 1u << 30)};
}

vki_status vki_service_chat(vki_service *svc, const char *model, const vki_chat_message *messages, int32_t n_messages,
                            const vki_gen_params *xp, const vki_generate_params *gp, const vki_request_params *rp,
                            vki_job **out)
{
    static const char fn[] = "vki_service_chat";
    if (out) *out = NULL;
    const bool hook = xp && xp->render;
    if (!svc || !out || (!hook && (!messages || n_messages <= 0)) || n_messages < 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc, out and messages (n_messages > 0) are required "
                        "(messages may be NULL with a renderer)", fn);
    size_t bytes = 0;
    for (int32_t k = 0; messages && k < n_messages; k++) {
        if (!messages[k].role || !messages[k].role[0])
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: messages[%d].role: expected a non-empty string", fn, k);
        bytes += messages[k].content ? strlen(messages[k].content) : 0;
    }
    vki_job *j;
    VKI_TRY(gen_job(svc, model, NULL, xp, gp, rp, fn, &j));
    j->chat = true;
    if (messages && n_messages > 0) {
        bool ok = (j->msgs = calloc((size_t)n_messages, sizeof *j->msgs)) != NULL;
        for (j->n_msgs = 0; ok && j->n_msgs < n_messages; j->n_msgs++) {
            const vki_chat_message *m = &messages[j->n_msgs];
            j->msgs[j->n_msgs].role = strdup(m->role);
            j->msgs[j->n_msgs].content = strdup(m->content ? m->content : "");
            ok = j->msgs[j->n_msgs].role && j->msgs[j->n_msgs].content;
        }
        if (!ok) {
            svc_job_free(j);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        }
    }
    const vki_request_needs need = needs(rp, gp, bytes + (j->tools_json ? strlen(j->tools_json) : 0));
    return svc_job_submit(svc, j, &need, out);
}

vki_status vki_service_generate_ex(vki_service *svc, const char *model, const char *prompt, const int32_t *ids,
                                   int32_t n_ids, const vki_gen_params *xp, const vki_generate_params *gp,
                                   const vki_request_params *rp, vki_job **out)
{
    static const char fn[] = "vki_service_generate_ex";
    if (out) *out = NULL;
    if (!svc || !out || (!prompt && (!ids || n_ids <= 0)))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc, out and a prompt or ids (n_ids > 0) are required", fn);
    if (xp && (xp->tools_json || xp->chat_template || xp->render))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: tools_json, chat_template and render are for "
                        "vki_service_chat", fn);
    vki_job *j;
    VKI_TRY(gen_job(svc, model, prompt, xp, gp, rp, fn, &j));
    if (!prompt) {
        if (!(j->ids = malloc(sizeof *j->ids * (size_t)n_ids))) {
            svc_job_free(j);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        }
        memcpy(j->ids, ids, sizeof *j->ids * (size_t)n_ids);
        j->n_ids = n_ids;
    }
    const vki_request_needs need = needs(rp, gp, prompt ? strlen(prompt) : (size_t)n_ids * 4);
    return svc_job_submit(svc, j, &need, out);
}
