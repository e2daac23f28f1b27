{
  "targets": [
    {
      "target_name": "strata",
      "sources": [
        "src/addon.c",
        "src/util.c",
        "src/mount.c",
        "src/fds.c",
        "src/fuse.c",
        "src/files.c",
        "src/process.c",
        "src/reader.c",
        "src/daemon.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "strata-hook",
      "type": "executable",
      "sources": ["hook/strata-hook.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
