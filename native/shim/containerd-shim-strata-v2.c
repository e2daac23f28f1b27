/*
 * containerd-shim-strata-v2: containerd's runtime v2 shim binary for io.containerd.strata.v2.
 * Mechanism only. The Task service itself lives in the strata daemon (src/shim/), serving every
 * task over ttrpc on the daemon socket; this program only does what containerd asks of a shim
 * binary (docs/architecture.md#containerd-shim):
 *
 *   containerd-shim-strata-v2 -namespace NS -address A -publish-binary P -id ID [-debug] start
 *     cwd is the bundle; env has TTRPC_ADDRESS. Makes sure the daemon runs (starting it, as the
 *     hook does, when nothing answers on $STRATA_SOCKET), registers the task
 *     (strata.shim.v1.Shim/Register: namespace, id, bundle, TTRPC_ADDRESS), writes
 *     <bundle>/address and prints "unix://SOCKET". Nothing else reaches stdout or stderr on
 *     success: containerd reads both as the address.
 *   containerd-shim-strata-v2 -namespace NS -id ID -bundle B ... delete
 *     Asks the daemon to clean up (strata.shim.v1.Shim/Cleanup: idempotent; a live task is killed)
 *     and prints its DeleteResponse (protobuf), which carries the real exit status when the daemon
 *     knows it. With no daemon running it starts one (runc state may be left to clean up); with
 *     $STRATA_SHIM_NO_START set it only unmounts <bundle>/rootfs and prints exit status 137.
 *
 * ttrpc by hand: a 10-byte header (u32 BE length, u32 BE stream id, u8 type, u8 flags) and a
 * protobuf body; the messages here hold only strings, so encoding is a few lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "strata-contract.h"

#ifndef STRATA_NODE
#define STRATA_NODE "/usr/bin/node"
#endif

#define MAX_MESSAGE (4 << 20)
#define START_TIMEOUT_MS 4000 /* containerd gives `start` 5 s */
#define IO_TIMEOUT_MS 4000
#define UNKNOWN_EXIT_STATUS 137
#define EXIT_IDLE_S "10"

static void die(const char *fmt, ...) {
  va_list ap;
  fputs("containerd-shim-strata-v2: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static const char *socket_path(void) {
  const char *p = getenv(STRATA_SOCKET_ENV);
  return p && *p ? p : STRATA_SOCKET_DEFAULT;
}

/* ---- protobuf, strings only ---- */

struct buf {
  unsigned char *data;
  size_t len, cap;
};

static void put(struct buf *b, const void *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) die("out of memory");
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void put_varint(struct buf *b, uint64_t v) {
  unsigned char c[10];
  size_t n = 0;
  do {
    c[n] = v & 0x7f;
    v >>= 7;
    if (v) c[n] |= 0x80;
    n++;
  } while (v);
  put(b, c, n);
}

static void put_bytes(struct buf *b, int field, const void *s, size_t n) {
  if (n == 0) return; /* proto3: empty is absent */
  put_varint(b, ((uint64_t)field << 3) | 2);
  put_varint(b, n);
  put(b, s, n);
}

static void put_string(struct buf *b, int field, const char *s) {
  if (s) put_bytes(b, field, s, strlen(s));
}

static void put_uint(struct buf *b, int field, uint64_t v) {
  if (v == 0) return;
  put_varint(b, ((uint64_t)field << 3) | 0);
  put_varint(b, v);
}

/* Reads a varint at *p (< end); 0 on a malformed one. */
static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    unsigned char c = *(*p)++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

/* ---- the daemon ---- */

static int try_connect(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) die("socket path too long: %s", path);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = (IO_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

/* The daemon's entry, dist/src/daemon/main.js, from our real path native/build/Release/<us>. */
static void daemon_main_js(char *out, size_t size) {
  char exe[PATH_MAX], root[PATH_MAX], up[PATH_MAX + 16];
  if (!realpath("/proc/self/exe", exe)) die("cannot resolve /proc/self/exe: %s", strerror(errno));
  snprintf(up, sizeof(up), "%s/../../..", dirname(exe));
  if (!realpath(up, root)) die("cannot resolve %s: %s", up, strerror(errno));
  snprintf(out, size, "%s/dist/src/daemon/main.js", root);
  if (access(out, F_OK) < 0) die("%s is missing; run `npm run build`", out);
}

/* Starts the daemon (setsid, cwd /, stdio /dev/null, double fork) and waits for READY=1. */
static void start_daemon(void) {
  char main_js[PATH_MAX + 32];
  daemon_main_js(main_js, sizeof(main_js));
  char *argv[] = {STRATA_NODE, main_js, "--socket", (char *)socket_path(), "--exit-idle", EXIT_IDLE_S, NULL};
  char notify[64];
  snprintf(notify, sizeof(notify), "@strata-shim-notify-%d-%ld", (int)getpid(), (long)time(NULL));
  int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t nlen = strlen(notify);
  memcpy(addr.sun_path + 1, notify + 1, nlen - 1);
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + nlen);
  if (ns < 0 || bind(ns, (struct sockaddr *)&addr, alen) < 0) die("binding %s: %s", notify, strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    if (chdir("/") < 0) _exit(127);
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(nul, 2);
    setenv("NOTIFY_SOCKET", notify, 1);
    if (fork() != 0) _exit(0);
    execv(argv[0], argv);
    argv[0] = "node"; /* the node baked in at build time is gone: any on $PATH */
    execvp(argv[0], argv);
    _exit(127);
  }
  waitpid(pid, NULL, 0);
  struct pollfd p = {.fd = ns, .events = POLLIN};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long left = START_TIMEOUT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0) die("the strata daemon did not report ready within %d ms; see its log", START_TIMEOUT_MS);
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char msg[512];
    ssize_t n = recv(ns, msg, sizeof(msg) - 1, 0);
    if (n <= 0) continue;
    msg[n] = 0;
    if (strstr(msg, "READY=1")) break;
    if (strstr(msg, "ERRNO=")) {
      char *status = strstr(msg, "STATUS=");
      if (status) {
        status += 7;
        status[strcspn(status, "\n")] = 0;
      }
      die("the strata daemon failed to start: %s", status ? status : "see its log");
    }
  }
  close(ns);
}

/* A connection to the daemon; starts it when `start` and nothing answers. -1 when none runs. */
static int connect_daemon(int start) {
  for (int attempt = 1;; attempt++) {
    int fd = try_connect(socket_path());
    if (fd >= 0) return fd;
    int gone = errno == ENOENT || errno == ECONNREFUSED;
    if (!gone) die("cannot reach the strata daemon at %s: %s", socket_path(), strerror(errno));
    if (!start) return -1;
    if (attempt > 3) die("cannot reach the strata daemon at %s: %s", socket_path(), strerror(errno));
    start_daemon();
  }
}

static void write_all(int fd, const void *data, size_t n) {
  const unsigned char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("writing to the strata daemon: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, void *data, size_t n) {
  unsigned char *p = data;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("reading from the strata daemon: %s", strerror(errno));
    if (r == 0) die("the strata daemon closed the connection without answering");
    p += r;
    n -= (size_t)r;
  }
}

/*
 * One ttrpc call on `fd`: the response payload (malloc'd, *len bytes). A non-OK status dies with
 * the daemon's message.
 */
static unsigned char *call(int fd, const char *ns, const char *method, const struct buf *payload, size_t *len) {
  struct buf req = {0}, kv = {0};
  put_string(&req, 1, "strata.shim.v1.Shim");
  put_string(&req, 2, method);
  put_bytes(&req, 3, payload->data, payload->len);
  put_uint(&req, 4, (uint64_t)IO_TIMEOUT_MS * 1000000);
  put_string(&kv, 1, "containerd-namespace-ttrpc");
  put_string(&kv, 2, ns);
  put_bytes(&req, 5, kv.data, kv.len);
  unsigned char head[10];
  uint32_t n = (uint32_t)req.len, id = 1;
  head[0] = n >> 24, head[1] = n >> 16, head[2] = n >> 8, head[3] = n;
  head[4] = id >> 24, head[5] = id >> 16, head[6] = id >> 8, head[7] = id;
  head[8] = 1, head[9] = 0;
  write_all(fd, head, sizeof(head));
  write_all(fd, req.data, req.len);
  free(req.data);
  free(kv.data);

  read_all(fd, head, sizeof(head));
  uint32_t blen = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  if (blen > MAX_MESSAGE) die("the strata daemon's answer is too large (%u bytes)", blen);
  unsigned char *body = malloc(blen ? blen : 1);
  if (!body) die("out of memory");
  read_all(fd, body, blen);
  const unsigned char *p = body, *end = body + blen;
  uint64_t code = 0;
  char message[1024] = "";
  unsigned char *out = NULL;
  *len = 0;
  while (p < end) {
    uint64_t key, l;
    if (!get_varint(&p, end, &key)) die("malformed answer from the strata daemon");
    if ((key & 7) == 0) {
      if (!get_varint(&p, end, &l)) die("malformed answer from the strata daemon");
      continue;
    }
    if ((key & 7) != 2 || !get_varint(&p, end, &l) || l > (uint64_t)(end - p)) die("malformed answer from the strata daemon");
    if (key >> 3 == 1) { /* google.rpc.Status */
      const unsigned char *s = p, *se = p + l;
      while (s < se) {
        uint64_t k, v;
        if (!get_varint(&s, se, &k)) break;
        if ((k & 7) == 0) {
          if (!get_varint(&s, se, &v)) break;
          if (k >> 3 == 1) code = v;
        } else if ((k & 7) == 2) {
          if (!get_varint(&s, se, &v) || v > (uint64_t)(se - s)) break;
          if (k >> 3 == 2) snprintf(message, sizeof(message), "%.*s", (int)v, (const char *)s);
          s += v;
        } else
          break;
      }
    } else if (key >> 3 == 2) {
      out = malloc(l ? l : 1);
      if (!out) die("out of memory");
      memcpy(out, p, l);
      *len = l;
    }
    p += l;
  }
  free(body);
  if (code != 0) die("%s: %s (status %llu)", method, message, (unsigned long long)code);
  return out;
}

/* ---- commands ---- */

static void write_address(const char *address) {
  int fd = open("address.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("writing the address file in the bundle: %s", strerror(errno));
  write_all(fd, address, strlen(address));
  if (fsync(fd) < 0 || close(fd) < 0 || rename("address.tmp", "address") < 0)
    die("writing the address file in the bundle: %s", strerror(errno));
}

static int cmd_start(const char *ns, const char *id, const char *address) {
  char bundle[PATH_MAX];
  if (!getcwd(bundle, sizeof(bundle))) die("getcwd: %s", strerror(errno));
  int fd = connect_daemon(1);
  struct buf reg = {0};
  put_string(&reg, 1, ns);
  put_string(&reg, 2, id);
  put_string(&reg, 3, bundle);
  put_string(&reg, 4, getenv("TTRPC_ADDRESS"));
  put_string(&reg, 5, address);
  size_t len;
  free(call(fd, ns, "Register", &reg, &len));
  close(fd);
  char addr[PATH_MAX + 16];
  snprintf(addr, sizeof(addr), "unix://%s", socket_path());
  write_address(addr);
  fputs(addr, stdout);
  return 0;
}

static int cmd_delete(const char *ns, const char *id, const char *bundle) {
  char cwd[PATH_MAX];
  if (!bundle || !*bundle) bundle = getcwd(cwd, sizeof(cwd));
  /* A daemon that is gone (killed, or idle and left) may have left runc state behind: start one to
   * clean up; only when none can run is the fallback below the answer. */
  int fd = getenv("STRATA_SHIM_NO_START") ? connect_daemon(0) : connect_daemon(1);
  if (fd >= 0) {
    struct buf req = {0};
    put_string(&req, 1, ns);
    put_string(&req, 2, id);
    put_string(&req, 3, bundle);
    size_t len;
    unsigned char *out = call(fd, ns, "Cleanup", &req, &len);
    if (len) fwrite(out, 1, len, stdout);
    return 0;
  }
  /* No daemon: nothing runs for this task any more. What it may have left is containerd's mount. */
  if (bundle) {
    char rootfs[PATH_MAX + 8];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", bundle);
    umount2(rootfs, MNT_DETACH);
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct buf stamp = {0}, res = {0};
  put_uint(&stamp, 1, (uint64_t)now.tv_sec);
  put_uint(&stamp, 2, (uint64_t)now.tv_nsec);
  put_uint(&res, 2, UNKNOWN_EXIT_STATUS);
  put_bytes(&res, 3, stamp.data, stamp.len);
  fwrite(res.data, 1, res.len, stdout);
  return 0;
}

int main(int argc, char **argv) {
  const char *ns = "default", *id = NULL, *bundle = NULL, *address = "", *verb = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      verb = a;
      continue;
    }
    while (*a == '-') a++;
    const char *eq = strchr(a, '=');
    size_t klen = eq ? (size_t)(eq - a) : strlen(a);
    const char *value = eq ? eq + 1 : NULL;
#define KEY(k) (klen == strlen(k) && strncmp(a, k, klen) == 0)
    if (KEY("debug")) continue;
    if (KEY("v") || KEY("version")) {
      printf("containerd-shim-strata-v2 (strata)\n");
      return 0;
    }
    if (!value) {
      if (i + 1 >= argc) die("flag -%.*s needs a value", (int)klen, a);
      value = argv[++i];
    }
    if (KEY("namespace")) ns = value;
    else if (KEY("id")) id = value;
    else if (KEY("bundle")) bundle = value;
    else if (KEY("address")) address = value;
    /* -publish-binary, -socket and others are not needed: events go through the daemon */
#undef KEY
  }
  if (!verb) die("usage: containerd-shim-strata-v2 -namespace NS -id ID [-bundle B] start|delete");
  if (!id || !*id) die("-id is required");
  if (strcmp(verb, "start") == 0) return cmd_start(ns, id, address);
  if (strcmp(verb, "delete") == 0) return cmd_delete(ns, id, bundle);
  die("unknown command %s (start or delete)", verb);
}
