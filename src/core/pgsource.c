/*
 * pgsource.c — the PostgreSQL side of migrate-pg: connect, fix the session,
 * read the catalog, stream rows through a cursor (contract in pgsource.h).
 *
 * Invariants:
 *   (1) Everything runs inside one transaction (REPEATABLE READ READ ONLY):
 *       catalog and rows come from one snapshot, and nothing is ever written
 *       on the server. The transaction begun at open only lists the tables;
 *       it is begun again with them locked before its snapshot is taken
 *       (begin_locked), and everything read after comes from that one.
 *   (2) The client holds at most one FETCH batch (one PGresult) at a time,
 *       of about FETCH_TARGET_BYTES: its rows are counted from the last one's.
 *   (3) Errors reaching the user are one line: libpq's multi-line messages
 *       are folded, and the DSN itself (which may hold a password) is never
 *       echoed.
 */
#include "sqlenvfs/pgsource.h"
#include "sqlenvfs/error.h"

#include <libpq-fe.h>
#include <poll.h>
#include <string.h>

struct _SqlenvfsPgSource {
  PGconn *conn;
  char *describe;
  GHashTable *types; /* type oid -> TypeRow, a cache of pg_type */
  gboolean cursor_open;
  guint stall_s;     /* a FETCH given up after this long with no byte (0: never) */
  gboolean stalled;  /* one was: the connection is not used again */
};

/* A batch is bounded in bytes as well as in rows (invariant 2): the
 * first FETCH asks for a few rows, and each next one for as many rows of
 * the last one's size as fit in FETCH_TARGET_BYTES, never more than the
 * caller's batch_rows. A batch of rows much wider than the last ones can
 * still exceed it, by as much as they are wider. */
#define FETCH_TARGET_BYTES ((guint64)16 << 20)
#define FETCH_FIRST_ROWS 16u
/* What libpq holds for each value beside its bytes (PGresAttValue). */
#define FETCH_VALUE_OVERHEAD 16u

struct _SqlenvfsPgCursor {
  SqlenvfsPgSource *src;
  PGresult *batch;
  guint n_cols;
  guint max_rows;  /* the caller's batch_rows   */
  guint next_rows; /* rows the next FETCH asks  */
  gboolean done;
};

static void
pgresult_clear(PGresult *res)
{
  PQclear(res);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PGresult, pgresult_clear)

/* libpq messages end in "\n" and may hold several lines ("...failed: X\n\tIs
 * the server running...?"): one line, messages joined by "; ", a line
 * indented under the one before (a sentence going on) by a space, without
 * the final full stop (a context is said after it). */
static char *
one_line(const char *msg)
{
  g_auto(GStrv) lines = g_strsplit(msg ? msg : "", "\n", -1);
  GString *out = g_string_new(NULL);
  for (int i = 0; lines[i]; i++) {
    gboolean goes_on = lines[i][0] == '\t' || lines[i][0] == ' ';
    char *l = g_strstrip(lines[i]);
    if (*l == '\0')
      continue;
    if (out->len)
      g_string_append(out, goes_on && g_ascii_islower(*l) ? " " : "; ");
    g_string_append(out, l);
  }
  while (out->len > 0 && out->str[out->len - 1] == '.')
    g_string_truncate(out, out->len - 1);
  return g_string_free(out, FALSE);
}

/* The primary message of a failed query result (one line). */
static gboolean
result_error(GError **error, PGresult *res, PGconn *conn, const char *what, const char *where)
{
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  g_autofree char *msg = one_line(primary ? primary : PQerrorMessage(conn));
  /* row_security = off (session_sql): the role would see only some rows. */
  gboolean rls = primary && strstr(primary, "row-level security") != NULL;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED, "%s on %s: %s%s", what, where, msg,
              rls ? " (this role would read only the rows its policies let it see; migrate as "
                    "the table's owner or a role with BYPASSRLS, so that every row is copied)"
                  : "");
  return FALSE;
}

/* Run @sql (no parameters) expecting @status; NULL and *error otherwise. */
static PGresult *
run(SqlenvfsPgSource *src, const char *sql, ExecStatusType status, const char *what,
    GError **error)
{
  PGresult *res = PQexec(src->conn, sql);
  if (res == NULL || PQresultStatus(res) != status) {
    result_error(error, res, src->conn, what, src->describe);
    PQclear(res);
    return NULL;
  }
  return res;
}

/* As run(), but given up when the server sends nothing for src->stall_s
 * seconds: a server process stopped or stuck on a host that is up answers
 * TCP keepalives, and the load holds production's write lock meanwhile.
 * The query is then cancelled (best effort: a stopped process does not
 * act on it) and the connection not used again. */
static PGresult *
run_watched(SqlenvfsPgSource *src, const char *sql, ExecStatusType status, const char *what,
            GError **error)
{
  PGresult *res = NULL;
  gint64 last = g_get_monotonic_time();

  if (src->stall_s == 0)
    return run(src, sql, status, what, error);
  if (!PQsendQuery(src->conn, sql)) {
    result_error(error, NULL, src->conn, what, src->describe);
    return NULL;
  }
  for (;;) {
    struct pollfd p = { PQsocket(src->conn), POLLIN, 0 };
    gint64 left_ms = (last + (gint64)src->stall_s * G_USEC_PER_SEC - g_get_monotonic_time()) / 1000;
    int n;
    while (!PQisBusy(src->conn)) {
      PGresult *r = PQgetResult(src->conn);
      if (r == NULL)
        goto done;
      PQclear(res);
      res = r;
    }
    if (left_ms <= 0) {
      PGcancel *c = PQgetCancel(src->conn);
      char buf[256];
      if (c != NULL) {
        PQcancel(c, buf, sizeof buf);
        PQfreeCancel(c);
      }
      PQclear(res);
      src->stalled = TRUE;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "%s on %s: the server sent nothing for %u s (it is stopped, stuck or "
                  "unreachable, or a query of a view takes that long to give its first row; "
                  "production's writers were waiting on this load): check the server, or give "
                  "a larger --stall-seconds, then run again",
                  what, src->describe, src->stall_s);
      return NULL;
    }
    n = poll(&p, 1, (int)MIN(left_ms, 1000));
    if (n > 0) {
      if (!PQconsumeInput(src->conn)) {
        PQclear(res);
        result_error(error, NULL, src->conn, what, src->describe);
        return NULL;
      }
      last = g_get_monotonic_time();
    }
  }
done:
  if (res == NULL || PQresultStatus(res) != status) {
    result_error(error, res, src->conn, what, src->describe);
    PQclear(res);
    return NULL;
  }
  return res;
}

void
sqlenvfs_pg_source_set_stall(SqlenvfsPgSource *src, guint seconds)
{
  src->stall_s = seconds;
}

static PGresult *
run_params(SqlenvfsPgSource *src, const char *sql, int n, const char *const *values,
           const char *what, GError **error)
{
  PGresult *res = PQexecParams(src->conn, sql, n, NULL, values, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    result_error(error, res, src->conn, what, src->describe);
    PQclear(res);
    return NULL;
  }
  return res;
}

static void
type_row_free(gpointer p);

/* Whether @dsn is a URI whose user name or password holds a character
 * that ends it early when not percent-encoded: more than one '@' before
 * the host, or, with none, an '@' after the first '/' or '?' and before any
 * '=' (a '/' or '?' in the password ended the authority there; an '@' in a
 * parameter's value is its own). */
static gboolean
uri_userinfo_unencoded(const char *dsn)
{
  const char *p, *auth_end;
  guint ats = 0;
  if (g_str_has_prefix(dsn, "postgresql://"))
    p = dsn + strlen("postgresql://");
  else if (g_str_has_prefix(dsn, "postgres://"))
    p = dsn + strlen("postgres://");
  else
    return FALSE;
  auth_end = p + strcspn(p, "/?#");
  for (const char *q = p; q < auth_end; q++)
    ats += *q == '@';
  if (ats > 1)
    return TRUE;
  return ats == 0 && auth_end[strcspn(auth_end, "=@")] == '@';
}

static gboolean
looks_like_conninfo(const char *dsn)
{
  return strchr(dsn, '=') != NULL || g_str_has_prefix(dsn, "postgresql://") ||
         g_str_has_prefix(dsn, "postgres://");
}

/* Settings that give every type exactly one text form (pgtype.h); that
 * make a read that row-level security would cut short fail instead of
 * returning fewer rows; and that keep the server's time limits from
 * ending the session while production is copied (the transaction waits,
 * idle, for the snapshot) or while a large batch is read. */
static const char session_sql[] =
  "SET DateStyle = 'ISO, YMD'; "
  "SET TimeZone = 'UTC'; "
  "SET IntervalStyle = 'iso_8601'; "
  "SET extra_float_digits = 3; "
  "SET bytea_output = 'hex'; "
  "SET row_security = off; "
  "SET statement_timeout = 0; "
  "SET idle_in_transaction_session_timeout = 0";

/* The server's notices and warnings (a FATAL before the connection
 * drops, say) go to the log as one line, not raw to stderr: the error
 * that follows says what failed. */
static void
notice_to_log(void *arg, const char *message)
{
  g_autofree char *msg = one_line(message);
  (void)arg;
  g_debug("PostgreSQL: %s", msg);
}

/* What is wrong with a DSN libpq cannot parse, in our words: libpq's own
 * messages quote the part of the DSN they stumbled on, which may be the
 * password (invariant 3). Only the name of an unknown keyword, which comes
 * before an '=', is repeated; anything else (a message not recognised, in
 * another language say) is described in general terms. */
#define GENERAL "give a libpq connection string such as 'host=H port=P dbname=D user=U', " \
                "or a postgresql:// URI"

static char *
dsn_parse_error(const char *libpq_msg)
{
  const char *m = libpq_msg ? libpq_msg : "";
  static const char unknown[] = "invalid connection option \"";
  if (g_str_has_prefix(m, unknown)) {
    const char *name = m + strlen(unknown);
    const char *end = strchr(name, '"');
    gsize n = end ? (gsize)(end - name) : 0;
    gboolean plain = n > 0 && n <= 64;
    for (gsize i = 0; plain && i < n; i++)
      plain = g_ascii_isalnum(name[i]) || name[i] == '_';
    return g_strdup_printf("unknown connection option%s%.*s%s (%s)", plain ? " \"" : "",
                           plain ? (int)n : 0, name, plain ? "\"" : "", GENERAL);
  }
  if (strstr(m, "percent-encoded"))
    return g_strdup("a '%' in the URI is not followed by two hexadecimal digits, or encodes "
                    "a zero byte (write a literal '%' as %25, in a password too)");
  if (strstr(m, "missing \"=\""))
    return g_strdup("a word without '=' (give every parameter as keyword=value, and put a "
                    "value holding spaces in single quotes)");
  if (strstr(m, "unterminated quoted string"))
    return g_strdup("a quoted value is not closed (end it with a single quote; write a quote "
                    "inside it as \\')");
  if (strstr(m, "URI"))
    return g_strdup("the URI is malformed (postgresql://USER:PASSWORD@HOST:PORT/DBNAME?"
                    "KEY=VALUE; percent-encode '@', ':', '/', '?', '#' and '%' in a user "
                    "or password)");
  if (libpq_msg == NULL)
    return g_strdup("out of memory");
  return g_strdup("libpq cannot parse it (" GENERAL ")");
}

/* Whether the libpq loaded knows connection keyword @key. */
static gboolean
conninfo_knows(const char *key)
{
  g_autofree char *probe = g_strdup_printf("%s=1", key);
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(probe, &errmsg);
  PQfreemem(errmsg);
  if (opts == NULL)
    return FALSE;
  PQconninfoFree(opts);
  return TRUE;
}

SqlenvfsPgSource *
sqlenvfs_pg_source_open(const char *dsn, GError **error)
{
  /* Defaults first: values in the DSN, expanded from "dbname", win.
   * The load holds production's write lock while it waits for the server:
   * TCP keepalives (a probe after 60 s of silence, given up after 6 more
   * unanswered 10 s apart) and a 2-minute TCP user timeout end the wait
   * for a server whose host or network is gone, where the kernel would
   * otherwise wait for hours. A server process that is stopped on a live
   * host still has its probes answered: a FETCH is then given up after
   * the source's stall limit (sqlenvfs_pg_source_set_stall). */
  const char *keys[] = { "connect_timeout", "application_name", "keepalives", "keepalives_idle",
                         "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                         "dbname", NULL };
  const char *vals[] = { "10", "sqlenvfs migrate-pg", "1", "60", "10", "6", "120000", dsn,
                         NULL };
  g_autoptr(SqlenvfsPgSource) src = NULL;
  gboolean service = g_getenv("PGSERVICE") != NULL;
  PGresult *res;

  g_return_val_if_fail(dsn != NULL, NULL);
  if (uri_userinfo_unencoded(dsn)) {
    /* libpq would take part of the password for the host, port or
     * database, and its errors would show it. */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "invalid --dsn: the URI has an '@' after its user name and password, or more "
                "than one before its host (percent-encode those characters in the user name "
                "and password: '@' as %%40, '/' as %%2F, ':' as %%3A, '?' as %%3F, '#' as %%23)");
    return NULL;
  }
  if (looks_like_conninfo(dsn)) {
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg);
    if (opts == NULL) {
      g_autofree char *msg = dsn_parse_error(errmsg);
      PQfreemem(errmsg);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "invalid --dsn: %s", msg);
      return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
      service = service || (strcmp(o->keyword, "service") == 0 && o->val && *o->val);
    PQconninfoFree(opts);
  }
  if (service) {
    /* Values given here win over a service file's (pg_service.conf): the
     * service's own keepalives and timeouts are left to it. */
    keys[0] = "application_name";
    vals[0] = "sqlenvfs migrate-pg";
    keys[1] = "dbname";
    vals[1] = dsn;
    keys[2] = vals[2] = NULL;
  }

  if (!service && !conninfo_knows("tcp_user_timeout")) {
    /* libpq before 12 refuses the keyword: go without, keepalives remain. */
    keys[6] = keys[7];
    vals[6] = vals[7];
    keys[7] = vals[7] = NULL;
  }

  src = g_new0(SqlenvfsPgSource, 1);
  src->types = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, type_row_free);
  src->conn = PQconnectdbParams(keys, vals, 1);
  if (src->conn == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "connect to PostgreSQL: out of memory");
    return NULL;
  }
  {
    const char *db = PQdb(src->conn), *host = PQhost(src->conn), *port = PQport(src->conn);
    src->describe = g_strdup_printf("PostgreSQL database %s at %s%s%s", db && *db ? db : "?",
                                    host && *host ? host : "(default)", port && *port ? ":" : "",
                                    port && *port ? port : "");
  }
  if (PQstatus(src->conn) != CONNECTION_OK) {
    g_autofree char *msg = one_line(PQerrorMessage(src->conn));
    gboolean auth = PQconnectionNeedsPassword(src->conn);
    g_set_error(error, SQLENVFS_ERROR, auth ? SQLENVFS_ERROR_PERMISSION : SQLENVFS_ERROR_IO,
                "connect to %s: %s (%s)", src->describe, msg,
                auth ? "give the password in the DSN, ~/.pgpass or $PGPASSWORD"
                     : "check --dsn and that the server is running and reachable");
    return NULL;
  }
  PQsetNoticeProcessor(src->conn, notice_to_log, NULL);
  if (PQsetClientEncoding(src->conn, "UTF8") != 0) {
    g_autofree char *msg = one_line(PQerrorMessage(src->conn));
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "set client encoding UTF8 on %s: %s", src->describe, msg);
    return NULL;
  }
  res = run(src, session_sql, PGRES_COMMAND_OK, "set session options", error);
  if (res == NULL)
    return NULL;
  PQclear(res);
  res = run(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK,
            "begin read-only transaction", error);
  if (res == NULL)
    return NULL;
  PQclear(res);
  g_debug("connected to %s (server %d)", src->describe, PQserverVersion(src->conn));
  return g_steal_pointer(&src);
}

void
sqlenvfs_pg_source_free(SqlenvfsPgSource *src)
{
  if (src == NULL)
    return;
  if (src->conn)
    PQfinish(src->conn); /* the read-only transaction ends with the session */
  g_free(src->describe);
  g_hash_table_destroy(src->types);
  g_free(src);
}

const char *
sqlenvfs_pg_source_describe(const SqlenvfsPgSource *src)
{
  return src->describe;
}

static void
pg_column_free(gpointer p)
{
  SqlenvfsPgColumn *c = p;
  g_free(c->name);
  g_free(c->type_name);
  g_free(c);
}

void
sqlenvfs_pg_table_free(SqlenvfsPgTable *t)
{
  if (t == NULL)
    return;
  g_free(t->schema);
  g_free(t->name);
  g_free(t->display);
  g_free(t->sql_name);
  g_free(t->sql_from);
  g_free(t->oid);
  if (t->columns)
    g_ptr_array_unref(t->columns);
  g_free(t);
}

static char *
quote_ident(SqlenvfsPgSource *src, const char *name)
{
  char *q = PQescapeIdentifier(src->conn, name, strlen(name));
  char *out = g_strdup(q ? q : "\"\"");
  PQfreemem(q);
  return out;
}

/* --- types --------------------------------------------------------------- */

/* What pg_type says about one type oid. */
typedef struct {
  char *typname;
  gboolean in_pg_catalog;
  char typtype;     /* b base, d domain, e enum, c composite, r range, p pseudo */
  char typcategory; /* A array, ... */
  guint32 typbasetype;
  int typtypmod;
  guint32 typelem;
  int typlen;
} TypeRow;

static void
type_row_free(gpointer p)
{
  TypeRow *row = p;
  g_free(row->typname);
  g_free(row);
}

static const TypeRow *
type_row(SqlenvfsPgSource *src, guint32 oid, GError **error)
{
  TypeRow *row = g_hash_table_lookup(src->types, GUINT_TO_POINTER(oid));
  g_autofree char *oidtext = NULL;
  g_autoptr(PGresult) res = NULL;
  const char *params[1];

  if (row)
    return row;
  oidtext = g_strdup_printf("%u", oid);
  params[0] = oidtext;
  res = run_params(src,
                   "SELECT t.typname, n.nspname = 'pg_catalog', t.typtype, t.typcategory, "
                   "t.typbasetype, t.typtypmod, t.typelem, t.typlen "
                   "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n "
                   "ON n.oid = t.typnamespace WHERE t.oid = $1::oid",
                   1, params, "read type catalog", error);
  if (res == NULL)
    return NULL;
  if (PQntuples(res) != 1) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "read type catalog on %s: type oid %u not found", src->describe, oid);
    return NULL;
  }
  row = g_new0(TypeRow, 1);
  /* typname is a "name" (at most 63 bytes): keep it in the row. */
  row->typname = g_strdup(PQgetvalue(res, 0, 0));
  row->in_pg_catalog = PQgetvalue(res, 0, 1)[0] == 't';
  row->typtype = PQgetvalue(res, 0, 2)[0];
  row->typcategory = PQgetvalue(res, 0, 3)[0];
  row->typbasetype = (guint32)g_ascii_strtoull(PQgetvalue(res, 0, 4), NULL, 10);
  row->typtypmod = (int)g_ascii_strtoll(PQgetvalue(res, 0, 5), NULL, 10);
  row->typelem = (guint32)g_ascii_strtoull(PQgetvalue(res, 0, 6), NULL, 10);
  row->typlen = (int)g_ascii_strtoll(PQgetvalue(res, 0, 7), NULL, 10);
  g_hash_table_insert(src->types, GUINT_TO_POINTER(oid), row);
  return row;
}

/* Resolve @oid (with @typmod) to a kind: through domains, enums as text,
 * arrays (one level; the element through domains too). */
static gboolean
resolve_type(SqlenvfsPgSource *src, guint32 oid, int typmod, gboolean allow_array, int depth,
             SqlenvfsPgType *out, GError **error)
{
  const TypeRow *row;
  if (depth > 16) {
    out->kind = SQLENVFS_PG_UNSUPPORTED;
    return TRUE;
  }
  row = type_row(src, oid, error);
  if (row == NULL)
    return FALSE;
  switch (row->typtype) {
  case 'd':
    return resolve_type(src, row->typbasetype, row->typtypmod >= 0 ? row->typtypmod : typmod,
                        allow_array, depth + 1, out, error);
  case 'e':
    out->kind = SQLENVFS_PG_TEXT;
    return TRUE;
  case 'b':
    break;
  default:
    out->kind = SQLENVFS_PG_UNSUPPORTED;
    return TRUE;
  }
  /* int2vector and oidvector are of the array category, but print as
   * "1 2 3", not as an array: no mapping, refused while planning. */
  if (row->in_pg_catalog &&
      (strcmp(row->typname, "int2vector") == 0 || strcmp(row->typname, "oidvector") == 0)) {
    out->kind = SQLENVFS_PG_UNSUPPORTED;
    return TRUE;
  }
  if (row->typcategory == 'A' && row->typlen == -1 && row->typelem != 0) {
    SqlenvfsPgType elem = { 0 };
    if (!allow_array) {
      out->kind = SQLENVFS_PG_UNSUPPORTED;
      return TRUE;
    }
    if (!resolve_type(src, row->typelem, typmod, FALSE, depth + 1, &elem, error))
      return FALSE;
    out->kind = elem.kind == SQLENVFS_PG_UNSUPPORTED ? SQLENVFS_PG_UNSUPPORTED : SQLENVFS_PG_ARRAY;
    out->elem = elem.kind;
    out->precision = elem.precision;
    return TRUE;
  }
  out->kind = row->in_pg_catalog ? sqlenvfs_pg_kind_from_name(row->typname)
                                 : SQLENVFS_PG_UNSUPPORTED;
  out->precision = sqlenvfs_pg_time_precision(typmod);
  return TRUE;
}

/* --- tables -------------------------------------------------------------- */

static const char columns_sql[] =
  "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, "
  "a.atttypmod, a.attnotnull, "
  "COALESCE((SELECT k.ord FROM pg_catalog.pg_index i, "
  "          unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
  "          WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum), 0) "
  "FROM pg_catalog.pg_attribute a "
  "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
  "ORDER BY a.attnum";

static SqlenvfsPgTable *
load_table(SqlenvfsPgSource *src, const char *oid, const char *schema, const char *name,
           const char *relkind, gboolean numeric_as_real, GError **error)
{
  g_autoptr(SqlenvfsPgTable) t = g_new0(SqlenvfsPgTable, 1);
  g_autoptr(PGresult) res = NULL;
  g_autofree char *qs = NULL, *qn = NULL;
  const char *params[1] = { oid };

  t->schema = g_strdup(schema);
  t->name = g_strdup(name);
  t->oid = g_strdup(oid);
  t->relkind = relkind[0];
  t->display = g_strdup_printf("%s.%s", schema, name);
  qs = quote_ident(src, schema);
  qn = quote_ident(src, name);
  t->sql_name = g_strdup_printf("%s.%s", qs, qn);
  /* A plain table's SELECT also returns the rows of tables that INHERIT from
   * it; those are tables of their own (migrated on their own, as pg_dump
   * does), so read ONLY its rows. A partitioned table ('p') has no rows but
   * its partitions', which are not migrated on their own. */
  t->sql_from = strcmp(relkind, "r") == 0 ? g_strdup_printf("ONLY %s", t->sql_name)
                                          : g_strdup(t->sql_name);
  t->columns = g_ptr_array_new_with_free_func(pg_column_free);

  if (t->relkind == 'm') {
    /* Said while planning, not by the first FETCH after production's
     * snapshot. */
    g_autoptr(PGresult) pop = run_params(
      src, "SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = $1::oid", 1, params,
      "read the materialized view", error);
    if (pop == NULL)
      return NULL;
    if (PQntuples(pop) == 1 && PQgetvalue(pop, 0, 0)[0] == 'f') {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "materialized view %s has not been populated (run `REFRESH MATERIALIZED "
                  "VIEW %s` in PostgreSQL first, or leave it out of --tables)",
                  t->display, t->sql_name);
      return NULL;
    }
  }
  res = run_params(src, columns_sql, 1, params, "read columns", error);
  if (res == NULL)
    return NULL;
  for (int r = 0; r < PQntuples(res); r++) {
    SqlenvfsPgColumn *c = g_new0(SqlenvfsPgColumn, 1);
    g_ptr_array_add(t->columns, c);
    c->name = g_strdup(PQgetvalue(res, r, 0));
    c->type_name = g_strdup(PQgetvalue(res, r, 1));
    c->not_null = PQgetvalue(res, r, 4)[0] == 't';
    c->pk_position = (int)g_ascii_strtoll(PQgetvalue(res, r, 5), NULL, 10);
    if (!resolve_type(src, (guint32)g_ascii_strtoull(PQgetvalue(res, r, 2), NULL, 10),
                      (int)g_ascii_strtoll(PQgetvalue(res, r, 3), NULL, 10), TRUE, 0, &c->type,
                      error))
      return NULL;
    c->type.numeric_as_real = numeric_as_real;
  }
  return g_steal_pointer(&t);
}

/* Whether partition c has an ancestor (its partitioned parent, or that
 * one's, ...) in the current schema: that ancestor is listed and reads the
 * partition's rows. A partition whose every ancestor is in another schema
 * is listed on its own, or its rows would not be migrated at all. */
#define PARTITION_ANCESTOR_HERE                                                                \
  "WITH RECURSIVE up(oid) AS (SELECT i.inhparent FROM pg_catalog.pg_inherits i "               \
  "WHERE i.inhrelid = c.oid UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i "           \
  "JOIN up ON i.inhrelid = up.oid) "                                                           \
  "SELECT 1 FROM up JOIN pg_catalog.pg_class pc ON pc.oid = up.oid "                           \
  "JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace "                               \
  "WHERE pn.nspname = current_schema()"

/* One name of --tables at *@p: "quoted" (a quote inside doubled) or bare
 * (up to a '.' or the end). NULL when it is empty or badly quoted. */
static char *
take_name(const char **p)
{
  g_autoptr(GString) out = g_string_new(NULL);
  const char *s = *p;

  if (*s == '"') {
    for (s++;; s++) {
      if (*s == '\0')
        return NULL;
      if (*s == '"') {
        if (s[1] != '"')
          break;
        s++;
      }
      g_string_append_c(out, *s);
    }
    s++;
  } else {
    while (*s != '\0' && *s != '.') {
      if (*s == '"')
        return NULL;
      g_string_append_c(out, *s++);
    }
  }
  *p = s;
  return out->len ? g_string_free(g_steal_pointer(&out), FALSE) : NULL;
}

/* A name of --tables, TABLE or SCHEMA.TABLE, each part bare or quoted. */
static gboolean
split_table_name(const char *name, char **schema, char **rel)
{
  const char *p = name;
  g_autofree char *first = take_name(&p);
  g_autofree char *second = NULL;

  if (first == NULL)
    return FALSE;
  if (*p == '\0') {
    *rel = g_steal_pointer(&first);
    return TRUE;
  }
  if (*p != '.')
    return FALSE;
  p++;
  second = take_name(&p);
  if (second == NULL || *p != '\0')
    return FALSE;
  *schema = g_steal_pointer(&first);
  *rel = g_steal_pointer(&second);
  return TRUE;
}

static GPtrArray *
list_tables(SqlenvfsPgSource *src, const char *const *names, gboolean numeric_as_real,
            GError **error)
{
  g_autoptr(GPtrArray) tables =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_pg_table_free);
  g_autoptr(PGresult) list = NULL;

  if (names == NULL || names[0] == NULL) {
    list = run(src,
               "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c "
               "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
               "AND (NOT c.relispartition OR NOT EXISTS (" PARTITION_ANCESTOR_HERE ")) "
               "ORDER BY c.relname",
               PGRES_TUPLES_OK, "list tables", error);
    if (list == NULL)
      return NULL;
    for (int r = 0; r < PQntuples(list); r++) {
      SqlenvfsPgTable *t = load_table(src, PQgetvalue(list, r, 0), PQgetvalue(list, r, 1),
                                      PQgetvalue(list, r, 2), PQgetvalue(list, r, 3),
                                      numeric_as_real, error);
      if (t == NULL)
        return NULL;
      g_ptr_array_add(tables, t);
    }
    return g_steal_pointer(&tables);
  }

  for (int i = 0; names[i]; i++) {
    g_autofree char *schema = NULL, *rel = NULL;
    const char *params[2];
    g_autoptr(PGresult) res = NULL;
    SqlenvfsPgTable *t;

    if (!split_table_name(names[i], &schema, &rel)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "invalid table name '%s' in --tables (give TABLE or SCHEMA.TABLE; a name "
                  "holding '.', ',' or '\"' in double quotes, with '\"' doubled: "
                  "'\"my.table\"', 'other.\"a,b\"')",
                  names[i]);
      return NULL;
    }
    params[0] = rel;
    params[1] = schema;
    res = run_params(src,
                     "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c "
                     "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND "
                     "CASE WHEN $2::text IS NULL THEN n.nspname = ANY (current_schemas(false)) "
                     "ELSE n.nspname = $2::text END "
                     "ORDER BY array_position(current_schemas(false), n.nspname::text) LIMIT 1",
                     2, params, "look up table", error);
    if (res == NULL)
      return NULL;
    if (PQntuples(res) == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "table %s does not exist in %s (names are case-sensitive; give "
                  "SCHEMA.TABLE for a schema outside the search_path)",
                  names[i], src->describe);
      return NULL;
    }
    t = load_table(src, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                   PQgetvalue(res, 0, 3), numeric_as_real, error);
    if (t == NULL)
      return NULL;
    g_ptr_array_add(tables, t);
  }
  return g_steal_pointer(&tables);
}

/* Whether @a and @b list the same relations, in the same order. */
static gboolean
same_relations(const GPtrArray *a, const GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++) {
    const SqlenvfsPgTable *x = a->pdata[i], *y = b->pdata[i];
    if (strcmp(x->oid, y->oid) != 0)
      return FALSE;
  }
  return TRUE;
}

/* Start the transaction again, with @tables locked before its snapshot is
 * taken (the first query after LOCK takes it). A plain or partitioned table
 * is locked with its partitions, a view with the relations it reads (a
 * server before 11 cannot lock a view). A materialized or foreign table
 * cannot be locked: read as the snapshot shows it. */
static gboolean
begin_locked(SqlenvfsPgSource *src, const GPtrArray *tables, GError **error)
{
  g_autoptr(GString) lock = g_string_new(NULL);
  g_autoptr(PGresult) res = NULL;
  g_autofree char *sql = NULL;

  for (guint i = 0; i < tables->len; i++) {
    const SqlenvfsPgTable *t = tables->pdata[i];
    if (t->relkind == 'r' || t->relkind == 'p' ||
        (t->relkind == 'v' && PQserverVersion(src->conn) >= 110000))
      g_string_append_printf(lock, "%s%s", lock->len ? ", " : "", t->sql_name);
  }
  res = run(src, "ROLLBACK", PGRES_COMMAND_OK, "restart the transaction", error);
  if (res == NULL)
    return FALSE;
  g_clear_pointer(&res, PQclear);
  res = run(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK,
            "begin read-only transaction", error);
  if (res == NULL)
    return FALSE;
  g_clear_pointer(&res, PQclear);
  if (lock->len == 0)
    return TRUE;
  /* A lock another session holds (ALTER TABLE, VACUUM FULL, a LOCK) is
   * waited for as long as a stalled server: nothing is locked in
   * production yet. */
  sql = g_strdup_printf("SET LOCAL lock_timeout = %u", src->stall_s * 1000u);
  res = run(src, sql, PGRES_COMMAND_OK, "set lock_timeout", error);
  if (res == NULL)
    return FALSE;
  g_clear_pointer(&res, PQclear);
  g_free(sql);
  sql = g_strdup_printf("LOCK TABLE %s IN ACCESS SHARE MODE", lock->str);
  res = PQexec(src->conn, sql);
  if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "55P03") == 0) { /* lock_not_available */
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                  "lock the tables to read on %s: another session has held a lock on one of "
                  "them for %u s (an ALTER TABLE, TRUNCATE, VACUUM FULL or LOCK; see "
                  "pg_locks): run again once it is done, or give a larger --stall-seconds",
                  src->describe, src->stall_s);
    } else {
      result_error(error, res, src->conn, "lock the tables to read", src->describe);
    }
    return FALSE;
  }
  g_clear_pointer(&res, PQclear);
  res = run(src, "SET LOCAL lock_timeout = 0", PGRES_COMMAND_OK, "set lock_timeout", error);
  return res != NULL;
}

GPtrArray *
sqlenvfs_pg_source_tables(SqlenvfsPgSource *src, const char *const *names,
                          gboolean numeric_as_real, GError **error)
{
  g_autoptr(GPtrArray) listed = list_tables(src, names, numeric_as_real, error);
  g_autoptr(GPtrArray) tables = NULL;

  if (listed == NULL || listed->len == 0)
    return g_steal_pointer(&listed);
  if (!begin_locked(src, listed, error))
    return NULL;
  g_hash_table_remove_all(src->types); /* read again in the new snapshot */
  tables = list_tables(src, names, numeric_as_real, error);
  if (tables == NULL)
    return NULL;
  if (!same_relations(listed, tables)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "the tables to read on %s changed while they were being locked (another "
                "session created, dropped or renamed one): nothing was migrated; run again",
                src->describe);
    return NULL;
  }
  return g_steal_pointer(&tables);
}

gboolean
sqlenvfs_pg_source_count(SqlenvfsPgSource *src, const SqlenvfsPgTable *t, guint64 *n_rows,
                         GError **error)
{
  g_autofree char *sql = g_strdup_printf("SELECT count(*) FROM %s", t->sql_from);
  g_autofree char *what = g_strdup_printf("count rows of %s", t->display);
  g_autoptr(PGresult) res = run(src, sql, PGRES_TUPLES_OK, what, error);
  if (res == NULL)
    return FALSE;
  *n_rows = g_ascii_strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  return TRUE;
}

/* --- cursor -------------------------------------------------------------- */

SqlenvfsPgCursor *
sqlenvfs_pg_cursor_open(SqlenvfsPgSource *src, const SqlenvfsPgTable *t, guint batch_rows,
                        GError **error)
{
  g_autoptr(GString) sql = g_string_new("DECLARE sqlenvfs_rows NO SCROLL CURSOR FOR SELECT ");
  g_autofree char *what = g_strdup_printf("read table %s", t->display);
  SqlenvfsPgCursor *cur;
  PGresult *res;

  g_return_val_if_fail(!src->cursor_open, NULL);
  g_return_val_if_fail(batch_rows > 0, NULL);
  for (guint i = 0; i < t->columns->len; i++) {
    const SqlenvfsPgColumn *c = t->columns->pdata[i];
    g_autofree char *q = quote_ident(src, c->name);
    g_string_append_printf(sql, "%s%s", i ? ", " : "", q);
  }
  g_string_append_printf(sql, " FROM %s", t->sql_from);
  res = run_watched(src, sql->str, PGRES_COMMAND_OK, what, error);
  if (res == NULL)
    return NULL;
  PQclear(res);
  cur = g_new0(SqlenvfsPgCursor, 1);
  cur->src = src;
  cur->n_cols = t->columns->len;
  cur->max_rows = batch_rows;
  cur->next_rows = MIN(batch_rows, FETCH_FIRST_ROWS);
  src->cursor_open = TRUE;
  return cur;
}

void
sqlenvfs_pg_cursor_free(SqlenvfsPgCursor *cur)
{
  if (cur == NULL)
    return;
  PQclear(cur->batch);
  /* In a failed transaction CLOSE fails too; the source is then unusable
   * anyway, and the cursor goes with the session. After a stall it would
   * wait for the silent server: not sent. */
  if (!cur->src->stalled)
    PQclear(run_watched(cur->src, "CLOSE sqlenvfs_rows", PGRES_COMMAND_OK, "close the cursor",
                        NULL));
  cur->src->cursor_open = FALSE;
  g_free(cur);
}

/* Rows of the size of @batch's that fit in FETCH_TARGET_BYTES, between 1
 * and @max_rows. */
static guint
next_batch_rows(const PGresult *batch, guint n_rows, guint n_cols, guint max_rows)
{
  guint64 bytes = 0, per_row, fit;
  for (guint r = 0; r < n_rows; r++)
    for (guint c = 0; c < n_cols; c++)
      bytes += (guint64)PQgetlength(batch, (int)r, (int)c) + FETCH_VALUE_OVERHEAD;
  per_row = MAX(bytes / n_rows, 1);
  fit = FETCH_TARGET_BYTES / per_row;
  return (guint)CLAMP(fit, 1, (guint64)max_rows);
}

gboolean
sqlenvfs_pg_cursor_fetch(SqlenvfsPgCursor *cur, guint *n_rows, GError **error)
{
  PQclear(cur->batch); /* invariant 2: the previous batch goes first */
  cur->batch = NULL;
  *n_rows = 0;
  if (cur->done)
    return TRUE;
  {
    char sql[64];
    g_snprintf(sql, sizeof sql, "FETCH FORWARD %u FROM sqlenvfs_rows", cur->next_rows);
    cur->batch = run_watched(cur->src, sql, PGRES_TUPLES_OK, "fetch rows", error);
  }
  if (cur->batch == NULL)
    return FALSE;
  *n_rows = (guint)PQntuples(cur->batch);
  if (*n_rows == 0)
    cur->done = TRUE;
  else
    cur->next_rows = next_batch_rows(cur->batch, *n_rows, cur->n_cols, cur->max_rows);
  return TRUE;
}

const char *
sqlenvfs_pg_cursor_value(const SqlenvfsPgCursor *cur, guint row, guint col, gsize *len)
{
  if (PQgetisnull(cur->batch, (int)row, (int)col))
    return NULL;
  *len = (gsize)PQgetlength(cur->batch, (int)row, (int)col);
  return PQgetvalue(cur->batch, (int)row, (int)col);
}
