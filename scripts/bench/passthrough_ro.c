/*
 * passthrough_ro.c — the smallest read-only passthrough FUSE filesystem, the
 * yardstick for "how fast can FUSE serve a file on this machine". Built and
 * run by scripts/bench.sh; not part of sqlenvfs.
 *
 *   passthrough_ro SOURCE_DIR MOUNTPOINT [fuse options]
 *
 * Reads go straight to the underlying file with pread; the kernel page
 * cache is kept between opens, as sqlenvfs does for snapshots and backups.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char source[PATH_MAX];

static void
real_path(char *out, const char *path)
{
  snprintf(out, PATH_MAX, "%s%s", source, path);
}

static void *
pt_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  (void)conn;
  cfg->kernel_cache = 1;
  cfg->attr_timeout = 60;
  cfg->entry_timeout = 60;
  return NULL;
}

static int
pt_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
  char p[PATH_MAX];
  (void)fi;
  real_path(p, path);
  return lstat(p, st) == 0 ? 0 : -errno;
}

static int
pt_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
           struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  char p[PATH_MAX];
  DIR *d;
  struct dirent *e;
  (void)off;
  (void)fi;
  (void)flags;
  real_path(p, path);
  d = opendir(p);
  if (d == NULL)
    return -errno;
  while ((e = readdir(d)) != NULL)
    fill(buf, e->d_name, NULL, 0, 0);
  closedir(d);
  return 0;
}

static int
pt_open(const char *path, struct fuse_file_info *fi)
{
  char p[PATH_MAX];
  int fd;
  if ((fi->flags & O_ACCMODE) != O_RDONLY)
    return -EROFS;
  real_path(p, path);
  fd = open(p, O_RDONLY);
  if (fd < 0)
    return -errno;
  fi->fh = (uint64_t)fd;
  fi->keep_cache = 1;
  return 0;
}

static int
pt_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
  ssize_t n = pread((int)fi->fh, buf, size, off);
  (void)path;
  return n < 0 ? -errno : (int)n;
}

static int
pt_release(const char *path, struct fuse_file_info *fi)
{
  (void)path;
  close((int)fi->fh);
  return 0;
}

static const struct fuse_operations ops = {
  .init = pt_init,
  .getattr = pt_getattr,
  .readdir = pt_readdir,
  .open = pt_open,
  .read = pt_read,
  .release = pt_release,
};

int
main(int argc, char **argv)
{
  if (argc < 3 || realpath(argv[1], source) == NULL) {
    fprintf(stderr, "usage: passthrough_ro SOURCE_DIR MOUNTPOINT [fuse options]\n");
    return 2;
  }
  argv[1] = argv[0];
  return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
