/* Unit tests for ops: the argument text of ctl files, the one-line results,
 * what a run returns, and running one operation at a time. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
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
  ck_assert(sqlenvfs_db_exec(conn, "PRAGMA journal_mode=WAL; CREATE TABLE t (x)", db, &error));
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

  /* A word that names no database: what is accepted and the databases
   * there are, never advice to create one. */
  ck_assert(!parse(SQLENVFS_OP_SNAPSHOT, "nosuch\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  ck_assert(strstr(error->message, "\"nosuch\"") != NULL);
  ck_assert(strstr(error->message,
                   "no production database has that name (the one there is: app)") != NULL);
  ck_assert(strstr(error->message, "1 (every database) or a database name") != NULL);
  ck_assert(strstr(error->message, "init") == NULL);
  g_clear_error(&error);
  /* verify takes no database name (only after drill). */
  ck_assert(!parse(SQLENVFS_OP_VERIFY, "app\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_BACKUP, "../app\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_BACKUP, "app app\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_CHECKPOINT, "app\nmore\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  /* What was written is quoted with its control characters escaped: the
   * message goes to the log and to the ctl file's one-line result. */
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "x\n2026-12-07T15:17:59Z sqlenvfs[1]: backup taken\n",
                   &args, &error));
  ck_assert_ptr_null(strchr(error->message, '\n'));
  ck_assert_ptr_nonnull(strstr(error->message, "\"x\\n2026-12-07"));
  g_clear_error(&error);
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "x\033[31mRED\n", &args, &error));
  ck_assert_ptr_null(strchr(error->message, '\033'));
  ck_assert_ptr_nonnull(strstr(error->message, "x\\x1b[31mRED"));
  g_clear_error(&error);

  /* A time is no database for backup. */
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "2026-11-28T10:00:00Z\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  ck_assert(!sqlenvfs_op_args_parse(root, SQLENVFS_OP_BACKUP, "ap\0p", 4, &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  ck_assert_msg(strstr(error->message, "not UTF-8 text without NUL bytes") != NULL, "%s",
                error->message);
  g_clear_error(&error);
  ck_assert(!sqlenvfs_op_args_parse(root, SQLENVFS_OP_BACKUP, "a\xffp\n", 4, &args, &error));
  ck_assert_msg(strstr(error->message, "not UTF-8 text without NUL bytes") != NULL, "%s",
                error->message);
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

  /* A time with blanks, as list prints it, alone or after a database. */
  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "2026-11-28 11:00:00 +01:00\n", &args, &error));
  ck_assert(args.has_time && args.db == NULL);
  ck_assert_int_eq(args.time.us, G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  sqlenvfs_op_args_clear(&args);
  ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, "app 2026-11-28 15:30:00 +05:30\n", &args, &error));
  ck_assert(args.has_time);
  ck_assert_str_eq(args.db, "app");
  ck_assert_int_eq(args.time.us, G_GINT64_CONSTANT(1795860000) * G_USEC_PER_SEC);
  sqlenvfs_op_args_clear(&args);

  ck_assert(!parse(SQLENVFS_OP_REFRESH_DEV, "app yesterday\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "20261128T161400Z") != NULL); /* names the forms */
  g_clear_error(&error);

  ck_assert(!parse(SQLENVFS_OP_REFRESH_DEV, "2026-11-28 10:00\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  g_clear_error(&error);

  /* A time that does not parse, alone: said as a time, not as a database
   * to create. */
  for (guint i = 0; i < 3; i++) {
    static const char *bad[] = { "2026-13-45T99:99:99Z\n", "@99999999999999999999\n",
                                 "20261128T1614\n" };
    ck_assert(!parse(SQLENVFS_OP_REFRESH_DEV, bad[i], &args, &error));
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
    ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
    ck_assert_msg(strstr(error->message, "is not a time") != NULL &&
                    strstr(error->message, "init") == NULL, "%s", error->message);
    g_clear_error(&error);
  }
}
END_TEST

/* A production database named like a time ("latest", "20261128T100000Z")
 * is that database on ctl/refresh-dev, as on every other ctl file: never
 * every database at that time, which would replace every development
 * database but the one named. */
START_TEST(test_refresh_dev_db_named_like_a_time)
{
  const char *names[] = { "latest", "earliest", "20261128T100000Z", "@1795860000" };
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *db = sqlenvfs_root_prod_db(root, names[i]);
    g_autofree char *line = g_strdup_printf("%s\n", names[i]);
    ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, line, &args, &error));
    ck_assert_msg(args.has_time && args.db == NULL, "%s before it exists", names[i]);
    sqlenvfs_op_args_clear(&args);
    ck_assert(g_file_set_contents(db, "", 0, NULL));
    ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, line, &args, &error));
    ck_assert_no_error(error);
    ck_assert_msg(!args.has_time, "%s is taken as a time", names[i]);
    ck_assert_str_eq(args.db, names[i]);
    sqlenvfs_op_args_clear(&args);
    /* With a time after it, it still names the database. */
    g_free(line);
    line = g_strdup_printf("%s 2026-11-28T10:00:00Z\n", names[i]);
    ck_assert(parse(SQLENVFS_OP_REFRESH_DEV, line, &args, &error));
    ck_assert(args.has_time);
    ck_assert_str_eq(args.db, names[i]);
    sqlenvfs_op_args_clear(&args);
  }
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
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EINVAL);
  ck_assert(strstr(error->message, "dry-run") != NULL); /* names what is accepted */
  g_clear_error(&error);
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "dry-run x\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_clear_error(&error);
  /* dry-run names no database for backup. */
  ck_assert(!parse(SQLENVFS_OP_BACKUP, "dry-run\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_clear_error(&error);
}
END_TEST

/* "full" on ctl/verify reads everything; it is no word for other ops. */
START_TEST(test_verify_full)
{
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;
  ck_assert(parse(SQLENVFS_OP_VERIFY, "full\n", &args, &error));
  ck_assert(args.full);
  sqlenvfs_op_args_clear(&args);
  ck_assert(parse(SQLENVFS_OP_VERIFY, "1\n", &args, &error));
  ck_assert(!args.full);
  sqlenvfs_op_args_clear(&args);
  ck_assert(!parse(SQLENVFS_OP_VERIFY, "full everything\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "full (everything)") != NULL);
  g_clear_error(&error);
  ck_assert(!parse(SQLENVFS_OP_PRUNE, "full\n", &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
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

/* A backup returns the copy it made; the summary kept names it. */
START_TEST(test_run_backup_outcome)
{
  g_autoptr(SqlenvfsOps) ops = sqlenvfs_ops_new(root);
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  g_autofree char *summary = NULL, *want = NULL;
  SqlenvfsOpArgs args = { 0 };
  SqlenvfsOpResult res;
  const SqlenvfsStoredDb *sdb;
  GError *error = NULL;

  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, &out, &error));
  ck_assert_no_error(error);
  ck_assert_int_eq(out.op, SQLENVFS_OP_BACKUP);
  ck_assert(out.copy != NULL);
  ck_assert_int_eq(out.copy->kind, SQLENVFS_KIND_BACKUP);
  ck_assert_int_eq(out.copy->dbs->len, 1);
  sdb = out.copy->dbs->pdata[0];
  ck_assert_str_eq(sdb->db, "app");
  ck_assert(g_file_test(out.copy->dir, G_FILE_TEST_IS_DIR));
  summary = sqlenvfs_op_outcome_summary(&out);
  want = g_strdup_printf("%s app (", out.copy->name);
  ck_assert_msg(g_str_has_prefix(summary, want), "%s", summary);
  sqlenvfs_ops_last(ops, SQLENVFS_OP_BACKUP, &res);
  ck_assert(res.has_run && res.ok);
  ck_assert_str_eq(res.summary, summary);
  sqlenvfs_op_result_clear(&res);
}
END_TEST

/* Verify fails with INTEGRITY when a copy is bad, and returns the report of
 * every check, which the command line prints. */
START_TEST(test_run_verify_outcome)
{
  g_autoptr(SqlenvfsOps) ops = sqlenvfs_ops_new(root);
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  g_autofree char *file = NULL;
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;
  FILE *f;

  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_SNAPSHOT, &args, &out, &error));
  ck_assert_no_error(error);
  file = g_build_filename(out.copy->dir, "app.db", NULL);
  sqlenvfs_op_outcome_clear(&out);

  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_VERIFY, &args, &out, &error));
  ck_assert_no_error(error);
  ck_assert(out.report != NULL);
  ck_assert_uint_eq(sqlenvfs_verify_report_n_bad(out.report), 0);
  ck_assert_uint_ge(out.report->checks->len, 1);
  ck_assert_uint_eq(out.report->n_copies_checked, 1);
  {
    /* The one line ctl/verify shows says what was read. */
    g_autofree char *line = sqlenvfs_op_outcome_summary(&out);
    ck_assert_msg(g_str_has_prefix(line, "all ") && strstr(line, "good; checked 0 segments, 1 copy"),
                  "%s", line);
  }
  sqlenvfs_op_outcome_clear(&out);

  f = fopen(file, "r+b");
  ck_assert(f != NULL);
  ck_assert_int_eq(fseek(f, 100, SEEK_SET), 0);
  ck_assert_int_eq(fwrite("\xff\xff\xff\xff", 1, 4, f), 4);
  fclose(f);
  ck_assert(!sqlenvfs_ops_run(ops, SQLENVFS_OP_VERIFY, &args, &out, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_int_eq(sqlenvfs_error_to_errno(error), EIO);
  g_clear_error(&error);
  ck_assert(out.report != NULL);
  ck_assert_uint_eq(sqlenvfs_verify_report_n_bad(out.report), 1);
}
END_TEST

/* Prune returns every copy it looked at, kept or not. */
START_TEST(test_run_prune_outcome)
{
  g_autoptr(SqlenvfsOps) ops = sqlenvfs_ops_new(root);
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  g_autofree char *summary = NULL;
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;

  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, NULL, &error));
  ck_assert_no_error(error);
  args.dry_run = TRUE;
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_PRUNE, &args, &out, &error));
  ck_assert_no_error(error);
  ck_assert(out.dry_run);
  ck_assert_int_eq(out.pruned->len, 1);
  ck_assert(!((const SqlenvfsPruneItem *)out.pruned->pdata[0])->remove); /* the newest */
  ck_assert_int_eq(out.segments->len, 0);
  summary = sqlenvfs_op_outcome_summary(&out);
  ck_assert_str_eq(summary, "dry run, would remove: nothing; 0 WAL archive segments; kept 1");
}
END_TEST

/* Without an archiver, a checkpoint copies every WAL frame into the
 * database file, even through a connection that has read nothing yet, while
 * an application holds the database open. */
START_TEST(test_run_checkpoint_outcome)
{
  g_autoptr(SqlenvfsOps) ops = sqlenvfs_ops_new(root);
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  g_autofree char *path = sqlenvfs_root_prod_db(root, "app");
  g_autoptr(sqlite3) app = NULL;
  const SqlenvfsCheckpointedDb *c;
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;

  app = sqlenvfs_db_open(path, 0, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(app, "PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (1); "
                                  "INSERT INTO t VALUES (2)", path, &error));
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_CHECKPOINT, &args, &out, &error));
  ck_assert_no_error(error);
  ck_assert(!out.via_archiver);
  ck_assert_int_eq(out.checkpointed->len, 1);
  c = out.checkpointed->pdata[0];
  ck_assert_str_eq(c->db, "app");
  ck_assert_int_ge(c->n_wal_frames, 2);
  ck_assert_int_eq(c->n_copied, c->n_wal_frames);
}
END_TEST

/* One operation at a time (invariant 1), in the core: a snapshot asked for
 * while a backup runs starts only once the backup has finished. The backup
 * is held inside its copy by its progress callback. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean first_inside, released, second_calling, second_inside;
  SqlenvfsOps *ops;
} Turns;

static gint ticks;

static gint64
ticking_clock(void)
{
  return g_atomic_int_add(&ticks, 1) + 1;
}

static void
hold_first(gpointer user, guint64 done, guint64 total)
{
  Turns *t = user;
  (void)done;
  (void)total;
  g_mutex_lock(&t->lock);
  t->first_inside = TRUE;
  g_cond_broadcast(&t->cond);
  while (!t->released)
    g_cond_wait(&t->cond, &t->lock);
  g_mutex_unlock(&t->lock);
}

static void
note_second(gpointer user, guint64 done, guint64 total)
{
  Turns *t = user;
  (void)done;
  (void)total;
  g_mutex_lock(&t->lock);
  t->second_inside = TRUE;
  g_cond_broadcast(&t->cond);
  g_mutex_unlock(&t->lock);
}

static gpointer
run_first(gpointer data)
{
  Turns *t = data;
  SqlenvfsOpArgs args = { .progress = hold_first, .progress_data = t };
  GError *error = NULL;
  gboolean ok = sqlenvfs_ops_run(t->ops, SQLENVFS_OP_BACKUP, &args, NULL, &error);
  g_clear_error(&error);
  return GINT_TO_POINTER(ok);
}

static gpointer
run_second(gpointer data)
{
  Turns *t = data;
  SqlenvfsOpArgs args = { .progress = note_second, .progress_data = t };
  GError *error = NULL;
  gboolean ok;
  g_mutex_lock(&t->lock);
  t->second_calling = TRUE;
  g_cond_broadcast(&t->cond);
  g_mutex_unlock(&t->lock);
  ok = sqlenvfs_ops_run(t->ops, SQLENVFS_OP_SNAPSHOT, &args, NULL, &error);
  g_clear_error(&error);
  return GINT_TO_POINTER(ok);
}

START_TEST(test_one_at_a_time)
{
  Turns t = { 0 };
  GThread *first, *second;
  SqlenvfsOpResult backup, snapshot;
  SqlenvfsOp op;
  gint64 since, deadline;
  gboolean overlapped;

  g_mutex_init(&t.lock);
  g_cond_init(&t.cond);
  t.ops = sqlenvfs_ops_new(root);
  ticks = 0;
  sqlenvfs_clock_set(ticking_clock);

  first = g_thread_new("first", run_first, &t);
  g_mutex_lock(&t.lock);
  while (!t.first_inside)
    g_cond_wait(&t.cond, &t.lock);
  g_mutex_unlock(&t.lock);
  ck_assert(sqlenvfs_ops_running(t.ops, &op, &since));
  ck_assert_int_eq(op, SQLENVFS_OP_BACKUP);

  /* While the backup is held, the snapshot must not get inside its copy;
   * give it every chance to (until a deadline, or until it does). */
  second = g_thread_new("second", run_second, &t);
  deadline = g_get_monotonic_time() + G_USEC_PER_SEC / 5;
  g_mutex_lock(&t.lock);
  while (!t.second_calling)
    g_cond_wait(&t.cond, &t.lock);
  while (!t.second_inside && g_cond_wait_until(&t.cond, &t.lock, deadline))
    ;
  overlapped = t.second_inside;
  t.released = TRUE;
  g_cond_broadcast(&t.cond);
  g_mutex_unlock(&t.lock);
  ck_assert(GPOINTER_TO_INT(g_thread_join(first)));
  ck_assert(GPOINTER_TO_INT(g_thread_join(second)));
  ck_assert_msg(!overlapped, "the snapshot ran while the backup was running");

  /* And by the clock: the snapshot started after the backup finished. */
  sqlenvfs_ops_last(t.ops, SQLENVFS_OP_BACKUP, &backup);
  sqlenvfs_ops_last(t.ops, SQLENVFS_OP_SNAPSHOT, &snapshot);
  ck_assert(backup.ok && snapshot.ok);
  ck_assert_int_lt(backup.finished_us, snapshot.started_us);
  sqlenvfs_op_result_clear(&backup);
  sqlenvfs_op_result_clear(&snapshot);

  sqlenvfs_clock_set(NULL);
  sqlenvfs_ops_free(t.ops);
  g_cond_clear(&t.cond);
  g_mutex_clear(&t.lock);
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
  ck_assert_msg(strstr(error->message, "1 of 2 databases not copied (the other copies are "
                                       "kept in ") != NULL, "%s", error->message);
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
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  g_autofree char *summary = NULL, *line = NULL;
  SqlenvfsOpResult res;
  GError *error = NULL;

  ck_assert(sqlenvfs_db_exec(conn, "PRAGMA journal_mode=WAL", db, &error));
  ck_assert(sqlenvfs_ops_run(ops, SQLENVFS_OP_BACKUP, &args, &out, &error));
  ck_assert_no_error(error);
  summary = sqlenvfs_op_outcome_summary(&out);
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
  tcase_add_test(tc, test_refresh_dev_db_named_like_a_time);
  tcase_add_test(tc, test_prune_dry_run);
  tcase_add_test(tc, test_verify_full);
  tcase_add_test(tc, test_result_line);
  tcase_add_test(tc, test_run_records_failure);
  tcase_add_test(tc, test_run_backup_outcome);
  tcase_add_test(tc, test_run_verify_outcome);
  tcase_add_test(tc, test_run_prune_outcome);
  tcase_add_test(tc, test_run_checkpoint_outcome);
  tcase_add_test(tc, test_one_at_a_time);
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
