// The new mount API (fsopen/fsconfig/fsmount/move_mount/open_tree/mount_setattr) and openat2.
// glibc 2.36 has no wrappers for most of these, so they go through syscall(2). Flag values come
// from the kernel uapi headers.
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

static napi_value js_fsopen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char *fsname;
  uint32_t flags;
  if (!get_args(env, info, 2, argv) || !arg_uint32(env, argv[1], "flags", &flags)) return NULL;
  if (!arg_string(env, argv[0], "fsname", &fsname)) return NULL;
  int fd = syscall(SYS_fsopen, fsname, flags);
  if (fd < 0) throw_errno(env, errno, "fsopen", fsname);
  free(fsname);
  return fd < 0 ? NULL : make_int(env, fd);
}

// One fsconfig call; `key` and `value` may be NULL.
static napi_value do_fsconfig(napi_env env, int fd, unsigned cmd, const char *key, const void *value, int aux) {
  if (syscall(SYS_fsconfig, fd, cmd, key, value, aux) < 0) {
    throw_errno(env, errno, "fsconfig", key);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_fsconfig_set_string(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  char *key = NULL, *value = NULL;
  napi_value r = NULL;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  if (arg_string(env, argv[1], "key", &key) && arg_string(env, argv[2], "value", &value))
    r = do_fsconfig(env, fd, FSCONFIG_SET_STRING, key, value, 0);
  free(key);
  free(value);
  return r;
}

static napi_value js_fsconfig_set_flag(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  char *key;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_string(env, argv[1], "key", &key)) return NULL;
  napi_value r = do_fsconfig(env, fd, FSCONFIG_SET_FLAG, key, NULL, 0);
  free(key);
  return r;
}

static napi_value js_fsconfig_set_fd(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, value_fd;
  char *key;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "fd", &fd) ||
      !arg_int32(env, argv[2], "valueFd", &value_fd))
    return NULL;
  if (!arg_string(env, argv[1], "key", &key)) return NULL;
  napi_value r = do_fsconfig(env, fd, FSCONFIG_SET_FD, key, NULL, value_fd);
  free(key);
  return r;
}

static napi_value js_fsconfig_create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  return do_fsconfig(env, fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
}

// fsconfigCreateAsync(fd) -> Promise<void>: CMD_CREATE on libuv's pool. Creating an overlay
// whose lower layer is our own FUSE mount makes the kernel look that mount up, and the JS thread
// is the one that must answer — a synchronous call there deadlocks. One short job, not a reader.
struct create_job {
  int fd;
  int err;
  napi_deferred deferred;
  napi_async_work work;
};

static void create_execute(napi_env env, void *data) {
  struct create_job *j = data;
  j->err = syscall(SYS_fsconfig, j->fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ? errno : 0;
}

static void create_complete(napi_env env, napi_status status, void *data) {
  struct create_job *j = data;
  if (j->err == 0) {
    napi_resolve_deferred(env, j->deferred, make_undefined(env));
  } else {
    throw_errno(env, j->err, "fsconfig", NULL);
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value js_fsconfig_create_async(napi_env env, napi_callback_info info) {
  napi_value argv[1], promise, name;
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  struct create_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  j->fd = fd;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "strata.fsconfigCreate", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, create_execute, create_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

// umount2(path, flags) -> Promise<void>, on libuv's pool for the same reason: unmounting a FUSE
// mount may wait for the server, which can be this very process's JS thread.
struct umount_job {
  char *path;
  int flags;
  int err;
  napi_deferred deferred;
  napi_async_work work;
};

static void umount_execute(napi_env env, void *data) {
  struct umount_job *j = data;
  j->err = umount2(j->path, j->flags) < 0 ? errno : 0;
}

static void umount_complete(napi_env env, napi_status status, void *data) {
  struct umount_job *j = data;
  if (j->err == 0) {
    napi_resolve_deferred(env, j->deferred, make_undefined(env));
  } else {
    throw_errno(env, j->err, "umount2", j->path);
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  uint32_t flags;
  if (!get_args(env, info, 2, argv) || !arg_uint32(env, argv[1], "flags", &flags)) return NULL;
  struct umount_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  if (!arg_string(env, argv[0], "path", &j->path)) {
    free(j);
    return NULL;
  }
  j->flags = (int)flags;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "strata.umount2", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, umount_execute, umount_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static napi_value js_fsmount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  uint32_t flags, attrs;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "fd", &fd) ||
      !arg_uint32(env, argv[1], "flags", &flags) || !arg_uint32(env, argv[2], "attrFlags", &attrs))
    return NULL;
  int mfd = syscall(SYS_fsmount, fd, flags, attrs);
  if (mfd < 0) {
    throw_errno(env, errno, "fsmount", NULL);
    return NULL;
  }
  return make_int(env, mfd);
}

static napi_value js_move_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t from_dfd, to_dfd;
  uint32_t flags;
  char *from = NULL, *to = NULL;
  napi_value r = NULL;
  if (!get_args(env, info, 5, argv) || !arg_int32(env, argv[0], "fromDirfd", &from_dfd) ||
      !arg_int32(env, argv[2], "toDirfd", &to_dfd) || !arg_uint32(env, argv[4], "flags", &flags))
    return NULL;
  if (arg_string(env, argv[1], "fromPath", &from) && arg_string(env, argv[3], "toPath", &to)) {
    if (syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags) < 0)
      throw_errno(env, errno, "move_mount", to[0] ? to : from);
    else
      r = make_undefined(env);
  }
  free(from);
  free(to);
  return r;
}

static napi_value js_open_tree(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dfd;
  uint32_t flags;
  char *path;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "dirfd", &dfd) ||
      !arg_uint32(env, argv[2], "flags", &flags))
    return NULL;
  if (!arg_string(env, argv[1], "path", &path)) return NULL;
  int fd = syscall(SYS_open_tree, dfd, path, flags);
  if (fd < 0) throw_errno(env, errno, "open_tree", path);
  free(path);
  return fd < 0 ? NULL : make_int(env, fd);
}

static napi_value js_mount_setattr(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dfd;
  uint32_t flags;
  uint64_t set, clr;
  char *path;
  if (!get_args(env, info, 5, argv) || !arg_int32(env, argv[0], "dirfd", &dfd) ||
      !arg_uint32(env, argv[2], "flags", &flags) || !arg_uint64(env, argv[3], "attrSet", &set) ||
      !arg_uint64(env, argv[4], "attrClr", &clr))
    return NULL;
  if (!arg_string(env, argv[1], "path", &path)) return NULL;
  struct mount_attr attr = {.attr_set = set, .attr_clr = clr};
  int rc = syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof attr);
  if (rc < 0) throw_errno(env, errno, "mount_setattr", path);
  free(path);
  return rc < 0 ? NULL : make_undefined(env);
}

static napi_value js_openat2(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dfd;
  uint32_t flags, mode;
  uint64_t resolve;
  char *path;
  if (!get_args(env, info, 5, argv) || !arg_int32(env, argv[0], "dirfd", &dfd) ||
      !arg_uint32(env, argv[2], "flags", &flags) || !arg_uint32(env, argv[3], "mode", &mode) ||
      !arg_uint64(env, argv[4], "resolve", &resolve))
    return NULL;
  if (!arg_string(env, argv[1], "path", &path)) return NULL;
  struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
  int fd = syscall(SYS_openat2, dfd, path, &how, sizeof how);
  if (fd < 0) throw_errno(env, errno, "openat2", path);
  free(path);
  return fd < 0 ? NULL : make_int(env, fd);
}

void init_mount(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "fsopen", js_fsopen);
  register_fn(env, exports, "fsconfigSetString", js_fsconfig_set_string);
  register_fn(env, exports, "fsconfigSetFlag", js_fsconfig_set_flag);
  register_fn(env, exports, "fsconfigSetFd", js_fsconfig_set_fd);
  register_fn(env, exports, "fsconfigCreate", js_fsconfig_create);
  register_fn(env, exports, "fsconfigCreateAsync", js_fsconfig_create_async);
  register_fn(env, exports, "fsmount", js_fsmount);
  register_fn(env, exports, "moveMount", js_move_mount);
  register_fn(env, exports, "openTree", js_open_tree);
  register_fn(env, exports, "mountSetattr", js_mount_setattr);
  register_fn(env, exports, "openat2", js_openat2);
  register_fn(env, exports, "umount2", js_umount2);

  set_const(env, c, "FSOPEN_CLOEXEC", FSOPEN_CLOEXEC);
  set_const(env, c, "FSMOUNT_CLOEXEC", FSMOUNT_CLOEXEC);
  set_const(env, c, "MOVE_MOUNT_F_SYMLINKS", MOVE_MOUNT_F_SYMLINKS);
  set_const(env, c, "MOVE_MOUNT_F_AUTOMOUNTS", MOVE_MOUNT_F_AUTOMOUNTS);
  set_const(env, c, "MOVE_MOUNT_F_EMPTY_PATH", MOVE_MOUNT_F_EMPTY_PATH);
  set_const(env, c, "MOVE_MOUNT_T_SYMLINKS", MOVE_MOUNT_T_SYMLINKS);
  set_const(env, c, "MOVE_MOUNT_T_AUTOMOUNTS", MOVE_MOUNT_T_AUTOMOUNTS);
  set_const(env, c, "MOVE_MOUNT_T_EMPTY_PATH", MOVE_MOUNT_T_EMPTY_PATH);
  set_const(env, c, "OPEN_TREE_CLONE", OPEN_TREE_CLONE);
  set_const(env, c, "OPEN_TREE_CLOEXEC", OPEN_TREE_CLOEXEC);
  set_const(env, c, "MOUNT_ATTR_RDONLY", MOUNT_ATTR_RDONLY);
  set_const(env, c, "MOUNT_ATTR_NOSUID", MOUNT_ATTR_NOSUID);
  set_const(env, c, "MOUNT_ATTR_NODEV", MOUNT_ATTR_NODEV);
  set_const(env, c, "MOUNT_ATTR_NOEXEC", MOUNT_ATTR_NOEXEC);
  set_const(env, c, "MOUNT_ATTR_NOATIME", MOUNT_ATTR_NOATIME);
  set_const(env, c, "MOUNT_ATTR_NODIRATIME", MOUNT_ATTR_NODIRATIME);
  set_const(env, c, "MOUNT_ATTR_IDMAP", MOUNT_ATTR_IDMAP);
  set_const(env, c, "MOUNT_ATTR_NOSYMFOLLOW", MOUNT_ATTR_NOSYMFOLLOW);
  set_const(env, c, "AT_FDCWD", AT_FDCWD);
  set_const(env, c, "AT_EMPTY_PATH", AT_EMPTY_PATH);
  set_const(env, c, "AT_SYMLINK_NOFOLLOW", AT_SYMLINK_NOFOLLOW);
  set_const(env, c, "AT_NO_AUTOMOUNT", AT_NO_AUTOMOUNT);
  set_const(env, c, "AT_RECURSIVE", AT_RECURSIVE);
  set_const(env, c, "RESOLVE_NO_XDEV", RESOLVE_NO_XDEV);
  set_const(env, c, "RESOLVE_NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS);
  set_const(env, c, "RESOLVE_NO_SYMLINKS", RESOLVE_NO_SYMLINKS);
  set_const(env, c, "RESOLVE_BENEATH", RESOLVE_BENEATH);
  set_const(env, c, "RESOLVE_IN_ROOT", RESOLVE_IN_ROOT);
  set_const(env, c, "MNT_FORCE", MNT_FORCE);
  set_const(env, c, "MNT_DETACH", MNT_DETACH);
  set_const(env, c, "MNT_EXPIRE", MNT_EXPIRE);
  set_const(env, c, "UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW);
  set_const(env, c, "O_RDONLY", O_RDONLY);
  set_const(env, c, "O_WRONLY", O_WRONLY);
  set_const(env, c, "O_RDWR", O_RDWR);
  set_const(env, c, "O_CREAT", O_CREAT);
  set_const(env, c, "O_EXCL", O_EXCL);
  set_const(env, c, "O_TRUNC", O_TRUNC);
  set_const(env, c, "O_PATH", O_PATH);
  set_const(env, c, "O_CLOEXEC", O_CLOEXEC);
  set_const(env, c, "O_DIRECTORY", O_DIRECTORY);
  set_const(env, c, "O_NOFOLLOW", O_NOFOLLOW);
  set_const(env, c, "O_NONBLOCK", O_NONBLOCK);
}
