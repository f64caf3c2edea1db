/* Unit tests for imagevfs: a state read through the VFS answers queries as
 * the materialized file does; writes are refused; reads are counted. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/imagevfs.h"
#include "sqlenvfs/util.h"

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

/* A WAL-mode database (header bytes 18/19 = 2, as production's are) with
 * rows of every kind, overflow pages and a WITHOUT ROWID table. */
static char *
make_db(const char *name)
{
  char *path = g_build_filename(tmp, name, NULL);
  sqlite3 *db = NULL;

  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  testutil_exec(db, "PRAGMA journal_mode=WAL;"
           "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);"
           "CREATE INDEX t_a ON t(a);"
           "CREATE TABLE kv(k TEXT, j INT, v, PRIMARY KEY(k, j)) WITHOUT ROWID;"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500)"
           " INSERT INTO t SELECT i, 'row ' || i, i / 3.0,"
           "   CASE WHEN i % 50 = 0 THEN randomblob(5000) ELSE randomblob(20) END FROM n;"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200)"
           " INSERT INTO kv SELECT 'k' || (i % 17), i, i * 2 FROM n;"
           "PRAGMA wal_checkpoint(TRUNCATE);");
  sqlite3_close(db);
  return path;
}

static char *
query_text(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  GString *s = g_string_new(NULL);
  int rc;

  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const guint8 *b = sqlite3_column_blob(st, i);
      int n = sqlite3_column_bytes(st, i);
      g_string_append_printf(s, "%d:", sqlite3_column_type(st, i));
      for (int k = 0; k < n; k++)
        g_string_append_printf(s, "%02x", b[k]);
      g_string_append_c(s, '|');
    }
    g_string_append_c(s, '\n');
  }
  ck_assert_int_eq(rc, SQLITE_DONE);
  sqlite3_finalize(st);
  return g_string_free(s, FALSE);
}

static SqlenvfsImage *
image_of(const char *path)
{
  GError *error = NULL;
  SqlenvfsFileSource *src = sqlenvfs_file_source_open(path, &error);
  struct stat sb;

  ck_assert_no_error(error);
  ck_assert_int_eq(stat(path, &sb), 0);
  return sqlenvfs_image_new(4096, (guint32) (sb.st_size / 4096), sqlenvfs_file_source_read, src,
                            sqlenvfs_file_source_close);
}

static const char *const queries[] = {
  "SELECT * FROM t ORDER BY id",
  "SELECT a, count(*) FROM t GROUP BY a ORDER BY a DESC",
  "SELECT * FROM kv ORDER BY k, j",
  "SELECT * FROM sqlite_schema",
  "SELECT sum(length(c)) FROM t",
};

/* An image overlaid with the pages that a later change wrote reads as the
 * file after the change. */
START_TEST(test_query_equals_file)
{
  g_autofree char *base = make_db("base.db");
  g_autofree char *later = g_build_filename(tmp, "later.db", NULL);
  g_autofree char *copy = g_build_filename(tmp, "copy.db", NULL);
  g_autofree guint8 *a = NULL, *b = NULL;
  gsize na, nb;
  g_autoptr(SqlenvfsImage) img = NULL;
  sqlite3 *db = NULL, *file = NULL;
  GError *error = NULL;
  guint id, n_set = 0;
  SqlenvfsImagevfsStats st = { 0 };

  ck_assert(g_file_get_contents(base, (char **) &a, &na, NULL));
  ck_assert(g_file_set_contents(later, (char *) a, (gssize) na, NULL));
  ck_assert_int_eq(sqlite3_open(later, &file), SQLITE_OK);
  testutil_exec(file, "PRAGMA journal_mode=WAL;"
             "UPDATE t SET a = 'changed' WHERE id % 7 = 0;"
             "DELETE FROM t WHERE id BETWEEN 100 AND 150;"
             "INSERT INTO t(id, a, c) VALUES (1000, 'new', randomblob(9000));"
             "DELETE FROM kv WHERE j % 3 = 0;"
             "CREATE TABLE added(x);"
             "PRAGMA wal_checkpoint(TRUNCATE);");
  sqlite3_close(file);
  ck_assert(g_file_get_contents(later, (char **) &b, &nb, NULL));

  /* base file + the pages that differ, from the later file */
  img = image_of(base);
  {
    SqlenvfsFileSource *src = sqlenvfs_file_source_open(later, &error);
    ck_assert_no_error(error);
    id = sqlenvfs_image_add_source(img, sqlenvfs_file_source_read, src,
                                   sqlenvfs_file_source_close);
  }
  for (gsize off = 0; off < nb; off += 4096)
    if (off >= na || memcmp(a + off, b + off, 4096) != 0) {
      sqlenvfs_image_set_page(img, (guint32) (off / 4096) + 1, id, (goffset) off);
      n_set++;
    }
  ck_assert_uint_gt(n_set, 0);
  sqlenvfs_image_set_n_pages(img, (guint32) (nb / 4096));

  /* the later file itself, read by SQLite from a copy */
  ck_assert(g_file_set_contents(copy, (char *) b, (gssize) nb, NULL));
  ck_assert_int_eq(sqlite3_open_v2(copy, &file, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  ck_assert(sqlenvfs_imagevfs_open(img, "test image", &db, &error));
  ck_assert_no_error(error);
  for (guint i = 0; i < G_N_ELEMENTS(queries); i++) {
    g_autofree char *want = query_text(file, queries[i]);
    g_autofree char *got = query_text(db, queries[i]);
    ck_assert_msg(strlen(want) > 0, "%s returned nothing", queries[i]);
    ck_assert_str_eq(got, want);
  }
  {
    /* it reads as a rollback-journal database, though the file is in WAL mode */
    g_autofree char *mode = query_text(db, "PRAGMA journal_mode");
    g_autofree char *file_mode = query_text(file, "PRAGMA journal_mode");
    ck_assert_str_eq(file_mode, "3:77616c|\n"); /* "wal" */
    ck_assert_str_eq(mode, "3:64656c657465|\n"); /* "delete" */
  }
  {
    g_autofree char *ok = query_text(db, "PRAGMA integrity_check");
    ck_assert_str_eq(ok, "3:6f6b|\n"); /* "ok" */
  }
  ck_assert(sqlenvfs_imagevfs_stats(db, "main", &st));
  ck_assert_uint_gt(st.n_reads, 0);
  ck_assert_uint_ge(st.n_bytes, st.n_reads * 100);
  ck_assert(!sqlenvfs_imagevfs_stats(db, "nosuch", &st));
  sqlite3_close(db);
  sqlite3_close(file);
}
END_TEST

/* Writes to the image are refused; temporary tables are allowed; the
 * base file is unchanged. */
START_TEST(test_writes_refused)
{
  g_autofree char *base = make_db("base.db");
  g_autofree char *before = NULL, *after = NULL;
  gsize n1, n2;
  g_autoptr(SqlenvfsImage) img = image_of(base);
  sqlite3 *db = NULL;
  GError *error = NULL;
  static const char *const writes[] = {
    "INSERT INTO t(a) VALUES ('x')", "UPDATE t SET a = 'y'", "DELETE FROM kv",
    "CREATE TABLE z(x)", "DROP TABLE t", "PRAGMA user_version = 7", "VACUUM",
  };

  ck_assert(g_file_get_contents(base, &before, &n1, NULL));
  ck_assert(sqlenvfs_imagevfs_open(img, "test image", &db, &error));
  for (guint i = 0; i < G_N_ELEMENTS(writes); i++) {
    int rc = sqlite3_exec(db, writes[i], NULL, NULL, NULL);
    ck_assert_msg(rc != SQLITE_OK, "%s was allowed", writes[i]);
  }
  ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO t(a) VALUES ('x')", NULL, NULL, NULL),
                   SQLITE_READONLY);
  testutil_exec(db, "CREATE TEMP TABLE k(x); INSERT INTO temp.k SELECT id FROM t;");
  {
    g_autofree char *n = query_text(db, "SELECT count(*) FROM temp.k");
    ck_assert_str_eq(n, "1:353030|\n"); /* 500 */
  }
  sqlite3_close(db);
  ck_assert(g_file_get_contents(base, &after, &n2, NULL));
  ck_assert_uint_eq(n1, n2);
  ck_assert(memcmp(before, after, n1) == 0);
  {
    g_autofree char *wal = g_strconcat(base, "-wal", NULL);
    g_autofree char *journal = g_strconcat(base, "-journal", NULL);
    ck_assert(!g_file_test(journal, G_FILE_TEST_EXISTS));
    (void) wal;
  }
}
END_TEST

/* Two states in one connection: ATTACH. */
START_TEST(test_attach)
{
  g_autofree char *p1 = make_db("one.db");
  g_autofree char *p2 = make_db("two.db");
  g_autoptr(SqlenvfsImage) i1 = image_of(p1);
  g_autoptr(SqlenvfsImage) i2 = image_of(p2);
  sqlite3 *db = NULL;
  GError *error = NULL;
  SqlenvfsImagevfsStats st;

  ck_assert(sqlenvfs_imagevfs_open(i1, "one", &db, &error));
  ck_assert(sqlenvfs_imagevfs_attach(db, i2, "two", "aux", &error));
  ck_assert_no_error(error);
  {
    g_autofree char *n = query_text(db, "SELECT count(*) FROM main.t JOIN aux.t USING (id)");
    ck_assert_str_eq(n, "1:353030|\n");
  }
  ck_assert(sqlenvfs_imagevfs_stats(db, "aux", &st));
  ck_assert_uint_gt(st.n_reads, 0);
  ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM aux.t", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}
END_TEST

/* An image that is not a database is refused with an error naming it. */
START_TEST(test_not_a_database)
{
  g_autofree char *path = g_build_filename(tmp, "junk", NULL);
  g_autofree char *junk = g_strnfill(8192, 'x');
  g_autoptr(SqlenvfsImage) img = NULL;
  sqlite3 *db = NULL;
  GError *error = NULL;

  ck_assert(g_file_set_contents(path, junk, 8192, NULL));
  img = image_of(path);
  ck_assert(!sqlenvfs_imagevfs_open(img, "junk state", &db, &error));
  ck_assert(db == NULL);
  ck_assert_ptr_nonnull(error);
  ck_assert_msg(strstr(error->message, "junk state") != NULL, "%s", error->message);
  g_error_free(error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("imagevfs");
  TCase *tc = tcase_create("imagevfs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_query_equals_file);
  tcase_add_test(tc, test_writes_refused);
  tcase_add_test(tc, test_attach);
  tcase_add_test(tc, test_not_a_database);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
