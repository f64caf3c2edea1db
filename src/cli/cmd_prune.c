/*
 * cmd_prune.c — `sqlenvfs prune`: apply the retention settings.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/store.h"

int
cmd_prune(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(GPtrArray) items = NULL;
  g_autoptr(GPtrArray) segments = g_ptr_array_new_with_free_func(g_free);
  gboolean dry_run = FALSE;
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
                 "segments that no window retained by [retention] pitr-keep-days needs.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("prune", "unexpected argument '%s'", argv[1]);
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  items = sqlenvfs_store_prune(root, dry_run, sqlenvfs_restore_keep_base, root, &error);
  if (items == NULL)
    return cli_fail("prune", error);
  for (guint i = 0; i < items->len; i++) {
    const SqlenvfsPruneItem *item = items->pdata[i];
    const char *verb = item->remove ? (dry_run ? "would remove" : "removed") : "keep";
    printf("%-12s %-9s %-22s %s\n", verb, sqlenvfs_copy_kind_name(item->kind), item->name,
           item->reason);
    n_removed += item->remove;
  }
  printf("%s %u of %u%s\n", dry_run ? "would remove" : "removed", n_removed, items->len,
         dry_run ? " (dry run: nothing was removed)" : "");
  if (!sqlenvfs_restore_prune_archives(root, dry_run, segments, &error))
    return cli_fail("prune", error);
  for (guint i = 0; i < segments->len; i++)
    printf("%-12s %-9s %s\n", dry_run ? "would remove" : "removed", "wal-archive",
           (const char *)segments->pdata[i]);
  if (segments->len > 0)
    printf("%s %u archive segment(s) that no retained point-in-time window needs\n",
           dry_run ? "would remove" : "removed", segments->len);
  return CLI_OK;
}
