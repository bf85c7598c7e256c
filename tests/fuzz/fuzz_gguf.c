/* fuzz_gguf.c: libFuzzer target for the GGUF reader: any bytes must either
 * open (and then every tensor row must read inside the buffer) or fail with
 * a message; never crash, leak or read outside the input. */
#include <stdlib.h>

#include "loader/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vki_model_file *f = NULL;
    if (vki_file_open_gguf_memory(data, size, "fuzz.gguf", &f) != VKI_OK) return 0;
    for (int64_t i = 0; i < vki_file_n_tensors(f); i++) {
        const vki_tensor_info *t = vki_file_tensor(f, i);
        if (t->ne[0] > (1 << 20) || t->ne[1] == 0) continue;
        float *row = malloc((size_t)t->ne[0] * sizeof *row + 1);
        if (!row) continue;
        /* first and last row: both must lie inside the input */
        vki_tensor_dequant_row(t, 0, row);
        vki_tensor_dequant_row(t, t->ne[1] * t->ne[2] * t->ne[3] - 1, row);
        free(row);
    }
    for (int64_t i = 0; i < vki_file_n_kv(f); i++) (void)vki_file_kv(f, i);
    vki_file_close(f);
    return 0;
}
