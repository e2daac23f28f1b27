// Numbers from include/uapi/linux/fuse.h (protocol 7.45), with the kernel's names. INIT flags are
// bigints: bits 32..63 travel in the separate flags2 field of fuse_init_in / fuse_init_out.

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 45;
/** The oldest minor we serve: 7.12 (Linux 2.6.29) has every struct layout this server relies on. */
export const FUSE_MIN_MINOR_VERSION = 12;
export const FUSE_ROOT_ID = 1;

export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2;
export const FUSE_GETATTR = 3;
export const FUSE_SETATTR = 4;
export const FUSE_READLINK = 5;
export const FUSE_SYMLINK = 6;
export const FUSE_MKNOD = 8;
export const FUSE_MKDIR = 9;
export const FUSE_UNLINK = 10;
export const FUSE_RMDIR = 11;
export const FUSE_RENAME = 12;
export const FUSE_LINK = 13;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_SETXATTR = 21;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_REMOVEXATTR = 24;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_FSYNCDIR = 30;
export const FUSE_GETLK = 31;
export const FUSE_SETLK = 32;
export const FUSE_SETLKW = 33;
export const FUSE_ACCESS = 34;
export const FUSE_CREATE = 35;
export const FUSE_INTERRUPT = 36;
export const FUSE_BMAP = 37;
export const FUSE_DESTROY = 38;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const FUSE_NOTIFY_REPLY = 41;
/** Notification (out header `error` field, unique 0): move every request the kernel handed to a
 * server but has no reply for back to the queue, with bit 63 of its unique set (since 6.9). */
export const FUSE_NOTIFY_RESEND = 7;
export const FUSE_BATCH_FORGET = 42;
export const FUSE_FALLOCATE = 43;
export const FUSE_READDIRPLUS = 44;
export const FUSE_RENAME2 = 45;
export const FUSE_LSEEK = 46;
export const FUSE_COPY_FILE_RANGE = 47;
export const FUSE_SETUPMAPPING = 48;
export const FUSE_REMOVEMAPPING = 49;
export const FUSE_SYNCFS = 50;
export const FUSE_TMPFILE = 51;
export const FUSE_STATX = 52;
export const FUSE_COPY_FILE_RANGE_64 = 53;
export const CUSE_INIT = 4096;

// INIT flags (fuse_init_in.flags | fuse_init_in.flags2 << 32).
export const FUSE_ASYNC_READ = 1n << 0n;
export const FUSE_POSIX_LOCKS = 1n << 1n;
export const FUSE_ATOMIC_O_TRUNC = 1n << 3n;
export const FUSE_EXPORT_SUPPORT = 1n << 4n;
export const FUSE_BIG_WRITES = 1n << 5n;
export const FUSE_DONT_MASK = 1n << 6n;
export const FUSE_SPLICE_WRITE = 1n << 7n;
export const FUSE_SPLICE_MOVE = 1n << 8n;
export const FUSE_SPLICE_READ = 1n << 9n;
export const FUSE_FLOCK_LOCKS = 1n << 10n;
export const FUSE_HAS_IOCTL_DIR = 1n << 11n;
export const FUSE_AUTO_INVAL_DATA = 1n << 12n;
export const FUSE_DO_READDIRPLUS = 1n << 13n;
export const FUSE_READDIRPLUS_AUTO = 1n << 14n;
export const FUSE_ASYNC_DIO = 1n << 15n;
export const FUSE_WRITEBACK_CACHE = 1n << 16n;
export const FUSE_NO_OPEN_SUPPORT = 1n << 17n;
export const FUSE_PARALLEL_DIROPS = 1n << 18n;
export const FUSE_HANDLE_KILLPRIV = 1n << 19n;
export const FUSE_POSIX_ACL = 1n << 20n;
export const FUSE_ABORT_ERROR = 1n << 21n;
export const FUSE_MAX_PAGES = 1n << 22n;
export const FUSE_CACHE_SYMLINKS = 1n << 23n;
export const FUSE_NO_OPENDIR_SUPPORT = 1n << 24n;
export const FUSE_EXPLICIT_INVAL_DATA = 1n << 25n;
export const FUSE_MAP_ALIGNMENT = 1n << 26n;
export const FUSE_SUBMOUNTS = 1n << 27n;
export const FUSE_HANDLE_KILLPRIV_V2 = 1n << 28n;
export const FUSE_SETXATTR_EXT = 1n << 29n;
export const FUSE_INIT_EXT = 1n << 30n;
export const FUSE_INIT_RESERVED = 1n << 31n;
export const FUSE_SECURITY_CTX = 1n << 32n;
export const FUSE_HAS_INODE_DAX = 1n << 33n;
export const FUSE_CREATE_SUPP_GROUP = 1n << 34n;
export const FUSE_HAS_EXPIRE_ONLY = 1n << 35n;
export const FUSE_DIRECT_IO_ALLOW_MMAP = 1n << 36n;
export const FUSE_PASSTHROUGH = 1n << 37n;
export const FUSE_NO_EXPORT_SUPPORT = 1n << 38n;
export const FUSE_HAS_RESEND = 1n << 39n;
export const FUSE_ALLOW_IDMAP = 1n << 40n;
export const FUSE_OVER_IO_URING = 1n << 41n;
export const FUSE_REQUEST_TIMEOUT = 1n << 42n;

// fuse_open_out.open_flags
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;
export const FOPEN_PASSTHROUGH = 1 << 7;

export const FUSE_GETATTR_FH = 1 << 0;

// lseek whence values the kernel forwards (it answers SEEK_SET/CUR/END itself).
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

// Linux errno values (x86_64 and every other Linux architecture strata targets).
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENOTTY = 25;
export const EROFS = 30;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ENODATA = 61;
export const EPROTO = 71;
export const EOPNOTSUPP = 95;

// open(2) flags seen in fuse_open_in.flags
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0;
export const O_TRUNC = 0o1000;

// access(2) mask bits
export const W_OK = 2;
