/*
 * gram_vocab.h: the vocabulary trie shared by vocab_trie.c (which builds it)
 * and matcher.c (which walks it). Nodes are numbered in depth-first order;
 * the tokens whose text ends at a node are toks[tok_begin..tok_end).
 */
#ifndef VKI_GRAM_VOCAB_H
#define VKI_GRAM_VOCAB_H

#include <stdint.h>

#include "engine/grammar/grammar.h"

typedef struct gram_trie_node {
    int32_t first_child, next_sibling; /* -1: none                      */
    int32_t tok_begin, tok_end;        /* into gram_vocab.toks           */
    uint8_t byte;                      /* the byte on the edge from the parent */
} gram_trie_node;

struct gram_vocab {
    int32_t         n_vocab, mask_words;
    gram_trie_node *node;    /* [n_node], node 0 is the root (empty text)        */
    int32_t         n_node;
    int32_t        *toks;    /* token ids grouped by the node their text ends at */
    int32_t        *eog;     /* [n_eog] end-of-generation ids (never in the trie) */
    int32_t         n_eog;
    char           *text;    /* every token's text, back to back                  */
    size_t         *tok_off; /* [n_vocab] where token i's text starts in text      */
    int32_t        *tok_len; /* [n_vocab] its length; 0 = no text                  */
};

#endif
