// The native fast path (docs/architecture.md, "Native fast path"): answers the hot read-only
// requests — LOOKUP, GETATTR, READLINK, READDIR, READDIRPLUS, GETXATTR, LISTXATTR, OPEN, READ
// and RELEASE of inline files, and OPEN of object files under passthrough (all stateless
// handles; the first OPEN of an object opens it by its digest and registers its backing id, which
// JavaScript then hears of through onBacking) — from an image's mapped tree index without a trip
// through JavaScript. Mechanism only: the TypeScript
// server (src/mount/fs/bridge.ts, image-fs.ts) defines every answer, and this file reproduces
// those answers byte for byte for the requests it takes (test/native/fast-path.test.ts compares
// both for every node of the test images). Anything else, anything unusual, and any node the
// TypeScript side marks as its own (placeholders and the directories they change) goes to
// JavaScript: fp_answer returns 0.
//
// The index was validated by TreeIndex.decode before it gets here; every offset is still checked
// again, so a bad one falls back to JavaScript (which reports it) instead of reading out of bounds.
// Record layouts: docs/store-format.md, "Tree index, version 1"; the sections' places come from
// TypeScript (fastPathCreate's geometry), not from parsing the header again.
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef STRATA_FAST_PATH_CORE
// The answers alone, without Node: the VM agent's copy (native/vm/agent-fast-path.c defines the
// few N-API names the backing registration mentions, which the agent never enables).
#include "../vm/agent-fast-path.h"
#else
#include "fast-path.h"
#endif
#include "fuse-ioctl.h"

#define INODE_SIZE 64
#define DIRENT_SIZE 12
#define XATTR_SIZE 16
#define OBJECT_SIZE 32
#define S_IFMT_ 0170000
#define S_IFDIR_ 0040000
#define S_IFLNK_ 0120000
#define BLKSIZE 4096
#define S_IFREG_ 0100000
#define STRATA_FOPEN_PASSTHROUGH (1u << 7) // FOPEN_PASSTHROUGH (7.40); the system header may predate it
#define INLINE 0xffffffffu
// bridge.ts STATELESS_FH: an open of an inline file is this + its ino, and nothing is recorded.
#define STATELESS_FH (1ULL << 48)
// Numbers JavaScript holds exactly (2^53): beyond them the TypeScript answer rounds, so such
// requests and nodes go to it.
#define JS_SAFE (1ULL << 53)

struct fast_path {
  const uint8_t *idx;
  size_t len;
  uint32_t inode_count, dirent_count, xattr_count, pool_size, object_count;
  size_t inodes_off, dirents_off, xattrs_off, pool_off, objects_off;
  const uint8_t *defer; // bit per ino: 1 = JavaScript answers (placeholders changed it)
  size_t defer_len;
  uint64_t entry_valid, attr_valid;
  bool xattr_enosys; // the image has no xattrs: GETXATTR answers ENOSYS (image-fs.ts noXattrs)
  int index_fd;      // a duplicate of the index file's fd (inline contents), or -1
  uint32_t *backing_ids; // per ino: the passthrough backing id TypeScript registered (0: none)
  size_t backing_len;    // entries
  napi_ref keep_backing;
  napi_ref keep_idx, keep_defer;
  uint64_t answered; // atomic
  // Registering backing ids (fastPathEnableBacking): the store's objects/ dir (O_PATH), or -1;
  // backing_off once the kernel refused a registration for good (EPERM): JavaScript's again.
  int objects_fd;
  bool backing_off;
  // onBacking(ino, id) for each id registered here; report_alive until napi finalized it (the
  // struct is freed by whichever of the two finalizers runs last: free_pending).
  pthread_mutex_t report_lock;
  napi_threadsafe_function report;
  bool report_alive, free_pending;
};

static uint32_t u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static bool deferred(const struct fast_path *fp, uint64_t ino) {
  return (ino >> 3) < fp->defer_len && (fp->defer[ino >> 3] >> (ino & 7)) & 1;
}

// The inode record of a node this path may answer for; NULL: JavaScript's.
static const uint8_t *inode(const struct fast_path *fp, uint64_t ino) {
  if (ino < 1 || ino > fp->inode_count || deferred(fp, ino)) return NULL;
  return fp->idx + fp->inodes_off + (ino - 1) * INODE_SIZE;
}

static const uint8_t *pool(const struct fast_path *fp, uint32_t off, uint32_t len) {
  if ((uint64_t)off + len > fp->pool_size) return NULL;
  return fp->idx + fp->pool_off + off;
}

static size_t error_reply(uint8_t *out, uint64_t unique, int err) {
  put32(out, sizeof(struct fuse_out_header));
  put32(out + 4, (uint32_t)-err);
  put64(out + 8, unique);
  return sizeof(struct fuse_out_header);
}

static size_t ok_reply(uint8_t *out, uint64_t unique, size_t body) {
  size_t len = sizeof(struct fuse_out_header) + body;
  put32(out, (uint32_t)len);
  put32(out + 4, 0);
  put64(out + 8, unique);
  return len;
}

// struct fuse_attr as bridge.ts fuseAttr() fills it. False when a value is beyond JS_SAFE.
static bool write_attr(uint8_t *a, uint64_t ino, const uint8_t *in) {
  uint64_t size = u64(in + 16);
  int64_t mtime = (int64_t)u64(in + 24);
  if (size >= JS_SAFE || mtime >= (int64_t)JS_SAFE || mtime <= -(int64_t)JS_SAFE) return false;
  uint32_t nsec = u32(in + 32);
  put64(a, ino);
  put64(a + 8, size);
  put64(a + 16, (size + 511) / 512);
  put64(a + 24, (uint64_t)mtime);
  put64(a + 32, (uint64_t)mtime);
  put64(a + 40, (uint64_t)mtime);
  put32(a + 48, nsec);
  put32(a + 52, nsec);
  put32(a + 56, nsec);
  put32(a + 60, u32(in));      // mode
  put32(a + 64, u32(in + 12)); // nlink
  put32(a + 68, u32(in + 4));  // uid
  put32(a + 72, u32(in + 8));  // gid
  put32(a + 76, u32(in + 36)); // rdev
  put32(a + 80, BLKSIZE);
  put32(a + 84, 0);
  return true;
}

// fuse_entry_out for a node (bridge.ts entryOut), or the protocol's "no entry" with the given
// entry timeout (a cached negative LOOKUP, or 0 for READDIRPLUS's "." and "..").
static bool write_entry(const struct fast_path *fp, uint8_t *e, uint64_t ino, const uint8_t *in) {
  memset(e, 0, sizeof(struct fuse_entry_out));
  put64(e, ino);
  put64(e + 16, fp->entry_valid);
  put64(e + 24, fp->attr_valid);
  return write_attr(e + 40, ino, in);
}

static void write_no_entry(uint8_t *e, uint64_t entry_valid) {
  memset(e, 0, sizeof(struct fuse_entry_out));
  put64(e + 16, entry_valid);
  put32(e + 40 + 80, BLKSIZE); // fuseAttr() of zeros still has blksize 4096
}

// Binary search of a directory's sorted entries (TreeIndex.lookup): the child's ino, 0 when
// absent, -1 when the index is out of bounds.
static int64_t find(const struct fast_path *fp, const uint8_t *dir, const uint8_t *name, size_t len) {
  uint32_t first = u32(dir + 40), count = u32(dir + 44);
  if ((uint64_t)first + count > fp->dirent_count) return -1;
  int64_t lo = 0, hi = (int64_t)count - 1;
  while (lo <= hi) {
    int64_t mid = (lo + hi) / 2;
    const uint8_t *d = fp->idx + fp->dirents_off + (first + mid) * DIRENT_SIZE;
    uint32_t nlen = u32(d + 4);
    const uint8_t *n = pool(fp, u32(d), nlen);
    if (n == NULL) return -1;
    int c = memcmp(n, name, nlen < len ? nlen : len);
    if (c == 0) c = nlen < len ? -1 : nlen > len ? 1 : 0;
    if (c == 0) return u32(d + 8);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return 0;
}

static size_t lookup(const struct fast_path *fp, uint64_t unique, const uint8_t *dir, const uint8_t *body,
                     size_t blen, uint8_t *out) {
  const uint8_t *nul = memchr(body, 0, blen);
  if (nul == NULL) return 0;
  if ((u32(dir) & S_IFMT_) != S_IFDIR_) return error_reply(out, unique, ENOTDIR);
  int64_t ino = find(fp, dir, body, nul - body);
  if (ino < 0) return 0;
  uint8_t *e = out + sizeof(struct fuse_out_header);
  if (ino == 0) {
    write_no_entry(e, fp->entry_valid);
    return ok_reply(out, unique, sizeof(struct fuse_entry_out));
  }
  const uint8_t *child = inode(fp, ino);
  if (child == NULL || !write_entry(fp, e, ino, child)) return 0;
  return ok_reply(out, unique, sizeof(struct fuse_entry_out));
}

static size_t getattr(const struct fast_path *fp, uint64_t unique, uint64_t ino, const uint8_t *in,
                      size_t blen, uint8_t *out) {
  if (blen < sizeof(struct fuse_getattr_in)) return 0;
  uint8_t *a = out + sizeof(struct fuse_out_header);
  memset(a, 0, sizeof(struct fuse_attr_out));
  put64(a, fp->attr_valid);
  if (!write_attr(a + 16, ino, in)) return 0;
  return ok_reply(out, unique, sizeof(struct fuse_attr_out));
}

static size_t readlink_(const struct fast_path *fp, uint64_t unique, const uint8_t *in, uint8_t *out,
                        size_t cap) {
  if ((u32(in) & S_IFMT_) != S_IFLNK_) return error_reply(out, unique, EINVAL);
  uint32_t len = u32(in + 48);
  const uint8_t *target = pool(fp, u32(in + 44), len);
  if (target == NULL || sizeof(struct fuse_out_header) + len > cap) return 0;
  memcpy(out + sizeof(struct fuse_out_header), target, len);
  return ok_reply(out, unique, len);
}

static bool dot_or_dotdot(const uint8_t *n, size_t len) {
  return n[0] == '.' && (len == 1 || (len == 2 && n[1] == '.'));
}

// One READDIR / READDIRPLUS record (wire/dir.ts): false when it does not fit or a value cannot be
// written exactly.
static bool dirent(const struct fast_path *fp, uint8_t *body, size_t size, size_t *at, bool plus, uint64_t ino,
                   uint64_t off, uint32_t mode, const uint8_t *name, size_t nlen, bool *full) {
  size_t entry = plus ? sizeof(struct fuse_entry_out) : 0;
  size_t need = (entry + FUSE_NAME_OFFSET + nlen + 7) & ~(size_t)7;
  if (*at + need > size) {
    *full = true;
    return true;
  }
  uint8_t *p = body + *at;
  if (plus) {
    if (dot_or_dotdot(name, nlen)) {
      write_no_entry(p, 0);
    } else {
      const uint8_t *in = inode(fp, ino);
      if (in == NULL || !write_entry(fp, p, ino, in)) return false;
    }
    p += entry;
  }
  put64(p, ino);
  put64(p + 8, off);
  put32(p + 16, (uint32_t)nlen);
  put32(p + 20, (mode & S_IFMT_) >> 12);
  memcpy(p + FUSE_NAME_OFFSET, name, nlen);
  memset(p + FUSE_NAME_OFFSET + nlen, 0, need - entry - FUSE_NAME_OFFSET - nlen);
  *at += need;
  return true;
}

// bridge.ts fillDir over image-fs.ts readdir: ".", "..", then the index's entries from `offset`.
static size_t readdir_(const struct fast_path *fp, uint64_t unique, uint64_t ino, const uint8_t *dir,
                       const uint8_t *body, size_t blen, bool plus, uint8_t *out, size_t cap) {
  if (blen < sizeof(struct fuse_read_in)) return 0;
  uint64_t offset = u64(body + 8);
  uint32_t size = u32(body + 16);
  if (offset >= JS_SAFE || sizeof(struct fuse_out_header) + (size_t)size > cap) return 0;
  if ((u32(dir) & S_IFMT_) != S_IFDIR_) return error_reply(out, unique, ENOTDIR);
  uint32_t first = u32(dir + 40), count = u32(dir + 44);
  if ((uint64_t)first + count > fp->dirent_count) return 0;
  uint8_t *b = out + sizeof(struct fuse_out_header);
  size_t at = 0;
  bool full = false;
  for (uint64_t pos = offset; pos < 2 + (uint64_t)count && !full; pos++) {
    bool ok;
    if (pos < 2) {
      uint64_t target = pos == 0 ? ino : u32(dir + 60);
      ok = dirent(fp, b, size, &at, plus, target, pos + 1, S_IFDIR_, (const uint8_t *)"..", pos + 1, &full);
    } else {
      const uint8_t *d = fp->idx + fp->dirents_off + (first + pos - 2) * DIRENT_SIZE;
      uint32_t nlen = u32(d + 4), child = u32(d + 8);
      const uint8_t *name = pool(fp, u32(d), nlen);
      const uint8_t *in = inode(fp, child);
      if (name == NULL || nlen == 0 || in == NULL) return 0;
      ok = dirent(fp, b, size, &at, plus, child, pos + 1, u32(in), name, nlen, &full);
    }
    if (!ok) return 0;
  }
  return ok_reply(out, unique, at);
}

// OPEN (bridge.ts open, opened, backedOpen; image-fs.ts open) of an inline file, or of an object
// file TypeScript already registered a passthrough backing id for: a stateless handle.
// What JavaScript hears of an id registered here (bridge.ts nativeBacking).
struct backing_report {
  uint32_t ino, id;
};

static void report_backing(struct fast_path *fp, uint32_t ino, uint32_t id) {
  pthread_mutex_lock(&fp->report_lock);
  if (fp->report) {
    struct backing_report *r = malloc(sizeof *r);
    if (r) {
      r->ino = ino;
      r->id = id;
      if (napi_call_threadsafe_function(fp->report, r, napi_tsfn_nonblocking) != napi_ok) free(r);
    }
  }
  pthread_mutex_unlock(&fp->report_lock);
}

// The first passthrough OPEN of an object file (bridge.ts acquireBacking, image-fs.ts open): the
// object is opened by its digest (layout.ts objectPath) and registered with the kernel once, and
// the id is published in the table TypeScript shares, compare-and-swap from 0 so that an inode
// never gets two (TypeScript looks at the table before it registers one itself). 0: JavaScript
// answers (no device or objects dir, a missing object, a refused ioctl).
static uint32_t register_backing(struct fast_path *fp, int dev_fd, uint64_t ino, uint32_t object) {
  int dir = __atomic_load_n(&fp->objects_fd, __ATOMIC_ACQUIRE);
  if (dev_fd < 0 || dir < 0 || __atomic_load_n(&fp->backing_off, __ATOMIC_RELAXED) || object >= fp->object_count)
    return 0;
  static const char hex[] = "0123456789abcdef";
  const uint8_t *digest = fp->idx + fp->objects_off + (size_t)object * OBJECT_SIZE;
  char rel[OBJECT_SIZE * 2 + 2];
  for (size_t i = 0, at = 0; i < OBJECT_SIZE; i++) {
    if (i == 1) rel[at++] = '/';
    rel[at++] = hex[digest[i] >> 4];
    rel[at++] = hex[digest[i] & 15];
  }
  rel[sizeof rel - 1] = 0;
  int fd = openat(dir, rel, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct strata_fuse_backing_map map = {.fd = fd, .flags = 0, .padding = 0};
  int id = ioctl(dev_fd, STRATA_FUSE_DEV_IOC_BACKING_OPEN, &map);
  int err = errno;
  close(fd);
  if (id <= 0) {
    // EPERM: no CAP_SYS_ADMIN, or passthrough not negotiated; it will not change.
    if (id < 0 && err == EPERM) __atomic_store_n(&fp->backing_off, true, __ATOMIC_RELAXED);
    return 0;
  }
  uint32_t have = 0;
  if (!__atomic_compare_exchange_n(&fp->backing_ids[ino], &have, (uint32_t)id, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    uint32_t mine = (uint32_t)id; // another reader or TypeScript was first: use theirs
    ioctl(dev_fd, STRATA_FUSE_DEV_IOC_BACKING_CLOSE, &mine);
    return have;
  }
  report_backing(fp, (uint32_t)ino, (uint32_t)id);
  return (uint32_t)id;
}

static size_t open_(struct fast_path *fp, int dev_fd, uint64_t unique, uint64_t ino, const uint8_t *in,
                    const uint8_t *body, size_t blen, uint8_t *out) {
  if (blen < sizeof(struct fuse_open_in)) return 0;
  uint32_t flags = u32(body);
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return error_reply(out, unique, EROFS);
  if ((u32(in) & S_IFMT_) != S_IFREG_) return 0;
  uint32_t open_flags = FOPEN_KEEP_CACHE | FOPEN_NOFLUSH, backing = 0;
  if (u32(in + 40) != INLINE) {
    backing = ino < fp->backing_len ? __atomic_load_n(&fp->backing_ids[ino], __ATOMIC_ACQUIRE) : 0;
    if (backing == 0 && ino < fp->backing_len) backing = register_backing(fp, dev_fd, ino, u32(in + 40));
    if (backing == 0) return 0; // TypeScript opens it (and registers it, or serves its reads)
    open_flags = STRATA_FOPEN_PASSTHROUGH | FOPEN_NOFLUSH;
  }
  uint8_t *o = out + sizeof(struct fuse_out_header);
  memset(o, 0, sizeof(struct fuse_open_out));
  put64(o, STATELESS_FH + ino);
  put32(o + 8, open_flags);
  put32(o + 12, backing);
  return ok_reply(out, unique, sizeof(struct fuse_open_out));
}

// READ through a stateless handle (bridge.ts read + image-fs.ts reopen, inline-reader.ts read):
// from the index file, like the TypeScript side, so that the server's mapping stays cold.
static size_t read_(struct fast_path *fp, uint64_t unique, uint64_t ino, const uint8_t *in, const uint8_t *body,
                    size_t blen, uint8_t *out, size_t cap) {
  if (blen < sizeof(struct fuse_read_in)) return 0;
  uint64_t fh = u64(body), offset = u64(body + 8);
  uint32_t size = u32(body + 16);
  if (fh < STATELESS_FH || fh >= JS_SAFE || offset >= JS_SAFE) return 0;
  if (fh - STATELESS_FH != ino || (u32(in) & S_IFMT_) != S_IFREG_ || u32(in + 40) != INLINE)
    return error_reply(out, unique, EBADF);
  uint32_t len = u32(in + 48);
  const uint8_t *data = pool(fp, u32(in + 44), len);
  if (data == NULL) return 0;
  uint64_t start = offset < len ? offset : len;
  size_t n = len - start < size ? len - start : size;
  if (sizeof(struct fuse_out_header) + n > cap) return 0;
  uint8_t *o = out + sizeof(struct fuse_out_header);
  int fd = __atomic_load_n(&fp->index_fd, __ATOMIC_ACQUIRE);
  if (n > 0 && (fd < 0 || pread(fd, o, n, (off_t)(data - fp->idx + start)) != (ssize_t)n))
    memcpy(o, data + start, n);
  return ok_reply(out, unique, n);
}

static bool ascii(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] >= 0x80) return false;
  return true;
}

// opcodes.ts sized(): size 0 asks for the length, a smaller buffer than the value is ERANGE.
static size_t sized(uint8_t *out, uint64_t unique, uint32_t want, const uint8_t *value, size_t len, size_t cap) {
  if (want == 0) {
    uint8_t *o = out + sizeof(struct fuse_out_header);
    memset(o, 0, sizeof(struct fuse_getxattr_out));
    put32(o, (uint32_t)len);
    return ok_reply(out, unique, sizeof(struct fuse_getxattr_out));
  }
  if (want < len) return error_reply(out, unique, ERANGE);
  if (sizeof(struct fuse_out_header) + len > cap) return 0;
  if (len) memcpy(out + sizeof(struct fuse_out_header), value, len);
  return ok_reply(out, unique, len);
}

static size_t getxattr(const struct fast_path *fp, uint64_t unique, const uint8_t *in, const uint8_t *body,
                       size_t blen, uint8_t *out, size_t cap) {
  if (blen < sizeof(struct fuse_getxattr_in)) return 0;
  const uint8_t *name = body + sizeof(struct fuse_getxattr_in);
  const uint8_t *nul = memchr(name, 0, blen - sizeof(struct fuse_getxattr_in));
  if (nul == NULL || !ascii(name, nul - name)) return 0;
  size_t nlen = nul - name;
  uint32_t first = u32(in + 52), count = u32(in + 56);
  if ((uint64_t)first + count > fp->xattr_count) return 0;
  for (uint32_t i = first; i < first + count; i++) {
    const uint8_t *x = fp->idx + fp->xattrs_off + (size_t)i * XATTR_SIZE;
    const uint8_t *xn = pool(fp, u32(x), u32(x + 4));
    const uint8_t *xv = pool(fp, u32(x + 8), u32(x + 12));
    if (xn == NULL || xv == NULL || !ascii(xn, u32(x + 4))) return 0;
    if (u32(x + 4) == nlen && memcmp(xn, name, nlen) == 0)
      return sized(out, unique, u32(body), xv, u32(x + 12), cap);
  }
  return error_reply(out, unique, ENODATA);
}

static size_t listxattr(const struct fast_path *fp, uint64_t unique, const uint8_t *in, const uint8_t *body,
                        size_t blen, uint8_t *out, size_t cap) {
  if (blen < sizeof(struct fuse_getxattr_in)) return 0;
  uint32_t first = u32(in + 52), count = u32(in + 56);
  if ((uint64_t)first + count > fp->xattr_count) return 0;
  uint8_t *list = out + sizeof(struct fuse_out_header);
  size_t len = 0;
  for (uint32_t i = first; i < first + count; i++) {
    const uint8_t *x = fp->idx + fp->xattrs_off + (size_t)i * XATTR_SIZE;
    uint32_t nlen = u32(x + 4);
    const uint8_t *xn = pool(fp, u32(x), nlen);
    // A NUL inside a name or non-ASCII bytes: JavaScript's string round trip decides.
    if (xn == NULL || !ascii(xn, nlen) || memchr(xn, 0, nlen) != NULL) return 0;
    if (sizeof(struct fuse_out_header) + len + nlen + 1 > cap) return 0;
    memcpy(list + len, xn, nlen);
    list[len + nlen] = 0;
    len += nlen + 1;
  }
  // sized() with the list already in place.
  return sized(out, unique, u32(body), list, len, cap);
}

size_t fp_answer(struct fast_path *fp, int dev_fd, const uint8_t *req, size_t n, uint8_t *out, size_t cap) {
  if (n < sizeof(struct fuse_in_header) || cap < sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out))
    return 0;
  uint32_t len = u32(req), opcode = u32(req + 4);
  uint64_t unique = u64(req + 8), nodeid = u64(req + 16);
  if (len < sizeof(struct fuse_in_header) || len > n) return 0;
  const uint8_t *body = req + sizeof(struct fuse_in_header);
  size_t blen = len - sizeof(struct fuse_in_header);
  const uint8_t *in = inode(fp, nodeid);
  if (in == NULL) return 0;
  size_t r;
  switch (opcode) {
  case FUSE_LOOKUP:
    r = lookup(fp, unique, in, body, blen, out);
    break;
  case FUSE_GETATTR:
    r = getattr(fp, unique, nodeid, in, blen, out);
    break;
  case FUSE_READLINK:
    r = readlink_(fp, unique, in, out, cap);
    break;
  case FUSE_READDIR:
  case FUSE_READDIRPLUS:
    r = readdir_(fp, unique, nodeid, in, body, blen, opcode == FUSE_READDIRPLUS, out, cap);
    break;
  case FUSE_OPEN:
    r = open_(fp, dev_fd, unique, nodeid, in, body, blen, out);
    break;
  case FUSE_READ:
    r = read_(fp, unique, nodeid, in, body, blen, out, cap);
    break;
  case FUSE_RELEASE: {
    // A stateless handle left nothing to release (bridge.ts release finds no record).
    if (blen < sizeof(struct fuse_release_in)) return 0;
    uint64_t fh = u64(body);
    r = fh >= STATELESS_FH && fh < JS_SAFE ? ok_reply(out, unique, 0) : 0;
    break;
  }
  case FUSE_GETXATTR:
    if (fp->xattr_enosys) {
      // Checked as the TypeScript row does: a fixed part and a terminated name, else EIO there.
      if (blen < sizeof(struct fuse_getxattr_in) ||
          !memchr(body + sizeof(struct fuse_getxattr_in), 0, blen - sizeof(struct fuse_getxattr_in)))
        return 0;
      r = error_reply(out, unique, ENOSYS);
    } else {
      r = getxattr(fp, unique, in, body, blen, out, cap);
    }
    break;
  case FUSE_LISTXATTR:
    r = listxattr(fp, unique, in, body, blen, out, cap);
    break;
  default:
    return 0;
  }
  if (r) __atomic_fetch_add(&fp->answered, 1, __ATOMIC_RELAXED);
  return r;
}

void fp_write(int dev_fd, const uint8_t *reply, size_t len) {
  // ENOENT: the request was interrupted and is gone; ENODEV/ECONNABORTED: the mount is gone and
  // the reader's next read says so. A reply the kernel refuses otherwise would be a bug here; the
  // byte-identity test is what guards against it.
  ssize_t w;
  do
    w = write(dev_fd, reply, len);
  while (w < 0 && errno == EINTR);
}

#ifndef STRATA_FAST_PATH_CORE
// ---- JavaScript surface ----

static void close_fds(struct fast_path *fp) {
  int fd = __atomic_exchange_n(&fp->index_fd, -1, __ATOMIC_ACQ_REL);
  if (fd >= 0) close(fd);
  fd = __atomic_exchange_n(&fp->objects_fd, -1, __ATOMIC_ACQ_REL);
  if (fd >= 0) close(fd);
}

// Stops reporting: no call reaches the threadsafe function once this returns.
static void release_report(struct fast_path *fp) {
  pthread_mutex_lock(&fp->report_lock);
  napi_threadsafe_function t = fp->report;
  fp->report = NULL;
  pthread_mutex_unlock(&fp->report_lock);
  if (t) napi_release_threadsafe_function(t, napi_tsfn_release);
}

static void free_fp(struct fast_path *fp) {
  pthread_mutex_destroy(&fp->report_lock);
  free(fp);
}

static void finalize_fp(napi_env env, void *data, void *hint) {
  struct fast_path *fp = data;
  close_fds(fp);
  napi_delete_reference(env, fp->keep_idx);
  napi_delete_reference(env, fp->keep_defer);
  napi_delete_reference(env, fp->keep_backing);
  release_report(fp);
  pthread_mutex_lock(&fp->report_lock);
  bool later = fp->report_alive; // finalize_report frees it
  fp->free_pending = later;
  pthread_mutex_unlock(&fp->report_lock);
  if (!later) free_fp(fp);
}

static void finalize_report(napi_env env, void *data, void *hint) {
  struct fast_path *fp = data;
  pthread_mutex_lock(&fp->report_lock);
  fp->report = NULL;
  fp->report_alive = false;
  bool gone = fp->free_pending;
  pthread_mutex_unlock(&fp->report_lock);
  if (gone) free_fp(fp);
}

static void call_report(napi_env env, napi_value cb, void *context, void *data) {
  struct backing_report *r = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[2], undefined;
    napi_create_uint32(env, r->ino, &argv[0]);
    napi_create_uint32(env, r->id, &argv[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, cb, 2, argv, NULL);
  }
  free(r);
}

static bool get_u32_prop(napi_env env, napi_value obj, const char *key, uint32_t *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return false;
  return arg_uint32(env, v, key, out);
}

static bool get_buffer(napi_env env, napi_value v, const char *name, const uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a Buffer", name);
    throw_type(env, msg);
    return false;
  }
  void *d;
  napi_get_buffer_info(env, v, &d, len);
  *data = d;
  return true;
}

// fastPathCreate(index, geometry, defer, {entryTimeout, attrTimeout, xattrEnosys, indexFd,
// backingIds}) ->
// handle. indexFd (-1: none) is duplicated when it is the file `index` holds whole.
static napi_value js_fast_path_create(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  struct fast_path f = {0};
  uint32_t inodes_off, dirents_off, xattrs_off, pool_off, objects_off, entry_valid, attr_valid;
  bool enosys;
  napi_value v;
  if (!get_buffer(env, argv[0], "index", &f.idx, &f.len) ||
      !get_u32_prop(env, argv[1], "inodeCount", &f.inode_count) ||
      !get_u32_prop(env, argv[1], "direntCount", &f.dirent_count) ||
      !get_u32_prop(env, argv[1], "xattrCount", &f.xattr_count) ||
      !get_u32_prop(env, argv[1], "poolSize", &f.pool_size) ||
      !get_u32_prop(env, argv[1], "inodesOff", &inodes_off) ||
      !get_u32_prop(env, argv[1], "direntsOff", &dirents_off) ||
      !get_u32_prop(env, argv[1], "xattrsOff", &xattrs_off) ||
      !get_u32_prop(env, argv[1], "poolOff", &pool_off) ||
      !get_u32_prop(env, argv[1], "objectCount", &f.object_count) ||
      !get_u32_prop(env, argv[1], "objectsOff", &objects_off) ||
      !get_buffer(env, argv[2], "defer", &f.defer, &f.defer_len) ||
      !get_u32_prop(env, argv[3], "entryTimeout", &entry_valid) ||
      !get_u32_prop(env, argv[3], "attrTimeout", &attr_valid) ||
      napi_get_named_property(env, argv[3], "xattrEnosys", &v) != napi_ok || !arg_bool(env, v, "xattrEnosys", &enosys))
    return NULL;
  f.inodes_off = inodes_off;
  f.dirents_off = dirents_off;
  f.xattrs_off = xattrs_off;
  f.pool_off = pool_off;
  f.objects_off = objects_off;
  f.objects_fd = -1;
  f.entry_valid = entry_valid;
  f.attr_valid = attr_valid;
  f.xattr_enosys = enosys;
  f.index_fd = -1;
  int32_t index_fd;
  if (napi_get_named_property(env, argv[3], "indexFd", &v) != napi_ok || !arg_int32(env, v, "indexFd", &index_fd))
    return NULL;
  napi_value ids;
  const uint8_t *ids_data;
  size_t ids_len;
  if (napi_get_named_property(env, argv[3], "backingIds", &ids) != napi_ok ||
      !get_buffer(env, ids, "backingIds", &ids_data, &ids_len))
    return NULL;
  if ((uintptr_t)ids_data % sizeof(uint32_t) != 0) {
    throw_type(env, "backingIds must be 4-byte aligned");
    return NULL;
  }
  f.backing_ids = (uint32_t *)ids_data;
  f.backing_len = ids_len / sizeof(uint32_t);
  struct stat st;
  if (index_fd >= 0 && fstat(index_fd, &st) == 0 && (uint64_t)st.st_size == f.len) {
    f.index_fd = fcntl(index_fd, F_DUPFD_CLOEXEC, 0);
    if (f.index_fd < 0) {
      throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", NULL);
      return NULL;
    }
  }
  if (f.inodes_off + (uint64_t)f.inode_count * INODE_SIZE > f.len ||
      f.dirents_off + (uint64_t)f.dirent_count * DIRENT_SIZE > f.len ||
      f.xattrs_off + (uint64_t)f.xattr_count * XATTR_SIZE > f.len || f.pool_off + (uint64_t)f.pool_size > f.len ||
      f.objects_off + (uint64_t)f.object_count * OBJECT_SIZE > f.len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fast path geometry lies outside the index");
    return NULL;
  }
  struct fast_path *fp = malloc(sizeof *fp);
  if (fp == NULL) {
    if (f.index_fd >= 0) close(f.index_fd);
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  *fp = f;
  pthread_mutex_init(&fp->report_lock, NULL);
  napi_create_reference(env, argv[0], 1, &fp->keep_idx);
  napi_create_reference(env, argv[2], 1, &fp->keep_defer);
  napi_create_reference(env, ids, 1, &fp->keep_backing);
  napi_value ext;
  if (napi_create_external(env, fp, finalize_fp, NULL, &ext) != napi_ok) {
    finalize_fp(env, fp, NULL);
    return NULL;
  }
  return ext;
}

bool fp_from(napi_env env, napi_value v, struct fast_path **out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_external) {
    throw_type(env, "fastPath must be a handle from fastPathCreate");
    return false;
  }
  void *p;
  napi_get_value_external(env, v, &p);
  *out = p;
  return true;
}

// fastPathAnswer(handle, request, devFd = -1) -> reply Buffer, or null when JavaScript must
// answer. devFd: the FUSE device that backing ids are registered on (a reader passes its own).
static napi_value js_fast_path_answer(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  struct fast_path *fp;
  const uint8_t *req;
  size_t n;
  int32_t dev_fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "expected 2 arguments");
    return NULL;
  }
  if (!fp_from(env, argv[0], &fp) || !get_buffer(env, argv[1], "request", &req, &n)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (argc > 2 && t != napi_undefined && !arg_int32(env, argv[2], "devFd", &dev_fd)) return NULL;
  uint8_t *out = malloc(FP_REPLY_CAP);
  if (out == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  size_t len = fp_answer(fp, dev_fd, req, n, out, FP_REPLY_CAP);
  napi_value result;
  if (len == 0)
    napi_get_null(env, &result);
  else
    napi_create_buffer_copy(env, len, out, NULL, &result);
  free(out);
  return result;
}

// fastPathAnswered(handle) -> how many requests it answered so far (tests, benchmarks).
static napi_value js_fast_path_answered(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct fast_path *fp;
  if (!get_args(env, info, 1, argv) || !fp_from(env, argv[0], &fp)) return NULL;
  return make_int(env, (int64_t)__atomic_load_n(&fp->answered, __ATOMIC_RELAXED));
}

// fastPathClose(handle): closes its duplicate of the index file now (inline READs then copy from
// the mapping) and its objects dir (no more registrations), and stops onBacking, rather than when
// the handle is collected. Call it once no reader uses it.
static napi_value js_fast_path_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct fast_path *fp;
  if (!get_args(env, info, 1, argv) || !fp_from(env, argv[0], &fp)) return NULL;
  close_fds(fp);
  release_report(fp);
  return make_undefined(env);
}

// fastPathEnableBacking(handle, objectsDir, onBacking): from now on the first OPEN of an object file
// is answered natively with passthrough (register_backing), and onBacking(ino, id) is called on this
// thread, later, for each id registered so. Once per handle; only after passthrough was negotiated.
static napi_value js_fast_path_enable_backing(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  struct fast_path *fp;
  char dir[4096];
  size_t len;
  if (!get_args(env, info, 3, argv) || !fp_from(env, argv[0], &fp)) return NULL;
  if (napi_get_value_string_utf8(env, argv[1], dir, sizeof dir, &len) != napi_ok || len == 0 ||
      len >= sizeof dir - 1) {
    throw_type(env, "objectsDir must be a non-empty path");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_function) {
    throw_type(env, "onBacking must be a function");
    return NULL;
  }
  if (fp->report_alive || fp->objects_fd >= 0) {
    throw_type(env, "backing registration is already enabled");
    return NULL;
  }
  int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", dir);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "strata.onBacking", NAPI_AUTO_LENGTH, &name);
  napi_threadsafe_function tsfn;
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, fp, finalize_report, NULL, call_report,
                                      &tsfn) != napi_ok) {
    close(fd);
    return NULL; // napi has thrown
  }
  napi_unref_threadsafe_function(env, tsfn); // the reports never keep the process alive
  pthread_mutex_lock(&fp->report_lock);
  fp->report = tsfn;
  fp->report_alive = true;
  pthread_mutex_unlock(&fp->report_lock);
  __atomic_store_n(&fp->objects_fd, fd, __ATOMIC_RELEASE);
  return make_undefined(env);
}

void init_fast_path(napi_env env, napi_value exports) {
  register_fn(env, exports, "fastPathClose", js_fast_path_close);
  register_fn(env, exports, "fastPathCreate", js_fast_path_create);
  register_fn(env, exports, "fastPathAnswer", js_fast_path_answer);
  register_fn(env, exports, "fastPathAnswered", js_fast_path_answered);
  register_fn(env, exports, "fastPathEnableBacking", js_fast_path_enable_backing);
}
#endif // STRATA_FAST_PATH_CORE
