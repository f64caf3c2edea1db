/*
 * retention.c — what `list`, `verify` and `prune` ask of the point-in-time
 * history of every database: the recoverable windows to list, the WAL
 * archives to verify (and the copies' archived states), and what retention
 * (pitr-keep-days) must keep of the store and of the archive. Each question
 * is answered by a timeline (timeline.h) per database.
 */
#include "sqlenvfs/retention.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

/* ------------------------------------------------------------------ */
/* list and verify                                                      */

gboolean
sqlenvfs_retention_list_windows(SqlenvfsRoot *root, SqlenvfsListReport *report, GError **error)
{
  g_autoptr(GPtrArray) names = sqlenvfs_restore_list_dbs(root);
  for (guint n = 0; n < names->len; n++) {
    g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, names->pdata[n], error);
    g_autoptr(GPtrArray) wins = NULL;
    g_autofree char *why = NULL;
    gint64 from, to;
    if (tl == NULL)
      return FALSE;
    wins = sqlenvfs_timeline_windows(tl);
    for (guint i = 0; i < wins->len; i++) {
      const SqlenvfsRestoreWindow *w = wins->pdata[i];
      SqlenvfsListWindow *lw =
        sqlenvfs_list_report_add_window(report, names->pdata[n], w->from_us, w->to_us, w->note);
      lw->before = w->before;
      lw->base_unchecked = w->base_unchecked;
    }
    /* A copy pinned in another history is listed with the damaged ones:
     * listed as an ordinary copy, it would look good to whoever picks one
     * by hand. */
    {
      g_autoptr(GPtrArray) foreign = sqlenvfs_timeline_foreign_bases(tl);
      for (guint i = 0; i < foreign->len; i++) {
        const SqlenvfsTimelineBase *f = foreign->pdata[i];
        sqlenvfs_list_report_mark_foreign(report, f->kind, f->name, f->why);
      }
    }
    /* Also an archive no copy reaches at all (no window): all of it. */
    if (sqlenvfs_timeline_unrecoverable_newest(tl, &from, &to, &why)) {
      SqlenvfsListWindow *t = g_new0(SqlenvfsListWindow, 1);
      t->db = g_strdup(names->pdata[n]);
      t->from_us = from;
      t->to_us = to;
      t->note = g_steal_pointer(&why);
      g_ptr_array_add(report->tails, t);
    }
  }
  return TRUE;
}

typedef struct {
  SqlenvfsVerifyReport *report;
  const char *db;
  guint n;
} VerifyCtx;

static void
verify_problem(gpointer user, const char *file, const char *message)
{
  VerifyCtx *v = user;
  g_autofree char *base = g_path_get_basename(file);
  sqlenvfs_verify_report_add(v->report, "wal-archive", base, v->db, file, FALSE, message);
  v->n++;
}

/* The databases with a WAL archive (newly allocated names). */
static GPtrArray *
archived_dbs(SqlenvfsRoot *root)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), 0, NULL);
  const char *ent;
  while (d && (ent = g_dir_read_name(d)) != NULL)
    if (sqlenvfs_db_name_is_valid(ent))
      g_ptr_array_add(names, g_strdup(ent));
  return names;
}

/* Whether @report has a copy of @db (or an entry of unknown databases)
 * found bad in this run: the memo saved at its end says so, not before. */
static gboolean
copy_found_bad(const SqlenvfsVerifyReport *report, const char *db)
{
  for (guint i = 0; i < report->checks->len; i++) {
    const SqlenvfsCheck *c = report->checks->pdata[i];
    if (!c->ok && g_strcmp0(c->kind, "wal-archive") != 0 &&
        (c->db == NULL || strcmp(c->db, db) == 0))
      return TRUE;
  }
  return FALSE;
}

/* The archive must not go on past its last recoverable window for long:
 * its newest state could not be restored (`latest` is refused). A break
 * younger than [doctor] archive-lag-warn-seconds is not reported: the
 * archiver takes the snapshot of a chain it starts itself, a moment later. */
static void
verify_newest_state(SqlenvfsRoot *root, const char *db, SqlenvfsTimeline *tl,
                    SqlenvfsVerifyReport *report)
{
  gint64 grace = (gint64)sqlenvfs_root_settings(root)->archive_lag_warn_seconds * G_USEC_PER_SEC;
  g_autofree char *why = NULL, *from_s = NULL, *to_s = NULL, *msg = NULL, *dir = NULL;
  gint64 from, to;

  if (!sqlenvfs_timeline_unrecoverable_newest(tl, &from, &to, &why))
    return;
  from_s = sqlenvfs_time_format_iso(from);
  to_s = sqlenvfs_time_format_iso(to);
  if (sqlenvfs_clock_now() - from <= grace) {
    g_info("verify %s: the newest archived state cannot be restored yet (from %s: %s); the "
           "archiver's snapshot of a new chain may still be under way", db, from_s, why);
    return;
  }
  dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  msg = g_strdup_printf("the newest archived state cannot be restored: what was archived from %s "
                        "to %s is not recoverable (%s), and `restore --time latest` is refused; "
                        "take a snapshot (`sqlenvfs snapshot`)",
                        from_s, to_s, why);
  sqlenvfs_verify_report_add(report, "wal-archive", "newest state", db, dir, FALSE, msg);
}

/* Every copy of @db that passed its own checks (no bad line for its file in
 * @report yet) and that its MANIFEST maps to an archived COMMIT must hold
 * that state (sqlenvfs_restore_base_holds_state): a bad line for each one that does not, so
 * that `verify` names the copies a restore would pass over. */
static void
verify_base_states(SqlenvfsRoot *root, const char *db, SqlenvfsVerifyReport *report)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, db, &local);
  g_autoptr(GPtrArray) bases = NULL;
  g_autoptr(GPtrArray) foreign = NULL;

  if (tl == NULL) {
    g_debug("verify %s: the copies' states were not checked: %s", db, local->message);
    return;
  }
  /* Copies pinned in another history (a copy of the root): their files may
   * be good, but their MANIFEST places them in an archive they are not of. */
  foreign = sqlenvfs_timeline_foreign_bases(tl);
  for (guint i = 0; i < foreign->len; i++) {
    const SqlenvfsTimelineBase *f = foreign->pdata[i];
    sqlenvfs_verify_report_add(report, sqlenvfs_copy_kind_name(f->kind), f->name, db, f->manifest,
                               FALSE, f->why);
  }
  bases = sqlenvfs_timeline_bases(tl);
  for (guint i = 0; i < bases->len; i++) {
    const SqlenvfsTimelineBase *b = bases->pdata[i];
    g_autoptr(GError) why = NULL;
    gboolean known_bad = FALSE;
    int fd;

    for (guint k = 0; k < report->checks->len && !known_bad; k++) {
      const SqlenvfsCheck *c = report->checks->pdata[k];
      known_bad = !c->ok && g_strcmp0(c->path, b->path) == 0;
    }
    if (known_bad)
      continue;
    fd = open(b->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      continue; /* store verification already read (or named) it */
    if (!sqlenvfs_timeline_base_holds_state(tl, b->seq, fd, b->path, &why))
      sqlenvfs_verify_report_add(report, sqlenvfs_copy_kind_name(b->kind), b->name, db, b->path,
                                 FALSE, why->message);
    close(fd);
  }
  /* With no copy found bad in this run, this timeline knows every verdict
   * (sqlenvfs_retention_verify_newest does the others). */
  if (!copy_found_bad(report, db))
    verify_newest_state(root, db, tl, report);
}

void
sqlenvfs_retention_verify_newest(SqlenvfsRoot *root, SqlenvfsVerifyReport *report)
{
  g_autoptr(GPtrArray) names = archived_dbs(root);
  for (guint n = 0; n < names->len; n++) {
    g_autoptr(GError) local = NULL;
    g_autoptr(SqlenvfsTimeline) tl = NULL;
    if (!copy_found_bad(report, names->pdata[n]))
      continue; /* checked by verify_base_states */
    tl = sqlenvfs_timeline_open(root, names->pdata[n], &local);
    if (tl != NULL)
      verify_newest_state(root, names->pdata[n], tl, report);
  }
}

gboolean
sqlenvfs_retention_verify_archives(SqlenvfsRoot *root, const SqlenvfsArchiveVerifyMemo *memo,
                                 SqlenvfsVerifyReport *report, GError **error)
{
  g_autoptr(GPtrArray) names = sqlenvfs_restore_list_dbs(root);
  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
    SqlenvfsArchiveVerifyResult res = { 0 };
    VerifyCtx v = { report, db, 0 };
    g_autoptr(GError) local = NULL;
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
      continue;
    if (!sqlenvfs_archive_verify_with(dir, memo, verify_problem, &v, &res, &local)) {
      report->n_segments_checked += res.n_segments - res.n_skipped;
      report->n_segments_skipped += res.n_skipped;
      if (v.n == 0) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
      continue;
    }
    report->n_segments_checked += res.n_segments - res.n_skipped;
    report->n_segments_skipped += res.n_skipped;
    {
      g_autofree char *what = g_strdup_printf("%u segment%s", res.n_segments,
                                              res.n_segments == 1 ? "" : "s");
      g_autofree char *bytes = sqlenvfs_format_size(res.bytes);
      g_autofree char *note = g_strdup_printf(
        "%" G_GUINT64_FORMAT " records (%" G_GUINT64_FORMAT " transactions, %" G_GUINT64_FORMAT
        " gaps), %s, every checksum and the chain good", res.n_records, res.n_commits,
        res.n_gaps, bytes);
      sqlenvfs_verify_report_add(report, "wal-archive", what, db, dir, TRUE, NULL);
      g_debug("verify %s: %s", dir, note);
    }
    verify_base_states(root, db, report);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Retention                                                            */

/* The start of the retained point-in-time period (0: keep everything). */
static gint64
retained_since(SqlenvfsRoot *root)
{
  int days = sqlenvfs_root_settings(root)->pitr_keep_days;
  if (days <= 0)
    return 0;
  return sqlenvfs_clock_now() - (gint64)days * 86400 * G_USEC_PER_SEC;
}

gboolean
sqlenvfs_retention_check_anchors(SqlenvfsRoot *root, GError **error)
{
  gint64 since = retained_since(root);
  g_autoptr(GPtrArray) names = archived_dbs(root);
  g_autoptr(GPtrArray) bad = g_ptr_array_new_with_free_func(g_free);

  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    /* A base found bad is remembered, and the timeline opened again puts
     * the next one in its place, which is checked in turn. */
    for (;;) {
      g_autoptr(GError) local = NULL;
      g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, db, &local);
      guint seen = bad->len;
      if (tl == NULL)
        break; /* sqlenvfs_retention_keep_base keeps every copy then */
      if (!sqlenvfs_timeline_check_anchors(tl, since, bad, error))
        return FALSE;
      if (bad->len == seen)
        break;
      for (guint i = seen; i < bad->len; i++) {
        for (guint k = 0; k < seen; k++)
          if (strcmp(bad->pdata[i], bad->pdata[k]) == 0) {
            /* Its verdict could not be remembered (the memo is not
             * writable), so the timeline would still start from it. */
            g_autofree char *memo = sqlenvfs_verify_memo_path(root);
            g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                        "%s is damaged, and that could not be remembered in %s: the point-in-"
                        "time window of %s would still start from it (nothing was removed; make "
                        "that file writable, then run prune again)",
                        (const char *)bad->pdata[i], memo, db);
            return FALSE;
          }
        g_warning("prune: %s; the point-in-time window of %s starts from the next good base, "
                  "which is kept", (const char *)bad->pdata[i], db);
      }
    }
  }
  return TRUE;
}

gboolean
sqlenvfs_retention_keep_base(const SqlenvfsStoredCopy *copy, gpointer user, char **why)
{
  SqlenvfsRoot *root = user;
  gint64 since = retained_since(root);

  for (guint d = 0; d < copy->dbs->len; d++) {
    const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
    g_autoptr(GError) error = NULL;
    g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, sdb->db, &error);
    if (tl == NULL) {
      /* When the archive cannot be read, keeping is the safe answer. */
      *why = g_strdup_printf("the WAL archive of %s cannot be read (%s)", sdb->db,
                             error->message);
      return TRUE;
    }
    if (sqlenvfs_timeline_keeps_base(tl, copy->kind, copy->name, since, why))
      return TRUE;
  }
  return FALSE;
}

gboolean
sqlenvfs_retention_prune_archives(SqlenvfsRoot *root, gboolean dry_run, GPtrArray *removed,
                                  GError **error)
{
  gint64 since = retained_since(root);
  g_autoptr(GPtrArray) names = NULL;
  const char *wal_dir = sqlenvfs_root_path(root, SQLENVFS_DIR_WAL);

  if (since == 0)
    return TRUE;
  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_WAL, "remove old archive segments", error))
    return FALSE;
  names = archived_dbs(root);

  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(root, db, error);
    g_autofree char *dir = g_build_filename(wal_dir, db, NULL);
    guint64 keep;
    if (tl == NULL)
      return FALSE;
    if (!sqlenvfs_refuse_symlink(dir, "remove old archive segments", error))
      return FALSE;
    if (!sqlenvfs_timeline_prune_point(tl, since, &keep))
      continue;
    g_clear_pointer(&tl, sqlenvfs_timeline_free); /* its files are closed before prune */
    if (sqlenvfs_archive_prune(dir, keep, dry_run, removed, error) < 0)
      return FALSE;
  }
  return TRUE;
}
