/*
 * fs.h — the FUSE front end's shared state (internal to src/fs/).
 *
 * The mount is a thin user of the core: every file it serves and every
 * operation it runs goes through the same core calls as the command line.
 * One file per concern:
 *
 *   fs.c      the low-level operations table and the inode table
 *   tree.c    path routing: what a path names, its attributes, its children
 *   serve.c   serving images: pinned live views (prod/, dev/) and stored
 *             files (snapshots/, backups/, pitr/) with a descriptor fast path
 *   ctl.c     ctl/<op> files: the write/read semantics and the op queue
 *   status.c  the status file (JSON)
 *   pitr.c    pitr/<time>/: each database's timeline, states read on demand
 *             into shared cache files, the .cache LRU
 *   mount.c   options, the root lock, mounting, daemonizing, the loop, teardown
 *   log.c     where log lines go (stderr in the foreground, a file otherwise)
 *
 * Lock order (never take a lock to the left while holding one to the right):
 *   ctl queue -> Fs.lock -> Fs.files_lock -> Fs.live_lock -> pitr file lock
 *   -> pitr cache lock -> handle locks; a timeline's own lock (timeline.h) is
 *   taken with none of the pitr locks held
 * No lock is held across a call that can wait on SQLite or the disk for long,
 * except a handle's own lock around its own reads, a pitr file's around the
 * pages it reads from the base and the archive, and a timeline's around its
 * refresh.
 */
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <glib.h>
#include <sys/stat.h>

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/ops.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"

G_BEGIN_DECLS

typedef struct _FsPitr FsPitr;
typedef struct _FsPitrFile FsPitrFile;
typedef struct _FsCtl FsCtl;
typedef struct _FsStatusCache FsStatusCache;
typedef struct _FsDiffCache FsDiffCache;

/* What a path in the mount names (tree.c). */
typedef enum {
  FS_ROOT,         /* /                                   */
  FS_ENV_DIR,      /* /prod, /dev                         */
  FS_LIVE_DB,      /* /prod/<db>.db, /dev/<db>.db         */
  FS_STORE_DIR,    /* /snapshots, /backups                */
  FS_COPY_DIR,     /* /snapshots/<ts>, /backups/<ts>      */
  FS_COPY_DB,      /* /snapshots/<ts>/<db>.db             */
  FS_PITR_DIR,     /* /pitr                               */
  FS_PITR_LINK,    /* /pitr/earliest, /pitr/latest        */
  FS_PITR_TIME,    /* /pitr/<time>                        */
  FS_PITR_DB,      /* /pitr/<time>/<db>.db                */
  FS_CTL_DIR,      /* /ctl                                */
  FS_CTL_FILE,     /* /ctl/<op>                           */
  FS_STATUS,       /* /status                             */
  FS_DIFF_DIR,     /* /diff                               */
  FS_DIFF_FROM,    /* /diff/<t1>                          */
  FS_DIFF_TO,      /* /diff/<t1>/<t2>                     */
  FS_DIFF_FILE,    /* /diff/<t1>/<t2>/<db>.sql|.summary   */
  FS_METRICS,      /* /metrics (metrics.c)                */
} FsKind;

typedef enum { FS_ENV_PROD, FS_ENV_DEV } FsEnv;

/* The routed meaning of a path. Strings are owned (fs_where_clear). */
typedef struct {
  FsKind kind;
  FsEnv env;                  /* FS_ENV_DIR, FS_LIVE_DB             */
  SqlenvfsCopyKind copy_kind; /* FS_STORE_DIR, FS_COPY_*            */
  SqlenvfsOp op;              /* FS_CTL_FILE                        */
  gboolean is_latest_link;    /* FS_PITR_LINK: latest (else earliest) */
  char *db;                   /* database name, without .db         */
  char *entry;                /* backup/snapshot name, or pitr time as spelled */
  gint64 time_us;             /* FS_PITR_*: the resolved time       */
  char *to;                   /* FS_DIFF_TO, _FILE: t2 as spelled   */
  gboolean is_summary;        /* FS_DIFF_FILE: <db>.summary         */
} FsWhere;

void fs_where_clear(FsWhere *w);

/* Attributes of a node and how long the kernel may cache them and its name. */
typedef struct {
  struct stat st;
  double entry_timeout; /* seconds the kernel may keep the name -> node     */
  double attr_timeout;  /* seconds the kernel may keep these attributes      */
  double negative_timeout; /* when the name does not exist: seconds the kernel
                              may remember that (0: ask again each time)   */
} FsAttr;

/* The whole mount. */
typedef struct {
  SqlenvfsRoot *root;
  struct fuse_session *se;
  uid_t uid; /* owner shown for every node: the mounting user */
  gid_t gid;
  gint64 started_at;
  gboolean allow_other;

  GMutex lock;       /* guards nodes */
  GHashTable *nodes; /* path -> FsNode *, every node the kernel knows but the root */

  GMutex files_lock;   /* guards files, next_file and each FsFile's refs (fs.c) */
  GHashTable *files;   /* handle number -> open file or directory */
  guint64 next_file;

  GMutex live_lock;    /* guards live_handles */
  GList *live_handles; /* FsHandle * of open prod/dev images (serve.c) */
  GThreadPool *readahead; /* read-ahead of live images (serve.c) */
  GThread *bound_thread;  /* fs_serve_live_bound every LIVE_BOUND_US (mount.c) */
  GMutex bound_lock;
  GCond bound_cond;
  gboolean bound_stop;    /* guarded by bound_lock */

  FsCtl *ctl;
  FsPitr *pitr;
  SqlenvfsArchiver *archiver; /* NULL with -o noarchiver */
  GThread *archiver_thread;
  FsStatusCache *status; /* the shared status document (status.c) */
  FsStatusCache *metrics; /* the shared metrics document (the same way) */
  FsDiffCache *diffs;    /* the diff/ documents made last (diff.c) */
  SqlenvfsOps *ops;
  gpointer remote;           /* mount --remote: its SqlenvfsRemote (remote.c), else NULL */
  guint64 remote_cache_max;
  /* The kernel allows a shared memory map of a file opened with direct_io
   * (FUSE_DIRECT_IO_ALLOW_MMAP, agreed at INIT: mount.c). Atomic. */
  gint direct_io_mmap;
  gint init_patch_due; /* mount.c: the INIT reply is to ask for it (atomic) */
} Fs;

/* mount.c ---------------------------------------------------------------- */

/* The state of a mount of @root (borrowed; must outlive it), before any
 * session: nodes, ops, ctl and pitr (no thread started); the caller sets the
 * archiver. fs_free() frees it all (stopping ctl's thread if started). */
Fs *fs_new(SqlenvfsRoot *root, gboolean allow_other);
void fs_free(Fs *fs);

/* At INIT (@conn): ask the kernel to allow a shared memory map of files
 * opened with direct_io, which fs->direct_io_mmap then says it does. */
void fs_mount_init_conn(Fs *fs, struct fuse_conn_info *conn);

/* fs.c ------------------------------------------------------------------- */

extern const struct fuse_lowlevel_ops sqlenvfs_fs_ops;
void fs_nodes_init(Fs *fs);
/* The handles the kernel never released (the connection was cut, or the
 * daemon stopped by a signal while files were open), each closed as a
 * release would: before what they read (the pitr cache, the archiver) is
 * freed. */
void fs_release_open_files(Fs *fs);
void fs_nodes_clear(Fs *fs);

/* remote.c --------------------------------------------------------------- */

/* mount --remote: whether top-level entry @name is hidden (everything but
 * snapshots, backups and pitr). */
gboolean fs_remote_hides(const Fs *fs, const char *name);

/* mount --remote: before a data file is opened, fetch what it reads into
 * the cache (a copy's database file; for pitr/<T>/<db>.db, the base its
 * plan starts from). TRUE at once for a local mount. */
gboolean fs_remote_prepare(Fs *fs, const FsWhere *where, GError **error);

/* tree.c ----------------------------------------------------------------- */

/* Route @path (relative to the mount: "" for the root, "prod/app.db") to what
 * it names and fill its attributes, as process @pid (0: unknown) sees them
 * (status: fs_status_snapshot). FALSE and NOT_FOUND (or another error)
 * when it names nothing. */
gboolean fs_tree_resolve(Fs *fs, const char *path, guint32 pid, FsWhere *where, FsAttr *attr,
                         GError **error);

/* The names in directory @where (without "." and ".."), newly allocated. */
GPtrArray *fs_tree_list(Fs *fs, const FsWhere *where, GError **error);

/* The target of a pitr link (a concrete time name). */
/* The target of pitr/earliest or pitr/latest. For a reader @pid (0: none),
 * latest stays what it first showed that process for a few seconds, so that
 * a tool that resolves the path twice for one file (cp stats it, opens it,
 * and refuses a file whose inode changed in between) gets one state. */
char *fs_tree_readlink(Fs *fs, const FsWhere *where, guint32 pid, GError **error);

/* A data file's mode from its source file's mode: read bits only. */
mode_t fs_tree_data_mode(mode_t source_mode);

/* Sets a file's mtime, atime and ctime to @us (microseconds since the epoch). */
void fs_tree_set_times(struct stat *st, gint64 us);

/* Who asks (from fuse_req_ctx and fuse_req_getgroups). */
typedef struct {
  uid_t uid;
  gid_t gid;
  gid_t groups[64];
  int n_groups;
} FsCaller;

/* Whether @caller could do @mask (R_OK and/or X_OK) on what @where shows
 * if it went to the root itself: on the files and directories it comes
 * from, with search permission on every directory above them, as the
 * kernel would decide from their owners and modes. The files behind each
 * node: / the root; prod/, dev/ data/prod, data/dev and their databases;
 * snapshots/, backups/ their directories, entries and copies; pitr/ the WAL
 * archive directory, and a pitr/<time>/<db>.db the archive of <db>
 * (search) and production's <db>.db (read); status and the ctl/ results
 * need data/prod to be listable (read and search). Writes to ctl/ are
 * checked elsewhere. */
gboolean fs_tree_may_access(Fs *fs, const FsWhere *where, const FsCaller *caller, int mask);

/* serve.c ---------------------------------------------------------------- */

typedef struct _FsHandle FsHandle;

/* Open a data file (prod/dev live view, stored copy, pitr image) for the
 * process @pid (0: unknown): pins the state or opens the file. Sets
 * fi->direct_io / keep_cache as fits. NULL and *error on failure. */
FsHandle *fs_serve_open(Fs *fs, const FsWhere *where, guint32 pid, struct fuse_file_info *fi,
                        GError **error);

/* Reply to a read of @size bytes at @off (fuse_reply_buf / fuse_reply_data). */
void fs_serve_read(Fs *fs, fuse_req_t req, FsHandle *h, size_t size, off_t off);

/* Size and mtime of the state an open handle shows. */
void fs_serve_handle_stat(FsHandle *h, struct stat *st);

void fs_serve_release(Fs *fs, FsHandle *h);

/* The read-ahead pool's function (serve.c, invariant 4). */
void fs_serve_readahead_task(gpointer data, gpointer user);

/* Attributes of a live database (prod/dev) without pinning it: size of the
 * current committed state, mtime of its last write. */
gboolean fs_serve_live_stat(Fs *fs, FsEnv env, const char *db, struct stat *st, GError **error);

/* Let go of the live views under which the WAL has grown (past its size
 * when they were pinned) past [archive] max-wal-bytes (production's), or
 * until less than [cache] min-free-bytes is free on production's
 * filesystem (sqlenvfs_root_wal_bound_reached): their reads fail with EIO
 * from then on (serve.c, invariant 7). Called every LIVE_BOUND_US by the
 * mount. */
void fs_serve_live_bound(Fs *fs);

/* The files under prod/ of production's database @db (NULL: of every one)
 * open through this mount, which hold the WAL from being reset: a sentence
 * naming them and their openers, or NULL when there are none
 * (SqlenvfsOpsBusyHint, for a checkpoint that a reader was in the way of). */
char *fs_serve_open_prod_hint(gpointer fs, const char *db);

/* The largest size any open handle of (env, db) shows (0 if none): so that a
 * stat between an open and its reads never reports less than the pinned state
 * (SQLite treats a file shorter than its header's page count as corrupt). */
guint64 fs_serve_live_open_size(Fs *fs, FsEnv env, const char *db);

/* ctl.c ------------------------------------------------------------------ */

FsCtl *fs_ctl_new(Fs *fs);
/* Start the thread that runs operations (after daemonizing). */
void fs_ctl_start(FsCtl *ctl);
/* Finish the running operation, abandon queued ones (their writers get
 * EINTR), and stop the thread. */
void fs_ctl_stop(FsCtl *ctl);
void fs_ctl_free(FsCtl *ctl);

/* The one-line last result of @op, with a newline. */
char *fs_ctl_read(FsCtl *ctl, SqlenvfsOp op);

/* A write of @buf to ctl/<op>: parse it (EINVAL at once if it cannot be
 * parsed), queue the operation, and reply when it has finished (EINTR,
 * and nothing run, when the writer is interrupted while it waits its
 * turn). */
void fs_ctl_write(FsCtl *ctl, fuse_req_t req, SqlenvfsOp op, const char *buf, size_t size);

/* status.c --------------------------------------------------------------- */

/* The status document, newly allocated JSON text. */
char *fs_status_render(Fs *fs);

/* The metrics file (Prometheus text format; metrics.c), newly allocated,
 * its length in *@len. */
char *fs_metrics_render(Fs *fs, gsize *len);

/* A document shown by a file of the mount (status, metrics), rendered by
 * @render (newly allocated text) and shared as fs_status_snapshot says. */
FsStatusCache *fs_status_cache_new(char *(*render)(Fs *fs));
void fs_status_cache_free(FsStatusCache *c);
/* The document of @c, as fs_status_snapshot gives that of /status. */
char *fs_doc_snapshot(Fs *fs, FsStatusCache *c, guint32 pid, gsize *len, gint64 *rendered_us);
/* The metrics file's text, newly allocated (fs_metrics_render). */
char *fs_metrics_text(Fs *fs);

/* The document that lookup, getattr and open of /status share: the one
 * process @pid (0: unknown) was shown a moment ago, else the one rendered
 * last if it is still fresh (asked for within a moment and young), else a
 * new rendering. Newly allocated; *len its length, *rendered_us the time it
 * was rendered (may be NULL). So stat's size equals what a read of an open
 * made right after returns. */
char *fs_status_snapshot(Fs *fs, guint32 pid, gsize *len, gint64 *rendered_us);

/* Forget the shared documents (an operation finished: show its result). */
void fs_status_invalidate(Fs *fs);

/* diff.c ----------------------------------------------------------------- */

/* The names in diff/<t1>/<t2>/: <db>.sql and <db>.summary for each database
 * recoverable at both times. */
GPtrArray *fs_diff_list(Fs *fs, const FsWhere *where, GError **error);

/* A time of diff/<t1>/<t2>/: any name pitr/<name> takes
 * (fs_pitr_resolve_time), and `earliest` and `latest`, the targets of
 * pitr/'s links, as `sqlenvfs diff --to latest` takes its default. */
gboolean fs_diff_resolve_time(Fs *fs, const char *name, gint64 *time_us, gboolean *is_lasting,
                              GError **error);

/* The content of a diff/<t1>/<t2>/<db>.sql (or with @is_summary its
 * .summary) between the two resolved times, generated in memory
 * (sqlenvfs_diff_run), or kept from the lookup before (diff.c). NULL and
 * *error when a time is not recoverable or the diff fails. */
GBytes *fs_diff_document(Fs *fs, const char *db, gboolean is_summary, gint64 from_us,
                         gint64 to_us, GError **error);

/* fs_diff_document for the file @where, its times resolved now. */
GBytes *fs_diff_render(Fs *fs, const FsWhere *where, GError **error);

FsDiffCache *fs_diff_cache_new(void);
void fs_diff_cache_free(FsDiffCache *c);

/* pitr.c ----------------------------------------------------------------- */

/* One database's state at one time, as the restore plan says (no rebuild). */
typedef struct {
  guint64 size;     /* bytes of the rebuilt file           */
  gint64 state_us;  /* capture time of the state's commit  */
  mode_t mode;      /* the production file's mode          */
} FsPitrState;

/* Refuse to start on a .cache that is a symlink or not a directory (the
 * mount empties it and writes into it). */
gboolean fs_pitr_check_cache_dir(SqlenvfsRoot *root, GError **error);

FsPitr *fs_pitr_new(Fs *fs);
void fs_pitr_free(FsPitr *p);

/* pitr/<name> (or another @dir of the mount's, "diff", in what it says):
 * parse @name (any form of timefmt.h) and check that it is inside the
 * recoverable window of at least one database. TRUE and the concrete time;
 * FALSE with NOT_FOUND or GAP saying why (also logged), and *is_lasting
 * TRUE when the name will not resolve later either (not a time; a time
 * before the earliest recoverable time or between two windows), FALSE when
 * it may (a time in the future or past the newest window's end). */
gboolean fs_pitr_resolve_time(FsPitr *p, const char *dir, const char *name, gint64 *time_us,
                              gboolean *is_lasting, GError **error);

/* The window over every database: the earliest and the latest time
 * recoverable for every database being archived (so that
 * pitr/earliest/<db>.db and pitr/latest/<db>.db exist for each of them,
 * latest its newest known state; a database whose window ended seconds
 * before the others' is left out). A database whose archive goes on past
 * its last window (sqlenvfs_timeline_unrecoverable_tail) counts its newest
 * archived time as its end: latest is then not inside its window, and
 * pitr/latest/<db>.db does not exist, as `restore --time latest` refuses
 * it. When those databases share no time, earliest is the earliest
 * recoverable time of any. */
gboolean fs_pitr_window(FsPitr *p, gint64 *earliest_us, gint64 *latest_us, GError **error);

/* The recoverable windows of @db (SqlenvfsRestoreWindow *, a new reference)
 * from the database's timeline, which the mount holds and refreshes when
 * the archive or the store changed. NULL and *error when it cannot be read. */
GPtrArray *fs_pitr_db_windows(FsPitr *p, const char *db, GError **error);

/* sqlenvfs_timeline_unread of @db's timeline: why its last refresh could
 * not read the archive or the copies (newly allocated), or NULL. */
char *fs_pitr_db_unread(FsPitr *p, const char *db);

/* sqlenvfs_timeline_unrecoverable_tail of @db's timeline, as above, or
 * with @newest its _newest (an archive with no window at all too, as list
 * and doctor say it); FALSE also when the timeline cannot be read
 * (fs_pitr_db_windows says why). */
gboolean fs_pitr_db_unrecoverable(FsPitr *p, const char *db, gboolean newest, gint64 *from_us,
                                  gint64 *to_us, char **why);

/* "earliest", "latest" when there is a window; none otherwise. */
GPtrArray *fs_pitr_list_links(FsPitr *p, GError **error);

/* Databases recoverable at @time_us (names without .db). */
GPtrArray *fs_pitr_list_dbs(FsPitr *p, gint64 time_us, GError **error);

/* The state of @db at @time_us from its plan (cheap: reads no pages). */
gboolean fs_pitr_stat(FsPitr *p, const char *db, gint64 time_us, FsPitrState *state,
                      GError **error);

/* Open the state of @db at @time_us: -1 with *@file set, the state read on
 * demand (its base checked, restore.h), shared by every opener of the
 * state, which reads it with fs_pitr_file_read and lets go of it with
 * fs_pitr_file_release (a descriptor >= 0 of a whole file is not given
 * today: every state reads its base's pages from the base). -1 with *@file
 * NULL and *error on failure. */
int fs_pitr_open(FsPitr *p, const char *db, gint64 time_us, FsPitrState *state, FsPitrFile **file,
                 GError **error);

/* Read up to @len bytes at @off of the state (its bytes exactly, as the
 * restore writes them; the header is not patched): the base's pages from
 * the base (checked unchanged before returning), the composed pages from
 * the cache file, or from the archive and written to it; once every
 * composed page is there it becomes the cached file (invariant 1 of
 * pitr.c). Safe from any thread. The bytes read, 0 past the end, or -1 and
 * *error (a damaged record, a base that changed: INTEGRITY; never a wrong
 * page). */
gssize fs_pitr_file_read(FsPitrFile *f, void *buf, gsize len, goffset off, GError **error);
guint64 fs_pitr_file_size(const FsPitrFile *f);
void fs_pitr_file_release(FsPitr *p, FsPitrFile *f);
/* Whether @f (held by the caller) was opened before the open that holds it:
 * FALSE for the open that made the state. */
gboolean fs_pitr_file_opened_before(FsPitr *p, const FsPitrFile *f);

/* Counters for status: plans computed, rebuilds run, cache hits, bytes, and
 * lookups of names that name nothing (counted all, though the log says only
 * the first few of a burst). */
typedef struct {
  guint64 n_plans, n_rebuilds, n_hits, n_evicted, n_failed_lookups;
  guint64 cache_bytes, cache_max_bytes;
  guint n_cached;
  guint64 n_timelines_opened, n_timeline_refreshes;
  guint64 bytes_from_sources; /* page bytes read from bases and archives on demand */
  guint64 bytes_served; /* bytes pitr reads replied with (any source): what reached the daemon */
} FsPitrStats;
void fs_pitr_stats(FsPitr *p, FsPitrStats *out);

/* What pitr/latest shows the process @pid, given the newest @latest_us: the
 * value first shown to @pid within the last few seconds, else @latest_us
 * (remembered for @pid). Every value shown stays recoverable: windows only
 * grow at their ends. @pid 0 gets @latest_us. */
gint64 fs_pitr_latest_for(FsPitr *p, guint32 pid, gint64 latest_us);

/* log.c ------------------------------------------------------------------ */

/* Send log lines to stderr (@to_stderr) or to @file (appending; never
 * through a symlink; renamed to @file.1, replacing it, once it passes
 * @max_bytes, so the log takes at most about twice that), with
 * g_debug/g_info shown only when @verbose. libfuse's log goes the same way. */
void fs_log_setup(const char *file, gboolean to_stderr, gboolean verbose, gint64 max_bytes);

G_END_DECLS
