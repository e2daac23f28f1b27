{
  "targets": [
    {
      "target_name": "contract-header",
      "type": "none",
      "actions": [
        {
          "action_name": "gen-contract-header",
          "inputs": ["../src/contract/native-contract.json", "../scripts/gen-contract.mjs"],
          "outputs": ["generated/strata-contract.h"],
          "action": ["node", "../scripts/gen-contract.mjs", "--header", "generated/strata-contract.h"]
        }
      ]
    },
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
        "src/thread-reader.c",
        "src/poll-reader.c",
        "src/fast-path.c",
        "src/daemon.c",
        "src/seccomp.c",
        "src/objects.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "libraries": ["-lpthread", "-ldl"]
    },
    {
      "target_name": "strata-hook",
      "type": "executable",
      "dependencies": ["contract-header"],
      "include_dirs": ["generated"],
      "sources": ["hook/strata-hook.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    },
    {
      "target_name": "strata-agent",
      "type": "executable",
      "dependencies": ["contract-header"],
      "include_dirs": ["generated"],
      "sources": ["vm/strata-agent.c", "vm/agent-fast-path.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    },
    {
      "target_name": "strata-agent-arm64",
      "type": "none",
      "dependencies": ["contract-header"],
      "actions": [
        {
          "action_name": "cross-build-agent-arm64",
          "inputs": ["vm/strata-agent.c", "vm/agent-fast-path.c", "vm/agent-fast-path.h", "src/fast-path.c", "common/attach.h", "vm/cross-build-arm64.sh", "generated/strata-contract.h"],
          "outputs": ["<(PRODUCT_DIR)/strata-agent-arm64"],
          "action": ["sh", "vm/cross-build-arm64.sh", "<(PRODUCT_DIR)/strata-agent-arm64"]
        }
      ]
    },
    {
      "target_name": "strata-fdholder",
      "type": "executable",
      "sources": ["holder/strata-fdholder.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "strata-cli",
      "product_name": "strata",
      "type": "executable",
      "dependencies": ["contract-header"],
      "include_dirs": ["generated"],
      "sources": ["front/strata.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["STRATA_NODE=<!(node -p \"JSON.stringify(process.execPath)\")"]
    },
    {
      "target_name": "strata-runtime",
      "type": "executable",
      "dependencies": ["contract-header"],
      "include_dirs": ["generated"],
      "sources": ["runtime/strata-runtime.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "containerd-shim-strata-v2",
      "type": "executable",
      "dependencies": ["contract-header"],
      "include_dirs": ["generated"],
      "sources": ["shim/containerd-shim-strata-v2.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["STRATA_NODE=<!(node -p \"JSON.stringify(process.execPath)\")"]
    }
  ]
}
