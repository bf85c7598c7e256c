/*
 * sampler.h: turning a row of logits into the next token: repetition,
 * frequency and presence penalties, temperature, top-k, top-p, min-p, and a
 * seeded RNG so that the same seed and inputs give the same tokens.
 * Owns: its scratch arrays and the penalty window. Must not: touch backends.
 */
#ifndef VKI_SAMPLER_H
#define VKI_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "vkinfer.h"

typedef struct smp_sampler smp_sampler;

/* Copies the sampling fields of p (stop strings are not the sampler's).
 * INVALID_ARGUMENT for out-of-range values (negative temperature, top_p
 * outside (0,1], ...), OUT_OF_MEMORY. */
vki_status smp_create(const vki_generate_params *p, int32_t n_vocab, smp_sampler **out);
void       smp_destroy(smp_sampler *s);

/* Records a token in the penalty window (prompt tokens and generated ones). */
void    smp_accept(smp_sampler *s, int32_t id);
/* Picks the next token from logits [n_vocab] (modified in place by the
 * penalties and the temperature). Greedy (temperature 0) ties go to the
 * lowest id. */
int32_t smp_sample(smp_sampler *s, float *logits);

/* The k (<= n) largest values of logits with their ids, largest first; ties
 * by lower id. Used for the top-5 report before sampling. */
void smp_top_k(const float *logits, int32_t n, int32_t k, int32_t *ids, float *vals);

/* log(sum_i exp(logits[i])) over [n], in double: what the log-softmax
 * subtracts (logprob_i = logits[i] - this). One pass for the max, one for
 * the sum, so only callers that report logprobs pay for it. */
double smp_logsumexp(const float *logits, int32_t n);

#endif
