/* fuzz_st_index.c: libFuzzer target for model.safetensors.index.json
 * (loader/safetensors.c st_parse_index). The input is the index text; the
 * shards it may name are small files written once into a temporary folder:
 * two good shards, one repeating a tensor of the first, one that is not
 * safetensors, an empty one and a folder. Checks: any input gives a file
 * or a message, never a crash or a leak, and an accepted index lists only
 * tensors that are in the shard it names. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "loader/file_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                        \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);           \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

/* shard file -> the tensors it holds ("\n"-separated), as written below */
static const struct { const char *file, *header, *tensors; size_t data_bytes; } shards[] = {
    {"model-00001-of-00002.safetensors",
     "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"a.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},\"__metadata__\":{\"format\":\"pt\"}}",
     "a.weight\na.bias\n", 12},
    {"model-00002-of-00002.safetensors",
     "{\"b.weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", "b.weight\n", 8},
    {"dup.safetensors", "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "a.weight\n", 8},
};
static char dir[64];

static void cleanup(void)
{
    char path[256];
    for (size_t i = 0; i < sizeof shards / sizeof *shards; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, shards[i].file);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);
    rmdir(dir);
}

static void write_file(const char *name, const void *a, size_t na, const void *b, size_t nb)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    FZ_CHECK(fp && fwrite(a, 1, na, fp) == na && (!nb || fwrite(b, 1, nb, fp) == nb));
    fclose(fp);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/vki-fuzz-st-index-XXXXXX");
    FZ_CHECK(mkdtemp(dir));
    atexit(cleanup);
    for (size_t i = 0; i < sizeof shards / sizeof *shards; i++) {
        size_t hl = strlen(shards[i].header);
        uint8_t blob[512] = {0};
        for (int k = 0; k < 8; k++) blob[k] = (uint8_t)((uint64_t)hl >> (8 * k));
        memcpy(blob + 8, shards[i].header, hl);
        write_file(shards[i].file, blob, 8 + hl + shards[i].data_bytes, NULL, 0);
    }
    write_file("bad.safetensors", "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10, NULL, 0);
    write_file("empty.safetensors", "", 0, NULL, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/sub", dir);
    FZ_CHECK(mkdir(path, 0700) == 0);
}

/* Whether shard file `file` holds tensor `name`. */
static bool shard_has(const char *file, const char *name)
{
    for (size_t i = 0; i < sizeof shards / sizeof *shards; i++) {
        if (strcmp(shards[i].file, file)) continue;
        for (const char *p = shards[i].tensors; *p; p = strchr(p, '\n') + 1)
            if (!strncmp(p, name, strlen(name)) && p[strlen(name)] == '\n') return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) setup();
    char index_path[128];
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    vki_model_file *f = ld_file_new(index_path);
    FZ_CHECK(f);
    f->format = VKI_FORMAT_SAFETENSORS;
    vki_clear_error();
    vki_status s = st_parse_index(f, dir, index_path, (const char *)data, size);
    if (s != VKI_OK) {
        FZ_CHECK(vki_last_error()[0]);
    } else {
        /* accepted: every listed tensor is in the shard it is listed in */
        cJSON *root = cJSON_ParseWithLength((const char *)data, size);
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *e;
        FZ_CHECK(cJSON_IsObject(wm));
        cJSON_ArrayForEach(e, wm) {
            FZ_CHECK(cJSON_IsString(e) && vki_file_find_tensor(f, e->string));
            FZ_CHECK(shard_has(e->valuestring, e->string));
        }
        cJSON_Delete(root);
    }
    vki_file_close(f);
    return 0;
}
