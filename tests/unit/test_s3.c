/* Unit tests for the replica settings (replica_conf) and what the S3 client
 * does without a server: URLs, where settings and credentials come from,
 * and the refusal of a credentials file others can read. The requests
 * themselves are tested against a real server in
 * tests/integration/s3_client.sh. */
#include "testutil.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/replica_conf.h"
#include "sqlenvfs/s3.h"

static void
clear_env(void)
{
  const char *vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"};
  for (guint i = 0; i < G_N_ELEMENTS(vars); i++)
    g_unsetenv(vars[i]);
}

static char *
write_file(const char *dir, const char *name, const char *text, int mode)
{
  char *path = g_build_filename(dir, name, NULL);
  ck_assert(g_file_set_contents(path, text, -1, NULL));
  ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
  return path;
}

static const struct {
  const char *url, *bucket, *prefix;
} good_urls[] = {
  {"s3://bucket", "bucket", ""},
  {"s3://bucket/", "bucket", ""},
  {"s3://my.bucket-1/a/b", "my.bucket-1", "a/b"},
  {"s3://bkt//lead/trail//", "bkt", "lead/trail"},
};

START_TEST(test_url_good)
{
  g_autofree char *b = NULL, *p = NULL;
  GError *error = NULL;
  ck_assert(sqlenvfs_replica_conf_parse_url(good_urls[_i].url, &b, &p, &error));
  ck_assert_no_error(error);
  ck_assert_str_eq(b, good_urls[_i].bucket);
  ck_assert_str_eq(p, good_urls[_i].prefix);
}
END_TEST

static const char *const bad_urls[] = {
  "", "bucket/prefix", "http://bucket/p", "s3://", "s3://ab", "s3://Bucket/p",
  "s3://-bucket/p", "s3://bucket-/p", "s3://bu_cket/p", "s3://bucket/a//b",
};

START_TEST(test_url_bad)
{
  g_autofree char *b = NULL, *p = NULL;
  g_autoptr(GError) error = NULL;
  ck_assert(!sqlenvfs_replica_conf_parse_url(bad_urls[_i], &b, &p, &error));
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID));
  ck_assert_ptr_null(b);
  ck_assert_msg(strstr(error->message, "s3://") != NULL, "message: %s", error->message);
}
END_TEST

/* Everything from the environment, with defaults for the rest. */
START_TEST(test_env_only)
{
  GError *error = NULL;
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "AK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "SK", TRUE);
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(NULL, "s3://bucket/p", &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(c->access_key, "AK");
  ck_assert_str_eq(c->secret_key, "SK");
  ck_assert_str_eq(c->region, "us-east-1");
  ck_assert_str_eq(c->endpoint, "https://s3.us-east-1.amazonaws.com");
  ck_assert(c->verify_tls);
  ck_assert_int_eq(c->sync_interval_s, 1);
  ck_assert_int_eq(c->max_retries, 5);

  g_setenv("AWS_REGION", "eu-west-3", TRUE);
  g_setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/", TRUE);
  g_autoptr(SqlenvfsReplicaConf) d = sqlenvfs_replica_conf_load(NULL, "s3://bucket/p", &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(d->region, "eu-west-3");
  ck_assert_str_eq(d->endpoint, "http://127.0.0.1:9000");
  clear_env();
}
END_TEST

/* The file wins; the environment fills what it leaves out. */
START_TEST(test_file_then_env)
{
  char *dir = testutil_tmpdir();
  g_autofree char *conf = write_file(dir, "sqlenvfs.conf",
                                     "[replica]\nurl = s3://from-file/x\nregion = ap-south-1\n"
                                     "verify-tls = false\nsync-interval = 7\n"
                                     "max-retries = 2\n",
                                     0644);
  GError *error = NULL;
  clear_env();
  g_setenv("AWS_REGION", "eu-west-3", TRUE);
  g_setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", TRUE);
  g_setenv("AWS_ACCESS_KEY_ID", "AK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "SK", TRUE);
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(conf, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(c->bucket, "from-file");
  ck_assert_str_eq(c->prefix, "x");
  ck_assert_str_eq(c->region, "ap-south-1");
  ck_assert_str_eq(c->endpoint, "http://127.0.0.1:9000");
  ck_assert(!c->verify_tls);
  ck_assert_int_eq(c->sync_interval_s, 7);
  ck_assert_int_eq(c->max_retries, 2);
  ck_assert_int_eq(c->lease_s, 300);
  ck_assert_str_eq(c->credentials_from, "the environment");
  /* An URL given by the caller (--remote) wins over the file's. */
  g_autoptr(SqlenvfsReplicaConf) d = sqlenvfs_replica_conf_load(conf, "s3://other/y", &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(d->bucket, "other");
  clear_env();
  testutil_tmpdir_cleanup(dir);
}
END_TEST

static const char *const bad_settings[] = {
  "[replica]\nurl = s3://bucket/p\nsync-interval = 0\n",
  "[replica]\nurl = s3://bucket/p\nmax-retries = lots\n",
  "[replica]\nurl = s3://bucket/p\nverify-tls = maybe\n",
  "[replica]\nurl = s3://bucket/p\nendpoint = ftp://host\n",
  "[replica]\nurl = s3://bucket/p\nendpoint = http://host/path\n",
  "[replica]\nurl = s3://bucket/p\nregion = eu west\n",
  "[replica]\nurl = s3://bucket/p\nlease-seconds = 5\n",
  "[replica]\nurl = s3://bucket/p\nlease-seconds = abc\n",
  "[replica]\nurl = s3://bucket/p\nlease-seconds = 99999\n",
  "[replica]\nurl = s3://bucket/p\ncredentials-file = /etc/c   # chmod 600\n",
  "[replica]\nurl = bucket/p\n",
  "[replica]\nendpoint = http://host\n",
};

START_TEST(test_bad_settings)
{
  char *dir = testutil_tmpdir();
  g_autofree char *conf = write_file(dir, "sqlenvfs.conf", bad_settings[_i], 0644);
  g_autoptr(GError) error = NULL;
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "AK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "SK", TRUE);
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(conf, NULL, &error);
  ck_assert_ptr_null(c);
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID));
  clear_env();
  testutil_tmpdir_cleanup(dir);
}
END_TEST

/* A bad value from the environment is named by its variable (there may
 * be no settings file at all), one from the file by the file. */
START_TEST(test_bad_env_named)
{
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "AK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "SK", TRUE);
  {
    g_autoptr(GError) error = NULL;
    g_setenv("AWS_REGION", "eu west", TRUE);
    g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(NULL, "s3://bucket/p", &error);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(error->message, "'eu west' (AWS_REGION in the environment)") != NULL,
                  "%s", error->message);
    g_unsetenv("AWS_REGION");
  }
  {
    g_autoptr(GError) error = NULL;
    g_setenv("AWS_ENDPOINT_URL", "ftp://host", TRUE);
    g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(NULL, "s3://bucket/p", &error);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(error->message, "'ftp://host' (AWS_ENDPOINT_URL in the environment)") !=
                    NULL,
                  "%s", error->message);
  }
  {
    char *dir = testutil_tmpdir();
    g_autofree char *conf =
      write_file(dir, "sqlenvfs.conf", "[replica]\nurl = s3://bucket/p\nregion = eu west\n", 0644);
    g_autofree char *want =
      g_strdup_printf("read settings %s: line 3: [replica] region=eu west is not", conf);
    g_autoptr(GError) error = NULL;
    g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(conf, NULL, &error);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(error->message, want) != NULL, "%s", error->message);
    testutil_tmpdir_cleanup(dir);
  }
  clear_env();
}
END_TEST

START_TEST(test_no_credentials)
{
  g_autoptr(GError) error = NULL;
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "AK", TRUE); /* a key without its secret */
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(NULL, "s3://bucket/p", &error);
  ck_assert_ptr_null(c);
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND));
  ck_assert_msg(strstr(error->message, "AWS_SECRET_ACCESS_KEY") != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "settings file") == NULL, "%s", error->message);
  clear_env();
}
END_TEST

/* A private credentials file is read (relative to the settings file), and
 * wins over the environment. */
START_TEST(test_credentials_file)
{
  char *dir = testutil_tmpdir();
  g_autofree char *creds = write_file(dir, "creds",
                                      "[default]\naws_access_key_id = FILEAK\n"
                                      "aws_secret_access_key = FILE:SK\n"
                                      "[other]\naws_access_key_id = OAK\n"
                                      "aws_secret_access_key = OSK\n"
                                      "aws_session_token = TOK\n",
                                      0600);
  g_autofree char *conf = write_file(dir, "sqlenvfs.conf",
                                     "[replica]\nurl = s3://bucket/p\ncredentials-file = creds\n",
                                     0644);
  g_autofree char *conf2 = write_file(dir, "other.conf",
                                      "[replica]\nurl = s3://bucket/p\n"
                                      "credentials-file = creds\nprofile = other\n",
                                      0644);
  GError *error = NULL;
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "ENVAK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "ENVSK", TRUE);
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(conf, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(c->access_key, "FILEAK");
  ck_assert_str_eq(c->secret_key, "FILE:SK");
  ck_assert_ptr_null(c->session_token);
  ck_assert_str_eq(c->credentials_from, creds);
  g_autoptr(SqlenvfsReplicaConf) d = sqlenvfs_replica_conf_load(conf2, NULL, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(d->access_key, "OAK");
  ck_assert_str_eq(d->session_token, "TOK");
  {
    /* A profile the file does not have is named as missing, with those it has. */
    g_autofree char *conf3 = write_file(dir, "third.conf",
                                        "[replica]\nurl = s3://bucket/p\n"
                                        "credentials-file = creds\nprofile = prod\n",
                                        0644);
    g_autoptr(SqlenvfsReplicaConf) e = sqlenvfs_replica_conf_load(conf3, NULL, &error);
    ck_assert_ptr_null(e);
    ck_assert_msg(error && strstr(error->message, "it has no profile [prod] (it has [default], "
                                  "[other])"), "%s", error ? error->message : "no error");
    g_clear_error(&error);
  }
  clear_env();
  testutil_tmpdir_cleanup(dir);
}
END_TEST

/* A credentials file any group or other can read or write is refused,
 * saying what to do; so are a symlink and a missing key. */
static const int open_modes[] = {0644, 0640, 0604, 0620, 0602, 0660};

START_TEST(test_credentials_refused)
{
  char *dir = testutil_tmpdir();
  g_autofree char *creds = write_file(dir, "creds",
                                      "[default]\naws_access_key_id = AK\n"
                                      "aws_secret_access_key = SK\n",
                                      open_modes[_i]);
  g_autofree char *conf = write_file(dir, "sqlenvfs.conf",
                                     "[replica]\nurl = s3://bucket/p\ncredentials-file = creds\n",
                                     0644);
  g_autoptr(GError) error = NULL;
  clear_env();
  g_setenv("AWS_ACCESS_KEY_ID", "ENVAK", TRUE);
  g_setenv("AWS_SECRET_ACCESS_KEY", "ENVSK", TRUE);
  g_autoptr(SqlenvfsReplicaConf) c = sqlenvfs_replica_conf_load(conf, NULL, &error);
  ck_assert_ptr_null(c);
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED));
  ck_assert_msg(strstr(error->message, creds) != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "group or others") != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "chmod 600") != NULL, "%s", error->message);
  clear_env();
  testutil_tmpdir_cleanup(dir);
}
END_TEST

START_TEST(test_credentials_symlink_and_incomplete)
{
  char *dir = testutil_tmpdir();
  g_autofree char *creds = write_file(dir, "creds",
                                      "[default]\naws_access_key_id = AK\n"
                                      "aws_secret_access_key = SK\n",
                                      0600);
  g_autofree char *half = write_file(dir, "half", "[default]\naws_access_key_id = AK\n", 0600);
  g_autofree char *link = g_build_filename(dir, "link", NULL);
  g_autofree char *ak = NULL, *sk = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;
  g_autoptr(GError) error3 = NULL;

  ck_assert_int_eq(symlink(creds, link), 0);
  ck_assert(!sqlenvfs_replica_conf_read_credentials(link, NULL, &ak, &sk, NULL, &error));
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED));
  ck_assert(!sqlenvfs_replica_conf_read_credentials(half, NULL, &ak, &sk, NULL, &error2));
  ck_assert(g_error_matches(error2, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID));
  ck_assert_ptr_null(ak);
  ck_assert(!sqlenvfs_replica_conf_read_credentials(creds, "nosuch", &ak, &sk, NULL, &error3));
  ck_assert_msg(strstr(error3->message, "[nosuch]") != NULL, "%s", error3->message);
  ck_assert(sqlenvfs_replica_conf_read_credentials(creds, NULL, &ak, &sk, NULL, NULL));
  ck_assert_str_eq(ak, "AK");
  ck_assert_str_eq(sk, "SK");
  testutil_tmpdir_cleanup(dir);
}
END_TEST

/* A line the key-file reader cannot take is named by its number, never
 * quoted: it may hold the secret key. */
START_TEST(test_credentials_bad_line_not_shown)
{
  char *dir = testutil_tmpdir();
  g_autofree char *creds = write_file(dir, "creds",
                                      "[default]\naws_access_key_id = AK\n"
                                      "aws_secret_access_key SUPERSECRET\n",
                                      0600);
  g_autofree char *ak = NULL, *sk = NULL;
  g_autoptr(GError) error = NULL;

  ck_assert(!sqlenvfs_replica_conf_read_credentials(creds, NULL, &ak, &sk, NULL, &error));
  ck_assert_msg(strstr(error->message, "SUPERSECRET") == NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "line 3 is not a [profile] nor a name = value pair") !=
                NULL, "%s", error->message);
  testutil_tmpdir_cleanup(dir);
}
END_TEST

/* The client names objects by their full URL, and refuses to exist
 * without credentials. */
START_TEST(test_client_describe)
{
  GError *error = NULL;
  SqlenvfsReplicaConf conf = {
    .url = "s3://bkt/a/b", .bucket = "bkt", .prefix = "a/b", .endpoint = "http://127.0.0.1:1",
    .region = "us-east-1", .access_key = "AK", .secret_key = "SK", .verify_tls = TRUE,
  };
  g_autoptr(SqlenvfsS3) s3 = sqlenvfs_s3_new(&conf, &error);
  ck_assert_no_error(error);
  g_autofree char *d = sqlenvfs_s3_describe(s3, "lease");
  ck_assert_str_eq(d, "s3://bkt/a/b/lease");

  conf.access_key = NULL;
  g_autoptr(GError) error2 = NULL;
  g_autoptr(SqlenvfsS3) none = sqlenvfs_s3_new(&conf, &error2);
  ck_assert_ptr_null(none);
  ck_assert(g_error_matches(error2, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND));
}
END_TEST

/* Nothing listens on the endpoint: the request fails after 1 + max-retries
 * attempts with the backoff bounded as configured, and names the endpoint. */
START_TEST(test_unreachable_bounded)
{
  GError *error = NULL;
  SqlenvfsReplicaConf conf = {
    .url = "s3://bkt/p", .bucket = "bkt", .prefix = "p", .endpoint = "http://127.0.0.1:1",
    .region = "us-east-1", .access_key = "AK", .secret_key = "SK", .verify_tls = TRUE,
    .connect_timeout_s = 1, .low_speed_time_s = 1, .max_retries = 3, .backoff_base_ms = 10,
    .backoff_max_ms = 20,
  };
  g_autoptr(SqlenvfsS3) s3 = sqlenvfs_s3_new(&conf, &error);
  SqlenvfsS3Stats st;
  ck_assert_no_error(error);
  g_autoptr(GBytes) b = sqlenvfs_s3_get(s3, "k", 0, -1, NULL, &error);
  ck_assert_ptr_null(b);
  ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO));
  ck_assert_msg(strstr(error->message, "after 4 attempts") != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "http://127.0.0.1:1") != NULL, "%s", error->message);
  sqlenvfs_s3_get_stats(s3, &st);
  ck_assert_int_eq(st.n_requests, 4);
  ck_assert_int_eq(st.n_retries, 3);
  ck_assert_int_le(st.backoff_us, (10 + 20 + 20) * 1000);
  g_clear_error(&error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("s3");
  TCase *tc = tcase_create("conf");
  tcase_add_loop_test(tc, test_url_good, 0, G_N_ELEMENTS(good_urls));
  tcase_add_loop_test(tc, test_url_bad, 0, G_N_ELEMENTS(bad_urls));
  tcase_add_test(tc, test_env_only);
  tcase_add_test(tc, test_file_then_env);
  tcase_add_loop_test(tc, test_bad_settings, 0, G_N_ELEMENTS(bad_settings));
  tcase_add_test(tc, test_bad_env_named);
  tcase_add_test(tc, test_no_credentials);
  tcase_add_test(tc, test_credentials_file);
  tcase_add_loop_test(tc, test_credentials_refused, 0, G_N_ELEMENTS(open_modes));
  tcase_add_test(tc, test_credentials_symlink_and_incomplete);
  tcase_add_test(tc, test_credentials_bad_line_not_shown);
  suite_add_tcase(s, tc);
  TCase *tc2 = tcase_create("client");
  tcase_add_test(tc2, test_client_describe);
  tcase_add_test(tc2, test_unreachable_bounded);
  suite_add_tcase(s, tc2);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
