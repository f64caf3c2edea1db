/*
 * archiver.c — continuous capture of every committed transaction of one
 * production database into its WAL archive (archive.h): the per-database
 * half of the archiver (archiver.h). The loop that drives it, the requests
 * from other threads and the snapshot thread are in archiver_loop.c,
 * archiver_requests.c and archiver_snapshot.c (archiver_int.h says who owns
 * what).
 *
 * The design is DESIGN.md "The archiver's invariants"; in short, for each
 * database the archiver holds four connections:
 *
 *   rd[0], rd[1]  alternately hold a read transaction, so that at every
 *                 moment one of them pins a WAL read mark;
 *   wlock         takes the write lock (BEGIN IMMEDIATE, writes nothing)
 *                 while continuity is decided and during checkpoints;
 *   ckpt          runs the archiver's PASSIVE checkpoints.
 *
 * None of them ever writes, and all are opened with
 * SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, so that closing them never checkpoints or
 * deletes the WAL; as long as they are open the last application connection
 * closing cannot checkpoint-and-delete the WAL either (it needs an exclusive
 * lock on the database file).
 *
 * Per database (function in brackets):
 *
 *   CLOSED --[db_open]--> CAPTURING
 *      open the connections, begin a read transaction on rd[0], take the
 *      write lock, decide continuity against the archive's last record
 *      [decide], record a GAP (then ask for a snapshot) or, when the WAL
 *      holds commits made while capture was down, an OUTAGE [lead_outage],
 *      archive what the WAL holds [capture], sync, rotate, release the
 *      write lock;
 *      on a resume, check that a base of the chain can be placed at its
 *      newest state [latest_has_base], else ask for a snapshot. No alive
 *      time is published until the chain's base is durable [note_alive].
 *   CAPTURING --[cycle]--> CAPTURING
 *      woken by inotify (the -wal file was written), the tick, or a
 *      recheck while a commit is written but not yet published
 *      [schedule_recheck], but not within PACE_US of a cycle that archived
 *      PACE_COMMITS commits or more (archiver_loop.c waits the pace out):
 *      read the wal-index header; if it changed,
 *      archive the new commits up to its mxFrame [capture], fsync
 *      [sync_archive] (batched: at most every SYNC_US, and never later than
 *      that) and note the alive time, then [rotate]: begin a read
 *      transaction on the idle connection and end the other one; run
 *      [checkpoint] when the WAL holds half of checkpoint-pages frames or
 *      more.
 *   CAPTURING --[db_close]--> CLOSED
 *      the database file was replaced, the WAL removed under us, or an
 *      error: everything is closed and db_open runs again after a delay; its
 *      continuity check records a gap if anything may have been lost.
 *
 * Invariants (numbered as in DESIGN.md):
 *   (1) A read transaction is ended only after every frame committed before
 *       the new one began is archived: [rotate] is called only after a
 *       [capture] that reached the wal-index's mxFrame, and the new
 *       transaction begins before the old one ends. So whenever the archiver
 *       holds no read mark other than slot 0, everything up to mxFrame is
 *       archived, and a WAL restart (which needs every reader on slot 0)
 *       never overwrites a frame that is not archived. A salt change seen
 *       while CAPTURING is therefore always continuous.
 *   (2) The cursor (the position after the last archived commit) advances
 *       only after the commit's record is completely written; a failed write
 *       leaves the cursor and the read transaction where they were, so the
 *       frames stay in the WAL until a later attempt succeeds. Commits are
 *       written in batches (all of a batch or none): a failed batch puts the
 *       cursor back to where the batch began. The one exception puts
 *       production's disk first: a WAL grown while writes fail until less
 *       than [cache] min-free-bytes is free on its filesystem, or past
 *       [archive] max-wal-bytes when that is set, is let go
 *       [release_wal_if_over], as if the archiver had stopped, and (5)
 *       decides at the next start.
 *   (3) Checkpoints hold the write lock from before the final capture until
 *       after the rotation that follows the checkpoint.
 *   (5) Continuity after a restart of the archiver (or a reopen) is decided
 *       under the write lock: the same WAL generation whose frame at the
 *       archive's last commit frame still has the archived checksum resumes
 *       (with an OUTAGE record when commits were made meanwhile); anything
 *       else is a gap.
 *   (6) A commit's capture time is the wall time right after its commit
 *       frame was read (so its COMMIT began before it); commits found while
 *       holding the write lock are stamped with the time the lock was taken
 *       (they were all committed before it). Commits archived late after an
 *       interruption (a restart, a failure to write) follow an OUTAGE and
 *       are stamped with its time, which each began before, with the
 *       outage's start as their aux time [lead_outage]: no reader takes a
 *       time inside the interruption, nor one after it before the alive
 *       time reaches it, for recoverable while they are written.
 *
 * Reading (walfile.h): the -wal file through a private descriptor (it
 * carries no POSIX locks); the wal-index header through SQLite's own
 * shared-memory mapping (never a descriptor of ours on -shm: closing one
 * would drop SQLite's locks).
 */
#include "archiver_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

static void
set_state(Db *d, SqlenvfsArchiverState state, const char *message)
{
  g_mutex_lock(&d->a->lock);
  d->state = state;
  g_free(d->message);
  d->message = g_strdup(message);
  g_mutex_unlock(&d->a->lock);
}

static void
close_conn(sqlite3 **db)
{
  if (*db) {
    sqlite3_exec(*db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(*db);
    *db = NULL;
  }
}

/* The outage is over (every commit its OUTAGE covers is archived), or
 * whether there is one is decided again. */
static void
end_outage(Db *d)
{
  d->outage_from = 0;
  d->outage_to = 0;
  d->outage_renew = FALSE;
  memset(&d->outage_at, 0, sizeof d->outage_at);
}

/* Close everything of @d (nothing is checkpointed). */
static void
db_close(Db *d, SqlenvfsGapReason reason, const char *why)
{
  close_conn(&d->wlock);
  close_conn(&d->ckpt);
  close_conn(&d->rd[0]);
  close_conn(&d->rd[1]);
  d->active = -1;
  g_clear_pointer(&d->wal, sqlenvfs_wal_file_free);
  if (d->w) {
    g_autoptr(GError) error = NULL;
    if (!sqlenvfs_archive_writer_sync(d->w, &error))
      g_warning("archive of %s: %s", d->name, error->message);
    g_clear_pointer(&d->w, sqlenvfs_archive_writer_free);
  }
  d->has_cur = FALSE;
  d->has_seen = FALSE;
  d->is_at_end = FALSE;
  d->paced_until = 0;
  d->is_failing = FALSE;
  end_outage(d); /* reopening decides continuity again */
  d->phase = PHASE_CLOSED;
  if (reason != 0) {
    d->reopen_reason = reason;
    g_free(d->reopen_why);
    d->reopen_why = g_strdup(why);
  }
}

void
archiver_db_free(Db *d)
{
  db_close(d, 0, NULL);
  close_conn(&d->hold);
  g_free(d->reopen_why);
  g_free(d->released_why);
  g_free(d->name);
  g_free(d->path);
  g_free(d->wal_path);
  g_free(d->dir);
  g_free(d->message);
  g_free(d);
}

Db *
archiver_db_new(SqlenvfsArchiver *a, const char *name)
{
  Db *d = g_new0(Db, 1);
  d->a = a;
  d->name = g_strdup(name);
  d->path = sqlenvfs_root_prod_db(a->root, name);
  d->wal_path = g_strconcat(d->path, "-wal", NULL);
  d->dir = g_build_filename(a->wal_dir, name, NULL);
  d->active = -1;
  d->state = SQLENVFS_ARCHIVER_STARTING;
  return d;
}


/* ------------------------------------------------------------------ */
/* Connections and read transactions                                    */

static sqlite3 *
open_conn(Db *d, int busy_ms, GError **error)
{
  sqlite3 *db = sqlenvfs_db_open(d->path, SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE,
                                  error);
  if (db == NULL)
    return NULL;
  sqlite3_busy_timeout(db, busy_ms);
  sqlite3_exec(db, "PRAGMA cache_size=16", NULL, NULL, NULL);
  return db;
}

/* Begin a read transaction on @db. */
static gboolean
begin_read(Db *d, sqlite3 *db, GError **error)
{
  gint64 n;
  if (!sqlenvfs_db_exec(db, "BEGIN", d->path, error))
    return FALSE;
  if (!sqlenvfs_db_query_int(db, "SELECT count(*) FROM sqlite_schema", &n, d->path, error)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return FALSE;
  }
  return TRUE;
}

/* Invariant 1: the new read transaction begins before the old one ends.
 * Call only after a capture that reached the wal-index's mxFrame. On
 * failure the old transaction is kept. */
static gboolean
rotate(Db *d, GError **error)
{
  int next = d->active == 0 ? 1 : 0;
  g_assert(d->is_at_end);
  if (!begin_read(d, d->rd[next], error))
    return FALSE;
  if (d->active >= 0)
    sqlite3_exec(d->rd[d->active], "ROLLBACK", NULL, NULL, NULL);
  d->active = next;
  d->rotated_at = g_get_monotonic_time();
  d->is_mark_behind = FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Capture                                                              */

/* Does the WAL hold commits past the cursor, by the wal-index header @si
 * (read under the write lock at a start, at the look of a cycle)? TRUE when
 * @si cannot tell. */
static gboolean
wal_has_more(const Db *d, const SqlenvfsWalIndexHeader *si)
{
  if (si == NULL || !d->has_cur)
    return si == NULL || si->mx_frame > 0;
  if (si->salt1 != d->cur.hdr.salt1 || si->salt2 != d->cur.hdr.salt2)
    return si->mx_frame > 0;
  return si->mx_frame >= d->cur.next_frame;
}

/* Record that capture was interrupted from @from (the last time it was known
 * complete) until @to, the capture time given to the commits archived late,
 * which follow it (lead_outage). Said once per outage (@again: not the
 * first OUTAGE of this one; a failing disk retried every second would fill
 * the log). */
static gboolean
add_outage(Db *d, gint64 from, gint64 to, gboolean again, GError **error)
{
  g_autofree char *a = sqlenvfs_time_format_iso(from);
  g_autofree char *b = sqlenvfs_time_format_iso(to);
  if (!sqlenvfs_archive_writer_add_outage(d->w, from, to, error))
    return FALSE;
  if (again)
    g_debug("archiver %s: capture is still interrupted, since %s (to %s)", d->name, a, b);
  else
    g_message("archiver %s: capture was interrupted from %s to %s; nothing was lost (the WAL "
              "still held every commit), but times in between cannot be restored",
              d->name, a, b);
  return TRUE;
}

/* Before a capture while capture is interrupted (d->outage_from: the
 * archiver was down, or could not write), write the OUTAGE that comes before
 * the commits archived late, so that no reader takes the time since for a
 * recoverable stretch holding none of them while they are written, batch
 * after batch and, after a failure to write, cycle after cycle. It ends at
 * @stamp (the time the write lock was taken at a start) or at the time right
 * after the wal-index header @si was read: every commit up to its mxFrame
 * began before then, and each is stamped with that end, and given the
 * outage's start as its aux time (late_commit), however long archiving them
 * takes. So the states from its end on hold all of them, and in the last
 * chain they wait until the alive time reaches that end (timeline.c), which
 * no late commit moves. A capture that fails after the OUTAGE was written
 * leaves it (its commits are still to come); when more commits were made
 * before the next try (they waited too), that try writes another OUTAGE,
 * from the same start to its own look. Nothing pending ends the outage: its
 * commits are archived, or (none written) none was archived late. */
static gboolean
lead_outage(Db *d, const SqlenvfsWalIndexHeader *si, gint64 stamp, GError **error)
{
  gint64 to;
  if (d->outage_from == 0)
    return TRUE;
  if (si != NULL && !wal_has_more(d, si)) {
    end_outage(d);
    return TRUE;
  }
  if (d->outage_to > 0 &&
      (!d->outage_renew ||
       (si != NULL && si->salt1 == d->outage_at.salt1 && si->salt2 == d->outage_at.salt2 &&
        si->mx_frame == d->outage_at.mx_frame))) {
    d->outage_renew = FALSE; /* nothing committed since it was written */
    return TRUE;
  }
  if (si == NULL && stamp == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "the wal-index of %s cannot be read, so the commits archived late after the "
                "interruption cannot be told from later ones", d->path);
    return FALSE;
  }
  to = stamp ? stamp : sqlenvfs_clock_now();
  if (!add_outage(d, d->outage_from, to, d->outage_to > 0, error))
    return FALSE;
  /* Its time as written (a clock that stepped back is clamped). */
  d->outage_to = sqlenvfs_archive_writer_last(d->w)->time;
  if (si != NULL)
    d->outage_at = *si;
  else
    memset(&d->outage_at, 0, sizeof d->outage_at);
  d->outage_renew = FALSE;
  return TRUE;
}

/* Is @c, in the cursor's WAL generation, a commit the last OUTAGE covers
 * (lead_outage)? Under the write lock (@stamp) every commit found is. */
static gboolean
late_commit(const Db *d, const SqlenvfsWalCommit *c, gint64 stamp)
{
  if (d->outage_to == 0)
    return FALSE;
  return stamp != 0 ||
         (d->cur.hdr.salt1 == d->outage_at.salt1 && d->cur.hdr.salt2 == d->outage_at.salt2 &&
          c->commit_frame <= d->outage_at.mx_frame);
}

typedef struct {
  guint32 pgno, frame;
} PageFrame;

static int
cmp_pgno_then_newest(const void *pa, const void *pb)
{
  const PageFrame *x = pa, *y = pb;
  if (x->pgno != y->pgno)
    return x->pgno < y->pgno ? -1 : 1;
  return x->frame > y->frame ? -1 : x->frame < y->frame;
}

static int
cmp_frame(const void *pa, const void *pb)
{
  const PageFrame *x = pa, *y = pb;
  return x->frame < y->frame ? -1 : x->frame > y->frame;
}

static gboolean
open_wal(Db *d, GError **error)
{
  if (d->wal == NULL)
    d->wal = sqlenvfs_wal_file_open(d->wal_path, d->a->wal_buf, WAL_BUF, error);
  return d->wal != NULL;
}

static void
latency_add(Latency *l, gint64 us)
{
  l->v[l->n % N_LATENCY] = us;
  l->n++;
  if (us > l->max)
    l->max = us;
}

/* Write one commit's record: the newest version of each page it wrote, in
 * frame order. The cursor is not touched here. */
static gboolean
write_commit(Db *d, const SqlenvfsWalCommit *c, gint64 captured, gint64 scan_began,
             guint64 *bytes, GError **error)
{
  const SqlenvfsWalHeader *h = &d->cur.hdr;
  guint n = c->pgnos->len, kept = 0;
  g_autofree PageFrame *pf = g_new(PageFrame, MAX(n, 1));
  g_autofree guint32 *pgnos = NULL;
  SqlenvfsArchiveEntry e = { 0 };

  for (guint i = 0; i < n; i++) {
    pf[i].pgno = g_array_index(c->pgnos, guint32, i);
    pf[i].frame = c->first_frame + i;
  }
  qsort(pf, n, sizeof *pf, cmp_pgno_then_newest);
  for (guint i = 0; i < n; i++)
    if (kept == 0 || pf[kept - 1].pgno != pf[i].pgno)
      pf[kept++] = pf[i];
  qsort(pf, kept, sizeof *pf, cmp_frame);
  pgnos = g_new(guint32, MAX(kept, 1));
  for (guint i = 0; i < kept; i++)
    pgnos[i] = pf[i].pgno;

  e.time = captured;
  e.aux_time = scan_began;
  e.flags = h->big_endian_cksum ? SQLENVFS_ARCHIVE_BIG_ENDIAN_CKSUM : 0;
  e.page_size = h->page_size;
  e.db_pages = c->db_pages;
  e.n_pages = kept;
  e.salt1 = h->salt1;
  e.salt2 = h->salt2;
  e.ckpt_seq = h->ckpt_seq;
  e.first_frame = c->first_frame;
  e.commit_frame = c->commit_frame;
  e.cksum1 = c->cksum1;
  e.cksum2 = c->cksum2;
  if (!sqlenvfs_archive_writer_begin_commit(d->w, &e, pgnos, error))
    return FALSE;
  /* Each page straight from the WAL file's read-ahead (capture() set its
   * limit to the committed frames, which it usually holds already). */
  for (guint i = 0; i < kept; i++) {
    const guint8 *page =
      sqlenvfs_wal_file_view(d->wal, h->page_size,
                             sqlenvfs_wal_page_offset(h->page_size, pf[i].frame), error);
    if (page == NULL) {
      if (error == NULL || *error == NULL)
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                    "read frame %u of %s: the file ended early", pf[i].frame, d->wal_path);
      sqlenvfs_archive_writer_abort_commit(d->w);
      return FALSE;
    }
    if (!sqlenvfs_archive_writer_add_pages(d->w, page, h->page_size, error))
      return FALSE;
  }
  if (!sqlenvfs_archive_writer_end_commit(d->w, error))
    return FALSE;
  *bytes += (guint64)kept * h->page_size;
  return TRUE;
}

typedef struct {
  guint n_commits;
  guint64 n_frames, n_bytes;
  gint64 last_captured; /* capture time of the last commit archived         */
  gboolean reached_end; /* everything committed (up to mxFrame) is archived */
} CaptureResult;

/* capture(), without the bookkeeping: archive the commits after the
 * cursor; *res says how many and whether they reached @si's mxFrame. */
static gboolean
capture_commits(Db *d, const SqlenvfsWalIndexHeader *si, gint64 stamp, gint64 began,
                CaptureResult *res, GError **error)
{
  SqlenvfsWalHeader h;
  guint32 max = 0;
  /* Every commit published before @began is at or before @si's mxFrame
   * (the wal-index was read after it): that is the time this scan is
   * complete as of, not the time it starts reading the WAL. */
  gint64 scan_began = began ? began : stamp ? stamp : sqlenvfs_clock_now();

  memset(res, 0, sizeof *res);
  if (!open_wal(d, error))
    return FALSE;
  sqlenvfs_wal_file_invalidate(d->wal);
  if (!sqlenvfs_wal_read_header(sqlenvfs_wal_file_read, d->wal, &h, error)) {
    if (error && *error)
      return FALSE;
    /* No WAL header: empty (truncated by a checkpoint, or new). */
    res->reached_end = si == NULL || si->mx_frame == 0;
    return TRUE;
  }
  if (!d->has_cur || h.salt1 != d->cur.hdr.salt1 || h.salt2 != d->cur.hdr.salt2) {
    /* A new WAL generation. While CAPTURING this is continuous by
     * invariant 1; at open, decide() has already set the cursor. */
    if (d->has_cur)
      g_debug("archiver %s: WAL restarted (salts %08x/%08x -> %08x/%08x)", d->name,
              d->cur.hdr.salt1, d->cur.hdr.salt2, h.salt1, h.salt2);
    sqlenvfs_wal_cursor_init(&d->cur, &h);
    d->has_cur = TRUE;
  }
  if (si && si->salt1 == h.salt1 && si->salt2 == h.salt2) {
    max = si->mx_frame;
    sqlenvfs_wal_file_set_limit(d->wal, h.page_size, max);
  } else if (si && si->mx_frame == 0)
    max = 0;
  if (si && si->salt1 == h.salt1 && si->salt2 == h.salt2 && max < d->cur.next_frame) {
    res->reached_end = TRUE;
    return TRUE;
  }
  /* The commits of one capture are written as batches (one compressed
   * block stream for several commits, each still its own record and
   * restore point), of at most BATCH_COMMITS commits and about BATCH_BYTES
   * of pages; a larger commit is written on its own. A batch is written
   * whole or not at all, so the cursor goes back to where it began when
   * writing it fails (invariant 2). */
  SqlenvfsWalCursor batch_saved = d->cur;
  sqlenvfs_archive_writer_begin_batch(d->w);
  for (;;) {
    SqlenvfsWalCommit c = { 0 };
    SqlenvfsWalCursor before = d->cur;
    guint32 commit_frame = sqlenvfs_wal_find_commit_frame(sqlenvfs_wal_file_read, d->wal, &d->cur, max);
    gint64 captured, aux;
    gboolean ok, alone;
    guint64 batch_bytes;

    if (commit_frame == 0)
      break;
    if (!sqlenvfs_wal_next_commit(sqlenvfs_wal_file_read, d->wal, &d->cur, commit_frame, &c, error)) {
      if (error && *error) {
        sqlenvfs_archive_writer_abort_batch(d->w);
        d->cur = batch_saved;
        return FALSE;
      }
      break;
    }
    alone = (guint64)c.pgnos->len * d->cur.hdr.page_size > BATCH_BYTES;
    if (alone) {
      if (!sqlenvfs_archive_writer_end_batch(d->w, error)) {
        sqlenvfs_wal_commit_clear(&c);
        d->cur = batch_saved;
        return FALSE;
      }
      batch_saved = before; /* the batch is written; this one is not yet */
    }
    if (late_commit(d, &c, stamp)) {
      /* Committed before the OUTAGE's end, which was written first; its
       * aux time, the outage's start, moves no reader's alive time. */
      captured = d->outage_to;
      aux = d->outage_from;
    } else {
      captured = stamp ? stamp : sqlenvfs_clock_now();
      aux = scan_began;
    }
    ok = write_commit(d, &c, captured, aux, &res->n_bytes, error);
    res->n_frames += c.commit_frame - c.first_frame + 1;
    sqlenvfs_wal_commit_clear(&c);
    if (!ok) {
      if (!alone)
        sqlenvfs_archive_writer_abort_batch(d->w);
      d->cur = batch_saved; /* invariant 2 */
      return FALSE;
    }
    res->n_commits++;
    res->last_captured = captured;
    if (alone ||
        sqlenvfs_archive_writer_batch_size(d->w, &batch_bytes) >= BATCH_COMMITS ||
        batch_bytes >= BATCH_BYTES) {
      if (!alone && !sqlenvfs_archive_writer_end_batch(d->w, error)) {
        d->cur = batch_saved;
        return FALSE;
      }
      batch_saved = d->cur;
      sqlenvfs_archive_writer_begin_batch(d->w);
    }
  }
  if (!sqlenvfs_archive_writer_end_batch(d->w, error)) {
    d->cur = batch_saved; /* invariant 2 */
    return FALSE;
  }
  res->reached_end = si == NULL || si->salt1 != h.salt1 || si->salt2 != h.salt2 ||
                     d->cur.next_frame > si->mx_frame;
  if (si && !res->reached_end)
    g_debug("archiver %s: WAL ends before the committed frame %u (at %u); retrying", d->name,
            si->mx_frame, d->cur.next_frame);
  return TRUE;
}

/* Archive every commit after the cursor, up to the wal-index's mxFrame
 * (@si, or the last valid commit when NULL), and note whether that reached
 * its end (d->is_at_end, which rotate() relies on). @stamp: the capture
 * time to give every commit (0: the time each is read); @began: when the
 * wal-index header @si was about to be read, the time the scan is complete
 * as of (0: @stamp, or now). */
static gboolean
capture(Db *d, const SqlenvfsWalIndexHeader *si, gint64 stamp, gint64 began, CaptureResult *res,
        GError **error)
{
  gint64 alive0 = sqlenvfs_archive_writer_alive(d->w);
  d->is_at_end = FALSE;
  if (!lead_outage(d, si, stamp, error))
    return FALSE;
  /* No commit is archived while capture is interrupted before its OUTAGE. */
  g_assert(d->outage_from == 0 || d->outage_to > 0);
  if (!capture_commits(d, si, stamp, began, res, error)) {
    /* Capture is interrupted until the archive can be written again: an
     * outage from the last time it was known complete, whose OUTAGE the
     * next capture writes (again, if this one wrote it: lead_outage). */
    if (d->outage_from == 0)
      d->outage_from = alive0;
    d->outage_renew = d->outage_to > 0;
    return FALSE;
  }
  /* The outage ends once every commit its OUTAGE covers is archived, and
   * not before. */
  if (d->outage_to > 0 &&
      (res->reached_end ||
       (stamp == 0 && d->has_cur && d->cur.hdr.salt1 == d->outage_at.salt1 &&
        d->cur.hdr.salt2 == d->outage_at.salt2 && d->cur.next_frame > d->outage_at.mx_frame)))
    end_outage(d);
  if (res->n_commits > 0) {
    /* Invariant 2: the cursor is right after the last commit written. */
    const SqlenvfsArchiveEntry *last = sqlenvfs_archive_writer_last(d->w);
    g_assert(last != NULL && last->type == SQLENVFS_ARCHIVE_COMMIT);
    g_assert(last->commit_frame + 1 == d->cur.next_frame && last->salt1 == d->cur.hdr.salt1 &&
             last->salt2 == d->cur.hdr.salt2);
  }
  d->is_at_end = res->reached_end;
  return TRUE;
}

/* Publish that capture was complete as of @t (DESIGN.md, invariant 7).
 * Not before the current chain's base is durable and @t is past the moment
 * it was (alive_from): an alive time is a promise that everything up to it
 * can be restored, and a snapshot pinned while the WAL held no commit is
 * placed by its pin time, which only an alive time past it vouches for
 * after a power cut (else the next start records an outage over it). */
static gboolean
note_alive(Db *d, gint64 t, gint64 step, GError **error)
{
  gint64 from;
  g_mutex_lock(&d->a->lock);
  from = d->alive_from;
  g_mutex_unlock(&d->a->lock);
  if (t < from)
    return TRUE;
  if (!sqlenvfs_archive_writer_set_alive(d->w, t, step, error))
    return FALSE;
  g_mutex_lock(&d->a->lock);
  d->alive = sqlenvfs_archive_writer_alive(d->w);
  g_mutex_unlock(&d->a->lock);
  return TRUE;
}

/* Can the newest archived state be restored: does a base of its chain,
 * placed where capture was complete, reach the archive's last record?
 * Asked of the timeline (sqlenvfs_timeline_unrecoverable_newest: records
 * after a break, or records with no window at all, that no usable copy
 * reaches), not of the windows' end: the records archived from the WAL at
 * this start are newer than the alive time until the next sync, and a
 * window ends at the alive time, so comparing the two took every restart
 * after an outage for a chain without a base. FALSE with *why when not,
 * or when that cannot be read. */
static gboolean
latest_has_base(Db *d, char **why)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(d->a->root, d->name, &error);
  g_autofree char *what = NULL;
  gint64 from = 0, to = 0;

  if (tl == NULL) {
    *why = g_strdup_printf("its recoverable window cannot be read: %s", error->message);
    return FALSE;
  }
  if (sqlenvfs_timeline_unrecoverable_newest(tl, &from, &to, &what)) {
    *why = g_strdup_printf("no base of its chain can be placed (%s; a snapshot pinned while the "
                           "WAL held no commit lies in an outage, or none was kept)",
                           what ? what : "no copy reaches it");
    return FALSE;
  }
  return TRUE;
}

/* Make the archived records durable, note their durable latencies and the
 * alive time that waited for them. */
static gboolean
sync_archive(Db *d, GError **error)
{
  gint64 durable;
  if (!sqlenvfs_archive_writer_sync(d->w, error))
    return FALSE;
  durable = g_get_monotonic_time();
  d->synced_at = durable;
  sqlenvfs_shipper_notify(d->a->shipper, d->name);
  if (d->unsynced > 0) {
    g_mutex_lock(&d->a->lock);
    for (guint i = 0; d->unsynced_woken > 0 && i < d->unsynced; i++)
      latency_add(&d->durable_lat, durable - d->unsynced_woken);
    g_mutex_unlock(&d->a->lock);
    d->unsynced = 0;
    d->unsynced_woken = 0;
  }
  if (d->alive_pending > 0) {
    gint64 t = d->alive_pending;
    d->alive_pending = 0;
    if (!note_alive(d, t, ALIVE_STEP_US, error))
      return FALSE;
  }
  return TRUE;
}

/* Note the latencies of what a capture archived (unless @woken < 0) and,
 * when it reached the end, that capture was complete as of @scan_began;
 * sync when @sync_now or when the last sync is SYNC_US old (so that under a
 * busy writer one fsync covers many cycles; durable within 1 s is the
 * promise). */
static gboolean
finish_cycle(Db *d, const CaptureResult *res, gint64 scan_began, gint64 woken,
             gboolean sync_now, GError **error)
{
  gint64 written = g_get_monotonic_time();
  if (res->n_commits > 0) {
    g_mutex_lock(&d->a->lock);
    for (guint i = 0; woken >= 0 && i < res->n_commits; i++)
      latency_add(&d->capture_lat, written - woken);
    d->commits += res->n_commits;
    d->frames += res->n_frames;
    d->bytes += res->n_bytes;
    d->last_capture = sqlenvfs_archive_writer_last(d->w)->time;
    g_mutex_unlock(&d->a->lock);
    if (woken >= 0 && (d->unsynced_woken == 0 || woken < d->unsynced_woken))
      d->unsynced_woken = woken;
    d->unsynced += res->n_commits;
    g_debug("archiver %s: %u commit(s), %" G_GUINT64_FORMAT " page(s) archived; capture "
            "latency %.1f ms",
            d->name, res->n_commits, res->n_bytes / MAX(sqlenvfs_archive_writer_last(d->w)->page_size, 1),
            woken >= 0 ? (written - woken) / 1000.0 : 0.0);
  }
  if (res->reached_end)
    d->alive_pending = scan_began;
  if (sync_now || written - d->synced_at >= SYNC_US)
    return sync_archive(d, error);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Opening: the continuity decision (invariant 5)                       */

/* Does frame @frame of the WAL described by @h carry the cumulative
 * checksum (@ck1, @ck2)? */
static gboolean
frame_matches(Db *d, const SqlenvfsWalHeader *h, guint32 frame, guint32 ck1, guint32 ck2)
{
  SqlenvfsWalFrameHeader fh;
  g_autoptr(GError) error = NULL;
  if (!sqlenvfs_wal_frame_header_read(sqlenvfs_wal_file_read, d->wal, h->page_size, frame, &fh,
                                      &error))
    return FALSE;
  return fh.pgno != 0 && fh.db_pages != 0 && fh.salt1 == h->salt1 && fh.salt2 == h->salt2 &&
         fh.cksum1 == ck1 && fh.cksum2 == ck2;
}

/* The quiet marker, .sqlenvfs/quiet-<db>: written when idle_checkpoint has
 * put every frame into the database file and truncated the WAL, after the
 * commit @last was archived and synced, and when capture starts on an empty
 * WAL (the state @last, a commit or the start of a chain, is then all in
 * the file: a database never written keeps its chain across restarts,
 * instead of a new one and a new snapshot at each). It says which state, and the
 * database file as it was then (device, inode, size, mtime to the
 * nanosecond). A WAL that is empty at the next start, or holds a later
 * generation, then continues the archive only if the file is still exactly
 * that: nothing was checkpointed into it since, so every commit made
 * meanwhile is in the WAL (from its first frame). Without it, each start
 * after a quiet spell found an empty WAL and had to record a gap. A file
 * whose mtime has no fraction of a second is on a filesystem whose times
 * are too coarse to tell a later write: not trusted. A damaged or stale
 * marker matches nothing (a gap, as without one); it is written without a
 * sync, as losing it only costs that gap. */
#define QUIET_FORMAT "sqlenvfs-quiet 1 seq=%" G_GUINT64_FORMAT " salts=%08x/%08x frame=%u " \
                     "dev=%" G_GUINT64_FORMAT " ino=%" G_GUINT64_FORMAT " size=%" \
                     G_GUINT64_FORMAT " mtime=%" G_GINT64_FORMAT

static char *
quiet_path(Db *d)
{
  g_autofree char *file = g_strconcat("quiet-", d->name, NULL);
  return g_build_filename(sqlenvfs_root_path(d->a->root, SQLENVFS_DIR_STATE), file, NULL);
}

/* The marker's text for @last and the database file as @st shows it: its
 * line and the line's crc. */
static char *
quiet_text(const SqlenvfsArchiveEntry *last, const struct stat *st)
{
  g_autofree char *line =
    g_strdup_printf(QUIET_FORMAT, last->seq, last->salt1, last->salt2, last->commit_frame,
                    (guint64)st->st_dev, (guint64)st->st_ino, (guint64)st->st_size,
                    (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec);
  return g_strdup_printf("%s crc=%08x\n", line, sqlenvfs_crc32(0, line, strlen(line)));
}

static void
quiet_note(Db *d)
{
  const SqlenvfsArchiveEntry *last = sqlenvfs_archive_writer_last_state(d->w);
  g_autofree char *path = quiet_path(d), *text = NULL;
  g_autoptr(GError) local = NULL;
  struct stat st;
  if (last == NULL || d->unsynced > 0 || stat(d->path, &st) != 0 || st.st_mtim.tv_nsec == 0)
    return;
  text = quiet_text(last, &st);
  if (!sqlenvfs_write_file_replace(path, text, strlen(text), 0600, &local))
    g_debug("archiver %s: %s", d->name, local->message);
}

/* Whether the quiet marker says the database file is as it was when the
 * WAL was emptied right after @last was archived. */
static gboolean
quiet_matches(Db *d, const SqlenvfsArchiveEntry *last)
{
  g_autofree char *path = quiet_path(d), *text = NULL, *want = NULL;
  struct stat st;
  if (!g_file_get_contents(path, &text, NULL, NULL) || stat(d->path, &st) != 0 ||
      st.st_mtim.tv_nsec == 0)
    return FALSE;
  want = quiet_text(last, &st);
  return strcmp(text, want) == 0;
}

#define COPY_WHY                                                                          \
  "it is another file with the size and modification time the database had when its WAL "  \
  "was empty after the last archived state: a copy of the root, say; nothing is known to "  \
  "be lost, but the archive cannot vouch for a copy"

/* Whether the quiet marker matches but for the database file's device and
 * inode: another file with the size and modification time it had when the
 * WAL was emptied right after @last (the root copied, `cp -a`, or restored
 * from a copy of its files). */
static gboolean
quiet_moved(Db *d, const SqlenvfsArchiveEntry *last)
{
  g_autofree char *path = quiet_path(d), *text = NULL, *want = NULL;
  guint64 dev, ino;
  const char *p;
  struct stat st;

  if (!g_file_get_contents(path, &text, NULL, NULL) || stat(d->path, &st) != 0 ||
      st.st_mtim.tv_nsec == 0 || (p = strstr(text, " dev=")) == NULL ||
      sscanf(p, " dev=%" G_GUINT64_FORMAT " ino=%" G_GUINT64_FORMAT, &dev, &ino) != 2 ||
      (dev == (guint64)st.st_dev && ino == (guint64)st.st_ino))
    return FALSE;
  st.st_dev = (dev_t)dev;
  st.st_ino = (ino_t)ino;
  want = quiet_text(last, &st);
  return strcmp(text, want) == 0;
}

/* Decide whether the WAL continues the archive. Returns 0 when it does (the
 * cursor is then set, or left unset for an empty WAL), else the gap's
 * reason with *why describing it. */
static SqlenvfsGapReason
decide(Db *d, const SqlenvfsWalIndexHeader *si, char **why)
{
  const SqlenvfsArchiveEntry *last = sqlenvfs_archive_writer_last_state(d->w);
  SqlenvfsWalHeader h;
  gboolean has_h;
  g_autoptr(GError) error = NULL;

  g_assert(!sqlite3_get_autocommit(d->wlock)); /* invariant 5: under the write lock */
  sqlenvfs_wal_file_invalidate(d->wal);
  has_h = sqlenvfs_wal_read_header(sqlenvfs_wal_file_read, d->wal, &h, &error);
  d->has_cur = FALSE;
  if (last == NULL) {
    *why = g_strdup("nothing was archived before");
    return SQLENVFS_GAP_FIRST_START;
  }
  if (d->reopen_reason != 0) {
    /* What was seen when capture stopped; the reason itself is recorded
     * beside it, so the text only adds the details. */
    *why = g_strdup(d->reopen_why ? d->reopen_why : "");
    return d->reopen_reason;
  }
  if ((!has_h || h.salt1 != last->salt1 || h.salt2 != last->salt2) && quiet_matches(d, last)) {
    /* The WAL was empty right after @last (emptied by idle_checkpoint, or
     * found so at a start), and the file not written since: what the WAL
     * holds now came after (an OUTAGE). */
    if (has_h) {
      sqlenvfs_wal_cursor_init(&d->cur, &h);
      d->has_cur = TRUE;
    }
    g_info("archiver %s: the database file is as it was when the WAL was empty after the last "
           "archived state: the archive goes on", d->name);
    return 0;
  }
  if ((!has_h || h.salt1 != last->salt1 || h.salt2 != last->salt2) && quiet_moved(d, last)) {
    /* Nothing is known to be lost, but a copy cannot be told from a file
     * changed and put back as it was: a new chain, said as it is. */
    *why = g_strdup(COPY_WHY);
    return SQLENVFS_GAP_DB_REPLACED;
  }
  if (last->type == SQLENVFS_ARCHIVE_COMMIT) {
    if (!has_h) {
      *why = g_strdup_printf("the WAL is empty; the last archived frame was %u of generation "
                             "%08x/%08x", last->commit_frame, last->salt1, last->salt2);
      return SQLENVFS_GAP_WAL_MISSING;
    }
    if (h.salt1 != last->salt1 || h.salt2 != last->salt2) {
      *why = g_strdup_printf("the WAL is now generation %08x/%08x; the last archived frame "
                             "was %u of generation %08x/%08x", h.salt1, h.salt2,
                             last->commit_frame, last->salt1, last->salt2);
      return SQLENVFS_GAP_WAL_RESTARTED;
    }
    if ((si && si->salt1 == h.salt1 && si->salt2 == h.salt2 && si->mx_frame < last->commit_frame) ||
        !frame_matches(d, &h, last->commit_frame, last->cksum1, last->cksum2)) {
      *why = g_strdup_printf("frame %u of WAL generation %08x/%08x is not the archived one",
                             last->commit_frame, h.salt1, h.salt2);
      return SQLENVFS_GAP_WAL_MISMATCH;
    }
    d->cur.hdr = h;
    d->cur.next_frame = last->commit_frame + 1;
    d->cur.cksum1 = last->cksum1;
    d->cur.cksum2 = last->cksum2;
    d->has_cur = TRUE;
    return 0;
  }
  /* The last state is the start of a chain whose WAL held no commit. */
  if (has_h && (last->salt1 | last->salt2) != 0 && h.salt1 == last->salt1 &&
      h.salt2 == last->salt2 && last->commit_frame == 0) {
    sqlenvfs_wal_cursor_init(&d->cur, &h);
    d->has_cur = TRUE;
    return 0;
  }
  if (last->reason == SQLENVFS_GAP_FIRST_START) {
    /* Nothing was ever archived (a first start is recorded only then, and
     * this chain holds no commit): nothing can have been lost, so this is a
     * first start again, not a gap (the archiver was stopped, or killed,
     * before the first commit came). */
    *why = g_strdup("nothing was archived before");
    return SQLENVFS_GAP_FIRST_START;
  }
  *why = g_strdup("the WAL held no archived frame to check continuity against");
  return has_h ? SQLENVFS_GAP_WAL_RESTARTED : SQLENVFS_GAP_WAL_MISSING;
}

/* Production keeps its room (STORE.md invariant 7, for the archive): an
 * archive on production's filesystem is not written while its next batch
 * would leave less than [cache] min-free-bytes free there. That fails the
 * cycle (or the open) as a full disk would, before the disk is full: the
 * commits wait in the WAL (until it grows past a bound: release_wal_if_over)
 * while the application can still commit. Looked at again at most every ROOM_US
 * while there is room: a writer can take that much more. */
static gboolean
check_room(Db *d, GError **error)
{
  gint64 now = g_get_monotonic_time();

  if (now - d->room_at < ROOM_US)
    return TRUE;
  if (!sqlenvfs_root_check_room(d->a->root, d->dir, BATCH_BYTES, "the archive's next batch",
                                error))
    return FALSE;
  d->room_at = now;
  return TRUE;
}

/* Open @d and start capturing (see the state machine at the top). FALSE
 * with no error when the database cannot be captured now (its state says
 * why); FALSE with *error on a failure. */
static gboolean
db_open(Db *d, GError **error)
{
  SqlenvfsArchiver *a = d->a;
  g_autofree char *mode = NULL;
  g_autofree char *why = NULL;
  g_autofree char *no_base = NULL;
  struct stat st;
  SqlenvfsWalIndexHeader si;
  gboolean has_si, check_base, has_base = TRUE;
  SqlenvfsGapReason gap;
  gint64 t_lock, prev_alive, outage_from = 0;
  CaptureResult res;
  int rc;

  if (stat(d->path, &st) != 0) {
    set_state(d, SQLENVFS_ARCHIVER_MISSING, "the database file does not exist");
    return FALSE;
  }
  d->dev = st.st_dev;
  d->ino = st.st_ino;
  d->has_file_seen = FALSE;
  /* A file in rollback-journal mode is not opened: a hot journal in it
   * would be played back by the first read (util.h). */
  if (g_strcmp0(sqlenvfs_db_file_journal(d->path), "delete") == 0)
    mode = g_strdup("delete");
  for (int i = 0; i < 2 && mode == NULL; i++)
    if ((d->rd[i] = open_conn(d, READ_BUSY_MS, error)) == NULL)
      return FALSE;
  if (mode == NULL) {
    if ((d->ckpt = open_conn(d, CKPT_LOCK_MS, error)) == NULL ||
        (d->wlock = open_conn(d, OPEN_LOCK_MS, error)) == NULL)
      return FALSE;
    sqlite3_exec(d->rd[0], "PRAGMA query_only=1", NULL, NULL, NULL);
    sqlite3_exec(d->rd[1], "PRAGMA query_only=1", NULL, NULL, NULL);
    if (!sqlenvfs_db_query_text(d->rd[0], "PRAGMA journal_mode", &mode, d->path, error))
      return FALSE;
  }
  if (g_strcmp0(mode, "wal") != 0) {
    g_autofree char *msg = g_strdup_printf(
      "%s is not in WAL mode (journal_mode=%s), so its commits cannot be archived; switch "
      "it with `PRAGMA journal_mode=WAL` (see `sqlenvfs doctor`)", d->path, mode ? mode : "?");
    if (d->state != SQLENVFS_ARCHIVER_NOT_WAL)
      g_warning("archiver: %s", msg);
    db_close(d, 0, NULL);
    set_state(d, SQLENVFS_ARCHIVER_NOT_WAL, msg);
    return FALSE;
  }
  /* The capture on start writes to the archive too: not into production's
   * room (a failed open holds nothing, as on a full disk). */
  d->room_at = 0;
  if (!check_room(d, error))
    return FALSE;
  /* A read transaction first (it also creates an absent -wal). */
  if (!begin_read(d, d->rd[0], error))
    return FALSE;
  d->active = 0;
  if (!open_wal(d, error))
    return FALSE;
  d->w = sqlenvfs_archive_writer_open(d->dir, a->segment_max, sqlenvfs_copy_mode(&st), error);
  if (d->w == NULL)
    return FALSE;
  if (a->segment_max_records > 0)
    sqlenvfs_archive_writer_set_max_records(d->w, (guint64)a->segment_max_records);
  if (!sqlenvfs_archive_writer_write_summaries(d->w, error))
    return FALSE;

  /* Under the write lock: nothing commits, nothing restarts the WAL. */
  rc = sqlite3_exec(d->wlock, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, d->wlock, rc, "take the write lock (to start archiving) of",
                          d->path);
    return FALSE;
  }
  t_lock = sqlenvfs_clock_now();
  has_si = sqlenvfs_wal_index_read(d->rd[0], &si);
  prev_alive = sqlenvfs_archive_writer_alive(d->w);
  gap = decide(d, has_si ? &si : NULL, &why);
  if (gap != 0 && gap != SQLENVFS_GAP_FIRST_START && d->released_at != 0) {
    g_autofree char *when = sqlenvfs_time_format_iso(d->released_at);
    g_autofree char *was = g_steal_pointer(&why);
    why = g_strdup_printf("%s%sthe archiver let go of the WAL at %s, when it had grown, %s, "
                          "while the archive could not be written",
                          was, *was ? "; " : "", when, d->released_why);
  }
  if (gap != 0) {
    SqlenvfsArchiveEntry wal = { 0 };
    SqlenvfsWalHeader h;
    g_autoptr(GError) local = NULL;
    sqlenvfs_wal_file_invalidate(d->wal);
    if (sqlenvfs_wal_read_header(sqlenvfs_wal_file_read, d->wal, &h, &local)) {
      wal.salt1 = h.salt1;
      wal.salt2 = h.salt2;
      wal.ckpt_seq = h.ckpt_seq;
      wal.page_size = h.page_size;
      wal.cksum1 = h.cksum1;
      wal.cksum2 = h.cksum2;
      wal.commit_frame = has_si && si.salt1 == h.salt1 && si.salt2 == h.salt2 ? si.mx_frame : 1;
    }
    if (!sqlenvfs_archive_writer_add_gap(d->w, t_lock, prev_alive, gap, why, &wal, error)) {
      sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
      return FALSE;
    }
    if (gap == SQLENVFS_GAP_FIRST_START)
      g_message("archiver %s: archiving starts", d->name);
    else
    {
      g_autofree char *from = prev_alive ? sqlenvfs_time_format_iso(prev_alive) : g_strdup("?");
      g_autofree char *lost = strcmp(why, COPY_WHY) == 0
                                ? g_strdup("")
                                : g_strdup_printf("transactions committed after %s may be "
                                                  "lost and ", from);
      g_warning("archiver %s: GAP: %s%s%s%s; %stimes up to now cannot be restored; taking a "
                "fresh snapshot to start a new recoverable window",
                d->name, sqlenvfs_archive_gap_reason_text(gap), *why ? " (" : "", why,
                *why ? ")" : "", lost);
    }
    g_mutex_lock(&a->lock);
    if (gap != SQLENVFS_GAP_FIRST_START)
      d->gaps++;
    g_mutex_unlock(&a->lock);
  } else if (prev_alive > 0 && prev_alive < t_lock) {
    outage_from = prev_alive; /* commits found now were made meanwhile */
  }
  d->reopen_reason = 0;
  d->changed_at = g_get_monotonic_time(); /* quiet from now on, not since boot */
  /* No alive time until the chain is known to have a base (checked below,
   * after the write lock is released) or its snapshot is taken. */
  g_mutex_lock(&a->lock);
  d->alive_from = G_MAXINT64;
  if (gap != 0)
    d->snapshot_pending = TRUE;
  g_mutex_unlock(&a->lock);
  /* The OUTAGE before the commits archived late, all stamped t_lock, when
   * the WAL holds any (lead_outage). */
  d->outage_from = outage_from;
  if (!capture(d, has_si ? &si : NULL, t_lock, 0, &res, error) ||
      !finish_cycle(d, &res, t_lock, -1, TRUE, error)) {
    sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
    return FALSE;
  }
  if (!res.reached_end) {
    /* Nothing commits under the write lock: the WAL itself disagrees with
     * its wal-index, and ending the read transaction would let the frames
     * that cannot be read be lost without a record. */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "start archiving %s: its WAL holds no valid frame %u, which its wal-index says "
                "is committed (archived up to frame %u); check it with `sqlenvfs doctor`",
                d->path, si.mx_frame, d->cur.next_frame - 1);
    sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
    return FALSE;
  }
  if (!rotate(d, error)) {
    sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
    return FALSE;
  }
  /* An empty WAL under the write lock: the last state is all in the file. */
  if (stat(d->wal_path, &st) == 0 && st.st_size == 0)
    quiet_note(d);
  sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_busy_timeout(d->wlock, CKPT_LOCK_MS);
  if (has_si)
    d->seen = si;
  d->has_seen = has_si;
  /* Resumed: the chain goes on, but its base may be unusable (a power cut
   * left the alive time before the pin time of a snapshot taken while the
   * WAL held no commit, and the outage recorded now covers it) or gone.
   * Known before the state says capturing, so that a status read then
   * shows the snapshot still to be taken. */
  check_base = gap == 0 && !d->snapshot_pending;
  if (check_base) {
    has_base = latest_has_base(d, &no_base);
    if (!has_base) {
      g_mutex_lock(&a->lock);
      d->snapshot_pending = TRUE;
      g_mutex_unlock(&a->lock);
    }
  }
  d->phase = PHASE_CAPTURING;
  d->released_at = 0;
  close_conn(&d->hold); /* rd[0]'s read transaction keeps the WAL now */
  set_state(d, SQLENVFS_ARCHIVER_CAPTURING, NULL);
  g_message("archiver %s: capturing (%s; %u commit(s) archived from the WAL on start)", d->name,
            gap == SQLENVFS_GAP_FIRST_START ? "first start"
            : gap != 0                      ? "a new chain after a gap"
                                            : "resumed without a gap",
            res.n_commits);
  if (gap != 0) {
    archiver_queue_snapshot(a, d, gap);
  } else if (!has_base) {
    g_warning("archiver %s: the newest archived state cannot be restored: %s; taking a fresh "
              "snapshot to start a recoverable window", d->name, no_base);
    archiver_queue_snapshot(a, d, 0);
  } else if (check_base) {
    g_mutex_lock(&a->lock);
    d->alive_from = 0;
    g_mutex_unlock(&a->lock);
    if (!note_alive(d, t_lock, 0, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Cycles and checkpoints                                               */

/* Whether @a and @b give the file the same size and mtime: what a write
 * changes. (Not the ctime, which a chmod, a chown or a new hard link
 * changes too, with the bytes left as they were.) */
static gboolean
same_file_times(const struct stat *a, const struct stat *b)
{
  return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Whether frames may have been backfilled into the database file between
 * the wal-index @was and @now: in one WAL generation nBackfill moved; across
 * a reset, the old generation had frames left to backfill when last seen
 * (a reset follows their backfill), or the new one has some backfilled. */
static gboolean
backfilled_between(const SqlenvfsWalIndexHeader *was, const SqlenvfsWalIndexHeader *now)
{
  if (was->salt1 == now->salt1 && was->salt2 == now->salt2)
    return now->n_backfill != was->n_backfill;
  return was->n_backfill < was->mx_frame || now->n_backfill > 0;
}

/* Whether a process holds a POSIX lock on byte @byte of @shm_path, as
 * /proc/locks shows; with @others_only, a process other than this one.
 * Unknown (no /proc) counts as held. */
static gboolean
shm_byte_locked(const char *shm_path, unsigned long long byte, gboolean others_only)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  struct stat st;
  if (stat(shm_path, &st) != 0 || !g_file_get_contents("/proc/locks", &text, NULL, NULL))
    return TRUE;
  lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    /* "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 121 121" (a waiter's
     * line has "->" after the number and does not parse; an OFD lock's
     * pid is -1) */
    char kind[16], end[32];
    unsigned maj, min;
    unsigned long long ino, start;
    int pid;
    if (sscanf(*l, "%*u: %15s %*s %*s %d %x:%x:%llu %llu %31s", kind, &pid, &maj, &min, &ino,
               &start, end) != 7 ||
        (strcmp(kind, "POSIX") != 0 && strcmp(kind, "OFDLCK") != 0))
      continue;
    if (ino == (unsigned long long)st.st_ino && makedev(maj, min) == st.st_dev &&
        start <= byte && (strcmp(end, "EOF") == 0 || g_ascii_strtoull(end, NULL, 10) >= byte) &&
        (!others_only || pid != (int)getpid()))
      return TRUE;
  }
  return FALSE;
}

/* Whether another process holds SQLite's checkpoint lock on @shm_path (its
 * byte 121, WAL_CKPT_LOCK): a checkpoint writes the database file, so the
 * file may have changed with no backfill seen. */
static gboolean
checkpoint_lock_held(const char *shm_path)
{
  return shm_byte_locked(shm_path, 121, FALSE);
}

/* Whether the database file was written by something other than SQLite
 * since it was last looked at (copied over in place, say: same inode): its
 * size or mtime changed while no frame can have been backfilled
 * into it, checked twice around a look for a checkpoint under way. The
 * archive would otherwise continue its chain on another database's
 * pages. */
static gboolean
check_overwritten(Db *d, char **why)
{
  SqlenvfsWalIndexHeader si, again;
  sqlite3 *rd = d->rd[d->active >= 0 ? d->active : 0];
  struct stat stat_buf;
  const struct stat *st = &stat_buf;
  /* The wal-index before the file's times: a checkpoint writes the file
   * before it publishes nBackfill, so times read after the wal-index are
   * never older than the backfill it shows (read the other way round, a
   * checkpoint in between showed a write with its backfill already seen). */
  if (rd == NULL || !sqlenvfs_wal_index_read(rd, &si) || stat(d->path, &stat_buf) != 0) {
    d->has_file_seen = FALSE;
    return FALSE;
  }
  /* Every frame of the generation seen since, by this look or by a capture
   * after the last one (a reset follows their backfill). */
  if (d->has_file_seen && d->file_si.salt1 == si.salt1 && d->file_si.salt2 == si.salt2)
    d->file_si.mx_frame = MAX(d->file_si.mx_frame, si.mx_frame);
  if (d->has_file_seen && d->has_seen && d->seen.salt1 == d->file_si.salt1 &&
      d->seen.salt2 == d->file_si.salt2)
    d->file_si.mx_frame = MAX(d->file_si.mx_frame, d->seen.mx_frame);
  if (d->has_file_seen && d->has_cur && d->cur.hdr.salt1 == d->file_si.salt1 &&
      d->cur.hdr.salt2 == d->file_si.salt2 && d->cur.next_frame > 0)
    d->file_si.mx_frame = MAX(d->file_si.mx_frame, d->cur.next_frame - 1);
  if (d->has_file_seen && !same_file_times(st, &d->file_st) &&
      !backfilled_between(&d->file_si, &si)) {
    g_autofree char *shm = g_strconcat(d->path, "-shm", NULL);
    if (checkpoint_lock_held(shm))
      return FALSE; /* judged at a later look */
    if (sqlenvfs_wal_index_read(rd, &again) && !backfilled_between(&d->file_si, &again)) {
      *why = g_strdup_printf("%s was written by something other than SQLite while being "
                             "archived (it changed with no checkpoint: copied over in place?)",
                             d->path);
      return TRUE;
    }
  }
  d->has_file_seen = TRUE;
  d->file_st = *st;
  d->file_si = si;
  return FALSE;
}

/* Has the database file or its WAL been replaced or removed? Returns the
 * reason to close, or 0; then *why (newly allocated) says what was seen,
 * without repeating the reason. */
static SqlenvfsGapReason
check_identity(Db *d, char **why)
{
  struct stat st;
  if (stat(d->path, &st) != 0) {
    *why = g_strdup_printf("%s was moved away or removed while being archived", d->path);
    return SQLENVFS_GAP_DB_REPLACED;
  }
  if (st.st_ino != d->ino || st.st_dev != d->dev) {
    *why = g_strdup_printf("%s is now another file (inode %lu, was %lu)", d->path,
                           (unsigned long)st.st_ino, (unsigned long)d->ino);
    return SQLENVFS_GAP_DB_REPLACED;
  }
  if (check_overwritten(d, why))
    return SQLENVFS_GAP_DB_REPLACED;
  if (d->w != NULL) {
    /* Production narrowed by a chmod: the archive follows at once. */
    g_autoptr(GError) local = NULL;
    if (!sqlenvfs_archive_writer_narrow(d->w, sqlenvfs_copy_mode(&st), &local))
      g_warning("archiver %s: %s", d->name, local->message);
  }
  if (d->wal != NULL && stat(d->wal_path, &st) != 0) {
    *why = g_strdup_printf("%s was moved away or removed while being archived", d->wal_path);
    return SQLENVFS_GAP_WAL_MISSING;
  }
  if (d->wal != NULL && st.st_ino != sqlenvfs_wal_file_ino(d->wal)) {
    *why = g_strdup_printf("%s is now another file (inode %lu, was %lu)", d->wal_path,
                           (unsigned long)st.st_ino, (unsigned long)sqlenvfs_wal_file_ino(d->wal));
    return SQLENVFS_GAP_WAL_MISSING;
  }
  return 0;
}

/* Call right before reading the wal-index: returns the earliest time a
 * commit found now can have been made (latencies measured from it are upper
 * bounds): after the WAL write that woke us when that time is known, else
 * after the last look, which saw every commit made before it. */
static gint64
note_look(Db *d)
{
  gint64 now = g_get_monotonic_time();
  gint64 woken = d->woken_at > 0 ? d->woken_at : d->looked_at > 0 ? d->looked_at : now;
  d->looked_at = now;
  d->woken_at = 0;
  return woken;
}

/* Archive every commit the wal-index shows now; *began and *woken as for
 * finish_cycle(). */
static gboolean
look_and_capture(Db *d, gint64 *began, gint64 *woken, CaptureResult *res, GError **error)
{
  SqlenvfsWalIndexHeader si;
  gboolean has_si;
  *began = sqlenvfs_clock_now();
  *woken = note_look(d);
  has_si = sqlenvfs_wal_index_read(d->rd[d->active], &si);
  return capture(d, has_si ? &si : NULL, 0, *began, res, error);
}

/* A busy handler that retries every 50 us for up to *(int *)arg tries: a
 * writer committing in a tight loop leaves the write lock free only for
 * microseconds between its transactions, which SQLite's default handler
 * (sleeping a millisecond and more) keeps missing. */
static int
busy_spin(void *arg, int n_tries)
{
  if (n_tries >= *(int *)arg)
    return 0;
  g_usleep(50);
  return 1;
}

/* The checkpoint of invariant 3. *done says whether every frame was copied
 * (then the next writer restarts the WAL). The write lock is only tried
 * for a few milliseconds, never waited for: the archiver holds a read
 * transaction meanwhile, and an application's RESTART or TRUNCATE
 * checkpoint holds the write lock while it waits for that very reader to
 * move on, which only this thread can do (waiting here, each would wait
 * for the other until one gave up, and nothing would be archived
 * meanwhile). Not getting it, or another reader keeping the frames
 * archived so far from being copied (taking the lock then would only stop
 * the application's writers), is BUSY, saying which: a routine
 * checkpoint is tried again by a later cycle, a request (@is_request) at
 * the next tick until its deadline (archiver_requests.c). A request is
 * also done without the lock once every frame is archived and in the
 * database file (copied by a PASSIVE checkpoint, or by the application's
 * own).
 *
 * Writers wait only for what must happen under the lock: archiving (not
 * syncing) the last few commits and copying them. The archive is synced
 * right after the lock is released; a crash before that loses the unsynced
 * tail of the archive, and the WAL, restarted meanwhile, no longer matches
 * it, so the reopen records a gap (invariant 5) rather than a false chain. */
gboolean
archiver_db_checkpoint(Db *d, gboolean is_request, gboolean *done, GError **error)
{
  int rc, n_log = 0, n_ckpt = 0, tries = 60;
  CaptureResult res;
  SqlenvfsWalIndexHeader si;
  gboolean has_si, is_ok;
  gint64 began, woken;

  *done = FALSE;
  /* Copy what is archived now and archive what was committed meanwhile,
   * without holding writers, for as long as that shrinks what is left: under
   * the write lock only the last moment's commits remain. */
  for (int round = 0; round < PRE_ROUNDS; round++) {
    int copied = 0, rc0;
    /* Round 0 follows a complete capture when a cycle asks for the
     * checkpoint; a request may come after a cycle that was not. */
    if (round > 0 || !d->is_at_end || is_request) {
      if (!look_and_capture(d, &began, &woken, &res, error) ||
          !finish_cycle(d, &res, began, woken, FALSE, error))
        return FALSE;
      if (!res.reached_end)
        break;
    }
    has_si = sqlenvfs_wal_index_read(d->rd[d->active], &si);
    if (is_request && has_si && si.n_backfill >= si.mx_frame) {
      /* Every frame is in the database file (copied by the round before,
       * or by the application's own checkpoint, which may have restarted
       * the WAL), and archived: the capture just now reached past every
       * frame a checkpoint could copy, which our read transaction, begun
       * after an earlier capture, bounds. A read transaction begun now
       * gets slot 0, unless a commit came meanwhile, so that the next
       * writer restarts the WAL. */
      if (!rotate(d, error))
        return FALSE;
      *done = TRUE;
      g_debug("archiver %s: checkpoint: every frame is in the database file", d->name);
      return TRUE;
    }
    if (!rotate(d, NULL))
      break;
    rc0 = sqlite3_wal_checkpoint_v2(d->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &copied);
    if (rc0 != SQLITE_OK && rc0 != SQLITE_BUSY)
      return sqlenvfs_error_sqlite(error, d->ckpt, rc0, "checkpoint", d->path);
    if (has_si && rc0 == SQLITE_OK && copied < (int)si.mx_frame &&
        copied < (int)d->ckpt_floor) {
      /* Another reader (a pinned image, a backup) holds frames we have
       * archived, and did already at the previous look: try again when it
       * has moved on. (One that holds only frames committed since is most
       * likely an application's transaction under way, which ends in
       * microseconds; a writer that never pauses is always in one, and
       * waiting a tick for it let the WAL grow past the application's own
       * checkpoint threshold. The write lock settles it: under it the
       * final checkpoint copies everything, or the checkpoint is put off
       * then.) */
      d->ckpt_retry_at = g_get_monotonic_time() + TICK_US;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                  "checkpoint %s: another reader holds frames %d to %u of the WAL (an "
                  "application's long read transaction, or a copy being read)",
                  d->path, copied + 1, si.mx_frame);
      return FALSE;
    }
    if (!sqlenvfs_wal_index_read(d->rd[d->active], &si))
      break;
    if (is_request && si.n_backfill >= si.mx_frame)
      continue; /* the next round archives what came since, and is done */
    if (si.mx_frame < (guint32)copied + PRE_ENOUGH)
      break;
  }
  sqlite3_busy_handler(d->wlock, busy_spin, &tries);
  rc = sqlite3_exec(d->wlock, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  sqlite3_busy_timeout(d->wlock, CKPT_LOCK_MS);
  if (rc == SQLITE_BUSY) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "checkpoint %s: another connection holds the write lock (an application's "
                "write transaction, or its own checkpoint)", d->path);
    return FALSE;
  }
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, d->wlock, rc, "take the write lock to checkpoint",
                                 d->path);
  is_ok = look_and_capture(d, &began, &woken, &res, error);
  if (!is_ok || !res.reached_end || !rotate(d, error)) {
    sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
    if (is_ok) {
      /* What was archived counts; a failed sync is retried by the next cycle. */
      finish_cycle(d, &res, began, woken, FALSE, NULL);
      if (error && *error == NULL)
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                    "checkpoint %s: the WAL could not be archived to its end", d->path);
    }
    return FALSE;
  }
  /* Invariant 3: the write lock is held from the final capture until after
   * the rotation that follows the checkpoint. */
  g_assert(!sqlite3_get_autocommit(d->wlock) && d->is_at_end);
  for (int i = 0;; i++) {
    rc = sqlite3_wal_checkpoint_v2(d->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &n_log, &n_ckpt);
    if (rc != SQLITE_BUSY || i >= tries)
      break;
    g_usleep(50);
  }
  if (rc == SQLITE_OK && n_ckpt == n_log) {
    /* Fully copied: move to a read transaction on slot 0 so that the next
     * writer can restart the WAL (everything in it is archived). */
    g_autoptr(GError) local = NULL;
    if (!rotate(d, &local))
      g_debug("archiver %s: %s", d->name, local->message);
    *done = TRUE;
  } else {
    d->ckpt_retry_at = g_get_monotonic_time() + TICK_US;
  }
  sqlite3_exec(d->wlock, "ROLLBACK", NULL, NULL, NULL);
  if (!finish_cycle(d, &res, began, woken, FALSE, error))
    return FALSE;
  if (rc != SQLITE_OK && rc != SQLITE_BUSY)
    return sqlenvfs_error_sqlite(error, d->ckpt, rc, "checkpoint", d->path);
  g_mutex_lock(&d->a->lock);
  d->checkpoints++;
  g_mutex_unlock(&d->a->lock);
  g_debug("archiver %s: checkpoint: %d of %d frames copied", d->name, n_ckpt, n_log);
  return TRUE;
}

/* Does the WAL hold, right after the wal-index's mxFrame, a frame of the
 * same generation (or, with none published, anything): a transaction
 * written but not yet published (an
 * application writes its frames, syncs them under synchronous=FULL, and
 * only then publishes the commit in the wal-index, which makes no event),
 * or the frames of one rolled back? */
static gboolean
has_frame_after(Db *d, const SqlenvfsWalIndexHeader *si)
{
  SqlenvfsWalFrameHeader fh;
  struct stat st;
  /* A WAL restarted, or truncated (idle_checkpoint), and written again: its
   * first writer writes the header and syncs it before any frame, and the
   * event of that write may be the only one the archiver reads. */
  if (si->mx_frame == 0 && stat(d->wal_path, &st) == 0 &&
      st.st_size >= SQLENVFS_WAL_HEADER_SIZE)
    return TRUE;
  if (!d->has_cur || d->wal == NULL ||
      !sqlenvfs_wal_file_peek_frame(d->wal, d->cur.hdr.page_size, si->mx_frame + 1, &fh, NULL))
    return FALSE;
  return fh.pgno != 0 && fh.salt1 == si->salt1 && fh.salt2 == si->salt2;
}

/* After a look at the wal-index (@si, NULL: none), decide when to look
 * again without waiting for an event. While a transaction is written but
 * not yet published, look again after a quarter of the time since the last
 * WAL write (at least RECHECK_MIN_US): a commit published right after its
 * write (synchronous=NORMAL) is seen within tens of microseconds, one
 * published after an fsync of some milliseconds within a quarter of that,
 * with about a dozen looks (a sleep each, no spinning). Give up
 * RECHECK_MAX_US after the last write (a transaction rolled back, or a
 * writer that stalls: the next event, or the tick, looks again). */
static void
schedule_recheck(Db *d, const SqlenvfsWalIndexHeader *si)
{
  gint64 now = d->looked_at, since_write;
  d->recheck_at = 0;
  if (si == NULL || !has_frame_after(d, si)) {
    d->pending_since = 0;
    return;
  }
  if (d->pending_since == 0 || si->mx_frame != d->pending_at.mx_frame ||
      si->salt1 != d->pending_at.salt1 || si->salt2 != d->pending_at.salt2) {
    d->pending_since = now;
    d->pending_at = *si;
  }
  since_write = now - MAX(d->pending_since, d->written_at);
  if (since_write < RECHECK_MAX_US)
    d->recheck_at = now + MAX(RECHECK_MIN_US, since_write / 4);
}

/* SQLite's last connection to a database checkpoints the WAL into the
 * database file and removes the WAL as it closes, so that once an
 * application has stopped the file alone holds everything: operators copy
 * it, or compact it with VACUUM INTO and move the result over it. The
 * archiver's connections, open for as long as it runs, keep that close
 * from doing it; left as it was, the WAL beside a stopped application
 * holds its last commits, a copy of the file alone lacks them, and a file
 * moved over it gets the old frames applied to its own pages at the next
 * open (a corrupt production). So when the WAL has been quiet for
 * IDLE_CKPT_US and no other process has the database open (SQLite holds a
 * shared lock on byte 128 of the -shm file, its DMS lock, for each process
 * connected), the archiver does what that close would have done: copies
 * every frame into the file (archiver_db_checkpoint, everything archived
 * first) and truncates the WAL. The truncation cannot lose a frame: our
 * read transaction then reads the database file only (slot 0), which
 * keeps any checkpoint from copying frames committed since, so a commit
 * that came meanwhile makes it BUSY. Looked at once every IDLE_CKPT_US
 * while the WAL stays quiet and not empty (@si, read just now). */
static void
idle_checkpoint(Db *d, const SqlenvfsWalIndexHeader *si)
{
  g_autofree char *shm = g_strconcat(d->path, "-shm", NULL);
  g_autoptr(GError) local = NULL;
  gboolean done = FALSE;
  int rc = SQLITE_BUSY;

  /* Whatever comes of it, not again before IDLE_CKPT_US; once the WAL is
   * truncated its mxFrame is 0 and nothing more is tried. */
  d->changed_at = g_get_monotonic_time();
  if (shm_byte_locked(shm, 128, TRUE))
    return; /* an application is connected: its own last close will do it */
  if (si->n_backfill < si->mx_frame) {
    if (!archiver_db_checkpoint(d, FALSE, &done, &local))
      g_debug("archiver %s: checkpoint of a quiet WAL postponed: %s", d->name, local->message);
  } else {
    /* Copied by another's checkpoint: our read mark moves to slot 0 first. */
    done = rotate(d, &local);
  }
  if (done) {
    /* Never waited for: an application beginning to write takes the
     * locks first, and capture must not stall behind a busy timeout. */
    sqlite3_busy_timeout(d->ckpt, 0);
    rc = sqlite3_wal_checkpoint_v2(d->ckpt, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(d->ckpt, CKPT_LOCK_MS);
  }
  if (rc == SQLITE_OK) {
    g_debug("archiver %s: the WAL, quiet with no other process connected, is in the database "
            "file and truncated", d->name);
    quiet_note(d);
  } else if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
    g_debug("archiver %s: truncate the quiet WAL: %s", d->name, sqlite3_errmsg(d->ckpt));
  }
}

/* One cycle (see the top). @force: archive even if the wal-index did not
 * change. */
gboolean
archiver_db_cycle(Db *d, gboolean force, GError **error)
{
  gint64 began = sqlenvfs_clock_now(), woken = note_look(d);
  SqlenvfsWalIndexHeader si;
  gboolean has_si = sqlenvfs_wal_index_read(d->rd[d->active], &si), changed;
  CaptureResult res;
  gboolean by_event = d->is_dirty;

  changed = !has_si || !d->has_seen || si.mx_frame != d->seen.mx_frame ||
            si.salt1 != d->seen.salt1 || si.salt2 != d->seen.salt2 ||
            si.n_backfill != d->seen.n_backfill;
  d->is_dirty = FALSE;
  if (by_event)
    d->written_at = d->looked_at;
  if (changed)
    d->changed_at = g_get_monotonic_time();
  schedule_recheck(d, has_si ? &si : NULL);
  if (!changed && !force) {
    /* Nothing committed since the last complete cycle: capture is still
     * complete as of @began (even if a forced capture since failed: it had
     * nothing new to archive); a read mark left behind moves up now. Nothing
     * was archived late either: a failure since (a sync) is no outage unless
     * its OUTAGE was written (lead_outage; then commits are pending). */
    if (d->outage_to == 0)
      d->outage_from = 0;
    d->is_at_end = TRUE;
    if (d->is_mark_behind && g_get_monotonic_time() - d->rotated_at >= TICK_US &&
        !rotate(d, error))
      return FALSE;
    if (has_si && si.mx_frame > 0 && !d->is_mark_behind &&
        g_get_monotonic_time() - d->changed_at >= IDLE_CKPT_US)
      idle_checkpoint(d, &si);
    if (d->unsynced > 0 || d->alive_pending > 0) {
      d->alive_pending = MAX(d->alive_pending, began);
      return sync_archive(d, error);
    }
    return note_alive(d, began, ALIVE_STEP_US, error);
  }
  /* After failing (a full disk), the commits archived now were committed
   * any time since capture was last complete: an outage, as if the archiver
   * had been down (invariant 5), whose OUTAGE capture() writes before them. */
  if (!check_room(d, error) || !capture(d, has_si ? &si : NULL, 0, began, &res, error))
    return FALSE;
  if (!finish_cycle(d, &res, began, woken, force, error))
    return FALSE;
  d->cycle_at_end = res.reached_end;
  /* Many commits were made since the last look: under a writer that
   * commits without pause, looking again at its next WAL write would
   * archive one or two commits per cycle, waking up tens of thousands of
   * times a second on the writer's heels (CPU it loses on a machine of few
   * cores, and small batches that compress poorly). The loop then looks
   * again PACE_US from now (syncs, ticks and requests are not held back).
   * A writer at its own pace (fewer than PACE_COMMITS commits per look) is
   * archived at each commit, as before. */
  if (res.n_commits >= PACE_COMMITS)
    d->paced_until = g_get_monotonic_time() + PACE_US;
  if (!res.reached_end) {
    /* Keep the read mark: the rest is archived next time. */
    g_mutex_lock(&d->a->lock);
    d->pending_frames = has_si && si.mx_frame >= d->cur.next_frame ? si.mx_frame - d->cur.next_frame + 1 : 0;
    g_mutex_unlock(&d->a->lock);
    return TRUE;
  }
  /* Move the read mark at most once a tick (or when a checkpoint moved):
   * each move lets an application's automatic checkpoint find new frames to
   * copy, at the price of two fsyncs in the application's commit. */
  if (force || !has_si || !d->has_seen || si.n_backfill != d->seen.n_backfill ||
      g_get_monotonic_time() - d->rotated_at >= TICK_US) {
    if (!rotate(d, error))
      return FALSE;
  } else {
    d->is_mark_behind = TRUE;
  }
  /* A reader that holds frames committed before this look is older than
   * one cycle (the routine checkpoint below tells it from a transaction
   * under way by this). */
  d->ckpt_floor = has_si && d->has_seen && d->seen.salt1 == si.salt1 &&
                  d->seen.salt2 == si.salt2 ? d->seen.mx_frame : 0;
  if (has_si) {
    d->seen = si;
    d->has_seen = TRUE;
  }
  g_mutex_lock(&d->a->lock);
  d->wal_frames = has_si ? si.mx_frame : 0;
  d->pending_frames = 0;
  g_mutex_unlock(&d->a->lock);
  /* Checkpoint at half of checkpoint-pages, so that the WAL is reset
   * before it reaches the threshold of an application's automatic checkpoint
   * (SQLite's default is the same 1000) even under a writer that never
   * pauses: past it, that checkpoint runs after every commit against a WAL
   * it cannot reset (our read mark), and copies frames (two fsyncs in the
   * application's commit) whenever our read mark has moved. Not sooner:
   * every reset costs the writer that restarts the WAL an fsync of it (and
   * a wait for the write lock), so resetting twice as often as needed
   * costs a saturating writer several percent. */
  if (has_si && si.mx_frame >= MAX(d->a->checkpoint_pages / 2, 1) &&
      si.n_backfill < si.mx_frame && g_get_monotonic_time() >= d->ckpt_retry_at) {
    gboolean done;
    g_autoptr(GError) local = NULL;
    if (!archiver_db_checkpoint(d, FALSE, &done, &local)) {
      if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY))
        g_warning("archiver %s: %s", d->name, local->message);
      else
        g_debug("archiver %s: checkpoint postponed: %s", d->name, local->message);
    }
  }
  return TRUE;
}

/* What the status says of a failure: after the WAL was let go, that too. */
static char *
failing_message(Db *d, const char *error)
{
  g_autofree char *when = NULL;
  if (d->released_at == 0)
    return g_strdup(error);
  when = sqlenvfs_time_format_iso(d->released_at);
  return g_strdup_printf("%s; production's WAL was let go at %s, when it had grown, %s: "
                         "commits since then may be lost to the archive", error, when,
                         d->released_why);
}

/* Turn a failure into a closed database retried later. The same failure
 * again is not logged again (a full disk, retried every RETRY_US, would
 * fill the log; a lack of room says how much is free, which changes). */
static void
db_fail(Db *d, GError *error)
{
  g_autofree char *msg = failing_message(d, error->message);
  gboolean nospace = g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOSPACE), again;
  g_mutex_lock(&d->a->lock);
  again = d->state == SQLENVFS_ARCHIVER_FAILING &&
          (g_strcmp0(d->message, msg) == 0 || (nospace && d->failed_nospace));
  g_mutex_unlock(&d->a->lock);
  d->failed_nospace = nospace;
  if (!again)
    g_warning("archiver %s: %s (retrying every %d s)", d->name, msg,
              (int)(RETRY_US / G_USEC_PER_SEC));
  set_state(d, SQLENVFS_ARCHIVER_FAILING, msg);
  db_close(d, 0, NULL);
  d->retry_at = g_get_monotonic_time() + RETRY_US;
  g_error_free(error);
}

/* The archive cannot be written, and production's WAL, which the read
 * transaction keeps from being reset, has grown since the failure began
 * past [archive] max-wal-bytes, or until less than [cache] min-free-bytes
 * is free on production's filesystem (the room it keeps for its commits):
 * let go of it (close everything, as a stopped archiver would), so that
 * production's checkpoints can reset it, and try again every RETRY_US.
 * Commits made meanwhile may be lost to the archive: the next start
 * records a gap if the WAL restarted by then (and a fresh snapshot starts a
 * new window), an outage if it did not. Production's disk comes before the
 * history. */
static gboolean
release_wal_if_over(Db *d, const GError *why)
{
  g_autofree char *bound = NULL, *size = NULL, *msg = NULL;
  gint64 wal_size = 0;

  bound = sqlenvfs_root_wal_bound_reached(d->a->root, d->wal_path, d->wal_at_fail, TRUE, TRUE,
                                          &wal_size);
  if (bound == NULL)
    return FALSE;
  size = sqlenvfs_format_size((guint64)wal_size);
  g_warning("archiver %s: production's WAL grew to %s while the archive could not be written "
            "(%s), %s: letting go of the WAL so that checkpoints can reset it; commits from now "
            "until the archive can be written may be lost to it (a gap), and a fresh snapshot "
            "will start a new recoverable window (retrying every %d s)",
            d->name, size, why->message, bound, (int)(RETRY_US / G_USEC_PER_SEC));
  db_close(d, 0, NULL);
  d->released_at = sqlenvfs_clock_now();
  g_free(d->released_why);
  d->released_why = g_steal_pointer(&bound);
  msg = failing_message(d, why->message);
  set_state(d, SQLENVFS_ARCHIVER_FAILING, msg);
  d->retry_at = g_get_monotonic_time() + RETRY_US;
  return TRUE;
}

/* An open that failed after its read transaction began (the archive could
 * not be written: a full disk, after a restart) keeps that transaction
 * while the open is retried, as a running archiver keeps its own over a
 * failed cycle: the commits wait in the WAL, which the application's
 * checkpoints cannot reset (a gap in the history), until it grows past a
 * bound (release_wal_if_over), after which it is not held again until an
 * open succeeds. The open that succeeds lets it go. */
static void
hold_wal(Db *d)
{
  struct stat st;

  /* Not again once let go past a bound, until an open succeeds. */
  if (d->hold != NULL || d->active != 0 || d->rd[0] == NULL || d->released_at != 0)
    return;
  d->hold = d->rd[0];
  d->rd[0] = NULL;
  d->active = -1;
  d->wal_at_fail = stat(d->wal_path, &st) == 0 ? (gint64)st.st_size : 0;
}

/* Bring a closed database up, or cycle a capturing one. */
void
archiver_db_service(Db *d, gboolean force)
{
  g_autoptr(GError) error = NULL;
  if (d->phase == PHASE_CLOSED) {
    if (g_get_monotonic_time() < d->retry_at || !archiver_root_in_place(d->a))
      return;
    if (!db_open(d, &error)) {
      if (error) {
        hold_wal(d);
        if (d->hold != NULL && release_wal_if_over(d, error)) {
          close_conn(&d->hold);
          return;
        }
        db_fail(d, g_steal_pointer(&error));
      } else {
        db_close(d, 0, NULL);
        close_conn(&d->hold);
        d->retry_at = g_get_monotonic_time() + RETRY_US;
      }
    }
    return;
  }
  {
    g_autofree char *what = NULL;
    SqlenvfsGapReason why = check_identity(d, &what);
    if (why != 0) {
      g_warning("archiver %s: %s; starting over", d->name, what);
      db_close(d, why, what);
      set_state(d, SQLENVFS_ARCHIVER_STARTING, sqlenvfs_archive_gap_reason_text(why));
      d->retry_at = 0;
      archiver_db_service(d, FALSE);
      return;
    }
  }
  if (d->is_failing && g_get_monotonic_time() < d->retry_at)
    return;
  if (!archiver_db_cycle(d, force, &error)) {
    /* Keep everything open: the read transaction keeps the WAL from being
     * reset, so the commits wait there until the archive can be written
     * again (a full disk loses nothing), unless the WAL grows past a bound
     * meanwhile. */
    if (!d->is_failing) {
      struct stat st;
      d->wal_at_fail = stat(d->wal_path, &st) == 0 ? (gint64)st.st_size : 0;
    }
    if (release_wal_if_over(d, error))
      return;
    if (!d->is_failing) {
      const SqlenvfsSettings *s = sqlenvfs_root_settings(d->a->root);
      g_autoptr(GString) bound = g_string_new(NULL);
      if (s->max_wal_bytes > 0) {
        g_autofree char *max = sqlenvfs_format_size((guint64)s->max_wal_bytes);
        g_string_append_printf(bound, " or it passes [archive] max-wal-bytes (%s)", max);
      }
      if (s->cache_min_free_bytes > 0) {
        g_autofree char *room = sqlenvfs_format_size((guint64)s->cache_min_free_bytes);
        g_string_append_printf(bound, " or it leaves less than [cache] min-free-bytes (%s) free",
                               room);
      }
      g_warning("archiver %s: %s; the commits stay in the WAL, which is kept from being reset, "
                "until they can be archived%s (retrying every second)", d->name, error->message,
                bound->str);
    }
    if (d->outage_from == 0)
      d->outage_from = sqlenvfs_archive_writer_alive(d->w);
    /* Commits made from now until a cycle succeeds wait too: the next
     * capture covers them with an OUTAGE of its own (lead_outage). */
    d->outage_renew = d->outage_to > 0;
    d->is_failing = TRUE;
    d->retry_at = g_get_monotonic_time() + G_USEC_PER_SEC;
    set_state(d, SQLENVFS_ARCHIVER_FAILING, error->message);
  } else if (d->is_failing) {
    d->is_failing = FALSE;
    g_message("archiver %s: archiving again; nothing was lost", d->name);
    set_state(d, SQLENVFS_ARCHIVER_CAPTURING, NULL);
  }
}

/* Everything committed before the call is archived once a cycle that
 * began after it is done; say so in the alive file at once, so that a
 * restore planned right after sees it. */
gboolean
archiver_db_sync(Db *d, GError **error)
{
  gint64 began = sqlenvfs_clock_now();
  g_assert(d->phase == PHASE_CAPTURING);
  /* Capture is complete as of @began only once a capture that looked
   * after it reached the wal-index's last commit (a WAL read that ends
   * before it, a writer's append not yet visible, is read again); and the
   * alive time is published only over records made durable first, the
   * routine checkpoint at the end of a cycle archiving later commits
   * without a sync. */
  for (int tries = 1;; tries++) {
    if (!archiver_db_cycle(d, TRUE, error))
      return FALSE;
    if (d->cycle_at_end)
      break;
    if (tries == SYNC_TRIES) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                  "archiver %s: the WAL still ended before its last committed frame after %d "
                  "reads, so capture is not known complete up to now (try again)",
                  d->name, SYNC_TRIES);
      return FALSE;
    }
    g_usleep(1000);
  }
  return sync_archive(d, error) && note_alive(d, began, 0, error);
}

void
archiver_db_stop(Db *d)
{
  if (d->phase == PHASE_CAPTURING) {
    g_autoptr(GError) local = NULL;
    if (!archiver_db_sync(d, &local))
      g_warning("archiver %s: %s", d->name, local->message);
  }
  db_close(d, 0, NULL);
  /* Stopped; a message saying why it was not archived stays. */
  g_mutex_lock(&d->a->lock);
  if (d->state == SQLENVFS_ARCHIVER_CAPTURING || d->state == SQLENVFS_ARCHIVER_STARTING)
    g_clear_pointer(&d->message, g_free);
  d->state = SQLENVFS_ARCHIVER_STOPPED;
  g_mutex_unlock(&d->a->lock);
}
