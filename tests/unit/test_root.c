/* Unit tests for root: discovery, layout, settings, database names, locks. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"

static char *tmp;

static void
setup(void)
{
  tmp = testutil_tmpdir();
  g_unsetenv("SQLENVFS_ROOT");
}

static void
teardown(void)
{
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

static SqlenvfsRoot *
make_root(void)
{
  GError *error = NULL;
  SqlenvfsRoot *root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  return root;
}

START_TEST(test_missing_root)
{
  g_autofree char *missing = g_build_filename(tmp, "nope", NULL);
  GError *error = NULL;
  ck_assert(sqlenvfs_root_open(missing, SQLENVFS_ROOT_MUST_EXIST, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  ck_assert(strstr(error->message, missing) != NULL);
  ck_assert(strstr(error->message, "sqlenvfs init") != NULL);
  g_error_free(error);
}
END_TEST

START_TEST(test_not_a_root)
{
  GError *error = NULL;
  ck_assert(sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error) == NULL);
  ck_assert(strstr(error->message, "data/prod") != NULL);
  g_error_free(error);
}
END_TEST

START_TEST(test_env_and_layout)
{
  g_autoptr(SqlenvfsRoot) made = make_root();
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *db = NULL;
  GError *error = NULL;

  g_setenv("SQLENVFS_ROOT", tmp, TRUE);
  root = sqlenvfs_root_open(NULL, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(g_str_has_suffix(sqlenvfs_root_path(root, SQLENVFS_DIR_DAILY), "/backups/prod/daily"));
  ck_assert(g_file_test(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), G_FILE_TEST_IS_DIR));
  db = sqlenvfs_root_prod_db(root, "app");
  ck_assert(g_str_has_suffix(db, "/data/prod/app.db"));
  ck_assert_str_eq(sqlenvfs_root_settings(root)->default_db, "app");
  ck_assert_int_eq(sqlenvfs_root_settings(root)->daily_keep_days, 7);
}
END_TEST

/* TRUE when the root at tmp opens but its settings file has an error,
 * which *error then holds (as a prune, which needs every section, gets). */
static gboolean
settings_refused(GError **error)
{
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, error);
  ck_assert_no_error(*error);
  return !sqlenvfs_root_settings_need(root, NULL, error);
}

START_TEST(test_settings)
{
  g_autoptr(SqlenvfsRoot) made = make_root();
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
  GError *error = NULL;

  g_file_set_contents(conf, "[sqlenvfs]\ndefault-db=vessels\n[retention]\ndaily-keep-days=3\n",
                      -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(sqlenvfs_root_settings(root)->default_db, "vessels");
  ck_assert_int_eq(sqlenvfs_root_settings(root)->daily_keep_days, 3);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->snapshot_keep_days, 7);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->max_wal_bytes, 0); /* no limit */
  g_clear_pointer(&root, sqlenvfs_root_free);
  g_file_set_contents(conf, "[archive]\nmax-wal-bytes=1073741824\n", -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->max_wal_bytes, 1073741824);
  /* Sizes in bytes take K, M, G, T (with iB or B: powers of 1024 all). */
  g_file_set_contents(conf,
                      "[archive]\nmax-wal-bytes=64M\nsegment-max-bytes=1GiB\n"
                      "[cache]\nmax-bytes = 2kb\nmin-free-bytes=3T\n"
                      "[retention]\nsnapshot-keep-count=4\npitr-keep-days=5\n"
                      "[doctor]\nbackup-max-age-hours=6\narchive-lag-warn-seconds=7\n",
                      -1, NULL);
  g_clear_pointer(&root, sqlenvfs_root_free);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->max_wal_bytes, 64 << 20);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->segment_max_bytes, 1 << 30);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->cache_max_bytes, 2048);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->cache_min_free_bytes,
                   G_GINT64_CONSTANT(3) << 40);
  /* Each number lands in its own field, an int or a gint64, and no other. */
  ck_assert_int_eq(sqlenvfs_root_settings(root)->snapshot_keep_days, 7);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->snapshot_keep_count, 4);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->pitr_keep_days, 5);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->size_warn_bytes, G_GINT64_CONSTANT(10000000000));
  ck_assert_int_eq(sqlenvfs_root_settings(root)->backup_max_age_hours, 6);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->archive_lag_warn_seconds, 7);
  g_file_set_contents(conf, "[archive]\nmax-wal-bytes=12QB\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "12QB is not a whole number of bytes") != NULL, "%s",
                error->message);
  g_clear_error(&error);
  g_file_set_contents(conf, "[archive]\nmax-wal-bytes=9000000T\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "out of range") != NULL, "%s", error->message);
  g_clear_error(&error);
  g_file_set_contents(conf, "[archive]\ncheckpoint-pages=1K\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "checkpoint-pages=1K is not a whole number (") != NULL,
                "%s", error->message);
  g_clear_error(&error);
  g_file_set_contents(conf, "[archive]\nmax-wal-bytes=-1\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "max-wal-bytes=-1 is out of range") != NULL, "%s",
                error->message);
  g_clear_error(&error);

  g_file_set_contents(conf, "[retention]\ndaily-keep-days=seven\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "daily-keep-days=seven") != NULL);
  ck_assert(strstr(error->message, conf) != NULL);
  ck_assert(strstr(error->message, "not a whole number") != NULL);
  g_clear_error(&error);

  /* A whole number out of range: the message is about the range, not the form. */
  g_file_set_contents(conf, "[archive]\nsegment-max-bytes=262144\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_msg(strstr(error->message, "segment-max-bytes=262144 is out of range") != NULL, "%s",
                error->message);
  ck_assert(strstr(error->message, "allowed range is 1048576 to 1099511627776") != NULL);
  ck_assert(strstr(error->message, "whole number") == NULL);
  g_clear_error(&error);
  g_file_set_contents(conf, "[retention]\ndaily-keep-days=99999999999999999999\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert(strstr(error->message, "out of range") != NULL);
  g_clear_error(&error);

  g_file_set_contents(conf, "[sqlenvfs\n", -1, NULL);
  ck_assert(settings_refused(&error));
  g_clear_error(&error);

  /* A misspelt setting or section is refused, not left out: the message
   * names it and what it could have been. */
  g_file_set_contents(conf, "[retention]\ndaily-keep-days=3\nkeep-daily=7\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert_msg(strstr(error->message, "[retention] keep-daily is not a setting") != NULL, "%s",
                error->message);
  ck_assert(strstr(error->message, conf) != NULL);
  ck_assert(strstr(error->message, "daily-keep-count") != NULL);
  g_clear_error(&error);
  g_file_set_contents(conf, "[archives]\nmax-wal-bytes=1\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "[archives] is not a section") != NULL, "%s",
                error->message);
  ck_assert(strstr(error->message, "[archive],") != NULL);
  g_clear_error(&error);
  /* A setting written twice (the last would win in silence), also in a
   * section written twice, and one with a locale suffix (kept apart by
   * GKeyFile, so never read) are refused, naming their lines. */
  g_file_set_contents(conf, "[archive]\nsegment-max-records=40\n[retention]\n"
                            "daily-keep-days=3\n[archive]\n segment-max-records = 50\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "[archive] segment-max-records is set twice, on lines 2 "
                                       "and 6") != NULL, "%s", error->message);
  g_clear_error(&error);
  g_file_set_contents(conf, "[archive]\nsegment-max-records[de]=40\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "line 2: [archive] segment-max-records[de] has a locale "
                                       "suffix") != NULL, "%s", error->message);
  g_clear_error(&error);
  /* A comment after a value, which GKeyFile reads as part of it (a path
   * would name another file), is refused naming its line; a '#' with no
   * blank before it is part of the value. */
  g_file_set_contents(conf, "[replica]\nurl=s3://b/p#1\ncredentials-file = /etc/c    # 600\n",
                      -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "line 3: [replica] credentials-file has a comment after "
                                       "its value") != NULL, "%s", error->message);
  g_clear_error(&error);
  g_file_set_contents(conf, "[retention]\ndaily-keep-days=7\t# a week\n", -1, NULL);
  ck_assert(settings_refused(&error));
  ck_assert_msg(strstr(error->message, "line 2: [retention] daily-keep-days has a comment") !=
                NULL, "%s", error->message);
  g_clear_error(&error);
  /* Every documented setting is known (values within their ranges). */
  g_file_set_contents(conf,
                      "# comments are fine\n"
                      "[sqlenvfs]\ndefault-db=app\n"
                      "[retention]\ndaily-keep-days=1\ndaily-keep-count=1\n"
                      "snapshot-keep-days=1\nsnapshot-keep-count=1\npitr-keep-days=1\n"
                      "[archive]\nsegment-max-bytes=1048576\nsegment-max-records=16\n"
                      "checkpoint-pages=1\nmax-wal-bytes=0\n"
                      "[cache]\nmax-bytes=1\nmin-free-bytes=1\n"
                      "[mount]\nlog-max-bytes=4096\n"
                      "[doctor]\nsize-warn-bytes=1\nbackup-max-age-hours=1\n"
                      "archive-lag-warn-seconds=1\nacknowledged-bugs=wal-reset\n"
                      "[replica]\nurl=s3://bkt/p\nendpoint=http://localhost:1\nregion=r\n"
                      "credentials-file=/c\nprofile=p\nsync-interval=1\nverify-tls=true\n"
                      "connect-timeout=1\nlow-speed-time=1\nmax-retries=1\n"
                      "backoff-base-ms=1\nbackoff-max-ms=1\nlease-seconds=60\n",
                      -1, NULL);
  g_clear_pointer(&root, sqlenvfs_root_free);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  /* A [replica] value a replica's commands would refuse is refused by every
   * command, naming its line; so is a bug the doctor does not know, and a
   * line that is not UTF-8 text. */
  {
    static const char *const bad[][2] = {
      { "[replica]\nsync-interval = abc\n", "line 2: [replica] sync-interval=abc is not" },
      { "[replica]\n\nsync-interval=0\n", "line 3: [replica] sync-interval=0 is not" },
      { "[replica]\nsync-interval=99999\n", "sync-interval=99999 is not a whole number" },
      { "[replica]\nmax-retries=21\n", "max-retries=21 is not a whole number from 0 to 20" },
      { "[replica]\nlease-seconds=5\n", "lease-seconds=5 is not a whole number from 10" },
      { "[replica]\nverify-tls=maybe\n", "verify-tls=maybe is not true or false" },
      { "[replica]\nendpoint=ftp://h\n", "endpoint=ftp://h is not http(s)://host[:port]" },
      { "[replica]\nendpoint=http://h :9000\n", "endpoint=http://h :9000 is not http(s)://" },
      { "[replica]\nendpoint=http://h:notaport\n", "endpoint=http://h:notaport is not" },
      { "[replica]\nendpoint=http://h:0\n", "endpoint=http://h:0 is not" },
      { "[replica]\nendpoint=http://h:65536\n", "endpoint=http://h:65536 is not" },
      { "[replica]\nendpoint=http://u@h\n", "endpoint=http://u@h is not" },
      { "[replica]\nendpoint=http://::1:9000\n", "endpoint=http://::1:9000 is not" },
      { "[replica]\nbackoff-max-ms=50\n",
        "line 2: [replica] backoff-base-ms (100) is more than backoff-max-ms (50)" },
      { "[replica]\nbackoff-base-ms=9000\nbackoff-max-ms=8000\n",
        "line 2: [replica] backoff-base-ms (9000) is more than backoff-max-ms (8000)" },
      { "[replica]\nurl=htp://b/p\n", "line 2: [replica] url: replica URL 'htp://b/p'" },
      { "[replica]\nregion=eu west\n", "region=eu west is not a region name" },
      { "[doctor]\nacknowledged-bugs=wal_reset\n",
        "line 2: [doctor] acknowledged-bugs names 'wal_reset', which is no bug the doctor "
        "knows (the known ones: wal-reset" },
      { "[doctor]\n\xff\xfe[x]\n", "line 2 is not UTF-8 text: \"\\377\\376[x]\"" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
      g_file_set_contents(conf, bad[i][0], -1, NULL);
      ck_assert(settings_refused(&error));
      ck_assert_msg(strstr(error->message, bad[i][1]) != NULL, "%s", error->message);
      g_clear_error(&error);
    }
  }
}
END_TEST

/* The settings file @file read, then checked for what needs @group. */
static gboolean
file_check(const char *file, const char *group, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  ck_assert(sqlenvfs_settings_read(file, &text, &len, NULL));
  return sqlenvfs_settings_text_check(file, text, len, group, error);
}

/* An error stops only what needs its section: the root opens, the
 * section with the error is read as if absent (its defaults), the others
 * as written; an error that concerns no one section stops them all. */
START_TEST(test_settings_sections)
{
  g_autoptr(SqlenvfsRoot) made = make_root();
  g_autofree char *conf = g_build_filename(tmp, "sqlenvfs.conf", NULL);
  g_autofree char *elsewhere = g_build_filename(tmp, "no-such.conf", NULL);
  GError *error = NULL;
  SqlenvfsRoot *root;

  g_file_set_contents(conf, "[replica]\nurl=s3://b/p\nsync-intervall=5\n"
                            "[retention]\ndaily-keep-days=3\n[archive]\nmax-wal-bytes=1M\n",
                      -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_settings_need(root, "retention", NULL));
  ck_assert(sqlenvfs_root_settings_need(root, "archive", NULL));
  ck_assert_int_eq(sqlenvfs_root_settings(root)->daily_keep_days, 3);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->max_wal_bytes, 1 << 20);
  ck_assert(!sqlenvfs_root_settings_need(root, "replica", &error));
  ck_assert_msg(strstr(error->message, "line 3: [replica] sync-intervall is not a setting") !=
                NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert(!sqlenvfs_root_settings_need(root, NULL, &error));
  g_clear_error(&error);
  ck_assert(sqlenvfs_root_settings_problem(root) != NULL);
  /* A replica's own reading of the file stops at it too, and at nothing
   * another section holds. */
  ck_assert(!file_check(conf, "replica", NULL));
  ck_assert(file_check(conf, "retention", NULL));
  {
    /* No file is not an error of it: NOT_FOUND, which readers take for
     * the defaults. */
    g_autofree char *none = NULL;
    gsize none_len = 0;
    ck_assert(!sqlenvfs_settings_read(elsewhere, &none, &none_len, &error));
    ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND));
    g_clear_error(&error);
  }
  sqlenvfs_root_free(root);

  /* The section with the error is read as if absent: every value of it at
   * its default, the one written right included. */
  g_file_set_contents(conf, "[retention]\ndaily-keep-days=3\ndaily-keep-count=x\n"
                            "[archive]\nmax-wal-bytes=1M\n", -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->daily_keep_days, 7);
  ck_assert_int_eq(sqlenvfs_root_settings(root)->max_wal_bytes, 1 << 20);
  ck_assert(!sqlenvfs_root_settings_need(root, "retention", &error));
  ck_assert_msg(strstr(error->message, "line 3: [retention] daily-keep-count=x is not a whole "
                                       "number") != NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert(sqlenvfs_root_settings_need(root, "archive", NULL));
  sqlenvfs_root_free(root);

  /* A control character in a value is shown escaped, its section's. */
  g_file_set_contents(conf, "[archive]\nmax-wal-bytes=1\x1b[2J\n[retention]\n", -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_settings_need(root, "retention", NULL));
  ck_assert(!sqlenvfs_root_settings_need(root, "archive", &error));
  ck_assert_msg(strstr(error->message, "line 2: \"max-wal-bytes=1\\033[2J\": the value holds a "
                                       "control character") != NULL, "%s", error->message);
  g_clear_error(&error);
  sqlenvfs_root_free(root);

  /* Every section's error is said, each with what it stops. */
  g_file_set_contents(conf, "[retention]\ndaily-keep-days=x\n[archive]\nmax-wal-bytes=y\n", -1,
                      NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  {
    g_autoptr(GPtrArray) all = sqlenvfs_root_settings_problems(root);
    ck_assert_int_eq(all->len, 2);
    ck_assert_msg(strstr(all->pdata[0], "daily-keep-days=x") != NULL &&
                  strstr(all->pdata[0], "[retention] is read as if absent") != NULL, "%s",
                  (char *)all->pdata[0]);
    ck_assert_msg(strstr(all->pdata[1], "max-wal-bytes=y") != NULL &&
                  strstr(all->pdata[1], "[archive] is read as if absent") != NULL, "%s",
                  (char *)all->pdata[1]);
  }
  sqlenvfs_root_free(root);

  /* A default database in quotes is no name to fall back on. */
  g_file_set_contents(conf, "[sqlenvfs]\ndefault-db = \"shop\"\n", -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_resolve_db(root, NULL, FALSE, &error) == NULL);
  ck_assert_msg(strstr(error->message, "line 2: [sqlenvfs] default-db=\"shop\": the quotes") !=
                NULL, "%s", error->message);
  g_clear_error(&error);
  sqlenvfs_root_free(root);

  /* What concerns no one section stops every one, naming its line. */
  {
    static const char *const bad[][2] = {
      { "[retentoin]\ndaily-keep-days=3\n", "line 1: [retentoin] is not a section" },
      { "[archive]\nmax-wal-bytes 1G\n", "line 2: \"max-wal-bytes 1G\" is neither" },
      { "max-wal-bytes=1G\n[archive]\n", "line 1: max-wal-bytes is set before any [section]" },
      { "[archive\nmax-wal-bytes=1G\n", "line 1: \"[archive\" is no section name" },
      { "[re[t]\n", "line 1: \"[re[t]\" is no section name" },
      { "[]\n", "line 1: \"[]\" is no section name" },
      { "[archive]\n=5\n", "line 2: \"=5\" names no setting before its '='" },
      { "[archive]\nmax\x1b[31m=5\n", "line 2: \"max\\033[31m=5\" names no setting" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
      g_file_set_contents(conf, bad[i][0], -1, NULL);
      root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
      ck_assert_no_error(error);
      ck_assert(!sqlenvfs_root_settings_need(root, "archive", &error));
      ck_assert_msg(strstr(error->message, bad[i][1]) != NULL, "%s", error->message);
      g_clear_error(&error);
      ck_assert(!sqlenvfs_root_settings_need(root, "doctor", NULL));
      sqlenvfs_root_free(root);
    }
  }

  /* Endpoints that can work are taken. */
  {
    static const char *const good[] = { "http://h", "https://h:9000", "http://[::1]:9000",
                                        "http://10.0.0.1:1/", "https://s3.example.com" };
    for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
      g_autofree char *text = g_strdup_printf("[replica]\nendpoint=%s\n", good[i]);
      g_file_set_contents(conf, text, -1, NULL);
      ck_assert_msg(file_check(conf, NULL, &error), "%s: %s", good[i],
                    error ? error->message : "");
    }
  }

  /* Not a regular file: refused, never waited on (a FIFO). */
  ck_assert_int_eq(unlink(conf), 0);
  ck_assert_int_eq(mkfifo(conf, 0600), 0);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_root_settings_need(root, "archive", &error));
  ck_assert_msg(strstr(error->message, "not a regular file") != NULL, "%s", error->message);
  g_clear_error(&error);
  sqlenvfs_root_free(root);
  ck_assert_int_eq(unlink(conf), 0);

  /* A byte order mark is not text; a link to no file is not "no file". */
  g_file_set_contents(conf, "\xef\xbb\xbf[retention]\ndaily-keep-days=3\n", -1, NULL);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_settings_need(root, NULL, NULL));
  ck_assert_int_eq(sqlenvfs_root_settings(root)->daily_keep_days, 3);
  sqlenvfs_root_free(root);
  ck_assert_int_eq(unlink(conf), 0);
  ck_assert_int_eq(symlink(elsewhere, conf), 0);
  root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MUST_EXIST, &error);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_root_settings_need(root, "retention", &error));
  ck_assert_msg(strstr(error->message, "it is a link to a file that cannot be read") != NULL,
                "%s", error->message);
  g_clear_error(&error);
  sqlenvfs_root_free(root);
  ck_assert_int_eq(unlink(conf), 0);
}
END_TEST

START_TEST(test_db_names)
{
  g_autoptr(SqlenvfsRoot) root = make_root();
  g_autoptr(GPtrArray) names = NULL;
  GError *error = NULL;
  const char *files[] = { "b.db", "a.db", "notes.txt", ".hidden.db", "c.db-wal" };
  const char *more[] = { "sales 2026.db", "caf\xc3\xa9.db", "bad[1].db", "tab\there.db",
                         "bad\xff.db" };
  g_autoptr(GPtrArray) all = NULL, unsupported = NULL;
  g_autofree char *resolved = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *p = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), files[i], NULL);
    g_file_set_contents(p, "", 0, NULL);
  }
  names = sqlenvfs_root_list_dbs(root);
  ck_assert_int_eq(names->len, 2);
  ck_assert_str_eq(g_ptr_array_index(names, 0), "a");
  ck_assert_str_eq(g_ptr_array_index(names, 1), "b");

  /* Spaces and non-ASCII letters are names; '[', ']', control characters
   * and bytes that are not UTF-8 are not, and are listed as skipped. */
  for (gsize i = 0; i < G_N_ELEMENTS(more); i++) {
    g_autofree char *p = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), more[i], NULL);
    g_file_set_contents(p, "", 0, NULL);
  }
  all = sqlenvfs_root_list_dbs(root);
  ck_assert_int_eq(all->len, 4);
  ck_assert_str_eq(g_ptr_array_index(all, 0), "a");
  ck_assert_str_eq(g_ptr_array_index(all, 1), "b");
  ck_assert_str_eq(g_ptr_array_index(all, 2), "caf\xc3\xa9");
  ck_assert_str_eq(g_ptr_array_index(all, 3), "sales 2026");
  unsupported = sqlenvfs_root_list_unsupported(root);
  ck_assert_int_eq(unsupported->len, 3);
  ck_assert(strstr(g_ptr_array_index(unsupported, 0), "bad[1].db: the name contains '['") != NULL);
  ck_assert(strstr(g_ptr_array_index(unsupported, 1), "bad\\377.db: the name is not valid UTF-8") != NULL);
  ck_assert(strstr(g_ptr_array_index(unsupported, 2), "tab\\there.db: the name contains a control") != NULL);
  ck_assert(sqlenvfs_db_name_is_valid("\xce\xb1\xce\xb2 \xe6\x97\xa5"));
  ck_assert(!sqlenvfs_db_name_is_valid("a/b"));
  ck_assert(!sqlenvfs_db_name_is_valid(".a"));
  resolved = sqlenvfs_root_resolve_db(root, "sales 2026.db", TRUE, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(resolved, "sales 2026");
  g_clear_pointer(&resolved, g_free);
  ck_assert(sqlenvfs_root_resolve_db(root, "x]", FALSE, &error) == NULL);
  ck_assert(strstr(error->message, "not supported") != NULL);
  g_clear_error(&error);
  /* A name is shown as text where it is (a long one cut), escaped where
   * not; the rules name the length. */
  {
    g_autoptr(GString) long_name = g_string_new(NULL);
    for (int i = 0; i < 120; i++)
      g_string_append(long_name, "\xc3\xa9");
    ck_assert(!sqlenvfs_db_name_check(long_name->str, &error));
    ck_assert_msg(strstr(error->message, "database name '\xc3\xa9\xc3\xa9") != NULL &&
                  strstr(error->message, "...' is not supported: the name is longer than 200 "
                                         "bytes (any UTF-8 name of at most 200 bytes") != NULL,
                  "%s", error->message);
    g_clear_error(&error);
    ck_assert(!sqlenvfs_db_name_check("\xc3\xa9\xc2\x9b", &error));
    ck_assert_msg(strstr(error->message, "'\\303\\251\\302\\233'") != NULL, "%s",
                  error->message);
    g_clear_error(&error);
  }

  resolved = sqlenvfs_root_resolve_db(root, "a.db", TRUE, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(resolved, "a");
  g_clear_pointer(&resolved, g_free);
  /* A database named "a.db" (file a.db.db) is taken by its name as list
   * prints it; "a.db.db" loses one ".db" only, never two. */
  {
    g_autofree char *p = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD),
                                          "a.db.db", NULL);
    g_file_set_contents(p, "", 0, NULL);
  }
  resolved = sqlenvfs_root_resolve_db(root, "a.db", TRUE, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(resolved, "a.db");
  g_clear_pointer(&resolved, g_free);
  resolved = sqlenvfs_root_resolve_db(root, "a.db.db", TRUE, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(resolved, "a.db");
  g_clear_pointer(&resolved, g_free);
  ck_assert(sqlenvfs_root_resolve_db(root, "a.db.db.db", TRUE, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  g_clear_error(&error);
  /* A name to create is taken as written: "b.db" is not b. */
  resolved = sqlenvfs_root_resolve_new_db(root, "b.db", &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(resolved, "b.db");
  ck_assert(sqlenvfs_root_resolve_db(root, "../etc/passwd", FALSE, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_clear_error(&error);
  ck_assert(sqlenvfs_root_resolve_db(root, NULL, TRUE, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  g_clear_error(&error);
}
END_TEST

START_TEST(test_lock_exclusive)
{
  g_autoptr(SqlenvfsRoot) root = make_root();
  GError *error = NULL;
  int fd = sqlenvfs_root_lock(root, "archiver", FALSE, &error);
  pid_t pid;
  int status;

  ck_assert_no_error(error);
  ck_assert_int_ge(fd, 0);
  /* flock is per open file description: a child (new open) must be refused. */
  pid = fork();
  if (pid == 0) {
    GError *e = NULL;
    int fd2 = sqlenvfs_root_lock(root, "archiver", FALSE, &e);
    _exit(fd2 < 0 && e && e->code == SQLENVFS_ERROR_BUSY && strstr(e->message, "held by") ? 0 : 1);
  }
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  sqlenvfs_root_unlock(fd);
  fd = sqlenvfs_root_lock(root, "archiver", FALSE, &error);
  ck_assert_no_error(error);
  sqlenvfs_root_unlock(fd);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("root");
  TCase *tc = tcase_create("root");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_missing_root);
  tcase_add_test(tc, test_not_a_root);
  tcase_add_test(tc, test_env_and_layout);
  tcase_add_test(tc, test_settings);
  tcase_add_test(tc, test_settings_sections);
  tcase_add_test(tc, test_db_names);
  tcase_add_test(tc, test_lock_exclusive);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
