/*
 * logprobs.c: the `logprobs` objects of the generation answers, in OpenAI's
 * two shapes: chat ({"content": [{token, logprob, bytes, top_logprobs}]})
 * and completions ({tokens, token_logprobs, top_logprobs, text_offset}).
 * The numbers come from the job (vki_job_token), the token strings from
 * the serving model's vocabulary; this only renders.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "server/srv_internal.h"
#include "util.h"

/* OpenAI's floor for a token the model gives no chance. */
#define LOGPROB_FLOOR -9999.0
/* The longest token shown (GGUF vocabularies stay far below it), and its
 * string: "bytes:" and four characters a byte at worst. */
#define MAX_PIECE 1024
#define MAX_STRING (6 + 4 * MAX_PIECE + 1)

/* A token's bytes as they appear in text. Special tokens show their own
 * text (a chat's "<|im_end|>"), as OpenAI's token strings do. */
static int32_t token_bytes(vki_service *svc, int32_t model, int32_t id, char *buf, int32_t size)
{
    int32_t n = vki_service_token_piece(svc, model, id, buf, size);
    return n < 0 ? 0 : n; /* longer than any token we keep: shown empty */
}

/* The token's string: its text when the bytes are whole UTF-8, else
 * "bytes:\xNN..." (a byte token holding part of a character), the form
 * OpenAI uses for such tokens; `bytes` always has the exact bytes. */
static void token_string(const char *b, int32_t n, char *out, size_t cap)
{
    bool whole = true;
    for (int32_t i = 0; i < n && whole;) {
        int k = vki_utf8_next(b + i, (size_t)(n - i));
        whole = k > 0;
        i += k > 0 ? k : 0;
    }
    if (whole) {
        snprintf(out, cap, "%.*s", (int)n, b);
        return;
    }
    size_t o = (size_t)snprintf(out, cap, "bytes:");
    for (int32_t i = 0; i < n && o + 5 <= cap; i++) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", (unsigned char)b[i]);
}

static double finite_lp(float lp) { return isfinite(lp) ? (double)lp : LOGPROB_FLOOR; }

/* {token, logprob, bytes} of one id. */
static cJSON *chat_entry(vki_service *svc, int32_t model, int32_t id, float lp)
{
    char b[MAX_PIECE], s[MAX_STRING];
    int32_t n = token_bytes(svc, model, id, b, sizeof b);
    token_string(b, n, s, sizeof s);
    cJSON *e = cJSON_CreateObject(), *bytes = cJSON_CreateArray();
    cJSON_AddStringToObject(e, "token", s);
    cJSON_AddNumberToObject(e, "logprob", finite_lp(lp));
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)b[i]));
    cJSON_AddItemToObject(e, "bytes", bytes);
    return e;
}

cJSON *srv_logprobs_new(bool chat)
{
    cJSON *o = cJSON_CreateObject();
    if (chat) {
        cJSON_AddArrayToObject(o, "content");
        cJSON_AddNullToObject(o, "refusal");
    } else {
        cJSON_AddArrayToObject(o, "tokens");
        cJSON_AddArrayToObject(o, "token_logprobs");
        cJSON_AddArrayToObject(o, "top_logprobs");
        cJSON_AddArrayToObject(o, "text_offset");
    }
    return o;
}

void srv_logprobs_add(cJSON *lp, bool chat, vki_service *svc, int32_t model, const vki_job_token *toks, int32_t n)
{
    if (chat) {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
        for (int32_t i = 0; i < n; i++) {
            const vki_job_token *t = &toks[i];
            cJSON *e = chat_entry(svc, model, t->id, t->logprob), *top = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int32_t k = 0; k < t->n_top; k++)
                cJSON_AddItemToArray(top, chat_entry(svc, model, t->top_ids[k], t->top_logprobs[k]));
            cJSON_AddItemToArray(content, e);
        }
        return;
    }
    cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
    cJSON *lps = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    cJSON *tops = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(lp, "text_offset");
    for (int32_t i = 0; i < n; i++) {
        const vki_job_token *t = &toks[i];
        char b[MAX_PIECE], s[MAX_STRING];
        int32_t nb = token_bytes(svc, model, t->id, b, sizeof b);
        token_string(b, nb, s, sizeof s);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(s));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(finite_lp(t->logprob)));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber(t->text_offset));
        /* the top alternatives and, as OpenAI does, the sampled token when
         * it is not among them (up to logprobs + 1 entries) */
        cJSON *d = cJSON_CreateObject();
        bool sampled_in = false;
        for (int32_t k = 0; k < t->n_top; k++) {
            char tb[MAX_PIECE], ts[MAX_STRING];
            token_string(tb, token_bytes(svc, model, t->top_ids[k], tb, sizeof tb), ts, sizeof ts);
            if (!cJSON_GetObjectItemCaseSensitive(d, ts)) cJSON_AddNumberToObject(d, ts, finite_lp(t->top_logprobs[k]));
            sampled_in |= t->top_ids[k] == t->id;
        }
        if (!sampled_in && !cJSON_GetObjectItemCaseSensitive(d, s)) cJSON_AddNumberToObject(d, s, finite_lp(t->logprob));
        cJSON_AddItemToArray(tops, d);
    }
}
