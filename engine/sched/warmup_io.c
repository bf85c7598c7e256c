/*
 * warmup_io.c: the usage history on disk, as JSON:
 *   {"version": 1, "as_of": unix_s, "models": {"<id>": {"hours": [168],
 *    "active": [168], "first": s, "last": s, "load_ms": ms, "requests": n,
 *    "last_active_hour": h}}}
 * A file from a newer version, or one that does not parse, is refused as a
 * whole (BAD_FILE): the caller starts empty rather than half-trusting it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine/sched/warmup.h"
#include "error.h"

#define WARM_FILE_VERSION 1
#define WARM_FILE_MAX     (16u << 20) /* a history is kilobytes; refuse anything absurd */

static char *read_all(const char *path, vki_status *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = errno == ENOENT ? vki_fail(VKI_ERR_NOT_FOUND, "warm-up history %s: not there yet", path)
                              : vki_fail(VKI_ERR_BAD_FILE, "warm-up history %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(WARM_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, WARM_FILE_MAX + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!buf || err || n > WARM_FILE_MAX) {
        free(buf);
        *st = !buf ? vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history %s: no memory", path)
                   : vki_fail(VKI_ERR_BAD_FILE, "warm-up history %s: %s", path,
                              err ? "read error" : "larger than 16 MiB");
        return NULL;
    }
    buf[n] = 0;
    *st = VKI_OK;
    return buf;
}

static bool num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return false;
    *out = v->valuedouble;
    return true;
}

static bool hours(const cJSON *o, const char *key, double *dst)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != WARM_HOURS) return false;
    int k = 0;
    for (const cJSON *v = a->child; v; v = v->next, k++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) return false;
        dst[k] = v->valuedouble;
    }
    return true;
}

vki_status warm_load(warm_history *h, const char *path)
{
    vki_status st;
    char *text = read_all(path, &st);
    if (!text) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    warm_history tmp;
    warm_init(&tmp, &h->p);
    double ver = 0;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!root || !num(root, "version", &ver) || !num(root, "as_of", &tmp.as_of_s) || !cJSON_IsObject(models)) {
        st = vki_fail(VKI_ERR_BAD_FILE, "warm-up history %s: not a history file (needs version, as_of, models)", path);
        goto fail;
    }
    if (ver != WARM_FILE_VERSION) {
        st = vki_fail(VKI_ERR_BAD_FILE, "warm-up history %s: version %g, this build reads %d", path, ver,
                      WARM_FILE_VERSION);
        goto fail;
    }
    for (const cJSON *m = models->child; m; m = m->next) {
        warm_model *wm = m->string && m->string[0] ? warm_model_get(&tmp, m->string) : NULL;
        double req = 0, lah = -1;
        if (!m->string || !m->string[0]) {
            st = vki_fail(VKI_ERR_BAD_FILE, "warm-up history %s: a model with an empty id", path);
            goto fail;
        }
        if (!wm) {
            st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history %s: no memory", path);
            goto fail;
        }
        if (!hours(m, "hours", wm->hour) || !hours(m, "active", wm->active) || !num(m, "first", &wm->first_s) ||
            !num(m, "last", &wm->last_s) || !num(m, "load_ms", &wm->load_ms) || !num(m, "requests", &req) ||
            !num(m, "last_active_hour", &lah) || req < 0 || wm->load_ms < 0) {
            st = vki_fail(VKI_ERR_BAD_FILE,
                          "warm-up history %s: model '%s' needs hours and active (168 non-negative numbers each), "
                          "first, last, load_ms, requests and last_active_hour",
                          path, m->string);
            goto fail;
        }
        wm->n_requests = (uint64_t)req;
        wm->last_active_hour = (int64_t)lah;
    }
    cJSON_Delete(root);
    warm_free(h);
    *h = tmp;
    return VKI_OK;
fail:
    cJSON_Delete(root);
    warm_free(&tmp);
    return st;
}

static cJSON *hours_array(const double *v)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < WARM_HOURS; k++) {
        /* Six significant digits keep the file small and lose nothing that
         * matters to a probability. */
        cJSON *n = cJSON_CreateNumber(v[k] < 1e-9 ? 0.0 : (double)(float)v[k]);
        if (!n || !cJSON_AddItemToArray(a, n)) {
            cJSON_Delete(n);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *to_json(const warm_history *h)
{
    cJSON *root = cJSON_CreateObject(), *models = NULL;
    if (!root || !cJSON_AddNumberToObject(root, "version", WARM_FILE_VERSION) ||
        !cJSON_AddNumberToObject(root, "as_of", h->as_of_s) || !(models = cJSON_AddObjectToObject(root, "models")))
        goto fail;
    for (int32_t i = 0; i < h->n; i++) {
        const warm_model *m = &h->m[i];
        cJSON *o = cJSON_AddObjectToObject(models, m->id);
        cJSON *hr = hours_array(m->hour), *ac = hours_array(m->active);
        if (!o || !hr || !cJSON_AddItemToObject(o, "hours", hr)) {
            cJSON_Delete(hr);
            cJSON_Delete(ac);
            goto fail;
        }
        if (!ac || !cJSON_AddItemToObject(o, "active", ac)) {
            cJSON_Delete(ac);
            goto fail;
        }
        if (!cJSON_AddNumberToObject(o, "first", m->first_s) || !cJSON_AddNumberToObject(o, "last", m->last_s) ||
            !cJSON_AddNumberToObject(o, "load_ms", m->load_ms) ||
            !cJSON_AddNumberToObject(o, "requests", (double)m->n_requests) ||
            !cJSON_AddNumberToObject(o, "last_active_hour", (double)m->last_active_hour))
            goto fail;
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

vki_status warm_save(const warm_history *h, const char *path)
{
    cJSON *root = to_json(h);
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history %s: no memory to write it", path);
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    vki_status st = VKI_OK;
    if (!tmp) {
        free(text);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history %s: no memory to write it", path);
    }
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = vki_fail(VKI_ERR_BAD_FILE, "warm-up history: cannot write %s: %s", tmp, strerror(errno));
    } else {
        size_t len = strlen(text);
        bool ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
        ok = fflush(f) == 0 && ok;
        ok = fsync(fileno(f)) == 0 && ok;
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) {
            st = vki_fail(VKI_ERR_BAD_FILE, "warm-up history: cannot write %s: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(text);
    return st;
}
