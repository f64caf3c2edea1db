/*
 * cmd_restore.c — `sqlenvfs restore`: a production database as it was at a
 * time, written to a new file.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/util.h"

int
cmd_restore(int argc, char **argv)
{
  g_autofree char *time_arg = NULL, *db = NULL, *output = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL, here = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  g_autofree char *target = NULL, *state = NULL, *base_time = NULL, *bytes = NULL;
  g_autofree char *remote = NULL, *fetched = NULL;
  gboolean force = FALSE;
  SqlenvfsTime t;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "time", 't', 0, G_OPTION_ARG_STRING, &time_arg,
      "The time to restore to: 20261128T161400Z, 20261128T161400.250Z, 2026-11-28T16:14:00Z, "
      "2026-11-28T16:14:00.25+01:00, '2026-11-28 16:14:00 +01:00' (as list prints it), "
      "@1795882440, @1795882440.25, latest or earliest", "T" },
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Database name (default: the conf's default-db, else app)",
      "NAME" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Where to write the restored database",
      "PATH" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Replace PATH if it exists and is a plain file with one name nobody has open (never "
      "a database of the root, nor a file in its backups/, .sqlenvfs/ or .cache/)", NULL },
    { "remote", 0, 0, G_OPTION_ARG_STRING, &remote,
      "Restore from the replica at URL (s3://bucket/prefix) instead of the root: the "
      "AWS_* environment variables are enough (docs/REPLICA.md)", "URL" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Write the production database as it was at time T — the state after the last\n"
                 "transaction archived at or before T — to a new file, from the newest backup or\n"
                 "snapshot before T and the WAL archive. Production is not touched. A time outside\n"
                 "the recoverable window (see `sqlenvfs list`) is refused. PATH is never a database\n"
                 "of the root (data/prod/*.db, data/dev/*.db) or the -wal, -shm or -journal\n"
                 "beside one, a file with a -wal, -shm or -journal beside it (or a -wal with\n"
                 "content where PATH is not yet), or a file another process has open, even\n"
                 "with --force: to put a restored state into production, see\n"
                 "docs/OPERATIONS.md. The file is no more readable than production.\n"
                 "With --remote URL the base and archive come from a replica on object storage\n"
                 "(only the objects T needs are fetched, into a temporary directory beside PATH).",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("restore", "unexpected argument '%s'", argv[1]);
  if (time_arg == NULL)
    return cli_usage("restore", "--time is required (a time, latest or earliest)");
  if (output == NULL || *output == '\0')
    return cli_usage("restore", "--output is required (the file to write)");
  if (!cli_time("restore", time_arg, &t))
    return CLI_USAGE;
  /* From a replica, the output is checked as a local restore checks it,
   * against the root there is here (--root, $SQLENVFS_ROOT or the current
   * directory; its databases are never written), before anything is
   * fetched. */
  if (remote != NULL) {
    g_autoptr(GError) no_root = NULL;
    here = sqlenvfs_root_open(cli_root_arg(), SQLENVFS_ROOT_MUST_EXIST, &no_root);
    if (here != NULL)
      cli_settings_warning(here);
    if (!sqlenvfs_copy_check_output(here, output, force, "restore",
                                    SQLENVFS_RESTORE_OUTPUT_ADVICE, &error))
      return cli_fail("restore", error);
  }

  /* Its temporaries beside the output (a copy of production, or from a
   * replica what it fetched) are in a directory no later run of this
   * command may ever clean. */
  cli_remove_tmp_on_interrupt();
  if (remote != NULL) {
    g_autofree char *dir = g_path_get_dirname(output);
    g_autoptr(SqlenvfsRemote) r = sqlenvfs_remote_open(remote, cli_remote_conf(), dir, &error);
    cli_remote_keyify_logs(r);
    /* What it fetches and writes keeps the room of that root's production. */
    if (r != NULL)
      sqlenvfs_remote_set_room(r, here);
    if (r == NULL || !sqlenvfs_remote_restore(r, db, &t, output, force, &plan, &error)) {
      cli_remote_keyify_logs(NULL);
      return cli_fail("restore", error);
    }
    cli_remote_keyify_logs(NULL);
    fetched = cli_remote_describe(r);
  } else {
    root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
    if (root == NULL)
      return CLI_FAILED;
    plan = sqlenvfs_restore_plan(root, db, &t, &error);
    if (plan == NULL)
      return cli_fail("restore", error);
    if (!sqlenvfs_restore_to_file(root, plan, output, force, cli_progress_cb,
                                  (gpointer) "restoring", &error))
      return cli_fail("restore", error);
  }
  cli_progress_done();

  target = sqlenvfs_time_format_iso(plan->target_us);
  state = sqlenvfs_time_format_iso(plan->state_us);
  base_time = sqlenvfs_time_format_iso(plan->base_state_us);
  bytes = sqlenvfs_format_size(plan->archive_bytes);
  printf("restored %s as of %s to %s\n", plan->db, target, output);
  printf("  state    after the last transaction archived at or before it, captured %s\n", state);
  printf("  base     %s %s (state of %s) + %" G_GUINT64_FORMAT
         " archived transaction%s (%s)\n",
         sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name, base_time, plan->n_commits,
         plan->n_commits == 1 ? "" : "s", bytes);
  printf("  size     %" G_GUINT64_FORMAT " bytes (%u pages of %u)\n", plan->size, plan->n_pages,
         plan->page_size);
  if (fetched != NULL)
    printf("  fetched  %s\n", fetched);
  cli_note_latest("restore", root, plan->db, &t, plan->state_us);
  return CLI_OK;
}
