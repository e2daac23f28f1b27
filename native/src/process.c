// Child-process plumbing for `strata run`: become a subreaper, and watch a child through a
// pidfd (pollable, immune to pid reuse).
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <termios.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static napi_value js_prctl_set_child_subreaper(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool on;
  if (!get_args(env, info, 1, argv) || !arg_bool(env, argv[0], "on", &on)) return NULL;
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) < 0) {
    throw_errno(env, errno, "prctl(PR_SET_CHILD_SUBREAPER)", NULL);
    return NULL;
  }
  return make_undefined(env);
}

static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t pid;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "pid", &pid)) return NULL;
  int fd = syscall(SYS_pidfd_open, pid, 0); // pidfds are always close-on-exec
  if (fd < 0) {
    throw_errno(env, errno, "pidfd_open", NULL);
    return NULL;
  }
  return make_int(env, fd);
}

// waitidPidfd(pidfd) -> {code, status} once the child has exited (and reaps it), else null.
static napi_value js_waitid_pidfd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t pidfd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "pidfd", &pidfd)) return NULL;
  siginfo_t si = {0};
  int rc;
  do rc = waitid(P_PIDFD, pidfd, &si, WEXITED | WNOHANG);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    throw_errno(env, errno, "waitid", NULL);
    return NULL;
  }
  if (si.si_pid == 0) {
    napi_value n;
    napi_get_null(env, &n);
    return n;
  }
  napi_value r;
  napi_create_object(env, &r);
  napi_set_named_property(env, r, "code", make_int(env, si.si_code));
  napi_set_named_property(env, r, "status", make_int(env, si.si_status));
  napi_set_named_property(env, r, "pid", make_int(env, si.si_pid));
  return r;
}

// mallopt(3) for a long-running server: glibc gives each thread (libuv's pool runs fs calls) its
// own arena, and after freeing an mmapped chunk raises its mmap threshold so that later large
// buffers come from arenas, where freed memory stays resident. Returns false when refused.
static napi_value js_mallopt(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t param, value;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], "param", &param) ||
      !arg_int32(env, argv[1], "value", &value))
    return NULL;
  napi_value out;
  napi_get_boolean(env, mallopt(param, value) == 1, &out);
  return out;
}

// malloc_trim(3): gives free arena memory back to the kernel (all arenas, not only the heap top).
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_get_boolean(env, malloc_trim(0) == 1, &out);
  return out;
}

// discardPages(buffer): madvise(MADV_DONTNEED) on the whole pages inside a buffer's memory. The
// memory stays valid (it reads as zeros and faults in again when written); only its resident
// pages go back to the kernel at once, where dropping the last reference waits for a garbage
// collection. Returns the bytes discarded (0 when the buffer spans no whole page).
static napi_value js_discard_pages(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  void *data = NULL;
  size_t len = 0;
  bool is_buffer = false, is_arraybuffer = false;
  napi_is_buffer(env, argv[0], &is_buffer);
  napi_is_arraybuffer(env, argv[0], &is_arraybuffer);
  if (is_buffer)
    napi_get_buffer_info(env, argv[0], &data, &len);
  else if (is_arraybuffer)
    napi_get_arraybuffer_info(env, argv[0], &data, &len);
  else {
    napi_throw_type_error(env, NULL, "buffer must be a Buffer or an ArrayBuffer");
    return NULL;
  }
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = ((uintptr_t)data + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t)data + len) & ~(page - 1);
  double discarded = 0;
  if (data && end > start) {
    if (madvise((void *)start, end - start, MADV_DONTNEED) < 0) {
      throw_errno(env, errno, "madvise(MADV_DONTNEED)", NULL);
      return NULL;
    }
    discarded = (double)(end - start);
  }
  napi_value out;
  napi_create_double(env, discarded, &out);
  return out;
}

// pipe() -> [readFd, writeFd], both close-on-exec: a real pipe for a container's stdio (a socketpair,
// which Node makes for 'pipe', cannot be reopened through /dev/stdout).
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    throw_errno(env, errno, "pipe2", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, make_int(env, fds[0]));
  napi_set_element(env, out, 1, make_int(env, fds[1]));
  return out;
}

// setWinsize(fd, rows, cols): TIOCSWINSZ on a terminal (a pty master): the shim's ResizePty.
static napi_value js_set_winsize(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, rows, cols;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "fd", &fd) ||
      !arg_int32(env, argv[1], "rows", &rows) || !arg_int32(env, argv[2], "cols", &cols))
    return NULL;
  if (rows < 0 || rows > 65535 || cols < 0 || cols > 65535) {
    throw_errno(env, EINVAL, "ioctl(TIOCSWINSZ)", NULL);
    return NULL;
  }
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) {
    throw_errno(env, errno, "ioctl(TIOCSWINSZ)", NULL);
    return NULL;
  }
  return make_undefined(env);
}

// Frees a NULL-terminated array of malloc'd strings.
static void free_strings(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

// A JS array of strings as a NULL-terminated malloc'd array (NULL and a thrown error on failure).
static char **arg_strings(napi_env env, napi_value arr, const char *name) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, arr, &n) != napi_ok || n > 4096) {
    throw_type(env, name);
    return NULL;
  }
  char **v = calloc(n + 1, sizeof(char *));
  if (!v) {
    throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    if (!arg_string(env, e, name, &v[i])) {
      free_strings(v);
      return NULL;
    }
  }
  return v;
}

// spawnFast(path, argv, env, fds) -> pid. posix_spawn(3): glibc starts the child with
// clone(CLONE_VM|CLONE_VFORK), so nothing of this (large) process's memory is copied, where
// libuv's fork(2) copies its page tables while the event loop waits. The child gets fds[i] as its
// fd i (-1: /dev/null), every signal at its default disposition (Node ignores SIGPIPE) and an
// empty mask; every other fd of ours is close-on-exec. A bare name is looked up on $PATH. The caller reaps it (pidfdOpen, waitidPidfd).
static napi_value js_spawn_fast(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  char *path = NULL;
  char **args = NULL, **envp = NULL;
  napi_value result = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  bool fa_ok = false, attr_ok = false;
  uint32_t nfds = 0;
  bool is_array = false;
  if (!arg_string(env, argv[0], "path", &path)) goto out;
  if (!(args = arg_strings(env, argv[1], "argv must be an array of strings"))) goto out;
  if (!(envp = arg_strings(env, argv[2], "env must be an array of strings"))) goto out;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &nfds) != napi_ok || nfds > 16) {
    throw_type(env, "fds must be an array of at most 16 fds");
    goto out;
  }
  fa_ok = posix_spawn_file_actions_init(&fa) == 0;
  attr_ok = posix_spawnattr_init(&attr) == 0;
  if (!fa_ok || !attr_ok) {
    throw_errno(env, ENOMEM, "posix_spawn", path);
    goto out;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value e;
    int32_t fd;
    napi_get_element(env, argv[3], i, &e);
    if (!arg_int32(env, e, "fd", &fd)) goto out;
    int rc = fd < 0 ? posix_spawn_file_actions_addopen(&fa, (int)i, "/dev/null", O_RDWR, 0)
                    : posix_spawn_file_actions_adddup2(&fa, fd, (int)i); // clears FD_CLOEXEC
    if (rc != 0) {
      throw_errno(env, rc, "posix_spawn_file_actions", path);
      goto out;
    }
  }
  sigset_t all, none;
  sigfillset(&all);
  // glibc's sigfillset leaves out its two internal signals (32, 33), and posix_spawn then leaves
  // them ignored in the child, where they would stay ignored through runc into the container. The
  // set is a plain bitmask that posix_spawn tests bit by bit: add them by hand.
  for (int sig = 32; sig <= 33; sig++)
    ((unsigned long *)&all)[(sig - 1) / (8 * sizeof(unsigned long))] |= 1UL << ((sig - 1) % (8 * sizeof(unsigned long)));
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawnp(&pid, path, &fa, &attr, args, envp); // a bare name: found on $PATH
  if (rc != 0) {
    throw_errno(env, rc, "posix_spawn", path);
    goto out;
  }
  result = make_int(env, pid);
out:
  if (fa_ok) posix_spawn_file_actions_destroy(&fa);
  if (attr_ok) posix_spawnattr_destroy(&attr);
  free(path);
  free_strings(args);
  free_strings(envp);
  return result;
}

void init_process(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "spawnFast", js_spawn_fast);
  register_fn(env, exports, "pipe", js_pipe);
  register_fn(env, exports, "setWinsize", js_set_winsize);
  register_fn(env, exports, "mallopt", js_mallopt);
  register_fn(env, exports, "mallocTrim", js_malloc_trim);
  register_fn(env, exports, "discardPages", js_discard_pages);
  set_const(env, c, "M_TRIM_THRESHOLD", M_TRIM_THRESHOLD);
  set_const(env, c, "M_MMAP_THRESHOLD", M_MMAP_THRESHOLD);
  set_const(env, c, "M_ARENA_MAX", M_ARENA_MAX);
  register_fn(env, exports, "prctlSetChildSubreaper", js_prctl_set_child_subreaper);
  register_fn(env, exports, "pidfdOpen", js_pidfd_open);
  register_fn(env, exports, "waitidPidfd", js_waitid_pidfd);
  set_const(env, c, "CLD_EXITED", CLD_EXITED);
  set_const(env, c, "CLD_KILLED", CLD_KILLED);
  set_const(env, c, "CLD_DUMPED", CLD_DUMPED);
}
