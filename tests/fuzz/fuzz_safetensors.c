/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (header
 * JSON, dtypes, shapes, data_offsets against the buffer). */
#include <stdlib.h>

#include "loader/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vki_model_file *f = NULL;
    if (vki_file_open_safetensors_memory(data, size, "fuzz.safetensors", &f) != VKI_OK) return 0;
    for (int64_t i = 0; i < vki_file_n_tensors(f); i++) {
        const vki_tensor_info *t = vki_file_tensor(f, i);
        if (t->ne[0] > (1 << 20) || t->ne[1] == 0 || t->ne[0] == 0) continue;
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        if (!row) continue;
        vki_tensor_dequant_row(t, t->ne[1] * t->ne[2] * t->ne[3] - 1, row);
        free(row);
    }
    vki_file_close(f);
    return 0;
}
