/* The attach sequence (docs/architecture.md#kernel-facts), shared by strata-hook (host
 * containers) and strata-agent --hook (containers in a VM guest): inside the container's mount
 * namespace, take O_PATH handles to the runtime's mounts under the rootfs (/proc, /dev, ...),
 * move the detached image mount over the rootfs, and move each of them back onto a target resolved
 * strictly inside the image (RESOLVE_IN_ROOT: an image's symlink cannot send a mount to the host).
 *
 * Mechanism only. The includer defines ATTACH_DIE(fmt, ...) (prints and exits) first. The new
 * mount API's constants are given by value: <linux/mount.h> collides with glibc's <sys/mount.h>,
 * which the agent needs, and they are the same on x86_64 and aarch64. */
#ifndef STRATA_ATTACH_H
#define STRATA_ATTACH_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef ATTACH_DIE
#error "define ATTACH_DIE(fmt, ...) before including attach.h"
#endif

#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#define ATTACH_OPEN_TREE_CLOEXEC O_CLOEXEC
#define ATTACH_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define ATTACH_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define ATTACH_RESOLVE_NO_MAGICLINKS 0x02
#define ATTACH_RESOLVE_IN_ROOT 0x10
struct attach_open_how {
  uint64_t flags, mode, resolve;
};

#define ATTACH_MAX_KIDS 64
#define ATTACH_PATH_MAX 4096

struct attach_kid {
  char rel[ATTACH_PATH_MAX];
  int fd;
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void attach_unescape(char *s) {
  char *o = s;
  for (char *i = s; *i; i++) {
    if (i[0] == '\\' && i[1] >= '0' && i[1] <= '7' && i[2] >= '0' && i[2] <= '7' && i[3] >= '0' && i[3] <= '7') {
      *o++ = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
      i += 3;
    } else {
      *o++ = *i;
    }
  }
  *o = 0;
}

/* The mounts directly under the rootfs mount, as relative paths, in mountinfo order. */
static int attach_rootfs_children(const char *rootfs, struct attach_kid *kids) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) ATTACH_DIE("opening /proc/self/mountinfo: %s", strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  int root_id = -1, count = 0;
  size_t rlen = strlen(rootfs);
  static char mnt[ATTACH_PATH_MAX];
  /* Pass 1: the id of the (topmost) mount at the rootfs path. */
  while (getline(&line, &cap, f) > 0) {
    int id, parent;
    if (sscanf(line, "%d %d %*s %*s %4095s", &id, &parent, mnt) != 3) continue;
    attach_unescape(mnt);
    if (strcmp(mnt, rootfs) == 0) root_id = id;
  }
  if (root_id < 0) ATTACH_DIE("no mount at the rootfs %s in this mount namespace", rootfs);
  rewind(f);
  while (getline(&line, &cap, f) > 0) {
    int id, parent;
    if (sscanf(line, "%d %d %*s %*s %4095s", &id, &parent, mnt) != 3) continue;
    attach_unescape(mnt);
    if (parent != root_id || strncmp(mnt, rootfs, rlen) != 0 || mnt[rlen] != '/') continue;
    if (count == ATTACH_MAX_KIDS) ATTACH_DIE("more than %d mounts under the rootfs", ATTACH_MAX_KIDS);
    snprintf(kids[count].rel, sizeof(kids[count].rel), "%s", mnt + rlen + 1);
    count++;
  }
  free(line);
  fclose(f);
  return count;
}

/* The same list from listmount(2)/statmount(2) (Linux 6.8+), without /proc/self/mountinfo: the
 * kernel formats every mount of the namespace (with the host's, often dozens) for each read of
 * that file, 0.6-1.5 ms per two passes here, where these calls ask only about the rootfs mount and
 * its children (~0.05 ms). -1 when the kernel lacks them, or when anything differs from what the
 * mountinfo pass would see (the rootfs path is not the mount point of the mount statx finds there,
 * more children than fit): the caller then reads mountinfo, which decides (and says why it fails).
 * $STRATA_ATTACH_MOUNTINFO=1 forces that path (tests run both). */
#define ATTACH_NR_STATMOUNT 457
#define ATTACH_NR_LISTMOUNT 458
#define ATTACH_STATX_MNT_ID_UNIQUE 0x4000U
#define ATTACH_STATMOUNT_MNT_BASIC 0x2U
#define ATTACH_STATMOUNT_MNT_POINT 0x10U
struct attach_mnt_id_req {
  uint32_t size, spare;
  uint64_t mnt_id, param;
};
struct attach_statmount {
  uint32_t size, mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major, sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags, fs_type;
  uint64_t mnt_id, mnt_parent_id;
  uint32_t mnt_id_old, mnt_parent_id_old;
  uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
  uint32_t mnt_root, mnt_point;
  uint64_t mnt_ns_id;
  uint64_t spare2[49];
  char str[];
};
/* The mount point of mount `id` (relative to our root, not escaped) into `out` and its parent's
 * unique id into `parent`; -1 on any failure. */
static int attach_mount_point(uint64_t id, char *out, size_t cap, uint64_t *parent) {
  static union {
    struct attach_statmount sm;
    char bytes[sizeof(struct attach_statmount) + ATTACH_PATH_MAX + 64];
  } buf;
  struct attach_mnt_id_req req = {.size = sizeof(req), .mnt_id = id, .param = ATTACH_STATMOUNT_MNT_BASIC | ATTACH_STATMOUNT_MNT_POINT};
  if (syscall(ATTACH_NR_STATMOUNT, &req, &buf, sizeof(buf), 0) < 0) return -1;
  size_t head = sizeof(struct attach_statmount);
  if ((buf.sm.mask & (ATTACH_STATMOUNT_MNT_BASIC | ATTACH_STATMOUNT_MNT_POINT)) !=
          (ATTACH_STATMOUNT_MNT_BASIC | ATTACH_STATMOUNT_MNT_POINT) || buf.sm.size > sizeof(buf) || buf.sm.size <= head ||
      buf.sm.mnt_point >= buf.sm.size - head)
    return -1;
  const char *p = buf.sm.str + buf.sm.mnt_point;
  size_t len = strnlen(p, buf.sm.size - head - buf.sm.mnt_point);
  if (len >= cap || len == buf.sm.size - head - buf.sm.mnt_point) return -1;
  memcpy(out, p, len + 1);
  *parent = buf.sm.mnt_parent_id;
  return 0;
}
static int attach_children_listmount(const char *rootfs, struct attach_kid *kids) {
  const char *force = getenv("STRATA_ATTACH_MOUNTINFO");
  if (force && *force == '1') return -1;
  struct statx stx;
  if (statx(AT_FDCWD, rootfs, AT_SYMLINK_NOFOLLOW, ATTACH_STATX_MNT_ID_UNIQUE, &stx) < 0 ||
      !(stx.stx_mask & ATTACH_STATX_MNT_ID_UNIQUE))
    return -1;
  static char point[ATTACH_PATH_MAX];
  uint64_t parent;
  if (attach_mount_point(stx.stx_mnt_id, point, sizeof(point), &parent) < 0 || strcmp(point, rootfs) != 0) return -1;
  /* Every mount below the rootfs mount (newer kernels list the whole subtree, 6.8 only the
   * children): its children are those whose parent it is. */
  static uint64_t ids[4 * ATTACH_MAX_KIDS + 1];
  size_t cap = sizeof(ids) / sizeof(ids[0]);
  struct attach_mnt_id_req req = {.size = sizeof(req), .mnt_id = stx.stx_mnt_id};
  long n = syscall(ATTACH_NR_LISTMOUNT, &req, ids, cap, 0);
  if (n < 0 || (size_t)n >= cap) return -1;
  size_t rlen = strlen(rootfs);
  int count = 0;
  for (long i = 0; i < n; i++) {
    if (attach_mount_point(ids[i], point, sizeof(point), &parent) < 0) return -1;
    if (parent != stx.stx_mnt_id || strncmp(point, rootfs, rlen) != 0 || point[rlen] != '/') continue;
    if (count == ATTACH_MAX_KIDS) return -1;
    snprintf(kids[count].rel, sizeof(kids[count].rel), "%s", point + rlen + 1);
    count++;
  }
  return count;
}

/* Moves the detached image mount `newfd` over `rootfs`, with the runtime's mounts under it kept. */
static void attach_image(int newfd, const char *rootfs) {
  static struct attach_kid kids[ATTACH_MAX_KIDS];
  int n = attach_children_listmount(rootfs, kids);
  if (n < 0) n = attach_rootfs_children(rootfs, kids);
  for (int i = 0; i < n; i++) {
    char abs[ATTACH_PATH_MAX];
    if ((size_t)snprintf(abs, sizeof(abs), "%s/%.*s", rootfs, ATTACH_PATH_MAX / 2, kids[i].rel) >= sizeof(abs))
      ATTACH_DIE("mount path under %s too long", rootfs);
    kids[i].fd = (int)syscall(__NR_open_tree, AT_FDCWD, abs, ATTACH_OPEN_TREE_CLOEXEC);
    if (kids[i].fd < 0) ATTACH_DIE("open_tree %s: %s", abs, strerror(errno));
  }
  if (syscall(__NR_move_mount, newfd, "", AT_FDCWD, rootfs, ATTACH_MOVE_MOUNT_F_EMPTY_PATH) < 0)
    ATTACH_DIE("move_mount of the image onto %s: %s", rootfs, strerror(errno));
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (fstat(kids[i].fd, &st) < 0) ATTACH_DIE("fstat %s: %s", kids[i].rel, strerror(errno));
    struct attach_open_how how = {
        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0),
        .resolve = ATTACH_RESOLVE_IN_ROOT | ATTACH_RESOLVE_NO_MAGICLINKS,
    };
    int target = (int)syscall(__NR_openat2, newfd, kids[i].rel, &how, sizeof(how));
    if (target < 0)
      ATTACH_DIE("the image has no %s for the mount at /%s (%s)", S_ISDIR(st.st_mode) ? "directory" : "file",
                 kids[i].rel, strerror(errno));
    if (syscall(__NR_move_mount, kids[i].fd, "", target, "",
                ATTACH_MOVE_MOUNT_F_EMPTY_PATH | ATTACH_MOVE_MOUNT_T_EMPTY_PATH) < 0)
      ATTACH_DIE("moving the mount /%s onto the image: %s", kids[i].rel, strerror(errno));
    close(target);
    close(kids[i].fd);
  }
}

#endif
