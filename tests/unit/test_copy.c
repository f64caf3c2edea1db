/* Unit tests for copy: verified copies, modes, refusal, leftovers. */
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "sqlenvfs/copy.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

static char *tmp;
static char *src;

static void
setup(void)
{
  GError *error = NULL;
  g_autoptr(sqlite3) db = NULL;
  tmp = testutil_tmpdir();
  src = g_build_filename(tmp, "src.db", NULL);
  db = sqlenvfs_db_open(src, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_exec(db,
                             "PRAGMA journal_mode=WAL; CREATE TABLE t(n INTEGER PRIMARY KEY, v TEXT);"
                             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)"
                             " INSERT INTO t SELECT i, printf('%0400d', i) FROM c;",
                             src, &error));
}

static void
teardown(void)
{
  g_free(src);
  testutil_tmpdir_cleanup(tmp);
}

START_TEST(test_copy_result_and_crc)
{
  g_autofree char *dst = g_build_filename(tmp, "dst.db", NULL);
  g_autofree char *data = NULL;
  gsize len;
  SqlenvfsCopyResult res = { 0 };
  GError *error = NULL;
  gint64 n = 0;
  g_autoptr(sqlite3) db = NULL;

  /* A writer that keeps the database open leaves committed frames in the WAL. */
  g_autoptr(sqlite3) w = sqlenvfs_db_open(src, 0, &error);
  ck_assert(sqlenvfs_db_exec(w, "PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES(501, 'x')", src,
                             &error));
  ck_assert(sqlenvfs_copy_db(src, dst, FALSE, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert(g_file_get_contents(dst, &data, &len, NULL));
  ck_assert_uint_eq(res.size, len);
  ck_assert_uint_eq(res.crc32, (guint32)crc32(0, (const Bytef *)data, (uInt)len));
  ck_assert_str_eq(res.journal_mode, "wal");
  ck_assert_uint_gt(res.pos.frame, 0);
  ck_assert_uint_eq(res.pos.page_size, 4096);
  ck_assert_uint_eq((guint64)res.pos.n_pages * 4096, len);
  db = sqlenvfs_db_open(dst, SQLENVFS_OPEN_READONLY, &error);
  ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM t", &n, dst, &error));
  ck_assert_int_eq(n, 501);
  sqlenvfs_copy_result_clear(&res);
}
END_TEST

START_TEST(test_refuses_existing_and_mode)
{
  g_autofree char *dst = g_build_filename(tmp, "dst.db", NULL);
  GError *error = NULL;
  struct stat st;

  ck_assert(g_file_set_contents(dst, "keep me", -1, NULL));
  ck_assert(!sqlenvfs_copy_db(src, dst, FALSE, NULL, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_EXISTS);
  ck_assert(strstr(error->message, "--force") != NULL);
  g_clear_error(&error);
  {
    g_autofree char *kept = NULL;
    ck_assert(g_file_get_contents(dst, &kept, NULL, NULL));
    ck_assert_str_eq(kept, "keep me");
  }
  /* A copy is never more readable than its source. */
  ck_assert_int_eq(chmod(src, 0640), 0);
  ck_assert(sqlenvfs_copy_db(src, dst, TRUE, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_int_eq(stat(dst, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0640);
  ck_assert_int_eq(chmod(src, 0600), 0);
  ck_assert(sqlenvfs_copy_db(src, dst, TRUE, NULL, NULL, NULL, &error));
  ck_assert_int_eq(stat(dst, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_corrupt_source_leaves_nothing)
{
  g_autofree char *bad = g_build_filename(tmp, "bad.db", NULL);
  g_autofree char *dst = g_build_filename(tmp, "out", "dst.db", NULL);
  g_autofree char *outdir = g_path_get_dirname(dst);
  GError *error = NULL;
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(bad, SQLENVFS_OPEN_CREATE, &error);
    ck_assert(sqlenvfs_db_exec(db,
                               "PRAGMA journal_mode=WAL;"
                               "CREATE TABLE t(n INTEGER PRIMARY KEY, v TEXT);"
                               "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)"
                               " INSERT INTO t SELECT i, printf('%0400d', i) FROM c;",
                               bad, &error));
  } /* closed: checkpointed, the WAL removed */
  {
    /* Zero page 3 (inside table t's b-tree). */
    int fd = open(bad, O_WRONLY);
    guint8 zero[4096] = { 0 };
    ck_assert_int_eq(pwrite(fd, zero, sizeof zero, 2 * 4096), 4096);
    close(fd);
  }
  ck_assert(sqlenvfs_mkdir_p(outdir, 0755, NULL));
  ck_assert(!sqlenvfs_copy_db(bad, dst, FALSE, NULL, NULL, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, "not kept") != NULL);
  g_clear_error(&error);
  {
    g_autoptr(GDir) d = g_dir_open(outdir, 0, NULL);
    ck_assert(g_dir_read_name(d) == NULL); /* no copy, no temporary */
  }
}
END_TEST

START_TEST(test_cleanup_tmp)
{
  g_autofree char *dead = NULL, *alive = NULL, *other = NULL, *foreign = NULL;
  pid_t pid = fork();
  int status;
  if (pid == 0)
    _exit(0);
  waitpid(pid, &status, 0);
  dead = g_strdup_printf("%s/.tmp-20261128T161400Z-%d", tmp, (int)pid);
  alive = g_strdup_printf("%s/.tmp-app.db-%d", tmp, (int)getpid());
  other = g_build_filename(tmp, "20261128T161400Z", NULL);
  foreign = g_build_filename(tmp, ".tmp-notes", NULL);
  ck_assert(sqlenvfs_mkdir_p(dead, 0755, NULL));
  ck_assert(g_file_set_contents(alive, "x", -1, NULL));
  ck_assert(sqlenvfs_mkdir_p(other, 0755, NULL));
  ck_assert(g_file_set_contents(foreign, "not ours", -1, NULL));
  ck_assert_int_eq(sqlenvfs_copy_cleanup_tmp(tmp), 1);
  ck_assert(!g_file_test(dead, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(alive, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(other, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(foreign, G_FILE_TEST_EXISTS)); /* a name without a pid is not ours */
}
END_TEST

/* Temporaries of processes that died are found and removed; work in
 * progress, other names, symlinks and what they point to are left alone,
 * and a directory that is a symlink is refused. */
START_TEST(test_tmp_leftovers)
{
  g_autofree char *dead = NULL, *dead_journal = NULL, *alive = NULL, *other = NULL;
  g_autofree char *link = NULL, *target = NULL, *dirlink = NULL;
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
  GError *error = NULL;
  pid_t pid = fork();
  int status;
  if (pid == 0)
    _exit(0);
  waitpid(pid, &status, 0);
  dead = g_strdup_printf("%s/.tmp-refresh-app-%d", tmp, (int)pid);
  dead_journal = g_strdup_printf("%s-journal", dead);
  alive = g_strdup_printf("%s/.tmp-refresh-app-%d", tmp, (int)getpid());
  other = g_build_filename(tmp, ".tmp-refresh-app-notes", NULL);
  target = g_build_filename(tmp, "precious", NULL);
  link = g_strdup_printf("%s/.tmp-refresh-other-%d", tmp, (int)pid);
  dirlink = g_build_filename(tmp, "dirlink", NULL);
  ck_assert(g_file_set_contents(dead, "x", -1, NULL));
  ck_assert(g_file_set_contents(dead_journal, "x", -1, NULL));
  ck_assert(g_file_set_contents(alive, "x", -1, NULL));
  ck_assert(g_file_set_contents(other, "x", -1, NULL));
  ck_assert(g_file_set_contents(target, "x", -1, NULL));
  ck_assert_int_eq(symlink(target, link), 0);
  ck_assert_int_eq(symlink(tmp, dirlink), 0);

  /* Found without removing (what doctor does). */
  ck_assert_int_eq(sqlenvfs_tmp_leftovers(tmp, ".tmp-refresh-", FALSE, FALSE, found, &error), 2);
  ck_assert_no_error(error);
  ck_assert(g_file_test(dead, G_FILE_TEST_EXISTS));
  /* Never through a symlinked directory. */
  ck_assert_int_eq(sqlenvfs_tmp_leftovers(dirlink, ".tmp-", FALSE, TRUE, NULL, &error), -1);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_REFUSED);
  ck_assert(strstr(error->message, "symbolic link") != NULL);
  g_clear_error(&error);
  ck_assert(g_file_test(dead, G_FILE_TEST_EXISTS));
  /* Removed. */
  ck_assert_int_eq(sqlenvfs_tmp_leftovers(tmp, ".tmp-refresh-", FALSE, TRUE, NULL, &error), 2);
  ck_assert(!g_file_test(dead, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(dead_journal, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(alive, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(other, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(link, G_FILE_TEST_IS_SYMLINK));
  ck_assert(g_file_test(target, G_FILE_TEST_EXISTS));
}
END_TEST

/* New files are created exclusively, never through a symlink, with the
 * mode asked; directories get search where reading is allowed. */
START_TEST(test_create_file_and_modes)
{
  g_autofree char *path = g_build_filename(tmp, "new", NULL);
  g_autofree char *target = g_build_filename(tmp, "target", NULL);
  g_autofree char *data = NULL;
  GError *error = NULL;
  struct stat st;
  int fd;

  ck_assert_int_eq(sqlenvfs_mode_dir(0600), 0700);
  ck_assert_int_eq(sqlenvfs_mode_dir(0640), 0750);
  ck_assert_int_eq(sqlenvfs_mode_dir(0644), 0755);
  ck_assert_int_eq(sqlenvfs_mode_dir(0400), 0500);

  umask(022);
  ck_assert(g_file_set_contents(target, "keep", -1, NULL));
  ck_assert_int_eq(symlink(target, path), 0);
  /* The symlink (a leftover of this name) goes; its target is not written. */
  fd = sqlenvfs_create_file(path, 0640, &error);
  ck_assert_no_error(error);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(fstat(fd, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_int_eq(st.st_mode & 0777, 0640);
  close(fd);
  ck_assert(g_file_get_contents(target, &data, NULL, NULL));
  ck_assert_str_eq(data, "keep");
  /* refuse_symlink: a symlink is refused, a file or nothing is fine. */
  ck_assert_int_eq(symlink(target, path), -1); /* path is now a file */
  {
    g_autofree char *l = g_build_filename(tmp, "l", NULL);
    ck_assert_int_eq(symlink(target, l), 0);
    ck_assert(!sqlenvfs_refuse_symlink(l, "test", &error));
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_REFUSED);
    g_clear_error(&error);
    ck_assert(sqlenvfs_refuse_symlink(path, "test", &error));
    ck_assert(sqlenvfs_refuse_symlink(tmp, "test", &error));
    ck_assert_no_error(error);
  }
}
END_TEST

/* An atomic write removes the temporary a writer of the same file left
 * when it died, and names its own ".tmp-<name>-<pid>" (once). */
START_TEST(test_write_atomic_leftover)
{
  g_autofree char *file = g_build_filename(tmp, "MANIFEST", NULL);
  g_autofree char *dead = NULL, *data = NULL;
  GError *error = NULL;
  struct stat st;
  pid_t pid = fork();
  int status;
  if (pid == 0)
    _exit(0);
  waitpid(pid, &status, 0);
  dead = g_strdup_printf("%s/.tmp-MANIFEST-%d", tmp, (int)pid);
  ck_assert(g_file_set_contents(dead, "half", -1, NULL));
  umask(022);
  ck_assert(sqlenvfs_write_file_atomic(file, "whole", 5, 0600, &error));
  ck_assert_no_error(error);
  ck_assert(!g_file_test(dead, G_FILE_TEST_EXISTS));
  ck_assert(g_file_get_contents(file, &data, NULL, NULL));
  ck_assert_str_eq(data, "whole");
  ck_assert_int_eq(stat(file, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("copy");
  TCase *tc = tcase_create("copy");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_copy_result_and_crc);
  tcase_add_test(tc, test_refuses_existing_and_mode);
  tcase_add_test(tc, test_corrupt_source_leaves_nothing);
  tcase_add_test(tc, test_cleanup_tmp);
  tcase_add_test(tc, test_tmp_leftovers);
  tcase_add_test(tc, test_create_file_and_modes);
  tcase_add_test(tc, test_write_atomic_leftover);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
