// native/src/fast-path.c's answers in the VM agent: its own translation unit (the agent's helpers
// share names with fast-path.c's), built without Node (STRATA_FAST_PATH_CORE).
#define STRATA_FAST_PATH_CORE 1
#include "../src/fast-path.c"

struct fast_path *agent_fp_create(const uint8_t *idx, size_t len, const uint32_t g[FPG_COUNT],
                                  const uint32_t *defer, size_t ndefer, uint32_t entry_valid, uint32_t attr_valid,
                                  bool xattr_enosys) {
  // js_fast_path_create's bounds check: every section inside the index.
  if (g[FPG_INODES_OFF] + (uint64_t)g[FPG_INODES] * INODE_SIZE > len ||
      g[FPG_DIRENTS_OFF] + (uint64_t)g[FPG_DIRENTS] * DIRENT_SIZE > len ||
      g[FPG_XATTRS_OFF] + (uint64_t)g[FPG_XATTRS] * XATTR_SIZE > len || g[FPG_POOL_OFF] + (uint64_t)g[FPG_POOL] > len ||
      g[FPG_OBJECTS_OFF] + (uint64_t)g[FPG_OBJECTS] * OBJECT_SIZE > len)
    return NULL;
  struct fast_path *fp = calloc(1, sizeof *fp);
  size_t defer_len = ((size_t)g[FPG_INODES] >> 3) + 1;
  uint8_t *bits = calloc(1, defer_len);
  if (fp == NULL || bits == NULL) {
    free(fp);
    free(bits);
    return NULL;
  }
  for (size_t i = 0; i < ndefer; i++)
    if (defer[i] >= 1 && defer[i] <= g[FPG_INODES]) bits[defer[i] >> 3] |= 1 << (defer[i] & 7);
  fp->idx = idx;
  fp->len = len;
  fp->inode_count = g[FPG_INODES];
  fp->dirent_count = g[FPG_DIRENTS];
  fp->xattr_count = g[FPG_XATTRS];
  fp->pool_size = g[FPG_POOL];
  fp->object_count = g[FPG_OBJECTS];
  fp->inodes_off = g[FPG_INODES_OFF];
  fp->dirents_off = g[FPG_DIRENTS_OFF];
  fp->xattrs_off = g[FPG_XATTRS_OFF];
  fp->pool_off = g[FPG_POOL_OFF];
  fp->objects_off = g[FPG_OBJECTS_OFF];
  fp->defer = bits;
  fp->defer_len = defer_len;
  fp->entry_valid = entry_valid;
  fp->attr_valid = attr_valid;
  fp->xattr_enosys = xattr_enosys;
  // Inline contents come from idx itself; no backing ids (objects are read through the host).
  fp->index_fd = -1;
  fp->objects_fd = -1;
  return fp;
}

void agent_fp_free(struct fast_path *fp) {
  if (fp == NULL) return;
  free((void *)fp->defer);
  free(fp);
}

// What bridge.ts answers, without passthrough, for an object file: OPEN gets the node id as its
// handle (FOPEN_KEEP_CACHE | FOPEN_NOFLUSH) and the host's READs of a handle it never opened open
// the node for that read (bridge.ts readUnopened); RELEASE of such a handle frees nothing there.
// So neither needs the host. fp_answer has already answered the cases it knows (EROFS, inline).
static size_t object_open_release(struct fast_path *fp, const uint8_t *req, size_t n, uint8_t *out) {
  if (n < sizeof(struct fuse_in_header)) return 0;
  uint32_t len = u32(req), opcode = u32(req + 4);
  uint64_t unique = u64(req + 8), nodeid = u64(req + 16);
  if (len < sizeof(struct fuse_in_header) || len > n) return 0;
  const uint8_t *body = req + sizeof(struct fuse_in_header);
  size_t blen = len - sizeof(struct fuse_in_header);
  const uint8_t *in = inode(fp, nodeid);
  if (in == NULL || (u32(in) & S_IFMT_) != S_IFREG_ || u32(in + 40) == INLINE) return 0;
  if (opcode == FUSE_OPEN) {
    if (blen < sizeof(struct fuse_open_in)) return 0;
    uint32_t flags = u32(body);
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return 0;
    uint8_t *o = out + sizeof(struct fuse_out_header);
    memset(o, 0, sizeof(struct fuse_open_out));
    put64(o, nodeid);
    put32(o + 8, FOPEN_KEEP_CACHE | FOPEN_NOFLUSH);
    return ok_reply(out, unique, sizeof(struct fuse_open_out));
  }
  if (opcode == FUSE_RELEASE) {
    if (blen < sizeof(struct fuse_release_in) || u64(body) != nodeid) return 0;
    return ok_reply(out, unique, 0);
  }
  return 0;
}

size_t agent_fp_answer(struct fast_path *fp, const uint8_t *req, size_t n, uint8_t *out, size_t cap) {
  size_t r = fp_answer(fp, -1, req, n, out, cap);
  return r ? r : object_open_release(fp, req, n, out);
}
