/*
 * bisect.c — the first archived commit after which a query's result
 * changed (bisect.h).
 *
 * Invariants of the search over the candidate states c[0..n-1] (c[n-1] is
 * the state at T2), with R0 the result at T1:
 *   (1) result(c[lo]) == R0, or lo == -1 (the state at T1);
 *   (2) result(c[hi]) != R0.
 * Each probe halves hi - lo; when hi == lo + 1, c[hi] is the answer.
 */
#include "sqlenvfs/bisect.h"

#include <string.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/imagevfs.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/util.h"

#define SHOW_ROWS 10

typedef struct {
  guint8 digest[32];
  guint64 n_rows;
  char *text;
} Result;

static void
result_clear(Result *r)
{
  g_clear_pointer(&r->text, g_free);
}

static gboolean
result_equal(const Result *a, const Result *b)
{
  return a->n_rows == b->n_rows && memcmp(a->digest, b->digest, sizeof a->digest) == 0;
}

void
sqlenvfs_bisect_result_free(SqlenvfsBisectResult *r)
{
  if (r == NULL)
    return;
  g_free(r->db);
  g_free(r->before);
  g_free(r->after);
  g_free(r);
}

static void
render(GString *s, sqlite3_value *v)
{
  switch (sqlite3_value_type(v)) {
  case SQLITE_NULL:
    g_string_append(s, "NULL");
    break;
  case SQLITE_INTEGER:
    g_string_append_printf(s, "%" G_GINT64_FORMAT, (gint64) sqlite3_value_int64(v));
    break;
  case SQLITE_FLOAT: {
    char buf[64];
    sqlite3_snprintf(sizeof buf, buf, "%!.15g", sqlite3_value_double(v));
    g_string_append(s, buf);
    break;
  }
  case SQLITE_BLOB: {
    const guint8 *b = sqlite3_value_blob(v);
    int n = sqlite3_value_bytes(v);
    g_string_append(s, "x'");
    for (int i = 0; i < n && i < 32; i++)
      g_string_append_printf(s, "%02x", b[i]);
    g_string_append(s, n > 32 ? "...'" : "'");
    break;
  }
  default:
    g_string_append(s, (const char *) sqlite3_value_text(v));
  }
}

/* Count one probe of the bisection done, and report it to @progress (of
 * @total at most). */
static void
probe_done(SqlenvfsBisectResult *r, guint total, SqlenvfsBisectProgressFunc progress,
           gpointer user)
{
  r->n_probes++;
  if (progress != NULL)
    progress(user, r->n_probes, total);
}

/* Run @sql on the state after archive record @seq (time @t_us). */
static gboolean
probe(SqlenvfsRoot *root, const char *db, gint64 t_us, guint64 seq, const char *sql, Result *out,
      GError **error)
{
  SqlenvfsTime t = { .is_latest = FALSE, .us = t_us };
  g_autoptr(SqlenvfsRestorePlan) plan = sqlenvfs_restore_plan(root, db, &t, error);
  g_autoptr(SqlenvfsImage) img = NULL;
  g_autoptr(sqlite3) conn = NULL;
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_autofree char *when = sqlenvfs_time_format_iso(t_us);
  g_autofree char *label = NULL;
  GString *text = g_string_new(NULL);
  gsize len = sizeof out->digest;
  int rc, n;

  if (plan == NULL)
    goto fail;
  label = g_strdup_printf("%s.db at %s (seq %" G_GUINT64_FORMAT ")", plan->db, when, seq);
  if (plan->state_seq != seq) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "the state at %s is seq %" G_GUINT64_FORMAT ", not %" G_GUINT64_FORMAT
                " as the archive's index says; check the archive with `sqlenvfs verify`",
                when, plan->state_seq, seq);
    goto fail;
  }
  plan->on_demand = TRUE; /* a probe reads the pages its query needs */
  img = sqlenvfs_restore_image(root, plan, NULL, NULL, error);
  if (img == NULL || !sqlenvfs_imagevfs_open(img, label, &conn, error))
    goto fail;
  rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, conn, rc, "running the query on", label);
    goto fail;
  }
  out->n_rows = 0;
  n = sqlite3_column_count(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < n; i++) {
      sqlite3_value *v = sqlite3_column_value(st, i);
      guint8 type = (guint8) sqlite3_value_type(v);
      guint64 bytes;
      g_checksum_update(sum, &type, 1);
      if (type == SQLITE_INTEGER) {
        gint64 x = sqlite3_value_int64(v);
        g_checksum_update(sum, (const guint8 *) &x, sizeof x);
      } else if (type == SQLITE_FLOAT) {
        double x = sqlite3_value_double(v);
        g_checksum_update(sum, (const guint8 *) &x, sizeof x);
      } else if (type != SQLITE_NULL) {
        const guint8 *p = type == SQLITE_BLOB ? sqlite3_value_blob(v) : sqlite3_value_text(v);
        bytes = (guint64) sqlite3_value_bytes(v);
        g_checksum_update(sum, (const guint8 *) &bytes, sizeof bytes);
        if (bytes > 0)
          g_checksum_update(sum, p, (gssize) bytes);
      }
      if (out->n_rows < SHOW_ROWS) {
        if (i > 0)
          g_string_append_c(text, '|');
        render(text, v);
      }
    }
    g_checksum_update(sum, (const guint8 *) "\n", 1);
    if (out->n_rows < SHOW_ROWS)
      g_string_append_c(text, '\n');
    out->n_rows++;
  }
  if (rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, conn, rc, "running the query on", label);
    goto fail;
  }
  if (out->n_rows > SHOW_ROWS)
    g_string_append_printf(text, "... (%" G_GUINT64_FORMAT " rows)\n", out->n_rows);
  if (out->n_rows == 0)
    g_string_append(text, "(no rows)\n");
  g_checksum_get_digest(sum, out->digest, &len);
  out->text = g_string_free(text, FALSE);
  return TRUE;

fail:
  g_string_free(text, TRUE);
  return FALSE;
}

/* @sql must be one read-only statement that returns rows, on the state at
 * @t_us (the tables it names must exist there). */
static gboolean
check_statement(SqlenvfsRoot *root, const char *db, gint64 t_us, const char *sql, GError **error)
{
  SqlenvfsTime t = { .is_latest = FALSE, .us = t_us };
  g_autoptr(SqlenvfsRestorePlan) plan = sqlenvfs_restore_plan(root, db, &t, error);
  g_autoptr(SqlenvfsImage) img = NULL;
  g_autoptr(sqlite3) conn = NULL;
  g_autoptr(sqlite3_stmt) st = NULL;
  const char *tail = NULL;
  int rc;

  if (plan == NULL)
    return FALSE;
  plan->on_demand = TRUE; /* a probe reads the pages its query needs */
  img = sqlenvfs_restore_image(root, plan, NULL, NULL, error);
  if (img == NULL || !sqlenvfs_imagevfs_open(img, plan->db, &conn, error))
    return FALSE;
  rc = sqlite3_prepare_v2(conn, sql, -1, &st, &tail);
  if (rc != SQLITE_OK || st == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql is not a query SQLite accepts on %s.db: %s", plan->db,
                st == NULL && rc == SQLITE_OK ? "it is empty" : sqlite3_errmsg(conn));
    return FALSE;
  }
  while (tail != NULL && g_ascii_isspace(*tail))
    tail++;
  if (tail != NULL && *tail == ';')
    tail++;
  while (tail != NULL && g_ascii_isspace(*tail))
    tail++;
  if (tail != NULL && *tail != '\0') {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql holds more than one statement (from \"%.40s\"); give one query",
                tail);
    return FALSE;
  }
  if (!sqlite3_stmt_readonly(st) || sqlite3_column_count(st) == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql must be a query that returns rows (SELECT ...), not \"%.60s\"",
                sql);
    return FALSE;
  }
  return TRUE;
}

/* The states bisect probes between two plans: the COMMIT records with seq
 * in (after, upto], of which commits captured in the same microsecond
 * count as one (the last of them). Counted, or the @want-th one found, by a
 * walk of the archive (nothing per record is kept). */
typedef struct {
  guint64 expect;     /* the next seq the walk must see                    */
  guint64 n;          /* candidates so far                                 */
  guint64 want;       /* stop at candidate @want (G_MAXUINT64: count all)  */
  SqlenvfsArchiveEntry last;  /* the last COMMIT seen                      */
  gboolean has_last;
  guint64 gap_seq;    /* a GAP record in the range (0: none)               */
  gboolean missing;   /* a record of the range is missing or unreadable    */
  gboolean found;
  SqlenvfsArchiveEntry hit;
} CandWalk;

static gboolean
cand_step(gpointer user, const SqlenvfsArchiveEntry *e)
{
  CandWalk *w = user;
  if (e->seq != w->expect) {
    w->missing = TRUE;
    return FALSE;
  }
  w->expect++;
  if (e->type == SQLENVFS_ARCHIVE_GAP) {
    w->gap_seq = e->seq;
    return FALSE;
  }
  if (e->type != SQLENVFS_ARCHIVE_COMMIT)
    return TRUE;
  if (w->has_last && w->last.time != e->time) {
    /* w->last ended its microsecond: candidate number n. */
    if (w->n == w->want) {
      w->hit = w->last;
      w->found = TRUE;
      return FALSE;
    }
    w->n++;
  }
  w->last = *e;
  w->has_last = TRUE;
  return TRUE;
}

/* Walk (@after, @upto] for candidate @want (G_MAXUINT64: count them). */
static void
cand_walk(SqlenvfsArchive *a, guint64 after, guint64 upto, guint64 want, CandWalk *w)
{
  *w = (CandWalk){ .expect = after + 1, .want = want };
  sqlenvfs_archive_walk(a, after, upto, cand_step, w);
  if (w->found || w->gap_seq != 0 || w->missing)
    return;
  if (w->expect != upto + 1)
    w->missing = TRUE;
  else if (w->has_last) { /* the last microsecond's last commit */
    if (w->n == want) {
      w->hit = w->last;
      w->found = TRUE;
    }
    w->n++;
  }
}

/* Candidate @k of (@after, @upto] in *@e (walked again: nothing is kept).
 * FALSE and *error when the archive no longer holds it. */
static gboolean
cand_get(SqlenvfsArchive *a, guint64 after, guint64 upto, guint64 k, SqlenvfsArchiveEntry *e,
         GError **error)
{
  CandWalk cw;
  cand_walk(a, after, upto, k, &cw);
  if (!cw.found) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "the WAL archive changed while bisecting (records between seq %" G_GUINT64_FORMAT
                " and %" G_GUINT64_FORMAT " are gone: pruned?); bisect again", after, upto);
    return FALSE;
  }
  *e = cw.hit;
  return TRUE;
}

SqlenvfsBisectResult *
sqlenvfs_bisect_run(SqlenvfsRoot *root, const char *db, const char *sql, const SqlenvfsTime *from,
                    const SqlenvfsTime *to, SqlenvfsBisectProgressFunc progress, gpointer user,
                    GError **error)
{
  g_autoptr(SqlenvfsBisectResult) r = g_new0(SqlenvfsBisectResult, 1);
  g_autoptr(SqlenvfsRestorePlan) p1 = NULL, p2 = NULL;
  g_autoptr(SqlenvfsArchive) a = NULL;
  CandWalk w;
  SqlenvfsArchiveEntry ce;
  guint64 n_cand;
  g_autofree char *dir = NULL;
  Result r0 = { 0 }, rhi = { 0 }, rmid = { 0 };
  guint total;
  gint64 lo, hi;

  g_return_val_if_fail(root != NULL && sql != NULL && to != NULL, NULL);
  p2 = sqlenvfs_restore_plan(root, db, to, error);
  if (p2 == NULL)
    return NULL;
  if (from != NULL) {
    p1 = sqlenvfs_restore_plan(root, db, from, error);
  } else {
    g_autoptr(GPtrArray) windows = sqlenvfs_restore_windows(root, p2->db, error);
    SqlenvfsTime t = { .is_latest = FALSE, .us = 0 };
    if (windows == NULL)
      return NULL;
    for (guint i = 0; i < windows->len; i++) {
      SqlenvfsRestoreWindow *win = windows->pdata[i];
      if (win->from_us <= p2->state_us && p2->state_us <= win->to_us)
        t.us = win->from_us;
    }
    p1 = sqlenvfs_restore_plan(root, p2->db, &t, error);
  }
  if (p1 == NULL)
    return NULL;
  r->db = g_strdup(p2->db);
  r->from_seq = p1->state_seq;
  r->to_seq = p2->state_seq;
  r->from_us = p1->state_us;
  r->to_us = p2->state_us;
  if (p1->state_seq > p2->state_seq) {
    g_autofree char *t1 = sqlenvfs_time_format_iso(p1->state_us);
    g_autofree char *t2 = sqlenvfs_time_format_iso(p2->state_us);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--from (state of %s) is after --to (state of %s); give the older time"
                " as --from",
                t1, t2);
    return NULL;
  }
  if (!check_statement(root, r->db, p1->state_us, sql, error))
    return NULL;

  dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), r->db, NULL);
  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return NULL;
  cand_walk(a, r->from_seq, r->to_seq, G_MAXUINT64, &w);
  if (w.gap_seq != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "the archive of %s has a gap between --from and --to (at seq %"
                G_GUINT64_FORMAT "); give two times in one recoverable window"
                " (see `sqlenvfs list`)",
                r->db, w.gap_seq);
    return NULL;
  }
  if (w.missing) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "the archive of %s is missing records between --from and --to (seq %"
                G_GUINT64_FORMAT " on); give two times in one recoverable window"
                " (see `sqlenvfs list`; `sqlenvfs verify` says what is damaged)",
                r->db, w.expect);
    return NULL;
  }
  n_cand = w.n;
  r->n_commits = (guint)n_cand;
  if (n_cand == 0) {
    r->n_probes = 0;
    return g_steal_pointer(&r);
  }
  total = 2 + (guint) g_bit_storage(n_cand - 1);
  if (!probe(root, r->db, p1->state_us, p1->state_seq, sql, &r0, error))
    goto fail;
  probe_done(r, total, progress, user);
  hi = (gint64)n_cand - 1;
  if (!cand_get(a, r->from_seq, r->to_seq, (guint64)hi, &ce, error) ||
      !probe(root, r->db, ce.time, ce.seq, sql, &rhi, error))
    goto fail;
  probe_done(r, total, progress, user);
  if (result_equal(&r0, &rhi)) {
    r->before = g_steal_pointer(&r0.text);
    r->n_before = r0.n_rows;
    result_clear(&rhi);
    return g_steal_pointer(&r);
  }
  lo = -1;
  while (hi - lo > 1) {
    gint64 mid = lo + (hi - lo) / 2;
    if (!cand_get(a, r->from_seq, r->to_seq, (guint64)mid, &ce, error) ||
        !probe(root, r->db, ce.time, ce.seq, sql, &rmid, error))
      goto fail;
    probe_done(r, total, progress, user);
    if (result_equal(&r0, &rmid)) {
      lo = mid; /* invariant 1 */
      result_clear(&rmid);
    } else {
      hi = mid; /* invariant 2 */
      result_clear(&rhi);
      rhi = rmid;
    }
    rmid = (Result){ 0 };
    g_assert(lo < hi && !result_equal(&r0, &rhi));
  }
  r->is_found = TRUE;
  if (!cand_get(a, r->from_seq, r->to_seq, (guint64)hi, &ce, error))
    goto fail;
  r->seq = ce.seq;
  r->time_us = ce.time;
  r->before = g_steal_pointer(&r0.text);
  r->n_before = r0.n_rows;
  r->after = g_steal_pointer(&rhi.text);
  r->n_after = rhi.n_rows;
  return g_steal_pointer(&r);

fail:
  result_clear(&r0);
  result_clear(&rhi);
  result_clear(&rmid);
  return NULL;
}
