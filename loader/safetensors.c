/*
 * safetensors.c: the safetensors reader: single files, sharded models through
 * model.safetensors.index.json, and HF folders (config.json, tokenizer.json
 * and sentence-transformers pooling beside the weights, mapped by hf_config.c and hf_tokenizer.c).
 *
 * The format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [torch order], "data_offsets": [begin, end]},
 *  ..., "__metadata__": {"k": "v"}}, then the data; offsets are relative to
 * the byte after the header. Must not: read outside the mapping or copy data.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "loader/file_impl.h"
#include "util.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* the safetensors spec's limit */

static const struct { const char *name; vki_type type; } st_dtypes[] = {
    {"F32", VKI_TYPE_F32}, {"F16", VKI_TYPE_F16}, {"BF16", VKI_TYPE_BF16}, {"I8", VKI_TYPE_I8},
    {"I16", VKI_TYPE_I16}, {"I32", VKI_TYPE_I32}, {"I64", VKI_TYPE_I64},  {"U8", VKI_TYPE_U8},
    {"F64", VKI_TYPE_F64},
};

/* A JSON number that is a non-negative integer exactly representable. */
static bool json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return false;
    const double d = j->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_offset(const void *a, const void *b)
{
    const vki_tensor_info *x = *(vki_tensor_info *const *)a, *y = *(vki_tensor_info *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static vki_status parse_tensor(vki_model_file *f, const char *src, const cJSON *e, const uint8_t *data,
                               uint64_t data_size, int32_t file_idx)
{
    const char *name = e->string;
    const size_t nlen = strlen(name);
    if (nlen == 0 || nlen >= 256 || !ld_utf8_valid(name, nlen))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor name '%.64s' is empty, too long or not UTF-8", src, name);
    if (!cJSON_IsObject(e))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' is not a JSON object", src, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' lacks a string dtype, a shape array or data_offsets", src,
                        name);
    vki_tensor_info t = {0};
    bool known = false;
    for (size_t i = 0; i < VKI_COUNT(st_dtypes); i++) {
        if (!strcmp(dt->valuestring, st_dtypes[i].name)) {
            t.type = st_dtypes[i].type;
            known = true;
        }
    }
    if (!known)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported dtype %.32s", src, name,
                        dt->valuestring);
    const int rank = cJSON_GetArraySize(sh);
    if (rank > 4)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' has %d dimensions (expected 0..4)", src, name, rank);
    /* torch order is slowest first; GGUF order (ne) is fastest first */
    t.n_dims = rank ? rank : 1;
    for (int d = 0; d < 4; d++) t.ne[d] = 1;
    uint64_t n_el = 1;
    for (int d = 0; d < rank; d++) {
        uint64_t v;
        if (!json_u64(cJSON_GetArrayItem(sh, d), &v))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' shape[%d] is not a non-negative integer", src, name, d);
        if (!vki_mul_ok(n_el, v, &n_el) || n_el > (uint64_t)INT64_MAX)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s': element count overflows", src, name);
        t.ne[rank - 1 - d] = (int64_t)v;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &begin) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &end) || begin > end)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' data_offsets must be [begin, end] with begin <= end", src,
                        name);
    const uint32_t es = vki_type_get(t.type)->type_size;
    uint64_t bytes;
    if (!vki_mul_ok(n_el, es, &bytes) || bytes != end - begin)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' spans %llu bytes, its shape and dtype need %llu", src, name,
                        (unsigned long long)(end - begin), (unsigned long long)(n_el * es));
    if (end > data_size)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' data [%llu, %llu) lies past the end of the data (%llu bytes)",
                        src, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    if (!(t.name = ld_strdup(&f->arena, name, nlen))) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
    t.offset = begin;
    t.bytes = bytes;
    t.data = data + begin;
    t.file_idx = file_idx;
    return ld_add_tensor(f, &t);
}

/* Parses one safetensors blob; tensors get file_idx and are appended. */
static vki_status parse_blob(vki_model_file *f, const char *src, const uint8_t *p, uint64_t size, int32_t file_idx)
{
    if (size < 8)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: file is %llu bytes, too short for a safetensors header", src,
                        (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    if (n > size - 8 || n > ST_MAX_HEADER)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: safetensors header length %llu exceeds the file (%llu bytes) or %u",
                        src, (unsigned long long)n, (unsigned long long)size, ST_MAX_HEADER);
    if (n < 2 || p[8] != '{')
        return vki_fail(VKI_ERR_BAD_FILE, "%s: safetensors header does not start with a JSON object", src);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)n);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vki_fail(VKI_ERR_BAD_FILE, "%s: safetensors header is not valid JSON", src);
    }
    const int64_t first = f->n_tensors;
    const uint8_t *data = p + 8 + n;
    const uint64_t data_size = size - 8 - n;
    vki_status s = VKI_OK;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) {
            /* kept as safetensors.<key> strings: informative, never needed */
            for (const cJSON *m = e->child; m && cJSON_IsObject(e); m = m->next) {
                if (!cJSON_IsString(m) || !m->string || !ld_utf8_valid(m->string, strlen(m->string))) continue;
                char key[300];
                snprintf(key, sizeof key, "safetensors.%.256s", m->string);
                char *k = ld_strdup(&f->arena, key, strlen(key));
                char *v = ld_strdup(&f->arena, m->valuestring, strlen(m->valuestring));
                if (!k || !v) {
                    s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                    goto done;
                }
                vki_kv kv = {.key = {k, strlen(k)}, .type = VKI_KV_STRING, .v.s = {v, strlen(v)}};
                if ((s = ld_set_kv(f, &kv)) != VKI_OK) goto done;
            }
            continue;
        }
        if ((s = parse_tensor(f, src, e, data, data_size, file_idx)) != VKI_OK) goto done;
    }
    /* no two tensors of this file may share bytes */
    const int64_t cnt = f->n_tensors - first;
    if (cnt > 1) {
        vki_tensor_info **order = malloc((size_t)cnt * sizeof *order);
        if (!order) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
            goto done;
        }
        for (int64_t i = 0; i < cnt; i++) order[i] = &f->tensors[first + i];
        qsort(order, (size_t)cnt, sizeof *order, cmp_offset);
        for (int64_t i = 1; i < cnt && s == VKI_OK; i++) {
            if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset && order[i - 1]->bytes && order[i]->bytes)
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensors '%s' and '%s' overlap", src, order[i - 1]->name,
                             order[i]->name);
        }
        free(order);
    }
done:
    cJSON_Delete(root);
    return s;
}

vki_status st_parse_memory(vki_model_file *f, const uint8_t *data, uint64_t size)
{
    f->format = VKI_FORMAT_SAFETENSORS;
    f->maps[0] = (ld_map){(void *)data, size, false};
    f->n_maps = 1;
    return parse_blob(f, f->path, data, size, 0);
}

/* ===== Files and folders ================================================= */

/* Reads a small text file into malloc'd memory; NULL with *missing set when
 * it does not exist. */
static char *read_text(const char *path, size_t *len, bool *missing, vki_status *s)
{
    *missing = false;
    *s = VKI_OK;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) *missing = true;
        else *s = vki_fail(VKI_ERR_BAD_FILE, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)1 << 30) {
        fclose(fp);
        *s = vki_fail(VKI_ERR_BAD_FILE, "%s: not a regular file under 1 GiB", path);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf || fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
        free(buf);
        fclose(fp);
        *s = vki_fail(VKI_ERR_BAD_FILE, "%s: read failed", path);
        return NULL;
    }
    fclose(fp);
    buf[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return buf;
}

vki_status st_parse_file(vki_model_file *f, int32_t map_idx, bool want_config_meta)
{
    f->format = VKI_FORMAT_SAFETENSORS;
    const ld_map *m = &f->maps[map_idx];
    (void)want_config_meta;
    return parse_blob(f, f->path, m->addr, m->size, map_idx);
}

static vki_status open_shard(vki_model_file *f, const char *path, int32_t *idx)
{
    VKI_TRY(ld_map_file(f, path, idx));
    return parse_blob(f, path, f->maps[*idx].addr, f->maps[*idx].size, *idx);
}

/* model.safetensors.index.json: {"weight_map": {"tensor": "shard file"}}.
 * Each shard is opened once, and every listed tensor must be in its shard. */
vki_status st_parse_index(vki_model_file *f, const char *dir, const char *index_path, const char *text, size_t len)
{
    vki_status s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return vki_fail(VKI_ERR_BAD_FILE, "%s: not a safetensors index (no \"weight_map\" object)", index_path);
    }
    /* shard[i]: the file (map index) of the i-th entry's shard */
    int32_t *shard = calloc((size_t)cJSON_GetArraySize(wm) + 1, sizeof *shard);
    if (!shard) {
        cJSON_Delete(root);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", index_path);
    }
    s = VKI_OK;
    char path[4096];
    int32_t i = 0;
    for (const cJSON *e = wm->child; e && s == VKI_OK; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            !strcmp(e->valuestring, "..")) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: weight_map entry '%.64s' must name a shard file in the same folder",
                         index_path, e->string ? e->string : "");
            break;
        }
        int32_t j = 0;
        const cJSON *p = wm->child;
        for (; p != e && strcmp(p->valuestring, e->valuestring); p = p->next) j++;
        if (p != e) {
            shard[i] = shard[j];
            continue;
        }
        snprintf(path, sizeof path, "%.3000s/%.1000s", dir, e->valuestring);
        s = open_shard(f, path, &shard[i]);
    }
    i = 0;
    for (const cJSON *e = wm->child; e && s == VKI_OK; e = e->next, i++) {
        const vki_tensor_info *t = vki_file_find_tensor(f, e->string);
        if (!t || t->file_idx != shard[i])
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%.128s' is listed in the index %s %.128s", index_path,
                         e->string, t ? "in another shard than" : "but absent from", e->valuestring);
    }
    free(shard);
    cJSON_Delete(root);
    return s;
}

static vki_status open_index(vki_model_file *f, const char *dir, const char *index_path)
{
    size_t len;
    bool missing;
    vki_status s;
    char *text = read_text(index_path, &len, &missing, &s);
    if (!text) return missing ? vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot open", index_path) : s;
    s = st_parse_index(f, dir, index_path, text, len);
    free(text);
    return s;
}

/* Maps the HF side files of a folder; each is optional. */
static vki_status map_side_files(vki_model_file *f, const char *dir)
{
    char path[4096];
    size_t clen = 0, len;
    bool missing;
    vki_status s;
    snprintf(path, sizeof path, "%.3000s/config.json", dir);
    char *config = read_text(path, &clen, &missing, &s);
    if (!config && !missing) return s;
    if (config && (s = hf_map_config(f, path, config, clen)) != VKI_OK) goto done;

    snprintf(path, sizeof path, "%.3000s/tokenizer.json", dir);
    char *tok = read_text(path, &len, &missing, &s);
    if (!tok && !missing) goto done;
    if (tok) {
        char cpath[4096];
        size_t tclen = 0;
        bool tmissing;
        vki_status ts;
        snprintf(cpath, sizeof cpath, "%.3000s/tokenizer_config.json", dir);
        char *tcfg = read_text(cpath, &tclen, &tmissing, &ts);
        s = hf_map_tokenizer(f, path, tok, len, tcfg, tclen);
        free(tcfg);
        free(tok);
        if (s != VKI_OK) goto done;
        /* transformers' newer layout keeps the template in its own file; it
         * wins over tokenizer_config.json's chat_template */
        snprintf(cpath, sizeof cpath, "%.3000s/chat_template.jinja", dir);
        char *ct = read_text(cpath, &tclen, &tmissing, &ts);
        if (!ct && !tmissing) { s = ts; goto done; }
        if (ct) {
            s = hf_map_chat_template(f, cpath, ct, tclen);
            free(ct);
            if (s != VKI_OK) goto done;
        }
    }
    snprintf(path, sizeof path, "%.3000s/1_Pooling/config.json", dir);
    char *pool = read_text(path, &len, &missing, &s);
    if (pool) {
        s = hf_map_pooling(f, path, pool, len);
        free(pool);
        if (s != VKI_OK) goto done;
    }
    s = config ? hf_map_tensors(f) : VKI_OK;
done:
    free(config);
    return s;
}

vki_status st_open_path(vki_model_file *f, const char *path)
{
    f->format = VKI_FORMAT_SAFETENSORS;
    if (strlen(path) > 3000) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%.200s...: path is too long", path);
    struct stat st;
    if (stat(path, &st) != 0) return vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot open (%s)", path, strerror(errno));
    char dir[3072], file[4096];
    vki_status s;
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(file, sizeof file, "%.3000s/model.safetensors.index.json", dir);
        if (stat(file, &st) == 0) {
            s = open_index(f, dir, file);
        } else {
            snprintf(file, sizeof file, "%.3000s/model.safetensors", dir);
            if (stat(file, &st) == 0) {
                int32_t idx;
                s = open_shard(f, file, &idx);
            } else {
                /* A tokenizer-only folder describes a vocabulary without
                 * weights, like a vocab-only GGUF. */
                char side[4096];
                snprintf(side, sizeof side, "%.3000s/tokenizer.json", dir);
                if (stat(side, &st) != 0)
                    return vki_fail(VKI_ERR_NOT_FOUND,
                                    "%s: folder has none of model.safetensors.index.json, model.safetensors, "
                                    "tokenizer.json", path);
                s = VKI_OK;
            }
        }
    } else {
        snprintf(file, sizeof file, "%s", path);
        snprintf(dir, sizeof dir, "%s", dirname(file));
        size_t n = strlen(path);
        if (n >= 5 && !strcmp(path + n - 5, ".json")) s = open_index(f, dir, path);
        else {
            int32_t idx;
            s = open_shard(f, path, &idx);
        }
    }
    if (s != VKI_OK) return s;
    return map_side_files(f, dir);
}
