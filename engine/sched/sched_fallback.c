/*
 * sched_fallback.c: where a request goes when its model cannot serve it: the
 * model's configured chain of other ids, then (when it asks for automatic
 * candidates) every other model of its kind, ranked by a compatibility
 * score. Which trigger applies (missing, failed, memory, breaker, ETA) and
 * the retry itself are the caller's (the server renders prompts per model).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched_internal.h"
#include "loader/model_file.h"
#include "util.h"

static void fb_free_one(struct sched_fb *fb)
{
    if (!fb) return;
    for (int32_t k = 0; fb->chain && k < fb->n_chain; k++) free(fb->chain[k]);
    for (int32_t k = 0; fb->compat_ids && k < fb->n_compat; k++) free(fb->compat_ids[k]);
    free(fb->chain);
    free(fb->compat_ids);
    free(fb->compat);
    free(fb->languages);
    free(fb);
}

static bool fb_fill(struct sched_fb *fb, const sched_fb_params *p)
{
    fb->caps = p->caps;
    fb->auto_candidates = p->auto_candidates;
    if (p->languages && !(fb->languages = strdup(p->languages))) return false;
    int32_t n = 0;
    while (p->chain && p->chain[n]) n++;
    if (n) {
        if (!(fb->chain = calloc((size_t)n, sizeof *fb->chain))) return false;
        for (fb->n_chain = 0; fb->n_chain < n; fb->n_chain++)
            if (!(fb->chain[fb->n_chain] = strdup(p->chain[fb->n_chain]))) return false;
    }
    if (p->n_compat > 0 && p->compat_ids && p->compat) {
        fb->compat_ids = calloc((size_t)p->n_compat, sizeof *fb->compat_ids);
        fb->compat = calloc((size_t)p->n_compat, sizeof *fb->compat);
        if (!fb->compat_ids || !fb->compat) return false;
        for (fb->n_compat = 0; fb->n_compat < p->n_compat; fb->n_compat++) {
            const int32_t k = fb->n_compat;
            fb->compat[k] = VKI_MAX(0.0, VKI_MIN(1.0, p->compat[k]));
            if (!(fb->compat_ids[k] = strdup(p->compat_ids[k]))) return false;
        }
    }
    return true;
}

bool sched_fb_copy(sched_model *m, const sched_fb_params *p)
{
    struct sched_fb *fb = calloc(1, sizeof *fb);
    if (!fb || !fb_fill(fb, p)) {
        fb_free_one(fb);
        return false;
    }
    /* Readers load the pointer once and use what it points to without a
     * lock: the one replaced stays until sched_destroy (a few hundred bytes
     * per reload). */
    fb->older = atomic_load(&m->fb);
    atomic_store(&m->fb, fb);
    return true;
}

void sched_fb_free(sched_model *m)
{
    struct sched_fb *fb = atomic_load(&m->fb);
    while (fb) {
        struct sched_fb *older = fb->older;
        fb_free_one(fb);
        fb = older;
    }
    atomic_store(&m->fb, NULL);
}

/* ===== The score ========================================================== */

#define MAX_LANGS 32

/* Splits a comma-separated list into lower-case words of up to 15 bytes. */
static int split_langs(const char *s, char out[MAX_LANGS][16])
{
    int n = 0;
    while (s && *s && n < MAX_LANGS) {
        while (*s == ',' || isspace((unsigned char)*s)) s++;
        int k = 0;
        while (*s && *s != ',' && !isspace((unsigned char)*s)) {
            if (k < 15) out[n][k++] = (char)tolower((unsigned char)*s);
            s++;
        }
        out[n][k] = '\0';
        if (k) n++;
    }
    return n;
}

/* Jaccard similarity of two capability sets: their bits and their languages. */
static double jaccard(uint32_t a, const char *la, uint32_t b, const char *lb)
{
    char wa[MAX_LANGS][16], wb[MAX_LANGS][16];
    const int na = split_langs(la, wa), nb = split_langs(lb, wb);
    int inter = __builtin_popcount(a & b), uni = __builtin_popcount(a | b);
    int common = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!strcmp(wa[i], wb[j])) {
                common++;
                break;
            }
    inter += common;
    uni += na + nb - common;
    return uni ? (double)inter / uni : 1.0;
}

double sched_fallback_score(const sched_fb_model *from, const sched_fb_model *to, double declared,
                            const sched_needs *need, const sched_fb_weights *w)
{
    if (from->kind != to->kind) return -1;
    const int32_t want_embd = need && need->n_embd ? need->n_embd : from->n_embd;
    if (to->kind == SCHED_KIND_EMBEDDING && want_embd && to->n_embd != want_embd) return -1;
    sched_fb_weights wt = w ? *w : (sched_fb_weights){0};
    if (wt.declared <= 0 && wt.capabilities <= 0 && wt.request <= 0) wt = (sched_fb_weights){0.4, 0.4, 0.2};
    /* Capability overlap: the sets, and how much of from's context to keeps. */
    double ctx = from->n_ctx <= 0 ? 1.0 : to->n_ctx <= 0 ? 0.0 : VKI_MIN(1.0, (double)to->n_ctx / from->n_ctx);
    double overlap = (jaccard(from->caps, from->languages, to->caps, to->languages) + ctx) / 2;
    /* The request's own needs: each capability it uses, and room for its tokens. */
    int met = 0, total = 0;
    for (uint32_t bit = 1; need && bit && bit <= need->caps; bit <<= 1)
        if (need->caps & bit) {
            total++;
            met += (to->caps & bit) != 0;
        }
    if (need && need->n_tokens > 0) {
        total++;
        met += to->n_ctx >= need->n_tokens;
    }
    double request = total ? (double)met / total : 1.0;
    double sum = VKI_MAX(wt.declared, 0) + VKI_MAX(wt.capabilities, 0) + VKI_MAX(wt.request, 0);
    return (VKI_MAX(wt.declared, 0) * VKI_MAX(0.0, VKI_MIN(1.0, declared)) + VKI_MAX(wt.capabilities, 0) * overlap +
            VKI_MAX(wt.request, 0) * request) / sum;
}

/* ===== Candidates ========================================================= */

/* What the file declares: a chat template that handles `tools` can take tool calls. */
static uint32_t file_caps(const vki_model_file *f)
{
    vki_str t;
    if (f && vki_file_get_str(f, "tokenizer.chat_template", &t) && t.n >= 5 && memmem(t.p, t.n, "tools", 5))
        return SCHED_CAP_TOOLS;
    return 0;
}

static sched_fb_model fb_model(sched_model *m)
{
    const struct sched_fb *fb = atomic_load(&m->fb);
    pthread_mutex_lock(&m->mu);
    const uint32_t from_file = m->can_queue ? file_caps(m->file) : 0;
    sched_fb_model f = {.kind = m->kind,
                        .caps = fb->caps | from_file |
                                (m->kind == SCHED_KIND_EMBEDDING ? SCHED_CAP_EMBEDDING : SCHED_CAP_CHAT),
                        .languages = fb->languages,
                        .n_ctx = m->can_queue ? m->shape.n_ctx : 0,
                        .n_embd = m->can_queue && m->kind == SCHED_KIND_EMBEDDING ? m->shape.n_embd : 0};
    pthread_mutex_unlock(&m->mu);
    return f;
}

/* The declared compatibility of `to` as a stand-in for m (0 when not declared). */
static double declared(const struct sched_fb *fb, const char *to)
{
    for (int32_t k = 0; k < fb->n_compat; k++)
        if (!strcmp(fb->compat_ids[k], to)) return fb->compat[k];
    return 0;
}

const char *sched_fallback_chain_id(const scheduler *s, int32_t i, int32_t k)
{
    if (!s || i < 0 || i >= s->n_models) return NULL;
    const struct sched_fb *fb = atomic_load(&s->models[i]->fb);
    return k >= 0 && k < fb->n_chain ? fb->chain[k] : NULL;
}

int32_t sched_fallback_candidates(scheduler *s, int32_t i, const sched_needs *need, int32_t *out, double *score,
                                  int32_t max)
{
    if (!s || i < 0 || i >= s->n_models || !out || max <= 0) return 0;
    sched_model *m = s->models[i];
    const struct sched_fb *fb = atomic_load(&m->fb);
    const sched_fb_model from = fb_model(m);
    const double min_score = s->p.fb_min_score > 0 ? s->p.fb_min_score : 0.5;
    int32_t n = 0, n_chain;
    const int32_t n_models = s->n_models; /* models added from now on are not candidates yet */
    bool *taken = calloc((size_t)n_models, sizeof *taken);
    double *own = score ? NULL : calloc((size_t)max, sizeof *own);
    if (!taken || (!score && !own)) {
        free(taken);
        free(own);
        return 0;
    }
    if (!score) score = own;
    taken[i] = true;
    for (int32_t k = 0; k < fb->n_chain && n < max; k++) {
        int32_t j = sched_find(s, fb->chain[k]);
        if (j < 0 || j >= n_models || taken[j]) continue;
        const sched_fb_model to = fb_model(s->models[j]);
        double sc = sched_fallback_score(&from, &to, declared(fb, fb->chain[k]), need, &s->p.fb_weights);
        if (sc < 0) continue;
        taken[j] = true;
        score[n] = sc;
        out[n++] = j;
    }
    n_chain = n;
    for (int32_t j = 0; fb->auto_candidates && j < n_models && n < max; j++) {
        if (taken[j] || atomic_load(&s->models[j]->removing)) continue;
        const sched_fb_model to = fb_model(s->models[j]);
        double sc = sched_fallback_score(&from, &to, declared(fb, s->models[j]->id), need, &s->p.fb_weights);
        if (sc < min_score) continue;
        /* Insert in order, best first; equal scores keep the configured order. */
        int32_t at = n;
        while (at > n_chain && sc > score[at - 1]) {
            out[at] = out[at - 1];
            score[at] = score[at - 1];
            at--;
        }
        out[at] = j;
        score[at] = sc;
        n++;
    }
    free(taken);
    free(own);
    return n;
}
