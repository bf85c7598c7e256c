/* A program that knows vkinfer only through its installed header and library. */
#include <stdio.h>
#include <string.h>

#include <vkinfer.h>

int main(void)
{
    if (vki_version_number() != VKI_VERSION_NUMBER) {
        fprintf(stderr, "header %d vs library %d\n", VKI_VERSION_NUMBER, vki_version_number());
        return 1;
    }
    vki_model *model = NULL;
    vki_engine *eng = NULL;
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = 1;
    if (vki_engine_create(&ep, &eng) != VKI_OK) {
        fprintf(stderr, "engine: %s\n", vki_last_error());
        return 1;
    }
    /* A missing file must fail cleanly with a message naming it. */
    vki_status s = vki_model_load(eng, "/nonexistent/model.gguf", NULL, &model);
    int ok = s == VKI_ERR_NOT_FOUND && model == NULL && strstr(vki_last_error(), "/nonexistent/model.gguf");
    vki_engine_destroy(eng);
    printf("vkinfer %s: %s\n", vki_version_string(), ok ? "ok" : vki_last_error());
    return ok ? 0 : 1;
}
