/*
 * replica_conf.h — where a replica lives and how to reach it: the
 * `[replica]` section of sqlenvfs.conf, filled in from the environment
 * variables the AWS tools use, and the credentials.
 *
 *   [replica]
 *   url = s3://bucket/prefix          the replica (prefix may be empty)
 *   endpoint = https://host:port      default: $AWS_ENDPOINT_URL, else
 *                                     https://s3.<region>.amazonaws.com
 *   region = eu-west-1                default: $AWS_REGION, else
 *                                     $AWS_DEFAULT_REGION, else us-east-1
 *   credentials-file = /path          an AWS-style file ([default] with
 *                                     aws_access_key_id and
 *                                     aws_secret_access_key; `profile`
 *                                     picks another section); it must not
 *                                     be readable by group or others
 *   profile = default
 *   sync-interval = 1                 seconds between shipments (1..3600)
 *   verify-tls = true                 false only for a test server
 *   connect-timeout = 10              seconds to open a connection (1..600)
 *   low-speed-time = 30               seconds a transfer may move less than
 *                                     one byte per second (1..3600)
 *   max-retries = 5                   retries of a failed request (0..20)
 *   backoff-base-ms = 100             bound of the first wait before a retry;
 *   backoff-max-ms = 5000             it doubles per retry up to this bound
 *
 * Precedence (1) a key in the file wins over the environment; (2) the
 * environment fills what the file leaves out; (3) the credentials come from
 * the credentials file when one is named (both keys, or an error), else
 * from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN).
 * Secrets are never read from sqlenvfs.conf itself, which may be readable
 * by others.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *url;             /* as given: s3://bucket/prefix                        */
  char *bucket;          /* from the URL                                        */
  char *prefix;          /* from the URL, no leading or trailing '/'; may be "" */
  char *endpoint;        /* scheme://host[:port], no trailing '/'               */
  char *region;
  char *access_key;      /* NULL when none was found                            */
  char *secret_key;
  char *session_token;   /* NULL unless AWS_SESSION_TOKEN is set                */
  char *credentials_from;/* where the keys came from, for messages              */
  gboolean verify_tls;
  gint64 sync_interval_s;
  gint64 check_interval_s; /* the replica's objects compared with the shipping state */
  gint64 lease_s;         /* the shipping lease's time to live (300)            */
  gint64 connect_timeout_s;
  gint64 low_speed_time_s;
  gint64 max_retries;
  gint64 backoff_base_ms; /* first retry's wait bound; doubles per retry (100)  */
  gint64 backoff_max_ms;  /* bound on one wait (5000)                           */
} SqlenvfsReplicaConf;

void sqlenvfs_replica_conf_free(SqlenvfsReplicaConf *conf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsReplicaConf, sqlenvfs_replica_conf_free)

/* Split "s3://bucket/prefix" into its bucket and prefix (slashes at either
 * end of the prefix dropped; "" when absent). FALSE and
 * SQLENVFS_ERROR_INVALID naming the URL when it is not of that form or the
 * bucket name is not a valid S3 bucket name. */
gboolean sqlenvfs_replica_conf_parse_url(const char *url, char **bucket, char **prefix,
                                         GError **error);

/* FALSE and SQLENVFS_ERROR_INVALID naming the line of @file (its text
 * @text, read into @kf) when a [replica] value the file sets is not valid:
 * the URL, region, endpoint, verify-tls or a number out of its range. The
 * environment and the credentials are not looked at: every command checks
 * the file when it opens the root (root.h), a replica's own commands check
 * the rest when they load the settings. */
gboolean sqlenvfs_replica_conf_check_file(GKeyFile *kf, const char *text, const char *file,
                                          GError **error);

/* The replica settings. @conf_file: a sqlenvfs.conf (may be NULL or
 * missing: then everything comes from the environment); @url: overrides
 * `url` from the file (e.g. --remote URL), may be NULL. Fails with
 * SQLENVFS_ERROR_INVALID naming the file and key on a bad value or when no
 * URL is known, SQLENVFS_ERROR_REFUSED when the credentials file is
 * readable by group or others, SQLENVFS_ERROR_NOT_FOUND when no
 * credentials are found anywhere (saying where they were looked for). On
 * failure NULL is returned and nothing is leaked. */
SqlenvfsReplicaConf *sqlenvfs_replica_conf_load(const char *conf_file, const char *url,
                                                GError **error);

/* Read an AWS-style credentials file: section @profile (NULL: "default"),
 * keys aws_access_key_id, aws_secret_access_key, aws_session_token
 * (optional). Refuses (SQLENVFS_ERROR_REFUSED) a file that is not a regular
 * file or whose mode gives any access to group or others, saying to run
 * `chmod 600`. On success both keys are set; on failure nothing is. */
gboolean sqlenvfs_replica_conf_read_credentials(const char *path, const char *profile,
                                                char **access_key, char **secret_key,
                                                char **session_token, GError **error);

G_END_DECLS
