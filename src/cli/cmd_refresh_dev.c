/*
 * cmd_refresh_dev.c — `sqlenvfs refresh-dev`: replace development with a
 * copy of production.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/restore.h"

int
cmd_refresh_dev(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *db = NULL, *name = NULL, *prod = NULL, *dev = NULL, *time_arg = NULL;
  gboolean force = FALSE;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Copy the source even if it is not marked production", NULL },
    { "time", 't', 0, G_OPTION_ARG_STRING, &time_arg,
      "Copy production as it was at this time (point-in-time recovery; any form `restore` "
      "takes, or latest)", "T" },
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
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  name = sqlenvfs_root_resolve_db(root, db, TRUE, &error);
  if (name == NULL)
    return cli_fail("refresh-dev", error);
  prod = sqlenvfs_root_prod_db(root, name);
  dev = sqlenvfs_root_dev_db(root, name);
  if (time_arg) {
    g_autoptr(SqlenvfsRestorePlan) plan = NULL;
    g_autofree char *when = NULL, *state = NULL;
    SqlenvfsTime t;
    if (!sqlenvfs_time_parse(time_arg, &t, &error))
      return cli_fail("refresh-dev", error);
    plan = sqlenvfs_restore_plan(root, name, &t, &error);
    if (plan == NULL ||
        !sqlenvfs_restore_refresh_dev(root, plan, force, cli_progress_cb, (gpointer) "copying",
                                      &error))
      return cli_fail("refresh-dev", error);
    cli_progress_done();
    when = sqlenvfs_time_format_iso(plan->target_us);
    state = sqlenvfs_time_format_iso(plan->state_us);
    printf("development %s refreshed from %s as of %s (the state captured %s, from %s %s and "
           "%" G_GUINT64_FORMAT " archived transactions; marked development; production not "
           "read)\n", dev, prod, when, state, sqlenvfs_copy_kind_name(plan->base_kind),
           plan->base_name, plan->n_commits);
    return CLI_OK;
  }
  if (!sqlenvfs_env_refresh_dev(root, name, force, cli_progress_cb, (gpointer) "copying", &error))
    return cli_fail("refresh-dev", error);
  cli_progress_done();
  printf("development %s refreshed from %s (marked development; production unchanged)\n", dev,
         prod);
  return CLI_OK;
}
