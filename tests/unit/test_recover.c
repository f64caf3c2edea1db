/* Unit tests for recover: the rowid ranges in reports, method names, the
 * refusals that must leave every file as it was, and the salvage reading
 * past a damaged page. */
#include "testutil.h"

#include <sqlite3.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/recover.h"

static char *tmp;

static void
setup(void)
{
  tmp = testutil_tmpdir();
}

static void
teardown(void)
{
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

START_TEST(test_ranges)
{
  const gint64 a[] = { 1, 2, 3, 5, 7, 8, 100 };
  const gint64 b[] = { -3, -2, G_MAXINT64 };
  g_autofree char *s1 = sqlenvfs_recover_format_ranges(a, G_N_ELEMENTS(a), 20);
  g_autofree char *s2 = sqlenvfs_recover_format_ranges(a, G_N_ELEMENTS(a), 2);
  g_autofree char *s3 = sqlenvfs_recover_format_ranges(b, G_N_ELEMENTS(b), 20);
  g_autofree char *s4 = sqlenvfs_recover_format_ranges(a, 0, 20);

  ck_assert_str_eq(s1, "1-3, 5, 7-8, 100");
  ck_assert_str_eq(s2, "1-3, 5, ...");
  ck_assert_str_eq(s3, "-3..-2, 9223372036854775807");
  ck_assert(s4 == NULL);
}
END_TEST

START_TEST(test_method_names)
{
  SqlenvfsRecoverMethod m;
  ck_assert(sqlenvfs_recover_method_parse("salvage", &m) && m == SQLENVFS_RECOVER_SALVAGE);
  ck_assert(sqlenvfs_recover_method_parse("shell", &m) && m == SQLENVFS_RECOVER_SHELL);
  ck_assert(sqlenvfs_recover_method_parse("auto", &m) && m == SQLENVFS_RECOVER_AUTO);
  ck_assert(!sqlenvfs_recover_method_parse("Shell", &m));
  ck_assert(!sqlenvfs_recover_method_parse(NULL, &m));
  ck_assert_str_eq(sqlenvfs_recover_method_name(SQLENVFS_RECOVER_SALVAGE), "salvage");
}
END_TEST

START_TEST(test_refusals)
{
  g_autofree char *src = g_build_filename(tmp, "src.db", NULL);
  g_autofree char *out = g_build_filename(tmp, "out.db", NULL);
  g_autofree char *missing = g_build_filename(tmp, "missing.db", NULL);
  SqlenvfsRecoverOptions opts = { .method = SQLENVFS_RECOVER_SALVAGE };
  GError *error = NULL;
  sqlite3 *db = NULL;
  g_autofree char *data = NULL;
  g_autoptr(GDir) d = NULL;
  const char *ent;
  int n = 0;

  ck_assert_int_eq(sqlite3_open(src, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)", NULL, NULL,
                                NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  ck_assert(g_file_set_contents(out, "keep", -1, NULL));

  ck_assert(sqlenvfs_recover_run(src, out, &opts, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_EXISTS);
  ck_assert(strstr(error->message, "--force") != NULL);
  g_clear_error(&error);
  ck_assert(g_file_get_contents(out, &data, NULL, NULL));
  ck_assert_str_eq(data, "keep");

  ck_assert(sqlenvfs_recover_run(missing, out, &opts, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  g_clear_error(&error);

  opts.force = TRUE;
  ck_assert(sqlenvfs_recover_run(src, src, &opts, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_clear_error(&error);

  {
    g_autoptr(SqlenvfsRecoverReport) r = sqlenvfs_recover_run(src, out, &opts, &error);
    ck_assert_no_error(error);
    ck_assert_int_eq(r->method, SQLENVFS_RECOVER_SALVAGE);
    ck_assert_int_eq(r->tables->len, 1);
    ck_assert_int_eq(((SqlenvfsRecoveredTable *)g_ptr_array_index(r->tables, 0))->n_recovered, 2);
    ck_assert_int_eq(((SqlenvfsRecoveredTable *)g_ptr_array_index(r->tables, 0))->n_expected, 2);
    ck_assert_int_eq(r->damage->len, 0);
  }
  /* Only src.db and out.db remain: no work directory left behind. */
  d = g_dir_open(tmp, 0, NULL);
  while ((ent = g_dir_read_name(d)) != NULL) {
    ck_assert_msg(strcmp(ent, "src.db") == 0 || strcmp(ent, "out.db") == 0, "left: %s", ent);
    n++;
  }
  ck_assert_int_eq(n, 2);
}
END_TEST

#define N_ROWS 600
#define LOST_ROW 300

/* Rows (the sum of "a-b" and "a" ranges) in a missing_rowids text. */
static gint64
count_ranges(const char *text)
{
  g_auto(GStrv) parts = g_strsplit(text, ", ", -1);
  gint64 n = 0;
  for (guint i = 0; parts[i]; i++) {
    char *end = NULL;
    gint64 a = g_ascii_strtoll(parts[i], &end, 10), b = a;
    ck_assert_msg(end != parts[i], "not a range: %s", parts[i]);
    if (*end == '-')
      b = g_ascii_strtoll(end + 1, &end, 10);
    ck_assert_msg(*end == '\0' && b >= a, "not a range: %s", parts[i]);
    n += b - a + 1;
  }
  return n;
}

/* A rowid table with an index, one of whose leaf pages (the one holding row
 * LOST_ROW) is zeroed: the salvage copies every row before and after that
 * page, counts the rows expected from the index, names the missing rowids,
 * and leaves the source as it was. */
START_TEST(test_salvage_skips_damaged_page)
{
  g_autofree char *src = g_build_filename(tmp, "src.db", NULL);
  g_autofree char *out = g_build_filename(tmp, "out.db", NULL);
  g_autofree char *marker = g_strdup_printf("MARK-%05d-UNIQUE", LOST_ROW);
  g_autofree char *before = NULL, *after = NULL, *bytes = NULL;
  SqlenvfsRecoverOptions opts = { .method = SQLENVFS_RECOVER_SALVAGE };
  g_autoptr(SqlenvfsRecoverReport) r = NULL;
  const SqlenvfsRecoveredTable *t = NULL;
  GError *error = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *st;
  gsize len, len_after;
  const char *hit;
  gint64 n = 0, page;

  ck_assert_int_eq(sqlite3_open(src, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db,
                                "PRAGMA page_size=1024; "
                                "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload BLOB, "
                                "marker TEXT); CREATE INDEX t_name ON t(name); BEGIN",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?1, printf('name-%05d', ?1), "
                                          "zeroblob(200), printf('MARK-%05d-UNIQUE', ?1))",
                                      -1, &st, NULL),
                   SQLITE_OK);
  for (int i = 1; i <= N_ROWS; i++) {
    sqlite3_bind_int(st, 1, i);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  /* Zero the table leaf page that holds the marker of row LOST_ROW (the
   * marker is not indexed, so it is only there). */
  ck_assert(g_file_get_contents(src, &bytes, &len, NULL));
  hit = memmem(bytes, len, marker, strlen(marker));
  ck_assert(hit != NULL);
  page = (hit - bytes) / 1024;
  ck_assert_int_gt(page, 1);
  memset(bytes + page * 1024, 0, 1024);
  ck_assert(g_file_set_contents(src, bytes, (gssize)len, NULL));
  before = g_steal_pointer(&bytes);

  r = sqlenvfs_recover_run(src, out, &opts, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(r->method, SQLENVFS_RECOVER_SALVAGE);
  ck_assert_uint_ge(r->damage->len, 1);
  for (guint i = 0; i < r->tables->len; i++)
    if (strcmp(((SqlenvfsRecoveredTable *)r->tables->pdata[i])->name, "t") == 0)
      t = r->tables->pdata[i];
  ck_assert(t != NULL);
  ck_assert_int_eq(t->n_expected, N_ROWS);
  ck_assert_str_eq(t->expected_from, "index t_name");
  ck_assert_int_lt(t->n_recovered, N_ROWS);
  ck_assert_int_ge(t->n_recovered, N_ROWS - 10); /* one leaf page's rows lost */
  ck_assert(t->missing_rowids != NULL);
  ck_assert_int_eq(count_ranges(t->missing_rowids), N_ROWS - t->n_recovered);
  ck_assert(t->note != NULL);

  /* The new database: every row but those of the zeroed page, intact. */
  ck_assert_int_eq(sqlite3_open_v2(out, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*), sum(id = 1), sum(id = ?1), "
                                          "sum(id = ?2), sum(name = printf('name-%05d', id) AND "
                                          "length(payload) = 200) FROM t",
                                      -1, &st, NULL),
                   SQLITE_OK);
  sqlite3_bind_int(st, 1, LOST_ROW);
  sqlite3_bind_int(st, 2, N_ROWS);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  n = sqlite3_column_int64(st, 0);
  ck_assert_int_eq(n, t->n_recovered);
  ck_assert_int_eq(sqlite3_column_int(st, 1), 1);      /* before the damage */
  ck_assert_int_eq(sqlite3_column_int(st, 2), 0);      /* on the zeroed page */
  ck_assert_int_eq(sqlite3_column_int(st, 3), 1);      /* after it */
  ck_assert_int_eq(sqlite3_column_int64(st, 4), n);    /* every row as written */
  sqlite3_finalize(st);
  sqlite3_close(db);

  /* The source was only read. */
  ck_assert(g_file_get_contents(src, &after, &len_after, NULL));
  ck_assert_uint_eq(len_after, len);
  ck_assert(memcmp(before, after, len) == 0);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("recover");
  TCase *tc = tcase_create("recover");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_ranges);
  tcase_add_test(tc, test_method_names);
  tcase_add_test(tc, test_refusals);
  tcase_add_test(tc, test_salvage_skips_damaged_page);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
