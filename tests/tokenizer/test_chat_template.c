/*
 * test_chat_template.c: recognition of each family from real template text
 * and the rendering of one conversation per family, against the strings the
 * models' own Jinja templates produce (worked out by hand from the template
 * texts quoted below; llama-3's comes from ../shared when present).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/chat_template.h"
#include "test_util.h"

static const vki_chat_msg conv[] = {
    {"system", "You are terse."},
    {"user", "Hi there "},
    {"assistant", "Hello."},
    {"user", "2+2?"},
};

static void expect(vki_chat_family fam, bool gen, const vki_chat_msg *m, size_t n, const char *want)
{
    char *got = NULL;
    vki_status s = vki_chat_render(fam, m, n, gen, NULL, NULL, &got);
    CHECKF(s == VKI_OK, "%s: %s", vki_chat_family_name(fam), vki_last_error());
    if (s != VKI_OK) return;
    CHECKF(strcmp(got, want) == 0, "%s (gen %d):\n--- got ---\n%s\n--- want ---\n%s", vki_chat_family_name(fam), gen, got, want);
    free(got);
}

/* Excerpts of the official templates, enough to carry their markers. */
static const struct { const char *tmpl; vki_chat_family fam; } detect_cases[] = {
    {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}",
     VKI_CHAT_CHATML},
    {"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}",
     VKI_CHAT_QWEN},
    {"{% if messages[0]['role'] == 'system' %}...{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}... '<<SYS>>\\n' + system_message",
     VKI_CHAT_LLAMA2},
    {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}",
     VKI_CHAT_MISTRAL},
    {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}",
     VKI_CHAT_PHI3},
    {"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}",
     VKI_CHAT_GEMMA},
    {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}",
     VKI_CHAT_ZEPHYR},
    {"{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}", VKI_CHAT_UNKNOWN},
};

int main(void)
{
    for (size_t i = 0; i < sizeof detect_cases / sizeof detect_cases[0]; i++) {
        vki_chat_family f = vki_chat_detect(detect_cases[i].tmpl, strlen(detect_cases[i].tmpl));
        CHECKF(f == detect_cases[i].fam, "template %zu detected as %s, expected %s", i, vki_chat_family_name(f),
               vki_chat_family_name(detect_cases[i].fam));
    }
    CHECK(vki_chat_family_from_name("llama3") == VKI_CHAT_LLAMA3);
    CHECK(vki_chat_family_from_name("nonsense") == VKI_CHAT_UNKNOWN);

    expect(VKI_CHAT_CHATML, true, conv, 4,
           "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there <|im_end|>\n"
           "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect(VKI_CHAT_CHATML, false, conv + 1, 1, "<|im_start|>user\nHi there <|im_end|>\n");
    expect(VKI_CHAT_QWEN, true, conv + 3, 1,
           "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
           "<|im_start|>assistant\n");
    /* llama-3: bos, '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>' */
    expect(VKI_CHAT_LLAMA3, true, conv, 4,
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* llama-2: bos + '[INST] ' + content.strip() + ' [/INST]'; ' ' + answer.strip() + ' ' + eos */
    expect(VKI_CHAT_LLAMA2, true, conv, 4,
           "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s><s>[INST] 2+2? [/INST]");
    expect(VKI_CHAT_MISTRAL, true, conv + 1, 3, "<s>[INST] Hi there  [/INST]Hello.</s>[INST] 2+2? [/INST]");
    expect(VKI_CHAT_PHI3, true, conv + 1, 3,
           "<|user|>\nHi there <|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n");
    expect(VKI_CHAT_PHI3, false, conv + 1, 1, "<|user|>\nHi there <|end|>\n<|endoftext|>");
    expect(VKI_CHAT_GEMMA, true, conv + 1, 3,
           "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
           "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
    expect(VKI_CHAT_ZEPHYR, true, conv, 2,
           "<|system|>\nYou are terse.</s>\n<|user|>\nHi there </s>\n<|assistant|>\n");

    /* errors: unknown role, no family */
    char *out = NULL;
    vki_chat_msg bad = {"tool", "x"};
    CHECK(vki_chat_render(VKI_CHAT_CHATML, &bad, 1, true, NULL, NULL, &out) == VKI_ERR_INVALID_ARGUMENT && !out);
    CHECK(vki_chat_render(VKI_CHAT_UNKNOWN, conv, 1, true, NULL, NULL, &out) == VKI_ERR_INVALID_ARGUMENT && !out);

    /* the real llama-3 template in ../shared */
    size_t len;
    char *js = test_read_file(test_shared_path("vocab/tok-llama3-hf/tokenizer_config.json"), &len);
    cJSON *root = js ? cJSON_ParseWithLength(js, len) : NULL;
    const cJSON *tmpl = cJSON_GetObjectItem(root, "chat_template");
    CHECK(cJSON_IsString(tmpl));
    if (cJSON_IsString(tmpl)) CHECK(vki_chat_detect(tmpl->valuestring, strlen(tmpl->valuestring)) == VKI_CHAT_LLAMA3);
    cJSON_Delete(root);
    free(js);
    return test_finish("tok_chat_template");
}
