/*
 * pitr.c — pitr/<time>/<db>.db: lookups answered by each database's
 * timeline, states read on demand, and their files cached in ROOT/.cache/.
 *
 * A time names a state: the state after the last commit captured at or
 * before it (restore.h). Several times name the same state; the cache is
 * keyed by the state (database + the archive sequence number of that
 * state, SqlenvfsRestorePlan.state_seq), so they share one file.
 *
 *   lookup, getattr, readdir  the database's timeline (timeline.h), held by
 *                             the mount and refreshed when the archive or the
 *                             store changed (a stat of their files, at most
 *                             every TIMELINE_CHECK_US): windows and plans,
 *                             no page read; a time just past waits up to
 *                             RECENT_WAIT_US for the running archiver to
 *                             bring the window up to it
 *   open                      entry READY     -> share its state (a hit)
 *                             entry FILLING   -> share its state (a hit)
 *                             entry BUILDING  -> wait for it to be opened
 *                             no entry        -> BUILDING; the state's image
 *                                                (base checked) and an empty
 *                                                .cache/.tmp-<name>; FILLING
 *   read (FILLING, READY)     a page the state shares with its base is read
 *                             from the base's descriptor straight into the
 *                             reply, never copied into the cache; a page an
 *                             archived record wrote (composed) is read from
 *                             the cache file, or, the first time, from the
 *                             archive and written to the cache file; once
 *                             the file has every composed page it is renamed
 *                             to .cache/<name>: READY
 *
 * So the cache file of a state holds its composed pages only, in page
 * order (the k-th composed page at k * page_size), and nothing of the base;
 * a state is served by its FsPitrFile (the base's descriptor, the image,
 * the cache file and the sorted list of its composed pages) as long as it
 * has an entry, READY or not.
 *
 * Invariants:
 *   (1) A file under its final name in .cache is complete: it holds every
 *       composed page of its state (the pages that differ from the base's);
 *       it is filled under a ".tmp-" name and renamed only once every one
 *       is in it. A page is served from the cache file only once it was
 *       written there; every other page is composed first, or read from
 *       the base.
 *   (2) At most one file is filled per state; every opener of a state
 *       shares it (or waits while it is being opened, then shares it or its
 *       error).
 *   (3) READY and FILLING files hold at most [cache] max-bytes, each
 *       counted by its composed pages (what it holds once complete) from its
 *       start; the least recently used of those nobody has open go first (an
 *       idle FILLING file keeps the pages read so far for the next opener
 *       until then). A file with a reader is never removed.
 *   (4) The cache is disposable: the mount empties .cache when it starts, so
 *       a cached state never outlives the archive it was built from. It
 *       removes only the names this module makes ("<db>@<seq>.db", and
 *       ".tmp-" temporaries whose process is gone), and every file is
 *       created, opened, renamed and removed relative to a descriptor of
 *       .cache opened with O_NOFOLLOW: a .cache that is a symlink is refused
 *       when the mount starts, and one put in its place later is never
 *       followed.
 *   (5) A time in the future, or outside every database's recoverable
 *       window, names nothing (ENOENT, with a log line saying why). A time
 *       inside a window names a state that can no longer change (captures
 *       after now get later times), so its file may be cached by the kernel
 *       and its plan kept (a prune that later takes the time out of the
 *       window makes a rebuild fail, never serve another state).
 *   (6) Failed lookups are logged at most LOOKUP_LOG_BURST per period: a
 *       user of an allow_other mount cannot make the log grow by asking.
 *   (7) A state is opened only when .cache's filesystem has room for its
 *       composed pages plus [cache] min-free-bytes (the space production needs
 *       to keep committing) plus what the files already being filled still
 *       need to be complete (their files are sparse: the free space does
 *       not show it yet), after evicting least recently used files;
 *       otherwise it fails with NOSPACE (ENOSPC) before writing anything.
 *       A read writes pages to a file only while that leaves min-free-bytes
 *       free (production may have grown meanwhile); otherwise it fails with
 *       NOSPACE and writes nothing.
 *   (8) Bytes are served only from a base that passed its check (restore.h)
 *       and is still that file after every read that used it: its bytes are
 *       read into the reply first, then the descriptor they were read from
 *       is compared with the file that was checked (device, inode, size,
 *       modification and change times: a write, a truncation, a new mode or
 *       link count, an unlink all change one), and only then is the reply
 *       sent. A base that changed fails that read and every later one of
 *       the state (EIO) and drops its entry; bad bases fail the open (EIO)
 *       and leave nothing in .cache. A damaged archived record fails the
 *       open or the read (EIO), never a wrong page. A base that was
 *       unlinked only (prune removed its copy) is read on from its
 *       descriptor once it was read again whole against its MANIFEST
 *       (base_unlinked_same), as any open file that was removed; a state
 *       nobody has open drops it (drop_idle_unlinked), so that its space
 *       goes.
 *   (9) At most MAX_OPEN_FILLING states are being opened or filled with an
 *       opener at once; one more waits up to SLOT_WAIT_US for one of them
 *       to be released (the kernel sends a file's release after close()
 *       has returned), then is refused (BUSY) before anything is opened,
 *       so that the descriptors they hold are bounded. The wait holds a
 *       serving thread, hence its short bound: were every thread waiting,
 *       the release itself would be served only once one of them gave up.
 *  (10) A page is served from the cache file only when it has the crc32 it
 *       was written with (kept in memory for each composed page): one that
 *       differs (the file was changed, or the disk returned other bytes) is
 *       composed again from the archive, written again and logged, never
 *       served as it was read.
 */
#include "fs.h"

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* How often at most a database's timeline is compared with the archive's
 * and the store's files (a stat each) to be refreshed. */
#define TIMELINE_CHECK_US (250 * 1000)

/* pitr/latest: how far a database's window may end before the newest end
 * and still count as archived now (the archiver notes every database alive
 * about twice a second). */
#define LATEST_SLACK_US (5 * G_USEC_PER_SEC)
#define LATEST_HOLD_US (5 * G_USEC_PER_SEC)

typedef struct {
  gint64 latest_us;  /* the target shown */
  gint64 shown_mono; /* when it was first shown */
} LatestShown;

/* States nobody has open (FILLING or READY), kept with their descriptors
 * for the next opener: at most MAX_IDLE_FILLING, and beyond the most
 * recently used one only while their images' memory (about
 * IDLE_BYTES_PER_PAGE a page of the database: where each page comes from,
 * the composed pages' list) stays within IDLE_MEMORY, so that the daemon's
 * memory does not grow with the states read (a state of a 1 GiB database
 * holds 12-15 MiB). */
#define MAX_IDLE_FILLING 8
#define IDLE_BYTES_PER_PAGE 48
#define IDLE_MEMORY (16u << 20)

/* States being opened or read on demand at once (each holds descriptors of
 * its base, archive segments and file): a user of an allow_other mount
 * opening distinct times by the hundred must not take the descriptors the
 * archiver needs. */
#define MAX_OPEN_FILLING 64
#define SLOT_WAIT_US (2 * G_USEC_PER_SEC)

/* How long a lookup of a time just past waits for the window to reach it. */
#define RECENT_WAIT_US (1500 * 1000)

typedef enum { ENTRY_BUILDING, ENTRY_FILLING, ENTRY_READY } EntryState;

typedef struct {
  char *name; /* "<db>@<state_seq>.db" in .cache */
  char *path;
  EntryState state;
  guint64 size;   /* bytes of its composed pages: what its file holds once complete */
  gint64 last_used;
  FsPitrState st; /* what the plan said */
  FsPitrFile *file; /* FILLING, READY: the state, shared by its openers */
  guint64 reserved; /* BUILDING: the room make_room() found for its composed pages */
  guint64 filled;   /* FILLING: page bytes written to its file so far */
} CacheEntry;

/* A state served on demand (FILLING, READY): its image, and the cache file
 * its composed pages are written to as they are read. Lock order:
 * FsPitrFile.lock, then FsPitr.lock. */
struct _FsPitrFile {
  FsPitr *p;
  CacheEntry *entry;      /* its entry while it has one (FsPitr.lock)        */
  guint refs;             /* open handles (FsPitr.lock)                      */
  guint64 n_opens;        /* opens of the state so far (FsPitr.lock)         */
  GMutex lock;            /* guards what follows                             */
  SqlenvfsRestorePlan *plan;
  SqlenvfsImage *img;     /* the state: base and archive, checked (restore.h) */
  int base_fd;            /* the base's descriptor as checked, -1: remote   */
  char *db;
  char *tmp;              /* ".tmp-<name>-<pid>" in .cache                   */
  char *tmp_path;
  int fd;                 /* the temporary, then (renamed) the cached file   */
  guint32 page_size;
  guint32 n_pages;
  guint32 *composed;      /* the pages an archived record gives (not the     */
  guint32 n_composed;     /* base's), 0-based, ascending: composed[k] is at  */
                          /* offset k * page_size of fd                      */
  guint8 *have;           /* one bit per composed page written to fd         */
  guint32 *crc;           /* crc32 of each composed page as written (10)     */
  guint32 n_have;
  gboolean is_complete;   /* every composed page written, the file renamed   */
  GError *broken;         /* the base changed: every read fails with this    */
};

/* What a plan that resolved says (kept: a time's state never changes). */
typedef struct {
  FsPitrState state;
  guint64 state_seq;
} PlanSlot;

/* The timeline of one database, held for the life of the mount. */
typedef struct {
  SqlenvfsTimeline *tl;
  gint64 checked_at; /* monotonic: when it was last compared with the files */
} TimelineSlot;

struct _FsPitr {
  Fs *fs;
  char *dir; /* ROOT/.cache */
  int dir_fd; /* ROOT/.cache, opened O_NOFOLLOW: every file is made relative to it */
  GMutex lock;
  GCond cond;          /* a rebuild finished, or a file's last opener closed it */
  GHashTable *entries; /* name -> CacheEntry * */
  GHashTable *plans;   /* "<db>@<time us>" -> PlanSlot * */
  GHashTable *timelines; /* db -> TimelineSlot *: kept until the mount ends */
  GHashTable *resolved; /* "<db>@<time us>" -> entry name: a time's state never changes
                         * (invariant 5), so a re-open of a cached time needs no plan */
  guint64 bytes;       /* of READY entries */
  guint n_files_open;  /* FsPitrFile with refs > 0 (MAX_OPEN_FILLING) */
  guint64 bytes_from_sources; /* page bytes read from bases and archives for FILLING files */
  FsPitrStats stats;
  GHashTable *latest_by_pid; /* pid -> LatestShown: what pitr/latest showed each reader */
  gint64 log_period_start; /* failed lookups logged in this period (lookup_failed) */
  guint log_n;
  guint64 log_dropped;
};

static void file_free(FsPitrFile *f);
static gboolean base_same(FsPitrFile *f, GError **error);
static void drop_idle_unlinked(FsPitr *p);

static void
entry_free(gpointer p)
{
  CacheEntry *e = p;
  g_free(e->name);
  g_free(e->path);
  g_free(e);
}

static void
timeline_slot_free(gpointer p)
{
  TimelineSlot *s = p;
  sqlenvfs_timeline_free(s->tl);
  g_free(s);
}

/* Whether @name is a file the cache holds: "<db>@<seq>.db". */
static gboolean
is_cache_name(const char *name)
{
  const char *at = strrchr(name, '@');
  g_autofree char *db = NULL;
  if (at == NULL || !g_str_has_suffix(at, ".db") || at[1] == '.')
    return FALSE;
  for (const char *q = at + 1; q < name + strlen(name) - 3; q++)
    if (!g_ascii_isdigit(*q))
      return FALSE;
  db = g_strndup(name, (gsize)(at - name));
  return sqlenvfs_db_name_is_valid(db);
}

/* Empty the cache directory (invariant 4): the cached files and the
 * temporaries of rebuilds that died, only those (names this module
 * creates), removed relative to the directory's descriptor, never through
 * a symlink. */
static void
empty_cache_dir(int dfd, const char *dir)
{
  DIR *d;
  struct dirent *ent;
  int fd = dup(dfd);
  g_autoptr(GError) error = NULL;

  if (fd < 0 || (d = fdopendir(fd)) == NULL) {
    if (fd >= 0)
      close(fd);
    g_warning("empty the pitr cache %s: %s", dir, g_strerror(errno));
    return;
  }
  while ((ent = readdir(d)) != NULL) {
    struct stat st;
    if (!is_cache_name(ent->d_name))
      continue;
    if (fstatat(dfd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      g_warning("pitr cache %s: %s is not a regular file: not removed now, but a state of "
                "that name composed later takes its place (the name only: nothing it points "
                "to is written); move it out of the cache to keep it", dir, ent->d_name);
      continue;
    }
    if (unlinkat(dfd, ent->d_name, 0) != 0 && errno != ENOENT)
      g_warning("empty the pitr cache: remove %s/%s: %s", dir, ent->d_name, g_strerror(errno));
  }
  closedir(d);
  if (sqlenvfs_tmp_leftovers(dir, ".tmp-", FALSE, TRUE, NULL, &error) < 0)
    g_warning("empty the pitr cache: %s", error->message);
}

gboolean
fs_pitr_check_cache_dir(SqlenvfsRoot *root, GError **error)
{
  const char *dir = sqlenvfs_root_path(root, SQLENVFS_DIR_CACHE);
  int fd;
  if (!sqlenvfs_refuse_symlink(dir, "use the pitr cache", error))
    return FALSE;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return TRUE; /* created with the layout */
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open the pitr cache directory", dir);
  close(fd);
  return TRUE;
}

FsPitr *
fs_pitr_new(Fs *fs)
{
  FsPitr *p = g_new0(FsPitr, 1);
  p->fs = fs;
  p->dir = g_strdup(sqlenvfs_root_path(fs->root, SQLENVFS_DIR_CACHE));
  g_mutex_init(&p->lock);
  g_cond_init(&p->cond);
  p->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, entry_free);
  p->plans = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  p->timelines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, timeline_slot_free);
  p->resolved = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  p->latest_by_pid = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
  p->stats.cache_max_bytes = (guint64)sqlenvfs_root_settings(fs->root)->cache_max_bytes;
  /* Every file of the cache is made relative to this descriptor: a symlink
   * put in place of .cache later is never followed. */
  p->dir_fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (p->dir_fd >= 0)
    empty_cache_dir(p->dir_fd, p->dir);
  else
    g_warning("pitr cache %s: %s (pitr/ files cannot be rebuilt)", p->dir, g_strerror(errno));
  return p;
}

void
fs_pitr_free(FsPitr *p)
{
  if (p == NULL)
    return;
  {
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, p->entries);
    while (g_hash_table_iter_next(&it, &k, &v))
      if (((CacheEntry *)v)->file != NULL)
        file_free(((CacheEntry *)v)->file);
  }
  g_hash_table_destroy(p->entries);
  g_hash_table_destroy(p->plans);
  g_hash_table_destroy(p->timelines);
  g_hash_table_destroy(p->resolved);
  g_hash_table_destroy(p->latest_by_pid);
  g_mutex_clear(&p->lock);
  g_cond_clear(&p->cond);
  if (p->dir_fd >= 0)
    close(p->dir_fd);
  g_free(p->dir);
  g_free(p);
}

/* The timeline of @db, opened on first use and refreshed when the archive
 * or the store changed (a stat of their files, at most every
 * TIMELINE_CHECK_US, or now when @force), so that a refresh reads only what
 * was appended. Timelines live as long as the mount: the pointer stays
 * valid. NULL and *error when it cannot be opened; a failed refresh keeps
 * the previous answers (logged). */
static SqlenvfsTimeline *
db_timeline(FsPitr *p, const char *db, gboolean force, GError **error)
{
  gint64 now = g_get_monotonic_time();
  gint64 check_us = sqlenvfs_testhook_pitr_check_ms() > 0
                      ? (gint64)sqlenvfs_testhook_pitr_check_ms() * 1000 : TIMELINE_CHECK_US;
  TimelineSlot *slot;
  gboolean check;

  g_mutex_lock(&p->lock);
  slot = g_hash_table_lookup(p->timelines, db);
  check = slot != NULL && (force || now - slot->checked_at >= check_us);
  if (check)
    slot->checked_at = now;
  g_mutex_unlock(&p->lock);
  if (slot == NULL) {
    SqlenvfsTimeline *tl = sqlenvfs_timeline_open(p->fs->root, db, error);
    TimelineSlot *other;
    if (tl == NULL)
      return NULL;
    g_mutex_lock(&p->lock);
    p->stats.n_timelines_opened++;
    other = g_hash_table_lookup(p->timelines, db);
    if (other != NULL) {
      /* Another thread opened it meanwhile: use that one. */
      g_mutex_unlock(&p->lock);
      sqlenvfs_timeline_free(tl);
      return other->tl;
    }
    slot = g_new0(TimelineSlot, 1);
    slot->tl = tl;
    slot->checked_at = now;
    g_hash_table_insert(p->timelines, g_strdup(db), slot);
    g_mutex_unlock(&p->lock);
    return tl;
  }
  if (check && sqlenvfs_timeline_is_stale(slot->tl)) {
    g_autoptr(GError) local = NULL;
    if (!sqlenvfs_timeline_refresh(slot->tl, &local))
      g_warning("pitr %s: the archive or the store could not be read again (%s); the recoverable "
                "window stays as it was", db, local->message);
    g_mutex_lock(&p->lock);
    p->stats.n_timeline_refreshes++;
    drop_idle_unlinked(p); /* a prune may have removed their bases */
    g_mutex_unlock(&p->lock);
  }
  return slot->tl;
}

/* The windows of @db (a new reference), from its timeline. */
static GPtrArray *
db_windows_force(FsPitr *p, const char *db, gboolean force, GError **error)
{
  SqlenvfsTimeline *tl = db_timeline(p, db, force, error);
  return tl ? sqlenvfs_timeline_windows(tl) : NULL;
}

static GPtrArray *
db_windows(FsPitr *p, const char *db, GError **error)
{
  return db_windows_force(p, db, FALSE, error);
}

GPtrArray *
fs_pitr_db_windows(FsPitr *p, const char *db, GError **error)
{
  return db_windows(p, db, error);
}

char *
fs_pitr_db_unread(FsPitr *p, const char *db)
{
  SqlenvfsTimeline *tl = db_timeline(p, db, FALSE, NULL);
  return tl != NULL ? sqlenvfs_timeline_unread(tl) : NULL;
}

gboolean
fs_pitr_db_unrecoverable(FsPitr *p, const char *db, gboolean newest, gint64 *from_us,
                         gint64 *to_us, char **why)
{
  SqlenvfsTimeline *tl = db_timeline(p, db, FALSE, NULL);
  if (tl == NULL)
    return FALSE;
  return newest ? sqlenvfs_timeline_unrecoverable_newest(tl, from_us, to_us, why)
                : sqlenvfs_timeline_unrecoverable_tail(tl, from_us, to_us, why);
}

static gboolean
windows_contain(GPtrArray *windows, gint64 t)
{
  for (guint i = 0; i < windows->len; i++) {
    const SqlenvfsRestoreWindow *w = windows->pdata[i];
    if (t >= w->from_us && t <= w->to_us)
      return TRUE;
  }
  return FALSE;
}

static void
append_windows(GString *s, const char *db, GPtrArray *windows)
{
  for (guint i = 0; i < windows->len; i++) {
    const SqlenvfsRestoreWindow *w = windows->pdata[i];
    g_autofree char *from = sqlenvfs_time_format_iso(w->from_us);
    g_autofree char *to = sqlenvfs_time_format_iso(w->to_us);
    g_string_append_printf(s, "%s%s %s to %s", s->len ? ", " : "", db, from, to);
  }
}

/* Whether some database's window contains @t: 1 yes, 0 no (then @known
 * lists the windows and *last_end is the latest end of any), -1 error. */
static int
find_window(FsPitr *p, GPtrArray *dbs, gint64 t, gboolean force, GString *known,
            gint64 *last_end, GError **error)
{
  g_string_truncate(known, 0);
  *last_end = 0;
  for (guint i = 0; i < dbs->len; i++) {
    g_autoptr(GPtrArray) w = db_windows_force(p, dbs->pdata[i], force, error);
    if (w == NULL)
      return -1;
    if (windows_contain(w, t))
      return 1;
    for (guint j = 0; j < w->len; j++)
      *last_end = MAX(*last_end, ((SqlenvfsRestoreWindow *)w->pdata[j])->to_us);
    append_windows(known, dbs->pdata[i], w);
  }
  return 0;
}

/* Say why a lookup failed (invariant 5), at most LOOKUP_LOG_BURST times per
 * LOOKUP_LOG_PERIOD_US: with allow_other any user can ask for names by the
 * thousand, and the log must not grow with them. How many were left out is
 * said with the next line that is logged. */
#define LOOKUP_LOG_BURST 10
#define LOOKUP_LOG_PERIOD_US (10 * G_USEC_PER_SEC)

static void lookup_failed(FsPitr *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
lookup_failed(FsPitr *p, const char *fmt, ...)
{
  gint64 now = g_get_monotonic_time();
  g_autofree char *msg = NULL;
  guint64 dropped = 0;
  gboolean say;
  va_list ap;

  g_mutex_lock(&p->lock);
  p->stats.n_failed_lookups++;
  if (p->log_period_start == 0 || now - p->log_period_start >= LOOKUP_LOG_PERIOD_US) {
    p->log_period_start = now;
    p->log_n = 0;
  }
  say = p->log_n < LOOKUP_LOG_BURST;
  if (say) {
    p->log_n++;
    dropped = p->log_dropped;
    p->log_dropped = 0;
  } else {
    p->log_dropped++;
  }
  g_mutex_unlock(&p->lock);
  if (!say)
    return;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (dropped > 0)
    g_message("%s (%" G_GUINT64_FORMAT " more failed pitr lookups were not logged)", msg,
              dropped);
  else
    g_message("%s", msg);
}

gboolean
fs_pitr_resolve_time(FsPitr *p, const char *dir, const char *name, gint64 *time_us,
                     gboolean *is_lasting, GError **error)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_restore_list_dbs(p->fs->root);
  g_autoptr(GString) known = g_string_new(NULL);
  g_autoptr(GError) local = NULL;
  SqlenvfsTime t;
  gint64 last_end;
  int found;

  *is_lasting = FALSE;
  /* pitr/latest and pitr/earliest are links, resolved by the tree. */
  if (!sqlenvfs_time_parse(name, &t, &local) || t.is_latest || t.is_earliest) {
    *is_lasting = TRUE;
    lookup_failed(p, "%s/%s: not a time (use %s)", dir, name, SQLENVFS_TIME_FORMS);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "%s/%s: not a time", dir,
                name);
    return FALSE;
  }
  if (t.us > sqlenvfs_clock_now()) {
    lookup_failed(p, "%s/%s: that time is in the future", dir, name);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "%s/%s: in the future", dir,
                name);
    return FALSE;
  }
  /* A time some database already has a plan for is inside its window,
   * unless a prune has left it out since (its timeline, read again at most
   * TIMELINE_CHECK_US ago, says so). */
  for (guint i = 0; i < dbs->len; i++) {
    g_autofree char *key = g_strdup_printf("%s@%" G_GINT64_FORMAT, (char *)dbs->pdata[i], t.us);
    g_autoptr(GPtrArray) windows = NULL;
    gboolean planned;
    g_mutex_lock(&p->lock);
    planned = g_hash_table_lookup(p->plans, key) != NULL;
    g_mutex_unlock(&p->lock);
    if (planned && (windows = db_windows(p, dbs->pdata[i], NULL)) != NULL &&
        windows_contain(windows, t.us)) {
      *time_us = t.us;
      return TRUE;
    }
  }
  found = find_window(p, dbs, t.us, FALSE, known, &last_end, error);
  /* A time past the end of the windows as last read (at most
   * TIMELINE_CHECK_US ago) may be archived since: read them again now, as
   * a restore would, before saying no. */
  if (found == 0 && t.us > last_end)
    found = find_window(p, dbs, t.us, TRUE, known, &last_end, error);
  /* A time just past is archived but the window (the archive's alive time,
   * recorded at most twice a second) may not say so yet: have the archiver
   * running in this process bring it up to now, briefly, or (-o noarchiver)
   * wait as briefly for the one that runs beside the mount. */
  if (found == 0 && t.us > last_end &&
      (p->fs->archiver != NULL || sqlenvfs_restore_time_just_past(p->fs->root, t.us))) {
    gint64 deadline = g_get_monotonic_time() + RECENT_WAIT_US;
    while (found == 0 && g_get_monotonic_time() < deadline) {
      if (p->fs->archiver != NULL)
        sqlenvfs_archiver_sync(p->fs->archiver, NULL, RECENT_WAIT_US, NULL);
      found = find_window(p, dbs, t.us, TRUE, known, &last_end, error);
      if (found == 0)
        g_usleep(RECENT_WAIT_US / 10);
    }
  }
  if (found < 0)
    return FALSE;
  if (found > 0) {
    *time_us = t.us;
    return TRUE;
  }
  *is_lasting = t.us <= last_end; /* before the earliest, or in a gap: for good */
  lookup_failed(p, "%s/%s: outside the recoverable window (%s)", dir, name,
                known->len ? known->str : "nothing is recoverable yet: the archive is empty");
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP, "%s/%s: outside the recoverable window",
              dir, name);
  return FALSE;
}

gboolean
fs_pitr_window(FsPitr *p, gint64 *earliest_us, gint64 *latest_us, GError **error)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_restore_list_dbs(p->fs->root);
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
  g_autoptr(GArray) ends = g_array_new(FALSE, FALSE, sizeof(gint64));
  g_autoptr(GPtrArray) current = g_ptr_array_new(); /* windows of the databases being archived */
  gint64 newest = 0, first = 0;
  gboolean any = FALSE;

  for (guint i = 0; i < dbs->len; i++) {
    GPtrArray *w = db_windows(p, dbs->pdata[i], error);
    gint64 end = 0;
    if (w == NULL)
      return FALSE;
    g_ptr_array_add(all, w);
    for (guint j = 0; j < w->len; j++) {
      const SqlenvfsRestoreWindow *win = w->pdata[j];
      if (!any || win->from_us < first)
        first = win->from_us;
      end = MAX(end, win->to_us);
      any = TRUE;
    }
    {
      /* An archive that goes on past its last window: its latest state is
       * the newest archived one, which cannot be restored, so latest/ does
       * not offer the older end of its window in its place (as `restore
       * --time latest` refuses it). */
      g_autofree char *why = NULL;
      gint64 from, to;
      if (fs_pitr_db_unrecoverable(p, dbs->pdata[i], FALSE, &from, &to, &why))
        end = MAX(end, to);
    }
    g_array_append_val(ends, end);
    newest = MAX(newest, end);
  }
  if (!any) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "no recoverable window yet (the WAL archive is empty)");
    return FALSE;
  }
  /* Latest: the newest time inside the window of every database that is
   * being archived. Each database's window ends at its own alive time, a
   * little apart from the others', so the newest end of one is outside the
   * windows of the rest; the earliest of the current ends is inside all of
   * them. A database whose window ended more than LATEST_SLACK_US before
   * the newest is not being archived now and does not hold latest back. */
  *latest_us = newest;
  for (guint i = 0; i < all->len; i++) {
    gint64 end = g_array_index(ends, gint64, i);
    GPtrArray *w = all->pdata[i];
    if (w->len > 0 && end >= newest - LATEST_SLACK_US) {
      *latest_us = MIN(*latest_us, end);
      g_ptr_array_add(current, w);
    }
  }
  /* Earliest: the earliest time inside the window of every database being
   * archived, so that pitr/earliest/<db>.db exists for each of them as
   * pitr/latest/<db>.db does (a database added later, or one whose history
   * starts later, would not be recoverable at the earliest time of
   * another). Such a time is where one of their windows starts. If they
   * share none (one's newest window starts after another's end), the
   * earliest time of any. */
  *earliest_us = first;
  {
    gboolean found = FALSE;
    for (guint i = 0; i < current->len; i++) {
      GPtrArray *w = current->pdata[i];
      for (guint j = 0; j < w->len; j++) {
        gint64 c = ((const SqlenvfsRestoreWindow *)w->pdata[j])->from_us;
        gboolean in_all = c <= *latest_us;
        if (found && c >= *earliest_us)
          continue;
        for (guint k = 0; k < current->len && in_all; k++)
          in_all = windows_contain(current->pdata[k], c);
        if (in_all) {
          *earliest_us = c;
          found = TRUE;
        }
      }
    }
  }
  return TRUE;
}

gint64
fs_pitr_latest_for(FsPitr *p, guint32 pid, gint64 latest_us)
{
  gint64 now = g_get_monotonic_time();
  LatestShown *shown;
  GHashTableIter it;
  gpointer k, v;

  if (pid == 0)
    return latest_us;
  g_mutex_lock(&p->lock);
  g_hash_table_iter_init(&it, p->latest_by_pid);
  while (g_hash_table_iter_next(&it, &k, &v))
    if (now - ((LatestShown *)v)->shown_mono >= LATEST_HOLD_US)
      g_hash_table_iter_remove(&it);
  shown = g_hash_table_lookup(p->latest_by_pid, GUINT_TO_POINTER(pid));
  if (shown == NULL) {
    shown = g_new0(LatestShown, 1);
    shown->latest_us = latest_us;
    shown->shown_mono = now;
    g_hash_table_insert(p->latest_by_pid, GUINT_TO_POINTER(pid), shown);
  }
  latest_us = shown->latest_us;
  g_mutex_unlock(&p->lock);
  return latest_us;
}

GPtrArray *
fs_pitr_list_links(FsPitr *p, GError **error)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  gint64 earliest, latest;
  g_autoptr(GError) local = NULL;

  if (fs_pitr_window(p, &earliest, &latest, &local)) {
    g_ptr_array_add(names, g_strdup("earliest"));
    g_ptr_array_add(names, g_strdup("latest"));
  } else if (local->code != SQLENVFS_ERROR_GAP) {
    g_propagate_error(error, g_steal_pointer(&local));
    g_ptr_array_unref(names);
    return NULL;
  }
  return names;
}

GPtrArray *
fs_pitr_list_dbs(FsPitr *p, gint64 time_us, GError **error)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_restore_list_dbs(p->fs->root);
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

  for (guint i = 0; i < dbs->len; i++) {
    g_autoptr(GPtrArray) w = db_windows(p, dbs->pdata[i], error);
    if (w == NULL) {
      g_ptr_array_unref(out);
      return NULL;
    }
    if (windows_contain(w, time_us))
      g_ptr_array_add(out, g_strdup(dbs->pdata[i]));
  }
  return out;
}

/* Plan @db at @time_us with its timeline: a new SqlenvfsRestorePlan. */
static SqlenvfsRestorePlan *
full_plan(FsPitr *p, const char *db, gint64 time_us, GError **error)
{
  SqlenvfsTime t = { .is_latest = FALSE, .us = time_us };
  SqlenvfsTimeline *tl = db_timeline(p, db, FALSE, error);
  SqlenvfsRestorePlan *rp;
  if (tl == NULL)
    return NULL;
  rp = sqlenvfs_timeline_plan(tl, &t, error);
  g_mutex_lock(&p->lock);
  p->stats.n_plans++;
  g_mutex_unlock(&p->lock);
  return rp;
}

/* What the plan of @db at @time_us says. A time's state never changes
 * (invariant 5): a plan that resolved is remembered; a refusal is asked of
 * the timeline again each time (the window moves). */
static gboolean
plan(FsPitr *p, const char *db, gint64 time_us, FsPitrState *state, guint64 *state_seq,
     GError **error)
{
  g_autofree char *key = g_strdup_printf("%s@%" G_GINT64_FORMAT, db, time_us);
  g_autoptr(SqlenvfsRestorePlan) rp = NULL;
  g_autofree char *prod = NULL;
  PlanSlot *slot;
  struct stat st;

  g_mutex_lock(&p->lock);
  slot = g_hash_table_lookup(p->plans, key);
  if (slot != NULL) {
    *state = slot->state;
    *state_seq = slot->state_seq;
    g_mutex_unlock(&p->lock);
    return TRUE;
  }
  g_mutex_unlock(&p->lock);

  rp = full_plan(p, db, time_us, error);
  if (rp == NULL)
    return FALSE;
  slot = g_new0(PlanSlot, 1);
  slot->state.size = rp->size;
  slot->state.state_us = rp->state_us;
  prod = sqlenvfs_root_prod_db(p->fs->root, db);
  slot->state.mode = stat(prod, &st) == 0 ? st.st_mode : 0400;
  slot->state_seq = rp->state_seq;
  *state = slot->state;
  *state_seq = slot->state_seq;
  g_mutex_lock(&p->lock);
  if (g_hash_table_size(p->plans) > 4096)
    g_hash_table_remove_all(p->plans);
  g_hash_table_replace(p->plans, g_strdup(key), slot);
  g_mutex_unlock(&p->lock);
  return TRUE;
}

gboolean
fs_pitr_stat(FsPitr *p, const char *db, gint64 time_us, FsPitrState *state, GError **error)
{
  guint64 seq;
  return plan(p, db, time_us, state, &seq, error);
}

/* Evict least recently used entries that nobody has open (READY, or
 * FILLING with no opener) until the cache fits (invariant 3). Called with
 * the lock held. */
static void
evict(FsPitr *p)
{
  while (p->bytes > p->stats.cache_max_bytes) {
    GHashTableIter it;
    gpointer k, v;
    CacheEntry *lru = NULL;
    g_hash_table_iter_init(&it, p->entries);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      CacheEntry *e = v;
      gboolean idle = e->file != NULL && e->file->refs == 0;
      if (idle && (lru == NULL || e->last_used < lru->last_used))
        lru = e;
    }
    if (lru == NULL)
      return;
    if (lru->state == ENTRY_READY && unlinkat(p->dir_fd, lru->name, 0) != 0 && errno != ENOENT)
      g_warning("evict %s from the pitr cache: %s", lru->path, g_strerror(errno));
    lru->file->entry = NULL;
    file_free(lru->file); /* a FILLING one: removes its temporary */
    lru->file = NULL;
    g_info("pitr cache: evicted %s (%" G_GUINT64_FORMAT " bytes)", lru->name, lru->size);
    p->bytes -= lru->size;
    p->stats.n_evicted++;
    g_hash_table_remove(p->entries, lru->name);
  }
}

/* An idle state keeps its image open (descriptors of its base and of
 * archive segments): at most MAX_IDLE_FILLING of them are kept, the least
 * recently used dropped first (its file removed). Called with the lock
 * held. */
static void
evict_idle_filling(FsPitr *p)
{
  guint64 budget = sqlenvfs_testhook_pitr_idle_memory(); /* testhooks.h */
  if (budget == 0)
    budget = IDLE_MEMORY;
  for (;;) {
    GHashTableIter it;
    gpointer k, v;
    CacheEntry *lru = NULL;
    guint n = 0;
    guint64 memory = 0;
    g_hash_table_iter_init(&it, p->entries);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      CacheEntry *e = v;
      if (e->file == NULL || e->file->refs > 0)
        continue;
      n++;
      memory += (guint64)e->file->n_pages * IDLE_BYTES_PER_PAGE;
      if (lru == NULL || e->last_used < lru->last_used)
        lru = e;
    }
    if (n <= MAX_IDLE_FILLING && (n <= 1 || memory <= budget))
      return;
    if (lru->state == ENTRY_READY && unlinkat(p->dir_fd, lru->name, 0) != 0 && errno != ENOENT)
      g_warning("drop %s from the pitr cache: %s", lru->path, g_strerror(errno));
    lru->file->entry = NULL;
    file_free(lru->file);
    p->bytes -= lru->size;
    g_hash_table_remove(p->entries, lru->name);
  }
}

/* Whether the base that @f reads was unlinked since (its copy pruned). */
static gboolean
base_unlinked(const FsPitrFile *f)
{
  struct stat st;
  return f->base_fd >= 0 && fstat(f->base_fd, &st) == 0 && st.st_nlink == 0;
}

/* A state nobody has open whose base was removed (prune) is dropped with
 * its descriptors, so that the base's space goes; the next opener builds
 * the state from a base that is there. (One with readers reads on from the
 * base it has open, base_same.) Called with the lock held. */
static void
drop_idle_unlinked(FsPitr *p)
{
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, p->entries);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    CacheEntry *e = v;
    if (e->file == NULL || e->file->refs > 0 || !base_unlinked(e->file))
      continue;
    if (e->state == ENTRY_READY && unlinkat(p->dir_fd, e->name, 0) != 0 && errno != ENOENT)
      g_warning("drop %s from the pitr cache: %s", e->path, g_strerror(errno));
    g_info("pitr cache: dropped %s, whose base %s was removed", e->name, e->file->plan->base_path);
    e->file->entry = NULL;
    file_free(e->file);
    p->bytes -= e->size;
    g_hash_table_iter_remove(&it);
  }
}

/* Bytes free for unprivileged writers on the cache's filesystem. */
static guint64
cache_free(FsPitr *p)
{
  struct statvfs sv;
  if (fstatvfs(p->dir_fd, &sv) != 0)
    return G_MAXUINT64;
  return (guint64)sv.f_bavail * sv.f_frsize;
}

/* What the files being filled, or about to be, will still write to the
 * cache's filesystem before they are complete (invariant 7): the space
 * found for them when they were opened is theirs. Called with the lock
 * held; @self is left out. */
static guint64
pending_bytes(FsPitr *p, const CacheEntry *self)
{
  GHashTableIter it;
  gpointer k, v;
  guint64 n = 0;
  g_hash_table_iter_init(&it, p->entries);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    const CacheEntry *e = v;
    if (e == self)
      continue;
    if (e->state == ENTRY_BUILDING)
      n += e->reserved;
    else if (e->state == ENTRY_FILLING)
      n += e->size - MIN(e->filled, e->size);
  }
  return n;
}

/* Room for a rebuild of @need bytes into the entry @name that still leaves
 * [cache] min-free-bytes free (invariant 7), besides what the files being
 * filled still need: evict least recently used files while that helps,
 * then refuse with NOSPACE. The room found is the entry's until it is
 * opened, so that states opened together cannot each count the same free
 * space. */
static gboolean
make_room(FsPitr *p, const char *name, const char *db, gint64 time_us, guint64 need,
          GError **error)
{
  guint64 min_free = (guint64)sqlenvfs_root_settings(p->fs->root)->cache_min_free_bytes;
  guint64 avail, pending;
  CacheEntry *self;
  gboolean ok;
  g_autofree char *when = NULL, *need_s = NULL, *avail_s = NULL, *min_s = NULL;
  g_autofree char *pending_s = NULL;

  g_mutex_lock(&p->lock);
  self = g_hash_table_lookup(p->entries, name);
  avail = cache_free(p);
  pending = pending_bytes(p, self);
  while (avail < need + min_free + pending) {
    guint64 before = p->bytes;
    guint64 max = p->stats.cache_max_bytes;
    if (p->bytes == 0)
      break;
    p->stats.cache_max_bytes = p->bytes - 1;
    evict(p); /* the least recently used one */
    p->stats.cache_max_bytes = max;
    if (p->bytes == before)
      break;
    avail = cache_free(p);
    pending = pending_bytes(p, self);
  }
  ok = avail >= need + min_free + pending;
  if (ok && self != NULL)
    self->reserved = need;
  g_mutex_unlock(&p->lock);
  if (ok)
    return TRUE;
  when = sqlenvfs_time_format_iso(time_us);
  need_s = sqlenvfs_format_size(need);
  avail_s = sqlenvfs_format_size(avail);
  min_s = sqlenvfs_format_size(min_free);
  pending_s = sqlenvfs_format_size(pending);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOSPACE,
              "pitr: rebuilding %s as of %s needs %s in %s, which has %s free%s%s%s; that would "
              "leave less than the %s that production needs there ([cache] min-free-bytes; free "
              "space on that filesystem, close other pitr files, or restore to a file elsewhere "
              "with `sqlenvfs restore`)",
              db, when, need_s, p->dir, avail_s, pending > 0 ? ", of which pitr files being read "
              "still need " : "", pending > 0 ? pending_s : "", pending > 0 ? " to be complete" : "",
              min_s);
  return FALSE;
}

/* Whether @n more bytes can be written to the cache's filesystem and still
 * leave [cache] min-free-bytes free (invariant 7): production may have
 * grown since the file was opened, and it comes first. */
static gboolean
room_to_fill(FsPitrFile *f, guint64 n, GError **error)
{
  guint64 min_free = (guint64)sqlenvfs_root_settings(f->p->fs->root)->cache_min_free_bytes;
  guint64 avail = cache_free(f->p);
  g_autofree char *avail_s = NULL, *min_s = NULL;
  if (avail >= n + min_free)
    return TRUE;
  avail_s = sqlenvfs_format_size(avail);
  min_s = sqlenvfs_format_size(min_free);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOSPACE,
              "pitr %s: %s has %s free, and reading more pages of this state into %s would leave "
              "less than the %s that production needs there ([cache] min-free-bytes; free space on "
              "that filesystem, or restore to a file elsewhere with `sqlenvfs restore`)",
              f->db, f->p->dir, avail_s, f->tmp_path, min_s);
  return FALSE;
}

static void
file_free(FsPitrFile *f)
{
  if (f->fd >= 0)
    close(f->fd);
  if (!f->is_complete && f->tmp != NULL && f->p->dir_fd >= 0)
    unlinkat(f->p->dir_fd, f->tmp, 0);
  sqlenvfs_image_free(f->img);
  sqlenvfs_restore_plan_free(f->plan);
  g_clear_error(&f->broken);
  g_mutex_clear(&f->lock);
  g_free(f->db);
  g_free(f->tmp);
  g_free(f->tmp_path);
  g_free(f->have);
  g_free(f->crc);
  g_free(f->composed);
  g_free(f);
}

/* Open the state of @db at @time_us for reading on demand into the cache
 * file @name (invariant 1): its plan, its image (the base checked,
 * restore.h), the sorted list of its composed pages, room for them
 * (invariant 7) and an empty temporary of their size, relative to the cache
 * directory's descriptor. */
static FsPitrFile *
start_filling(FsPitr *p, const char *db, gint64 time_us, const char *name, GError **error)
{
  FsPitrFile *f;

  if (p->dir_fd < 0) {
    sqlenvfs_error_errno(error, EBADF, "open the pitr cache directory", p->dir);
    return NULL;
  }
  f = g_new0(FsPitrFile, 1);
  g_mutex_init(&f->lock);
  f->p = p;
  f->fd = -1;
  f->db = g_strdup(db);
  f->base_fd = -1;
  f->plan = full_plan(p, db, time_us, error);
  if (f->plan == NULL)
    goto fail;
  f->plan->on_demand = TRUE;
  f->img = sqlenvfs_restore_image(p->fs->root, f->plan, NULL, NULL, error);
  if (f->img == NULL)
    goto fail;
  /* A base that is a file is compared with the file checked after every
   * read of it (invariant 8); one read from elsewhere (mount --remote)
   * checks each block as it reads it. */
  f->base_fd = f->plan->base_remote ? -1 : sqlenvfs_image_base_fd(f->img);
  if (!f->plan->base_remote && f->base_fd < 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "pitr %s: the base %s is not a file that can be checked as it is read",
                db, f->plan->base_path);
    goto fail;
  }
  f->page_size = f->plan->page_size;
  f->n_pages = f->plan->n_pages;
  {
    GArray *pages = g_array_new(FALSE, FALSE, sizeof(guint32));
    for (guint32 i = 0; i < f->n_pages; i++)
      if (sqlenvfs_image_page_source(f->img, i + 1, NULL) != 0)
        g_array_append_val(pages, i);
    f->n_composed = pages->len;
    f->composed = (guint32 *)(void *)g_array_free(pages, FALSE);
  }
  if (!make_room(p, name, db, time_us, (guint64)f->n_composed * f->page_size, error))
    goto fail;
  f->have = g_malloc0((gsize)f->n_composed / 8 + 1);
  f->crc = g_new0(guint32, (gsize)f->n_composed + 1);
  {
    g_autofree char *prefix = sqlenvfs_tmp_prefix(name);
    f->tmp = g_strdup_printf("%s%d", prefix, (int)getpid());
  }
  f->tmp_path = g_build_filename(p->dir, f->tmp, NULL);
  if (unlinkat(p->dir_fd, f->tmp, 0) != 0 && errno != ENOENT) {
    sqlenvfs_error_errno(error, errno, "remove the leftover", f->tmp_path);
    g_clear_pointer(&f->tmp, g_free);
    goto fail;
  }
  f->fd = openat(p->dir_fd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (f->fd < 0) {
    sqlenvfs_error_errno(error, errno, "create", f->tmp_path);
    g_clear_pointer(&f->tmp, g_free);
    goto fail;
  }
  if (ftruncate(f->fd, (off_t)f->n_composed * f->page_size) != 0) {
    sqlenvfs_error_errno(error, errno, "size", f->tmp_path);
    goto fail;
  }
  if (sqlenvfs_testhook_pitr_delay_ms() > 0) /* testhooks.h */
    g_usleep((gulong)sqlenvfs_testhook_pitr_delay_ms() * 1000);
  {
    g_autofree char *when = sqlenvfs_time_format_iso(f->plan->state_us);
    g_message("pitr: serving %s as of %s from %s %s and %" G_GUINT64_FORMAT
              " archived transaction%s (%u of its %u pages composed from the archive), pages "
              "read as they are asked for",
              db, when, sqlenvfs_copy_kind_name(f->plan->base_kind), f->plan->base_name,
              f->plan->n_commits, f->plan->n_commits == 1 ? "" : "s", f->n_composed, f->n_pages);
  }
  return f;
fail:
  file_free(f);
  return NULL;
}

/* Once every composed page is in the file: it is complete, so it takes its
 * final name (invariant 1) and its entry becomes READY, counted against the
 * cache's bound (invariant 3); the entry keeps the state, which reads the
 * base's pages from the base as before. Called with f->lock held, or
 * before f is shared. */
static gboolean
fill_finish(FsPitrFile *f, GError **error)
{
  FsPitr *p = f->p;
  CacheEntry *e;
  int rc, err;

  if (f->is_complete || f->n_have < f->n_composed)
    return TRUE;
  /* What was read from the base is what was checked (invariant 8): its
   * descriptor, which the pages were read from (its name may be gone). */
  if (!base_same(f, error))
    return FALSE;
  g_mutex_lock(&p->lock);
  e = f->entry;
  rc = e != NULL ? renameat(p->dir_fd, f->tmp, p->dir_fd, e->name) : -1;
  err = e != NULL ? errno : ENOENT;
  if (rc != 0 && e != NULL && err == ENOENT) {
    /* Someone removed the temporary from .cache: its openers read on from
     * their descriptor, which holds every page; the next opener starts
     * afresh. */
    g_message("pitr cache: %s was removed from %s while it was filled; its readers read on, "
              "the next opener reads the state from its sources again", f->tmp, p->dir);
    f->is_complete = TRUE;
    p->bytes -= e->size;
    g_hash_table_remove(p->entries, e->name);
    f->entry = NULL;
    g_mutex_unlock(&p->lock);
    return TRUE;
  }
  if (rc != 0) {
    g_mutex_unlock(&p->lock);
    return sqlenvfs_error_errno(error, err, "rename into place", f->tmp_path);
  }
  f->is_complete = TRUE;
  e->state = ENTRY_READY;
  e->last_used = g_get_monotonic_time();
  evict(p);
  g_mutex_unlock(&p->lock);
  return TRUE;
}

static gboolean
has_page(const FsPitrFile *f, guint32 k)
{
  return (f->have[k / 8] >> (k % 8)) & 1;
}

/* Where page @i (0-based) of @f is served from, @k being the index of the
 * first composed page at or after it. */
typedef enum { FROM_BASE, FROM_CACHE, FROM_ARCHIVE } PageFrom;

static PageFrom
page_from(const FsPitrFile *f, guint32 i, guint32 k)
{
  if (k >= f->n_composed || f->composed[k] != i)
    return FROM_BASE;
  return has_page(f, k) ? FROM_CACHE : FROM_ARCHIVE;
}

/* The index of the first composed page at or after page @i. */
static guint32
composed_at_or_after(const FsPitrFile *f, guint32 i)
{
  guint32 lo = 0, hi = f->n_composed;
  while (lo < hi) {
    guint32 mid = lo + (hi - lo) / 2;
    if (f->composed[mid] < i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static gboolean
pread_all(int fd, guint8 *buf, gsize len, goffset off, const char *path, GError **error)
{
  while (len > 0) {
    ssize_t n = pread(fd, buf, len, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return sqlenvfs_error_errno(error, errno, "read", path);
    if (n == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "read %s: it ends at byte %" G_GINT64_FORMAT ", before the pages it holds",
                  path, (gint64)off);
      return FALSE;
    }
    buf += n;
    len -= (gsize)n;
    off += n;
  }
  return TRUE;
}

/* Whether the base open on @f's descriptor, unlinked since it was
 * checked (prune removed its copy), still holds the bytes its MANIFEST
 * describes: the unlink changed its change time, which cannot tell it from
 * a write whose modification time was put back, so the whole file is read
 * again, on the descriptor, against its MANIFEST's crc32. Once it passes,
 * the file as it is now is the one checked: nobody can open it any more,
 * and a write through a descriptor opened before changes its identity
 * again. Called with f->lock held, @now being its identity. */
static gboolean
base_unlinked_same(FsPitrFile *f, const SqlenvfsFileId *now)
{
  const SqlenvfsFileId *was = &f->plan->base_id;
  g_autofree guint8 *buf = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *when = NULL;
  SqlenvfsFileId after;
  guint32 crc = 0;

  if (now->dev != was->dev || now->ino != was->ino || now->size != was->size ||
      now->mtime_ns != was->mtime_ns)
    return FALSE;
  buf = g_malloc(1 << 20);
  for (guint64 off = 0; off < now->size;) {
    gsize n = (gsize)MIN((guint64)1 << 20, now->size - off);
    if (!pread_all(f->base_fd, buf, n, (goffset)off, f->plan->base_path, &local)) {
      g_warning("pitr %s: the base %s was removed while the state was read, and cannot be read "
                "again: %s", f->db, f->plan->base_path, local->message);
      return FALSE;
    }
    crc = sqlenvfs_crc32(crc, buf, n);
    off += n;
  }
  if (crc != f->plan->base_crc32 ||
      !sqlenvfs_file_id_get(f->base_fd, f->plan->base_path, &after, NULL) ||
      !sqlenvfs_file_id_equal(&after, now))
    return FALSE;
  f->plan->base_id = after;
  when = sqlenvfs_time_format_iso(f->plan->state_us);
  g_message("pitr %s: the base %s was removed while the state of %s was read (a prune); its "
            "readers read on from it (read again whole: it is what its MANIFEST says), and it "
            "goes once they have closed it", f->db, f->plan->base_path, when);
  return TRUE;
}

/* Whether the base's descriptor is still the file that was checked
 * (invariant 8): one fstat. Called after its bytes were read and before
 * they are served, with f->lock held. FALSE and *error (INTEGRITY) when it
 * changed. A base that was unlinked only (prune) is read on from its
 * descriptor, as any open file that was removed (base_unlinked_same). */
static gboolean
base_same(FsPitrFile *f, GError **error)
{
  SqlenvfsFileId now;
  struct stat st;
  if (f->base_fd < 0)
    return TRUE; /* remote: each block was checked as it was read */
  if (fstat(f->base_fd, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "stat", f->plan->base_path);
  sqlenvfs_file_id_from_stat(&st, &now);
  if (sqlenvfs_file_id_equal(&now, &f->plan->base_id))
    return TRUE;
  if (st.st_nlink == 0 && base_unlinked_same(f, &now))
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "pitr %s: the base %s changed since it was checked (something writes to the "
              "store; nothing more is served from it; open the file again to check the base "
              "again, and run `sqlenvfs verify`)", f->db, f->plan->base_path);
  return FALSE;
}

/* Read whole pages [@i, @j] of @f, composed pages @k.. of it, into @run:
 * composed from the archive (through the image) and written to the cache
 * file (invariant 1), each page's crc32 noted (invariant 10). Pages already
 * in the file are written again. */
static gboolean
compose_into(FsPitrFile *f, guint8 *run, guint32 i, guint32 j, guint32 k, GError **error)
{
  gsize n = (gsize)(j - i + 1) * f->page_size;
  gssize got;
  got = sqlenvfs_image_read(f->img, run, n, (goffset)i * f->page_size, 0, error);
  if (got != (gssize)n) {
    if (got >= 0)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "pitr %s: the rebuilt state ended early at page %u", f->db, i);
    return FALSE;
  }
  if (pwrite(f->fd, run, n, (off_t)k * f->page_size) != (ssize_t)n)
    return sqlenvfs_error_errno(error, errno ? errno : EIO, "write", f->tmp_path);
  for (guint32 c = k; c <= k + (j - i); c++) {
    f->crc[c] = sqlenvfs_crc32(0, run + (gsize)(c - k) * f->page_size, f->page_size);
    if (!has_page(f, c)) {
      f->have[c / 8] |= (guint8)(1u << (c % 8));
      f->n_have++;
    }
  }
  return TRUE;
}

/* compose_into() of pages not yet in the cache file, once there is room to
 * write them (invariant 7). */
static gboolean
compose_run(FsPitrFile *f, guint8 *run, guint32 i, guint32 j, guint32 k, GError **error)
{
  if (!room_to_fill(f, (gsize)(j - i + 1) * f->page_size, error))
    return FALSE;
  return compose_into(f, run, i, j, k, error);
}

/* Read whole pages [@i, @j] of @f, composed pages @k.. of it, into @run
 * from the cache file, each checked against the crc32 it was written with
 * (invariant 10): a run with a page that differs is composed again from
 * the archive, and written again, with a warning naming the file. */
static gboolean
read_cached_run(FsPitrFile *f, guint8 *run, guint32 i, guint32 j, guint32 k, GError **error)
{
  gsize n = (gsize)(j - i + 1) * f->page_size;
  if (!pread_all(f->fd, run, n, (goffset)k * f->page_size, f->tmp_path, error))
    return FALSE;
  for (guint32 c = k; c <= k + (j - i); c++) {
    if (sqlenvfs_crc32(0, run + (gsize)(c - k) * f->page_size, f->page_size) == f->crc[c])
      continue;
    {
      g_autofree char *when = sqlenvfs_time_format_iso(f->plan->state_us);
      g_warning("pitr cache: page %u of %s as of %s is not what was written to its cache file "
                "in %s (the file was changed, or the disk returned other bytes; check that "
                "disk): pages %u to %u composed again from the archive",
                i + (c - k) + 1, f->db, when, f->p->dir, i + 1, j + 1);
    }
    return compose_into(f, run, i, j, k, error);
  }
  return TRUE;
}

gssize
fs_pitr_file_read(FsPitrFile *f, void *buf, gsize len, goffset off, GError **error)
{
  guint64 size = (guint64)f->n_pages * f->page_size;
  guint64 end;
  guint64 from_base = 0, composed = 0;
  gssize done = -1;
  guint32 first, last;
  guint8 *out = buf;

  g_mutex_lock(&f->lock);
  if (f->broken != NULL) {
    g_propagate_error(error, g_error_copy(f->broken));
    goto out;
  }
  if (off < 0 || (guint64)off >= size) {
    done = 0;
    goto out;
  }
  end = MIN((guint64)off + len, size);
  first = (guint32)((guint64)off / f->page_size);
  last = (guint32)((end - 1) / f->page_size);
  /* One pass over the range and the sorted list of composed pages, a run
   * of pages from the same place at a time: the base's pages read straight
   * into @buf, the cache file's likewise, and the composed pages not yet
   * cached composed, written to the cache file and copied into @buf. */
  for (guint32 i = first, k = composed_at_or_after(f, first); i <= last;) {
    PageFrom from = page_from(f, i, k);
    guint32 j = i, k0 = k;
    guint64 lo, hi;
    if (from != FROM_BASE)
      k++;
    while (j + 1 <= last && page_from(f, j + 1, k) == from) {
      j++;
      if (from != FROM_BASE)
        k++;
    }
    lo = MAX((guint64)off, (guint64)i * f->page_size);
    hi = MIN(end, (guint64)(j + 1) * f->page_size);
    if (from == FROM_BASE) {
      gssize got = sqlenvfs_image_read(f->img, out + (lo - (guint64)off), (gsize)(hi - lo),
                                       (goffset)lo, 0, error);
      if (got != (gssize)(hi - lo)) {
        if (got >= 0)
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                      "pitr %s: the rebuilt state ended early at page %u", f->db, i);
        goto out;
      }
      from_base += hi - lo;
    } else if (from == FROM_CACHE) {
      /* Whole pages, to check them: straight into @buf when the range
       * covers them, else through a buffer. */
      gboolean whole = lo == (guint64)i * f->page_size && hi == (guint64)(j + 1) * f->page_size;
      g_autofree guint8 *tmp = whole ? NULL : g_malloc((gsize)(j - i + 1) * f->page_size);
      guint8 *run = whole ? out + (lo - (guint64)off) : tmp;
      if (!read_cached_run(f, run, i, j, k0, error))
        goto out;
      if (!whole)
        memcpy(out + (lo - (guint64)off), run + (lo - (guint64)i * f->page_size),
               (gsize)(hi - lo));
    } else {
      gsize n = (gsize)(j - i + 1) * f->page_size;
      g_autofree guint8 *run = g_malloc(n);
      if (!compose_run(f, run, i, j, k0, error))
        goto out;
      memcpy(out + (lo - (guint64)off), run + (lo - (guint64)i * f->page_size), (gsize)(hi - lo));
      composed += n;
    }
    i = j + 1;
  }
  /* Bytes read from the base are served only while it is the file that
   * was checked (invariant 8). */
  if (from_base > 0 && !base_same(f, &f->broken)) {
    /* Nothing more is served from it, and the next opener starts afresh
     * (its base checked again, or another one). */
    g_propagate_error(error, g_error_copy(f->broken));
    g_mutex_lock(&f->p->lock);
    if (f->entry != NULL) {
      if (f->entry->state == ENTRY_READY)
        unlinkat(f->p->dir_fd, f->entry->name, 0);
      f->p->bytes -= f->entry->size;
      g_hash_table_remove(f->p->entries, f->entry->name);
      f->entry = NULL;
    }
    g_mutex_unlock(&f->p->lock);
    goto out;
  }
  done = (gssize)(end - (guint64)off);
  if (composed > 0 && !fill_finish(f, error))
    done = -1;
out:
  g_mutex_unlock(&f->lock);
  if (from_base + composed > 0 || done > 0) {
    g_mutex_lock(&f->p->lock);
    f->p->bytes_from_sources += from_base + composed;
    if (done > 0)
      f->p->stats.bytes_served += (guint64)done;
    if (f->entry != NULL)
      f->entry->filled += composed;
    g_mutex_unlock(&f->p->lock);
  }
  return done;
}

gboolean
fs_pitr_file_opened_before(FsPitr *p, const FsPitrFile *f)
{
  gboolean before;
  g_mutex_lock(&p->lock);
  before = f->n_opens > 1;
  g_mutex_unlock(&p->lock);
  return before;
}

guint64
fs_pitr_file_size(const FsPitrFile *f)
{
  return (guint64)f->n_pages * f->page_size;
}

void
fs_pitr_file_release(FsPitr *p, FsPitrFile *f)
{
  gboolean drop;
  if (f == NULL)
    return;
  g_mutex_lock(&p->lock);
  f->refs--;
  if (f->refs == 0) {
    p->n_files_open--;
    g_cond_broadcast(&p->cond); /* invariant 9: a slot is free */
  }
  /* An incomplete file nobody reads any more stays, with the pages read so
   * far, for the next opener, until it is evicted like a complete one. */
  drop = f->refs == 0 && f->entry == NULL;
  if (f->refs == 0 && f->entry != NULL) {
    f->entry->last_used = g_get_monotonic_time();
    drop_idle_unlinked(p);
    evict(p);
    evict_idle_filling(p);
  }
  g_mutex_unlock(&p->lock);
  if (drop)
    file_free(f);
}

/* A FILLING entry's file for one more opener (called with the lock held). */
static FsPitrFile *
file_ref(FsPitr *p, CacheEntry *e)
{
  e->last_used = g_get_monotonic_time();
  e->file->n_opens++;
  if (e->file->refs++ == 0)
    p->n_files_open++;
  p->stats.n_hits++;
  return e->file;
}

/* States being opened, or read on demand with an opener (their images
 * open until the last opener closes, complete or not): MAX_OPEN_FILLING.
 * Called with the lock held. */
static guint
n_open_filling(FsPitr *p)
{
  GHashTableIter it;
  gpointer k, v;
  guint n = p->n_files_open;
  g_hash_table_iter_init(&it, p->entries);
  while (g_hash_table_iter_next(&it, &k, &v))
    if (((const CacheEntry *)v)->state == ENTRY_BUILDING)
      n++;
  return n;
}

/* READY_GONE: ready_ref() found its file removed from .cache. */
#define READY_GONE (-2)

/* A READY entry's state for one more opener (called with the lock held, so
 * that eviction cannot come between): 0, with *@file set. A file someone
 * removed from .cache (it is disposable: an operator freeing space), or put
 * another in its place, drops its entry and gives READY_GONE, so that the
 * state is read from its sources again rather than from a file that is no
 * longer counted; its readers read on from their descriptor. */
static int
ready_ref(FsPitr *p, CacheEntry *e, FsPitrFile **file)
{
  struct stat named, held;
  FsPitrFile *f = e->file;
  if (fstatat(p->dir_fd, e->name, &named, AT_SYMLINK_NOFOLLOW) != 0 || fstat(f->fd, &held) != 0 ||
      named.st_dev != held.st_dev || named.st_ino != held.st_ino) {
    g_message("pitr cache: %s was removed from %s; the state is read from its sources again",
              e->name, p->dir);
    p->bytes -= e->size;
    f->entry = NULL;
    e->file = NULL;
    g_hash_table_remove(p->entries, e->name);
    if (f->refs == 0)
      file_free(f);
    return READY_GONE;
  }
  *file = file_ref(p, e);
  return 0;
}

int
fs_pitr_open(FsPitr *p, const char *db, gint64 time_us, FsPitrState *state, FsPitrFile **file,
             GError **error)
{
  g_autofree char *key = g_strdup_printf("%s@%" G_GINT64_FORMAT, db, time_us);
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;
  guint64 seq;
  gint64 slot_until;
  gboolean slot_waited = FALSE;
  CacheEntry *e;

  *file = NULL;
  /* A time opened before whose file is still cached: no plan needed. */
  g_mutex_lock(&p->lock);
  drop_idle_unlinked(p);
  name = g_strdup(g_hash_table_lookup(p->resolved, key));
  e = name ? g_hash_table_lookup(p->entries, name) : NULL;
  if (e != NULL && e->state != ENTRY_BUILDING) {
    *state = e->st;
    if (e->state == ENTRY_FILLING)
      *file = file_ref(p, e);
    if (e->state == ENTRY_FILLING || ready_ref(p, e, file) != READY_GONE) {
      g_mutex_unlock(&p->lock);
      return -1;
    }
  }
  g_mutex_unlock(&p->lock);
  g_clear_pointer(&name, g_free);

  if (!plan(p, db, time_us, state, &seq, error))
    return -1;
  name = g_strdup_printf("%s@%" G_GUINT64_FORMAT ".db", db, seq);
  path = g_build_filename(p->dir, name, NULL);

  g_mutex_lock(&p->lock);
  if (g_hash_table_size(p->resolved) > 4096)
    g_hash_table_remove_all(p->resolved);
  g_hash_table_replace(p->resolved, g_strdup(key), g_strdup(name));
  slot_until = g_get_monotonic_time() + SLOT_WAIT_US;
  for (;;) {
    e = g_hash_table_lookup(p->entries, name);
    if (e != NULL && e->state == ENTRY_BUILDING) {
      g_cond_wait(&p->cond, &p->lock); /* invariant 2: share the state being opened */
      continue;
    }
    if (e != NULL) {
      if (e->state == ENTRY_FILLING)
        *file = file_ref(p, e);
      if (e->state == ENTRY_FILLING || ready_ref(p, e, file) != READY_GONE) {
        g_mutex_unlock(&p->lock);
        return -1;
      }
    }
    /* Invariant 9: wait for a slot; meanwhile another opener may have
     * opened this state, so look it up again once woken or out of time. */
    if (n_open_filling(p) < MAX_OPEN_FILLING || slot_waited)
      break;
    slot_waited = !g_cond_wait_until(&p->cond, &p->lock, slot_until);
  }
  if (n_open_filling(p) >= MAX_OPEN_FILLING) {
    g_mutex_unlock(&p->lock);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "pitr %s: %d states are being read at once, the most the mount serves; close "
                "some of the pitr files open, or restore to a file with `sqlenvfs restore`",
                db, MAX_OPEN_FILLING);
    return -1;
  }
  e = g_new0(CacheEntry, 1);
  e->name = g_strdup(name);
  e->path = g_strdup(path);
  e->state = ENTRY_BUILDING;
  e->st = *state;
  g_hash_table_insert(p->entries, e->name, e);
  p->stats.n_rebuilds++;
  g_mutex_unlock(&p->lock);

  {
    g_autoptr(GError) local = NULL;
    FsPitrFile *f = start_filling(p, db, time_us, name, &local);

    g_mutex_lock(&p->lock);
    if (f != NULL) {
      e->state = ENTRY_FILLING;
      e->size = (guint64)f->n_composed * f->page_size;
      e->last_used = g_get_monotonic_time();
      e->file = f;
      f->entry = e;
      f->refs = 1;
      f->n_opens = 1;
      p->n_files_open++;
      *file = f;
      /* Its whole size counts against the bound from now on. */
      p->bytes += e->size;
      evict(p);
    } else {
      /* Waiters find no entry and try again themselves. */
      g_hash_table_remove(p->entries, name);
      g_propagate_error(error, g_steal_pointer(&local));
    }
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
  }
  /* A state with no composed page (an empty database, or the base's own
   * state) is complete as soon as it is opened. */
  if (*file != NULL) {
    gboolean ok;
    g_mutex_lock(&(*file)->lock);
    ok = fill_finish(*file, error);
    g_mutex_unlock(&(*file)->lock);
    if (!ok) {
      fs_pitr_file_release(p, *file);
      *file = NULL;
    }
  }
  return -1;
}

void
fs_pitr_stats(FsPitr *p, FsPitrStats *out)
{
  g_mutex_lock(&p->lock);
  *out = p->stats;
  out->cache_bytes = p->bytes;
  out->bytes_from_sources = p->bytes_from_sources;
  out->n_cached = 0;
  {
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, p->entries);
    while (g_hash_table_iter_next(&it, &k, &v))
      if (((CacheEntry *)v)->state == ENTRY_READY)
        out->n_cached++;
  }
  g_mutex_unlock(&p->lock);
}
