// The part the two /dev/fuse readers share (reader.h): argument checks, handing an event to
// JavaScript, handles, and stopReader, which ends either kind. The readers themselves are in
// thread-reader.c and poll-reader.c.
#include <errno.h>
#include <fcntl.h>

#include "reader.h"
#include "fast-path.h"

bool reader_args(napi_env env, napi_callback_info info, napi_value argv[3], int32_t *dev_fd, uint32_t *bufsize) {
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
  // A thread reader: a request taken by another reader between poll() and read() gives EAGAIN
  // instead of blocking. A poll reader: nothing ever blocks the event loop.
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

void deliver(napi_env env, napi_async_context actx, napi_value cb, const char *reason, const void *data, size_t len) {
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

static uint32_t next_id = 1;

uint32_t next_reader_id(void) { return __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED); }

// stopReader(handle): asks the reader to end; the callback then gets (null, 'stopped') unless
// the reader had already ended for another reason. Unknown or finished handles are ignored.
static napi_value js_stop_reader(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t id;
  if (!get_args(env, info, 1, argv) || !arg_uint32(env, argv[0], "handle", &id)) return NULL;
  if (!stop_poll_reader(env, id)) stop_thread_reader(env, id);
  bool thrown;
  if (napi_is_exception_pending(env, &thrown) != napi_ok || thrown) return NULL;
  return make_undefined(env);
}

// setReaderFastPath(handle, fastPath): from now on the reader answers what the fast path can
// without calling back (the session sets it once INIT is answered). Unknown or finished handles
// are ignored.
static napi_value js_set_reader_fast_path(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t id;
  struct fast_path *fp;
  if (!get_args(env, info, 2, argv) || !arg_uint32(env, argv[0], "handle", &id) || !fp_from(env, argv[1], &fp))
    return NULL;
  if (!set_poll_fast_path(env, id, argv[1])) set_thread_fast_path(env, id, argv[1]);
  bool thrown;
  if (napi_is_exception_pending(env, &thrown) != napi_ok || thrown) return NULL;
  return make_undefined(env);
}

void init_reader(napi_env env, napi_value exports, napi_value c) {
  register_fn(env, exports, "setReaderFastPath", js_set_reader_fast_path);
  init_thread_reader(env, exports);
  init_poll_reader(env, exports);
  register_fn(env, exports, "stopReader", js_stop_reader);
}
