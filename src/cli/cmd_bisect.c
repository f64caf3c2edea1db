/*
 * cmd_bisect.c — `sqlenvfs bisect`: an archived commit after which a query's
 * result changed (bisect.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/bisect.h"
#include "sqlenvfs/error.h"

/* Exit status when the result at T2 is the result at T1. */
#define BISECT_UNCHANGED 3

static void
show_progress(gpointer user, guint done, guint total)
{
  (void) user;
  cli_progress_count("bisecting", done, total, "states");
}

static void
print_rows(const char *label, const char *text)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  printf("  %s\n", label);
  for (guint i = 0; lines[i] != NULL; i++)
    if (lines[i][0] != '\0')
      printf("    %s\n", lines[i]);
}

int
cmd_bisect(int argc, char **argv)
{
  g_autofree char *from_arg = NULL, *to_arg = NULL, *db = NULL, *sql = NULL;
  g_autofree char *t1 = NULL, *t2 = NULL, *when = NULL, *before_t = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(SqlenvfsBisectResult) r = NULL;
  SqlenvfsTime from, to;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "sql", 0, 0, G_OPTION_ARG_STRING, &sql, "The query whose result to watch (one SELECT)",
      "QUERY" },
    { "from", 0, 0, G_OPTION_ARG_STRING, &from_arg,
      "Start here (default: the start of the recoverable window holding T2)", "T1" },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to_arg, "End here (default: latest)", "T2" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Find an archived commit after which QUERY returns another result than at T1\n"
                 "(all rows, all columns, in order; where QUERY fails, its error message is its\n"
                 "result): a binary search over the commits between T1 and T2, each state\n"
                 "read from the backups and the WAL archive without writing a file. Prints the\n"
                 "commit's sequence number and capture time, the result before and after it,\n"
                 "and how many states were examined (at most ceil(log2(commits))+2).\n"
                 "If the result changed more than once between T1 and T2, the commit found is one\n"
                 "of those changes, not necessarily the first; a change undone by T2 is not seen.\n"
                 "The clock QUERY reads ('now') stands at the time bisect started, in every state.\n"
                 "Times: " SQLENVFS_TIME_FORMS ".\n"
                 "Exit status: 0 a commit was found; 3 the result at T2 is the result at T1\n"
                 "(nothing to find); 1 error; 2 usage.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("bisect", "unexpected argument '%s'", argv[1]);
  if (sql == NULL)
    return cli_usage("bisect", "--sql is required (the query whose result to watch)");
  if (sql[strspn(sql, " \t\r\n;")] == '\0')
    return cli_usage("bisect", "--sql is empty (nothing but blanks or semicolons): give one "
                     "query (SELECT ...)");
  if (from_arg != NULL && !cli_time("bisect", from_arg, &from))
    return CLI_USAGE;
  if (!cli_time("bisect", to_arg != NULL ? to_arg : "latest", &to))
    return CLI_USAGE;
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  r = sqlenvfs_bisect_run(root, db, sql, from_arg != NULL ? &from : NULL, &to, show_progress, NULL,
                          &error);
  cli_progress_done();
  if (r == NULL)
    return cli_fail("bisect", error);
  cli_note_latest("bisect", root, r->db, &to, 0);
  t1 = sqlenvfs_time_format_iso(r->from_us);
  t2 = sqlenvfs_time_format_iso(r->to_us);
  if (!r->is_found) {
    /* Only the two ends were compared: a result that changed and changed
     * back in between is not seen, so "it did not change" is not said. */
    printf("%s: the result at %s (seq %" G_GUINT64_FORMAT ") is the result at %s (seq %"
           G_GUINT64_FORMAT ")\n",
           r->db, t2, r->to_seq, t1, r->from_seq);
    if (r->before != NULL)
      print_rows("result", r->before);
    printf("  examined %u state%s of %u commit%s\n", r->n_probes, r->n_probes == 1 ? "" : "s",
           r->n_commits, r->n_commits == 1 ? "" : "s");
    if (r->n_commits > 1)
      printf("  (only the two ends are compared: a change undone in between is not seen;\n"
             "  bisect a shorter range to look for one)\n");
    return BISECT_UNCHANGED;
  }
  when = sqlenvfs_time_format_iso(r->time_us);
  printf("%s: the result changes at seq %" G_GUINT64_FORMAT ", captured %s\n", r->db, r->seq,
         when);
  /* Committed while no archiver ran, archived when one came back: the
   * capture time is not when it was committed, and the times in between
   * are no state to bisect to. */
  before_t = sqlenvfs_time_format_iso(r->late_from_us > 0 ? r->late_from_us : r->time_us);
  if (r->late_from_us > 0) {
    printf("  (archived late, when capture resumed after an outage: it was committed after %s,\n"
           "  the last time capture was complete before it)\n", before_t);
  }
  print_rows("before", r->before);
  print_rows("after", r->after);
  if (g_strcmp0(r->before, r->after) == 0)
    printf("  (the two results differ in what the rows above do not show: a value's type,\n"
           "  the bytes of a long blob, or text after a NUL; restore both states to see them)\n");
  printf("  examined %u state%s of %u commit%s between %s (seq %" G_GUINT64_FORMAT ") and %s "
         "(seq %" G_GUINT64_FORMAT ")\n",
         r->n_probes, r->n_probes == 1 ? "" : "s", r->n_commits, r->n_commits == 1 ? "" : "s", t1,
         r->from_seq, t2, r->to_seq);
  if (r->n_commits > 1)
    printf("  (a binary search finds one change: if the result changed more than once,\n"
           "  others may exist: bisect again with --to before %s, or --from %s,\n"
           "  to look)\n",
           before_t, when);
  return CLI_OK;
}
