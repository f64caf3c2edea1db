/*
 * mount.h — mounting a root: the one entry point the CLI calls.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  const char *root;       /* the project root                                  */
  const char *root_given_as; /* how it was named, for errors (NULL: --root)        */
  const char *mountpoint; /* an existing directory                             */
  gboolean foreground;    /* -f: stay in the foreground, log to stderr         */
  gboolean debug;         /* -d: foreground, verbose log, libfuse request trace */
  gboolean single_thread; /* -s: one thread serves every request               */
  char **options;         /* -o values (each may hold several, comma-separated) */
  gpointer remote;        /* mount --remote: the SqlenvfsRemote whose cache root is
                             @root (src/fs/remote.c); no archiver, only
                             snapshots/, backups/ and pitr/ shown         */
  guint64 remote_cache_max; /* bytes of copies the cache keeps (LRU)       */
  gboolean *options_refused; /* when not NULL: set TRUE when the mount failed
                              * because FUSE refused its options (a usage
                              * error), FALSE otherwise                   */
} SqlenvfsMountOptions;

/* Mount @opts->root on @opts->mountpoint and serve it until it is unmounted
 * (fusermount3 -u, umount) or the daemon gets SIGTERM/SIGINT/SIGHUP.
 *
 * In the background (the default) the calling process exits with status 0
 * as soon as the mount works, and a daemon serves it; logs then go to
 * <root>/.sqlenvfs/mount.log. A second mount of the same root is refused
 * (BUSY, by the root lock "mount"). On return (TRUE: unmounted cleanly) the
 * running operation has finished, nothing is mounted, and the lock is free.
 * FALSE and *error when the mount could not be made; nothing is left
 * mounted or locked then. */
gboolean sqlenvfs_fs_mount(const SqlenvfsMountOptions *opts, GError **error);

G_END_DECLS
