// Child-process plumbing for `strata run`: become a subreaper, and watch a child through a
// pidfd (pollable, immune to pid reuse).
#include <errno.h>
#include <signal.h>
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

void init_process(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "prctlSetChildSubreaper", js_prctl_set_child_subreaper);
  register_fn(env, exports, "pidfdOpen", js_pidfd_open);
  register_fn(env, exports, "waitidPidfd", js_waitid_pidfd);
  set_const(env, c, "CLD_EXITED", CLD_EXITED);
  set_const(env, c, "CLD_KILLED", CLD_KILLED);
  set_const(env, c, "CLD_DUMPED", CLD_DUMPED);
}
