/*
 * api_internal.h: what engine/api.c offers inside the project beyond the
 * public header: the backend a vki_model runs on, for tests that assert on
 * backend state (Vulkan validation messages, memory figures), and the parts
 * the scheduler (engine/sched/) drives directly: the model, its tokenizer,
 * its file (chat template) and its logits buffer.
 * Must not: be installed or included by include/vkinfer.h.
 */
#ifndef VKI_API_INTERNAL_H
#define VKI_API_INTERNAL_H

#include "engine/backend.h"
#include "engine/grammar/grammar.h"
#include "engine/models/model.h"
#include "engine/tokenizer/tokenizer.h"

/* The backend and the model on it; valid until vki_model_destroy. NULL for NULL. */
bk_backend *api_model_backend(const vki_model *md);
mdl_model  *api_model_mdl(const vki_model *md);
const vki_tokenizer  *api_model_tokenizer(const vki_model *md);
const vki_model_file *api_model_file(const vki_model *md);
/* [n_seq_max][n_vocab] f32, owned by the model. */
float                *api_model_logits(vki_model *md);
/* The model's vocabulary trie for grammars, built on the first call (safe
 * from any thread); valid until vki_model_destroy. OUT_OF_MEMORY. */
vki_status            api_model_gram_vocab(vki_model *md, const gram_vocab **out);

#endif
