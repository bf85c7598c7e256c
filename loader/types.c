/*
 * types.c: the type traits table (GGUF/ggml type ids, names, block geometry)
 * and row sizes. Which types the loader can dequantize is decided here; the
 * dequantizers themselves live in quants.c.
 */
#include "loader/types.h"

#include <stdio.h>

#include "util.h"

/* Block sizes and type sizes follow ggml-common.h; `supported` marks the
 * types vki_dequantize_row() reads. The IQ/TQ/MXFP4 types have known sizes,
 * so a file holding them parses and then reports them as unsupported by name. */
static const vki_type_traits traits[VKI_TYPE_COUNT] = {
    [VKI_TYPE_F32]     = {"F32", 1, 4, true},
    [VKI_TYPE_F16]     = {"F16", 1, 2, true},
    [VKI_TYPE_Q4_0]    = {"Q4_0", QK4_0, sizeof(block_q4_0), true},
    [VKI_TYPE_Q4_1]    = {"Q4_1", QK4_1, sizeof(block_q4_1), true},
    [VKI_TYPE_Q5_0]    = {"Q5_0", QK5_0, sizeof(block_q5_0), true},
    [VKI_TYPE_Q5_1]    = {"Q5_1", QK5_1, sizeof(block_q5_1), true},
    [VKI_TYPE_Q8_0]    = {"Q8_0", QK8_0, sizeof(block_q8_0), true},
    [VKI_TYPE_Q8_1]    = {"Q8_1", QK8_1, sizeof(block_q8_1), true},
    [VKI_TYPE_Q2_K]    = {"Q2_K", QK_K, sizeof(block_q2_K), true},
    [VKI_TYPE_Q3_K]    = {"Q3_K", QK_K, sizeof(block_q3_K), true},
    [VKI_TYPE_Q4_K]    = {"Q4_K", QK_K, sizeof(block_q4_K), true},
    [VKI_TYPE_Q5_K]    = {"Q5_K", QK_K, sizeof(block_q5_K), true},
    [VKI_TYPE_Q6_K]    = {"Q6_K", QK_K, sizeof(block_q6_K), true},
    [VKI_TYPE_Q8_K]    = {"Q8_K", QK_K, sizeof(block_q8_K), true},
    [VKI_TYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 66, false},
    [VKI_TYPE_IQ2_XS]  = {"IQ2_XS", QK_K, 74, false},
    [VKI_TYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 98, false},
    [VKI_TYPE_IQ1_S]   = {"IQ1_S", QK_K, 50, false},
    [VKI_TYPE_IQ4_NL]  = {"IQ4_NL", 32, 18, false},
    [VKI_TYPE_IQ3_S]   = {"IQ3_S", QK_K, 110, false},
    [VKI_TYPE_IQ2_S]   = {"IQ2_S", QK_K, 82, false},
    [VKI_TYPE_IQ4_XS]  = {"IQ4_XS", QK_K, 136, false},
    [VKI_TYPE_I8]      = {"I8", 1, 1, true},
    [VKI_TYPE_I16]     = {"I16", 1, 2, true},
    [VKI_TYPE_I32]     = {"I32", 1, 4, true},
    [VKI_TYPE_I64]     = {"I64", 1, 8, true},
    [VKI_TYPE_F64]     = {"F64", 1, 8, true},
    [VKI_TYPE_IQ1_M]   = {"IQ1_M", QK_K, 56, false},
    [VKI_TYPE_BF16]    = {"BF16", 1, 2, true},
    [VKI_TYPE_TQ1_0]   = {"TQ1_0", QK_K, 54, false},
    [VKI_TYPE_TQ2_0]   = {"TQ2_0", QK_K, 66, false},
    [VKI_TYPE_MXFP4]   = {"MXFP4", 32, 17, false},
    [VKI_TYPE_U8]      = {"U8", 1, 1, true},
};

static const vki_type_traits no_type = {NULL, 0, 0, false};

/* Ids GGUF once used and then retired: named in messages so that a file from
 * an old converter is not reported as garbage. */
static const char *retired_name(int type)
{
    switch (type) {
    case 4: return "Q4_2 (retired)";
    case 5: return "Q4_3 (retired)";
    case 31: return "Q4_0_4_4 (retired)";
    case 32: return "Q4_0_4_8 (retired)";
    case 33: return "Q4_0_8_8 (retired)";
    case 36: return "IQ4_NL_4_4 (retired)";
    case 37: return "IQ4_NL_4_8 (retired)";
    case 38: return "IQ4_NL_8_8 (retired)";
    }
    return NULL;
}

const vki_type_traits *vki_type_get(int type)
{
    if (type < 0 || type >= VKI_TYPE_COUNT || !traits[type].name) return &no_type;
    return &traits[type];
}

const char *vki_type_name(int type)
{
    static _Thread_local char buf[32];
    const vki_type_traits *tr = vki_type_get(type);
    if (tr->name) return tr->name;
    const char *r = retired_name(type);
    if (r) return r;
    snprintf(buf, sizeof buf, "type %d", type);
    return buf;
}

uint64_t vki_row_bytes(vki_type t, int64_t n)
{
    const vki_type_traits *tr = vki_type_get(t);
    if (!tr->block_size || n < 0 || n % tr->block_size) return 0;
    uint64_t bytes;
    if (!vki_mul_ok((uint64_t)(n / tr->block_size), tr->type_size, &bytes)) return 0;
    return bytes;
}
