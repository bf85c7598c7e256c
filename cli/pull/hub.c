/* hub.c: from what the user typed to the files to fetch. hf://ORG/REPO[:FILE]
 * is resolved the way the Hugging Face hub publishes a repository: the
 * listing GET /api/models/REPO/tree/REV?recursive=true (JSON entries
 * {type, path, size, oid, lfs: {oid, size}}, paged with a Link header),
 * files at /REPO/resolve/REV/PATH. Picks one GGUF or a safetensors folder;
 * never trusts a listed path before hub_safe_path says it stays inside the
 * models folder. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pull_internal.h"

void plan_free(pull_plan *pl)
{
    for (int32_t i = 0; i < pl->n; i++) {
        free(pl->items[i].url);
        free(pl->items[i].rel);
    }
    free(pl->items);
    free(pl->dest_dir);
    free(pl->result);
    memset(pl, 0, sizeof *pl);
}

bool hub_safe_path(const char *rel)
{
    if (!rel[0] || rel[0] == '/') return false;
    for (const char *s = rel; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\') return false;
        s += n + (e ? 1 : 0);
        if (e && !*s) return false; /* trailing '/' */
    }
    return true;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* ORG/REPO or REPO: the hub's rule for names (letters, digits, "-_.",
 * not starting with "." or "-"). */
static bool valid_repo(const char *r)
{
    int slashes = 0;
    const char *seg = r;
    for (const char *p = r;; p++) {
        if (*p == '/' || !*p) {
            if (p == seg || *seg == '.' || *seg == '-') return false;
            if (!*p) break;
            slashes++;
            seg = p + 1;
            continue;
        }
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') && !strchr("-_.", *p))
            return false;
    }
    return slashes <= 1 && strlen(r) <= 200;
}

/* PATH with each segment percent-escaped, '/' kept. */
static char *escape_path(CURL *c, const char *path)
{
    size_t cap = strlen(path) * 3 + 1, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (const char *s = path;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char *esc = curl_easy_escape(c, s, (int)len);
        if (!esc) {
            free(out);
            return NULL;
        }
        n += (size_t)snprintf(out + n, cap - n, "%s%s", esc, e ? "/" : "");
        curl_free(esc);
        if (!e) break;
        s = e + 1;
    }
    return out;
}

static vki_status add_item(pull_ctx *ctx, pull_plan *pl, const char *repo, const char *rev_esc, const cJSON *e)
{
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
    pull_item *items = realloc(pl->items, sizeof *items * (size_t)(pl->n + 1));
    if (!items) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    pl->items = items;
    pull_item *it = memset(&items[pl->n], 0, sizeof *it);
    const cJSON *lfs = cJSON_GetObjectItem(e, "lfs");
    const cJSON *size = cJSON_GetObjectItem(lfs ? lfs : e, "size");
    it->size = cJSON_IsNumber(size) ? (int64_t)size->valuedouble : -1;
    const char *oid = cJSON_GetStringValue(cJSON_GetObjectItem(lfs ? lfs : e, "oid"));
    if (oid && lfs && digest_is_hex(oid, 32)) snprintf(it->sha256, sizeof it->sha256, "%s", oid);
    else if (oid && !lfs && digest_is_hex(oid, 20)) snprintf(it->sha1, sizeof it->sha1, "%s", oid);
    char *pe = escape_path(ctx->curl, path);
    it->url = pe ? str_printf("%s/%s/resolve/%s/%s", ctx->hub, repo, rev_esc, pe) : NULL;
    it->rel = strdup(path);
    free(pe);
    pl->n++;
    if (!it->url || !it->rel) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    return VKI_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Files of the listing (type "file" only), all pages, into *out (a JSON array). */
static vki_status list_repo(pull_ctx *ctx, const char *spec, const char *repo, const char *rev_esc, cJSON **out)
{
    http_resp r = {0};
    http_resp_reset(&r);
    cJSON *all = cJSON_CreateArray();
    char *url = str_printf("%s/api/models/%s/tree/%s?recursive=true", ctx->hub, repo, rev_esc);
    vki_status s = all && url ? VKI_OK : vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    for (int page = 0; s == VKI_OK && url; page++) {
        if ((s = http_get(ctx, url, &r)) != VKI_OK) {
            if (r.status == 404 && !r.error_code[0] && page == 0)
                vki_fail(VKI_ERR_NOT_FOUND, "%s: repository or revision '%s' not found (%s)", spec, ctx->p.revision,
                         vki_last_error());
            else vki_fail_prefix(s, "%s", spec);
            break;
        }
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        if (!cJSON_IsArray(j)) {
            cJSON_Delete(j);
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: the hub's file listing (%s) is not a JSON array", spec, url);
            break;
        }
        cJSON *e;
        while ((e = cJSON_DetachItemFromArray(j, 0))) {
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
            const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
            if (type && !strcmp(type, "file") && path) cJSON_AddItemToArray(all, e);
            else cJSON_Delete(e);
        }
        cJSON_Delete(j);
        free(url);
        url = r.link_next[0] && page < 10000 ? strdup(r.link_next) : NULL;
    }
    free(url);
    http_resp_reset(&r);
    if (s != VKI_OK) cJSON_Delete(all);
    else *out = all;
    return s;
}

static const cJSON *find_entry(const cJSON *files, const char *path)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, files)
    if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "path")), path)) return e;
    return NULL;
}

/* "a.gguf, b.gguf" (at most ~700 bytes; then ", ...") of the files matching suffix. */
static void name_files(const cJSON *files, const char *prefix, const char *suffix, char *buf, size_t size)
{
    size_t n = 0;
    const cJSON *e;
    buf[0] = '\0';
    cJSON_ArrayForEach(e, files)
    {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
        if (suffix && !ends_with(p, suffix)) continue;
        if (n + strlen(prefix) + strlen(p) + 8 >= size) {
            snprintf(buf + n, size - n, ", ...");
            return;
        }
        n += (size_t)snprintf(buf + n, size - n, "%s%s%s", n ? ", " : "", prefix, p);
    }
}

static vki_status pick_files(pull_ctx *ctx, const char *spec, const char *repo, const char *file, const char *rev_esc,
                             const cJSON *files, pull_plan *pl)
{
    char list[768], prefix[300];
    snprintf(prefix, sizeof prefix, "hf://%s:", repo);
    if (file) {
        const cJSON *e = find_entry(files, file);
        if (!e) {
            name_files(files, "", ".gguf", list, sizeof list);
            return vki_fail(VKI_ERR_NOT_FOUND, "%s: no file '%s' in the repository at revision '%s'%s%s", spec, file,
                            ctx->p.revision, list[0] ? "; its GGUF files: " : "", list);
        }
        return add_item(ctx, pl, repo, rev_esc, e);
    }
    int n_gguf = 0, n_st = 0;
    const cJSON *gguf = NULL, *e;
    cJSON_ArrayForEach(e, files)
    {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
        if (ends_with(p, ".gguf")) n_gguf++, gguf = e;
        if (ends_with(p, ".safetensors") && !strchr(p, '/')) n_st++;
    }
    if (n_gguf == 1) return add_item(ctx, pl, repo, rev_esc, gguf);
    if (n_gguf > 1) {
        name_files(files, prefix, ".gguf", list, sizeof list);
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s holds %d GGUF files; choose one: %s", spec, n_gguf, list);
    }
    if (n_st == 0) {
        name_files(files, "", NULL, list, sizeof list);
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: no .gguf file and no .safetensors model at revision '%s' (files: %s)",
                        spec, ctx->p.revision, list[0] ? list : "none");
    }
    /* A safetensors model is a folder: the config and tokenizer the
     * loader reads beside the weights, every top-level shard and its index. */
    static const char *const required[] = {"config.json", "tokenizer.json"};
    for (size_t i = 0; i < 2; i++)
        if (!find_entry(files, required[i]))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a safetensors model without %s (vkinfer needs config.json and "
                            "tokenizer.json beside the weights)", spec, required[i]);
    cJSON_ArrayForEach(e, files)
    {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
        bool want = !strcmp(p, "config.json") || !strcmp(p, "tokenizer.json") || !strcmp(p, "tokenizer_config.json") ||
                    !strcmp(p, "generation_config.json") ||
                    (!strchr(p, '/') && (ends_with(p, ".safetensors") || ends_with(p, ".safetensors.index.json")));
        if (want) VKI_TRY(add_item(ctx, pl, repo, rev_esc, e));
    }
    return VKI_OK;
}

vki_status hub_plan(pull_ctx *ctx, const char *spec, pull_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    const char *body = spec + strlen("hf://");
    const char *colon = strchr(body, ':');
    char repo[256];
    size_t rn = colon ? (size_t)(colon - body) : strlen(body);
    if (rn >= sizeof repo) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: repository name too long", spec);
    memcpy(repo, body, rn);
    repo[rn] = '\0';
    if (rn && repo[rn - 1] == '/') repo[--rn] = '\0';
    if (!valid_repo(repo))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: expected hf://ORG/REPO or hf://ORG/REPO:FILE (ORG and REPO: "
                        "letters, digits, '-', '_', '.')", spec);
    const char *file = colon ? colon + 1 : NULL;
    if (file && !hub_safe_path(file))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: '%s' is not a file path inside the repository", spec, file);
    char *rev_esc = curl_easy_escape(ctx->curl, ctx->p.revision, 0);
    if (!rev_esc) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    cJSON *files = NULL;
    vki_status s = list_repo(ctx, spec, repo, rev_esc, &files);
    if (s == VKI_OK) s = pick_files(ctx, spec, repo, file, rev_esc, files, pl);
    for (int32_t i = 0; s == VKI_OK && i < pl->n; i++)
        if (!hub_safe_path(pl->items[i].rel))
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: the hub lists an unsafe path '%s'", spec, pl->items[i].rel);
    if (s == VKI_OK) {
        pl->dest_dir = str_printf("%s/%s", ctx->dir, repo);
        /* One file (a GGUF, or the FILE asked for) is loaded as itself; a
         * safetensors model as its folder. */
        pl->result = !pl->dest_dir ? NULL
                   : pl->n == 1    ? str_printf("%s/%s", pl->dest_dir, pl->items[0].rel)
                                   : strdup(pl->dest_dir);
        if (!pl->result) s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    }
    curl_free(rev_esc);
    cJSON_Delete(files);
    if (s != VKI_OK) plan_free(pl);
    return s;
}

vki_status url_plan(pull_ctx *ctx, const char *url, pull_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    CURLU *u = curl_url();
    char *path = NULL;
    vki_status s = VKI_OK;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK)
        s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: not a valid URL", url);
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (s == VKI_OK && (!base || !hub_safe_path(base)))
        s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: the URL does not end in a file name to save it as", url);
    if (s == VKI_OK && ctx->p.sha256 && !digest_is_hex(ctx->p.sha256, 32))
        s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "--sha256 '%s' is not 64 hex digits", ctx->p.sha256);
    if (s == VKI_OK) {
        pl->items = calloc(1, sizeof *pl->items);
        if (pl->items) {
            pl->n = 1;
            pl->items[0].size = -1;
            pl->items[0].url = strdup(url);
            pl->items[0].rel = strdup(base);
            if (ctx->p.sha256)
                for (int i = 0; i < 64; i++) pl->items[0].sha256[i] = (char)(ctx->p.sha256[i] | 0x20);
        }
        pl->dest_dir = strdup(ctx->dir);
        pl->result = str_printf("%s/%s", ctx->dir, base);
        if (!pl->items || !pl->items[0].url || !pl->items[0].rel || !pl->dest_dir || !pl->result)
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "pull: out of memory");
    }
    curl_free(path);
    curl_url_cleanup(u);
    if (s != VKI_OK) plan_free(pl);
    return s;
}
