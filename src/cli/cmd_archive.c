/*
 * cmd_archive.c — `sqlenvfs archive`: the WAL archiver in the foreground.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

static SqlenvfsArchiver *running;

static void
on_signal(int sig)
{
  (void)sig;
  if (running)
    sqlenvfs_archiver_stop(running); /* async-signal-safe */
}

static void
print_summary(SqlenvfsArchiver *a)
{
  g_autoptr(GPtrArray) st = sqlenvfs_archiver_status(a);
  for (guint i = 0; i < st->len; i++) {
    const SqlenvfsArchiverDbStatus *s = st->pdata[i];
    g_autofree char *bytes = sqlenvfs_format_size(s->bytes);
    printf("%s: %" G_GUINT64_FORMAT " commit%s, %s archived, %" G_GUINT64_FORMAT " gap%s, %"
           G_GUINT64_FORMAT " checkpoint%s",
           s->db, s->commits, s->commits == 1 ? "" : "s", bytes, s->gaps,
           s->gaps == 1 ? "" : "s", s->checkpoints, s->checkpoints == 1 ? "" : "s");
    if (s->n_latency > 0)
      printf("; capture latency p50 %.2f ms p99 %.2f ms max %.2f ms; durable p50 %.2f ms p99 "
             "%.2f ms max %.2f ms",
             s->capture_p50_us / 1000.0, s->capture_p99_us / 1000.0, s->capture_max_us / 1000.0,
             s->durable_p50_us / 1000.0, s->durable_p99_us / 1000.0, s->durable_max_us / 1000.0);
    if (s->message)
      printf(" (%s)", s->message);
    printf("\n");
  }
}

int
cmd_archive(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(SqlenvfsArchiver) a = NULL;
  gboolean verbose = FALSE;
  GError *error = NULL;
  struct sigaction sa;
  GOptionEntry entries[] = {
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Log every archived commit with its capture latency", NULL },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Archive every committed transaction of every production database continuously\n"
                 "into backups/prod/wal_archives/, until interrupted (SIGINT or SIGTERM). Only one\n"
                 "archiver runs per root; a mount of the root runs one itself.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("archive", "unexpected argument '%s'", argv[1]);
  if (verbose)
    g_log_set_debug_enabled(TRUE);

  sqlenvfs_set_large_pages(FALSE); /* runs for long: memory freed goes back */
  root = cli_open_root_needing("archive", SQLENVFS_ROOT_MUST_EXIST, "archive,cache");
  if (root == NULL)
    return CLI_FAILED;
  a = sqlenvfs_archiver_new(root, &error);
  if (a == NULL)
    return cli_fail("archive", error);

  running = a;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  fprintf(stderr, "sqlenvfs archive: archiving the production databases of %s (stop with Ctrl-C)\n",
          sqlenvfs_root_dir(root));

  if (!sqlenvfs_archiver_run(a, &error)) {
    running = NULL;
    return cli_fail("archive", error);
  }
  running = NULL;
  print_summary(a);
  return CLI_OK;
}
