/* cmd_pull.c: `vkinfer pull`: fetches a model from a Hugging Face hub or a
 * URL into the models folder (cli/pull/) and prints the local path that
 * run/serve/embed take. Progress and notes go to stderr, the path to stdout. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_pull_help[] =
    "download a model from a Hugging Face hub or a URL (resumable, checksum-verified)\n"
    "usage: vkinfer pull [options] (hf://ORG/REPO[:FILE] | https://.../FILE)\n"
    "  hf://ORG/REPO:FILE    one file of the repository (FILE may be in a subfolder)\n"
    "  hf://ORG/REPO         its GGUF file when it has exactly one (several: an error lists them), else its\n"
    "                        safetensors model: config.json, tokenizer.json, tokenizer_config.json,\n"
    "                        generation_config.json, *.safetensors and the shard index\n"
    "  https://.../FILE      one file, saved as DIR/FILE\n"
    "  --dir DIR             models folder (default $XDG_DATA_HOME/vkinfer/models, else\n"
    "                        ~/.local/share/vkinfer/models); a repository goes to DIR/ORG/REPO/\n"
    "  --hub URL             hub address (default $VKI_HUB_URL, else https://huggingface.co)\n"
    "  --revision REV        branch, tag or commit (default main)\n"
    "  --token TOKEN         access token for gated or private repositories (default $HF_TOKEN); sent to\n"
    "                        the hub's host only, never printed\n"
    "  --sha256 HEX          URLs: the expected SHA-256 (default: the server's X-Linked-Etag, if any)\n"
    "  --retries N           tries after the first for connection errors, timeouts, 429 and 5xx, each\n"
    "                        resuming where the last stopped (default 5)\n"
    "  --stall-timeout S     a transfer that receives nothing for S seconds fails and is retried (default 30)\n"
    "  -q, --quiet           errors only (no progress, no notes)\n"
    "Files go to FILE.part first and are renamed once their size and checksum (sha256 for LFS files, git's\n"
    "blob sha1 for others, as the hub publishes them) match; an interrupted pull resumes from the .part.\n"
    "Prints the local path (the GGUF file or the model folder) on stdout. Exit 0 on success, 1 on error.\n";

#ifdef VKI_HAVE_PULL
#include "pull.h"

int cmd_pull(int argc, char **argv)
{
    pull_params p = pull_default_params();
    const char *spec = NULL;
    long lv;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dir")) {
            if (!cli_arg_str(argc, argv, &i, &p.dir)) return 1;
        } else if (!strcmp(a, "--hub")) {
            if (!cli_arg_str(argc, argv, &i, &p.hub)) return 1;
        } else if (!strcmp(a, "--revision")) {
            if (!cli_arg_str(argc, argv, &i, &p.revision)) return 1;
        } else if (!strcmp(a, "--token")) {
            if (!cli_arg_str(argc, argv, &i, &p.token)) return 1;
        } else if (!strcmp(a, "--sha256")) {
            if (!cli_arg_str(argc, argv, &i, &p.sha256)) return 1;
        } else if (!strcmp(a, "--retries")) {
            if (!cli_arg_int(argc, argv, &i, 0, 100, &lv)) return 1;
            p.retries = (int32_t)lv;
        } else if (!strcmp(a, "--stall-timeout")) {
            if (!cli_arg_int(argc, argv, &i, 1, 3600, &lv)) return 1;
            p.stall_s = (int32_t)lv;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            p.quiet = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("pull: unknown option '%s' (see vkinfer pull --help)", a);
        } else if (spec) {
            return cli_error("pull: one model at a time ('%s' and '%s')", spec, a);
        } else {
            spec = a;
        }
    }
    if (!spec) return cli_error("pull: which model? (vkinfer pull hf://ORG/REPO[:FILE]; see --help)");
    if (p.sha256 && strncmp(spec, "http", 4))
        return cli_error("pull: --sha256 is for URLs; the hub publishes the checksums of hf:// files");
    char *path = NULL;
    vki_status s = pull_model(spec, &p, &path);
    if (s != VKI_OK) return cli_status_error(s, "pull");
    printf("%s\n", path);
    free(path);
    return 0;
}
#else
int cmd_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("pull: this vkinfer was built without libcurl/libcrypto (see scripts/deps.sh)");
}
#endif
