/*
 * storecmd.c — what `backup` and `snapshot` share: take a copy of every
 * production database (or one) and say where it went.
 */
#include "storecmd.h"

#include <stdio.h>

#include "cli.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

void
storecmd_print_copy(const SqlenvfsStoredCopy *copy)
{
  g_autofree char *when = sqlenvfs_time_format_local(copy->time);
  printf("  %-22s %s ", copy->name, when);
  for (guint i = 0; i < copy->dbs->len; i++) {
    const SqlenvfsStoredDb *sdb = copy->dbs->pdata[i];
    g_autofree char *size = sqlenvfs_format_size(sdb->size);
    printf(" %s %s%s", sdb->db, size, i + 1 < copy->dbs->len ? "," : "");
  }
  printf("\n");
}

int
storecmd_create(SqlenvfsCopyKind kind, int argc, char **argv)
{
  const char *cmd = sqlenvfs_copy_kind_name(kind);
  g_autofree char *db = NULL;
  g_autofree char *summary = NULL;
  g_autoptr(SqlenvfsRoot) root = NULL;
  SqlenvfsOpArgs args = { 0 };
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  const SqlenvfsStoredCopy *copy;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "Copy only this database (default: all)", "NAME" },
    { NULL }
  };

  summary = g_strdup_printf(
    "Take a %s of every production database (or --db NAME) while it is in use:\n"
    "a consistent copy, integrity-checked and fsync'd, in %s/<time>/\n"
    "with a MANIFEST. Production must be in WAL mode: a database that is not is\n"
    "reported and not copied, the others are (exit status non-zero). An interrupted run leaves\n"
    "nothing that looks like a copy: Ctrl-C, SIGTERM or SIGHUP remove what it wrote, the\n"
    "next run the leftovers of one killed outright.",
    cmd, kind == SQLENVFS_KIND_SNAPSHOT ? "backups/prod/snapshots" : "backups/prod/daily");
  if (!cli_parse(&argc, &argv, "", summary, entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage(cmd, "unexpected argument '%s'", argv[1]);
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  args.db = db; /* borrowed: not cleared */
  args.progress = cli_progress_cb;
  args.progress_data = (gpointer) "copying";
  /* Its entry being written holds copies of production. */
  cli_remove_tmp_on_interrupt();
  if (!cli_run_op(root, kind == SQLENVFS_KIND_SNAPSHOT ? SQLENVFS_OP_SNAPSHOT : SQLENVFS_OP_BACKUP,
                  &args, &out, &error) &&
      out.copy == NULL)
    return cli_fail(cmd, error);
  copy = out.copy;
  printf("%s %s\n", cmd, copy->dir);
  for (guint i = 0; i < copy->dbs->len; i++) {
    const SqlenvfsStoredDb *sdb = copy->dbs->pdata[i];
    g_autofree char *size = sqlenvfs_format_size(sdb->size);
    g_autofree char *name = cli_pad(sdb->db, 16);
    printf("  %s %10s  crc32 0x%08x  integrity ok\n", name, size, sdb->crc32);
  }
  if (error != NULL) {
    /* The copies above are kept; the run still fails, naming the others. */
    fflush(stdout);
    return cli_fail(cmd, error);
  }
  return CLI_OK;
}
