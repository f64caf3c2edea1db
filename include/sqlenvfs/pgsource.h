/*
 * pgsource.h — reading tables out of a PostgreSQL database (libpq), for
 * migrate-pg. Compiled only when libpq is available (HAVE_LIBPQ).
 *
 * A source is one connection holding one REPEATABLE READ READ ONLY
 * transaction for its whole life: the catalog and every table are read from
 * the same snapshot, so tables that refer to each other arrive consistent.
 * The session's output settings are fixed at connect (pgtype.h lists them),
 * whatever the server's or the DSN's defaults.
 *
 * Rows are streamed through a server-side cursor, one FETCH batch at a
 * time: the client holds one batch, never a whole table, and a batch is
 * about 16 MiB of values at most (fewer rows when they are wide), and never
 * more than @batch_rows rows.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/pgtype.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsPgSource SqlenvfsPgSource;

typedef struct {
  char *name;       /* as in PostgreSQL's catalog                      */
  char *type_name;  /* format_type(), e.g. "timestamp(3) with time zone" */
  SqlenvfsPgType type; /* kind UNSUPPORTED: no mapping (checked by caller) */
  gboolean not_null;
  int pk_position;  /* 1-based position in the primary key, 0 if none  */
} SqlenvfsPgColumn;

typedef struct {
  char *schema;
  char *name;
  char *display;     /* schema.name for messages            */
  char *sql_name;    /* quoted "schema"."name" for queries  */
  char *sql_from;    /* what to read its rows FROM: ONLY for a plain table,
                      * whose inheritance children are tables of their own */
  GPtrArray *columns; /* SqlenvfsPgColumn *, in attnum order  */
  char *oid;         /* pg_class.oid, as text                */
  char relkind;      /* r table, p partitioned, v view, m materialized view, f foreign */
} SqlenvfsPgTable;

void sqlenvfs_pg_table_free(SqlenvfsPgTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsPgTable, sqlenvfs_pg_table_free)

/* Connect with @dsn (a libpq connection string or URI; a plain word is a
 * database name, as for psql), fix the session settings, and begin the
 * read-only transaction. NULL and *error on failure: INVALID for a DSN libpq
 * cannot parse, NOT_FOUND/IO for a server it cannot reach, PERMISSION for a
 * refused login; the message is one line and carries no password. */
SqlenvfsPgSource *sqlenvfs_pg_source_open(const char *dsn, GError **error);
void sqlenvfs_pg_source_free(SqlenvfsPgSource *src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsPgSource, sqlenvfs_pg_source_free)

/* "PostgreSQL database D at H:P" (no password), for messages. */
const char *sqlenvfs_pg_source_describe(const SqlenvfsPgSource *src);

/* The tables to read. @names NULL or empty: every table of the session's
 * current schema (normally public), partitions excepted when a partitioned
 * table they belong to is in that schema too (their rows come through it),
 * sorted by name. Otherwise each name, "table" looked
 * up along the search_path or "schema.table", exactly as spelled in the
 * catalog; views and materialized views may be named too. NULL and NOT_FOUND
 * naming the first that does not exist. Column types are resolved through
 * domains and arrays; one with no mapping has kind UNSUPPORTED.
 * The tables, and a view's tables, are locked (ACCESS SHARE, as pg_dump
 * does) before the snapshot they are read in is taken, so that no TRUNCATE
 * or ALTER TABLE of another session can empty or reshape them as this
 * transaction sees them; BUSY when they changed between the listing and
 * the lock, or another session holds a lock on one of them for longer than
 * the stall bound (run again). */
GPtrArray *sqlenvfs_pg_source_tables(SqlenvfsPgSource *src, const char *const *names,
                                     gboolean numeric_as_real, GError **error);

/* Exact number of rows of @t in the source's snapshot (one scan). */
gboolean sqlenvfs_pg_source_count(SqlenvfsPgSource *src, const SqlenvfsPgTable *t,
                                  guint64 *n_rows, GError **error);

/* Give up a FETCH when the server sends nothing for @seconds (0: wait for
 * as long as it takes); the connection is then not used again. */
void sqlenvfs_pg_source_set_stall(SqlenvfsPgSource *src, guint seconds);

typedef struct _SqlenvfsPgCursor SqlenvfsPgCursor;

/* Open a cursor over every row of @t, columns in @t->columns order, fetching
 * at most @batch_rows rows at a time. Only one cursor per source at a time. */
SqlenvfsPgCursor *sqlenvfs_pg_cursor_open(SqlenvfsPgSource *src, const SqlenvfsPgTable *t,
                                          guint batch_rows, GError **error);
/* Close the cursor (best effort) and free the current batch. */
void sqlenvfs_pg_cursor_free(SqlenvfsPgCursor *cur);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsPgCursor, sqlenvfs_pg_cursor_free)

/* Replace the current batch with the next one; *n_rows is 0 at the end.
 * FALSE and *error (the server's message, one line) on failure. */
gboolean sqlenvfs_pg_cursor_fetch(SqlenvfsPgCursor *cur, guint *n_rows, GError **error);

/* Value of column @col in row @row of the current batch: its text output
 * (NUL-terminated, length in *len) or NULL for SQL NULL. Valid until the
 * next fetch. */
const char *sqlenvfs_pg_cursor_value(const SqlenvfsPgCursor *cur, guint row, guint col,
                                     gsize *len);

G_END_DECLS
