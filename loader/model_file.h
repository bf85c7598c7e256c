/*
 * model_file.h: the in-memory description of a model file, whatever its
 * format: metadata (GGUF key/value pairs; safetensors + HF config.json and
 * tokenizer.json are mapped onto the same GGUF keys and tensor names) and the
 * tensor table, with tensor data left in the mmap'd file.
 * Owns: the mappings and parsed tables. Knows nothing about devices.
 */
#ifndef VKI_MODEL_FILE_H
#define VKI_MODEL_FILE_H

#include "types.h"
#include "vkinfer.h"

/* GGUF metadata value types, numbered as in GGUF. */
typedef enum vki_kv_type {
    VKI_KV_U8 = 0, VKI_KV_I8 = 1, VKI_KV_U16 = 2, VKI_KV_I16 = 3,
    VKI_KV_U32 = 4, VKI_KV_I32 = 5, VKI_KV_F32 = 6, VKI_KV_BOOL = 7,
    VKI_KV_STRING = 8, VKI_KV_ARRAY = 9, VKI_KV_U64 = 10, VKI_KV_I64 = 11,
    VKI_KV_F64 = 12,
} vki_kv_type;

typedef struct vki_str { const char *p; uint64_t n; } vki_str; /* not NUL-terminated */

typedef struct vki_kv vki_kv;
struct vki_kv {
    vki_str     key;       /* for array elements: {NULL,0}                       */
    vki_kv_type type;
    union {
        uint64_t u;        /* U8..U64, BOOL                                     */
        int64_t  i;        /* I8..I64                                           */
        double   f;        /* F32, F64                                          */
        vki_str  s;        /* STRING                                            */
        struct {
            vki_kv_type elem;  /* element type                                  */
            uint64_t    n;     /* element count                                 */
            vki_kv     *items; /* [n] values (nested arrays allowed)            */
        } arr;
    } v;
};

typedef enum vki_file_format { VKI_FORMAT_GGUF = 0, VKI_FORMAT_SAFETENSORS = 1 } vki_file_format;

typedef struct vki_tensor_info {
    const char *name;     /* GGUF naming ("blk.0.attn_q.weight"), NUL-terminated  */
    vki_type    type;
    int32_t     n_dims;
    int64_t     ne[4];    /* elements per dim, fastest first; unused dims = 1     */
    uint64_t    offset;   /* byte offset of the data in its file                 */
    uint64_t    bytes;    /* byte size of the data                               */
    const void *data;     /* the data in the mapping (or, for the few vectors an HF
                             conversion derives, the loader's own memory); valid
                             until close; NULL when n_parts > 0               */
    int32_t     file_idx; /* which file of a sharded model                       */
    /* HF llama checkpoints store q/k rows in rotate-half order; GGUF's are
     * interleaved. When set, row r of the [ne1 rows] matrix is source row
     * perm(r) for `rope_permute_heads` heads (see vki_tensor_source_row());
     * for a 1-D tensor (a q/k bias) the elements are permuted the same way,
     * which vki_tensor_dequant_row() applies. */
    int32_t     rope_permute_heads;
    /* A tensor the loader assembles from several stored ones (HF MoE experts,
     * one [ne0, ne1] matrix per expert, stacked along ne[2]): part p holds
     * logical rows [p*ne1, (p+1)*ne1) at parts[p], and data is NULL. */
    int32_t            n_parts;
    const void *const *parts;  /* [n_parts]                                  */
} vki_tensor_info;

/* How a consumer must read a tensor's values (vki_tensor_read_mode()). */
typedef enum vki_tensor_read {
    VKI_TENSOR_READ_DIRECT  = 0, /* data holds `bytes` in logical order: borrow or copy it whole */
    VKI_TENSOR_READ_ROWS    = 1, /* rows are reordered or stacked: copy logical row r (of
                                    vki_row_bytes(type, ne[0]) bytes) from vki_tensor_row_data() */
    VKI_TENSOR_READ_DEQUANT = 2, /* a permuted vector (an HF llama q/k bias): read it as
                                    f32 through vki_tensor_dequant_row() only */
} vki_tensor_read;

typedef struct vki_model_file vki_model_file;

/* Opens a GGUF file, a .safetensors file, a model.safetensors.index.json or
 * an HF folder (config.json + *.safetensors [+ tokenizer.json]). Validates
 * everything it reads; on failure returns VKI_ERR_NOT_FOUND/BAD_FILE/
 * UNSUPPORTED with "PATH: what is wrong" in vki_last_error(). */
vki_status vki_file_open(const char *path, vki_model_file **out);
/* The same for GGUF bytes in memory (fuzzing, tests); data is borrowed. */
vki_status vki_file_open_gguf_memory(const void *data, size_t size, const char *name, vki_model_file **out);
vki_status vki_file_open_safetensors_memory(const void *data, size_t size, const char *name, vki_model_file **out);
void       vki_file_close(vki_model_file *f);

vki_file_format vki_file_format_of(const vki_model_file *f);
uint32_t        vki_file_version(const vki_model_file *f);  /* GGUF version; 0 for safetensors */
const char     *vki_file_path(const vki_model_file *f);
/* general.architecture ("llama", "qwen2", "bert", ...), or "" when absent. */
const char     *vki_file_arch(const vki_model_file *f);

/* ----- metadata ----- */
int64_t       vki_file_n_kv(const vki_model_file *f);
const vki_kv *vki_file_kv(const vki_model_file *f, int64_t i);
const vki_kv *vki_file_find_kv(const vki_model_file *f, const char *key); /* NULL if absent */
/* Typed getters: true when the key exists and converts losslessly. */
bool vki_file_get_u32(const vki_model_file *f, const char *key, uint32_t *out);
bool vki_file_get_i64(const vki_model_file *f, const char *key, int64_t *out);
bool vki_file_get_f32(const vki_model_file *f, const char *key, float *out);
bool vki_file_get_bool(const vki_model_file *f, const char *key, bool *out);
bool vki_file_get_str(const vki_model_file *f, const char *key, vki_str *out);
/* "<arch>.<suffix>" lookup, e.g. vki_file_get_arch_u32(f, "block_count", &n). */
bool vki_file_get_arch_u32(const vki_model_file *f, const char *suffix, uint32_t *out);
bool vki_file_get_arch_f32(const vki_model_file *f, const char *suffix, float *out);

/* ----- tensors ----- */
int64_t                vki_file_n_tensors(const vki_model_file *f);
const vki_tensor_info *vki_file_tensor(const vki_model_file *f, int64_t i);
const vki_tensor_info *vki_file_find_tensor(const vki_model_file *f, const char *name);
/* Sum of all tensor bytes. */
uint64_t               vki_file_weight_bytes(const vki_model_file *f);
/* Bytes [p, p + size) of tensor data will not be read again (a backend
 * holds its own copy): the whole pages inside that range leave this
 * process's resident set (they stay in the page cache, and a later read
 * faults them back in). A no-op for memory the loader did not map. */
void                   vki_file_release(const vki_model_file *f, const void *p, uint64_t size);
/* Dequantizes logical row `row` (of ne[0] elements; rows run over ne[1..3])
 * of a tensor into dst, applying rope_permute_heads (to rows, or to the
 * elements of a 1-D tensor) and parts. Returns
 * VKI_ERR_UNSUPPORTED for types without a dequantizer, with the type's name
 * in the message. */
vki_status vki_tensor_dequant_row(const vki_tensor_info *t, int64_t row, float *dst);
/* The stored row of `data` that holds logical row r of the first matrix
 * (identity unless rope_permute_heads). Not for tensors with parts. */
int64_t    vki_tensor_source_row(const vki_tensor_info *t, int64_t r);
/* The stored bytes of logical row r (0 <= r < ne[1]*ne[2]*ne[3]) in the
 * tensor's own type, after the rope permutation and the stacking of parts;
 * valid until close. Not for VKI_TENSOR_READ_DEQUANT tensors. */
const void *vki_tensor_row_data(const vki_tensor_info *t, int64_t r);
vki_tensor_read vki_tensor_read_mode(const vki_tensor_info *t);

#endif
