/*
 * hf_kv.c: the small helpers the Hugging Face mappers (hf_config.c,
 * hf_tokenizer.c, hf_tensors.c) share: GGUF keys put into the file's
 * description (strings copied into its arena), arrays, JSON integers; and
 * tokenizer.chat_template from a chat_template.jinja.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "loader/hf_kv.h"
#include "util.h"

vki_status hf_put(vki_model_file *f, const char *key, vki_kv kv)
{
    char *k = ld_strdup(&f->arena, key, strlen(key));
    if (!k) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    kv.key = (vki_str){k, strlen(k)};
    return ld_set_kv(f, &kv);
}

vki_status hf_put_u32(vki_model_file *f, const char *key, uint32_t v)
{
    return hf_put(f, key, (vki_kv){.type = VKI_KV_U32, .v.u = v});
}

vki_status hf_put_f32(vki_model_file *f, const char *key, float v)
{
    return hf_put(f, key, (vki_kv){.type = VKI_KV_F32, .v.f = v});
}

vki_status hf_put_bool(vki_model_file *f, const char *key, bool v)
{
    return hf_put(f, key, (vki_kv){.type = VKI_KV_BOOL, .v.u = v});
}

vki_status hf_put_str(vki_model_file *f, const char *key, const char *s, size_t n)
{
    char *v = ld_strdup(&f->arena, s, n);
    if (!v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    return hf_put(f, key, (vki_kv){.type = VKI_KV_STRING, .v.s = {v, n}});
}

vki_status hf_map_chat_template(vki_model_file *f, const char *src, const char *text, size_t len)
{
    if (!ld_utf8_valid(text, len)) return vki_fail(VKI_ERR_BAD_FILE, "%s: not valid UTF-8", src);
    if (memchr(text, 0, len)) return vki_fail(VKI_ERR_BAD_FILE, "%s: holds a NUL byte", src);
    return hf_put_str(f, "tokenizer.chat_template", text, len);
}

vki_kv *hf_new_array(vki_model_file *f, vki_kv_type elem, uint64_t n, vki_kv *kv)
{
    *kv = (vki_kv){.type = VKI_KV_ARRAY};
    kv->v.arr.elem = elem;
    kv->v.arr.n = n;
    kv->v.arr.items = n ? ld_alloc(&f->arena, n * sizeof(vki_kv)) : NULL;
    if (n && kv->v.arr.items)
        for (uint64_t i = 0; i < n; i++) kv->v.arr.items[i].type = elem;
    return n && !kv->v.arr.items ? NULL : kv;
}

char *hf_arch_key(char *buf, size_t cap, const char *arch, const char *suffix)
{
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* A JSON number as an integer in [lo, hi]. */
bool hf_jint(const cJSON *j, double lo, double hi, int64_t *out)
{
    if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || j->valuedouble < lo || j->valuedouble > hi)
        return false;
    *out = (int64_t)j->valuedouble;
    return true;
}
