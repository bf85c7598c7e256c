/* fuzz_vocab.h: the tokenizers the tokenizer, chat and stop-string fuzz
 * targets run on: four small vocabularies built in-process (byte-level BPE,
 * SPM-style BPE with byte fallback, WordPiece, Unigram), the build's
 * generated model, and ../shared's vocabularies when that folder exists (a
 * target never needs it). Built once, on the first call; kept to exit. */
#ifndef VKI_FUZZ_VOCAB_H
#define VKI_FUZZ_VOCAB_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"

typedef struct fz_vocab {
    const char          *name;
    vki_tokenizer       *tok;
    vki_model_file      *file;
    /* decode(encode(text)) gives back every byte (parse_special off): the
     * in-process byte-level BPE and byte-fallback vocabularies */
    bool                 exact;
} fz_vocab;

/* The vocabularies, in a fixed order: the four in-process ones first, then
 * the generated model, then ../shared's. small_only: only those with at most
 * 4096 ids (for targets that touch every id per step). Never returns 0
 * vocabularies: a tokenizer that does not build is a broken target, and it
 * traps. */
int32_t fz_vocabs(const fz_vocab **out, bool small_only);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values
 * past U+10FFFF), written here apart from the engine's own checks. */
bool fz_utf8_valid(const char *s, size_t n);

#endif
