/* pull.h: `vkinfer pull` and `serve -m hf://...`: fetches a model from a
 * Hugging Face hub (or any https:// URL) into a local models folder with
 * libcurl: resolution (hub.c), resumable verified downloads (download.c,
 * http.c, digest.c), progress on stderr (progress.c). The only part of
 * vkinfer that touches the network; it stays out of the core library. */
#ifndef VKI_PULL_H
#define VKI_PULL_H

#include <stdbool.h>
#include <stdint.h>

#include "vkinfer.h"

typedef struct pull_params {
    const char *dir;       /* models folder; NULL = pull_default_dir() */
    const char *hub;       /* hub base URL; NULL = $VKI_HUB_URL, else https://huggingface.co */
    const char *revision;  /* branch, tag or commit; NULL = "main" */
    const char *token;     /* sent as "Authorization: Bearer", to the hub's host only; never printed; NULL = $HF_TOKEN */
    const char *sha256;    /* plain URLs: the expected digest (64 hex), NULL = the server's X-Linked-Etag if any */
    int32_t     retries;   /* tries after the first for transient failures (connection, timeout, 429, 5xx) */
    int32_t     stall_s;   /* a transfer slower than 1 byte/s for this long fails (and is retried) */
    int32_t     connect_s; /* connection timeout */
    bool        quiet;     /* errors only */
    bool        trust_present; /* a file already under its final name with the published size is kept without
                                  hashing it again (it got that name only after its check); serve's start-up */
} pull_params;

pull_params pull_default_params(void);

/* $XDG_DATA_HOME/vkinfer/models, else ~/.local/share/vkinfer/models, into
 * buf; false when neither variable is set (an error message is recorded). */
bool pull_default_dir(char *buf, size_t size);

/* True for what pull_model accepts: hf://ORG/REPO[:FILE], http(s)://... */
bool pull_is_remote(const char *spec);

/* Fetches spec into the models folder (files already there and complete
 * are kept) and returns in *local_path (malloc'd; the caller frees) what
 * vkinfer loads: the GGUF file, or the folder of a safetensors model.
 * Errors: VKI_ERR_INVALID_ARGUMENT (bad spec, ambiguous repo), NOT_FOUND
 * (404, nothing loadable), BAD_FILE (checksum mismatch: the partial file is
 * deleted), OUT_OF_MEMORY (also: not enough disk space), TIMEOUT,
 * UNSUPPORTED, INTERNAL (I/O); the message (vki_last_error) names the URL
 * or file and what the server said. Not thread-safe the first time (libcurl
 * global init). */
vki_status pull_model(const char *spec, const pull_params *p, char **local_path);

#endif
