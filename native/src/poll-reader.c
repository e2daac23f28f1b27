// Poll readers for /dev/fuse (reader.h): the same contract as the thread readers, but the
// requests are read on the JS thread itself, when libuv's epoll says the device is readable. The
// fd is non-blocking, so nothing ever blocks the loop (nor occupies libuv's thread pool). Against
// a reader thread this saves one thread wakeup and one hand-over per request: the kernel wakes the
// JS thread directly, which is what a metadata walk (one request at a time, latency-bound) pays
// for.
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "fast-path.h"
#include "reader.h"

#define POLL_BATCH 64 // requests handled per wakeup before yielding to the rest of the loop

struct poll_reader {
  uint32_t id;
  napi_env env;
  int dev_fd;
  size_t bufsize;
  char *buf;
  uv_poll_t poll;
  napi_ref cb;
  napi_async_context actx;
  napi_async_cleanup_hook_handle cleanup;
  const char *reason; // set once ending
  bool call_js;       // false when the environment is being torn down
  struct fast_path *fp; // answers what it can before JavaScript sees a request (or NULL)
  napi_ref fp_ref;
  uint8_t *fp_out; // its reply buffer
  struct poll_reader *next;
};

static struct poll_reader *poll_readers;
static pthread_mutex_t poll_readers_lock = PTHREAD_MUTEX_INITIALIZER;

static void poll_closed(uv_handle_t *h) {
  struct poll_reader *r = h->data;
  napi_env env = r->env;
  pthread_mutex_lock(&poll_readers_lock);
  for (struct poll_reader **p = &poll_readers; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  pthread_mutex_unlock(&poll_readers_lock);
  if (r->call_js) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb;
    napi_get_reference_value(env, r->cb, &cb);
    deliver(env, r->actx, cb, r->reason, NULL, 0);
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, r->cb);
  if (r->fp_ref) napi_delete_reference(env, r->fp_ref);
  free(r->fp_out);
  napi_async_destroy(env, r->actx);
  if (r->cleanup) napi_remove_async_cleanup_hook(r->cleanup);
  free(r->buf);
  free(r);
}

static void poll_end(struct poll_reader *r, const char *reason) {
  if (r->reason) return;
  r->reason = reason ? reason : "EIO";
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, poll_closed);
}

static void poll_readable(uv_poll_t *h, int status, int events) {
  struct poll_reader *r = h->data;
  if (r->reason) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb;
  napi_get_reference_value(env, r->cb, &cb);
  for (int i = 0; i < POLL_BATCH && !r->reason; i++) {
    ssize_t n = read(r->dev_fd, r->buf, r->bufsize);
    if (n < 0) {
      if (errno == EINTR || errno == ENOENT) continue; // ENOENT: interrupted meanwhile
      if (errno != EAGAIN) poll_end(r, strerrorname_np(errno));
      break;
    }
    if (n == 0) {
      poll_end(r, "ENODEV");
      break;
    }
    if (r->fp) {
      size_t len = fp_answer(r->fp, r->dev_fd, (const uint8_t *)r->buf, n, r->fp_out, FP_REPLY_CAP);
      if (len) {
        fp_write(r->dev_fd, r->fp_out, len);
        continue;
      }
    }
    deliver(env, r->actx, cb, NULL, r->buf, n);
  }
  // libuv reports EPOLLERR as UV_EBADF and stops the handle; the reads above said why (ENODEV
  // once the mount is gone), this is only the fallback.
  if (status < 0 && !r->reason) poll_end(r, uv_err_name(status));
  napi_close_handle_scope(env, scope);
}

static void free_unstarted(uv_handle_t *h) {
  struct poll_reader *r = h->data;
  free(r->buf);
  free(r);
}

// Environment teardown (worker exit, process exit): close the handle without calling JS.
static void poll_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  struct poll_reader *r = arg;
  r->call_js = false;
  if (r->reason == NULL) poll_end(r, "stopped");
}

// startPollReader(devFd, bufferSize, callback) -> handle (stop it with stopReader)
static napi_value js_start_poll_reader(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dev_fd;
  uint32_t bufsize;
  if (!reader_args(env, info, argv, &dev_fd, &bufsize)) return NULL;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct poll_reader *r = calloc(1, sizeof *r);
  char *buf = malloc(bufsize);
  if (r == NULL || buf == NULL) {
    free(r);
    free(buf);
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  r->env = env;
  r->dev_fd = dev_fd;
  r->bufsize = bufsize;
  r->buf = buf;
  r->call_js = true;
  int err = uv_poll_init(loop, &r->poll, dev_fd);
  if (err != 0) {
    free(buf);
    free(r);
    throw_errno(env, -err, "uv_poll_init", NULL);
    return NULL;
  }
  r->poll.data = r;
  err = uv_poll_start(&r->poll, UV_READABLE, poll_readable);
  if (err != 0) {
    uv_close((uv_handle_t *)&r->poll, free_unstarted); // the handle lives in r: free it once closed
    throw_errno(env, -err, "uv_poll_start", NULL);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "strata.fusePollReader", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->actx);
  napi_create_reference(env, argv[2], 1, &r->cb);
  napi_add_async_cleanup_hook(env, poll_cleanup, r, &r->cleanup);
  pthread_mutex_lock(&poll_readers_lock);
  r->id = next_reader_id();
  r->next = poll_readers;
  poll_readers = r;
  pthread_mutex_unlock(&poll_readers_lock);
  return make_int(env, r->id);
}

void init_poll_reader(napi_env env, napi_value exports) {
  register_fn(env, exports, "startPollReader", js_start_poll_reader);
}

bool set_poll_fast_path(napi_env env, uint32_t id, napi_value fp_value) {
  pthread_mutex_lock(&poll_readers_lock);
  struct poll_reader *r = poll_readers;
  while (r && r->id != id) r = r->next;
  if (r && r->env != env) r = NULL;
  pthread_mutex_unlock(&poll_readers_lock);
  if (r == NULL) return false;
  if (r->reason) return true; // ending: nothing more to answer
  if (r->fp) {
    throw_type(env, "the reader already has a fast path");
    return true;
  }
  struct fast_path *fp;
  if (!fp_from(env, fp_value, &fp)) return true;
  r->fp_out = malloc(FP_REPLY_CAP); // only the pages replies touch become resident
  if (r->fp_out == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return true;
  }
  napi_create_reference(env, fp_value, 1, &r->fp_ref);
  r->fp = fp;
  return true;
}

// Ends the reader on this turn of the loop: its callback gets (null, "stopped") once closed.
bool stop_poll_reader(napi_env env, uint32_t id) {
  pthread_mutex_lock(&poll_readers_lock);
  struct poll_reader *r = poll_readers;
  while (r && r->id != id) r = r->next;
  if (r && r->env != env) r = NULL;
  pthread_mutex_unlock(&poll_readers_lock);
  if (r == NULL) return false;
  poll_end(r, "stopped");
  return true;
}
