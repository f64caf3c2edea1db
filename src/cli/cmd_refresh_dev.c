/*
 * cmd_refresh_dev.c — `sqlenvfs refresh-dev`: replace development with a
 * copy of production.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/env.h"

int
cmd_refresh_dev(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *db = NULL, *name = NULL, *prod = NULL, *dev = NULL;
  gboolean force = FALSE;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Copy the source even if it is not marked production", NULL },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Replace the development database with a consistent copy of production,\n"
                 "marked development. Production is only read. A process that has the\n"
                 "development database open sees the old or the new database, never a\n"
                 "half-written one. Refuses a source not marked production unless --force.",
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
  if (!sqlenvfs_env_refresh_dev(root, name, force, cli_progress_cb, (gpointer) "copying", &error))
    return cli_fail("refresh-dev", error);
  cli_progress_done();
  prod = sqlenvfs_root_prod_db(root, name);
  dev = sqlenvfs_root_dev_db(root, name);
  printf("development %s refreshed from %s (marked development; production unchanged)\n", dev,
         prod);
  return CLI_OK;
}
