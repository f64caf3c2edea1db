/*
 * cmd_diff.c — `sqlenvfs diff`: the SQL that turns a production database as
 * it was at one time into the same database at a later time (diff.h).
 */
#include <errno.h>
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/diff.h"
#include "sqlenvfs/error.h"

/* "s" after a count other than one. */
static const char *
plural_s(guint64 n)
{
  return n == 1 ? "" : "s";
}

static void
write_out(gpointer user, const char *text, gsize len)
{
  (void) user;
  fwrite(text, 1, len, stdout);
}

static void
write_note(gpointer user, const char *message)
{
  (void) user;
  fprintf(stderr, "diff: %s\n", message);
}

int
cmd_diff(int argc, char **argv)
{
  g_autofree char *from_arg = NULL, *to_arg = NULL, *db = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;
  gboolean summary = FALSE, stats = FALSE;
  SqlenvfsDiffStats st = { 0 };
  SqlenvfsTime from, to;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "from", 0, 0, G_OPTION_ARG_STRING, &from_arg, "The older time (" SQLENVFS_TIME_FORMS ")",
      "T1" },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to_arg, "The newer time (default: latest)", "T2" },
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "summary", 0, 0, G_OPTION_ARG_NONE, &summary,
      "Per table: changes, inserts, deletes, unchanged rows (as sqldiff --summary)", NULL },
    { "stats", 0, 0, G_OPTION_ARG_NONE, &stats,
      "Say on stderr how much was read (commits, changed pages, rows compared)", NULL },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Print the SQL statements that turn the production database as it was at T1\n"
                 "into the database as it was at T2, as SQLite's sqldiff prints them (INSERT,\n"
                 "UPDATE, DELETE by primary key; DROP/CREATE TABLE, ALTER TABLE ADD COLUMN and\n"
                 "indexes for schema changes), in one transaction with foreign keys off, as\n"
                 "SQLite's .dump writes (apply it with sqlite3 -bail COPY.db < FILE: whole or\n"
                 "not at all), or with --summary one line per table. Both states\n"
                 "come from the backups and the WAL archive (see `sqlenvfs list`); only the rows\n"
                 "on pages that commits between T1 and T2 wrote (or past the end of the smaller\n"
                 "state) are compared. Tables that were rebuilt in between are compared in\n"
                 "full, which is said on stderr. Production is not read and nothing is written.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("diff", "unexpected argument '%s'", argv[1]);
  if (from_arg == NULL)
    return cli_usage("diff", "--from is required (the older time)");
  if (!cli_time("diff", from_arg, &from))
    return CLI_USAGE;
  if (!cli_time("diff", to_arg != NULL ? to_arg : "latest", &to))
    return CLI_USAGE;
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  if (!sqlenvfs_diff_run(root, db, &from, &to, summary, write_out, write_note, NULL, &st, &error)) {
    fflush(stdout);
    return cli_fail("diff", error);
  }
  if (fflush(stdout) != 0) {
    sqlenvfs_error_errno(&error, errno, "writing the diff to", "standard output");
    return cli_fail("diff", error);
  }
  cli_note_latest("diff", root, db, &to, 0);
  if (stats)
    fprintf(stderr,
            "diff: seq %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT
            " commit%s, %u changed page%s, %u table%s by changed rows (%" G_GUINT64_FORMAT
            " row%s), %u in full, %" G_GUINT64_FORMAT " page%s walked, %" G_GUINT64_FORMAT
            " read%s by SQLite\n",
            st.from_seq, st.to_seq, st.n_commits, plural_s(st.n_commits), st.n_changed_pages,
            plural_s(st.n_changed_pages), st.n_tables_keyed, plural_s(st.n_tables_keyed), st.n_keys,
            plural_s(st.n_keys), st.n_tables_full, st.n_page_reads, plural_s(st.n_page_reads), st.n_sql_reads,
            plural_s(st.n_sql_reads));
  return CLI_OK;
}
