/*
 * hf_kv.h: helpers shared by the Hugging Face mappers (loader/hf_*.c);
 * internal to the loader. Each returns VKI_ERR_OUT_OF_MEMORY with a message
 * when the file's arena is exhausted.
 */
#ifndef VKI_LOADER_HF_KV_H
#define VKI_LOADER_HF_KV_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "loader/file_impl.h"

/* Sets key (copied) to kv in f's description. */
vki_status hf_put(vki_model_file *f, const char *key, vki_kv kv);
vki_status hf_put_u32(vki_model_file *f, const char *key, uint32_t v);
vki_status hf_put_f32(vki_model_file *f, const char *key, float v);
vki_status hf_put_bool(vki_model_file *f, const char *key, bool v);
/* s[0..n) copied into the arena. */
vki_status hf_put_str(vki_model_file *f, const char *key, const char *s, size_t n);
/* An array kv of n items of type elem in the arena; NULL when out of memory. */
vki_kv *hf_new_array(vki_model_file *f, vki_kv_type elem, uint64_t n, vki_kv *kv);
/* "<arch>.<suffix>" in buf. */
char *hf_arch_key(char *buf, size_t cap, const char *arch, const char *suffix);
/* A JSON number as an integer in [lo, hi]. */
bool hf_jint(const cJSON *j, double lo, double hi, int64_t *out);

#endif
