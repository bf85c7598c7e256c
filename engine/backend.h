/*
 * backend.h: the one op interface model code is written against.
 * A backend owns buffers (host memory on the CPU, device memory on Vulkan)
 * and runs ops on tensors that live in them. Model code brackets a forward
 * pass with bk_begin()/bk_end(): the CPU backend runs each op eagerly (the
 * mat-vecs on one input together), the Vulkan backend records them into a
 * command buffer (with the barriers they need) and submits once at bk_end(). Every op has a scalar reference in
 * engine/cpu/ref.c; tests compare every backend against it.
 * Must not: know about models, files or tokenizers.
 */
#ifndef VKI_BACKEND_H
#define VKI_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "loader/types.h"
#include "vkinfer.h"

#define BK_IFACE_VERSION 1

typedef struct bk_backend bk_backend;
typedef struct bk_buffer  bk_buffer; /* backend-specific; created and destroyed by its backend */

/* A tensor is a typed, strided view into a buffer. ne[0] is the fastest
 * dimension; nb[i] is the byte stride of dimension i (nb[0] = element size
 * for plain types, block size for quantized rows, which must be whole rows).
 * Tensors are plain values: copying one copies the view, not the data. */
typedef struct bk_tensor {
    vki_type   type;
    int64_t    ne[4];
    uint64_t   nb[4];
    bk_buffer *buf;
    uint64_t   offs;     /* byte offset of element 0 in buf */
    const char *name;    /* for messages; may be NULL       */
} bk_tensor;

typedef enum bk_op_kind {
    /* dst[n][d] f32 = rows ids[n] of src0 [rows][d] (any supported type);
     * src1: i32 [n] row ids. */
    BK_OP_GET_ROWS = 0,
    /* dst[n][m] f32 = src1[n][k] f32 · src0[m][k]^T, src0 any weight type;
     * optional src2: f32 [m] bias added to every row. ip[0]: 0, or
     * BK_ACT_GELU / BK_ACT_GELU_TANH applied to the result after the bias
     * (BERT's FFN: the CPU applies it per tile while it is in cache). */
    BK_OP_MATMUL,
    /* dst = src0 + src1; src1 has the same shape or one row broadcast over
     * rows (src1->ne[1] == 1, ne[2] == 1). f32. */
    BK_OP_ADD,
    /* dst = src0 * src1, same broadcast as ADD. */
    BK_OP_MUL,
    /* dst = src0 * fp[0]. */
    BK_OP_SCALE,
    /* per row of ne[0]: dst = src0 / sqrt(mean(src0^2) + fp[0]) [* src1 (f32 [ne0])]. */
    BK_OP_RMS_NORM,
    /* per row: dst = (src0 - mean) / sqrt(var + fp[0]) [* src1] [+ src2] (f32 [ne0]). */
    BK_OP_LAYER_NORM,
    /* Rotary embedding, in place allowed. src0: f32 [n_tok][n_head][head_dim]
     * (ne = {head_dim, n_head, n_tok}); src1: i32 [n_tok] positions.
     * ip[0] = n_rot (dims rotated, even, <= head_dim), ip[1] = mode
     * (BK_ROPE_NORMAL: pairs (2i, 2i+1); BK_ROPE_NEOX: pairs (i, i + n_rot/2)),
     * fp[0] = freq_base, fp[1] = freq_scale (1 = none), fp[2] = mscale
     * (multiplies cos and sin; 0 means 1: LongRoPE's attn_factor, YaRN's
     * magnitude correction). Optional src2: f32 [n_rot/2] per-pair divisors
     * of the frequency (llama-3 rope_freqs, LongRoPE factors, YaRN's ramp
     * folded in by the model). theta_i = pos * freq_scale *
     * base^(-2i/n_rot) / src2[i]. */
    BK_OP_ROPE,
    /* per row: dst = softmax(src0 * fp[0]). */
    BK_OP_SOFTMAX,
    /* dst = x * sigmoid(x). */
    BK_OP_SILU,
    /* ip[0] = BK_ACT_GELU: dst = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU,
     * as BERT uses); BK_ACT_GELU_TANH: the tanh approximation (gemma). */
    BK_OP_GELU,
    /* dst = act(src0) * src1 (the gated FFN product); ip[0] = act:
     * BK_ACT_SILU (SwiGLU), BK_ACT_GELU_TANH (GeGLU, gemma), BK_ACT_GELU. */
    BK_OP_SWIGLU,
    /* dst = convert(src0): f32 -> f32/f16, same element count, any strides
     * on both sides (KV cache writes). */
    BK_OP_CPY,
    /* Fused attention for one sequence.
     * src0 q: f32 {head_dim, n_head, n_q}; src1 k, src2 v: f32 or f16
     * {head_dim, n_kv_head, n_kv} (views into a KV cache; n_head is a
     * multiple of n_kv_head: grouped-query attention).
     * dst: f32 {head_dim, n_head, n_q}. fp[0] = scale (usually 1/sqrt(hd)).
     * ip[0] = causal: query row i (absolute position ip[1] + i) sees kv
     * positions j <= ip[1] + i; non-causal sees all n_kv.
     * ip[2] = sliding window W (0 = none): query row i also sees only
     * j > ip[1] + i - W (positions relative to the view's first row).
     * fp[1] = logit softcap C (0 = none): score = C * tanh(score / C),
     * applied to q.k * scale before the softmax (gemma2). */
    BK_OP_ATTN,
    /* Pool one sequence: src0 f32 [n_tok][d] -> dst f32 [1][d].
     * ip[0] = BK_POOL_MEAN, BK_POOL_CLS (row 0) or BK_POOL_LAST. */
    BK_OP_POOL,
    /* per row: dst = src0 / max(||src0||_2, 1e-12). */
    BK_OP_L2_NORM,
    /* dst = fp[0] * tanh(src0 / fp[0]) (final-logit softcapping); f32. */
    BK_OP_SOFTCAP,
    /* Mixture-of-experts routing, per row r of src0 f32 [n_rows][n_exp]:
     * dst i32 [n_rows][k] = the indices of the k = dst->ne[0] largest
     * values, largest first (ties: lower index first). */
    BK_OP_TOP_K,
    /* dst f32 [n_rows][k] = src0[r][src1[r][j]] (src0 f32 [n_rows][n],
     * src1 i32 [n_rows][k]); ip[0] = 1: each row divided by its sum (the
     * chosen experts' weights renormalised). */
    BK_OP_GATHER_COLS,
    /* Expert mat-mul. src0: weights {k, m, n_exp} of any weight type (one
     * [m][k] matrix per expert); src1: f32 {k, 1 or n_used, n_tok}
     * (activations, shared by every slot when ne[1] == 1); src2: i32
     * {n_used, n_tok} expert ids. dst f32 {m, n_used, n_tok}:
     * dst[t][s] = W[src2[t][s]] . src1[t][s or 0]. Only the chosen
     * experts' weights are read. */
    BK_OP_MATMUL_ID,
    /* dst f32 {d, n_tok} = sum over s of src1[t][s] * src0[t][s] (src0 f32
     * {d, n_used, n_tok}, src1 f32 {n_used, n_tok}): the weighted sum of
     * the experts' outputs. */
    BK_OP_MOE_SUM,
    BK_OP_COUNT
} bk_op_kind;

enum { BK_ROPE_NORMAL = 0, BK_ROPE_NEOX = 2 };
enum { BK_POOL_MEAN = 0, BK_POOL_CLS = 1, BK_POOL_LAST = 2 };
enum { BK_ACT_SILU = 0, BK_ACT_GELU = 1, BK_ACT_GELU_TANH = 2 };

typedef struct bk_op {
    bk_op_kind       kind;
    const bk_tensor *dst;
    const bk_tensor *src[3]; /* unused = NULL */
    int32_t          ip[4];
    float            fp[4];
} bk_op;

const char *bk_op_name(bk_op_kind k);

typedef enum bk_buffer_usage {
    BK_BUFFER_WEIGHTS = 0, /* written once at load, read by kernels   */
    BK_BUFFER_COMPUTE = 1, /* activations, KV cache: read and written */
} bk_buffer_usage;

/* Called while uploading with bytes done and total; return false to cancel. */
typedef bool (*bk_progress_cb)(uint64_t done, uint64_t total, void *user);

typedef struct bk_iface {
    uint32_t version; /* BK_IFACE_VERSION */
    /* Human-readable: "cpu (avx512, 2 threads)", "Vulkan: llvmpipe (...)". */
    const char *(*name)(bk_backend *be);
    void (*destroy)(bk_backend *be);

    vki_status (*buffer_create)(bk_backend *be, uint64_t size, bk_buffer_usage usage, bk_buffer **out);
    void       (*buffer_destroy)(bk_backend *be, bk_buffer *buf);
    /* (optional) wraps caller memory (e.g. the mmap'd file) without a copy;
     * the memory must outlive the buffer. */
    vki_status (*buffer_from_host)(bk_backend *be, void *ptr, uint64_t size, bk_buffer **out);
    /* (optional) host address of a buffer's byte 0, for host-visible buffers. */
    void      *(*buffer_host_ptr)(bk_backend *be, bk_buffer *buf);

    /* Copy bytes in/out of a tensor's storage (offs/size in bytes from the
     * tensor's byte 0; the tensor must be contiguous over that range). Not
     * allowed between begin and end. */
    vki_status (*tensor_set)(bk_backend *be, const bk_tensor *t, const void *src, uint64_t offs, uint64_t size);
    vki_status (*tensor_get)(bk_backend *be, const bk_tensor *t, void *dst, uint64_t offs, uint64_t size);

    /* Whether compute() handles this op with these types and shapes. */
    bool (*supports_op)(bk_backend *be, const bk_op *op);
    vki_status (*begin)(bk_backend *be);
    /* CPU: runs now, except a mat-vec MATMUL, which may be held until the
     * next op that is not a MATMUL on the same input (or end()) and run
     * with the others on that input. Vulkan: records. Results are visible
     * after end() on every backend. The op struct and its tensors may be
     * reused by the caller after return. */
    vki_status (*compute)(bk_backend *be, const bk_op *op);
    vki_status (*end)(bk_backend *be);

    /* Bytes of memory this backend has allocated for buffers. */
    uint64_t (*memory_used)(bk_backend *be);

    /* (optional) Told once per weight, after its data is in place and
     * outside a pass, how the model uses it (BK_WEIGHT_* flags): the backend
     * may move it to a layout of its own that its kernels read faster (the
     * CPU's repacked Q4_0/Q8_0). t stays valid as it is (type, shape,
     * strides, buffer) for every op and tensor_get; tensor_set may then
     * refuse it. *released: the buffer wrapped caller memory and no longer
     * reads it (its copy now counts in memory_used). */
    vki_status (*weight_prepare)(bk_backend *be, const bk_tensor *t, unsigned uses, bool *released);
} bk_iface;

/* Uses of a weight, for weight_prepare. */
enum { BK_WEIGHT_MATMUL = 1, BK_WEIGHT_GATHER = 2, BK_WEIGHT_MATMUL_ID = 4 };

struct bk_backend {
    const bk_iface *iface;
    void           *ctx;   /* the backend's own state */
    vki_backend_kind kind;
};

/* Wraps inner (taking ownership, also on failure) so that every op is run
 * as its own pass and compared with the scalar CPU reference on the same
 * inputs; ops past tolerance are reported on stderr, a summary at destroy
 * (engine/backend_check.c). The api layer applies it when the environment
 * has VKI_CHECK_RESULTS=1. */
vki_status bk_check_create(bk_backend *inner, bk_backend **out);
/* Ops checked and ops past tolerance so far (0 for a backend that is not a
 * checking wrapper). */
uint64_t bk_check_op_count(bk_backend *be);
/* The backend a checking wrapper wraps; be itself for any other backend
 * (backend-specific calls such as bk_vk_* need the real one). */
bk_backend *bk_check_inner(bk_backend *be);
uint64_t bk_check_bad_count(bk_backend *be);

/* ===== Helpers over the interface (engine/backend.c) ===================== */

/* A contiguous tensor of type t and shape ne[0..n_dims) at buf+offs. */
bk_tensor bk_tensor_make(vki_type t, int n_dims, const int64_t *ne, bk_buffer *buf, uint64_t offs);
/* A view of rows [r0, r0+n) along dim 1 (2-D) or dim 2 (3-D) of t. */
bk_tensor bk_tensor_rows(const bk_tensor *t, int dim, int64_t r0, int64_t n);
int64_t   bk_nelements(const bk_tensor *t);
uint64_t  bk_nbytes(const bk_tensor *t);       /* bytes spanned by a contiguous tensor */
/* Bytes from element 0 to the end of the last element, for any strides
 * (what a copy or a binding of the tensor must cover). */
uint64_t  bk_span(const bk_tensor *t);
bool      bk_is_contiguous(const bk_tensor *t);

static inline vki_status bk_begin(bk_backend *be) { return be->iface->begin(be); }
static inline vki_status bk_end(bk_backend *be) { return be->iface->end(be); }
static inline vki_status bk_compute(bk_backend *be, const bk_op *op) { return be->iface->compute(be, op); }
static inline const char *bk_name(bk_backend *be) { return be->iface->name(be); }
void bk_destroy(bk_backend *be); /* NULL-safe */

/* One-line builders: fill a bk_op and run/record it. */
vki_status bk_get_rows(bk_backend *be, const bk_tensor *dst, const bk_tensor *table, const bk_tensor *ids);
vki_status bk_matmul(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x, const bk_tensor *bias);
/* MATMUL followed by act (BK_ACT_GELU or BK_ACT_GELU_TANH) in one op. */
vki_status bk_matmul_act(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x,
                         const bk_tensor *bias, int act);
vki_status bk_add(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, const bk_tensor *b);
vki_status bk_mul(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, const bk_tensor *b);
vki_status bk_scale(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, float s);
vki_status bk_rms_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *w, float eps);
vki_status bk_layer_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *w, const bk_tensor *b, float eps);
vki_status bk_rope(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *pos,
                   int n_rot, int mode, float freq_base, float freq_scale);
/* ROPE with per-pair frequency divisors (NULL = none) and mscale. */
vki_status bk_rope_ext(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *pos,
                       const bk_tensor *freq_div, int n_rot, int mode, float freq_base, float freq_scale,
                       float mscale);
vki_status bk_softmax(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, float scale);
vki_status bk_silu(bk_backend *be, const bk_tensor *dst, const bk_tensor *x);
vki_status bk_gelu(bk_backend *be, const bk_tensor *dst, const bk_tensor *x);
vki_status bk_swiglu(bk_backend *be, const bk_tensor *dst, const bk_tensor *gate, const bk_tensor *up);
/* act(gate) * up with act one of BK_ACT_*. */
vki_status bk_glu(bk_backend *be, const bk_tensor *dst, const bk_tensor *gate, const bk_tensor *up, int act);
vki_status bk_cpy(bk_backend *be, const bk_tensor *dst, const bk_tensor *src);
vki_status bk_attn(bk_backend *be, const bk_tensor *dst, const bk_tensor *q, const bk_tensor *k,
                   const bk_tensor *v, float scale, bool causal, int32_t q_pos0);
/* ATTN with a sliding window (0 = none) and a logit softcap (0 = none). */
vki_status bk_attn_ext(bk_backend *be, const bk_tensor *dst, const bk_tensor *q, const bk_tensor *k,
                       const bk_tensor *v, float scale, bool causal, int32_t q_pos0, int32_t window,
                       float softcap);
vki_status bk_softcap(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, float cap);
vki_status bk_top_k(bk_backend *be, const bk_tensor *dst, const bk_tensor *x);
vki_status bk_gather_cols(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *ids,
                          bool normalize);
vki_status bk_matmul_id(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x,
                        const bk_tensor *ids);
vki_status bk_moe_sum(bk_backend *be, const bk_tensor *dst, const bk_tensor *y, const bk_tensor *weights);
vki_status bk_pool(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, int mode);
vki_status bk_l2_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x);

/* ===== Constructors ====================================================== */

/* engine/cpu: n_threads 0 = number of cores. */
vki_status bk_cpu_create(int n_threads, bk_backend **out);

typedef struct bk_vk_params {
    int32_t  device;        /* index in vki_vk_list_devices order; -1 = best */
    uint64_t vram_budget;   /* 0 = what the driver reports                    */
    bool     validation;    /* enable VK_LAYER_KHRONOS_validation; any message
                               it prints is counted (bk_vk_validation_count)  */
} bk_vk_params;

/* engine/vulkan. Returns VKI_ERR_UNSUPPORTED when there is no Vulkan device. */
vki_status bk_vk_create(const bk_vk_params *params, bk_backend **out);

#endif
