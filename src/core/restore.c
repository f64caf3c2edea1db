/*
 * restore.c — point-in-time recovery from a base and the WAL archive.
 *
 * The history it reasons about — chains, bases, recoverable windows, the
 * state a time names and the base a restore starts from — is a timeline
 * (timeline.h, src/core/timeline.c); the functions here that answer
 * windows and plans open one and ask it. What a base must hold, and how a
 * state is built from it, is here.
 *
 * Invariants:
 *   (1) A restore uses one base and the COMMIT records after its state in
 *       the same chain, in sequence order, up to the target state; the
 *       sequence numbers in between are consecutive (no record missing).
 *   (2) A target time maps to exactly one state: the last COMMIT (or
 *       state-bearing GAP) captured at or before it, inside a recoverable
 *       window; anything else is an error naming the windows.
 *   (3) Every record applied is checked against its checksum before the
 *       image is returned; pages are overlaid oldest first so the last
 *       version wins, and pages past a shrunken size read as zeros, as they
 *       would from the truncated file.
 *   (4) The base is checked against its MANIFEST (store.h,
 *       sqlenvfs_store_check_base) on the descriptor the image reads before
 *       the image is returned. A bad base is never read from: the next best
 *       base of the same chain at or before the state is tried, and when
 *       none is good the restore is refused naming each one. Since a state
 *       is the same whatever base it is built from, the fallback changes no
 *       byte of the result. A restore to a file defers the crc32 of the
 *       base to the pass that writes the output (image.h, invariant 5):
 *       its image gives no byte to anyone before the crc32 is checked, and
 *       the output is removed, not kept, when it is wrong.
 */
#include "sqlenvfs/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include "archive_int.h"

/* ------------------------------------------------------------------ */
/* Windows and plans                                                    */

void
sqlenvfs_restore_window_free(SqlenvfsRestoreWindow *w)
{
  if (w == NULL)
    return;
  g_free(w->note);
  g_free(w);
}

GPtrArray *
sqlenvfs_restore_windows(SqlenvfsRoot *root, const char *db, GError **error)
{
  g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, db, error);
  if (tl == NULL)
    return NULL;
  return sqlenvfs_timeline_windows(tl);
}

/* The archive the last plan read, kept for the restore of that plan:
 * opening an archive reads the head of every segment and of its summary,
 * which a restore would otherwise do again right after its plan did. One
 * at a time, for the plan that read it (freed with it, or replaced by the
 * next plan's); the restore refreshes it before use. */
static GMutex planned_lock;
static const SqlenvfsRestorePlan *planned_plan;
static SqlenvfsArchive *planned_archive;

static void
planned_set(const SqlenvfsRestorePlan *plan, SqlenvfsArchive *a)
{
  SqlenvfsArchive *old;
  g_mutex_lock(&planned_lock);
  old = planned_archive;
  planned_plan = plan;
  planned_archive = a;
  g_mutex_unlock(&planned_lock);
  sqlenvfs_archive_free(old);
}

/* The archive @plan's planning read (taken), or NULL. */
static SqlenvfsArchive *
planned_take(const SqlenvfsRestorePlan *plan)
{
  SqlenvfsArchive *a = NULL;
  g_mutex_lock(&planned_lock);
  if (planned_plan == plan) {
    a = planned_archive;
    planned_archive = NULL;
    planned_plan = NULL;
  }
  g_mutex_unlock(&planned_lock);
  return a;
}

void
sqlenvfs_restore_plan_free(SqlenvfsRestorePlan *plan)
{
  if (plan == NULL)
    return;
  sqlenvfs_archive_free(planned_take(plan));
  g_free(plan->db);
  g_free(plan->base_name);
  g_free(plan->base_path);
  g_free(plan);
}

/* A time just past that is after the last window is waited for, at most
 * RECENT_WAIT_US, while an archiver runs. */
#define RECENT_US (10 * G_USEC_PER_SEC)
#define RECENT_WAIT_US (2 * G_USEC_PER_SEC)
#define RECENT_POLL_US (50 * 1000)

gboolean
sqlenvfs_restore_time_just_past(SqlenvfsRoot *root, gint64 time_us)
{
  gint64 now = sqlenvfs_clock_now();
  g_autofree char *lock = NULL;

  if (time_us > now || now - time_us > RECENT_US)
    return FALSE;
  lock = sqlenvfs_root_lock_path(root, "archiver");
  return sqlenvfs_doctor_lock_holder(lock, NULL) > 0;
}

/* Whether @t, refused by @tl with @error, is a time just past the last
 * window that an archiver will soon bring the window up to. */
static gboolean
is_just_past(SqlenvfsRoot *root, SqlenvfsTimeline *tl, const SqlenvfsTime *t,
             const GError *error)
{
  g_autoptr(GPtrArray) w = NULL;

  if (t->is_latest || t->is_earliest ||
      !g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP))
    return FALSE;
  w = sqlenvfs_timeline_windows(tl);
  if (w->len == 0 || t->us <= ((SqlenvfsRestoreWindow *)w->pdata[w->len - 1])->to_us)
    return FALSE;
  return sqlenvfs_restore_time_just_past(root, t->us);
}

SqlenvfsRestorePlan *
sqlenvfs_restore_plan(SqlenvfsRoot *root, const char *db, const SqlenvfsTime *t, GError **error)
{
  g_autofree char *name = sqlenvfs_root_resolve_db(root, db, FALSE, error);
  g_autoptr(SqlenvfsTimeline) tl = NULL;
  g_autoptr(GError) local = NULL;
  SqlenvfsRestorePlan *plan;

  if (name == NULL)
    return NULL;
  tl = sqlenvfs_timeline_open(root, name, error);
  if (tl == NULL)
    return NULL;
  plan = sqlenvfs_timeline_plan(tl, t, &local);
  if (plan == NULL && is_just_past(root, tl, t, local)) {
    gint64 deadline = g_get_monotonic_time() + RECENT_WAIT_US;
    while (plan == NULL && g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP) &&
           g_get_monotonic_time() < deadline) {
      g_usleep(RECENT_POLL_US);
      g_clear_error(&local);
      if (sqlenvfs_timeline_refresh(tl, &local))
        plan = sqlenvfs_timeline_plan(tl, t, &local);
    }
  }
  if (plan == NULL) {
    g_propagate_error(error, g_steal_pointer(&local));
    return NULL;
  }
  if (plan != NULL)
    planned_set(plan, timeline_take_archive(tl));
  return plan;
}

/* ------------------------------------------------------------------ */
/* Images                                                               */

/* A SqlenvfsPreadFunc over the descriptor GPOINTER_TO_INT(@src) - 1. */
static gssize
fd_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  ssize_t n = pread(GPOINTER_TO_INT(src) - 1, buf, len, off);
  if (n < 0) {
    sqlenvfs_error_errno(error, errno, "read", "the base");
    return -1;
  }
  return (gssize)n;
}

/* sqlenvfs_restore_base_holds_state over any source of the base's bytes. */
static gboolean base_holds_state(SqlenvfsArchive *a, guint64 seq, SqlenvfsPreadFunc read,
                                 gpointer src, const char *path, GError **error);

/* Whether the base open on @fd holds the state of archived record @seq of
 * @a, as its MANIFEST's WAL position says: every page that COMMIT record
 * wrote (its last version, within its database size) must be byte for byte
 * the base's page, the first 100 bytes of page 1 (the file header, which
 * copies may stamp) aside. A base that holds another state (a MANIFEST
 * whose WAL position lies, even one whose checksum was recomputed or that
 * has none) fails with INTEGRITY naming it. A state that is not a COMMIT (a
 * GAP's) carries no pages and passes. */
gboolean
sqlenvfs_restore_base_holds_state(SqlenvfsArchive *a, guint64 seq, int fd, const char *path,
                                  GError **error)
{
  return base_holds_state(a, seq, fd_read, GINT_TO_POINTER(fd + 1), path, error);
}

static gboolean
base_holds_state(SqlenvfsArchive *a, guint64 seq, SqlenvfsPreadFunc read, gpointer src,
                 const char *path, GError **error)
{
  SqlenvfsArchiveEntry state;
  const SqlenvfsArchiveEntry *e = sqlenvfs_archive_get(a, seq, &state) ? &state : NULL;
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint8 *pages = NULL;
  g_autofree guchar *mine = NULL;
  g_autoptr(GHashTable) seen = NULL;

  if (e == NULL || e->type != SQLENVFS_ARCHIVE_COMMIT)
    return TRUE;
  /* A segment the archive took from its summary is checked against it
   * first (archive_seg_check()): one that does not match says nothing of
   * the base, which is not to be taken as bad for it (GAP, not
   * INTEGRITY); a restore to a file reads that segment from its records
   * and checks the base again. */
  {
    GError *local = NULL;
    if (!archive_seg_check(a, e->segment, &local)) {
      if (local->domain == SQLENVFS_ERROR && local->code == SQLENVFS_ERROR_INTEGRITY)
        local->code = SQLENVFS_ERROR_GAP;
      g_propagate_error(error, local);
      return FALSE;
    }
  }
  /* The record's page images in any form (stored whole, compressed, or in
   * its batch's first record), checked as they are read. */
  pgnos = sqlenvfs_archive_read_commit_pages(a, e, &pages, error);
  if (pgnos == NULL)
    return FALSE;
  mine = g_malloc(e->page_size);
  seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  for (guint32 k = e->n_pages; k > 0; k--) {
    guint32 pg = pgnos[k - 1];
    gsize skip = pg == 1 ? 100 : 0;
    const guint8 *rec = pages + (gsize)(k - 1) * e->page_size;
    if (pg > e->db_pages || g_hash_table_contains(seen, GUINT_TO_POINTER(pg)))
      continue; /* past the size, or an earlier version of a page the record wrote again */
    g_hash_table_add(seen, GUINT_TO_POINTER(pg));
    GError *rerr = NULL;
    gssize got = read(src, mine, e->page_size, (goffset)(pg - 1) * e->page_size, &rerr);
    if (got < 0) {
      g_propagate_error(error, rerr);
      return FALSE;
    }
    if (got != (gssize)e->page_size || memcmp(rec + skip, mine + skip, e->page_size - skip) != 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s does not hold the state its MANIFEST names (page %u differs from archived "
                  "record %" G_GUINT64_FORMAT "; the MANIFEST's WAL position is wrong)",
                  path, pg, e->seq);
      return FALSE;
    }
  }
  return TRUE;
}

/* Whether the memo of base verdicts (verifymemo.h) holds a good verdict
 * for the file open on @fd as it is now: the path names that same file
 * (device, inode, size, times) and the memo's verdict applies to it; *@id
 * is then its identity. A base this process found bad is never good. */
static gboolean
base_known_good(SqlenvfsRoot *root, const SqlenvfsStoredDb *sdb, int fd, SqlenvfsFileId *id)
{
  g_autofree char *memo_path = sqlenvfs_verify_memo_path(root);
  g_autoptr(SqlenvfsVerifyMemo) memo = NULL;
  SqlenvfsFileId by_path;
  gboolean same;
  int pfd;

  if (sqlenvfs_store_base_known_bad(sdb, NULL) || !sqlenvfs_file_id_get(fd, sdb->path, id, NULL))
    return FALSE;
  memo = sqlenvfs_verify_memo_load(memo_path, g_get_real_time(), NULL);
  if (sqlenvfs_verify_memo_base_state(memo, sdb, NULL) != SQLENVFS_BASE_GOOD)
    return FALSE;
  pfd = open(sdb->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (pfd < 0)
    return FALSE;
  same = sqlenvfs_file_id_get(pfd, sdb->path, &by_path, NULL) &&
         sqlenvfs_file_id_equal(&by_path, id);
  close(pfd);
  return same;
}

/* The crc32 check of a base deferred to the pass that writes the output
 * (sqlenvfs_store_check_base_start, _crc): what it needs once the image
 * that reads the base is written. */
typedef struct {
  SqlenvfsRoot *root;
  SqlenvfsStoredCopy *copy; /* holds sdb                                  */
  const SqlenvfsStoredDb *sdb;
  SqlenvfsFileSource *src;  /* the image's base, on the descriptor checked */
  SqlenvfsFileId id;
  gboolean *is_bad;         /* set when the crc32 is wrong                 */
} DeferredCheck;

static void
deferred_check_free(gpointer p)
{
  DeferredCheck *dc = p;
  sqlenvfs_stored_copy_free(dc->copy);
  g_free(dc);
}

/* A base open for reading: a file, or a source the base opener gave;
 * @deferred when its crc32 is still to be checked. */
typedef struct {
  SqlenvfsPreadFunc read;
  gpointer src;
  GDestroyNotify free;
  DeferredCheck *deferred;
} BaseSource;

/* Remember a base found bad in the root's memo, so that `list` in any
 * process leaves its window out. */
static void
note_bad_base(SqlenvfsRoot *root, const SqlenvfsStoredDb *sdb, const SqlenvfsFileId *id)
{
  g_autofree char *why = NULL;
  if (sqlenvfs_store_base_known_bad(sdb, &why))
    sqlenvfs_verify_memo_note_base(root, sdb, id, FALSE, why);
}

/* A SqlenvfsImageBaseCheckFunc: the deferred crc32 check of a base. */
static gboolean
deferred_check_run(gpointer user, guint32 crc, GError **error)
{
  DeferredCheck *dc = user;
  GError *local = NULL;

  if (sqlenvfs_store_check_base_crc(dc->sdb, sqlenvfs_file_source_fd(dc->src), &dc->id, crc,
                                    &local)) {
    sqlenvfs_verify_memo_note_base(dc->root, dc->sdb, &dc->id, FALSE, NULL);
    return TRUE;
  }
  if (sqlenvfs_store_base_known_bad(dc->sdb, NULL)) {
    note_bad_base(dc->root, dc->sdb, &dc->id);
    if (dc->is_bad)
      *dc->is_bad = TRUE;
  }
  g_propagate_error(error, local);
  return FALSE;
}

/* The base opener (restore.h): one per process, for the root it serves. */
static struct {
  GMutex lock;
  SqlenvfsRoot *root;
  SqlenvfsRestoreBaseOpener fn;
  gpointer user;
} opener;

void
sqlenvfs_restore_set_base_opener(SqlenvfsRoot *root, SqlenvfsRestoreBaseOpener fn, gpointer user)
{
  g_mutex_lock(&opener.lock);
  opener.root = fn != NULL ? root : NULL;
  opener.fn = fn;
  opener.user = user;
  g_mutex_unlock(&opener.lock);
}

/* Open the base of @plan and check it against its MANIFEST, which is read
 * again (a MANIFEST changed since the plan is caught by its checksum), and
 * against the archived state its MANIFEST maps it to (base_holds_state).
 * With @defer_crc, a file base whose crc32 is not known good yet is not
 * read whole here: out->deferred says what its check needs. FALSE and
 * *error (INTEGRITY or NOT_FOUND: the base is bad). */
static gboolean
try_base(SqlenvfsRoot *root, SqlenvfsArchive *a, SqlenvfsRestorePlan *plan, gboolean defer_crc,
         BaseSource *out, GError **error)
{
  g_autoptr(SqlenvfsStoredCopy) copy = sqlenvfs_store_load(root, plan->base_kind,
                                                           plan->base_name, error);
  const SqlenvfsStoredDb *sdb;
  SqlenvfsFileSource *src;
  SqlenvfsRestoreBaseOpener fn;
  gpointer user;
  gboolean is_crc_due = FALSE;

  if (copy == NULL)
    return FALSE;
  sdb = sqlenvfs_stored_copy_find(copy, plan->db);
  if (sdb == NULL || g_strcmp0(sdb->path, plan->base_path) != 0 ||
      sdb->pos.page_size != plan->page_size || sdb->pos.n_pages != plan->base_n_pages) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s/MANIFEST no longer describes %s as it did when the restore was planned",
                copy->dir, plan->base_path);
    return FALSE;
  }
  plan->base_crc32 = sdb->crc32;
  g_mutex_lock(&opener.lock);
  fn = opener.root == root ? opener.fn : NULL;
  user = opener.user;
  g_mutex_unlock(&opener.lock);
  plan->base_remote = FALSE;
  if (fn != NULL && plan->on_demand) {
    BaseSource bs = { 0 };
    if (!fn(user, plan, sdb, &bs.read, &bs.src, &bs.free, error))
      return FALSE;
    if (bs.src != NULL) {
      /* Its blocks are checked as they are read (the opener's contract);
       * the state it must hold is checked here as for a file. */
      if (!base_holds_state(a, plan->base_seq, bs.read, bs.src, plan->base_path, error)) {
        if (bs.free)
          bs.free(bs.src);
        return FALSE;
      }
      plan->base_remote = TRUE;
      *out = bs;
      return TRUE;
    }
  }
  src = sqlenvfs_file_source_open(plan->base_path, error);
  if (src == NULL) {
    if (error && *error && (*error)->domain == SQLENVFS_ERROR)
      (*error)->code = SQLENVFS_ERROR_INTEGRITY; /* a base that cannot be opened is bad */
    return FALSE;
  }
  if (plan->on_demand && base_known_good(root, sdb, sqlenvfs_file_source_fd(src), &plan->base_id)) {
    /* Checked before, by this or another process, and unchanged since: its
     * bytes are not read again, so that serving a state on demand does not
     * start by reading the whole base. */
  } else if (!(defer_crc ? sqlenvfs_store_check_base_start(sdb, sqlenvfs_file_source_fd(src),
                                                           &plan->base_id, &is_crc_due, error)
                         : sqlenvfs_store_check_base(sdb, sqlenvfs_file_source_fd(src),
                                                     &plan->base_id, error))) {
    note_bad_base(root, sdb, &plan->base_id);
    sqlenvfs_file_source_close(src);
    return FALSE;
  }
  if (!is_crc_due)
    sqlenvfs_verify_memo_note_base(root, sdb, &plan->base_id, FALSE, NULL);
  if (!sqlenvfs_restore_base_holds_state(a, plan->base_seq, sqlenvfs_file_source_fd(src),
                                         plan->base_path, error)) {
    /* With its crc32 still due, a damaged base can fail here first: the
     * whole check then says which it is, and remembers it as it would
     * have, had it come first. */
    if (is_crc_due) {
      g_autoptr(GError) crc_error = NULL;
      if (!sqlenvfs_store_check_base(sdb, sqlenvfs_file_source_fd(src), &plan->base_id,
                                     &crc_error)) {
        note_bad_base(root, sdb, &plan->base_id);
        g_clear_error(error);
        g_propagate_error(error, g_steal_pointer(&crc_error));
      }
    }
    sqlenvfs_file_source_close(src);
    return FALSE;
  }
  out->read = sqlenvfs_file_source_read;
  out->src = src;
  out->free = sqlenvfs_file_source_close;
  out->deferred = NULL;
  if (is_crc_due) {
    out->deferred = g_new0(DeferredCheck, 1);
    out->deferred->root = root;
    out->deferred->copy = g_steal_pointer(&copy);
    out->deferred->sdb = sdb;
    out->deferred->src = src;
    out->deferred->id = plan->base_id;
  }
  return TRUE;
}

/* The base of @plan, open and checked (invariant 4): the planned one, or
 * else the next best good base of the same chain, with @plan's base fields
 * updated. FALSE and *error naming every base tried when none is good. */
static gboolean
open_checked_base(SqlenvfsRoot *root, SqlenvfsArchive *a, SqlenvfsRestorePlan *plan,
                  gboolean defer_crc, BaseSource *out, GError **error)
{
  g_autoptr(GHashTable) tried = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GString) bad = g_string_new(NULL);
  g_autoptr(SqlenvfsTimeline) tl = NULL;

  for (;;) {
    g_autoptr(GError) local = NULL;
    g_autofree char *skipped = NULL;

    if (try_base(root, a, plan, defer_crc, out, &local)) {
      if (bad->len)
        g_message("%s: using %s %s as the base (%s)", plan->db,
                  sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name, bad->str);
      return TRUE;
    }
    if (local->domain != SQLENVFS_ERROR || (local->code != SQLENVFS_ERROR_INTEGRITY &&
                                            local->code != SQLENVFS_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    g_hash_table_add(tried, g_strdup_printf("%s %s", sqlenvfs_copy_kind_name(plan->base_kind),
                                            plan->base_name));
    g_string_append_printf(bad, "%s%s %s is bad: %s", bad->len ? "; " : "",
                           sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name,
                           local->message);
    /* The bases as they are now: the one just found bad is left out. */
    if (tl == NULL) {
      tl = sqlenvfs_timeline_open(root, plan->db, error);
      if (tl == NULL)
        return FALSE;
    }
    if (!sqlenvfs_timeline_next_base(tl, plan, tried, &skipped)) {
      g_autofree char *when = sqlenvfs_time_format_iso(plan->state_us);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: no good base for the state of %s, refusing to build it: %s%s "
                  "(run `sqlenvfs verify`; take a new snapshot with `sqlenvfs snapshot`)",
                  plan->db, when, bad->str, skipped);
      return FALSE;
    }
  }
}

gboolean
sqlenvfs_restore_base_unchanged(const SqlenvfsRestorePlan *plan, GError **error)
{
  SqlenvfsFileId now;
  struct stat st;
  int fd;
  gboolean same;

  if (plan->base_remote)
    return TRUE; /* no file: each block was checked as it was read */
  fd = open(plan->base_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    /* Removed since it was opened (a prune: the state stays recoverable
     * from an older base): what was read through the open descriptor is
     * the file's, and was checked by its crc32. */
    g_debug("%s: the base %s was removed after it was read", plan->db, plan->base_path);
    return TRUE;
  }
  if (fd < 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: the base %s went away while it was read (%s; retry)", plan->db,
                plan->base_path, g_strerror(errno));
    return FALSE;
  }
  same = fstat(fd, &st) == 0;
  close(fd);
  if (!same)
    return sqlenvfs_error_errno(error, errno, "stat", plan->base_path);
  sqlenvfs_file_id_from_stat(&st, &now);
  if (sqlenvfs_file_id_removed_only(&plan->base_id, &st))
    return TRUE; /* removed as it was looked at, not written */
  if (!sqlenvfs_file_id_equal(&now, &plan->base_id)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: the base %s changed while it was read (something writes to the "
                "store; nothing built from it is kept; retry, and run `sqlenvfs verify`)",
                plan->db, plan->base_path);
    return FALSE;
  }
  return TRUE;
}

/* Whether every record with seq in (@from_seq, @to_seq] is there and none
 * is a GAP (real, or standing for records missing or unreadable): a GAP or
 * the damage mark shows as a mark placed in that range. */
static gboolean
records_between(SqlenvfsArchive *a, guint64 from_seq, guint64 to_seq)
{
  guint n = sqlenvfs_archive_n_marks(a);
  for (guint k = 0; k < n; k++) {
    guint64 after;
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, k, &after);
    if (m->type == SQLENVFS_ARCHIVE_GAP && after >= from_seq && after < to_seq)
      return FALSE;
  }
  return TRUE;
}

/* sqlenvfs_restore_image; with @defer_crc, a base whose crc32 is still to
 * be checked is checked by the image's write (image.h, invariant 5), which
 * sets *@base_bad when the crc32 is wrong. With @bad_maps, the versions
 * chosen from page maps are checked as the write first reads them, not
 * before: a segment whose page map does not match its records is added
 * there and that read fails; those listed are composed from their
 * records (archive_compose.c). */
static SqlenvfsImage *
restore_image(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan, gboolean defer_crc,
              gboolean *base_bad, GArray *bad_maps, SqlenvfsProgressFunc progress, gpointer user,
              GError **error)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), plan->db, NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  BaseSource base = { 0 };
  SqlenvfsArchiveEntry rec;
  guint32 cur_pages;

  a = planned_take(plan);
  if (a != NULL && (strcmp(a->dir, dir) != 0 || (bad_maps != NULL && bad_maps->len > 0)))
    g_clear_pointer(&a, sqlenvfs_archive_free);
  if (a != NULL && !sqlenvfs_archive_refresh(a, NULL))
    g_clear_pointer(&a, sqlenvfs_archive_free); /* opened again below */
  /* Composing again after a segment was found not to match its summary
   * (its page map, or its file): those segments without their summaries,
   * read from their indexes and records. */
  if (a == NULL)
    a = archive_open_except(dir, bad_maps, error);
  if (a == NULL)
    return NULL;
  a->deferred_bad_maps = bad_maps;
  if (!open_checked_base(root, a, plan, defer_crc, &base, error))
    return NULL;
  img = sqlenvfs_image_new(plan->page_size, plan->base_n_pages, base.read, base.src, base.free);
  if (base.deferred != NULL) {
    base.deferred->is_bad = base_bad;
    sqlenvfs_image_defer_base_check(img, deferred_check_run, base.deferred, deferred_check_free);
  }
  cur_pages = plan->base_n_pages;
  if (!sqlenvfs_archive_get(a, plan->base_seq, &rec) ||
      !sqlenvfs_archive_get(a, plan->state_seq, &rec) || plan->base_seq > plan->state_seq) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "%s: the archive %s no longer holds the records from the base %s on "
                "(pruned or damaged since; plan the restore again)",
                plan->db, dir, plan->base_name);
    return NULL;
  }
  if (!records_between(a, plan->base_seq, plan->state_seq)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "%s: records are missing from the archive %s between the base %s and "
                "the target (run `sqlenvfs verify`)", plan->db, dir, plan->base_name);
    return NULL;
  }

  if (!sqlenvfs_archive_compose(a, img, plan->page_size, plan->base_seq, plan->base_n_pages,
                                plan->state_seq, &cur_pages, progress, user, error))
    return NULL;
  if (cur_pages != plan->n_pages) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: the archive %s changed since the restore was planned (plan it again)",
                plan->db, dir);
    return NULL;
  }
  sqlenvfs_image_set_n_pages(img, plan->n_pages);
  return g_steal_pointer(&img);
}

SqlenvfsImage *
sqlenvfs_restore_image(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan,
                       SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  return restore_image(root, plan, FALSE, NULL, NULL, progress, user, error);
}

static gssize
image_below_read(gpointer below, void *buf, gsize len, goffset off, GError **error)
{
  return sqlenvfs_image_read(below, buf, len, off, 0, error);
}

SqlenvfsImage *
sqlenvfs_restore_image_after(SqlenvfsArchive *a, SqlenvfsImage *below, guint64 below_seq,
                             const SqlenvfsArchiveEntry *e, GError **error)
{
  guint32 below_pages, n_pages;
  g_autoptr(SqlenvfsImage) img = NULL;

  if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->page_size == 0 || e->seq < below_seq) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "compose the state after record %" G_GUINT64_FORMAT " on the state after %"
                G_GUINT64_FORMAT ": not a later COMMIT record", e->seq, below_seq);
    return NULL;
  }
  below_pages = (guint32)(sqlenvfs_image_size(below) / e->page_size);
  n_pages = below_pages;
  img = sqlenvfs_image_new(e->page_size, below_pages, image_below_read, below, NULL);
  if (!sqlenvfs_archive_compose(a, img, e->page_size, below_seq, below_pages, e->seq, &n_pages,
                                NULL, NULL, error))
    return NULL;
  if (n_pages != e->db_pages) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "the state after record %" G_GUINT64_FORMAT " composes to %u pages, the record "
                "says %u (run `sqlenvfs verify`)", e->seq, n_pages, e->db_pages);
    return NULL;
  }
  return g_steal_pointer(&img);
}

gboolean
sqlenvfs_restore_to_file(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan, const char *output,
                         gboolean overwrite, SqlenvfsProgressFunc progress, gpointer user,
                         GError **error)
{
  g_autoptr(SqlenvfsImage) img = NULL;
  g_autoptr(GArray) bad_maps = NULL;
  struct stat st;
  int mode;
  gboolean ok;

  if (!sqlenvfs_copy_check_output(root, output, overwrite, "restore", SQLENVFS_RESTORE_OUTPUT_ADVICE,
                                  error))
    return FALSE;
  /* Never production's room (root.h). */
  {
    g_autofree char *dir = g_path_get_dirname(output);
    if (!sqlenvfs_root_check_room(root, dir, plan->size,
                                  "the restored database", error))
      return FALSE;
  }
  /* The base is read once: its crc32 is computed as the output is written
   * and checked before the output is (copy.h) or kept. When it is wrong,
   * nothing is kept and the restore starts again the way it always did,
   * checking each base whole before it is used: the one just found bad is
   * known bad, and the next good one is taken. Likewise each page version
   * chosen from a segment's page map is checked against its records when
   * the write first reads it: when one does not match, nothing is kept and
   * the restore composes again with that segment read from its records,
   * as when its summary is damaged (each segment at most once, so this
   * ends). */
  bad_maps = g_array_new(FALSE, FALSE, sizeof(guint64));
  for (gboolean defer_crc = TRUE;;) {
    g_autoptr(GError) local = NULL;
    gboolean base_bad = FALSE;
    guint n_bad = bad_maps->len;

    img = restore_image(root, plan, defer_crc, &base_bad, bad_maps, NULL, NULL, &local);
    if (img == NULL && bad_maps->len > n_bad) {
      /* A segment's file found not to match its summary while composing. */
      g_info("%s: %s; starting again", plan->db, local->message);
      continue;
    }
    if (img == NULL) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    /* No more readable than production, nor than the base it comes from. */
    mode = sqlenvfs_root_data_mode(root, plan->db);
    if (stat(plan->base_path, &st) == 0)
      mode &= (int)(st.st_mode & 0666);
    ok = sqlenvfs_copy_image(img, output, mode, overwrite, progress, user, NULL, &local);
    g_clear_pointer(&img, sqlenvfs_image_free);
    if (!ok && bad_maps->len > n_bad) {
      g_info("%s: %s; starting again", plan->db, local->message);
      continue;
    }
    if (ok || !base_bad || !defer_crc) {
      if (!ok)
        g_propagate_error(error, g_steal_pointer(&local));
      break;
    }
    g_info("%s: %s; starting again from another base", plan->db, local->message);
    defer_crc = FALSE;
  }
  if (ok && !sqlenvfs_restore_base_unchanged(plan, error)) {
    unlink(output);
    return FALSE;
  }
  return ok;
}

gboolean
sqlenvfs_restore_refresh_dev(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan, gboolean force,
                             SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  const char *cache = sqlenvfs_root_path(root, SQLENVFS_DIR_CACHE);
  g_autofree char *tmp = NULL, *uri = NULL, *env = NULL, *when = NULL, *desc = NULL;
  g_autofree char *prefix = NULL, *name = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  SqlenvfsFileSource *fs;
  gboolean ok = FALSE;
  int tracked = -1;

  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_CACHE, "refresh development", error) ||
      !sqlenvfs_mkdir_p(cache, 0700, error))
    return FALSE;
  prefix = g_strdup_printf(".tmp-refresh-pitr-%s-", plan->db);
  if (sqlenvfs_tmp_leftovers(cache, prefix, FALSE, TRUE, NULL, error) < 0)
    return FALSE;
  name = g_strdup_printf("%s%d", prefix, (int)getpid());
  tmp = g_build_filename(cache, name, NULL);
  img = sqlenvfs_restore_image(root, plan, NULL, NULL, error);
  if (img == NULL)
    return FALSE;
  /* This state in .cache, then a copy aside and the new development
   * database, all at once: never production's room (root.h). */
  if (!sqlenvfs_root_check_room(root, cache, 3 * sqlenvfs_image_size(img),
                                "the state, its copy aside and the new development database",
                                error))
    return FALSE;
  /* This process's name, created (or a leftover of it replaced) just
   * below: an interrupted command line removes it (util.h). */
  tracked = sqlenvfs_tmp_track(tmp, FALSE);
  ok = sqlenvfs_copy_image_aside(img, tmp, sqlenvfs_root_data_mode(root, plan->db), progress,
                                 user, error);
  g_clear_pointer(&img, sqlenvfs_image_free);
  if (ok && !sqlenvfs_restore_base_unchanged(plan, error)) {
    unlink(tmp);
    ok = FALSE;
  }
  if (!ok) {
    sqlenvfs_tmp_untrack(tracked);
    return FALSE;
  }
  ok = FALSE;
  uri = sqlenvfs_db_uri_immutable(tmp);
  when = sqlenvfs_time_format_iso(plan->target_us);
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, error);
    if (db == NULL || !sqlenvfs_env_read(db, &env, tmp, error))
      goto out;
  }
  if (g_strcmp0(env, SQLENVFS_ENV_PRODUCTION) != 0 && !force) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s as of %s is %s%s%s, not production (nothing was changed; "
                SQLENVFS_FORCE_ADVICE ")", plan->db, when, env ? "marked '" : "not marked",
                env ? env : "", env ? "'" : "");
    goto out;
  }
  fs = sqlenvfs_file_source_open(tmp, error);
  if (fs == NULL)
    goto out;
  img = sqlenvfs_image_new(plan->page_size, plan->n_pages, sqlenvfs_file_source_read, fs,
                           sqlenvfs_file_source_close);
  desc = g_strdup_printf("production %s as of %s", plan->db, when);
  ok = sqlenvfs_env_refresh_dev_from_image(root, plan->db, img, desc, NULL, NULL, progress,
                                           user, error);
out:
  g_clear_pointer(&img, sqlenvfs_image_free);
  unlink(tmp);
  /* Its removal durable too: a copy of production must not come back
   * after a power cut (best effort; the next run removes it anyway). */
  sqlenvfs_fsync_dir(cache, NULL);
  sqlenvfs_tmp_untrack(tracked);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Databases                                                            */

static gint
cmp_name(gconstpointer pa, gconstpointer pb)
{
  return strcmp(*(char *const *)pa, *(char *const *)pb);
}

GPtrArray *
sqlenvfs_restore_list_dbs(SqlenvfsRoot *root)
{
  GPtrArray *names = sqlenvfs_root_list_dbs(root);
  g_autoptr(GDir) d = g_dir_open(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), 0, NULL);
  const char *ent;
  while (d && (ent = g_dir_read_name(d)) != NULL) {
    gboolean known = FALSE;
    if (!sqlenvfs_db_name_is_valid(ent))
      continue;
    for (guint i = 0; i < names->len && !known; i++)
      known = strcmp(names->pdata[i], ent) == 0;
    if (!known)
      g_ptr_array_add(names, g_strdup(ent));
  }
  g_ptr_array_sort(names, cmp_name);
  return names;
}
