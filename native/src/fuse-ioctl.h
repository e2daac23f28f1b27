// /dev/fuse ioctls. Values from include/uapi/linux/fuse.h (kernel 6.9+ for backing ids); the
// distribution's headers may predate them, so they are spelled out here (fuse.c, fast-path.c).
#ifndef STRATA_FUSE_IOCTL_H
#define STRATA_FUSE_IOCTL_H

#include <stdint.h>
#include <sys/ioctl.h>

#define FUSE_DEV_IOC_MAGIC 229
struct strata_fuse_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define STRATA_FUSE_DEV_IOC_CLONE _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t)
#define STRATA_FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct strata_fuse_backing_map)
#define STRATA_FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

_Static_assert(STRATA_FUSE_DEV_IOC_BACKING_OPEN == 0x4010E501, "FUSE_DEV_IOC_BACKING_OPEN");

#endif
