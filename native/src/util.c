#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  throw_errno_code(env, err, NULL, syscall, path);
}

void throw_errno_code(napi_env env, int err, const char *code, const char *syscall, const char *path) {
  if (code == NULL) code = strerrorname_np(err);
  char codebuf[32];
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "E%d", err);
    code = codebuf;
  }
  // Same layout as Node's fs errors: "ENOENT: no such file or directory, open 'x'".
  char desc[128];
  snprintf(desc, sizeof desc, "%s", strerror(err));
  if (desc[0] >= 'A' && desc[0] <= 'Z' && !(desc[1] >= 'A' && desc[1] <= 'Z')) desc[0] += 'a' - 'A';
  size_t len = strlen(code) + strlen(desc) + strlen(syscall) + (path ? strlen(path) : 0) + 16;
  char *msg = malloc(len);
  if (msg == NULL) {
    napi_throw_error(env, code, desc);
    return;
  }
  if (path)
    snprintf(msg, len, "%s: %s, %s '%s'", code, desc, syscall, path);
  else
    snprintf(msg, len, "%s: %s, %s", code, desc, syscall);

  napi_value js_msg, js_code, error, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code);
  napi_create_error(env, js_code, js_msg, &error);
  free(msg);
  napi_create_int32(env, -err, &v); // negative, as libuv reports it
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, error, "path", v);
  }
  napi_throw(env, error);
}

void throw_type(napi_env env, const char *message) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message); }

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

// Throws "NAME must be WHAT" as a TypeError unless v is of type `want`.
static bool expect_type(napi_env env, napi_value v, napi_valuetype want, const char *name, const char *what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == want) return true;
  char msg[96];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  throw_type(env, msg);
  return false;
}

static bool expect_number(napi_env env, napi_value v, const char *name, double *out) {
  if (!expect_type(env, v, napi_number, name, "a number")) return false;
  napi_get_value_double(env, v, out);
  return true;
}

// Throws "NAME must be WHAT" as a RangeError; always false.
static bool throw_range(napi_env env, const char *name, const char *what) {
  char msg[96];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return false;
}

bool arg_int32(napi_env env, napi_value v, const char *name, int32_t *out) {
  double d;
  if (!expect_number(env, v, name, &d)) return false;
  if (d != (double)(int32_t)d) return throw_range(env, name, "a 32-bit integer");
  *out = (int32_t)d;
  return true;
}

bool arg_uint32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  double d;
  if (!expect_number(env, v, name, &d)) return false;
  if (d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d)
    return throw_range(env, name, "an unsigned 32-bit integer");
  *out = (uint32_t)d;
  return true;
}

bool arg_uint64(napi_env env, napi_value v, const char *name, uint64_t *out) {
  double d;
  if (!expect_number(env, v, name, &d)) return false;
  if (d < 0 || d > 9007199254740991.0 || d != (double)(uint64_t)d)
    return throw_range(env, name, "a non-negative safe integer");
  *out = (uint64_t)d;
  return true;
}

bool arg_bool(napi_env env, napi_value v, const char *name, bool *out) {
  if (!expect_type(env, v, napi_boolean, name, "a boolean")) return false;
  napi_get_value_bool(env, v, out);
  return true;
}

bool arg_string(napi_env env, napi_value v, const char *name, char **out) {
  if (!expect_type(env, v, napi_string, name, "a string")) return false;
  size_t len;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char *s = malloc(len + 1);
  if (s == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return false;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) {
    free(s);
    char msg[96];
    snprintf(msg, sizeof msg, "%s must not contain NUL bytes", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  *out = s;
  return true;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

napi_value make_undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

void register_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

void set_const(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}
