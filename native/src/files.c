// flock(2) and syncfs(2), which Node does not expose; the store's gc lock and commit need them.
// mmapFile: a read-only file as a Buffer whose pages are read (and counted in RSS) only when
// touched, for the FUSE server's tree index, most of whose inline contents are never read.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value js_mmap_file(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char *path;
  if (!get_args(env, info, 1, argv) || !arg_string(env, argv[0], "path", &path)) return NULL;
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    throw_errno(env, errno, "open", path);
    free(path);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    throw_errno(env, errno, "fstat", path);
    close(fd);
    free(path);
    return NULL;
  }
  size_t len = (size_t)st.st_size;
  void *addr = NULL;
  // mmap of 0 bytes is EINVAL; an empty file is an empty Buffer with nothing to unmap.
  if (len > 0) {
    addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      throw_errno(env, errno, "mmap", path);
      close(fd);
      free(path);
      return NULL;
    }
    // Fault in only the pages touched (no readahead): the index is read scattered.
    madvise(addr, len, MADV_RANDOM);
  }
  close(fd);
  free(path);
  napi_value buf;
  napi_status status = len > 0 ? napi_create_external_buffer(env, len, addr, unmap, (void *)(uintptr_t)len, &buf)
                               : napi_create_buffer(env, 0, NULL, &buf);
  if (status != napi_ok) {
    if (len > 0) munmap(addr, len);
    throw_type(env, "mmapFile: could not create the Buffer");
    return NULL;
  }
  return buf;
}

void init_files(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "flock", js_flock);
  register_fn(env, exports, "syncfs", js_syncfs);
  register_fn(env, exports, "mmapFile", js_mmap_file);
  set_const(env, c, "LOCK_SH", LOCK_SH);
  set_const(env, c, "LOCK_EX", LOCK_EX);
  set_const(env, c, "LOCK_UN", LOCK_UN);
  set_const(env, c, "LOCK_NB", LOCK_NB);
}
