/*
 * replica_conf.c — the [replica] settings and the credentials (see
 * replica_conf.h for the keys and the order in which sources are read).
 */
#include "sqlenvfs/replica_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"

void
sqlenvfs_replica_conf_free(SqlenvfsReplicaConf *conf)
{
  if (conf == NULL)
    return;
  g_free(conf->url);
  g_free(conf->bucket);
  g_free(conf->prefix);
  g_free(conf->endpoint);
  g_free(conf->region);
  g_free(conf->access_key);
  if (conf->secret_key)
    memset(conf->secret_key, 0, strlen(conf->secret_key));
  g_free(conf->secret_key);
  g_free(conf->session_token);
  g_free(conf->credentials_from);
  g_free(conf);
}

/* S3's rules for a bucket name: 3..63 of [a-z0-9.-], starting and ending
 * with a letter or digit. */
static gboolean
bucket_is_valid(const char *b, gsize n)
{
  if (n < 3 || n > 63)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!(g_ascii_islower(b[i]) || g_ascii_isdigit(b[i]) || b[i] == '.' || b[i] == '-'))
      return FALSE;
  return g_ascii_isalnum(b[0]) && g_ascii_isalnum(b[n - 1]);
}

gboolean
sqlenvfs_replica_conf_parse_url(const char *url, char **bucket, char **prefix, GError **error)
{
  const char *p, *slash;
  gsize n;
  g_autofree char *pre = NULL;

  if (url == NULL || !g_str_has_prefix(url, "s3://")) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "replica URL '%s' does not start with s3:// (write s3://bucket/prefix)",
                url ? url : "");
    return FALSE;
  }
  p = url + 5;
  slash = strchr(p, '/');
  n = slash ? (gsize)(slash - p) : strlen(p);
  if (!bucket_is_valid(p, n)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "replica URL '%s': '%.*s' is not a valid bucket name (3 to 63 of a-z, 0-9, "
                "'.' and '-'; write s3://bucket/prefix)",
                url, (int)n, p);
    return FALSE;
  }
  pre = g_strdup(slash ? slash + 1 : "");
  /* Slashes at either end say nothing; empty path segments would make keys
   * that other tools show differently, so they are refused. */
  while (*pre == '/')
    memmove(pre, pre + 1, strlen(pre));
  for (gsize l = strlen(pre); l > 0 && pre[l - 1] == '/'; l--)
    pre[l - 1] = '\0';
  if (strstr(pre, "//") != NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "replica URL '%s': the prefix has an empty path segment ('//')", url);
    return FALSE;
  }
  *bucket = g_strndup(p, n);
  *prefix = g_steal_pointer(&pre);
  return TRUE;
}

/* The line (from 1) of the credentials text @text that GKeyFile cannot
 * take: not blank, not a comment, not a [group] and holding no '='; or
 * NUL or not UTF-8; 0 when none of those is found. */
static guint
first_bad_line(const char *text, gsize len)
{
  guint line = 1;
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (gsize)(end - p));
    g_autofree char *l = g_strndup(p, (gsize)((nl ? nl : end) - p));
    g_strstrip(l);
    if (memchr(p, '\0', (gsize)((nl ? nl : end) - p)) != NULL || !g_utf8_validate(l, -1, NULL) ||
        (*l != '\0' && *l != '#' && *l != ';' && *l != '[' && strchr(l, '=') == NULL) ||
        (*l == '[' && l[strlen(l) - 1] != ']'))
      return line;
    if (nl == NULL)
      break;
    p = nl + 1;
    line++;
  }
  return 0;
}

gboolean
sqlenvfs_replica_conf_read_credentials(const char *path, const char *profile,
                                       char **access_key, char **secret_key,
                                       char **session_token, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  g_autofree char *text = NULL;
  g_autofree char *ak = NULL;
  g_autofree char *sk = NULL;
  g_autofree char *tok = NULL;
  struct stat st;
  gsize len = 0;
  int fd;

  if (profile == NULL)
    profile = "default";
  /* Open without following a symlink at the last component, then check the
   * file that was opened: its mode is what protects the secret. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int errsv = errno;
    if (errsv == ELOOP) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "read credentials %s: is a symbolic link (name the file itself)", path);
      return FALSE;
    }
    return sqlenvfs_error_errno(error, errsv, "read credentials", path);
  }
  if (fstat(fd, &st) != 0) {
    int errsv = errno;
    close(fd);
    return sqlenvfs_error_errno(error, errsv, "read credentials", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "read credentials %s: not a regular file", path);
    return FALSE;
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    close(fd);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "read credentials %s: the file is readable or writable by group or others "
                "(mode %04o); it holds a secret key: run `chmod 600 %s`",
                path, (unsigned)(st.st_mode & 07777), path);
    return FALSE;
  }
  {
    g_autoptr(GIOChannel) ch = g_io_channel_unix_new(fd);
    g_io_channel_set_close_on_unref(ch, TRUE);
    if (g_io_channel_set_encoding(ch, NULL, &local) != G_IO_STATUS_NORMAL ||
        g_io_channel_read_to_end(ch, &text, &len, &local) != G_IO_STATUS_NORMAL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "read credentials %s: %s", path,
                  local->message);
      return FALSE;
    }
  }
  if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &local)) {
    /* GKeyFile's message quotes the line, which may hold the secret key:
     * only where it is is said. */
    guint line = first_bad_line(text, len);
    g_autofree char *where = line ? g_strdup_printf("line %u", line) : g_strdup("a line");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read credentials %s: %s is not a [profile] nor a name = value pair (its "
                "text is not shown: it may hold a secret; write [%s] with aws_access_key_id "
                "and aws_secret_access_key)",
                path, where, profile);
    return FALSE;
  }
  if (!g_key_file_has_group(kf, profile)) {
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    g_autofree char *have = g_strjoinv("], [", groups);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read credentials %s: it has no profile [%s]%s%s%s (set [replica] profile to one "
                "it has, or add [%s] with aws_access_key_id and aws_secret_access_key)",
                path, profile, groups[0] ? " (it has [" : "", groups[0] ? have : "",
                groups[0] ? "])" : "", profile);
    return FALSE;
  }
  ak = g_key_file_get_string(kf, profile, "aws_access_key_id", NULL);
  sk = g_key_file_get_string(kf, profile, "aws_secret_access_key", NULL);
  tok = g_key_file_get_string(kf, profile, "aws_session_token", NULL);
  if (ak)
    g_strstrip(ak);
  if (sk)
    g_strstrip(sk);
  if (ak == NULL || *ak == '\0' || sk == NULL || *sk == '\0') {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read credentials %s: [%s] needs both aws_access_key_id and "
                "aws_secret_access_key",
                path, profile);
    return FALSE;
  }
  *access_key = g_steal_pointer(&ak);
  *secret_key = g_steal_pointer(&sk);
  if (session_token) {
    if (tok)
      g_strstrip(tok);
    *session_token = (tok && *tok) ? g_steal_pointer(&tok) : NULL;
  }
  return TRUE;
}

static const char *
env_nonempty(const char *name)
{
  const char *v = g_getenv(name);
  return (v && *v) ? v : NULL;
}

/* A string key, stripped, or NULL when absent or blank. */
static char *
conf_string(GKeyFile *kf, const char *key)
{
  char *v;
  if (kf == NULL || !g_key_file_has_key(kf, "replica", key, NULL))
    return NULL;
  v = g_key_file_get_string(kf, "replica", key, NULL);
  if (v)
    g_strstrip(v);
  if (v && *v == '\0')
    g_clear_pointer(&v, g_free);
  return v;
}

/* "line N: " for the line of the settings text @text that sets @key of
 * [replica] (newly allocated; "" when @text is NULL or has none). */
static char *
line_of(const char *text, const char *key)
{
  guint n = text ? sqlenvfs_settings_line(text, "replica", key) : 0;
  return n ? g_strdup_printf("line %u: ", n) : g_strdup("");
}

/* The whole numbers of [replica], their ranges and fields. */
static const struct {
  const char *key;
  gint64 min, max;
  gsize offset;
} replica_ints[] = {
  { "sync-interval", 1, 3600, G_STRUCT_OFFSET(SqlenvfsReplicaConf, sync_interval_s) },
  { "check-interval", 1, 7 * 86400, G_STRUCT_OFFSET(SqlenvfsReplicaConf, check_interval_s) },
  { "lease-seconds", 10, 3600, G_STRUCT_OFFSET(SqlenvfsReplicaConf, lease_s) },
  { "connect-timeout", 1, 600, G_STRUCT_OFFSET(SqlenvfsReplicaConf, connect_timeout_s) },
  { "low-speed-time", 1, 3600, G_STRUCT_OFFSET(SqlenvfsReplicaConf, low_speed_time_s) },
  { "max-retries", 0, 20, G_STRUCT_OFFSET(SqlenvfsReplicaConf, max_retries) },
  { "backoff-base-ms", 1, 60000, G_STRUCT_OFFSET(SqlenvfsReplicaConf, backoff_base_ms) },
  { "backoff-max-ms", 1, 600000, G_STRUCT_OFFSET(SqlenvfsReplicaConf, backoff_max_ms) },
};

static void
conf_defaults(SqlenvfsReplicaConf *c)
{
  c->verify_tls = TRUE;
  c->sync_interval_s = 1;
  c->check_interval_s = 3600;
  c->lease_s = 300;
  c->connect_timeout_s = 10;
  c->low_speed_time_s = 30;
  c->max_retries = 5;
  c->backoff_base_ms = 100;
  c->backoff_max_ms = 5000;
}

/* @text: the file's text, for the line a message names (may be NULL). */
static gboolean
conf_int(GKeyFile *kf, const char *file, const char *text, const char *key, gint64 min,
         gint64 max, gint64 *out, GError **error)
{
  g_autofree char *raw = conf_string(kf, key);
  g_autofree char *line = NULL;
  char *end = NULL;
  gint64 v;

  if (raw == NULL)
    return TRUE;
  errno = 0;
  v = g_ascii_strtoll(raw, &end, 10);
  if (end == raw || *end != '\0' || errno != 0 || v < min || v > max) {
    line = line_of(text, key);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: %s[replica] %s=%s is not a whole number from %"
                G_GINT64_FORMAT " to %" G_GINT64_FORMAT " (fix or remove the line)",
                file, line, key, raw, min, max);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

/* http(s)://host[:port], with no path, query, user or blank; a port of
 * digits from 1 to 65535; an IPv6 host in brackets. */
static gboolean
endpoint_is_valid(const char *e)
{
  const char *h, *colon, *p;
  if (!g_str_has_prefix(e, "http://") && !g_str_has_prefix(e, "https://"))
    return FALSE;
  h = strstr(e, "//") + 2;
  if (*h == '\0' || *h == ':' || strpbrk(h, "/?#@") != NULL)
    return FALSE;
  for (p = h; *p; p++)
    if (g_ascii_isspace(*p) || g_ascii_iscntrl(*p))
      return FALSE;
  colon = strrchr(h, ':');
  if (*h == '[') {
    const char *close = strchr(h, ']');
    if (close == NULL || close == h + 1 || (close[1] != '\0' && close[1] != ':'))
      return FALSE;
    colon = close[1] == ':' ? close + 1 : NULL;
  } else if (colon != NULL && strchr(h, ':') != colon) {
    return FALSE; /* an IPv6 address needs its brackets */
  }
  if (colon != NULL) {
    guint64 port = 0;
    if (colon[1] == '\0' || !g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL))
      return FALSE;
  }
  return TRUE;
}

static gboolean
region_is_valid(const char *r)
{
  for (const char *p = r; *p; p++)
    if (!(g_ascii_isalnum(*p) || *p == '-'))
      return FALSE;
  return TRUE;
}

gboolean
sqlenvfs_replica_conf_check_file(GKeyFile *kf, const char *text, const char *file,
                                 GError **error)
{
  g_autofree char *url = conf_string(kf, "url");
  g_autofree char *region = conf_string(kf, "region");
  g_autofree char *endpoint = conf_string(kf, "endpoint");
  g_autofree char *verify = conf_string(kf, "verify-tls");
  g_autofree char *bucket = NULL, *prefix = NULL, *line = NULL;
  g_autoptr(GError) bad = NULL;
  SqlenvfsReplicaConf scratch = { 0 };

  if (url != NULL && !sqlenvfs_replica_conf_parse_url(url, &bucket, &prefix, &bad)) {
    line = line_of(text, "url");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: %s[replica] url: %s", file, line, bad->message);
    return FALSE;
  }
  if (region != NULL && !region_is_valid(region)) {
    line = line_of(text, "region");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: %s[replica] region=%s is not a region name (like "
                "eu-west-1; fix or remove the line)", file, line, region);
    return FALSE;
  }
  if (endpoint != NULL) {
    for (gsize l = strlen(endpoint); l > 0 && endpoint[l - 1] == '/'; l--)
      endpoint[l - 1] = '\0';
    if (!endpoint_is_valid(endpoint)) {
      line = line_of(text, "endpoint");
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "read settings %s: %s[replica] endpoint=%s is not http(s)://host[:port] "
                  "with no path, and a port from 1 to 65535 (fix or remove the line)", file,
                  line, endpoint);
      return FALSE;
    }
  }
  if (verify != NULL && g_ascii_strcasecmp(verify, "true") != 0 &&
      g_ascii_strcasecmp(verify, "false") != 0) {
    line = line_of(text, "verify-tls");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: %s[replica] verify-tls=%s is not true or false (fix or remove "
                "the line)", file, line,
                verify);
    return FALSE;
  }
  conf_defaults(&scratch);
  for (gsize i = 0; i < G_N_ELEMENTS(replica_ints); i++)
    if (!conf_int(kf, file, text, replica_ints[i].key, replica_ints[i].min,
                  replica_ints[i].max,
                  G_STRUCT_MEMBER_P(&scratch, replica_ints[i].offset), error))
      return FALSE;
  if (scratch.backoff_base_ms > scratch.backoff_max_ms) {
    line = line_of(text, g_key_file_has_key(kf, "replica", "backoff-base-ms", NULL)
                           ? "backoff-base-ms" : "backoff-max-ms");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: %s[replica] backoff-base-ms (%" G_GINT64_FORMAT ") is more "
                "than backoff-max-ms (%" G_GINT64_FORMAT "): the first wait would be the "
                "longest (make the base the smaller)", file, line,
                (gint64)scratch.backoff_base_ms, (gint64)scratch.backoff_max_ms);
    return FALSE;
  }
  return TRUE;
}

SqlenvfsReplicaConf *
sqlenvfs_replica_conf_load(const char *conf_file, const char *url, GError **error)
{
  g_autoptr(SqlenvfsReplicaConf) c = g_new0(SqlenvfsReplicaConf, 1);
  g_autoptr(GKeyFile) kf = NULL;
  g_autofree char *cred_file = NULL;
  g_autofree char *profile = NULL;
  g_autofree char *verify = NULL;
  g_autofree char *text = NULL;
  const char *file = conf_file ? conf_file : "(no settings file)";
  const char *v;

  conf_defaults(c);

  if (conf_file != NULL) {
    g_autoptr(GError) local = NULL;
    gsize len = 0;
    if (!sqlenvfs_settings_read(conf_file, &text, &len, &local)) {
      if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
        g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
      }
    } else {
      /* Checked as a root's open checks it, this same text: an error of
       * another section does not stop a replica's commands, nor the
       * shipping. */
      if (!sqlenvfs_settings_text_check(conf_file, text, len, "replica", error))
        return NULL;
      kf = g_key_file_new();
      if (!g_key_file_load_from_data(kf, sqlenvfs_settings_text(text, &len), len,
                                     G_KEY_FILE_NONE, &local)) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                    "read settings %s: %s (fix the file)", conf_file, local->message);
        return NULL;
      }
    }
  }

  c->url = url ? g_strdup(url) : conf_string(kf, "url");
  if (c->url == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: no replica URL (set url = s3://bucket/prefix in [replica], "
                "or pass --remote s3://bucket/prefix)",
                file);
    return NULL;
  }
  if (!sqlenvfs_replica_conf_parse_url(c->url, &c->bucket, &c->prefix, error))
    return NULL;

  c->region = conf_string(kf, "region");
  g_autofree char *region_from =
    c->region ? g_strdup_printf("region in [replica] of %s", file) : NULL;
  if (c->region == NULL && (v = env_nonempty("AWS_REGION"))) {
    c->region = g_strdup(v);
    region_from = g_strdup("AWS_REGION in the environment");
  }
  if (c->region == NULL && (v = env_nonempty("AWS_DEFAULT_REGION"))) {
    c->region = g_strdup(v);
    region_from = g_strdup("AWS_DEFAULT_REGION in the environment");
  }
  if (c->region == NULL)
    c->region = g_strdup("us-east-1");
  if (!region_is_valid(c->region)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "replica settings: region '%s' (%s) is not a region name (like eu-west-1)",
                c->region, region_from);
    return NULL;
  }

  c->endpoint = conf_string(kf, "endpoint");
  g_autofree char *endpoint_from =
    c->endpoint ? g_strdup_printf("endpoint in [replica] of %s", file) : NULL;
  if (c->endpoint == NULL && (v = env_nonempty("AWS_ENDPOINT_URL"))) {
    c->endpoint = g_strdup(v);
    endpoint_from = g_strdup("AWS_ENDPOINT_URL in the environment");
  }
  if (c->endpoint == NULL) {
    c->endpoint = g_strdup_printf("https://s3.%s.amazonaws.com", c->region);
    endpoint_from = g_strdup("made from the region");
  }
  for (gsize l = strlen(c->endpoint); l > 0 && c->endpoint[l - 1] == '/'; l--)
    c->endpoint[l - 1] = '\0';
  if (!endpoint_is_valid(c->endpoint)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "replica settings: endpoint '%s' (%s) is not http(s)://host[:port] with no path",
                c->endpoint, endpoint_from);
    return NULL;
  }

  verify = conf_string(kf, "verify-tls");
  if (verify) {
    if (g_ascii_strcasecmp(verify, "true") == 0)
      c->verify_tls = TRUE;
    else if (g_ascii_strcasecmp(verify, "false") == 0)
      c->verify_tls = FALSE;
    else {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "read settings %s: [replica] verify-tls=%s is not true or false", file, verify);
      return NULL;
    }
  }
  for (gsize i = 0; i < G_N_ELEMENTS(replica_ints); i++)
    if (!conf_int(kf, file, text, replica_ints[i].key, replica_ints[i].min,
                  replica_ints[i].max, G_STRUCT_MEMBER_P(c, replica_ints[i].offset), error))
      return NULL;

  cred_file = conf_string(kf, "credentials-file");
  profile = conf_string(kf, "profile");
  if (cred_file) {
    if (!g_path_is_absolute(cred_file) && conf_file) {
      g_autofree char *dir = g_path_get_dirname(conf_file);
      g_autofree char *abs = g_build_filename(dir, cred_file, NULL);
      g_free(cred_file);
      cred_file = g_steal_pointer(&abs);
    }
    if (!sqlenvfs_replica_conf_read_credentials(cred_file, profile, &c->access_key,
                                                &c->secret_key, &c->session_token, error))
      return NULL;
    c->credentials_from = g_strdup(cred_file);
  } else if (env_nonempty("AWS_ACCESS_KEY_ID") && env_nonempty("AWS_SECRET_ACCESS_KEY")) {
    c->access_key = g_strdup(env_nonempty("AWS_ACCESS_KEY_ID"));
    c->secret_key = g_strdup(env_nonempty("AWS_SECRET_ACCESS_KEY"));
    c->session_token = g_strdup(env_nonempty("AWS_SESSION_TOKEN"));
    c->credentials_from = g_strdup("the environment");
  } else {
    if (conf_file != NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "replica %s: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                  "or credentials-file in [replica] of %s)",
                  c->url, conf_file);
    else
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "replica %s: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                  "in the environment)",
                  c->url);
    return NULL;
  }
  return g_steal_pointer(&c);
}
