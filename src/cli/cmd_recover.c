/*
 * cmd_recover.c — `sqlenvfs recover DB --output PATH`: salvage a damaged
 * database into a new file and report what was lost (recover.h).
 */
#include "cli.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/recover.h"
#include "sqlenvfs/util.h"

static void
progress(gpointer user, guint64 done, guint64 total)
{
  cli_progress("copying", done, total);
}

static void
print_text(const SqlenvfsRecoverReport *r)
{
  printf("recovered %s\n     into %s\n", r->source, r->output);
  printf("method: %s: %s\n", sqlenvfs_recover_method_name(r->method), r->method_note);
  if (r->damage->len) {
    printf("damage found in the source (integrity_check):\n");
    for (guint i = 0; i < r->damage->len; i++)
      printf("  %s\n", (char *)g_ptr_array_index(r->damage, i));
    printf("rows that still read from damaged pages are copied as they read: their values "
           "may be damaged too (SQLite cannot tell overwritten bytes from data); check those "
           "named below against a backup, or for production `sqlenvfs restore --time "
           "latest`\n");
  } else if (r->wal_damage == NULL) {
    printf("the source passed integrity_check: nothing looked damaged\n");
  } else {
    printf("the source passed integrity_check\n");
  }
  if (r->wal_damage != NULL)
    printf("damage found in the source's -wal: %s\n", r->wal_damage);
  printf("tables:\n");
  for (guint i = 0; i < r->tables->len; i++) {
    const SqlenvfsRecoveredTable *t = g_ptr_array_index(r->tables, i);
    printf("  %-24s %" G_GINT64_FORMAT " row%s recovered", t->name, t->n_recovered,
           t->n_recovered == 1 ? "" : "s");
    if (t->n_expected >= 0) {
      printf(" of %" G_GINT64_FORMAT " (counted from the %s)", t->n_expected, t->expected_from);
      if (t->n_expected > t->n_recovered)
        printf(", %" G_GINT64_FORMAT " lost", t->n_expected - t->n_recovered);
    } else {
      printf(" (how many it held cannot be known)");
    }
    printf("\n");
    if (t->missing_rowids)
      printf("  %-24s missing rowids: %s\n", "", t->missing_rowids);
    if (t->suspect_rowids)
      printf("  %-24s read from under damaged pages, check them: rowids %s\n", "",
             t->suspect_rowids);
    if (t->orphan_rowids)
      printf("  %-24s recovered from pages no table reaches, check them: rowids %s\n", "",
             t->orphan_rowids);
    if (t->note)
      printf("  %-24s %s\n", "", t->note);
  }
  if (r->n_lost_and_found > 0)
    printf("lost_and_found: %" G_GINT64_FORMAT " rows whose table could not be determined or "
           "created (columns rootpgno, pgno, nfield, id, c0, c1, ...): look through them and copy "
           "back what belongs to a table\n",
           r->n_lost_and_found);
  for (guint i = 0; i < r->problems->len; i++)
    printf("note: %s\n", (char *)g_ptr_array_index(r->problems, i));
  printf("total: %" G_GINT64_FORMAT " row%s recovered", r->n_rows_recovered,
         r->n_rows_recovered == 1 ? "" : "s");
  if (r->n_rows_expected_lost > 0)
    printf(", at least %" G_GINT64_FORMAT " row%s lost", r->n_rows_expected_lost,
           r->n_rows_expected_lost == 1 ? "" : "s");
  printf("; the new database passed integrity_check. The source was not modified.\n");
}

static void
print_json(const SqlenvfsRecoverReport *r)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
  g_autofree char *text = NULL;

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "source", r->source);
  sqlenvfs_json_member_string(j, "output", r->output);
  sqlenvfs_json_member_string(j, "method", sqlenvfs_recover_method_name(r->method));
  sqlenvfs_json_member_string(j, "method_note", r->method_note);
  sqlenvfs_json_member_string(j, "wal_damage", r->wal_damage);
  sqlenvfs_json_key(j, "damage");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < r->damage->len; i++)
    sqlenvfs_json_string(j, g_ptr_array_index(r->damage, i));
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_key(j, "tables");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < r->tables->len; i++) {
    const SqlenvfsRecoveredTable *t = g_ptr_array_index(r->tables, i);
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "name", t->name);
    sqlenvfs_json_member_int(j, "rows_recovered", t->n_recovered);
    if (t->n_expected >= 0) {
      sqlenvfs_json_member_int(j, "rows_expected", t->n_expected);
      sqlenvfs_json_member_int(j, "rows_lost", MAX(t->n_expected - t->n_recovered, 0));
    } else {
      sqlenvfs_json_member_null(j, "rows_expected");
      sqlenvfs_json_member_null(j, "rows_lost");
    }
    sqlenvfs_json_member_string(j, "expected_from", t->expected_from);
    sqlenvfs_json_member_string(j, "missing_rowids", t->missing_rowids);
    sqlenvfs_json_member_string(j, "suspect_rowids", t->suspect_rowids);
    sqlenvfs_json_member_string(j, "orphan_rowids", t->orphan_rowids);
    sqlenvfs_json_member_string(j, "note", t->note);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_member_int(j, "lost_and_found_rows", r->n_lost_and_found);
  sqlenvfs_json_key(j, "problems");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < r->problems->len; i++)
    sqlenvfs_json_string(j, g_ptr_array_index(r->problems, i));
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_member_int(j, "rows_recovered", r->n_rows_recovered);
  sqlenvfs_json_member_int(j, "rows_known_lost", r->n_rows_expected_lost);
  sqlenvfs_json_end_object(j);
  text = sqlenvfs_json_finish(j);
  fputs(text, stdout);
}

int
cmd_recover(int argc, char **argv)
{
  g_autofree char *output = NULL, *method = NULL, *shell = NULL;
  gboolean force = FALSE, json = FALSE;
  GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
      "Where to write the recovered database (must not exist, unless --force)", "PATH" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Replace an existing output file with one name nobody uses (never a database of the "
      "root, a file in its backups/, .sqlenvfs/ or .cache/, nor one with a -wal, -shm or "
      "-journal beside it)", NULL },
    { "method", 0, 0, G_OPTION_ARG_STRING, &method,
      "auto (default: the sqlite3 shell's .recover if it works, else salvage), shell, or "
      "salvage",
      "METHOD" },
    { "sqlite3", 0, 0, G_OPTION_ARG_FILENAME, &shell,
      "The sqlite3 shell to run for .recover (default: sqlite3 from $PATH)", "PROGRAM" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the report as JSON", NULL },
    { NULL }
  };
  SqlenvfsRecoverOptions opts = { 0 };
  g_autoptr(SqlenvfsRecoverReport) report = NULL;
  g_autofree char *source = NULL;
  g_autoptr(SqlenvfsRoot) check_root = NULL;
  g_autoptr(GError) no_root = NULL;
  GError *error = NULL;

  if (!cli_parse(&argc, &argv, "DB --output PATH",
                 "Salvage what can be read from a damaged database into a new file, and report "
                 "what was lost. DB is a database file, or the name of a production database "
                 "of the root. The source is never modified: everything reads a private copy "
                 "made next to the output.",
                 entries))
    return CLI_USAGE;
  if (argc < 2)
    return cli_usage("recover", "name the database to recover (a file, or a database name)");
  if (argc > 2)
    return cli_usage("recover", "unexpected argument '%s'", argv[2]);
  /* A script's unset variable: no file, and no name. */
  if (*argv[1] == '\0')
    return cli_usage("recover", "DB is empty (nothing was done; give the path of a database "
                     "file, or the name of a production database of the root)");
  if (shell != NULL && *shell == '\0')
    return cli_usage("recover", "--sqlite3 is empty (nothing was done; give the sqlite3 shell "
                     "to run, or leave the option out for sqlite3 from $PATH)");
  if (output == NULL || *output == '\0')
    return cli_usage("recover", "--output PATH is required (where to write the new database)");
  if (method != NULL && !sqlenvfs_recover_method_parse(method, &opts.method))
    return cli_usage("recover", "--method %s is not one of auto, shell, salvage", method);

  if (g_file_test(argv[1], G_FILE_TEST_EXISTS) || strchr(argv[1], '/') != NULL) {
    source = g_strdup(argv[1]);
  } else {
    /* Not a file here: the name of a production database of the root. */
    g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(cli_root_arg(), SQLENVFS_ROOT_MUST_EXIST,
                                                      &error);
    g_autofree char *name = NULL;
    if (root == NULL) {
      g_autoptr(GError) why = g_steal_pointer(&error);
      g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "%s: No such file, and no root to look up a database of that name in: %s "
                  "(give the path of the database file, or --root DIR)",
                  argv[1], why->message);
      return cli_fail("recover", error);
    }
    cli_settings_warning(root);
    name = sqlenvfs_root_resolve_db(root, argv[1], TRUE, &error);
    if (name == NULL && g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
      g_autofree char *dbs = sqlenvfs_root_describe_dbs(root, NULL);
      g_clear_error(&error);
      g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "%s: no such file here, and no production database of that name in %s (%s%s; "
                  "give the path of the database file, or one of those names)",
                  argv[1], sqlenvfs_root_dir(root), dbs ? "it has " : "it has none",
                  dbs ? dbs : "");
    }
    if (name == NULL)
      return cli_fail("recover", error);
    source = sqlenvfs_root_prod_db(root, name);
  }
  /* Never into a database of the root, even with --force: applications
   * open it, and the recovered file carries the source's marker. */
  check_root = sqlenvfs_root_open(cli_root_arg(), SQLENVFS_ROOT_MUST_EXIST, &no_root);
  opts.root = check_root;
  opts.force = force;
  opts.shell = shell;
  opts.progress = progress;
  report = sqlenvfs_recover_run(source, output, &opts, &error);
  cli_progress_done();
  if (report == NULL)
    return cli_fail("recover", error);
  if (json)
    print_json(report);
  else
    print_text(report);
  /* The output is written, so the exit status is 0; rows known to be lost
   * must still not pass unnoticed in a script that reads only stderr. */
  if (report->n_rows_expected_lost > 0)
    fprintf(stderr,
            "sqlenvfs recover: warning: at least %" G_GINT64_FORMAT " row%s of %s could not be "
            "recovered into %s (%" G_GINT64_FORMAT " were): the report names the tables; a "
            "backup, or for production `sqlenvfs restore --time latest`, may hold them\n",
            report->n_rows_expected_lost, report->n_rows_expected_lost == 1 ? "" : "s",
            report->source, report->output, report->n_rows_recovered);
  return CLI_OK;
}
