#include "testutil.h"

#include <stdlib.h>

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

char *
testutil_tmpdir(void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp("sqlenvfs-test-XXXXXX", &error);
  ck_assert_msg(dir != NULL, "mkdtemp: %s", error ? error->message : "");
  return dir;
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
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

guint64
testutil_bytes_read(void)
{
  g_autofree char *io = NULL;
  const char *p;
  ck_assert(g_file_get_contents("/proc/self/io", &io, NULL, NULL));
  p = strstr(io, "rchar: ");
  ck_assert_ptr_nonnull(p);
  return g_ascii_strtoull(p + 7, NULL, 10);
}
