// flock(2) and syncfs(2), which Node does not expose; the store's gc lock and commit need them.
#include <errno.h>
#include <sys/file.h>
#include <unistd.h>

#include "util.h"

static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, op;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "fd", &fd) ||
      !arg_int32(env, argv[1], "operation", &op))
    return NULL;
  int rc;
  do rc = flock(fd, op);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    // Named as flock(2) documents it (EWOULDBLOCK == EAGAIN on Linux).
    throw_errno_code(env, errno, errno == EWOULDBLOCK ? "EWOULDBLOCK" : NULL, "flock", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  if (syncfs(fd) < 0) {
    throw_errno(env, errno, "syncfs", NULL);
    return NULL;
  }
  return make_undefined(env);
}

void init_files(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "flock", js_flock);
  register_fn(env, exports, "syncfs", js_syncfs);
  set_const(env, c, "LOCK_SH", LOCK_SH);
  set_const(env, c, "LOCK_EX", LOCK_EX);
  set_const(env, c, "LOCK_UN", LOCK_UN);
  set_const(env, c, "LOCK_NB", LOCK_NB);
}
