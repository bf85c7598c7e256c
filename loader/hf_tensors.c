/*
 * hf_tensors.c: HF tensor names mapped onto GGUF's, with the per-family
 * adjustments a GGUF conversion makes.
 * Owns the mapping; must not copy tensor data (only names, flags and the
 * parts of stacked tensors), except the few small vectors a GGUF conversion
 * derives (Gemma norms + 1, LongRoPE factors), which it makes in the arena.
 *
 * Tensor names: see hf_tensor_name(); llama q/k weights and biases get
 * rope_permute_heads (the NeoX-RoPE families' do not); Gemma's norm weights
 * get + 1 (as convert_hf_to_gguf.py writes them); a MoE's per-expert
 * matrices become one stacked tensor per layer (vki_tensor_info.parts).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "loader/hf_kv.h"
#include "util.h"

/* ===== Tensor names ====================================================== */

typedef struct name_rule { const char *hf, *gguf; } name_rule;

/* Per-layer suffixes (after "model.layers.N." / "encoder.layer.N."). */
static const name_rule llama_layer[] = {
    {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},     {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},      {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},       {"input_layernorm", "attn_norm"},   {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"}, /* qwen3 */
    {"mlp.gate", "ffn_gate_inp"},                                             /* qwen3_moe's router */
    {"self_attn.qkv_proj", "attn_qkv"},  {"mlp.gate_up_proj", "ffn_up"},      /* phi3: fused, Q|K|V and gate|up rows */
};
/* Gemma norms around both blocks; searched before llama_layer. */
static const name_rule gemma_layer[] = {
    {"post_attention_layernorm", "post_attention_norm"}, {"pre_feedforward_layernorm", "ffn_norm"},
    {"post_feedforward_layernorm", "post_ffw_norm"},
};
static const name_rule llama_top[] = {
    {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"},
};
static const name_rule bert_layer[] = {
    {"attention.self.query", "attn_q"},        {"attention.self.key", "attn_k"},
    {"attention.self.value", "attn_v"},        {"attention.output.dense", "attn_output"},
    {"attention.output.LayerNorm", "attn_output_norm"}, {"intermediate.dense", "ffn_up"},
    {"output.dense", "ffn_down"},              {"output.LayerNorm", "layer_output_norm"},
};
static const name_rule bert_top[] = {
    {"embeddings.word_embeddings", "token_embd"},      {"embeddings.position_embeddings", "position_embd"},
    {"embeddings.token_type_embeddings", "token_types"}, {"embeddings.LayerNorm", "token_embd_norm"},
};
/* nomic-embed's checkpoint names ("encoder.layers.N."; SwiGLU: fc11 up, fc12 gate). */
static const name_rule nomic_layer[] = {
    {"attn.Wqkv", "attn_qkv"}, {"attn.out_proj", "attn_output"}, {"mlp.fc11", "ffn_up"}, {"mlp.fc12", "ffn_gate"},
    {"mlp.fc2", "ffn_down"},   {"norm1", "attn_output_norm"},    {"norm2", "layer_output_norm"},
};
static const name_rule nomic_top[] = {
    {"embeddings.word_embeddings", "token_embd"}, {"embeddings.token_type_embeddings", "token_types"},
    {"emb_ln", "token_embd_norm"},
};

/* ".weight"/".bias" (LayerNorm's old "gamma"/"beta" too) -> GGUF suffix. */
static const char *param_suffix(const char *p)
{
    if (!strcmp(p, "weight") || !strcmp(p, "gamma")) return "weight";
    if (!strcmp(p, "bias") || !strcmp(p, "beta")) return "bias";
    return NULL;
}

/* 1 matched and written, 0 no rule, -1 matched but unusable. */
static int match_rule(const name_rule *rules, size_t n, const char *s, const char *blk, char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(rules[i].hf);
        if (strncmp(s, rules[i].hf, l) || s[l] != '.') continue;
        const char *suf = param_suffix(s + l + 1);
        if (!suf) return -1;
        int w = blk ? snprintf(out, cap, "blk.%s.%s.%s", blk, rules[i].gguf, suf)
                    : snprintf(out, cap, "%s.%s", rules[i].gguf, suf);
        return w > 0 && (size_t)w < cap ? 1 : -1;
    }
    return 0;
}

bool hf_tensor_name(const char *arch, const char *hf, char *out, size_t cap)
{
    const bool bert = !strcmp(arch, "bert"), nomic = !strcmp(arch, "nomic-bert");
    const char *layer_prefix = bert ? "encoder.layer." : nomic ? "encoder.layers." : "model.layers.";
    if (bert && !strncmp(hf, "bert.", 5)) hf += 5;
    const size_t lp = strlen(layer_prefix);
    if (!strncmp(hf, layer_prefix, lp)) {
        const char *p = hf + lp;
        char blk[16];
        size_t k = 0;
        while (p[k] >= '0' && p[k] <= '9' && k < 8) k++;
        if (k == 0 || p[k] != '.') return false;
        memcpy(blk, p, k);
        blk[k] = '\0';
        p += k + 1;
        if (bert) return match_rule(bert_layer, VKI_COUNT(bert_layer), p, blk, out, cap) > 0;
        if (nomic) return match_rule(nomic_layer, VKI_COUNT(nomic_layer), p, blk, out, cap) > 0;
        int m = !strncmp(arch, "gemma", 5) ? match_rule(gemma_layer, VKI_COUNT(gemma_layer), p, blk, out, cap) : 0;
        if (m == 0) m = match_rule(llama_layer, VKI_COUNT(llama_layer), p, blk, out, cap);
        return m > 0;
    }
    if (bert) return match_rule(bert_top, VKI_COUNT(bert_top), hf, NULL, out, cap) > 0;
    if (nomic) return match_rule(nomic_top, VKI_COUNT(nomic_top), hf, NULL, out, cap) > 0;
    return match_rule(llama_top, VKI_COUNT(llama_top), hf, NULL, out, cap) > 0;
}

/* Tensors a GGUF conversion leaves out (derived buffers, unused heads). */
static bool dropped(const char *arch, const char *hf)
{
    if (strstr(hf, "rotary_emb.inv_freq") || strstr(hf, "position_ids")) return true;
    if (!strcmp(arch, "bert") && (!strncmp(hf, "pooler.", 7) || !strncmp(hf, "bert.pooler.", 12) ||
                                  !strncmp(hf, "cls.", 4)))
        return true;
    if (!strcmp(arch, "nomic-bert") && (!strncmp(hf, "pooler.", 7) || !strncmp(hf, "cls.", 4))) return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* ----- MoE experts ----------------------------------------------------------
 * HF stores one matrix per expert, "model.layers.L.mlp.experts.E.gate_proj.weight"
 * [n_ff_exp, n_embd]; GGUF has one blk.L.ffn_gate_exps.weight {n_embd,
 * n_ff_exp, n_expert} per layer. The loader describes it as a tensor of
 * n_expert parts (vki_tensor_info.parts), each part one expert's mapping. */

static const char *const exp_proj[3] = {"gate_proj", "up_proj", "down_proj"};
static const char *const exp_gguf[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};

static bool parse_uint(const char **p, uint32_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    while (*s >= '0' && *s <= '9' && v < (1u << 24)) v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || (*s >= '0' && *s <= '9')) return false;
    *p = s;
    *out = (uint32_t)v;
    return true;
}

/* 1: an expert matrix (layer, expert, projection 0..2); 0: not an expert;
 * -1: under "mlp.experts." but not one matrix per expert (transformers 5's
 * in-memory fused layout, which save_pretrained does not write). */
static int expert_name(const char *hf, uint32_t *layer, uint32_t *expert, int *proj)
{
    const char *p = hf;
    if (strncmp(p, "model.layers.", 13)) return 0;
    p += 13;
    if (!parse_uint(&p, layer) || strncmp(p, ".mlp.experts.", 13)) return 0;
    p += 13;
    if (!parse_uint(&p, expert) || *p++ != '.') return -1;
    for (int k = 0; k < 3; k++) {
        const size_t l = strlen(exp_proj[k]);
        if (!strncmp(p, exp_proj[k], l) && !strcmp(p + l, ".weight")) {
            *proj = k;
            return 1;
        }
    }
    return -1;
}

/* Appends blk.L.ffn_*_exps.weight for every layer from ex[L][proj][E]. */
static vki_status stack_experts(vki_model_file *f, const vki_tensor_info *ex, uint32_t n_layer, uint32_t n_expert)
{
    for (uint32_t l = 0; l < n_layer; l++) {
        for (int k = 0; k < 3; k++) {
            const vki_tensor_info *e = &ex[((size_t)l * 3 + (size_t)k) * n_expert];
            if (!e[0].name) continue; /* a layer without experts: the engine says what is missing */
            const void **parts = ld_alloc(&f->arena, (uint64_t)n_expert * sizeof *parts);
            if (!parts) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
            uint64_t bytes = 0;
            for (uint32_t i = 0; i < n_expert; i++) {
                if (!e[i].name)
                    return vki_fail(VKI_ERR_BAD_FILE, "%s: model.layers.%u.mlp.experts.%u.%s.weight is missing "
                                    "(%u experts)", f->path, l, i, exp_proj[k], n_expert);
                if (e[i].n_dims != 2 || e[i].type != e[0].type || e[i].ne[0] != e[0].ne[0] || e[i].ne[1] != e[0].ne[1])
                    return vki_fail(VKI_ERR_BAD_FILE, "%s: expert %u of layer %u's %s has shape [%lld, %lld] %s, "
                                    "expert 0's is [%lld, %lld] %s", f->path, i, l, exp_proj[k],
                                    (long long)e[i].ne[1], (long long)e[i].ne[0], vki_type_name(e[i].type),
                                    (long long)e[0].ne[1], (long long)e[0].ne[0], vki_type_name(e[0].type));
                parts[i] = e[i].data;
                bytes += e[i].bytes;
            }
            char name[96];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, exp_gguf[k]);
            vki_tensor_info t = {.type = e[0].type, .n_dims = 3, .ne = {e[0].ne[0], e[0].ne[1], n_expert, 1},
                                 .offset = e[0].offset, .bytes = bytes, .file_idx = e[0].file_idx,
                                 .n_parts = (int32_t)n_expert, .parts = (const void *const *)parts};
            if (!(t.name = ld_strdup(&f->arena, name, strlen(name))))
                return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
            VKI_TRY(ld_add_tensor(f, &t));
        }
    }
    return VKI_OK;
}

/* convert_hf_to_gguf adds 1 to Gemma's RMSNorm weights (HF computes
 * x * (1 + w)); the engine reads GGUF's w + 1. Norms are small, so the
 * sum is made here, as f32, in the loader's memory. */
static vki_status plus_one(vki_model_file *f, vki_tensor_info *t)
{
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *v = ld_alloc(&f->arena, (uint64_t)n * sizeof *v);
    if (!v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (int64_t r = 0; r < n / t->ne[0]; r++)
        VKI_TRY(vki_tensor_dequant_row(t, r, v + r * t->ne[0]));
    for (int64_t i = 0; i < n; i++) v[i] += 1.0f;
    t->type = VKI_TYPE_F32;
    t->data = v;
    t->bytes = (uint64_t)n * sizeof *v;
    return VKI_OK;
}

vki_status hf_map_tensors(vki_model_file *f)
{
    vki_str a;
    if (!vki_file_get_str(f, "general.architecture", &a)) return VKI_OK;
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)VKI_MIN(a.n, 31), a.p);
    uint32_t n_head = 0, n_head_kv = 0, n_layer = 0, n_expert = 0;
    char key[128];
    vki_file_get_u32(f, hf_arch_key(key, sizeof key, arch, "attention.head_count"), &n_head);
    vki_file_get_u32(f, hf_arch_key(key, sizeof key, arch, "attention.head_count_kv"), &n_head_kv);
    vki_file_get_u32(f, hf_arch_key(key, sizeof key, arch, "block_count"), &n_layer);
    vki_file_get_u32(f, hf_arch_key(key, sizeof key, arch, "expert_count"), &n_expert);
    const bool gemma = !strncmp(arch, "gemma", 5);

    vki_tensor_info *old = f->tensors, *ex = NULL;
    const int64_t n_old = f->n_tensors;
    f->tensors = NULL;
    f->n_tensors = f->cap_tensors = 0;
    f->weight_bytes = 0;
    free(f->tensor_index.slot);
    f->tensor_index = (ld_index){0, NULL};
    vki_status s = VKI_OK;
    if (n_expert > 0 && n_layer > 0 && !(ex = calloc((size_t)n_layer * 3 * n_expert, sizeof *ex)))
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (int64_t i = 0; i < n_old && s == VKI_OK; i++) {
        vki_tensor_info t = old[i];
        if (dropped(arch, t.name)) continue;
        uint32_t layer, expert;
        int proj, e = expert_name(t.name, &layer, &expert, &proj);
        if (e != 0 && !ex) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: expert tensor '%s' in a model without \"num_experts\"", f->path, t.name);
            break;
        }
        if (e < 0) {
            s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s': experts are read one matrix per expert "
                         "(mlp.experts.E.gate_proj.weight, ...)", f->path, t.name);
            break;
        }
        if (e > 0) {
            if (layer >= n_layer || expert >= n_expert) {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' is past %u layers of %u experts", f->path, t.name,
                             n_layer, n_expert);
                break;
            }
            ex[((size_t)layer * 3 + (size_t)proj) * n_expert + expert] = t;
            continue;
        }
        char name[256];
        if (hf_tensor_name(arch, t.name, name, sizeof name)) {
            if (!(t.name = ld_strdup(&f->arena, name, strlen(name)))) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
                break;
            }
            /* GGUF's llama conversion interleaves the rotary halves of q/k
             * rows, and of their bias elements (convert_hf_to_gguf permutes
             * "q_proj.weight" and "q_proj.bias" alike); the engine reads
             * GGUF order. The NeoX-RoPE families are converted unpermuted. */
            if (!strcmp(arch, "llama") && t.n_dims <= 2) {
                if (ends_with(name, ".attn_q.weight") || ends_with(name, ".attn_q.bias"))
                    t.rope_permute_heads = (int32_t)n_head;
                if (ends_with(name, ".attn_k.weight") || ends_with(name, ".attn_k.bias"))
                    t.rope_permute_heads = (int32_t)n_head_kv;
            }
            if (gemma && ends_with(name, "norm.weight") && (s = plus_one(f, &t)) != VKI_OK) break;
        }
        s = ld_add_tensor(f, &t);
    }
    if (s == VKI_OK && ex) s = stack_experts(f, ex, n_layer, n_expert);
    free(ex);
    free(old);
    return s;
}
