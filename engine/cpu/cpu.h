/*
 * cpu.h: internals of the CPU backend shared by its files and by the op
 * tests: the host buffer, the per-ISA kernel table, ISA detection and the
 * thread pool. Model code never includes this; it uses engine/backend.h.
 * Must not: hold global mutable state other than the detected CPU features.
 */
#ifndef VKI_CPU_H
#define VKI_CPU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "mq.h"
#include "repack.h"

/* ===== Host buffers ===================================================== */

/* How a buffer's bytes are laid out. */
typedef enum cpu_layout {
    CPU_LAYOUT_PLAIN = 0, /* the tensor's own rows, as the loader gives them          */
    CPU_LAYOUT_R16   = 1, /* one Q4_0/Q8_0/Q4_K matrix in 16-row groups (repack.h)    */
} cpu_layout;

/* What a bk_buffer* points to on the CPU backend (and for host tensors the
 * reference computes on). data is 64-byte aligned when owned. An R16 buffer
 * holds the matrix of r16_type/r16_k/r16_rows repacked (alloc bytes); size
 * stays the plain size, so views and bounds checks read as for plain rows:
 * a tensor's row r is matrix row offs / row bytes + r. */
typedef struct cpu_wslab cpu_wslab;

typedef struct cpu_buffer {
    uint8_t   *data;
    uint64_t   size;
    bool       owned;  /* false: wraps caller memory (mmap'd weights, test data) */
    cpu_layout layout;
    vki_type   r16_type;
    int64_t    r16_k, r16_rows;
    uint64_t   alloc;  /* owned bytes (memory accounting)                         */
    cpu_wslab *slab;   /* owned data from the weight memory (wmem.c), else NULL   */
} cpu_buffer;

/* Makes b describe caller memory, so host tensors can point into it. */
static inline bk_buffer *cpu_buffer_wrap(cpu_buffer *b, void *ptr, uint64_t size)
{
    b->data = (uint8_t *)ptr;
    b->size = size;
    b->owned = false;
    b->layout = CPU_LAYOUT_PLAIN;
    b->alloc = 0;
    b->slab = NULL;
    return (bk_buffer *)b;
}

/* Host address of a tensor's element 0 (its buffer must be a cpu_buffer in
 * the plain layout). */
static inline void *cpu_tensor_data(const bk_tensor *t)
{
    return ((cpu_buffer *)t->buf)->data + t->offs;
}

/* ===== ISAs and kernels ================================================= */

typedef enum cpu_isa {
    CPU_ISA_SCALAR = 0,
    CPU_ISA_AVX2   = 1, /* AVX2 + FMA + F16C                     */
    CPU_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ (+VNNI when present) */
    CPU_ISA_NEON   = 3, /* arm64 Advanced SIMD                    */
    CPU_ISA_COUNT
} cpu_isa;

/* Largest weight-row x activation-row tile a gemm kernel is asked for. */
#define CPU_TILE_R 4
#define CPU_TILE_C 4

/* How a matmul's activations are prepared for a weight type. */
typedef enum cpu_act {
    CPU_ACT_F32  = 0, /* f32 rows as given                       */
    CPU_ACT_Q8_0 = 1, /* rows quantized to block_q8_0 (32 wide)  */
    CPU_ACT_Q8_K = 2, /* rows quantized to block_q8_K (256 wide) */
} cpu_act;

/* d[c * ds + r] = dot(weight row r, activation row c) for r < nr <= CPU_TILE_R,
 * c < nc <= CPU_TILE_C; k elements; ws/xs are byte strides of weight and
 * prepared activation rows, ds the float stride of d. */
typedef void (*cpu_gemm_fn)(int64_t k, const void *w, size_t ws, int nr,
                            const void *x, size_t xs, int nc, float *d, size_t ds);

/* Mat-vec: d[r] = dot(weight row r, x) for r < nrows, x one activation row
 * prepared as for the gemm (cpu_act_for). Called once per thread for its
 * whole row range so per-call set-up (re-laying x out) is amortised; scratch
 * holds CPU_GEMV_SCRATCH(k) bytes, 64-byte aligned, private to the call. */
typedef void (*cpu_gemv_fn)(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d,
                            void *scratch);
/* Mat-vec prefetch. Decode streams each weight once; a kernel working on
 * R rows at a time prefetches, for every block it reads, the same block R
 * rows further on: the next tile's data, a whole tile ahead, which keeps the
 * stream one contiguous sweep the memory system can run at full rate
 * (a fixed distance inside the row left each new tile's rows to start cold:
 * measured 1.7x slower from DRAM for Q4_0, one thread). Every cache line of
 * the block is touched: K-quant blocks span 2-4 lines. */
#define CPU_PREFETCH_SPAN(p, bytes)                                                       \
    do {                                                                                  \
        const char *pf_ = (const char *)(p);                                              \
        for (size_t o_ = 0; o_ < (size_t)(bytes); o_ += 64) __builtin_prefetch(pf_ + o_, 0, 3); \
    } while (0)

#define CPU_GEMV_SCRATCH(k) ((size_t)(k) * 2 + 1024)

/* Mat-vec for a few activation rows (continuous batching: one row per
 * sequence): d[c * ds + r] = dot(weight row r, activation row c) for
 * c < ncols <= CPU_GEMVN_MAX, rows of x prepared as for the gemm at byte
 * stride xs. Each weight block is decoded once for all columns. scratch
 * holds ncols * CPU_GEMV_SCRATCH(k) bytes, private to the call. */
typedef void (*cpu_gemvn_fn)(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, size_t xs,
                             int ncols, float *d, size_t ds, void *scratch);
#define CPU_GEMVN_MAX 8
/* The R16 gemvn kernels take up to this many rows in one pass over the
 * weight (their 16-row group stays in L1/L2 across the columns): every row
 * count a quantized R16 weight sends them (below VKI_MMP_MIN_N_R16, 32) is
 * one pass. 1.1B Q8_0, 16-token prompt, 2 threads: two passes of 8 rows
 * ran 133 tok/s. */
#define CPU_GEMVN_R16_MAX 32

/* Activation rows from which a quantized weight in the R16 layout takes the
 * packed paths (below: the mat-vecs). Against the packed f32 path's
 * VKI_MMP_MIN_N (ops_matmul.c), the same threshold for R16: its
 * mat-vecs (gemvn_r16, one pass over the weight) read it as it lies,
 * the integer packed path packs panels from it per call (for Q4_0, Q8_0 and
 * Q4_K straight from the groups, mq_r16.h; others through plain rows). 1.1B,
 * 2 threads, session 18's Xeon, prompt tok/s mat-vecs / packed: Q4_0 pp16
 * 183 / 141, pp32 216 / 207, pp64 235 / 257, pp96 239 / 292; Q8_0 pp16 130 /
 * 118, pp32 157 / 173; Q4_K pp16 176 / 133, pp32 196 / 186, pp64 216 / 241.
 * Before the direct packing the packed path unpacked every group to plain
 * rows first, and a 16-token chat turn waited 5x longer than llama.cpp's. */
#ifndef VKI_MMP_MIN_N_R16
#define VKI_MMP_MIN_N_R16 32
#endif

/* One tile for cpu_kernels.attn_tile: nqv <= attn_lanes query vectors (the query
 * heads of one KV head, for one or more query rows) against keys [a, b) of
 * that KV head, an online softmax per lane. Lane l sees keys [lo[l], hi[l])
 * only (causal limit, window; lanes past nqv: none). Writes per lane the
 * running max and sum of exps and the unnormalized sum of p * V, which the
 * kernel keeps lane-major as it computes it: element e of lane l at
 * out_o[e * attn_lanes + l]. */
typedef struct cpu_attn_tile {
    int64_t        hd;      /* a multiple of 16 */
    int            nqv;
    const float   *q[16];   /* hd floats each */
    int32_t        lo[16], hi[16];
    const uint8_t *k, *v;   /* key/value row j at k + j * ks, v + j * vs */
    size_t         ks, vs;
    bool           k16, v16; /* f16 rows, else f32 */
    int64_t        a, b;
    float          scale;
    float         *out_m, *out_l; /* [16] */
    float         *out_o;         /* [hd][attn_lanes] */
    float         *scratch;       /* CPU_ATTN_TILE_SCRATCH(hd) floats, 64-byte aligned */
} cpu_attn_tile;
#define CPU_ATTN_TILE_KEYS 64
#define CPU_ATTN_TILE_SCRATCH(hd) ((size_t)(hd) * 16 + (size_t)CPU_ATTN_TILE_KEYS * ((size_t)(hd) * 2 + 16))

typedef struct cpu_kernels {
    cpu_isa     isa;
    const char *name;
    cpu_gemm_fn gemm[VKI_TYPE_COUNT]; /* NULL: the type goes the dequantize-a-row path */
    cpu_gemv_fn gemv[VKI_TYPE_COUNT]; /* optional one-activation-row kernels (decode) */
    cpu_gemvn_fn gemvn[VKI_TYPE_COUNT]; /* optional 2..CPU_GEMVN_MAX-row kernels (batched decode) */
    /* gemv / gemvn over weights in the R16 layout (repack.h): w is the first
     * 16-row group, ws the group stride, nrows any count (the last group's
     * padding rows are not stored). NULL: the type is never repacked here. */
    cpu_gemv_fn  gemv_r16[VKI_TYPE_COUNT];
    cpu_gemvn_fn gemvn_r16[VKI_TYPE_COUNT];
    /* Vector helpers for attention and the dequantize-a-row path. */
    float (*dot_f32)(int64_t n, const float *a, const float *b);
    float (*dot_f16)(int64_t n, const uint16_t *a, const float *b);      /* a f16 */
    void  (*mad_f32)(int64_t n, float *y, const float *x, float s);      /* y += s x */
    void  (*mad_f16)(int64_t n, float *y, const uint16_t *x, float s);   /* x f16 */
    void  (*scale_f32)(int64_t n, float *y, float s);
    /* y[i] = exp(y[i] - m) for softmax; returns the sum of the new y. */
    float (*exp_sum_f32)(int64_t n, float *y, float m);
    /* o[i] = silu(x[i]) * y[i] (y NULL: silu(x[i])), silu(x) = x / (1 + e^-x);
     * o may alias x or y. */
    void  (*swiglu_f32)(int64_t n, float *o, const float *x, const float *y);
    /* o[i] = gelu(x[i]) * y[i] (y NULL: gelu(x[i])), the erf form or, with
     * tanh_form, the tanh approximation; o may alias x or y. */
    void  (*gelu_f32)(int64_t n, float *o, const float *x, const float *y, bool tanh_form);
    /* The activation quantizer cpu_quantize_q8_0, bit for bit (a level may
     * only vectorise it, never change a result). */
    void  (*quantize_q8_0)(const float *x, void *dst, int64_t n);
    /* cpu_quantize_q8_K likewise (the K-quants' activations: decode runs it
     * on one thread before each of their mat-vecs). */
    void  (*quantize_q8_K)(const float *x, void *dst, int64_t n);
    /* Attention over a block of keys (optional; NULL: the per-row helpers
     * above). out[j] = dot(row j, q) for j < nrows; y += sum_j p[j] * row j.
     * Rows are n f32 (or, f16, half) values at byte stride rs. */
    void  (*dot_rows)(int64_t n, const void *rows, size_t rs, int nrows, bool f16, const float *q, float *out);
    void  (*mad_rows)(int64_t n, float *y, const void *rows, size_t rs, int nrows, bool f16, const float *p);
    /* Attention of up to attn_lanes query vectors at once, one per lane
     * (optional; ops_attn.c uses it where a KV head's query heads times the
     * rows fill half the lanes or more): see cpu_attn_tile. */
    void  (*attn_tile)(const struct cpu_attn_tile *t);
    int   attn_lanes; /* query vectors attn_tile takes: 16 (AVX-512), 8 (AVX2) */
    /* Packed mat-mat for many activation rows (optional; mm_mr == 0: none).
     * Weights of any type are converted to f32 panels of mm_mr rows laid out
     * [k][mm_mr]; activations are packed by the backend into groups of mm_nr
     * rows laid out [k][mm_nr] (zero-padded). One kernel call multiplies one
     * weight panel by one activation group; loads are unit-stride and the
     * accumulators never leave registers. */
    int   mm_mr, mm_nr;
    /* Packs weight rows [0, nrows) (nrows <= mm_mr) of w (row stride ws
     * bytes) into dst [k][mm_mr], zero rows past nrows; tmp holds k floats.
     * False when the type has no f32 conversion. */
    bool  (*mm_pack_w)(vki_type t, int64_t k, const void *w, size_t ws, int nrows, float *dst, float *tmp);
    /* d[c * ds + r] = bias[r] (or 0) + sum_i wp[i][r] * xp[i][c] for
     * r < nrows, c < nc; wp is one packed panel, xp one packed group. */
    void  (*mm_kernel)(int64_t k, const float *wp, int nrows, const float *xp, int nc, const float *bias,
                       float *d, size_t ds);
    /* (optional) one R16 group of an F16 weight (repack.h) widened to a
     * [k][mm_mr] f32 panel (mm_mr == 16); F32 groups are panels as they are. */
    void  (*mm_panel_r16)(int64_t k, const void *group, float *dst);
    /* (optional) mm_kernel on the group's nc <= mm_nr f32 rows where they
     * are (xr[c], k floats each): the activations are already f32, so
     * packing them only copied them (4% of a BERT embedding). */
    void  (*mm_kernel_rows)(int64_t k, const float *wp, int nrows, const float *const *xr, int nc,
                            const float *bias, float *d, size_t ds);
    /* Integer packed mat-mat for quantized weights (optional; mq_kernel
     * NULL: none): weights packed by mq_pack_panel into panels of mr rows,
     * activations quantized to Q8_0 and packed by mq_pack_group into groups
     * of nr rows (layouts in mq.h). d[c * ds + r] = bias[r] (or 0) +
     * dot(weight row r, activation row c) for r < nrows, c < nc.
     * mq_signed_q8: this level reads Q8_0 codes as signed bytes.
     * mq_mr/mq_nr[f->is_signed]: the tile for unsigned codes [0] and signed
     * ones [1]; AVX2's signed tile spends registers on the sign fix-up and
     * ran 8% slower at the unsigned tile's 16 x 3. */
    int   mq_mr[2], mq_nr[2];
    bool  mq_signed_q8;
    void  (*mq_kernel)(const mq_fmt *f, int64_t k, const uint8_t *wp, int nrows, const uint8_t *xp, int nc,
                       const float *bias, float *d, size_t ds);
} cpu_kernels;

/* Activation format a weight type's gemm kernel expects. */
cpu_act cpu_act_for(vki_type wtype);
/* Quantizes n floats (a multiple of 32 / 256) into block_q8_0 / block_q8_K.
 * Every ISA uses these same scalar quantizers so their results agree. */
void cpu_quantize_q8_0(const float *x, void *dst, int64_t n);
void cpu_quantize_q8_K(const float *x, void *dst, int64_t n);

/* Filled by each ISA file; unset entries stay as the scalar ones. */
void cpu_kernels_init_scalar(cpu_kernels *k);
void cpu_kernels_init_avx2(cpu_kernels *k);
void cpu_act_init_avx2(cpu_kernels *k);   /* act_avx2.c, called by the above */
void cpu_kquants_init_avx2(cpu_kernels *k); /* kquants_avx2.c, called by the above */
void cpu_attn_init_avx2(cpu_kernels *k);  /* attn_avx2.c, called by the above */
void cpu_quant_init_avx2(cpu_kernels *k); /* quant_avx2.c, called by the above */
void cpu_kernels_init_avx512(cpu_kernels *k);
void cpu_act_init_avx512(cpu_kernels *k); /* act_avx512.c, called by the above */
void cpu_attn_init_avx512(cpu_kernels *k); /* attn_avx512.c, called by the above */
void cpu_gemv_init_avx512(cpu_kernels *k); /* gemv_avx512.c, called by the above */
void cpu_kernels_init_neon(cpu_kernels *k);
void cpu_kernels_init_repack_avx2(cpu_kernels *k);   /* repack_avx2.c */
void cpu_kernels_init_repack_k16_avx2(cpu_kernels *k); /* repack_k16_avx2.c, called by the above */
void cpu_kernels_init_repack_q45_avx2(cpu_kernels *k); /* repack_q45_avx2.c, called by the above */
void cpu_kernels_init_repack_avx512(cpu_kernels *k); /* repack_avx512.c */

/* ===== Dispatch (dispatch.c) ============================================= */

/* Best ISA this CPU and OS support (CPUID + XGETBV on x86). */
cpu_isa     cpu_isa_best(void);
bool        cpu_isa_available(cpu_isa isa);
const char *cpu_isa_name(cpu_isa isa);
/* "scalar" | "avx2" | "avx512" | "neon" -> isa; false if unknown. */
bool        cpu_isa_parse(const char *s, cpu_isa *out);
/* The kernel table for isa (which must be available); static storage. */
const cpu_kernels *cpu_kernels_get(cpu_isa isa);
bool        cpu_has_vnni(void);

/* bk_cpu_create with an explicit ISA (tests force each one). Fails with
 * VKI_ERR_UNSUPPORTED when this CPU lacks it. bk_cpu_create uses
 * VKI_CPU_ISA from the environment when set, else cpu_isa_best(). */
vki_status bk_cpu_create_isa(int n_threads, cpu_isa isa, bk_backend **out);

/* ===== Thread pool (threadpool.c) ======================================== */

typedef struct cpu_pool cpu_pool;
/* fn(ctx, ith, nth) runs at most once on each of nth threads (ith < nth
 * unique per run); the caller always runs it as ith 0, workers only if they
 * arrive before the caller's own run returns. So fn must hand out its work
 * dynamically (cpu_chunk_next), never by a static split over nth. */
typedef void (*cpu_task_fn)(void *ctx, int ith, int nth);

vki_status cpu_pool_create(int n_threads, cpu_pool **out);
void       cpu_pool_destroy(cpu_pool *p); /* NULL-safe */
int        cpu_pool_size(const cpu_pool *p);
/* Runs fn as described above; returns when every thread that ran it has
 * finished. */
void       cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *ctx);
/* Work of n items handed out in chunks to whichever threads run a job:
 * guided, each claim a 1/(2 nth) share of what is left, down to a floor of
 * 1/(16 nth) of the whole. The first claims are long contiguous runs (what
 * the hardware prefetchers want from a weight stream) and the last ones are
 * short, so a thread that finishes early waits at most one short chunk for
 * the others; equal chunks of 1/(4 nth) left up to a quarter of a thread's
 * share idle at the end of every mat-vec. */
typedef struct cpu_chunks {
    atomic_int_fast64_t next;
    int64_t             n, align, div, floor;
} cpu_chunks;

static inline void cpu_chunks_init(cpu_chunks *c, int64_t n, int nth, int64_t align)
{
    int64_t units = (n + align - 1) / align, fl = units / (16 * (int64_t)nth);
    atomic_init(&c->next, 0);
    c->n = n;
    c->align = align;
    c->div = 2 * (int64_t)nth;
    c->floor = fl > 0 ? fl : 1;
}

/* Claims the next chunk [*i0, *i1); false when none is left. */
static inline bool cpu_chunk_next(cpu_chunks *c, int64_t *i0, int64_t *i1)
{
    int64_t pos = atomic_load_explicit(&c->next, memory_order_relaxed), end;
    do {
        if (pos >= c->n) return false;
        int64_t units = (c->n - pos + c->align - 1) / c->align / c->div;
        end = pos + (units > c->floor ? units : c->floor) * c->align;
        if (end > c->n) end = c->n;
    } while (!atomic_compare_exchange_weak_explicit(&c->next, &pos, end, memory_order_relaxed,
                                                    memory_order_relaxed));
    *i0 = pos;
    *i1 = end;
    return true;
}

/* One item at a time over claimed chunks:
 *   for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&ch, &it, &i);) ... */
typedef struct cpu_chunk_it {
    int64_t i, end;
} cpu_chunk_it;

static inline bool cpu_chunk_each(cpu_chunks *c, cpu_chunk_it *it, int64_t *item)
{
    if (it->i >= it->end && !cpu_chunk_next(c, &it->i, &it->end)) return false;
    *item = it->i++;
    return true;
}

/* ===== Weight memory (wmem.c) ========================================== */

/* Huge-page slabs for repacked weights; thread-safe. alloc returns NULL
 * when out of memory and sets *slab to what cpu_wmem_free needs (NULL when
 * the block came from the heap: free then frees it, so any owned buffer's
 * data goes back through cpu_wmem_free). */
typedef struct cpu_wmem cpu_wmem;
vki_status cpu_wmem_create(cpu_wmem **out);
void       cpu_wmem_destroy(cpu_wmem *w); /* NULL-safe; frees every slab */
void      *cpu_wmem_alloc(cpu_wmem *w, size_t bytes, cpu_wslab **slab);
void       cpu_wmem_free(cpu_wmem *w, void *p, cpu_wslab *slab);
/* Bytes of slabs mapped now (0 under AddressSanitizer: heap blocks). */
size_t     cpu_wmem_mapped(cpu_wmem *w);

/* Number of online cores. */
int        cpu_core_count(void);

/* ===== Backend state (backend_cpu.c), shared with its op files ========= */

/* Most MATMULs run as one job (Q/K/V are three; gate/up two). */
#define CPU_MM_FUSE_MAX 4

/* A MATMUL held back in a pass (its op and tensors copied). */
typedef struct cpu_mm_pending {
    bk_op     op;
    bk_tensor t[4]; /* dst, src[0..2] */
} cpu_mm_pending;

typedef struct cpu_ctx {
    cpu_pool          *pool;
    const cpu_kernels *kern;
    int                n_threads;
    bool               in_pass;
    bool               no_mq;   /* VKI_CPU_NO_MQ set: quantized mat-mat via f32 panels (for comparisons) */
    bool               no_repack; /* VKI_CPU_NO_REPACK set: weights keep the file's layout */
    char               name[96];
    atomic_uint_least64_t mem_used;
    cpu_wmem          *wmem;    /* repacked weights' memory */
    cpu_mm_pending     pend[CPU_MM_FUSE_MAX]; /* held MATMULs on one input (backend_cpu.c) */
    int                n_pend;
    uint64_t           n_fused; /* MATMULs that ran in a job with others (for tests) */
    uint8_t           *scratch; /* reused op scratch, 64-byte aligned */
    size_t             scratch_size;
} cpu_ctx;

/* Scratch shared by one op's threads; grows, never shrinks. NULL: no memory. */
void *cpu_scratch_get(cpu_ctx *c, size_t size);

static inline int64_t cpu_n_rows(const bk_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

/* Rows are evenly spaced by nb[1] across dims 1..3. Each stride is
 * checked against the rows below it, not against nb of the dimension
 * below: with ne2 = 1, nb2 is never stepped, so nb3 = nb2 * ne2 said
 * nothing (a 4-D view with padded dim-3 slices passed). */
static inline bool cpu_rows_uniform(const bk_tensor *t)
{
    const uint64_t s2 = t->nb[1] * (uint64_t)t->ne[1], s3 = s2 * (uint64_t)t->ne[2];
    return (t->ne[2] == 1 || t->nb[2] == s2) && (t->ne[3] == 1 || t->nb[3] == s3);
}

static inline uint8_t *cpu_row_ptr(const bk_tensor *t, int64_t r)
{
    /* evenly spaced rows without the three divisions: in the packed
     * mat-mul's inner loop they were 2.6% of a BERT embedding */
    if (cpu_rows_uniform(t)) return (uint8_t *)cpu_tensor_data(t) + (uint64_t)r * t->nb[1];
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)cpu_tensor_data(t) + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] +
           (uint64_t)i3 * t->nb[3];
}

/* MATMUL (ops_matmul.c). */
/* MATMUL; *act_done: the fused activation (ip[0]) was applied too (the
 * packed paths do it per tile; the caller runs it over dst otherwise). */
vki_status cpu_op_matmul(cpu_ctx *c, const bk_op *op, bool *act_done);
/* The mat-vec path (ops_matvec.c). Bytes of one activation row prepared
 * as act for k columns (64-byte multiple); the rows of x prepared into dst
 * at stride xs (quantized or copied; on the pool when large). */
size_t     cpu_act_row_bytes(cpu_act act, int64_t k);
void       cpu_prepare_act(cpu_ctx *c, cpu_act act, const bk_tensor *x, int64_t k, uint8_t *dst, size_t xs);
/* d[c * ds + r] = weight row r . prepared activation row c (n rows at
 * stride xs), plus bias, through the ISA's mat-vecs (r16: the weight is
 * repacked and its view starts a group) in batches of gv_max rows.
 * scratch: n_threads x stride bytes, stride >= CPU_GEMV_SCRATCH(k) *
 * min(n, gv_max) (64-byte multiple). */
void       cpu_matvec(cpu_ctx *c, const bk_tensor *w, bool r16, int64_t n, const uint8_t *x, size_t xs, float *d,
                      size_t ds, const float *bias, int gv_max, uint8_t *scratch, size_t stride);
/* Whether op is a MATMUL that may join others on the same input in one
 * job: a few activation rows (the mat-vec path) against a repacked
 * quantized weight, no fused activation, dst rows evenly strided. */
bool       cpu_matmul_fusable(const cpu_ctx *c, const bk_op *op);
/* Whether fusable op may run together with the n fusable ops of group: the
 * same input view prepared the same way, and no op writes what another
 * reads or writes. */
bool       cpu_matmul_joins(const bk_op *const *group, int n, const bk_op *op);
/* The n (<= CPU_MM_FUSE_MAX) ops, each fusable and joining the ones before
 * it, as one job: the input prepared once, every weight's rows handed out
 * as one stream of chunks (one start and one wait instead of n). */
vki_status cpu_op_matmul_fused(cpu_ctx *c, const bk_op *const *ops, int n);

/* ATTN (ops_attn.c). */
vki_status cpu_op_attn(cpu_ctx *c, const bk_op *op);

/* ===== Weight layouts (weights.c) ======================================= */

/* The backend's weight_prepare: repacks a Q4_0/Q8_0/Q4_K mat-mul weight into
 * R16 (repack.h) when this ISA has R16 kernels for its type. */
vki_status cpu_weight_prepare(cpu_ctx *c, const bk_tensor *t, unsigned uses, bool *released);
/* Matrix row of the tensor's row 0 in a repacked buffer. */
static inline int64_t cpu_r16_row0(const bk_tensor *t) { return (int64_t)(t->offs / t->nb[1]); }
/* Where an R16 weight view's rows start: the 16-row group holding its row 0
 * (groups gs bytes apart), or NULL when the weight is not repacked or the
 * view starts inside a group (those views take the paths on plain rows). */
static inline const uint8_t *cpu_r16_group0(const bk_tensor *w, size_t gs)
{
    const cpu_buffer *b = (const cpu_buffer *)w->buf;
    if (b->layout != CPU_LAYOUT_R16 || cpu_r16_row0(w) % R16_ROWS) return NULL;
    return b->data + (size_t)(cpu_r16_row0(w) / R16_ROWS) * gs;
}

/* Rows [r, r + n) of weight t as plain rows (stride t->nb[1]): a pointer
 * into the buffer for the plain layout, else unpacked into tmp. */
const uint8_t *cpu_weight_rows(const bk_tensor *t, int64_t r, int64_t n, uint8_t *tmp);
/* tensor_get of a repacked weight: bytes [offs, offs + size) as plain rows. */
vki_status cpu_weight_read(const bk_tensor *t, void *dst, uint64_t offs, uint64_t size);

/* ===== Mixture-of-experts ops (ops_moe.c) ============================== */

/* Runs one MATMUL op (the backend's own fast path). */
typedef vki_status (*cpu_mm_fn)(void *ctx, const bk_op *op);

/* TOP_K, GATHER_COLS, MOE_SUM (checked ops). */
vki_status cpu_moe_small_op(const bk_op *op);
/* MATMUL_ID (a checked op): each expert's rows gathered, one mm() per expert. */
vki_status cpu_moe_matmul_id(const bk_op *op, cpu_mm_fn mm, void *ctx);

#endif
