/*
 * cmd_inspect.c: `vkinfer inspect FILE [--json]`: what a model file holds
 * (format, architecture, hyperparameters, tokenizer, tensor table, bytes per
 * type) and the memory a load will need. Reads only metadata; never loads
 * weights onto a device.
 */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "engine/models/model.h"
#include "loader/model_file.h"
#include "util.h"

const char cmd_inspect_help[] =
    "show what a GGUF or safetensors model file holds\n"
    "usage: vkinfer inspect FILE [--json]\n"
    "\n"
    "FILE is a .gguf file, a .safetensors file, a model.safetensors.index.json\n"
    "or a Hugging Face folder (config.json + *.safetensors [+ tokenizer.json]).\n"
    "\n"
    "  --json   print one JSON object: format, version, architecture, metadata\n"
    "           (arrays longer than 16 as {\"array_of\":TYPE,\"length\":N}),\n"
    "           tensors (name, type, shape fastest dimension first, offset,\n"
    "           bytes) and weight_bytes\n"
    "\n"
    "A file that cannot be read exits with status 1 and one line on stderr.\n";


static const char *kv_type_name(vki_kv_type t)
{
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < VKI_COUNT(names) ? names[t] : "?";
}

static void json_float(FILE *f, double v, bool f32)
{
    if (!isfinite(v)) fputs("null", f);
    else fprintf(f, f32 ? "%.9g" : "%.17g", v);
}

static void json_value(FILE *f, const vki_kv *kv)
{
    switch (kv->type) {
    case VKI_KV_U8: case VKI_KV_U16: case VKI_KV_U32: case VKI_KV_U64:
        fprintf(f, "%llu", (unsigned long long)kv->v.u);
        break;
    case VKI_KV_I8: case VKI_KV_I16: case VKI_KV_I32: case VKI_KV_I64:
        fprintf(f, "%lld", (long long)kv->v.i);
        break;
    case VKI_KV_F32: json_float(f, kv->v.f, true); break;
    case VKI_KV_F64: json_float(f, kv->v.f, false); break;
    case VKI_KV_BOOL: fputs(kv->v.u ? "true" : "false", f); break;
    case VKI_KV_STRING: cli_json_string(f, kv->v.s.p, (size_t)kv->v.s.n); break;
    case VKI_KV_ARRAY:
        if (kv->v.arr.n > 16) {
            fprintf(f, "{\"array_of\":\"%s\",\"length\":%llu}", kv_type_name(kv->v.arr.elem),
                    (unsigned long long)kv->v.arr.n);
            break;
        }
        fputc('[', f);
        for (uint64_t i = 0; i < kv->v.arr.n; i++) {
            if (i) fputc(',', f);
            json_value(f, &kv->v.arr.items[i]);
        }
        fputc(']', f);
        break;
    }
}

static void print_json(const vki_model_file *mf)
{
    FILE *f = stdout;
    const char *arch = vki_file_arch(mf);
    fprintf(f, "{\"format\":\"%s\",\"version\":%u,\"architecture\":",
            vki_file_format_of(mf) == VKI_FORMAT_GGUF ? "gguf" : "safetensors", vki_file_version(mf));
    cli_json_string(f, arch, strlen(arch));
    fputs(",\"metadata\":{", f);
    for (int64_t i = 0; i < vki_file_n_kv(mf); i++) {
        const vki_kv *kv = vki_file_kv(mf, i);
        if (i) fputc(',', f);
        cli_json_string(f, kv->key.p, (size_t)kv->key.n);
        fputc(':', f);
        json_value(f, kv);
    }
    fputs("},\"tensors\":[", f);
    for (int64_t i = 0; i < vki_file_n_tensors(mf); i++) {
        const vki_tensor_info *t = vki_file_tensor(mf, i);
        if (i) fputc(',', f);
        fputs("{\"name\":", f);
        cli_json_string(f, t->name, strlen(t->name));
        fprintf(f, ",\"type\":\"%s\",\"shape\":[", vki_type_name(t->type));
        for (int d = 0; d < t->n_dims; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)t->ne[d]);
        fprintf(f, "],\"offset\":%llu,\"bytes\":%llu}", (unsigned long long)t->offset, (unsigned long long)t->bytes);
    }
    fprintf(f, "],\"weight_bytes\":%llu}\n", (unsigned long long)vki_file_weight_bytes(mf));
}

static void human_bytes(char *buf, size_t cap, double b)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
}

static void print_human(const vki_model_file *mf)
{
    const char *arch = vki_file_arch(mf);
    char b1[32];
    printf("file:          %s\n", vki_file_path(mf));
    if (vki_file_format_of(mf) == VKI_FORMAT_GGUF) printf("format:        GGUF v%u\n", vki_file_version(mf));
    else printf("format:        safetensors\n");
    printf("architecture:  %s\n", arch[0] ? arch : "(none)");

    /* hyperparameters: every "<arch>." scalar key */
    const size_t al = strlen(arch);
    bool any = false;
    for (int64_t i = 0; i < vki_file_n_kv(mf) && al; i++) {
        const vki_kv *kv = vki_file_kv(mf, i);
        if (kv->key.n <= al + 1 || memcmp(kv->key.p, arch, al) || kv->key.p[al] != '.') continue;
        if (!any) printf("hyperparameters:\n");
        any = true;
        printf("  %-40.*s ", (int)(kv->key.n - al - 1), kv->key.p + al + 1);
        json_value(stdout, kv);
        putchar('\n');
    }

    vki_str model = {"(none)", 6};
    vki_file_get_str(mf, "tokenizer.ggml.model", &model);
    const vki_kv *toks = vki_file_find_kv(mf, "tokenizer.ggml.tokens");
    const char *kind = "";
    if (model.n == 5 && !memcmp(model.p, "llama", 5)) kind = " (SentencePiece)";
    else if (model.n == 4 && !memcmp(model.p, "gpt2", 4)) kind = " (byte-level BPE)";
    else if (model.n == 4 && !memcmp(model.p, "bert", 4)) kind = " (WordPiece)";
    printf("tokenizer:     %.*s%s, %llu tokens\n", (int)VKI_MIN(model.n, 64), model.p, kind,
           toks && toks->type == VKI_KV_ARRAY ? (unsigned long long)toks->v.arr.n : 0ull);

    const int64_t nt = vki_file_n_tensors(mf);
    printf("tensors:       %lld\n", (long long)nt);
    printf("  %-40s %-8s %-26s %12s\n", "name", "type", "shape", "bytes");
    uint64_t per_type[VKI_TYPE_COUNT] = {0};
    int64_t count_type[VKI_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < nt; i++) {
        const vki_tensor_info *t = vki_file_tensor(mf, i);
        char shape[64];
        int n = 0;
        for (int d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? " x " : "", (long long)t->ne[d]);
        printf("  %-40s %-8s %-26s %12llu\n", t->name, vki_type_name(t->type), shape, (unsigned long long)t->bytes);
        if ((unsigned)t->type < VKI_TYPE_COUNT) {
            per_type[t->type] += t->bytes;
            count_type[t->type]++;
        }
    }
    printf("weight bytes per type:\n");
    for (int ty = 0; ty < VKI_TYPE_COUNT; ty++) {
        if (!count_type[ty]) continue;
        human_bytes(b1, sizeof b1, (double)per_type[ty]);
        printf("  %-8s %12llu bytes (%s) in %lld tensors\n", vki_type_name(ty), (unsigned long long)per_type[ty], b1,
               (long long)count_type[ty]);
    }

    /* what a load will run and allocate, by the loader's own rules (the
     * default context and batch; mdl_describe says why when it cannot) */
    char desc[2048];
    mdl_describe(mf, NULL, desc, sizeof desc);
    printf("how vkinfer runs it (default n_ctx, one sequence):\n");
    for (const char *p = desc; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  %.*s\n", n, p);
        p += n + (nl ? 1 : 0);
    }
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_error("inspect: unknown option '%s' (see vkinfer inspect --help)", argv[i]);
        else if (path) return cli_error("inspect: more than one FILE given ('%s' and '%s')", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return cli_error("inspect: no FILE given (usage: vkinfer inspect FILE [--json])");
    vki_model_file *mf = NULL;
    vki_status s = vki_file_open(path, &mf);
    if (s != VKI_OK) {
        const char *msg = vki_last_error();
        /* loader messages start with the path already */
        if (!strncmp(msg, path, strlen(path))) return cli_error("%s", msg);
        return cli_error("%s: %s", path, msg[0] ? msg : vki_status_str(s));
    }
    if (json) print_json(mf);
    else print_human(mf);
    vki_file_close(mf);
    return 0;
}
