/*
 * testhooks.c — the test hooks (testhooks.h): one accessor per variable.
 */
#include "sqlenvfs/testhooks.h"

/* The value of @name as milliseconds: 0 when unset, empty, not a number or
 * out of range. */
static guint
env_ms(const char *name)
{
  const char *v = g_getenv(name);
  guint64 ms = 0;
  if (v == NULL || *v == '\0' || !g_ascii_string_to_unsigned(v, 10, 0, G_MAXUINT, &ms, NULL))
    return 0;
  return (guint)ms;
}

guint
sqlenvfs_testhook_store_delay_ms(void)
{
  return env_ms(SQLENVFS_TEST_STORE_DELAY_ENV);
}

guint
sqlenvfs_testhook_pitr_delay_ms(void)
{
  return env_ms(SQLENVFS_TEST_PITR_DELAY_ENV);
}

guint
sqlenvfs_testhook_archive_open_delay_ms(void)
{
  return env_ms(SQLENVFS_TEST_ARCHIVE_OPEN_DELAY_ENV);
}

guint
sqlenvfs_testhook_pitr_idle_memory(void)
{
  return env_ms(SQLENVFS_TEST_PITR_IDLE_MEMORY_ENV);
}

guint
sqlenvfs_testhook_diff_doc_max(void)
{
  return env_ms(SQLENVFS_TEST_DIFF_DOC_MAX_ENV);
}

guint
sqlenvfs_testhook_pitr_check_ms(void)
{
  return env_ms(SQLENVFS_TEST_PITR_CHECK_ENV);
}

guint
sqlenvfs_testhook_recover_delay_ms(void)
{
  return env_ms(SQLENVFS_TEST_RECOVER_DELAY_ENV);
}

guint
sqlenvfs_testhook_init_delay_ms(void)
{
  return env_ms(SQLENVFS_TEST_INIT_DELAY_ENV);
}

guint
sqlenvfs_testhook_remote_range_bytes(void)
{
  return env_ms(SQLENVFS_TEST_REMOTE_RANGE_ENV);
}
