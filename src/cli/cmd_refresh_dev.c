/*
 * cmd_refresh_dev.c — `sqlenvfs refresh-dev`: replace development with a
 * copy of production.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/timefmt.h"

int
cmd_refresh_dev(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *db = NULL, *name = NULL, *prod = NULL, *dev = NULL, *time_arg = NULL;
  SqlenvfsOpArgs args = { 0 };
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  const SqlenvfsRefreshedDb *r;
  gboolean force = FALSE;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Copy the source even if it is not marked production", NULL },
    { "time", 't', 0, G_OPTION_ARG_STRING, &time_arg,
      "Copy production as it was at this time (point-in-time recovery; any form `restore` "
      "takes: a time, latest or earliest)", "T" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Replace the development database with a consistent copy of production,\n"
                 "marked development. Production is only read. A process that has the\n"
                 "development database open sees the old or the new database, never a\n"
                 "half-written one. Refuses a source not marked production unless --force.\n"
                 "With --time, production as it was at that time is rebuilt from a backup or\n"
                 "snapshot and the WAL archive (see `sqlenvfs restore`) and copied instead.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("refresh-dev", "unexpected argument '%s'", argv[1]);
  if (time_arg && !cli_time("refresh-dev", time_arg, &args.time))
    return CLI_USAGE;
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  name = sqlenvfs_root_resolve_db(root, db, TRUE, &error);
  if (name == NULL)
    return cli_fail("refresh-dev", error);
  prod = sqlenvfs_root_prod_db(root, name);
  dev = sqlenvfs_root_dev_db(root, name);
  args.db = name; /* borrowed: not cleared */
  args.has_time = time_arg != NULL;
  args.force = force;
  args.progress = cli_progress_cb;
  args.progress_data = (gpointer) "copying";
  /* Its temporaries (in data/dev, and in .cache with --time) are copies of
   * production. */
  cli_remove_tmp_on_interrupt();
  if (!cli_run_op(root, SQLENVFS_OP_REFRESH_DEV, &args, &out, &error))
    return cli_fail("refresh-dev", error);
  r = g_ptr_array_index(out.refreshed, 0);
  if (r->has_time) {
    g_autofree char *when = sqlenvfs_time_format_iso(r->target_us);
    g_autofree char *state = sqlenvfs_time_format_iso(r->state_us);
    printf("development %s refreshed from %s as of %s (the state captured %s, from %s %s and "
           "%" G_GUINT64_FORMAT " archived transaction%s; marked development; production not "
           "read)\n", dev, prod, when, state, sqlenvfs_copy_kind_name(r->base_kind),
           r->base_name, r->n_commits, r->n_commits == 1 ? "" : "s");
    cli_note_latest("refresh-dev", root, name, &args.time, r->state_us);
    return CLI_OK;
  }
  printf("development %s refreshed from %s (marked development; production unchanged)\n", dev,
         prod);
  return CLI_OK;
}
