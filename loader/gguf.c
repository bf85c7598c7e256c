/*
 * gguf.c: the GGUF v2/v3 reader (format in gguf.h). Reads from a byte range
 * (an mmap'd file or fuzzer memory), checks every count, length, type, shape,
 * offset and name before trusting it, and fills the vki_model_file tables.
 * Must not: read outside [data, data + size), allocate from an unchecked
 * count, or copy tensor data.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "loader/gguf.h"
#include "util.h"

typedef struct rd {
    const uint8_t  *p;
    uint64_t        size, pos;
    vki_model_file *f;
} rd;

#define PATH(r) ((r)->f->path)

static vki_status truncated(rd *r, const char *what, uint64_t need)
{
    return vki_fail(VKI_ERR_BAD_FILE, "%s: truncated in %s at byte %llu (needs %llu more bytes, file has %llu)",
                    PATH(r), what, (unsigned long long)r->pos, (unsigned long long)need,
                    (unsigned long long)(r->size - r->pos));
}

/* dst is zeroed on failure too: callers never see an unset value, and the
 * compiler can tell. */
static vki_status get(rd *r, void *dst, uint64_t n, const char *what)
{
    if (r->size - r->pos < n) {
        memset(dst, 0, n);
        return truncated(r, what, n);
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return VKI_OK;
}

static vki_status get_u32(rd *r, uint32_t *v, const char *what) { return get(r, v, 4, what); }
static vki_status get_u64(rd *r, uint64_t *v, const char *what) { return get(r, v, 8, what); }

/* A GGUF string: u64 length, then bytes that must lie inside the file. The
 * result points into the mapping. */
static vki_status get_str(rd *r, vki_str *s, const char *what)
{
    uint64_t n;
    *s = (vki_str){NULL, 0};
    const uint64_t at = r->pos;
    VKI_TRY(get_u64(r, &n, what));
    if (n > r->size - r->pos)
        return vki_fail(VKI_ERR_BAD_FILE,
                        "%s: %s at byte %llu has length %llu, past the end of the file (%llu bytes left)", PATH(r),
                        what, (unsigned long long)at, (unsigned long long)n,
                        (unsigned long long)(r->size - r->pos));
    s->p = (const char *)r->p + r->pos;
    s->n = n;
    r->pos += n;
    return VKI_OK;
}

static const char *kv_type_name(uint32_t t)
{
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return t < VKI_COUNT(names) ? names[t] : "?";
}

/* The fewest bytes one value of type t occupies: bounds counts before any
 * allocation. */
static uint64_t min_value_bytes(uint32_t t)
{
    switch (t) {
    case VKI_KV_U8: case VKI_KV_I8: case VKI_KV_BOOL: return 1;
    case VKI_KV_U16: case VKI_KV_I16: return 2;
    case VKI_KV_U32: case VKI_KV_I32: case VKI_KV_F32: return 4;
    case VKI_KV_STRING: return 8;
    case VKI_KV_ARRAY: return 12;
    default: return 8;
    }
}

static vki_status get_value(rd *r, vki_kv *kv, uint32_t type, const char *key, int depth);

static vki_status get_array(rd *r, vki_kv *kv, const char *key, int depth)
{
    uint32_t elem;
    uint64_t n;
    const uint64_t at = r->pos;
    VKI_TRY(get_u32(r, &elem, "an array's element type"));
    if (elem > VKI_KV_F64)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: key '%s': array at byte %llu has unknown element type %u (expected 0..12)",
                        PATH(r), key, (unsigned long long)at, elem);
    if (elem == VKI_KV_ARRAY && depth + 1 >= GGUF_MAX_DEPTH)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: key '%s': arrays nested deeper than %d levels", PATH(r), key,
                        GGUF_MAX_DEPTH);
    VKI_TRY(get_u64(r, &n, "an array's length"));
    const uint64_t room = (r->size - r->pos) / min_value_bytes(elem);
    if (n > room)
        return vki_fail(VKI_ERR_BAD_FILE,
                        "%s: key '%s': array of %llu %s values at byte %llu cannot fit in the %llu bytes left", PATH(r),
                        key, (unsigned long long)n, kv_type_name(elem), (unsigned long long)at,
                        (unsigned long long)(r->size - r->pos));
    kv->type = VKI_KV_ARRAY;
    kv->v.arr.elem = (vki_kv_type)elem;
    kv->v.arr.n = n;
    kv->v.arr.items = NULL;
    if (n == 0) return VKI_OK;
    uint64_t bytes;
    if (!vki_mul_ok(n, sizeof(vki_kv), &bytes) || !(kv->v.arr.items = ld_alloc(&r->f->arena, bytes)))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: key '%s': out of memory for %llu array elements", PATH(r), key,
                        (unsigned long long)n);
    /* Scalar arrays are the bulk of a vocabulary (scores, token types):
     * decode them in one tight loop. */
    const uint64_t w = min_value_bytes(elem);
    if (elem != VKI_KV_STRING && elem != VKI_KV_ARRAY && elem != VKI_KV_BOOL) {
        const uint8_t *p = r->p + r->pos;
        for (uint64_t i = 0; i < n; i++, p += w) {
            vki_kv *it = &kv->v.arr.items[i];
            it->type = (vki_kv_type)elem;
            switch (elem) {
            case VKI_KV_U8: it->v.u = p[0]; break;
            case VKI_KV_I8: it->v.i = (int8_t)p[0]; break;
            case VKI_KV_U16: { uint16_t x; memcpy(&x, p, 2); it->v.u = x; break; }
            case VKI_KV_I16: { int16_t x; memcpy(&x, p, 2); it->v.i = x; break; }
            case VKI_KV_U32: { uint32_t x; memcpy(&x, p, 4); it->v.u = x; break; }
            case VKI_KV_I32: { int32_t x; memcpy(&x, p, 4); it->v.i = x; break; }
            case VKI_KV_F32: { float x; memcpy(&x, p, 4); it->v.f = x; break; }
            case VKI_KV_U64: { uint64_t x; memcpy(&x, p, 8); it->v.u = x; break; }
            case VKI_KV_I64: { int64_t x; memcpy(&x, p, 8); it->v.i = x; break; }
            case VKI_KV_F64: { double x; memcpy(&x, p, 8); it->v.f = x; break; }
            }
        }
        r->pos += n * w; /* n <= room, so this stays inside the file */
        return VKI_OK;
    }
    for (uint64_t i = 0; i < n; i++) VKI_TRY(get_value(r, &kv->v.arr.items[i], elem, key, depth + 1));
    return VKI_OK;
}

static vki_status get_value(rd *r, vki_kv *kv, uint32_t type, const char *key, int depth)
{
    kv->type = (vki_kv_type)type;
    switch (type) {
    case VKI_KV_U8: { uint8_t x; VKI_TRY(get(r, &x, 1, key)); kv->v.u = x; return VKI_OK; }
    case VKI_KV_I8: { int8_t x; VKI_TRY(get(r, &x, 1, key)); kv->v.i = x; return VKI_OK; }
    case VKI_KV_U16: { uint16_t x; VKI_TRY(get(r, &x, 2, key)); kv->v.u = x; return VKI_OK; }
    case VKI_KV_I16: { int16_t x; VKI_TRY(get(r, &x, 2, key)); kv->v.i = x; return VKI_OK; }
    case VKI_KV_U32: { uint32_t x; VKI_TRY(get(r, &x, 4, key)); kv->v.u = x; return VKI_OK; }
    case VKI_KV_I32: { int32_t x; VKI_TRY(get(r, &x, 4, key)); kv->v.i = x; return VKI_OK; }
    case VKI_KV_F32: { float x; VKI_TRY(get(r, &x, 4, key)); kv->v.f = x; return VKI_OK; }
    case VKI_KV_U64: { uint64_t x; VKI_TRY(get(r, &x, 8, key)); kv->v.u = x; return VKI_OK; }
    case VKI_KV_I64: { int64_t x; VKI_TRY(get(r, &x, 8, key)); kv->v.i = x; return VKI_OK; }
    case VKI_KV_F64: { double x; VKI_TRY(get(r, &x, 8, key)); kv->v.f = x; return VKI_OK; }
    case VKI_KV_BOOL: {
        uint8_t x;
        const uint64_t at = r->pos;
        VKI_TRY(get(r, &x, 1, key));
        if (x > 1)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: key '%s': bool at byte %llu is %u (expected 0 or 1)", PATH(r), key,
                            (unsigned long long)at, x);
        kv->v.u = x;
        return VKI_OK;
    }
    case VKI_KV_STRING: return get_str(r, &kv->v.s, "a string value");
    case VKI_KV_ARRAY: return get_array(r, kv, key, depth);
    }
    return vki_fail(VKI_ERR_BAD_FILE, "%s: key '%s' has unknown value type %u (expected 0..12)", PATH(r), key, type);
}

static vki_status read_kv(rd *r, uint64_t i)
{
    vki_kv kv = {0};
    const uint64_t at = r->pos;
    VKI_TRY(get_str(r, &kv.key, "a metadata key"));
    /* Keys go into messages and C lookups: they must be text. */
    if (kv.key.n == 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: metadata key %llu at byte %llu is empty", PATH(r),
                        (unsigned long long)i, (unsigned long long)at);
    if (kv.key.n > 65535 || !ld_utf8_valid(kv.key.p, kv.key.n))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: metadata key %llu at byte %llu is not valid UTF-8 text (%llu bytes)",
                        PATH(r), (unsigned long long)i, (unsigned long long)at, (unsigned long long)kv.key.n);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)VKI_MIN(kv.key.n, 200), kv.key.p);
    uint32_t type;
    VKI_TRY(get_u32(r, &type, "a metadata value type"));
    if (type > VKI_KV_F64)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: key '%s' has unknown value type %u (expected 0..12)", PATH(r), key,
                        type);
    VKI_TRY(get_value(r, &kv, type, key, 0));
    return ld_add_kv(r->f, &kv);
}

static vki_status read_tensor_info(rd *r, uint64_t i)
{
    vki_tensor_info t = {0};
    vki_str name;
    const uint64_t at = r->pos;
    VKI_TRY(get_str(r, &name, "a tensor name"));
    if (name.n == 0 || name.n >= GGUF_MAX_NAME)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor %llu at byte %llu has a name of %llu bytes (expected 1..%d)",
                        PATH(r), (unsigned long long)i, (unsigned long long)at, (unsigned long long)name.n,
                        GGUF_MAX_NAME - 1);
    if (!ld_utf8_valid(name.p, name.n))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor %llu at byte %llu: name is not valid UTF-8", PATH(r),
                        (unsigned long long)i, (unsigned long long)at);
    if (!(t.name = ld_strdup(&r->f->arena, name.p, (size_t)name.n)))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", PATH(r));
    uint32_t n_dims, type;
    VKI_TRY(get_u32(r, &n_dims, "a tensor's dimension count"));
    if (n_dims < 1 || n_dims > 4)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' has %u dimensions (expected 1..4)", PATH(r), t.name,
                        n_dims);
    t.n_dims = (int32_t)n_dims;
    int64_t n_el = 1;
    for (int d = 0; d < 4; d++) t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        VKI_TRY(get_u64(r, &ne, "a tensor's shape"));
        if (ne > (uint64_t)INT64_MAX)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' dimension %u is %llu (negative as int64)", PATH(r),
                            t.name, d, (unsigned long long)ne);
        uint64_t prod;
        if (!vki_mul_ok((uint64_t)n_el, ne, &prod) || prod > (uint64_t)INT64_MAX)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s': element count overflows int64 at dimension %u", PATH(r),
                            t.name, d);
        t.ne[d] = (int64_t)ne;
        n_el = (int64_t)prod;
    }
    VKI_TRY(get_u32(r, &type, "a tensor's type"));
    const vki_type_traits *tr = vki_type_get((int)VKI_MIN(type, (uint32_t)INT32_MAX));
    if (!tr->block_size) {
        const char *tn = vki_type_name((int)VKI_MIN(type, (uint32_t)INT32_MAX));
        if (!strncmp(tn, "type ", 5))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown type id %u", PATH(r), t.name, type);
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %s (id %u)", PATH(r), t.name, tn,
                        type);
    }
    t.type = (vki_type)type;
    if (t.ne[0] % tr->block_size)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' has %lld elements per row, not a multiple of the %s block "
                        "size %u", PATH(r), t.name, (long long)t.ne[0], tr->name, tr->block_size);
    if (!vki_mul_ok((uint64_t)(n_el / tr->block_size), tr->type_size, &t.bytes))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s': byte size overflows", PATH(r), t.name);
    VKI_TRY(get_u64(r, &t.offset, "a tensor's offset"));
    return ld_add_tensor(r->f, &t);
}

static int cmp_offset(const void *a, const void *b)
{
    const vki_tensor_info *x = *(vki_tensor_info *const *)a, *y = *(vki_tensor_info *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Offsets are relative to the data section: each must be aligned, lie inside
 * the file with its bytes, and no two tensors may share bytes. */
static vki_status place_tensors(rd *r)
{
    vki_model_file *f = r->f;
    if (f->n_tensors == 0) return VKI_OK;
    if (f->data_offset > r->size)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: truncated before the data section (starts at byte %llu, file has %llu)",
                        PATH(r), (unsigned long long)f->data_offset, (unsigned long long)r->size);
    const uint64_t room = r->size - f->data_offset;
    vki_tensor_info **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", PATH(r));
    vki_status s = VKI_OK;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        vki_tensor_info *t = &f->tensors[i];
        order[i] = t;
        if (t->offset % f->alignment) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' offset %llu is not a multiple of the alignment %llu",
                         PATH(r), t->name, (unsigned long long)t->offset, (unsigned long long)f->alignment);
            goto done;
        }
        if (t->offset > room || t->bytes > room - t->offset) {
            s = vki_fail(VKI_ERR_BAD_FILE,
                         "%s: tensor '%s' data [%llu, +%llu) lies outside the data section (%llu bytes at byte %llu)",
                         PATH(r), t->name, (unsigned long long)t->offset, (unsigned long long)t->bytes,
                         (unsigned long long)room, (unsigned long long)f->data_offset);
            goto done;
        }
        t->data = r->p + f->data_offset + t->offset;
        t->file_idx = 0;
    }
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_offset);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const vki_tensor_info *a = order[i - 1], *b = order[i];
        if (a->offset + a->bytes > b->offset) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensors '%s' [%llu, +%llu) and '%s' [%llu, ...) overlap", PATH(r),
                         a->name, (unsigned long long)a->offset, (unsigned long long)a->bytes, b->name,
                         (unsigned long long)b->offset);
            goto done;
        }
    }
done:
    free(order);
    return s;
}

vki_status gguf_parse(vki_model_file *f, const uint8_t *data, uint64_t size)
{
    rd r = {.p = data, .size = size, .pos = 0, .f = f};
    char magic[4];
    if (size < 4 || memcmp(data, "GGUF", 4)) {
        if (size < 4) return vki_fail(VKI_ERR_BAD_FILE, "%s: file is %llu bytes, too short for GGUF", f->path,
                                      (unsigned long long)size);
        return vki_fail(VKI_ERR_BAD_FILE, "%s: bad magic (found %02x %02x %02x %02x, expected \"GGUF\")", f->path,
                        data[0], data[1], data[2], data[3]);
    }
    VKI_TRY(get(&r, magic, 4, "the magic"));
    uint32_t version;
    VKI_TRY(get_u32(&r, &version, "the version"));
    if (version == 0x02000000u || version == 0x03000000u)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", f->path);
    if (version != 2 && version != 3)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (expected 2 or 3)", f->path, version);
    f->version = version;
    f->format = VKI_FORMAT_GGUF;
    uint64_t n_tensors, n_kv;
    VKI_TRY(get_u64(&r, &n_tensors, "the tensor count"));
    VKI_TRY(get_u64(&r, &n_kv, "the metadata count"));
    /* Each kv takes >= 14 bytes (key length, 1 key byte, type, 1 value byte)
     * and each tensor info >= 33: a count the file cannot hold is refused
     * before anything is allocated for it. */
    const uint64_t left = size - r.pos;
    if (n_kv > left / 14)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: metadata count %llu cannot fit in the %llu bytes left", f->path,
                        (unsigned long long)n_kv, (unsigned long long)left);
    if (n_tensors > left / 33 || n_tensors > (uint64_t)INT32_MAX)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor count %llu cannot fit in the %llu bytes left", f->path,
                        (unsigned long long)n_tensors, (unsigned long long)left);
    for (uint64_t i = 0; i < n_kv; i++) VKI_TRY(read_kv(&r, i));

    const vki_kv *al = vki_file_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != VKI_KV_U32)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: general.alignment has type %s (expected u32)", f->path,
                            kv_type_name(al->type));
        /* GGUF asks for a multiple of 8; below it, a tensor's f16 scales or
         * f32 values could sit on addresses their type cannot be read at */
        if (al->v.u < 8 || (al->v.u & (al->v.u - 1)))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: general.alignment is %llu (expected a power of two, at least 8)",
                            f->path, (unsigned long long)al->v.u);
        f->alignment = al->v.u;
    }
    for (uint64_t i = 0; i < n_tensors; i++) VKI_TRY(read_tensor_info(&r, i));
    f->data_offset = vki_align_up(r.pos, f->alignment); /* pos <= size and alignment <= 2^32: no overflow */
    return place_tensors(&r);
}
