/* Unit tests for liveview: pinned states are consistent while another
 * process commits, checkpoints and restarts the WAL. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/util.h"

static char *tmp;
static char *dbpath;

static void
setup(void)
{
  GError *error = NULL;
  g_autoptr(sqlite3) db = NULL;
  tmp = testutil_tmpdir();
  dbpath = g_build_filename(tmp, "live.db", NULL);
  db = sqlenvfs_db_open(dbpath, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db,
                             "PRAGMA journal_mode=WAL;"
                             "CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB);"
                             "CREATE TABLE u(id INTEGER PRIMARY KEY, total INTEGER, big BLOB);"
                             "INSERT INTO u VALUES(1, 0, NULL);",
                             dbpath, &error));
}

static void
teardown(void)
{
  g_free(dbpath);
  testutil_tmpdir_cleanup(tmp);
}

/* Child: commit numbered transactions until killed. Each transaction adds
 * row n to t and sets u.total = n, so a consistent state has
 * count(t) == max(t.n) == u.total. Checkpoints of every kind happen along the
 * way, and autocheckpoint is small, so the WAL restarts often. */
/* The writer's busy handler: retry every millisecond, for up to 10 s. A
 * RESTART or TRUNCATE checkpoint waits until no reader is in the WAL, and
 * the test pins again 15 ms after each view ends; SQLite's own handler
 * sleeps up to 100 ms between tries and, on a loaded machine, missed
 * those gaps for seconds at a time. */
static int
retry_every_ms(void *arg, int count)
{
  (void)arg;
  g_usleep(1000);
  return count < 10000;
}

static void
writer_main(void)
{
  sqlite3 *db = sqlenvfs_db_open(dbpath, 0, NULL);
  if (db == NULL)
    _exit(3);
  sqlite3_busy_handler(db, retry_every_ms, NULL);
  sqlite3_exec(db, "PRAGMA wal_autocheckpoint=40", NULL, NULL, NULL);
  for (int i = 1;; i++) {
    char sql[400];
    g_snprintf(sql, sizeof sql,
               "BEGIN; INSERT INTO t VALUES(%d, randomblob(%d));"
               "UPDATE u SET total=%d, big=CASE WHEN %d %% 25 = 0 THEN randomblob(20000) "
               "ELSE big END; COMMIT;",
               i, i % 10 == 0 ? 6000 : 150, i, i);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      i--;
      continue;
    }
    if (i % 53 == 0)
      sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    else if (i % 31 == 0)
      sqlite3_exec(db, "PRAGMA wal_checkpoint(RESTART)", NULL, NULL, NULL);
  }
}

typedef struct {
  gint64 count, max, total;
} State;

static void
query_state(sqlite3 *db, const char *path, State *s)
{
  GError *error = NULL;
  ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t", &s->count, path, &error));
  ck_assert(sqlenvfs_db_query_int(db, "SELECT coalesce(max(n),0) FROM t", &s->max, path, &error));
  ck_assert(sqlenvfs_db_query_int(db, "SELECT total FROM u", &s->total, path, &error));
  ck_assert_no_error(error);
}

/* Write the view's image to a file, check it, and return its state. */
static void
materialize_and_check(SqlenvfsLiveView *view, const char *out, State *s)
{
  GError *error = NULL;
  int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
  g_autofree char *uri = g_strdup_printf("file:%s?immutable=1", out);
  g_autoptr(sqlite3) db = NULL;

  ck_assert(sqlenvfs_image_write_to_fd(sqlenvfs_live_view_image(view), fd, NULL, NULL, NULL, out,
                                       &error));
  ck_assert_no_error(error);
  close(fd);
  db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &error);
  ck_assert_no_error(error);
  ck_assert_msg(sqlenvfs_db_check(db, FALSE, out, &error), "%s", error ? error->message : "");
  query_state(db, out, s);
}

START_TEST(test_consistent_under_writer)
{
  pid_t pid = fork();
  g_autofree char *out = g_build_filename(tmp, "copy.db", NULL);
  gint64 last = -1;
  int n_overlaid = 0, n_new_wal = 0, status;
  guint32 last_salt1 = 0;

  gint64 deadline = g_get_monotonic_time() + 90 * G_USEC_PER_SEC;

  if (pid == 0)
    writer_main();
  /* Pin at least 40 times, and go on (on a slow machine) until the writer
   * has crossed many checkpoints, some pins overlaid WAL frames and some
   * found the WAL restarted since the pin before. */
  for (int k = 0; k < 40 || last <= 200 || n_overlaid == 0 || n_new_wal < 2; k++) {
    ck_assert_msg(g_get_monotonic_time() < deadline,
                  "writer too slow: %d rows, %d overlaid, %d restarted WALs", (int)last,
                  n_overlaid, n_new_wal);
    GError *error = NULL;
    g_autoptr(SqlenvfsLiveView) view = sqlenvfs_live_view_open(dbpath, &error);
    State seen, copied;
    ck_assert_msg(view != NULL, "%s", error ? error->message : "");
    ck_assert_str_eq(sqlenvfs_live_view_journal_mode(view), "wal");
    /* What SQLite sees in the pinned transaction ... */
    query_state(sqlenvfs_live_view_db(view), dbpath, &seen);
    ck_assert_int_eq(seen.count, seen.max);
    ck_assert_int_eq(seen.total, seen.max);
    /* ... is exactly what the image holds, even after the writer moved on. */
    g_usleep(20 * 1000);
    materialize_and_check(view, out, &copied);
    ck_assert_int_eq(copied.count, seen.count);
    ck_assert_int_eq(copied.max, seen.max);
    ck_assert_int_eq(copied.total, seen.total);
    ck_assert_int_ge(seen.max, last);
    last = seen.max;
    if (sqlenvfs_live_view_pos(view)->frame != 0) {
      n_overlaid++;
      if (last_salt1 != 0 && sqlenvfs_live_view_pos(view)->salt1 != last_salt1)
        n_new_wal++;
      last_salt1 = sqlenvfs_live_view_pos(view)->salt1;
    }
    g_usleep(15 * 1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  ck_assert_int_gt(last, 200);
  ck_assert_int_gt(n_overlaid, 0);
  ck_assert_int_ge(n_new_wal, 2);
}
END_TEST

START_TEST(test_checkpointed_wal_then_restart)
{
  /* The WAL is fully checkpointed when the view pins (reader slot 0); a
   * writer then restarts the WAL and overwrites its frames: the view must
   * still show the pinned state. */
  GError *error = NULL;
  g_autoptr(sqlite3) w = sqlenvfs_db_open(dbpath, 0, &error);
  g_autofree char *out = g_build_filename(tmp, "copy.db", NULL);
  g_autoptr(SqlenvfsLiveView) view = NULL;
  State copied;

  ck_assert(sqlenvfs_db_exec(w, "PRAGMA wal_autocheckpoint=0", dbpath, &error));
  for (int i = 1; i <= 30; i++) {
    g_autofree char *sql = g_strdup_printf(
        "BEGIN; INSERT INTO t VALUES(%d, randomblob(3000)); UPDATE u SET total=%d; COMMIT;", i, i);
    ck_assert(sqlenvfs_db_exec(w, sql, dbpath, &error));
  }
  ck_assert(sqlenvfs_db_exec(w, "PRAGMA wal_checkpoint(PASSIVE)", dbpath, &error));
  view = sqlenvfs_live_view_open(dbpath, &error);
  ck_assert_no_error(error);
  ck_assert_uint_gt(sqlenvfs_live_view_pos(view)->frame, 0);
  for (int i = 31; i <= 60; i++) {
    g_autofree char *sql = g_strdup_printf(
        "BEGIN; INSERT INTO t VALUES(%d, randomblob(3000)); UPDATE u SET total=%d; COMMIT;", i, i);
    ck_assert(sqlenvfs_db_exec(w, sql, dbpath, &error));
  }
  materialize_and_check(view, out, &copied);
  ck_assert_int_eq(copied.count, 30);
  ck_assert_int_eq(copied.total, 30);
}
END_TEST

START_TEST(test_rollback_journal_db)
{
  GError *error = NULL;
  g_autofree char *path = g_build_filename(tmp, "rj.db", NULL);
  g_autofree char *out = g_build_filename(tmp, "copy.db", NULL);
  g_autoptr(sqlite3) db = sqlenvfs_db_open(path, SQLENVFS_OPEN_CREATE, &error);
  g_autoptr(SqlenvfsLiveView) view = NULL;
  State s;

  ck_assert(sqlenvfs_db_exec(db,
                             "CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB);"
                             "CREATE TABLE u(id INTEGER PRIMARY KEY, total INTEGER, big BLOB);"
                             "INSERT INTO u VALUES(1, 7, NULL);"
                             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<7)"
                             " INSERT INTO t SELECT i, randomblob(900) FROM c;",
                             path, &error));
  view = sqlenvfs_live_view_open(path, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(sqlenvfs_live_view_journal_mode(view), "delete");
  ck_assert_uint_eq(sqlenvfs_live_view_pos(view)->frame, 0);
  materialize_and_check(view, out, &s);
  ck_assert_int_eq(s.count, 7);
  ck_assert_int_eq(s.total, 7);
}
END_TEST

START_TEST(test_missing_and_garbage)
{
  GError *error = NULL;
  g_autofree char *missing = g_build_filename(tmp, "nope.db", NULL);
  g_autofree char *junk = g_build_filename(tmp, "junk.db", NULL);

  ck_assert(sqlenvfs_live_view_open(missing, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  ck_assert(strstr(error->message, missing) != NULL);
  g_clear_error(&error);
  ck_assert(!g_file_test(missing, G_FILE_TEST_EXISTS));

  ck_assert(g_file_set_contents(junk, "this is not a database, not at all, no.................."
                                      "...............................................",
                                -1, NULL));
  ck_assert(sqlenvfs_live_view_open(junk, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, junk) != NULL);
  g_clear_error(&error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("liveview");
  TCase *tc = tcase_create("liveview");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 150);
  tcase_add_test(tc, test_consistent_under_writer);
  tcase_add_test(tc, test_checkpointed_wal_then_restart);
  tcase_add_test(tc, test_rollback_journal_db);
  tcase_add_test(tc, test_missing_and_garbage);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
