// The store's per-object work on libuv's thread pool, one trip per object instead of one per
// step (src/store/writer.ts): SHA-256 of content already in memory, a stat of the object's name,
// and, when it is missing (or has the wrong size), the content written to a new temp file. Also
// SHA-256 of a stream in pieces (a layer's digest and diff_id), so that hashing does not hold up
// the JS thread. SHA-256 is OpenSSL's EVP (SHA-NI where the CPU has it), from the Node binary
// itself: Node exports its OpenSSL, and node-gyp puts its headers on the include path.
//
// Mechanism only: which names to use, when to link them into place and how to make them durable
// is the writer's business.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

#define DIGEST_LEN 32
#define HEX_LEN (2 * DIGEST_LEN)

// The buffers of one call, pinned (a reference to an array that holds them) while the job runs.
struct pieces {
  struct iovec *iov;
  uint32_t count;
  uint64_t total;
  napi_ref keep;
};

static bool get_pieces(napi_env env, napi_value array, struct pieces *p) {
  bool is_array;
  memset(p, 0, sizeof *p);
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array) {
    throw_type(env, "buffers must be an array of Buffers");
    return false;
  }
  napi_get_array_length(env, array, &p->count);
  // Pinned through a private copy of the array: the caller's array may change while the job runs.
  napi_value own;
  napi_create_array_with_length(env, p->count, &own);
  p->iov = calloc(p->count ? p->count : 1, sizeof *p->iov);
  if (p->iov == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return false;
  }
  for (uint32_t i = 0; i < p->count; i++) {
    napi_value el;
    bool is_buffer;
    void *data;
    size_t len;
    napi_get_element(env, array, i, &el);
    if (napi_is_buffer(env, el, &is_buffer) != napi_ok || !is_buffer ||
        napi_get_buffer_info(env, el, &data, &len) != napi_ok) {
      free(p->iov);
      throw_type(env, "buffers must be an array of Buffers");
      return false;
    }
    napi_set_element(env, own, i, el);
    p->iov[i].iov_base = data;
    p->iov[i].iov_len = len;
    p->total += len;
  }
  napi_create_reference(env, own, 1, &p->keep);
  return true;
}

static void put_pieces(napi_env env, struct pieces *p) {
  if (p->keep) napi_delete_reference(env, p->keep);
  free(p->iov);
}

static bool sha256_update(EVP_MD_CTX *ctx, const struct pieces *p) {
  for (uint32_t i = 0; i < p->count; i++)
    if (EVP_DigestUpdate(ctx, p->iov[i].iov_base, p->iov[i].iov_len) != 1) return false;
  return true;
}

static void to_hex(const unsigned char *md, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < DIGEST_LEN; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 15];
  }
  out[HEX_LEN] = 0;
}

// writev until everything is written (a regular file may take less than asked), IOV_MAX at a time.
static int write_all(int fd, const struct pieces *p) {
  uint32_t at = 0;
  size_t skip = 0; // bytes of iov[at] already written
  while (at < p->count) {
    struct iovec vec[IOV_MAX];
    int n = 0;
    for (uint32_t i = at; i < p->count && n < IOV_MAX; i++, n++) {
      vec[n] = p->iov[i];
      if (i == at) {
        vec[n].iov_base = (char *)vec[n].iov_base + skip;
        vec[n].iov_len -= skip;
      }
    }
    ssize_t w = writev(fd, vec, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    size_t left = (size_t)w;
    while (at < p->count && left >= p->iov[at].iov_len - skip) {
      left -= p->iov[at].iov_len - skip;
      skip = 0;
      at++;
    }
    skip += left;
  }
  return 0;
}

// objectWrite(buffers, objectsDir, tempPath, mode) -> Promise<[hex, state]>
//   state 0: <objectsDir>/<hex[0:2]>/<hex[2:]> exists with this size; nothing written
//   state 1: it does not exist; the content is in tempPath (O_EXCL|O_NOFOLLOW, `mode`)
//   state 2: it exists with another size (corrupt); the content is in tempPath
// On a failure the temp file is removed and the promise rejects with an errno error.
struct object_job {
  struct pieces p;
  char *dir, *temp;
  uint32_t mode;
  char hex[HEX_LEN + 1];
  int state, err;
  const char *syscall;
  napi_deferred deferred;
  napi_async_work work;
};

static void object_execute(napi_env env, void *data) {
  struct object_job *j = data;
  unsigned char md[DIGEST_LEN];
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && sha256_update(ctx, &j->p) &&
            EVP_DigestFinal_ex(ctx, md, NULL) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    j->err = ENOMEM;
    j->syscall = "EVP_Digest";
    return;
  }
  to_hex(md, j->hex);
  size_t dlen = strlen(j->dir);
  char *path = malloc(dlen + HEX_LEN + 3);
  if (path == NULL) {
    j->err = ENOMEM;
    j->syscall = "malloc";
    return;
  }
  memcpy(path, j->dir, dlen);
  path[dlen] = '/';
  memcpy(path + dlen + 1, j->hex, 2);
  path[dlen + 3] = '/';
  memcpy(path + dlen + 4, j->hex + 2, HEX_LEN - 2 + 1);
  struct stat st;
  int rc = stat(path, &st);
  free(path);
  if (rc == 0 && (uint64_t)st.st_size == j->p.total) {
    j->state = 0;
    return;
  }
  if (rc < 0 && errno != ENOENT) {
    j->err = errno;
    j->syscall = "stat";
    return;
  }
  j->state = rc == 0 ? 2 : 1;
  int fd;
  do fd = open(j->temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, j->mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    j->err = errno;
    j->syscall = "open";
    return;
  }
  int werr = write_all(fd, &j->p);
  int cerr = close(fd) < 0 && errno != EINTR ? errno : 0;
  if (werr || cerr) {
    j->err = werr ? werr : cerr;
    j->syscall = werr ? "write" : "close";
    unlink(j->temp);
  }
}

static void object_complete(napi_env env, napi_status status, void *data) {
  struct object_job *j = data;
  if (j->err == 0) {
    napi_value result, hex, state;
    napi_create_array_with_length(env, 2, &result);
    napi_create_string_latin1(env, j->hex, HEX_LEN, &hex);
    napi_create_int32(env, j->state, &state);
    napi_set_element(env, result, 0, hex);
    napi_set_element(env, result, 1, state);
    napi_resolve_deferred(env, j->deferred, result);
  } else {
    throw_errno(env, j->err, j->syscall, j->state ? j->temp : NULL);
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_async_work(env, j->work);
  put_pieces(env, &j->p);
  free(j->dir);
  free(j->temp);
  free(j);
}

static napi_value js_object_write(napi_env env, napi_callback_info info) {
  napi_value argv[4], promise, name;
  struct object_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  if (!get_args(env, info, 4, argv) || !arg_uint32(env, argv[3], "mode", &j->mode) ||
      !arg_string(env, argv[1], "objectsDir", &j->dir)) {
    free(j);
    return NULL;
  }
  if (!arg_string(env, argv[2], "tempPath", &j->temp)) {
    free(j->dir);
    free(j);
    return NULL;
  }
  if (!get_pieces(env, argv[0], &j->p)) {
    free(j->dir);
    free(j->temp);
    free(j);
    return NULL;
  }
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "strata.objectWrite", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, object_execute, object_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

// A SHA-256 of a stream: sha256Create() -> handle; sha256Update(handle, buffers) -> Promise on the
// pool (the caller never has two updates of one handle running at once); sha256Digest(handle) ->
// hex, after which the handle is spent. The context is freed with the handle.
struct hasher {
  EVP_MD_CTX *ctx;
  bool busy, done;
};

static void hasher_free(napi_env env, void *data, void *hint) {
  struct hasher *h = data;
  EVP_MD_CTX_free(h->ctx);
  free(h);
}

static napi_value js_sha256_create(napi_env env, napi_callback_info info) {
  struct hasher *h = calloc(1, sizeof *h);
  if (h == NULL || (h->ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
    if (h) EVP_MD_CTX_free(h->ctx);
    free(h);
    throw_errno(env, ENOMEM, "EVP_DigestInit_ex", NULL);
    return NULL;
  }
  napi_value obj;
  napi_create_object(env, &obj);
  napi_wrap(env, obj, h, hasher_free, NULL, NULL);
  return obj;
}

static struct hasher *get_hasher(napi_env env, napi_value v) {
  void *h = NULL;
  if (napi_unwrap(env, v, &h) != napi_ok || h == NULL) {
    throw_type(env, "not a sha256 handle");
    return NULL;
  }
  return h;
}

struct update_job {
  struct hasher *h;
  struct pieces p;
  napi_ref handle;
  bool ok;
  napi_deferred deferred;
  napi_async_work work;
};

static void update_execute(napi_env env, void *data) {
  struct update_job *j = data;
  j->ok = sha256_update(j->h->ctx, &j->p);
}

static void update_complete(napi_env env, napi_status status, void *data) {
  struct update_job *j = data;
  j->h->busy = false;
  if (j->ok) {
    napi_resolve_deferred(env, j->deferred, make_undefined(env));
  } else {
    throw_errno(env, EIO, "EVP_DigestUpdate", NULL);
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_async_work(env, j->work);
  napi_delete_reference(env, j->handle);
  put_pieces(env, &j->p);
  free(j);
}

static napi_value js_sha256_update(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise, name;
  if (!get_args(env, info, 2, argv)) return NULL;
  struct hasher *h = get_hasher(env, argv[0]);
  if (h == NULL) return NULL;
  if (h->busy || h->done) {
    throw_errno(env, EBUSY, "sha256Update", NULL);
    return NULL;
  }
  struct update_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  if (!get_pieces(env, argv[1], &j->p)) {
    free(j);
    return NULL;
  }
  j->h = h;
  h->busy = true;
  // The handle stays alive (and its context allocated) while the job uses it.
  napi_create_reference(env, argv[0], 1, &j->handle);
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "strata.sha256Update", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, update_execute, update_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static napi_value js_sha256_digest(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  struct hasher *h = get_hasher(env, argv[0]);
  if (h == NULL) return NULL;
  if (h->busy || h->done) {
    throw_errno(env, EBUSY, "sha256Digest", NULL);
    return NULL;
  }
  unsigned char md[DIGEST_LEN];
  char hex[HEX_LEN + 1];
  h->done = true;
  if (EVP_DigestFinal_ex(h->ctx, md, NULL) != 1) {
    throw_errno(env, EIO, "EVP_DigestFinal_ex", NULL);
    return NULL;
  }
  to_hex(md, hex);
  napi_create_string_latin1(env, hex, HEX_LEN, &out);
  return out;
}

void init_objects(napi_env env, napi_value exports) {
  register_fn(env, exports, "objectWrite", js_object_write);
  register_fn(env, exports, "sha256Create", js_sha256_create);
  register_fn(env, exports, "sha256Update", js_sha256_update);
  register_fn(env, exports, "sha256Digest", js_sha256_digest);
}
