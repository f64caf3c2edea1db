/* Unit tests for doctor: /proc/locks parsing, finding the archiver's lock
 * holder without taking the lock, the SQLite bug table, report bookkeeping,
 * the backup age against an injected clock, and the JSON summary. */
#include "testutil.h"

#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/util.h"

static char *tmp;

static void
setup(void)
{
  tmp = testutil_tmpdir();
}

static void
teardown(void)
{
  testutil_clock_reset();
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

START_TEST(test_parse_locks)
{
  const char *text = "1: POSIX  ADVISORY  WRITE 9709 fe:00:10953236 120 120\n"
                     "2: FLOCK  ADVISORY  WRITE 812 00:2d:77 0 EOF\n"
                     "3: -> POSIX  ADVISORY  WRITE 9710 fe:00:10953236 120 120\n"
                     "4: OFDLCK ADVISORY  READ  -1 08:11:5 1073741826 1073742335\n"
                     "5: LEASE  ACTIVE    READ 4 00:10:9 0 EOF\n"
                     "garbage line\n";
  g_autoptr(GArray) locks = sqlenvfs_doctor_parse_locks(text);
  const SqlenvfsProcLock *l;

  ck_assert_int_eq(locks->len, 4);
  l = &g_array_index(locks, SqlenvfsProcLock, 0);
  ck_assert(l->is_posix && l->is_write && !l->is_waiting);
  ck_assert_int_eq(l->pid, 9709);
  ck_assert_uint_eq(l->dev_major, 0xfe);
  ck_assert_uint_eq(l->dev_minor, 0);
  ck_assert_uint_eq(l->ino, 10953236);
  ck_assert_uint_eq(l->start, 120);
  ck_assert_uint_eq(l->end, 120);
  l = &g_array_index(locks, SqlenvfsProcLock, 1);
  ck_assert(!l->is_posix);
  ck_assert_uint_eq(l->dev_minor, 0x2d);
  ck_assert(l->end == G_MAXUINT64);
  l = &g_array_index(locks, SqlenvfsProcLock, 2);
  ck_assert(l->is_waiting);
  ck_assert_int_eq(l->pid, 9710);
  l = &g_array_index(locks, SqlenvfsProcLock, 3);
  ck_assert(l->is_posix && !l->is_write);
  ck_assert_int_eq(l->pid, -1);
  ck_assert_uint_eq(l->dev_major, 8);
  ck_assert_uint_eq(l->dev_minor, 0x11);
  ck_assert_uint_eq(l->start, 1073741826);
}
END_TEST

START_TEST(test_lock_holder)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autofree char *lock = NULL;
  int pipefd[2];
  pid_t child;
  char c;
  int holder, fd;

  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  lock = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), "archiver.lock", NULL);
  ck_assert_int_eq(sqlenvfs_doctor_lock_holder(lock, &error), 0); /* no file yet */
  ck_assert_no_error(error);

  ck_assert_int_eq(pipe(pipefd), 0);
  child = fork();
  if (child == 0) {
    int lfd = sqlenvfs_root_lock(root, "archiver", FALSE, NULL);
    char ok = lfd >= 0 ? 'y' : 'n';
    ck_assert_int_eq(write(pipefd[1], &ok, 1), 1);
    pause();
    _exit(0);
  }
  ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
  ck_assert_int_eq(c, 'y');
  holder = sqlenvfs_doctor_lock_holder(lock, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(holder, child);
  /* Asking did not take the lock: it is still the child's. */
  fd = sqlenvfs_root_lock(root, "archiver", FALSE, &error);
  ck_assert_int_lt(fd, 0);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_BUSY);
  g_clear_error(&error);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  ck_assert_int_eq(sqlenvfs_doctor_lock_holder(lock, &error), 0);
  close(pipefd[0]);
  close(pipefd[1]);
}
END_TEST

START_TEST(test_sqlite_bugs)
{
  static const struct {
    int version;
    gboolean affected;
  } cases[] = {
    { 3006023, FALSE }, /* before WAL existed */
    { 3007000, TRUE },  { 3040001, TRUE },  { 3044005, TRUE },  { 3044006, FALSE },
    { 3045000, TRUE },  { 3050006, TRUE },  { 3050007, FALSE }, { 3051000, TRUE },
    { 3051002, TRUE },  { 3051003, FALSE }, { 3052000, FALSE }, { 3053000, FALSE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_auto(GStrv) bugs = sqlenvfs_doctor_sqlite_bugs(cases[i].version);
    gboolean has = g_strv_contains((const char *const *)bugs, "wal-reset");
    ck_assert_msg(has == cases[i].affected, "version %d: expected %s", cases[i].version,
                  cases[i].affected ? "affected" : "fixed");
  }
}
END_TEST

START_TEST(test_report_severity)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autoptr(SqlenvfsDoctorReport) run = NULL;
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(FALSE);
  g_autofree char *text = NULL;

  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  run = sqlenvfs_doctor_run(root, SQLENVFS_DOCTOR_NO_LOCK_WAIT, &error);
  ck_assert_no_error(error);
  /* No production database: a warning, not a failure. */
  ck_assert_int_eq(sqlenvfs_doctor_exit_status(run), 1);
  ck_assert_uint_eq(run->n_failures, 0);
  sqlenvfs_doctor_report_add(run, SQLENVFS_SEVERITY_FAILURE, "test", "root", NULL, "do \"this\"",
                             "found %d things", 3);
  ck_assert_int_eq(sqlenvfs_doctor_exit_status(run), 2);
  ck_assert_uint_eq(run->n_failures, 1);
  sqlenvfs_doctor_report_to_json(run, TRUE, j);
  text = sqlenvfs_json_finish(j);
  ck_assert_msg(strstr(text, "\"status\":\"failure\"") != NULL, "%s", text);
  ck_assert(strstr(text, "found 3 things") != NULL);
  ck_assert(strstr(text, "do \\\"this\\\"") != NULL);
  /* problems only: the summary lists no ok finding */
  ck_assert_msg(strstr(text, "\"severity\":\"ok\"") == NULL, "%s", text);
}
END_TEST

/* A production database and a backup whose age is judged by the injected
 * clock against backup-max-age-hours. */
START_TEST(test_backup_age)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autofree char *prod = NULL;
  g_autofree char *bdir = NULL, *bdb = NULL, *manifest = NULL;
  g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
  sqlite3 *db = NULL;
  gint64 t0 = G_GINT64_CONSTANT(1764288000) * G_USEC_PER_SEC; /* 2025-11-28T00:00:00Z */
  guint32 crc = 0;
  goffset size = 0;

  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  prod = sqlenvfs_root_prod_db(root, "app");
  ck_assert_int_eq(sqlite3_open(prod, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  /* A backup entry in the store's format (docs/STORE.md). */
  bdir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_DAILY), "20251128T000000Z", NULL);
  ck_assert(sqlenvfs_mkdir_p(bdir, 0755, &error));
  bdb = g_build_filename(bdir, "app.db", NULL);
  {
    g_autofree char *data = NULL;
    gsize len;
    ck_assert(g_file_get_contents(prod, &data, &len, NULL));
    ck_assert(g_file_set_contents(bdb, data, len, NULL));
  }
  ck_assert(sqlenvfs_file_crc32(bdb, &crc, &size, &error));
  manifest = g_build_filename(bdir, "MANIFEST", NULL);
  {
    g_autofree char *text = g_strdup_printf(
      "[sqlenvfs-copy]\nformat=1\nkind=backup\nname=20251128T000000Z\n"
      "created=2025-11-28T00:00:00Z\ncreated-us=%" G_GINT64_FORMAT "\nfinished-us=%" G_GINT64_FORMAT
      "\ndatabases=app;\n\n[db app]\nfile=app.db\nsize=%" G_GINT64_FORMAT "\ncrc32=0x%08x\n"
      "page-size=4096\npage-count=%" G_GINT64_FORMAT "\njournal-mode=wal\nwal-salt1=0\nwal-salt2=0\n"
      "wal-frame=0\nwal-cksum1=0\nwal-cksum2=0\nwal-ckpt-seq=0\npinned-at=2025-11-28T00:00:00Z\n"
      "pinned-at-us=%" G_GINT64_FORMAT "\n",
      t0, t0, (gint64)size, crc, (gint64)size / 4096, t0);
    ck_assert(g_file_set_contents(manifest, text, -1, NULL));
  }

  for (int pass = 0; pass < 2; pass++) {
    g_autoptr(SqlenvfsRoot) r2 = NULL;
    g_autoptr(SqlenvfsDoctorReport) rep = NULL;
    gboolean seen = FALSE;
    /* 25 h after the backup: fine with the default 26 h, stale with 24 h. */
    testutil_clock_set(t0 + G_GINT64_CONSTANT(25) * 3600 * G_USEC_PER_SEC);
    ck_assert(g_file_set_contents(conf, pass == 0 ? "" : "[doctor]\nbackup-max-age-hours=24\n", -1,
                                  NULL));
    r2 = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
    ck_assert_no_error(error);
    rep = sqlenvfs_doctor_run(r2, SQLENVFS_DOCTOR_NO_LOCK_WAIT, &error);
    ck_assert_no_error(error);
    for (guint i = 0; i < rep->findings->len; i++) {
      const SqlenvfsFinding *f = g_ptr_array_index(rep->findings, i);
      if (strcmp(f->check, "backup") != 0)
        continue;
      seen = TRUE;
      ck_assert_msg(f->severity == (pass == 0 ? SQLENVFS_SEVERITY_OK : SQLENVFS_SEVERITY_WARNING),
                    "pass %d: %s", pass, f->found);
      ck_assert(strstr(f->found, "25 h 0 min old") != NULL);
    }
    ck_assert(seen);
  }
}
END_TEST

static const SqlenvfsFinding *
find_finding(SqlenvfsDoctorReport *rep, const char *check, const char *subject)
{
  for (guint i = 0; i < rep->findings->len; i++) {
    const SqlenvfsFinding *f = g_ptr_array_index(rep->findings, i);
    if (strcmp(f->check, check) == 0 && (subject == NULL || strcmp(f->subject, subject) == 0))
      return f;
  }
  ck_abort_msg("no %s finding for %s", check, subject ? subject : "any subject");
  return NULL;
}

/* A big WAL whose frames are all checkpointed (backfilled) is not "checkpoints
 * not keeping up": only frames waiting for a checkpoint count. */
START_TEST(test_wal_backfilled_is_no_lag)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
  g_autofree char *prod = NULL;
  sqlite3 *db = NULL;

  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  ck_assert(g_file_set_contents(conf, "[archive]\ncheckpoint-pages=2\n", -1, NULL));
  prod = sqlenvfs_root_prod_db(root, "app");
  ck_assert_int_eq(sqlite3_open(prod, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                                    "CREATE TABLE t(x);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  for (int i = 0; i < 30; i++)
    ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO t VALUES (randomblob(3000))", NULL, NULL, NULL),
                     SQLITE_OK);
  for (int pass = 0; pass < 2; pass++) {
    g_autoptr(SqlenvfsRoot) r2 = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
    g_autoptr(SqlenvfsDoctorReport) rep = NULL;
    const SqlenvfsFinding *f;
    ck_assert_no_error(error);
    if (pass == 1) /* copy every frame into the file; the WAL stays as big */
      ck_assert_int_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL),
                       SQLITE_OK);
    rep = sqlenvfs_doctor_run(r2, SQLENVFS_DOCTOR_NO_LOCK_WAIT, &error);
    ck_assert_no_error(error);
    f = find_finding(rep, "wal", "prod/app");
    if (pass == 0) {
      ck_assert_msg(f->severity == SQLENVFS_SEVERITY_WARNING, "%s", f->found);
      ck_assert(strstr(f->found, "not keeping up") != NULL);
    } else {
      ck_assert_msg(f->severity == SQLENVFS_SEVERITY_OK, "%s", f->found);
      ck_assert_msg(strstr(f->found, ", 0 of them not yet checkpointed") != NULL, "%s", f->found);
    }
  }
  sqlite3_close(db);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("doctor");
  TCase *tc = tcase_create("doctor");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_parse_locks);
  tcase_add_test(tc, test_lock_holder);
  tcase_add_test(tc, test_sqlite_bugs);
  tcase_add_test(tc, test_wal_backfilled_is_no_lag);
  tcase_add_test(tc, test_report_severity);
  tcase_add_test(tc, test_backup_age);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
