/*
 * migrate.h — copy tables from PostgreSQL into a production database
 * (`sqlenvfs migrate-pg`; the user's guide and the type mapping are in
 * docs/MIGRATE.md).
 *
 * A run has two phases:
 *
 *   plan   connect (pgsource.h), read the catalog, map every column type
 *          (pgtype.h), match columns by name against the SQLite tables, and
 *          apply the --mode rule. Any problem found here is reported before
 *          anything is written: production is not touched.
 *   load   take a snapshot of the database (store.h) so the migration can be
 *          undone by a restore, then in ONE write transaction
 *          (BEGIN IMMEDIATE ... COMMIT): create missing tables if asked,
 *          empty tables in replace mode, and stream each table's rows in
 *          batches (FETCH n from PostgreSQL, n inserts into SQLite).
 *
 * Invariants:
 *   (1) Production changes only at the final COMMIT. A failure at any point
 *       (a constraint violation halfway, a lost connection, a full disk, a
 *       kill) leaves every table exactly as before: the write transaction is
 *       rolled back, or never committed.
 *   (2) Memory does not grow with the data: one FETCH batch is held at a time
 *       (bounded in bytes as well as rows, pgsource.h), and SQLite spills its bounded page cache into the WAL as the
 *       transaction grows (uncommitted frames, invisible to every reader and
 *       to the archiver until the commit).
 *   (3) Columns are matched by name (ASCII case-insensitively, as SQLite
 *       does); SQLite columns PostgreSQL does not have get their defaults.
 *   (4) The connection to production disables checkpoint-on-close
 *       (docs/DESIGN.md).
 *   (5) A value is stored as the mapping gives it, or the run fails: where the
 *       declared type of an existing SQLite column has an affinity that could
 *       convert it (text into a NUMERIC column, a bigint into a REAL one, a
 *       float into a TEXT one), what SQLite stored is read back (RETURNING)
 *       and any change that does not keep the value exactly is an error.
 *   (6) Production keeps its room: before each batch, the WAL's growth by
 *       another batch (as much as the last, at least 16 MiB) must leave
 *       [cache] min-free-bytes free on its filesystem, or the load stops
 *       (NOSPACE) and rolls back.
 *   (7) Every row read is a row stored: inserts are INSERT OR ABORT (the
 *       table's ON CONFLICT clauses cannot drop or replace rows), an insert
 *       a trigger skips is an error, a NULL for an INTEGER PRIMARY KEY is
 *       refused (SQLite would make up a key), and before the COMMIT the
 *       tables whose foreign keys the load may break must have no more
 *       violations than before it.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_MIGRATE_NEW = 0, /* refuse a table that already has rows */
  SQLENVFS_MIGRATE_APPEND,  /* add to the rows there                */
  SQLENVFS_MIGRATE_REPLACE, /* empty the table first (same transaction) */
} SqlenvfsMigrateMode;

#define SQLENVFS_MIGRATE_DEFAULT_BATCH_ROWS 10000
#define SQLENVFS_MIGRATE_DEFAULT_STALL_S 300

typedef struct {
  const char *dsn;           /* libpq connection string or URI          */
  const char *const *tables; /* NULL: every table of the current schema */
  const char *db;            /* NULL: the root's default database       */
  SqlenvfsMigrateMode mode;
  gboolean create_tables;    /* create missing SQLite tables            */
  gboolean numeric_as_real;  /* numeric -> REAL instead of exact TEXT   */
  guint batch_rows;          /* 0: SQLENVFS_MIGRATE_DEFAULT_BATCH_ROWS  */
  gint stall_seconds;        /* a FETCH given up after this long with no
                              * byte from the server; 0 never, < 0 the
                              * default (SQLENVFS_MIGRATE_DEFAULT_STALL_S) */
} SqlenvfsMigrateOptions;

typedef struct {
  char *source;     /* schema.table in PostgreSQL             */
  char *target;     /* table in SQLite                        */
  gboolean created; /* made by --create-tables                */
  guint64 n_rows;   /* rows inserted                          */
  guint64 n_deleted; /* rows removed first (replace mode)     */
  guint64 n_nan;    /* NaN values stored as NULL              */
  gint64 usec;      /* time spent on this table               */
} SqlenvfsMigratedTable;

typedef struct {
  char *db_path;     /* the production database written       */
  char *snapshot;    /* name of the snapshot taken before it  */
  char *snapshot_path; /* the database file in that snapshot  */
  char *source;      /* the PostgreSQL database, for messages */
  GPtrArray *tables; /* SqlenvfsMigratedTable *, in load order */
  gint64 usec;       /* whole run                             */
} SqlenvfsMigrateReport;

void sqlenvfs_migrate_report_free(SqlenvfsMigrateReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsMigrateReport, sqlenvfs_migrate_report_free)

/* Progress callbacks, each may be NULL. With @rows set, every table's rows
 * are counted first (an extra scan on the server) so that a total is known. */
typedef struct {
  SqlenvfsProgressFunc snapshot; /* bytes copied into the snapshot */
  void (*rows)(gpointer user, const char *table, guint64 done, guint64 total);
  gpointer user;
} SqlenvfsMigrateProgress;

/* Migrate (see above). Returns the report, or NULL and *error, with
 * production exactly as before (invariant 1). Errors: NOT_FOUND (database,
 * PostgreSQL table, or SQLite table without create_tables), INVALID (DSN,
 * unmappable type, column missing in SQLite), REFUSED (rows present and
 * mode NEW), and the I/O, SQLite and server errors of the load; each names
 * the table, column or row concerned. */
SqlenvfsMigrateReport *sqlenvfs_migrate_pg(SqlenvfsRoot *root, const SqlenvfsMigrateOptions *opts,
                                           const SqlenvfsMigrateProgress *progress,
                                           GError **error);

G_END_DECLS
