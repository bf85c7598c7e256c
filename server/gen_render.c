/*
 * gen_render.c: a chat request's prompt rendered for each model the
 * service tries (vki_gen_params.render): the model's template, or its
 * config's, over the request's messages (request.c's srv_render_chat), its
 * tools and, for tool_choice required or named, the grammar of that
 * model's call format. It runs off the handler (on the service's
 * dispatcher for a fallback), so it keeps its own copy of the fields and
 * writes a refusal down as the HTTP answer the handler gives later.
 * Must not: touch the connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/service/service_internal.h" /* svc_model_file, svc_model_tokenizer */
#include "server/srv_internal.h"

/* What the renderer needs across the tries, which may come after the
 * request's JSON is gone (a stream drops it): the messages and tool fields
 * copied, the config of the request's time (retired configs stay readable),
 * and what the last render left: its tool format (the serving model's, as
 * the last try is the one that serves), its tool grammar, or its refusal as
 * the HTTP answer the handler gives. The service runs it on the submitting
 * thread first, later on its dispatcher, never after the job's release. */
struct srv_gen_render {
    srv_server       *srv;
    const srv_config *cfg;
    cJSON            *body;    /* {messages, tools, tool_choice, parallel_tool_calls} */
    srv_tool_req      tools;   /* into body */
    srv_tool_format   fmt;
    char             *grammar; /* tool_choice required / named, for the last model */
    bool              failed;
    srv_fb_error      err;
};

void srv_gen_render_free(srv_gen_render *x)
{
    if (!x) return;
    cJSON_Delete(x->body);
    free(x->grammar);
    free(x);
}

srv_gen_render *srv_gen_render_new(srv_conn *cn, const cJSON *body)
{
    static const char *const keys[] = {"messages", "tools", "tool_choice", "parallel_tool_calls"};
    srv_gen_render *x = calloc(1, sizeof *x);
    if (!x || !(x->body = cJSON_CreateObject())) {
        free(x);
        return NULL;
    }
    x->srv = cn->srv;
    x->cfg = cn->srv->cfg;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, keys[k]);
        cJSON *d = v ? cJSON_Duplicate(v, true) : NULL;
        if (v && !d) {
            srv_gen_render_free(x);
            return NULL;
        }
        if (d) cJSON_AddItemToObject(x->body, keys[k], d);
    }
    /* parsed once already from the same fields: this only points into the copy */
    srv_conn scratch = {.srv = cn->srv, .capture = &x->err};
    enum MHD_Result ret;
    if (!srv_tools_parse(&scratch, x->body, &x->tools, &ret)) {
        srv_gen_render_free(x);
        return NULL;
    }
    return x;
}

vki_status srv_gen_render_fn(int32_t i, vki_generate_params *gp, char **prompt, vki_prompt_span **literal,
                                size_t *n_literal, void *user)
{
    srv_gen_render *x = user;
    /* srv_send_error from here writes x->err: no connection is touched */
    srv_conn scratch = {.srv = x->srv, .capture = &x->err};
    enum MHD_Result ret;
    vki_text_span *spans = NULL;
    srv_tool_format fmt = SRV_TOOLS_GENERIC;
    free(x->grammar);
    x->grammar = NULL;
    const char *tmpl = i < x->cfg->svc.n_models ? x->cfg->svc.models[i].chat_template : NULL;
    if (!srv_render_chat(&scratch, x->body, &x->tools, svc_model_file(x->srv->svc, i),
                         svc_model_tokenizer(x->srv->svc, i), tmpl, gp, prompt, &spans, n_literal, &fmt, &ret) ||
        !srv_tools_grammar(&scratch, &x->tools, fmt, &x->grammar, &ret)) {
        free(*prompt);
        free(spans);
        *prompt = NULL;
        x->failed = true;
        return vki_fail(x->err.http == 400 ? VKI_ERR_INVALID_ARGUMENT : VKI_ERR_UNSUPPORTED, "%s", x->err.msg);
    }
    if (x->grammar) gp->grammar = x->grammar;
    x->fmt = fmt;
    *literal = (vki_prompt_span *)spans;
    return VKI_OK;
}

const srv_fb_error *srv_gen_render_error(const srv_gen_render *x) { return x->failed ? &x->err : NULL; }

srv_tool_format srv_gen_render_format(const srv_gen_render *x) { return x->fmt; }
