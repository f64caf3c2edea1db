/*
 * s3.h — a small client of the S3 protocol (AWS S3, Ceph radosgw, MinIO and
 * the like), enough to keep a replica: objects are written whole or in
 * parts, read whole or by byte range, listed by prefix, and written
 * conditionally for the lease (lease.h).
 *
 * Addressing: path style, `<endpoint>/<bucket>/<prefix>/<key>`. Every key
 * given to or returned by this API is relative to the replica's prefix
 * (SqlenvfsReplicaConf.prefix); messages name the full `s3://bucket/key`.
 *
 * Every request is signed with AWS Signature Version 4 (libcurl's
 * CURLOPT_AWS_SIGV4) and carries `x-amz-content-sha256`, the SHA-256 of its
 * body (of the empty string when it has none), which the server checks;
 * a PUT also carries Content-MD5, and its answer's ETag is checked against
 * the MD5 of what was sent. The query string is written in canonical form
 * (parameters sorted, values percent-encoded) because SigV4 signs it as is.
 * (A bucket encrypted with SSE-KMS or SSE-C answers with ETags that are not
 * MD5s: such buckets fail these checks and are not supported.)
 *
 * Failures and retries. A request is retried, at most max-retries times,
 * after a wait drawn uniformly from [0, min(backoff_max, base * 2^n)]
 * ("full jitter"), when: the connection could not be made, broke, or
 * stalled (connect-timeout, low-speed-time); the server answered 500, 502,
 * 503 or 504, or an error body whose code is SlowDown, InternalError,
 * ServiceUnavailable or RequestTimeout; a body came back shorter than its
 * Content-Length. It is never retried on any other 4xx: 403 (credentials),
 * 404 (no such key or bucket) and 412 (a condition not met) fail at once.
 * The GError of a failed request names the operation, `s3://bucket/key`,
 * the HTTP status, and the server's error code and message.
 *
 *   HTTP 404                -> SQLENVFS_ERROR_NOT_FOUND
 *   HTTP 403, 401           -> SQLENVFS_ERROR_PERMISSION
 *   HTTP 412, 409           -> SQLENVFS_ERROR_EXISTS (condition not met)
 *   other 4xx               -> SQLENVFS_ERROR_INVALID
 *   5xx, network, timeouts  -> SQLENVFS_ERROR_IO (after the retries)
 *   content check failed    -> SQLENVFS_ERROR_INTEGRITY (retried as a 5xx)
 *
 * Threads: a client keeps one connection (kept alive between requests) and
 * is used by one thread at a time; make one client per thread.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/replica_conf.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsS3 SqlenvfsS3;

/* One object as LIST or HEAD sees it. */
typedef struct {
  char *key;        /* relative to the prefix                              */
  gint64 size;
  char *etag;       /* without quotes; "<md5 hex>" or "<hex>-<n>" for
                       a multipart object                                  */
  gint64 mtime_us;  /* Last-Modified, microseconds since the epoch; 0 when
                       the server gave none                                */
} SqlenvfsS3Object;

void sqlenvfs_s3_object_free(SqlenvfsS3Object *obj);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsS3Object, sqlenvfs_s3_object_free)

/* Condition of a PUT. */
typedef enum {
  SQLENVFS_S3_PUT_ALWAYS,        /* unconditional                            */
  SQLENVFS_S3_PUT_IF_ABSENT,     /* If-None-Match: * — create only           */
  SQLENVFS_S3_PUT_IF_MATCH,      /* If-Match: <etag> — replace only that one */
} SqlenvfsS3PutCondition;

/* What a client has done, for tests and status. A request is one HTTP
 * exchange (a retry is another request). */
typedef struct {
  guint64 n_requests;
  guint64 n_retries;
  guint64 bytes_sent;      /* bodies only */
  guint64 bytes_received;  /* bodies only */
  gint64 backoff_us;       /* total time spent waiting between retries */
} SqlenvfsS3Stats;

/* A client for the replica @conf describes (copied; @conf may be freed
 * afterwards). Fails with SQLENVFS_ERROR_NOT_FOUND when @conf has no
 * credentials. Makes no request. */
SqlenvfsS3 *sqlenvfs_s3_new(const SqlenvfsReplicaConf *conf, GError **error);
void sqlenvfs_s3_free(SqlenvfsS3 *s3);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsS3, sqlenvfs_s3_free)

/* Called while a request of the client is under way, at most once a
 * second, with what it is ("put s3://bucket/prefix/key") and how long it
 * has waited on the server (@idle_us): since the request began, counting
 * its retries, or since the server last sent a byte or took one of a body
 * not yet sent whole, whichever is later. It must not use the client; it
 * runs on the thread that made the request. */
typedef void (*SqlenvfsS3Tick)(gpointer data, const char *what, gint64 idle_us);

/* Set (or, with NULL, clear) the tick of @s3. */
void sqlenvfs_s3_set_tick(SqlenvfsS3 *s3, SqlenvfsS3Tick tick, gpointer data);

/* "s3://bucket/prefix/key" for messages (newly allocated). */
char *sqlenvfs_s3_describe(SqlenvfsS3 *s3, const char *key);

/* Counters since the client was made. */
void sqlenvfs_s3_get_stats(SqlenvfsS3 *s3, SqlenvfsS3Stats *stats);

/* PUT @len bytes of @data at @key under @cond (@etag: the ETag for
 * IF_MATCH, else NULL). On success the object is there whole (the server
 * checked the body's SHA-256 and MD5) and *@etag_out (when not NULL) is its
 * new ETag. A condition not met fails with SQLENVFS_ERROR_EXISTS. A
 * conditional PUT that is retried after a lost answer may fail with
 * EXISTS although the first attempt succeeded: callers that must know read
 * the object back (lease.c does). */
gboolean sqlenvfs_s3_put(SqlenvfsS3 *s3, const char *key, const void *data, gsize len,
                         SqlenvfsS3PutCondition cond, const char *etag, char **etag_out,
                         GError **error);

/* GET @key, the bytes [@offset, @offset + @length) (@length < 0: to the
 * end). Returns them (a short result only when the object ends before
 * @offset + @length; the server's Content-Range is checked), and its ETag
 * in *@etag_out when not NULL. A whole-object GET of a single-part object
 * is checked against the MD5 in its ETag (SQLENVFS_ERROR_INTEGRITY). A
 * range that starts at or past the end gives an empty result. NULL and
 * *error on failure (NOT_FOUND when there is no such key). */
GBytes *sqlenvfs_s3_get(SqlenvfsS3 *s3, const char *key, gint64 offset, gint64 length,
                        char **etag_out, GError **error);

/* HEAD @key: its size, ETag and mtime (key set to @key). NULL and *error on
 * failure; NOT_FOUND when there is no such key. */
SqlenvfsS3Object *sqlenvfs_s3_head(SqlenvfsS3 *s3, const char *key, GError **error);

/* DELETE @key. Deleting a key that does not exist succeeds (S3's rule). */
gboolean sqlenvfs_s3_delete(SqlenvfsS3 *s3, const char *key, GError **error);

/* LIST (v2) every key under @prefix (relative to the replica prefix; "" for
 * all), following continuation tokens; @max_keys per page (0: the server's
 * default, 1000). Returns the objects sorted by key (the server's order),
 * an array of SqlenvfsS3Object * that owns them; *@n_pages (when not NULL)
 * gets the number of LIST requests it took. NULL and *error on failure,
 * including a page that cannot be parsed or a truncated page without a
 * continuation token (SQLENVFS_ERROR_INTEGRITY). */
GPtrArray *sqlenvfs_s3_list(SqlenvfsS3 *s3, const char *prefix, guint max_keys,
                            guint *n_pages, GError **error);

/* Multipart upload. Parts are numbered from 1; every part but the last must
 * be at least 5 MiB on AWS (radosgw enforces the same by default). Until
 * complete succeeds the object does not exist; an upload that is never
 * completed is removed by abort (or by a lifecycle rule on the bucket).
 *
 * create: starts an upload of @key; returns its upload id (newly
 * allocated) or NULL and *error. */
char *sqlenvfs_s3_multipart_create(SqlenvfsS3 *s3, const char *key, GError **error);

/* upload part: sends part @part_number (1..10000); returns its ETag (newly
 * allocated, unquoted, checked against the part's MD5) or NULL. */
char *sqlenvfs_s3_multipart_put_part(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                                     guint part_number, const void *data, gsize len,
                                     GError **error);

/* complete: joins parts 1..@etags->len (their ETags in order, as
 * put_part returned them). An error answered with status 200 (S3 may do
 * that) is an error. *@etag_out (when not NULL) gets the object's ETag. */
gboolean sqlenvfs_s3_multipart_complete(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                                        GPtrArray *etags, char **etag_out, GError **error);

/* abort: discards the upload and its parts. An upload that is already gone
 * (404 NoSuchUpload) counts as aborted. */
gboolean sqlenvfs_s3_multipart_abort(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                                     GError **error);

/* A multipart upload not yet completed nor aborted, as ListMultipartUploads
 * sees it. */
typedef struct {
  char *key;           /* relative to the prefix */
  char *upload_id;
  gint64 initiated_us; /* when it was started, by the server's clock; 0: not given */
} SqlenvfsS3Upload;

void sqlenvfs_s3_upload_free(SqlenvfsS3Upload *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsS3Upload, sqlenvfs_s3_upload_free)

/* list: the multipart uploads under the replica's prefix (ListMultipartUploads
 * with prefix "<prefix>/", or the whole bucket when the prefix is empty),
 * following the key and upload id markers, @max_uploads per page (0: the
 * server's default, 1000); an array of SqlenvfsS3Upload * that owns them,
 * in the server's order, and the number of requests it took in *@n_pages
 * (when not NULL). A key outside the prefix fails the listing
 * (SQLENVFS_ERROR_INTEGRITY), so that only keys under it are ever
 * returned. NULL and *error on failure. */
GPtrArray *sqlenvfs_s3_multipart_list(SqlenvfsS3 *s3, guint max_uploads, guint *n_pages,
                                      GError **error);

/* Put @len bytes at @key, in one PUT when @len <= @part_size, else as a
 * multipart upload of @part_size parts, aborted on any failure (so nothing
 * half-uploaded is left to be taken for an object). */
gboolean sqlenvfs_s3_put_large(SqlenvfsS3 *s3, const char *key, const void *data, gsize len,
                               gsize part_size, char **etag_out, GError **error);

G_END_DECLS
