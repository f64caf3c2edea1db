/* Unit tests for recover: the rowid ranges in reports, method names, and the
 * refusals that must leave every file as it was. */
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

static Suite *
suite(void)
{
  Suite *s = suite_create("recover");
  TCase *tc = tcase_create("recover");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_ranges);
  tcase_add_test(tc, test_method_names);
  tcase_add_test(tc, test_refusals);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
