/*
 * cmd_init.c — `sqlenvfs init`: create production and development.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/demo.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

int
cmd_init(int argc, char **argv)
{
  g_autofree char *db = NULL, *schema = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(GPtrArray) moved = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *name = NULL, *prod = NULL, *dev = NULL;
  gboolean demo = FALSE, force = FALSE;
  gint64 demo_events = 0;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "schema", 0, 0, G_OPTION_ARG_FILENAME, &schema, "Schema to load (default: ROOT/schema.sql)",
      "FILE" },
    { "demo", 0, 0, G_OPTION_ARG_NONE, &demo,
      "Load the synthetic vessel data set (the tables of the repository's schema.sql, written to "
      "ROOT/schema.sql when there is none)", NULL },
    { "demo-events", 0, 0, G_OPTION_ARG_INT64, &demo_events,
      "With --demo: number of events (default 1200000, about 200 MB; tests use fewer)", "N" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Replace existing databases: the old db, -wal, -shm and -journal are moved aside to "
      "<name>.db.replaced-<time>, never deleted; refused while a process other than the root's "
      "archiver has them open", NULL },
    { NULL }
  };
  SqlenvfsInitOptions opts = { 0 };

  if (!cli_parse(&argc, &argv, "",
                 "Create the production database (WAL mode, marked production) from the schema,\n"
                 "and a development copy of it (marked development). Refuses to replace existing\n"
                 "databases unless --force is given.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("init", "unexpected argument '%s'", argv[1]);
  if (schema != NULL && *schema == '\0')
    return cli_usage("init", "--schema is empty (nothing was done; give the schema's file, or "
                     "leave the option out for ROOT/schema.sql)");
  /* 0, the core's "the default", is no number of events to ask for. */
  if (cli_given("demo-events") && (demo_events < 1 || !demo))
    return cli_usage("init", "--demo-events needs --demo and a positive number");

  root = cli_open_root(SQLENVFS_ROOT_MAY_CREATE);
  if (root == NULL)
    return CLI_FAILED;
  opts.db = db;
  opts.schema_path = schema;
  opts.demo = demo;
  opts.force = force;
  opts.demo_events = (guint64)demo_events;
  opts.moved_aside = moved;
  if (!sqlenvfs_env_init(root, &opts, demo ? cli_progress_cb : NULL, (gpointer) "loading demo data",
                         &error))
    return cli_fail("init", error);
  cli_progress_done();

  name = sqlenvfs_root_resolve_new_db(root, db, NULL);
  prod = sqlenvfs_root_prod_db(root, name);
  dev = sqlenvfs_root_dev_db(root, name);
  /* A name is taken as written: one ending in ".db" is not the one without. */
  if (db != NULL && g_str_has_suffix(db, ".db") && strlen(db) > 3) {
    g_autofree char *stem = g_strndup(db, strlen(db) - 3);
    g_autofree char *db_word = sqlenvfs_shell_word(db);
    g_autofree char *stem_word = sqlenvfs_shell_word(stem);
    fprintf(stderr, "sqlenvfs init: note: the database is named %s, as given (its file is "
            "%s); for the database %s, give --db %s\n", db_word, prod, stem_word, stem_word);
  }
  for (guint i = 0; i < moved->len; i++)
    printf("moved aside   %s\n", (const char *)moved->pdata[i]);
  printf("production    %s (WAL mode, marked production)\n", prod);
  printf("development   %s (marked development)\n", dev);
  if (demo) {
    guint64 n = demo_events ? (guint64)demo_events : SQLENVFS_DEMO_DEFAULT_EVENTS;
    printf("demo data     %u vessels, %" G_GUINT64_FORMAT " events\n", sqlenvfs_demo_n_vessels(n), n);
  }
  return CLI_OK;
}
