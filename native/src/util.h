// Small helpers shared by every binding: argument parsing and errno errors shaped like Node's
// ({message, code, errno, syscall, path}). Each helper returns false after throwing, so callers
// bail out with `return NULL`.
#ifndef STRATA_UTIL_H
#define STRATA_UTIL_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ARGS 6

// Throws an Error for `err` (a positive errno). `path` may be NULL.
void throw_errno(napi_env env, int err, const char *syscall, const char *path);
// Same, with an explicit code name (e.g. EWOULDBLOCK, which glibc names EAGAIN).
void throw_errno_code(napi_env env, int err, const char *code, const char *syscall, const char *path);
void throw_type(napi_env env, const char *message);

// Fetches exactly `want` arguments (fewer is a TypeError).
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
bool arg_int32(napi_env env, napi_value v, const char *name, int32_t *out);
bool arg_uint32(napi_env env, napi_value v, const char *name, uint32_t *out);
bool arg_uint64(napi_env env, napi_value v, const char *name, uint64_t *out);
bool arg_bool(napi_env env, napi_value v, const char *name, bool *out);
// Copies a JS string into a malloc'd C string; the caller frees it.
bool arg_string(napi_env env, napi_value v, const char *name, char **out);

napi_value make_int(napi_env env, int64_t v);
napi_value make_undefined(napi_env env);

void register_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);
void set_const(napi_env env, napi_value obj, const char *name, double value);

void init_mount(napi_env env, napi_value exports, napi_value constants);
void init_fds(napi_env env, napi_value exports, napi_value constants);
void init_fuse(napi_env env, napi_value exports, napi_value constants);
void init_files(napi_env env, napi_value exports, napi_value constants);
void init_process(napi_env env, napi_value exports, napi_value constants);
void init_reader(napi_env env, napi_value exports, napi_value constants);

#endif
