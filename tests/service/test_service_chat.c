/*
 * test_service_chat.c: vkinfer.h's generation jobs as a server uses them,
 * on the generated chat model (no template of its own: ChatML): a chat
 * rendered by the service with the content kept literal, a caller's
 * renderer called once per candidate (fallback from a missing model, its
 * failure ending the job), n choices read with their tokens and
 * log-probabilities by vki_job_poll from one event loop woken by on_news,
 * token ids as the prompt, token pieces, the hook changed or stopped while
 * the job runs, and bad arguments.
 * argv: CHAT.gguf EMBED.gguf.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service_test_util.h"

#define CHATML_X "<|im_start|>user\nx</s>y<|im_end|>\n<|im_start|>assistant\n"

/* The event loop's wake-up: on_news only signals. */
typedef struct loop {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            news;
    int             n_news;
} loop;

static void on_news(void *user)
{
    loop *l = user;
    pthread_mutex_lock(&l->mu);
    l->news = true;
    l->n_news++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Waits up to 200 ms for news (a poll also runs without, so a lost wake-up
 * shows as a slow test, and the count below catches it). */
static void loop_wait(loop *l)
{
    pthread_mutex_lock(&l->mu);
    if (!l->news) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    l->news = false;
    pthread_mutex_unlock(&l->mu);
}

/* What one choice read over the polls. */
typedef struct got {
    char    text[4096];
    size_t  len;
    int32_t n_tokens, n_generated;
    bool    done;
    int32_t first_id;
    float   first_lp;
    int32_t first_n_top;
} got;

/* Polls j (n choices) from the loop until it ends; returns its result. */
static vki_job_result drain(vki_job *j, loop *l, got *g, int32_t n)
{
    vki_job_choice ch[8];
    vki_job_result res = {0};
    if (!j) return res;
    for (int rounds = 0; rounds < 3000; rounds++) {
        CHECK(vki_job_poll(j, ch, n, &res) == VKI_OK);
        for (int32_t c = 0; c < n; c++) {
            CHECK(ch[c].text && strlen(ch[c].text) == ch[c].text_len);
            if (g[c].len + ch[c].text_len < sizeof g[c].text) {
                memcpy(g[c].text + g[c].len, ch[c].text, ch[c].text_len + 1);
                g[c].len += ch[c].text_len;
            }
            for (int32_t k = 0; k < ch[c].n_tokens; k++) {
                if (g[c].n_tokens + k == 0) {
                    g[c].first_id = ch[c].tokens[k].id;
                    g[c].first_lp = ch[c].tokens[k].logprob;
                    g[c].first_n_top = ch[c].tokens[k].n_top;
                }
                CHECK(ch[c].tokens[k].logprob <= 0);
            }
            g[c].n_tokens += ch[c].n_tokens;
            g[c].n_generated = ch[c].n_generated;
            g[c].done |= ch[c].done;
        }
        if (res.done) {
            /* one more look: whatever came between the two reads */
            CHECK(vki_job_poll(j, ch, n, &res) == VKI_OK);
            for (int32_t c = 0; c < n; c++) {
                CHECK(ch[c].text_len == 0 && ch[c].n_tokens == 0);
                g[c].done |= ch[c].done;
            }
            return res;
        }
        loop_wait(l);
    }
    CHECKF(false, "the job did not end in 600 s");
    return res;
}

static vki_gen_params loop_params(loop *l, int32_t n)
{
    vki_gen_params xp = vki_gen_default_params();
    xp.n_choices = n;
    xp.on_news = on_news;
    xp.news_user = l;
    return xp;
}

/* Two choices with logprobs, read by poll; the result's text is choice 0's. */
static void test_choices(vki_service *svc, loop *l)
{
    vki_generate_params gp = greedy(6);
    gp.temperature = 0.8f;
    gp.seed = 7;
    gp.logprobs = true;
    gp.n_top_logprobs = 3;
    vki_gen_params xp = loop_params(l, 2);
    const vki_chat_message msgs[] = {{"system", "be brief"}, {"user", "hello there"}};
    vki_job *j = NULL;
    l->n_news = 0;
    CHECKF(vki_service_chat(svc, "chat", msgs, 2, &xp, &gp, NULL, &j) == VKI_OK, "%s", vki_last_error());
    got g[2] = {0};
    vki_job_result r = drain(j, l, g, 2);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    CHECK(!strcmp(r.model, "chat") && r.fallback == VKI_FALLBACK_NONE);
    CHECK(r.queued && r.started && r.n_prompt > 0);
    CHECKF(r.n_generated == 12, "n_generated %d: 6 per choice", r.n_generated);
    CHECK(l->n_news > 0);
    for (int c = 0; c < 2; c++) {
        CHECKF(g[c].done && g[c].n_tokens == 6 && g[c].n_generated == 6, "choice %d: done %d, %d tokens", c,
               g[c].done, g[c].n_tokens);
        CHECK(g[c].first_n_top == 3);
    }
    CHECKF(r.text_len == g[0].len && !memcmp(r.text, g[0].text, g[0].len), "result '%s' vs choice 0 '%s'", r.text,
           g[0].text);
    /* the first token's piece, as a server renders logprobs */
    char piece[64];
    CHECK(vki_service_token_piece(svc, 0, g[0].first_id, piece, sizeof piece) >= 0);
    CHECK(vki_service_token_piece(svc, 0, -1, piece, sizeof piece) == -1);
    CHECK(vki_service_token_piece(svc, 99, g[0].first_id, piece, sizeof piece) == -1);
    vki_job_choice ch[2];
    CHECK(vki_job_poll(j, ch, 1, NULL) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "2 choices"), "%s", vki_last_error());
    vki_job_release(j);
}

/* The prompt tokens a request got: the job's n_prompt. */
static int32_t n_prompt_of(vki_service *svc, loop *l, vki_job *j)
{
    (void)svc;
    got g[1] = {0};
    vki_job_result r = drain(j, l, g, 1);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    vki_job_release(j);
    return r.n_prompt;
}

/* Renders CHATML_X with the content literal; counts its calls by model. */
typedef struct hook {
    int calls[8];
    bool fail;
} hook;

static vki_status render(int32_t model, vki_generate_params *gp, char **prompt, vki_prompt_span **literal,
                         size_t *n_literal, void *user)
{
    hook *h = user;
    if (model >= 0 && model < 8) h->calls[model]++;
    if (h->fail) return VKI_ERR_INVALID_ARGUMENT;
    *prompt = strdup(CHATML_X);
    *literal = malloc(sizeof **literal);
    if (!*prompt || !*literal) return VKI_ERR_OUT_OF_MEMORY;
    (*literal)[0] = (vki_prompt_span){strlen("<|im_start|>user\n"), strlen("x</s>y")};
    *n_literal = 1;
    gp->parse_special = true;
    return VKI_OK;
}

/* "</s>" in a message stays text: the chat's prompt has the tokens of the
 * all-literal text, more than with "</s>" parsed as the special token; the
 * service's renderer and a caller's agree. */
static void test_literal(vki_service *svc, loop *l)
{
    vki_generate_params gp = greedy(1);
    vki_gen_params xp = loop_params(l, 1);
    vki_job *j;
    const vki_chat_message msg = {"user", "x</s>y"};
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, &gp, NULL, &j) == VKI_OK);
    const int32_t chat = n_prompt_of(svc, l, j);
    hook h = {0};
    xp.render = render;
    xp.render_user = &h;
    CHECK(vki_service_chat(svc, "chat", NULL, 0, &xp, &gp, NULL, &j) == VKI_OK);
    const int32_t hooked = n_prompt_of(svc, l, j);
    xp.render = NULL;
    gp.parse_special = false;
    CHECK(vki_service_generate_ex(svc, "chat", CHATML_X, NULL, 0, &xp, &gp, NULL, &j) == VKI_OK);
    const int32_t text = n_prompt_of(svc, l, j);
    gp.parse_special = true;
    CHECK(vki_service_generate_ex(svc, "chat", CHATML_X, NULL, 0, &xp, &gp, NULL, &j) == VKI_OK);
    const int32_t special = n_prompt_of(svc, l, j);
    CHECKF(chat == text && hooked == text && special < text, "chat %d, renderer %d, literal text %d, parsed %d", chat,
           hooked, text, special);
    CHECK(h.calls[0] == 1);
}

/* A caller's renderer runs for each model tried: not for the missing one,
 * once for its fallback; its failure ends the job (at submit: returned). */
static void test_renderer_fallback(vki_service *svc, loop *l)
{
    hook h = {0};
    vki_gen_params xp = loop_params(l, 1);
    xp.render = render;
    xp.render_user = &h;
    vki_generate_params gp = greedy(2);
    vki_job *j;
    CHECK(vki_service_chat(svc, "gone", NULL, 0, &xp, &gp, NULL, &j) == VKI_OK);
    got g[1] = {0};
    vki_job_result r = drain(j, l, g, 1);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    CHECK(!strcmp(r.model, "chat") && !strcmp(r.requested, "gone") && r.fallback == VKI_FALLBACK_MISSING);
    CHECK(r.model_index == vki_service_model_find(svc, "chat"));
    CHECK(g[0].len > 0 && g[0].done);
    vki_job_release(j);
    const int32_t gone = vki_service_model_find(svc, "gone");
    CHECKF(h.calls[gone] == 0 && h.calls[0] == 1, "calls: gone %d, chat %d", h.calls[gone], h.calls[0]);
    h.fail = true;
    j = (vki_job *)1;
    CHECK(vki_service_chat(svc, "chat", NULL, 0, &xp, &gp, NULL, &j) == VKI_ERR_INVALID_ARGUMENT && !j);
}

/* Token ids as the prompt: the same output as their text. */
static void test_ids(vki_service *svc, loop *l)
{
    vki_generate_params gp = greedy(4);
    vki_gen_params xp = loop_params(l, 1);
    const int32_t ids[] = {1, 300, 301, 302};
    vki_job *j;
    CHECK(vki_service_generate_ex(svc, "chat", NULL, ids, 4, &xp, &gp, NULL, &j) == VKI_OK);
    got g[1] = {0};
    vki_job_result r = drain(j, l, g, 1);
    CHECKF(r.status == VKI_OK && r.n_prompt == 4 && g[0].len > 0, "%s: n_prompt %d", r.message, r.n_prompt);
    vki_job_release(j);
}

static void test_bad_arguments(vki_service *svc)
{
    vki_job *j;
    vki_gen_params xp = vki_gen_default_params();
    const vki_chat_message msg = {"user", "hi"}, bad = {NULL, "hi"};
    CHECK(vki_service_chat(svc, "chat", NULL, 0, NULL, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_chat(svc, "chat", &bad, 1, NULL, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "messages[0].role"), "%s", vki_last_error());
    CHECK(vki_service_chat(svc, "emb", &msg, 1, NULL, NULL, NULL, &j) == VKI_ERR_UNSUPPORTED);
    xp.n_choices = -1;
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    xp.n_choices = 5; /* the model has 4 sequences */
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "n_seq_max") || strstr(vki_last_error(), "4"), "%s", vki_last_error());
    xp = vki_gen_default_params();
    xp.tools_json = "{\"not\": \"an array\"}";
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "tools_json"), "%s", vki_last_error());
    CHECK(vki_service_generate_ex(svc, "chat", "hi", NULL, 0, &xp, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_generate_ex(svc, "chat", NULL, NULL, 0, NULL, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    const int32_t far[] = {1 << 30};
    CHECK(vki_service_generate_ex(svc, "chat", NULL, far, 1, NULL, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    vki_job_choice ch;
    CHECK(vki_job_poll(NULL, &ch, 1, NULL) == VKI_ERR_INVALID_ARGUMENT);
    const char *texts[] = {"a"};
    CHECK(vki_service_embed(svc, "emb", texts, 1, NULL, &j) == VKI_OK);
    CHECK(vki_job_poll(j, &ch, 1, NULL) == VKI_ERR_INVALID_ARGUMENT);
    vki_job_release(j);
}

/* Released while it runs: no wake-up after vki_job_release returns. */
static void test_release_running(vki_service *svc, loop *l)
{
    vki_generate_params gp = greedy(200);
    vki_gen_params xp = loop_params(l, 1);
    const vki_chat_message msg = {"user", "a long one"};
    vki_job *j;
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, &gp, NULL, &j) == VKI_OK);
    loop_wait(l);
    vki_job_release(j);
    pthread_mutex_lock(&l->mu);
    const int after = l->n_news;
    pthread_mutex_unlock(&l->mu);
    usleep(300 * 1000);
    pthread_mutex_lock(&l->mu);
    CHECKF(l->n_news == after, "%d wake-ups after the release", l->n_news - after);
    pthread_mutex_unlock(&l->mu);
}

/* The hook changed while the job runs: none after it is stopped, the new
 * one's after it is set; a job kept on its model (vki_job_stay) ends well. */
static void test_set_news(vki_service *svc, loop *l)
{
    vki_generate_params gp = greedy(200);
    vki_gen_params xp = loop_params(l, 1);
    const vki_chat_message msg = {"user", "tell me more"};
    vki_job *j;
    CHECK(vki_service_chat(svc, "chat", &msg, 1, &xp, &gp, NULL, &j) == VKI_OK);
    vki_job_stay(j);
    vki_job_set_news(j, NULL, NULL);
    pthread_mutex_lock(&l->mu);
    const int before = l->n_news;
    pthread_mutex_unlock(&l->mu);
    usleep(20 * 1000);
    pthread_mutex_lock(&l->mu);
    CHECKF(l->n_news == before, "%d wake-ups with the hook stopped", l->n_news - before);
    pthread_mutex_unlock(&l->mu);
    loop other = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    vki_job_result now;
    vki_job_get_result(j, &now);
    vki_job_set_news(j, on_news, &other);
    got g[1] = {0};
    vki_job_result r = drain(j, &other, g, 1);
    CHECKF(r.status == VKI_OK && g[0].done && g[0].n_generated == 200, "%s", r.message);
    /* news came to the new hook, unless the job had ended before it was set */
    CHECKF(other.n_news > 0 || now.done, "no wake-up through the new hook");
    vki_job_release(j);
    vki_job_stay(NULL);
    vki_job_set_news(NULL, NULL, NULL);
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service_chat", "");
    vki_service_params sp = vki_service_default_params();
    sp.engine.n_threads = 2;
    vki_service *svc = NULL;
    CHECK(vki_service_create(&sp, &svc) == VKI_OK);
    svc_add_test_models(svc, argv[1], argv[2], VKI_BACKEND_CPU, 4, true);
    vki_service_wait_loaded(svc, 60000);
    loop l = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    test_bad_arguments(svc);
    test_choices(svc, &l);
    test_literal(svc, &l);
    test_renderer_fallback(svc, &l);
    test_ids(svc, &l);
    test_release_running(svc, &l);
    test_set_news(svc, &l);
    vki_service_destroy(svc);
    return test_finish("test_service_chat");
}
