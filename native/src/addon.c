// strata's N-API addon: mechanism only (syscalls, fd passing, FUSE ioctls, /dev/fuse reader
// threads). Policy lives in TypeScript; see src/native-addon.ts for the typed surface.
#include "util.h"

void init_daemon(napi_env env, napi_value exports, napi_value constants); // daemon.c
void init_seccomp(napi_env env, napi_value exports, napi_value constants); // seccomp.c
void init_fast_path(napi_env env, napi_value exports);                      // fast-path.c
void init_objects(napi_env env, napi_value exports);                        // objects.c

static napi_value init(napi_env env, napi_value exports) {
  napi_value constants;
  napi_create_object(env, &constants);
  init_mount(env, exports, constants);
  init_fds(env, exports, constants);
  init_fuse(env, exports, constants);
  init_files(env, exports, constants);
  init_process(env, exports, constants);
  init_reader(env, exports, constants);
  init_fast_path(env, exports);
  init_objects(env, exports);
  init_daemon(env, exports, constants);
  init_seccomp(env, exports, constants);
  napi_object_freeze(env, constants);
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
