/*
 * example.c: vkinfer-example, the smallest complete program on the public
 * API. It includes only <vkinfer.h> and links only libvkinfer: load a model,
 * then either continue a prompt greedily (streaming each token) or, for an
 * embedding model, print the first values of the prompt's embedding.
 * usage: vkinfer-example MODEL [PROMPT] [N_TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>

#include <vkinfer.h>

static bool on_token(const vki_token_event *ev, void *user)
{
    (void)user;
    fputs(ev->text, stdout);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT] [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    vki_engine *eng = NULL;
    vki_model *model = NULL;
    float *emb = NULL;
    int rc = 1;
    vki_status s = vki_engine_create(NULL, &eng);
    if (s != VKI_OK) goto fail;
    vki_model_params mp = vki_model_default_params();
    mp.backend = VKI_BACKEND_AUTO;
    if ((s = vki_model_load(eng, argv[1], &mp, &model)) != VKI_OK) goto fail;
    fprintf(stderr, "%s model on %s\n", vki_model_arch(model), vki_model_backend_name(model));

    if (vki_model_is_embedding(model)) {
        int32_t dim = vki_model_n_embd(model);
        if (!(emb = malloc(sizeof *emb * (size_t)dim))) goto fail;
        if ((s = vki_embed(model, &prompt, 1, NULL, emb)) != VKI_OK) goto fail;
        printf("dim %d:", (int)dim);
        for (int32_t i = 0; i < dim && i < 8; i++) printf(" %.5f", emb[i]);
        printf(" ...\n");
    } else {
        vki_generate_params gp = vki_generate_default_params();
        gp.temperature = 0.0f; /* greedy: the same text every run */
        gp.n_predict = argc > 3 ? atoi(argv[3]) : 32;
        vki_generate_stats st;
        fputs(prompt, stdout);
        if ((s = vki_generate(model, prompt, &gp, on_token, NULL, &st)) != VKI_OK) goto fail;
        printf("\n");
        fprintf(stderr, "%d tokens, %.1f tok/s\n", (int)st.n_generated,
                st.gen_ms > 0 ? st.n_generated * 1000.0 / st.gen_ms : 0.0);
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "vkinfer-example: %s: %s\n", vki_status_str(s), vki_last_error());
    free(emb);
    vki_model_destroy(model);
    vki_engine_destroy(eng);
    return rc;
}
