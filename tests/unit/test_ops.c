/* Unit tests for ops: the argument text of ctl files, the one-line results,
 * and running one operation at a time. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/ops.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"

static char *tmp;
static SqlenvfsRoot *root;

static void
setup(void)
{
  GError *error = NULL;
  g_autofree char *db = NULL;
  sqlite3 *conn;
  tmp = testutil_tmpdir();
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  db = sqlenvfs_root_prod_db(root, "app");
  conn = sqlenvfs_db_open(db, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(conn, "CREATE TABLE t (x)", db, &error));
  sqlite3_close(conn);
}

static void
teardown(void)
{
  sqlenvfs_root_free(root);
  root = NULL;
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static gboolean
parse(SqlenvfsOp op, const char *text, SqlenvfsOpArgs *args, GError **error)
{
  return sqlenvfs_op_args_parse(root, op, text, strlen(text), args, error);
}

START_TEST(test_names)
{
  SqlenvfsOp op;
  for (int i = 0; i < SQLENVFS_N_OPS; i++) {
    ck_assert(sqlenvfs_op_from_name(sqlenvfs_op_name((SqlenvfsOp)i), &op));
    ck_assert_int_eq(op, i);
  }
  ck_assert_str_eq(sqlenvfs_op_name(SQLENVFS_OP_REFRESH_DEV), "refresh-dev");
  ck_assert(!sqlenvfs_op_from_name("refresh_dev", &op));
  ck_assert(!sqlenvfs_op_from_name("", &op));
}
END_TEST

START_TEST(test_all_or_now)
{
  static const char *const all[] = { "", "\n", "1", "1\n", "  1 \r\n", "\t\n" };
  for (int op = 0; op < SQLENVFS_N_OPS; op++) {
    for (gsize i = 0; i < G_N_ELEMENTS(all); i++) {
      SqlenvfsOpArgs args = { 0 };
      GError *error = NULL;
      ck_assert_msg(parse((SqlenvfsOp)op, all[i], &args, &error), "op %d text '%s'", op, all[i]);
      ck_assert_no_error(error);
      ck_assert(args.db == NULL);
      ck_assert(!args.has_time);
      ck_assert(!args.dry_run);
      sqlenvfs_op_args_clear(&args);
    }
  }
}
END_TEST

START_TEST(test_database)
{
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;

  ck_assert(parse(SQLENVFS_OP_BACKUP, "app\n", &args, &error));
  ck_assert_str_eq(args.db, "app");
  sqlenvfs_op_args_clear(&args);

  ck_assert(!parse(SQLENVFS_OP_SNAPSHOT, "nosuch\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), ENOENT);
  ck_assert(strstr(error->message, "nosuch") != NULL);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_BACKUP, "../app\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_BACKUP, "app app\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_CHECKPOINT, "app\nmore\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  /* A time is no database for backup. */
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "2026-11-28T10:00:00Z\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!sqlenvfs_op_args_parse(root, SQLENVFS_OP_BACKUP, "ap\0p", 4, &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);
}
END_TEST

START_TEST(test_refresh_dev_time)
{
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;

  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "2026-11-28T10:00:00Z\n", &args, &error));
  ck_assert(args.has_time);
  ck_assert(args.db == NULL);
  ck_assert_int_eq(args.time.us, G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  sqlenvfs_op_args_clear(&args);

  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "app @1795860000.5", &args, &error));
  ck_assert(args.has_time);
  ck_assert_str_eq(args.db, "app");
  ck_assert_int_eq(args.time.us, G_GINT64_CONSTANT(1795860000500000));
  sqlenvfs_op_args_clear(&args);

  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "latest\n", &args, &error));
  ck_assert(args.has_time && args.time.is_latest);
  sqlenvfs_op_args_clear(&args);

  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "app\n", &args, &error));
  ck_assert(!args.has_time);
  ck_assert_str_eq(args.db, "app");
  sqlenvfs_op_args_clear(&args);

  ck_assert(!parse(SQLENVFS_OP_REFRESH_DEV, "app yesterday\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "20261128T161400Z") != NULL); /* names the forms */
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_REFRESH_DEV, "2026-11-28 10:00\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);
}
END_TEST

START_TEST(test_prune_dry_run)
{
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;
  ck_assert(parse(SQLENVFS_OP_PRUNE, "dry-run\n", &args, &error));
  ck_assert(args.dry_run);
  sqlenvfs_op_args_clear(&args);
  ck_assert(!parse(SQLENVFS_OP_PRUNE, "app\n", &args, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "dry-run x\n", &args, &error));
  g_clear_error(&error);
}
END_TEST

START_TEST(test_result_line)
{
  SqlenvfsOpResult res = { 0 };
  g_autofree char *never = sqlenvfs_op_result_line(SQLENVFS_OP_BACKUP, &res);
  g_autofree char *ok = NULL, *failed = NULL;
  ck_assert(strstr(never, "never run") != NULL);

  res.has_run = TRUE;
  res.ok = TRUE;
  res.finished_us = G_GINT64_CONSTANT(1795860000250000);
  res.summary = g_strdup("20261128T100000Z app (1.0 MiB)");
  ok = sqlenvfs_op_result_line(SQLENVFS_OP_BACKUP, &res);
  ck_assert_str_eq(ok, "ok 2026-11-28T10:00:00Z backup: 20261128T100000Z app (1.0 MiB)");
  res.ok = FALSE;
  g_free(res.summary);
  res.summary = g_strdup("refused");
  failed = sqlenvfs_op_result_line(SQLENVFS_OP_REFRESH_DEV, &res);
  ck_assert_str_eq(failed, "failed 2026-11-28T10:00:00Z refresh-dev: refused");
  ck_assert(strchr(failed, '\n') == NULL);
  sqlenvfs_op_result_clear(&res);
}
END_TEST

/* A failed run becomes the last result, with its errno. */
START_TEST(test_run_records_failure)
{
  g_autofree char *dev = sqlenvfs_root_dev_db(root, "app");
  SqlenvfsOps *ops = sqlenvfs_ops_new(root);
  SqlenvfsOpArgs args = { 0 };
  SqlenvfsOpResult res;
  GError *error = NULL;
  SqlenvfsOp op;
  gint64 since;

  /* Production is not marked production: refresh-dev refuses (EPERM). */
  testutil_clock_set(G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  ck_assert(!sqlenvfs_ops_run(ops, SQLENVFS_OP_REFRESH_DEV, &args, NULL, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EPERM);
  g_clear_error(&error);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_REFRESH_DEV, &res);
  ck_assert(res.has_run && !res.ok);
  ck_assert_int_eq(res.error_errno, EPERM);
  ck_assert_int_eq(res.finished_us, G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  sqlenvfs_op_result_clear(&res);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  ck_assert(!res.has_run);
  sqlenvfs_op_result_clear(&res);
  ck_assert(!sqlenvfs_ops_running(ops, &op, &since));
  ck_assert(!g_file_test(dev, G_FILE_TEST_EXISTS));
  testutil_clock_reset();
  sqlenvfs_ops_free(ops);
}
END_TEST

/* A refused write shows with the last result until the next run. */
START_TEST(test_refusal_shown)
{
  g_autofree char *db = sqlenvfs_root_prod_db(root, "app");
  g_autoptr(sqlite3) conn = sqlenvfs_db_open(db, 0, NULL);
  SqlenvfsOps *ops = sqlenvfs_ops_new(root);
  SqlenvfsOpArgs args = { 0 };
  SqlenvfsOpResult res;
  GError *error = NULL;
  g_autofree char *line = NULL, *line2 = NULL, *line3 = NULL;

  ck_assert(!parse(SQLENVFS_OP_PRUNE, "no/such", &args, &error));
  testutil_clock_set(G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  sqlenvfs_ops_record_refusal(ops, SQLENVFS_OP_PRUNE, error);
  g_clear_error(&error);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_PRUNE, &res);
  ck_assert(!res.has_run && res.has_refusal);
  line = sqlenvfs_op_result_line(SQLENVFS_OP_PRUNE, &res);
  sqlenvfs_op_result_clear(&res);
  ck_assert_msg(g_str_has_prefix(line, "never run since the mount started (write 1 to run prune); "
                                       "last write refused 2026-11-28T10:00:00Z (EINVAL): "),
                "%s", line);
  ck_assert(strstr(line, "no/such") != NULL);

  /* After a run: the run, and the refusal only if it came later. */
  ck_assert(sqlenvfs_db_exec(conn, "PRAGMA journal_mode=WAL", db, &error));
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, NULL, &error));
  error = g_error_new(SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "production database x missing");
  sqlenvfs_ops_record_refusal(ops, SQLENVFS_OP_BACKUP, error);
  g_clear_error(&error);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  line2 = sqlenvfs_op_result_line(SQLENVFS_OP_BACKUP, &res);
  sqlenvfs_op_result_clear(&res);
  ck_assert_msg(g_str_has_prefix(line2, "ok 2026-11-28T10:00:00Z backup: "), "%s", line2);
  ck_assert(strstr(line2, "; last write refused 2026-11-28T10:00:00Z (ENOENT): production "
                          "database x missing") != NULL);
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, NULL, &error));
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  line3 = sqlenvfs_op_result_line(SQLENVFS_OP_BACKUP, &res);
  sqlenvfs_op_result_clear(&res);
  ck_assert_msg(strstr(line3, "refused") == NULL, "%s", line3);
  testutil_clock_reset();
  sqlenvfs_ops_free(ops);
}
END_TEST

/* A backup of every database when one is not in WAL mode: the others are
 * copied and kept, the run fails with the errno that fits, naming it. */
START_TEST(test_backup_skips_non_wal)
{
  g_autofree char *db = sqlenvfs_root_prod_db(root, "app");
  g_autofree char *legacy = sqlenvfs_root_prod_db(root, "legacy");
  g_autoptr(sqlite3) conn = sqlenvfs_db_open(db, 0, NULL);
  g_autoptr(sqlite3) lconn = sqlenvfs_db_open(legacy, SQLENVFS_OPEN_CREATE, NULL);
  SqlenvfsOps *ops = sqlenvfs_ops_new(root);
  SqlenvfsOpArgs args = { 0 };
  g_autoptr(GPtrArray) list = NULL;
  const SqlenvfsStoredCopy *copy;
  SqlenvfsOpResult res;
  GError *error = NULL;

  ck_assert(sqlenvfs_db_exec(conn, "PRAGMA journal_mode=WAL", db, &error));
  ck_assert(sqlenvfs_db_exec(lconn, "CREATE TABLE t (x)", legacy, &error));
  ck_assert(!sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, NULL, &error));
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  ck_assert_msg(strstr(error->message, "app (") != NULL, "%s", error->message);
  ck_assert(strstr(error->message, "kept; not copied:") != NULL);
  ck_assert(strstr(error->message, "legacy.db is in journal mode 'delete', not WAL") != NULL);
  g_clear_error(&error);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  ck_assert(res.has_run && !res.ok && res.error_errno == EINVAL);
  sqlenvfs_op_result_clear(&res);

  list = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(list->len, 1);
  copy = list->pdata[0];
  ck_assert_uint_eq(copy->dbs->len, 1);
  ck_assert_ptr_nonnull(sqlenvfs_stored_copy_find(copy, "app"));
  ck_assert(sqlenvfs_store_verify_db(copy->dbs->pdata[0], &error));

  /* Only that database named: refused, nothing made. */
  sqlenvfs_op_args_clear(&args);
  ck_assert(parse(SQLENVFS_OP_SNAPSHOT, "legacy", &args, &error));
  ck_assert(!sqlenvfs_ops_run(ops, SQLENVFS_OP_SNAPSHOT, &args, NULL, &error));
  g_clear_error(&error);
  sqlenvfs_op_args_clear(&args);
  g_ptr_array_unref(list);
  list = sqlenvfs_store_list(root, SQLENVFS_KIND_SNAPSHOT, &error);
  ck_assert_uint_eq(list->len, 0);
  sqlenvfs_ops_free(ops);
}
END_TEST

/* A summary is plain ASCII (what ctl/<op> and status show to scripts): the
 * size in it has an ASCII space, not a no-break space. */
START_TEST(test_summary_ascii)
{
  g_autofree char *db = sqlenvfs_root_prod_db(root, "app");
  g_autoptr(sqlite3) conn = sqlenvfs_db_open(db, 0, NULL);
  SqlenvfsOps *ops = sqlenvfs_ops_new(root);
  SqlenvfsOpArgs args = { 0 };
  g_autofree char *summary = NULL, *line = NULL;
  SqlenvfsOpResult res;
  GError *error = NULL;

  ck_assert(sqlenvfs_db_exec(conn, "PRAGMA journal_mode=WAL", db, &error));
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, &summary, &error));
  ck_assert_no_error(error);
  ck_assert_msg(strstr(summary, " KiB)") != NULL, "%s", summary);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  line = sqlenvfs_op_result_line(SQLENVFS_OP_BACKUP, &res);
  for (const char *p = line; *p; p++)
    ck_assert_msg((guchar)*p < 0x80, "not ASCII at %ld: %s", (long)(p - line), line);
  sqlenvfs_op_result_clear(&res);
  sqlenvfs_ops_free(ops);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("ops");
  TCase *tc = tcase_create("ops");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_all_or_now);
  tcase_add_test(tc, test_database);
  tcase_add_test(tc, test_refresh_dev_time);
  tcase_add_test(tc, test_prune_dry_run);
  tcase_add_test(tc, test_result_line);
  tcase_add_test(tc, test_run_records_failure);
  tcase_add_test(tc, test_summary_ascii);
  tcase_add_test(tc, test_refusal_shown);
  tcase_add_test(tc, test_backup_skips_non_wal);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
