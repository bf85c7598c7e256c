/*
 * tokenizer.h: text <-> token ids for SPM (llama-2/mistral), byte-level BPE
 * (gpt-2, llama-3, qwen2, deepseek, ...), WordPiece (BERT family) and
 * SentencePiece unigram (UGM: T5, XLM-R, bge-m3, multilingual-e5), built
 * from GGUF `tokenizer.ggml.*` metadata (HF tokenizer.json is mapped onto the
 * same keys by the loader), plus streaming detokenization. HF normalizer
 * steps (NFC/NFD/NFKC/NFKD, Lowercase, ...) come as tokenizer.hf.normalizer
 * and run on each text run between special tokens (normalize.c).
 * Owns: vocabulary tables, merge ranks. Must not: know about backends.
 */
#ifndef VKI_TOKENIZER_H
#define VKI_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader/model_file.h"

typedef struct vki_tokenizer vki_tokenizer;

/* UGM: SentencePiece unigram (tokenizer.ggml.model "t5": T5, XLM-R, bge-m3) */
typedef enum vki_tok_kind { VKI_TOK_SPM = 1, VKI_TOK_BPE = 2, VKI_TOK_WPM = 3, VKI_TOK_UGM = 4 } vki_tok_kind;

/* Builds the tokenizer a model file declares. The tokenizer copies what it
 * needs: it does not borrow the file. BAD_FILE / UNSUPPORTED with a message. */
vki_status vki_tokenizer_create(const vki_model_file *f, vki_tokenizer **out);
void       vki_tokenizer_destroy(vki_tokenizer *tok);

vki_tok_kind vki_tokenizer_kind(const vki_tokenizer *tok);
const char  *vki_tokenizer_kind_name(const vki_tokenizer *tok); /* "spm", "bpe", "wordpiece", "ugm" */
int32_t      vki_tokenizer_n_vocab(const vki_tokenizer *tok);
int32_t      vki_tokenizer_bos(const vki_tokenizer *tok);  /* -1 if none ([CLS] for WordPiece) */
int32_t      vki_tokenizer_eos(const vki_tokenizer *tok);  /* -1 if none ([SEP] for WordPiece) */
bool         vki_tokenizer_is_eog(const vki_tokenizer *tok, int32_t id); /* ends generation */

/* Encodes text into *ids (malloc'd, caller frees) and *n_ids. add_special
 * adds BOS/EOS or [CLS]/[SEP] as the model's metadata asks; parse_special
 * matches special-token text inside `text`. Invalid UTF-8 is handled the
 * way the tokenizer family does (bytes/unknown token), never a crash. */
vki_status vki_tokenizer_encode(const vki_tokenizer *tok, const char *text, size_t len,
                                bool add_special, bool parse_special,
                                int32_t **ids, int32_t *n_ids);

/* A byte range [off, off + len) of a text. */
typedef struct vki_text_span { size_t off, len; } vki_text_span;

/* vki_tokenizer_encode with parse_special, except inside the `literal`
 * spans (sorted by off, not overlapping): there special-token text is only
 * text, and no special token that starts outside a span may reach into it.
 * For a rendered chat prompt whose spans are the messages' content
 * (vki_chat_render_spans): the template's markers become their tokens, a
 * user's "</s>" or "<|im_end|>" stays characters. Runs between specials are
 * formed over the whole text as in vki_tokenizer_encode, so with no
 * special-token text in the spans the ids are those of parse_special.
 * INVALID_ARGUMENT for spans out of order or past len. */
vki_status vki_tokenizer_encode_literal(const vki_tokenizer *tok, const char *text, size_t len, bool add_special,
                                        const vki_text_span *literal, size_t n_literal, int32_t **ids,
                                        int32_t *n_ids);

/* The bytes of one token as they appear in text (SPM '▁' -> ' ', byte
 * tokens <0xNN> -> that byte, BPE byte-level symbols -> bytes, WordPiece
 * '##' continuation handled by the decoder). Returns the byte count, or the
 * negated size needed when `size` is too small. Special tokens render as
 * their text only when `special` is true. */
int32_t vki_tokenizer_piece(const vki_tokenizer *tok, int32_t id, char *buf, int32_t size, bool special);

/* Whole detokenization into a malloc'd NUL-terminated string. */
vki_status vki_tokenizer_decode(const vki_tokenizer *tok, const int32_t *ids, int32_t n_ids,
                                bool special, char **out, size_t *out_len);

/* Streaming detokenization: push ids one at a time; each push appends to
 * `out` only complete UTF-8 (bytes of an unfinished sequence are held until
 * a later push completes them, or flushed as U+FFFD by vki_detok_finish). */
typedef struct vki_detok {
    const vki_tokenizer *tok;
    char    pending[8];
    int32_t n_pending;
    int32_t n_pushed;   /* for SPM's leading-space rule on the first token */
} vki_detok;

void    vki_detok_init(vki_detok *d, const vki_tokenizer *tok);
/* Writes at most `size` bytes; returns bytes written, or the negated size needed. */
int32_t vki_detok_push(vki_detok *d, int32_t id, char *out, int32_t size);
int32_t vki_detok_finish(vki_detok *d, char *out, int32_t size);

#endif
