/*
 * mount.c — mounting a root: options, the root lock, the FUSE session,
 * daemonizing, the serving loop and a clean teardown.
 *
 * Order of events (each step undone on failure, in reverse):
 *
 *   open root -> lock "mount" (a second mount of the root is refused here)
 *   -> the archiver, which takes the lock "archiver" (refused when another
 *   process archives this root, unless -o noarchiver) -> session with the
 *   options -> mount -> daemonize (the parent exits 0: the mount works)
 *   -> start the op thread and the archiver thread -> serve
 *   -> [unmount or signal] -> finish the running op -> stop the archiver
 *   (everything seen is archived and durable) -> unmount -> unlock
 *
 * No thread is started before daemonizing (fork keeps only the caller's).
 * The root's locks (mount, archiver) are flocks on open file descriptions,
 * which the daemon inherits across the fork; the pid in each file is
 * rewritten afterwards (the archiver's by sqlenvfs_archiver_run(), which
 * runs in the daemon), so that a refused second mount or archiver names the
 * live daemon, not the parent that exited.
 *
 * Options: `-o` takes everything mount(8) and mount.fuse3 pass from
 * /etc/fstab. Options that only mean something to mount(8) (defaults, auto,
 * noauto, user, users, nouser, owner, group, _netdev, nofail, comment=,
 * x-*) are dropped; the rest go to libfuse, which knows the kernel's
 * (rw, ro, dev, nodev, suid, nosuid, exec, noexec, atime, noatime,
 * allow_other, max_read=, ...). An option neither knows is an error.
 * Ours: noarchiver (another process, e.g. `sqlenvfs archive` under systemd,
 * archives this root; the mount then only serves it).
 */
#include "mount.h"
#include "fs.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Threads serving requests at most (reads of several files, a rebuild, a
 * stat of prod while a ctl write waits). */
#define MAX_THREADS 16

static const char *const mount8_only[] = {
  "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group",
  "_netdev", "nofail", NULL,
};

static gboolean
is_mount8_only(const char *opt)
{
  if (g_str_has_prefix(opt, "x-") || g_str_has_prefix(opt, "comment="))
    return TRUE;
  for (gsize i = 0; mount8_only[i]; i++)
    if (strcmp(opt, mount8_only[i]) == 0)
      return TRUE;
  return FALSE;
}

/* Escape ',' and '\' for a libfuse -o value. */
static char *
opt_escape(const char *s)
{
  GString *out = g_string_new(NULL);
  for (; *s; s++) {
    if (*s == ',' || *s == '\\')
      g_string_append_c(out, '\\');
    g_string_append_c(out, *s);
  }
  return g_string_free(out, FALSE);
}

/* Capture libfuse's messages while the session is made, so that a refused
 * option becomes one error line instead of a stray message. */
static GString *fuse_captured;

static void capture_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
  G_GNUC_PRINTF(2, 0);

static void
capture_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
  (void)level;
  g_string_append_vprintf(fuse_captured, fmt, ap);
}

typedef struct {
  GPtrArray *argv; /* for fuse_session_new */
  gboolean allow_other;
  gboolean debug;
  gboolean no_archiver;
} ParsedOptions;

static void
parse_options(const SqlenvfsMountOptions *opts, const char *root_dir, ParsedOptions *out)
{
  g_autofree char *fsname = opt_escape(root_dir);
  GString *kept = g_string_new(NULL);

  out->argv = g_ptr_array_new_with_free_func(g_free);
  out->debug = opts->debug;
  g_ptr_array_add(out->argv, g_strdup("sqlenvfs"));
  g_ptr_array_add(out->argv, g_strdup("-o"));
  g_ptr_array_add(out->argv, g_strdup_printf("fsname=%s,subtype=sqlenvfs", fsname));

  for (gsize i = 0; opts->options && opts->options[i]; i++) {
    g_auto(GStrv) parts = g_strsplit(opts->options[i], ",", -1);
    for (gsize j = 0; parts[j]; j++) {
      const char *o = parts[j];
      if (*o == '\0' || is_mount8_only(o))
        continue;
      if (strcmp(o, "debug") == 0) {
        out->debug = TRUE;
        continue;
      }
      if (strcmp(o, "noarchiver") == 0) {
        out->no_archiver = TRUE;
        continue;
      }
      /* The kind is ours: mount.fuse3 may pass its own subtype/fsname. */
      if (g_str_has_prefix(o, "subtype=") || g_str_has_prefix(o, "fsname="))
        continue;
      if (strcmp(o, "allow_other") == 0)
        out->allow_other = TRUE;
      if (kept->len)
        g_string_append_c(kept, ',');
      g_string_append(kept, o);
    }
  }
  if (kept->len) {
    g_ptr_array_add(out->argv, g_strdup("-o"));
    g_ptr_array_add(out->argv, g_string_free(kept, FALSE));
  } else {
    g_string_free(kept, TRUE);
  }
  if (out->debug)
    g_ptr_array_add(out->argv, g_strdup("-d"));
  g_ptr_array_add(out->argv, NULL);
}

/* TRUE when libfuse takes the options of @po; else FALSE and *@error
 * saying which it refused. A session is made and dropped at once (nothing
 * is mounted), so that an option it refuses is said before anything else
 * can fail (another process holding the archiver's lock). */
static gboolean
check_options(const ParsedOptions *po, const char *root_dir, const char *mnt, GError **error)
{
  struct fuse_args args = FUSE_ARGS_INIT((int)po->argv->len - 1, (char **)po->argv->pdata);
  struct fuse_session *se;

  fuse_captured = g_string_new(NULL);
  fuse_set_log_func(capture_fuse_log);
  se = fuse_session_new(&args, &sqlenvfs_fs_ops, sizeof sqlenvfs_fs_ops, NULL);
  fuse_opt_free_args(&args);
  if (se != NULL) {
    fuse_session_destroy(se);
  } else {
    g_strstrip(fuse_captured->str);
    g_strdelimit(fuse_captured->str, "\n", ' ');
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "mount %s on %s: %s (nothing was mounted; the -o options sqlenvfs takes are in "
                "`sqlenvfs mount --help`; the others go to FUSE, see mount.fuse3(8))", root_dir,
                mnt, *fuse_captured->str ? fuse_captured->str : "libfuse refused the options");
  }
  g_string_free(g_steal_pointer(&fuse_captured), TRUE);
  return se != NULL;
}

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void
unescape_mountinfo(char *s)
{
  char *out = s;
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
        s[3] >= '0' && s[3] <= '7') {
      *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 3;
    } else {
      *out++ = *s;
    }
  }
  *out = '\0';
}

/* Whether @root_dir is mounted (a fuse.sqlenvfs mount with it as source). */
static gboolean
root_is_mounted(const char *root_dir)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
    return TRUE; /* cannot tell: assume the holder serves it */
  lines = g_strsplit(text, "\n", -1);
  for (gsize i = 0; lines[i]; i++) {
    /* ... mount-point options [optional fields] - fstype source super-options */
    char *sep = strstr(lines[i], " - ");
    g_auto(GStrv) f = NULL;
    if (sep == NULL)
      continue;
    f = g_strsplit(sep + 3, " ", 3);
    if (f[0] == NULL || f[1] == NULL || strcmp(f[0], "fuse.sqlenvfs") != 0)
      continue;
    unescape_mountinfo(f[1]);
    if (strcmp(f[1], root_dir) == 0)
      return TRUE;
  }
  return FALSE;
}

/* Take the root's mount lock. A holder whose mount is gone is a daemon
 * finishing its unmount (the running operation, the archiver's last sync):
 * wait for it, up to LOCK_WAIT_US. A holder that still serves the root is
 * a second mount: refused at once. */
#define LOCK_WAIT_US (30 * G_USEC_PER_SEC)

static int
lock_root(SqlenvfsRoot *root, GError **error)
{
  gint64 deadline = g_get_monotonic_time() + LOCK_WAIT_US;
  gboolean said = FALSE;
  for (;;) {
    g_autoptr(GError) local = NULL;
    int fd = sqlenvfs_root_lock(root, "mount", FALSE, &local);
    if (fd >= 0)
      return fd;
    if (local->code != SQLENVFS_ERROR_BUSY || root_is_mounted(sqlenvfs_root_dir(root)) ||
        g_get_monotonic_time() > deadline) {
      g_propagate_error(error, g_steal_pointer(&local));
      return -1;
    }
    if (!said) {
      g_message("%s: waiting for the previous mount's daemon to finish (%s)",
                sqlenvfs_root_dir(root), local->message);
      said = TRUE;
    }
    g_usleep(100 * 1000);
  }
}

/* A shared memory map of a file opened with direct_io (pitr/ files on
 * their first open, serve.c) needs the kernel's FUSE_DIRECT_IO_ALLOW_MMAP
 * (protocol 7.39, Linux 6.6), asked for in the INIT reply. libfuse 3.16 and
 * later ask for it through conn->want; before that, the session's writes go
 * through io_writev() below, which sets its bit in the INIT reply (its
 * second word of flags, which libfuse sends when the kernel takes one) and
 * passes every other message on untouched. Layout of the reply
 * (linux/fuse.h): a 16-byte header (len, error, unique), then fuse_init_out,
 * 64 bytes since protocol 7.23, with flags at byte 12 and flags2 at byte 32. */
#define FUSE_OUT_HEADER_BYTES 16
#define FUSE_INIT_OUT_BYTES 64
#define FUSE_INIT_OUT_FLAGS 12
#define FUSE_INIT_OUT_FLAGS2 32
#define FUSE_FLAG_INIT_EXT (1u << 30)
#define FUSE_FLAG2_DIRECT_IO_ALLOW_MMAP (1u << (36 - 32))
#define FUSE_PROTO_MINOR_ALLOW_MMAP 39

void
fs_mount_init_conn(Fs *fs, struct fuse_conn_info *conn)
{
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
  if (conn->capable & FUSE_CAP_DIRECT_IO_ALLOW_MMAP) {
    conn->want |= FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
    g_atomic_int_set(&fs->direct_io_mmap, 1);
  }
#else
  if (conn->proto_major == 7 && conn->proto_minor >= FUSE_PROTO_MINOR_ALLOW_MMAP)
    g_atomic_int_set(&fs->init_patch_due, 1);
#endif
}

#ifndef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
static ssize_t
io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
  Fs *fs = userdata;
  guint8 msg[FUSE_OUT_HEADER_BYTES + FUSE_INIT_OUT_BYTES];
  gsize len = 0;
  guint32 flags, flags2;
  gint32 err;

  if (!g_atomic_int_get(&fs->init_patch_due))
    return writev(fd, iov, count);
  /* The first reply after INIT reached fs_init() is INIT's (the kernel sends
   * nothing else before it is answered). */
  for (int i = 0; i < count; i++)
    len += iov[i].iov_len;
  g_atomic_int_set(&fs->init_patch_due, 0);
  if (len != sizeof msg)
    return writev(fd, iov, count);
  len = 0;
  for (int i = 0; i < count; i++) {
    memcpy(msg + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  memcpy(&err, msg + 4, sizeof err);
  memcpy(&flags, msg + FUSE_OUT_HEADER_BYTES + FUSE_INIT_OUT_FLAGS, sizeof flags);
  if (err != 0 || !(flags & FUSE_FLAG_INIT_EXT))
    return write(fd, msg, sizeof msg);
  memcpy(&flags2, msg + FUSE_OUT_HEADER_BYTES + FUSE_INIT_OUT_FLAGS2, sizeof flags2);
  flags2 |= FUSE_FLAG2_DIRECT_IO_ALLOW_MMAP;
  memcpy(msg + FUSE_OUT_HEADER_BYTES + FUSE_INIT_OUT_FLAGS2, &flags2, sizeof flags2);
  {
    ssize_t n = write(fd, msg, sizeof msg);
    if (n == (ssize_t)sizeof msg)
      g_atomic_int_set(&fs->direct_io_mmap, 1);
    return n;
  }
}

static ssize_t
io_read(int fd, void *buf, size_t len, void *userdata)
{
  (void)userdata;
  return read(fd, buf, len);
}

static ssize_t
io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned int flags,
          void *userdata)
{
  (void)userdata;
  return splice(fdin, offin, fdout, offout, len, flags);
}
#endif

/* After the session is mounted: its writes through io_writev() (above). */
static void
session_io_setup(Fs *fs)
{
#ifndef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
  static const struct fuse_custom_io io = {
    .writev = io_writev,
    .read = io_read,
    .splice_receive = io_splice,
    .splice_send = io_splice,
  };
  if (fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se)) != 0)
    g_message("pitr files are served through the page cache only (the session's writes "
              "cannot be set up to ask for memory maps of direct_io files)");
#else
  (void)fs;
#endif
}

Fs *
fs_new(SqlenvfsRoot *root, gboolean allow_other)
{
  Fs *fs = g_new0(Fs, 1);
  fs->root = root;
  fs->uid = getuid();
  fs->gid = getgid();
  fs->started_at = sqlenvfs_clock_now();
  fs->allow_other = allow_other;
  fs_nodes_init(fs);
  fs->ops = sqlenvfs_ops_new(root);
  sqlenvfs_ops_set_busy_hint(fs->ops, fs_serve_open_prod_hint, fs);
  fs->ctl = fs_ctl_new(fs);
  /* Threads start on first use (after daemonizing). */
  fs->readahead = g_thread_pool_new(fs_serve_readahead_task, fs, 2, FALSE, NULL);
  g_mutex_init(&fs->bound_lock);
  g_cond_init(&fs->bound_cond);
  fs->pitr = fs_pitr_new(fs);
  return fs;
}

static gpointer
run_archiver(gpointer data)
{
  Fs *fs = data;
  g_autoptr(GError) error = NULL;
  if (!sqlenvfs_archiver_run(fs->archiver, &error))
    g_warning("the WAL archiver stopped: %s (the mount keeps serving; point-in-time "
              "recovery gets no new commits until it is remounted)",
              error->message);
  return NULL;
}

static void
archiver_start(Fs *fs)
{
  if (fs->archiver == NULL)
    return;
  sqlenvfs_ops_set_archiver(fs->ops, fs->archiver);
  /* Thread names are at most 15 characters (a longer one is not set). */
  fs->archiver_thread = g_thread_new("archiver", run_archiver, fs);
}

/* How often the live views of production are held against [archive]
 * max-wal-bytes and [cache] min-free-bytes (serve.c, invariant 7). */
#define LIVE_BOUND_US (500 * 1000)

static gpointer
run_live_bound(gpointer data)
{
  Fs *fs = data;
  g_mutex_lock(&fs->bound_lock);
  while (!fs->bound_stop) {
    gint64 until = g_get_monotonic_time() + LIVE_BOUND_US;
    while (!fs->bound_stop && g_cond_wait_until(&fs->bound_cond, &fs->bound_lock, until))
      ;
    if (fs->bound_stop)
      break;
    g_mutex_unlock(&fs->bound_lock);
    fs_serve_live_bound(fs);
    g_mutex_lock(&fs->bound_lock);
  }
  g_mutex_unlock(&fs->bound_lock);
  return NULL;
}

/* No open file of prod/ keeps production's WAL past [archive]
 * max-wal-bytes, nor growing into [cache] min-free-bytes. */
static void
live_bound_start(Fs *fs)
{
  const SqlenvfsSettings *s = sqlenvfs_root_settings(fs->root);
  if (s->max_wal_bytes <= 0 && s->cache_min_free_bytes <= 0)
    return;
  fs->bound_thread = g_thread_new("wal-bound", run_live_bound, fs);
}

static void
live_bound_stop(Fs *fs)
{
  if (fs->bound_thread == NULL)
    return;
  g_mutex_lock(&fs->bound_lock);
  fs->bound_stop = TRUE;
  g_cond_signal(&fs->bound_cond);
  g_mutex_unlock(&fs->bound_lock);
  g_thread_join(fs->bound_thread);
  fs->bound_thread = NULL;
}

/* Stop capture: run() returns once everything seen is archived and durable. */
static void
archiver_stop(Fs *fs)
{
  if (fs->archiver_thread != NULL) {
    sqlenvfs_archiver_stop(fs->archiver);
    g_thread_join(fs->archiver_thread);
    fs->archiver_thread = NULL;
  }
  sqlenvfs_ops_set_archiver(fs->ops, NULL);
}

void
fs_free(Fs *fs)
{
  fs_ctl_free(fs->ctl);
  live_bound_stop(fs);
  g_mutex_clear(&fs->bound_lock);
  g_cond_clear(&fs->bound_cond);
  g_thread_pool_free(fs->readahead, FALSE, TRUE);
  fs_release_open_files(fs);
  g_clear_pointer(&fs->archiver, sqlenvfs_archiver_free);
  fs_pitr_free(fs->pitr);
  sqlenvfs_ops_free(fs->ops);
  fs_nodes_clear(fs);
  g_free(fs);
}

static gboolean
serve(Fs *fs, gboolean single_thread)
{
  int rc;
  if (single_thread) {
    rc = fuse_session_loop(fs->se);
  } else {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_max_threads(cfg, MAX_THREADS);
    rc = fuse_session_loop_mt(fs->se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  /* rc > 0: the signal number that ended the loop; < 0: -errno. */
  if (rc < 0)
    g_warning("serving the mount failed: %s", g_strerror(-rc));
  else if (rc > 0)
    g_message("got signal %d: unmounting", rc);
  return rc >= 0;
}

/* What is mounted on @path ("fuse.sqlenvfs /srv/vessels"), from
 * /proc/self/mountinfo; NULL when nothing is. The last line for a path is
 * the mount on top. */
static char *
mounted_on(const char *path)
{
  g_autofree char *info = NULL;
  g_auto(GStrv) lines = NULL;
  char *found = NULL;

  if (!g_file_get_contents("/proc/self/mountinfo", &info, NULL, NULL))
    return NULL;
  lines = g_strsplit(info, "\n", -1);
  for (char **l = lines; *l; l++) {
    /* id parent major:minor root MOUNTPOINT options [optional...] - FSTYPE SOURCE super */
    g_auto(GStrv) f = g_strsplit(*l, " ", -1);
    guint n = g_strv_length(f), dash = 0;
    if (n < 5)
      continue;
    unescape_mountinfo(f[4]);
    if (strcmp(f[4], path) != 0)
      continue;
    for (guint i = 5; i < n; i++)
      if (strcmp(f[i], "-") == 0) {
        dash = i;
        break;
      }
    g_free(found);
    if (dash > 0 && dash + 2 < n) {
      unescape_mountinfo(f[dash + 2]);
      found = g_strdup_printf("%s %s", f[dash + 1], f[dash + 2]);
    } else {
      found = g_strdup("a filesystem");
    }
  }
  return found;
}

/* The mount point must be a directory that nothing is mounted on. A stale
 * FUSE mount (its daemon was killed: every access fails with ENOTCONN) and a
 * mount already there (stacking on it would hide it) are refused, saying how
 * to clear them. On success *real is the mount point with symlinks resolved. */
/* Whether path @a is @b or lies under it. */
static gboolean
path_within(const char *a, const char *b)
{
  gsize n = strlen(b);
  return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/' || (n == 1 && b[0] == '/'));
}

/* The mount point @mnt (a real path) must not be, hold or lie in a directory
 * of the root the daemon reads and writes (production, development, the
 * backups, the archive, its state and cache): the mount would hide them
 * from the applications and from the daemon itself, which would then wait
 * on its own mount. A directory of its own in the root is fine (the demo
 * mounts on ROOT/mnt). */
static gboolean
mountpoint_apart(SqlenvfsRoot *root, const char *mnt, GError **error)
{
  static const SqlenvfsDir dirs[] = { SQLENVFS_DIR_PROD, SQLENVFS_DIR_DEV, SQLENVFS_DIR_DAILY,
                                      SQLENVFS_DIR_SNAPSHOTS, SQLENVFS_DIR_WAL,
                                      SQLENVFS_DIR_CACHE, SQLENVFS_DIR_STATE };
  const char *rdir = sqlenvfs_root_dir(root);
  g_autofree char *real_root = realpath(rdir, NULL);

  if (real_root == NULL)
    return sqlenvfs_error_errno(error, errno, "resolve the root", rdir);
  for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
    const char *d = sqlenvfs_root_path(root, dirs[i]);
    g_autofree char *rel = g_strdup(d + strlen(rdir));
    g_autofree char *real_d = g_strconcat(real_root, rel, NULL);
    if (path_within(real_d, mnt) || path_within(mnt, real_d)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "mount %s on %s: the mount point %s %s, which the mount reads and writes: "
                  "mounted there, it would hide those files from the applications and from "
                  "itself. Choose a directory outside those (for example %s/mnt, or one "
                  "outside the root)",
                  rdir, mnt,
                  strcmp(real_d, mnt) == 0 ? "is" : path_within(real_d, mnt) ? "holds" : "lies in",
                  real_d,
                  real_root);
      return FALSE;
    }
  }
  return TRUE;
}

/* A stale mount of this same root on @mnt (its daemon is gone: killed, or
 * crashed) is detached, so that a service manager's restart mounts again
 * rather than fail on it for ever; TRUE when it was. A stale mount of
 * anything else is left for its owner. */
static gboolean
clear_own_stale_mount(SqlenvfsRoot *root, const char *mnt)
{
  g_autofree char *abs = g_canonicalize_filename(mnt, NULL);
  g_autofree char *what = mounted_on(abs);
  g_autofree char *ours = g_strdup_printf("fuse.sqlenvfs %s", sqlenvfs_root_dir(root));
  char *argv[] = { (char *)"fusermount3", (char *)"-u", (char *)"-z", abs, NULL };
  gint status = 0;

  if (what == NULL || strcmp(what, ours) != 0)
    return FALSE;
  if (umount2(abs, MNT_DETACH) != 0 &&
      (!g_spawn_sync(NULL, argv, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &status, NULL) ||
       !g_spawn_check_wait_status(status, NULL)))
    return FALSE;
  g_message("%s: detached the stale mount of this root that a daemon now gone left there", abs);
  return TRUE;
}

static gboolean
check_mountpoint(SqlenvfsRoot *root, const char *mnt, char **real, GError **error)
{
  const char *rdir = sqlenvfs_root_dir(root);
  g_autofree char *what = NULL;
  char buf[PATH_MAX];
  struct stat st;
  int rc = stat(mnt, &st);

  if (rc != 0 && errno == ENOTCONN && clear_own_stale_mount(root, mnt))
    rc = stat(mnt, &st);
  if (rc != 0) {
    int e = errno;
    if (e == ENOTCONN) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                  "mount %s on %s: the mount point is a stale mount (its daemon is gone: %s); "
                  "clear it with `fusermount3 -u %s`, then mount again",
                  rdir, mnt, g_strerror(e), mnt);
    } else if (e == ENOENT) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "mount %s on %s: the mount point does not exist (create it with mkdir)", rdir,
                  mnt);
    } else {
      g_autofree char *what_mnt = g_strdup_printf("mount %s on", rdir);
      return sqlenvfs_error_errno(error, e, what_mnt, mnt);
    }
    return FALSE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "mount %s on %s: the mount point is not a directory (give a directory; create "
                "one with mkdir)",
                rdir, mnt);
    return FALSE;
  }
  if (realpath(mnt, buf) == NULL)
    return sqlenvfs_error_errno(error, errno, "resolve the mount point", mnt);
  if (!mountpoint_apart(root, buf, error))
    return FALSE;
  what = mounted_on(buf);
  if (what != NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "mount %s on %s: %s is already mounted there (a second mount would hide it); "
                "unmount it first (`fusermount3 -u %s` or `umount %s`) or choose another "
                "directory",
                rdir, mnt, what, buf, buf);
    return FALSE;
  }
  *real = g_strdup(buf);
  return TRUE;
}

gboolean
sqlenvfs_fs_mount(const SqlenvfsMountOptions *opts, GError **error)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *mnt = NULL;
  g_autofree char *log_file = NULL;
  g_autoptr(GError) local = NULL;
  ParsedOptions po = { 0 };
  struct fuse_args args;
  Fs *fs;
  int lock_fd;
  gboolean is_mounted, has_served = FALSE, ok = FALSE;

  /* Two malloc arenas, not one per thread: a buffer freed by one of the 16
   * serving threads is not kept aside for that thread alone (the daemon's
   * memory stays bounded by what is in use, not by the threads that ever
   * served a large read). */
  mallopt(M_ARENA_MAX, 2);
  sqlenvfs_set_large_pages(FALSE);
  root = sqlenvfs_root_open_from(opts->root, opts->root_given_as ? opts->root_given_as : "--root",
                                 SQLENVFS_ROOT_MUST_EXIST, error);
  if (root == NULL)
    return FALSE;
  /* The cache's bounds, the log's and production's WAL's (held while a
   * file of prod/ is open, also with no archiver) are the operator's; an
   * error elsewhere is logged and stops only what needs its section
   * (ctl/prune, the shipping). */
  if (!sqlenvfs_root_settings_need(root, "cache", error) ||
      !sqlenvfs_root_settings_need(root, "mount", error) ||
      !sqlenvfs_root_settings_need(root, "archive", error))
    return FALSE;
  {
    g_autofree char *given = g_canonicalize_filename(opts->mountpoint, NULL);
    if (!check_mountpoint(root, given, &mnt, error))
      return FALSE;
  }
  /* The mount empties .cache and writes into .cache and .sqlenvfs: never
   * through a symlink. */
  if (!sqlenvfs_refuse_symlink(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE),
                                "use the state directory", error) ||
      !fs_pitr_check_cache_dir(root, error) || !sqlenvfs_root_ensure_layout(root, error) ||
      !fs_pitr_check_cache_dir(root, error))
    return FALSE;
  lock_fd = lock_root(root, &local);
  if (lock_fd < 0) {
    g_set_error(error, SQLENVFS_ERROR, local->code, "mount %s on %s: %s",
                sqlenvfs_root_dir(root), mnt, local->message);
    return FALSE;
  }

  /* Set-up in order; each step that fails unwinds what came before it, in
   * reverse, through the ladder at the end (libfuse's examples do the same). */
  parse_options(opts, sqlenvfs_root_dir(root), &po);
  fs = fs_new(root, po.allow_other);
  fs->remote = opts->remote;
  fs->remote_cache_max = opts->remote_cache_max;
  if (!check_options(&po, sqlenvfs_root_dir(root), mnt, error)) {
    if (opts->options_refused != NULL)
      *opts->options_refused = TRUE;
    goto out_fs;
  }
  if (!po.no_archiver && fs->remote == NULL) {
    fs->archiver = sqlenvfs_archiver_new(root, &local);
    if (fs->archiver == NULL) {
      g_set_error(error, SQLENVFS_ERROR, local->code,
                  "mount %s on %s: %s (the mount runs the root's archiver; to serve a root "
                  "that another process archives, mount with -o noarchiver)",
                  sqlenvfs_root_dir(root), mnt, local->message);
      goto out_fs;
    }
  }

  args = (struct fuse_args)FUSE_ARGS_INIT((int)po.argv->len - 1, (char **)po.argv->pdata);
  fuse_captured = g_string_new(NULL);
  fuse_set_log_func(capture_fuse_log);
  fs->se = fuse_session_new(&args, &sqlenvfs_fs_ops, sizeof sqlenvfs_fs_ops, fs);
  if (opts->options_refused != NULL)
    *opts->options_refused = fs->se == NULL;
  is_mounted = fs->se != NULL && fuse_session_mount(fs->se, mnt) == 0;
  if (!is_mounted) {
    /* One line: libfuse's message may span several. */
    g_strstrip(fuse_captured->str);
    g_strdelimit(fuse_captured->str, "\n", ' ');
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "mount %s on %s: %s%s",
                sqlenvfs_root_dir(root), mnt,
                *fuse_captured->str ? fuse_captured->str : "libfuse refused the mount",
                fs->se == NULL ? " (the -o options sqlenvfs takes are in `sqlenvfs mount "
                                 "--help`; the others go to FUSE, see mount.fuse3(8))"
                               : "");
  }
  g_string_free(g_steal_pointer(&fuse_captured), TRUE);
  if (fs->se == NULL)
    goto out_args;
  if (!is_mounted)
    goto out_session;
  session_io_setup(fs);

  log_file = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), "mount.log", NULL);
  fs_log_setup(log_file, opts->foreground || po.debug, po.debug,
               sqlenvfs_root_settings(root)->log_max_bytes);
  /* What was said on the terminal before is said again in the log. */
  sqlenvfs_root_forget_warnings(root);
  sqlenvfs_root_warn_settings(root);
  if (fuse_set_signal_handlers(fs->se) != 0)
    g_warning("could not install signal handlers: SIGTERM will not unmount cleanly");

  if (fuse_daemonize(opts->foreground || po.debug) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "mount %s on %s: could not start the daemon", sqlenvfs_root_dir(root), mnt);
    goto out_unmount;
  }
  /* From here on this is the daemon (or the foreground process). */
  if (!sqlenvfs_root_lock_set_pid(lock_fd))
    g_message("could not record the daemon's pid in the mount lock file");
  g_message("mounted %s on %s", sqlenvfs_root_dir(root), mnt);

  archiver_start(fs);
  /* With an archiver, it says when it captures (archiver_loop.c). */
  if (fs->archiver == NULL)
    sqlenvfs_notify_service("READY=1\nSTATUS=serving");
  live_bound_start(fs);
  fs_ctl_start(fs->ctl);
  ok = serve(fs, opts->single_thread);
  /* Finish the running operation before anything it uses goes away. */
  fs_ctl_stop(fs->ctl);
  live_bound_stop(fs);
  archiver_stop(fs);
  has_served = TRUE;

out_unmount:
  fuse_session_unmount(fs->se);
  fuse_remove_signal_handlers(fs->se);
out_session:
  fuse_session_destroy(fs->se);
  fs->se = NULL;
out_args:
  fuse_opt_free_args(&args);
out_fs:
  g_ptr_array_unref(po.argv);
  fs_free(fs);
  if (has_served)
    g_message("unmounted %s from %s", sqlenvfs_root_dir(root), mnt);
  if (has_served && opts->remote != NULL) {
    g_autofree char *fetched = sqlenvfs_remote_describe_fetched(opts->remote);
    g_message("mount --remote: this session fetched %s", fetched);
  }
  sqlenvfs_root_unlock(lock_fd);
  if (has_served && !ok)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "serving %s on %s failed (see the log)",
                sqlenvfs_root_dir(root), mnt);
  return has_served && ok;
}
