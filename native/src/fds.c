// Unix socket pairs and file descriptor passing (SCM_RIGHTS). Received descriptors are
// close-on-exec (MSG_CMSG_CLOEXEC) so they never leak into spawned children.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#define MAX_FDS 253 // SCM_MAX_FD

static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    throw_errno(env, errno, "socketpair", NULL);
    return NULL;
  }
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_int(env, sv[0]));
  napi_set_element(env, arr, 1, make_int(env, sv[1]));
  return arr;
}

// sendFds(sockFd, data, fds) -> bytes sent. data must be non-empty: a stream socket drops a
// control message that travels without at least one byte.
static napi_value js_send_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t sock;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "sockFd", &sock)) return NULL;
  bool is_buf;
  napi_is_buffer(env, argv[1], &is_buf);
  if (!is_buf) {
    throw_type(env, "data must be a Buffer");
    return NULL;
  }
  void *data;
  size_t len;
  napi_get_buffer_info(env, argv[1], &data, &len);
  if (len == 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "data must hold at least one byte");
    return NULL;
  }
  bool is_arr;
  napi_is_array(env, argv[2], &is_arr);
  if (!is_arr) {
    throw_type(env, "fds must be an array of numbers");
    return NULL;
  }
  uint32_t nfds;
  napi_get_array_length(env, argv[2], &nfds);
  if (nfds > MAX_FDS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "at most 253 fds per message");
    return NULL;
  }
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    napi_get_element(env, argv[2], i, &el);
    if (!arg_int32(env, el, "fds[i]", &fds[i])) return NULL;
  }

  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  char *control = NULL;
  if (nfds > 0) {
    size_t clen = CMSG_SPACE(sizeof(int) * nfds);
    control = calloc(1, clen);
    if (control == NULL) {
      throw_errno(env, ENOMEM, "sendmsg", NULL);
      return NULL;
    }
    msg.msg_control = control;
    msg.msg_controllen = clen;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  int err = errno;
  free(control);
  if (n < 0) {
    throw_errno(env, err, "sendmsg", NULL);
    return NULL;
  }
  return make_int(env, n);
}

// recvFds(sockFd, maxBytes, maxFds) -> {data, fds}. Blocks if the socket is blocking and empty;
// an empty data Buffer means end of stream. A truncated control message (more fds than maxFds)
// closes what arrived and throws EMSGSIZE rather than silently losing descriptors.
static napi_value js_recv_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t sock;
  uint32_t max_bytes, max_fds;
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "sockFd", &sock) ||
      !arg_uint32(env, argv[1], "maxBytes", &max_bytes) || !arg_uint32(env, argv[2], "maxFds", &max_fds))
    return NULL;
  if (max_fds > MAX_FDS || max_bytes == 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "maxBytes must be >= 1 and maxFds <= 253");
    return NULL;
  }
  char *buf = malloc(max_bytes);
  size_t clen = CMSG_SPACE(sizeof(int) * (max_fds ? max_fds : 1));
  char *control = calloc(1, clen);
  if (buf == NULL || control == NULL) {
    free(buf);
    free(control);
    throw_errno(env, ENOMEM, "recvmsg", NULL);
    return NULL;
  }
  struct iovec iov = {.iov_base = buf, .iov_len = max_bytes};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = clen};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    free(buf);
    free(control);
    throw_errno(env, err, "recvmsg", NULL);
    return NULL;
  }

  int fds[MAX_FDS + 1];
  size_t nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && nfds < MAX_FDS + 1; i++) memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
  }
  free(control);
  if (msg.msg_flags & MSG_CTRUNC) {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
    free(buf);
    throw_errno(env, EMSGSIZE, "recvmsg", NULL);
    return NULL;
  }

  napi_value result, data, arr;
  napi_create_buffer_copy(env, n, buf, NULL, &data);
  free(buf);
  napi_create_array_with_length(env, nfds, &arr);
  for (size_t i = 0; i < nfds; i++) napi_set_element(env, arr, i, make_int(env, fds[i]));
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "data", data);
  napi_set_named_property(env, result, "fds", arr);
  return result;
}

// unixConnectSeqpacket(path) -> fd: a blocking, close-on-exec SOCK_SEQPACKET connection to the
// unix socket at path (the fd holder: one message per request, fds travel with it).
static napi_value js_unix_connect_seqpacket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  if (!get_args(env, info, 1, argv)) return NULL;
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    throw_type(env, "path must be a string");
    return NULL;
  }
  if (len == 0 || len >= sizeof path - 1) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "socket path empty or too long");
    return NULL;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, path, len + 1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", NULL);
    return NULL;
  }
  int r;
  do r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "connect", path);
    return NULL;
  }
  return make_int(env, fd);
}

void init_fds(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "unixConnectSeqpacket", js_unix_connect_seqpacket);
  register_fn(env, exports, "socketpair", js_socketpair);
  register_fn(env, exports, "sendFds", js_send_fds);
  register_fn(env, exports, "recvFds", js_recv_fds);
}
