/*
 * file_impl.h: the inside of vki_model_file, shared by the format readers
 * (gguf.c, safetensors.c, hf_*.c) and model_file.c. Private to loader/:
 * everything else goes through model_file.h.
 * Owns: the mappings, an arena holding all parsed metadata, and the name
 * indexes. Tensor data is never copied out of the mappings.
 */
#ifndef VKI_LOADER_FILE_IMPL_H
#define VKI_LOADER_FILE_IMPL_H

#include "loader/model_file.h"

/* Bump allocator: every table and string of a parsed file lives here and is
 * freed at once by vki_file_close(). */
typedef struct ld_chunk ld_chunk;
typedef struct ld_arena { ld_chunk *head; } ld_arena;
void *ld_alloc(ld_arena *a, uint64_t bytes);          /* zeroed; NULL on OOM   */
char *ld_strdup(ld_arena *a, const char *s, size_t n); /* NUL-terminated copy  */
void  ld_arena_free(ld_arena *a);

/* Open-addressing index from a byte string to an int64 (position in a table). */
typedef struct ld_index { uint64_t cap; int64_t *slot; } ld_index;

typedef struct ld_map {
    void    *addr;
    uint64_t size;
    bool     mapped; /* munmap on close (false: memory borrowed from the caller) */
} ld_map;

#define LD_MAX_FILES 256

struct vki_model_file {
    vki_file_format  format;
    uint32_t         version;
    char            *path;
    const char      *arch;        /* general.architecture or ""            */
    ld_arena         arena;
    ld_map           maps[LD_MAX_FILES];
    int32_t          n_maps;
    vki_kv          *kv;          /* [n_kv]                                */
    int64_t          n_kv, cap_kv;
    vki_tensor_info *tensors;     /* [n_tensors]                           */
    int64_t          n_tensors, cap_tensors;
    ld_index         kv_index, tensor_index;
    uint64_t         alignment;   /* GGUF data alignment                   */
    uint64_t         data_offset; /* GGUF: start of the data section       */
    uint64_t         weight_bytes;
};

vki_model_file *ld_file_new(const char *path);
/* Maps a file read-only; VKI_ERR_NOT_FOUND / BAD_FILE with the path. */
vki_status ld_map_file(vki_model_file *f, const char *path, int32_t *idx);
/* Appends a kv (the key must stay valid: arena or mapping); fails on a
 * duplicate key. */
vki_status ld_add_kv(vki_model_file *f, const vki_kv *kv);
/* Appends a tensor; fails on a duplicate name. */
vki_status ld_add_tensor(vki_model_file *f, const vki_tensor_info *t);
/* Sets or replaces a kv by key (HF mapping: later sources refine earlier ones). */
vki_status ld_set_kv(vki_model_file *f, const vki_kv *kv);
/* Builds the index lookups after all adds (also done incrementally). */
int64_t ld_index_find(const ld_index *ix, const vki_model_file *f, bool tensors, const char *s, size_t n);

/* Shared validation helpers. */
bool ld_utf8_valid(const char *s, uint64_t n);

/* Readers. */
vki_status gguf_parse(vki_model_file *f, const uint8_t *data, uint64_t size);
vki_status st_parse_file(vki_model_file *f, int32_t map_idx, bool want_config_meta);
vki_status st_open_path(vki_model_file *f, const char *path);
vki_status st_parse_memory(vki_model_file *f, const uint8_t *data, uint64_t size);
/* The text of a model.safetensors.index.json: opens the shards it names in
 * dir and checks each listed tensor is there. */
vki_status st_parse_index(vki_model_file *f, const char *dir, const char *index_path, const char *text, size_t len);

/* HF config.json (hf_config.c) and tokenizer.json (hf_tokenizer.c) mapped
 * onto GGUF keys, and HF tensor names onto GGUF names (hf_tensors.c). Text
 * is the file's bytes (not NUL-terminated). */
vki_status hf_map_config(vki_model_file *f, const char *src, const char *text, size_t len);
vki_status hf_map_tokenizer(vki_model_file *f, const char *src, const char *text, size_t len,
                            const char *config_text, size_t config_len);
/* chat_template.jinja: the text becomes tokenizer.chat_template (hf_kv.c) */
vki_status hf_map_chat_template(vki_model_file *f, const char *src, const char *text, size_t len);
vki_status hf_map_pooling(vki_model_file *f, const char *src, const char *text, size_t len);
/* Renames HF tensors to GGUF names in place and marks llama q/k for the
 * rope permutation; call after config mapping (needs the head counts). */
vki_status hf_map_tensors(vki_model_file *f);
/* HF name -> GGUF name into out (size cap); false when the name has no mapping. */
bool hf_tensor_name(const char *arch, const char *hf, char *out, size_t cap);

#endif
