/*
 * json_floats.h: float32 values as JSON text, short and exact: the
 * embeddings route's vectors. cJSON prints a float as the double it widens
 * to (up to 17 digits, after a sprintf, an sscanf and often a second
 * sprintf); 9 significant digits already give the same float32 back.
 */
#ifndef VKI_SRV_JSON_FLOATS_H
#define VKI_SRV_JSON_FLOATS_H

#include <stddef.h>
#include <stdint.h>

/* Longest text srv_fmt_float writes, without the terminating NUL. */
#define SRV_FLOAT_CHARS 16

/* v to nine significant digits, trailing zeros dropped, which any correct
 * parser reads back as v (not always the shortest such text: 0.1f is
 * 0.100000001); plain notation for 1e-5 <= |v| < 1e9, else d.ddde-N;
 * "null" for NaN and the infinities, which JSON cannot carry. Writes a
 * NUL; returns the length. */
size_t srv_fmt_float(char out[SRV_FLOAT_CHARS + 1], float v);

/* "[v0,v1,...]" into a new malloc'd string (the caller frees it); NULL
 * when out of memory. */
char *srv_json_float_array(const float *v, int32_t n);

#endif
