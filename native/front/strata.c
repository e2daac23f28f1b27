/*
 * strata: the native front end of the strata CLI. `strata run ...` is the start path of every
 * container, and Node's own start costs more than the whole budget, so this executable asks the
 * already-running daemon what to do and does it; every other command (or no daemon, or a daemon
 * that says "fallback") execs the Node CLI, dist/src/cli/main.js, with the same arguments.
 *
 * Mechanism only. The daemon parses the run options, writes the bundle and the record, prepares
 * the root, and answers with the exact runtime argv; this program forks and execs it, forwards
 * signals to it, reports how it ended, and exits with the code the daemon names. The wire
 * protocol is specified in src/run/protocol.ts (header comment): a message is
 * "<verb> <length>\n" and <length> bytes of NUL-terminated fields. Every value shared with
 * TypeScript (socket, limits, verbs, signals, exit codes, the messages the Node front end prints
 * too) comes from the generated strata-contract.h (src/contract/native-contract.json).
 *
 * A daemon lost during the run (kill -9, `strata daemon --upgrade`) is not the container's end: the
 * container's root outlives it (docs/architecture.md#sessions-outlive-the-daemon), and so does
 * this run. We notice the connection's end while waiting, reconnect to the daemon that comes back
 * (the fd holder or systemd restarts it; an upgrade's new one takes the socket) and send "resume"
 * with the container id and run dir the exec message named, so the new daemon watches the
 * runtime and finishes the record; the runtime's end is sent to whichever daemon answers last.
 * Only when no daemon answers within STRATA_RUN_RECONNECT_MS of the runtime's end is the exit code
 * ours: the runtime's, or, when the daemon named a pid file (pidfile=) that the runtime never
 * wrote and the runtime failed, 125 and "the container did not start": its hook found no daemon.
 *
 * Signals: STRATA_RUN_FORWARDED_SIGNALS (SIGINT SIGTERM SIGHUP SIGQUIT SIGUSR2 SIGALRM SIGPIPE;
 * those not ignored when we start) and SIGCHLD are blocked from the first instruction, so a ^C during the request stays
 * pending: if one is pending when the exec message arrives, nothing is started ("early").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STRATA_NODE
#define STRATA_NODE "/usr/bin/node"
#endif

#include "strata-contract.h"

#define MAX_HEADER STRATA_RUN_MAX_HEADER
#define NO_RUNTIME STRATA_EXIT_RUN_FAILED /* podman's "the container could not be run" */
#define NO_ANSWER "the daemon closed the connection without answering (see its log, " STRATA_DAEMON_LOG_ROOT_DEFAULT ")"

extern char **environ;

static const int FORWARDED[] = {STRATA_RUN_FORWARDED_SIGNALS};
static sigset_t original_mask; /* restored in the runtime and before exec of the Node CLI */
static sigset_t forward_set;   /* FORWARDED minus those our parent left ignored */
static sigset_t wait_set;      /* forward_set + SIGCHLD */

static void fail(int code, const char *fmt, ...) {
  va_list ap;
  fputs("strata: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

/* ---- the Node CLI ---- */

/* execs node on dist/src/cli/main.js, found from our real path: native/build/Release/strata. */
static void exec_node_cli(int argc, char **argv) {
  sigprocmask(SIG_SETMASK, &original_mask, NULL);
  char exe[PATH_MAX], root[PATH_MAX], main_js[PATH_MAX + 32];
  if (!realpath("/proc/self/exe", exe)) fail(NO_RUNTIME, "cannot resolve /proc/self/exe: %s", strerror(errno));
  char up[PATH_MAX + 16];
  snprintf(up, sizeof(up), "%s/../../..", dirname(exe));
  if (!realpath(up, root)) fail(NO_RUNTIME, "cannot resolve %s: %s", up, strerror(errno));
  snprintf(main_js, sizeof(main_js), "%s/dist/src/cli/main.js", root);
  if (access(main_js, F_OK) < 0) fail(NO_RUNTIME, "%s is missing; run `npm run build`", main_js);

  char **args = calloc((size_t)argc + 2, sizeof(char *));
  if (!args) fail(NO_RUNTIME, "out of memory");
  args[0] = STRATA_NODE;
  args[1] = main_js;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  execv(args[0], args);
  /* The node baked in at build time is gone (an upgrade moved it): any node on $PATH will do. */
  args[0] = "node";
  execvp(args[0], args);
  fail(NO_RUNTIME, "cannot run the Node CLI (%s, or node on $PATH): %s", STRATA_NODE, strerror(errno));
}

/* ---- messages ---- */

struct buf {
  char *data;
  size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) fail(NO_RUNTIME, "out of memory");
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void put_field(struct buf *b, const char *s) { put(b, s, strlen(s) + 1); }

/* The whole message: header line, then the fields in `body`. */
static struct buf frame(const char *verb, const struct buf *body) {
  struct buf m = {0};
  char head[MAX_HEADER + 8];
  int n = snprintf(head, sizeof(head), "%s %zu\n", verb, body->len);
  put(&m, head, (size_t)n);
  if (body->len) put(&m, body->data, body->len);
  return m;
}

/* 0, or -1 when the daemon is gone. MSG_NOSIGNAL: a closed peer must not raise SIGPIPE here. */
static int send_all(int sock, const struct buf *m) {
  for (size_t off = 0; off < m->len;) {
    ssize_t w = send(sock, m->data + off, m->len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

static int send_message(int sock, const char *verb, const char *f1, const char *f2) {
  struct buf body = {0};
  if (f1) put_field(&body, f1);
  if (f2) put_field(&body, f2);
  struct buf m = frame(verb, &body);
  int r = send_all(sock, &m);
  free(body.data);
  free(m.data);
  return r;
}

struct message {
  char verb[16];
  char **fields; /* pointers into body */
  int count;
  char *body;
};

/* Reads one message within STRATA_RUN_REPLY_TIMEOUT_MS. 0, or -1 on EOF, error, timeout or a malformed one. */
static int read_message(int sock, struct message *msg) {
  static char head[MAX_HEADER + 1];
  size_t hl = 0;
  long long deadline = 0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  deadline = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + STRATA_RUN_REPLY_TIMEOUT_MS;
  char *body = NULL;
  size_t want = 0, have = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left = deadline - (now.tv_sec * 1000LL + now.tv_nsec / 1000000);
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r = left > 0 ? poll(&p, 1, (int)left) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) goto bad;
    /* The header byte by byte (it is short) so no byte of the body is read into it. */
    ssize_t n = body ? read(sock, body + have, want - have) : read(sock, head + hl, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) goto bad;
    if (body) {
      have += (size_t)n;
    } else if (head[hl++] == '\n') {
      head[hl - 1] = 0;
      char *sp = strchr(head, ' ');
      char *end;
      if (!sp || sp == head || (size_t)(sp - head) >= sizeof(msg->verb)) goto bad;
      unsigned long len = strtoul(sp + 1, &end, 10);
      if (*end || end == sp + 1 || len > STRATA_RUN_MAX_MESSAGE) goto bad;
      memcpy(msg->verb, head, (size_t)(sp - head));
      msg->verb[sp - head] = 0;
      want = len;
      body = malloc(want + 1);
      if (!body) fail(NO_RUNTIME, "out of memory");
    } else if (hl == MAX_HEADER) {
      goto bad;
    }
    if (body && have == want) break;
  }
  if (want > 0 && body[want - 1] != 0) goto bad;
  msg->count = 0;
  for (size_t i = 0; i < want; i++) msg->count += body[i] == 0;
  msg->fields = calloc((size_t)msg->count + 1, sizeof(char *));
  if (!msg->fields) fail(NO_RUNTIME, "out of memory");
  for (size_t i = 0, k = 0; i < want; i += strlen(body + i) + 1) msg->fields[k++] = body + i;
  msg->body = body;
  return 0;
bad:
  free(body);
  return -1;
}

/* ---- the runtime ---- */

struct exec_order;
static int resume_daemon(const struct exec_order *x, pid_t pid, const char *kind, const char *value);
static long long now_ms(void);

struct exec_order {
  const char *id, *rundir; /* what a "resume" names; NULL from a daemon that does not say */
  const char *cwd;
  const char *mntns;
  const char *pidfile; /* where the runtime writes the container's pid: it started if it exists */
  int stdin_null, new_pgrp;
  char **argv;
};

static int parse_exec(const struct message *m, struct exec_order *x) {
  *x = (struct exec_order){.cwd = "/", .stdin_null = 1, .new_pgrp = 1};
  for (int i = 0; i < m->count; i++) {
    const char *f = m->fields[i];
    if (strcmp(f, "--") == 0) {
      x->argv = m->fields + i + 1;
      return i + 1 < m->count ? 0 : -1;
    }
    if (strncmp(f, "cwd=", 4) == 0) x->cwd = f + 4;
    else if (strcmp(f, "stdin=inherit") == 0) x->stdin_null = 0;
    else if (strcmp(f, "pgrp=same") == 0) x->new_pgrp = 0;
    else if (strncmp(f, "mntns=", 6) == 0) x->mntns = f + 6;
    else if (strncmp(f, "pidfile=", 8) == 0 && f[8]) x->pidfile = f + 8;
    else if (strncmp(f, "id=", 3) == 0 && f[3]) x->id = f + 3;
    else if (strncmp(f, "rundir=", 7) == 0 && f[7] == '/') x->rundir = f + 7;
  }
  return -1;
}

/* In the forked child: never returns. */
static void start_runtime(const struct exec_order *x) {
  const char *what = "";
  int code = STRATA_EXIT_NOT_FOUND;
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_SETMASK, &original_mask, NULL);
  if (x->new_pgrp && setpgid(0, 0) < 0) {
    what = "setpgid: ";
    goto fail;
  }
  if (x->stdin_null) {
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0) {
      what = "/dev/null: ";
      goto fail;
    }
  }
  if (chdir(x->cwd) < 0) {
    what = "chdir: ";
    goto fail;
  }
  if (x->mntns) {
    /* The daemon's long-lived namespace (src/run/cgroup-ns.ts); chdir again inside it. */
    what = "entering the runtime's mount namespace: ";
    int ns = open(x->mntns, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNS) < 0) goto fail;
    close(ns);
    if (chdir(x->cwd) < 0) {
      what = "chdir: ";
      goto fail;
    }
  }
  /* Only 0-2 reach the runtime, whatever our own parent left open without O_CLOEXEC. */
  syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
  execv(x->argv[0], x->argv);
  what = "";
  code = errno == EACCES || errno == ENOEXEC || errno == EISDIR || errno == EPERM ? STRATA_EXIT_CANNOT_EXECUTE
                                                                                : STRATA_EXIT_NOT_FOUND;
fail:
  fprintf(stderr, "strata: cannot start %s: %s%s\n", x->argv[0], what, strerror(errno));
  _exit(code);
}

/* The daemon's connection during the run: it says nothing until "exited", so anything readable is
 * its end (EOF) or an early word that finish() reads. 1: it is gone. */
static int daemon_gone(int sock) {
  char c;
  ssize_t n = recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Forks the runtime, forwards signals until it ends; returns its wait status and its pid. A
 * daemon lost meanwhile is replaced by the next one that answers (*sock: -1 while none does). */
static int run_runtime(int *sock, const struct exec_order *x, pid_t *runtime_pid) {
  pid_t pid = fork();
  if (pid < 0) fail(NO_RUNTIME, "fork: %s", strerror(errno));
  if (pid == 0) start_runtime(x);
  *runtime_pid = pid;
  /* Also from here, so a signal forwarded right away finds the group already made. */
  if (x->new_pgrp) setpgid(pid, pid);
  char num[24];
  snprintf(num, sizeof(num), "%d", (int)pid);
  if (send_message(*sock, STRATA_RUN_FRONT_VERBS_STARTED, num, NULL) < 0) {
    close(*sock);
    *sock = -1;
  }
  int sfd = signalfd(-1, &wait_set, SFD_CLOEXEC);
  if (sfd < 0) fail(NO_RUNTIME, "signalfd: %s", strerror(errno));
  int can_resume = x->id && x->rundir, watch = 1;
  long long lost_at = *sock < 0 ? now_ms() : 0, retry_at = 0;
  for (;;) {
    int timeout = -1;
    if (*sock < 0 && can_resume) {
      long long left = retry_at - now_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = *sock, .events = POLLIN}};
    int n = poll(p, *sock >= 0 && watch ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR) fail(NO_RUNTIME, "poll: %s", strerror(errno));
    if (n > 0 && *sock >= 0 && watch && p[1].revents) {
      if (daemon_gone(*sock)) {
        close(*sock);
        *sock = -1;
        lost_at = now_ms();
        retry_at = 0;
      } else {
        watch = 0; /* a word before "exited": finish() reads it */
      }
    }
    if (*sock < 0 && can_resume && now_ms() >= retry_at) {
      *sock = resume_daemon(x, pid, NULL, NULL);
      /* Quickly while a restart is expected, then once a second. */
      long long now = now_ms();
      retry_at = now + (now - lost_at < STRATA_RUN_RECONNECT_MS ? STRATA_RUN_RECONNECT_POLL_MS : 1000);
      if (*sock >= 0) watch = 1;
    }
    if (n <= 0 || !(p[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si;
    ssize_t got = read(sfd, &si, sizeof(si));
    if (got != (ssize_t)sizeof(si)) continue;
    int sig = (int)si.ssi_signo;
    if (sig != SIGCHLD) {
      kill(pid, sig); /* the runtime passes it on to the container */
      continue;
    }
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == pid) {
      close(sfd);
      return status;
    }
    if (r < 0) fail(NO_RUNTIME, "waitpid: %s", strerror(errno));
  }
}

/* ---- main ---- */

/* -1 when nothing answers (quiet: on any error). */
static int connect_daemon_at(int quiet) {
  const char *path = getenv(STRATA_SOCKET_ENV);
  if (!path || !*path) path = STRATA_SOCKET_DEFAULT;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) fail(NO_RUNTIME, "socket path too long: %s", path);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(NO_RUNTIME, "socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) return fd;
  if (quiet || errno == ENOENT || errno == ECONNREFUSED) {
    close(fd);
    return -1;
  }
  fail(NO_RUNTIME, "cannot reach the strata daemon at %s: %s", path, strerror(errno));
  return -1;
}

static int connect_daemon(void) { return connect_daemon_at(0); }

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* A new connection that has sent "resume" (with the runtime's end, if `kind`), or -1. */
static int resume_daemon(const struct exec_order *x, pid_t pid, const char *kind, const char *value) {
  int fd = connect_daemon_at(1);
  if (fd < 0) return -1;
  char num[24] = "";
  if (pid > 0) snprintf(num, sizeof(num), "%d", (int)pid);
  struct buf body = {0};
  put_field(&body, STRATA_RUN_VERSION);
  put_field(&body, x->id);
  put_field(&body, x->rundir);
  put_field(&body, num);
  if (kind) {
    put_field(&body, kind);
    put_field(&body, value);
  }
  struct buf m = frame(STRATA_RUN_FRONT_VERBS_RESUME, &body);
  int r = send_all(fd, &m);
  free(body.data);
  free(m.data);
  if (r < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void block_signals(void) {
  sigemptyset(&forward_set);
  for (size_t i = 0; i < sizeof(FORWARDED) / sizeof(FORWARDED[0]); i++) {
    struct sigaction sa;
    /* A signal our parent ignores (a background job's SIGINT) is not ours to forward. */
    if (sigaction(FORWARDED[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) continue;
    sigaddset(&forward_set, FORWARDED[i]);
  }
  wait_set = forward_set;
  sigaddset(&wait_set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wait_set, &original_mask);
  /* An ignored SIGCHLD would reap the runtime for us and leave waitpid nothing to report. */
  signal(SIGCHLD, SIG_DFL);
}

/* The first forwarded signal already pending, or 0. */
static int pending_signal(void) {
  sigset_t pending;
  sigpending(&pending);
  for (int s = 1; s < NSIG; s++)
    if (sigismember(&forward_set, s) == 1 && sigismember(&pending, s) == 1) return s;
  return 0;
}

/* Reads the daemon's final word: prints its message and exits with its code. Returns if there is
 * none (the daemon went away). */
static void final_word(int sock) {
  struct message m;
  if (read_message(sock, &m) < 0 || strcmp(m.verb, STRATA_RUN_DAEMON_VERBS_EXIT) != 0 || m.count < 1) return;
  if (m.count > 1 && m.fields[1][0]) fprintf(stderr, "%s\n", m.fields[1]);
  exit(atoi(m.fields[0]));
}

/* Reports the runtime's end and exits as the daemon says: to this daemon, or to the next one that
 * answers within STRATA_RUN_RECONNECT_MS; `lost_code` and `lost_message` if none does. */
static void finish(int sock, const struct exec_order *x, pid_t pid, const char *kind, const char *value,
                   int lost_code, const char *lost_message) {
  if (sock >= 0 && send_message(sock, STRATA_RUN_FRONT_VERBS_EXITED, kind, value) == 0) final_word(sock);
  if (sock >= 0) close(sock);
  if (x->id && x->rundir) {
    for (long long until = now_ms() + STRATA_RUN_RECONNECT_MS; now_ms() < until;) {
      int fd = resume_daemon(x, pid, kind, value);
      if (fd >= 0) {
        final_word(fd);
        close(fd);
      }
      struct timespec pause = {0, STRATA_RUN_RECONNECT_POLL_MS * 1000000L};
      nanosleep(&pause, NULL);
    }
  }
  fail(lost_code, "%s", lost_message);
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], STRATA_RUN_FRONT_VERBS_RUN) != 0) exec_node_cli(argc, argv);
  block_signals();
  int sock = connect_daemon();
  if (sock < 0) exec_node_cli(argc, argv); /* the Node CLI starts a daemon */

  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) fail(NO_RUNTIME, "getcwd: %s", strerror(errno));
  char argc_text[24];
  snprintf(argc_text, sizeof(argc_text), "%d", argc - 2);
  struct buf body = {0};
  put_field(&body, STRATA_RUN_VERSION);
  put_field(&body, cwd);
  put_field(&body, argc_text);
  for (int i = 2; i < argc; i++) put_field(&body, argv[i]);
  for (char **e = environ; *e; e++) put_field(&body, *e);
  /* The daemon refuses more; the Node CLI does not have that limit. */
  if (body.len > STRATA_RUN_MAX_MESSAGE) exec_node_cli(argc, argv);
  struct buf request = frame(STRATA_RUN_FRONT_VERBS_RUN, &body);
  if (send_all(sock, &request) < 0) fail(NO_RUNTIME, "writing to the daemon: %s", strerror(errno));
  free(body.data);
  free(request.data);

  struct message m;
  if (read_message(sock, &m) < 0) fail(NO_RUNTIME, NO_ANSWER);
  if (strcmp(m.verb, STRATA_RUN_DAEMON_VERBS_FALLBACK) == 0) {
    close(sock);
    exec_node_cli(argc, argv);
  }
  if (strcmp(m.verb, STRATA_RUN_DAEMON_VERBS_EXIT) == 0 && m.count >= 1) {
    if (m.count > 1 && m.fields[1][0]) fprintf(stderr, "%s\n", m.fields[1]);
    exit(atoi(m.fields[0]));
  }
  struct exec_order x;
  if (strcmp(m.verb, STRATA_RUN_DAEMON_VERBS_EXEC) != 0 || parse_exec(&m, &x) < 0) fail(NO_RUNTIME, NO_ANSWER);

  const char *kind;
  char value[24];
  int lost_code;
  pid_t pid = 0;
  const char *lost_message = STRATA_RUN_LOST_MESSAGE;
  int sig = pending_signal();
  if (sig) {
    kind = STRATA_RUN_EXITED_KINDS_EARLY;
    snprintf(value, sizeof(value), "%d", sig);
    lost_code = NO_RUNTIME;
  } else {
    int status = run_runtime(&sock, &x, &pid);
    int signaled = WIFSIGNALED(status);
    int n = signaled ? WTERMSIG(status) : WEXITSTATUS(status);
    kind = signaled ? STRATA_RUN_EXITED_KINDS_SIGNAL : STRATA_RUN_EXITED_KINDS_CODE;
    snprintf(value, sizeof(value), "%d", n);
    lost_code = signaled ? 128 + n : n;
    if (!signaled && n != 0 && x.pidfile && access(x.pidfile, F_OK) < 0) {
      lost_code = NO_RUNTIME;
      lost_message = STRATA_RUN_LOST_BEFORE_START_MESSAGE;
    }
  }
  finish(sock, &x, pid, kind, value, lost_code, lost_message);
  return 0;
}
