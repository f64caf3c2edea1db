/*
 * bisect.c — the first archived commit after which a query's result
 * changed (bisect.h).
 *
 * Invariants of the search over the candidate states c[0..n-1] (c[n-1] is
 * the state at T2), with R0 the result at T1:
 *   (1) result(c[lo]) == R0, or lo == -1 (the state at T1);
 *   (2) result(c[hi]) != R0.
 * Each probe halves hi - lo; when hi == lo + 1, c[hi] is the answer.
 *   (3) Only the state at T1 is built from a base (restore.h, its base
 *       checked); the state c[k] is composed on the image of c[lo] (or of
 *       the state at T1), the commits in (c[lo], c[k]] overlaid on it, as a
 *       restore overlays them on its base (sqlenvfs_archive_compose): the
 *       same bytes as a restore of c[k] from any base. So every probe after
 *       the first composes only the commits of the range still searched,
 *       and all of them use one timeline (one read of the archive's index,
 *       one check of its records).
 */
#include "sqlenvfs/bisect.h"

#include <math.h>

#include <string.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/imagevfs.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"

#define SHOW_ROWS 10

/* A result: the rows, or the error the query failed with (an outcome of
 * its own: a table dropped, a column not there yet). */
typedef struct {
  guint8 digest[32];
  guint64 n_rows;
  gboolean is_error;
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
  return a->is_error == b->is_error && a->n_rows == b->n_rows &&
         memcmp(a->digest, b->digest, sizeof a->digest) == 0;
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
    double x = sqlite3_value_double(v);
    /* 15 digits when they read back as the same double, else 17 (which
     * tell every two apart); -0.0 keeps its sign. */
    sqlite3_snprintf(sizeof buf, buf, "%!.15g", x);
    if (g_ascii_strtod(buf, NULL) != x)
      sqlite3_snprintf(sizeof buf, buf, "%!.17g", x);
    g_string_append(s, x == 0 && signbit(x) && buf[0] != '-' ? "-" : "");
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
    if (n > 32)
      g_string_append_printf(s, " (%d bytes)", n);
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

/* A state examined: its image and the record it is the state after. The
 * image of a state after the first reads every page no commit since the
 * state below it wrote through that state's image (invariant 3). */
typedef struct {
  SqlenvfsImage *img;
  guint64 seq;
  gint64 time_us;
} State;

static void
state_clear(State *s)
{
  g_clear_pointer(&s->img, sqlenvfs_image_free);
}

/* The state after COMMIT @e, composed on the state @below (which must
 * outlive it; restore.h). */
static gboolean
state_after(SqlenvfsArchive *a, const char *db, const State *below,
            const SqlenvfsArchiveEntry *e, State *out, GError **error)
{
  SqlenvfsImage *img = sqlenvfs_restore_image_after(a, below->img, below->seq, e, error);
  if (img == NULL) {
    g_prefix_error(error, "bisect %s: ", db);
    return FALSE;
  }
  *out = (State){ img, e->seq, e->time };
  return TRUE;
}

/* Label of state @s in messages. */
static char *
state_label(const char *db, const State *s)
{
  g_autofree char *when = sqlenvfs_time_format_iso(s->time_us);
  return g_strdup_printf("%s.db after seq %" G_GUINT64_FORMAT " (%s)", db, s->seq, when);
}

/* Whether SQLite's @rc, from preparing or running the query, is the query
 * failing on the state (a table or column not there, a value out of range):
 * a result. Anything else (the image unreadable, a state that is not a
 * database, memory) is an error of the bisection. */
static gboolean
is_query_error(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_ERROR:
  case SQLITE_TOOBIG:
  case SQLITE_MISMATCH:
  case SQLITE_RANGE:
    return TRUE;
  default:
    return FALSE;
  }
}

/* The query failed on the state with @msg: that is its result. */
static void
error_result(const char *msg, Result *out)
{
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  gsize len = sizeof out->digest;

  g_checksum_update(sum, (const guint8 *) msg, -1);
  g_checksum_get_digest(sum, out->digest, &len);
  out->n_rows = 0;
  out->is_error = TRUE;
  out->text = g_strdup_printf("(the query fails: %s)\n", msg);
}

/* Whether the main database of @conn keeps its text in UTF-16. */
static gboolean
is_utf16(sqlite3 *conn)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  return sqlite3_prepare_v2(conn, "PRAGMA encoding", -1, &st, NULL) == SQLITE_OK &&
         sqlite3_step(st) == SQLITE_ROW &&
         g_str_has_prefix((const char *) sqlite3_column_text(st, 0), "UTF-16");
}

/* Run @sql on state @s, the clock standing at @now_us (every state of a
 * run sees the same 'now'); the query failing there (is_query_error) is a
 * result too. */
static gboolean
probe(const char *db, const State *s, const char *sql, gint64 now_us, Result *out,
      GError **error)
{
  g_autoptr(sqlite3) conn = NULL;
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_autofree char *label = state_label(db, s);
  GString *text = g_string_new(NULL);
  gsize len = sizeof out->digest;
  gboolean wide;
  int rc, n;

  if (!sqlenvfs_imagevfs_open_clock(s->img, label, now_us, &conn, error))
    goto fail;
  rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
  if (rc != SQLITE_OK && is_query_error(rc)) {
    error_result(sqlite3_errmsg(conn), out);
    g_string_free(text, TRUE);
    return TRUE;
  }
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, conn, rc, "running the query on", label);
    goto fail;
  }
  out->n_rows = 0;
  out->is_error = FALSE;
  wide = is_utf16(conn);
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
      } else if (type == SQLITE_TEXT && wide) {
        /* As stored: two texts of a UTF-16 database may convert to the
         * same UTF-8 (what is not valid UTF-16 becomes U+FFFD). */
        const guint8 *p = sqlite3_value_text16le(v);
        bytes = (guint64) sqlite3_value_bytes16(v);
        g_checksum_update(sum, (const guint8 *) &bytes, sizeof bytes);
        if (bytes > 0)
          g_checksum_update(sum, p, (gssize) bytes);
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
  if (rc != SQLITE_DONE && is_query_error(rc)) {
    error_result(sqlite3_errmsg(conn), out);
    g_string_free(text, TRUE);
    return TRUE;
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

/* @sql must be one read-only statement that returns rows, on state @s (the
 * tables it names must exist there). */
static gboolean
check_statement(const char *db, const State *s, const char *sql, GError **error)
{
  g_autofree char *label = state_label(db, s);
  g_autoptr(sqlite3) conn = NULL;
  g_autoptr(sqlite3_stmt) st = NULL;
  const char *tail = NULL;
  int rc;

  if (!sqlenvfs_imagevfs_open(s->img, label, &conn, error))
    return FALSE;
  rc = sqlite3_prepare_v2(conn, sql, -1, &st, &tail);
  if (rc == SQLITE_OK && st == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql is empty (nothing but blanks, semicolons or comments): give one query "
                "(SELECT ...)");
    return FALSE;
  }
  if (rc != SQLITE_OK) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql is not a query SQLite accepts on %s, the state --from names: %s (its "
                "result at --from is what the others are compared with: give a --from where "
                "what it reads exists)", label, sqlite3_errmsg(conn));
    return FALSE;
  }
  /* After the statement: blanks, semicolons and comments only (SQLite
   * prepares them as no statement). */
  while (tail != NULL && *tail != '\0') {
    g_autoptr(sqlite3_stmt) next = NULL;
    const char *rest = NULL;
    int rc2 = sqlite3_prepare_v2(conn, tail, -1, &next, &rest);
    if (rc2 != SQLITE_OK || next != NULL || rest == NULL || rest == tail) {
      while (g_ascii_isspace(*tail) || *tail == ';')
        tail++;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "--sql holds more than one statement (from \"%.40s\"); give one query",
                  tail);
      return FALSE;
    }
    tail = rest;
  }
  if (!sqlite3_stmt_readonly(st) || sqlite3_column_count(st) == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "--sql must be a query that returns rows (SELECT ...), not \"%.60s\"",
                sql);
    return FALSE;
  }
  return TRUE;
}

/* The states bisect probes between two plans: the state after every COMMIT
 * record with seq in (after, upto]. Counted by one walk of the archive,
 * which checks that no record of the range is missing and keeps the seqs of
 * the other records in it (SEALs, mostly: few), so that candidate k is
 * found by arithmetic and one read of its record; with too many of those,
 * it keeps the seq of every CKPT_EVERY-th candidate instead, and finding
 * candidate k walks at most CKPT_EVERY records. */
#define CKPT_EVERY 4096
#define MAX_SKIPS 65536

typedef struct {
  guint64 after, upto;
  GArray *skips;      /* the seqs of the other records, ascending, or NULL */
  GArray *ckpts;      /* candidate k * CKPT_EVERY's seq                    */
} Cands;

static void
cands_clear(Cands *c)
{
  g_clear_pointer(&c->skips, g_array_unref);
  g_clear_pointer(&c->ckpts, g_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Cands, cands_clear)

typedef struct {
  guint64 expect;     /* the next seq the walk must see                    */
  guint64 n;          /* candidates so far                                 */
  guint64 want;       /* stop at candidate @want (G_MAXUINT64: count all)  */
  Cands *keep;        /* when counting: what it keeps                      */
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
  if (e->type != SQLENVFS_ARCHIVE_COMMIT) {
    if (w->keep != NULL && w->keep->skips != NULL) {
      if (w->keep->skips->len < MAX_SKIPS)
        g_array_append_val(w->keep->skips, e->seq);
      else
        g_clear_pointer(&w->keep->skips, g_array_unref);
    }
    return TRUE;
  }
  if (w->n == w->want) {
    w->hit = *e;
    w->found = TRUE;
    return FALSE;
  }
  if (w->keep != NULL && w->n % CKPT_EVERY == 0)
    g_array_append_val(w->keep->ckpts, e->seq);
  w->n++;
  return TRUE;
}

/* Count the candidates of (@after, @upto] into @c. */
static void
cand_count(SqlenvfsArchive *a, guint64 after, guint64 upto, Cands *c, CandWalk *w)
{
  *c = (Cands){ after, upto, g_array_new(FALSE, FALSE, sizeof(guint64)),
                g_array_new(FALSE, FALSE, sizeof(guint64)) };
  *w = (CandWalk){ .expect = after + 1, .want = G_MAXUINT64, .keep = c };
  sqlenvfs_archive_walk(a, after, upto, cand_step, w);
  if (w->gap_seq == 0 && !w->missing && w->expect != upto + 1)
    w->missing = TRUE;
}

/* Candidate @k of @c in *@e. FALSE and *error when the archive no longer
 * holds it. */
static gboolean
cand_get(SqlenvfsArchive *a, const Cands *c, guint64 k, SqlenvfsArchiveEntry *e, GError **error)
{
  guint64 after = c->after;
  gboolean found;

  if (c->skips != NULL) {
    /* Every seq of the range is there: the k-th that is not another record. */
    guint64 seq = after + 1 + k;
    for (guint i = 0; i < c->skips->len && g_array_index(c->skips, guint64, i) <= seq; i++)
      seq++;
    found = seq <= c->upto && sqlenvfs_archive_get(a, seq, e) &&
            e->type == SQLENVFS_ARCHIVE_COMMIT;
  } else {
    guint64 j = k / CKPT_EVERY;
    CandWalk w;
    if (j < c->ckpts->len)
      after = g_array_index(c->ckpts, guint64, j) - 1; /* candidate j * CKPT_EVERY is next */
    else
      j = 0;
    w = (CandWalk){ .expect = after + 1, .want = k - j * CKPT_EVERY };
    sqlenvfs_archive_walk(a, after, c->upto, cand_step, &w);
    found = w.found;
    *e = w.hit;
  }
  if (!found) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "the WAL archive changed while bisecting (records between seq %" G_GUINT64_FORMAT
                " and %" G_GUINT64_FORMAT " are gone: pruned?); bisect again", c->after, c->upto);
    return FALSE;
  }
  return TRUE;
}

SqlenvfsBisectResult *
sqlenvfs_bisect_run(SqlenvfsRoot *root, const char *db, const char *sql, const SqlenvfsTime *from,
                    const SqlenvfsTime *to, SqlenvfsBisectProgressFunc progress, gpointer user,
                    GError **error)
{
  g_autoptr(SqlenvfsBisectResult) r = g_new0(SqlenvfsBisectResult, 1);
  g_autoptr(SqlenvfsRestorePlan) p1 = NULL, p2 = NULL;
  g_autoptr(SqlenvfsTimeline) tl = NULL;
  /* The states with the result at T1, oldest first: each one's image reads
   * through the one before it (invariant 3). */
  g_autoptr(GArray) lows = g_array_new(FALSE, TRUE, sizeof(State));
  g_autofree char *name = NULL;
  SqlenvfsArchive *a;
  State s0 = { 0 }, shi = { 0 }, smid = { 0 };
  g_auto(Cands) cands = { 0 };
  CandWalk w;
  SqlenvfsArchiveEntry ce;
  guint64 n_cand;
  Result r0 = { 0 }, rhi = { 0 }, rmid = { 0 };
  SqlenvfsBisectResult *ret = NULL;
  guint total;
  gint64 lo, hi;
  /* 'now' in the query: the time the run began, in every state. */
  const gint64 now_us = g_get_real_time();

  g_return_val_if_fail(root != NULL && sql != NULL && to != NULL, NULL);
  g_array_set_clear_func(lows, (GDestroyNotify)state_clear);
  /* One timeline (the archive's index read and its records checked once)
   * answers both times and every state examined. */
  name = sqlenvfs_root_resolve_db(root, db, FALSE, error);
  if (name == NULL)
    return NULL;
  tl = sqlenvfs_timeline_open(root, name, error);
  if (tl == NULL)
    return NULL;
  p2 = sqlenvfs_timeline_plan(tl, to, error);
  if (p2 == NULL)
    return NULL;
  if (from != NULL) {
    p1 = sqlenvfs_timeline_plan(tl, from, error);
  } else {
    g_autoptr(GPtrArray) windows = sqlenvfs_timeline_windows(tl);
    SqlenvfsTime t = { .is_latest = FALSE, .us = 0 };
    for (guint i = 0; i < windows->len; i++) {
      SqlenvfsRestoreWindow *win = windows->pdata[i];
      if (win->from_us <= p2->state_us && p2->state_us <= win->to_us)
        t.us = win->from_us;
    }
    p1 = sqlenvfs_timeline_plan(tl, &t, error);
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
  /* The state at T1, from its base (checked as every restore checks it);
   * every later state is composed on an earlier one. */
  p1->on_demand = TRUE; /* a probe reads the pages its query needs */
  s0.img = sqlenvfs_restore_image(root, p1, NULL, NULL, error);
  if (s0.img == NULL)
    return NULL;
  s0.seq = p1->state_seq;
  s0.time_us = p1->state_us;
  g_array_append_val(lows, s0);
  if (!check_statement(r->db, &s0, sql, error))
    return NULL;

  a = sqlenvfs_timeline_archive(tl);
  cand_count(a, r->from_seq, r->to_seq, &cands, &w);
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
  if (!probe(r->db, &s0, sql, now_us, &r0, error))
    goto out;
  /* Twice on the same state: a result that changes on its own would be
   * taken for a change the commits made. */
  {
    Result again = { 0 };
    gboolean same;
    if (!probe(r->db, &s0, sql, now_us, &again, error))
      goto out;
    same = result_equal(&r0, &again);
    result_clear(&again);
    if (!same) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "the query gives another result each time it runs on the same state (it "
                  "calls random(), or another function whose result changes on its own, or "
                  "reads what is not the data, as PRAGMA database_list, whose file names "
                  "differ from one state to the next): bisect needs a query whose result "
                  "depends only on the data");
      goto out;
    }
  }
  probe_done(r, total, progress, user);
  hi = (gint64)n_cand - 1;
  if (!cand_get(a, &cands, (guint64)hi, &ce, error) ||
      !state_after(a, r->db, &s0, &ce, &shi, error) ||
      !probe(r->db, &shi, sql, now_us, &rhi, error))
    goto out;
  probe_done(r, total, progress, user);
  if (result_equal(&r0, &rhi)) {
    r->before = g_steal_pointer(&r0.text);
    r->n_before = r0.n_rows;
    ret = g_steal_pointer(&r);
    goto out;
  }
  lo = -1;
  while (hi - lo > 1) {
    gint64 mid = lo + (hi - lo) / 2;
    const State *below = &g_array_index(lows, State, lows->len - 1);
    if (!cand_get(a, &cands, (guint64)mid, &ce, error) ||
        !state_after(a, r->db, below, &ce, &smid, error) ||
        !probe(r->db, &smid, sql, now_us, &rmid, error))
      goto out;
    probe_done(r, total, progress, user);
    if (result_equal(&r0, &rmid)) {
      lo = mid; /* invariant 1; the next states are composed on this one */
      result_clear(&rmid);
      g_array_append_val(lows, smid);
    } else {
      hi = mid; /* invariant 2 */
      result_clear(&rhi);
      rhi = rmid;
      state_clear(&shi);
      shi = smid;
    }
    rmid = (Result){ 0 };
    smid = (State){ 0 };
    g_assert(lo < hi && !result_equal(&r0, &rhi));
  }
  r->is_found = TRUE;
  r->seq = shi.seq;
  r->time_us = shi.time_us;
  if (!sqlenvfs_timeline_archived_late(tl, r->seq, r->time_us, &r->late_from_us))
    r->late_from_us = 0;
  r->before = g_steal_pointer(&r0.text);
  r->n_before = r0.n_rows;
  r->after = g_steal_pointer(&rhi.text);
  r->n_after = rhi.n_rows;
  ret = g_steal_pointer(&r);

out:
  result_clear(&r0);
  result_clear(&rhi);
  result_clear(&rmid);
  state_clear(&smid);
  state_clear(&shi);
  return ret; /* @lows freed after every image that reads through them */
}
