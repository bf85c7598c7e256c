/* test_choices.c: requests with several choices (sched_gen_input.n_choices)
 * on the CPU backend with the generated default model: greedy choices all
 * equal the n = 1 text (the prompt's KV copied exactly); choice j of a
 * seeded request is the n = 1 request with seed + j; logprob tokens per
 * choice; a request wider than the free slots waits at the head of the
 * queue and is neither starved nor deadlocked; cancelling frees every slot
 * it held; too many choices and bad token ids are refused at submit.
 * Usage: test_choices DEFAULT_MODEL.gguf */
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched.h"
#include "sched_test_util.h"
#include "test_util.h"

#define N_SEQ 3

typedef struct choices {
    char        *text[N_SEQ + 1];
    int32_t      n_toks[N_SEQ + 1];
    bool         offsets_ok;
    sched_result res;
} choices;

/* Reads every choice of r to its end. */
static choices collect(sched_request *r)
{
    choices c = {.offsets_ok = true};
    int32_t n = sched_request_n_choices(r);
    sched_choice_out o[N_SEQ + 1] = {0};
    int32_t last_off[N_SEQ + 1] = {0};
    for (int32_t j = 0; j < n; j++) c.text[j] = calloc(1, 1);
    do {
        CHECK(sched_request_poll_choices(r, -1, o, n, &c.res) == VKI_OK);
        for (int32_t j = 0; j < n; j++) {
            if (o[j].chunk) {
                c.text[j] = realloc(c.text[j], o[j].from_text + o[j].chunk_len + 1);
                memcpy(c.text[j] + o[j].from_text, o[j].chunk, o[j].chunk_len + 1);
            }
            for (int32_t k = 0; k < o[j].n_toks; k++) {
                const sched_token *t = &o[j].toks[k];
                c.offsets_ok &= t->text_offset >= last_off[j] && t->logprob <= 0 && t->n_top == 2 &&
                                t->top_logprobs[0] >= t->top_logprobs[1];
                last_off[j] = t->text_offset;
            }
            o[j].from_text += o[j].chunk_len;
            o[j].from_tok += o[j].n_toks;
            c.n_toks[j] += o[j].n_toks;
            free(o[j].chunk);
            free(o[j].toks);
        }
    } while (!c.res.done);
    return c;
}

static void choices_free(choices *c)
{
    for (int32_t j = 0; j <= N_SEQ; j++) free(c->text[j]);
}

static sched_request *submit(scheduler *s, const char *prompt, int32_t n, const vki_generate_params *gp)
{
    sched_gen_input in = {.prompt = prompt, .n_choices = n};
    sched_request *r = NULL;
    vki_status st = sched_submit_generate_input(s, 0, &in, gp, SCHED_PRIO_INTERACTIVE, 0, &r, NULL);
    CHECKF(st == VKI_OK, "submit n=%d: %s", n, vki_last_error());
    return r;
}

int main(int argc, char **argv)
{
    const char *path = st_model_arg(argc, argv, "test_choices");
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "m", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_seq_max = N_SEQ;
    mp.mp.n_ctx = 256;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECKF(sched_wait_loaded(s, 60000), "load failed");

    /* greedy: three equal choices, each the n = 1 text, with their tokens */
    vki_generate_params gp = st_greedy(12);
    gp.logprobs = true;
    gp.n_top_logprobs = 2;
    sched_request *r1 = submit(s, "Once upon a time", 1, &gp), *r3 = submit(s, "Once upon a time", N_SEQ, &gp);
    choices c1 = collect(r1), c3 = collect(r3);
    CHECK(c1.res.status == VKI_OK && c3.res.status == VKI_OK);
    for (int32_t j = 0; j < N_SEQ; j++)
        CHECKF(!strcmp(c3.text[j], c1.text[0]) && c3.n_toks[j] == 12, "greedy choice %d '%s' (%d tokens), n=1 '%s'",
               j, c3.text[j], c3.n_toks[j], c1.text[0]);
    CHECKF(c3.res.n_generated == 3 * 12 && c3.res.n_prompt == c1.res.n_prompt && c3.offsets_ok && c1.offsets_ok,
           "n=3: %d tokens, prompt %d vs %d", c3.res.n_generated, c3.res.n_prompt, c1.res.n_prompt);
    choices_free(&c1);
    choices_free(&c3);
    sched_request_release(r1);
    sched_request_release(r3);

    /* seeded: choice j samples with seed + j */
    gp = st_greedy(10);
    gp.temperature = 1.0f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0.0f;
    gp.seed = 42;
    sched_request *rs = submit(s, "The cat", 2, &gp);
    choices cs = collect(rs);
    gp.seed = 43;
    sched_request *ra = submit(s, "The cat", 1, &gp);
    choices ca = collect(ra);
    CHECKF(!strcmp(cs.text[1], ca.text[0]) && strcmp(cs.text[0], cs.text[1]),
           "seeded: choice 1 '%s', seed 43 alone '%s', choice 0 '%s'", cs.text[1], ca.text[0], cs.text[0]);
    choices_free(&cs);
    choices_free(&ca);
    sched_request_release(rs);
    sched_request_release(ra);

    /* a wide request behind a running one waits for its slots, then runs
     * before a narrower one that came later */
    gp = st_greedy(40);
    sched_request *a = submit(s, "A", 1, &gp);
    st_wait_started(a);
    gp = st_greedy(4);
    sched_request *wide = submit(s, "B", N_SEQ, &gp), *late = submit(s, "C", 1, &gp);
    sched_result ra_ = st_wait_done(a), rw = st_wait_done(wide), rl = st_wait_done(late);
    CHECK(ra_.status == VKI_OK && rw.status == VKI_OK && rl.status == VKI_OK);
    CHECKF(rw.start_order < rl.start_order && rw.n_generated == N_SEQ * 4,
           "wide request admitted %llu, later narrow one %llu", (unsigned long long)rw.start_order,
           (unsigned long long)rl.start_order);
    sched_request_release(a);
    sched_request_release(wide);
    sched_request_release(late);

    /* cancelling a request frees all its slots: another wide one runs */
    gp = st_greedy(200);
    sched_request *c = submit(s, "Once", N_SEQ, &gp);
    st_wait_started(c);
    sched_request_cancel(c);
    CHECK(st_wait_done(c).status == VKI_ERR_CANCELLED);
    sched_request_release(c);
    gp = st_greedy(3);
    sched_request *after = submit(s, "Twice", N_SEQ, &gp);
    sched_result rafter = st_wait_done(after);
    CHECK(rafter.status == VKI_OK && rafter.n_generated == 3 * N_SEQ);
    sched_request_release(after);

    /* refusals at submit */
    sched_request *bad = NULL;
    sched_gen_input in = {.prompt = "x", .n_choices = N_SEQ + 1};
    CHECK(sched_submit_generate_input(s, 0, &in, &gp, SCHED_PRIO_INTERACTIVE, 0, &bad, NULL) ==
              VKI_ERR_INVALID_ARGUMENT && !bad && strstr(vki_last_error(), "n_seq_max"));
    const int32_t ids[] = {1, 2, 1 << 30};
    in = (sched_gen_input){.ids = ids, .n_ids = 3, .n_choices = 1};
    CHECK(sched_submit_generate_input(s, 0, &in, &gp, SCHED_PRIO_INTERACTIVE, 0, &bad, NULL) ==
              VKI_ERR_INVALID_ARGUMENT && !bad && strstr(vki_last_error(), "vocabulary"));
    in.n_ids = 2;
    CHECK(sched_submit_generate_input(s, 0, &in, &gp, SCHED_PRIO_INTERACTIVE, 0, &bad, NULL) == VKI_OK);
    CHECK(st_wait_done(bad).status == VKI_OK);
    sched_request_release(bad);
    sched_destroy(s);
    return test_finish("test_choices");
}
