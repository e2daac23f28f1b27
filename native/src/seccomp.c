// A seccomp filter compiled ahead of the runtime, through libseccomp (dlopen'ed: the addon still
// loads where it is missing). Mechanism only: the caller (src/spec/seccomp-bpf.ts) decides the
// calls, in the order crun 1.8's libcrun_generate_seccomp makes them, so that the exported BPF is
// byte for byte what crun would build with the same libseccomp; this file makes exactly those calls.
//
//   seccompVersion()                        "2.5.4", or null when libseccomp.so.2 cannot be loaded
//   seccompCompile(defaultAction, arches, rules)  -> Buffer (seccomp_export_bpf's output)
//     arches: libseccomp architecture names ("x86_64"), each seccomp_arch_add'ed (EEXIST ignored)
//     rules:  [{ action, syscall, args: [arg, op, datumA, datumB, ...] }]; a syscall name that
//             libseccomp does not know is skipped, as crun does (it warns); returns the skipped
//             names on the Buffer's `skipped` property.
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

// The libseccomp ABI (seccomp.h of 2.5; stable since 2.0). Declared here so that building the
// addon needs no libseccomp-dev.
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp {
  unsigned int arg;
  int op; // enum scmp_compare
  uint64_t datum_a;
  uint64_t datum_b;
};
struct scmp_version {
  unsigned int major, minor, micro;
};

static struct {
  bool tried, ok;
  scmp_filter_ctx (*init)(uint32_t);
  void (*release)(scmp_filter_ctx);
  uint32_t (*arch_resolve_name)(const char *);
  int (*arch_add)(scmp_filter_ctx, uint32_t);
  int (*syscall_resolve_name)(const char *);
  int (*rule_add_array)(scmp_filter_ctx, uint32_t, int, unsigned int, const struct scmp_arg_cmp *);
  int (*export_bpf)(scmp_filter_ctx, int);
  const struct scmp_version *(*version)(void);
} lib;

static bool load_lib(void) {
  if (lib.tried) return lib.ok;
  lib.tried = true;
  void *h = dlopen("libseccomp.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
#define SYM(field, name)                                         \
  do {                                                           \
    *(void **)(&lib.field) = dlsym(h, name);                     \
    if (!lib.field) return false;                                \
  } while (0)
  SYM(init, "seccomp_init");
  SYM(release, "seccomp_release");
  SYM(arch_resolve_name, "seccomp_arch_resolve_name");
  SYM(arch_add, "seccomp_arch_add");
  SYM(syscall_resolve_name, "seccomp_syscall_resolve_name");
  SYM(rule_add_array, "seccomp_rule_add_array");
  SYM(export_bpf, "seccomp_export_bpf");
  SYM(version, "seccomp_version");
#undef SYM
  lib.ok = true;
  return true;
}

static napi_value js_seccomp_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  if (!load_lib()) {
    napi_get_null(env, &out);
    return out;
  }
  const struct scmp_version *v = lib.version();
  char buf[48];
  snprintf(buf, sizeof buf, "%u.%u.%u", v->major, v->minor, v->micro);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &out);
  return out;
}

static void throw_msg(napi_env env, const char *what, const char *detail, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s%s%s%s%s", what, detail ? " " : "", detail ? detail : "",
           err ? ": " : "", err ? strerror(err) : "");
  napi_throw_error(env, "ESECCOMP", msg);
}

static bool get_prop(napi_env env, napi_value obj, const char *key, napi_value *out) {
  if (napi_get_named_property(env, obj, key, out) != napi_ok) {
    throw_type(env, "seccompCompile: a rule is not an object");
    return false;
  }
  return true;
}

// One rule: action, syscall name, flat comparisons. Returns 1 added, 0 skipped (unknown name), -1 thrown.
static int add_rule(napi_env env, scmp_filter_ctx ctx, napi_value rule, napi_value skipped, uint32_t *n_skipped) {
  napi_value v_action, v_name, v_args;
  uint32_t action, n_args;
  char *name = NULL;
  if (!get_prop(env, rule, "action", &v_action) || !arg_uint32(env, v_action, "action", &action) ||
      !get_prop(env, rule, "syscall", &v_name) || !arg_string(env, v_name, "syscall", &name))
    return -1;
  if (!get_prop(env, rule, "args", &v_args) || napi_get_array_length(env, v_args, &n_args) != napi_ok ||
      n_args % 4 != 0 || n_args / 4 > 6) {
    free(name);
    throw_type(env, "seccompCompile: args must be an array of 4 numbers per comparison, at most 6");
    return -1;
  }
  int nr = lib.syscall_resolve_name(name);
  if (nr == -1) { // __NR_SCMP_ERROR: unknown here; crun warns and skips it
    napi_value s;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, skipped, (*n_skipped)++, s);
    free(name);
    return 0;
  }
  struct scmp_arg_cmp cmp[6];
  memset(cmp, 0, sizeof cmp);
  for (uint32_t k = 0; k < n_args / 4; k++) {
    napi_value e[4];
    uint32_t arg, op;
    uint64_t a, b;
    for (uint32_t j = 0; j < 4; j++) napi_get_element(env, v_args, k * 4 + j, &e[j]);
    if (!arg_uint32(env, e[0], "arg", &arg) || !arg_uint32(env, e[1], "op", &op) ||
        !arg_uint64(env, e[2], "datumA", &a) || !arg_uint64(env, e[3], "datumB", &b)) {
      free(name);
      return -1;
    }
    cmp[k].arg = arg;
    cmp[k].op = (int)op;
    cmp[k].datum_a = a;
    cmp[k].datum_b = b;
  }
  int rc = lib.rule_add_array(ctx, action, nr, n_args / 4, cmp);
  if (rc < 0) {
    throw_msg(env, "seccomp_rule_add_array", name, -rc);
    free(name);
    return -1;
  }
  free(name);
  return 1;
}

static napi_value js_seccomp_compile(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t def_action, n_arches, n_rules;
  if (!get_args(env, info, 3, argv) || !arg_uint32(env, argv[0], "defaultAction", &def_action)) return NULL;
  bool is_arr;
  if (napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr ||
      napi_is_array(env, argv[2], &is_arr) != napi_ok || !is_arr) {
    throw_type(env, "seccompCompile: arches and rules must be arrays");
    return NULL;
  }
  if (!load_lib()) {
    throw_msg(env, "libseccomp.so.2 cannot be loaded", NULL, 0);
    return NULL;
  }
  napi_get_array_length(env, argv[1], &n_arches);
  napi_get_array_length(env, argv[2], &n_rules);
  scmp_filter_ctx ctx = lib.init(def_action);
  if (!ctx) {
    throw_msg(env, "seccomp_init", NULL, 0);
    return NULL;
  }
  napi_value result = NULL, skipped;
  uint32_t n_skipped = 0;
  int fd = -1;
  char *bpf = NULL;
  napi_create_array(env, &skipped);
  for (uint32_t i = 0; i < n_arches; i++) {
    napi_value v;
    char *arch;
    napi_get_element(env, argv[1], i, &v);
    if (!arg_string(env, v, "arch", &arch)) goto out;
    uint32_t token = lib.arch_resolve_name(arch);
    if (token == 0) {
      throw_msg(env, "seccomp unknown architecture", arch, 0);
      free(arch);
      goto out;
    }
    free(arch);
    int rc = lib.arch_add(ctx, token);
    if (rc < 0 && rc != -EEXIST) {
      throw_msg(env, "seccomp_arch_add", NULL, -rc);
      goto out;
    }
  }
  for (uint32_t i = 0; i < n_rules; i++) {
    napi_value rule;
    napi_get_element(env, argv[2], i, &rule);
    if (add_rule(env, ctx, rule, skipped, &n_skipped) < 0) goto out;
  }
  fd = memfd_create("strata-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "memfd_create", NULL);
    goto out;
  }
  int rc = lib.export_bpf(ctx, fd);
  if (rc < 0) {
    throw_msg(env, "seccomp_export_bpf", NULL, -rc);
    goto out;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    throw_errno(env, errno, "fstat", NULL);
    goto out;
  }
  size_t len = (size_t)st.st_size;
  bpf = malloc(len ? len : 1);
  if (!bpf) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    goto out;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, bpf + got, len - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw_errno(env, n < 0 ? errno : EIO, "pread", NULL);
      goto out;
    }
    got += (size_t)n;
  }
  napi_create_buffer_copy(env, len, bpf, NULL, &result);
  napi_set_named_property(env, result, "skipped", skipped);
out:
  free(bpf);
  if (fd >= 0) close(fd);
  lib.release(ctx);
  return result;
}

void init_seccomp(napi_env env, napi_value exports, napi_value constants) {
  (void)constants;
  register_fn(env, exports, "seccompVersion", js_seccomp_version);
  register_fn(env, exports, "seccompCompile", js_seccomp_compile);
}
