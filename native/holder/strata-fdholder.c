// strata-fdholder: keeps file descriptors alive while no strata daemon runs. Mechanism only, no
// policy: it holds the fds peers give it (each under a name, with an opaque tag), hands copies
// back, and closes one when told. The daemon deposits each FUSE session's /dev/fuse fd here, so a
// daemon that dies (kill -9, a crash, an upgrade) does not take the containers' filesystems with
// it: the kernel keeps the connection while any fd on it is open, requests wait in its queue, and
// the next daemon takes the fds back and serves them (docs/architecture.md#sessions-outlive-the-daemon).
//
//   strata-fdholder --socket PATH [--restart ARGV...]
//
// Protocol: SOCK_SEQPACKET on PATH (0600), one request per message, one answer per request.
// Only root or this process's own uid may connect (SO_PEERCRED), checked on every connection.
//   "P" NAME "\0" TAG  + one fd   put: hold the fd under NAME (replacing one held before) -> "o"
//   "D" NAME                      drop: close the fd held under NAME, if any               -> "o"
//   "T"                           take: one "F" NAME "\0" TAG + the fd (a copy: the holder keeps
//                                 its own) per held fd, then "E"
//   anything malformed            -> "e" MESSAGE
// NAME: 1-128 bytes of [A-Za-z0-9_.:-]; TAG: at most 60000 bytes; at most 4096 fds held.
// It exits when it holds nothing and no peer is connected (checked when a peer leaves, and
// 10 s after start if none ever came). With --restart, when the last peer leaves while fds are
// held (the daemon died), it runs ARGV (a new daemon, in its own session) at once, and again every
// 5 s while no peer comes (at most once a second in all).
// A second holder on the same PATH (flock on PATH.lock) exits at once with status 0. Once it
// listens it forks and the first process exits: the holder is not the daemon's child.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAME 128
#define MAX_TAG 60000
#define MAX_MSG (1 + MAX_NAME + 1 + MAX_TAG)
#define MAX_HELD 4096
#define MAX_PEERS 32
#define FIRST_PEER_WAIT_MS 10000
#define RETRY_MS 5000

struct held {
  char name[MAX_NAME + 1];
  char *tag;
  size_t tag_len;
  int fd;
};

static struct held held[MAX_HELD];
static int nheld;
static char msg[MAX_MSG + 1];

static void die(const char *what) {
  fprintf(stderr, "strata-fdholder: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int valid_name(const char *s, size_t n) {
  if (n == 0 || n > MAX_NAME) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == ':' || c == '-'))
      return 0;
  }
  return 1;
}

static int find(const char *name) {
  for (int i = 0; i < nheld; i++)
    if (strcmp(held[i].name, name) == 0) return i;
  return -1;
}

static void drop_at(int i) {
  close(held[i].fd);
  free(held[i].tag);
  held[i] = held[--nheld];
}

static int send_msg(int sock, const void *data, size_t len, int fd) {
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    memset(control, 0, sizeof control);
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(sock, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

static int reply_error(int sock, const char *text) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "e%s", text);
  return send_msg(sock, buf, (size_t)n, -1);
}

// One request from a peer; returns -1 when the peer must be dropped.
static int serve(int sock) {
  char control[CMSG_SPACE(sizeof(int) * 4)];
  struct iovec iov = {.iov_base = msg, .iov_len = MAX_MSG};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  int fds[4], nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && nfds < 4; i++) memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
  }
  int bad = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  int fd = -1;
  if (msg[0] == 'P' && nfds == 1 && !bad) fd = fds[0];
  else
    for (int i = 0; i < nfds; i++) close(fds[i]);
  if (bad) return reply_error(sock, "message too long");
  msg[n] = '\0';

  if (msg[0] == 'P') {
    if (fd < 0) return reply_error(sock, "put wants exactly one fd");
    char *nul = memchr(msg + 1, '\0', (size_t)n - 1);
    if (nul == NULL || !valid_name(msg + 1, (size_t)(nul - msg - 1))) {
      close(fd);
      return reply_error(sock, "bad name");
    }
    size_t tag_len = (size_t)n - (size_t)(nul - msg) - 1;
    int at = find(msg + 1);
    if (at < 0 && nheld == MAX_HELD) {
      close(fd);
      return reply_error(sock, "holding too many fds");
    }
    char *tag = malloc(tag_len + 1);
    if (tag == NULL) {
      close(fd);
      return reply_error(sock, "out of memory");
    }
    memcpy(tag, nul + 1, tag_len);
    tag[tag_len] = '\0';
    if (at >= 0) drop_at(at);
    struct held *h = &held[nheld++];
    memcpy(h->name, msg + 1, (size_t)(nul - msg));
    h->tag = tag;
    h->tag_len = tag_len;
    h->fd = fd;
    return send_msg(sock, "o", 1, -1);
  }
  if (msg[0] == 'D') {
    if (!valid_name(msg + 1, (size_t)n - 1)) return reply_error(sock, "bad name");
    int at = find(msg + 1);
    if (at >= 0) drop_at(at);
    return send_msg(sock, "o", 1, -1);
  }
  if (msg[0] == 'T' && n == 1) {
    for (int i = 0; i < nheld; i++) {
      size_t nl = strlen(held[i].name);
      msg[0] = 'F';
      memcpy(msg + 1, held[i].name, nl + 1);
      memcpy(msg + 2 + nl, held[i].tag, held[i].tag_len);
      if (send_msg(sock, msg, 2 + nl + held[i].tag_len, held[i].fd) < 0) return -1;
    }
    return send_msg(sock, "E", 1, -1);
  }
  return reply_error(sock, "unknown request");
}

static int peer_allowed(int sock) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return 0;
  return cred.uid == 0 || cred.uid == getuid();
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static void restart(char **argv) {
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    // Grandchild: its own session, not our child (we never wait for it).
    if (fork() != 0) _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
  const char *path = NULL;
  char **restart_argv = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) path = argv[++i];
    else if (strcmp(argv[i], "--restart") == 0 && i + 1 < argc) {
      restart_argv = &argv[i + 1];
      break;
    } else {
      fprintf(stderr, "usage: strata-fdholder --socket PATH [--restart ARGV...]\n");
      return 2;
    }
  }
  if (path == NULL) {
    fprintf(stderr, "usage: strata-fdholder --socket PATH [--restart ARGV...]\n");
    return 2;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    fprintf(stderr, "strata-fdholder: socket path too long: %s\n", path);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);

  char lock_path[sizeof addr.sun_path + 8];
  snprintf(lock_path, sizeof lock_path, "%s.lock", path);
  int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) die("open lock");
  if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return 0; // another holder serves PATH
    die("flock");
  }
  strcpy(addr.sun_path, path);
  unlink(path);
  int lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lsock < 0) die("socket");
  mode_t old = umask(0077);
  if (bind(lsock, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  umask(old);
  if (listen(lsock, 16) < 0) die("listen");
  /* Listening: leave our starter (the daemon) and its session, so that we are nobody's child and
   * whatever waits for the daemon's children does not wait for us. The lock goes with us. */
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child > 0) _exit(0);
  setsid();

  struct pollfd pfd[1 + MAX_PEERS];
  int peers[MAX_PEERS], npeers = 0;
  int ever = 0;
  double last_restart = -1e9;
  double started = now_ms();
  for (;;) {
    pfd[0].fd = lsock;
    pfd[0].events = POLLIN;
    for (int i = 0; i < npeers; i++) {
      pfd[1 + i].fd = peers[i];
      pfd[1 + i].events = POLLIN;
    }
    int orphaned = npeers == 0 && nheld > 0 && restart_argv != NULL;
    int timeout = orphaned ? 500 : ever ? -1 : 500;
    int r = poll(pfd, (nfds_t)(1 + npeers), timeout);
    if (r < 0 && errno != EINTR) die("poll");
    int left = 0;
    for (int i = npeers - 1; i >= 0; i--) {
      if (r <= 0 || !(pfd[1 + i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (serve(peers[i]) < 0) {
        close(peers[i]);
        peers[i] = peers[--npeers];
        left = 1;
      }
    }
    if (r > 0 && (pfd[0].revents & POLLIN)) {
      int s;
      while ((s = accept4(lsock, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        if (!peer_allowed(s) || npeers == MAX_PEERS) {
          reply_error(s, "permission denied or too many peers");
          close(s);
          continue;
        }
        peers[npeers++] = s;
        ever = 1;
      }
    }
    if (npeers == 0 && nheld == 0 && (left || (!ever && now_ms() - started > FIRST_PEER_WAIT_MS))) break;
    // A daemon that never connects (it failed to start) is tried again, every RETRY_MS.
    if (npeers == 0 && nheld > 0 && restart_argv != NULL &&
        now_ms() - last_restart >= (left ? 1000 : RETRY_MS)) {
      last_restart = now_ms();
      restart(restart_argv);
    }
  }
  unlink(path);
  close(lock);
  return 0;
}
