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
#include <ftw.h>
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
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "strata-contract.h"
#include "agent-fast-path.h"

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
  /* Under crun: the container id, the detached root mount its createContainer hook collects
   * (-1 once handed over), and whether the hook puts a writable overlay over it. */
  char cid[64];
  int mfd;
  int writable;
  /* Its root's metadata answered here from the image's tree (agent-fast-path.h), or NULL. */
  struct fast_path *fp;
  /* The FUSE mount's bdi ("major:minor"), whose readahead window is raised once INIT's reply
   * (unique init_unique) went in; empty after. */
  char bdi[32];
  uint64_t init_unique;
  /* A terminal: its size (kept for a pty that arrives later), and under crun the console socket
   * crun hands the container's pty master to (-1 once it did, or without one). */
  int tty;
  uint16_t rows, cols;
  int console_l, console_conn; /* the listener, then (console_conn) crun's connection */
};

/* Tree indexes the host sent this session (TREE frames), by the host's id; kept until the next
 * session: processes' fast paths point into them. */
#define MAX_TREES 64
static struct tree {
  uint32_t id, len, got;
  uint8_t *buf;
} trees[MAX_TREES];
static size_t tree_bytes;
static unsigned char *obuf; /* a locally answered FUSE reply */
#define OBUF_CAP (16 + 1024 * 1024 + 4096)

static int sfd = -1, wfd = -1;       /* the stream */
static uint32_t session;             /* 0: no session yet */
static int have_session;
static struct proc procs[MAX_PROCS];
static unsigned char *rbuf;
static size_t rlen;
static unsigned char *fbuf;
static int init_mode;
/* Where bundles, crun's state and the hook socket live (--run-dir; the guest's is the contract's). */
static const char *run_dir = STRATA_VM_GUEST_RUN_DIR;
static const char *crun_path = STRATA_VM_GUEST_CRUN;
static int hook_listener = -1;

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

/* The process's /dev/fuse (closing it aborts the connection: the mount, if still referenced, says
 * ENOTCONN) and its fast path. */
static void drop_fuse(struct proc *p) {
  closefd(&p->fuse);
  agent_fp_free(p->fp);
  p->fp = NULL;
}

static void free_trees(void) {
  for (int i = 0; i < MAX_TREES; i++) {
    free(trees[i].buf);
    memset(&trees[i], 0, sizeof trees[i]);
  }
  tree_bytes = 0;
}

static void forget_container(struct proc *p, int kill_it);
static void crun_delete(const char *cid);

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
  drop_fuse(p);
  forget_container(p, p->failed || WIFSIGNALED(p->status));
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
    drop_fuse(p);
    forget_container(p, 1);
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
  char *config; /* an OCI config.json: run under crun */
  size_t config_len;
  uint32_t uid, gid;
  int fuse_root, tty, writable;
  uint16_t rows, cols;
  const unsigned char *tree; /* the tree record (in the frame), or NULL */
  uint32_t tree_len;
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
                 key == STRATA_VM_KEY_ROOT_PATH || key == STRATA_VM_KEY_HOSTNAME ||
                 key == STRATA_VM_KEY_CONFIG;
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
      case STRATA_VM_KEY_CONFIG: s->config = str; s->config_len = n; break;
      case STRATA_VM_KEY_UID: if (n != 4) return snprintf(err, errlen, "bad uid"), -1; s->uid = get32(v); break;
      case STRATA_VM_KEY_GID: if (n != 4) return snprintf(err, errlen, "bad gid"), -1; s->gid = get32(v); break;
      case STRATA_VM_KEY_FUSE_ROOT: s->fuse_root = 1; break;
      case STRATA_VM_KEY_TREE:
        if (n < 56 || (n - 56) % 4) return snprintf(err, errlen, "bad tree record"), -1;
        s->tree = v;
        s->tree_len = n;
        break;
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

/* ---- crun: EXEC with a config.json ---- */

/* The new mount API's structs and flags, by value: <linux/mount.h> collides with glibc's
 * <sys/mount.h>, and these are the same on x86_64 and aarch64. */
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#define A_OPEN_TREE_CLOEXEC O_CLOEXEC
#define A_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define A_RESOLVE_NO_MAGICLINKS 0x02
#define A_RESOLVE_IN_ROOT 0x10
struct a_open_how {
  uint64_t flags, mode, resolve;
};

static void bundle_path(char *out, size_t n, const char *cid, const char *leaf) {
  snprintf(out, n, "%s/b/%s%s%s", run_dir, cid, leaf ? "/" : "", leaf ? leaf : "");
}

/* <run_dir>/b/<cid>/{config.json,rootfs}: the bundle crun runs. */
static int write_bundle(const char *cid, const char *config, size_t len, char *err, size_t errlen) {
  char path[512];
  mkdir(run_dir, 0700);
  snprintf(path, sizeof path, "%s/b", run_dir);
  mkdir(path, 0700);
  bundle_path(path, sizeof path, cid, NULL);
  if (mkdir(path, 0700) < 0) return snprintf(err, errlen, "bundle %.300s: %s", path, strerror(errno)), -1;
  bundle_path(path, sizeof path, cid, "rootfs");
  if (mkdir(path, 0755) < 0) return snprintf(err, errlen, "bundle %.300s: %s", path, strerror(errno)), -1;
  bundle_path(path, sizeof path, cid, "config.json");
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return snprintf(err, errlen, "bundle %.300s: %s", path, strerror(errno)), -1;
  struct iovec iov = {(void *)config, len};
  int r = write_all(fd, &iov, 1);
  close(fd);
  if (r < 0) return snprintf(err, errlen, "writing %.300s: %s", path, strerror(errno)), -1;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
    logf_("removing %s: %s", path, strerror(errno));
  return 0;
}

/* The bundle and what crun made in it (the mount targets in rootfs/); never crosses a mount. */
static void remove_bundle(const char *cid) {
  char path[512];
  bundle_path(path, sizeof path, cid, NULL);
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* `crun delete -f CID`, not waited for (the loop reaps it): a container whose crun was killed
 * would run on, orphaned, and its state would stay. */
static void crun_delete(const char *cid) {
  pid_t pid = fork();
  if (pid != 0) return;
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
  }
  char root[512];
  snprintf(root, sizeof root, "%s/crun", run_dir);
  char *argv[] = {"crun", "--root", root, "delete", "-f", (char *)cid, NULL};
  execv(crun_path, argv);
  _exit(127);
}

/* A finished (or abandoned) process's container: its state, its bundle, its unclaimed root. */
static void forget_container(struct proc *p, int kill_it) {
  closefd(&p->mfd);
  closefd(&p->console_l);
  if (!p->cid[0]) return;
  if (kill_it) crun_delete(p->cid);
  remove_bundle(p->cid);
  p->cid[0] = 0;
}

static void child_crun(const char *cid, int errfd, int stdio[3], int ptyslave, const char *console) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  setsid();
  if (ptyslave >= 0) {
    if (ioctl(ptyslave, TIOCSCTTY, 0) < 0) child_fail(errfd, "TIOCSCTTY", NULL);
    for (int i = 0; i < 3; i++) dup2(ptyslave, i);
  } else {
    for (int i = 0; i < 3; i++) dup2(stdio[i], i);
  }
  char bundle[512], root[512];
  bundle_path(bundle, sizeof bundle, cid, NULL);
  snprintf(root, sizeof root, "%s/crun", run_dir);
  /* --no-pivot: the guest's root is the initramfs, which pivot_root cannot move (crun moves the
   * root over / and chroots instead, inside the container's own mount namespace). */
  char *argv[] = {"crun", "--root", root, "run", "--no-pivot", "--bundle", bundle, "--no-new-keyring",
                  (char *)cid, NULL, NULL, NULL};
  if (console) {
    /* process.terminal: crun makes the pty in the container's own devpts and sends its master */
    argv[8] = "--console-socket";
    argv[9] = (char *)console;
    argv[10] = (char *)cid;
  }
  execv(crun_path, argv);
  child_fail(errfd, "exec", crun_path);
}

/* The console socket crun sends a terminal container's pty master to (--console-socket). */
static int console_listen(const char *cid, char *path, size_t n) {
  bundle_path(path, n, cid, "console.sock");
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return errno = ENAMETOOLONG, -1;
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0) {
    int e = errno;
    close(s);
    return errno = e, -1;
  }
  return s;
}

/* The console socket: crun connects early and sends the pty master later (after the hooks, which
 * need this loop), so the connection is kept in console_l and read when it is readable. The
 * master becomes the process's stdin and stdout. */
static void on_console(struct proc *p) {
  if (!p->console_conn) {
    int c = accept4(p->console_l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return;
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
      close(c);
      return;
    }
    close(p->console_l);
    p->console_l = c;
    p->console_conn = 1;
    return;
  }
  int fd = -1;
  char b[256], cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {b, sizeof b};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t r = recvmsg(p->console_l, &msg, MSG_CMSG_CLOEXEC);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  struct cmsghdr *cm = r >= 0 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  closefd(&p->console_l);
  if (fd < 0) {
    logf_("%s: no pty from crun's console socket", p->cid);
    if (!p->failed) send_frame(STRATA_VM_FRAME_EOF, chan(p->id, STRATA_VM_KIND_STDOUT), NULL, 0);
    return;
  }
  struct winsize ws = {p->rows, p->cols, 0, 0};
  ioctl(fd, TIOCSWINSZ, &ws);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  p->out[0] = fd;
  p->in = fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* A connection on the hook socket: "<container id>\n" from `strata-agent --hook`; the answer is
 * "ok <rootfs> <writable>\n" with the detached root mount (SCM_RIGHTS), or "error <why>\n". */
static void on_hook_conn(void) {
  int c = accept4(hook_listener, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) return;
  struct ucred cred;
  socklen_t cl = sizeof cred;
  char req[128], reply[640];
  size_t got = 0;
  int n;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
    n = snprintf(reply, sizeof reply, "error only root may attach a root\n");
    goto answer;
  }
  while (got < sizeof req - 1 && !memchr(req, '\n', got)) {
    struct pollfd pf = {c, POLLIN, 0};
    if (poll(&pf, 1, 2000) <= 0) break;
    ssize_t r = read(c, req + got, sizeof req - 1 - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  req[got] = 0;
  req[strcspn(req, "\n")] = 0;
  struct proc *pr = NULL;
  for (int i = 0; i < MAX_PROCS && req[0]; i++)
    if (procs[i].used && !procs[i].failed && procs[i].mfd >= 0 && !strcmp(procs[i].cid, req)) pr = &procs[i];
  if (!pr) {
    n = snprintf(reply, sizeof reply, "error no container %.64s waits for its root\n", req);
    goto answer;
  }
  n = snprintf(reply, sizeof reply, "ok %s/b/%s/rootfs %d\n", run_dir, pr->cid, pr->writable);
  {
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {reply, (size_t)n};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pr->mfd, sizeof(int));
    if (sendmsg(c, &msg, MSG_NOSIGNAL) < 0) logf_("handing %s its root: %s", pr->cid, strerror(errno));
    closefd(&pr->mfd); /* once: the hook owns it now */
  }
  close(c);
  return;
answer:
  if (n > 0) {
    ssize_t w = send(c, reply, (size_t)n, MSG_NOSIGNAL);
    (void)w;
  }
  close(c);
}

static int hook_listen(void) {
  char path[512];
  mkdir(run_dir, 0700);
  snprintf(path, sizeof path, "%s/hook.sock", run_dir);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  unlink(path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
    logf_("hook socket %s: %s", path, strerror(errno));
    close(s);
    return -1;
  }
  return s;
}

/* ---- --hook: crun's createContainer hook, in the container's mount namespace ---- */

static void hook_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "strata-agent --hook: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* strata-hook's attach sequence, shared (native/common/attach.h). */
#define ATTACH_DIE(...) hook_die(__VA_ARGS__)
#include "../common/attach.h"

/* A writable root: the image as the lower layer of an overlay whose upper is a tmpfs that lives as
 * long as the container's mounts. Built in the container's mount namespace (the agent cannot: the
 * overlay's lookups on the FUSE lower would wait on the agent itself). */
static int hook_overlay(int mfd, const char *bundle) {
  char lower[600], rw[600], upper[620], work[620];
  snprintf(lower, sizeof lower, "%s/lower", bundle);
  snprintf(rw, sizeof rw, "%s/rw", bundle);
  mkdir(lower, 0700);
  mkdir(rw, 0700);
  if (syscall(__NR_move_mount, mfd, "", AT_FDCWD, lower, A_MOVE_MOUNT_F_EMPTY_PATH) < 0)
    hook_die("attaching the image at %s: %s", lower, strerror(errno));
  if (mount("tmpfs", rw, "tmpfs", 0, "mode=0755") < 0) hook_die("tmpfs upper: %s", strerror(errno));
  snprintf(upper, sizeof upper, "%s/upper", rw);
  snprintf(work, sizeof work, "%s/work", rw);
  mkdir(upper, 0755);
  mkdir(work, 0755);
  int fs = syscall(__NR_fsopen, "overlay", A_FSOPEN_CLOEXEC);
  if (fs < 0) hook_die("fsopen overlay: %s", strerror(errno));
  int r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "lowerdir", lower);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "upperdir", upper);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_SET_STRING, "workdir", work);
  if (!r) r = fsconfig_(fs, A_FSCONFIG_CMD_CREATE, NULL, NULL);
  if (r) hook_die("overlay root over %s: %s", lower, strerror(errno));
  int ofd = syscall(__NR_fsmount, fs, A_FSMOUNT_CLOEXEC, 0);
  if (ofd < 0) hook_die("fsmount overlay: %s", strerror(errno));
  close(fs);
  /* The overlay holds private clones of its layers: the paths can go. */
  umount2(lower, MNT_DETACH);
  umount2(rw, MNT_DETACH);
  return ofd;
}

static int hook_main(const char *sock) {
  static char state[65536];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(0, state + len, sizeof state - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len == sizeof state - 1) hook_die("the OCI state exceeds %zu bytes", sizeof state - 1);
  }
  state[len] = 0;
  /* The container id: "id":"<id>" (crun writes it compact; the agent names containers
   * strata-<session>-<n>, so no escapes). */
  char *k = strstr(state, "\"id\"");
  char cid[64];
  size_t cl = 0;
  if (k) {
    k += 4;
    while (*k == ' ' || *k == ':') k++;
    if (*k == '"')
      for (k++; *k && *k != '"' && cl < sizeof cid - 1; k++) cid[cl++] = *k;
  }
  cid[cl] = 0;
  if (!cl) hook_die("no container id in the OCI state");
  int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
  if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0) hook_die("connecting to %s: %s", sock, strerror(errno));
  char req[80];
  int rn = snprintf(req, sizeof req, "%s\n", cid);
  if (write(c, req, (size_t)rn) != rn) hook_die("writing to %s: %s", sock, strerror(errno));
  char reply[640];
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {reply, sizeof reply - 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct pollfd pf = {c, POLLIN, 0};
  if (poll(&pf, 1, 30000) <= 0) hook_die("the agent did not answer");
  ssize_t got = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
  if (got <= 0) hook_die("the agent closed the hook connection");
  reply[got] = 0;
  reply[strcspn(reply, "\n")] = 0;
  int fd = -1;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  if (strncmp(reply, "ok ", 3)) hook_die("%s", strncmp(reply, "error ", 6) ? reply : reply + 6);
  char rootfs[512];
  int writable = 0;
  if (fd < 0 || sscanf(reply + 3, "%511s %d", rootfs, &writable) != 2) hook_die("a malformed answer: %s", reply);
  if (writable) {
    char bundle[512];
    snprintf(bundle, sizeof bundle, "%s", rootfs);
    char *slash = strrchr(bundle, '/');
    if (!slash) hook_die("a malformed rootfs %s", rootfs);
    *slash = 0;
    int ofd = hook_overlay(fd, bundle);
    close(fd);
    fd = ofd;
  }
  attach_image(fd, rootfs);
  close(fd);
  return 0;
}

/* The kernel caps a FUSE mount's readahead at 128 KiB whatever INIT said (src/mount/fuse/
 * readahead.ts): raised once INIT's reply went in (which lowers it to max_readahead), so that a
 * binary's pages come in READs of up to max_pages, not 128 KiB round trips to the host. */
static void raise_readahead(struct proc *p) {
  char path[80];
  snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", p->bdi);
  p->bdi[0] = 0;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t w = write(fd, "2048\n", 5); /* the host's window (READAHEAD_KIB, src/mount/serve.ts) */
  (void)w;
  close(fd);
}

/* ---- the guest-side tree cache ---- */

static struct tree *find_tree(uint32_t id) {
  for (int i = 0; i < MAX_TREES; i++)
    if (trees[i].buf && trees[i].id == id) return &trees[i];
  return NULL;
}

/* A TREE frame: {u32 id, u32 total, u32 offset, u32 0} + the next bytes of that tree index. A
 * tree that breaks the rules is dropped: the processes that name it are relayed to the host. */
static void on_tree(const unsigned char *p, size_t len) {
  if (len < 16) return;
  uint32_t id = get32(p), total = get32(p + 4), off = get32(p + 8);
  size_t n = len - 16;
  struct tree *t = find_tree(id);
  if (off == 0 && !t) {
    if (id == 0 || total == 0 || total > STRATA_VM_TREE_MAX_BYTES || tree_bytes + total > STRATA_VM_TREE_BUDGET_BYTES) {
      logf_("tree %u of %u bytes refused (%zu bytes held)", id, total, tree_bytes);
      return;
    }
    for (int i = 0; i < MAX_TREES && !t; i++)
      if (!trees[i].buf) t = &trees[i];
    if (!t || !(t->buf = malloc(total))) {
      logf_("no room for tree %u", id);
      t = NULL;
      return;
    }
    t->id = id;
    t->len = total;
    t->got = 0;
    tree_bytes += total;
  }
  if (!t || t->got == t->len) return; /* unknown, refused, or already whole */
  if (off != t->got || total != t->len || n > t->len - t->got) {
    logf_("tree %u: a chunk out of order: dropped", id);
    tree_bytes -= t->len;
    free(t->buf);
    memset(t, 0, sizeof *t);
    return;
  }
  memcpy(t->buf + t->got, p + 16, n);
  t->got += n;
}

/* The fast path an EXEC's tree record names; NULL (every request relayed) when the tree is not
 * here whole or the record does not fit it. */
static struct fast_path *exec_fast_path(const struct spec *s) {
  if (!s->tree) return NULL;
  const unsigned char *r = s->tree;
  struct tree *t = find_tree(get32(r));
  if (!t || t->got != t->len) {
    logf_("tree %u is not here: relaying every request", get32(r));
    return NULL;
  }
  uint32_t g[FPG_COUNT];
  for (int i = 0; i < FPG_COUNT; i++) g[i] = get32(r + 16 + 4 * i);
  size_t ndefer = (s->tree_len - 56) / 4;
  uint32_t *defer = calloc(ndefer + 1, sizeof *defer);
  if (!defer) return NULL;
  for (size_t i = 0; i < ndefer; i++) defer[i] = get32(r + 56 + 4 * i);
  struct fast_path *fp = agent_fp_create(t->buf, t->len, g, defer, ndefer, get32(r + 4), get32(r + 8), get32(r + 12) & 1);
  free(defer);
  if (!fp) logf_("tree %u: its geometry lies outside it: relaying every request", t->id);
  return fp;
}

/* A request read from a process's /dev/fuse: answered here when its fast path can (FORGETs need
 * no answer: tree nodes are never freed), else relayed to the host. */
static void on_fuse_request(struct proc *p, const unsigned char *req, size_t n) {
  if (n >= 40 && get32(req + 4) == 26 /* INIT */) p->init_unique = get64(req + 8);
  if (p->fp && n >= 40) {
    uint32_t op = get32(req + 4);
    if (op == 2 /* FORGET */ || op == 42 /* BATCH_FORGET */) return;
    size_t r = agent_fp_answer(p->fp, req, n, obuf, OBUF_CAP);
    if (r > 0) {
      ssize_t w = write(p->fuse, obuf, r);
      (void)w; /* ENOENT: interrupted meanwhile */
      return;
    }
  }
  send_frame(STRATA_VM_FRAME_DATA, chan(p->id, STRATA_VM_KIND_FUSE), req, n);
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
  int master = -1, slave = -1, console_l = -1;
  char bdi[32] = "", console[512] = "";
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
    /* Without a request: DONT_SYNC takes the root's attributes as they are. */
    struct statx stx;
    if (statx(mfd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) == 0)
      snprintf(bdi, sizeof bdi, "%u:%u", stx.stx_dev_major, stx.stx_dev_minor);
  }
  char cid[64] = "";
  if (s.config) {
    /* Under crun: the container's bundle; the root waits for the hook. */
    if (!s.fuse_root) {
      send_error(ch, "a config without a FUSE root");
      goto fail;
    }
    snprintf(cid, sizeof cid, "strata-%08x-%u", session, id);
    if (write_bundle(cid, s.config, s.config_len, err, sizeof err) < 0) {
      send_error(ch, "%s", err);
      remove_bundle(cid);
      cid[0] = 0;
      goto fail;
    }
    /* -v sources: the host's virtio-fs share, mounted on first use (virtiofs is not FUSE over the
     * stream: mounting it here cannot wait on this loop). */
    static int shares_mounted;
    if (!shares_mounted && init_mode && strstr(s.config, "\"" STRATA_VM_GUEST_SHARES_DIR "/")) {
      mkdir(STRATA_VM_GUEST_SHARES_DIR, 0700);
      if (mount(STRATA_VM_GUEST_SHARES_TAG, STRATA_VM_GUEST_SHARES_DIR, "virtiofs", MS_NOSUID | MS_NODEV, NULL) < 0) {
        send_error(ch, "mounting the virtio-fs share %s: %s", STRATA_VM_GUEST_SHARES_TAG, strerror(errno));
        goto fail;
      }
      shares_mounted = 1;
    }
    if (hook_listener < 0 && (hook_listener = hook_listen()) < 0) {
      send_error(ch, "no hook socket in %s", run_dir);
      goto fail;
    }
  }
  if (pipe2(ep, O_CLOEXEC) < 0) goto syserr;
  if (s.tty && cid[0]) {
    /* crun's own output (its errors, the hook's) on stderr; the container's on the pty. */
    if (pipe2(pe, O_CLOEXEC) < 0 || (pi[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) goto syserr;
    if ((console_l = console_listen(cid, console, sizeof console)) < 0) goto syserr;
  } else if (s.tty) {
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
    int stdio[3] = {pi[0], console[0] ? pe[1] : po[1], pe[1]};
    if (cid[0]) child_crun(cid, ep[1], stdio, slave, console[0] ? console : NULL);
    child_exec(&s, mfd, ep[1], stdio, slave);
  }
  memset(pr, 0, sizeof *pr);
  pr->used = 1;
  pr->id = id;
  pr->mfd = -1;
  if (cid[0]) {
    memcpy(pr->cid, cid, sizeof cid);
    pr->mfd = mfd; /* for the hook */
    pr->writable = s.writable;
    mfd = -1;
  }
  pr->pid = pid;
  pr->credit[0] = pr->credit[1] = STRATA_VM_INITIAL_CREDIT;
  pr->fuse = devfd;
  if (devfd >= 0) pr->fp = exec_fast_path(&s);
  memcpy(pr->bdi, bdi, sizeof bdi);
  close(ep[1]);
  pr->errp = ep[0];
  pr->tty = s.tty;
  pr->rows = s.rows;
  pr->cols = s.cols;
  pr->console_l = -1;
  if (console[0]) {
    close(pe[1]);
    close(pi[0]);
    pr->out[0] = -1; /* until crun sends the pty */
    pr->out[1] = pe[0];
    pr->in = -1;
    pr->console_l = console_l;
    console_l = -1;
  } else if (s.tty) {
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
  if (cid[0]) remove_bundle(cid);
  if (devfd >= 0) close(devfd);
  if (mfd >= 0) close(mfd);
  int all[] = {ep[0], ep[1], po[0], po[1], pe[0], pe[1], pi[0], pi[1], master, slave, console_l};
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
    if (type == STRATA_VM_FRAME_TREE) on_tree(p, len);
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
        if (pr->bdi[0] && len >= 16 && get64(p + 8) == pr->init_unique) raise_readahead(pr);
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
      if (len == 4 && pr->pid > 0 && !pr->exited) {
        int signo = (int)get32(p);
        /* crun passes every signal on to the container but SIGKILL, which ends crun alone: the
         * container goes with `crun delete -f`. */
        kill(pr->pid, signo);
        if (signo == SIGKILL && pr->cid[0]) crun_delete(pr->cid);
      }
      break;
    case STRATA_VM_FRAME_RESIZE:
      if (len == 4 && pr->tty) {
        pr->rows = get16(p);
        pr->cols = get16(p + 2);
        struct winsize ws = {pr->rows, pr->cols, 0, 0};
        if (pr->out[0] >= 0) ioctl(pr->out[0], TIOCSWINSZ, &ws);
      }
      break;
    default: break;
  }
}

static void on_hello(const unsigned char *p, size_t len) {
  if (len < 16) return;
  uint64_t nonce = get64(p + 8);
  uint32_t next = (uint32_t)nonce ? (uint32_t)nonce : 1;
  if (!have_session || next != session) {
    if (have_session) {
      logf_("a new session: ending the processes of the last one");
      kill_all();
    }
    free_trees(); /* tree ids are the host's, per session */
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

/* A virtio vsock device (virtio device id 19) is present. /dev/vsock alone says only that the
 * vsock module is loaded (the image carries it for vfkit): under qemu without a vsock device a
 * listener there would wait forever. */
static int have_virtio_vsock(void) {
  DIR *d = opendir("/sys/bus/virtio/devices");
  struct dirent *e;
  int found = 0;
  while (d && !found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], id[32] = {0};
    snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, id, sizeof id - 1);
    close(fd);
    found = n > 0 && strtol(id, NULL, 16) == 19;
  }
  if (d) closedir(d);
  return found;
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
    if (tries > 0 && access("/dev/vsock", F_OK) == 0 && have_virtio_vsock() &&
        (vsock_listener = vsock_listen()) >= 0) {
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
      if (p->console_l >= 0) {
        /* crun ended before it sent the pty: no output will come on stdout */
        closefd(&p->console_l);
        if (!p->failed) send_frame(STRATA_VM_FRAME_EOF, chan(p->id, STRATA_VM_KIND_STDOUT), NULL, 0);
      }
      /* crun killed: its container would run on (and hold the stdio pipes open) */
      if (p->cid[0] && WIFSIGNALED(st)) crun_delete(p->cid);
      if (p->failed && p->out[0] < 0 && p->out[1] < 0 && p->errp < 0) {
        closefd(&p->in);
        drop_fuse(p);
        forget_container(p, 1);
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
    if (!p->tty || p->out[0] < 0) closefd(&p->in);
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
    else if (!strcmp(argv[i], "--hook") && i + 1 < argc) return hook_main(argv[i + 1]);
    else if (!strcmp(argv[i], "--run-dir") && i + 1 < argc) run_dir = argv[++i];
    else if (!strcmp(argv[i], "--crun") && i + 1 < argc) crun_path = argv[++i];
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
    fprintf(stderr, "usage: strata-agent --init | --stdio [--run-dir DIR] [--crun PATH] | --hook SOCKET\n");
    return 2;
  }
  rbuf = malloc(HDR + MAXP + IO_CHUNK);
  fbuf = malloc(FUSE_BUF);
  obuf = malloc(OBUF_CAP);
  if (!rbuf || !fbuf || !obuf) return 1;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  struct pollfd pf[3 + MAX_PROCS * 6];
  struct {
    struct proc *p;
    int what; /* 0 out, 1 err, 2 stdin, 3 errpipe, 4 fuse, 5 console socket */
  } who[3 + MAX_PROCS * 6];
  for (;;) {
    int n = 0;
    pf[n++] = (struct pollfd){sfd, POLLIN, 0};
    pf[n++] = (struct pollfd){sigfd, POLLIN, 0};
    pf[n++] = (struct pollfd){hook_listener, POLLIN, 0};
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
      if (p->console_l >= 0) {
        who[n].p = p, who[n].what = 5;
        pf[n++] = (struct pollfd){p->console_l, POLLIN, 0};
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
    if (pf[2].revents) on_hook_conn();
    for (int i = 3; i < n; i++) {
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
      } else if (w == 5 && p->console_l == pf[i].fd) {
        on_console(p);
      } else if (w == 4 && p->fuse == pf[i].fd) {
        /* Several at a time: most are answered here without waiting for anything. */
        for (int k = 0; k < 64 && p->fuse >= 0; k++) {
          ssize_t r = read(p->fuse, fbuf, FUSE_BUF);
          if (r > 0) {
            on_fuse_request(p, fbuf, (size_t)r);
            continue;
          }
          if (r < 0 && errno != EAGAIN && errno != EINTR && errno != ENOENT) drop_fuse(p);
          break;
        }
      }
    }
    /* stdin that arrived this turn */
    for (int i = 0; i < MAX_PROCS; i++)
      if (procs[i].used && (procs[i].inlen > 0 || procs[i].in_eof)) flush_stdin(&procs[i]);
  }
}
