/*
 * serve.c — serving images: what a read of a data file returns.
 *
 *   prod/, dev/      a pinned live view per open file handle (liveview.h):
 *                    one open sees one committed state while the application
 *                    keeps writing; read through the view's image with the
 *                    rollback-journal header; direct_io (never cached).
 *   snapshots/, backups/, pitr/
 *                    a plain file that never changes: read straight from its
 *                    descriptor (fuse_reply_data with an fd buffer, so
 *                    libfuse can splice it), keep_cache so that re-reads come
 *                    from the page cache.
 *   pitr/            the state read on demand (fs_pitr_file_read): each read
 *                    takes the pages it covers from the base (read straight
 *                    into the reply) and from the cache file of composed
 *                    pages (composed from the archive the first time), so
 *                    that a query reads only the pages it needs and a whole
 *                    read reads the base once; keep_cache, as the bytes
 *                    never change, and direct_io on the state's first open
 *                    (invariant 6).
 *
 * Invariants:
 *   (1) Every image served reads with bytes 18 and 19 of the header equal to
 *       1 (rollback journal), so SQLite opens it in place on the read-only
 *       mount with no -wal/-shm. Stored files get the two bytes patched in
 *       the replies that cover them; everything else is served untouched.
 *   (2) A live view is released when its handle is (release()), so a
 *       pinned state never outlives the last reader that needs it; or before,
 *       when it is let go (7).
 *   (3) The size a stat shows for a live database is never smaller than the
 *       state an open handle of it serves (fs_serve_live_open_size).
 *   (4) direct_io reads get no read-ahead from the kernel, so a sequential
 *       reader of a live image would wait for the disk on every request: the
 *       handle reads the next PREFETCH_WINDOW of its image ahead on the
 *       read-ahead pool (through the view, never a descriptor of ours), which
 *       brings those pages into the OS page cache. A handle is released only
 *       once its read-ahead tasks have finished.
 *   (5) A pitr read is composed in a buffer kept from one request to the
 *       next (2 MiB aligned, huge pages asked for): replying pins its pages
 *       for the kernel to copy them into the page cache, and a buffer
 *       allocated per request would be faulted in and pinned page by page
 *       each time. At most REPLY_POOL such buffers are kept, shared by the
 *       serving threads (one per thread made the daemon's memory grow by 2
 *       MiB with each thread that ever served a pitr read); a read that
 *       finds none free uses one of its own for that reply.
 *   (6) The open of a pitr file that made its state (the first in this
 *       mount) is served with direct_io: its reads go from the base and the
 *       cache file straight into the reader's buffer, and the kernel keeps
 *       none of it, so that a state read once (a copy, a look at a time)
 *       costs no page cache the size of the database, whose pages would be
 *       written once more and taken from what other files have cached.
 *       Every later open of the state is served like a snapshot, with
 *       keep_cache: the kernel keeps what it reads and re-reads come from
 *       the page cache without reaching the daemon. direct_io is used only
 *       when the kernel allows a shared memory map of such a file (mount.c:
 *       fs->direct_io_mmap), so that every open can be memory-mapped like
 *       every other file of the mount.
 *   (7) A live view of production keeps its WAL from being reset for as
 *       long as its file is open (and one of development, development's). A
 *       view under which the WAL has grown (past its size at the pin) past
 *       [archive] max-wal-bytes (production's), or until less than [cache]
 *       min-free-bytes is free on production's filesystem, is let go
 *       (fs_serve_live_bound): the handle's reads fail with EIO from then
 *       on, never with bytes of another state, so that a file left open
 *       under prod/ or dev/ cannot fill production's disk.
 *   (8) Only a database in WAL mode is served under prod/ and dev/: in
 *       rollback-journal mode a view is a shared lock, under which the
 *       application cannot commit, held for as long as the file is open. An
 *       open of any other fails with EPERM (a stat still shows it).
 *   (9) A backup or snapshot file is served only while its base verdict
 *       (store.h, verifymemo.h) for the file as it is now is good: one
 *       known bad (to this process or to the memo) fails the open with
 *       EIO, and one with no verdict (changed since it was written or
 *       checked) is checked at the open (size, header, crc32 against its
 *       MANIFEST: the whole file read once) and the verdict remembered.
 *       Never the bytes of a copy that is not what its MANIFEST says.
 */
#include "fs.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define HDR_SIZE 100
#define HDR_WRITE_VERSION 18
#define HDR_READ_VERSION 19
static const char sqlite_magic[16] = "SQLite format 3";

#define PREFETCH_WINDOW (8u << 20)
#define REPLY_BUF_SIZE (2u << 20) /* > the largest request (1 MiB) */
#define PREFETCH_CHUNK (1u << 20)

struct _FsHandle {
  FsKind kind;
  FsEnv env;
  char *db; /* live: the database name; stored: the file, for messages */
  guint64 size;
  gint64 mtime_us;

  /* live */
  SqlenvfsLiveView *view; /* its image is read from any thread (invariant 4); NULL once
                           * let go (invariant 7)                             */
  GRWLock view_lock;      /* readers of the view hold it shared; letting go, whole */
  gint letting_go;        /* atomic: set before letting go, so that no new reader
                           * takes view_lock and the letting go never waits long */
  gint said_let_go;       /* atomic: a failed read was logged (once per handle) */
  gint64 wal_at_pin;      /* size of the WAL file when the view was pinned */
  gint64 let_go_wal;      /* the WAL's size when the view was let go (0: not) */
  guint32 pid;            /* the process that opened it (0: unknown)        */
  char *let_go_why;       /* the bound it reached, for the reads after       */
  GMutex ra_lock;         /* guards the read-ahead fields */
  GCond ra_done;
  guint64 next_expected;  /* where a sequential reader reads next */
  guint64 ra_end;         /* read ahead (or asked for) up to here */
  guint ra_running;       /* read-ahead tasks in flight */
  gboolean closing;

  /* stored file */
  int fd;
  gboolean patch_header; /* bytes 18/19 read 2 (WAL) in the file */

  /* pitr state read on demand (fd is -1) */
  FsPitrFile *pitr_file;
};

static const char *
env_dir_name(FsEnv env)
{
  return env == FS_ENV_PROD ? "prod" : "dev";
}

static char *
live_path(Fs *fs, FsEnv env, const char *db)
{
  return env == FS_ENV_PROD ? sqlenvfs_root_prod_db(fs->root, db)
                            : sqlenvfs_root_dev_db(fs->root, db);
}

static gint64
stat_mtime_us(const struct stat *st)
{
  return (gint64)st->st_mtim.tv_sec * G_USEC_PER_SEC + st->st_mtim.tv_nsec / 1000;
}

/* Time of the last write to a live database: its WAL's mtime when it has
 * one (commits write the WAL; checkpoints do not), else the file's. */
static gint64
last_write_us(const char *path, const struct stat *db_st)
{
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  struct stat st;
  if (stat(wal, &st) == 0 && st.st_size >= 32)
    return stat_mtime_us(&st);
  return stat_mtime_us(db_st);
}

gboolean
fs_serve_live_stat(Fs *fs, FsEnv env, const char *db, struct stat *st, GError **error)
{
  g_autofree char *path = live_path(fs, env, db);
  g_autoptr(sqlite3) conn = NULL;
  gint64 page_count, page_size;

  if (stat(path, st) != 0) {
    if (errno == ENOENT)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "/%s/%s.db: no such database",
                  env_dir_name(env), db);
    else
      sqlenvfs_error_errno(error, errno, "stat", path);
    return FALSE;
  }
  if (!S_ISREG(st->st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "%s: not a regular file", path);
    return FALSE;
  }
  {
    gint64 us = last_write_us(path, st);
    st->st_mtim.tv_sec = us / G_USEC_PER_SEC;
    st->st_mtim.tv_nsec = (us % G_USEC_PER_SEC) * 1000;
  }
  /* The committed size, WAL included, through SQLite (no descriptor of ours
   * on a live file). If that fails, the file's size is the best guess. */
  conn = sqlenvfs_db_open(path, SQLENVFS_OPEN_READONLY, NULL);
  if (conn != NULL) {
    if (sqlenvfs_db_query_int(conn, "PRAGMA page_count", &page_count, path, NULL) &&
        sqlenvfs_db_query_int(conn, "PRAGMA page_size", &page_size, path, NULL))
      st->st_size = (off_t)(page_count * page_size);
  }
  return TRUE;
}

guint64
fs_serve_live_open_size(Fs *fs, FsEnv env, const char *db)
{
  guint64 size = 0;
  g_mutex_lock(&fs->live_lock);
  for (GList *l = fs->live_handles; l; l = l->next) {
    FsHandle *h = l->data;
    if (h->env == env && strcmp(h->db, db) == 0 && h->size > size)
      size = h->size;
  }
  g_mutex_unlock(&fs->live_lock);
  return size;
}

static FsHandle *
open_live(Fs *fs, const FsWhere *where, guint32 pid, GError **error)
{
  g_autofree char *path = live_path(fs, where->env, where->db);
  g_autofree char *not_wal = NULL;
  SqlenvfsLiveView *view;
  const SqlenvfsWalPos *pos;
  FsHandle *h;
  struct stat st;
  gint64 written;

  /* Only in WAL mode, and not opened otherwise (it is left as it is):
   * production and development alike, whose application the lock would
   * keep out as much. */
  view = sqlenvfs_live_view_open_wal(path, &not_wal, error);
  if (not_wal != NULL) {
    /* Invariant 8: the view would be a shared lock held open. */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s is not in WAL mode (journal_mode=%s): a consistent image of it would hold a "
                "lock that keeps the application's commits out for as long as the file is open, "
                "so it is not served (switch it with `PRAGMA journal_mode=WAL`)",
                path, not_wal);
    return NULL;
  }
  if (view == NULL)
    return NULL;
  pos = sqlenvfs_live_view_pos(view);
  h = g_new0(FsHandle, 1);
  h->kind = FS_LIVE_DB;
  h->pid = pid;
  h->env = where->env;
  h->db = g_strdup(where->db);
  h->fd = -1;
  h->view = view;
  g_rw_lock_init(&h->view_lock);
  {
    g_autofree char *wal = g_strconcat(path, "-wal", NULL);
    h->wal_at_pin = stat(wal, &st) == 0 ? (gint64)st.st_size : 0;
  }
  g_mutex_init(&h->ra_lock);
  g_cond_init(&h->ra_done);
  h->size = sqlenvfs_image_size(sqlenvfs_live_view_image(view));
  /* The state is the last commit before the pin: its time is the last write,
   * unless someone wrote again since (then the pin time bounds it). */
  written = stat(path, &st) == 0 ? last_write_us(path, &st) : pos->pinned_at;
  h->mtime_us = MIN(written, pos->pinned_at);
  g_debug("open /%s/%s.db: pinned %" G_GUINT64_FORMAT " bytes at WAL frame %u",
          env_dir_name(where->env), where->db, h->size, pos->frame);

  g_mutex_lock(&fs->live_lock);
  fs->live_handles = g_list_prepend(fs->live_handles, h);
  g_mutex_unlock(&fs->live_lock);
  return h;
}

/* A stored file (snapshot, backup, rebuilt pitr state) on descriptor @fd
 * (taken over). */
static FsHandle *
open_stored_fd(int fd, const char *path, FsKind kind, gint64 mtime_us, GError **error)
{
  guint8 hdr[HDR_SIZE];
  struct stat st;
  ssize_t n;
  FsHandle *h;

  if (fstat(fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "stat", path);
    close(fd);
    return NULL;
  }
  n = pread(fd, hdr, sizeof hdr, 0);
  if (n < 0) {
    sqlenvfs_error_errno(error, errno, "read", path);
    close(fd);
    return NULL;
  }
  h = g_new0(FsHandle, 1);
  h->kind = kind;
  h->db = g_strdup(path); /* for messages */
  h->fd = fd;
  h->size = (guint64)st.st_size;
  h->mtime_us = mtime_us;
  h->patch_header = n == HDR_SIZE && memcmp(hdr, sqlite_magic, sizeof sqlite_magic) == 0 &&
                    (hdr[HDR_WRITE_VERSION] != 1 || hdr[HDR_READ_VERSION] != 1);
  return h;
}

/* A pitr state read on demand (@file taken over): its header is read now
 * to know whether to patch it, as for a stored file. */
static FsHandle *
open_pitr_file(Fs *fs, FsPitrFile *file, const char *db, gint64 mtime_us, GError **error)
{
  guint8 hdr[HDR_SIZE];
  gssize n = fs_pitr_file_read(file, hdr, sizeof hdr, 0, error);
  FsHandle *h;

  if (n < 0) {
    fs_pitr_file_release(fs->pitr, file);
    return NULL;
  }
  h = g_new0(FsHandle, 1);
  h->kind = FS_PITR_DB;
  h->db = g_strdup(db);
  h->fd = -1;
  h->pitr_file = file;
  h->size = fs_pitr_file_size(file);
  h->mtime_us = mtime_us;
  h->patch_header = n == HDR_SIZE && memcmp(hdr, sqlite_magic, sizeof sqlite_magic) == 0 &&
                    (hdr[HDR_WRITE_VERSION] != 1 || hdr[HDR_READ_VERSION] != 1);
  return h;
}

/* Invariant 9: whether the copy @sdb, open as @fd, may be served. */
static gboolean
copy_is_good(Fs *fs, const SqlenvfsStoredCopy *copy, const SqlenvfsStoredDb *sdb, int fd,
             GError **error)
{
  g_autofree char *memo_path = sqlenvfs_verify_memo_path(fs->root);
  g_autoptr(SqlenvfsVerifyMemo) memo =
    sqlenvfs_verify_memo_load(memo_path, g_get_real_time(), NULL);
  g_autofree char *why = NULL;
  SqlenvfsBaseState state = sqlenvfs_verify_memo_base_state(memo, sdb, &why);

  if (state == SQLENVFS_BASE_UNCHECKED) {
    g_autoptr(GError) local = NULL;
    SqlenvfsFileId id;
    if (sqlenvfs_store_check_base(sdb, fd, &id, &local)) {
      sqlenvfs_verify_memo_note_base(fs->root, sdb, &id, FALSE, NULL);
      return TRUE;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY) ||
        !sqlenvfs_store_base_known_bad(sdb, &why)) {
      g_propagate_error(error, g_steal_pointer(&local)); /* unreadable, or changed meanwhile */
      return FALSE;
    }
    sqlenvfs_verify_memo_note_base(fs->root, sdb, &id, FALSE, why);
    state = SQLENVFS_BASE_BAD;
  }
  if (state == SQLENVFS_BASE_BAD) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s %s of %s is damaged (%s); it is not served (`sqlenvfs verify` names every "
                "damaged copy; take another backup or snapshot)",
                sqlenvfs_copy_kind_name(copy->kind), copy->name, sdb->db, why);
    return FALSE;
  }
  return TRUE;
}

FsHandle *
fs_serve_open(Fs *fs, const FsWhere *where, guint32 pid, struct fuse_file_info *fi,
              GError **error)
{
  FsHandle *h = NULL;

  switch (where->kind) {
  case FS_LIVE_DB:
    h = open_live(fs, where, pid, error);
    fi->direct_io = 1;
    break;
  case FS_COPY_DB: {
    g_autoptr(SqlenvfsStoredCopy) copy =
      sqlenvfs_store_load(fs->root, where->copy_kind, where->entry, error);
    const SqlenvfsStoredDb *sdb;
    int fd;
    if (copy == NULL)
      return NULL;
    sdb = sqlenvfs_stored_copy_find(copy, where->db);
    if (sdb == NULL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "%s has no database %s",
                  copy->dir, where->db);
      return NULL;
    }
    fd = open(sdb->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      sqlenvfs_error_errno(error, errno, "open", sdb->path);
      return NULL;
    }
    if (!copy_is_good(fs, copy, sdb, fd, error)) {
      close(fd);
      return NULL;
    }
    h = open_stored_fd(fd, sdb->path, FS_COPY_DB,
                       sdb->pos.pinned_at ? sdb->pos.pinned_at : copy->time, error);
    fi->keep_cache = 1;
    break;
  }
  case FS_PITR_DB: {
    FsPitrState state;
    FsPitrFile *file = NULL;
    int fd = fs_pitr_open(fs->pitr, where->db, where->time_us, &state, &file, error);
    if (fd >= 0) {
      h = open_stored_fd(fd, where->db, FS_PITR_DB, state.state_us, error);
      fi->keep_cache = 1;
    } else if (file != NULL) {
      /* The open that made the state reads it with direct_io (invariant 6);
       * every later one through the page cache, like a snapshot. */
      gboolean first = !fs_pitr_file_opened_before(fs->pitr, file);
      h = open_pitr_file(fs, file, where->db, state.state_us, error);
      fi->keep_cache = 1;
      if (first && g_atomic_int_get(&fs->direct_io_mmap))
        fi->direct_io = 1;
    } else {
      return NULL;
    }
    break;
  }
  default:
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "not a data file");
    return NULL;
  }
  return h;
}

void
fs_serve_handle_stat(FsHandle *h, struct stat *st)
{
  st->st_size = (off_t)h->size;
  st->st_blocks = (blkcnt_t)((h->size + 511) / 512);
  st->st_mtim.tv_sec = h->mtime_us / G_USEC_PER_SEC;
  st->st_mtim.tv_nsec = (h->mtime_us % G_USEC_PER_SEC) * 1000;
}

typedef struct {
  FsHandle *h;
  guint64 from, to;
} ReadAhead;

/* A read-ahead task (invariant 4): read [from, to) of the image and drop
 * the bytes; what matters is that the OS has them cached for the reader. */
void
fs_serve_readahead_task(gpointer data, gpointer user)
{
  ReadAhead *ra = data;
  FsHandle *h = ra->h;
  g_autofree guint8 *scratch = g_malloc(PREFETCH_CHUNK);
  (void)user;

  for (guint64 off = ra->from; off < ra->to; off += PREFETCH_CHUNK) {
    gboolean closing, done;
    g_mutex_lock(&h->ra_lock);
    closing = h->closing;
    g_mutex_unlock(&h->ra_lock);
    if (closing || g_atomic_int_get(&h->letting_go))
      break;
    g_rw_lock_reader_lock(&h->view_lock);
    done = h->view == NULL ||
           sqlenvfs_image_read(sqlenvfs_live_view_image(h->view), scratch,
                               (gsize)MIN((guint64)PREFETCH_CHUNK, ra->to - off), (goffset)off, 0,
                               NULL) <= 0;
    g_rw_lock_reader_unlock(&h->view_lock);
    if (done)
      break;
  }
  g_mutex_lock(&h->ra_lock);
  h->ra_running--;
  g_cond_broadcast(&h->ra_done);
  g_mutex_unlock(&h->ra_lock);
  g_free(ra);
}

/* A read at @off of @size: if it continues the last one, make sure the
 * window after it is being read ahead. */
static void
maybe_read_ahead(Fs *fs, FsHandle *h, guint64 off, guint64 size)
{
  ReadAhead *ra = NULL;
  g_mutex_lock(&h->ra_lock);
  if (off == h->next_expected && fs->readahead != NULL) {
    guint64 want = MIN(off + size + PREFETCH_WINDOW, h->size);
    if (h->ra_end < off + size)
      h->ra_end = off + size;
    if (want >= h->ra_end + PREFETCH_WINDOW / 2 || (want == h->size && want > h->ra_end)) {
      ra = g_new0(ReadAhead, 1);
      ra->h = h;
      ra->from = h->ra_end;
      ra->to = want;
      h->ra_end = want;
      h->ra_running++;
    }
  }
  h->next_expected = off + size;
  g_mutex_unlock(&h->ra_lock);
  if (ra != NULL)
    g_thread_pool_push(fs->readahead, ra, NULL);
}

/* Set the header's version bytes to 1 (rollback journal) in @buf, the @n
 * bytes read at @off (1). */
static void
patch_version(guint8 *buf, off_t off, gssize n)
{
  for (off_t i = HDR_WRITE_VERSION; i <= HDR_READ_VERSION; i++)
    if (i >= off && i < off + n)
      buf[i - off] = 1;
}

static void
read_live(Fs *fs, fuse_req_t req, FsHandle *h, size_t size, off_t off)
{
  g_autofree guint8 *buf = NULL;
  g_autoptr(GError) error = NULL;
  gssize n;
  gboolean whole;

  buf = g_malloc(size);
  /* Being let go: wait for it whole, without holding it off (invariant 7). */
  whole = g_atomic_int_get(&h->letting_go);
  if (whole)
    g_rw_lock_writer_lock(&h->view_lock);
  else
    g_rw_lock_reader_lock(&h->view_lock);
  if (h->view == NULL) {
    g_autofree char *wal = sqlenvfs_format_size((guint64)h->let_go_wal);
    if (whole)
      g_rw_lock_writer_unlock(&h->view_lock);
    else
      g_rw_lock_reader_unlock(&h->view_lock);
    if (g_atomic_int_compare_and_exchange(&h->said_let_go, 0, 1))
      g_message("read /%s/%s.db at %" G_GINT64_FORMAT ": the state pinned when it was opened "
                "was let go: the WAL grew to %s while the file was open, %s (this and every "
                "later read of it fail with EIO; open it again)", env_dir_name(h->env), h->db,
                (gint64)off, wal, h->let_go_why);
    fuse_reply_err(req, EIO);
    return;
  }
  maybe_read_ahead(fs, h, (guint64)off, size);
  n = sqlenvfs_image_read(sqlenvfs_live_view_image(h->view), buf, size, off,
                          SQLENVFS_IMAGE_ROLLBACK_HEADER, &error);
  if (whole)
    g_rw_lock_writer_unlock(&h->view_lock);
  else
    g_rw_lock_reader_unlock(&h->view_lock);
  if (n < 0) {
    g_warning("read /%s/%s.db at %" G_GINT64_FORMAT ": %s", env_dir_name(h->env), h->db,
              (gint64)off, error->message);
    fuse_reply_err(req, sqlenvfs_error_to_errno(error));
    return;
  }
  fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

static void
read_stored(fuse_req_t req, FsHandle *h, size_t size, off_t off)
{
  if (h->patch_header && off <= HDR_READ_VERSION) {
    /* The reply covers the header's version bytes: copy and patch (1). */
    g_autofree guint8 *buf = g_malloc(size);
    ssize_t n = pread(h->fd, buf, size, off);
    if (n < 0) {
      int e = errno;
      g_warning("read %s at %" G_GINT64_FORMAT ": %s", h->db,
                (gint64)off, g_strerror(e));
      fuse_reply_err(req, e);
      return;
    }
    patch_version(buf, off, n);
    fuse_reply_buf(req, (const char *)buf, (size_t)n);
    return;
  }
  {
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = h->fd;
    bv.buf[0].pos = off;
    fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
  }
}

/* The buffers pitr reads are composed in (invariant 5): at most
 * REPLY_POOL of REPLY_BUF_SIZE, kept and shared by the serving threads. */
#define REPLY_POOL 4
static GMutex reply_lock;
static guint8 *reply_free[REPLY_POOL];
static guint n_reply_free, n_reply_made;

/* A buffer of at least @size bytes; *@pooled says whether to give it back
 * (reply_buf_give) or free it. */
static guint8 *
reply_buf_take(gsize size, gboolean *pooled)
{
  guint8 *b = NULL;
  *pooled = FALSE;
  if (size <= REPLY_BUF_SIZE) {
    g_mutex_lock(&reply_lock);
    if (n_reply_free > 0) {
      b = reply_free[--n_reply_free];
      *pooled = TRUE;
    } else if (n_reply_made < REPLY_POOL) {
      n_reply_made++;
      *pooled = TRUE;
    }
    g_mutex_unlock(&reply_lock);
    if (*pooled && b == NULL)
      b = sqlenvfs_alloc_kept(REPLY_BUF_SIZE); /* huge pages: fewer to pin */
  }
  return *pooled ? b : g_malloc(size);
}

static void
reply_buf_give(guint8 *b, gboolean pooled)
{
  if (!pooled) {
    g_free(b);
    return;
  }
  g_mutex_lock(&reply_lock);
  g_assert(n_reply_free < REPLY_POOL);
  reply_free[n_reply_free++] = b;
  g_mutex_unlock(&reply_lock);
}

/* A pitr state read on demand: the bytes the restore gives, with the
 * header's version bytes patched as for a stored file (1). */
static void
read_pitr_file(fuse_req_t req, FsHandle *h, size_t size, off_t off)
{
  g_autoptr(GError) error = NULL;
  gboolean pooled;
  guint8 *buf = reply_buf_take(size, &pooled);
  gssize n = fs_pitr_file_read(h->pitr_file, buf, size, off, &error);

  if (n < 0) {
    g_warning("read pitr %s at %" G_GINT64_FORMAT ": %s", h->db, (gint64)off, error->message);
    fuse_reply_err(req, sqlenvfs_error_to_errno(error));
  } else {
    if (h->patch_header)
      patch_version(buf, off, n);
    fuse_reply_buf(req, (const char *)buf, (size_t)n);
  }
  reply_buf_give(buf, pooled);
}

/* Every reader gets a range within the file: nothing past its end. */
void
fs_serve_read(Fs *fs, fuse_req_t req, FsHandle *h, size_t size, off_t off)
{
  if (off < 0 || (guint64)off >= h->size) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  size = (size_t)MIN((guint64)size, h->size - (guint64)off);
  if (h->kind == FS_LIVE_DB)
    read_live(fs, req, h, size, off);
  else if (h->pitr_file != NULL)
    read_pitr_file(req, h, size, off);
  else
    read_stored(req, h, size, off);
}

void
fs_serve_live_bound(Fs *fs)
{
  const char *prod_dir = sqlenvfs_root_path(fs->root, SQLENVFS_DIR_PROD);
  struct stat pst;
  /* Development counts when it shares production's filesystem. */
  dev_t prod_dev = stat(prod_dir, &pst) == 0 ? pst.st_dev : 0;

  g_mutex_lock(&fs->live_lock);
  for (GList *l = fs->live_handles; l; l = l->next) {
    FsHandle *h = l->data;
    gboolean prod = h->env == FS_ENV_PROD;
    g_autofree char *path = NULL, *wal = NULL, *size = NULL, *why = NULL;
    struct stat st;
    gint64 wal_size = 0;
    if (h->let_go_wal != 0)
      continue;
    path = live_path(fs, h->env, h->db);
    wal = g_strconcat(path, "-wal", NULL);
    why = sqlenvfs_root_wal_bound_reached(fs->root, wal, h->wal_at_pin, prod,
                                          prod || (stat(wal, &st) == 0 && st.st_dev == prod_dev),
                                          &wal_size);
    if (why == NULL)
      continue;
    /* In-flight reads finish first; reads from now on fail (invariant 7). */
    g_atomic_int_set(&h->letting_go, 1);
    g_rw_lock_writer_lock(&h->view_lock);
    g_clear_pointer(&h->view, sqlenvfs_live_view_free);
    h->let_go_wal = MAX(wal_size, 1);
    h->let_go_why = g_strdup(why);
    g_rw_lock_writer_unlock(&h->view_lock);
    size = sqlenvfs_format_size((guint64)wal_size);
    g_warning("/%s/%s.db: an open file kept %s WAL from being reset, and it grew to %s, %s: "
              "the state it showed is let go, so that checkpoints can reset the WAL (its reads "
              "now fail; opening it again shows the current state)", prod ? "prod" : "dev",
              h->db, prod ? "production's" : "development's", size, why);
  }
  g_mutex_unlock(&fs->live_lock);
}

char *
fs_serve_open_prod_hint(gpointer data, const char *db)
{
  Fs *fs = data;
  g_autoptr(GString) s = g_string_new(NULL);
  guint n = 0;

  g_mutex_lock(&fs->live_lock);
  for (GList *l = fs->live_handles; l; l = l->next) {
    const FsHandle *h = l->data;
    g_autofree char *comm_path = NULL, *comm = NULL;
    if (h->env != FS_ENV_PROD || h->let_go_wal != 0 || (db != NULL && strcmp(h->db, db) != 0))
      continue;
    if (n++ >= 3)
      continue; /* counted, not named */
    comm_path = g_strdup_printf("/proc/%u/comm", h->pid);
    if (h->pid != 0 && g_file_get_contents(comm_path, &comm, NULL, NULL))
      g_strchomp(comm);
    g_string_append_printf(s, "%sprod/%s.db", n > 1 ? ", " : "", h->db);
    if (h->pid != 0)
      g_string_append_printf(s, " (opened by pid %u%s%s)", h->pid, comm ? ", " : "",
                             comm ? comm : "");
  }
  g_mutex_unlock(&fs->live_lock);
  if (n == 0)
    return NULL;
  if (n > 3)
    g_string_append_printf(s, " and %u more", n - 3);
  return g_strdup_printf("through this mount, %s %s open: an open file under prod/ shows the "
                         "state it was opened at and holds the WAL from being reset until it is "
                         "closed (close %s, then write again)", s->str, n == 1 ? "is" : "are",
                         n == 1 ? "it" : "them");
}

void
fs_serve_release(Fs *fs, FsHandle *h)
{
  if (h == NULL)
    return;
  if (h->kind == FS_LIVE_DB) {
    g_mutex_lock(&fs->live_lock);
    fs->live_handles = g_list_remove(fs->live_handles, h);
    g_mutex_unlock(&fs->live_lock);
    g_mutex_lock(&h->ra_lock);
    h->closing = TRUE;
    while (h->ra_running > 0)
      g_cond_wait(&h->ra_done, &h->ra_lock);
    g_mutex_unlock(&h->ra_lock);
    g_rw_lock_writer_lock(&h->view_lock);
    g_clear_pointer(&h->view, sqlenvfs_live_view_free);
    g_rw_lock_writer_unlock(&h->view_lock);
    g_rw_lock_clear(&h->view_lock);
    g_mutex_clear(&h->ra_lock);
    g_cond_clear(&h->ra_done);
  }
  if (h->pitr_file != NULL)
    fs_pitr_file_release(fs->pitr, h->pitr_file);
  if (h->fd >= 0)
    close(h->fd);
  g_free(h->let_go_why);
  g_free(h->db);
  g_free(h);
}
