// What the strata daemon needs beyond the mount calls: the credentials of a unix-socket peer
// (SO_PEERCRED, to let only root in) and one datagram to a unix socket (sd_notify's READY=1).
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

// getPeerCred(fd) -> {pid, uid, gid} of the process that connected (as of connect(2)).
static napi_value js_get_peer_cred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], "fd", &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw_errno(env, errno, "getsockopt(SO_PEERCRED)", NULL);
    return NULL;
  }
  napi_value r;
  napi_create_object(env, &r);
  napi_set_named_property(env, r, "pid", make_int(env, cred.pid));
  napi_set_named_property(env, r, "uid", make_int(env, cred.uid));
  napi_set_named_property(env, r, "gid", make_int(env, cred.gid));
  return r;
}

// sendDatagram(path, data, fds?): one sendmsg on a fresh AF_UNIX SOCK_DGRAM socket, with `fds`
// (at most 16) as SCM_RIGHTS (sd_notify's FDSTORE=1). A path starting with '@' names an abstract
// socket, as $NOTIFY_SOCKET may.
static napi_value js_send_datagram(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  char *path = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    throw_type(env, "sendDatagram(path, data, fds?)");
    return NULL;
  }
  if (!arg_string(env, argv[0], "path", &path)) return NULL;
  int fds[16];
  uint32_t nfds = 0;
  if (argc > 2) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    bool is_array = false;
    if (t != napi_undefined) napi_is_array(env, argv[2], &is_array);
    if (t != napi_undefined && !is_array) {
      free(path);
      throw_type(env, "fds must be an array");
      return NULL;
    }
    if (is_array) napi_get_array_length(env, argv[2], &nfds);
    if (nfds > 16) {
      free(path);
      throw_type(env, "at most 16 fds");
      return NULL;
    }
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value v;
      napi_get_element(env, argv[2], i, &v);
      if (!arg_int32(env, v, "fd", &fds[i])) {
        free(path);
        return NULL;
      }
    }
  }
  bool is_buf;
  napi_is_buffer(env, argv[1], &is_buf);
  if (!is_buf) {
    free(path);
    throw_type(env, "data must be a Buffer");
    return NULL;
  }
  void *data;
  size_t len;
  napi_get_buffer_info(env, argv[1], &data, &len);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t plen = strlen(path);
  if (plen == 0 || plen >= sizeof(addr.sun_path)) {
    throw_errno(env, ENAMETOOLONG, "sendto", path);
    free(path);
    return NULL;
  }
  memcpy(addr.sun_path, path, plen);
  if (path[0] == '@') addr.sun_path[0] = 0;
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", NULL);
    free(path);
    return NULL;
  }
  struct iovec iov = {.iov_base = data, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 16)];
    struct cmsghdr align;
  } control;
  struct msghdr m = {.msg_name = &addr, .msg_namelen = alen, .msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&control, 0, sizeof(control));
    m.msg_control = control.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(fd, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) {
    throw_errno(env, err, "sendto", path);
    free(path);
    return NULL;
  }
  free(path);
  return make_undefined(env);
}

void init_daemon(napi_env env, napi_value exports, napi_value constants) {
  register_fn(env, exports, "getPeerCred", js_get_peer_cred);
  register_fn(env, exports, "sendDatagram", js_send_datagram);
}
