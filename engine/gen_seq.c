/*
 * gen_seq.c: one sequence's sampling, detokenization and stop-string logic
 * (see gen_seq.h). Text is delivered only once it cannot be the start of a
 * stop string, so a stop string never reaches the caller, even in pieces.
 */
#include "engine/gen_seq.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

static bool text_reserve(gen_text *t, size_t extra)
{
    if (t->n + extra + 1 <= t->cap) return true;
    size_t cap = VKI_MAX(t->cap * 2, t->n + extra + 64);
    char *np = realloc(t->p, cap);
    if (!np) return false;
    t->p = np;
    t->cap = cap;
    return true;
}

/* Appends the detokenizer's output for one push (id >= 0) or the final
 * flush as valid UTF-8. The detokenizer holds back characters split across
 * tokens, so what is broken in one push stays broken and becomes U+FFFD
 * here (vkinfer.h promises complete UTF-8); stop strings are then matched
 * against the text as the caller gets it. */
static vki_status text_detok(gen_text *t, vki_detok *d, int32_t id)
{
    char stack[256], *raw = stack;
    int32_t size = (int32_t)sizeof stack;
    vki_status s = VKI_OK;
    for (;;) {
        int32_t r = id >= 0 ? vki_detok_push(d, id, raw, size) : vki_detok_finish(d, raw, size);
        if (r >= 0) {
            if (!text_reserve(t, 3 * (size_t)r)) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "generate: out of memory for text");
                break;
            }
            t->n += vki_utf8_sanitize(raw, (size_t)r, t->p + t->n);
            t->p[t->n] = '\0';
            break;
        }
        if (raw != stack) free(raw);
        size = -r;
        if (!(raw = malloc((size_t)size))) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "generate: out of memory for text");
    }
    if (raw != stack) free(raw);
    return s;
}

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

/* Characters in s[0..n) as printed: a broken part is one U+FFFD. */
static int32_t count_chars(const char *s, size_t n)
{
    int32_t c = 0;
    for (size_t i = 0; i < n; c++) {
        int k = vki_utf8_next(s + i, n - i);
        i += (size_t)(k > 0 ? k : -k);
    }
    return c;
}

/* Where the first complete stop string starts in s[0..n), or -1. */
static ptrdiff_t find_stop(const char *s, size_t n, const char *const *stop)
{
    ptrdiff_t best = -1;
    for (size_t i = 0; stop && stop[i]; i++) {
        size_t sl = strlen(stop[i]);
        if (!sl || sl > n) continue;
        for (size_t p = 0; p + sl <= n; p++)
            if (!memcmp(s + p, stop[i], sl)) {
                if (best < 0 || (ptrdiff_t)p < best) best = (ptrdiff_t)p;
                break;
            }
    }
    return best;
}

/* Length of the longest suffix of s[0..n) that begins some stop string. */
static size_t stop_prefix_len(const char *s, size_t n, const char *const *stop)
{
    size_t best = 0;
    for (size_t i = 0; stop && stop[i]; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = VKI_MIN(sl - (sl > 0), n); k > best; k--)
            if (!memcmp(s + n - k, stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

vki_status gen_seq_init(gen_seq *g, const vki_tokenizer *tok, const vki_generate_params *gp, const int32_t *ids,
                        int32_t n_ids, int32_t n_vocab, int32_t n_ctx)
{
    memset(g, 0, sizeof *g);
    if (n_ids < 1 || !ids) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: the prompt has no tokens");
    if (n_ids >= n_ctx)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: the prompt has %d tokens; the context holds %d",
                        n_ids, n_ctx);
    if (gp->n_predict < 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: n_predict %d < 0", gp->n_predict);
    /* The text is valid UTF-8, so a broken stop string could only match
     * inside a character (or a U+FFFD the text shows) and cut it. */
    for (size_t i = 0; gp->stop && gp->stop[i]; i++)
        if (!utf8_valid(gp->stop[i]))
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: stop string %zu is not valid UTF-8", i);
    VKI_TRY(smp_create(gp, n_vocab, &g->smp));
    if (gp->logprobs && !(g->raw = malloc(sizeof *g->raw * (size_t)n_vocab))) {
        smp_destroy(g->smp);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "generate: out of memory for logprobs");
    }
    g->tok = tok;
    g->gp = *gp;
    g->n_vocab = n_vocab;
    g->n_ctx = n_ctx;
    g->max_gen = gp->n_predict > 0 ? gp->n_predict : INT32_MAX;
    for (int32_t i = 0; i < n_ids; i++) smp_accept(g->smp, ids[i]);
    g->st.n_prompt = n_ids;
    vki_detok_init(&g->dt, tok);
    /* SPM drops the leading space of the first piece of a text; generated
     * text continues the prompt's text unless the prompt is only BOS. */
    if (n_ids > 1 || ids[0] != vki_tokenizer_bos(tok)) g->dt.n_pushed = n_ids;
    return VKI_OK;
}

vki_status gen_seq_set_grammar(gen_seq *g, const gram_grammar *gram, const gram_vocab *v)
{
    gram_matcher_destroy(g->gm);
    g->gm = NULL;
    return gram ? gram_matcher_create(gram, v, &g->gm) : VKI_OK;
}

/* Tokens the grammar refuses get -inf, so that every sampling mode (greedy,
 * top-k/p, min-p) picks among the allowed ones only. */
static vki_status grammar_mask(gen_seq *g, float *logits)
{
    const uint32_t *mask;
    VKI_TRY(gram_matcher_mask(g->gm, &mask));
    bool any = false;
    for (int32_t w = 0; w * 32 < g->n_vocab; w++) {
        uint32_t bits = mask[w];
        any |= bits != 0;
        if (bits == 0xFFFFFFFFu) continue;
        int32_t end = VKI_MIN(g->n_vocab, w * 32 + 32);
        for (int32_t i = w * 32; i < end; i++)
            if (!((bits >> (i & 31)) & 1u)) logits[i] = -INFINITY;
    }
    if (!any)
        return vki_fail(VKI_ERR_UNSUPPORTED, "grammar: no token of the vocabulary can continue the output here "
                        "(after %d generated tokens)", g->st.n_generated);
    return VKI_OK;
}

void gen_seq_deinit(gen_seq *g)
{
    if (!g) return;
    gram_matcher_destroy(g->gm);
    smp_destroy(g->smp);
    free(g->raw);
    free(g->held.p);
    free(g->out.p);
    memset(g, 0, sizeof *g);
}

vki_status gen_seq_step(gen_seq *g, float *logits, int32_t kv_len, vki_token_event *ev, bool *last_out)
{
    vki_status s;
    memset(ev, 0, sizeof *ev);
    smp_top_k(logits, g->n_vocab, 5, ev->top_ids, ev->top_logits);
    double lse = 0.0;
    if (g->raw) {
        /* the model's distribution, before the sampler edits the row */
        lse = smp_logsumexp(logits, g->n_vocab);
        memcpy(g->raw, logits, sizeof *g->raw * (size_t)g->n_vocab);
        ev->n_top_logprobs = VKI_MIN(g->gp.n_top_logprobs, g->n_vocab);
        if (ev->n_top_logprobs > 0)
            smp_top_k(logits, g->n_vocab, ev->n_top_logprobs, ev->top_logprob_ids, ev->top_logprobs);
        for (int32_t k = 0; k < ev->n_top_logprobs; k++) ev->top_logprobs[k] = (float)(ev->top_logprobs[k] - lse);
    }
    if (g->gm && (s = grammar_mask(g, logits)) != VKI_OK) return s;
    int32_t id = smp_sample(g->smp, logits);
    if (g->raw) ev->logprob = (float)(g->raw[id] - lse);
    smp_accept(g->smp, id);
    g->st.n_generated++;
    /* the mask let an end-of-generation token through only where the output
     * is complete: with a grammar it ends the text even under ignore_eos */
    bool eog = (!g->gp.ignore_eos || g->gm) && vki_tokenizer_is_eog(g->tok, id);
    if (g->gm && (s = gram_matcher_accept_token(g->gm, id)) != VKI_OK) return s;
    bool done = g->gm && !eog && gram_matcher_must_end(g->gm);
    bool last = eog || done || g->st.n_generated >= g->max_gen || kv_len >= g->n_ctx;
    size_t before = g->held.n;
    if (!eog && (s = text_detok(&g->held, &g->dt, id)) != VKI_OK) return s;
    g->tok_offset = g->n_chars;
    /* an end-of-generation token as the first adds no text: held.p is still NULL */
    if (g->held.n > before) g->n_chars += count_chars(g->held.p + before, g->held.n - before);
    if (last && (s = text_detok(&g->held, &g->dt, -1)) != VKI_OK) return s;
    if (!text_reserve(&g->held, 1)) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "generate: out of memory for text");
    g->held.p[g->held.n] = '\0';
    size_t emit = g->held.n;
    ptrdiff_t at = find_stop(g->held.p, g->held.n, g->gp.stop);
    if (at >= 0) {
        emit = (size_t)at;
        last = true;
        g->st.stopped_by_string = true;
    } else if (!last) {
        emit = g->held.n - stop_prefix_len(g->held.p, g->held.n, g->gp.stop);
    }
    g->st.stopped_by_eos = eog || done;
    /* Move held[0..emit) into out as this token's text, keep the rest. Both
     * the text and the stop strings are valid UTF-8, so emit falls between
     * characters. */
    g->out.n = 0;
    if (!text_reserve(&g->out, emit)) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "generate: out of memory for text");
    memcpy(g->out.p, g->held.p, emit);
    g->out.n = emit;
    g->out.p[g->out.n] = '\0';
    memmove(g->held.p, g->held.p + emit, g->held.n - emit + 1);
    g->held.n -= emit;
    ev->id = id;
    ev->text = g->out.p;
    *last_out = last;
    return VKI_OK;
}
