/* Unit tests for the shipper's removal queue (.sqlenvfs/replica-remove):
 * prune appends the keys of what it removed, and the shipper takes the
 * queue by renaming it, then sends the deletions. No line may land in a
 * queue once it is taken. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/shipper.h"
#include "../../src/core/shipper_int.h"

static char *dir;
static char *queue, *taking;

static void
setup(void)
{
  dir = testutil_tmpdir();
  queue = g_build_filename(dir, "replica-remove", NULL);
  taking = g_strconcat(queue, ".taking", NULL);
}

static void
teardown(void)
{
  sqlenvfs_shipper_queue_hook = NULL;
  g_free(queue);
  g_free(taking);
  testutil_tmpdir_cleanup(dir);
}

static char *
contents(const char *path)
{
  char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return g_strdup("");
  return text;
}

/* The shipper taking the queue at the worst moment: after an append
 * opened it, before the append wrote. */
static void
take_now(const char *path)
{
  GError *error = NULL;
  sqlenvfs_shipper_queue_hook = NULL;
  ck_assert(sqlenvfs_shipper_queue_take(path, taking, &error));
  ck_assert_no_error(error);
}

START_TEST(test_append_after_take_goes_to_a_new_queue)
{
  GError *error = NULL;
  g_autofree char *sent = NULL, *left = NULL;

  ck_assert(sqlenvfs_shipper_queue_append(queue, "k1\n", 3, &error));
  ck_assert_no_error(error);
  sqlenvfs_shipper_queue_hook = take_now;
  ck_assert(sqlenvfs_shipper_queue_append(queue, "k2\n", 3, &error));
  ck_assert_no_error(error);
  sent = contents(taking);
  left = contents(queue);
  /* What was taken is what the shipper read; k2 waits for the next round. */
  ck_assert_str_eq(sent, "k1\n");
  ck_assert_str_eq(left, "k2\n");
}
END_TEST

START_TEST(test_take_of_no_queue)
{
  GError *error = NULL;
  ck_assert(sqlenvfs_shipper_queue_take(queue, taking, &error));
  ck_assert_no_error(error);
  ck_assert(!g_file_test(taking, G_FILE_TEST_EXISTS));
  ck_assert(sqlenvfs_shipper_queue_append(queue, "a\n", 2, &error));
  ck_assert(sqlenvfs_shipper_queue_append(queue, "b\n", 2, &error));
  ck_assert(sqlenvfs_shipper_queue_take(queue, taking, &error));
  ck_assert_no_error(error);
  ck_assert(!g_file_test(queue, G_FILE_TEST_EXISTS));
  {
    g_autofree char *sent = contents(taking);
    ck_assert_str_eq(sent, "a\nb\n");
  }
}
END_TEST

/* A queue that is another name of a file (a hard link to production's
 * database) is never appended to: refused, naming it, the file unchanged. */
START_TEST(test_append_refuses_a_hard_link)
{
  g_autofree char *prod = g_build_filename(dir, "app.db", NULL);
  g_autofree char *after = NULL;
  GError *error = NULL;

  ck_assert(g_file_set_contents(prod, "SQLite format 3", -1, NULL));
  ck_assert_int_eq(link(prod, queue), 0);
  ck_assert(!sqlenvfs_shipper_queue_append(queue, "k1\n", 3, &error));
  ck_assert(error != NULL && error->code == SQLENVFS_ERROR_REFUSED);
  ck_assert(strstr(error->message, "hard link") != NULL);
  g_clear_error(&error);
  after = contents(prod);
  ck_assert_str_eq(after, "SQLite format 3");
}
END_TEST

/* The settings file rewritten while a prune runs (its replica gone from
 * it): the prune's check of what is shipped refuses, never takes it for a
 * root with no replica, which would remove what was not shipped. */
START_TEST(test_prune_refuses_settings_changed_under_it)
{
  g_autofree char *root_dir = g_build_filename(dir, "root", NULL);
  g_autofree char *prod = g_build_filename(root_dir, "data", "prod", NULL);
  g_autofree char *conf = g_build_filename(root_dir, "sqlenvfs.conf", NULL);
  g_autoptr(GPtrArray) segs = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(SqlenvfsRoot) root = NULL;
  GError *error = NULL;

  ck_assert_int_eq(g_mkdir_with_parents(prod, 0700), 0);
  ck_assert(g_file_set_contents(conf, "[replica]\nurl = s3://b/p\n", -1, NULL));
  root = sqlenvfs_root_open(root_dir, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(sqlenvfs_root_settings(root)->replica_url, "s3://b/p");
  g_ptr_array_add(segs, g_build_filename(root_dir, "backups", "prod", "wal_archives", "app",
                                         "0000000000000001.seg", NULL));
  ck_assert(g_file_set_contents(conf, "", -1, NULL));
  ck_assert(!sqlenvfs_shipper_check_prune(root, NULL, segs, &error));
  ck_assert_msg(error != NULL && strstr(error->message, "changed while the prune ran") != NULL,
                "%s", error ? error->message : "no error");
  g_clear_error(&error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("shipper");
  TCase *tc = tcase_create("queue");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_append_after_take_goes_to_a_new_queue);
  tcase_add_test(tc, test_take_of_no_queue);
  tcase_add_test(tc, test_append_refuses_a_hard_link);
  tcase_add_test(tc, test_prune_refuses_settings_changed_under_it);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
