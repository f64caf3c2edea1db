#include "testutil.h"

#include <stdlib.h>

#include "sqlenvfs/util.h"

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
