// The VM agent's guest-side tree cache (docs/architecture.md#vm-guests): native/src/fast-path.c's
// answers, compiled without Node (agent-fast-path.c), over a tree index the host sent once.
#ifndef STRATA_AGENT_FAST_PATH_H
#define STRATA_AGENT_FAST_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef STRATA_FAST_PATH_CORE
// The N-API names fast-path.c's backing registration mentions. The agent never enables it (no
// objects dir, no device for backing ids), so none of them is ever called.
typedef void *napi_ref;
typedef void *napi_threadsafe_function;
#define napi_ok 0
#define napi_tsfn_nonblocking 0
#define napi_call_threadsafe_function(f, data, mode) ((void)(f), (void)(data), 1)
#endif

struct fast_path;

// The index's sections, as TypeScript's FastPathGeometry names them, in this order.
enum { FPG_INODES, FPG_DIRENTS, FPG_XATTRS, FPG_POOL, FPG_INODES_OFF, FPG_DIRENTS_OFF, FPG_XATTRS_OFF, FPG_POOL_OFF,
       FPG_OBJECTS, FPG_OBJECTS_OFF, FPG_COUNT };

// A fast path over idx (len bytes, kept by the caller while it lives); defer: inode numbers the
// host answers (placeholders). NULL when the geometry lies outside the index.
struct fast_path *agent_fp_create(const uint8_t *idx, size_t len, const uint32_t geometry[FPG_COUNT],
                                  const uint32_t *defer, size_t ndefer, uint32_t entry_valid, uint32_t attr_valid,
                                  bool xattr_enosys);
void agent_fp_free(struct fast_path *fp);
// The reply to a request (its length), or 0: the host answers it.
size_t agent_fp_answer(struct fast_path *fp, const uint8_t *req, size_t n, uint8_t *out, size_t cap);

#endif
