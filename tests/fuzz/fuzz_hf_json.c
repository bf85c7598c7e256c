/* fuzz_hf_json.c: libFuzzer target for the HF JSON mapping: the input is
 * config.json, a NUL byte, tokenizer.json, a NUL byte, tokenizer_config.json
 * (missing parts are empty). */
#include <string.h>

#include "loader/file_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *part[3] = {"", "", ""};
    size_t len[3] = {0, 0, 0};
    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < 3 && p <= end; i++) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        part[i] = p;
        len[i] = (size_t)((z ? z : end) - p);
        p += len[i] + 1;
        if (!z) break;
    }
    vki_model_file *f = ld_file_new("fuzz-hf");
    if (!f) return 0;
    if (hf_map_config(f, "config.json", part[0], len[0]) == VKI_OK) {
        hf_map_tokenizer(f, "tokenizer.json", part[1], len[1], len[2] ? part[2] : NULL, len[2]);
        hf_map_tensors(f);
    } else {
        hf_map_tokenizer(f, "tokenizer.json", part[1], len[1], len[2] ? part[2] : NULL, len[2]);
    }
    vki_file_close(f);
    return 0;
}
