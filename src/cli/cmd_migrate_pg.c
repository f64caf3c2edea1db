/*
 * cmd_migrate_pg.c — `sqlenvfs migrate-pg`: copy tables from PostgreSQL into
 * a production database (migrate.h, docs/MIGRATE.md).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/error.h"

#ifdef HAVE_LIBPQ
#include "sqlenvfs/migrate.h"
#endif

static const char summary[] =
  "Copy tables from a PostgreSQL database into production database NAME\n"
  "(data/prod/NAME.db), streaming rows in batches. A snapshot of the database is\n"
  "taken first, so the migration can be undone by a restore; all tables load in\n"
  "one transaction, so a failure leaves production exactly as it was.\n"
  "\n"
  "Columns are matched by name; SQLite columns PostgreSQL lacks get their\n"
  "defaults. Without --tables, every table of PostgreSQL's current schema\n"
  "(normally public) is copied. A table that already has rows is refused unless\n"
  "--mode says what to do: append adds to the rows, replace empties the table\n"
  "first. Types are mapped as docs/MIGRATE.md describes; a column whose type\n"
  "has no mapping stops the migration before anything is written.\n"
  "\n"
  "DSN is a libpq connection string ('host=H port=P dbname=D user=U') or a\n"
  "postgresql:// URI; PGPASSWORD and ~/.pgpass work as for psql.";

static char *dsn;
static char **tables_args;
static char *db_arg;
static char *mode_arg;
static gboolean create_tables;
static gboolean numeric_as_real;
static int batch_rows;
static int stall_seconds;

static const GOptionEntry entries[] = {
  { "dsn", 0, 0, G_OPTION_ARG_STRING, &dsn, "PostgreSQL connection string or URI (required)",
    "DSN" },
  { "tables", 't', 0, G_OPTION_ARG_STRING_ARRAY, &tables_args,
    "Tables to copy, comma-separated, TABLE or SCHEMA.TABLE (default: all of the current "
    "schema)",
    "A,B" },
  { "db", 0, 0, G_OPTION_ARG_STRING, &db_arg, "Production database to load (default: the "
    "root's default database)", "NAME" },
  { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_arg,
    "What to do with a table that has rows: append or replace (default: refuse)", "MODE" },
  { "create-tables", 0, 0, G_OPTION_ARG_NONE, &create_tables,
    "Create missing SQLite tables from PostgreSQL's definition", NULL },
  { "numeric-as-real", 0, 0, G_OPTION_ARG_NONE, &numeric_as_real,
    "Store numeric as REAL (default: exact decimal TEXT)", NULL },
  { "batch-rows", 0, 0, G_OPTION_ARG_INT, &batch_rows,
    "Most rows fetched per batch, of about 16 MiB (default: 10000)", "N" },
  { "stall-seconds", 0, 0, G_OPTION_ARG_INT, &stall_seconds,
    "Give up (rolled back) when PostgreSQL sends nothing for this long while rows are loaded, "
    "as production's writers wait meanwhile; 0 waits for as long as it takes (default: 300)",
    "S" },
  { NULL }
};

#ifdef HAVE_LIBPQ
static void
snapshot_progress(gpointer user, guint64 done, guint64 total)
{
  cli_progress("snapshot", done, total);
}

static void
rows_progress(gpointer user, const char *table, guint64 done, guint64 total)
{
  cli_progress_count(table, done, total, "rows");
}
#endif


/* @list split at the commas that are not inside a double-quoted name
 * ("a,b",c is two names). */
static GStrv
split_outside_quotes(const char *list)
{
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
  gboolean quoted = FALSE;
  const char *start = list;

  for (const char *p = list;; p++) {
    if (*p == '"')
      quoted = !quoted;
    if (*p == '\0' || (*p == ',' && !quoted)) {
      g_ptr_array_add(parts, g_strndup(start, (gsize)(p - start)));
      if (*p == '\0')
        break;
      start = p + 1;
    }
  }
  g_ptr_array_add(parts, NULL);
  return (GStrv)g_ptr_array_free(g_steal_pointer(&parts), FALSE);
}
int
cmd_migrate_pg(int argc, char **argv)
{
  const char *cmd = "migrate-pg";
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func(g_free);

  if (!cli_parse(&argc, &argv, "--dsn DSN [--tables A,B] [--db NAME] [--mode append|replace] "
                 "[--create-tables]", summary, entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage(cmd, "unexpected argument '%s'", argv[1]);
  if (dsn == NULL || *dsn == '\0')
    return cli_usage(cmd, "--dsn is required (e.g. --dsn 'host=localhost dbname=app')");
  if (mode_arg && strcmp(mode_arg, "append") != 0 && strcmp(mode_arg, "replace") != 0)
    return cli_usage(cmd, "--mode must be append or replace, not '%s'", mode_arg);
  /* The core's "the default" (0 rows, -1 seconds) is no value to give. */
  if (!cli_given("batch-rows"))
    batch_rows = 0;
  else if (batch_rows < 1 || batch_rows > 1000000)
    return cli_usage(cmd, "--batch-rows must be between 1 and 1000000, not %d", batch_rows);
  if (!cli_given("stall-seconds"))
    stall_seconds = -1;
  else if (stall_seconds < 0 || stall_seconds > 86400)
    return cli_usage(cmd, "--stall-seconds must be between 0 and 86400, not %d", stall_seconds);
  for (int i = 0; tables_args && tables_args[i]; i++) {
    g_auto(GStrv) parts = NULL;
    /* An empty --tables (`--tables "$TABLES"` with TABLES unset) is a
     * mistake, not a request for the default: copying every table, with
     * --mode replace, would replace every table of production. */
    if (*tables_args[i] == '\0')
      return cli_usage(cmd, "--tables is empty (nothing was done; give the tables to copy, or "
                       "leave --tables out to copy every table of the current schema)");
    parts = split_outside_quotes(tables_args[i]);
    for (int j = 0; parts[j]; j++) {
      char *name = g_strstrip(parts[j]);
      if (*name == '\0')
        return cli_usage(cmd, "empty table name in --tables '%s'", tables_args[i]);
      g_ptr_array_add(tables, g_strdup(name));
    }
  }
  g_ptr_array_add(tables, NULL);

#ifndef HAVE_LIBPQ
  (void)root;
  (void)create_tables;
  (void)numeric_as_real;
  fprintf(stderr, "sqlenvfs %s: this sqlenvfs was built without libpq, so it cannot read "
                  "PostgreSQL (install libpq-dev, then rebuild: meson setup --reconfigure "
                  "build && ninja -C build)\n",
          cmd);
  return CLI_FAILED;
#else
  {
    GError *error = NULL;
    g_autoptr(SqlenvfsMigrateReport) report = NULL;
    SqlenvfsMigrateOptions opts = {
      .dsn = dsn,
      .tables = (const char *const *)tables->pdata,
      .db = db_arg,
      .mode = mode_arg == NULL                  ? SQLENVFS_MIGRATE_NEW
              : strcmp(mode_arg, "append") == 0 ? SQLENVFS_MIGRATE_APPEND
                                                : SQLENVFS_MIGRATE_REPLACE,
      .create_tables = create_tables,
      .numeric_as_real = numeric_as_real,
      .batch_rows = (guint)batch_rows,
      .stall_seconds = stall_seconds,
    };
    SqlenvfsMigrateProgress progress = {
      .snapshot = snapshot_progress,
      .rows = rows_progress,
    };
    guint64 n_rows = 0;

    root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
    if (root == NULL)
      return CLI_FAILED;
    /* Counting rows for a progress total costs a scan: only on a terminal. */
    report = sqlenvfs_migrate_pg(root, &opts, isatty(STDERR_FILENO) ? &progress : NULL, &error);
    if (report == NULL)
      return cli_fail(cmd, error);
    cli_progress_done();

    printf("snapshot %s taken first: %s\n", report->snapshot, report->snapshot_path);
    for (guint i = 0; i < report->tables->len; i++) {
      const SqlenvfsMigratedTable *t = report->tables->pdata[i];
      printf("%s -> %s: %" G_GUINT64_FORMAT " rows in %.2f s", t->source, t->target, t->n_rows,
             t->usec / 1e6);
      if (t->created)
        printf(" (table created)");
      if (t->n_deleted)
        printf(" (replaced %" G_GUINT64_FORMAT " rows)", t->n_deleted);
      if (t->n_nan)
        printf(" (%" G_GUINT64_FORMAT " NaN stored as NULL)", t->n_nan);
      printf("\n");
      n_rows += t->n_rows;
    }
    printf("migrated %" G_GUINT64_FORMAT " rows in %u tables from %s into %s in %.2f s\n",
           n_rows, report->tables->len, report->source, report->db_path, report->usec / 1e6);
    return CLI_OK;
  }
#endif
}
