/* cmd_run.c: `vkinfer run`: generate text from a prompt (or token ids) with
 * a llama-family model, streaming to stdout, or one JSON object with the
 * ids, per-step top-5 logits (and logprobs with --logprobs) and timings
 * (--json). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_run_help[] =
    "generate text from a prompt with a llama-family model\n"
    "usage: vkinfer run -m MODEL (-p PROMPT | --ids 1,2,3) [options]\n"
    "  -m, --model PATH      GGUF file, .safetensors or HF folder\n"
    "  -p, --prompt TEXT     prompt (BOS is added as the model asks)\n"
    "  --ids LIST            prompt as comma-separated token ids (nothing added)\n"
    "  -n N                  tokens to generate (default 128; 0 = until EOS or the context is full)\n"
    "  --temp T              temperature; 0 = greedy (default 0.8)\n"
    "  --seed S              RNG seed (default 0); same seed, same output\n"
    "  --top-k K             (default 40; 0 = off)\n"
    "  --top-p P             (default 0.95; 1 = off)\n"
    "  --min-p P             (default 0.05; 0 = off)\n"
    "  --repeat-penalty F    (default 1 = off)   --repeat-last-n N  (default 64)\n"
    "  --frequency-penalty F --presence-penalty F (default 0 = off)\n"
    "  --stop TEXT           stop before this text (repeatable)\n"
    "  --ignore-eos          keep generating past end-of-generation tokens\n"
    "  -c, --ctx N           context length (default: the model's, at most 4096)\n"
    "  --backend B           cpu | vulkan | auto (default auto: Vulkan if a device works, else CPU)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --json                print one JSON object: prompt_ids, steps (id, text, top5 raw logits\n"
    "                        before sampling), text, timings\n"
    "  --logprobs N          with --json: each step's logprob and its N (0-20) most likely tokens\n"
    "                        as [id, logprob] (log-softmax of the raw logits, before sampling)\n";

typedef struct run_step {
    int32_t id;
    char   *text;
    int32_t top_ids[5];
    float   top_logits[5];
    float   logprob;
    int32_t n_top;
    int32_t top_lp_ids[VKI_MAX_TOP_LOGPROBS];
    float   top_lps[VKI_MAX_TOP_LOGPROBS];
} run_step;

typedef struct run_state {
    bool      json;
    run_step *steps;
    int32_t   n, cap;
    bool      oom;
} run_state;

static bool on_token(const vki_token_event *ev, void *user)
{
    run_state *rs = user;
    if (!rs->json) {
        cli_write_text(stdout, ev->text, strlen(ev->text));
        fflush(stdout);
        return true;
    }
    if (rs->n == rs->cap) {
        int32_t cap = rs->cap ? rs->cap * 2 : 64;
        run_step *ns = realloc(rs->steps, sizeof *ns * (size_t)cap);
        if (!ns) {
            rs->oom = true;
            return false;
        }
        rs->steps = ns;
        rs->cap = cap;
    }
    run_step *st = &rs->steps[rs->n];
    st->id = ev->id;
    st->text = strdup(ev->text);
    if (!st->text) {
        rs->oom = true;
        return false;
    }
    memcpy(st->top_ids, ev->top_ids, sizeof st->top_ids);
    memcpy(st->top_logits, ev->top_logits, sizeof st->top_logits);
    st->logprob = ev->logprob;
    st->n_top = ev->n_top_logprobs;
    memcpy(st->top_lp_ids, ev->top_logprob_ids, sizeof st->top_lp_ids);
    memcpy(st->top_lps, ev->top_logprobs, sizeof st->top_lps);
    rs->n++;
    return true;
}

static bool parse_ids(const char *s, int32_t **ids, int32_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc(sizeof *v * cap);
    if (!v) return false;
    int32_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return false;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    *ids = v;
    *n = k;
    return k > 0;
}

static void json_float(FILE *f, double x)
{
    if (x != x || x > 3.4e38 || x < -3.4e38) fputs("null", f);
    else fprintf(f, "%.7g", x);
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *ids_arg = NULL;
    const char **stops = calloc((size_t)argc + 1, sizeof *stops);
    int n_stops = 0;
    vki_generate_params gp = vki_generate_default_params();
    vki_model_params mp = vki_model_default_params();
    vki_engine_params ep = vki_engine_default_params();
    bool json = false;
    int rc = 1;
    if (!stops) return cli_error("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *sv;
        long lv;
        double fv;
        if (cli_is_help(a)) {
            fputs(cmd_run_help, stdout);
            free(stops);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!cli_arg_str(argc, argv, &i, &model_path)) goto out;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!cli_arg_str(argc, argv, &i, &prompt)) goto out;
        } else if (!strcmp(a, "--ids")) {
            if (!cli_arg_str(argc, argv, &i, &ids_arg)) goto out;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_arg_int(argc, argv, &i, 0, INT32_MAX, &lv)) goto out;
            gp.n_predict = (int32_t)lv;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.temperature = (float)fv;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            char *end;
            gp.seed = strtoull(sv, &end, 10);
            if (end == sv || *end) {
                cli_error("option --seed: '%s' is not an unsigned integer", sv);
                goto out;
            }
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_arg_int(argc, argv, &i, 0, INT32_MAX, &lv)) goto out;
            gp.top_k = (int32_t)lv;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.top_p = (float)fv;
        } else if (!strcmp(a, "--min-p")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.min_p = (float)fv;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.repeat_penalty = (float)fv;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!cli_arg_int(argc, argv, &i, 0, 1 << 20, &lv)) goto out;
            gp.penalty_last_n = (int32_t)lv;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.frequency_penalty = (float)fv;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!cli_arg_float(argc, argv, &i, &fv)) goto out;
            gp.presence_penalty = (float)fv;
        } else if (!strcmp(a, "--stop")) {
            if (!cli_arg_str(argc, argv, &i, &stops[n_stops])) goto out;
            n_stops++;
        } else if (!strcmp(a, "--ignore-eos")) {
            gp.ignore_eos = true;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_arg_int(argc, argv, &i, 0, 1 << 20, &lv)) goto out;
            mp.n_ctx = (uint32_t)lv;
        } else if (!strcmp(a, "--backend")) {
            if (!cli_arg_backend(argc, argv, &i, &mp.backend)) goto out;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_arg_int(argc, argv, &i, 1, 1024, &lv)) goto out;
            ep.n_threads = (int32_t)lv;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--logprobs")) {
            if (!cli_arg_int(argc, argv, &i, 0, VKI_MAX_TOP_LOGPROBS, &lv)) goto out;
            gp.logprobs = true;
            gp.n_top_logprobs = (int32_t)lv;
        } else {
            cli_error("run: unknown option '%s' (see vkinfer run --help)", a);
            goto out;
        }
    }
    if (!model_path) {
        cli_error("run: -m MODEL is required (see vkinfer run --help)");
        goto out;
    }
    if (gp.logprobs && !json) {
        cli_error("run: --logprobs is printed with --json only");
        goto out;
    }
    if (!prompt == !ids_arg) {
        cli_error("run: give exactly one of -p PROMPT or --ids LIST");
        goto out;
    }
    gp.stop = n_stops ? stops : NULL;
    rc = 1;

    vki_engine *eng = NULL;
    vki_model *model = NULL;
    int32_t *ids = NULL, n_ids = 0;
    run_state rs = {.json = json};
    vki_status s;
    if (!cli_load_model(model_path, &ep, &mp, &eng, &model)) goto out;
    if (vki_model_is_embedding(model)) {
        cli_error("%s: this is an embedding model (%s); use vkinfer embed", model_path, vki_model_arch(model));
        goto done;
    }
    if (ids_arg) {
        if (!parse_ids(ids_arg, &ids, &n_ids)) {
            cli_error("option --ids: '%s' is not a comma-separated list of token ids", ids_arg);
            goto done;
        }
    } else {
        int32_t n = vki_tokenize(model, prompt, strlen(prompt), NULL, 0, gp.add_special, gp.parse_special);
        if (n == INT32_MIN) {
            cli_status_error(VKI_ERR_INVALID_ARGUMENT, "tokenize");
            goto done;
        }
        n_ids = n < 0 ? -n : n;
        ids = malloc(sizeof *ids * (size_t)(n_ids ? n_ids : 1));
        if (!ids || vki_tokenize(model, prompt, strlen(prompt), ids, n_ids, gp.add_special, gp.parse_special) != n_ids) {
            cli_error("tokenize: %s", ids ? vki_last_error() : "out of memory");
            goto done;
        }
    }
    vki_generate_stats stats;
    s = vki_generate_ids(model, ids, n_ids, &gp, on_token, &rs, &stats);
    if (s != VKI_OK) {
        cli_status_error(s, "generate");
        goto done;
    }
    if (rs.oom) {
        cli_error("run: out of memory while collecting steps");
        goto done;
    }
    double pp_tps = stats.prompt_ms > 0 ? stats.n_prompt * 1000.0 / stats.prompt_ms : 0.0;
    double tg_tps = stats.gen_ms > 0 ? stats.n_generated * 1000.0 / stats.gen_ms : 0.0;
    if (json) {
        FILE *f = stdout;
        fputs("{\"prompt_ids\":[", f);
        for (int32_t i = 0; i < n_ids; i++) fprintf(f, "%s%d", i ? "," : "", ids[i]);
        fputs("],\"steps\":[", f);
        for (int32_t i = 0; i < rs.n; i++) {
            run_step *st = &rs.steps[i];
            fprintf(f, "%s{\"id\":%d,\"text\":", i ? "," : "", st->id);
            cli_json_string(f, st->text, strlen(st->text));
            fputs(",\"top5\":[", f);
            for (int k = 0; k < 5; k++) {
                fprintf(f, "%s[%d,", k ? "," : "", st->top_ids[k]);
                json_float(f, st->top_logits[k]);
                fputc(']', f);
            }
            fputc(']', f);
            if (gp.logprobs) {
                fputs(",\"logprob\":", f);
                json_float(f, st->logprob);
                fputs(",\"top_logprobs\":[", f);
                for (int32_t k = 0; k < st->n_top; k++) {
                    fprintf(f, "%s[%d,", k ? "," : "", st->top_lp_ids[k]);
                    json_float(f, st->top_lps[k]);
                    fputc(']', f);
                }
                fputc(']', f);
            }
            fputc('}', f);
        }
        fputs("],\"text\":", f);
        /* the step texts concatenated (each is whole characters, so the
         * concatenation is the text as streamed) */
        char *all = NULL;
        size_t n_all = 0;
        FILE *mf = open_memstream(&all, &n_all);
        for (int32_t i = 0; mf && i < rs.n; i++) fputs(rs.steps[i].text, mf);
        if (mf) fclose(mf);
        cli_json_string(f, all ? all : "", all ? n_all : 0);
        free(all);
        fprintf(f, ",\"timings\":{\"prompt_ms\":%.3f,\"gen_ms\":%.3f,\"prompt_tok_s\":%.3f,\"gen_tok_s\":%.3f},"
                   "\"n_prompt\":%d,\"n_generated\":%d,\"stopped_by_eos\":%s,\"stopped_by_string\":%s,"
                   "\"backend\":",
                stats.prompt_ms, stats.gen_ms, pp_tps, tg_tps, stats.n_prompt, stats.n_generated,
                stats.stopped_by_eos ? "true" : "false", stats.stopped_by_string ? "true" : "false");
        const char *bn = vki_model_backend_name(model);
        cli_json_string(f, bn, strlen(bn));
        fputs("}\n", f);
    } else {
        fputc('\n', stdout);
        fflush(stdout);
        fprintf(stderr, "vkinfer: prompt %d tokens in %.1f ms (%.1f tok/s); generated %d tokens in %.1f ms (%.1f tok/s)\n",
                stats.n_prompt, stats.prompt_ms, pp_tps, stats.n_generated, stats.gen_ms, tg_tps);
    }
    rc = 0;
done:
    for (int32_t i = 0; i < rs.n; i++) free(rs.steps[i].text);
    free(rs.steps);
    free(ids);
    vki_model_destroy(model);
    vki_engine_destroy(eng);
out:
    free(stops);
    return rc;
}
