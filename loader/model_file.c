/*
 * model_file.c: the vki_model_file API over every format: opening by path
 * (picking the reader), mappings, the metadata arena and name indexes, typed
 * getters, and row reads (the HF rope permutation, stacked parts).
 * Must not: know about devices or copy tensor data out of the mappings.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "loader/file_impl.h"
#include "util.h"

/* ===== Arena ============================================================= */

struct ld_chunk {
    ld_chunk *next;
    uint64_t  used, cap;
    _Alignas(16) unsigned char data[];
};

#define LD_CHUNK_MIN (64u * 1024u)

void *ld_alloc(ld_arena *a, uint64_t bytes)
{
    bytes = vki_align_up(bytes ? bytes : 1, 16);
    if (bytes > ((uint64_t)1 << 40)) return NULL;
    ld_chunk *c = a->head;
    if (!c || c->cap - c->used < bytes) {
        uint64_t cap = VKI_MAX(bytes, (uint64_t)LD_CHUNK_MIN);
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        /* A large allocation gets its own chunk behind the current one so the
         * current chunk's free space stays usable. */
        if (a->head && cap == bytes && cap > LD_CHUNK_MIN) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

char *ld_strdup(ld_arena *a, const char *s, size_t n)
{
    char *p = ld_alloc(a, (uint64_t)n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ld_arena_free(ld_arena *a)
{
    for (ld_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
}

/* ===== Name indexes ====================================================== */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void entry_name(const vki_model_file *f, bool tensors, int64_t i, const char **s, size_t *n)
{
    if (tensors) {
        *s = f->tensors[i].name;
        *n = strlen(*s);
    } else {
        *s = f->kv[i].key.p;
        *n = (size_t)f->kv[i].key.n;
    }
}

int64_t ld_index_find(const ld_index *ix, const vki_model_file *f, bool tensors, const char *s, size_t n)
{
    if (!ix->cap) return -1;
    for (uint64_t h = hash_bytes(s, n) & (ix->cap - 1);; h = (h + 1) & (ix->cap - 1)) {
        int64_t v = ix->slot[h];
        if (!v) return -1;
        const char *es;
        size_t en;
        entry_name(f, tensors, v - 1, &es, &en);
        if (en == n && !memcmp(es, s, n)) return v - 1;
    }
}

static void index_put(ld_index *ix, const vki_model_file *f, bool tensors, int64_t i)
{
    const char *s;
    size_t n;
    entry_name(f, tensors, i, &s, &n);
    uint64_t h = hash_bytes(s, n) & (ix->cap - 1);
    while (ix->slot[h]) h = (h + 1) & (ix->cap - 1);
    ix->slot[h] = i + 1;
}

/* Makes room for `count` entries (the load stays under one half), rebuilding
 * from the count - 1 entries already in the table when it grows. */
static bool index_reserve(ld_index *ix, const vki_model_file *f, bool tensors, int64_t count)
{
    if ((uint64_t)count * 2 < ix->cap) return true;
    uint64_t cap = ix->cap ? ix->cap : 64;
    while ((uint64_t)count * 2 >= cap) cap *= 2;
    int64_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    free(ix->slot);
    ix->slot = slot;
    ix->cap = cap;
    for (int64_t i = 0; i < count - 1; i++) index_put(ix, f, tensors, i);
    return true;
}

/* ===== Building a file =================================================== */

vki_model_file *ld_file_new(const char *path)
{
    vki_model_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->arch = "";
    f->alignment = 32;
    f->path = strdup(path ? path : "(memory)");
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

vki_status ld_map_file(vki_model_file *f, const char *path, int32_t *idx)
{
    if (f->n_maps >= LD_MAX_FILES)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: more than %d files in one model", path, LD_MAX_FILES);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vki_fail(errno == ENOENT ? VKI_ERR_NOT_FOUND : VKI_ERR_BAD_FILE, "%s: cannot open (%s)", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vki_fail(VKI_ERR_BAD_FILE, "%s: not a regular file", path);
    }
    void *addr = NULL;
    if (st.st_size > 0) {
        addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: mmap of %lld bytes failed (%s)", path, (long long)st.st_size,
                            strerror(e));
        }
    }
    close(fd); /* the mapping keeps the file */
    f->maps[f->n_maps] = (ld_map){addr, (uint64_t)st.st_size, true};
    *idx = f->n_maps++;
    return VKI_OK;
}

static bool grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) return true;
    int64_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

vki_status ld_add_kv(vki_model_file *f, const vki_kv *kv)
{
    if (ld_index_find(&f->kv_index, f, false, kv->key.p, (size_t)kv->key.n) >= 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: duplicate metadata key '%.*s'", f->path, (int)VKI_MIN(kv->key.n, 200),
                        kv->key.p);
    if (!grow((void **)&f->kv, &f->cap_kv, f->n_kv + 1, sizeof *f->kv) ||
        !index_reserve(&f->kv_index, f, false, f->n_kv + 1))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for metadata", f->path);
    f->kv[f->n_kv] = *kv;
    index_put(&f->kv_index, f, false, f->n_kv);
    f->n_kv++;
    return VKI_OK;
}

vki_status ld_set_kv(vki_model_file *f, const vki_kv *kv)
{
    int64_t i = ld_index_find(&f->kv_index, f, false, kv->key.p, (size_t)kv->key.n);
    if (i < 0) return ld_add_kv(f, kv);
    vki_str key = f->kv[i].key;
    f->kv[i] = *kv;
    f->kv[i].key = key;
    return VKI_OK;
}

vki_status ld_add_tensor(vki_model_file *f, const vki_tensor_info *t)
{
    if (ld_index_find(&f->tensor_index, f, true, t->name, strlen(t->name)) >= 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: duplicate tensor name '%.200s'", f->path, t->name);
    if (!grow((void **)&f->tensors, &f->cap_tensors, f->n_tensors + 1, sizeof *f->tensors) ||
        !index_reserve(&f->tensor_index, f, true, f->n_tensors + 1))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for the tensor table", f->path);
    f->tensors[f->n_tensors] = *t;
    index_put(&f->tensor_index, f, true, f->n_tensors);
    f->n_tensors++;
    f->weight_bytes += t->bytes;
    return VKI_OK;
}

bool ld_utf8_valid(const char *str, uint64_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (uint64_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == 0) return false; /* an embedded NUL would cut C strings short */
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned min;
        if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
        else return false;
        if (n - i < (uint64_t)len) return false;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
        i += (uint64_t)len;
    }
    return true;
}

/* ===== Opening =========================================================== */

static void set_arch(vki_model_file *f)
{
    const vki_kv *kv = vki_file_find_kv(f, "general.architecture");
    if (kv && kv->type == VKI_KV_STRING) {
        char *a = ld_strdup(&f->arena, kv->v.s.p, (size_t)VKI_MIN(kv->v.s.n, 256));
        if (a) f->arch = a;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

vki_status vki_file_open(const char *path, vki_model_file **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_file_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_file_open: empty path");
    vki_clear_error();
    struct stat st;
    if (stat(path, &st) != 0)
        return vki_fail(errno == ENOENT ? VKI_ERR_NOT_FOUND : VKI_ERR_BAD_FILE, "%s: cannot open (%s)", path,
                        strerror(errno));
    vki_model_file *f = ld_file_new(path);
    if (!f) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    vki_status s;
    if (S_ISDIR(st.st_mode) || ends_with(path, ".json") || ends_with(path, ".safetensors")) {
        s = st_open_path(f, path);
    } else {
        /* Anything else is sniffed: GGUF by its magic, otherwise safetensors
         * (whose first 8 bytes are a length, not a magic). */
        int32_t idx;
        s = ld_map_file(f, path, &idx);
        if (s == VKI_OK) {
            const ld_map *m = &f->maps[idx];
            if (m->size >= 4 && !memcmp(m->addr, "GGUF", 4)) {
                f->format = VKI_FORMAT_GGUF;
                s = gguf_parse(f, m->addr, m->size);
            } else if (m->size >= 9 && ((const uint8_t *)m->addr)[8] == '{') {
                s = st_parse_file(f, idx, true);
            } else if (m->size < 4) {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: file is %llu bytes, too short for any model format", path,
                             (unsigned long long)m->size);
            } else {
                const uint8_t *b = m->addr;
                s = vki_fail(VKI_ERR_BAD_FILE,
                             "%s: not a model file (found magic %02x %02x %02x %02x, expected \"GGUF\" or a "
                             "safetensors header)",
                             path, b[0], b[1], b[2], b[3]);
            }
        }
    }
    if (s != VKI_OK) {
        vki_file_close(f);
        return s;
    }
    set_arch(f);
    *out = f;
    return VKI_OK;
}

vki_status vki_file_open_gguf_memory(const void *data, size_t size, const char *name, vki_model_file **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_file_open_gguf_memory: out is NULL");
    *out = NULL;
    vki_model_file *f = ld_file_new(name);
    if (!f) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", name ? name : "(memory)");
    f->maps[0] = (ld_map){(void *)data, size, false};
    f->n_maps = 1;
    f->format = VKI_FORMAT_GGUF;
    vki_status s = gguf_parse(f, data, size);
    if (s != VKI_OK) {
        vki_file_close(f);
        return s;
    }
    set_arch(f);
    *out = f;
    return VKI_OK;
}

vki_status vki_file_open_safetensors_memory(const void *data, size_t size, const char *name, vki_model_file **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_file_open_safetensors_memory: out is NULL");
    *out = NULL;
    vki_model_file *f = ld_file_new(name);
    if (!f) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", name ? name : "(memory)");
    vki_status s = st_parse_memory(f, data, size);
    if (s != VKI_OK) {
        vki_file_close(f);
        return s;
    }
    set_arch(f);
    *out = f;
    return VKI_OK;
}

void vki_file_close(vki_model_file *f)
{
    if (!f) return;
    for (int32_t i = 0; i < f->n_maps; i++)
        if (f->maps[i].mapped && f->maps[i].addr) munmap(f->maps[i].addr, (size_t)f->maps[i].size);
    ld_arena_free(&f->arena);
    free(f->kv);
    free(f->tensors);
    free(f->kv_index.slot);
    free(f->tensor_index.slot);
    free(f->path);
    free(f);
}

/* ===== Queries =========================================================== */

vki_file_format vki_file_format_of(const vki_model_file *f) { return f->format; }
uint32_t vki_file_version(const vki_model_file *f) { return f->version; }
const char *vki_file_path(const vki_model_file *f) { return f ? f->path : "(null)"; }
const char *vki_file_arch(const vki_model_file *f) { return f ? f->arch : ""; }
int64_t vki_file_n_kv(const vki_model_file *f) { return f->n_kv; }
const vki_kv *vki_file_kv(const vki_model_file *f, int64_t i) { return i >= 0 && i < f->n_kv ? &f->kv[i] : NULL; }

const vki_kv *vki_file_find_kv(const vki_model_file *f, const char *key)
{
    if (!f || !key) return NULL;
    int64_t i = ld_index_find(&f->kv_index, f, false, key, strlen(key));
    return i >= 0 ? &f->kv[i] : NULL;
}

/* An integer kv as a signed/unsigned pair; false for non-integers. */
static bool kv_int(const vki_kv *kv, bool *neg, uint64_t *mag)
{
    switch (kv->type) {
    case VKI_KV_U8: case VKI_KV_U16: case VKI_KV_U32: case VKI_KV_U64:
        *neg = false;
        *mag = kv->v.u;
        return true;
    case VKI_KV_I8: case VKI_KV_I16: case VKI_KV_I32: case VKI_KV_I64:
        *neg = kv->v.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)kv->v.i : (uint64_t)kv->v.i;
        return true;
    default:
        return false;
    }
}

bool vki_file_get_u32(const vki_model_file *f, const char *key, uint32_t *out)
{
    const vki_kv *kv = vki_file_find_kv(f, key);
    bool neg;
    uint64_t m;
    if (!kv || !kv_int(kv, &neg, &m) || neg || m > UINT32_MAX) return false;
    *out = (uint32_t)m;
    return true;
}

bool vki_file_get_i64(const vki_model_file *f, const char *key, int64_t *out)
{
    const vki_kv *kv = vki_file_find_kv(f, key);
    bool neg;
    uint64_t m;
    if (!kv || !kv_int(kv, &neg, &m)) return false;
    if (neg) {
        *out = kv->v.i;
        return true;
    }
    if (m > INT64_MAX) return false;
    *out = (int64_t)m;
    return true;
}

bool vki_file_get_f32(const vki_model_file *f, const char *key, float *out)
{
    const vki_kv *kv = vki_file_find_kv(f, key);
    if (!kv) return false;
    bool neg;
    uint64_t m;
    if (kv->type == VKI_KV_F32 || kv->type == VKI_KV_F64) {
        *out = (float)kv->v.f;
        return true;
    }
    if (kv_int(kv, &neg, &m) && m <= (1u << 24)) { /* exact in a float */
        *out = neg ? -(float)m : (float)m;
        return true;
    }
    return false;
}

bool vki_file_get_bool(const vki_model_file *f, const char *key, bool *out)
{
    const vki_kv *kv = vki_file_find_kv(f, key);
    if (!kv || kv->type != VKI_KV_BOOL) return false;
    *out = kv->v.u != 0;
    return true;
}

bool vki_file_get_str(const vki_model_file *f, const char *key, vki_str *out)
{
    const vki_kv *kv = vki_file_find_kv(f, key);
    if (!kv || kv->type != VKI_KV_STRING) return false;
    *out = kv->v.s;
    return true;
}

static bool arch_key(const vki_model_file *f, const char *suffix, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s.%s", f->arch, suffix);
    return n > 0 && (size_t)n < cap && f->arch[0];
}

bool vki_file_get_arch_u32(const vki_model_file *f, const char *suffix, uint32_t *out)
{
    char key[256];
    return arch_key(f, suffix, key, sizeof key) && vki_file_get_u32(f, key, out);
}

bool vki_file_get_arch_f32(const vki_model_file *f, const char *suffix, float *out)
{
    char key[256];
    return arch_key(f, suffix, key, sizeof key) && vki_file_get_f32(f, key, out);
}

int64_t vki_file_n_tensors(const vki_model_file *f) { return f->n_tensors; }

const vki_tensor_info *vki_file_tensor(const vki_model_file *f, int64_t i)
{
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const vki_tensor_info *vki_file_find_tensor(const vki_model_file *f, const char *name)
{
    if (!f || !name) return NULL;
    int64_t i = ld_index_find(&f->tensor_index, f, true, name, strlen(name));
    return i >= 0 ? &f->tensors[i] : NULL;
}

uint64_t vki_file_weight_bytes(const vki_model_file *f) { return f->weight_bytes; }

void vki_file_release(const vki_model_file *f, const void *p, uint64_t size)
{
    const uintptr_t a = (uintptr_t)p, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int32_t i = 0; f && i < f->n_maps; i++) {
        const ld_map *m = &f->maps[i];
        uintptr_t base = (uintptr_t)m->addr;
        /* Only our own read-only file mappings: MADV_DONTNEED would zero
         * anonymous or caller memory. */
        if (!m->mapped || a < base || a + size > base + m->size) continue;
        uintptr_t lo = (a + page - 1) & ~(page - 1), hi = (a + size) & ~(page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

/* ===== Rows ============================================================== */

/* convert_hf_to_gguf.py's LlamaModel.permute reshapes the [n_rows] rows of
 * q/k (or the elements of their biases) as (n_head, 2, head_dim/2) and swaps
 * the two middle axes, so GGUF row h*hd + 2*i + j comes from HF row
 * h*hd + j*(hd/2) + i. */
static int64_t rope_source(int64_t r, int64_t n_rows, int64_t n_head)
{
    if (n_head <= 0 || n_rows % n_head) return r;
    const int64_t hd = n_rows / n_head;
    if (hd % 2) return r;
    const int64_t h = r / hd, w = r % hd, i = w / 2, j = w % 2;
    return h * hd + j * (hd / 2) + i;
}

int64_t vki_tensor_source_row(const vki_tensor_info *t, int64_t r)
{
    return t->n_dims >= 2 ? rope_source(r, t->ne[1], t->rope_permute_heads) : r;
}

const void *vki_tensor_row_data(const vki_tensor_info *t, int64_t r)
{
    const uint64_t rb = vki_row_bytes(t->type, t->ne[0]);
    if (t->n_parts > 0) {
        const int64_t p = r / t->ne[1];
        return p < t->n_parts ? (const uint8_t *)t->parts[p] + (uint64_t)(r % t->ne[1]) * rb : NULL;
    }
    const int64_t src = r < t->ne[1] ? vki_tensor_source_row(t, r) : r;
    return (const uint8_t *)t->data + (uint64_t)src * rb;
}

vki_tensor_read vki_tensor_read_mode(const vki_tensor_info *t)
{
    if (t->n_dims == 1 && t->rope_permute_heads > 0) return VKI_TENSOR_READ_DEQUANT;
    if (t->n_parts > 0 || t->rope_permute_heads > 0) return VKI_TENSOR_READ_ROWS;
    return VKI_TENSOR_READ_DIRECT;
}

vki_status vki_tensor_dequant_row(const vki_tensor_info *t, int64_t row, float *dst)
{
    const int64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (row < 0 || row >= n_rows)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "tensor '%s': row %lld is out of range (%lld rows)", t->name,
                        (long long)row, (long long)n_rows);
    if (!vki_type_get(t->type)->supported)
        return vki_fail(VKI_ERR_UNSUPPORTED, "tensor '%s': type %s has no dequantizer", t->name,
                        vki_type_name(t->type));
    if (t->n_dims == 1 && t->rope_permute_heads > 0) {
        /* a permuted bias: element by element, so only for element types */
        const vki_type_traits *tr = vki_type_get(t->type);
        if (tr->block_size != 1)
            return vki_fail(VKI_ERR_UNSUPPORTED, "tensor '%s': a rotary-permuted vector of type %s (block size %u)",
                            t->name, vki_type_name(t->type), (unsigned)tr->block_size);
        for (int64_t i = 0; i < t->ne[0]; i++) {
            const int64_t src = rope_source(i, t->ne[0], t->rope_permute_heads);
            if (!vki_dequantize_row(t->type, (const uint8_t *)t->data + (uint64_t)src * tr->type_size, dst + i, 1))
                return vki_fail(VKI_ERR_UNSUPPORTED, "tensor '%s': cannot dequantize type %s", t->name,
                                vki_type_name(t->type));
        }
    } else if (!vki_dequantize_row(t->type, vki_tensor_row_data(t, row), dst, t->ne[0])) {
        return vki_fail(VKI_ERR_UNSUPPORTED, "tensor '%s': cannot dequantize type %s", t->name,
                        vki_type_name(t->type));
    }
    return VKI_OK;
}
