/* pull.c: pull_model(): the settings (flags, then environment, then
 * defaults), the plan (hub.c), the disk-space check over the whole plan
 * before the first byte, then each file (download.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "pull_internal.h"

pull_params pull_default_params(void)
{
    return (pull_params){.retries = 5, .stall_s = 30, .connect_s = 30};
}

bool pull_default_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    /* The XDG spec: a relative XDG_DATA_HOME is invalid and ignored. */
    if (xdg && xdg[0] == '/') snprintf(buf, size, "%s/vkinfer/models", xdg);
    else if (home && home[0] == '/') snprintf(buf, size, "%s/.local/share/vkinfer/models", home);
    else {
        vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: no models folder: set XDG_DATA_HOME or HOME, or give --dir");
        return false;
    }
    return true;
}

bool pull_is_remote(const char *spec)
{
    return !strncmp(spec, "hf://", 5) || !strncmp(spec, "https://", 8) || !strncmp(spec, "http://", 7);
}

static bool make_dirs(const char *dir)
{
    char buf[4200];
    if ((size_t)snprintf(buf, sizeof buf, "%s/", dir) >= sizeof buf) return false;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        bool ok = mkdir(buf, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok) return false;
    }
    return true;
}

static vki_status setup(pull_ctx *ctx, const pull_params *p)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return vki_fail(VKI_ERR_INTERNAL, "pull: libcurl failed to initialise");
        global_done = true;
    }
    ctx->p = p ? *p : pull_default_params();
    if (ctx->p.retries < 0) ctx->p.retries = 0;
    if (ctx->p.stall_s <= 0) ctx->p.stall_s = 30;
    if (ctx->p.connect_s <= 0) ctx->p.connect_s = 30;
    if (!ctx->p.revision || !ctx->p.revision[0]) ctx->p.revision = "main";
    if (!ctx->p.token) ctx->p.token = getenv("HF_TOKEN");
    if (ctx->p.dir) {
        if ((size_t)snprintf(ctx->dir, sizeof ctx->dir, "%s", ctx->p.dir) >= sizeof ctx->dir)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: --dir is too long");
    } else if (!pull_default_dir(ctx->dir, sizeof ctx->dir)) {
        return VKI_ERR_INVALID_ARGUMENT;
    }
    const char *hub = ctx->p.hub ? ctx->p.hub : getenv("VKI_HUB_URL");
    if (!hub || !hub[0]) hub = "https://huggingface.co";
    if (strncmp(hub, "https://", 8) && strncmp(hub, "http://", 7))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: hub address '%s' is not an http:// or https:// URL", hub);
    if ((size_t)snprintf(ctx->hub, sizeof ctx->hub, "%s", hub) >= sizeof ctx->hub)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: hub address too long");
    for (size_t n = strlen(ctx->hub); n && ctx->hub[n - 1] == '/';) ctx->hub[--n] = '\0';
    CURLU *u = curl_url();
    char *host = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, ctx->hub, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(ctx->hub_host, sizeof ctx->hub_host, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
    if (!ctx->hub_host[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: hub address '%s' has no host", hub);
    /* Test hook (tests/cli/test_pull.py): pretend the disk has this many
     * bytes free, to test the disk-full paths without filling a disk. */
    const char *lim = getenv("VKI_PULL_TEST_FREE_BYTES");
    ctx->free_limit = lim && lim[0] ? strtoll(lim, NULL, 10) : -1;
    if (!(ctx->curl = curl_easy_init())) return vki_fail(VKI_ERR_INTERNAL, "pull: libcurl failed to initialise");
    return VKI_OK;
}

/* Bytes still to fetch for the plan: what each file lacks beyond its .part
 * (files complete under their final name count as nothing); -1 when a
 * size is unknown (plain URLs: checked when the answer says it). */
static int64_t bytes_needed(const pull_plan *pl, int64_t *total)
{
    int64_t need = 0;
    *total = 0;
    for (int32_t i = 0; i < pl->n; i++) {
        const pull_item *it = &pl->items[i];
        if (it->size < 0) return -1;
        *total += it->size;
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", pl->dest_dir, it->rel);
        if (stat(path, &st) == 0 && st.st_size == it->size) continue;
        strcat(path, ".part");
        int64_t have = stat(path, &st) == 0 && st.st_size <= it->size ? st.st_size : 0;
        need += it->size - have;
    }
    return need;
}

vki_status pull_model(const char *spec, const pull_params *p, char **local_path)
{
    *local_path = NULL;
    pull_ctx ctx = {0};
    pull_plan pl = {0};
    vki_status s = setup(&ctx, p);
    if (s == VKI_OK) {
        if (!strncmp(spec, "hf://", 5)) s = hub_plan(&ctx, spec, &pl);
        else if (pull_is_remote(spec)) s = url_plan(&ctx, spec, &pl);
        else s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "pull: '%s' is not hf://ORG/REPO[:FILE] or an http(s):// URL", spec);
    }
    if (s == VKI_OK && !make_dirs(pl.dest_dir))
        s = vki_fail(VKI_ERR_INTERNAL, "%s: cannot create the folder: %s", pl.dest_dir, strerror(errno));
    int64_t total = 0, need = s == VKI_OK ? bytes_needed(&pl, &total) : 0;
    if (s == VKI_OK && need > 0) {
        int64_t free_b = download_free_bytes(&ctx, pl.dest_dir);
        char a[32], b[32];
        progress_bytes(a, sizeof a, (double)need);
        progress_bytes(b, sizeof b, (double)free_b);
        if (need > free_b)
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: not enough disk space in %s: %s to download, %s free", spec,
                         pl.dest_dir, a, b);
        else if (!ctx.p.quiet)
            fprintf(stderr, "vkinfer: pull: %s: %d file%s, %s to download into %s\n", spec, pl.n, pl.n == 1 ? "" : "s",
                    a, pl.dest_dir);
    }
    for (int32_t i = 0; s == VKI_OK && i < pl.n; i++) s = download_item(&ctx, &pl.items[i], pl.dest_dir);
    if (s == VKI_OK && !(*local_path = strdup(pl.result))) s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    plan_free(&pl);
    if (ctx.curl) curl_easy_cleanup(ctx.curl);
    return s;
}
