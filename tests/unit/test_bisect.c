/* Unit tests for bisect: the states it composes on one another are the
 * states a restore builds, byte for byte; the first commit after T1 can be
 * the answer; two commits captured in the same microsecond are told apart.
 * A real archiver runs in a thread while the test commits. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/bisect.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/imagevfs.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"

static char *tmp;
static SqlenvfsRoot *root;
static char *db_path;

static gpointer
run_thread(gpointer a)
{
  return GINT_TO_POINTER(sqlenvfs_archiver_run(a, NULL));
}

static void
exec(sqlite3 *db, const char *sql)
{
  GError *error = NULL;
  ck_assert_msg(sqlenvfs_db_exec(db, sql, db_path, &error), "%s: %s", sql,
                error ? error->message : "");
}

/* A root whose production database app has t(k, b), the archiver
 * capturing from its first snapshot while @work commits. */
static void
make_root(const char *conf, void (*work)(sqlite3 *db))
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiver) a = NULL;
  g_autoptr(sqlite3) db = NULL;
  GThread *th;

  tmp = testutil_tmpdir();
  {
    g_autofree char *path = g_build_filename(tmp, "sqlenvfs.conf", NULL);
    ck_assert(g_file_set_contents(path, conf, -1, NULL));
  }
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  db_path = sqlenvfs_root_prod_db(root, "app");
  db = sqlenvfs_db_open(db_path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, b)");
  a = sqlenvfs_archiver_new(root, &error);
  ck_assert_no_error(error);
  th = g_thread_new("archiver", run_thread, a);
  testutil_wait_capturing(a, "app");
  work(db);
  ck_assert(sqlenvfs_archiver_sync(a, NULL, 0, &error));
  ck_assert_no_error(error);
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
}

static void
teardown(void)
{
  g_clear_pointer(&root, sqlenvfs_root_free);
  g_free(db_path);
  db_path = NULL;
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static char *
archive_dir(void)
{
  return g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), "app", NULL);
}

/* The COMMIT records of the archive, in order (SqlenvfsArchiveEntry). */
static GArray *
commits(void)
{
  g_autofree char *dir = archive_dir();
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;
  GArray *out = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));

  a = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    if (e->type == SQLENVFS_ARCHIVE_COMMIT)
      g_array_append_val(out, *e);
  }
  return out;
}

/* The whole content of @img. */
static GBytes *
image_bytes(SqlenvfsImage *img)
{
  gsize size = (gsize)sqlenvfs_image_size(img);
  guint8 *buf = g_malloc(MAX(size, 1));
  GError *error = NULL;
  ck_assert_int_eq(sqlenvfs_image_read(img, buf, size, 0, 0, &error), (gssize)size);
  ck_assert_no_error(error);
  return g_bytes_new_take(buf, size);
}

/* ------------------------------------------------------------------ */
/* States composed on states                                            */

/* Several segments (sealed ones with summaries, the last one not), and a
 * VACUUM that shrinks the database in the middle, then grows it again. */
static void
work_segments(sqlite3 *db)
{
  for (int k = 1; k <= 40; k++) {
    g_autofree char *sql = g_strdup_printf("INSERT INTO t VALUES (%d, randomblob(30000))", k);
    exec(db, sql);
  }
  exec(db, "DELETE FROM t WHERE k BETWEEN 5 AND 30");
  exec(db, "VACUUM");
  for (int k = 41; k <= 70; k++) {
    g_autofree char *upd = g_strdup_printf("UPDATE t SET b = randomblob(100) WHERE k = %d", k - 38);
    g_autofree char *ins = g_strdup_printf("INSERT INTO t VALUES (%d, randomblob(30000))", k);
    exec(db, upd);
    exec(db, ins);
  }
}

static void
setup_segments(void)
{
  make_root("[archive]\nsegment-max-bytes=1048576\n", work_segments);
}

START_TEST(test_image_after_is_restore)
{
  g_autoptr(GArray) cs = commits();
  g_autoptr(SqlenvfsTimeline) tl = NULL;
  g_autoptr(SqlenvfsRestorePlan) p0 = NULL;
  g_autoptr(GPtrArray) states = g_ptr_array_new(); /* SqlenvfsImage *, newest last */
  g_autoptr(GArray) seqs = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autofree char *dir = archive_dir();
  SqlenvfsTime t;
  GError *error = NULL;
  guint n_checked = 0, n_segs;
  gboolean shrank = FALSE;

  tl = sqlenvfs_timeline_open(root, "app", &error);
  ck_assert_no_error(error);
  {
    g_autoptr(GPtrArray) windows = sqlenvfs_timeline_windows(tl);
    ck_assert_uint_eq(windows->len, 1);
    t = (SqlenvfsTime){ .us = ((SqlenvfsRestoreWindow *)windows->pdata[0])->from_us };
  }
  p0 = sqlenvfs_timeline_plan(tl, &t, &error);
  ck_assert_no_error(error);
  n_segs = sqlenvfs_archive_n_segments(sqlenvfs_timeline_archive(tl));
  ck_assert_uint_ge(n_segs, 3); /* sealed segments, and the last one */
  g_ptr_array_add(states, sqlenvfs_restore_image(root, p0, NULL, NULL, &error));
  ck_assert_no_error(error);
  g_array_append_val(seqs, p0->state_seq);

  /* State i composed on state i / 2 (the state at T1 for the first), so
   * that ranges of every length, across segments and the shrink, are
   * composed on images that were themselves composed. */
  for (guint i = 0; i < cs->len; i++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(cs, SqlenvfsArchiveEntry, i);
    g_autoptr(SqlenvfsRestorePlan) p = NULL;
    g_autoptr(SqlenvfsImage) want = NULL;
    g_autoptr(GBytes) got_bytes = NULL, want_bytes = NULL;
    guint below = states->len / 2;
    SqlenvfsImage *img;
    SqlenvfsTime te = { .us = e->time };

    if (e->seq <= p0->state_seq)
      continue;
    if (i > 0 && e->db_pages < g_array_index(cs, SqlenvfsArchiveEntry, i - 1).db_pages)
      shrank = TRUE;
    img = sqlenvfs_restore_image_after(sqlenvfs_timeline_archive(tl), states->pdata[below],
                                       g_array_index(seqs, guint64, below), e, &error);
    ck_assert_no_error(error);
    ck_assert_ptr_nonnull(img);
    g_ptr_array_add(states, img);
    g_array_append_val(seqs, e->seq);
    ck_assert_uint_eq(sqlenvfs_image_size(img), (guint64)e->db_pages * e->page_size);

    p = sqlenvfs_timeline_plan(tl, &te, &error);
    ck_assert_no_error(error);
    if (p->state_seq != e->seq)
      continue; /* captured in the microsecond of the next commit */
    want = sqlenvfs_restore_image(root, p, NULL, NULL, &error);
    ck_assert_no_error(error);
    got_bytes = image_bytes(img);
    want_bytes = image_bytes(want);
    ck_assert_msg(g_bytes_equal(got_bytes, want_bytes),
                  "the state after seq %" G_GUINT64_FORMAT " composed on the state after seq %"
                  G_GUINT64_FORMAT " differs from its restore",
                  e->seq, g_array_index(seqs, guint64, below));
    n_checked++;
  }
  ck_assert(shrank);
  ck_assert_uint_ge(n_checked, 60);

  /* Not a COMMIT, or before the state it is composed on: refused. */
  {
    const SqlenvfsArchiveEntry *last = &g_array_index(cs, SqlenvfsArchiveEntry, cs->len - 1);
    ck_assert_ptr_null(sqlenvfs_restore_image_after(sqlenvfs_timeline_archive(tl),
                                                    states->pdata[states->len - 1],
                                                    last->seq + 1, last, &error));
    ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID));
    g_clear_error(&error);
  }
  while (states->len > 0)
    sqlenvfs_image_free(g_ptr_array_steal_index(states, states->len - 1));
}
END_TEST

/* ------------------------------------------------------------------ */
/* The first commit after T1                                            */

/* The value of @sql (one integer) on the state a restore to @us builds. */
static gint64
value_at(gint64 us, const char *sql)
{
  SqlenvfsTime t = { .us = us };
  g_autoptr(SqlenvfsRestorePlan) p = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  g_autoptr(sqlite3) conn = NULL;
  GError *error = NULL;
  gint64 v = -1;

  p = sqlenvfs_restore_plan(root, "app", &t, &error);
  ck_assert_no_error(error);
  img = sqlenvfs_restore_image(root, p, NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_imagevfs_open(img, "state", &conn, &error));
  ck_assert(sqlenvfs_db_query_int(conn, sql, &v, "state", &error));
  ck_assert_no_error(error);
  return v;
}

START_TEST(test_first_candidate)
{
  g_autoptr(GArray) cs = commits();
  g_autoptr(SqlenvfsBisectResult) r = NULL;
  const SqlenvfsArchiveEntry *c1 = NULL, *c2 = NULL;
  const char *sql = "SELECT count(*) FROM t WHERE k = 35";
  SqlenvfsTime from, to = { .is_latest = TRUE };
  GError *error = NULL;

  /* c2: the commit that inserted row 35 (a restore to it has the row, one
   * to the commit before it, c1, has not). */
  for (guint i = 1; i < cs->len && c2 == NULL; i++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(cs, SqlenvfsArchiveEntry, i);
    if (e->time > g_array_index(cs, SqlenvfsArchiveEntry, i - 1).time &&
        value_at(e->time, "SELECT count(*) FROM t WHERE k = 35") == 1) {
      c2 = e;
      c1 = &g_array_index(cs, SqlenvfsArchiveEntry, i - 1);
    }
  }
  ck_assert_ptr_nonnull(c2);
  ck_assert_int_eq(value_at(c1->time, sql), 0);
  ck_assert_uint_gt(c2->seq, c1->seq); /* a SEAL may lie between them */

  /* From T1 = c1: c2 is the first state searched, and the answer. */
  from = (SqlenvfsTime){ .us = c1->time };
  r = sqlenvfs_bisect_run(root, NULL, sql, &from, &to, NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(r->from_seq, c1->seq);
  ck_assert(r->is_found);
  ck_assert_uint_eq(r->seq, c2->seq); /* the first candidate, not skipped */
  ck_assert_int_eq(r->time_us, c2->time);
  ck_assert_str_eq(r->before, "0\n");
  ck_assert_str_eq(r->after, "1\n");
  ck_assert_uint_gt(r->n_commits, 30);
  ck_assert_uint_le(r->n_probes, 2 + g_bit_storage(r->n_commits - 1));
}
END_TEST

/* The first commit after T1 when a SEAL record (the end of a segment)
 * lies between T1's commit and it: the first state searched is the next
 * COMMIT, not the SEAL. */
START_TEST(test_first_candidate_after_seal)
{
  g_autofree char *dir = archive_dir();
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsBisectResult) r = NULL;
  const char *sql = "SELECT count(*), total(length(b)) FROM t";
  g_autofree char *q = g_strdup_printf("SELECT count(*) * 1000000000 + total(length(b)) FROM t");
  SqlenvfsArchiveEntry c1 = { 0 }, c2 = { 0 };
  SqlenvfsTime from, to = { .is_latest = TRUE };
  GError *error = NULL;
  guint n_seals = 0;

  a = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  /* The last SEAL with a COMMIT on each side whose states differ. */
  for (guint i = 1; i + 1 < sqlenvfs_archive_n_entries(a); i++) {
    const SqlenvfsArchiveEntry *prev = sqlenvfs_archive_entry(a, i - 1);
    const SqlenvfsArchiveEntry *seal = sqlenvfs_archive_entry(a, i);
    const SqlenvfsArchiveEntry *next = sqlenvfs_archive_entry(a, i + 1);
    if (seal->type != SQLENVFS_ARCHIVE_SEAL || prev->type != SQLENVFS_ARCHIVE_COMMIT ||
        next->type != SQLENVFS_ARCHIVE_COMMIT || prev->time == next->time)
      continue;
    n_seals++;
    if (value_at(prev->time, q) != value_at(next->time, q)) {
      c1 = *prev;
      c2 = *next;
    }
  }
  ck_assert_uint_ge(n_seals, 2);
  ck_assert_uint_ne(c2.seq, 0);
  ck_assert_uint_eq(c2.seq, c1.seq + 2);

  from = (SqlenvfsTime){ .us = c1.time };
  r = sqlenvfs_bisect_run(root, NULL, sql, &from, &to, NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(r->from_seq, c1.seq);
  ck_assert(r->is_found);
  ck_assert_uint_eq(r->seq, c2.seq);
  ck_assert_int_eq(r->time_us, c2.time);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Two commits in one microsecond                                       */

static void
work_rows(sqlite3 *db)
{
  for (int k = 1; k <= 40; k++) {
    g_autofree char *sql = g_strdup_printf("INSERT INTO t VALUES (%d, 'row %d')", k, k);
    exec(db, sql);
  }
}

static void
setup_rows(void)
{
  make_root("", work_rows);
}

/* Rewrite the archive with the same records, the COMMIT of seq @seq
 * captured in the microsecond of the COMMIT before it. */
typedef struct {
  guint64 seq;
  gint64 prev_commit_time;
} SameTime;

static void
same_time(SqlenvfsArchiveEntry *e, gpointer user)
{
  SameTime *st = user;
  if (e->seq == st->seq) {
    ck_assert_int_gt(e->time, st->prev_commit_time);
    e->time = st->prev_commit_time;
  }
  st->prev_commit_time = e->time;
}

static void
rewrite_same_time(guint64 seq)
{
  g_autofree char *dir = archive_dir();
  g_autofree char *old = g_build_filename(tmp, "archive-as-written", NULL);
  SameTime st = { seq, 0 };
  testutil_rewrite_archive(dir, old, 0, same_time, &st);
}

/* The seq bisect names for the commit that inserted row @k. */
static SqlenvfsBisectResult *
bisect_row(int k)
{
  g_autofree char *sql = g_strdup_printf("SELECT count(*) FROM t WHERE k = %d", k);
  SqlenvfsTime to = { .is_latest = TRUE };
  GError *error = NULL;
  SqlenvfsBisectResult *r = sqlenvfs_bisect_run(root, NULL, sql, NULL, &to, NULL, NULL, &error);
  ck_assert_no_error(error);
  ck_assert(r->is_found);
  return r;
}

START_TEST(test_same_microsecond)
{
  g_autoptr(SqlenvfsBisectResult) r10 = NULL, r11 = NULL, r12 = NULL, again = NULL;
  g_autoptr(GArray) cs = NULL;

  /* As written, rows 10 and 11 are two commits with two times. */
  r11 = bisect_row(11);
  rewrite_same_time(r11->seq);
  cs = commits();
  r10 = bisect_row(10);
  again = bisect_row(11);
  r12 = bisect_row(12);
  ck_assert_uint_eq(again->seq, r11->seq);
  ck_assert_uint_eq(r10->seq + 1, again->seq);
  ck_assert_uint_eq(again->seq + 1, r12->seq);
  ck_assert_int_eq(r10->time_us, again->time_us); /* one microsecond, two commits */
  ck_assert_int_lt(again->time_us, r12->time_us);
  ck_assert_str_eq(r10->before, "0\n");
  ck_assert_str_eq(r10->after, "1\n");
  ck_assert_str_eq(again->before, "0\n");
  ck_assert_str_eq(again->after, "1\n");
  ck_assert_uint_eq(again->n_commits, r10->n_commits);
  /* Every commit is a state: none merged with its neighbour. */
  {
    guint n = 0;
    for (guint i = 0; i < cs->len; i++)
      if (g_array_index(cs, SqlenvfsArchiveEntry, i).seq > again->from_seq)
        n++;
    ck_assert_uint_eq(again->n_commits, n);
  }
}
END_TEST

static Suite *
bisect_suite(void)
{
  Suite *s = suite_create("bisect");
  TCase *tc = tcase_create("segments");
  tcase_add_checked_fixture(tc, setup_segments, teardown);
  tcase_add_test(tc, test_image_after_is_restore);
  tcase_add_test(tc, test_first_candidate);
  tcase_add_test(tc, test_first_candidate_after_seal);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tc = tcase_create("rows");
  tcase_add_checked_fixture(tc, setup_rows, teardown);
  tcase_add_test(tc, test_same_microsecond);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(bisect_suite());
}
