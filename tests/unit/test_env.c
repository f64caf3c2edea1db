/* Unit tests for env: the one-row marker, init, info, the demo data set. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "sqlenvfs/demo.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#define T0 G_GINT64_CONSTANT(1764346440000000) /* 2025-11-28T16:14:00Z */

static char *tmp;

static void
setup(void)
{
  tmp = testutil_tmpdir();
  g_unsetenv("SQLENVFS_ROOT");
  testutil_clock_set(T0);
}

static void
teardown(void)
{
  testutil_clock_reset();
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static sqlite3 *
open_tmp_db(const char *name)
{
  g_autofree char *path = g_build_filename(tmp, name, NULL);
  GError *error = NULL;
  sqlite3 *db = sqlenvfs_db_open(path, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  return db;
}

static gint64
count(sqlite3 *db, const char *sql)
{
  gint64 n = -1;
  GError *error = NULL;
  ck_assert(sqlenvfs_db_query_int(db, sql, &n, "test", &error));
  ck_assert_no_error(error);
  return n;
}

START_TEST(test_unmarked)
{
  g_autoptr(sqlite3) db = open_tmp_db("a.db");
  g_autofree char *env = NULL;
  GError *error = NULL;
  ck_assert(sqlenvfs_env_read(db, &env, "a.db", &error));
  ck_assert_ptr_null(env);
  ck_assert(sqlenvfs_db_exec(db, "CREATE TABLE _environment (id INTEGER PRIMARY KEY, name TEXT, "
                                 "marked_at TEXT)", "a.db", &error));
  ck_assert(sqlenvfs_env_read(db, &env, "a.db", &error));
  ck_assert_ptr_null(env);
}
END_TEST

START_TEST(test_mark_and_remark_keep_one_row)
{
  g_autoptr(sqlite3) db = open_tmp_db("a.db");
  g_autofree char *env = NULL, *at = NULL;
  GError *error = NULL;

  ck_assert(sqlenvfs_env_mark(db, SQLENVFS_ENV_PRODUCTION, "a.db", &error));
  ck_assert(sqlenvfs_env_read_marker(db, &env, &at, "a.db", &error));
  ck_assert_str_eq(env, "production");
  ck_assert_str_eq(at, "2025-11-28T16:14:00Z");
  g_clear_pointer(&env, g_free);
  g_clear_pointer(&at, g_free);

  testutil_clock_set(T0 + 60 * G_USEC_PER_SEC);
  ck_assert(sqlenvfs_env_mark(db, SQLENVFS_ENV_DEVELOPMENT, "a.db", &error));
  ck_assert(sqlenvfs_env_mark(db, SQLENVFS_ENV_DEVELOPMENT, "a.db", &error));
  ck_assert_no_error(error);
  ck_assert_int_eq(count(db, "SELECT count(*) FROM _environment"), 1);
  ck_assert(sqlenvfs_env_read_marker(db, &env, &at, "a.db", &error));
  ck_assert_str_eq(env, "development");
  ck_assert_str_eq(at, "2025-11-28T16:15:00Z");
}
END_TEST

/* The marker table refuses a second row however it is written, including
 * the older tool's INSERT OR REPLACE keyed by name. */
START_TEST(test_second_row_impossible)
{
  g_autoptr(sqlite3) db = open_tmp_db("a.db");
  GError *error = NULL;

  ck_assert(sqlenvfs_env_mark(db, SQLENVFS_ENV_PRODUCTION, "a.db", &error));
  ck_assert(!sqlenvfs_db_exec(db, "INSERT OR REPLACE INTO _environment (name) VALUES ('development')",
                              "a.db", &error));
  g_clear_error(&error);
  ck_assert(!sqlenvfs_db_exec(db, "INSERT INTO _environment VALUES (2, 'development', 'now')",
                              "a.db", &error));
  g_clear_error(&error);
  ck_assert_int_eq(count(db, "SELECT count(*) FROM _environment"), 1);
  /* Replacing the one row is the only way to change it. */
  ck_assert(sqlenvfs_db_exec(db, "INSERT OR REPLACE INTO _environment VALUES (1, 'development', 'now')",
                             "a.db", &error));
  ck_assert_int_eq(count(db, "SELECT count(*) FROM _environment"), 1);
}
END_TEST

/* A marker table as the operator's guide made it (keyed by name) can hold two
 * rows: reading it is an error, never a guess, and marking replaces it. */
START_TEST(test_legacy_two_rows)
{
  g_autoptr(sqlite3) db = open_tmp_db("a.db");
  g_autofree char *env = NULL;
  GError *error = NULL;

  ck_assert(sqlenvfs_db_exec(db,
                             "CREATE TABLE _environment (name TEXT PRIMARY KEY, marked_at TIMESTAMP "
                             "DEFAULT CURRENT_TIMESTAMP);"
                             "INSERT OR REPLACE INTO _environment (name) VALUES ('production');"
                             "INSERT OR REPLACE INTO _environment (name) VALUES ('development');",
                             "a.db", &error));
  ck_assert(!sqlenvfs_env_read(db, &env, "a.db", &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, "2 rows") != NULL);
  ck_assert(strstr(error->message, "a.db") != NULL);
  g_clear_error(&error);

  ck_assert(sqlenvfs_env_mark(db, SQLENVFS_ENV_DEVELOPMENT, "a.db", &error));
  ck_assert_int_eq(count(db, "SELECT count(*) FROM _environment"), 1);
  ck_assert(sqlenvfs_env_read(db, &env, "a.db", &error));
  ck_assert_str_eq(env, "development");
}
END_TEST

static SqlenvfsRoot *
make_root(const char *schema)
{
  GError *error = NULL;
  SqlenvfsRoot *root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert_no_error(error);
  if (schema) {
    g_autofree char *path = g_build_filename(tmp, "schema.sql", NULL);
    ck_assert(g_file_set_contents(path, schema, -1, NULL));
  }
  return root;
}

static char *
read_env_of(const char *path)
{
  GError *error = NULL;
  g_autoptr(sqlite3) db = sqlenvfs_db_open(path, SQLENVFS_OPEN_READONLY, &error);
  char *env = NULL;
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_env_read(db, &env, path, &error));
  return env;
}

static int
count_entries(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  int n = 0;
  while (d && g_dir_read_name(d))
    n++;
  return n;
}

START_TEST(test_init_refuses_then_forces)
{
  g_autoptr(SqlenvfsRoot) root = make_root("CREATE TABLE t (x INTEGER);");
  g_autofree char *prod = g_build_filename(tmp, "data/prod/app.db", NULL);
  g_autofree char *dev = g_build_filename(tmp, "data/dev/app.db", NULL);
  g_autofree char *penv = NULL, *denv = NULL;
  g_autoptr(GPtrArray) moved = g_ptr_array_new_with_free_func(g_free);
  SqlenvfsInitOptions opts = { 0 };
  GError *error = NULL;

  ck_assert(sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_no_error(error);
  penv = read_env_of(prod);
  denv = read_env_of(dev);
  ck_assert_str_eq(penv, "production");
  ck_assert_str_eq(denv, "development");
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(prod, 0, &error);
    g_autofree char *mode = NULL;
    ck_assert(sqlenvfs_db_query_text(db, "PRAGMA journal_mode", &mode, prod, &error));
    ck_assert_str_eq(mode, "wal");
    ck_assert(sqlenvfs_db_exec(db, "INSERT INTO t VALUES (42)", prod, &error));
  }

  /* A second init is refused and changes nothing. */
  ck_assert(!sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_EXISTS);
  ck_assert(strstr(error->message, "--force") != NULL);
  g_clear_error(&error);
  ck_assert_int_eq(count_entries(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD)), 1);

  /* With force the old files are moved aside, still readable, row included. */
  opts.force = TRUE;
  opts.moved_aside = moved;
  ck_assert(sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_uint_ge(moved->len, 2);
  {
    g_autofree char *aside = g_strdup_printf("%s.replaced-20251128T161400.000Z", prod);
    g_autoptr(sqlite3) db = sqlenvfs_db_open(aside, SQLENVFS_OPEN_READONLY | SQLENVFS_OPEN_MUST_EXIST,
                                             &error);
    gint64 n = 0;
    ck_assert_no_error(error);
    ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t WHERE x = 42", &n, aside, &error));
    ck_assert_int_eq(n, 1);
  }
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(prod, SQLENVFS_OPEN_READONLY, &error);
    gint64 n = -1;
    ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t", &n, prod, &error));
    ck_assert_int_eq(n, 0);
  }
}
END_TEST

START_TEST(test_init_missing_and_bad_schema)
{
  g_autoptr(SqlenvfsRoot) root = make_root(NULL);
  g_autofree char *bad = g_build_filename(tmp, "bad.sql", NULL);
  SqlenvfsInitOptions opts = { 0 };
  GError *error = NULL;

  ck_assert(!sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  ck_assert(strstr(error->message, "schema.sql") != NULL);
  ck_assert(strstr(error->message, "--schema") != NULL);
  g_clear_error(&error);
  ck_assert(!g_file_test(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), G_FILE_TEST_EXISTS));

  ck_assert(g_file_set_contents(bad, "CREATE TABLE ok (x); CREATE TABEL oops (y);", -1, NULL));
  opts.schema_path = bad;
  ck_assert(!sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, bad) != NULL);
  g_clear_error(&error);
  /* Nothing left behind, not even temporaries. */
  ck_assert_int_eq(count_entries(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD)), 0);
  ck_assert_int_eq(count_entries(sqlenvfs_root_path(root, SQLENVFS_DIR_DEV)), 0);

  /* The demo data set needs the demo tables. */
  ck_assert(g_file_set_contents(bad, "CREATE TABLE other (x);", -1, NULL));
  opts.demo = TRUE;
  opts.demo_events = 100;
  ck_assert(!sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert(strstr(error->message, "vessel_characteristics") != NULL);
  g_clear_error(&error);
  ck_assert_int_eq(count_entries(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD)), 0);
}
END_TEST

static char *
schema_sql(void)
{
  g_autofree char *path = g_build_filename(SRCDIR, "schema.sql", NULL);
  char *text = NULL;
  ck_assert_msg(g_file_get_contents(path, &text, NULL, NULL), "read %s", path);
  return text;
}

static void
progress_count(gpointer user, guint64 done, guint64 total)
{
  guint64 *last = user;
  ck_assert_uint_le(done, total);
  ck_assert_uint_ge(done, *last);
  *last = done;
}

/* The demo set is deterministic (byte-identical files) and fits the schema. */
START_TEST(test_demo_deterministic)
{
  g_autofree char *schema = schema_sql();
  g_autofree char *a = g_build_filename(tmp, "a.db", NULL);
  g_autofree char *b = g_build_filename(tmp, "b.db", NULL);
  g_autofree char *ca = NULL, *cb = NULL;
  gsize la = 0, lb = 0;
  const char *paths[] = { a, b };
  GError *error = NULL;

  for (int i = 0; i < 2; i++) {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(paths[i], SQLENVFS_OPEN_CREATE, &error);
    guint64 last = 0;
    ck_assert(sqlenvfs_db_exec(db, schema, paths[i], &error));
    ck_assert(sqlenvfs_demo_load(db, 5000, progress_count, &last, paths[i], &error));
    ck_assert_no_error(error);
    ck_assert_uint_eq(last, 5000);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM raw_vessel_events"), 5000);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM vessel_characteristics"),
                     sqlenvfs_demo_n_vessels(5000));
    ck_assert_int_eq(count(db, "PRAGMA foreign_key_check"), 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM raw_vessel_events e LEFT JOIN "
                               "vessel_characteristics v USING (mmsi) WHERE v.mmsi IS NULL"), 0);
    ck_assert_int_eq(count(db, "SELECT count(DISTINCT event_type) FROM raw_vessel_events"), 6);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM raw_vessel_events WHERE event_time NOT GLOB "
                               "'2026-01-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z'"), 0);
    /* Each vessel's events are in time order. */
    ck_assert_int_eq(count(db, "SELECT count(*) FROM raw_vessel_events a JOIN raw_vessel_events b "
                               "ON a.mmsi = b.mmsi AND b.event_id > a.event_id AND "
                               "b.event_time < a.event_time"), 0);
  }
  ck_assert(g_file_get_contents(a, &ca, &la, NULL));
  ck_assert(g_file_get_contents(b, &cb, &lb, NULL));
  ck_assert_uint_eq(la, lb);
  ck_assert(memcmp(ca, cb, la) == 0);
}
END_TEST

START_TEST(test_info)
{
  g_autoptr(SqlenvfsRoot) root = make_root("CREATE TABLE b (x); CREATE TABLE a (y);");
  g_autofree char *junk = g_build_filename(tmp, "data/prod/junk.db", NULL);
  g_autoptr(GPtrArray) infos = NULL;
  SqlenvfsInitOptions opts = { 0 };
  const SqlenvfsDbInfo *p, *d;
  GError *error = NULL;

  ck_assert(sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert(g_file_set_contents(junk, "this is not a database, not at all, really not", -1, NULL));
  infos = sqlenvfs_env_info(root);
  ck_assert_uint_eq(infos->len, 4);
  p = infos->pdata[0];
  d = infos->pdata[1];
  ck_assert_str_eq(p->db, "app");
  ck_assert_str_eq(p->place, "prod");
  ck_assert(p->exists);
  ck_assert_ptr_null(p->error);
  ck_assert_str_eq(p->environment, "production");
  ck_assert_str_eq(p->journal_mode, "wal");
  ck_assert_uint_eq(p->tables->len, 2);
  ck_assert_str_eq(p->tables->pdata[0], "a");
  ck_assert_str_eq(p->tables->pdata[1], "b");
  ck_assert_int_eq(p->page_size, 4096);
  ck_assert_int_gt(p->page_count, 0);
  ck_assert_uint_eq(p->size, (guint64)(p->page_count * p->page_size));
  ck_assert_str_eq(d->place, "dev");
  ck_assert_str_eq(d->environment, "development");

  p = infos->pdata[2];
  d = infos->pdata[3];
  ck_assert_str_eq(p->db, "junk");
  ck_assert(p->exists);
  ck_assert_ptr_nonnull(p->error);
  ck_assert(strstr(p->error, junk) != NULL);
  ck_assert(!d->exists);
  ck_assert_ptr_null(d->error);
}
END_TEST

static Suite *
env_suite(void)
{
  Suite *s = suite_create("env");
  TCase *tc = tcase_create("env");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_unmarked);
  tcase_add_test(tc, test_mark_and_remark_keep_one_row);
  tcase_add_test(tc, test_second_row_impossible);
  tcase_add_test(tc, test_legacy_two_rows);
  tcase_add_test(tc, test_init_refuses_then_forces);
  tcase_add_test(tc, test_init_missing_and_bad_schema);
  tcase_add_test(tc, test_demo_deterministic);
  tcase_add_test(tc, test_info);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(env_suite());
}
