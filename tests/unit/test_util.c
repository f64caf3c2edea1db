/* Unit tests for util: how the project opens databases, crc32, the
 * temporaries an interrupted command removes. */
#include "testutil.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* A failed integrity check is one line, however many lines SQLite gives:
 * the first three, and how many more. */
START_TEST(test_db_check_one_line)
{
  g_autofree char *p2 = g_build_filename(tmp, "leaky.db", NULL);
  GError *error = NULL;
  sqlite3 *db = sqlenvfs_db_open(p2, SQLENVFS_OPEN_CREATE, &error);
  ck_assert_no_error(error);
  /* 40 pages on the freelist, then the header made to forget them: each
   * one is "never used". */
  ck_assert(sqlenvfs_db_exec(db, "CREATE TABLE big(x); WITH RECURSIVE n(i) AS (SELECT 1 "
                             "UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO big "
                             "SELECT zeroblob(4000) FROM n; DROP TABLE big;", p2, &error));
  ck_assert_no_error(error);
  sqlite3_close(db);
  {
    int fd = open(p2, O_WRONLY);
    guint8 zero[8] = { 0 };
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, zero, sizeof zero, 32), (ssize_t)sizeof zero);
    close(fd);
  }
  db = sqlenvfs_db_open(p2, SQLENVFS_OPEN_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_db_check(db, FALSE, p2, &error));
  ck_assert(error != NULL);
  ck_assert_msg(strchr(error->message, '\n') == NULL, "more than one line: %s", error->message);
  ck_assert_msg(strstr(error->message, "never used") != NULL &&
                strstr(error->message, " more)") != NULL, "%s", error->message);
  g_clear_error(&error);
  sqlite3_close(db);
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

/* Whether the mapping holding @addr has huge pages advised (VmFlags hg). */
static gboolean
advised_huge(gconstpointer addr)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  gboolean in = FALSE;
  ck_assert(g_file_get_contents("/proc/self/smaps", &text, NULL, NULL));
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    char *end;
    guint64 lo = g_ascii_strtoull(lines[i], &end, 16), hi;
    if (end != lines[i] && *end == '-') { /* "lo-hi perms ...": a mapping */
      hi = g_ascii_strtoull(end + 1, NULL, 16);
      in = (guintptr)addr >= lo && (guintptr)addr < hi;
    } else if (in && g_str_has_prefix(lines[i], "VmFlags:")) {
      return strstr(lines[i], " hg") != NULL;
    }
  }
  return FALSE;
}

/* Large buffers ask for huge pages unless a long-running process turned
 * that off; kept buffers always do, on a 2 MiB boundary. */
START_TEST(test_alloc_large_pages)
{
  gsize len = 3 << 20;
  guint8 *a = sqlenvfs_alloc_large(len), *b, *k = sqlenvfs_alloc_kept(len);
  memset(a, 1, len);
  ck_assert(advised_huge(a + len / 2));
  g_free(a);
  sqlenvfs_set_large_pages(FALSE);
  b = sqlenvfs_alloc_large(len);
  memset(b, 2, len);
  ck_assert(!advised_huge(b + len / 2));
  g_free(b);
  sqlenvfs_set_large_pages(TRUE);
  ck_assert_uint_eq((guintptr)k % (2 << 20), 0);
  memset(k, 3, 4 << 20); /* rounded up to 4 MiB, all of it usable */
  ck_assert(advised_huge(k) && advised_huge(k + (4 << 20) - 1));
}
END_TEST

static void
touch(const char *dir, const char *name)
{
  g_autofree char *p = g_build_filename(dir, name, NULL);
  ck_assert(g_file_set_contents(p, "x", 1, NULL));
}

/* What an interrupted command line removes (the handler's call): tracked
 * files with their sidecars, tracked directory trees, never
 * what a symlink points to, nothing untracked. */
START_TEST(test_tmp_tracked)
{
  g_autofree char *file = g_build_filename(tmp, ".tmp-a.db-1", NULL);
  g_autofree char *dir = g_build_filename(tmp, ".tmp-entry-1", NULL);
  g_autofree char *real = g_build_filename(tmp, "real", NULL);
  g_autofree char *link = g_build_filename(tmp, ".tmp-link-1", NULL);
  g_autofree char *kept = g_build_filename(tmp, ".tmp-b.db-1", NULL);
  int h[4];

  touch(tmp, ".tmp-a.db-1");
  touch(tmp, ".tmp-a.db-1-journal");
  touch(tmp, ".tmp-a.db-1-wal");
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  touch(dir, "app.db");
  touch(dir, ".tmp-app.db-1");
  touch(dir, "MANIFEST");
  ck_assert_int_eq(mkdir(real, 0700), 0);
  touch(real, "precious.db");
  ck_assert_int_eq(symlink(real, link), 0);
  {
    /* A tree, as a remote restore's: directories within it are removed,
     * a link within it as a link. */
    g_autofree char *a = g_build_filename(dir, "root", NULL);
    g_autofree char *b = g_build_filename(a, "wal_archives", NULL);
    g_autofree char *inner = g_build_filename(a, "link", NULL);
    ck_assert_int_eq(mkdir(a, 0700), 0);
    ck_assert_int_eq(mkdir(b, 0700), 0);
    touch(b, "0000000000000001.seg");
    ck_assert_int_eq(symlink(real, inner), 0);
  }
  touch(tmp, ".tmp-b.db-1");

  h[0] = sqlenvfs_tmp_track(file, FALSE);
  h[1] = sqlenvfs_tmp_track(dir, TRUE);
  h[2] = sqlenvfs_tmp_track(link, TRUE);
  h[3] = sqlenvfs_tmp_track(kept, FALSE);
  for (int i = 0; i < 4; i++)
    ck_assert_int_ge(h[i], 0);
  sqlenvfs_tmp_untrack(h[3]);
  sqlenvfs_tmp_remove_tracked();

  ck_assert(!g_file_test(file, G_FILE_TEST_EXISTS));
  {
    g_autofree char *j = g_strconcat(file, "-journal", NULL);
    g_autofree char *w = g_strconcat(file, "-wal", NULL);
    g_autofree char *p = g_build_filename(real, "precious.db", NULL);
    ck_assert(!g_file_test(j, G_FILE_TEST_EXISTS) && !g_file_test(w, G_FILE_TEST_EXISTS));
    ck_assert(g_file_test(p, G_FILE_TEST_IS_REGULAR));
  }
  ck_assert(!g_file_test(dir, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(link, G_FILE_TEST_IS_SYMLINK));
  ck_assert(g_file_test(kept, G_FILE_TEST_IS_REGULAR));
  sqlenvfs_tmp_untrack(h[0]);
  sqlenvfs_tmp_untrack(h[1]);
  sqlenvfs_tmp_untrack(h[2]);
  unlink(link);
}
END_TEST

/* A temporary whose name a process that died left, with a hot journal
 * beside it (a previous process with the same pid): creating the new file
 * removes the journal too, so that SQLite does not play it back into it. */
START_TEST(test_create_file_leftover_journal)
{
  g_autofree char *t = g_build_filename(tmp, ".tmp-x.db-4242", NULL);
  g_autofree char *journal = g_strconcat(t, "-journal", NULL);
  g_autofree char *want = NULL;
  g_autoptr(sqlite3) db = NULL;
  GError *error = NULL;
  gsize len = 0;
  gint64 n = -1;
  pid_t child = fork();
  int fd, status;

  ck_assert_int_ge(child, 0);
  if (child == 0) {
    /* Rollback mode, a transaction cut short after its changes spilled
     * into the file: its journal is hot. */
    sqlite3 *c = NULL;
    if (sqlite3_open(t, &c) != SQLITE_OK ||
        sqlite3_exec(c, "PRAGMA journal_mode=DELETE; CREATE TABLE old (v);"
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                        "WHERE i < 2000) INSERT INTO old SELECT randomblob(300) FROM n;"
                        "PRAGMA cache_size=1; BEGIN; UPDATE old SET v = 1; DELETE FROM old;",
                     NULL, NULL, NULL) != SQLITE_OK)
      _exit(1);
    _exit(0);
  }
  ck_assert_int_eq(waitpid(child, &status, 0), child);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert(g_file_test(journal, G_FILE_TEST_IS_REGULAR));

  fd = sqlenvfs_create_file(t, 0600, &error);
  ck_assert_no_error(error);
  ck_assert(!g_file_test(journal, G_FILE_TEST_EXISTS));
  ck_assert(g_file_get_contents(path, &want, &len, NULL));
  ck_assert_int_eq(write(fd, want, len), (gssize)len);
  close(fd);
  db = sqlenvfs_db_open(t, SQLENVFS_OPEN_READONLY, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_db_query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 't'", &n, t,
                                  &error));
  ck_assert_no_error(error);
  ck_assert_int_eq(n, 1);
  g_clear_pointer(&db, sqlenvfs_sqlite3_close);
  {
    g_autofree char *got = NULL;
    gsize got_len = 0;
    ck_assert(g_file_get_contents(t, &got, &got_len, NULL));
    ck_assert(got_len == len && memcmp(got, want, len) == 0);
  }
}
END_TEST

/* An error's hint fits its cause: a read-only filesystem is not a matter
 * of ownership or permissions. */
START_TEST(test_error_hints)
{
  GError *error = NULL;
  ck_assert(!sqlenvfs_error_errno(&error, EROFS, "open", "/x/store.lock"));
  ck_assert_ptr_nonnull(strstr(error->message, "mounted read-only: remount it read-write"));
  ck_assert_ptr_null(strstr(error->message, "permissions"));
  g_clear_error(&error);
  ck_assert(!sqlenvfs_error_errno(&error, EACCES, "open", "/nonexistent-dir/x"));
  ck_assert_ptr_nonnull(strstr(error->message, "check ownership and permissions"));
  g_clear_error(&error);
  ck_assert(!sqlenvfs_error_errno(&error, ENOSPC, "write", "/x/y"));
  ck_assert_ptr_nonnull(strstr(error->message, "free some space"));
  g_clear_error(&error);
  /* SQLite's "readonly database" says neither whose nor what to check. */
  ck_assert(!sqlenvfs_error_sqlite(&error, NULL, SQLITE_READONLY, "install into", "/"));
  ck_assert_ptr_nonnull(strstr(error->message, "ownership and permissions"));
  g_clear_error(&error);
}
END_TEST

/* The database a file of a database directory belongs to, by its name. */
START_TEST(test_db_of_file)
{
  static const struct { const char *name, *db; } cases[] = {
    { "app.db", "app" },          { "app.db-wal", "app" },   { "app.db-shm", "app" },
    { "sales 2026.db-journal", "sales 2026" },                { "a.db.db", "a.db" },
    { ".db", NULL },              { "app.db-wal2", NULL },   { "app", NULL },
    { "app.dbx", NULL },          { ".tmp-app.db-1234", NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *db = sqlenvfs_db_of_file(cases[i].name);
    ck_assert_msg(g_strcmp0(db, cases[i].db) == 0, "%s: %s", cases[i].name, db ? db : "NULL");
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
  tcase_add_test(tc, test_db_check_one_line);
  tcase_add_test(tc, test_crc32_combine);
  tcase_add_test(tc, test_alloc_large_pages);
  tcase_add_test(tc, test_tmp_tracked);
  tcase_add_test(tc, test_create_file_leftover_journal);
  tcase_add_test(tc, test_error_hints);
  tcase_add_test(tc, test_db_of_file);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
