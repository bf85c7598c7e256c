/*
 * gen_seq.h: the per-sequence half of generation: sampling a token from the
 * logits, streaming detokenization, stop strings held back until they are
 * ruled out, and the end conditions (EOS, n_predict, a full context). The
 * public vki_generate (one sequence) and the scheduler (many sequences in
 * one llama_decode) both step sequences through this, so both produce the
 * same text for the same logits.
 * Owns: the sampler and the text buffers. Must not: run forward passes.
 */
#ifndef VKI_GEN_SEQ_H
#define VKI_GEN_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/grammar/grammar.h"
#include "engine/models/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "vkinfer.h"

/* Growable NUL-terminated text. */
typedef struct gen_text { char *p; size_t n, cap; } gen_text;

typedef struct gen_seq {
    const vki_tokenizer *tok;    /* borrowed                                      */
    vki_generate_params  gp;     /* gp.stop is borrowed: it must outlive the seq  */
    smp_sampler         *smp;
    vki_detok            dt;
    gen_text             held;   /* decoded as valid UTF-8, not yet delivered (may start a stop) */
    gen_text             out;    /* the text of the last step's event             */
    float               *raw;    /* [n_vocab] the step's logits before sampling
                                    changes them; only with gp.logprobs           */
    int32_t              n_vocab, n_ctx, max_gen;
    int32_t              n_chars;    /* characters of the text decoded so far (a
                                        broken sequence counts as its U+FFFD)     */
    int32_t              tok_offset; /* the last step's token: characters of the
                                        text before it (OpenAI's text_offset)     */
    vki_generate_stats   st;     /* n_prompt, n_generated, stopped_by_*           */
    gram_matcher        *gm;     /* NULL: unconstrained (gen_seq_set_grammar)     */
} gen_seq;

/* Prepares a sequence for the prompt ids[0..n_ids) (which go into the
 * penalty window). Checks the prompt against n_ctx. INVALID_ARGUMENT (empty
 * or too long prompt, bad sampling values), OUT_OF_MEMORY. On failure
 * nothing needs freeing; on success call gen_seq_deinit. */
vki_status gen_seq_init(gen_seq *g, const vki_tokenizer *tok, const vki_generate_params *gp,
                        const int32_t *ids, int32_t n_ids, int32_t n_vocab, int32_t n_ctx);
void       gen_seq_deinit(gen_seq *g);

/* Constrains the sequence to the language of gram over the vocabulary v
 * (both borrowed: they must outlive the sequence). Call after gen_seq_init,
 * before the first step. OUT_OF_MEMORY. */
vki_status gen_seq_set_grammar(gen_seq *g, const gram_grammar *gram, const gram_vocab *v);

/* Samples the next token from logits [n_vocab] (modified in place) and fills
 * ev (ev->text is valid until the next step or deinit). kv_len is the number
 * of positions the sequence holds after the pass that produced the logits.
 * *last is set when this is the sequence's final token: the caller must not
 * decode ev->id then. With a grammar, only tokens it allows are sampled and
 * the sequence ends once the output is complete with nothing allowed after.
 * OUT_OF_MEMORY; UNSUPPORTED when no token of the vocabulary can continue
 * the grammar. */
vki_status gen_seq_step(gen_seq *g, float *logits, int32_t kv_len, vki_token_event *ev, bool *last);

#endif
