/*
 * drill.c — the restore drill (drill.h): production's pinned state against
 * the same state rebuilt from a base and the WAL archive, page by page.
 *
 *   pin production (live view, WAL position P)
 *     -> [wait_archived] the archive holds the COMMIT record R of P
 *        (salts, commit frame and cumulative checksum of P); pinned again
 *        while an archiver that started after the pin has not captured P,
 *        or while the pin falls between two chains (production replaced,
 *        and the new chain started after the pin)
 *     -> [plan_for] a restore plan whose state is R
 *     -> sqlenvfs_restore_image: base checked, every record checked
 *     -> [sqlenvfs_drill_compare] page by page
 *     -> result, remembered in .sqlenvfs/drilled [memo_save]
 *
 * Invariants:
 *   (1) The live view stays open until the comparison ends: its read
 *       transaction keeps P's frames in the WAL (liveview.h invariant 1),
 *       so the live side is P's state throughout, whatever the application
 *       writes meanwhile.
 *   (2) The rebuilt state is R's, by sequence number, never "the state at
 *       R's time" (several records may share a capture time).
 *   (3) A refusal of restore_image is a failed drill, never retried with
 *       another state; a planned base replaced by another is a failed
 *       drill naming the planned one, and so is a plan that starts from an
 *       older base because the newest one for its state is known bad.
 */
#include "sqlenvfs/drill.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#include <stdio.h>
#include <string.h>

#define COMPARE_CHUNK (1u << 20)
#define DEFAULT_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define POLL_US (20 * 1000)
#define MEMO_NAME "drilled"
#define MEMO_MAGIC "sqlenvfs-drilled 1\n"

void
sqlenvfs_drill_result_free(SqlenvfsDrillResult *r)
{
  if (r == NULL)
    return;
  g_free(r->db);
  g_free(r->why);
  g_free(r->base_name);
  g_free(r->diff_origin);
  g_free(r);
}

char *
sqlenvfs_drill_result_summary(const SqlenvfsDrillResult *r)
{
  g_autofree char *bytes = NULL;
  g_autofree char *when = NULL;

  if (!r->ok)
    return g_strdup_printf("%s: FAILED: %s", r->db, r->why);
  bytes = sqlenvfs_format_size(r->bytes_read);
  when = sqlenvfs_time_format_iso(r->state_us);
  return g_strdup_printf("%s: equal, %u pages compared (%s read) in %.2f s: the state of archived "
                         "record %" G_GUINT64_FORMAT " (%s, WAL frame %u) rebuilt from %s %s + %"
                         G_GUINT64_FORMAT " commit%s",
                         r->db, r->n_pages, bytes, (double)r->elapsed_us / G_USEC_PER_SEC,
                         r->state_seq, when, r->wal_frame, sqlenvfs_copy_kind_name(r->base_kind),
                         r->base_name, r->n_commits, r->n_commits == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ */
/* Comparing                                                            */

/* Read exactly @len bytes of @img at @off (the caller stays within its
 * size). */
static gboolean
read_exact(SqlenvfsImage *img, guint8 *buf, gsize len, goffset off, GError **error)
{
  gsize done = 0;
  while (done < len) {
    gssize n = sqlenvfs_image_read(img, buf + done, len - done, off + (goffset)done, 0, error);
    if (n < 0)
      return FALSE;
    if (n == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                  "drill: an image ended at byte %" G_GUINT64_FORMAT " inside its own size",
                  (guint64)(off + (goffset)done));
      return FALSE;
    }
    done += (gsize)n;
  }
  return TRUE;
}

gboolean
sqlenvfs_drill_compare(SqlenvfsImage *a, SqlenvfsImage *b, guint32 page_size,
                       guint32 *first_diff, guint64 *bytes_read, GError **error)
{
  guint64 sa = sqlenvfs_image_size(a), sb = sqlenvfs_image_size(b);
  guint64 common = MIN(sa, sb);
  gsize chunk = MAX(COMPARE_CHUNK - COMPARE_CHUNK % page_size, page_size);
  g_autofree guint8 *ba = sqlenvfs_alloc_large(chunk);
  g_autofree guint8 *bb = sqlenvfs_alloc_large(chunk);

  g_return_val_if_fail(page_size >= 512 && first_diff != NULL, FALSE);
  *first_diff = 0;
  for (guint64 off = 0; off < common; off += chunk) {
    gsize n = (gsize)MIN((guint64)chunk, common - off);
    if (!read_exact(a, ba, n, (goffset)off, error) || !read_exact(b, bb, n, (goffset)off, error))
      return FALSE;
    if (bytes_read)
      *bytes_read += 2 * (guint64)n;
    if (memcmp(ba, bb, n) != 0) {
      for (gsize p = 0; p < n; p += page_size)
        if (memcmp(ba + p, bb + p, MIN(page_size, n - p)) != 0) {
          *first_diff = (guint32)((off + p) / page_size + 1);
          return TRUE;
        }
      g_assert_not_reached();
    }
  }
  if (sa != sb)
    *first_diff = (guint32)(common / page_size + 1);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Where a page of a rebuilt image comes from                            */

char *
sqlenvfs_drill_page_origin(SqlenvfsRoot *root, const SqlenvfsRestorePlan *plan,
                           SqlenvfsImage *rebuilt, guint32 pgno, GError **error)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), plan->db,
                                          NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;

  g_return_val_if_fail(pgno >= 1, NULL);
  if ((guint64)pgno * plan->page_size > sqlenvfs_image_size(rebuilt))
    return g_strdup_printf("nothing: the rebuilt image has %" G_GUINT64_FORMAT " pages",
                           sqlenvfs_image_size(rebuilt) / plan->page_size);
  if (sqlenvfs_image_page_source(rebuilt, pgno, NULL) == 0)
    return g_strdup_printf("the base %s (%s %s)", plan->base_path,
                           sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name);
  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return NULL;
  /* From the state back (get() by seq: consecutive; a missing or damaged
   * record ends the search, as nothing before it can explain the page). */
  for (guint64 seq = plan->state_seq; seq > plan->base_seq; seq--) {
    SqlenvfsArchiveEntry ent;
    const SqlenvfsArchiveEntry *e = &ent;
    g_autofree guint32 *pgnos = NULL;
    guint64 data;

    if (!sqlenvfs_archive_get(a, seq, &ent))
      break;
    if (e->type != SQLENVFS_ARCHIVE_COMMIT)
      continue;
    pgnos = sqlenvfs_archive_read_commit(a, e, &data, error);
    if (pgnos == NULL)
      return NULL;
    for (guint32 k = 0; k < e->n_pages; k++)
      if (pgnos[k] == pgno)
        return g_strdup_printf("record %" G_GUINT64_FORMAT " of archive segment %s", e->seq,
                               sqlenvfs_archive_segment(a, e->segment)->path);
    if (e->db_pages < pgno)
      return g_strdup_printf("zeros (the database was %u pages after record %" G_GUINT64_FORMAT
                             " of archive segment %s)", e->db_pages, e->seq,
                             sqlenvfs_archive_segment(a, e->segment)->path);
  }
  return g_strdup_printf("an overlay no archived record between the base %s and record %"
                         G_GUINT64_FORMAT " explains (the archive %s changed since the rebuild)",
                         plan->base_path, plan->state_seq, dir);
}

/* ------------------------------------------------------------------ */
/* One drill                                                            */

/* Whether the chain of archived state @rec ends before @pinned_at: a GAP
 * after @rec (a new chain: production replaced, or capture lost) says the
 * archive was known complete only up to a time before the pin, so @rec,
 * the last state captured before the pin, need not be production's as
 * pinned (it is not after an init --force: production was recreated in
 * between). TRUE and that GAP in *@gap. */
static gboolean
pin_between_chains(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *rec, gint64 pinned_at,
                   SqlenvfsArchiveEntry *gap)
{
  for (guint i = 0; i < sqlenvfs_archive_n_marks(a); i++) {
    guint64 after_seq = 0;
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, i, &after_seq);
    if (m->type != SQLENVFS_ARCHIVE_GAP || after_seq < rec->seq)
      continue;
    /* The first chain break after @rec: a real GAP tells until when the
     * chain of @rec was complete. */
    if (m->seq == 0 || m->aux_time >= pinned_at)
      return FALSE;
    *gap = *m;
    return TRUE;
  }
  return FALSE;
}

/* The archived record of the pinned state @pos, in *@rec (@dir: the
 * archive of @db):
 *   - a WAL holding commits: the COMMIT record of @pos's commit frame (same
 *     salts, frame and cumulative checksum);
 *   - an empty WAL (frame 0: everything checkpointed, the file alone is the
 *     state): once the archive's alive time passes the pin, the last state
 *     record captured at or before the pin. The archiver lets no frame be
 *     checkpointed before it is archived, so every commit in the file was
 *     captured before the pin, and every later one after it. When there is
 *     none (archiving started after the pin), or when the chain of that
 *     record ended before the pin (pin_between_chains: production was
 *     replaced, and the archiver started a new chain for it after the pin),
 *     *@too_early is set: the pin must be taken again, once the archiver
 *     has captured the file. The
 *     archive's next record numbers read before the pin (@before) and
 *     after it (@after) must agree with that record, or the clock was
 *     stepped and the error says so (sqlenvfs_archive_pin_misplaced).
 * Waits for the archiver until @deadline (monotonic), @timeout_us being the
 * whole wait the error names; FALSE and *error then. */
static gboolean
wait_archived(SqlenvfsRoot *root, const char *db, const char *dir, const SqlenvfsWalPos *pos,
              guint64 before, guint64 after, gint64 deadline, gint64 timeout_us,
              SqlenvfsArchiveEntry *rec, gboolean *too_early, GError **error)
{
  g_autofree char *lock = sqlenvfs_root_lock_path(root, "archiver");
  g_autoptr(SqlenvfsArchive) a = NULL;
  gint64 next_lock_check = g_get_monotonic_time() + G_USEC_PER_SEC;
  int n_unlocked = 0;

  *too_early = FALSE;
  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return FALSE;
  for (;;) {
    if (pos->frame != 0) {
      if (sqlenvfs_archive_find_commit(a, pos->salt1, pos->salt2, pos->frame, pos->cksum1,
                                       pos->cksum2, rec))
        return TRUE;
    } else if (sqlenvfs_archive_alive(a) > pos->pinned_at) {
      if (sqlenvfs_archive_last_state(a, pos->pinned_at, 0, G_MAXUINT64, rec)) {
        g_autofree char *why = sqlenvfs_archive_pin_misplaced(a, rec->seq, before, after);
        SqlenvfsArchiveEntry gap;
        if (why == NULL && pin_between_chains(a, rec, pos->pinned_at, &gap)) {
          g_autofree char *known = sqlenvfs_time_format_iso(gap.aux_time);
          g_autofree char *starts = sqlenvfs_time_format_iso(gap.time);
          *too_early = TRUE;
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                      "production was pinned between two chains of the WAL archive %s: the "
                      "one before is known complete only up to %s, and the next starts at %s "
                      "(%s), so no archived state is production's as pinned; the archiver has "
                      "not yet started the recoverable window of production as it is now "
                      "(nothing was compared, nothing is known damaged; drill again once it "
                      "has: `sqlenvfs list` shows the window)",
                      dir, known, starts,
                      sqlenvfs_archive_gap_reason_text((SqlenvfsGapReason)gap.reason));
          return FALSE;
        }
        if (why == NULL)
          return TRUE;
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                    "production was pinned while its WAL held no commit, so its pin time "
                    "places its state in the WAL archive %s, at record %" G_GUINT64_FORMAT
                    ", but %s: the system clock was stepped back, and the archive's times "
                    "do not place the pin (nothing was compared; drill again once the clock "
                    "has passed the archive's newest time, and keep it slewed, not stepped)",
                    dir, rec->seq, why);
        return FALSE;
      }
      *too_early = TRUE;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "the WAL archive %s holds no state captured before production was pinned "
                  "(archiving has only just started; drill again later)", dir);
      return FALSE;
    }
    if (g_get_monotonic_time() >= deadline)
      break;
    /* Nothing to wait for when no archiver runs (one just starting takes
     * its lock at once): after 5 s without one, say so rather than after
     * the whole wait. */
    if (g_get_monotonic_time() >= next_lock_check) {
      if (sqlenvfs_doctor_lock_holder(lock, NULL) != 0)
        n_unlocked = 0;
      else if (++n_unlocked >= 5) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                    "no archiver is running (nothing holds %s), so the WAL archive %s will "
                    "not capture production's newest commit (start `sqlenvfs archive` or "
                    "mount the root, then drill again)", lock, dir);
        return FALSE;
      }
      next_lock_check = g_get_monotonic_time() + G_USEC_PER_SEC;
    }
    g_usleep(POLL_US);
    if (!sqlenvfs_archive_refresh(a, error))
      return FALSE;
  }
  if (pos->frame != 0)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "the WAL archive %s did not archive production's commit at WAL frame %u (salts "
                "0x%08x 0x%08x) within %d s: no archiver captures %s, or it lags (start "
                "`sqlenvfs archive` or mount the root; `sqlenvfs doctor` says which), then "
                "drill again", dir, pos->frame, pos->salt1, pos->salt2,
                (int)(timeout_us / G_USEC_PER_SEC), db);
  else
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "the WAL archive %s was not known complete up to the moment production was "
                "pinned within %d s: no archiver captures %s, or it lags (start `sqlenvfs "
                "archive` or mount the root; `sqlenvfs doctor` says which), then drill again",
                dir, (int)(timeout_us / G_USEC_PER_SEC), db);
  return FALSE;
}

/* A plan whose state is exactly @rec (invariant 2). restore_plan resolves a
 * time to the last record at or before it, which may be a later record of
 * the same capture time: its state is then moved back to @rec, provided the
 * base it picked is not past @rec (else the plan is made for the time just
 * before, whose base precedes every record of @rec's time). */
static SqlenvfsRestorePlan *
plan_for(SqlenvfsRoot *root, const char *db, const SqlenvfsArchiveEntry *rec, GError **error)
{
  for (gint64 back = 0; back <= 1; back++) {
    SqlenvfsTime t = { .is_latest = FALSE, .us = rec->time - back };
    g_autoptr(SqlenvfsRestorePlan) plan = sqlenvfs_restore_plan(root, db, &t, error);

    if (plan == NULL)
      return NULL;
    if (plan->base_seq > rec->seq)
      continue;
    /* restore_image applies the records from the base to state_seq, and
     * refuses a gap between them: the state is @rec's or nothing. */
    plan->state_seq = rec->seq;
    plan->state_us = rec->time;
    /* A GAP state carries no size: it is its base's (base_seq == its seq). */
    plan->n_pages = rec->type == SQLENVFS_ARCHIVE_COMMIT ? rec->db_pages : plan->base_n_pages;
    plan->size = (guint64)plan->n_pages * plan->page_size;
    return g_steal_pointer(&plan);
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
              "no restore plan reaches archived record %" G_GUINT64_FORMAT " (run `sqlenvfs "
              "verify` and `sqlenvfs list`)", rec->seq);
  return NULL;
}

/* Why the planned base @kind/@name was not used: what its check found. */
static char *
base_refusal(SqlenvfsRoot *root, SqlenvfsCopyKind kind, const char *name, const char *db,
             const char *path)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(SqlenvfsStoredCopy) copy = sqlenvfs_store_load(root, kind, name, &local);
  const SqlenvfsStoredDb *sdb;
  char *why = NULL;

  if (copy == NULL)
    return g_strdup(local->message);
  sdb = sqlenvfs_stored_copy_find(copy, db);
  if (sdb != NULL && sqlenvfs_store_base_known_bad(sdb, &why))
    return why;
  return g_strdup_printf("%s does not hold the state its MANIFEST names, or changed", path);
}

/* Invariant 3 for a base already known bad (found so by an earlier drill,
 * restore or verify): the timeline leaves it out, so the plan starts from
 * an older base and no fallback is seen. When such a copy is the one a
 * restore of @plan's state would otherwise have used, the drill fails
 * naming it, as when the rebuild finds it bad itself. */
static gboolean
check_no_bad_base_over(SqlenvfsRoot *root, const SqlenvfsRestorePlan *plan, GError **error)
{
  g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, plan->db, error);
  SqlenvfsTimelineBase *bad = NULL;
  g_autofree char *why = NULL;

  if (tl == NULL)
    return FALSE;
  if (!sqlenvfs_timeline_bad_base_over(tl, plan, &bad, &why))
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "the base %s (%s %s) is bad: %s (as found before: a restore leaves it out); the "
              "rebuild falls back to %s %s (remove the bad copy or take a new one: `sqlenvfs "
              "backup`)",
              bad->path, sqlenvfs_copy_kind_name(bad->kind), bad->name, why,
              sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name);
  sqlenvfs_timeline_base_free(bad);
  return FALSE;
}

static gboolean
drill(SqlenvfsRoot *root, const char *db, SqlenvfsArchiver *archiver, gint64 timeout_us,
      SqlenvfsDrillResult *r, GError **error)
{
  g_autofree char *prod = sqlenvfs_root_prod_db(root, db);
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  g_autoptr(SqlenvfsLiveView) view = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  g_autoptr(SqlenvfsImage) rebuilt = NULL;
  g_autofree char *planned_name = NULL;
  g_autofree char *planned_path = NULL;
  SqlenvfsCopyKind planned_kind;
  const SqlenvfsWalPos *pos;
  SqlenvfsArchiveEntry rec;
  GError *local = NULL;
  gint64 t0 = g_get_monotonic_time();
  gint64 deadline = t0 + timeout_us;
  gboolean too_early;

  /* Pinned again while the archive has no state from before the pin (an
   * archiver that started just now has not yet captured the file). */
  for (;;) {
    g_autofree char *not_wal = NULL;
    guint64 before = sqlenvfs_archive_next_seq(dir), after = 0;
    g_clear_pointer(&view, sqlenvfs_live_view_free);
    view = sqlenvfs_live_view_open_wal(prod, &not_wal, &local);
    if (not_wal != NULL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "production %s is in journal mode %s, not WAL: it is not archived, so no "
                  "restore can rebuild it (switch it back: `sqlite3 %s 'PRAGMA "
                  "journal_mode=WAL'`)",
                  prod, not_wal, prod);
      return FALSE;
    }
    if (view == NULL) {
      g_propagate_prefixed_error(error, local, "cannot pin production %s: ", prod);
      return FALSE;
    }
    pos = sqlenvfs_live_view_pos(view);
    if (pos->frame == 0)
      after = sqlenvfs_archive_next_seq(dir); /* whatever the clock says */
    r->wal_frame = pos->frame;
    g_debug("drill %s: pinned at WAL frame %u after %.3f s", db, pos->frame,
            (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
    if (archiver != NULL &&
        !sqlenvfs_archiver_sync(archiver, db, MAX(deadline - g_get_monotonic_time(), 1),
                                &local)) {
      g_debug("drill %s: archiver sync: %s", db, local->message);
      g_clear_error(&local);
    }
    if (wait_archived(root, db, dir, pos, before, after, deadline, timeout_us, &rec,
                      &too_early, &local))
      break;
    if (!too_early || g_get_monotonic_time() >= deadline) {
      g_propagate_error(error, local);
      return FALSE;
    }
    g_debug("drill %s: %s", db, local->message);
    g_clear_error(&local);
    g_usleep(POLL_US);
  }
  r->state_seq = rec.seq;
  r->state_us = rec.time;
  g_debug("drill %s: archived as record %" G_GUINT64_FORMAT " after %.3f s", db, rec.seq,
          (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);

  plan = plan_for(root, db, &rec, &local);
  if (plan == NULL) {
    g_propagate_prefixed_error(error, local, "no rebuild of archived record %" G_GUINT64_FORMAT
                               ": ", rec.seq);
    return FALSE;
  }
  if (!check_no_bad_base_over(root, plan, error))
    return FALSE;
  planned_kind = plan->base_kind;
  planned_name = g_strdup(plan->base_name);
  planned_path = g_strdup(plan->base_path);
  rebuilt = sqlenvfs_restore_image(root, plan, NULL, NULL, &local);
  if (rebuilt == NULL) {
    g_propagate_prefixed_error(error, local, "the rebuild was refused: ");
    return FALSE;
  }
  g_assert(plan->state_seq == rec.seq); /* invariant 2: a fallback base changes no state */
  g_debug("drill %s: rebuild planned and checked after %.3f s", db,
          (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
  r->base_kind = plan->base_kind;
  r->base_name = g_strdup(plan->base_name);
  r->n_commits = plan->n_commits;
  if (plan->base_kind != planned_kind || g_strcmp0(plan->base_name, planned_name) != 0) {
    g_autofree char *why = base_refusal(root, planned_kind, planned_name, db, planned_path);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "the base %s (%s %s) is bad: %s; the rebuild fell back to %s %s (remove the bad "
                "copy or take a new one: `sqlenvfs backup`)",
                planned_path, sqlenvfs_copy_kind_name(planned_kind), planned_name, why,
                sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name);
    return FALSE;
  }

  r->page_size = pos->page_size;
  r->n_pages = MAX(pos->n_pages, plan->n_pages);
  if (!sqlenvfs_drill_compare(sqlenvfs_live_view_image(view), rebuilt, pos->page_size,
                              &r->diff_pgno, &r->bytes_read, &local)) {
    g_propagate_prefixed_error(error, local, "reading the images failed: ");
    return FALSE;
  }
  g_debug("drill %s: compared after %.3f s", db,
          (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
  if (!sqlenvfs_restore_base_unchanged(plan, error))
    return FALSE;
  if (r->diff_pgno != 0) {
    r->diff_origin = sqlenvfs_drill_page_origin(root, plan, rebuilt, r->diff_pgno, &local);
    if (r->diff_origin == NULL) {
      r->diff_origin = g_strdup_printf("unknown (%s)", local->message);
      g_clear_error(&local);
    }
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "page %u differs between production (%u pages, WAL frame %u) and its rebuild "
                "from %s %s and archived records up to %" G_GUINT64_FORMAT " (%u pages); the "
                "rebuild takes that page from %s (one side is damaged although every checksum "
                "held: check production with `sqlenvfs doctor --full` and the copies with "
                "`sqlenvfs verify --full`; then take a new snapshot with `sqlenvfs snapshot`)",
                r->diff_pgno, pos->n_pages, pos->frame, sqlenvfs_copy_kind_name(plan->base_kind),
                plan->base_name, rec.seq, plan->n_pages, r->diff_origin);
    return FALSE;
  }
  return TRUE;
}

SqlenvfsDrillResult *
sqlenvfs_drill_db(SqlenvfsRoot *root, const char *db, SqlenvfsArchiver *archiver,
                  gint64 timeout_us)
{
  SqlenvfsDrillResult *r = g_new0(SqlenvfsDrillResult, 1);
  gint64 t0 = g_get_monotonic_time();
  g_autoptr(GError) error = NULL;

  r->db = g_strdup(db);
  r->ok = drill(root, db, archiver, timeout_us > 0 ? timeout_us : DEFAULT_TIMEOUT_US, r, &error);
  if (!r->ok)
    r->why = g_strdup(error->message);
  r->elapsed_us = g_get_monotonic_time() - t0;
  r->at_us = sqlenvfs_clock_now();
  return r;
}

/* ------------------------------------------------------------------ */
/* The memo of the last drills                                          */

void
sqlenvfs_drill_last_clear(SqlenvfsDrillLast *last)
{
  g_clear_pointer(&last->why, g_free);
}

static void
last_free(gpointer p)
{
  SqlenvfsDrillLast *l = p;
  sqlenvfs_drill_last_clear(l);
  g_free(l);
}

static char *
memo_path(SqlenvfsRoot *root)
{
  return g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), MEMO_NAME, NULL);
}

/* db name -> SqlenvfsDrillLast *; empty when the memo is missing or bad. */
static GHashTable *
memo_load(SqlenvfsRoot *root)
{
  g_autofree char *path = memo_path(root);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  GHashTable *memo = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, last_free);
  gsize len = 0;
  const char *tail;
  guint32 crc;

  if (!g_file_get_contents(path, &text, &len, NULL))
    return memo;
  /* The last line is "crc32 0x........\n" over every byte before it. */
  if (len < strlen(MEMO_MAGIC) + 17 || !g_str_has_prefix(text, MEMO_MAGIC) ||
      text[len - 1] != '\n')
    goto bad;
  tail = text + len - 17;
  if (strncmp(tail, "crc32 0x", 8) != 0 ||
      sscanf(tail + 8, "%8x", &crc) != 1 || crc != sqlenvfs_crc32(0, text, len - 17))
    goto bad;
  text[len - 17] = '\0';
  lines = g_strsplit(text + strlen(MEMO_MAGIC), "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    g_auto(GStrv) w = NULL;
    SqlenvfsDrillLast *l;
    char *name;

    if (lines[i][0] == '\0')
      continue;
    w = g_strsplit(lines[i], " ", -1);
    if (g_strv_length(w) < 4 || strcmp(w[0], "db") != 0 || !g_str_has_prefix(w[2], "at=") ||
        !g_str_has_prefix(w[3], "result="))
      goto bad;
    name = g_uri_unescape_string(w[1], NULL);
    if (name == NULL)
      goto bad;
    l = g_new0(SqlenvfsDrillLast, 1);
    l->at_us = g_ascii_strtoll(w[2] + 3, NULL, 10);
    l->ok = strcmp(w[3] + 7, "passed") == 0;
    if (w[4] != NULL && g_str_has_prefix(w[4], "why="))
      l->why = g_uri_unescape_string(w[4] + 4, NULL);
    if (!l->ok && l->why == NULL)
      l->why = g_strdup("(no reason recorded)");
    g_hash_table_replace(memo, name, l);
  }
  return memo;
bad:
  g_warning("drill: %s is damaged; the last drills are forgotten (the next drill rewrites it)",
            path);
  g_hash_table_remove_all(memo);
  return memo;
}

static gint
cmp_name(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static gboolean
memo_save(SqlenvfsRoot *root, GHashTable *memo, GError **error)
{
  g_autofree char *path = memo_path(root);
  g_autoptr(GString) s = g_string_new(MEMO_MAGIC);
  g_autoptr(GPtrArray) names = g_ptr_array_new();
  GHashTableIter it;
  gpointer k;

  if (!sqlenvfs_mkdir_p(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), 0700, error))
    return FALSE;
  g_hash_table_iter_init(&it, memo);
  while (g_hash_table_iter_next(&it, &k, NULL))
    g_ptr_array_add(names, k);
  g_ptr_array_sort(names, cmp_name);
  for (guint i = 0; i < names->len; i++) {
    const SqlenvfsDrillLast *l = g_hash_table_lookup(memo, names->pdata[i]);
    g_autofree char *en = g_uri_escape_string(names->pdata[i], NULL, FALSE);
    g_string_append_printf(s, "db %s at=%" G_GINT64_FORMAT " result=%s", en, l->at_us,
                           l->ok ? "passed" : "failed");
    if (!l->ok) {
      g_autofree char *ew = g_uri_escape_string(l->why ? l->why : "", NULL, FALSE);
      g_string_append_printf(s, " why=%s", ew);
    }
    g_string_append_c(s, '\n');
  }
  g_string_append_printf(s, "crc32 0x%08x\n", sqlenvfs_crc32(0, s->str, s->len));
  return sqlenvfs_write_file_atomic(path, s->str, s->len, 0600, error);
}

gboolean
sqlenvfs_drill_last(SqlenvfsRoot *root, const char *db, SqlenvfsDrillLast *last)
{
  g_autoptr(GHashTable) memo = memo_load(root);
  SqlenvfsDrillLast *l = g_hash_table_lookup(memo, db);

  memset(last, 0, sizeof *last);
  if (l == NULL)
    return FALSE;
  last->at_us = l->at_us;
  last->ok = l->ok;
  last->why = g_strdup(l->why);
  return TRUE;
}

char *
sqlenvfs_drill_last_describe(const SqlenvfsDrillLast *last, gboolean has_run)
{
  g_autofree char *when = NULL;
  if (!has_run)
    return g_strdup("never drilled");
  when = sqlenvfs_time_format_iso(last->at_us);
  if (last->ok)
    return g_strdup_printf("last drill passed at %s", when);
  return g_strdup_printf("last drill FAILED at %s: %s", when, last->why);
}

GPtrArray *
sqlenvfs_drill_run(SqlenvfsRoot *root, const char *db, SqlenvfsArchiver *archiver,
                   gint64 timeout_us, GError **error)
{
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GPtrArray) results =
      g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_drill_result_free);
  g_autoptr(GHashTable) memo = NULL;
  GError *local = NULL;
  int lock = -1;
  gboolean saved;

  if (db != NULL) {
    char *name = sqlenvfs_root_resolve_db(root, db, TRUE, error);
    if (name == NULL)
      return NULL;
    names = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(names, name);
  } else {
    names = sqlenvfs_root_list_dbs(root);
    if (names->len == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "drill: there is no production database in %s (create one with `sqlenvfs "
                  "init`)", sqlenvfs_root_path(root, SQLENVFS_DIR_PROD));
      return NULL;
    }
  }
  for (guint i = 0; i < names->len; i++) {
    g_info("drill %s: starting", (char *)names->pdata[i]);
    g_ptr_array_add(results, sqlenvfs_drill_db(root, names->pdata[i], archiver, timeout_us));
  }

  /* Remember the outcomes: read, change and write the memo under the
   * root's "drill" lock, so that two drills do not lose each other's. */
  if (!sqlenvfs_mkdir_p(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), 0700, &local) ||
      (lock = sqlenvfs_root_lock(root, "drill", TRUE, &local)) < 0) {
    g_warning("drill: the outcome could not be remembered for status, doctor and list: %s",
              local->message);
    g_clear_error(&local);
    return g_steal_pointer(&results);
  }
  memo = memo_load(root);
  for (guint i = 0; i < results->len; i++) {
    const SqlenvfsDrillResult *r = results->pdata[i];
    SqlenvfsDrillLast *l = g_new0(SqlenvfsDrillLast, 1);
    l->at_us = r->at_us;
    l->ok = r->ok;
    l->why = g_strdup(r->why);
    g_hash_table_replace(memo, g_strdup(r->db), l);
  }
  saved = memo_save(root, memo, &local);
  sqlenvfs_root_unlock(lock);
  if (!saved) {
    /* The drills ran: their results are worth more than the memo. */
    g_warning("drill: the outcome could not be remembered for status, doctor and list: %s",
              local->message);
    g_clear_error(&local);
  }
  return g_steal_pointer(&results);
}
