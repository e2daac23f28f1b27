// /dev/fuse ioctls (fuse-ioctl.h has the values).
#include <errno.h>

#include "fuse-ioctl.h"
#include "util.h"

static napi_value js_fuse_dev_clone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t new_fd, session_fd;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "newDevFd", &new_fd) ||
      !arg_int32(env, argv[1], "sessionDevFd", &session_fd))
    return NULL;
  uint32_t src = (uint32_t)session_fd;
  if (ioctl(new_fd, STRATA_FUSE_DEV_IOC_CLONE, &src) < 0) {
    throw_errno(env, errno, "ioctl(FUSE_DEV_IOC_CLONE)", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_fuse_backing_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t dev_fd, fd;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "devFd", &dev_fd) ||
      !arg_int32(env, argv[1], "fd", &fd))
    return NULL;
  struct strata_fuse_backing_map map = {.fd = fd, .flags = 0, .padding = 0};
  int id = ioctl(dev_fd, STRATA_FUSE_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) {
    throw_errno(env, errno, "ioctl(FUSE_DEV_IOC_BACKING_OPEN)", NULL);
    return NULL;
  }
  return make_int(env, id);
}

static napi_value js_fuse_backing_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t dev_fd;
  uint32_t id;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "devFd", &dev_fd) ||
      !arg_uint32(env, argv[1], "id", &id))
    return NULL;
  if (ioctl(dev_fd, STRATA_FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0) {
    throw_errno(env, errno, "ioctl(FUSE_DEV_IOC_BACKING_CLOSE)", NULL);
    return NULL;
  }
  return make_undefined(env);
}

void init_fuse(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "fuseDevClone", js_fuse_dev_clone);
  register_fn(env, exports, "fuseBackingOpen", js_fuse_backing_open);
  register_fn(env, exports, "fuseBackingClose", js_fuse_backing_close);
}
