/*
 * gguf_write.c: a small GGUF v3 writer for the model generator, the tests and
 * the malformed-file corpus. Metadata and tensors are kept in memory in the
 * order added and written in one pass with the alignment padding GGUF needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/gguf.h"
#include "util.h"

typedef struct buf { uint8_t *p; size_t n, cap; } buf;

typedef struct wtensor {
    char    *name;
    vki_type type;
    int      n_dims;
    int64_t  ne[4];
    uint64_t bytes, offset;
    void    *data;
} wtensor;

struct gguf_writer {
    uint32_t alignment;
    buf      kv;        /* encoded metadata pairs */
    uint64_t n_kv;
    wtensor *t;
    int64_t  n_t, cap_t;
    uint64_t data_size;
    bool     oom;
};

static void put(buf *b, const void *p, size_t n, bool *oom)
{
    if (*oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            *oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v, bool *oom) { put(b, &v, 4, oom); }
static void put_u64(buf *b, uint64_t v, bool *oom) { put(b, &v, 8, oom); }
static void put_str(buf *b, const char *s, size_t n, bool *oom)
{
    put_u64(b, n, oom);
    put(b, s, n, oom);
}

gguf_writer *gguf_writer_create(uint32_t alignment)
{
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_destroy(gguf_writer *w)
{
    if (!w) return;
    for (int64_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w->kv.p);
    free(w);
}

static vki_status done_kv(gguf_writer *w)
{
    w->n_kv++;
    return w->oom ? vki_fail(VKI_ERR_OUT_OF_MEMORY, "gguf writer: out of memory") : VKI_OK;
}

static void head(gguf_writer *w, const char *key, vki_kv_type t)
{
    put_str(&w->kv, key, strlen(key), &w->oom);
    put_u32(&w->kv, t, &w->oom);
}

vki_status gguf_write_u32(gguf_writer *w, const char *key, uint32_t v)
{
    head(w, key, VKI_KV_U32);
    put_u32(&w->kv, v, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_i32(gguf_writer *w, const char *key, int32_t v)
{
    head(w, key, VKI_KV_I32);
    put(&w->kv, &v, 4, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_u64(gguf_writer *w, const char *key, uint64_t v)
{
    head(w, key, VKI_KV_U64);
    put_u64(&w->kv, v, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_f32(gguf_writer *w, const char *key, float v)
{
    head(w, key, VKI_KV_F32);
    put(&w->kv, &v, 4, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_bool(gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    head(w, key, VKI_KV_BOOL);
    put(&w->kv, &b, 1, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_str(gguf_writer *w, const char *key, const char *v)
{
    head(w, key, VKI_KV_STRING);
    put_str(&w->kv, v, strlen(v), &w->oom);
    return done_kv(w);
}

vki_status gguf_write_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    head(w, key, VKI_KV_ARRAY);
    put_u32(&w->kv, VKI_KV_STRING, &w->oom);
    put_u64(&w->kv, n, &w->oom);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, v[i], strlen(v[i]), &w->oom);
    return done_kv(w);
}

vki_status gguf_write_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    head(w, key, VKI_KV_ARRAY);
    put_u32(&w->kv, VKI_KV_F32, &w->oom);
    put_u64(&w->kv, n, &w->oom);
    put(&w->kv, v, n * 4, &w->oom);
    return done_kv(w);
}

vki_status gguf_write_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    head(w, key, VKI_KV_ARRAY);
    put_u32(&w->kv, VKI_KV_I32, &w->oom);
    put_u64(&w->kv, n, &w->oom);
    put(&w->kv, v, n * 4, &w->oom);
    return done_kv(w);
}

static void put_value(gguf_writer *w, const vki_kv *kv)
{
    switch (kv->type) {
    case VKI_KV_U8: case VKI_KV_I8: case VKI_KV_BOOL: { uint8_t x = (uint8_t)kv->v.u; put(&w->kv, &x, 1, &w->oom); break; }
    case VKI_KV_U16: case VKI_KV_I16: { uint16_t x = (uint16_t)kv->v.u; put(&w->kv, &x, 2, &w->oom); break; }
    case VKI_KV_U32: case VKI_KV_I32: put_u32(&w->kv, (uint32_t)kv->v.u, &w->oom); break;
    case VKI_KV_U64: case VKI_KV_I64: put_u64(&w->kv, kv->v.u, &w->oom); break;
    case VKI_KV_F32: { float x = (float)kv->v.f; put(&w->kv, &x, 4, &w->oom); break; }
    case VKI_KV_F64: put(&w->kv, &kv->v.f, 8, &w->oom); break;
    case VKI_KV_STRING: put_str(&w->kv, kv->v.s.p, (size_t)kv->v.s.n, &w->oom); break;
    case VKI_KV_ARRAY:
        put_u32(&w->kv, kv->v.arr.elem, &w->oom);
        put_u64(&w->kv, kv->v.arr.n, &w->oom);
        for (uint64_t i = 0; i < kv->v.arr.n; i++) put_value(w, &kv->v.arr.items[i]);
        break;
    }
}

vki_status gguf_write_kv(gguf_writer *w, const vki_kv *kv)
{
    put_str(&w->kv, kv->key.p, (size_t)kv->key.n, &w->oom);
    put_u32(&w->kv, kv->type, &w->oom);
    put_value(w, kv);
    return done_kv(w);
}

vki_status gguf_write_tensor(gguf_writer *w, const char *name, vki_type type, int n_dims, const int64_t *ne,
                             const void *data)
{
    if (n_dims < 1 || n_dims > 4) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' rank %d", name, n_dims);
    wtensor t = {.type = type, .n_dims = n_dims};
    uint64_t rows = 1;
    for (int d = 0; d < 4; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    for (int d = 1; d < 4; d++) rows *= (uint64_t)t.ne[d];
    const uint64_t rb = vki_row_bytes(type, t.ne[0]);
    if (!rb && t.ne[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' row of %lld %s", name,
                                        (long long)t.ne[0], vki_type_name(type));
    t.bytes = rb * rows;
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    t.name = strdup(name);
    t.data = malloc(t.bytes ? t.bytes : 1);
    if (!t.name || !t.data) {
        free(t.name);
        free(t.data);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for tensor '%s'", name);
    }
    if (t.bytes) memcpy(t.data, data, t.bytes);
    t.offset = w->data_size;
    w->data_size = vki_align_up(w->data_size + t.bytes, w->alignment);
    w->t[w->n_t++] = t;
    return VKI_OK;
}

/* Builds header + tensor infos + padding (data follows). */
static vki_status build_header(gguf_writer *w, buf *h)
{
    bool oom = w->oom;
    put(h, "GGUF", 4, &oom);
    put_u32(h, 3, &oom);
    put_u64(h, (uint64_t)w->n_t, &oom);
    put_u64(h, w->n_kv + (w->alignment != GGUF_DEFAULT_ALIGNMENT), &oom);
    put(h, w->kv.p, w->kv.n, &oom);
    if (w->alignment != GGUF_DEFAULT_ALIGNMENT) {
        put_str(h, "general.alignment", 17, &oom);
        put_u32(h, VKI_KV_U32, &oom);
        put_u32(h, w->alignment, &oom);
    }
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(h, t->name, strlen(t->name), &oom);
        put_u32(h, (uint32_t)t->n_dims, &oom);
        for (int d = 0; d < t->n_dims; d++) put_u64(h, (uint64_t)t->ne[d], &oom);
        put_u32(h, t->type, &oom);
        put_u64(h, t->offset, &oom);
    }
    static const uint8_t zero[256];
    size_t pad = (size_t)(vki_align_up(h->n, w->alignment) - h->n);
    while (pad) {
        size_t k = VKI_MIN(pad, sizeof zero);
        put(h, zero, k, &oom);
        pad -= k;
    }
    return oom ? vki_fail(VKI_ERR_OUT_OF_MEMORY, "gguf writer: out of memory") : VKI_OK;
}

vki_status gguf_writer_save(gguf_writer *w, const char *path)
{
    buf h = {0};
    vki_status s = build_header(w, &h);
    FILE *fp = NULL;
    if (s != VKI_OK) goto done;
    if (!(fp = fopen(path, "wb"))) {
        s = vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot create", path);
        goto done;
    }
    bool ok = fwrite(h.p, 1, h.n, fp) == h.n;
    static const uint8_t zero[256];
    uint64_t pos = 0;
    for (int64_t i = 0; i < w->n_t && ok; i++) {
        ok = fwrite(w->t[i].data, 1, w->t[i].bytes, fp) == w->t[i].bytes;
        pos += w->t[i].bytes;
        uint64_t pad = vki_align_up(pos, w->alignment) - pos;
        if (i + 1 < w->n_t && pad) {
            ok = ok && fwrite(zero, 1, (size_t)pad, fp) == pad;
            pos += pad;
        }
    }
    if (fclose(fp) != 0 || !ok) s = vki_fail(VKI_ERR_BAD_FILE, "%s: write failed", path);
done:
    free(h.p);
    return s;
}

vki_status gguf_writer_to_memory(gguf_writer *w, void **data, size_t *size)
{
    buf h = {0};
    VKI_TRY(build_header(w, &h));
    bool oom = false;
    uint64_t pos = 0;
    static const uint8_t zero[256];
    for (int64_t i = 0; i < w->n_t; i++) {
        put(&h, w->t[i].data, w->t[i].bytes, &oom);
        pos += w->t[i].bytes;
        uint64_t pad = vki_align_up(pos, w->alignment) - pos;
        if (i + 1 < w->n_t && pad) {
            put(&h, zero, (size_t)pad, &oom);
            pos += pad;
        }
    }
    if (oom) {
        free(h.p);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    }
    *data = h.p;
    *size = h.n;
    return VKI_OK;
}
