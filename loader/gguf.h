/*
 * gguf.h: the GGUF reader and writer. The reader fills a vki_model_file from
 * bytes (an mmap'd file or memory for fuzzing) and validates everything it
 * reads; the writer (gguf_write.c) serves the model generator and the tests.
 *
 * The file format (versions 2 and 3, little-endian; v3 only added big-endian
 * files, which are refused):
 *   1. magic "GGUF" (4 bytes), version u32
 *   2. n_tensors u64, n_kv u64
 *   3. n_kv metadata pairs: key (string), value type u32, value
 *        string = u64 length + bytes (no NUL);
 *        array  = element type u32 + count u64 + elements (nested arrays allowed)
 *        scalars: u8 i8 u16 i16 u32 i32 f32 bool(1 byte) u64 i64 f64
 *   4. n_tensors tensor infos: name (string), n_dims u32 (1..4),
 *      ne[n_dims] u64 (fastest first), type u32, offset u64 (relative to 5.)
 *   5. padding to general.alignment (u32, a power of two, default 32), then
 *      the data section; every tensor offset is a multiple of the alignment.
 */
#ifndef VKI_GGUF_H
#define VKI_GGUF_H

#include <stdio.h>

#include "loader/model_file.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DEPTH 4          /* nesting of arrays in metadata      */
#define GGUF_MAX_NAME 256         /* bytes in a tensor name (ggml: 64)  */

/* ----- writer ----- */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_create(uint32_t alignment);
void gguf_writer_destroy(gguf_writer *w);
/* Metadata, in the order written. Strings are copied. */
vki_status gguf_write_u32(gguf_writer *w, const char *key, uint32_t v);
vki_status gguf_write_i32(gguf_writer *w, const char *key, int32_t v);
vki_status gguf_write_u64(gguf_writer *w, const char *key, uint64_t v);
vki_status gguf_write_f32(gguf_writer *w, const char *key, float v);
vki_status gguf_write_bool(gguf_writer *w, const char *key, bool v);
vki_status gguf_write_str(gguf_writer *w, const char *key, const char *v);
vki_status gguf_write_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
vki_status gguf_write_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
vki_status gguf_write_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* A raw kv value (type + encoded bytes), for copying metadata from a file. */
vki_status gguf_write_kv(gguf_writer *w, const vki_kv *kv);
/* A tensor; data (row_bytes * rows) is copied. */
vki_status gguf_write_tensor(gguf_writer *w, const char *name, vki_type type, int n_dims, const int64_t *ne,
                             const void *data);
/* Writes the whole file; "PATH: ..." errors. */
vki_status gguf_writer_save(gguf_writer *w, const char *path);
/* The whole file in memory (caller frees), for tests and corpus generation. */
vki_status gguf_writer_to_memory(gguf_writer *w, void **data, size_t *size);

#endif
