/* Unit tests for the mount's path routing (src/fs/tree.c) and its ctl files'
 * read side (ctl.c), on a real root but without mounting: the fs code is
 * linked as a library and driven through fs_tree_resolve() and friends. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"

static char *tmp;
static SqlenvfsRoot *root;
static SqlenvfsStoredCopy *backup;
static Fs *fs;

static void
setup(void)
{
  g_autofree char *schema = NULL;
  SqlenvfsInitOptions opts = { 0 };
  GError *error = NULL;

  tmp = testutil_tmpdir();
  schema = g_build_filename(tmp, "schema.sql", NULL);
  ck_assert(g_file_set_contents(schema, "CREATE TABLE t (x);", -1, NULL));
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_env_init(root, &opts, NULL, NULL, &error));
  ck_assert_no_error(error);
  backup = sqlenvfs_store_create(root, SQLENVFS_KIND_BACKUP, NULL, NULL, NULL, &error);
  ck_assert_no_error(error);
  fs = fs_new(root, FALSE);
}

static void
teardown(void)
{
  g_clear_pointer(&fs, fs_free);
  g_clear_pointer(&backup, sqlenvfs_stored_copy_free);
  g_clear_pointer(&root, sqlenvfs_root_free);
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

/* Resolve @path, which must exist; returns its kind and fills @w, @a. */
static FsKind
resolve(const char *path, FsWhere *w, FsAttr *a)
{
  GError *error = NULL;
  ck_assert_msg(fs_tree_resolve(fs, path, 0, w, a, &error), "/%s: %s", path,
                error ? error->message : "");
  return w->kind;
}

/* @path must name nothing: NOT_FOUND (ENOENT), nothing left in @a's
 * negative timeout but what is returned. */
static double
resolve_missing(const char *path)
{
  FsWhere w = { 0 };
  FsAttr a;
  GError *error = NULL;
  memset(&a, 0xff, sizeof a);
  ck_assert_msg(!fs_tree_resolve(fs, path, 0, &w, &a, &error), "/%s resolved", path);
  ck_assert_msg(sqlenvfs_error_to_errno(error) == ENOENT, "/%s: %s", path, error->message);
  g_error_free(error);
  return a.negative_timeout;
}

START_TEST(test_resolve_tree)
{
  g_autofree char *copy_dir = g_strdup_printf("backups/%s", backup->name);
  g_autofree char *copy_db = g_strdup_printf("backups/%s/app.db", backup->name);
  const SqlenvfsStoredDb *sdb = backup->dbs->pdata[0];
  FsWhere w = { 0 };
  FsAttr a;

  ck_assert_int_eq(resolve("", &w, &a), FS_ROOT);
  ck_assert(S_ISDIR(a.st.st_mode));
  fs_where_clear(&w);

  ck_assert_int_eq(resolve("prod", &w, &a), FS_ENV_DIR);
  ck_assert_int_eq(w.env, FS_ENV_PROD);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve("dev/app.db", &w, &a), FS_LIVE_DB);
  ck_assert_int_eq(w.env, FS_ENV_DEV);
  ck_assert_str_eq(w.db, "app");
  ck_assert(S_ISREG(a.st.st_mode));
  ck_assert_int_eq(a.st.st_mode & 0222, 0); /* read-only */
  ck_assert_double_eq(a.entry_timeout, 1.0); /* changes: the name only briefly */
  fs_where_clear(&w);

  ck_assert_int_eq(resolve("backups", &w, &a), FS_STORE_DIR);
  ck_assert_int_eq(w.copy_kind, SQLENVFS_KIND_BACKUP);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve(copy_dir, &w, &a), FS_COPY_DIR);
  ck_assert_str_eq(w.entry, backup->name);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve(copy_db, &w, &a), FS_COPY_DB);
  ck_assert_str_eq(w.db, "app");
  ck_assert_int_eq(a.st.st_size, (off_t)sdb->size);
  ck_assert_int_eq(a.st.st_mode & 0222, 0);
  fs_where_clear(&w);

  ck_assert_int_eq(resolve("pitr", &w, &a), FS_PITR_DIR);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve("diff", &w, &a), FS_DIFF_DIR);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve("ctl", &w, &a), FS_CTL_DIR);
  fs_where_clear(&w);
  ck_assert_int_eq(resolve("ctl/refresh-dev", &w, &a), FS_CTL_FILE);
  ck_assert_int_eq(w.op, SQLENVFS_OP_REFRESH_DEV);
  ck_assert_int_eq(a.st.st_mode & 0200, 0200); /* the only writable files */
  fs_where_clear(&w);
  ck_assert_int_eq(resolve("status", &w, &a), FS_STATUS);
  fs_where_clear(&w);
}
END_TEST

START_TEST(test_resolve_missing)
{
  static const char *const missing[] = {
    "nosuch", "prod/nosuch.db", "prod/app", "prod/app.db/x", "dev/app.db-wal",
    "backups/20200101T000000Z", "backups/not-a-name", "snapshots/x/y/z",
    "ctl/nosuch", "ctl/backup/x", "status/x", "..", "pitr/x/y/z",
    "diff/yesterday", "diff/latest/yesterday", "diff/latest/latest/app.txt",
    "diff/latest/latest/app.sql/x",
  };
  g_autofree char *no_db = g_strdup_printf("backups/%s/nosuch.db", backup->name);

  for (gsize i = 0; i < G_N_ELEMENTS(missing); i++)
    ck_assert_double_eq(resolve_missing(missing[i]), 0.0);
  ck_assert_double_eq(resolve_missing(no_db), 0.0);
}
END_TEST

/* pitr/ names that never resolve are remembered by the kernel as absent for
 * a while; names that may resolve later are not. */
START_TEST(test_pitr_negative)
{
  ck_assert_double_gt(resolve_missing("pitr/yesterday"), 0.0);
  ck_assert_double_gt(resolve_missing("pitr/latest-ish"), 0.0);
  /* With nothing archived yet, a past time lies after the end of a window
   * that may still grow, and a future time may come: neither is remembered. */
  ck_assert_double_eq(resolve_missing("pitr/2000-01-01T00:00:00Z"), 0.0);
  ck_assert_double_eq(resolve_missing("pitr/2099-01-01T00:00:00Z"), 0.0);
  /* Below a name that is not a time: not remembered (only pitr/<name>). */
  ck_assert_double_eq(resolve_missing("pitr/yesterday/app.db"), 0.0);
}
END_TEST

static gboolean
has_name(GPtrArray *names, const char *name)
{
  for (guint i = 0; i < names->len; i++)
    if (strcmp(names->pdata[i], name) == 0)
      return TRUE;
  return FALSE;
}

START_TEST(test_list)
{
  FsWhere w = { 0 };
  FsAttr a;
  GError *error = NULL;
  g_autoptr(GPtrArray) top = NULL, ctl = NULL, prod = NULL, backups = NULL;

  resolve("", &w, &a);
  top = fs_tree_list(fs, &w, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(top->len, 9);
  ck_assert(has_name(top, "prod") && has_name(top, "pitr") && has_name(top, "status") &&
            has_name(top, "metrics"));
  ck_assert(has_name(top, "diff"));
  fs_where_clear(&w);

  resolve("ctl", &w, &a);
  ctl = fs_tree_list(fs, &w, &error);
  ck_assert_uint_eq(ctl->len, SQLENVFS_N_OPS);
  for (int op = 0; op < SQLENVFS_N_OPS; op++)
    ck_assert(has_name(ctl, sqlenvfs_op_name((SqlenvfsOp)op)));
  fs_where_clear(&w);

  resolve("prod", &w, &a);
  prod = fs_tree_list(fs, &w, &error);
  ck_assert_uint_eq(prod->len, 1);
  ck_assert_str_eq(prod->pdata[0], "app.db");
  fs_where_clear(&w);

  resolve("backups", &w, &a);
  backups = fs_tree_list(fs, &w, &error);
  ck_assert_uint_eq(backups->len, 1);
  ck_assert_str_eq(backups->pdata[0], backup->name);
  fs_where_clear(&w);
}
END_TEST

/* Reading ctl/<op> shows the last result of the operation in one line, and
 * its size is what a read gives. */
START_TEST(test_ctl_read)
{
  g_autofree char *before = fs_ctl_read(fs->ctl, SQLENVFS_OP_SNAPSHOT);
  g_autofree char *after = NULL;
  SqlenvfsOpArgs args = { 0 };
  GError *error = NULL;
  FsWhere w = { 0 };
  FsAttr a;

  ck_assert(g_str_has_prefix(before, "never run since the mount started"));
  ck_assert(g_str_has_suffix(before, "\n"));
  ck_assert(strchr(before, '\n') == before + strlen(before) - 1);

  ck_assert(sqlenvfs_ops_run(fs->ops, SQLENVFS_OP_SNAPSHOT, &args, NULL, &error));
  ck_assert_no_error(error);
  after = fs_ctl_read(fs->ctl, SQLENVFS_OP_SNAPSHOT);
  ck_assert_msg(g_str_has_prefix(after, "ok ") && strstr(after, " snapshot: ") != NULL, "%s",
                after);
  ck_assert(strchr(after, '\n') == after + strlen(after) - 1);
  resolve("ctl/snapshot", &w, &a);
  ck_assert_int_eq(a.st.st_size, (off_t)strlen(after));
  fs_where_clear(&w);
}
END_TEST

START_TEST(test_data_mode)
{
  ck_assert_int_eq(fs_tree_data_mode(S_IFREG | 0640), S_IFREG | 0440);
  ck_assert_int_eq(fs_tree_data_mode(S_IFREG | 0600), S_IFREG | 0400);
  ck_assert_int_eq(fs_tree_data_mode(S_IFREG | 0777), S_IFREG | 0444);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("tree");
  TCase *tc = tcase_create("tree");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_resolve_tree);
  tcase_add_test(tc, test_resolve_missing);
  tcase_add_test(tc, test_pitr_negative);
  tcase_add_test(tc, test_list);
  tcase_add_test(tc, test_ctl_read);
  tcase_add_test(tc, test_data_mode);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
