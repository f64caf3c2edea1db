/* Unit tests for readvfs: every read returns what the default VFS returns
 * (short reads at the end included), a check through it finds what the
 * default VFS finds, and a reader going through the file makes few reads. */
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/readvfs.h"
#include "sqlenvfs/util.h"

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

/* A database of some megabytes: a table filled in order with overflow
 * chains, one filled in random order, an index. */
static char *
make_db(void)
{
  char *path = g_build_filename(tmp, "t.db", NULL);
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  testutil_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=DELETE;"
           "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);"
           "CREATE TABLE r(k INTEGER PRIMARY KEY, v TEXT);"
           "CREATE INDEX r_v ON r(v);"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300)"
           " INSERT INTO big SELECT i, randomblob(20000) FROM n;"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20000)"
           " INSERT OR IGNORE INTO r SELECT abs(random()) % 1000000, hex(randomblob(20)) FROM n;");
  sqlite3_close(db);
  return path;
}

static char *
check_with(const char *path, const char *vfs)
{
  g_autofree char *immutable = sqlenvfs_db_uri_immutable(path);
  g_autofree char *uri = vfs ? g_strconcat(immutable, "&vfs=", vfs, NULL) : g_strdup(immutable);
  GError *error = NULL;
  g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &error);
  char *res = NULL;
  ck_assert_msg(db != NULL, "%s", error ? error->message : "");
  if (sqlite3_exec(db, "PRAGMA integrity_check", NULL, NULL, NULL) != SQLITE_OK) {
    res = g_strdup_printf("error: %s", sqlite3_errmsg(db));
  } else {
    g_autoptr(GError) e2 = NULL;
    if (!sqlenvfs_db_query_text(db, "PRAGMA integrity_check", &res, path, &e2))
      res = g_strdup_printf("error: %s", e2->message);
  }
  return res;
}

/* Invariant 1, at the VFS: reads of every size at every kind of offset,
 * forwards, backwards and at random, past the end included, return the
 * default VFS's result code and bytes. */
START_TEST(test_reads_equal_default)
{
  g_autofree char *path = make_db();
  sqlite3_vfs *ra, *def = sqlite3_vfs_find(NULL);
  sqlite3_file *a, *b;
  struct stat st;
  GRand *rnd = g_rand_new_with_seed(7);
  int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB;

  ck_assert(sqlenvfs_readvfs_register(NULL));
  ra = sqlite3_vfs_find(SQLENVFS_READVFS_NAME);
  ck_assert_ptr_nonnull(ra);
  ck_assert_int_eq(stat(path, &st), 0);
  /* A size that is not a multiple of the page size: the last block is short. */
  ck_assert_int_eq(truncate(path, st.st_size - 1000), 0);
  st.st_size -= 1000;
  a = g_malloc0((gsize) ra->szOsFile);
  b = g_malloc0((gsize) def->szOsFile);
  ck_assert_int_eq(ra->xOpen(ra, path, a, flags, NULL), SQLITE_OK);
  ck_assert_int_eq(def->xOpen(def, path, b, flags, NULL), SQLITE_OK);
  for (int i = 0; i < 20000; i++) {
    guint8 x[8192], y[8192];
    int amt = (int) (g_rand_boolean(rnd) ? 4096 : g_rand_int_range(rnd, 1, 8192));
    sqlite3_int64 off;
    switch (i / 2000 % 4) {
    case 0: off = (sqlite3_int64) (i % 2000) * 4096; break;                    /* forwards  */
    case 1: off = st.st_size - 4096 - (sqlite3_int64) (i % 2000) * 4096; break; /* backwards */
    case 2: off = (sqlite3_int64) g_rand_int_range(rnd, 0, (gint32) st.st_size + 9000); break;
    default: off = st.st_size - g_rand_int_range(rnd, 0, 20000); break;        /* the end   */
    }
    if (off < 0)
      off = 0;
    memset(x, 0xa5, sizeof x);
    memset(y, 0x5a, sizeof y);
    int ra_rc = a->pMethods->xRead(a, x, amt, off);
    int def_rc = b->pMethods->xRead(b, y, amt, off);
    ck_assert_msg(ra_rc == def_rc, "read %d at %lld: %d, the default VFS %d", amt,
                  (long long) off, ra_rc, def_rc);
    ck_assert_msg(memcmp(x, y, (size_t) amt) == 0, "read %d at %lld: other bytes", amt,
                  (long long) off);
  }
  a->pMethods->xClose(a);
  b->pMethods->xClose(b);
  g_free(a);
  g_free(b);
  g_rand_free(rnd);
}
END_TEST

/* The check through the VFS says what it says through the default one:
 * ok on a good file, the same complaint on a damaged one, and on a cut
 * one. And it reads the good file in far fewer calls than pages. */
START_TEST(test_check_equals_default)
{
  g_autofree char *path = make_db();
  g_autofree char *good = NULL, *good_def = NULL;
  SqlenvfsReadvfsStats s0, s1;
  struct stat st;

  ck_assert(sqlenvfs_readvfs_register(NULL));
  good = check_with(path, SQLENVFS_READVFS_NAME);
  good_def = check_with(path, NULL);
  ck_assert_str_eq(good, "ok");
  ck_assert_str_eq(good_def, "ok");
  ck_assert_int_eq(stat(path, &st), 0);

  /* Going through the table filled in order (its overflow chains): a read
   * of the file for many asked. */
  {
    g_autofree char *immutable = sqlenvfs_db_uri_immutable(path);
    g_autofree char *uri = g_strconcat(immutable, "&vfs=" SQLENVFS_READVFS_NAME, NULL);
    g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, NULL);
    gint64 n = 0;
    ck_assert_ptr_nonnull(db);
    sqlenvfs_readvfs_stats(&s0);
    ck_assert(sqlenvfs_db_query_int(db, "SELECT sum(length(hex(b))) FROM big", &n, path, NULL));
    sqlenvfs_readvfs_stats(&s1);
    ck_assert_int_eq(n, 300 * 40000);
  }
  ck_assert_msg(s1.n_asked - s0.n_asked >= 300 * 20000 / 4096,
                "%" G_GUINT64_FORMAT " reads asked", s1.n_asked - s0.n_asked);
  ck_assert_msg((s1.n_file - s0.n_file) * 8 < s1.n_asked - s0.n_asked,
                "%" G_GUINT64_FORMAT " reads of the file for %" G_GUINT64_FORMAT " asked",
                s1.n_file - s0.n_file, s1.n_asked - s0.n_asked);

  /* Damage: bytes in the middle of the file (pages of both tables). */
  {
    int fd = open(path, O_WRONLY);
    guint8 junk[6000];
    memset(junk, 0x37, sizeof junk);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, junk, sizeof junk, st.st_size / 2 + 123), (ssize_t) sizeof junk);
    ck_assert_int_eq(pwrite(fd, junk, 200, st.st_size - 3 * 4096 + 50), 200);
    close(fd);
  }
  g_autofree char *bad = check_with(path, SQLENVFS_READVFS_NAME);
  g_autofree char *bad_def = check_with(path, NULL);
  ck_assert_str_ne(bad, "ok");
  ck_assert_str_eq(bad, bad_def);

  /* Cut short in the middle of a page. */
  ck_assert_int_eq(truncate(path, st.st_size - 5000), 0);
  g_autofree char *cut = check_with(path, SQLENVFS_READVFS_NAME);
  g_autofree char *cut_def = check_with(path, NULL);
  ck_assert_str_ne(cut, "ok");
  ck_assert_str_eq(cut, cut_def);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("readvfs");
  TCase *tc = tcase_create("readvfs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_reads_equal_default);
  tcase_add_test(tc, test_check_equals_default);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
