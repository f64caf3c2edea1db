/* Unit tests for testhooks: each hook reads its variable, and anything but
 * a number leaves it off. */
#include "testutil.h"

#include "sqlenvfs/testhooks.h"

typedef guint (*HookFunc)(void);

static const struct {
  const char *env;
  HookFunc get;
} hooks[] = {
  { SQLENVFS_TEST_STORE_DELAY_ENV, sqlenvfs_testhook_store_delay_ms },
  { SQLENVFS_TEST_PITR_DELAY_ENV, sqlenvfs_testhook_pitr_delay_ms },
  { SQLENVFS_TEST_PITR_CHECK_ENV, sqlenvfs_testhook_pitr_check_ms },
  { SQLENVFS_TEST_RECOVER_DELAY_ENV, sqlenvfs_testhook_recover_delay_ms },
  { SQLENVFS_TEST_INIT_DELAY_ENV, sqlenvfs_testhook_init_delay_ms },
};

START_TEST(test_values)
{
  for (gsize i = 0; i < G_N_ELEMENTS(hooks); i++) {
    g_unsetenv(hooks[i].env);
    ck_assert_uint_eq(hooks[i].get(), 0);
    g_setenv(hooks[i].env, "250", TRUE);
    ck_assert_uint_eq(hooks[i].get(), 250);
    /* Each hook reads its own variable only. */
    for (gsize k = 0; k < G_N_ELEMENTS(hooks); k++)
      if (k != i)
        ck_assert_uint_eq(hooks[k].get(), 0);
    g_unsetenv(hooks[i].env);
    ck_assert_uint_eq(hooks[i].get(), 0);
  }
}
END_TEST

START_TEST(test_not_a_number)
{
  static const char *const bad[] = { "", "x", "12ms", "-5", " 7", "99999999999999999999" };
  for (gsize i = 0; i < G_N_ELEMENTS(hooks); i++) {
    for (gsize b = 0; b < G_N_ELEMENTS(bad); b++) {
      g_setenv(hooks[i].env, bad[b], TRUE);
      ck_assert_msg(hooks[i].get() == 0, "%s=\"%s\"", hooks[i].env, bad[b]);
    }
    g_unsetenv(hooks[i].env);
  }
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("testhooks");
  TCase *tc = tcase_create("testhooks");
  tcase_add_test(tc, test_values);
  tcase_add_test(tc, test_not_a_number);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
