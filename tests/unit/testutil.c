#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/util.h"

void
testutil_wait_capturing(SqlenvfsArchiver *a, const char *db)
{
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  for (;;) {
    g_autoptr(GPtrArray) st = sqlenvfs_archiver_status(a);
    for (guint i = 0; i < st->len; i++) {
      const SqlenvfsArchiverDbStatus *s = st->pdata[i];
      if (g_strcmp0(s->db, db) == 0 && s->state == SQLENVFS_ARCHIVER_CAPTURING &&
          !s->snapshot_pending)
        return;
    }
    ck_assert_msg(g_get_monotonic_time() < deadline,
                  "the archiver did not start capturing %s within 10 s", db);
    g_usleep(20 * 1000);
  }
}

static gpointer
archiver_thread(gpointer a)
{
  return GINT_TO_POINTER(sqlenvfs_archiver_run(a, NULL));
}

void
testutil_archive_while(SqlenvfsRoot *root, void (*fn)(gpointer user), gpointer user)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiver) a = sqlenvfs_archiver_new(root, &error);
  GThread *th;
  ck_assert_msg(a != NULL, "archiver: %s", error ? error->message : "?");
  th = g_thread_new("archiver", archiver_thread, a);
  testutil_wait_capturing(a, "app");
  if (fn != NULL)
    fn(user);
  ck_assert(sqlenvfs_archiver_sync(a, "app", 0, &error));
  sqlenvfs_archiver_stop(a);
  ck_assert(GPOINTER_TO_INT(g_thread_join(th)));
}

/* The temporary directories are "sqlenvfs-test-XXXXXX-<pid>" in
 * g_get_tmp_dir(), <pid> the process that made one (with CK_FORK, the
 * test's own child): sqlenvfs_tmp_leftovers tells those whose process is
 * gone, which a timeout's kill or a failed assertion left behind. */
#define TMPDIR_PREFIX "sqlenvfs-test-"

char *
testutil_tmpdir(void)
{
  GError *error = NULL;
  g_autofree char *tmpl = g_strdup_printf(TMPDIR_PREFIX "XXXXXX-%d", (int)getpid());
  char *dir = g_dir_make_tmp(tmpl, &error);
  ck_assert_msg(dir != NULL, "mkdtemp: %s", error ? error->message : "");
  return dir;
}

/* Remove the directories of testutil_tmpdir whose process is gone. */
static void
remove_stale_tmpdirs(void)
{
  g_autoptr(GError) error = NULL;
  if (sqlenvfs_tmp_leftovers(g_get_tmp_dir(), TMPDIR_PREFIX, TRUE, TRUE, NULL, &error) < 0)
    g_printerr("remove stale test directories: %s\n", error->message);
}

void
testutil_tmpdir_cleanup(char *dir)
{
  if (dir) {
    sqlenvfs_rm_rf(dir, NULL);
    g_free(dir);
  }
}

static gint64 fake_now;

static gint64
fake_clock(void)
{
  return fake_now;
}

void
testutil_clock_set(gint64 us)
{
  fake_now = us;
  sqlenvfs_clock_set(fake_clock);
}

void
testutil_clock_reset(void)
{
  sqlenvfs_clock_set(NULL);
}

int
testutil_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  int failed;
  /* Those of earlier runs killed by meson's timeout, then those of this
   * run's tests that Check killed or that failed before their cleanup. */
  remove_stale_tmpdirs();
  srunner_run_all(sr, CK_NORMAL);
  remove_stale_tmpdirs();
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void
testutil_exec(sqlite3 *db, const char *sql)
{
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
}

/* The figure after @key in /proc/self/io. */
static guint64
proc_io(const char *key)
{
  g_autofree char *io = NULL;
  const char *p;
  ck_assert(g_file_get_contents("/proc/self/io", &io, NULL, NULL));
  p = strstr(io, key);
  ck_assert_ptr_nonnull(p);
  return g_ascii_strtoull(p + strlen(key), NULL, 10);
}

guint64
testutil_bytes_read(void)
{
  return proc_io("rchar: ");
}

guint64
testutil_read_calls(void)
{
  return proc_io("syscr: ");
}

void
testutil_rewrite_archive(const char *dir, const char *keep_as, guint32 version,
                         void (*edit)(SqlenvfsArchiveEntry *e, gpointer user), gpointer user)
{
  g_autofree char *tmpdir = g_strconcat(dir, ".new", NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsArchiveWriter) w = NULL;
  GError *error = NULL;

  a = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  w = sqlenvfs_archive_writer_open(tmpdir, 64 << 20, 0600, &error);
  ck_assert_no_error(error);
  if (version != 0)
    sqlenvfs_archive_writer_set_version(w, version);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
    SqlenvfsArchiveEntry e = *sqlenvfs_archive_entry(a, i);
    ck_assert_uint_ne(e.seq, 0); /* no damage */
    ck_assert_uint_eq(sqlenvfs_archive_writer_last(w) ? sqlenvfs_archive_writer_last(w)->seq + 1 : 1,
                      e.seq);
    if (e.type == SQLENVFS_ARCHIVE_COMMIT) {
      g_autofree guint8 *pages = NULL;
      g_autofree guint32 *pgnos = sqlenvfs_archive_read_commit_pages(a, &e, &pages, &error);
      ck_assert_no_error(error);
      if (edit != NULL)
        edit(&e, user);
      ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
      ck_assert(sqlenvfs_archive_writer_add_pages(w, pages, (gsize)e.n_pages * e.page_size,
                                                  &error));
      ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
    } else if (e.type == SQLENVFS_ARCHIVE_GAP) {
      g_autofree char *text = sqlenvfs_archive_read_gap_text(a, &e, &error);
      ck_assert(sqlenvfs_archive_writer_add_gap(w, e.time, e.aux_time, e.reason, text, &e,
                                                &error));
    } else {
      /* One segment: a SEAL would be renumbered by the rewrite. */
      ck_assert_int_eq(e.type, SQLENVFS_ARCHIVE_OUTAGE);
      ck_assert(sqlenvfs_archive_writer_add_outage(w, e.aux_time, e.time, &error));
    }
    ck_assert_no_error(error);
    ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, e.seq);
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, sqlenvfs_archive_alive(a), 0, &error));
  ck_assert_no_error(error);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert_int_eq(rename(dir, keep_as), 0);
  ck_assert_int_eq(rename(tmpdir, dir), 0);
}
