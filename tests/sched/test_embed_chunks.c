/*
 * test_embed_chunks.c: how an embedding batch meets the device arbiter
 * (sched_embed.c). Alone on the device, a batch over arb_chunk_tokens goes
 * as one step (one grant): cutting it would stream every weight once per
 * chunk for nobody's benefit. While another model on the same device has
 * work queued or running, the same batch is cut into chunks of arb_chunk_tokens, each
 * its own grant, so that model waits at most one chunk. Both models on the
 * CPU backend (one arbiter); the shared BERT model and the generated default.
 */
#include <stdlib.h>
#include <string.h>

#include "sched_test_util.h"

#define N_TEXTS 12

static uint64_t grants(scheduler *s, int32_t i)
{
    sched_stats st;
    sched_model_get_stats(s, i, &st);
    return st.arb_grants;
}

/* Embeds N_TEXTS texts of ~30 tokens as one request; returns the grants
 * the embedding model took for it and the prompt tokens in *n_tok. */
static uint64_t embed_grants(scheduler *s, int32_t model, int32_t *n_tok)
{
    static const char *words[] = {"river", "stone", "quietly", "over", "the", "bright", "morning", "market",
                                  "carried", "seven", "old", "songs"};
    char buf[N_TEXTS][256];
    const char *texts[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) {
        buf[i][0] = '\0';
        for (int w = 0; w < 24; w++) {
            strcat(buf[i], words[(i * 5 + w * 7) % 12]);
            strcat(buf[i], " ");
        }
        texts[i] = buf[i];
    }
    uint64_t g0 = grants(s, model);
    sched_request *r = NULL;
    double eta = 0;
    vki_status st = sched_submit_embed(s, model, texts, N_TEXTS, SCHED_PRIO_BATCH, 0, &r, &eta);
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    if (st != VKI_OK) exit(test_finish("test_embed_chunks"));
    sched_result res = st_wait_done(r);
    CHECKF(res.status == VKI_OK, "%s", res.error);
    *n_tok = res.n_prompt;
    sched_request_release(r);
    return grants(s, model) - g0;
}

int main(int argc, char **argv)
{
    const char *gen_path = st_model_arg(argc, argv, "test_embed_chunks");
    const char *emb_path = test_shared_path("models/synthetic-bert-mini-f32.gguf");
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.embed_wait_ms = 50; /* the texts arrive as one request anyway */
    sp.arb_chunk_tokens = 64;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params ep = {.id = "e", .path = emb_path, .kind = SCHED_KIND_EMBEDDING, .mp = vki_model_default_params()};
    sched_model_params gp = {.id = "g", .path = gen_path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    ep.mp.backend = gp.mp.backend = VKI_BACKEND_CPU;
    CHECK(sched_add_model(s, &ep) == VKI_OK);
    CHECK(sched_add_model(s, &gp) == VKI_OK);
    CHECK(sched_wait_loaded(s, 60000));

    int32_t n_tok = 0;
    uint64_t alone = embed_grants(s, 0, &n_tok);
    printf("alone on the device: %d tokens in %llu grant(s)\n", n_tok, (unsigned long long)alone);
    CHECKF(n_tok > 2 * 64, "the batch is %d tokens, not over two chunks: the test proves nothing", n_tok);
    CHECKF(alone == 1, "alone on the device the batch took %llu grants, not 1", (unsigned long long)alone);

    /* Generations to the end of the context, queued on the other model,
     * keep it busy for the whole batch. */
    enum { N_GEN = 32 };
    vki_generate_params g = st_greedy(1 << 20);
    sched_request *busy[N_GEN];
    double eta = 0;
    for (int i = 0; i < N_GEN; i++)
        CHECK(sched_submit_generate(s, 1, "Once upon a time", &g, SCHED_PRIO_BATCH, 0, &busy[i], &eta) == VKI_OK);
    st_wait_started(busy[0]);
    uint64_t shared = embed_grants(s, 0, &n_tok);
    sched_result br;
    char *chunk = NULL;
    size_t len = 0;
    sched_request_poll(busy[N_GEN - 1], 0, 0, &chunk, &len, &br);
    free(chunk);
    CHECKF(!br.done, "the generations ended before the batch did: nothing was shared");
    for (int i = 0; i < N_GEN; i++) {
        sched_request_cancel(busy[i]);
        st_wait_done(busy[i]);
        sched_request_release(busy[i]);
    }
    printf("beside queued generations: %d tokens in %llu grants (chunks of 64)\n", n_tok,
           (unsigned long long)shared);
    /* Texts go whole into a chunk, so a chunk holds at most 64 tokens and
     * at least one text: n_tok / 64 chunks at the least. */
    CHECKF(shared >= (uint64_t)(n_tok / 64), "beside a busy model the batch took %llu grants, under %d",
           (unsigned long long)shared, n_tok / 64);
    sched_destroy(s);
    return test_finish("test_embed_chunks");
}
