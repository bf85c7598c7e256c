/* test_gguf_defects.c: handcrafted malformed files in the style of
 * llama.cpp's test-gguf. Each defect of the enum is built on top of a valid
 * file that covers every metadata type; the loader must refuse it with a
 * one-line message naming the file, and accept the clean file with the right
 * contents. GGUF files are also cut at every byte.
 * With `--write-corpus DIR` it writes the defect files (plus truncations at
 * each section and safetensors defects) as the committed corpus instead. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "loader/model_file.h"
#include "test_util.h"
#include "util.h"

typedef enum defect {
    D_NONE, D_BAD_MAGIC, D_VERSION_0, D_VERSION_1, D_VERSION_4, D_BIG_ENDIAN, D_HUGE_N_TENSORS, D_HUGE_N_KV,
    D_HUGE_KEY_LEN, D_EMPTY_KEY, D_BAD_UTF8_KEY, D_NUL_IN_KEY, D_BAD_KV_TYPE, D_BAD_ARRAY_TYPE, D_HUGE_ARRAY_LEN,
    D_HUGE_STRING_LEN, D_DEEP_NESTING, D_BAD_BOOL, D_DUP_KEY, D_ALIGN_NOT_POW2, D_ALIGN_ZERO, D_ALIGN_WRONG_TYPE,
    D_ALIGN_SMALL, D_RANK_0, D_RANK_5, D_NE_NEGATIVE, D_NE_OVERFLOW, D_BAD_TENSOR_TYPE, D_RETIRED_TYPE,
    D_IQ_TYPE_DEQUANT, D_NE0_NOT_BLOCK, D_MISALIGNED_OFFSET, D_OFFSET_OUT_OF_RANGE, D_OFFSET_WRAPS, D_OVERLAP,
    D_DUP_TENSOR, D_EMPTY_NAME, D_LONG_NAME, D_BAD_UTF8_NAME, D_DATA_TRUNCATED, D_COUNT
} defect;

static const char *const defect_names[D_COUNT] = {
    "none", "bad_magic", "version_0", "version_1", "version_4", "big_endian", "huge_n_tensors", "huge_n_kv",
    "huge_key_len", "empty_key", "bad_utf8_key", "nul_in_key", "bad_kv_type", "bad_array_type", "huge_array_len",
    "huge_string_len", "deep_nesting", "bad_bool", "dup_key", "align_not_pow2", "align_zero", "align_wrong_type",
    "align_small", "rank_0", "rank_5", "ne_negative", "ne_overflow", "bad_tensor_type", "retired_type",
    "iq_type_dequant", "ne0_not_block", "misaligned_offset", "offset_out_of_range", "offset_wraps", "overlap", "dup_tensor",
    "empty_name", "long_name", "bad_utf8_name", "data_truncated",
};

typedef struct out { uint8_t *p; size_t n, cap; size_t marks[8]; int n_marks; } out;

static void put(out *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 256;
        o->p = realloc(o->p, o->cap);
        if (!o->p) abort();
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
}
static void u32(out *o, uint32_t v) { put(o, &v, 4); }
static void u64(out *o, uint64_t v) { put(o, &v, 8); }
static void str(out *o, const char *s) { u64(o, strlen(s)); put(o, s, strlen(s)); }
static void mark(out *o) { if (o->n_marks < 8) o->marks[o->n_marks++] = o->n; }

typedef struct tdesc { const char *name; uint32_t type; uint32_t n_dims; int64_t ne[4]; uint64_t bytes; } tdesc;

/* The clean file: every metadata type once, three tensors (F32 2-D, Q8_0,
 * Q4_K) with known data. */
static const tdesc base_tensors[3] = {
    {"a.weight", 0 /* F32 */, 2, {32, 2, 1, 1}, 32 * 2 * 4},
    {"b.weight", 8 /* Q8_0 */, 1, {64, 1, 1, 1}, 2 * 34},
    {"c.weight", 12 /* Q4_K */, 1, {256, 1, 1, 1}, 144},
};

static void build(out *o, defect d)
{
    memset(o, 0, sizeof *o);
    put(o, d == D_BAD_MAGIC ? "GGUX" : "GGUF", 4);
    u32(o, d == D_VERSION_0 ? 0 : d == D_VERSION_1 ? 1 : d == D_VERSION_4 ? 4 : d == D_BIG_ENDIAN ? 0x03000000u : 3);
    const uint64_t n_kv = 16 + (d == D_DUP_KEY) + (d == D_ALIGN_NOT_POW2 || d == D_ALIGN_ZERO || d == D_ALIGN_WRONG_TYPE ||
                                            d == D_ALIGN_SMALL);
    const uint64_t n_t = 3 + (d == D_DUP_TENSOR);
    u64(o, d == D_HUGE_N_TENSORS ? (uint64_t)1 << 60 : n_t);
    u64(o, d == D_HUGE_N_KV ? UINT64_MAX / 2 : n_kv);
    mark(o); /* 0: metadata */
    /* general.architecture */
    if (d == D_HUGE_KEY_LEN) u64(o, (uint64_t)1 << 62);
    else if (d == D_EMPTY_KEY) u64(o, 0);
    else if (d == D_BAD_UTF8_KEY) { u64(o, 4); put(o, "ge\xc3\x28", 4); }
    else if (d == D_NUL_IN_KEY) { u64(o, 4); put(o, "ge\0n", 4); }
    if (d != D_HUGE_KEY_LEN && d != D_EMPTY_KEY && d != D_BAD_UTF8_KEY && d != D_NUL_IN_KEY) str(o, "general.architecture");
    u32(o, d == D_BAD_KV_TYPE ? 13 : 8);
    if (d == D_HUGE_STRING_LEN) u64(o, UINT64_MAX - 3);
    else str(o, "llama");
    /* one of each scalar type */
    str(o, "t.u8"); u32(o, 0); put(o, "\x07", 1);
    str(o, "t.i8"); u32(o, 1); put(o, "\xf9", 1);
    str(o, "t.u16"); u32(o, 2); put(o, "\x34\x12", 2);
    str(o, "t.i16"); u32(o, 3); put(o, "\xfe\xff", 2);
    str(o, "t.u32"); u32(o, 4); u32(o, 123456);
    str(o, "t.i32"); u32(o, 5); u32(o, (uint32_t)-5);
    str(o, "t.f32"); u32(o, 6); { float f = 0.25f; put(o, &f, 4); }
    str(o, "t.bool"); u32(o, 7); put(o, d == D_BAD_BOOL ? "\x02" : "\x01", 1);
    str(o, "t.u64"); u32(o, 10); u64(o, (uint64_t)1 << 40);
    str(o, "t.i64"); u32(o, 11); u64(o, (uint64_t)-7);
    str(o, "t.f64"); u32(o, 12); { double f = -1.5; put(o, &f, 8); }
    /* array of strings */
    str(o, "t.strs"); u32(o, 9); u32(o, d == D_BAD_ARRAY_TYPE ? 99 : 8);
    u64(o, d == D_HUGE_ARRAY_LEN ? (uint64_t)1 << 59 : 3);
    str(o, "x"); str(o, "yy"); str(o, "\xe2\x96\x81z");
    /* nested arrays: [[1, 2], [3]] of i32, or nesting past the limit */
    str(o, "t.nested"); u32(o, 9);
    if (d == D_DEEP_NESTING) {
        for (int k = 0; k < 6; k++) { u32(o, 9); u64(o, 1); }
        u32(o, 5); u64(o, 0);
    } else {
        u32(o, 9); u64(o, 2);
        u32(o, 5); u64(o, 2); u32(o, 1); u32(o, 2);
        u32(o, 5); u64(o, 1); u32(o, 3);
    }
    str(o, "llama.block_count"); u32(o, 4); u32(o, 1);
    str(o, "llama.context_length"); u32(o, 4); u32(o, 64);
    if (d == D_DUP_KEY) { str(o, "t.u8"); u32(o, 0); put(o, "\x01", 1); }
    if (d == D_ALIGN_NOT_POW2) { str(o, "general.alignment"); u32(o, 4); u32(o, 48); }
    if (d == D_ALIGN_ZERO) { str(o, "general.alignment"); u32(o, 4); u32(o, 0); }
    /* a power of two, but fewer than the 8 bytes GGUF asks for: f16 scales
     * and f32 rows could land on odd addresses (found by fuzz_gguf) */
    if (d == D_ALIGN_SMALL) { str(o, "general.alignment"); u32(o, 4); u32(o, 2); }
    if (d == D_ALIGN_WRONG_TYPE) { str(o, "general.alignment"); u32(o, 10); u64(o, 32); }
    mark(o); /* 1: tensor infos */
    uint64_t off = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        const tdesc *t = &base_tensors[i < 3 ? i : 0];
        if (i == 0 && d == D_EMPTY_NAME) str(o, "");
        else if (i == 0 && d == D_LONG_NAME) {
            char name[301];
            memset(name, 'n', 300);
            name[300] = '\0';
            str(o, name);
        } else if (i == 0 && d == D_BAD_UTF8_NAME) { u64(o, 3); put(o, "a\xff" "b", 3); }
        else str(o, t->name);
        uint32_t nd = t->n_dims;
        if (i == 0 && d == D_RANK_0) nd = 0;
        if (i == 0 && d == D_RANK_5) nd = 5;
        u32(o, nd);
        for (uint32_t k = 0; k < nd; k++) {
            uint64_t ne = (uint64_t)t->ne[k < 4 ? k : 0];
            if (i == 0 && k == 1 && d == D_NE_NEGATIVE) ne = (uint64_t)-2;
            if (i == 0 && d == D_NE_OVERFLOW) ne = (uint64_t)1 << 40;
            u64(o, ne);
        }
        uint32_t type = t->type;
        if (i == 1 && d == D_BAD_TENSOR_TYPE) type = 77;
        if (i == 1 && d == D_RETIRED_TYPE) type = 4;
        if (i == 2 && d == D_IQ_TYPE_DEQUANT) type = 16; /* IQ2_XXS: 66 bytes per 256 */
        if (i == 1 && d == D_NE0_NOT_BLOCK) type = 12;  /* Q4_K row of 64 elements */
        u32(o, type);
        uint64_t to = off;
        if (i == 1 && d == D_MISALIGNED_OFFSET) to += 4;
        if (i == 2 && d == D_OFFSET_OUT_OF_RANGE) to = 1u << 20;
        if (i == 2 && d == D_OFFSET_WRAPS) to = UINT64_MAX - 31;
        if (i == 1 && d == D_OVERLAP) to = 64; /* inside a.weight's 256 bytes, still aligned */
        u64(o, to);
        off = vki_align_up(off + t->bytes, 32);
    }
    mark(o); /* 2: padding + data */
    static const uint8_t zero[32];
    put(o, zero, (size_t)(vki_align_up(o->n, 32) - o->n));
    mark(o); /* 3: data */
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        const tdesc *t = &base_tensors[i < 3 ? i : 0];
        uint8_t *data = malloc(t->bytes);
        for (uint64_t k = 0; k < t->bytes; k++) data[k] = (uint8_t)(k * 7 + i);
        if (t->type == 0)
            for (uint64_t k = 0; k < t->bytes / 4; k++) { float f = (float)k - 10.0f; memcpy(data + 4 * k, &f, 4); }
        if (t->type == 8) { data[0] = 0x00; data[1] = 0x3C; data[34] = 0x00; data[35] = 0x3C; } /* d = 1 */
        if (t->type == 12) { data[0] = 0x00; data[1] = 0x3C; data[2] = 0; data[3] = 0; }       /* d = 1, dmin = 0 */
        put(o, data, t->bytes);
        free(data);
        pos += t->bytes;
        if (i + 1 < n_t) {
            put(o, zero, (size_t)(vki_align_up(pos, 32) - pos));
            pos = vki_align_up(pos, 32);
        }
    }
    if (d == D_DATA_TRUNCATED) o->n -= 10;
}

/* A message the CLI can print on one line, naming the file. */
static void check_message(const char *what, vki_status s, const char *name)
{
    const char *msg = vki_last_error();
    CHECKF(s == VKI_ERR_BAD_FILE || s == VKI_ERR_UNSUPPORTED, "%s: status %d (%s)", what, s, vki_status_str(s));
    CHECKF(strncmp(msg, name, strlen(name)) == 0, "%s: message does not start with the file name: '%s'", what, msg);
    CHECKF(strlen(msg) > strlen(name) + 8, "%s: message says nothing: '%s'", what, msg);
    CHECKF(!strchr(msg, '\n'), "%s: message has more than one line", what);
}

static void test_clean(void)
{
    out o;
    build(&o, D_NONE);
    vki_model_file *f = NULL;
    vki_status s = vki_file_open_gguf_memory(o.p, o.n, "clean.gguf", &f);
    CHECKF(s == VKI_OK, "clean file refused: %s", vki_last_error());
    if (s == VKI_OK) {
        uint32_t u;
        int64_t i;
        float fl;
        bool b;
        vki_str st;
        CHECK(!strcmp(vki_file_arch(f), "llama"));
        CHECK(vki_file_version(f) == 3 && vki_file_n_kv(f) == 16 && vki_file_n_tensors(f) == 3);
        CHECK(vki_file_get_u32(f, "t.u16", &u) && u == 0x1234);
        CHECK(vki_file_get_i64(f, "t.i16", &i) && i == -2);
        CHECK(vki_file_get_i64(f, "t.i8", &i) && i == -7);
        CHECK(!vki_file_get_u32(f, "t.i32", &u)); /* negative: not a u32 */
        CHECK(vki_file_get_i64(f, "t.u64", &i) && i == (int64_t)1 << 40);
        CHECK(vki_file_get_f32(f, "t.f32", &fl) && fl == 0.25f);
        CHECK(vki_file_get_f32(f, "t.f64", &fl) && fl == -1.5f);
        CHECK(vki_file_get_bool(f, "t.bool", &b) && b);
        CHECK(vki_file_get_arch_u32(f, "context_length", &u) && u == 64);
        const vki_kv *kv = vki_file_find_kv(f, "t.strs");
        CHECK(kv && kv->type == VKI_KV_ARRAY && kv->v.arr.elem == VKI_KV_STRING && kv->v.arr.n == 3);
        if (kv && kv->v.arr.n == 3) {
            st = kv->v.arr.items[2].v.s;
            CHECK(st.n == 4 && !memcmp(st.p, "\xe2\x96\x81z", 4));
        }
        kv = vki_file_find_kv(f, "t.nested");
        CHECK(kv && kv->v.arr.elem == VKI_KV_ARRAY && kv->v.arr.n == 2 && kv->v.arr.items[0].v.arr.n == 2 &&
              kv->v.arr.items[1].v.arr.items[0].v.i == 3);
        const vki_tensor_info *a = vki_file_find_tensor(f, "a.weight"), *bq = vki_file_find_tensor(f, "b.weight");
        CHECK(a && a->ne[0] == 32 && a->ne[1] == 2 && a->n_dims == 2 && a->bytes == 256 && a->offset == 0);
        CHECK(bq && bq->type == VKI_TYPE_Q8_0 && bq->offset == 256);
        CHECK(!vki_file_find_tensor(f, "nope"));
        /* the data is the mapping itself, not a copy */
        CHECK(a && (const uint8_t *)a->data >= o.p && (const uint8_t *)a->data < o.p + o.n);
        float row[64];
        CHECK(a && vki_tensor_dequant_row(a, 1, row) == VKI_OK && row[0] == 22.0f && row[31] == 53.0f);
        CHECK(bq && vki_tensor_dequant_row(bq, 0, row) == VKI_OK && row[0] == 15.0f);
        CHECK(a && vki_tensor_dequant_row(a, 2, row) == VKI_ERR_INVALID_ARGUMENT);
        CHECK(vki_file_weight_bytes(f) == 256 + 68 + 144);
    }
    vki_file_close(f);
    vki_file_close(NULL);
    /* every proper prefix is refused: each cut lands in some section */
    int cut_failures = 0;
    for (size_t n = 0; n < o.n; n++) {
        vki_model_file *g = NULL;
        vki_status cs = vki_file_open_gguf_memory(o.p, n, "cut.gguf", &g);
        if (cs == VKI_OK || g) cut_failures++;
        else check_message("truncated", cs, "cut.gguf");
        vki_file_close(g);
    }
    CHECKF(cut_failures == 0, "%d truncated files were accepted", cut_failures);
    free(o.p);
}

static void test_defects(void)
{
    for (int d = D_NONE + 1; d < D_COUNT; d++) {
        out o;
        build(&o, (defect)d);
        char name[64];
        snprintf(name, sizeof name, "%s.gguf", defect_names[d]);
        vki_model_file *f = NULL;
        vki_clear_error();
        vki_status s = vki_file_open_gguf_memory(o.p, o.n, name, &f);
        if (d == D_IQ_TYPE_DEQUANT) {
            /* a known type without a dequantizer parses, and is then refused
             * by name when its rows are read */
            CHECKF(s == VKI_OK, "%s: %s", name, vki_last_error());
            const vki_tensor_info *t = f ? vki_file_find_tensor(f, "c.weight") : NULL;
            float row[256];
            CHECK(t && t->type == VKI_TYPE_IQ2_XXS && t->bytes == 66);
            if (t) {
                CHECK(vki_tensor_dequant_row(t, 0, row) == VKI_ERR_UNSUPPORTED);
                CHECKF(strstr(vki_last_error(), "IQ2_XXS"), "message lacks the type name: %s", vki_last_error());
            }
        } else {
            CHECKF(s != VKI_OK && !f, "%s: accepted", name);
            if (s != VKI_OK) check_message(name, s, name);
            printf("  %-24s %s\n", defect_names[d], vki_last_error());
        }
        vki_file_close(f);
        free(o.p);
    }
}

/* ----- corpus writing ----- */

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
}

static void st_file(const char *dir, const char *name, const char *json, size_t data_bytes)
{
    out o = {0};
    u64(&o, strlen(json));
    put(&o, json, strlen(json));
    for (size_t i = 0; i < data_bytes; i++) put(&o, "\x01", 1);
    write_file(dir, name, o.p, o.n);
    free(o.p);
}

static int write_corpus(const char *dir)
{
    mkdir(dir, 0755);
    for (int d = D_NONE + 1; d < D_COUNT; d++) {
        if (d == D_IQ_TYPE_DEQUANT) continue; /* valid file: inspect succeeds */
        out o;
        build(&o, (defect)d);
        char name[64];
        snprintf(name, sizeof name, "gguf_%s.gguf", defect_names[d]);
        write_file(dir, name, o.p, o.n);
        free(o.p);
    }
    /* the clean file cut inside and at the end of each section */
    out o;
    build(&o, D_NONE);
    static const char *const sec[] = {"metadata", "tensor_infos", "padding", "data"};
    for (int m = 0; m < o.n_marks; m++) {
        size_t cuts[2] = {o.marks[m] + 3, m + 1 < o.n_marks ? o.marks[m + 1] - 1 : o.n - 1};
        for (int c = 0; c < 2; c++) {
            if (cuts[c] >= o.n) continue;
            char name[64];
            snprintf(name, sizeof name, "gguf_cut_%s_%s.gguf", sec[m], c ? "end" : "start");
            write_file(dir, name, o.p, cuts[c]);
        }
    }
    write_file(dir, "gguf_cut_header.gguf", o.p, 10);
    write_file(dir, "empty.bin", o.p, 0);
    free(o.p);
    /* safetensors */
    st_file(dir, "st_bad_json.safetensors", "{\"a\": {\"dtype\": \"F32\", ", 16);
    st_file(dir, "st_not_object.safetensors", "[1, 2, 3]", 0);
    st_file(dir, "st_unknown_dtype.safetensors", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    st_file(dir, "st_size_mismatch.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16);
    st_file(dir, "st_out_of_range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    st_file(dir, "st_overlap.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
    st_file(dir, "st_rank_5.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,2]}}", 2);
    st_file(dir, "st_negative_shape.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", 2);
    st_file(dir, "st_huge_shape.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,16]}}", 16);
    st_file(dir, "st_reversed_offsets.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", 4);
    st_file(dir, "st_dup_name.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4);
    st_file(dir, "st_missing_fields.safetensors", "{\"a\":{\"dtype\":\"U8\"}}", 0);
    st_file(dir, "st_bad_utf8_name.safetensors", "{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    {
        out h = {0};
        u64(&h, (uint64_t)1 << 40);
        put(&h, "{}", 2);
        write_file(dir, "st_huge_header_len.safetensors", h.p, h.n);
        free(h.p);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
    test_clean();
    test_defects();
    return test_finish("test_gguf_defects");
}
