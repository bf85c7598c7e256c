/* test_prefix.c: prompt-prefix KV reuse (engine/sched/sched_prefix.c). One
 * scheduler serves the same file twice, as "on" (reuse) and "off"
 * (sched_model_params.no_prefix_reuse); every prompt goes to both and the
 * greedy tokens must be equal, their log-probabilities within the backend's
 * tolerance. The prompts walk through the cases: a conversation's next turn
 * (history + reply + new text: everything the slot holds is reused, the
 * reply's last sampled token, never fed, is evaluated), a prompt that leaves
 * the history half-way (the slot is cut there), the same prompt again (its
 * last token is evaluated for its logits), n = 2 choices led from a reused
 * slot, and a second conversation interleaved (each keeps its own slot).
 * Counters: reused + evaluated = the prompt positions, as said per request.
 * Models: the generated default (CPU) and, from ../shared/models when
 * present, llama-gqa, qwen3 and gemma3-swa (sliding window: the cut falls
 * back to a cold run when the window has moved past it), on the CPU and on
 * lavapipe (skipped without a Vulkan device).
 * Usage: test_prefix DEFAULT_MODEL.gguf */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched.h"
#include "engine/tokenizer/tokenizer.h"
#include "sched_test_util.h"
#include "test_util.h"

#define N_GEN 4
#define N_TOP 3
#define MAX_IDS 1024

typedef struct out {
    int32_t ids[2][N_GEN];
    float   lp[2][N_GEN][N_TOP];
    int32_t top[2][N_GEN][N_TOP];
    int32_t n[2];
    int32_t n_cached;
} out;

typedef struct seq {
    int32_t ids[MAX_IDS];
    int32_t n;
} seq;

static void seq_add(seq *q, const int32_t *ids, int32_t n)
{
    if (q->n + n > MAX_IDS) {
        fprintf(stderr, "test_prefix: a prompt past %d tokens\n", MAX_IDS);
        exit(1);
    }
    memcpy(q->ids + q->n, ids, sizeof *ids * (size_t)n);
    q->n += n;
}

static void seq_rand(seq *q, int32_t n, int32_t n_vocab, uint64_t *rng)
{
    for (int32_t k = 0; k < n; k++) {
        int32_t id = 3 + (int32_t)(test_rand_u64(rng) % (uint64_t)(n_vocab - 3));
        seq_add(q, &id, 1);
    }
}

/* Greedy N_GEN tokens of prompt q on model `model` with n choices. */
static out run(scheduler *s, int32_t model, const seq *q, int32_t n)
{
    vki_generate_params gp = st_greedy(N_GEN);
    gp.logprobs = true;
    gp.n_top_logprobs = N_TOP;
    sched_gen_input in = {.ids = q->ids, .n_ids = q->n, .n_choices = n};
    sched_request *r = NULL;
    out o = {0};
    vki_status st = sched_submit_generate_input(s, model, &in, &gp, SCHED_PRIO_INTERACTIVE, 0, &r, NULL);
    CHECKF(st == VKI_OK, "submit: %s", vki_last_error());
    if (st != VKI_OK) return o;
    sched_choice_out co[2] = {0};
    sched_result res;
    do {
        CHECK(sched_request_poll_choices(r, -1, co, n, &res) == VKI_OK);
        for (int32_t j = 0; j < n; j++) {
            for (int32_t k = 0; k < co[j].n_toks && o.n[j] < N_GEN; k++, o.n[j]++) {
                o.ids[j][o.n[j]] = co[j].toks[k].id;
                for (int32_t t = 0; t < N_TOP; t++) {
                    o.lp[j][o.n[j]][t] = co[j].toks[k].top_logprobs[t];
                    o.top[j][o.n[j]][t] = co[j].toks[k].top_ids[t];
                }
            }
            co[j].from_text += co[j].chunk_len;
            co[j].from_tok += co[j].n_toks;
            free(co[j].chunk);
            free(co[j].toks);
        }
    } while (!res.done);
    CHECKF(res.status == VKI_OK, "request: %s", res.error ? res.error : "?");
    o.n_cached = res.n_cached;
    sched_request_release(r);
    return o;
}

typedef struct totals {
    uint64_t positions, cached;
} totals;

/* Runs q on both models and compares; returns what "on" reused. */
static int32_t both(scheduler *s, const char *what, const seq *q, int32_t n, float tol, out *got, totals *t)
{
    out a = run(s, 0, q, n), b = run(s, 1, q, 1);
    t->positions += (uint64_t)q->n;
    t->cached += (uint64_t)a.n_cached;
    CHECKF(b.n_cached == 0, "%s: the model without reuse reused %d tokens", what, b.n_cached);
    for (int32_t j = 0; j < n; j++) {
        CHECKF(a.n[j] == N_GEN && b.n[0] == N_GEN, "%s: %d and %d tokens", what, a.n[j], b.n[0]);
        float worst = 0;
        for (int32_t k = 0; k < N_GEN; k++) {
            CHECKF(a.ids[j][k] == b.ids[0][k], "%s choice %d token %d: %d with reuse, %d cold", what, j, k,
                   a.ids[j][k], b.ids[0][k]);
            for (int32_t p = 0; p < N_TOP; p++)
                if (a.top[j][k][p] == b.top[0][k][p]) worst = fmaxf(worst, fabsf(a.lp[j][k][p] - b.lp[0][k][p]));
                else worst = INFINITY; /* the order of alternatives changed */
        }
        CHECKF(worst <= tol, "%s choice %d: log-probabilities differ by %g (tolerance %g)", what, j, worst, tol);
        if (j == 0) printf("  %-34s %3d positions, %3d reused, max |dlogprob| %.2e\n", what, q->n, a.n_cached, worst);
    }
    if (got) *got = a;
    return a.n_cached;
}

/* swa: the model has sliding-window layers (of 8 positions in the shared
 * gemma3 file): with n_ctx 1024 their rows move once a sequence passes
 * 2 x 8 + n_batch (512) positions. */
static void run_case(const char *name, const char *path, vki_backend_kind be, float tol, bool swa)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    for (int k = 0; k < 2; k++) {
        sched_model_params mp = {.id = k ? "off" : "on", .path = path, .kind = SCHED_KIND_CHAT,
                                 .mp = vki_model_default_params(), .no_prefix_reuse = k == 1};
        mp.mp.backend = be;
        mp.mp.n_seq_max = 2;
        mp.mp.n_ctx = 1024;
        CHECK(sched_add_model(s, &mp) == VKI_OK);
    }
    if (!sched_wait_loaded(s, 120000)) {
        sched_model_info info;
        sched_model_get_info(s, 0, &info);
        CHECKF(false, "%s: not loaded: %s", name, info.error);
        sched_destroy(s);
        return;
    }
    printf("%s (%s):\n", name, be == VKI_BACKEND_CPU ? "cpu" : "vulkan");
    const int32_t n_vocab = vki_tokenizer_n_vocab(sched_model_tokenizer(s, 0));
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    totals t = {0};
    out o;

    /* Turn 1 and 2 of a conversation: the history, the reply, a new message. */
    seq p1 = {0}, p2 = {0}, p3 = {0}, p4 = {0}, q1 = {0}, q2 = {0};
    seq_rand(&p1, 40, n_vocab, &rng);
    CHECK(both(s, "turn 1 (cold)", &p1, 1, tol, &o, &t) == 0);
    p2 = p1;
    seq_add(&p2, o.ids[0], N_GEN);
    seq_rand(&p2, 12, n_vocab, &rng);
    /* the slot holds p1 and the reply but its last token (sampled, never fed) */
    int32_t got = both(s, "turn 2 (history reused)", &p2, 1, tol, &o, &t);
    CHECKF(got == p1.n + N_GEN - 1, "turn 2 reused %d, expected %d", got, p1.n + N_GEN - 1);

    /* Another conversation meanwhile takes the other slot, not this one's. */
    seq_rand(&q1, 30, n_vocab, &rng);
    CHECK(both(s, "other conversation, turn 1", &q1, 1, tol, &o, &t) == 0);
    q2 = q1;
    seq_add(&q2, o.ids[0], N_GEN);
    seq_rand(&q2, 5, n_vocab, &rng);
    got = both(s, "other conversation, turn 2", &q2, 1, tol, &o, &t);
    CHECKF(got == q1.n + N_GEN - 1, "other conversation reused %d, expected %d", got, q1.n + N_GEN - 1);

    /* Leaves the first conversation's history after 20 tokens: cut there. */
    seq_add(&p3, p2.ids, 20);
    seq_rand(&p3, 15, n_vocab, &rng);
    got = both(s, "branch at 20", &p3, 1, tol, &o, &t);
    CHECKF(got == 20, "the branch reused %d, expected 20", got);

    /* The same prompt again: all but its last token. */
    got = both(s, "same prompt again", &p3, 1, tol, NULL, &t);
    CHECKF(got == p3.n - 1, "the repeat reused %d, expected %d", got, p3.n - 1);

    /* n = 2 from a reused slot: both choices are the cold n = 1 answer. */
    p4 = p3;
    seq_add(&p4, o.ids[0], N_GEN);
    seq_rand(&p4, 9, n_vocab, &rng);
    got = both(s, "n = 2 after the branch", &p4, 2, tol, NULL, &t);
    CHECKF(got == p3.n + N_GEN - 1, "n = 2 reused %d, expected %d", got, p3.n + N_GEN - 1);

    /* A long history: a sliding window moves its rows past the start. */
    seq p5 = p4, p6;
    seq_rand(&p5, swa ? 600 : 120, n_vocab, &rng);
    both(s, "long prompt", &p5, 1, tol, &o, &t);
    p6 = p5;
    seq_add(&p6, o.ids[0], N_GEN);
    seq_rand(&p6, 4, n_vocab, &rng);
    got = both(s, "long prompt, next turn", &p6, 1, tol, NULL, &t);
    CHECKF(got == p5.n + N_GEN - 1, "the long prompt's next turn reused %d, expected %d", got, p5.n + N_GEN - 1);
    seq p7 = {0};
    seq_add(&p7, p6.ids, 30);
    seq_rand(&p7, 3, n_vocab, &rng);
    got = both(s, "long prompt cut at 30", &p7, 1, tol, NULL, &t);
    /* (a sliding window whose rows moved past 30 cannot go back: a cold run) */
    CHECKF(got == (swa ? 0 : 30), "the cut at 30 reused %d, expected %d", got, swa ? 0 : 30);

    sched_stats on, off;
    sched_model_get_stats(s, 0, &on);
    sched_model_get_stats(s, 1, &off);
    CHECKF(on.prompt_reused == t.cached && on.prompt_evaluated + on.prompt_reused == t.positions,
           "counters: evaluated %llu + reused %llu, requests said %llu of %llu", (unsigned long long)on.prompt_evaluated,
           (unsigned long long)on.prompt_reused, (unsigned long long)t.cached, (unsigned long long)t.positions);
    CHECKF(off.prompt_reused == 0 && off.prompt_evaluated == t.positions,
           "counters without reuse: evaluated %llu, reused %llu", (unsigned long long)off.prompt_evaluated,
           (unsigned long long)off.prompt_reused);
    printf("  evaluated %llu of %llu prompt positions with reuse, %llu without\n",
           (unsigned long long)on.prompt_evaluated, (unsigned long long)t.positions,
           (unsigned long long)off.prompt_evaluated);
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    const char *def = st_model_arg(argc, argv, "test_prefix");
    const bool vk = st_have_vulkan();
    if (!vk) printf("vulkan: skipped (%s)\n", vki_last_error());
    run_case("default", def, VKI_BACKEND_CPU, 1e-3f, false);
    const char *dir = getenv("VKI_SHARED_DIR");
    static const char *const shared[] = {"synthetic-llama-gqa-f32", "synthetic-qwen3-dense-f32",
                                         "synthetic-gemma3-swa-f32"};
    for (size_t k = 0; k < sizeof shared / sizeof *shared; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/models/%s.gguf", dir && dir[0] ? dir : "../shared", shared[k]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            printf("%s: skipped (%s is absent)\n", shared[k], path);
            continue;
        }
        fclose(f);
        const bool swa = strstr(shared[k], "swa") != NULL;
        run_case(shared[k], path, VKI_BACKEND_CPU, 1e-3f, swa);
        if (vk) run_case(shared[k], path, VKI_BACKEND_VULKAN, 2e-3f, swa);
    }
    return test_finish("test_prefix");
}
