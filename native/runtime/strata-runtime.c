/*
 * strata-runtime: a runc-compatible OCI runtime command line for `podman --runtime`, conmon,
 * buildah and containerd's runc shim (BinaryName). Mechanism only: it parses runc's global flags
 * and verb, and execs the real runtime (crun or runc) with the same arguments, so output, exit
 * codes and log format are the real runtime's. Only `create` and `run` talk to the strata daemon
 * first: the daemon decides whether it serves the bundle's image from its store and, if so,
 * rewrites the bundle's config.json (root and createContainer hook) and prepares the root; then
 * the runtime runs the bundle as it now stands (docs/architecture.md#strata-runtime).
 *
 *   strata-runtime [--root D] [--log F] [--log-format text|json] [--debug] [--systemd-cgroup] VERB ...
 *
 * The real runtime: $STRATA_OCI_RUNTIME, else `runtime = NAME|PATH` in the config file
 * ($STRATA_RUNTIME_CONF, else /etc/strata/runtime.conf), else crun where it works on this host
 * (the cgroup2 namespace workaround is possible, and crun can load its eBPF device filter, which
 * needs CAP_SYS_RESOURCE), else runc. The config file may also set `socket = PATH` (the daemon's
 * socket; $STRATA_SOCKET wins), `log = FILE` (where the one-line notes go when the caller
 * passed no --log) and `import = first-use|never` ($STRATA_RUNTIME_IMPORT wins): with first-use,
 * the daemon imports an image strata lacks from podman's containers/storage on first use. crun on a v1+v2 hybrid cgroup host runs, for every verb, in a mount namespace
 * of its own whose /sys/fs/cgroup is a pure cgroup2 mount (src/run/cgroup-ns.ts explains why).
 *
 * The daemon conversation is the run protocol of src/run/protocol.ts ("<verb> <length>\n" and
 * NUL-terminated fields): "runtime" [version, verb, id, bundle] -> "serve" [note] | "pass"
 * [reason] | "exit" [code, message]. The daemon watches this process (its pid stays the
 * runtime's across exec) and releases a prepared root the runtime never attached. No daemon: the
 * bundle runs unchanged with one note, unless its config.json names a strata image
 * (org.strata.image), which only the daemon can serve: then it fails naming the socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "strata-contract.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.1.0"
#endif
#define FAILED STRATA_RUNTIME_FAILED /* runc's exit code for any error */
#define CGROUP2_MAGIC 0x63677270
#define MAX_CONFIG (16 << 20)
#define MAX_CONTAINERS_JSON (64 << 20) /* as runtime-service.ts */
#define IMAGE_ANNOTATION "\"org.strata.image\""

static const char *log_file, *log_format = "text";
static const char *conf_log, *conf_socket, *conf_runtime, *conf_import;

/* ---- notes and errors, in the caller's log format ---- */

static void json_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
}

/* One line as runc (logrus) writes it: text `time="..." level=L msg="..."` or json. */
static void log_line(FILE *f, const char *level, const char *msg) {
  char ts[40];
  time_t now = time(NULL);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  if (strcmp(log_format, "json") == 0) {
    fprintf(f, "{\"level\":\"%s\",\"msg\":\"", level);
    json_escape(f, msg);
    fprintf(f, "\",\"time\":\"%s\"}\n", ts);
  } else {
    fprintf(f, "time=\"%s\" level=%s msg=\"", ts, level);
    json_escape(f, msg);
    fputs("\"\n", f);
  }
}

/* A note (info): into --log, else the config's log file, else syslog. Never on stdout/stderr:
 * during create they are the container's stdio. */
static void note(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  const char *path = log_file ? log_file : conf_log;
  FILE *f = path ? fopen(path, "ae") : NULL;
  if (f) {
    log_line(f, "info", msg);
    fclose(f);
    return;
  }
  openlog("strata-runtime", LOG_PID, LOG_USER);
  syslog(LOG_INFO, "%s", msg);
  closelog();
}

/* An error: into --log if given (where runc writes its own), and on stderr as runc does without
 * one; exit 1. */
static void die(const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  FILE *f = log_file ? fopen(log_file, "ae") : NULL;
  if (f) {
    log_line(f, "error", msg);
    fclose(f);
  }
  fprintf(stderr, "strata-runtime: %s\n", msg);
  exit(FAILED);
}

/* ---- configuration ---- */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
  return s;
}

/* `key = value` lines; '#' starts a comment. A missing default file is fine, a named one not. */
static void read_conf(void) {
  const char *path = getenv(STRATA_RUNTIME_CONF_ENV);
  int named = path && *path;
  if (!named) path = STRATA_RUNTIME_CONF_DEFAULT;
  FILE *f = fopen(path, "re");
  if (!f) {
    if (named || errno != ENOENT) die("cannot read %s: %s", path, strerror(errno));
    return;
  }
  char line[PATH_MAX + 64];
  int n = 0;
  while (fgets(line, sizeof(line), f)) {
    n++;
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) die("%s:%d: expected `key = value`", path, n);
    *eq = 0;
    char *key = trim(s), *value = strdup(trim(eq + 1));
    if (!value) die("out of memory");
    if (strcmp(key, "runtime") == 0) conf_runtime = value;
    else if (strcmp(key, "socket") == 0) conf_socket = value;
    else if (strcmp(key, "log") == 0) conf_log = value;
    else if (strcmp(key, "import") == 0) conf_import = value;
    else die("%s:%d: unknown key \"%s\" (runtime, socket, log, import)", path, n, key);
  }
  fclose(f);
}

static int executable(const char *p) { return access(p, X_OK) == 0; }

/* NAME on $PATH or in the sbin/bin directories (podman gives start and delete only a PATH, and
 * a hook's runtime may have none); an absolute path as it is. */
static char *find_program(const char *name) {
  static char found[PATH_MAX];
  if (strchr(name, '/')) return executable(name) ? strcpy(found, name) : NULL;
  const char *env = getenv("PATH");
  char path[8192];
  snprintf(path, sizeof(path), "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", env ? env : "");
  for (char *save, *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    if (!*dir) continue;
    snprintf(found, sizeof(found), "%s/%s", dir, name);
    if (executable(found)) return found;
  }
  return NULL;
}

static long fs_type(const char *path) {
  struct statfs s;
  return statfs(path, &s) == 0 ? (long)s.f_type : -1;
}

/* v1+v2 hybrid: the top is not cgroup2 but a cgroup2 hierarchy sits at unified/ (crun 1.8
 * refuses it). */
static int hybrid_cgroups(void) {
  return fs_type("/sys/fs/cgroup") != CGROUP2_MAGIC && fs_type("/sys/fs/cgroup/unified") == CGROUP2_MAGIC;
}

static int has_cap_sys_resource(void) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return 0;
  return (d[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
}

static int is_crun(const char *path) {
  const char *base = strrchr(path, '/');
  return strstr(base ? base + 1 : path, "crun") != NULL;
}

/* The real runtime's absolute path; *workaround set when it is crun on a hybrid host. */
static char *select_runtime(int *workaround) {
  const char *want = getenv(STRATA_RUNTIME_RUNTIME_ENV);
  if (!want || !*want) want = conf_runtime;
  char *path;
  if (want && *want) {
    path = find_program(want);
    if (!path) die("the OCI runtime \"%s\" (from $%s or %s) is not installed", want, STRATA_RUNTIME_RUNTIME_ENV,
                   STRATA_RUNTIME_CONF_DEFAULT);
  } else {
    /* crun works here only if it can run in a pure cgroup2 view (its own, or ours through the
     * workaround) and load its eBPF device filter (RLIMIT_MEMLOCK needs CAP_SYS_RESOURCE). A
     * pure v1 host uses the devices controller instead. */
    long top = fs_type("/sys/fs/cgroup");
    int v1 = top != CGROUP2_MAGIC && fs_type("/sys/fs/cgroup/unified") != CGROUP2_MAGIC;
    path = (v1 || has_cap_sys_resource()) ? find_program("crun") : NULL;
    if (!path) path = find_program("runc");
    if (!path) path = find_program("crun");
    if (!path) die("no OCI runtime found: install crun or runc");
  }
  *workaround = is_crun(path) && hybrid_cgroups();
  return path;
}

/* Whether the user opted in to importing an image strata lacks on first use: $STRATA_RUNTIME_IMPORT,
 * else the config's `import`; "first-use" or "never" (the default). */
static int import_first_use(void) {
  const char *v = getenv(STRATA_RUNTIME_IMPORT_ENV);
  const char *from = "$" STRATA_RUNTIME_IMPORT_ENV;
  if (!v || !*v) {
    v = conf_import;
    from = "the config's `import`";
  }
  if (!v || !*v || strcmp(v, "never") == 0) return 0;
  if (strcmp(v, STRATA_RUNTIME_IMPORT_FIRST_USE) == 0) return 1;
  die("%s is \"%s\": expected \"%s\" or \"never\"", from, v, STRATA_RUNTIME_IMPORT_FIRST_USE);
  return 0;
}

/* ---- the daemon ---- */

struct buf {
  char *data;
  size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n) cap *= 2;
    if (!(b->data = realloc(b->data, cap))) die("out of memory");
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static const char *socket_path(void) {
  const char *p = getenv(STRATA_SOCKET_ENV);
  if (p && *p) return p;
  return conf_socket ? conf_socket : STRATA_SOCKET_DEFAULT;
}

/* A connected socket, or -1 when no daemon listens there. */
static int connect_daemon(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) die("the strata daemon socket path is too long: %s", path);
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) return fd;
  int e = errno;
  close(fd);
  if (e == ENOENT || e == ECONNREFUSED) return -1;
  die("cannot reach the strata daemon at %s: %s", path, strerror(e));
  return -1;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* Reads the whole answer (the daemon closes after it) within the reply timeout. NULL on a
 * timeout or error; *len is its length. */
static char *read_answer(int sock, size_t *len) {
  struct buf b = {0};
  long long deadline = now_ms() + STRATA_RUNTIME_REPLY_TIMEOUT_MS;
  for (;;) {
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r = left > 0 ? poll(&p, 1, (int)left) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return NULL;
    char chunk[4096];
    ssize_t n = read(sock, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return NULL;
    if (n == 0) break;
    if (b.len + (size_t)n > STRATA_RUN_MAX_MESSAGE + STRATA_RUN_MAX_HEADER) return NULL;
    put(&b, chunk, (size_t)n);
  }
  put(&b, "", 1);
  *len = b.len - 1;
  return b.data;
}

/* "<verb> <length>\n" + NUL-terminated fields: verb and up to two fields; -1 if malformed. */
static int parse_answer(char *msg, size_t len, char **verb, char **f1, char **f2) {
  char *nl = memchr(msg, '\n', len < STRATA_RUN_MAX_HEADER ? len : STRATA_RUN_MAX_HEADER);
  if (!nl) return -1;
  *nl = 0;
  char *sp = strchr(msg, ' ');
  if (!sp) return -1;
  *sp = 0;
  char *end;
  unsigned long n = strtoul(sp + 1, &end, 10);
  char *body = nl + 1;
  if (*end || (size_t)(body - msg) + n != len || (n > 0 && body[n - 1] != 0)) return -1;
  *verb = msg;
  *f1 = n > 0 ? body : "";
  *f2 = n > strlen(*f1) + 1 ? body + strlen(*f1) + 1 : "";
  return 0;
}

/* Whether config.json names a strata image: only the daemon can run such a bundle. A byte
 * search: the daemon parses the JSON; this only decides between failing and passing through. */
static int names_strata_image(const char *bundle) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s/config.json", bundle);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  int found = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size < MAX_CONFIG) {
    char *data = malloc((size_t)st.st_size + 1);
    ssize_t n = data ? read(fd, data, (size_t)st.st_size) : -1;
    if (n > 0) {
      data[n] = 0;
      found = strstr(data, IMAGE_ANNOTATION) != NULL;
    }
    free(data);
  }
  close(fd);
  return found;
}

/* The whole of a regular file of at most `max` bytes, NUL-terminated, or NULL. With `trusted`,
 * only a file ours or root's that nobody else may write. */
static char *read_small(const char *path, size_t max, size_t *len, int trusted) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NULL;
  struct stat st;
  char *data = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= max &&
      (!trusted || ((st.st_uid == 0 || st.st_uid == geteuid()) && !(st.st_mode & 022))) &&
      (data = malloc((size_t)st.st_size + 1))) {
    size_t got = 0;
    while (got < (size_t)st.st_size) {
      ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
    if (got != (size_t)st.st_size) {
      free(data);
      data = NULL;
    } else {
      data[got] = 0;
      *len = got;
    }
  }
  close(fd);
  return data;
}

static int is_hex64(const char *s) {
  for (int i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* podman's image ID (64 hex) for container `id` from containers/storage's containers.json, when
 * the bundle is <graphroot>/<driver>-containers/<id>/userdata (as the daemon reads it:
 * runtime-service.ts containersStorageImage). A byte search in Go's encoding/json output, where a
 * record reads {"id":"<id>","names":[...],"image":"<hex>",...}: strings inside are escaped, so
 * the patterns cannot occur in them. 0 when anything is not as expected (the daemon decides). */
static int podman_image(const char *bundle, const char *id, char out[65]) {
  size_t blen = strlen(bundle), ilen = strlen(id);
  if (ilen != 64 || !is_hex64(id) || blen < 9 + 66 || strcmp(bundle + blen - 9, "/userdata") != 0 ||
      bundle[blen - 9 - 65] != '/' || strncmp(bundle + blen - 9 - 64, id, 64) != 0)
    return 0;
  char path[PATH_MAX];
  int dlen = (int)(blen - 9 - 65);
  if (snprintf(path, sizeof(path), "%.*s/containers.json", dlen, bundle) >= (int)sizeof(path)) return 0;
  size_t len;
  char *data = read_small(path, MAX_CONTAINERS_JSON, &len, 0);
  if (!data) return 0;
  char key[80];
  snprintf(key, sizeof(key), "{\"id\":\"%s\",", id);
  int found = 0;
  char *rec = strstr(data, key);
  if (rec) {
    char *img = strstr(rec + strlen(key), "\"image\":\"");
    char *next = strstr(rec + strlen(key), "{\"id\":\"");
    if (img && (!next || img < next)) {
      img += 9;
      if (strlen(img) > 64 && img[64] == '"' && is_hex64(img)) {
        memcpy(out, img, 64);
        out[64] = 0;
        found = 1;
      }
    }
  }
  free(data);
  return found;
}

/* Whether the daemon's published list (runtime-service.ts publishHeldImages) says, and still
 * holds, that the store lacks image `image`: the file is the daemon's (ours or root's, written by
 * nobody else), its magic right, the store's images/ directory has the mtime it names and the
 * socket the inode (a change since, or another daemon: ask), and the digest lines well formed. */
static int store_lacks(const char *socket, const char *image, const char **list) {
  static char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s%s", socket, STRATA_RUNTIME_HELD_IMAGES_SUFFIX) >= (int)sizeof(path)) return 0;
  size_t len;
  char *data = read_small(path, MAX_CONFIG, &len, 1);
  if (!data) return 0;
  int lacks = 0;
  char *lines[4], *p = data;
  for (int i = 0; i < 4; i++) {
    char *nl = strchr(p, '\n');
    if (!nl) goto out;
    *nl = 0;
    lines[i] = p;
    p = nl + 1;
  }
  char *body = p;
  size_t blen = len - (size_t)(body - data);
  struct stat dir, sock;
  long long sec, nsec;
  unsigned long long ino;
  char end;
  if (strcmp(lines[0], STRATA_RUNTIME_HELD_IMAGES_MAGIC) != 0 || lines[1][0] != '/' ||
      sscanf(lines[2], "%lld %lld%c", &sec, &nsec, &end) != 2 || sscanf(lines[3], "%llu%c", &ino, &end) != 1 ||
      stat(lines[1], &dir) < 0 || !S_ISDIR(dir.st_mode) || (long long)dir.st_mtim.tv_sec != sec ||
      (long long)dir.st_mtim.tv_nsec != nsec || stat(socket, &sock) < 0 || (unsigned long long)sock.st_ino != ino ||
      blen % 65 != 0)
    goto out;
  for (size_t off = 0; off < blen; off += 65)
    if (body[off + 64] != '\n' || !is_hex64(body + off)) goto out;
  lacks = 1;
  for (size_t off = 0; off < blen; off += 65)
    if (memcmp(body + off, image, 64) == 0) lacks = 0;
out:
  free(data);
  *list = path;
  return lacks;
}

/* create/run: let the daemon decide; returns only if the runtime is to run the bundle. */
static void ask_daemon(const char *verb, const char *id, const char *bundle_arg) {
  char bundle[PATH_MAX];
  if (!realpath(bundle_arg, bundle)) {
    /* The runtime says what is wrong with it, in its own words. */
    note("bundle %s: %s; running the runtime unchanged", bundle_arg, strerror(errno));
    return;
  }
  const char *path = socket_path();
  int want_import = import_first_use();
  /* A podman container of an image the daemon's list says the store lacks: the daemon's answer
   * would be "pass"; no round trip (unless an import on first use may change that, or
   * config.json names a strata image). */
  char image[65];
  const char *list;
  if (!want_import && podman_image(bundle, id, image) && store_lacks(path, image, &list) && !names_strata_image(bundle)) {
    note("container %s: image sha256:%s is not in the strata store (the strata daemon's list %s); running bundle %s "
         "unchanged",
         id, image, list, bundle);
    return;
  }
  int sock = connect_daemon(path);
  if (sock < 0) {
    if (names_strata_image(bundle))
      die("container %s runs an image from the strata store (its config.json has the org.strata.image "
          "annotation), but no strata daemon answers on %s: start it with `strata daemon`",
          id, path);
    note("container %s: no strata daemon on %s; running bundle %s unchanged", id, path, bundle);
    return;
  }
  struct buf body = {0}, m = {0};
  /* The fifth field only when set: a daemon without it still answers everyone else. */
  const char *fields[] = {STRATA_RUNTIME_VERSION, verb, id, bundle, STRATA_RUNTIME_IMPORT_FIRST_USE};
  size_t nfields = want_import ? 5 : 4;
  for (size_t i = 0; i < nfields; i++) put(&body, fields[i], strlen(fields[i]) + 1);
  char head[64];
  int hn = snprintf(head, sizeof(head), "%s %zu\n", STRATA_RUN_FRONT_VERBS_RUNTIME, body.len);
  put(&m, head, (size_t)hn);
  put(&m, body.data, body.len);
  for (size_t off = 0; off < m.len;) {
    ssize_t w = send(sock, m.data + off, m.len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("writing to the strata daemon at %s: %s", path, strerror(errno));
    off += (size_t)w;
  }
  free(body.data);
  free(m.data);
  size_t len;
  char *answer = read_answer(sock, &len), *v, *f1, *f2;
  close(sock);
  if (!answer || parse_answer(answer, len, &v, &f1, &f2) < 0)
    die("the strata daemon at %s gave no answer for container %s (see its log, %s)", path, id,
        STRATA_DAEMON_LOG_ROOT_DEFAULT);
  if (strcmp(v, STRATA_RUN_DAEMON_VERBS_SERVE) == 0) {
    if (*f1) note("%s", f1);
  } else if (strcmp(v, STRATA_RUN_DAEMON_VERBS_PASS) == 0) {
    note("container %s: %s; running bundle %s unchanged", id, f1, bundle);
  } else if (strcmp(v, STRATA_RUN_DAEMON_VERBS_EXIT) == 0) {
    FILE *f = log_file ? fopen(log_file, "ae") : NULL;
    if (f) {
      log_line(f, "error", f2);
      fclose(f);
    }
    if (*f2) fprintf(stderr, "%s\n", f2);
    exit(atoi(f1));
  } else {
    die("the strata daemon at %s answered \"%s\" for container %s", path, v, id);
  }
  free(answer);
}

/* ---- main ---- */

/* Global flags that take a value (runc's and crun's). */
static int global_takes_value(const char *a) {
  static const char *const with[] = {"--root", "--log", "--log-format", "--criu", "--rootless", "--cgroup-manager"};
  for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++)
    if (strcmp(a, with[i]) == 0) return 1;
  return 0;
}

/* create/run flags that take a value. */
static int verb_takes_value(const char *a) {
  static const char *const with[] = {"--bundle", "-b", "--console-socket", "--pid-file", "--preserve-fds"};
  for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++)
    if (strcmp(a, with[i]) == 0) return 1;
  return 0;
}

static void exec_runtime(const char *runtime, int workaround, int argc, char **argv) {
  if (workaround) {
    /* Our own mount namespace, slave of the host's (new host mounts still show, nothing of
     * ours leaks out), with a pure cgroup2 view: crun then sees a cgroup v2 host. */
    if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS) for crun's cgroup2 view: %s", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) die("making / a slave mount: %s", strerror(errno));
    if (mount("none", "/sys/fs/cgroup", "cgroup2", 0, NULL) < 0)
      die("mounting cgroup2 on /sys/fs/cgroup for crun: %s", strerror(errno));
  }
  char **args = calloc((size_t)argc + 1, sizeof(char *));
  if (!args) die("out of memory");
  args[0] = (char *)runtime;
  for (int i = 1; i < argc; i++) args[i] = argv[i];
  execv(runtime, args);
  die("cannot run %s: %s", runtime, strerror(errno));
}

int main(int argc, char **argv) {
  int i = 1, version = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    size_t klen = eq ? (size_t)(eq - a) : strlen(a);
    char key[32];
    if (klen >= sizeof(key)) continue;
    memcpy(key, a, klen);
    key[klen] = 0;
    const char *value = eq ? eq + 1 : NULL;
    if (!value && global_takes_value(key)) value = i + 1 < argc ? argv[++i] : NULL;
    if (strcmp(key, "--log") == 0 && value && *value) log_file = value;
    else if (strcmp(key, "--log-format") == 0 && value) log_format = value;
    else if (strcmp(key, "--version") == 0 || strcmp(key, "-v") == 0) version = 1;
  }
  read_conf();
  int workaround;
  char *runtime = select_runtime(&workaround);
  if (version) {
    printf("strata-runtime version %s (wrapping %s)\n", STRATA_VERSION, runtime);
    fflush(stdout);
  }
  const char *verb = i < argc ? argv[i] : NULL;
  if (verb && (strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0)) {
    const char *bundle = ".", *id = NULL;
    for (int j = i + 1; j < argc; j++) {
      const char *a = argv[j];
      if (a[0] == '-' && a[1]) {
        const char *eq = strchr(a, '=');
        if (eq && (strncmp(a, "--bundle=", 9) == 0 || strncmp(a, "-b=", 3) == 0)) bundle = eq + 1;
        else if (!eq && verb_takes_value(a) && j + 1 < argc) {
          if (strcmp(a, "--bundle") == 0 || strcmp(a, "-b") == 0) bundle = argv[j + 1];
          j++;
        }
      } else if (!id) {
        id = a;
      }
    }
    /* No id: the runtime refuses it in its own words. */
    if (id) ask_daemon(verb, id, bundle);
  }
  exec_runtime(runtime, workaround, argc, argv);
  return FAILED;
}
