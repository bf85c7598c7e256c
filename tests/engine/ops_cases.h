/*
 * ops_cases.h: the cases test_ops runs (test_ops_cases.c builds the tables:
 * op, shapes, types, tolerance) and what both files share about them.
 */
#ifndef VKI_TEST_OPS_CASES_H
#define VKI_TEST_OPS_CASES_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "loader/types.h"

#define PAD 64          /* NaN bytes before and after every tensor */
#define MAX_CASES 1024

/* ===== Case description ================================================== */

/* FILL_RAND: uniform [-1, 1]; FILL_IDS, FILL_POS, FILL_ROUTE: i32 in
 * [0, fill_max), positions as an increasing run, routes as distinct ids per
 * row (a token's experts); FILL_DIV: f32 in [1, 40] (frequency divisors);
 * FILL_TIES: multiples of 1/4 in [-1, 1], so rows repeat values; FILL_PROB:
 * f32 in [0.01, 1] (router probabilities). */
typedef enum fill_kind { FILL_RAND = 0, FILL_IDS, FILL_POS, FILL_ROUTE, FILL_DIV, FILL_TIES, FILL_PROB } fill_kind;

typedef struct tt {
    vki_type  type;
    int64_t   ne[4];
    uint64_t  nb[4];
    uint64_t  size;   /* bytes of its buffer (PAD + span + PAD) */
    fill_kind fill;
    int32_t   fill_max; /* ids/positions are drawn from [0, fill_max) */
} tt;

typedef struct test_case {
    bk_op_kind kind;
    char       desc[160];
    int        n_src;
    tt         src[3];
    bool       has_src[3];
    tt         dst;
    bool       inplace; /* dst is src0's tensor in src0's buffer */
    int32_t    ip[4];
    float      fp[4];
    double     max_nmse;
} test_case;

/* The tolerance of a mat-mul whose kernels quantize the activations to 8
 * bits (derivation with the others in test_ops_cases.c). */
#define NMSE_ACTQ 2e-4

extern test_case g_cases[MAX_CASES];
extern int       g_n_cases;

/* A tensor of type t, shape ne, rows padded by pad1 bytes and dim-2 slices
 * by pad2 more bytes. */
tt tt_make(vki_type t, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, uint64_t pad1, uint64_t pad2);
/* Every case table (ops_cases_all), or only the --perf cases. */
void ops_cases_all(void);
void ops_cases_perf(void);

#endif
