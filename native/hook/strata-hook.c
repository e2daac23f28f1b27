/*
 * strata-hook: the OCI hook executable for the createRuntime, createContainer and poststop
 * stages. Mechanism only: it relays the stage and the OCI state to the strata daemon, and at
 * createContainer receives the detached FUSE mount and attaches it as the container's rootfs.
 * Every decision (which image, readonly, what to release) is the daemon's.
 *
 *   strata-hook STAGE [DAEMON-ARGV...]
 *
 * STAGE is createRuntime, createContainer or poststop. The OCI state JSON arrives on stdin.
 * The daemon socket is $STRATA_SOCKET, else /run/strata/strata.sock. When the daemon is not
 * running and DAEMON-ARGV is given, createRuntime starts it (setsid, cwd /, stdio /dev/null) and
 * waits for its sd_notify READY=1 (or ERRNO= with a STATUS= reason) on an abstract datagram
 * socket passed as $NOTIFY_SOCKET. poststop with no daemon running succeeds: nothing is held.
 * A daemon started this way is given --exit-idle and leaves once it serves nothing (it is born
 * under the runtime's child subreaper, and crun waits for it); a hook that meets it leaving (its
 * connection dropped unanswered, or its socket gone) asks again, starting a new one if need be.
 *
 * Wire protocol (one connection per call): the hook writes "STRATA-HOOK 1 STAGE\n" followed by
 * the state JSON, then shuts down its write side. The daemon answers with one message of text
 * lines and, for createContainer, the mount fd as SCM_RIGHTS:
 *   ok\n  [rootfs ABS-PATH\n]  [readonly 1\n]          or      error MESSAGE\n  [exit CODE\n]
 * Every value shared with TypeScript (socket, limits, stages, exit codes) comes from the generated
 * strata-contract.h (src/contract/native-contract.json).
 *
 * Exit codes (STRATA_HOOK_EXIT_*), so a runtime's or podman's report says which step failed:
 * 1 the daemon refused (its message is printed), 2 usage, 3 the daemon is unreachable (or could
 * not be started), 4 it did not answer in time, 5 the image is not in the store (the daemon says
 * so with "exit 5"), 6 attaching the mount failed, 7 the daemon's reply made no sense. A refusal's
 * code is the daemon's choice ("exit CODE"): the hook decides nothing.
 *
 * The attach sequence is the one of docs/architecture.md#kernel-facts: O_PATH handles to the runtime's mounts
 * under the rootfs, the new mount moved over the rootfs, then each of them moved onto a target
 * resolved strictly inside the new mount (RESOLVE_IN_ROOT), so an image's symlinks cannot
 * redirect /proc or /dev outside the container.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "strata-contract.h"

#define MAX_ATTEMPTS 5

static const char *stage = "?";

static void die(int code, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "strata-hook %s: ", stage);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

#define ATTACH_DIE(...) die(STRATA_HOOK_EXIT_ATTACH_FAILED, __VA_ARGS__)
#include "../common/attach.h"

static const char *socket_path(void) {
  const char *p = getenv(STRATA_SOCKET_ENV);
  return p && *p ? p : STRATA_SOCKET_DEFAULT;
}

/* $STRATA_HOOK_TIMEOUT_MS when it is a positive number, else `fallback`. */
static int timeout_ms(int fallback) {
  const char *v = getenv(STRATA_HOOK_TIMEOUT_ENV);
  char *end;
  long ms = v && *v ? strtol(v, &end, 10) : 0;
  return ms > 0 && ms < INT_MAX && *end == 0 ? (int)ms : fallback;
}

/* A send or receive timeout (SO_SNDTIMEO, SO_RCVTIMEO) ran out: exit "timeout", else "unreachable". */
static void die_io(const char *what) {
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    die(STRATA_HOOK_EXIT_TIMEOUT, "%s: the daemon at %s did not answer within %d ms", what, socket_path(),
        timeout_ms(STRATA_HOOK_IO_TIMEOUT_MS));
  die(STRATA_HOOK_EXIT_UNREACHABLE, "%s: %s", what, strerror(errno));
}

static char *read_all(int fd, size_t max, size_t *len) {
  char *buf = malloc(max + 1);
  size_t n = 0;
  if (!buf) die(STRATA_HOOK_EXIT_FAILED, "out of memory");
  for (;;) {
    ssize_t r = read(fd, buf + n, max - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(STRATA_HOOK_EXIT_FAILED, "reading the OCI state from stdin: %s", strerror(errno));
    if (r == 0) break;
    n += (size_t)r;
    if (n == max) die(STRATA_HOOK_EXIT_FAILED, "OCI state on stdin is larger than %d bytes", STRATA_HOOK_MAX_STATE);
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static int try_connect(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) die(STRATA_HOOK_EXIT_UNREACHABLE, "socket path too long: %s", path);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(STRATA_HOOK_EXIT_FAILED, "socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
    int ms = timeout_ms(STRATA_HOOK_IO_TIMEOUT_MS);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

/* Start the daemon from argv and wait for READY=1 (sd_notify protocol) or its early exit. */
static void start_daemon(char **argv) {
  /* An abstract socket ("@name" in $NOTIFY_SOCKET): no file to clean up, even if we are killed. */
  char notify[64];
  snprintf(notify, sizeof(notify), "@strata-notify-%d-%ld", (int)getpid(), (long)time(NULL));
  int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t nlen = strlen(notify);
  memcpy(addr.sun_path + 1, notify + 1, nlen - 1);
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + nlen);
  if (ns < 0 || bind(ns, (struct sockaddr *)&addr, alen) < 0)
    die(STRATA_HOOK_EXIT_FAILED, "binding the notify socket %s: %s", notify, strerror(errno));
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) die(STRATA_HOOK_EXIT_FAILED, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die(STRATA_HOOK_EXIT_FAILED, "fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    /* Not the runtime's cwd (a bundle or rootfs directory): the daemon outlives the container. */
    if (chdir("/") < 0) _exit(127);
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(nul, 2);
    setenv("NOTIFY_SOCKET", notify, 1);
    /* Double fork so the daemon is not our child (nor the runtime's) once we exit. */
    if (fork() != 0) _exit(0);
    execv(argv[0], argv);
    int e = errno;
    (void)!write(errpipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(errpipe[1]);
  waitpid(pid, NULL, 0);
  int e = 0;
  if (read(errpipe[0], &e, sizeof(e)) == sizeof(e))
    die(STRATA_HOOK_EXIT_UNREACHABLE, "starting the daemon %s: %s", argv[0], strerror(e));
  close(errpipe[0]);
  struct pollfd p = {.fd = ns, .events = POLLIN};
  int wait_ms = timeout_ms(STRATA_HOOK_READY_TIMEOUT_MS);
  for (;;) {
    int r = poll(&p, 1, wait_ms);
    if (r == 0)
      die(STRATA_HOOK_EXIT_TIMEOUT, "the daemon (%s) did not report ready within %d ms; see its log", argv[0], wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(STRATA_HOOK_EXIT_FAILED, "poll: %s", strerror(errno));
    char msg[512];
    ssize_t n = recv(ns, msg, sizeof(msg) - 1, 0);
    if (n <= 0) continue;
    msg[n] = 0;
    if (strstr(msg, "READY=1")) break;
    if (strstr(msg, "ERRNO=")) {
      /* The daemon's STATUS= line says why (and names its log). */
      char *status = strstr(msg, "STATUS=");
      if (status) {
        status += 7;
        status[strcspn(status, "\n")] = 0;
      }
      die(STRATA_HOOK_EXIT_UNREACHABLE, "the daemon (%s) failed to start: %s", argv[0],
          status ? status : "no reason given; see its log");
    }
  }
  close(ns);
}

/*
 * -1 without dying when no daemon runs and none may be started (poststop: nothing to release).
 * A daemon started on demand leaves once idle (--exit-idle), so the one we find, or the one that
 * reported READY because another already served, may be gone a moment later: try again, starting
 * a new one; the daemon's startup lock makes sure only one serves the socket.
 */
/* Whether an fd holder keeps sessions for the daemon on our socket (`<socket>.fds`): a daemon that
 * went away (kill -9, --upgrade) is coming back, with the roots it served. */
static int daemon_coming_back(void) {
  char holder[PATH_MAX];
  snprintf(holder, sizeof(holder), "%s.fds", socket_path());
  return access(holder, F_OK) == 0;
}

static int connect_daemon(char **daemon_argv, int optional) {
  long long waited_ms = 0;
  for (int attempt = 1;; attempt++) {
    int fd = try_connect(socket_path());
    if (fd >= 0) return fd;
    int gone = errno == ENOENT || errno == ECONNREFUSED;
    /* createContainer between a daemon's death and its successor: the root it prepared waits
     * there (the holder kept its mount), so wait for the next daemon rather than fail. */
    if (gone && !optional && (!daemon_argv || !daemon_argv[0]) && waited_ms < STRATA_HOOK_READY_TIMEOUT_MS &&
        daemon_coming_back()) {
      usleep(20000);
      waited_ms += 20;
      attempt--;
      continue;
    }
    if (optional && gone) return -1;
    if (!gone || !daemon_argv || !daemon_argv[0] || attempt > MAX_ATTEMPTS)
      die(STRATA_HOOK_EXIT_UNREACHABLE, "cannot reach the strata daemon at %s: %s (is `strata daemon` running?)",
          socket_path(), strerror(errno));
    start_daemon(daemon_argv);
  }
}

/* 0, or -1 when the daemon dropped the connection (an idle daemon stopping as we connected). */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) return -1;
    if (w < 0) die_io("writing to the daemon");
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/*
 * Receive the reply text (NUL-terminated) and at most one fd (or -1). Returns -1 when the daemon
 * closed or reset the connection without a word: it did nothing for us (a daemon accepts a request
 * or stops listening, never both), so asking again is safe.
 */
static int recv_reply(int sock, char *text, size_t cap, int *fd_out) {
  size_t n = 0;
  *fd_out = -1;
  for (;;) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = text + n, .iov_len = cap - 1 - n};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == ECONNRESET && n == 0) return -1;
    if (r < 0) die_io("reading the daemon's reply");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && *fd_out < 0)
        memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    }
    if (r == 0 || n + (size_t)r >= cap - 1) {
      n += (size_t)r;
      break;
    }
    n += (size_t)r;
  }
  text[n] = 0;
  return n == 0 ? -1 : 0;
}

/* The value of "KEY value" in the reply, or NULL. Returns a pointer into a static copy. */
static const char *reply_field(const char *reply, const char *key) {
  static char value[PATH_MAX];
  size_t klen = strlen(key);
  for (const char *line = reply; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
      const char *v = line + klen + 1;
      size_t len = strcspn(v, "\n");
      if (len >= sizeof(value)) die(STRATA_HOOK_EXIT_BAD_REPLY, "daemon reply field %s too long", key);
      memcpy(value, v, len);
      value[len] = 0;
      return value;
    }
  }
  return NULL;
}

/* The attach sequence itself, shared with the VM guest agent's hook. */
static void attach(int newfd, const char *rootfs, int readonly) {
  attach_image(newfd, rootfs);
  if (readonly) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, newfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
      die(STRATA_HOOK_EXIT_ATTACH_FAILED, "making the rootfs read-only: %s", strerror(errno));
  }
}

/* The exit code a refusal names ("exit CODE"), or STRATA_HOOK_EXIT_FAILED. */
static int refusal_code(const char *reply) {
  const char *v = reply_field(reply, "exit");
  char *end;
  long code = v ? strtol(v, &end, 10) : 0;
  return v && *end == 0 && code > 0 && code < 126 ? (int)code : STRATA_HOOK_EXIT_FAILED;
}

int main(int argc, char **argv) {
  static const char *const stages[] = {STRATA_HOOK_STAGES};
  if (argc < 2) {
    fprintf(stderr, "usage: strata-hook %s|%s|%s [DAEMON-ARGV...]\n", stages[0], stages[1], stages[2]);
    return STRATA_HOOK_EXIT_USAGE;
  }
  stage = argv[1];
  int is_runtime = strcmp(stage, STRATA_HOOK_STAGES_CREATE_RUNTIME) == 0;
  int is_container = strcmp(stage, STRATA_HOOK_STAGES_CREATE_CONTAINER) == 0;
  int is_poststop = strcmp(stage, STRATA_HOOK_STAGES_POSTSTOP) == 0;
  if (!is_runtime && !is_container && !is_poststop)
    die(STRATA_HOOK_EXIT_USAGE, "unknown stage (want %s, %s or %s)", stages[0], stages[1], stages[2]);
  signal(SIGPIPE, SIG_IGN);

  size_t len;
  char *state = read_all(0, STRATA_HOOK_MAX_STATE, &len);
  char head[64];
  int hl = snprintf(head, sizeof(head), "%s %d %s\n", STRATA_HOOK_MAGIC, STRATA_HOOK_VERSION, stage);
  static char reply[STRATA_HOOK_MAX_REPLY];
  int fd = -1;
  for (int attempt = 1;; attempt++) {
    int sock = connect_daemon(is_runtime && argc > 2 ? argv + 2 : NULL, is_poststop);
    if (sock < 0) return 0; /* poststop with no daemon: it holds nothing for this container */
    int ok = write_all(sock, head, (size_t)hl) == 0 && write_all(sock, state, len) == 0;
    shutdown(sock, SHUT_WR);
    ok = ok && recv_reply(sock, reply, sizeof(reply), &fd) == 0;
    close(sock);
    if (ok) break;
    if (fd >= 0) close(fd);
    fd = -1;
    if (attempt == MAX_ATTEMPTS)
      die(STRATA_HOOK_EXIT_UNREACHABLE, "the daemon at %s closed the connection without answering", socket_path());
    usleep(20000);
  }
  if (strncmp(reply, "error ", 6) == 0) {
    if (fd >= 0) close(fd);
    int code = refusal_code(reply);
    reply[strcspn(reply, "\n")] = 0;
    die(code, "%s", reply + 6);
  }
  if (strncmp(reply, "ok", 2) != 0 || (reply[2] != '\n' && reply[2] != 0))
    die(STRATA_HOOK_EXIT_BAD_REPLY, "unexpected reply from the daemon");
  if (is_container) {
    /* reply_field returns a static buffer: copy each value before the next call. */
    const char *rootfs = reply_field(reply, "rootfs");
    if (fd < 0 || !rootfs) die(STRATA_HOOK_EXIT_BAD_REPLY, "the daemon sent no mount for this container");
    char rootfs_copy[PATH_MAX];
    snprintf(rootfs_copy, sizeof(rootfs_copy), "%s", rootfs);
    const char *ro = reply_field(reply, "readonly");
    attach(fd, rootfs_copy, ro && strcmp(ro, "1") == 0);
    close(fd);
  } else if (fd >= 0) {
    close(fd);
  }
  return 0;
}
