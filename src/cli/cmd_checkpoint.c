/*
 * cmd_checkpoint.c — `sqlenvfs checkpoint`: copy each production database's
 * WAL into its database file (what ctl/checkpoint does in a mount).
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/doctor.h"

int
cmd_checkpoint(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autofree char *db = NULL;
  SqlenvfsOpArgs args = { 0 };
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  GError *error = NULL;
  guint n_copied = 0;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Checkpoint only this database (default: all)",
      "NAME" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Copy the WAL of every production database (or --db NAME) into the database\n"
                 "file with a PASSIVE checkpoint: it never waits for, nor blocks, the\n"
                 "applications, and copies only what no reader still needs, so the archiver\n"
                 "of a mount or of `sqlenvfs archive` keeps every commit it has not archived\n"
                 "yet. With no archiver running, a writer may then restart the WAL, and\n"
                 "commits not archived by then are not recoverable: the next archiver start\n"
                 "records a gap. In a mount, `echo 1 > MNT/ctl/checkpoint` goes through its\n"
                 "archiver, which archives every commit first.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("checkpoint", "unexpected argument '%s'", argv[1]);
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  if (db != NULL) {
    args.db = sqlenvfs_root_resolve_db(root, db, TRUE, &error);
    if (args.db == NULL)
      return cli_fail("checkpoint", error);
  }
  if (!cli_run_op(root, SQLENVFS_OP_CHECKPOINT, &args, &out, &error)) {
    sqlenvfs_op_args_clear(&args);
    return cli_fail("checkpoint", error);
  }
  sqlenvfs_op_args_clear(&args);
  if (out.checkpointed->len == 0)
    printf("nothing to checkpoint: no production database in %s\n",
           sqlenvfs_root_path(root, SQLENVFS_DIR_PROD));
  for (guint i = 0; i < out.checkpointed->len; i++) {
    const SqlenvfsCheckpointedDb *c = out.checkpointed->pdata[i];
    g_autofree char *path = sqlenvfs_root_prod_db(root, c->db);
    printf("checkpointed %s: %d of %d WAL frames are in %s\n", c->db, c->n_copied,
           c->n_wal_frames, path);
    n_copied += c->n_copied > 0 ? (guint)c->n_copied : 0;
  }
  if (n_copied > 0) {
    /* Nothing else would say that what was copied may now be lost to the
     * archive. */
    g_autofree char *lock = sqlenvfs_root_lock_path(root, "archiver");
    if (sqlenvfs_doctor_lock_holder(lock, NULL) == 0)
      fprintf(stderr, "sqlenvfs checkpoint: note: no archiver is running: the next writer may "
              "restart the WAL, and the commits in it that were never archived are then not "
              "recoverable (start `sqlenvfs archive` or mount the root before writing)\n");
  }
  return CLI_OK;
}
