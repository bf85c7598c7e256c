/* shaders.h: the SPIR-V blobs embedded at build time (shaders/CMakeLists.txt). */
#ifndef VKI_VK_SHADERS_H
#define VKI_VK_SHADERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vki_spirv {
    const char     *name;    /* variant name, e.g. "matvec_q4_0" */
    const uint32_t *words;
    size_t          n_words;
} vki_spirv;

/* Terminated by an entry with name == NULL. */
extern const vki_spirv vki_spirv_table[];

#endif
