/* test_api_example.c: compiles the usage example at the top of
 * include/vkinfer.h (extracted at build time, so the two cannot drift) and
 * runs it on stories260K (linked as model.gguf in a scratch folder). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <vkinfer.h>

#include "test_util.h"

static int n_tokens;

static bool on_token(const vki_token_event *ev, void *user)
{
    (void)user;
    n_tokens++;
    fputs(ev->text, stdout);
    return true;
}

static int run_example(void)
{
#include "api_example.inc"
    return 0;
}

int main(void)
{
    const char *model = test_shared_path("models/stories260K.gguf");
    char dir[] = "/tmp/vki_api_example_XXXXXX";
    if (!mkdtemp(dir)) test_skip("cannot create a scratch folder");
    char link[256];
    snprintf(link, sizeof link, "%s/model.gguf", dir);
    char abs[4096];
    if (!realpath(model, abs) || symlink(abs, link) != 0 || chdir(dir) != 0) {
        fprintf(stderr, "cannot link %s into %s\n", model, dir);
        return 1;
    }
    int rc = run_example();
    printf("\n");
    unlink(link);
    rmdir(dir);
    CHECKF(rc == 0, "the example returned %d", rc);
    CHECKF(n_tokens == 32, "the example streamed %d tokens, expected 32", n_tokens);
    return test_finish("test_api_example");
}
