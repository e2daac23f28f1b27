// Reader threads for /dev/fuse. Each reader is a pthread owned by the addon (never libuv's
// thread pool, which the server's own file reads need) that loops read(devFd) and hands each
// request to JavaScript as a fresh Buffer through a threadsafe function.
//
// Stopping: the thread waits in poll() on the device and on an eventfd; stopReader writes the
// eventfd, so there is no window in which a stop request can be missed (a signal sent just
// before a blocking read() would be). The device fd is switched to O_NONBLOCK so that a request
// taken by another reader between poll() and read() gives EAGAIN instead of blocking.
//
// Ending: on ENODEV (the mount is gone), another fatal read error, or a stop request, the thread
// queues an end item and releases the threadsafe function. The end item is delivered on the JS
// thread, which joins the thread *before* calling back, so when JS sees the end the thread no
// longer runs. With the last reference released, the threadsafe function no longer keeps the
// event loop alive.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

#define END_STOPPED (-1)
#define MIN_BUFFER 8192 // FUSE_MIN_READ_BUFFER: the kernel refuses smaller reads

struct reader {
  uint32_t id;
  napi_env env; // the environment (main thread or worker) that started it
  int dev_fd;
  int stop_fd;
  size_t bufsize;
  pthread_t thread;
  napi_threadsafe_function tsfn;
  bool joined;    // set on the JS thread once pthread_join returned
  bool finalized; // set when the threadsafe function is gone
  struct reader *next;
};

struct item {
  struct reader *r;
  int end; // 0: a request; END_STOPPED or an errno: the end notification
  size_t len;
  char data[];
};

// All readers not yet joined, across every environment (the main thread and any workers that
// load the addon); each reader is only ever stopped and joined from its own environment.
static struct reader *readers;
static napi_value js_start_poll_reader(napi_env env, napi_callback_info info);
static bool stop_poll_reader(napi_env env, uint32_t id);
static uint32_t next_id = 1;
static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlink_reader(struct reader *r) {
  pthread_mutex_lock(&readers_lock);
  for (struct reader **p = &readers; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  pthread_mutex_unlock(&readers_lock);
}

static struct reader *find_reader(napi_env env, uint32_t id) {
  pthread_mutex_lock(&readers_lock);
  struct reader *r = readers;
  while (r && r->id != id) r = r->next;
  if (r && r->env != env) r = NULL;
  pthread_mutex_unlock(&readers_lock);
  return r;
}

static void free_if_done(struct reader *r) {
  if (r->joined && r->finalized) free(r);
}

static void join_reader(struct reader *r) {
  if (r->joined) return;
  pthread_join(r->thread, NULL);
  close(r->stop_fd);
  r->joined = true;
  unlink_reader(r);
}

static void *reader_main(void *arg) {
  struct reader *r = arg;
  char *buf = malloc(r->bufsize);
  int end = buf ? 0 : ENOMEM;
  while (!end) {
    struct pollfd p[2] = {{.fd = r->dev_fd, .events = POLLIN}, {.fd = r->stop_fd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno != EINTR) end = errno;
      continue;
    }
    if (p[1].revents) {
      end = END_STOPPED;
      break;
    }
    if (p[0].revents == 0) continue;
    ssize_t n = read(r->dev_fd, buf, r->bufsize);
    if (n < 0) {
      // EINTR/EAGAIN: nothing to hand over; ENOENT: the request was interrupted meanwhile.
      if (errno != EINTR && errno != EAGAIN && errno != ENOENT) end = errno;
      continue;
    }
    if (n == 0) {
      end = ENODEV;
      continue;
    }
    struct item *it = malloc(sizeof *it + n);
    if (it == NULL) {
      end = ENOMEM;
      continue;
    }
    it->r = r;
    it->end = 0;
    it->len = n;
    memcpy(it->data, buf, n);
    if (napi_call_threadsafe_function(r->tsfn, it, napi_tsfn_blocking) != napi_ok) {
      free(it); // the environment is shutting down
      end = END_STOPPED;
    }
  }
  free(buf);
  struct item *it = malloc(sizeof *it);
  if (it) {
    it->r = r;
    it->end = end;
    it->len = 0;
    if (napi_call_threadsafe_function(r->tsfn, it, napi_tsfn_blocking) != napi_ok) free(it);
  }
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  return NULL;
}

// The arguments both start functions take, (devFd, bufferSize, callback), checked; the device is
// switched to O_NONBLOCK (see the top of this file). False after throwing.
static bool reader_args(napi_env env, napi_callback_info info, napi_value argv[3], int32_t *dev_fd,
                        uint32_t *bufsize) {
  if (!get_args(env, info, 3, argv) || !arg_int32(env, argv[0], "devFd", dev_fd) ||
      !arg_uint32(env, argv[1], "bufferSize", bufsize))
    return false;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_function) {
    throw_type(env, "callback must be a function");
    return false;
  }
  if (*bufsize < MIN_BUFFER) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bufferSize must be at least 8192 (FUSE_MIN_READ_BUFFER)");
    return false;
  }
  int fl = fcntl(*dev_fd, F_GETFL);
  if (fl < 0 || fcntl(*dev_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    throw_errno(env, errno, "fcntl", NULL);
    return false;
  }
  return true;
}

static void report_pending_exception(napi_env env) {
  bool pending;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); // -> process 'uncaughtException', as for any callback
  }
}

// Hands one event to the reader's callback: callback(buffer) for a request (reason NULL), or
// callback(null, reason) for the end. Thread readers call from a threadsafe function (actx NULL),
// poll readers from a libuv callback, which needs napi_make_callback to run microtasks after.
static void deliver(napi_env env, napi_async_context actx, napi_value cb, const char *reason, const void *data,
                    size_t len) {
  napi_value recv, argv[2];
  if (actx)
    napi_get_global(env, &recv); // napi_make_callback wants an object receiver
  else
    napi_get_undefined(env, &recv);
  size_t argc = 1;
  if (reason == NULL) {
    napi_create_buffer_copy(env, len, data, NULL, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &argv[1]);
    argc = 2;
  }
  if (actx)
    napi_make_callback(env, actx, recv, cb, argc, argv, NULL);
  else
    napi_call_function(env, recv, cb, argc, argv, NULL);
  report_pending_exception(env);
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  struct item *it = data;
  if (env == NULL || cb == NULL) { // tearing down: nobody to tell
    free(it);
    return;
  }
  if (it->end == 0) {
    deliver(env, NULL, cb, NULL, it->data, it->len);
    free(it);
    return;
  }
  struct reader *r = it->r;
  const char *reason = it->end == END_STOPPED ? "stopped" : strerrorname_np(it->end);
  free(it);
  join_reader(r);
  deliver(env, NULL, cb, reason ? reason : "EIO", NULL, 0);
}

static void finalize_tsfn(napi_env env, void *data, void *hint) {
  struct reader *r = data;
  r->finalized = true;
  free_if_done(r);
}

// startReader(devFd, bufferSize, callback) -> handle
static napi_value js_start_reader(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dev_fd;
  uint32_t bufsize;
  if (!reader_args(env, info, argv, &dev_fd, &bufsize)) return NULL;
  struct reader *r = calloc(1, sizeof *r);
  if (r == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  r->env = env;
  r->dev_fd = dev_fd;
  r->bufsize = bufsize;
  r->stop_fd = eventfd(0, EFD_CLOEXEC);
  if (r->stop_fd < 0) {
    int err = errno;
    free(r);
    throw_errno(env, err, "eventfd", NULL);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "strata.fuseReader", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, r, finalize_tsfn, r, call_js, &r->tsfn) !=
      napi_ok) {
    close(r->stop_fd);
    free(r);
    return NULL; // napi has thrown
  }

  // The thread blocks every signal: process-directed signals belong to Node's main thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&r->thread, &attr, reader_main, r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    close(r->stop_fd);
    r->joined = true;
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort); // finalize frees r
    throw_errno(env, err, "pthread_create", NULL);
    return NULL;
  }

  pthread_mutex_lock(&readers_lock);
  r->id = next_id++;
  r->next = readers;
  readers = r;
  pthread_mutex_unlock(&readers_lock);
  return make_int(env, r->id);
}

// stopReader(handle): asks the thread to end; the callback then gets (null, 'stopped') unless
// the reader had already ended for another reason. Unknown or finished handles are ignored.
static napi_value js_stop_reader(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t id;
  if (!get_args(env, info, 1, argv) || !arg_uint32(env, argv[0], "handle", &id)) return NULL;
  if (stop_poll_reader(env, id)) return make_undefined(env);
  struct reader *r = find_reader(env, id);
  if (r != NULL) {
    uint64_t one = 1;
    if (write(r->stop_fd, &one, sizeof one) < 0) {
      throw_errno(env, errno, "write(eventfd)", NULL);
      return NULL;
    }
  }
  return make_undefined(env);
}

// At environment teardown (process exit, worker termination) no reader may outlive its env.
static void cleanup(void *arg) {
  napi_env env = arg;
  for (;;) {
    pthread_mutex_lock(&readers_lock);
    struct reader *r = readers;
    while (r && r->env != env) r = r->next;
    pthread_mutex_unlock(&readers_lock);
    if (r == NULL) break;
    uint64_t one = 1;
    ssize_t ignored = write(r->stop_fd, &one, sizeof one);
    (void)ignored;
    join_reader(r);
  }
}

void init_reader(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "startReader", js_start_reader);
  register_fn(env, exports, "stopReader", js_stop_reader);
  register_fn(env, exports, "startPollReader", js_start_poll_reader);
  napi_add_env_cleanup_hook(env, cleanup, env);
}

// ---------------------------------------------------------------------------------------------
// Poll readers: the same contract as startReader (callback(buffer) per request, then exactly one
// callback(null, reason)), but the requests are read on the JS thread itself, when libuv's epoll
// says the device is readable. The fd is non-blocking, so nothing ever blocks the loop (nor
// occupies libuv's thread pool). Against a reader thread this saves one thread wakeup and one
// hand-over per request: the kernel wakes the JS thread directly, which is what a metadata walk
// (one request at a time, latency-bound) pays for.
#include <uv.h>

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
  struct poll_reader *next;
};

static struct poll_reader *poll_readers;

static void poll_closed(uv_handle_t *h) {
  struct poll_reader *r = h->data;
  napi_env env = r->env;
  pthread_mutex_lock(&readers_lock);
  for (struct poll_reader **p = &poll_readers; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  pthread_mutex_unlock(&readers_lock);
  if (r->call_js) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb;
    napi_get_reference_value(env, r->cb, &cb);
    deliver(env, r->actx, cb, r->reason, NULL, 0);
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, r->cb);
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
  pthread_mutex_lock(&readers_lock);
  r->id = next_id++;
  r->next = poll_readers;
  poll_readers = r;
  pthread_mutex_unlock(&readers_lock);
  return make_int(env, r->id);
}

// Called by stopReader for handles that are poll readers; true when it was one.
static bool stop_poll_reader(napi_env env, uint32_t id) {
  pthread_mutex_lock(&readers_lock);
  struct poll_reader *r = poll_readers;
  while (r && r->id != id) r = r->next;
  if (r && r->env != env) r = NULL;
  pthread_mutex_unlock(&readers_lock);
  if (r == NULL) return false;
  poll_end(r, "stopped");
  return true;
}
