/*
 * tok_internal.h: what the tokenizer's files share: the vocabulary tables
 * (built by vocab.c), the pre-tokenizer regex engine (pretokenize.c) and the
 * per-family encoders (spm.c, bpe.c, wordpiece.c, ugm.c).
 * Must not: be included outside engine/tokenizer/.
 */
#ifndef VKI_TOK_INTERNAL_H
#define VKI_TOK_INTERNAL_H

#include "tokenizer.h"
#include "unicode.h"

/* token types as GGUF stores them (tokenizer.ggml.token_type) */
enum {
    TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
};

typedef struct tok_entry {
    uint32_t off, len;   /* bytes in vki_tokenizer.text */
    float    score;      /* SPM merge priority (higher first)        */
    int32_t  type;       /* TOK_TYPE_*                                */
} tok_entry;

typedef struct tok_merge {
    uint64_t key;        /* (left id << 32) | right id; 0 = empty slot */
    int32_t  rank;       /* lower merges first                         */
    int32_t  result;     /* id of left+right                           */
} tok_merge;

/* ----- growable id list ----- */
typedef struct tok_ids { int32_t *v; int32_t n, cap; } tok_ids;
vki_status tok_ids_push(tok_ids *l, int32_t id);

/* ----- regex pre-tokenizer (pretokenize.c) ----- */
typedef struct tok_regex tok_regex;
vki_status tok_regex_compile(const char *pattern, size_t len, tok_regex **out);
void       tok_regex_destroy(tok_regex *re);

/* A half-open range of code points of the text being split. */
typedef struct tok_span { int64_t a, b; } tok_span;
typedef struct tok_spans { tok_span *v; int64_t n, cap; } tok_spans;

/* Scratch the splitter reuses within one encode call (never shared). */
typedef struct tok_scratch {
    int64_t  *stack; int64_t stack_cap;  /* backtracking (pc, pos) pairs   */
    tok_spans a, b;                      /* pieces, ping-pong per regex    */
    uint32_t *cps;   size_t   cps_cap;   /* [n] code points                */
    size_t   *offs;  size_t   offs_cap;  /* [n+1] their byte offsets        */
    void     *sym;   size_t   sym_cap;   /* merge symbols (bytes)          */
    void     *heap;  size_t   heap_cap;  /* merge queue (bytes)            */
    char     *buf;   size_t   buf_cap;   /* byte-level text of one word    */
    uint32_t *na;    size_t   na_cap;    /* normalizer code points, ping   */
    uint32_t *nb;    size_t   nb_cap;    /* normalizer code points, pong   */
    char     *norm;  size_t   norm_cap;  /* normalized text (UTF-8)        */
    struct tok_bpe_cache *cache;         /* BPE: word -> ids of this call  */
    bool      no_cache;                  /* tests: encode every word afresh */
} tok_scratch;
void tok_bpe_cache_free(struct tok_bpe_cache *c);
/* Grows *p to hold `need` bytes; false when out of memory. */
bool tok_grow(void **p, size_t *cap, size_t need);
void tok_scratch_free(tok_scratch *s);

/* Splits cps[0..n) by each regex in turn ("Isolated" behaviour: matches and
 * the gaps between them both become pieces). Result in s->a. */
vki_status tok_pretokenize(tok_regex *const *res, int n_res, const uint32_t *cps, int64_t n,
                           tok_scratch *s);

/* ----- normalizers (normalize.c) ----- */
typedef enum tok_norm_kind {
    TN_NFD = 1, TN_NFC, TN_NFKD, TN_NFKC, TN_LOWERCASE, TN_STRIP_ACCENTS, TN_STRIP, TN_REPLACE, TN_PREPEND,
} tok_norm_kind;

typedef struct tok_norm {
    tok_norm_kind kind;
    bool      left, right;           /* TN_STRIP: which ends              */
    uint32_t *from; size_t n_from;   /* TN_REPLACE pattern (code points)  */
    uint32_t *to;   size_t n_to;     /* TN_REPLACE content, TN_PREPEND    */
} tok_norm;

/* Invalid UTF-8 bytes travel through normalization as these values (one
 * per byte, past U+10FFFF): inert starters that encode back to the byte. */
#define TOK_BYTE_MARK 0x110000u

/* One Unicode normalization form over code points: full decomposition
 * (compat for NFK*), canonical ordering, then canonical composition for
 * NFC/NFKC. in and out must not overlap. *out grows as needed; *n_out gets
 * the count. */
vki_status tok_normalize_cps(tok_norm_kind form, const uint32_t *in, size_t n, uint32_t **out, size_t *cap,
                             size_t *n_out);
/* Reads tokenizer.hf.normalizer (see normalize.c for the step format);
 * UNSUPPORTED for a step this tokenizer does not implement. */
vki_status tok_norm_load(vki_tokenizer *t, const vki_model_file *f);
void       tok_norm_free(vki_tokenizer *t);
/* Applies the tokenizer's steps to text[0..len); *out is `text` itself when
 * nothing changes, else s->norm. */
vki_status tok_normalize(const vki_tokenizer *t, const char *text, size_t len, tok_scratch *s,
                         const char **out, size_t *out_len);

/* ----- the tokenizer ----- */
#define TOK_MAX_REGEX 6

struct vki_tokenizer {
    vki_tok_kind kind;
    int32_t      n_vocab;
    char        *text;        /* all token texts, back to back                 */
    tok_entry   *tokens;      /* [n_vocab]                                     */
    int32_t     *hash;        /* [hash_cap] token ids, -1 = empty              */
    uint32_t     hash_cap;
    tok_merge   *merges;      /* [merge_cap] open addressing                   */
    uint32_t     merge_cap;
    int32_t      n_merges;

    int32_t bos, eos, unk, pad, sep, cls, eot, eom; /* -1 = none */
    bool    add_bos, add_eos;
    bool    add_space_prefix; /* SPM: prepend ' ' at text start / after special */
    bool    ignore_merges;    /* BPE: a word that is a token is emitted whole   */
    bool    wpm_phantom;      /* WordPiece vocab in GGUF form: '▁' marks a word
                                 start, continuations carry no "##"            */
    bool    wpm_lowercase;

    int32_t  byte_id[256];    /* SPM <0xNN> / BPE byte-symbol token, -1 = none */
    uint8_t  *eog;            /* [n_vocab] 1 = ends generation                 */
    int32_t  *specials;       /* ids matched inside text, longest first        */
    int32_t   n_specials;

    struct tok_ugm *ugm;      /* UGM: piece trie, charsmap, whitespace rules  */
    bool      strip_while_empty; /* decode: drop leading spaces until text
                                    appears (SentencePiece's decoder), not
                                    just the first piece's                  */
    uint64_t *spm_pairs;      /* [spm_pair_cap] SPM: joinable char pairs + 1  */
    uint32_t  spm_pair_cap;
    tok_norm *norm;           /* [n_norm] HF normalizer steps, in order       */
    int       n_norm;

    char      pre_name[64];
    tok_regex *re[TOK_MAX_REGEX];
    int        n_re;
};

static inline const char *tok_text(const vki_tokenizer *t, int32_t id) { return t->text + t->tokens[id].off; }
/* id of the token with exactly these bytes, or -1 */
int32_t tok_find(const vki_tokenizer *t, const char *s, size_t n);
/* merge of (left, right): rank or -1; *result gets the merged id */
int32_t tok_merge_rank(const vki_tokenizer *t, int32_t left, int32_t right, int32_t *result);

/* vocab.c: reads tokens, types, scores, merges, special ids from metadata */
vki_status tok_vocab_load(vki_tokenizer *t, const vki_model_file *f, const char *model);
/* pretokenize.c: selects the regex list from tokenizer.ggml.pre or the HF regex */
vki_status tok_pre_select(vki_tokenizer *t, const vki_model_file *f);

/* GPT-2's byte <-> printable code point mapping used by byte-level BPE */
uint32_t tok_byte_to_cp(uint8_t b);
int      tok_cp_to_byte(uint32_t cp); /* -1 when cp is not one of the 256 */

/* Encoders for one run of plain text (special tokens already split off). */
vki_status tok_spm_encode(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space,
                          tok_ids *out);
/* SPM over the whole text in one queue (the form before segmenting), kept
 * as the reference for the differential test. */
vki_status tok_spm_encode_whole(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space,
                                tok_ids *out);
/* Builds the set of character pairs that occur inside tokens (SPM cuts). */
vki_status tok_spm_prepare(vki_tokenizer *t);
vki_status tok_bpe_encode(const vki_tokenizer *t, const char *text, size_t len, tok_scratch *s,
                          tok_ids *out);
vki_status tok_wpm_encode(const vki_tokenizer *t, const char *text, size_t len, tok_ids *out);

/* ugm.c: SentencePiece unigram. prepare reads the charsmap and whitespace
 * keys, fills llama.cpp's "t5" defaults and builds the piece trie; encode
 * takes one raw run (it applies the charsmap, then the HF steps, itself);
 * at_start: the run opens the text (HF prepend_scheme "first"). */
typedef struct tok_ugm tok_ugm;
vki_status tok_ugm_prepare(vki_tokenizer *t, const vki_model_file *f);
void       tok_ugm_free(tok_ugm *u);
vki_status tok_ugm_encode(const vki_tokenizer *t, const char *text, size_t len, bool at_start, tok_scratch *s,
                          tok_ids *out);

#endif
