/*
 * cmd_prune.c — `sqlenvfs prune`: apply the retention settings.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/store.h"

int
cmd_prune(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  SqlenvfsOpArgs args = { 0 };
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  gboolean dry_run = FALSE, ok;
  GError *error = NULL;
  guint n_removed = 0;
  GOptionEntry entries[] = {
    { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run, "List what would be removed; remove nothing",
      NULL },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Remove backups and snapshots that retention no longer asks for: older than\n"
                 "[retention] daily-keep-days / snapshot-keep-days (default 7) or beyond\n"
                 "daily-keep-count / snapshot-keep-count (0: no limit) in sqlenvfs.conf. The\n"
                 "newest valid copy of each database is never removed, nor a copy that a\n"
                 "retained point-in-time window starts from. Then remove the WAL archive\n"
                 "segments that no window retained by [retention] pitr-keep-days needs\n"
                 "(default 7; 0 keeps the whole archive).\n"
                 "With a [replica] in sqlenvfs.conf, nothing is removed while any of it is not\n"
                 "yet shipped, and what is removed goes from the replica too.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("prune", "unexpected argument '%s'", argv[1]);
  root = cli_open_root_needing("prune", SQLENVFS_ROOT_MUST_EXIST, "*");
  if (root == NULL)
    return CLI_FAILED;
  args.dry_run = dry_run;
  ok = cli_run_op(root, SQLENVFS_OP_PRUNE, &args, &out, &error);
  /* The copies are pruned before the archive: say what went even when the
   * archive's step failed. */
  for (guint i = 0; out.pruned && i < out.pruned->len; i++) {
    const SqlenvfsPruneItem *item = out.pruned->pdata[i];
    const char *verb = item->remove ? (dry_run ? "would remove" : "removed") : "keep";
    printf("%-12s %-9s %-22s %s\n", verb, sqlenvfs_copy_kind_name(item->kind), item->name,
           item->reason);
    n_removed += item->remove;
  }
  if (out.pruned)
    printf("%s %u of %u%s\n", dry_run ? "would remove" : "removed", n_removed, out.pruned->len,
           dry_run ? " (dry run: nothing was removed)" : "");
  if (!ok) {
    fflush(stdout);
    return cli_fail("prune", error);
  }
  for (guint i = 0; i < out.segments->len; i++)
    printf("%-12s %-9s %s\n", dry_run ? "would remove" : "removed", "wal-archive",
           (const char *)out.segments->pdata[i]);
  if (out.segments->len > 0)
    printf("%s %u archive segment(s) that no retained point-in-time window needs\n",
           dry_run ? "would remove" : "removed", out.segments->len);
  return CLI_OK;
}
