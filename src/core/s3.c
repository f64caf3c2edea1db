/*
 * s3.c — the S3 client (see s3.h for the contract).
 *
 * One request, as sent:
 *
 *   <METHOD> /<bucket>/<uri-encoded prefix/key>?<canonical query> HTTP/1.1
 *   Host: <endpoint host>
 *   x-amz-content-sha256: <hex SHA-256 of the body>
 *   x-amz-date, Authorization: added by libcurl (SigV4, "aws:amz:<region>:s3")
 *   [Content-MD5: <base64 MD5 of the body>]          PUT and upload part
 *   [If-None-Match: *] [If-Match: <etag>]             conditional PUT
 *   [Range: bytes=<first>-[<last>]]                   ranged GET
 *
 * Invariants:
 *   (1) a query string is built only by query_add() and is canonical
 *       (sorted by name, values percent-encoded, bare names as "name="),
 *       because libcurl 7.88 signs it as written;
 *   (2) a request is attempted at most 1 + max_retries times, and between
 *       two attempts the client waits a random time bounded by
 *       min(backoff_max, backoff_base * 2^attempt);
 *   (3) only the failures named in s3.h are retried; a 403, 404 or 412 ends
 *       the request at the first answer;
 *   (4) a body is returned only when it has the length the server promised
 *       (libcurl fails a short body) and passes the content checks.
 */
#include "sqlenvfs/s3.h"

#include "config.h"

#include <curl/curl.h>
#ifdef HAVE_LIBCRYPTO
#include <openssl/evp.h>
#endif
#include <string.h>

#include "sqlenvfs/error.h"

struct _SqlenvfsS3 {
  char *bucket;
  char *prefix;   /* "" or "p/q" */
  char *endpoint;
  char *access_key;
  char *secret_key;
  char *session_token;
  char *sigv4;    /* "aws:amz:<region>:s3" */
  gboolean verify_tls;
  long connect_timeout_s;
  long low_speed_time_s;
  guint max_retries;
  gint64 backoff_base_ms;
  gint64 backoff_max_ms;
  CURL *curl;
  SqlenvfsS3Stats stats;
  /* the request under way, for the tick (sqlenvfs_s3_set_tick) */
  SqlenvfsS3Tick tick;
  gpointer tick_data;
  char *what;            /* "put s3://...": the request's, while it runs */
  gint64 waited_from;    /* monotonic us: the start, or the server's last byte */
  gint64 ticked_at;
  curl_off_t up_last, down_last; /* of the attempt under way */
};

/* ---- small helpers ----------------------------------------------------- */

static void
curl_init_once(void)
{
  static gsize done = 0;
  if (g_once_init_enter(&done)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_once_init_leave(&done, 1);
  }
}

/* Percent-encode per SigV4: unreserved characters stay, and '/' too when
 * @keep_slash (object paths). */
static void
uri_encode(GString *out, const char *s, gboolean keep_slash)
{
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (g_ascii_isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
        (keep_slash && *p == '/'))
      g_string_append_c(out, (char)*p);
    else
      g_string_append_printf(out, "%%%02X", *p);
  }
}

/* Append name=value to a query being built; callers add parameters in
 * sorted order (invariant (1)), which query_add checks. */
static void
query_add(GString *q, const char **last, const char *name, const char *value)
{
  g_assert(*last == NULL || strcmp(*last, name) < 0);
  *last = name;
  if (q->len > 0)
    g_string_append_c(q, '&');
  uri_encode(q, name, FALSE);
  g_string_append_c(q, '=');
  if (value)
    uri_encode(q, value, FALSE);
}

static char *
full_key(SqlenvfsS3 *s3, const char *key)
{
  if (*s3->prefix == '\0')
    return g_strdup(key);
  return g_strconcat(s3->prefix, "/", key, NULL);
}

char *
sqlenvfs_s3_describe(SqlenvfsS3 *s3, const char *key)
{
  g_autofree char *fk = key ? full_key(s3, key) : g_strdup(s3->prefix);
  return g_strdup_printf("s3://%s/%s", s3->bucket, fk);
}

static char *
unquote(const char *s)
{
  gsize n = strlen(s);
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
    return g_strndup(s + 1, n - 2);
  return g_strdup(s);
}

void
sqlenvfs_s3_object_free(SqlenvfsS3Object *obj)
{
  if (obj == NULL)
    return;
  g_free(obj->key);
  g_free(obj->etag);
  g_free(obj);
}

/* ---- a minimal XML reader (GMarkup) ------------------------------------
 *
 * S3 answers are small documents of nested elements with text leaves. The
 * reader turns one into a list of events, one per closing tag, in document
 * order: ("ListBucketResult/Contents/Key", "<text>"), ...,
 * ("ListBucketResult/Contents", ""), so that a caller walks it once.
 * Attributes (xmlns) are ignored; entities are decoded by GMarkup. */

typedef struct {
  char *path;
  char *text;
} XmlEvent;

static void
xml_event_free(gpointer p)
{
  XmlEvent *e = p;
  g_free(e->path);
  g_free(e->text);
  g_free(e);
}

typedef struct {
  GPtrArray *stack;  /* element names */
  GString *text;
  GPtrArray *events;
} XmlState;

static void
xml_start(GMarkupParseContext *ctx, const char *name, const char **an, const char **av,
          gpointer user, GError **error)
{
  XmlState *st = user;
  g_ptr_array_add(st->stack, g_strdup(name));
  g_string_truncate(st->text, 0);
}

static void
xml_end(GMarkupParseContext *ctx, const char *name, gpointer user, GError **error)
{
  XmlState *st = user;
  XmlEvent *e = g_new0(XmlEvent, 1);
  GString *path = g_string_new(NULL);
  for (guint i = 0; i < st->stack->len; i++) {
    if (i > 0)
      g_string_append_c(path, '/');
    g_string_append(path, g_ptr_array_index(st->stack, i));
  }
  e->path = g_string_free(path, FALSE);
  e->text = g_strdup(st->text->str);
  g_ptr_array_add(st->events, e);
  g_ptr_array_remove_index(st->stack, st->stack->len - 1);
  g_string_truncate(st->text, 0);
}

static void
xml_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user, GError **error)
{
  XmlState *st = user;
  g_string_append_len(st->text, text, (gssize)len);
}

/* The events of @body, or NULL (with *error saying why) when it is not a
 * well-formed document. */
static GPtrArray *
xml_read(const guint8 *body, gsize len, GError **error)
{
  static const GMarkupParser parser = {
    .start_element = xml_start,
    .end_element = xml_end,
    .text = xml_text,
  };
  XmlState st = {
    .stack = g_ptr_array_new_with_free_func(g_free),
    .text = g_string_new(NULL),
    .events = g_ptr_array_new_with_free_func(xml_event_free),
  };
  g_autoptr(GMarkupParseContext) ctx = g_markup_parse_context_new(&parser, 0, &st, NULL);
  gsize skip = 0;
  gboolean ok;

  /* GMarkup takes the <?xml ...?> declaration as a passthrough; a leading
   * byte-order mark or blank it does not. */
  if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
    skip = 3;
  while (skip < len && g_ascii_isspace(body[skip]))
    skip++;
  ok = g_markup_parse_context_parse(ctx, (const char *)body + skip, (gssize)(len - skip), error) &&
       g_markup_parse_context_end_parse(ctx, error);
  g_ptr_array_unref(st.stack);
  g_string_free(st.text, TRUE);
  if (!ok) {
    g_ptr_array_unref(st.events);
    return NULL;
  }
  if (st.events->len == 0) {
    g_ptr_array_unref(st.events);
    g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_EMPTY, "empty document");
    return NULL;
  }
  return st.events;
}

/* The text of the first event at @path, or NULL. */
static const char *
xml_find(GPtrArray *events, const char *path)
{
  for (guint i = 0; events && i < events->len; i++) {
    XmlEvent *e = g_ptr_array_index(events, i);
    if (strcmp(e->path, path) == 0)
      return e->text;
  }
  return NULL;
}

/* ---- one request --------------------------------------------------------- */

typedef struct {
  const char *op;         /* for messages: "put", "get", ...       */
  const char *method;     /* GET PUT HEAD DELETE POST              */
  const char *key;        /* relative key; NULL: the bucket itself  */
  const char *query;      /* canonical query or NULL               */
  const void *body;       /* PUT/POST body (may be NULL with 0)     */
  gsize body_len;
  gboolean send_md5;      /* Content-MD5, and check the ETag answer */
  const char *if_match;
  gboolean if_none_match;
  const char *range;      /* "bytes=..." or NULL                   */
  gboolean error_in_200;  /* an <Error> body with 200 is an error  */
} Req;

typedef struct {
  long status;
  GByteArray *body;
  char *etag;
  char *content_range;
  char *last_modified;
  gint64 content_length;
  gboolean is_head;
} Resp;

static void
resp_clear(Resp *r)
{
  if (r->body)
    g_byte_array_unref(r->body);
  g_free(r->etag);
  g_free(r->content_range);
  g_free(r->last_modified);
  memset(r, 0, sizeof *r);
  r->content_length = -1;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
  Resp *r = user;
  g_byte_array_append(r->body, (const guint8 *)ptr, (guint)(size * nmemb));
  return size * nmemb;
}

static size_t
on_header(char *buf, size_t size, size_t nitems, void *user)
{
  Resp *r = user;
  gsize n = size * nitems;
  g_autofree char *line = g_strndup(buf, n);
  char *colon;

  g_strchomp(line);
  if (g_str_has_prefix(line, "HTTP/")) {
    /* A new response (after 100 Continue): forget the last one's headers. */
    g_clear_pointer(&r->etag, g_free);
    g_clear_pointer(&r->content_range, g_free);
    g_clear_pointer(&r->last_modified, g_free);
    r->content_length = -1;
    return n;
  }
  colon = strchr(line, ':');
  if (colon == NULL)
    return n;
  *colon = '\0';
  const char *value = colon + 1;
  while (*value == ' ' || *value == '\t')
    value++;
  if (g_ascii_strcasecmp(line, "ETag") == 0) {
    g_free(r->etag);
    r->etag = unquote(value);
  } else if (g_ascii_strcasecmp(line, "Content-Range") == 0) {
    g_free(r->content_range);
    r->content_range = g_strdup(value);
  } else if (g_ascii_strcasecmp(line, "Last-Modified") == 0) {
    g_free(r->last_modified);
    r->last_modified = g_strdup(value);
  } else if (g_ascii_strcasecmp(line, "Content-Length") == 0) {
    r->content_length = g_ascii_strtoll(value, NULL, 10);
  }
  return n;
}

/* The digest of @data (SHA-256 or MD5) into @out (32 bytes); its length.
 * With libcrypto when built with it (several times faster than GLib's, which
 * would bound the upload throughput). */
static gsize
digest(GChecksumType type, const void *data, gsize len, guint8 *out)
{
#ifdef HAVE_LIBCRYPTO
  unsigned int n = 0;
  if (EVP_Digest(len ? data : "", len, out, &n,
                 type == G_CHECKSUM_SHA256 ? EVP_sha256() : EVP_md5(), NULL) == 1)
    return n;
#endif
  {
    g_autoptr(GChecksum) c = g_checksum_new(type);
    gsize dlen = 32;
    if (len > 0)
      g_checksum_update(c, data, (gssize)len);
    g_checksum_get_digest(c, out, &dlen);
    return dlen;
  }
}

static char *
checksum_hex(GChecksumType type, const void *data, gsize len)
{
  guint8 d[32];
  gsize n = digest(type, data, len, d);
  char *hex = g_malloc(n * 2 + 1);
  for (gsize i = 0; i < n; i++)
    g_snprintf(hex + 2 * i, 3, "%02x", d[i]);
  hex[n * 2] = '\0';
  return hex;
}

static char *
md5_base64(const void *data, gsize len)
{
  guint8 d[32];
  gsize n = digest(G_CHECKSUM_MD5, data, len, d);
  return g_base64_encode(d, n);
}

static gboolean
is_retryable_curl(CURLcode rc)
{
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_WEIRD_SERVER_REPLY:
    return TRUE;
  default:
    return FALSE;
  }
}

static gboolean
is_retryable_code(const char *code)
{
  return code != NULL &&
         (strcmp(code, "SlowDown") == 0 || strcmp(code, "InternalError") == 0 ||
          strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "RequestTimeout") == 0);
}

/* What to tell the user to do about an answer. */
static const char *
hint_for(long status, const char *code)
{
  if (code && strcmp(code, "NoSuchBucket") == 0)
    return "create the bucket or fix the replica URL";
  if (code && strcmp(code, "RequestTimeTooSkewed") == 0)
    return "this machine's clock and the server's differ by more than the 15 minutes S3 allows: "
           "set this machine's clock right (NTP), then retry";
  if (code && (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "TokenRefreshRequired") == 0 ||
               strcmp(code, "InvalidToken") == 0))
    return "the credentials' session token has expired or is not valid: renew the credentials "
           "(AWS_SESSION_TOKEN or [replica] credentials-file), then retry";
  if (status == 403 || status == 401)
    return "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
           "[replica] credentials-file), the region and the endpoint";
  if (status == 404)
    return "no such object";
  if (status == 412 || status == 409)
    return "the object exists or changed since it was read";
  return "see the server's message";
}

static int
code_for_status(long status, const char *code)
{
  /* Credentials and clocks, whatever the status the server gave them. */
  if (code && (strcmp(code, "RequestTimeTooSkewed") == 0 || strcmp(code, "ExpiredToken") == 0 ||
               strcmp(code, "TokenRefreshRequired") == 0 || strcmp(code, "InvalidToken") == 0))
    return SQLENVFS_ERROR_PERMISSION;
  if (status == 404)
    return SQLENVFS_ERROR_NOT_FOUND;
  if (status == 403 || status == 401)
    return SQLENVFS_ERROR_PERMISSION;
  if (status == 412 || status == 409)
    return SQLENVFS_ERROR_EXISTS;
  if (status >= 400 && status < 500)
    return SQLENVFS_ERROR_INVALID;
  return SQLENVFS_ERROR_IO;
}

/* Call the tick at most once a second; @now: monotonic us. */
static void
call_tick(SqlenvfsS3 *s3, gint64 now)
{
  if (s3->tick == NULL || now - s3->ticked_at < G_USEC_PER_SEC)
    return;
  s3->ticked_at = now;
  s3->tick(s3->tick_data, s3->what, now - s3->waited_from);
}

/* libcurl's progress callback: a byte received, or one of a body not yet
 * sent whole (a retry that sends a small body again to a server that
 * never answers is no sign of life), restarts the wait. */
static int
on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
            curl_off_t ulnow)
{
  SqlenvfsS3 *s3 = user;
  gint64 now = g_get_monotonic_time();
  (void)dltotal;
  if (dlnow > s3->down_last || (ulnow > s3->up_last && ulnow < ultotal))
    s3->waited_from = now;
  s3->down_last = MAX(dlnow, s3->down_last);
  s3->up_last = MAX(ulnow, s3->up_last);
  call_tick(s3, now);
  return 0;
}

/* Send @req once; fill @resp. Returns the libcurl result; @errbuf gets
 * libcurl's message. */
static CURLcode
perform(SqlenvfsS3 *s3, const Req *req, Resp *resp, char errbuf[CURL_ERROR_SIZE])
{
  g_autoptr(GString) url = g_string_new(s3->endpoint);
  struct curl_slist *hdrs = NULL;
  g_autofree char *sha = checksum_hex(G_CHECKSUM_SHA256, req->body, req->body_len);
  g_autofree char *h_sha = g_strconcat("x-amz-content-sha256: ", sha, NULL);
  g_autofree char *h_md5 = NULL;
  g_autofree char *h_match = NULL;
  g_autofree char *h_range = NULL;
  g_autofree char *h_token = NULL;
  CURL *c = s3->curl;
  CURLcode rc;

  g_string_append_c(url, '/');
  g_string_append(url, s3->bucket);
  if (req->key) {
    g_autofree char *fk = full_key(s3, req->key);
    g_string_append_c(url, '/');
    uri_encode(url, fk, TRUE);
  } else {
    g_string_append_c(url, '/');
  }
  if (req->query && *req->query) {
    g_string_append_c(url, '?');
    g_string_append(url, req->query);
  }

  hdrs = curl_slist_append(hdrs, h_sha);
  if (s3->session_token) {
    h_token = g_strconcat("x-amz-security-token: ", s3->session_token, NULL);
    hdrs = curl_slist_append(hdrs, h_token);
  }
  if (req->send_md5) {
    g_autofree char *b64 = md5_base64(req->body, req->body_len);
    h_md5 = g_strconcat("Content-MD5: ", b64, NULL);
    hdrs = curl_slist_append(hdrs, h_md5);
  }
  if (req->if_none_match)
    hdrs = curl_slist_append(hdrs, "If-None-Match: *");
  if (req->if_match) {
    /* radosgw compares If-Match on PUT with the bare ETag; AWS accepts
     * both forms. */
    h_match = g_strconcat("If-Match: ", req->if_match, NULL);
    hdrs = curl_slist_append(hdrs, h_match);
  }
  if (req->range) {
    h_range = g_strconcat("Range: ", req->range, NULL);
    hdrs = curl_slist_append(hdrs, h_range);
  }
  if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
    /* (An empty "Expect:" to drop 100-continue would be signed as an empty
     * header and break the signature with libcurl 7.88; it stays.) */
    hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
  }

  curl_easy_reset(c);  /* keeps the connection cache */
  resp->body = g_byte_array_new();
  errbuf[0] = '\0';
  curl_easy_setopt(c, CURLOPT_URL, url->str);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s3->sigv4);
  curl_easy_setopt(c, CURLOPT_USERNAME, s3->access_key);
  curl_easy_setopt(c, CURLOPT_PASSWORD, s3->secret_key);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, s3->connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, s3->low_speed_time_s);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, s3->verify_tls ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, s3->verify_tls ? 2L : 0L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  if (s3->tick) {
    s3->up_last = s3->down_last = 0;
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s3);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }

  if (strcmp(req->method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    resp->is_head = TRUE;
  } else if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
    if (strcmp(req->method, "PUT") == 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    /* libcurl sends "Expect: 100-continue" with a body over 1 MiB and waits
     * up to 1 s for an interim answer that radosgw never sends: send the
     * body at once instead (the header stays; see above). */
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 1L);
  } else if (strcmp(req->method, "DELETE") == 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
  }

  s3->stats.n_requests++;
  rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
  curl_slist_free_all(hdrs);
  s3->stats.bytes_sent += req->body_len;
  s3->stats.bytes_received += resp->body->len;
  if (rc == CURLE_OK && !resp->is_head && resp->content_length >= 0 &&
      (gint64)resp->body->len != resp->content_length)
    rc = CURLE_PARTIAL_FILE;  /* invariant (4), should libcurl not catch it */
  return rc;
}

/* Checks run on a 2xx answer: NULL when fine, else why not (the answer is
 * then retried, as a damaged transfer). */
typedef char *(*RespCheck)(const Req *req, Resp *resp, gpointer data);

static void
backoff(SqlenvfsS3 *s3, guint attempt)
{
  gint64 bound = s3->backoff_base_ms << MIN(attempt, 20u);
  gint64 ms;
  if (bound > s3->backoff_max_ms)
    bound = s3->backoff_max_ms;
  ms = bound > 0 ? g_random_int_range(0, (gint32)bound + 1) : 0;
  s3->stats.backoff_us += ms * 1000;
  g_usleep((gulong)(ms * 1000));
}

/* Send @req with retries (invariants (2) and (3)); on success @resp holds
 * the 2xx answer. On failure *error names the operation and the key. */
static gboolean
request_tries(SqlenvfsS3 *s3, const Req *req, Resp *resp, RespCheck check, gpointer data,
              GError **error)
{
  g_autofree char *what = req->key ? sqlenvfs_s3_describe(s3, req->key)
                                   : g_strdup_printf("s3://%s", s3->bucket);
  g_autofree char *last = NULL;  /* the last retryable failure */
  gboolean last_checked = FALSE;   /* it was an answer whose bytes did not check */
  char errbuf[CURL_ERROR_SIZE];

  g_free(s3->what);
  s3->what = g_strdup_printf("%s %s", req->op, what);
  s3->waited_from = g_get_monotonic_time();
  for (guint attempt = 0;; attempt++) {
    CURLcode rc;
    g_autoptr(GPtrArray) ev = NULL;
    const char *code = NULL, *message = NULL;
    gboolean is_error_body = FALSE;

    if (attempt > 0) {
      s3->stats.n_retries++;
      backoff(s3, attempt - 1);
      call_tick(s3, g_get_monotonic_time());
    }
    resp_clear(resp);
    rc = perform(s3, req, resp, errbuf);
    g_free(last);
    last = NULL;
    last_checked = FALSE;
    if (rc != CURLE_OK) {
      if (!is_retryable_curl(rc)) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                    "%s %s: %s (check the endpoint %s and the TLS settings)", req->op, what,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc), s3->endpoint);
        return FALSE;
      }
      last = g_strdup_printf("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
      if (resp->body->len > 0 && (resp->status >= 300 || req->error_in_200)) {
        ev = xml_read(resp->body->data, resp->body->len, NULL);
        code = xml_find(ev, "Error/Code");
        message = xml_find(ev, "Error/Message");
        is_error_body = code != NULL;
      }
      if (resp->status >= 200 && resp->status < 300 && !is_error_body) {
        g_autofree char *bad = check ? check(req, resp, data) : NULL;
        if (bad == NULL)
          return TRUE;
        last = g_steal_pointer(&bad);
        last_checked = TRUE;
      } else if (resp->status >= 500 || is_retryable_code(code)) {
        last = g_strdup_printf("HTTP %ld %s%s%s", resp->status, code ? code : "",
                               message && *message ? ": " : "", message && *message ? message : "");
      } else {
        g_set_error(error, SQLENVFS_ERROR, code_for_status(resp->status, code),
                    "%s %s: HTTP %ld %s%s%s (%s)", req->op, what, resp->status,
                    code ? code : (resp->status == 404 ? "NotFound" : ""),
                    message && *message ? ": " : "", message && *message ? message : "",
                    hint_for(resp->status, code));
        return FALSE;
      }
    }
    if (attempt >= s3->max_retries && last_checked) {
      /* The server answered each time, with bytes that do not check. */
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s %s: %s, after %u attempts (the object is damaged in the store, or was "
                  "replaced while it was read)",
                  req->op, what, last, attempt + 1);
      return FALSE;
    }
    if (attempt >= s3->max_retries) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "%s %s: %s, after %u attempts (check that %s is up and reachable)",
                  req->op, what, last, attempt + 1, s3->endpoint);
      return FALSE;
    }
    g_debug("s3: %s %s: %s; retrying (attempt %u of %u)", req->op, what, last, attempt + 2,
            s3->max_retries + 1);
  }
}

static gboolean
request(SqlenvfsS3 *s3, const Req *req, Resp *resp, RespCheck check, gpointer data,
        GError **error)
{
  gboolean ok = request_tries(s3, req, resp, check, data, error);
  g_clear_pointer(&s3->what, g_free);
  return ok;
}

/* ---- the client ---------------------------------------------------------- */

SqlenvfsS3 *
sqlenvfs_s3_new(const SqlenvfsReplicaConf *conf, GError **error)
{
  SqlenvfsS3 *s3;

  g_return_val_if_fail(conf != NULL && conf->bucket != NULL && conf->endpoint != NULL, NULL);
  if (conf->access_key == NULL || conf->secret_key == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "connect to %s: no credentials (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or credentials-file in [replica])",
                conf->url ? conf->url : conf->bucket);
    return NULL;
  }
  curl_init_once();
  s3 = g_new0(SqlenvfsS3, 1);
  s3->curl = curl_easy_init();
  if (s3->curl == NULL) {
    g_free(s3);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "connect to %s: libcurl could not make a handle (out of memory?)", conf->url);
    return NULL;
  }
  s3->bucket = g_strdup(conf->bucket);
  s3->prefix = g_strdup(conf->prefix ? conf->prefix : "");
  s3->endpoint = g_strdup(conf->endpoint);
  s3->access_key = g_strdup(conf->access_key);
  s3->secret_key = g_strdup(conf->secret_key);
  s3->session_token = g_strdup(conf->session_token);
  s3->sigv4 = g_strdup_printf("aws:amz:%s:s3", conf->region ? conf->region : "us-east-1");
  s3->verify_tls = conf->verify_tls;
  s3->connect_timeout_s = conf->connect_timeout_s > 0 ? (long)conf->connect_timeout_s : 10;
  s3->low_speed_time_s = conf->low_speed_time_s > 0 ? (long)conf->low_speed_time_s : 30;
  s3->max_retries = (guint)CLAMP(conf->max_retries, 0, 20);
  s3->backoff_base_ms = conf->backoff_base_ms > 0 ? conf->backoff_base_ms : 100;
  s3->backoff_max_ms = conf->backoff_max_ms > 0 ? conf->backoff_max_ms : 5000;
  return s3;
}

void
sqlenvfs_s3_free(SqlenvfsS3 *s3)
{
  if (s3 == NULL)
    return;
  if (s3->curl)
    curl_easy_cleanup(s3->curl);
  g_free(s3->bucket);
  g_free(s3->prefix);
  g_free(s3->endpoint);
  g_free(s3->access_key);
  if (s3->secret_key)
    memset(s3->secret_key, 0, strlen(s3->secret_key));
  g_free(s3->secret_key);
  g_free(s3->session_token);
  g_free(s3->sigv4);
  g_free(s3->what);
  g_free(s3);
}

void
sqlenvfs_s3_set_tick(SqlenvfsS3 *s3, SqlenvfsS3Tick fn, gpointer data)
{
  s3->tick = fn;
  s3->tick_data = data;
}

void
sqlenvfs_s3_get_stats(SqlenvfsS3 *s3, SqlenvfsS3Stats *stats)
{
  *stats = s3->stats;
}

/* ---- PUT ----------------------------------------------------------------- */

/* The ETag of a single-part upload is the MD5 of what was sent. */
static char *
check_put_etag(const Req *req, Resp *resp, gpointer data)
{
  const char *md5 = data;
  if (resp->etag == NULL)
    return g_strdup("the answer has no ETag");
  if (md5 && g_ascii_strcasecmp(resp->etag, md5) != 0)
    return g_strdup_printf("the server's ETag %s is not the MD5 %s of the bytes sent",
                           resp->etag, md5);
  return NULL;
}

gboolean
sqlenvfs_s3_put(SqlenvfsS3 *s3, const char *key, const void *data, gsize len,
                SqlenvfsS3PutCondition cond, const char *etag, char **etag_out,
                GError **error)
{
  g_autofree char *md5 = checksum_hex(G_CHECKSUM_MD5, data, len);
  Req req = {
    .op = "put", .method = "PUT", .key = key, .body = data, .body_len = len,
    .send_md5 = TRUE,
    .if_none_match = cond == SQLENVFS_S3_PUT_IF_ABSENT,
    .if_match = cond == SQLENVFS_S3_PUT_IF_MATCH ? etag : NULL,
  };
  Resp resp = {0};
  gboolean ok;

  g_return_val_if_fail(key != NULL && *key != '\0', FALSE);
  g_return_val_if_fail(cond != SQLENVFS_S3_PUT_IF_MATCH || etag != NULL, FALSE);
  ok = request(s3, &req, &resp, check_put_etag, md5, error);
  if (ok && etag_out)
    *etag_out = g_strdup(resp.etag);
  resp_clear(&resp);
  return ok;
}

/* ---- GET, HEAD, DELETE ---------------------------------------------------- */

typedef struct {
  gint64 offset;
  gint64 length;     /* < 0: to the end */
  gboolean whole;
} GetWant;

/* Parse "bytes first-last/total". */
static gboolean
parse_content_range(const char *s, gint64 *first, gint64 *last)
{
  char *end;
  if (s == NULL || !g_str_has_prefix(s, "bytes "))
    return FALSE;
  s += 6;
  *first = g_ascii_strtoll(s, &end, 10);
  if (end == s || *end != '-')
    return FALSE;
  s = end + 1;
  *last = g_ascii_strtoll(s, &end, 10);
  return end != s && *end == '/';
}

static char *
check_get(const Req *req, Resp *resp, gpointer data)
{
  GetWant *w = data;
  if (resp->status == 206) {
    gint64 first, last;
    if (!parse_content_range(resp->content_range, &first, &last))
      return g_strdup_printf("the answer's Content-Range '%s' is not understood",
                             resp->content_range ? resp->content_range : "");
    if (first != w->offset || (gint64)resp->body->len != last - first + 1 ||
        (w->length >= 0 && last - first + 1 > w->length))
      return g_strdup_printf("the answer holds bytes %" G_GINT64_FORMAT "-%" G_GINT64_FORMAT
                             " (%u bytes), not the range asked for",
                             first, last, resp->body->len);
    return NULL;
  }
  /* A whole object: check it against the MD5 in its ETag, when the ETag is
   * one (a multipart object's is "<hex>-<parts>"). */
  if (resp->etag && strlen(resp->etag) == 32 && strchr(resp->etag, '-') == NULL) {
    g_autofree char *md5 = checksum_hex(G_CHECKSUM_MD5, resp->body->data, resp->body->len);
    if (g_ascii_strcasecmp(md5, resp->etag) != 0)
      return g_strdup_printf("the bytes received have MD5 %s, not the ETag %s", md5,
                             resp->etag);
  }
  return NULL;
}

GBytes *
sqlenvfs_s3_get(SqlenvfsS3 *s3, const char *key, gint64 offset, gint64 length,
                char **etag_out, GError **error)
{
  g_autofree char *range = NULL;
  GetWant want = {.offset = offset, .length = length};
  Req req = {.op = "get", .method = "GET", .key = key};
  Resp resp = {0};
  g_autoptr(GError) local = NULL;
  GBytes *out;

  g_return_val_if_fail(key != NULL && offset >= 0, NULL);
  if (length == 0)
    return g_bytes_new(NULL, 0);
  if (offset > 0 || length > 0) {
    if (length > 0)
      range = g_strdup_printf("bytes=%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, offset,
                              offset + length - 1);
    else
      range = g_strdup_printf("bytes=%" G_GINT64_FORMAT "-", offset);
    req.range = range;
  }
  if (!request(s3, &req, &resp, check_get, &want, &local)) {
    /* 416: the range starts at or past the end. */
    if (resp.status == 416) {
      resp_clear(&resp);
      return g_bytes_new(NULL, 0);
    }
    resp_clear(&resp);
    g_propagate_error(error, g_steal_pointer(&local));
    return NULL;
  }
  if (etag_out)
    *etag_out = g_strdup(resp.etag);
  if (resp.status == 200 && range != NULL) {
    /* The server sent the whole object: keep the part asked for. */
    gsize n = resp.body->len;
    gsize from = (gsize)MIN((guint64)offset, n);
    gsize to = length < 0 ? n : (gsize)MIN((guint64)(offset + length), n);
    out = g_bytes_new(resp.body->data + from, to - from);
  } else {
    out = g_byte_array_free_to_bytes(g_steal_pointer(&resp.body));
  }
  resp_clear(&resp);
  return out;
}

static gint64
http_date_us(const char *s)
{
  time_t t;
  if (s == NULL)
    return 0;
  t = curl_getdate(s, NULL);
  return t < 0 ? 0 : (gint64)t * G_USEC_PER_SEC;
}

SqlenvfsS3Object *
sqlenvfs_s3_head(SqlenvfsS3 *s3, const char *key, GError **error)
{
  Req req = {.op = "head", .method = "HEAD", .key = key};
  Resp resp = {0};
  SqlenvfsS3Object *obj;

  g_return_val_if_fail(key != NULL, NULL);
  if (!request(s3, &req, &resp, NULL, NULL, error)) {
    resp_clear(&resp);
    return NULL;
  }
  obj = g_new0(SqlenvfsS3Object, 1);
  obj->key = g_strdup(key);
  obj->size = resp.content_length;
  obj->etag = g_strdup(resp.etag);
  obj->mtime_us = http_date_us(resp.last_modified);
  resp_clear(&resp);
  return obj;
}

gboolean
sqlenvfs_s3_delete(SqlenvfsS3 *s3, const char *key, GError **error)
{
  Req req = {.op = "delete", .method = "DELETE", .key = key};
  Resp resp = {0};
  g_autoptr(GError) local = NULL;
  gboolean ok;

  g_return_val_if_fail(key != NULL && *key != '\0', FALSE);
  ok = request(s3, &req, &resp, NULL, NULL, &local);
  if (!ok && g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND) &&
      strstr(local->message, "NoSuchBucket") == NULL)
    ok = TRUE;  /* S3's rule: deleting a missing key succeeds */
  resp_clear(&resp);
  if (!ok)
    g_propagate_error(error, g_steal_pointer(&local));
  return ok;
}

/* ---- LIST v2 --------------------------------------------------------------- */

typedef struct {
  gboolean is_truncated;
  char *next_token;
} ListPage;

/* A listing's answer (@data: the element it must hold, ListBucketResult or
 * ListMultipartUploadsResult) is XML holding it. */
static char *
check_listing_xml(const Req *req, Resp *resp, gpointer data)
{
  const char *result = data;
  const char *what = g_str_equal(result, "ListBucketResult") ? "the LIST answer"
                                                               : "the list of multipart uploads";
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) ev = xml_read(resp->body->data, resp->body->len, &local);
  if (ev == NULL)
    return g_strdup_printf("%s is not XML: %s", what, local->message);
  if (xml_find(ev, result) == NULL)
    return g_strdup_printf("%s has no %s", what, result);
  return NULL;
}

/* Add one page's objects to @out; fill @page. FALSE when the page does not
 * make sense (a key outside the prefix, a bad size). */
static gboolean
list_page(SqlenvfsS3 *s3, GPtrArray *ev, const char *full_prefix, GPtrArray *out,
          ListPage *page, GError **error)
{
  g_autoptr(SqlenvfsS3Object) cur = NULL;
  gsize strip = *s3->prefix ? strlen(s3->prefix) + 1 : 0;

  for (guint i = 0; i < ev->len; i++) {
    XmlEvent *e = g_ptr_array_index(ev, i);
    if (g_str_has_prefix(e->path, "ListBucketResult/Contents/")) {
      const char *leaf = e->path + strlen("ListBucketResult/Contents/");
      if (cur == NULL)
        cur = g_new0(SqlenvfsS3Object, 1);
      if (strcmp(leaf, "Key") == 0) {
        if (!g_str_has_prefix(e->text, full_prefix) || strlen(e->text) < strip) {
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                      "list s3://%s/%s: the server returned key '%s' outside the prefix",
                      s3->bucket, full_prefix, e->text);
          return FALSE;
        }
        g_free(cur->key);
        cur->key = g_strdup(e->text + strip);
      } else if (strcmp(leaf, "Size") == 0) {
        char *end;
        cur->size = g_ascii_strtoll(e->text, &end, 10);
        if (end == e->text || *end != '\0' || cur->size < 0) {
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                      "list s3://%s/%s: the server returned size '%s' for a key",
                      s3->bucket, full_prefix, e->text);
          return FALSE;
        }
      } else if (strcmp(leaf, "ETag") == 0) {
        g_free(cur->etag);
        cur->etag = unquote(e->text);
      } else if (strcmp(leaf, "LastModified") == 0) {
        g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(e->text, NULL);
        cur->mtime_us =
          dt ? g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt) : 0;
      }
    } else if (strcmp(e->path, "ListBucketResult/Contents") == 0) {
      if (cur == NULL || cur->key == NULL) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                    "list s3://%s/%s: the server returned an entry without a key",
                    s3->bucket, full_prefix);
        return FALSE;
      }
      g_ptr_array_add(out, g_steal_pointer(&cur));
    } else if (strcmp(e->path, "ListBucketResult/IsTruncated") == 0) {
      page->is_truncated = g_ascii_strcasecmp(g_strstrip(e->text), "true") == 0;
    } else if (strcmp(e->path, "ListBucketResult/NextContinuationToken") == 0) {
      g_free(page->next_token);
      page->next_token = g_strdup(e->text);
    }
  }
  return TRUE;
}

GPtrArray *
sqlenvfs_s3_list(SqlenvfsS3 *s3, const char *prefix, guint max_keys, guint *n_pages,
                 GError **error)
{
  g_autoptr(GPtrArray) out =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_s3_object_free);
  g_autofree char *full_prefix =
    *s3->prefix ? g_strconcat(s3->prefix, "/", prefix ? prefix : "", NULL)
                : g_strdup(prefix ? prefix : "");
  g_autofree char *token = NULL;
  guint pages = 0;

  for (;;) {
    g_autoptr(GString) q = g_string_new(NULL);
    const char *last = NULL;
    g_autofree char *mk = max_keys ? g_strdup_printf("%u", max_keys) : NULL;
    Req req = {.op = "list", .method = "GET", .key = NULL};
    Resp resp = {0};
    ListPage page = {0};
    g_autoptr(GPtrArray) ev = NULL;
    gboolean ok;

    if (token)
      query_add(q, &last, "continuation-token", token);
    query_add(q, &last, "list-type", "2");
    if (mk)
      query_add(q, &last, "max-keys", mk);
    query_add(q, &last, "prefix", full_prefix);
    req.query = q->str;
    if (!request(s3, &req, &resp, check_listing_xml, "ListBucketResult", error)) {
      resp_clear(&resp);
      g_prefix_error(error, "(prefix %s) ", full_prefix);
      return NULL;
    }
    pages++;
    ev = xml_read(resp.body->data, resp.body->len, NULL);
    resp_clear(&resp);
    ok = list_page(s3, ev, full_prefix, out, &page, error);
    g_free(token);
    token = page.next_token;
    if (!ok)
      return NULL;
    if (!page.is_truncated)
      break;
    if (token == NULL || *token == '\0') {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "list s3://%s/%s: the server said the listing is truncated but gave no "
                  "continuation token (page %u)",
                  s3->bucket, full_prefix, pages);
      return NULL;
    }
  }
  if (n_pages)
    *n_pages = pages;
  return g_steal_pointer(&out);
}

/* ---- multipart ----------------------------------------------------------- */

static char *
check_xml_has(const Req *req, Resp *resp, gpointer data)
{
  const char *path = data;
  g_autoptr(GPtrArray) ev = xml_read(resp->body->data, resp->body->len, NULL);
  if (ev == NULL || xml_find(ev, path) == NULL || *xml_find(ev, path) == '\0')
    return g_strdup_printf("the answer has no %s", path);
  return NULL;
}

char *
sqlenvfs_s3_multipart_create(SqlenvfsS3 *s3, const char *key, GError **error)
{
  Req req = {.op = "start multipart upload", .method = "POST", .key = key,
             .query = "uploads="};
  Resp resp = {0};
  g_autoptr(GPtrArray) ev = NULL;
  char *id;

  if (!request(s3, &req, &resp, check_xml_has, (gpointer) "InitiateMultipartUploadResult/UploadId",
               error)) {
    resp_clear(&resp);
    return NULL;
  }
  ev = xml_read(resp.body->data, resp.body->len, NULL);
  id = g_strdup(xml_find(ev, "InitiateMultipartUploadResult/UploadId"));
  resp_clear(&resp);
  return id;
}

static char *
upload_query(const char *upload_id, guint part_number)
{
  g_autoptr(GString) q = g_string_new(NULL);
  const char *last = NULL;
  if (part_number > 0) {
    g_autofree char *pn = g_strdup_printf("%u", part_number);
    query_add(q, &last, "partNumber", pn);
  }
  query_add(q, &last, "uploadId", upload_id);
  return g_string_free(g_steal_pointer(&q), FALSE);
}

char *
sqlenvfs_s3_multipart_put_part(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                               guint part_number, const void *data, gsize len,
                               GError **error)
{
  g_autofree char *q = upload_query(upload_id, part_number);
  g_autofree char *md5 = checksum_hex(G_CHECKSUM_MD5, data, len);
  g_autofree char *op = g_strdup_printf("upload part %u of", part_number);
  Req req = {.op = op, .method = "PUT", .key = key, .query = q, .body = data,
             .body_len = len, .send_md5 = TRUE};
  Resp resp = {0};
  char *etag = NULL;

  g_return_val_if_fail(part_number >= 1 && part_number <= 10000, NULL);
  if (request(s3, &req, &resp, check_put_etag, md5, error))
    etag = g_strdup(resp.etag);
  resp_clear(&resp);
  return etag;
}

/* The ETag S3 gives a multipart object: the MD5 of the parts' binary MD5s,
 * then "-<number of parts>". NULL when a part's ETag is not an MD5. */
static char *
multipart_etag(GPtrArray *etags)
{
  g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_MD5);
  for (guint i = 0; i < etags->len; i++) {
    const char *e = g_ptr_array_index(etags, i);
    guint8 d[16];
    if (strlen(e) != 32)
      return NULL;
    for (int k = 0; k < 16; k++) {
      int hi = g_ascii_xdigit_value(e[2 * k]), lo = g_ascii_xdigit_value(e[2 * k + 1]);
      if (hi < 0 || lo < 0)
        return NULL;
      d[k] = (guint8)(hi * 16 + lo);
    }
    g_checksum_update(c, d, sizeof d);
  }
  return g_strdup_printf("%s-%u", g_checksum_get_string(c), etags->len);
}

gboolean
sqlenvfs_s3_multipart_complete(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                               GPtrArray *etags, char **etag_out, GError **error)
{
  g_autofree char *q = upload_query(upload_id, 0);
  g_autoptr(GString) body = g_string_new("<CompleteMultipartUpload>");
  g_autofree char *expect = NULL;
  g_autofree char *etag = NULL;
  Req req = {.op = "complete multipart upload", .method = "POST", .key = key, .query = q,
             .error_in_200 = TRUE};
  Resp resp = {0};
  gboolean ok;

  g_return_val_if_fail(etags != NULL && etags->len > 0, FALSE);
  for (guint i = 0; i < etags->len; i++) {
    g_autofree char *esc = g_markup_escape_text(g_ptr_array_index(etags, i), -1);
    g_string_append_printf(body, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>",
                           i + 1, esc);
  }
  g_string_append(body, "</CompleteMultipartUpload>");
  req.body = body->str;
  req.body_len = body->len;
  ok = request(s3, &req, &resp, check_xml_has, (gpointer) "CompleteMultipartUploadResult/Key",
               error);
  if (ok) {
    g_autoptr(GPtrArray) ev = xml_read(resp.body->data, resp.body->len, NULL);
    const char *e = xml_find(ev, "CompleteMultipartUploadResult/ETag");
    if (e && *e)
      etag = unquote(e);
  }
  resp_clear(&resp);
  if (!ok)
    return FALSE;
  if (etag == NULL) {
    /* radosgw 16 answers with an empty ETag: ask for the object's. */
    g_autoptr(SqlenvfsS3Object) o = sqlenvfs_s3_head(s3, key, error);
    if (o == NULL)
      return FALSE;
    etag = g_strdup(o->etag);
  }
  expect = multipart_etag(etags);
  if (expect && (etag == NULL || g_ascii_strcasecmp(etag, expect) != 0)) {
    g_autofree char *what = sqlenvfs_s3_describe(s3, key);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "complete multipart upload %s: the object's ETag %s is not %s, the one its "
                "parts make (upload it again)",
                what, etag ? etag : "(none)", expect);
    return FALSE;
  }
  if (etag_out)
    *etag_out = g_steal_pointer(&etag);
  return TRUE;
}

gboolean
sqlenvfs_s3_multipart_abort(SqlenvfsS3 *s3, const char *key, const char *upload_id,
                            GError **error)
{
  g_autofree char *q = upload_query(upload_id, 0);
  Req req = {.op = "abort multipart upload", .method = "DELETE", .key = key, .query = q};
  Resp resp = {0};
  g_autoptr(GError) local = NULL;
  gboolean ok = request(s3, &req, &resp, NULL, NULL, &local);

  if (!ok && g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND) &&
      strstr(local->message, "NoSuchUpload") != NULL)
    ok = TRUE;
  resp_clear(&resp);
  if (!ok)
    g_propagate_error(error, g_steal_pointer(&local));
  return ok;
}

/* ---- ListMultipartUploads --------------------------------------------------- */

void
sqlenvfs_s3_upload_free(SqlenvfsS3Upload *u)
{
  if (u == NULL)
    return;
  g_free(u->key);
  g_free(u->upload_id);
  g_free(u);
}

/* Add one page's uploads to @out; the markers of the next page to
 * *@next_key and *@next_id (NULL when not truncated). FALSE when the page
 * does not make sense (a key outside the prefix, an entry without a key or
 * an id, truncated without markers). */
static gboolean
uploads_page(SqlenvfsS3 *s3, GPtrArray *ev, const char *full_prefix, GPtrArray *out,
             char **next_key, char **next_id, GError **error)
{
  g_autoptr(SqlenvfsS3Upload) cur = NULL;
  gsize strip = *s3->prefix ? strlen(s3->prefix) + 1 : 0;
  const char *top = "ListMultipartUploadsResult/";
  gboolean truncated = FALSE;

  for (guint i = 0; i < ev->len; i++) {
    XmlEvent *e = g_ptr_array_index(ev, i);
    const char *path = g_str_has_prefix(e->path, top) ? e->path + strlen(top) : "";
    if (g_str_has_prefix(path, "Upload/")) {
      const char *leaf = path + strlen("Upload/");
      if (cur == NULL)
        cur = g_new0(SqlenvfsS3Upload, 1);
      if (strcmp(leaf, "Key") == 0) {
        if (!g_str_has_prefix(e->text, full_prefix) || strlen(e->text) < strip) {
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                      "list the multipart uploads of s3://%s/%s: the server returned key '%s' "
                      "outside the prefix", s3->bucket, full_prefix, e->text);
          return FALSE;
        }
        g_free(cur->key);
        cur->key = g_strdup(e->text + strip);
      } else if (strcmp(leaf, "UploadId") == 0) {
        g_free(cur->upload_id);
        cur->upload_id = g_strdup(e->text);
      } else if (strcmp(leaf, "Initiated") == 0) {
        g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(e->text, NULL);
        cur->initiated_us =
          dt ? g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt) : 0;
      }
    } else if (strcmp(path, "Upload") == 0) {
      if (cur == NULL || cur->key == NULL || cur->upload_id == NULL || !*cur->upload_id) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                    "list the multipart uploads of s3://%s/%s: the server returned an upload "
                    "without a key or an id", s3->bucket, full_prefix);
        return FALSE;
      }
      g_ptr_array_add(out, g_steal_pointer(&cur));
    } else if (strcmp(path, "IsTruncated") == 0) {
      truncated = g_ascii_strcasecmp(g_strstrip(e->text), "true") == 0;
    } else if (strcmp(path, "NextKeyMarker") == 0) {
      g_free(*next_key);
      *next_key = g_strdup(e->text);
    } else if (strcmp(path, "NextUploadIdMarker") == 0) {
      g_free(*next_id);
      *next_id = g_strdup(e->text);
    }
  }
  if (!truncated) {
    g_clear_pointer(next_key, g_free);
    g_clear_pointer(next_id, g_free);
  } else if (*next_key == NULL || **next_key == '\0') {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "list the multipart uploads of s3://%s/%s: the server said the list is "
                "truncated but gave no next key marker", s3->bucket, full_prefix);
    return FALSE;
  }
  return TRUE;
}

GPtrArray *
sqlenvfs_s3_multipart_list(SqlenvfsS3 *s3, guint max_uploads, guint *n_pages, GError **error)
{
  g_autoptr(GPtrArray) out =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_s3_upload_free);
  g_autofree char *full_prefix = *s3->prefix ? g_strconcat(s3->prefix, "/", NULL) : g_strdup("");
  g_autofree char *key_marker = NULL, *id_marker = NULL;

  for (guint pages = 1;; pages++) {
    g_autoptr(GString) q = g_string_new(NULL);
    const char *last = NULL;
    g_autofree char *mu = max_uploads ? g_strdup_printf("%u", max_uploads) : NULL;
    Req req = {.op = "list the multipart uploads", .method = "GET", .key = NULL};
    Resp resp = {0};
    g_autoptr(GPtrArray) ev = NULL;
    gboolean ok;

    /* Sorted (invariant (1)): key-marker, max-uploads, prefix,
     * upload-id-marker, uploads. */
    if (key_marker)
      query_add(q, &last, "key-marker", key_marker);
    if (mu)
      query_add(q, &last, "max-uploads", mu);
    query_add(q, &last, "prefix", full_prefix);
    if (key_marker && id_marker && *id_marker)
      query_add(q, &last, "upload-id-marker", id_marker);
    query_add(q, &last, "uploads", NULL);
    req.query = q->str;
    if (!request(s3, &req, &resp, check_listing_xml, "ListMultipartUploadsResult",
                 error)) {
      resp_clear(&resp);
      g_prefix_error(error, "(prefix %s) ", full_prefix);
      return NULL;
    }
    ev = xml_read(resp.body->data, resp.body->len, NULL);
    resp_clear(&resp);
    ok = uploads_page(s3, ev, full_prefix, out, &key_marker, &id_marker, error);
    if (!ok)
      return NULL;
    if (key_marker == NULL) {
      if (n_pages)
        *n_pages = pages;
      break;
    }
    if (pages >= 10000) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "list the multipart uploads of s3://%s/%s: more than %u pages (the server "
                  "keeps saying the list is truncated)", s3->bucket, full_prefix, pages);
      return NULL;
    }
  }
  return g_steal_pointer(&out);
}

gboolean
sqlenvfs_s3_put_large(SqlenvfsS3 *s3, const char *key, const void *data, gsize len,
                      gsize part_size, char **etag_out, GError **error)
{
  g_autofree char *id = NULL;
  g_autoptr(GPtrArray) etags = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail(part_size > 0, FALSE);
  if (len <= part_size)
    return sqlenvfs_s3_put(s3, key, data, len, SQLENVFS_S3_PUT_ALWAYS, NULL, etag_out, error);
  id = sqlenvfs_s3_multipart_create(s3, key, error);
  if (id == NULL)
    return FALSE;
  for (gsize off = 0; off < len; off += part_size) {
    gsize n = MIN(part_size, len - off);
    char *etag = sqlenvfs_s3_multipart_put_part(s3, key, id, etags->len + 1,
                                                (const guint8 *)data + off, n, &local);
    if (etag == NULL)
      goto abort;
    g_ptr_array_add(etags, etag);
  }
  if (sqlenvfs_s3_multipart_complete(s3, key, id, etags, etag_out, &local))
    return TRUE;
abort:
  {
    g_autoptr(GError) abort_error = NULL;
    if (!sqlenvfs_s3_multipart_abort(s3, key, id, &abort_error))
      g_warning("abort multipart upload %s of %s: %s (the parts stay until a lifecycle "
                "rule removes them)",
                id, key, abort_error->message);
  }
  g_propagate_error(error, g_steal_pointer(&local));
  return FALSE;
}
