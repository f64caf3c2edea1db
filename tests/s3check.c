/*
 * s3check — a test program (not a user command) that drives the S3 client
 * (s3.h), the replica settings (replica_conf.h) and the lease (lease.h)
 * from the shell tests in tests/integration/s3_*.sh.
 *
 *   s3check [--conf FILE] [--url URL] [--stats] COMMAND ARGS...
 *
 *   put KEY FILE [--if-absent | --if-match ETAG]   prints the new ETag
 *   put-large KEY FILE PART_SIZE                    prints the new ETag
 *   get KEY FILE [OFFSET [LENGTH]]                  writes the bytes to FILE
 *   head KEY                                        prints "SIZE ETAG"
 *   delete KEY
 *   put-many PREFIX N                               N small objects PREFIX%05d
 *   list PREFIX [MAX_KEYS]                          prints the keys, then
 *                                                   "pages N" on stderr
 *   abort-multipart KEY FILE PART_SIZE              starts a multipart upload,
 *                                                   sends its parts, aborts it
 *   open-multipart KEY FILE PART_SIZE               the same, left open (not
 *                                                   completed); prints its id
 *   uploads [MAX_UPLOADS]                           prints "KEY UPLOAD_ID" of
 *                                                   each multipart upload under
 *                                                   the prefix, then "pages N"
 *                                                   on stderr
 *   lease-take ROOT TTL                             takes the lease and exits
 *                                                   holding it (it expires)
 *   lease-hold ROOT TTL RENEW_MS STATE              takes the lease, writes
 *                                                   "held" to STATE, renews it
 *                                                   every RENEW_MS until lost
 *                                                   (writes "lost: <error>",
 *                                                   exits 3) or SIGTERM
 *                                                   (releases, exits 0)
 *
 * The settings come from --conf (a sqlenvfs.conf with [replica]) and the
 * AWS_* environment. With --stats, "requests=N retries=N backoff_ms=N" is
 * printed on stderr at exit. An error prints one line on stderr and exits 1.
 */
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/lease.h"
#include "sqlenvfs/replica_conf.h"
#include "sqlenvfs/s3.h"

static volatile sig_atomic_t stop_requested;

static void
on_term(int sig)
{
  stop_requested = 1;
}

static gboolean
write_state(const char *path, const char *text, GError **error)
{
  g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
  return g_file_set_contents(tmp, text, -1, error) && rename(tmp, path) == 0;
}

static int
run(SqlenvfsS3 *s3, int argc, char **argv, GError **error)
{
  const char *cmd = argv[0];

  if (strcmp(cmd, "put") == 0 && argc >= 3) {
    g_autofree char *data = NULL;
    g_autofree char *etag = NULL;
    gsize len;
    SqlenvfsS3PutCondition cond = SQLENVFS_S3_PUT_ALWAYS;
    const char *match = NULL;
    if (argc >= 4 && strcmp(argv[3], "--if-absent") == 0)
      cond = SQLENVFS_S3_PUT_IF_ABSENT;
    else if (argc >= 5 && strcmp(argv[3], "--if-match") == 0) {
      cond = SQLENVFS_S3_PUT_IF_MATCH;
      match = argv[4];
    }
    if (!g_file_get_contents(argv[2], &data, &len, error) ||
        !sqlenvfs_s3_put(s3, argv[1], data, len, cond, match, &etag, error))
      return 1;
    printf("%s\n", etag);
    return 0;
  }
  if (strcmp(cmd, "put-large") == 0 && argc >= 4) {
    g_autofree char *data = NULL;
    g_autofree char *etag = NULL;
    gsize len;
    if (!g_file_get_contents(argv[2], &data, &len, error) ||
        !sqlenvfs_s3_put_large(s3, argv[1], data, len, g_ascii_strtoull(argv[3], NULL, 10),
                               &etag, error))
      return 1;
    printf("%s\n", etag);
    return 0;
  }
  if ((strcmp(cmd, "abort-multipart") == 0 || strcmp(cmd, "open-multipart") == 0) &&
      argc >= 4) {
    g_autofree char *data = NULL;
    g_autofree char *id = NULL;
    gsize len, part = g_ascii_strtoull(argv[3], NULL, 10);
    guint n = 0;
    if (part == 0 || !g_file_get_contents(argv[2], &data, &len, error) ||
        !(id = sqlenvfs_s3_multipart_create(s3, argv[1], error)))
      return 1;
    for (gsize off = 0; off < len; off += part) {
      g_autofree char *etag =
        sqlenvfs_s3_multipart_put_part(s3, argv[1], id, ++n, data + off, MIN(part, len - off),
                                       error);
      if (etag == NULL)
        return 1;
    }
    if (cmd[0] == 'o') {
      printf("%s\n", id);
      return 0;
    }
    return sqlenvfs_s3_multipart_abort(s3, argv[1], id, error) ? 0 : 1;
  }
  if (strcmp(cmd, "uploads") == 0) {
    guint pages = 0;
    guint max = argc >= 2 ? (guint)g_ascii_strtoull(argv[1], NULL, 10) : 0;
    g_autoptr(GPtrArray) ups = sqlenvfs_s3_multipart_list(s3, max, &pages, error);
    if (ups == NULL)
      return 1;
    for (guint i = 0; i < ups->len; i++) {
      SqlenvfsS3Upload *u = g_ptr_array_index(ups, i);
      printf("%s %s\n", u->key, u->upload_id);
    }
    fprintf(stderr, "pages %u\n", pages);
    return 0;
  }
  if (strcmp(cmd, "get") == 0 && argc >= 3) {
    gint64 off = argc >= 4 ? g_ascii_strtoll(argv[3], NULL, 10) : 0;
    gint64 len = argc >= 5 ? g_ascii_strtoll(argv[4], NULL, 10) : -1;
    g_autoptr(GBytes) b = sqlenvfs_s3_get(s3, argv[1], off, len, NULL, error);
    gsize n;
    const char *d;
    if (b == NULL)
      return 1;
    d = g_bytes_get_data(b, &n);
    return g_file_set_contents(argv[2], d ? d : "", (gssize)n, error) ? 0 : 1;
  }
  if (strcmp(cmd, "head") == 0 && argc >= 2) {
    g_autoptr(SqlenvfsS3Object) o = sqlenvfs_s3_head(s3, argv[1], error);
    if (o == NULL)
      return 1;
    printf("%" G_GINT64_FORMAT " %s\n", o->size, o->etag);
    return 0;
  }
  if (strcmp(cmd, "delete") == 0 && argc >= 2)
    return sqlenvfs_s3_delete(s3, argv[1], error) ? 0 : 1;
  if (strcmp(cmd, "put-many") == 0 && argc >= 3) {
    guint n = (guint)g_ascii_strtoull(argv[2], NULL, 10);
    for (guint i = 0; i < n; i++) {
      g_autofree char *key = g_strdup_printf("%s%05u", argv[1], i);
      if (!sqlenvfs_s3_put(s3, key, key, strlen(key), SQLENVFS_S3_PUT_ALWAYS, NULL, NULL, error))
        return 1;
    }
    return 0;
  }
  if (strcmp(cmd, "list") == 0 && argc >= 2) {
    guint pages = 0;
    guint max = argc >= 3 ? (guint)g_ascii_strtoull(argv[2], NULL, 10) : 0;
    g_autoptr(GPtrArray) objs = sqlenvfs_s3_list(s3, argv[1], max, &pages, error);
    if (objs == NULL)
      return 1;
    for (guint i = 0; i < objs->len; i++) {
      SqlenvfsS3Object *o = g_ptr_array_index(objs, i);
      printf("%s %" G_GINT64_FORMAT "\n", o->key, o->size);
    }
    fprintf(stderr, "pages %u\n", pages);
    return 0;
  }
  if (strcmp(cmd, "lease-take") == 0 && argc >= 3) {
    g_autoptr(SqlenvfsLease) l =
      sqlenvfs_lease_acquire(s3, argv[1], g_ascii_strtoll(argv[2], NULL, 10), error);
    if (l == NULL)
      return 1;
    printf("held by pid %" G_GINT64_FORMAT "\n", sqlenvfs_lease_holder(l)->pid);
    return 0;
  }
  if (strcmp(cmd, "lease-hold") == 0 && argc >= 5) {
    gint64 renew_ms = g_ascii_strtoll(argv[3], NULL, 10);
    g_autoptr(SqlenvfsLease) l =
      sqlenvfs_lease_acquire(s3, argv[1], g_ascii_strtoll(argv[2], NULL, 10), error);
    if (l == NULL || !write_state(argv[4], "held\n", error))
      return 1;
    signal(SIGTERM, on_term);
    while (!stop_requested) {
      g_autoptr(GError) local = NULL;
      g_usleep((gulong)renew_ms * 1000);
      if (stop_requested)
        break;
      if (!sqlenvfs_lease_renew(l, &local)) {
        if (sqlenvfs_lease_is_lost(l)) {
          g_autofree char *text = g_strdup_printf("lost: %s\n", local->message);
          write_state(argv[4], text, NULL);
          fprintf(stderr, "%s", text);
          return 3;
        }
        fprintf(stderr, "renew failed (will retry): %s\n", local->message);
      }
    }
    if (!sqlenvfs_lease_release(l, error))
      return 1;
    return write_state(argv[4], "released\n", error) ? 0 : 1;
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "s3check: bad command line");
  return 2;
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsReplicaConf) conf = NULL;
  g_autoptr(SqlenvfsS3) s3 = NULL;
  const char *conf_file = NULL, *url = NULL;
  gboolean stats = FALSE;
  int i = 1, rc;

  for (; i < argc && g_str_has_prefix(argv[i], "--"); i++) {
    if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc)
      conf_file = argv[++i];
    else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
      url = argv[++i];
    else if (strcmp(argv[i], "--stats") == 0)
      stats = TRUE;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: s3check [--conf FILE] [--url URL] [--stats] COMMAND ARGS...\n");
    return 2;
  }
  conf = sqlenvfs_replica_conf_load(conf_file, url, &error);
  if (conf)
    s3 = sqlenvfs_s3_new(conf, &error);
  rc = s3 ? run(s3, argc - i, argv + i, &error) : 1;
  if (stats && s3) {
    SqlenvfsS3Stats st;
    sqlenvfs_s3_get_stats(s3, &st);
    fprintf(stderr, "requests=%" G_GUINT64_FORMAT " retries=%" G_GUINT64_FORMAT
            " backoff_ms=%" G_GINT64_FORMAT "\n",
            st.n_requests, st.n_retries, st.backoff_us / 1000);
  }
  if (rc != 0 && error)
    fprintf(stderr, "%s\n", error->message);
  return rc;
}
