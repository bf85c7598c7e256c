/*
 * ref.h: the scalar reference for every op in engine/backend.h: the oracle
 * the fast CPU kernels and the Vulkan kernels are tested against. Written
 * for clarity, not speed (double accumulation, one element at a time).
 * Tensors must live in cpu_buffers (see cpu.h: cpu_buffer_wrap).
 */
#ifndef VKI_CPU_REF_H
#define VKI_CPU_REF_H

#include "engine/backend.h"

/* Checks an op's shapes and types against the contract in backend.h.
 * VKI_OK or VKI_ERR_INVALID_ARGUMENT / VKI_ERR_UNSUPPORTED with the reason. */
vki_status cpu_op_check(const bk_op *op);

/* Runs op with the reference implementation. */
vki_status cpu_ref_compute(const bk_op *op);

/* Row r of a 2-D..4-D tensor as f32 (rows are the flattened dims 1..3).
 * dst holds ne[0] floats. False for a type the loader cannot dequantize. */
bool cpu_ref_row_f32(const bk_tensor *t, int64_t r, float *dst);

#endif
