// Thread readers for /dev/fuse (reader.h). Each reader is a pthread owned by the addon (never
// libuv's thread pool, which the server's own file reads need) that loops read(devFd) and hands
// each request to JavaScript as a fresh Buffer through a threadsafe function.
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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fast-path.h"
#include "reader.h"

#define END_STOPPED (-1)

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
  struct fast_path *fp; // set once, atomically; read by the thread before each hand-over
  napi_ref fp_ref;      // keeps it alive until the thread was joined
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
  if (r->fp_ref) napi_delete_reference(r->env, r->fp_ref);
  r->fp_ref = NULL;
  unlink_reader(r);
}

static void *reader_main(void *arg) {
  struct reader *r = arg;
  char *buf = malloc(r->bufsize);
  uint8_t *out = NULL; // the fast path's replies, once it is set
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
    struct fast_path *fp = __atomic_load_n(&r->fp, __ATOMIC_ACQUIRE);
    if (fp && (out || (out = malloc(FP_REPLY_CAP)))) {
      size_t len = fp_answer(fp, r->dev_fd, (const uint8_t *)buf, n, out, FP_REPLY_CAP);
      if (len) {
        fp_write(r->dev_fd, out, len);
        continue;
      }
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
  free(out);
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
  r->id = next_reader_id();
  r->next = readers;
  readers = r;
  pthread_mutex_unlock(&readers_lock);
  return make_int(env, r->id);
}


// The thread wakes from poll() on its eventfd and ends with "stopped".
bool stop_thread_reader(napi_env env, uint32_t id) {
  struct reader *r = find_reader(env, id);
  if (r == NULL) return false;
  uint64_t one = 1;
  if (write(r->stop_fd, &one, sizeof one) < 0) throw_errno(env, errno, "write(eventfd)", NULL);
  return true;
}

bool set_thread_fast_path(napi_env env, uint32_t id, napi_value fp_value) {
  struct reader *r = find_reader(env, id);
  if (r == NULL) return false;
  struct fast_path *fp;
  if (!fp_from(env, fp_value, &fp)) return true;
  if (r->fp_ref) {
    throw_type(env, "the reader already has a fast path");
    return true;
  }
  napi_create_reference(env, fp_value, 1, &r->fp_ref);
  __atomic_store_n(&r->fp, fp, __ATOMIC_RELEASE);
  return true;
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

void init_thread_reader(napi_env env, napi_value exports) {
  register_fn(env, exports, "startReader", js_start_reader);
  napi_add_env_cleanup_hook(env, cleanup, env);
}
