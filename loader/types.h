/*
 * types.h: tensor element types, numbered as GGUF/ggml number them so a GGUF
 * type id maps straight across, plus their block geometry and the quant
 * block structs. Shared by the loader, both backends and (mirrored in
 * shaders/common/types.glsl) the shaders.
 */
#ifndef VKI_TYPES_H
#define VKI_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum vki_type {
    VKI_TYPE_F32     = 0,
    VKI_TYPE_F16     = 1,
    VKI_TYPE_Q4_0    = 2,
    VKI_TYPE_Q4_1    = 3,
    VKI_TYPE_Q5_0    = 6,
    VKI_TYPE_Q5_1    = 7,
    VKI_TYPE_Q8_0    = 8,
    VKI_TYPE_Q8_1    = 9,
    VKI_TYPE_Q2_K    = 10,
    VKI_TYPE_Q3_K    = 11,
    VKI_TYPE_Q4_K    = 12,
    VKI_TYPE_Q5_K    = 13,
    VKI_TYPE_Q6_K    = 14,
    VKI_TYPE_Q8_K    = 15,
    VKI_TYPE_IQ2_XXS = 16,
    VKI_TYPE_IQ2_XS  = 17,
    VKI_TYPE_IQ3_XXS = 18,
    VKI_TYPE_IQ1_S   = 19,
    VKI_TYPE_IQ4_NL  = 20,
    VKI_TYPE_IQ3_S   = 21,
    VKI_TYPE_IQ2_S   = 22,
    VKI_TYPE_IQ4_XS  = 23,
    VKI_TYPE_I8      = 24,
    VKI_TYPE_I16     = 25,
    VKI_TYPE_I32     = 26,
    VKI_TYPE_I64     = 27,
    VKI_TYPE_F64     = 28,
    VKI_TYPE_IQ1_M   = 29,
    VKI_TYPE_BF16    = 30,
    VKI_TYPE_TQ1_0   = 34,
    VKI_TYPE_TQ2_0   = 35,
    VKI_TYPE_MXFP4   = 39,
    VKI_TYPE_U8      = 64, /* safetensors only; not a GGUF type */
    VKI_TYPE_COUNT   = 65,
} vki_type;

typedef struct vki_type_traits {
    const char *name;       /* "Q4_K"; NULL for ids that name no type         */
    uint32_t    block_size; /* elements per block (1 for plain types)         */
    uint32_t    type_size;  /* bytes per block                                */
    bool        supported;  /* the loader reads and dequantizes it            */
} vki_type_traits;

/* Traits of a type id; an id outside the table gets {NULL, 0, 0, false}. */
const vki_type_traits *vki_type_get(int type);
/* "Q4_K", or "type 77" style text in a static per-thread buffer for unknown ids. */
const char *vki_type_name(int type);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size. */
uint64_t vki_row_bytes(vki_type t, int64_t n);

/* ===== Quant blocks (exact GGUF layouts) ================================= */

typedef uint16_t vki_half; /* IEEE binary16 bits */

#define QK4_0 32
typedef struct { vki_half d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
#define QK4_1 32
typedef struct { vki_half d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
#define QK5_0 32
typedef struct { vki_half d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
#define QK5_1 32
typedef struct { vki_half d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
#define QK8_0 32
typedef struct { vki_half d; int8_t qs[QK8_0]; } block_q8_0;
#define QK8_1 32
typedef struct { vki_half d, s; int8_t qs[QK8_1]; } block_q8_1;

#define QK_K 256
#define K_SCALE_SIZE 12
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; vki_half d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; vki_half d; } block_q3_K;
typedef struct { vki_half d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { vki_half d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; vki_half d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* Dequantizes n elements (a multiple of the block size) of type t at src
 * into dst. The reference: exact to the GGUF block layouts, scalar, clear.
 * Returns false for a type the loader does not support. */
bool vki_dequantize_row(vki_type t, const void *src, float *dst, int64_t n);

/* Quantizes n floats into type t (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q8_1, Q2_K..Q6_K, Q8_K): the reference quantizers the tests and the
 * model generator use. Returns false for types it cannot produce. */
bool vki_quantize_row(vki_type t, const float *src, void *dst, int64_t n);

#endif
