/* Unit tests for util: how the project opens databases, crc32. */
#include "testutil.h"

#include "sqlenvfs/util.h"

static char *tmp;
static char *path;

static void
setup(void)
{
  GError *error = NULL;
  sqlite3 *db;
  tmp = testutil_tmpdir();
  path = g_build_filename(tmp, "app.db", NULL);
  db = sqlenvfs_db_open(path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t (x)", path, &error));
  ck_assert_no_error(error);
  sqlite3_close(db);
}

static void
teardown(void)
{
  g_clear_pointer(&path, g_free);
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static int
no_ckpt_on_close(sqlite3 *db)
{
  int on = -1;
  ck_assert_int_eq(sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, -1, &on), SQLITE_OK);
  return on;
}

/* Which connections leave the WAL alone when they close. */
START_TEST(test_open_flags)
{
  static const struct {
    SqlenvfsOpenFlags flags;
    int no_ckpt;
  } cases[] = {
    { 0, 0 },
    { SQLENVFS_OPEN_MUST_EXIST, 0 },
    { SQLENVFS_OPEN_READONLY, 1 },
    { SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, 1 },
    { SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, 1 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    GError *error = NULL;
    g_autoptr(sqlite3) db = sqlenvfs_db_open(path, cases[i].flags, &error);
    ck_assert_no_error(error);
    ck_assert_msg(no_ckpt_on_close(db) == cases[i].no_ckpt, "flags 0x%x", cases[i].flags);
  }
}
END_TEST

/* The last connection to close leaves the WAL and its frames in place when
 * opened with SQLENVFS_OPEN_NO_CKPT_ON_CLOSE; without it, SQLite
 * checkpoints and deletes the WAL. */
static gboolean
wal_survives_close(SqlenvfsOpenFlags flags)
{
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  GError *error = NULL;
  sqlite3 *db = sqlenvfs_db_open(path, flags, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (1)", path, &error));
  ck_assert(g_file_test(wal, G_FILE_TEST_EXISTS));
  sqlite3_close(db);
  return g_file_test(wal, G_FILE_TEST_EXISTS);
}

START_TEST(test_no_ckpt_on_close)
{
  ck_assert(wal_survives_close(SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE));
  ck_assert(!wal_survives_close(SQLENVFS_OPEN_MUST_EXIST));
}
END_TEST

/* crc32(A then B) from crc32(A), crc32(B) and B's length, for more
 * lengths than the operators kept (so that they are replaced), each twice
 * (so that a kept one is used), and for an empty B. */
START_TEST(test_crc32_combine)
{
  static const gsize lens[] = { 0, 1, 7, 8, 100, 4096, 4104, 65536, 65537, 100000,
                                262144, 3, 5000, 12, 4096, 1, 65536, 131072, 9 };
  g_autofree guint8 *buf = g_malloc(400000);
  guint32 seed = 1;
  for (gsize i = 0; i < 400000; i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (guint8)(seed >> 16);
  }
  for (int round = 0; round < 2; round++)
    for (guint k = 0; k < G_N_ELEMENTS(lens); k++) {
      gsize a = 1000 + 37 * k, b = lens[k];
      guint32 whole = sqlenvfs_crc32(0, buf, a + b);
      guint32 got = sqlenvfs_crc32_combine(sqlenvfs_crc32(0, buf, a),
                                           sqlenvfs_crc32(0, buf + a, b), b);
      ck_assert_msg(got == whole, "length %zu: 0x%08x, want 0x%08x", b, got, whole);
    }
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("util");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_open_flags);
  tcase_add_test(tc, test_no_ckpt_on_close);
  tcase_add_test(tc, test_crc32_combine);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
