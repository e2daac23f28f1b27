#define _GNU_SOURCE
/*
 * strata-agent: the guest half of strata's VM support (docs/architecture.md#vm-guests).
 *
 * As init of the guest's initramfs (pid 1, or --init) it mounts proc, sys, dev, loads the kernel
 * modules listed in /etc/strata/modules (virtio, fuse), opens the virtio-serial port named
 * STRATA_VM_PORT_NAME and speaks the agent protocol on it (src/vm/protocol.ts, constants in
 * src/contract/native-contract.json). With --stdio it speaks the same protocol on fds 0/1 and
 * mounts nothing: the host's tests run it that way.
 *
 * One thread, one poll loop: the stream, each process's stdout/stderr (read while the host has
 * granted credit), stdin (written as the pipe drains, credit returned), its exec-error pipe, its
 * /dev/fuse fd (requests relayed to the host, replies written back) and a signalfd for SIGCHLD.
 * A HELLO (session 0) starts a session: everything of an earlier one is killed, and frames that
 * carry another session are skipped, as are bytes before the HELLO.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "strata-contract.h"

#define HDR STRATA_VM_HEADER_SIZE
#define MAXP STRATA_VM_MAX_PAYLOAD
#define MAX_PROCS 64
#define IO_CHUNK 65536
#define FUSE_BUF (1024 * 1024 + 8192)

/* The new mount API, by number: the same on x86_64 and aarch64 (the generic table). */
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#define A_FSOPEN_CLOEXEC 1
#define A_FSCONFIG_SET_FLAG 0
#define A_FSCONFIG_SET_STRING 1
#define A_FSCONFIG_CMD_CREATE 6
#define A_FSMOUNT_CLOEXEC 1
#define A_MOUNT_ATTR_RDONLY 1
#define A_MOVE_MOUNT_F_EMPTY_PATH 4

extern char **environ;

struct proc {
  int used;
  uint32_t id;
  pid_t pid;
  int out[2];    /* stdout, stderr read ends (or the pty master in out[0]); -1 when at EOF */
  int in;        /* stdin write end (or the pty master, dup'd); -1 when closed */
  int errp;      /* exec error pipe, -1 once settled */
  int fuse;      /* /dev/fuse of its root, -1 without */
  uint32_t credit[2];
  char *inbuf;   /* stdin bytes not yet written */
  size_t inlen;
  int in_eof;    /* the host sent EOF: close after inbuf drains */
  int exited;
  int status;
  int failed;    /* exec failed: ERROR sent, no EXIT */
  char root[64];
};

static int sfd = -1, wfd = -1;       /* the stream */
static uint32_t session;             /* 0: no session yet */
static int have_session;
static struct proc procs[MAX_PROCS];
static unsigned char *rbuf;
static size_t rlen;
static unsigned char *fbuf;
static int init_mode;

static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "strata-agent: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static void put16(unsigned char *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static uint16_t get16(const unsigned char *p) { return p[0] | (p[1] << 8); }
static uint32_t get32(const unsigned char *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const unsigned char *p) { return get32(p) | ((uint64_t)get32(p + 4) << 32); }

static int write_all(int fd, const struct iovec *iov0, int n) {
  struct iovec iov[4];
  memcpy(iov, iov0, sizeof(*iov) * n);
  int i = 0;
  while (i < n) {
    ssize_t w = writev(fd, iov + i, n - i);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 1000);
        continue;
      }
      return -1;
    }
    while (i < n && (size_t)w >= iov[i].iov_len) w -= iov[i++].iov_len;
    if (i < n) {
      iov[i].iov_base = (char *)iov[i].iov_base + w;
      iov[i].iov_len -= w;
    }
  }
  return 0;
}

static void send_frame(int type, uint32_t channel, const void *payload, size_t len) {
  unsigned char h[HDR];
  put16(h, STRATA_VM_MAGIC);
  h[2] = type;
  h[3] = 0;
  put32(h + 4, type == STRATA_VM_FRAME_HELLO ? session : session);
  put32(h + 8, channel);
  put32(h + 12, len);
  struct iovec iov[2] = {{h, HDR}, {(void *)payload, len}};
  if (write_all(wfd, iov, len ? 2 : 1) < 0) {
    logf_("writing to the host failed: %s", strerror(errno));
    if (!init_mode) exit(1);
  }
}

static void send_u32(int type, uint32_t channel, uint32_t v) {
  unsigned char b[4];
  put32(b, v);
  send_frame(type, channel, b, 4);
}

static void send_error(uint32_t channel, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  send_frame(STRATA_VM_FRAME_ERROR, channel, msg, n);
}

static uint32_t chan(uint32_t id, int kind) { return (id << 2) | kind; }

static struct proc *find_proc(uint32_t id) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used && procs[i].id == id) return &procs[i];
  return NULL;
}

static void closefd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Sends EXIT once the process was reaped and its outputs reached EOF, then forgets it. */
static void maybe_finish(struct proc *p) {
  if (!p->exited || p->out[0] >= 0 || p->out[1] >= 0 || p->errp >= 0) return;
  if (!p->failed) {
    unsigned char b[8];
    int code, sig = 0;
    if (WIFSIGNALED(p->status)) {
      sig = WTERMSIG(p->status);
      code = 128 + sig;
    } else {
      code = WEXITSTATUS(p->status);
    }
    put32(b, (uint32_t)code);
    put32(b + 4, (uint32_t)sig);
    send_frame(STRATA_VM_FRAME_EXIT, chan(p->id, 0), b, 8);
  }
  closefd(&p->in);
  closefd(&p->fuse); /* aborts the FUSE connection: the mount, if still referenced, says ENOTCONN */
  free(p->inbuf);
  p->used = 0;
}

static void kill_all(void) {
  for (int i = 0; i < MAX_PROCS; i++) {
    struct proc *p = &procs[i];
    if (!p->used) continue;
    if (p->pid > 0 && !p->exited) kill(p->pid, SIGKILL);
    closefd(&p->out[0]);
    closefd(&p->out[1]);
    closefd(&p->in);
    closefd(&p->errp);
    closefd(&p->fuse);
    free(p->inbuf);
    p->inbuf = NULL;
    p->failed = 1;
    p->id = 0; /* no frame reaches it any more; its id is free for the new session */
    /* kept until reaped (pid), but nothing more is sent for it */
    if (p->exited || p->pid <= 0) p->used = 0;
  }
}

/* ---- EXEC ---- */

struct spec {
  char *argv[256];
  int argc;
  char *env[512];
  int envc;
  char *cwd, *root_path, *hostname;
  uint32_t uid, gid;
  int fuse_root, tty, writable;
  uint16_t rows, cols;
  char *mem; /* the strings, NUL-terminated copies */
};

static int parse_exec(const unsigned char *p, size_t len, struct spec *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->mem = malloc(len * 2 + 16);
  if (!s->mem) return snprintf(err, errlen, "out of memory"), -1;
  char *m = s->mem;
  size_t off = 0;
  while (off < len) {
    if (len - off < 5) return snprintf(err, errlen, "truncated EXEC record"), -1;
    unsigned key = p[off];
    uint32_t n = get32(p + off + 1);
    if (n > len - off - 5) return snprintf(err, errlen, "EXEC record overruns its frame"), -1;
    const unsigned char *v = p + off + 5;
    off += 5 + n;
    char *str = m;
    memcpy(m, v, n);
    m[n] = 0;
    m += n + 1;
    int is_str = key == STRATA_VM_KEY_ARGV || key == STRATA_VM_KEY_ENV || key == STRATA_VM_KEY_CWD ||
                 key == STRATA_VM_KEY_ROOT_PATH || key == STRATA_VM_KEY_HOSTNAME;
    if (is_str && memchr(v, 0, n)) return snprintf(err, errlen, "NUL byte in an EXEC string"), -1;
    switch (key) {
      case STRATA_VM_KEY_ARGV:
        if (s->argc >= 255) return snprintf(err, errlen, "too many arguments"), -1;
        s->argv[s->argc++] = str;
        break;
      case STRATA_VM_KEY_ENV:
        if (s->envc >= 511) return snprintf(err, errlen, "too many environment variables"), -1;
        s->env[s->envc++] = str;
        break;
      case STRATA_VM_KEY_CWD: s->cwd = str; break;
      case STRATA_VM_KEY_ROOT_PATH: s->root_path = str; break;
      case STRATA_VM_KEY_HOSTNAME: s->hostname = str; break;
      case STRATA_VM_KEY_UID: if (n != 4) return snprintf(err, errlen, "bad uid"), -1; s->uid = get32(v); break;
      case STRATA_VM_KEY_GID: if (n != 4) return snprintf(err, errlen, "bad gid"), -1; s->gid = get32(v); break;
      case STRATA_VM_KEY_FUSE_ROOT: s->fuse_root = 1; break;
      case STRATA_VM_KEY_WRITABLE: s->writable = 1; break;
      case STRATA_VM_KEY_TTY:
        if (n != 4) return snprintf(err, errlen, "bad tty size"), -1;
        s->tty = 1;
        s->rows = get16(v);
        s->cols = get16(v + 2);
        break;
      default: break; /* unknown keys are for newer agents */
    }
  }
  if (s->argc == 0) return snprintf(err, errlen, "no command"), -1;
  return 0;
}

static int fsconfig_(int fd, int cmd, const char *key, const char *value) {
  return syscall(__NR_fsconfig, fd, cmd, key, value, 0);
}

/* A detached FUSE mount served through `devfd`; returns the mount fd. */
static int fuse_mount(int devfd, char *err, size_t errlen) {
  int fs = syscall(__NR_fsopen, "fuse", A_FSOPEN_CLOEXEC);
  if (fs < 0) return snprintf(err, errlen, "fsopen fuse: %s", strerror(errno)), -1;
  char num[16];
  snprintf(num, sizeof num, "%d", devfd);
  int r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "fd", num);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "source", "strata");
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "subtype", "strata");
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "rootmode", "40000");
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "user_id", "0");
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "group_id", "0");
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_FLAG, "ro", NULL);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_FLAG, "default_permissions", NULL);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_FLAG, "allow_other", NULL);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_CMD_CREATE, NULL, NULL);
  if (r) {
    snprintf(err, errlen, "configuring the FUSE root: %s", strerror(errno));
    close(fs);
    return -1;
  }
  int mfd = syscall(__NR_fsmount, fs, A_FSMOUNT_CLOEXEC, A_MOUNT_ATTR_RDONLY);
  int e = errno;
  close(fs);
  if (mfd < 0) return snprintf(err, errlen, "fsmount: %s", strerror(e)), -1;
  return mfd;
}

/* In the child: report why and exit 127 (the parent turns the message into ERROR). */
static void child_fail(int errfd, const char *what, const char *arg) {
  char msg[512];
  int n = snprintf(msg, sizeof msg, "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  if (n > 0) {
    ssize_t w = write(errfd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    (void)w;
  }
  _exit(127);
}

static void try_mount(const char *src, const char *dst, const char *type, unsigned long fl, const char *data) {
  struct stat st;
  if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) mount(src, dst, type, fl, data);
}

static void child_exec(struct spec *s, int mfd, int errfd, int stdio[3], int ptyslave) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  if (ptyslave >= 0) {
    setsid();
    if (ioctl(ptyslave, TIOCSCTTY, 0) < 0) child_fail(errfd, "TIOCSCTTY", NULL);
    for (int i = 0; i < 3; i++) dup2(ptyslave, i);
  } else {
    setsid();
    for (int i = 0; i < 3; i++) dup2(stdio[i], i);
  }
  if (mfd >= 0 || s->root_path) {
    if (unshare(CLONE_NEWNS) < 0) child_fail(errfd, "unshare", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(errfd, "private /", NULL);
    const char *root = s->root_path;
    if (mfd >= 0) {
      root = "/run/strata-root";
      const char *lower = s->writable ? "/run/strata-lower" : root;
      mkdir(root, 0755);
      mkdir(lower, 0755);
      if (syscall(__NR_move_mount, mfd, "", AT_FDCWD, lower, A_MOVE_MOUNT_F_EMPTY_PATH) < 0)
        child_fail(errfd, "attaching the root", NULL);
      close(mfd);
      if (s->writable) {
        /* Writes go to a tmpfs upper layer that lives as long as this mount namespace. */
        mkdir("/run/strata-rw", 0755);
        if (mount("tmpfs", "/run/strata-rw", "tmpfs", 0, "mode=0755") < 0) child_fail(errfd, "tmpfs upper", NULL);
        mkdir("/run/strata-rw/upper", 0755);
        mkdir("/run/strata-rw/work", 0755);
        if (mount("overlay", root, "overlay", 0,
                  "lowerdir=/run/strata-lower,upperdir=/run/strata-rw/upper,workdir=/run/strata-rw/work") < 0)
          child_fail(errfd, "overlay root", NULL);
      }
      /* The image's own mount points, when it has them (a read-only root has no others). */
      char path[256];
      snprintf(path, sizeof path, "%s/proc", root);
      try_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
      snprintf(path, sizeof path, "%s/dev", root);
      try_mount("/dev", path, NULL, MS_BIND | MS_REC, NULL);
      snprintf(path, sizeof path, "%s/sys", root);
      try_mount("/sys", path, NULL, MS_BIND | MS_REC | MS_RDONLY, NULL);
      snprintf(path, sizeof path, "%s/tmp", root);
      try_mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    }
    if (chdir(root) < 0) child_fail(errfd, "chdir", root);
    if (chroot(".") < 0) child_fail(errfd, "chroot", root);
  }
  if (s->hostname && unshare(CLONE_NEWUTS) == 0) sethostname(s->hostname, strlen(s->hostname));
  if (chdir(s->cwd ? s->cwd : "/") < 0) child_fail(errfd, "chdir", s->cwd ? s->cwd : "/");
  if (setgroups(0, NULL) < 0 && errno != EPERM) child_fail(errfd, "setgroups", NULL);
  if (setgid(s->gid) < 0) child_fail(errfd, "setgid", NULL);
  if (setuid(s->uid) < 0) child_fail(errfd, "setuid", NULL);
  s->env[s->envc] = NULL;
  s->argv[s->argc] = NULL;
  environ = s->env;
  if (!getenv("PATH")) setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  execvp(s->argv[0], s->argv);
  child_fail(errfd, "exec", s->argv[0]);
}

static void do_exec(uint32_t id, const unsigned char *p, size_t len) {
  uint32_t ch = chan(id, 0);
  char err[512];
  struct spec s;
  if (id == 0 || find_proc(id)) {
    send_error(ch, "process id %u is in use", id);
    return;
  }
  if (parse_exec(p, len, &s, err, sizeof err) < 0) {
    send_error(ch, "%s", err);
    free(s.mem);
    return;
  }
  struct proc *pr = NULL;
  for (int i = 0; i < MAX_PROCS; i++)
    if (!procs[i].used) {
      pr = &procs[i];
      break;
    }
  if (!pr) {
    send_error(ch, "too many processes (%d)", MAX_PROCS);
    free(s.mem);
    return;
  }
  int devfd = -1, mfd = -1, ep[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
  int master = -1, slave = -1;
  if (s.fuse_root) {
    devfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (devfd < 0) {
      send_error(ch, "open /dev/fuse: %s", strerror(errno));
      goto fail;
    }
    mfd = fuse_mount(devfd, err, sizeof err);
    if (mfd < 0) {
      send_error(ch, "%s", err);
      goto fail;
    }
    fcntl(devfd, F_SETFL, O_NONBLOCK);
  }
  if (pipe2(ep, O_CLOEXEC) < 0) goto syserr;
  if (s.tty) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) goto syserr;
    slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) goto syserr;
    struct winsize ws = {s.rows, s.cols, 0, 0};
    ioctl(master, TIOCSWINSZ, &ws);
  } else if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || pipe2(pi, O_CLOEXEC) < 0) {
    goto syserr;
  }
  pid_t pid = fork();
  if (pid < 0) goto syserr;
  if (pid == 0) {
    /* The FUSE devices are the agent's alone to serve. A child holding one (until its exec) while
     * it waits on a request to that same mount would keep the connection alive after the agent
     * died, and wait in D state for ever. */
    if (devfd >= 0) close(devfd);
    for (int i = 0; i < MAX_PROCS; i++)
      if (procs[i].used && procs[i].fuse >= 0) close(procs[i].fuse);
    int stdio[3] = {pi[0], po[1], pe[1]};
    child_exec(&s, mfd, ep[1], stdio, slave);
  }
  memset(pr, 0, sizeof *pr);
  pr->used = 1;
  pr->id = id;
  pr->pid = pid;
  pr->credit[0] = pr->credit[1] = STRATA_VM_INITIAL_CREDIT;
  pr->fuse = devfd;
  close(ep[1]);
  pr->errp = ep[0];
  if (s.tty) {
    close(slave);
    fcntl(master, F_SETFL, O_NONBLOCK);
    pr->out[0] = master;
    pr->out[1] = -1;
    pr->in = dup(master);
    fcntl(pr->in, F_SETFD, FD_CLOEXEC);
    send_frame(STRATA_VM_FRAME_EOF, chan(id, STRATA_VM_KIND_STDERR), NULL, 0);
  } else {
    close(po[1]);
    close(pe[1]);
    close(pi[0]);
    pr->out[0] = po[0];
    pr->out[1] = pe[0];
    pr->in = pi[1];
    fcntl(pr->in, F_SETFL, O_NONBLOCK);
  }
  if (mfd >= 0) close(mfd);
  free(s.mem);
  return;
syserr:
  send_error(ch, "starting the process: %s", strerror(errno));
fail:
  if (devfd >= 0) close(devfd);
  if (mfd >= 0) close(mfd);
  int all[] = {ep[0], ep[1], po[0], po[1], pe[0], pe[1], pi[0], pi[1], master, slave};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (all[i] >= 0) close(all[i]);
  free(s.mem);
}

/* ---- frames from the host ---- */

static void on_frame(int type, uint32_t channel, const unsigned char *p, size_t len) {
  uint32_t id = channel >> 2;
  int kind = channel & 3;
  if (type == STRATA_VM_FRAME_PING) {
    send_frame(STRATA_VM_FRAME_PONG, channel, p, len);
    return;
  }
  if (type == STRATA_VM_FRAME_EXEC) {
    do_exec(id, p, len);
    return;
  }
  if (id == 0) {
    if (type == STRATA_VM_FRAME_SIGNAL && init_mode) {
      /* SIGNAL on the control channel: power the guest off (strata vm stop). */
      kill_all();
      sync();
      reboot(RB_POWER_OFF);
    }
    return;
  }
  struct proc *pr = find_proc(id);
  if (!pr || pr->failed) return;
  switch (type) {
    case STRATA_VM_FRAME_DATA:
      if (kind == STRATA_VM_KIND_FUSE && pr->fuse >= 0) {
        /* One reply, one write; ENOENT: the request was interrupted meanwhile. */
        ssize_t w = write(pr->fuse, p, len);
        (void)w;
      } else if (kind == STRATA_VM_KIND_STDIN && pr->in >= 0) {
        if (pr->inlen + len > STRATA_VM_INITIAL_CREDIT * 2) {
          send_error(channel, "stdin beyond its credit");
          return;
        }
        char *nb = realloc(pr->inbuf, pr->inlen + len);
        if (!nb) return;
        pr->inbuf = nb;
        memcpy(pr->inbuf + pr->inlen, p, len);
        pr->inlen += len;
      }
      break;
    case STRATA_VM_FRAME_EOF:
      if (kind == STRATA_VM_KIND_STDIN) pr->in_eof = 1;
      break;
    case STRATA_VM_FRAME_CREDIT:
      if (len == 4 && (kind == STRATA_VM_KIND_STDOUT || kind == STRATA_VM_KIND_STDERR)) {
        uint64_t c = (uint64_t)pr->credit[kind - 2] + get32(p);
        pr->credit[kind - 2] = c > 0xffffffffu ? 0xffffffffu : (uint32_t)c;
      }
      break;
    case STRATA_VM_FRAME_SIGNAL:
      if (len == 4 && pr->pid > 0 && !pr->exited) kill(pr->pid, (int)get32(p));
      break;
    case STRATA_VM_FRAME_RESIZE:
      if (len == 4 && pr->out[0] >= 0 && pr->out[1] < 0) {
        struct winsize ws = {get16(p), get16(p + 2), 0, 0};
        ioctl(pr->out[0], TIOCSWINSZ, &ws);
      }
      break;
    default: break;
  }
}

static void on_hello(const unsigned char *p, size_t len) {
  if (len < 16) return;
  uint64_t nonce = get64(p + 8);
  uint32_t next = (uint32_t)nonce ? (uint32_t)nonce : 1;
  if (have_session && next != session) {
    logf_("a new session: ending the processes of the last one");
    kill_all();
  }
  session = next; /* the same nonce again: the host repeated HELLO, only answer it */
  have_session = 1;
  struct utsname u;
  uname(&u);
  unsigned char out[16 + 256];
  memset(out, 0, 16);
  put32(out, STRATA_VM_VERSION);
  memcpy(out + 8, p + 8, 8);
  int n = snprintf((char *)out + 16, 256, "arch=%s kernel=%s", u.machine, u.release);
  if (n < 0) n = 0;
  if (n > 255) n = 255;
  send_frame(STRATA_VM_FRAME_HELLO, 0, out, 16 + n);
}

/* Parses whole frames out of rbuf. Before a session (or after garbage) it hunts for a HELLO of
 * session 0 a byte at a time; a frame of another session is stale and skipped. */
static void parse_stream(void) {
  size_t off = 0;
  for (;;) {
    if (rlen - off < HDR) break;
    unsigned char *h = rbuf + off;
    uint16_t magic = get16(h);
    int type = h[2];
    uint32_t sess = get32(h + 4), ch = get32(h + 8), len = get32(h + 12);
    int hello = magic == STRATA_VM_MAGIC && type == STRATA_VM_FRAME_HELLO && sess == 0 && len >= 16 && len <= 4096;
    if (!hello && (magic != STRATA_VM_MAGIC || len > MAXP || !have_session)) {
      if (have_session && magic == STRATA_VM_MAGIC && len > MAXP) {
        logf_("a frame of %u bytes exceeds %u: resynchronizing", len, MAXP);
        send_error(0, "frame of %u bytes exceeds %u", len, MAXP);
      }
      off++;
      continue;
    }
    if (rlen - off < HDR + len) break;
    if (hello) on_hello(h + HDR, len);
    else if (sess == session) on_frame(type, ch, h + HDR, len);
    off += HDR + len;
  }
  if (off) {
    memmove(rbuf, rbuf + off, rlen - off);
    rlen -= off;
  }
}

/* ---- guest setup (init mode) ---- */

static void load_modules(void) {
  FILE *f = fopen("/etc/strata/modules", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      logf_("module %s: %s", line, strerror(errno));
      continue;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) logf_("insmod %s: %s", line, strerror(errno));
    close(fd);
  }
  fclose(f);
}

static int vsock_listener = -1;

/* vfkit (macOS) has no named virtio-serial port: the agent listens on vsock instead, and vfkit
 * connects the host's unix socket to it. */
static int vsock_listen(void) {
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = STRATA_VM_VSOCK_PORT;
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 4) < 0) {
    logf_("vsock port %d: %s", STRATA_VM_VSOCK_PORT, strerror(errno));
    close(s);
    return -1;
  }
  return s;
}

static int vsock_accept(void) {
  for (;;) {
    int c = accept4(vsock_listener, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) return c;
    if (errno != EINTR) return -1;
  }
}

static int open_port(void) {
  for (int tries = 0; tries < 500; tries++) {
    if (tries > 0 && access("/dev/vsock", F_OK) == 0 && (vsock_listener = vsock_listen()) >= 0) {
      logf_("listening on vsock port %d", STRATA_VM_VSOCK_PORT);
      return vsock_accept();
    }
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[300], name[128] = {0};
      snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, name, sizeof name - 1);
      close(fd);
      if (n > 0 && name[n - 1] == '\n') name[n - 1] = 0;
      if (strcmp(name, STRATA_VM_PORT_NAME) == 0) {
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        closedir(d);
        int pfd = open(path, O_RDWR | O_CLOEXEC);
        if (pfd >= 0) return pfd;
        logf_("open %s: %s", path, strerror(errno));
        return -1;
      }
    }
    if (d) closedir(d);
    usleep(10000);
  }
  return -1;
}

static void setup_guest(void) {
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  mkdir("/dev", 0755);
  mkdir("/run", 0755);
  mkdir("/tmp", 01777);
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mkdir("/dev/pts", 0755);
  mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666");
  unlink("/dev/ptmx");
  symlink("pts/ptmx", "/dev/ptmx");
  mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mkdir("/sys/fs/cgroup", 0755);
  mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  int c = open("/dev/console", O_RDWR);
  if (c >= 0) {
    dup2(c, 1);
    dup2(c, 2);
    if (c > 2) close(c);
  }
  load_modules();
}

/* ---- the loop ---- */

static void on_child(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used || p->pid != pid) continue;
      p->exited = 1;
      p->status = st;
      if (p->failed && p->out[0] < 0 && p->out[1] < 0 && p->errp < 0) {
        closefd(&p->in);
        closefd(&p->fuse);
        free(p->inbuf);
        p->inbuf = NULL;
        p->used = 0;
      } else {
        maybe_finish(p);
      }
    }
  }
}

static void flush_stdin(struct proc *p) {
  while (p->in >= 0 && p->inlen > 0) {
    ssize_t w = write(p->in, p->inbuf, p->inlen);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      p->inlen = 0; /* EPIPE: the process stopped reading; drop, but still return the credit */
      closefd(&p->in);
      break;
    }
    memmove(p->inbuf, p->inbuf + w, p->inlen - w);
    p->inlen -= w;
    send_u32(STRATA_VM_FRAME_CREDIT, chan(p->id, STRATA_VM_KIND_STDIN), (uint32_t)w);
  }
  /* With a pty, stdin shares the master: only end it when stdout is at EOF too. */
  if (p->in_eof && p->inlen == 0 && p->in >= 0) {
    if (p->out[1] >= 0 || p->out[0] < 0) closefd(&p->in);
    else {
      /* ^D: end of input for a terminal reading in canonical mode */
      char eot = 4;
      ssize_t w = write(p->in, &eot, 1);
      (void)w;
      p->in_eof = 0;
    }
  }
}

int main(int argc, char **argv) {
  int stdio_mode = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stdio")) stdio_mode = 1;
    else if (!strcmp(argv[i], "--init")) init_mode = 1;
  }
  if (getpid() == 1) init_mode = 1;
  signal(SIGPIPE, SIG_IGN);
  if (init_mode) {
    setup_guest();
    sfd = wfd = open_port();
    if (sfd < 0) {
      logf_("no virtio-serial port named %s", STRATA_VM_PORT_NAME);
      sync();
      reboot(RB_POWER_OFF);
      return 1;
    }
    logf_("ready on %s", STRATA_VM_PORT_NAME);
  } else if (stdio_mode) {
    sfd = 0;
    wfd = 1;
  } else {
    fprintf(stderr, "usage: strata-agent --init | --stdio\n");
    return 2;
  }
  rbuf = malloc(HDR + MAXP + IO_CHUNK);
  fbuf = malloc(FUSE_BUF);
  if (!rbuf || !fbuf) return 1;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  struct pollfd pf[2 + MAX_PROCS * 5];
  struct {
    struct proc *p;
    int what; /* 0 out, 1 err, 2 stdin, 3 errpipe, 4 fuse */
  } who[2 + MAX_PROCS * 5];
  for (;;) {
    int n = 0;
    pf[n++] = (struct pollfd){sfd, POLLIN, 0};
    pf[n++] = (struct pollfd){sigfd, POLLIN, 0};
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *p = &procs[i];
      if (!p->used) continue;
      for (int k = 0; k < 2; k++)
        if (p->out[k] >= 0 && p->credit[k] > 0) {
          who[n].p = p, who[n].what = k;
          pf[n++] = (struct pollfd){p->out[k], POLLIN, 0};
        }
      if (p->in >= 0 && p->inlen > 0) {
        who[n].p = p, who[n].what = 2;
        pf[n++] = (struct pollfd){p->in, POLLOUT, 0};
      }
      if (p->errp >= 0) {
        who[n].p = p, who[n].what = 3;
        pf[n++] = (struct pollfd){p->errp, POLLIN, 0};
      }
      if (p->fuse >= 0) {
        who[n].p = p, who[n].what = 4;
        pf[n++] = (struct pollfd){p->fuse, POLLIN, 0};
      }
    }
    if (poll(pf, n, -1) < 0) {
      if (errno == EINTR) continue;
      logf_("poll: %s", strerror(errno));
      return 1;
    }
    if (pf[0].revents) {
      ssize_t r = read(sfd, rbuf + rlen, HDR + MAXP + IO_CHUNK - rlen);
      if (r > 0) {
        rlen += r;
        parse_stream();
        if (rlen == HDR + MAXP + IO_CHUNK) rlen = 0; /* cannot happen with bounded frames */
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (!init_mode) {
          kill_all();
          return 0; /* the host went away */
        }
        if (vsock_listener >= 0) {
          /* vsock: the host's connection ended; the next one starts a new session */
          close(sfd);
          kill_all();
          have_session = 0;
          rlen = 0;
          sfd = wfd = vsock_accept();
          if (sfd < 0) return 1;
          continue;
        }
        /* virtio-serial with no host connected: wait for one */
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
      }
    }
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof si) == sizeof si) {
      }
      on_child();
    }
    for (int i = 2; i < n; i++) {
      if (!pf[i].revents) continue;
      struct proc *p = who[i].p;
      if (!p->used) continue;
      int w = who[i].what;
      if (w <= 1 && p->out[w] == pf[i].fd) {
        size_t max = p->credit[w] < IO_CHUNK ? p->credit[w] : IO_CHUNK;
        ssize_t r = read(p->out[w], fbuf, max);
        if (r > 0) {
          p->credit[w] -= r;
          send_frame(STRATA_VM_FRAME_DATA, chan(p->id, 2 + w), fbuf, r);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          /* EOF, or EIO from a pty master whose slave is gone */
          closefd(&p->out[w]);
          if (!p->failed) send_frame(STRATA_VM_FRAME_EOF, chan(p->id, 2 + w), NULL, 0);
          maybe_finish(p);
        }
      } else if (w == 2) {
        flush_stdin(p);
      } else if (w == 3 && p->errp == pf[i].fd) {
        char msg[512];
        ssize_t r = read(p->errp, msg, sizeof msg - 1);
        closefd(&p->errp);
        if (r > 0) {
          msg[r] = 0;
          p->failed = 1;
          send_error(chan(p->id, 0), "%s", msg);
          closefd(&p->out[0]);
          closefd(&p->out[1]);
        } else {
          send_u32(STRATA_VM_FRAME_STARTED, chan(p->id, 0), (uint32_t)p->pid);
        }
        maybe_finish(p);
        if (p->used && p->failed && p->exited) p->used = 0;
      } else if (w == 4 && p->fuse == pf[i].fd) {
        ssize_t r = read(p->fuse, fbuf, FUSE_BUF);
        if (r > 0) send_frame(STRATA_VM_FRAME_DATA, chan(p->id, STRATA_VM_KIND_FUSE), fbuf, r);
        else if (r < 0 && errno != EAGAIN && errno != EINTR && errno != ENOENT) closefd(&p->fuse);
      }
    }
    /* stdin that arrived this turn */
    for (int i = 0; i < MAX_PROCS; i++)
      if (procs[i].used && (procs[i].inlen > 0 || procs[i].in_eof)) flush_stdin(&procs[i]);
  }
}
