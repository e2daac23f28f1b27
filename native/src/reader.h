// What the two /dev/fuse readers share (thread-reader.c: a pthread per reader; poll-reader.c:
// reads on the JS thread when libuv says the device is readable). Both have one contract:
// start(devFd, bufferSize, callback) -> handle, callback(buffer) per request, then exactly one
// callback(null, reason); stopReader(handle) ends either kind.
#ifndef STRATA_READER_H
#define STRATA_READER_H

#include "util.h"

#define MIN_BUFFER 8192 // FUSE_MIN_READ_BUFFER: the kernel refuses smaller reads

// The arguments both start functions take, (devFd, bufferSize, callback), checked; the device is
// switched to O_NONBLOCK. False after throwing.
bool reader_args(napi_env env, napi_callback_info info, napi_value argv[3], int32_t *dev_fd, uint32_t *bufsize);

// Hands one event to a reader's callback: callback(buffer) for a request (reason NULL), or
// callback(null, reason) for the end. `actx` is NULL from a threadsafe function's call_js, and
// the reader's async context from a libuv callback (which needs napi_make_callback).
void deliver(napi_env env, napi_async_context actx, napi_value cb, const char *reason, const void *data, size_t len);

// A handle unique across both kinds of reader, so stopReader can tell them apart.
uint32_t next_reader_id(void);

// Each asks its own kind to stop `id` (of this environment); false when it is not one of theirs.
// stop_thread_reader may throw (the eventfd write failed).
bool stop_thread_reader(napi_env env, uint32_t id);
bool stop_poll_reader(napi_env env, uint32_t id);

// Each gives reader `id` (of its kind, this environment) a fast path (fast-path.h) that answers
// what it can before a request goes to JavaScript; `fp_value` is the handle, kept alive until the
// reader ends. False when `id` is not one of theirs; once per reader (a second call throws).
bool set_thread_fast_path(napi_env env, uint32_t id, napi_value fp_value);
bool set_poll_fast_path(napi_env env, uint32_t id, napi_value fp_value);

void init_thread_reader(napi_env env, napi_value exports);
void init_poll_reader(napi_env env, napi_value exports);

#endif
