/*
 * recover.c — salvage a damaged database into a new file (recover.h).
 *
 * Work directory, next to the output (same filesystem, so the final rename
 * is atomic and the space needed is where the output goes):
 *
 *   <outdir>/.tmp-recover-<pid>/
 *     source.db [-wal] [-journal]   private copy of the damaged database
 *     new.db                        the database being built
 *     shell.err                     the sqlite3 shell's stderr (shell method)
 *
 *   The copy is 0600; new.db and shell.err are made by this file with the
 *   source's mode (sqlenvfs_copy_mode), whatever the umask, before SQLite
 *   or the shell writes them, and SQLite gives its files beside a database
 *   the database file's mode.
 *
 * Invariants:
 *   (1) The source is opened by nothing but a read-only descriptor that
 *       copies it; SQLite and the shell only ever see the private copy,
 *       which is of one moment: the source's files were the same before and
 *       after it was taken (copy_source).
 *   (2) Nothing appears at the output path until new.db passed
 *       integrity_check and was fsync'd; then one rename puts it there.
 *   (3) The work directory is removed on success and on failure; an
 *       interrupted run leaves only a ".tmp-recover-<pid>" directory, which
 *       the next run with an output in the same directory removes once that
 *       process is gone.
 *   (4) SQL taken from the damaged file (schema text, the shell's output) is
 *       executed only on new.db, with ATTACH disabled, so it cannot reach any
 *       other file.
 *
 * The salvage's walk over a rowid table (the rowid ranges that fail are
 * skipped by seeking past them):
 *
 *   scan:  SELECT rowid, cols FROM t WHERE rowid >= from ORDER BY rowid
 *          copy rows until SQLITE_DONE (finished) or an error after rowid `last`
 *   probe: SELECT rowid FROM t WHERE rowid >= p ORDER BY rowid LIMIT 1
 *          p = last+1, last+2, last+4, ... up to the table's largest rowid
 *          until a probe does not fail; then bisect between the last
 *          failing p and it for the first p that does not fail, and scan
 *          again from there.
 *   A probe that finds row q while the scan failed on q itself (its payload
 *   is unreadable) skips q alone.
 *   A damaged leaf can give any rowid, as a cell pointer that points into
 *   another cell's bytes does, so a probe counts as failed unless
 *   (1) q is in [p, largest], the largest rowid being one that a lookup of
 *       it finds (table_max), and
 *   (2) a lookup of q (WHERE rowid = q) finds q again;
 *   and a probe that ends with no row while p <= largest failed too. A
 *   garbage q trusted would make the salvage resume past it, or end the
 *   table, and skip every row after the damaged page.
 */
#include "sqlenvfs/recover.h"
#include "sqlenvfs/btree.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_RANGES 20
#define MAX_DAMAGE 20 /* integrity_check's messages in the report           */
#define MAX_PLACES 1000 /* ... and read to find the rows under what it names */
#define MAX_GAPS 10000  /* unreadable stretches of one table before giving up */

/* ------------------------------------------------------------------------ */
/* Report                                                                   */

const char *
sqlenvfs_recover_method_name(SqlenvfsRecoverMethod method)
{
  switch (method) {
  case SQLENVFS_RECOVER_AUTO:
    return "auto";
  case SQLENVFS_RECOVER_SHELL:
    return "shell";
  case SQLENVFS_RECOVER_SALVAGE:
    return "salvage";
  }
  return "?";
}

gboolean
sqlenvfs_recover_method_parse(const char *text, SqlenvfsRecoverMethod *out)
{
  for (int m = SQLENVFS_RECOVER_AUTO; m <= SQLENVFS_RECOVER_SALVAGE; m++) {
    if (g_strcmp0(text, sqlenvfs_recover_method_name(m)) == 0) {
      *out = m;
      return TRUE;
    }
  }
  return FALSE;
}

static void
table_free(gpointer p)
{
  SqlenvfsRecoveredTable *t = p;
  g_free(t->name);
  g_free(t->expected_from);
  g_free(t->missing_rowids);
  g_free(t->suspect_rowids);
  g_free(t->orphan_rowids);
  g_free(t->note);
  g_free(t);
}

void
sqlenvfs_recover_report_free(SqlenvfsRecoverReport *r)
{
  if (r == NULL)
    return;
  g_free(r->source);
  g_free(r->output);
  g_free(r->method_note);
  g_free(r->wal_damage);
  g_ptr_array_unref(r->damage);
  g_ptr_array_unref(r->tables);
  g_ptr_array_unref(r->problems);
  g_free(r);
}

/* Ranges of sorted, distinct rowids, built one rowid at a time. */
typedef struct {
  GString *out;
  guint n_ranges, max_ranges;
  gboolean open, truncated;
  gint64 start, last, count;
} Ranges;

static void
ranges_flush(Ranges *r)
{
  if (!r->open)
    return;
  if (r->n_ranges >= r->max_ranges) {
    if (!r->truncated)
      g_string_append(r->out, ", ...");
    r->truncated = TRUE;
  } else {
    if (r->out->len)
      g_string_append(r->out, ", ");
    if (r->start == r->last)
      g_string_append_printf(r->out, "%" G_GINT64_FORMAT, r->start);
    else
      g_string_append_printf(r->out, "%" G_GINT64_FORMAT "%s%" G_GINT64_FORMAT, r->start,
                             r->start < 0 || r->last < 0 ? ".." : "-", r->last);
  }
  r->n_ranges++;
  r->open = FALSE;
}

static void
ranges_add(Ranges *r, gint64 v)
{
  r->count++;
  if (r->open && v == r->last + 1) {
    r->last = v;
    return;
  }
  ranges_flush(r);
  r->open = TRUE;
  r->start = r->last = v;
}

static char *
ranges_finish(Ranges *r)
{
  ranges_flush(r);
  return g_string_free(r->out, r->out->len == 0);
}

char *
sqlenvfs_recover_format_ranges(const gint64 *rowids, gsize n, guint max_ranges)
{
  Ranges r = { .out = g_string_new(NULL), .max_ranges = max_ranges };
  for (gsize i = 0; i < n; i++)
    ranges_add(&r, rowids[i]);
  return ranges_finish(&r);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */

/* Copy @src to a new file @dst with plain reads (the source is only read). */
static gboolean
copy_file(const char *src, const char *dst, SqlenvfsProgressFunc progress, gpointer user,
          guint64 *done, guint64 total, GError **error)
{
  int in = open(src, O_RDONLY | O_CLOEXEC);
  int out;
  gsize bufsize = 1 << 20;
  g_autofree guint8 *buf = NULL;

  if (in < 0)
    return sqlenvfs_error_errno(error, errno, "open", src);
  out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    int errsv = errno;
    close(in);
    return sqlenvfs_error_errno(error, errsv, "create", dst);
  }
  buf = g_malloc(bufsize);
  for (;;) {
    ssize_t n = read(in, buf, bufsize);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      close(in);
      close(out);
      return sqlenvfs_error_errno(error, errsv, "read", src);
    }
    if (n == 0)
      break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, n - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        int errsv = errno;
        close(in);
        close(out);
        return sqlenvfs_error_errno(error, errsv, "write", dst);
      }
      off += w;
    }
    *done += n;
    if (progress)
      progress(user, *done, total);
  }
  close(in);
  if (close(out) != 0)
    return sqlenvfs_error_errno(error, errno, "write", dst);
  return TRUE;
}

static void
remove_db_files(const char *path)
{
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = g_strconcat(path, sqlenvfs_db_files[i], NULL);
    g_unlink(p);
  }
}

/* ------------------------------------------------------------------------ */
/* The job                                                                  */

typedef struct {
  char *name;
  char *sql;
  gboolean is_virtual;
  gboolean without_rowid;
  char *rowid;          /* an unambiguous name for the rowid, or NULL */
  GPtrArray *columns;   /* quoted names of stored columns */
  gint64 n_expected;    /* -1: unknown */
  char *expected_from;  /* "table" or "index NAME" */
  char *expected_index; /* the index to list expected rowids from, or NULL (table) */
  char *tie_index;      /* a full index that counted as many rows as the table */
  gboolean table_reads; /* the table's own b-tree counted without error */
  gboolean not_created; /* its CREATE failed in the new database */
  char *note;
  GArray *orphans;      /* gint64, sorted: rowids inserted from pages no table reaches */
} Table;

static void
tbl_free(gpointer p)
{
  Table *t = p;
  g_free(t->name);
  g_free(t->sql);
  g_free(t->rowid);
  if (t->columns)
    g_ptr_array_unref(t->columns);
  g_free(t->expected_from);
  g_free(t->expected_index);
  g_free(t->tie_index);
  g_free(t->note);
  if (t->orphans)
    g_array_unref(t->orphans);
  g_free(t);
}

typedef struct {
  char *type, *name, *tbl_name, *sql;
} SchemaRow;

static void
schema_row_free(gpointer p)
{
  SchemaRow *s = p;
  g_free(s->type);
  g_free(s->name);
  g_free(s->tbl_name);
  g_free(s->sql);
  g_free(s);
}

typedef struct {
  const SqlenvfsRecoverOptions *opts;
  SqlenvfsRecoverReport *report;
  char *work;      /* work directory */
  char *copy;      /* work/source.db */
  char *newdb;     /* work/new.db */
  sqlite3 *src;    /* on the copy */
  GPtrArray *schema; /* SchemaRow * that could be read */
  GPtrArray *tables; /* Table *: ordinary and virtual tables to recover */
  GPtrArray *damage; /* char *: integrity_check's messages (MAX_PLACES) */
  gboolean schema_partial; /* sqlite_schema could not be read to its end */
  gint64 copy_size;  /* bytes of the private copy (database and -wal) */
  int mode;          /* production's (sqlenvfs_copy_mode): new.db and shell.err
                      * are made with it, never more readable */
  gboolean shell_erred; /* the sqlite3 shell ran and printed an error */
} Job;

static char *
quote_ident(const char *name)
{
  g_autoptr(GString) s = g_string_new("\"");
  for (const char *p = name; *p; p++) {
    if (*p == '"')
      g_string_append_c(s, '"');
    g_string_append_c(s, *p);
  }
  g_string_append_c(s, '"');
  return g_string_free(g_steal_pointer(&s), FALSE);
}

static void
problem(Job *j, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void
problem(Job *j, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(j->report->problems, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

/* SQL from the damaged file may only touch the database it runs on. */
static int
deny_attach(void *user, int action, const char *a, const char *b, const char *c, const char *d)
{
  return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

/* The new database at @path, made empty with @mode (less the umask) before
 * SQLite opens it: SQLite would make it 0644 whatever the source's mode,
 * and a file it makes beside it takes the database file's mode. */
static sqlite3 *
open_new_db(const char *path, int mode, GError **error)
{
  sqlite3 *db;
  int fd = sqlenvfs_create_file(path, mode, error);
  if (fd < 0)
    return NULL;
  close(fd);
  db = sqlenvfs_db_open(path, SQLENVFS_OPEN_MUST_EXIST, error);
  if (db == NULL)
    return NULL;
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_set_authorizer(db, deny_attach, NULL);
  if (!sqlenvfs_db_exec(db, "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF", path, error)) {
    sqlite3_close_v2(db);
    return NULL;
  }
  return db;
}

/* Read what can be read of the schema of the copy. */
static void
read_schema(Job *j)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(j->src, "SELECT type, name, tbl_name, sql FROM sqlite_schema",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) {
    problem(j, "the schema cannot be read: %s", sqlite3_errmsg(j->src));
    return;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    SchemaRow *s = g_new0(SchemaRow, 1);
    s->type = g_strdup((const char *)sqlite3_column_text(st, 0));
    s->name = g_strdup((const char *)sqlite3_column_text(st, 1));
    s->tbl_name = g_strdup((const char *)sqlite3_column_text(st, 2));
    s->sql = g_strdup((const char *)sqlite3_column_text(st, 3));
    if (s->type == NULL || s->name == NULL) {
      schema_row_free(s);
      continue;
    }
    g_ptr_array_add(j->schema, s);
  }
  j->schema_partial = rc != SQLITE_DONE;
  if (rc != SQLITE_DONE)
    problem(j, "the schema could only be read in part (%u entries): %s", j->schema->len,
            sqlite3_errmsg(j->src));
}

static gboolean
is_internal(const char *name)
{
  return g_ascii_strncasecmp(name, "sqlite_", 7) == 0;
}

/* The tables to recover, with their columns and a name for the rowid. */
static void
plan_tables(Job *j)
{
  for (guint i = 0; i < j->schema->len; i++) {
    SchemaRow *s = g_ptr_array_index(j->schema, i);
    Table *t;
    g_autofree char *q = NULL;
    g_autofree char *sql = NULL;
    g_autoptr(sqlite3_stmt) st = NULL;
    gboolean has[3] = { FALSE, FALSE, FALSE };
    static const char *const aliases[3] = { "rowid", "_rowid_", "oid" };

    if (strcmp(s->type, "table") != 0 || is_internal(s->name) || s->sql == NULL)
      continue;
    t = g_new0(Table, 1);
    t->name = g_strdup(s->name);
    t->sql = g_strdup(s->sql);
    t->columns = g_ptr_array_new_with_free_func(g_free);
    t->n_expected = -1;
    t->is_virtual = g_ascii_strncasecmp(s->sql, "CREATE VIRTUAL", 14) == 0;
    g_ptr_array_add(j->tables, t);

    q = quote_ident(s->name);
    sql = g_strdup_printf("PRAGMA table_xinfo(%s)", q);
    if (sqlite3_prepare_v2(j->src, sql, -1, &st, NULL) != SQLITE_OK) {
      t->note = g_strdup_printf("its columns cannot be read: %s", sqlite3_errmsg(j->src));
      continue;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *col = (const char *)sqlite3_column_text(st, 1);
      int hidden = sqlite3_column_int(st, 6);
      for (int a = 0; a < 3; a++)
        if (col && g_ascii_strcasecmp(col, aliases[a]) == 0)
          has[a] = TRUE;
      if (col && hidden == 0) /* generated (2, 3) and hidden vtab columns (1) are not stored */
        g_ptr_array_add(t->columns, quote_ident(col));
    }
    g_clear_pointer(&st, sqlite3_finalize);
    /* WITHOUT ROWID: the rowid does not exist. */
    g_free(sql);
    /* A virtual table's rowid is copied too (an FTS table's rowids are the
     * keys of the rows it indexes, joined on by the application). */
    sql = g_strdup_printf("SELECT rowid FROM %s LIMIT 0", q);
    if (sqlite3_prepare_v2(j->src, sql, -1, &st, NULL) == SQLITE_OK) {
      for (int a = 0; a < 3 && t->rowid == NULL; a++)
        if (!has[a])
          t->rowid = g_strdup(aliases[a]);
    } else if (!t->is_virtual) {
      t->without_rowid = TRUE;
    }
  }
}

/* Run a count; TRUE and *n when it reads to the end without error. */
static gboolean
try_count(sqlite3 *db, const char *sql, gint64 *n)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    return FALSE;
  if (sqlite3_step(st) != SQLITE_ROW)
    return FALSE;
  *n = sqlite3_column_int64(st, 0);
  return sqlite3_step(st) == SQLITE_DONE;
}

/* How many rows each table had, as far as the copy can tell: the table's
 * own b-tree and every full index count independently; the largest count
 * that read without error wins (a damaged page can only hide rows). */
static void
count_expected(Job *j)
{
  for (guint i = 0; i < j->tables->len; i++) {
    Table *t = g_ptr_array_index(j->tables, i);
    g_autofree char *q = quote_ident(t->name);
    g_autofree char *sql = NULL;
    g_autoptr(sqlite3_stmt) st = NULL;
    g_autoptr(GPtrArray) indexes = g_ptr_array_new_with_free_func(g_free);
    gint64 n;

    if (t->is_virtual)
      continue;
    sql = g_strdup_printf("SELECT count(*) FROM %s NOT INDEXED", q);
    if (try_count(j->src, sql, &n)) {
      t->n_expected = n;
      t->expected_from = g_strdup("table");
      t->table_reads = TRUE;
    }
    g_free(sql);
    sql = g_strdup_printf("PRAGMA index_list(%s)", q);
    if (sqlite3_prepare_v2(j->src, sql, -1, &st, NULL) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (name && sqlite3_column_int(st, 4) == 0) /* not partial */
          g_ptr_array_add(indexes, g_strdup(name));
      }
    }
    for (guint k = 0; k < indexes->len; k++) {
      const char *idx = g_ptr_array_index(indexes, k);
      g_autofree char *qi = quote_ident(idx);
      g_autofree char *csql = g_strdup_printf("SELECT count(*) FROM %s INDEXED BY %s", q, qi);
      if (!try_count(j->src, csql, &n))
        continue;
      if (n > t->n_expected) {
        t->n_expected = n;
        g_free(t->expected_from);
        t->expected_from = g_strdup_printf("index %s", idx);
        g_free(t->expected_index);
        t->expected_index = g_strdup(idx);
      } else if (n == t->n_expected && t->expected_index == NULL && t->tie_index == NULL) {
        t->tie_index = g_strdup(idx);
      }
    }
  }
}

/* ---- The shell method ---------------------------------------------------- */

typedef struct {
  gint64 n_statements, n_failed;
  gboolean committed;
  char *first_error;
} Feed;

static void
feed_statement(sqlite3 *db, const char *sql, Feed *f)
{
  char *err = NULL;
  const char *s = sql;
  while (g_ascii_isspace(*s))
    s++;
  if (*s == '\0')
    return;
  f->n_statements++;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    f->n_failed++;
    if (f->first_error == NULL)
      f->first_error = g_strdup_printf("%s (in: %.80s)", err ? err : "?", s);
    sqlite3_free(err);
    return;
  }
  if (g_ascii_strncasecmp(s, "COMMIT", 6) == 0)
    f->committed = TRUE;
}

/* Run `shell -batch -init /dev/null COPY .recover` and execute what it prints
 * into new.db. TRUE when the shell finished cleanly and its transaction
 * committed; otherwise FALSE with *why. */
static gboolean
run_shell(Job *j, const char *shell, char **why)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) in = NULL;
  g_autofree char *errfile = g_build_filename(j->work, "shell.err", NULL);
  g_autofree char *errtext = NULL;
  g_autoptr(GString) stmt = g_string_new(NULL);
  g_autoptr(sqlite3) out = NULL;
  Feed feed = { 0 };
  char *line;
  gsize len;
  gboolean ok;
  int err_fd;

  out = open_new_db(j->newdb, j->mode, &error);
  if (out == NULL) {
    *why = g_strdup(error->message);
    return FALSE;
  }
  /* Made here with production's mode: the launcher would make it 0666
   * less the umask, and the shell's errors quote the data. */
  err_fd = sqlenvfs_create_file(errfile, j->mode, &error);
  if (err_fd < 0) {
    *why = g_strdup(error->message);
    return FALSE;
  }
  launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                       G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  g_subprocess_launcher_take_stderr_fd(launcher, err_fd);
  g_subprocess_launcher_set_cwd(launcher, j->work);
  proc = g_subprocess_launcher_spawn(launcher, &error, shell, "-batch", "-init", "/dev/null",
                                     j->copy, ".recover", NULL);
  if (proc == NULL) {
    *why = g_strdup_printf("the sqlite3 shell '%s' could not be started: %s", shell,
                           error->message);
    return FALSE;
  }
  in = g_data_input_stream_new(g_subprocess_get_stdout_pipe(proc));
  g_data_input_stream_set_newline_type(in, G_DATA_STREAM_NEWLINE_TYPE_LF);
  while ((line = g_data_input_stream_read_line(in, &len, NULL, &error)) != NULL) {
    g_string_append_len(stmt, line, len);
    g_string_append_c(stmt, '\n');
    g_free(line);
    if (sqlite3_complete(stmt->str)) {
      feed_statement(out, stmt->str, &feed);
      g_string_truncate(stmt, 0);
    }
  }
  if (error != NULL) {
    *why = g_strdup_printf("reading the shell's output failed: %s", error->message);
    g_subprocess_force_exit(proc);
    g_subprocess_wait(proc, NULL, NULL);
    g_free(feed.first_error);
    return FALSE;
  }
  g_subprocess_wait(proc, NULL, NULL);
  g_file_get_contents(errfile, &errtext, NULL, NULL);
  ok = g_subprocess_get_if_exited(proc) && g_subprocess_get_exit_status(proc) == 0 &&
       feed.committed && (errtext == NULL || *g_strstrip(errtext) == '\0');
  if (!ok) {
    g_autofree char *first = NULL;
    if (errtext && *errtext) {
      char *nl = strchr(errtext, '\n');
      first = nl ? g_strndup(errtext, nl - errtext) : g_strdup(errtext);
      j->shell_erred = TRUE;
    }
    *why = g_strdup_printf(
      "the sqlite3 shell's .recover did not finish (%s%s%s)",
      first ? first : feed.committed ? "exit status non-zero" : "its output stopped early",
      feed.first_error ? "; " : "", feed.first_error ? feed.first_error : "");
  } else if (feed.n_failed > 0) {
    problem(j, "%" G_GINT64_FORMAT " of the shell's %" G_GINT64_FORMAT " statements failed; "
            "first: %s", feed.n_failed, feed.n_statements, feed.first_error);
  }
  g_free(feed.first_error);
  return ok;
}

/* A short hint when this SQLite lacks what `.recover` needs. */
static const char *
shell_hint(sqlite3 *db)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_dbpage LIMIT 0", -1, &st, NULL) != SQLITE_OK)
    return "; this SQLite is built without the sqlite_dbpage table that .recover reads pages "
           "with (as Debian 12's is), so the shell that links it cannot recover";
  return "";
}

/* ---- The salvage method -------------------------------------------------- */

static void recover_orphans(Job *j, sqlite3 *out);

typedef struct {
  sqlite3_stmt *scan, *probe, *lookup, *insert;
  gboolean has_max;  /* the table's largest rowid is known: max */
  gint64 max;
  gint64 n_copied, n_rejected;
  char *first_error;
  char *first_reject;
} Copy;

static void
copy_clear(Copy *c)
{
  sqlite3_finalize(c->scan);
  sqlite3_finalize(c->probe);
  sqlite3_finalize(c->lookup);
  sqlite3_finalize(c->insert);
  g_free(c->first_error);
  g_free(c->first_reject);
}

typedef enum { PROBE_ROW, PROBE_DONE, PROBE_FAILED } ProbeResult;

/* Whether a lookup of @rowid finds it (the rowid alone: its payload need
 * not read). */
static gboolean
confirm(Copy *c, gint64 rowid)
{
  gboolean found;
  sqlite3_reset(c->lookup);
  sqlite3_bind_int64(c->lookup, 1, rowid);
  found = sqlite3_step(c->lookup) == SQLITE_ROW && sqlite3_column_int64(c->lookup, 0) == rowid;
  sqlite3_reset(c->lookup);
  return found;
}

/* The first row at or after @from, as far as it can be believed (the
 * header's (1) and (2)). */
static ProbeResult
probe(Copy *c, gint64 from, gint64 *rowid)
{
  int rc;
  gint64 q;
  sqlite3_reset(c->probe);
  sqlite3_bind_int64(c->probe, 1, from);
  rc = sqlite3_step(c->probe);
  if (rc == SQLITE_ROW) {
    q = sqlite3_column_int64(c->probe, 0);
    sqlite3_reset(c->probe);
    /* A damaged tree can lead a search to a smaller rowid: that is a
     * failure to read, not a row (the salvage would go backwards). */
    if (q < from || (c->has_max && q > c->max) || !confirm(c, q))
      return PROBE_FAILED;
    *rowid = q;
    return PROBE_ROW;
  }
  sqlite3_reset(c->probe);
  if (rc == SQLITE_DONE && !(c->has_max && from <= c->max))
    return PROBE_DONE;
  return PROBE_FAILED;
}

/* The first rowid after @last from which reading works again; FALSE when no
 * readable row follows. The search goes up to the table's largest rowid
 * when it is known, else to the end of the rowid range; offsets from @last
 * are unsigned, so it spans that range without overflow. */
static gboolean
find_resume(Copy *c, gint64 last, gint64 *resume)
{
  gint64 top = c->has_max ? c->max : G_MAXINT64;
  guint64 span = last < top ? (guint64)top - (guint64)last : 0; /* top - last, exactly */
  guint64 bad = 0, good, step = 1;                               /* offsets from last */
  gint64 row;
  ProbeResult r;

  if (span == 0)
    return FALSE;
  for (;;) {
    good = MIN(step, span);
    r = probe(c, (gint64)((guint64)last + good), &row);
    if (r != PROBE_FAILED)
      break;
    bad = good;
    if (good == span)
      return FALSE;
    step = step > G_MAXUINT64 / 2 ? G_MAXUINT64 : step * 2;
  }
  /* bad fails (or is `last` itself), good does not: bisect for the first
   * offset that does not fail. */
  while (good - bad > 1) {
    guint64 mid = bad + (good - bad) / 2;
    if (probe(c, (gint64)((guint64)last + mid), &row) == PROBE_FAILED)
      bad = mid;
    else
      good = mid;
  }
  *resume = (gint64)((guint64)last + good);
  return probe(c, *resume, &row) == PROBE_ROW;
}

/* The largest rowid of @t in @src into *max; FALSE when it cannot be read,
 * or a lookup of it does not find it again (a damaged last leaf can give
 * any rowid). */
static gboolean
table_max(sqlite3 *src, const Table *t, gint64 *max)
{
  g_autofree char *q = quote_ident(t->name);
  g_autofree char *sql = g_strdup_printf("SELECT max(%s) FROM %s", t->rowid, q);
  g_autofree char *lsql = g_strdup_printf("SELECT %s FROM %s WHERE %s = ?1", t->rowid, q,
                                          t->rowid);
  g_autoptr(sqlite3_stmt) st = NULL, lookup = NULL;
  if (sqlite3_prepare_v2(src, sql, -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
      sqlite3_prepare_v2(src, lsql, -1, &lookup, NULL) != SQLITE_OK)
    return FALSE;
  *max = sqlite3_column_int64(st, 0);
  sqlite3_bind_int64(lookup, 1, *max);
  return sqlite3_step(lookup) == SQLITE_ROW && sqlite3_column_int64(lookup, 0) == *max;
}

static void
insert_row(Copy *c, sqlite3 *out, sqlite3_stmt *scan, int n_cols)
{
  int rc;
  sqlite3_reset(c->insert);
  for (int k = 0; k < n_cols; k++)
    sqlite3_bind_value(c->insert, k + 1, sqlite3_column_value(scan, k));
  rc = sqlite3_step(c->insert);
  if (rc == SQLITE_DONE) {
    c->n_copied++;
  } else {
    c->n_rejected++;
    if (c->first_reject == NULL)
      c->first_reject = g_strdup(sqlite3_errmsg(out));
  }
  sqlite3_reset(c->insert);
}

static void
note_error(Copy *c, sqlite3 *db)
{
  if (c->first_error == NULL)
    c->first_error = g_strdup(sqlite3_errmsg(db));
}

static gint64 without_rowid_by_hand(Job *j, sqlite3 *out, const Table *t, char **why);
static gint64 lost_rows_by_hand(Job *j, sqlite3 *out, const Table *t, char **why);
static void stmt_free(gpointer st);

static void
salvage_table(Job *j, sqlite3 *out, Table *t)
{
  g_autofree char *q = quote_ident(t->name);
  g_autofree char *cols = NULL;
  g_autofree char *marks = NULL;
  g_autofree char *sql = NULL;
  g_autoptr(GString) m = g_string_new(NULL);
  Copy c = { 0 };
  int n_cols;
  gboolean use_rowid = t->rowid != NULL;

  g_ptr_array_add(t->columns, NULL);
  cols = g_strjoinv(", ", (char **)t->columns->pdata);
  g_ptr_array_remove_index(t->columns, t->columns->len - 1);
  n_cols = (int)t->columns->len + (use_rowid ? 1 : 0);
  if (t->columns->len == 0) {
    t->note = g_strdup("no columns could be read");
    return;
  }
  for (int k = 0; k < n_cols; k++)
    g_string_append_printf(m, "%s?", k ? ", " : "");
  marks = g_string_free(g_steal_pointer(&m), FALSE);

  sql = g_strdup_printf("INSERT INTO main.%s(%s%s%s) VALUES (%s)", q, use_rowid ? t->rowid : "",
                        use_rowid ? ", " : "", cols, marks);
  if (sqlite3_prepare_v2(out, sql, -1, &c.insert, NULL) != SQLITE_OK) {
    t->note = g_strdup_printf("cannot insert into the new table: %s", sqlite3_errmsg(out));
    copy_clear(&c);
    return;
  }
  g_free(sql);
  if (!use_rowid) {
    /* WITHOUT ROWID and virtual tables: one pass, as far as it reads. */
    int rc;
    sql = g_strdup_printf("SELECT %s FROM %s", cols, q);
    if (sqlite3_prepare_v2(j->src, sql, -1, &c.scan, NULL) != SQLITE_OK) {
      t->note = g_strdup_printf("cannot read it: %s", sqlite3_errmsg(j->src));
      copy_clear(&c);
      return;
    }
    /* No table holds more rows than its file has bytes: past that, a
     * damaged tree leads the scan round in a loop. */
    gint64 n_read = 0, most = MAX(j->copy_size, 1);
    while ((rc = sqlite3_step(c.scan)) == SQLITE_ROW && ++n_read <= most)
      insert_row(&c, out, c.scan, n_cols);
    if (rc == SQLITE_ROW) {
      rc = SQLITE_CORRUPT;
      if (c.first_error == NULL)
        c.first_error = g_strdup("the table's b-tree leads the scan round in a loop");
    }
    if (rc != SQLITE_DONE && t->without_rowid) {
      /* Its key cannot be stepped past an unreadable page through SQL (a
       * rowid table's can): the rest is read from its pages by hand. */
      g_autofree char *why = NULL;
      gint64 more;
      note_error(&c, j->src);
      more = without_rowid_by_hand(j, out, t, &why);
      t->note = more >= 0
                  ? g_strdup_printf("reading through SQL stopped at an unreadable page: %s; its "
                                    "b-tree was then read page by page, skipping the pages "
                                    "that do not parse, and %" G_GINT64_FORMAT " more row%s "
                                    "recovered",
                                    c.first_error, more, more == 1 ? " was" : "s were")
                  : g_strdup_printf("reading stopped at an unreadable page: %s (its pages "
                                    "could not be read by hand: %s)",
                                    c.first_error, why);
    } else if (rc != SQLITE_DONE) {
      note_error(&c, j->src);
      t->note = g_strdup_printf("reading stopped at an unreadable page: %s", c.first_error);
    }
  } else {
    gint64 from = G_MININT64;
    guint n_gaps = 0;
    sql = g_strdup_printf("SELECT %s, %s FROM %s WHERE %s >= ?1 ORDER BY %s", t->rowid, cols, q,
                          t->rowid, t->rowid);
    if (sqlite3_prepare_v2(j->src, sql, -1, &c.scan, NULL) != SQLITE_OK) {
      t->note = g_strdup_printf("cannot read it: %s", sqlite3_errmsg(j->src));
      copy_clear(&c);
      return;
    }
    g_free(sql);
    sql = g_strdup_printf("SELECT %s FROM %s WHERE %s >= ?1 ORDER BY %s LIMIT 1", t->rowid, q,
                          t->rowid, t->rowid);
    if (sqlite3_prepare_v2(j->src, sql, -1, &c.probe, NULL) != SQLITE_OK) {
      t->note = g_strdup_printf("cannot read it: %s", sqlite3_errmsg(j->src));
      copy_clear(&c);
      return;
    }
    g_free(sql);
    sql = g_strdup_printf("SELECT %s FROM %s WHERE %s = ?1", t->rowid, q, t->rowid);
    if (sqlite3_prepare_v2(j->src, sql, -1, &c.lookup, NULL) != SQLITE_OK) {
      t->note = g_strdup_printf("cannot read it: %s", sqlite3_errmsg(j->src));
      copy_clear(&c);
      return;
    }
    c.has_max = table_max(j->src, t, &c.max);
    for (;;) {
      gint64 last = G_MININT64, row;
      gboolean any = FALSE;
      int rc;
      sqlite3_reset(c.scan);
      sqlite3_bind_int64(c.scan, 1, from);
      while ((rc = sqlite3_step(c.scan)) == SQLITE_ROW) {
        row = sqlite3_column_int64(c.scan, 0);
        /* Rowids only go up from `from`: a damaged tree that leads back
         * (a loop) is a failure to read, or the salvage would not end. */
        if (row < from || (any && row <= last)) {
          rc = SQLITE_CORRUPT;
          if (c.first_error == NULL)
            c.first_error = g_strdup("the table's b-tree leads back to rowids already read");
          break;
        }
        /* Past the largest rowid: a damaged leaf's garbage, not a row. */
        if (c.has_max && row > c.max) {
          rc = SQLITE_CORRUPT;
          if (c.first_error == NULL)
            c.first_error = g_strdup("a damaged page gives rowids past the table's largest");
          break;
        }
        last = row;
        any = TRUE;
        insert_row(&c, out, c.scan, n_cols);
      }
      if (rc == SQLITE_DONE)
        break;
      note_error(&c, j->src);
      n_gaps++;
      if (!any) {
        /* Failed before its first row: if a probe finds that row, the row
         * itself does not read (its payload): skip it alone. */
        if (probe(&c, from, &row) == PROBE_ROW)
          last = row;
        else
          last = from == G_MININT64 ? G_MININT64 : from - 1;
      }
      sqlite3_reset(c.scan);
      /* Each pass starts past the last: `from` only grows, and a tree
       * damaged so that it fails every few rowids is given up on. */
      if (n_gaps >= MAX_GAPS || !find_resume(&c, last, &from))
        break;
    }
    if (n_gaps > 0)
      t->note = g_strdup_printf("%u unreadable stretch%s skipped%s: %s", n_gaps,
                                n_gaps == 1 ? "" : "es",
                                n_gaps >= MAX_GAPS ? " (then the rest given up)" : "",
                                c.first_error);
  }
  if (c.n_rejected > 0) {
    g_autofree char *old = t->note;
    t->note = g_strdup_printf("%s%s%" G_GINT64_FORMAT " rows read but rejected by the table's "
                              "constraints: %s",
                              old ? old : "", old ? "; " : "", c.n_rejected, c.first_reject);
  }
  copy_clear(&c);
}

static gboolean
exec_schema(Job *j, sqlite3 *out, const char *sql, const char *what)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(out, sql, -1, &st, &tail);
  if (rc == SQLITE_OK && st != NULL)
    rc = sqlite3_step(st);
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    problem(j, "%s was not recreated: %s", what, sqlite3_errmsg(out));
    return FALSE;
  }
  return TRUE;
}

/* Whether table @name exists in @out already, made there by one of the
 * virtual tables of @j created before it (its shadow table). */
static gboolean
made_by_virtual(Job *j, sqlite3 *out, const char *name)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  gboolean exists = FALSE;
  for (guint i = 0; i < j->tables->len; i++) {
    const Table *v = g_ptr_array_index(j->tables, i);
    gsize n = strlen(v->name);
    if (v->is_virtual && g_ascii_strncasecmp(name, v->name, n) == 0 && name[n] == '_')
      exists = TRUE;
  }
  if (!exists)
    return FALSE;
  if (sqlite3_prepare_v2(out,
                         "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1 "
                         "COLLATE NOCASE",
                         -1, &st, NULL) != SQLITE_OK)
    return FALSE;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  return sqlite3_step(st) == SQLITE_ROW;
}

static gboolean
salvage(Job *j, GError **error)
{
  g_autoptr(sqlite3) out = open_new_db(j->newdb, j->mode, error);
  gint64 v;

  if (out == NULL)
    return FALSE;
  /* Settings stored in the file, before anything is written. */
  {
    static const char *const keep[] = { "page_size", "auto_vacuum", "user_version",
                                        "application_id" };
    g_autofree char *enc = NULL;
    for (gsize i = 0; i < G_N_ELEMENTS(keep); i++) {
      g_autofree char *get = g_strdup_printf("PRAGMA %s", keep[i]);
      if (sqlenvfs_db_query_int(j->src, get, &v, j->copy, NULL)) {
        g_autofree char *set = g_strdup_printf("PRAGMA %s=%" G_GINT64_FORMAT, keep[i], v);
        sqlenvfs_db_exec(out, set, j->newdb, NULL);
      }
    }
    if (sqlenvfs_db_query_text(j->src, "PRAGMA encoding", &enc, j->copy, NULL) && enc) {
      g_autofree char *set = g_strdup_printf("PRAGMA encoding='%s'", enc);
      sqlenvfs_db_exec(out, set, j->newdb, NULL);
    }
  }
  if (!sqlenvfs_db_exec(out, "BEGIN", j->newdb, error))
    return FALSE;

  /* Tables first: virtual ones before the others, since they create their
   * own shadow tables. A table is a shadow table when its virtual table
   * made one of its name in the new database; any other table is copied,
   * whatever its name begins with. */
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < j->tables->len; i++) {
      Table *t = g_ptr_array_index(j->tables, i);
      if (t->is_virtual != (pass == 0))
        continue;
      if (pass == 1 && made_by_virtual(j, out, t->name)) {
        g_ptr_array_remove_index(j->tables, i--);
        continue; /* rebuilt by its virtual table */
      }
      {
        g_autofree char *what = g_strdup_printf("table %s", t->name);
        if (!exec_schema(j, out, t->sql, what)) {
          g_free(t->note);
          t->note = g_strdup("the table could not be created in the new database");
          t->not_created = TRUE;
          continue;
        }
      }
      salvage_table(j, out, t);
    }
  /* A table that could not be created (its CREATE statement damaged): its
   * rows, read from its pages by hand, go to lost_and_found. */
  for (guint i = 0; i < j->tables->len; i++) {
    Table *t = g_ptr_array_index(j->tables, i);
    g_autofree char *why = NULL;
    gint64 n;
    if (!t->not_created || t->is_virtual)
      continue;
    n = lost_rows_by_hand(j, out, t, &why);
    g_free(t->note);
    t->note = n >= 0 ? g_strdup_printf("the table could not be created in the new database; "
                                       "%" G_GINT64_FORMAT " row%s read from its pages by "
                                       "hand %s in lost_and_found (its rootpgno)",
                                       n, n == 1 ? "" : "s", n == 1 ? "is" : "are")
                     : g_strdup_printf("the table could not be created in the new database, "
                                       "and its pages could not be read by hand: %s", why);
  }
  /* sqlite_sequence: AUTOINCREMENT counters never go back. */
  {
    g_autoptr(sqlite3_stmt) st = NULL;
    if (sqlite3_prepare_v2(j->src, "SELECT name, seq FROM sqlite_sequence", -1, &st, NULL) ==
        SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
        g_autoptr(sqlite3_stmt) up = NULL;
        if (sqlite3_prepare_v2(out,
                               "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                               -1, &up, NULL) != SQLITE_OK)
          break;
        sqlite3_bind_value(up, 1, sqlite3_column_value(st, 0));
        sqlite3_bind_value(up, 2, sqlite3_column_value(st, 1));
        sqlite3_step(up);
        if (sqlite3_changes(out) == 0) {
          g_autoptr(sqlite3_stmt) ins = NULL;
          if (sqlite3_prepare_v2(out, "INSERT INTO sqlite_sequence(name, seq) SELECT ?1, ?2 "
                                      "WHERE EXISTS (SELECT 1 FROM sqlite_schema WHERE "
                                      "type = 'table' AND name = ?1)",
                                 -1, &ins, NULL) == SQLITE_OK) {
            sqlite3_bind_value(ins, 1, sqlite3_column_value(st, 0));
            sqlite3_bind_value(ins, 2, sqlite3_column_value(st, 1));
            sqlite3_step(ins);
          }
        }
      }
    }
  }
  /* Then indexes, views, the rows on pages no table reaches (checked
   * against the indexes' constraints), triggers (last, so they did not
   * fire on the copied rows). */
  {
    static const char *const order[] = { "index", "view", "trigger" };
    for (gsize o = 0; o < G_N_ELEMENTS(order); o++) {
      if (strcmp(order[o], "trigger") == 0)
        recover_orphans(j, out);
      for (guint i = 0; i < j->schema->len; i++) {
        SchemaRow *s = g_ptr_array_index(j->schema, i);
        g_autofree char *what = NULL;
        gboolean table_kept = FALSE;
        if (strcmp(s->type, order[o]) != 0 || s->sql == NULL || is_internal(s->name))
          continue;
        for (guint k = 0; k < j->tables->len; k++)
          table_kept = table_kept ||
                       g_ascii_strcasecmp(((Table *)g_ptr_array_index(j->tables, k))->name,
                                          s->tbl_name) == 0;
        if (o == 0 && !table_kept)
          continue; /* an index of a shadow table, rebuilt with it */
        what = g_strdup_printf("%s %s", s->type, s->name);
        exec_schema(j, out, s->sql, what);
      }
    }
  }
  for (guint i = 0; i < j->schema->len; i++) {
    SchemaRow *s = g_ptr_array_index(j->schema, i);
    if (g_str_has_prefix(s->name, "sqlite_stat"))
      problem(j, "statistics (%s) were not copied: run ANALYZE on the new database", s->name);
  }
  if (sqlite3_get_autocommit(out)) {
    /* SQLite rolled the transaction back itself: only a write it could
     * not go on from does (a full disk, an I/O error). COMMIT would only
     * say that no transaction is active. */
    struct statvfs sv;
    g_autofree char *dir = g_path_get_dirname(j->work); /* where the output goes */
    gboolean full = statvfs(dir, &sv) == 0 && (guint64)sv.f_bavail * sv.f_frsize < (1u << 20);
    g_set_error(error, SQLENVFS_ERROR, full ? SQLENVFS_ERROR_NOSPACE : SQLENVFS_ERROR_IO,
                "write the new database in %s: SQLite rolled it back after a write failed "
                "(%s; nothing was kept: %s, then retry)", dir,
                full ? "the filesystem is full" : "a full disk or an I/O error",
                full ? "free some space there or recover to another --output"
                     : "check the space and `dmesg`");
    return FALSE;
  }
  return sqlenvfs_db_exec(out, "COMMIT", j->newdb, error);
}

/* ---- After either method ------------------------------------------------- */

/* Give the new database @path @mode (sqlenvfs_group_mode: no group bits in
 * a group not this process's). FALSE with errno set. */
static gboolean
recover_set_mode(const char *path, int mode)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  gboolean ok;
  int errsv;
  if (fd < 0)
    return FALSE;
  ok = fchmod(fd, (mode_t)sqlenvfs_group_mode(fd, mode)) == 0;
  errsv = errno;
  close(fd);
  errno = errsv;
  return ok;
}

/* The rowids of @t listed from @index (NULL: the table itself) that the
 * new table lacks, as ranges in *ranges (NULL when none), with "and N
 * whose rowids the damage hides" for those of the @missing that the
 * listing could not name: *n_bad rowids it read out of order or twice (a
 * damaged cell read as another row's). FALSE when the listing failed. */
static gboolean
list_missing(Job *j, sqlite3 *out, const Table *t, const char *index, gint64 missing,
             char **ranges, gint64 *n_bad)
{
  g_autofree char *q = quote_ident(t->name);
  g_autofree char *qi = index ? quote_ident(index) : NULL;
  g_autofree char *esql = g_strdup_printf("SELECT %s FROM %s %s%s ORDER BY 1", t->rowid, q,
                                          qi ? "INDEXED BY " : "NOT INDEXED", qi ? qi : "");
  g_autofree char *osql = g_strdup_printf("SELECT %s FROM main.%s ORDER BY 1", t->rowid, q);
  g_autoptr(sqlite3_stmt) es = NULL, os = NULL;
  Ranges rg = { .out = g_string_new(NULL), .max_ranges = MAX_RANGES };
  gboolean have_o = FALSE, ok = TRUE, have_e = FALSE;
  gint64 o = 0, prev_e = 0, hidden, max = 0;
  gboolean has_max = table_max(j->src, t, &max);
  int rc;
  char *s;

  *n_bad = 0;
  if (sqlite3_prepare_v2(j->src, esql, -1, &es, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(out, osql, -1, &os, NULL) == SQLITE_OK) {
    int orc = sqlite3_step(os);
    have_o = orc == SQLITE_ROW;
    if (have_o)
      o = sqlite3_column_int64(os, 0);
    while ((rc = sqlite3_step(es)) == SQLITE_ROW) {
      gint64 e = sqlite3_column_int64(es, 0);
      /* A rowid out of order (the listing's own order serves the ORDER
       * BY), twice, or past the table's largest: a damaged cell read as
       * another row's. Which row it stood for cannot be told (counted
       * below). */
      if ((have_e && e <= prev_e) || (has_max && e > max)) {
        (*n_bad)++;
        continue;
      }
      have_e = TRUE;
      prev_e = e;
      while (have_o && o < e) {
        have_o = sqlite3_step(os) == SQLITE_ROW;
        if (have_o)
          o = sqlite3_column_int64(os, 0);
      }
      if (!have_o || o != e)
        ranges_add(&rg, e);
    }
    ok = rc == SQLITE_DONE;
  } else {
    ok = FALSE;
  }
  hidden = MIN(*n_bad, missing - rg.count);
  s = ranges_finish(&rg);
  if (ok && hidden > 0) {
    char *all = g_strdup_printf("%s%s%" G_GINT64_FORMAT " whose rowid%s the damage hides",
                                s ? s : "", s ? ", and " : "", hidden, hidden == 1 ? "" : "s");
    g_free(s);
    s = all;
  }
  *ranges = s;
  return ok;
}

/* Rows per table in new.db, and which expected rowids are missing. */
static void
tally(Job *j, sqlite3 *out)
{
  SqlenvfsRecoverReport *r = j->report;
  gint64 n;

  for (guint i = 0; i < j->tables->len; i++) {
    Table *t = g_ptr_array_index(j->tables, i);
    SqlenvfsRecoveredTable *rt = g_new0(SqlenvfsRecoveredTable, 1);
    g_autofree char *q = quote_ident(t->name);
    g_autofree char *sql = g_strdup_printf("SELECT count(*) FROM main.%s", q);

    rt->name = g_strdup(t->name);
    rt->n_expected = t->n_expected;
    rt->expected_from = g_strdup(t->expected_from);
    rt->note = g_strdup(t->note);
    if (t->orphans != NULL)
      rt->orphan_rowids = sqlenvfs_recover_format_ranges((const gint64 *)t->orphans->data,
                                                         t->orphans->len, MAX_RANGES);
    rt->n_recovered = sqlenvfs_db_query_int(out, sql, &n, j->newdb, NULL) ? n : 0;
    r->n_rows_recovered += rt->n_recovered;
    if (rt->n_expected > rt->n_recovered)
      r->n_rows_expected_lost += rt->n_expected - rt->n_recovered;

    /* Missing rowids: the expected ones (the table's, or the index's it
     * was counted from) that the new table lacks. A damaged cell can make
     * the table's own listing hide some; an index that counted as many
     * rows then names them. */
    if (t->rowid != NULL && rt->n_expected > rt->n_recovered) {
      gint64 missing = rt->n_expected - rt->n_recovered, n_bad = 0;
      char *s = NULL;
      gboolean ok = list_missing(j, out, t, t->expected_index, missing, &s, &n_bad);
      if (ok && n_bad > 0 && t->expected_index == NULL && t->tie_index != NULL) {
        char *s2 = NULL;
        gint64 n_bad2 = 0;
        if (list_missing(j, out, t, t->tie_index, missing, &s2, &n_bad2) && n_bad2 == 0) {
          g_free(s);
          s = s2;
          n_bad = 0;
        } else {
          g_free(s2);
        }
      }
      if (ok)
        rt->missing_rowids = s;
      else
        g_free(s);
    }
    g_ptr_array_add(r->tables, rt);
  }
  if (sqlenvfs_db_query_int(out,
                            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                            "name = 'lost_and_found'",
                            &n, j->newdb, NULL) &&
      n > 0 &&
      sqlenvfs_db_query_int(out, "SELECT count(*) FROM lost_and_found", &n, j->newdb, NULL))
    r->n_lost_and_found = n;
}

/* ---- rows read from damaged pages -------------------------------------
 *
 * A row on a damaged page can still read, with bytes that are not its own:
 * SQLite cannot tell. What integrity_check named is placed in each rowid
 * table's b-tree, walked from its root in the private copy (its WAL
 * checkpointed into it first), and every row recovered under it is
 * reported as suspect. A named page covers the rowids its parent bounds it
 * by, (the key before it, its key]. "On tree page P cell i: ..." on an
 * interior page P is about the key of cell i against the children it
 * separates, i and i + 1 (the right child when i is the last cell), so both
 * count; on a leaf, about the leaf. A page that cannot be parsed, points
 * outside the file or is reached twice counts as named. */

typedef struct {
  gboolean has_lo, has_hi; /* unbounded below / above when not */
  gint64 lo, hi;           /* rowids in (lo, hi]               */
  gboolean cut;            /* the walk did not go below: a named leaf is read, not cut */
} Span;

typedef struct {
  int fd;
  guint32 page_size, usable, n_pages;
  GHashTable *named;       /* page numbers integrity_check named        */
  GHashTable *cells;       /* (page << 32 | cell) it named, and page << 32
                            * | G_MAXUINT32 for each page with one      */
  GHashTable *seen;        /* pages of the b-tree being walked          */
  guint8 *reached;         /* a bit per page of every b-tree walked, their
                            * overflow pages included; NULL: not kept   */
  gboolean through_cells;  /* go below named cells too (only a page that
                            * cannot be walked cuts the walk off)       */
  guint8 *buf;
  GArray *spans;           /* Span, in key order */
} SpanWalk;

static gint64
cell_key(guint64 page, guint64 cell)
{
  return (gint64)(page << 32 | (guint32)cell);
}

static void
cells_add(GHashTable *cells, guint64 page, guint64 cell)
{
  gint64 *k = g_new(gint64, 1);
  *k = cell_key(page, cell);
  g_hash_table_add(cells, k);
}

static gboolean
cells_has(GHashTable *cells, guint64 page, guint64 cell)
{
  gint64 k = cell_key(page, cell);
  return g_hash_table_contains(cells, &k);
}

/* The pages and cells in the damage lines ("page 21", "Page 909:", "On
 * tree page 6 cell 1:"). @damaged, when not NULL, gets the pages named by
 * any line but "Page N is never used" (a page no b-tree reaches, which says
 * nothing about its content). */
static void
named_places(const GPtrArray *damage, GHashTable *pages, GHashTable *cells, GHashTable *damaged)
{
  for (guint i = 0; i < damage->len; i++) {
    g_autofree char *low = g_ascii_strdown(g_ptr_array_index(damage, i), -1);
    gboolean unused = g_str_has_prefix(low, "page ") && g_str_has_suffix(low, " is never used");
    for (const char *p = strstr(low, "page "); p != NULL; p = strstr(p + 5, "page ")) {
      guint64 n = 0, c = 0;
      const char *q = p + 5, *r;
      while (g_ascii_isdigit(*q) && n < G_MAXUINT32)
        n = n * 10 + (guint64)(*q++ - '0');
      if (q == p + 5 || n == 0 || n >= G_MAXUINT32)
        continue;
      r = g_str_has_prefix(q, " cell ") ? q + 6 : NULL;
      while (r != NULL && g_ascii_isdigit(*r) && c < G_MAXUINT32)
        c = c * 10 + (guint64)(*r++ - '0');
      if (r != NULL && r > q + 6 && c < G_MAXUINT32) {
        cells_add(cells, n, c);
        cells_add(cells, n, G_MAXUINT32);
      } else {
        g_hash_table_add(pages, GUINT_TO_POINTER((guint)n));
      }
      if (damaged != NULL && !unused)
        g_hash_table_add(damaged, GUINT_TO_POINTER((guint)n));
    }
  }
}

/* Bit @pgno (<= n_pages) of a bitmap of n_pages / 8 + 1 bytes. */
static gboolean
bit_has(const guint8 *bits, guint32 pgno)
{
  return (bits[pgno >> 3] >> (pgno & 7)) & 1;
}

static void
bit_set(guint8 *bits, guint32 pgno)
{
  bits[pgno >> 3] |= (guint8)(1u << (pgno & 7));
}

static gboolean
read_page(SpanWalk *w, guint32 pgno, guint8 *buf)
{
  return pgno >= 1 && pgno <= w->n_pages &&
         pread(w->fd, buf, w->page_size, (off_t)(pgno - 1) * w->page_size) ==
           (ssize_t)w->page_size;
}

/* Mark the overflow pages of a payload as reached: at most as many as the
 * payload needs, each inside the file and not reached before. */
static void
mark_overflow(SpanWalk *w, guint32 pgno, guint64 payload_size, guint32 n_local)
{
  guint64 left = payload_size > n_local ? payload_size - n_local : 0;
  guint8 next[4];

  while (pgno != 0 && left > 0 && pgno <= w->n_pages &&
         !bit_has(w->reached, pgno) &&
         pread(w->fd, next, sizeof next, (off_t)(pgno - 1) * w->page_size) ==
           (ssize_t)sizeof next) {
    bit_set(w->reached, pgno);
    left -= MIN(left, (guint64)w->usable - 4);
    pgno = sqlenvfs_be32(next);
  }
}

/* Walk the b-tree under @pgno (bounded by @span): a rowid table's, or with
 * @index an index's (or a WITHOUT ROWID table's: its spans mean nothing).
 * Where the walk cannot or must not go below a page, that page's span is
 * appended to w->spans; a leaf named by a cell is read and appended too. */
static void
walk_tree(SpanWalk *w, guint32 pgno, Span span, int depth, gboolean index)
{
  SqlenvfsBtreePage page;
  Span child = span;
  guint8 leaf_type = index ? SQLENVFS_BTREE_INDEX_LEAF : SQLENVFS_BTREE_TABLE_LEAF;
  guint8 interior_type = index ? SQLENVFS_BTREE_INDEX_INTERIOR : SQLENVFS_BTREE_TABLE_INTERIOR;

  span.cut = TRUE;
  child.cut = TRUE;
  if (pgno == 0 || pgno > w->n_pages || depth > 40 ||
      g_hash_table_contains(w->seen, GUINT_TO_POINTER(pgno)) ||
      g_hash_table_contains(w->named, GUINT_TO_POINTER(pgno)) || !read_page(w, pgno, w->buf) ||
      !sqlenvfs_btree_page_parse(w->buf, w->page_size, w->usable, pgno, &page, NULL) ||
      (page.type != leaf_type && page.type != interior_type)) {
    g_array_append_val(w->spans, span);
    return;
  }
  g_hash_table_add(w->seen, GUINT_TO_POINTER(pgno));
  if (w->reached != NULL) {
    bit_set(w->reached, pgno);
    /* Cells with a payload: leaves, and index interior pages. */
    for (guint i = 0; page.type != SQLENVFS_BTREE_TABLE_INTERIOR && i < page.n_cells; i++) {
      SqlenvfsBtreeCell cell;
      if (sqlenvfs_btree_cell(&page, i, &cell, NULL) && cell.overflow != 0)
        mark_overflow(w, cell.overflow, cell.payload_size, cell.n_local);
    }
  }
  if (page.type == leaf_type) {
    if (!index && cells_has(w->cells, pgno, G_MAXUINT32)) {
      span.cut = FALSE;
      g_array_append_val(w->spans, span);
    }
    return;
  }
  {
    guint n = page.n_cells;
    guint32 right = page.right_child;
    g_autofree guint32 *kids = g_new(guint32, n);
    g_autofree gint64 *keys = g_new(gint64, n);
    for (guint i = 0; i < n; i++) {
      SqlenvfsBtreeCell cell;
      if (!sqlenvfs_btree_cell(&page, i, &cell, NULL)) {
        g_array_append_val(w->spans, span);
        return;
      }
      kids[i] = cell.child;
      keys[i] = cell.rowid;
    }
    /* w->buf is reused below: the page's cells were copied out first.
     * Child i is bounded by keys i - 1 and i; the right child, i = n, by
     * the last key and the page's own bound. */
    for (guint i = 0; i <= n; i++) {
      gboolean named = !w->through_cells && (cells_has(w->cells, pgno, i) ||
                                             (i > 0 && cells_has(w->cells, pgno, i - 1)));
      child.has_hi = i < n || span.has_hi;
      child.hi = i < n ? keys[i] : span.hi;
      if (named)
        g_array_append_val(w->spans, child);
      else
        walk_tree(w, i < n ? kids[i] : right, child, depth + 1, index);
      if (i < n) {
        child.has_lo = TRUE;
        child.lo = keys[i];
      }
    }
  }
}

static gboolean
span_has(const Span *sp, gint64 rowid)
{
  return (!sp->has_lo || rowid > sp->lo) && (!sp->has_hi || rowid <= sp->hi);
}

static int
cmp_gint64(gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
  return x < y ? -1 : x > y;
}

/* The rowids of @out's table @t recovered from under named pages (those
 * taken from pages no table reaches, t->orphans, are listed apart). */
static char *
suspect_rowids(sqlite3 *out, const Table *t, SpanWalk *w, guint32 root)
{
  g_autofree char *q = quote_ident(t->name);
  g_autofree char *sql = g_strdup_printf("SELECT %s FROM main.%s WHERE (?1 IS NULL OR %s > ?1)"
                                         " AND (?2 IS NULL OR %s <= ?2) ORDER BY 1",
                                         t->rowid, q, t->rowid, t->rowid);
  g_autoptr(sqlite3_stmt) st = NULL;
  Ranges rg = { .out = g_string_new(NULL), .max_ranges = MAX_RANGES };
  Span all = { 0 };

  g_array_set_size(w->spans, 0);
  g_hash_table_remove_all(w->seen);
  walk_tree(w, root, all, 0, FALSE);
  if (w->spans->len == 0 || sqlite3_prepare_v2(out, sql, -1, &st, NULL) != SQLITE_OK)
    return ranges_finish(&rg);
  for (guint i = 0; i < w->spans->len; i++) {
    const Span *sp = &g_array_index(w->spans, Span, i);
    sqlite3_reset(st);
    if (sp->has_lo)
      sqlite3_bind_int64(st, 1, sp->lo);
    else
      sqlite3_bind_null(st, 1);
    if (sp->has_hi)
      sqlite3_bind_int64(st, 2, sp->hi);
    else
      sqlite3_bind_null(st, 2);
    while (sqlite3_step(st) == SQLITE_ROW) {
      gint64 r = sqlite3_column_int64(st, 0);
      if (t->orphans == NULL ||
          bsearch(&r, t->orphans->data, t->orphans->len, sizeof r, cmp_gint64) == NULL)
        ranges_add(&rg, r);
    }
  }
  return ranges_finish(&rg);
}

/* Open the private copy's pages for a walk (its WAL checkpointed into it
 * first): page size, usable size and the pages the file holds (no more than
 * its header counts, when that count is valid). */
static gboolean
open_pages(Job *j, SpanWalk *w, guint8 hdr[100])
{
  struct stat st;

  if (!sqlenvfs_db_exec(j->src, "PRAGMA wal_checkpoint(TRUNCATE)", j->copy, NULL))
    return FALSE;
  w->fd = open(j->copy, O_RDONLY | O_CLOEXEC);
  if (w->fd < 0)
    return FALSE;
  if (fstat(w->fd, &st) == 0 && pread(w->fd, hdr, 100, 0) == 100) {
    w->page_size = sqlenvfs_db_page_size(hdr);
    if (sqlenvfs_page_size_ok(w->page_size) &&
        w->page_size > hdr[20]) {
      guint32 in_header = sqlenvfs_be32(hdr + 28);
      w->usable = w->page_size - hdr[20];
      w->n_pages = (guint32)MIN((guint64)st.st_size / w->page_size, G_MAXUINT32);
      /* valid when the change counter matches "version-valid-for" */
      if (in_header > 0 && sqlenvfs_be32(hdr + 24) == sqlenvfs_be32(hdr + 92))
        w->n_pages = MIN(w->n_pages, in_header);
      w->buf = g_malloc(w->page_size);
      return TRUE;
    }
  }
  close(w->fd);
  w->fd = -1;
  return FALSE;
}

/* Fill each recovered table's suspect_rowids (nothing when the source
 * had no damage, or its pages cannot be read). */
static void
find_suspects(Job *j, sqlite3 *out)
{
  g_autoptr(GHashTable) named = g_hash_table_new(NULL, NULL);
  g_autoptr(GHashTable) cells = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  g_autoptr(GArray) spans = g_array_new(FALSE, FALSE, sizeof(Span));
  SpanWalk w = { .fd = -1, .named = named, .cells = cells, .seen = seen, .spans = spans };
  guint8 hdr[100];

  named_places(j->damage, named, cells, NULL);
  if ((g_hash_table_size(named) == 0 && g_hash_table_size(cells) == 0) ||
      !open_pages(j, &w, hdr))
    return;
  for (guint i = 0; i < j->tables->len; i++) {
    Table *t = g_ptr_array_index(j->tables, i);
    gint64 root = 0;
    char *sql;
    if (t->is_virtual || t->without_rowid || t->rowid == NULL)
      continue;
    sql = sqlite3_mprintf("SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = %Q",
                          t->name);
    if (sqlenvfs_db_query_int(j->src, sql, &root, j->copy, NULL) && root > 0 &&
        root <= G_MAXUINT32) {
      for (guint k = 0; k < j->report->tables->len; k++) {
        SqlenvfsRecoveredTable *rt = g_ptr_array_index(j->report->tables, k);
        if (strcmp(rt->name, t->name) == 0 && rt->suspect_rowids == NULL)
          rt->suspect_rowids = suspect_rowids(out, t, &w, (guint32)root);
      }
    }
    sqlite3_free(sql);
  }
  close(w.fd);
  g_free(w.buf);
}

/* ---- rows on pages no table reaches ------------------------------------
 *
 * Below a damaged interior page the leaves may be intact, yet SQL cannot
 * reach them. Every b-tree of the copy is walked (tables and indexes, their
 * overflow pages included; never into a named page, one that does not
 * parse, lies outside the file or is reached twice, but below named cells:
 * the pages there are what SQLite reads) and the freelist read; a table
 * leaf that neither reaches, which integrity_check did not name as damaged
 * and whose cells all parse, is an orphan. It is given to a table only when
 * all its rowids lie in one span that table's walk was cut off at (the
 * bounds of a page it could not walk); its rows whose rowid
 * the salvage did not recover, and which no other orphan also holds, are
 * inserted with their payload read by hand (overflow chains bounded, each
 * page inside the file and used once). Not done when what tells an orphan
 * from a freed page cannot be read whole (the schema, the freelist). */

typedef struct {
  gint64 rowid;
  guint table; /* in j->tables */
  guint32 pgno;
  guint cell;
  gboolean drop;
} Orphan;

static int
cmp_orphan(gconstpointer a, gconstpointer b)
{
  const Orphan *x = a, *y = b;
  if (x->table != y->table)
    return x->table < y->table ? -1 : 1;
  if (x->rowid != y->rowid)
    return x->rowid < y->rowid ? -1 : 1;
  return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* The freelist's trunk and leaf pages into @freed. FALSE with *why when it
 * cannot be read whole: a page number outside the file, a loop, a trunk
 * that lists more leaves than it holds, or a count other than the
 * header's. */
static gboolean
read_freelist(SpanWalk *w, const guint8 hdr[100], GHashTable *freed, const char **why)
{
  guint32 trunk = sqlenvfs_be32(hdr + 32), total = sqlenvfs_be32(hdr + 36);
  guint32 max_leaves = w->usable / 4 - 2;

  for (guint32 n = 0; trunk != 0; n++) {
    guint32 n_leaves;
    if (n >= w->n_pages || trunk > w->n_pages ||
        g_hash_table_contains(freed, GUINT_TO_POINTER(trunk)) || !read_page(w, trunk, w->buf)) {
      *why = "a freelist trunk page is outside the file or listed twice";
      return FALSE;
    }
    g_hash_table_add(freed, GUINT_TO_POINTER(trunk));
    n_leaves = sqlenvfs_be32(w->buf + 4);
    if (n_leaves > max_leaves) {
      *why = "a freelist trunk page lists more pages than it can hold";
      return FALSE;
    }
    for (guint32 k = 0; k < n_leaves; k++) {
      guint32 p = sqlenvfs_be32(w->buf + 8 + 4 * k);
      if (p == 0 || p > w->n_pages || g_hash_table_contains(freed, GUINT_TO_POINTER(p))) {
        *why = "a freelist page is outside the file or listed twice";
        return FALSE;
      }
      g_hash_table_add(freed, GUINT_TO_POINTER(p));
    }
    trunk = sqlenvfs_be32(w->buf);
  }
  if (g_hash_table_size(freed) != total) {
    *why = "the freelist holds another number of pages than the header says";
    return FALSE;
  }
  return TRUE;
}

/* How a record's fields go into a table: the column (quoted) each field
 * is inserted into, NULL for a field that is not inserted (the INTEGER
 * PRIMARY KEY, stored as NULL: its value is the rowid; a STORED generated
 * column). A record holds the columns that are not VIRTUAL generated, in
 * their order. NULL when the columns cannot be read. */
static GPtrArray *
record_layout(Job *j, const Table *t)
{
  g_autofree char *q = quote_ident(t->name);
  g_autofree char *sql = g_strdup_printf("PRAGMA table_xinfo(%s)", q);
  g_autofree char *isql = NULL;
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GPtrArray) slots = g_ptr_array_new_with_free_func(g_free);
  gint64 n_pk_index = 1;
  int n_pk = 0, ipk = -1, rc;
  g_autofree char *lit = NULL;

  {
    char *s = sqlite3_mprintf("%Q", t->name);
    lit = g_strdup(s);
    sqlite3_free(s);
  }
  isql = g_strdup_printf("SELECT count(*) FROM pragma_index_list(%s) WHERE origin = 'pk'", lit);
  if (!sqlenvfs_db_query_int(j->src, isql, &n_pk_index, j->copy, NULL) ||
      sqlite3_prepare_v2(j->src, sql, -1, &st, NULL) != SQLITE_OK)
    return NULL;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *col = (const char *)sqlite3_column_text(st, 1);
    int pk = sqlite3_column_int(st, 5), hidden = sqlite3_column_int(st, 6);
    if (col == NULL)
      return NULL;
    if (pk > 0)
      n_pk++;
    if (hidden == 2 || hidden == 1) /* VIRTUAL generated, hidden: not in the record */
      continue;
    if (pk > 0)
      ipk = (int)slots->len;
    g_ptr_array_add(slots, hidden == 3 ? NULL : quote_ident(col));
  }
  if (rc != SQLITE_DONE || slots->len == 0)
    return NULL;
  /* A sole primary key column without an index of its own is the rowid
   * (INTEGER PRIMARY KEY; not ... DESC, nor INT). */
  if (n_pk == 1 && n_pk_index == 0 && ipk >= 0)
    g_clear_pointer(&g_ptr_array_index(slots, ipk), g_free);
  return g_steal_pointer(&slots);
}

/* The number of fields of a record (its header read, bounded); 0 when
 * the header is malformed. */
static guint
record_n_fields(const guint8 *rec, gsize len)
{
  guint64 hdr_len, type;
  guint n = sqlenvfs_btree_varint(rec, len, &hdr_len), k, count = 0;
  gsize hp = n;

  if (n == 0 || hdr_len > len || hdr_len < n)
    return 0;
  while (hp < hdr_len) {
    k = sqlenvfs_btree_varint(rec + hp, (gsize)hdr_len - hp, &type);
    if (k == 0)
      return 0;
    hp += k;
    count++;
  }
  return count;
}

/* The whole payload of @cell into @out: its local part and its overflow
 * chain, each page inside the file and used once (@used: across calls
 * when given, else within this payload). With @freed (an orphan's), each
 * page also on no b-tree walked (w->reached) nor the freelist (@freed).
 * FALSE when the chain is broken or longer than the file. */
static gboolean
read_payload(SpanWalk *w, const SqlenvfsBtreeCell *cell, GHashTable *freed, GHashTable *used,
             GByteArray *out)
{
  g_autoptr(GHashTable) mine = used == NULL ? g_hash_table_new(NULL, NULL) : NULL;
  g_autofree guint8 *buf = NULL;
  guint32 pgno = cell->overflow;

  if (used == NULL)
    used = mine;
  g_byte_array_set_size(out, 0);
  if (cell->payload_size > (guint64)w->n_pages * w->usable ||
      cell->payload_size > (guint64)G_MAXINT32)
    return FALSE;
  g_byte_array_append(out, cell->local, cell->n_local);
  if (cell->n_local == cell->payload_size)
    return TRUE;
  buf = g_malloc(w->page_size);
  while (out->len < cell->payload_size) {
    guint32 take = (guint32)MIN((guint64)w->usable - 4, cell->payload_size - out->len);
    if (pgno == 0 || g_hash_table_contains(used, GUINT_TO_POINTER(pgno)) ||
        (freed != NULL && (bit_has(w->reached, pgno) ||
                           g_hash_table_contains(freed, GUINT_TO_POINTER(pgno)))) ||
        !read_page(w, pgno, buf))
      return FALSE;
    g_hash_table_add(used, GUINT_TO_POINTER(pgno));
    g_byte_array_append(out, buf + 4, take);
    pgno = sqlenvfs_be32(buf);
  }
  return TRUE;
}

/* One record read by hand: of cell @i of page @pgno, the rowid @rowid when
 * @has_rowid (a table leaf), its payload @rec of @len bytes holding
 * @n_fields fields. */
typedef void (*RowFunc)(gpointer user, guint32 pgno, guint i, gboolean has_rowid, gint64 rowid,
                        const guint8 *rec, gsize len, guint n_fields);

/* The root page of table @t in the copy's schema: TRUE and *root, else
 * FALSE and *why. */
static gboolean
table_root(Job *j, const Table *t, guint32 *root, char **why)
{
  char *sql = sqlite3_mprintf("SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND "
                              "name = %Q", t->name);
  gint64 r = 0;
  gboolean ok = sqlenvfs_db_query_int(j->src, sql, &r, j->copy, NULL);
  sqlite3_free(sql);
  if (!ok || r <= 0 || r > G_MAXUINT32) {
    *why = g_strdup("its root page is not in the schema");
    return FALSE;
  }
  *root = (guint32)r;
  return TRUE;
}

/* Walk the b-tree from @root by hand (a table's or an index's: a WITHOUT
 * ROWID table's), giving @fn every record of every page that parses
 * (leaves, and index interior pages, which hold records too). A page that
 * does not parse, lies outside the file or is reached twice is skipped with
 * what is below it; a record whose overflow chain is broken is skipped. */
static void
walk_rows(SpanWalk *w, guint32 root, RowFunc fn, gpointer user)
{
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  g_autoptr(GArray) stack = g_array_new(FALSE, FALSE, sizeof(guint32));
  g_autoptr(GByteArray) payload = g_byte_array_new();

  g_array_append_val(stack, root);
  while (stack->len > 0) {
    guint32 pgno = g_array_index(stack, guint32, stack->len - 1);
    SqlenvfsBtreePage page;
    g_autofree guint8 *data = NULL;
    gboolean interior;
    g_array_set_size(stack, stack->len - 1);
    if (g_hash_table_contains(seen, GUINT_TO_POINTER(pgno)) || !read_page(w, pgno, w->buf))
      continue;
    g_hash_table_add(seen, GUINT_TO_POINTER(pgno));
    data = g_memdup2(w->buf, w->page_size); /* w->buf is read into by read_payload */
    if (!sqlenvfs_btree_page_parse(data, w->page_size, w->usable, pgno, &page, NULL))
      continue;
    interior = page.type == SQLENVFS_BTREE_TABLE_INTERIOR ||
               page.type == SQLENVFS_BTREE_INDEX_INTERIOR;
    if (interior)
      g_array_append_val(stack, page.right_child);
    for (guint i = 0; i < page.n_cells; i++) {
      SqlenvfsBtreeCell cell;
      guint nf;
      if (!sqlenvfs_btree_cell(&page, i, &cell, NULL))
        continue;
      if (interior)
        g_array_append_val(stack, cell.child);
      if (page.type == SQLENVFS_BTREE_TABLE_INTERIOR || !read_payload(w, &cell, NULL, NULL, payload))
        continue;
      nf = record_n_fields(payload->data, payload->len);
      if (nf > 0)
        fn(user, pgno, i, page.type == SQLENVFS_BTREE_TABLE_LEAF, cell.rowid, payload->data,
           payload->len, nf);
    }
  }
}

typedef struct {
  sqlite3 *out;
  sqlite3_stmt *insert;    /* without_rowid_by_hand: its n_fields columns */
  guint n_fields;
  GPtrArray *inserts;      /* lost_rows_by_hand: by number of fields      */
  guint32 root;
  guint max_fields;
  gint64 n_in;
} HandRows;

static void
insert_without_rowid(gpointer user, guint32 pgno, guint i, gboolean has_rowid, gint64 rowid,
                     const guint8 *rec, gsize len, guint n_fields)
{
  HandRows *h = user;
  g_autofree char *what = g_strdup_printf("cell %u of page %u", i, pgno);
  (void)has_rowid;
  (void)rowid;
  if (n_fields != h->n_fields)
    return;
  sqlite3_reset(h->insert);
  if (sqlenvfs_btree_record_bind(rec, len, n_fields, h->insert, 1, what, NULL) &&
      sqlite3_step(h->insert) == SQLITE_DONE)
    h->n_in += sqlite3_changes(h->out);
}

/* A WITHOUT ROWID table @t whose scan through SQL stopped at an unreadable
 * page: its b-tree (an index b-tree whose records are its rows, the key's
 * columns first, as its primary key's index_xinfo lists them) is walked
 * from its root page in the private copy (walk_rows), and every record is
 * inserted with INSERT OR IGNORE: a row copied already keeps its values.
 * Returns how many rows went in, or -1 and *why. */
static gint64
without_rowid_by_hand(Job *j, sqlite3 *out, const Table *t, char **why)
{
  g_autofree char *q = quote_ident(t->name);
  g_autoptr(GPtrArray) cols = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(sqlite3_stmt) st = NULL;
  g_autoptr(GString) names = g_string_new(NULL), marks = g_string_new(NULL);
  g_autofree char *sql = NULL, *pk = NULL;
  SpanWalk w = { .fd = -1 };
  HandRows h = { .out = out };
  guint8 hdr[100];
  guint32 root;

  /* The columns in the order the record holds them. */
  sql = sqlite3_mprintf("SELECT name FROM pragma_index_list(%Q) WHERE origin = 'pk'", t->name);
  if (!sqlenvfs_db_query_text(j->src, sql, &pk, j->copy, NULL) || pk == NULL) {
    sqlite3_free(sql);
    *why = g_strdup("its primary key's index is not in the schema");
    return -1;
  }
  sqlite3_free(sql);
  sql = sqlite3_mprintf("SELECT name FROM pragma_index_xinfo(%Q) ORDER BY seqno", pk);
  if (sqlite3_prepare_v2(j->src, sql, -1, &st, NULL) == SQLITE_OK)
    while (sqlite3_step(st) == SQLITE_ROW)
      if (sqlite3_column_text(st, 0) != NULL)
        g_ptr_array_add(cols, quote_ident((const char *)sqlite3_column_text(st, 0)));
  sqlite3_free(sql);
  sql = NULL;
  g_clear_pointer(&st, sqlite3_finalize);
  if (cols->len == 0) {
    *why = g_strdup("the columns of its records cannot be told");
    return -1;
  }
  if (!table_root(j, t, &root, why))
    return -1;
  for (guint k = 0; k < cols->len; k++) {
    g_string_append_printf(names, "%s%s", k ? ", " : "", (char *)cols->pdata[k]);
    g_string_append_printf(marks, "%s?%u", k ? ", " : "", k + 1);
  }
  sql = g_strdup_printf("INSERT OR IGNORE INTO main.%s(%s) VALUES (%s)", q, names->str,
                        marks->str);
  if (sqlite3_prepare_v2(out, sql, -1, &st, NULL) != SQLITE_OK) {
    *why = g_strdup(sqlite3_errmsg(out));
    return -1;
  }
  if (!open_pages(j, &w, hdr)) {
    *why = g_strdup("the copy's pages cannot be read");
    return -1;
  }
  h.insert = st;
  h.n_fields = cols->len;
  walk_rows(&w, root, insert_without_rowid, &h);
  close(w.fd);
  g_free(w.buf);
  return h.n_in;
}

static void
count_fields(gpointer user, guint32 pgno, guint i, gboolean has_rowid, gint64 rowid,
             const guint8 *rec, gsize len, guint n_fields)
{
  HandRows *h = user;
  (void)pgno;
  (void)i;
  (void)has_rowid;
  (void)rowid;
  (void)rec;
  (void)len;
  h->max_fields = MAX(h->max_fields, n_fields);
}

static void
insert_lost(gpointer user, guint32 pgno, guint i, gboolean has_rowid, gint64 rowid,
            const guint8 *rec, gsize len, guint n_fields)
{
  HandRows *h = user;
  g_autofree char *what = g_strdup_printf("cell %u of page %u", i, pgno);
  sqlite3_stmt *st;
  if (n_fields >= h->inserts->len)
    g_ptr_array_set_size(h->inserts, n_fields + 1);
  st = g_ptr_array_index(h->inserts, n_fields);
  if (st == NULL) {
    g_autoptr(GString) cols = g_string_new(NULL), vals = g_string_new(NULL);
    g_autofree char *sql = NULL;
    for (guint k = 0; k < n_fields; k++) {
      g_string_append_printf(cols, ", c%u", k);
      g_string_append_printf(vals, ", ?%u", k + 5);
    }
    sql = g_strdup_printf("INSERT INTO lost_and_found(rootpgno, pgno, nfield, id%s) "
                          "VALUES (?1, ?2, ?3, ?4%s)", cols->str, vals->str);
    if (sqlite3_prepare_v2(h->out, sql, -1, &st, NULL) != SQLITE_OK)
      return;
    g_ptr_array_index(h->inserts, n_fields) = st;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  sqlite3_bind_int64(st, 1, h->root);
  sqlite3_bind_int64(st, 2, pgno);
  sqlite3_bind_int64(st, 3, n_fields);
  if (has_rowid)
    sqlite3_bind_int64(st, 4, rowid);
  if (sqlenvfs_btree_record_bind(rec, len, n_fields, st, 5, what, NULL) &&
      sqlite3_step(st) == SQLITE_DONE)
    h->n_in++;
}

/* The rows of table @t, whose CREATE statement could not be made in @out,
 * read from its b-tree by hand (walk_rows) into lost_and_found, as the
 * sqlite3 shell's .recover lays it out: rootpgno, pgno, nfield, id (the
 * rowid; NULL for a WITHOUT ROWID table), c0, c1, ... Two walks: the most
 * fields a record has (its columns), then the rows. Returns how many, or
 * -1 and *why. */
static gint64
lost_rows_by_hand(Job *j, sqlite3 *out, const Table *t, char **why)
{
  g_autoptr(GPtrArray) inserts = g_ptr_array_new_with_free_func(stmt_free);
  g_autoptr(GString) cols = g_string_new(NULL);
  g_autofree char *sql = NULL;
  SpanWalk w = { .fd = -1 };
  HandRows h = { .out = out, .inserts = inserts };
  guint8 hdr[100];

  if (!table_root(j, t, &h.root, why))
    return -1;
  if (!open_pages(j, &w, hdr)) {
    *why = g_strdup("the copy's pages cannot be read");
    return -1;
  }
  walk_rows(&w, h.root, count_fields, &h);
  for (guint k = 0; k < h.max_fields; k++)
    g_string_append_printf(cols, ", c%u", k);
  sql = g_strdup_printf("CREATE TABLE IF NOT EXISTS lost_and_found(rootpgno INTEGER, pgno "
                        "INTEGER, nfield INTEGER, id INTEGER%s)", cols->str);
  if (h.max_fields > 0 && sqlenvfs_db_exec(out, sql, j->newdb, NULL)) {
    /* (one made for another such table may lack columns) */
    for (guint k = 0; k < h.max_fields; k++) {
      g_autofree char *add = g_strdup_printf("ALTER TABLE lost_and_found ADD COLUMN c%u", k);
      sqlite3_exec(out, add, NULL, NULL, NULL);
    }
    walk_rows(&w, h.root, insert_lost, &h);
  }
  close(w.fd);
  g_free(w.buf);
  return h.n_in;
}


typedef struct {
  GPtrArray *layout;    /* record_layout, or NULL */
  GPtrArray *inserts;   /* sqlite3_stmt * by number of fields (NULL until made) */
  sqlite3_stmt *exists;
  gint64 n_rejected, n_broken, n_unfit;
  char *first_reject;
} OrphanTable;

static void
stmt_free(gpointer st)
{
  sqlite3_finalize(st);
}

static void
orphan_table_clear(OrphanTable *ot)
{
  if (ot->layout)
    g_ptr_array_unref(ot->layout);
  if (ot->inserts)
    g_ptr_array_unref(ot->inserts);
  sqlite3_finalize(ot->exists);
  g_free(ot->first_reject);
}

/* The INSERT for a record of @n_fields fields of @t: the rowid is ?1,
 * field k is ?(k + 2); columns the record lacks get their DEFAULT. */
static sqlite3_stmt *
orphan_insert(sqlite3 *out, const Table *t, OrphanTable *ot, guint n_fields)
{
  g_autofree char *q = quote_ident(t->name);
  g_autoptr(GString) cols = g_string_new(t->rowid);
  g_autoptr(GString) vals = g_string_new("?1");
  sqlite3_stmt *st = NULL;
  g_autofree char *sql = NULL;

  if (n_fields < ot->inserts->len && g_ptr_array_index(ot->inserts, n_fields) != NULL)
    return g_ptr_array_index(ot->inserts, n_fields);
  for (guint k = 0; k < n_fields; k++) {
    const char *col = g_ptr_array_index(ot->layout, k);
    if (col != NULL) {
      g_string_append_printf(cols, ", %s", col);
      g_string_append_printf(vals, ", ?%u", k + 2);
    }
  }
  sql = g_strdup_printf("INSERT INTO main.%s(%s) VALUES (%s)", q, cols->str, vals->str);
  if (sqlite3_prepare_v2(out, sql, -1, &st, NULL) != SQLITE_OK)
    return NULL;
  if (ot->inserts->len <= n_fields)
    g_ptr_array_set_size(ot->inserts, n_fields + 1);
  g_ptr_array_index(ot->inserts, n_fields) = st;
  return st;
}

/* Insert one orphan row into @out; TRUE when it went in. */
static gboolean
orphan_insert_row(Job *j, sqlite3 *out, SpanWalk *w, const Table *t, OrphanTable *ot,
                  const Orphan *o, GHashTable *freed, GHashTable *used, GByteArray *payload)
{
  SqlenvfsBtreePage page;
  SqlenvfsBtreeCell cell;
  sqlite3_stmt *st;
  guint n_fields;
  g_autofree char *what = NULL;

  if (!read_page(w, o->pgno, w->buf) ||
      !sqlenvfs_btree_page_parse(w->buf, w->page_size, w->usable, o->pgno, &page, NULL) ||
      o->cell >= page.n_cells || !sqlenvfs_btree_cell(&page, o->cell, &cell, NULL) ||
      !read_payload(w, &cell, freed, used, payload)) {
    ot->n_broken++;
    return FALSE;
  }
  n_fields = record_n_fields(payload->data, payload->len);
  if (n_fields == 0 || n_fields > ot->layout->len) {
    ot->n_unfit++;
    return FALSE;
  }
  st = orphan_insert(out, t, ot, n_fields);
  what = g_strdup_printf("rowid %" G_GINT64_FORMAT " on page %u", o->rowid, o->pgno);
  if (st == NULL) {
    ot->n_rejected++;
    if (ot->first_reject == NULL)
      ot->first_reject = g_strdup(sqlite3_errmsg(out));
    return FALSE;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  sqlite3_bind_int64(st, 1, o->rowid);
  if (!sqlenvfs_btree_record_bind(payload->data, payload->len, n_fields, st, 2, what, NULL)) {
    ot->n_unfit++;
    return FALSE;
  }
  if (sqlite3_step(st) != SQLITE_DONE) {
    ot->n_rejected++;
    if (ot->first_reject == NULL)
      ot->first_reject = g_strdup(sqlite3_errmsg(out));
    sqlite3_reset(st);
    return FALSE;
  }
  sqlite3_reset(st);
  return TRUE;
}

static void
recover_orphans(Job *j, sqlite3 *out)
{
  g_autoptr(GHashTable) named = g_hash_table_new(NULL, NULL);
  g_autoptr(GHashTable) damaged = g_hash_table_new(NULL, NULL);
  g_autoptr(GHashTable) cells = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  g_autofree guint8 *reached = NULL;
  g_autoptr(GHashTable) freed = g_hash_table_new(NULL, NULL);
  g_autoptr(GHashTable) used = g_hash_table_new(NULL, NULL);
  g_autoptr(GArray) spans = g_array_new(FALSE, FALSE, sizeof(Span));
  g_autoptr(GArray) orphans = g_array_new(FALSE, FALSE, sizeof(Orphan));
  g_autoptr(GArray) rowids = g_array_new(FALSE, FALSE, sizeof(gint64));
  g_autoptr(GPtrArray) cut = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
  g_autoptr(GByteArray) payload = g_byte_array_new();
  g_autoptr(sqlite3_stmt) roots = NULL;
  SpanWalk w = { .fd = -1, .named = named, .cells = cells, .seen = seen,
                 .through_cells = TRUE, .spans = spans };
  guint8 hdr[100];
  guint n_cut = 0, n_unparsed = 0, n_nospan = 0, n_ambiguous = 0, n_left;
  const char *why = NULL;
  g_autofree char *enc = NULL;

  named_places(j->damage, named, cells, damaged);
  if (g_hash_table_size(named) == 0 && g_hash_table_size(cells) == 0)
    return;
  if (!open_pages(j, &w, hdr)) {
    problem(j, "pages no table reaches were not looked for: the copy's pages cannot be read");
    return;
  }
  reached = w.reached = g_malloc0(w.n_pages / 8 + 1);
  /* Every b-tree, from the roots in the schema and the schema's own. */
  for (guint i = 0; i < j->tables->len; i++)
    g_ptr_array_add(cut, g_array_new(FALSE, FALSE, sizeof(Span)));
  if (sqlite3_prepare_v2(j->src, "SELECT 1, NULL UNION ALL SELECT rootpage, name FROM "
                                 "sqlite_schema WHERE rootpage > 0",
                         -1, &roots, NULL) != SQLITE_OK) {
    why = "the schema cannot be read";
  } else {
    int rc;
    while ((rc = sqlite3_step(roots)) == SQLITE_ROW) {
      gint64 root = sqlite3_column_int64(roots, 0);
      const char *name = (const char *)sqlite3_column_text(roots, 1);
      SqlenvfsBtreePage page;
      gboolean index;
      Span all = { 0 };
      if (root < 1 || root > w.n_pages)
        continue;
      index = read_page(&w, (guint32)root, w.buf) &&
              sqlenvfs_btree_page_parse(w.buf, w.page_size, w.usable, (guint32)root, &page,
                                        NULL) &&
              (page.type == SQLENVFS_BTREE_INDEX_LEAF ||
               page.type == SQLENVFS_BTREE_INDEX_INTERIOR);
      g_array_set_size(spans, 0);
      g_hash_table_remove_all(seen);
      walk_tree(&w, (guint32)root, all, 0, index);
      for (guint i = 0; !index && name != NULL && i < j->tables->len; i++) {
        Table *t = g_ptr_array_index(j->tables, i);
        if (t->is_virtual || t->without_rowid || t->rowid == NULL || strcmp(t->name, name) != 0)
          continue;
        for (guint k = 0; k < spans->len; k++) {
          Span *sp = &g_array_index(spans, Span, k);
          if (sp->cut) {
            g_array_append_val(g_ptr_array_index(cut, i), *sp);
            n_cut++;
          }
        }
      }
    }
    if (rc != SQLITE_DONE)
      why = "the schema cannot be read whole";
  }
  if (why == NULL && n_cut == 0)
    goto done;
  if (why == NULL && j->schema_partial)
    why = "the schema cannot be read whole";
  if (why == NULL)
    read_freelist(&w, hdr, freed, &why);
  if (why == NULL &&
      (!sqlenvfs_db_query_text(j->src, "PRAGMA encoding", &enc, j->copy, NULL) || enc == NULL ||
       strcmp(enc, "UTF-8") != 0))
    why = "the database's text encoding is not UTF-8";
  if (why != NULL) {
    problem(j, "rows below damaged pages were not looked for on pages no table reaches: %s, so "
            "such a page cannot be told from a freed one", why);
    goto done;
  }

  /* The orphan leaves, each given to the one table span holding its rowids. */
  for (guint32 pgno = 1; pgno <= w.n_pages; pgno++) {
    SqlenvfsBtreePage page;
    gboolean ok = TRUE;
    guint found = 0, table = 0;
    if (bit_has(reached, pgno) ||
        g_hash_table_contains(freed, GUINT_TO_POINTER(pgno)) ||
        g_hash_table_contains(damaged, GUINT_TO_POINTER(pgno)) ||
        cells_has(cells, pgno, G_MAXUINT32) || !read_page(&w, pgno, w.buf) ||
        !sqlenvfs_btree_page_parse(w.buf, w.page_size, w.usable, pgno, &page, NULL) ||
        page.type != SQLENVFS_BTREE_TABLE_LEAF || page.n_cells == 0)
      continue;
    g_array_set_size(rowids, 0);
    for (guint i = 0; ok && i < page.n_cells; i++) {
      SqlenvfsBtreeCell cell;
      ok = sqlenvfs_btree_cell(&page, i, &cell, NULL);
      if (ok)
        g_array_append_val(rowids, cell.rowid);
    }
    if (!ok) {
      n_unparsed++;
      continue;
    }
    for (guint i = 0; i < cut->len; i++) {
      GArray *sp = g_ptr_array_index(cut, i);
      for (guint k = 0; k < sp->len; k++) {
        gboolean all = TRUE;
        for (guint r = 0; all && r < rowids->len; r++)
          all = span_has(&g_array_index(sp, Span, k), g_array_index(rowids, gint64, r));
        if (all) {
          found++;
          table = i;
          break;
        }
      }
    }
    if (found == 0) {
      n_nospan++;
    } else if (found > 1) {
      n_ambiguous++;
    } else {
      for (guint r = 0; r < rowids->len; r++) {
        Orphan o = { .rowid = g_array_index(rowids, gint64, r), .table = table, .pgno = pgno,
                     .cell = r };
        g_array_append_val(orphans, o);
      }
    }
  }
  n_left = n_unparsed + n_nospan + n_ambiguous;
  if (n_left > 0)
    problem(j, "%u table leaf page%s no table reaches %s left: %u whose cells do not all parse, "
            "%u whose rowids lie in no span cut off below a damaged page, %u whose rowids fit "
            "such spans of more than one table",
            n_left, n_left == 1 ? "" : "s", n_left == 1 ? "was" : "were", n_unparsed, n_nospan,
            n_ambiguous);
  g_array_sort(orphans, cmp_orphan);

  /* Table by table: rows the salvage recovered win; a rowid on two orphan
   * pages is taken from neither. */
  for (guint a = 0; a < orphans->len;) {
    guint ti = g_array_index(orphans, Orphan, a).table, b = a;
    Table *t = g_ptr_array_index(j->tables, ti);
    g_autofree char *q = quote_ident(t->name);
    g_autofree char *sql = g_strdup_printf("SELECT 1 FROM main.%s WHERE %s = ?1", q, t->rowid);
    OrphanTable ot = { 0 };
    Ranges twice = { .out = g_string_new(NULL), .max_ranges = MAX_RANGES };
    g_autofree char *twice_s = NULL;
    g_autoptr(GArray) taken = g_array_new(FALSE, FALSE, sizeof(gint64));

    while (b < orphans->len && g_array_index(orphans, Orphan, b).table == ti)
      b++;
    ot.layout = record_layout(j, t);
    ot.inserts = g_ptr_array_new_with_free_func(stmt_free);
    if (ot.layout == NULL || sqlite3_prepare_v2(out, sql, -1, &ot.exists, NULL) != SQLITE_OK) {
      problem(j, "rows of %s on pages no table reaches were not recovered: its columns cannot "
              "be read", t->name);
      orphan_table_clear(&ot);
      g_free(ranges_finish(&twice));
      a = b;
      continue;
    }
    for (guint k = a; k < b; k++) {
      Orphan *o = &g_array_index(orphans, Orphan, k);
      gboolean dup = (k > a && o[-1].rowid == o->rowid) || (k + 1 < b && o[1].rowid == o->rowid);
      gboolean have;
      sqlite3_reset(ot.exists);
      sqlite3_bind_int64(ot.exists, 1, o->rowid);
      have = sqlite3_step(ot.exists) == SQLITE_ROW;
      sqlite3_reset(ot.exists);
      if (have)
        continue;
      if (dup) {
        if (k + 1 >= b || o[1].rowid != o->rowid)
          ranges_add(&twice, o->rowid);
        continue;
      }
      if (orphan_insert_row(j, out, &w, t, &ot, o, freed, used, payload))
        g_array_append_val(taken, o->rowid);
    }
    twice_s = ranges_finish(&twice);
    if (twice_s)
      problem(j, "rows of %s found on two pages no table reaches were taken from neither "
              "(they may be an old and a new version): rowids %s", t->name, twice_s);
    if (ot.n_broken + ot.n_unfit + ot.n_rejected > 0)
      problem(j, "%" G_GINT64_FORMAT " rows of %s on pages no table reaches were not recovered: "
              "%" G_GINT64_FORMAT " with a broken overflow chain, %" G_GINT64_FORMAT
              " whose record does not fit the table, %" G_GINT64_FORMAT
              " rejected by its constraints%s%s",
              ot.n_broken + ot.n_unfit + ot.n_rejected, t->name, ot.n_broken, ot.n_unfit,
              ot.n_rejected, ot.first_reject ? ": " : "", ot.first_reject ? ot.first_reject : "");
    if (taken->len > 0) {
      if (t->orphans == NULL)
        t->orphans = g_array_new(FALSE, FALSE, sizeof(gint64));
      g_array_append_vals(t->orphans, taken->data, taken->len);
      g_array_sort(t->orphans, cmp_gint64);
    }
    orphan_table_clear(&ot);
    a = b;
  }

done:
  close(w.fd);
  g_free(w.buf);
}

static void
read_damage(Job *j)
{
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc;
  /* The copy is read with writable_schema on, under which SQLite passes
   * over a schema entry that does not parse (integrity_check included):
   * read the schema as an application would, once, to tell. */
  {
    g_autoptr(sqlite3) plain = sqlenvfs_db_open(j->copy, SQLENVFS_OPEN_READONLY, NULL);
    g_autoptr(sqlite3_stmt) q = NULL;
    if (plain != NULL &&
        sqlite3_prepare_v2(plain, "SELECT count(*) FROM sqlite_schema", -1, &q, NULL) !=
          SQLITE_OK)
      g_ptr_array_add(j->report->damage,
                      g_strdup_printf("the schema is damaged: %s (a table whose CREATE "
                                      "statement does not parse cannot be read through SQL)",
                                      sqlite3_errmsg(plain)));
  }
  if (sqlite3_prepare_v2(j->src, "PRAGMA integrity_check(" G_STRINGIFY(MAX_PLACES) ")", -1, &st,
                         NULL) != SQLITE_OK) {
    g_ptr_array_add(j->report->damage, g_strdup(sqlite3_errmsg(j->src)));
    return;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *msg = (const char *)sqlite3_column_text(st, 0);
    g_auto(GStrv) lines = g_strsplit(msg ? msg : "", "\n", -1);
    if (msg == NULL || strcmp(msg, "ok") == 0)
      continue;
    for (char **l = lines; *l; l++) {
      if (!**l || g_str_has_prefix(*l, "*** in database"))
        continue;
      g_ptr_array_add(j->damage, g_strdup(*l));
      if (j->report->damage->len < MAX_DAMAGE)
        g_ptr_array_add(j->report->damage, g_strdup(*l));
    }
  }
  if (rc != SQLITE_DONE)
    g_ptr_array_add(j->report->damage,
                    g_strdup_printf("integrity_check stopped: %s", sqlite3_errmsg(j->src)));
}

/* The header of the private copy @path checked against the file's size,
 * and mended in the copy where one reading fits (the source is never
 * written). SQLite trusts the page size and, when its change counters
 * agree, the database size the header gives: a damaged page size makes it
 * read other pages as each table's, a database size too small leaves the
 * pages past it unread. With no WAL content beside the copy (whose frames
 * would carry a newer header), when the database size read at the header's
 * word fits exactly one page size against the file's size, that page size
 * is used; a database size smaller than the file is replaced by the file's.
 * What was found, and done, goes to the report's damage. */
static void
mend_header(Job *j, const char *path)
{
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  guint8 h[100];
  struct stat st, wst;
  guint32 claimed, n_pages, fits = 0, n_fits = 0;
  gboolean counted;
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof h ||
      pread(fd, h, sizeof h, 0) != sizeof h || memcmp(h, "SQLite format 3", 16) != 0 ||
      (stat(wal, &wst) == 0 && wst.st_size > 0)) {
    close(fd);
    return;
  }
  claimed = ((guint32)h[16] << 8 | h[17]) == 1 ? 65536 : ((guint32)h[16] << 8 | h[17]);
  n_pages = (guint32)h[28] << 24 | (guint32)h[29] << 16 | (guint32)h[30] << 8 | h[31];
  counted = n_pages > 0 && memcmp(h + 24, h + 92, 4) == 0;
  for (guint32 ps = 512; ps <= 65536; ps <<= 1)
    if (counted && (guint64)n_pages * ps == (guint64)st.st_size) {
      fits = ps;
      n_fits++;
    }
  if (n_fits == 1 && fits != claimed) {
    h[16] = fits == 65536 ? 0 : (guint8)(fits >> 8);
    h[17] = fits == 65536 ? 1 : (guint8)fits;
    if (pwrite(fd, h + 16, 2, 16) == 2)
      g_ptr_array_add(j->report->damage,
                      g_strdup_printf("the header's page size (%u) does not fit the file: %u "
                                      "pages, as the header counts them, of %u bytes make its "
                                      "%" G_GINT64_FORMAT " bytes; the copy was read with "
                                      "pages of %u bytes",
                                      claimed, n_pages, fits, (gint64)st.st_size, fits));
  } else if (counted && n_fits == 0 && claimed >= 512 && claimed <= 65536 &&
             (claimed & (claimed - 1)) == 0 && (guint64)n_pages * claimed < (guint64)st.st_size &&
             st.st_size % claimed == 0) {
    guint32 real = (guint32)(st.st_size / claimed);
    h[28] = (guint8)(real >> 24);
    h[29] = (guint8)(real >> 16);
    h[30] = (guint8)(real >> 8);
    h[31] = (guint8)real;
    if (pwrite(fd, h + 28, 4, 28) == 4)
      g_ptr_array_add(j->report->damage,
                      g_strdup_printf("the header counts %u pages, but the file holds %u: the "
                                      "copy was read to the end of the file", n_pages, real));
  } else if (counted && (guint64)n_pages * claimed > (guint64)st.st_size) {
    g_ptr_array_add(j->report->damage,
                    g_strdup_printf("the file is shorter than its header says (%u pages of %u "
                                    "bytes, the file holds %" G_GINT64_FORMAT " bytes): it was "
                                    "cut short, and what was past its end is lost",
                                    n_pages, claimed, (gint64)st.st_size));
  }
  close(fd);
}

/* Whether the rollback journal at @path begins with a journal header (its
 * magic), as a journal that still holds a transaction to roll back does. */
static gboolean
journal_has_header(const char *path)
{
  static const guint8 magic[8] = { 0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7 };
  guint8 h[8];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  gboolean has;
  if (fd < 0)
    return FALSE;
  has = pread(fd, h, sizeof h, 0) == sizeof h && memcmp(h, magic, sizeof h) == 0;
  close(fd);
  return has;
}

/* A -journal copied beside the copy at @path is hot when its writer stopped
 * inside a transaction: SQLite rolls it back on the next read, which a
 * read-only connection cannot do ("attempt to write a readonly database").
 * Roll it back in the copy, as the source's next writer would, before the
 * header is checked and the copy is read read-only; the report notes it.
 * The copy is this run's own: the source is never written. */
static void
play_back_journal(Job *j, const char *path)
{
  g_autofree char *journal = g_strconcat(path, "-journal", NULL);
  g_autoptr(sqlite3) db = NULL;

  if (!journal_has_header(journal))
    return;
  /* Not checkpointed on close: a -wal beside it stays as it was copied. */
  db = sqlenvfs_db_open(path, SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, NULL);
  if (db == NULL)
    return;
  /* The first read takes the lock under which SQLite plays a hot journal
   * back; the header alone is read, so a damaged schema does not matter. */
  sqlenvfs_db_exec(db, "PRAGMA schema_version", path, NULL);
  g_clear_pointer(&db, sqlite3_close_v2);
  if (!journal_has_header(journal))
    problem(j, "the source's -journal held a transaction its writer never committed: it was "
            "rolled back in the copy, as SQLite does when the database is next opened");
}

/* What SQLite will not read of the WAL at @wal (the private copy's), when
 * that loses a commit (sqlenvfs_wal_tail_damage), for the report; NULL when
 * nothing is lost. */
static char *
wal_tail_damage(const char *wal)
{
  SqlenvfsWalTailDamage t;

  if (!sqlenvfs_wal_tail_damage(wal, &t))
    return NULL;
  if (t.no_header)
    return g_strdup_printf("its -wal (%" G_GINT64_FORMAT " bytes) has no valid header: SQLite "
                           "reads none of its frames, and no transaction in them is recovered",
                           t.size);
  return g_strdup_printf("its -wal holds %u frame%s from frame %u on that fail their checksums, "
                         "and frame %u ends a committed transaction among them: the "
                         "transactions there are not in the recovered database (restore them "
                         "from a backup or the WAL archive)",
                         t.n_after, t.n_after == 1 ? "" : "s", t.first_bad, t.commit_at);
}

#define INTO_PRODUCTION_HOWTO                                                                  \
  "to put a recovered database into production, recover to a new file, then follow "          \
  "\"Putting a restored database into production\" in docs/OPERATIONS.md"

/* The source must be a file, and the output a new file or one --force may
 * replace (copy.h, sqlenvfs_copy_check_output); never the source itself. */
static gboolean
check_paths(const SqlenvfsRoot *root, const char *source, const char *output, gboolean force,
            struct stat *sst, GError **error)
{
  struct stat ost;
  if (stat(source, sst) != 0)
    return sqlenvfs_error_errno(error, errno, "source database", source);
  if (!S_ISREG(sst->st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s is not a regular file (name a database file)", source);
    return FALSE;
  }
  if (stat(output, &ost) == 0) {
    for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
      g_autofree char *p = g_strconcat(source, sqlenvfs_db_files[i], NULL);
      struct stat st;
      if (stat(p, &st) == 0 && st.st_dev == ost.st_dev && st.st_ino == ost.st_ino) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                    "the output %s is the source's own file %s (write the recovered "
                    "database to a new path)",
                    output, p);
        return FALSE;
      }
    }
  }
  /* --force replaces a plain file nobody uses, never a database in use:
   * its -wal holds commits that are not in the file yet, and a connection
   * open on it would write on into the replaced file. */
  return sqlenvfs_copy_check_output(root, output, force, "recover", INTO_PRODUCTION_HOWTO, error);
}

/* ------------------------------------------------------------------------ */
/* The private copy                                                         */

#define COPY_ATTEMPTS 5
/* A file modified this recently may be modified again within the same tick
 * of the filesystem's clock, without its mtime or ctime changing. */
#define SETTLE_US (50 * 1000)

/* The files that hold committed or rolled-back state (not all of
 * sqlenvfs_db_files: the -shm is an index SQLite rebuilds from the -wal). */
static const char *const source_suffix[] = { "", "-wal", "-journal" };
#define N_SOURCE_FILES G_N_ELEMENTS(source_suffix)

/* What identifies the content of one file of the source: absent, or its
 * identity (store.h: inode, size and times to the nanosecond). */
typedef struct {
  gboolean exists;
  SqlenvfsFileId id;
} FileId;

static gboolean
file_id(const char *path, FileId *id, GError **error)
{
  struct stat st;
  memset(id, 0, sizeof *id);
  if (stat(path, &st) != 0) {
    if (errno == ENOENT)
      return TRUE;
    return sqlenvfs_error_errno(error, errno, "read", path);
  }
  id->exists = TRUE;
  sqlenvfs_file_id_from_stat(&st, &id->id);
  return TRUE;
}

static gboolean
file_id_equal(const FileId *a, const FileId *b)
{
  return a->exists == b->exists && sqlenvfs_file_id_equal(&a->id, &b->id);
}

/* The identities of the source's files, taken once none of them was
 * modified within SETTLE_US: from then on any write to them changes an
 * identity. FALSE with *error on a failed stat. */
static gboolean
source_ids(const char *source, FileId ids[N_SOURCE_FILES], GError **error)
{
  for (int wait = 0;; wait++) {
    gint64 now, newest = 0;
    for (gsize i = 0; i < N_SOURCE_FILES; i++) {
      g_autofree char *p = g_strconcat(source, source_suffix[i], NULL);
      if (!file_id(p, &ids[i], error))
        return FALSE;
      if (ids[i].exists)
        newest = MAX(newest, MAX(ids[i].id.mtime_ns, ids[i].id.ctime_ns) / 1000);
    }
    now = g_get_real_time();
    if (newest < now - SETTLE_US || newest > now + G_USEC_PER_SEC || wait == 4)
      return TRUE;
    g_usleep(SETTLE_US);
  }
}

/* Copy the source's database file and its -wal and -journal (those that
 * exist) into @copy[-wal|-journal], all of one moment: a writer that
 * checkpoints while the database file is copied and then restarts the WAL
 * leaves a copy of an older file with a newer WAL, which SQLite reads as a
 * consistent database that lacks commits. So the source's files must be
 * the same (inode, size, mtime, ctime) after the copy as before it, else
 * the copy is made again; a source that never holds still for a whole copy
 * is refused (BUSY), with nothing kept. */
static gboolean
copy_source(const char *source, const char *copy, const SqlenvfsRecoverOptions *opts,
            GError **error)
{
  for (int attempt = 1; attempt <= COPY_ATTEMPTS; attempt++) {
    FileId before[N_SOURCE_FILES], after[N_SOURCE_FILES];
    guint64 done = 0, total = 0;
    gboolean same = TRUE;
    guint delay_ms = sqlenvfs_testhook_recover_delay_ms();

    if (!source_ids(source, before, error))
      return FALSE;
    if (!before[0].exists)
      return sqlenvfs_error_errno(error, ENOENT, "source database", source);
    for (gsize i = 0; i < N_SOURCE_FILES; i++)
      total += before[i].exists ? before[i].id.size : 0;
    for (gsize i = 0; i < N_SOURCE_FILES; i++) {
      g_autofree char *p = g_strconcat(source, source_suffix[i], NULL);
      g_autofree char *d = g_strconcat(copy, source_suffix[i], NULL);
      if (i > 0 && !before[i].exists)
        continue;
      if (!copy_file(p, d, opts->progress, opts->progress_user, &done, total, error)) {
        /* A -wal or -journal that went away meanwhile: the source moved. */
        if (i == 0 || g_file_test(p, G_FILE_TEST_EXISTS))
          return FALSE;
        g_clear_error(error);
        same = FALSE;
        break;
      }
      if (i == 0 && delay_ms > 0)
        g_usleep((gulong)delay_ms * 1000);
    }
    for (gsize i = 0; same && i < N_SOURCE_FILES; i++) {
      g_autofree char *p = g_strconcat(source, source_suffix[i], NULL);
      if (!file_id(p, &after[i], error))
        return FALSE;
      same = file_id_equal(&before[i], &after[i]);
    }
    if (same)
      return TRUE;
    remove_db_files(copy);
    g_info("recover: %s changed while it was copied (attempt %d of %d); copying it again",
           source, attempt, COPY_ATTEMPTS);
    g_usleep((gulong)attempt * 100 * 1000);
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
              "%s (or its -wal or -journal) changed while it was copied, %d times: a process "
              "is writing it, and a copy taken meanwhile can lack commits (nothing was "
              "written; stop the applications that write it, then run recover again)",
              source, COPY_ATTEMPTS);
  return FALSE;
}

/* Create the private work directory @path (mode 0700). One of this name is
 * a leftover of an earlier process with this very pid: it is removed first
 * (never through a symlink). */
static gboolean
make_work_dir(const char *path, GError **error)
{
  struct stat st;

  if (mkdir(path, 0700) == 0)
    return TRUE;
  if (errno != EEXIST)
    return sqlenvfs_error_errno(error, errno, "create work directory", path);
  if (!sqlenvfs_refuse_symlink(path, "work directory", error))
    return FALSE;
  if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "%s exists and is not a directory (remove it, or choose another "
                "--output directory)", path);
    return FALSE;
  }
  if (!sqlenvfs_rm_rf(path, error))
    return FALSE;
  if (mkdir(path, 0700) != 0)
    return sqlenvfs_error_errno(error, errno, "create work directory", path);
  return TRUE;
}

SqlenvfsRecoverReport *
sqlenvfs_recover_run(const char *source, const char *output, const SqlenvfsRecoverOptions *opts,
                     GError **error)
{
  g_autoptr(SqlenvfsRecoverReport) report = g_new0(SqlenvfsRecoverReport, 1);
  g_autofree char *outdir = NULL, *tmpl = NULL;
  g_autoptr(sqlite3) out = NULL;
  struct stat sst;
  Job j = { .opts = opts, .report = report };
  gboolean ok = FALSE;
  SqlenvfsRecoverOptions defaults = { 0 };

  if (opts == NULL)
    opts = j.opts = &defaults;
  report->source = g_canonicalize_filename(source, NULL);
  report->output = g_canonicalize_filename(output, NULL);
  report->damage = g_ptr_array_new_with_free_func(g_free);
  report->tables = g_ptr_array_new_with_free_func(table_free);
  report->problems = g_ptr_array_new_with_free_func(g_free);
  if (!check_paths(opts->root, report->source, report->output, opts->force, &sst, error))
    return NULL;

  outdir = g_path_get_dirname(report->output);
  /* The work directories of runs that were killed hold a copy of their
   * source: remove those whose process is gone (invariant 3). */
  if (sqlenvfs_tmp_leftovers(outdir, ".tmp-recover-", TRUE, TRUE, NULL, error) < 0)
    return NULL;
  /* The private copy, then a new database at most as large as the source:
   * never production's room (root.h). */
  if (opts->root != NULL) {
    guint64 need = 0;
    for (gsize i = 0; i < N_SOURCE_FILES; i++) {
      g_autofree char *p = g_strconcat(report->source, source_suffix[i], NULL);
      struct stat st;
      if (stat(p, &st) == 0)
        need += (guint64)st.st_size;
    }
    need += (guint64)sst.st_size;
    if (!sqlenvfs_root_check_room(opts->root, outdir, need,
                                  "the copy of the source and the recovered database", error))
      return NULL;
  }
  tmpl = g_strdup_printf("%s/.tmp-recover-%d", outdir, (int)getpid());
  if (!make_work_dir(tmpl, error))
    return NULL;
  j.work = g_steal_pointer(&tmpl);
  j.copy = g_build_filename(j.work, "source.db", NULL);
  j.newdb = g_build_filename(j.work, "new.db", NULL);
  j.mode = sqlenvfs_copy_mode(&sst);
  j.schema = g_ptr_array_new_with_free_func(schema_row_free);
  j.tables = g_ptr_array_new_with_free_func(tbl_free);
  j.damage = g_ptr_array_new_with_free_func(g_free);

  /* (1) the private copy: the database and the files that hold committed or
   * rolled-back state beside it, all of one settled moment. */
  if (!copy_source(report->source, j.copy, opts, error))
    goto out;
  {
    g_autofree char *wal = g_strconcat(j.copy, "-wal", NULL);
    struct stat cst;
    j.copy_size = (stat(j.copy, &cst) == 0 ? cst.st_size : 0) +
                  (stat(wal, &cst) == 0 ? cst.st_size : 0);
    report->wal_damage = wal_tail_damage(wal); /* before SQLite opens (and resets) it */
  }
  play_back_journal(&j, j.copy);
  mend_header(&j, j.copy);
  j.src = sqlenvfs_db_open(j.copy, 0, error);
  if (j.src == NULL)
    goto out;
  sqlite3_limit(j.src, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_set_authorizer(j.src, deny_attach, NULL);
  sqlenvfs_db_exec(j.src, "PRAGMA cell_size_check=ON; PRAGMA writable_schema=ON", j.copy, NULL);

  read_damage(&j);
  read_schema(&j);
  plan_tables(&j);
  count_expected(&j);

  /* (2) the methods */
  {
    g_autofree char *why = NULL;
    gboolean shell_ok = FALSE;
    if (opts->method != SQLENVFS_RECOVER_SALVAGE) {
      g_autofree char *shell = g_find_program_in_path(opts->shell ? opts->shell : "sqlite3");
      if (shell == NULL) {
        why = g_strdup_printf("the sqlite3 shell (%s) is not installed", opts->shell ? opts->shell
                                                                                      : "sqlite3");
      } else {
        shell_ok = run_shell(&j, shell, &why);
        if (!shell_ok)
          remove_db_files(j.newdb);
      }
      if (!shell_ok) {
        /* Why .recover may fail, only where the shell said it did. */
        g_autofree char *full = g_strconcat(why, j.shell_erred ? shell_hint(j.src) : "", NULL);
        if (opts->method == SQLENVFS_RECOVER_SHELL) {
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                      "recover %s with the sqlite3 shell: %s (use --method salvage)",
                      report->source, full);
          goto out;
        }
        g_free(why);
        why = g_steal_pointer(&full);
      }
    }
    if (shell_ok) {
      report->method = SQLENVFS_RECOVER_SHELL;
      report->method_note = g_strdup("the sqlite3 shell's .recover read every page of the copy");
    } else {
      if (!salvage(&j, error))
        goto out;
      report->method = SQLENVFS_RECOVER_SALVAGE;
      report->method_note =
        why ? g_strdup_printf("table-by-table salvage through SQL, because %s", why)
            : g_strdup("table-by-table salvage through SQL (asked for)");
    }
  }

  /* (3) check, tally, install */
  out = sqlenvfs_db_open(j.newdb, SQLENVFS_OPEN_MUST_EXIST, error);
  if (out == NULL)
    goto out;
  if (!sqlenvfs_db_check(out, FALSE, j.newdb, error)) {
    g_prefix_error(error, "recover %s: the new database failed its check: ", report->source);
    goto out;
  }
  tally(&j, out);
  find_suspects(&j, out);
  if (report->tables->len == 0 && report->n_lost_and_found == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "recover %s: nothing could be read (%s); restore from a backup instead "
                "(`sqlenvfs restore`)",
                report->source,
                report->problems->len ? (char *)g_ptr_array_index(report->problems, 0)
                                      : "no tables");
    goto out;
  }
  g_clear_pointer(&out, sqlite3_close_v2);
  if (!recover_set_mode(j.newdb, j.mode)) {
    sqlenvfs_error_errno(error, errno, "set the mode of", j.newdb);
    goto out;
  }
  if (!sqlenvfs_fsync_path(j.newdb, error))
    goto out;
  {
    /* Sidecars must not be applied to the new file, nor removed: one that
     * appeared since the output was checked means the old file is in use. */
    for (gsize i = 0; i < SQLENVFS_N_DB_SIDECARS; i++) {
      g_autofree char *p = g_strconcat(report->output, SQLENVFS_DB_SIDECARS[i], NULL);
      struct stat st;
      if (lstat(p, &st) == 0) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                    "%s appeared beside the output %s while recovering, so something "
                    "uses it (nothing was written; choose a new path)", p, report->output);
        goto out;
      }
    }
  }
  if (rename(j.newdb, report->output) != 0) {
    sqlenvfs_error_errno(error, errno, "rename into place", report->output);
    goto out;
  }
  ok = TRUE;

out:
  g_clear_pointer(&out, sqlite3_close_v2);
  g_clear_pointer(&j.src, sqlite3_close_v2);
  /* The work directory goes, and one fsync of the output's directory makes
   * its removal durable with the rename: a power cut after a recover
   * leaves neither the copy of the source nor the old output. A run that
   * failed already says why; the sync is then only tried. */
  sqlenvfs_rm_rf(j.work, NULL);
  if (!sqlenvfs_fsync_dir(outdir, ok ? error : NULL))
    ok = FALSE;
  g_free(j.work);
  g_free(j.copy);
  g_free(j.newdb);
  g_ptr_array_unref(j.schema);
  g_ptr_array_unref(j.tables);
  g_ptr_array_unref(j.damage);
  return ok ? g_steal_pointer(&report) : NULL;
}
