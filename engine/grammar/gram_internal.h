/*
 * gram_internal.h: the compiled grammar shared by gbnf.c (which builds it)
 * and matcher.c (which runs it). Each rule is a list of alternatives; each
 * alternative a run of symbols in one flat array ending in GRAM_END. A symbol
 * >= 0 is a byte class (one byte of output must be in it); a symbol <= -2
 * calls rule (-sym - 2). Code points were lowered to UTF-8 byte sequences,
 * so the matcher sees only bytes and a character split across tokens is no
 * special case.
 */
#ifndef VKI_GRAM_INTERNAL_H
#define VKI_GRAM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/grammar/grammar.h"

#define GRAM_END (-1)
#define GRAM_RULE_SYM(r) (-(int32_t)(r) - 2)
#define GRAM_SYM_RULE(s) (-(s) - 2)

struct gram_grammar {
    int32_t  *sym;       /* [n_sym] flat symbols, alternatives end in GRAM_END  */
    int32_t  *alt_start; /* [n_alt] where each alternative starts in sym        */
    int32_t  *rule_alt;  /* [n_rule + 1] rule r owns alternatives rule_alt[r].. */
    uint32_t (*cls)[8];  /* [n_cls] 256-bit byte sets                           */
    /* What the matcher tests before expanding anything: the bytes that can
     * start a non-empty match of each rule / alternative, and whether it can
     * match nothing at all. */
    uint32_t (*rule_first)[8]; /* [n_rule] */
    uint32_t (*alt_first)[8];  /* [n_alt]  */
    bool     *rule_nullable;   /* [n_rule] */
    bool     *alt_nullable;    /* [n_alt]  */
    int32_t   n_sym, n_alt, n_rule, n_cls, root;
    int32_t   start;           /* sym[start..] = {root, GRAM_END}, past n_sym */
};

static inline bool gram_bits_has(const uint32_t bits[8], uint8_t b) { return (bits[b >> 5] >> (b & 31)) & 1u; }

static inline bool gram_cls_has(const gram_grammar *g, int32_t c, uint8_t b)
{
    return (g->cls[c][b >> 5] >> (b & 31)) & 1u;
}

#endif
