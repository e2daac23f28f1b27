// The native fast path (fast-path.c): answers hot metadata requests from a mapped tree index.
#ifndef STRATA_FAST_PATH_H
#define STRATA_FAST_PATH_H

#include <stdio.h>

#include "util.h"

// Room for a reply: the out header and the largest READDIR(PLUS) body the kernel asks for
// (max_pages = 256 pages). Larger requests go to JavaScript.
#define FP_REPLY_CAP (16 + (1 << 20))

struct fast_path;

// The reply to `req` (n bytes) written into `out`: its length, or 0 when JavaScript answers.
// dev_fd: the FUSE device to register backing ids on (-1: none; fastPathEnableBacking).
size_t fp_answer(struct fast_path *fp, int dev_fd, const uint8_t *req, size_t n, uint8_t *out, size_t cap);
// Writes a reply to the device; a refused reply is dropped (see fast-path.c).
void fp_write(int dev_fd, const uint8_t *reply, size_t len);
// The handle behind a JavaScript value from fastPathCreate; false after throwing.
bool fp_from(napi_env env, napi_value v, struct fast_path **out);

void init_fast_path(napi_env env, napi_value exports);

#endif
