/*
 * cmd_verify.c — `sqlenvfs verify`: check every backup and snapshot; with
 * --drill, the restore drill (drill.h).
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/verifymemo.h"

/* verify --drill: one line per database, exit status 1 when one failed. */
static int
drill(SqlenvfsRoot *root, const char *db, SqlenvfsOpArgs *args)
{
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  GError *error = NULL;
  guint n_failed = 0;

  args->db = (char *)db;
  if (!cli_run_op(root, SQLENVFS_OP_VERIFY, args, &out, &error) && out.drills == NULL) {
    args->db = NULL;
    return cli_fail("verify --drill", error);
  }
  args->db = NULL;
  g_clear_error(&error);
  for (guint i = 0; i < out.drills->len; i++) {
    const SqlenvfsDrillResult *r = out.drills->pdata[i];
    g_autofree char *line = sqlenvfs_drill_result_summary(r);
    if (r->ok)
      printf("ok     %s\n", line);
    else
      printf("FAILED %s: %s\n", r->db, r->why);
    if (!r->ok)
      n_failed++;
  }
  fflush(stdout);
  if (n_failed > 0) {
    fprintf(stderr, "sqlenvfs verify --drill: %u of %u drills failed (see above: repair or "
            "replace what they name, then drill again)\n", n_failed, out.drills->len);
    return CLI_FAILED;
  }
  return CLI_OK;
}

int
cmd_verify(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  SqlenvfsOpArgs args = { 0 };
  g_auto(SqlenvfsOpOutcome) out = { 0 };
  const SqlenvfsVerifyReport *report;
  GError *error = NULL;
  guint n_bad, n_repeated = 0;
  g_autoptr(GPtrArray) lost = NULL;      /* --remote: objects lost (sqlenvfs_remote_lost) */
  g_autoptr(GPtrArray) lost_segs = NULL;
  g_autoptr(SqlenvfsRemote) remote = NULL;
  g_autofree char *url = NULL;

  g_autofree char *db = NULL;
  GOptionEntry entries[] = {
    { "full", 0, 0, G_OPTION_ARG_NONE, &args.full,
      "Read everything, also what was verified before and has not changed, and decompress "
      "every compressed archive block", NULL },
    { "drill", 0, 0, G_OPTION_ARG_NONE, &args.drill,
      "The restore drill: rebuild production's newest archived state from its base and the "
      "archive and compare it with production, page by page", NULL },
    { "db", 0, 0, G_OPTION_ARG_STRING, &db, "With --drill: only this database", "NAME" },
    { "remote", 0, 0, G_OPTION_ARG_STRING, &url,
      "Verify the replica at URL (s3://bucket/prefix): every copy and segment is fetched "
      "into a temporary directory and checked as above (docs/REPLICA.md)", "URL" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Check every backup and snapshot: each file's size and crc32 against its\n"
                 "MANIFEST, then PRAGMA integrity_check; and every WAL archive: each record's\n"
                 "and each segment's checksum and the chain of segments. Prints one line per\n"
                 "database copy and archive, or per bad file, and why; exits non-zero if any\n"
                 "is bad.\n"
                 "\n"
                 "Only what is new or changed since the last verify is read: a sealed archive\n"
                 "segment or a copy found good before, whose file has not changed since\n"
                 "(device, inode, size, mtime, ctime; remembered in ROOT/.sqlenvfs/verified),\n"
                 "is skipped, and the last line says what was read and what skipped. A change\n"
                 "that leaves all of these alone (a bit flipped by the disk) is found by\n"
                 "--full, which reads everything: run it now and then (weekly). A compressed\n"
                 "archive block is checked by its checksums and its zstd frame header; --full\n"
                 "also decompresses each one.\n"
                 "\n"
                 "--drill proves that a restore works, on the real data: for each production\n"
                 "database (or --db NAME) it pins production's current state, waits until the\n"
                 "archiver has archived that commit (an archiver must run: a mount or\n"
                 "`sqlenvfs archive`), rebuilds the same state from its backup or snapshot and\n"
                 "the WAL archive as a restore would, and compares the two page by page. It\n"
                 "prints \"equal\" with the pages compared, bytes read and time, or the first\n"
                 "differing page and where the rebuild took it from (the base file, or the\n"
                 "archive segment and record); a damaged base or record fails the drill,\n"
                 "naming it. Production is only read. The outcome is remembered in\n"
                 "ROOT/.sqlenvfs/drilled and shown by status, doctor and list. Run it daily\n"
                 "(scripts/sqlenvfs-drill@.timer).\n"
                 "\n"

                 "With --remote URL, a replica on object storage is checked the same way: its\n"
                 "FORMAT, every complete copy against its MANIFEST, and the archive (sealed\n"
                 "segments, and the unsealed one assembled from its parts); problems name the\n"
                 "object's s3:// key.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("verify", "unexpected argument '%s'", argv[1]);
  if (db != NULL && !args.drill)
    return cli_usage("verify", "--db is for --drill only");
  if (args.drill && args.full)
    return cli_usage("verify", "--drill and --full do not go together (run them one after the other)");
  if (url != NULL && args.drill)
    return cli_usage("verify", "--drill checks a root's production; it does not go with --remote");
  if (url != NULL) {
    SqlenvfsRoot *tmp;
    g_auto(CliKeyifyScope) keyed = NULL; /* logs name keys, not temporary paths */
    remote = sqlenvfs_remote_open(url, cli_remote_conf(), NULL, &error);
    cli_remote_keyify_logs(keyed = remote);
    tmp = remote ? sqlenvfs_remote_fetch_all(remote, TRUE, &error) : NULL;
    if (tmp == NULL)
      return cli_fail("verify", error);
    args.full = TRUE;
    if (!cli_run_op(tmp, SQLENVFS_OP_VERIFY, &args, &out, &error) &&
        !(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY) && out.report &&
          sqlenvfs_verify_report_n_bad(out.report) > 0))
      return cli_fail("verify", error);
    g_clear_error(&error);
    report = out.report;
    printf("replica %s: FORMAT good\n", url);
    lost = sqlenvfs_remote_lost(remote, &lost_segs);
    for (guint i = 0; i < report->checks->len; i++) {
      const SqlenvfsCheck *c = report->checks->pdata[i];
      g_autofree char *why = c->ok ? NULL : sqlenvfs_remote_keyify(remote, c->reason);
      g_autofree char *key = NULL;
      g_autofree char *seg = c->db && c->name ? g_strdup_printf("%s/%s", c->db, c->name) : NULL;
      /* A segment assembled with a part lost: its part is named below. */
      if (!c->ok && g_strcmp0(c->kind, "wal-archive") == 0 && seg != NULL &&
          g_ptr_array_find_with_equal_func(lost_segs, seg, g_str_equal, NULL)) {
        n_repeated++;
        continue;
      }
      /* The object checked, as a key of the replica. */
      if (g_strcmp0(c->kind, "wal-archive") == 0 && c->db && c->name && !c->ok)
        key = g_strdup_printf("%s/wal_archives/%s/%s", url, c->db, c->name);
      else if (g_strcmp0(c->kind, "wal-archive") == 0 && c->db)
        key = g_strdup_printf("%s/wal_archives/%s/", url, c->db);
      else if (c->name && c->db)
        key = g_strdup_printf("%s/%s/%s/%s.db", url,
                              g_strcmp0(c->kind, "backup") == 0 ? "daily" : "snapshots",
                              c->name, c->db);
      printf("%-4s %-9s %s%s%s\n", c->ok ? "ok" : "BAD", c->kind,
             key ? key : (c->name ? c->name : "-"), c->ok ? "" : ": ", c->ok ? "" : why);
    }
    for (guint i = 0; i < lost->len; i++)
      printf("%-4s %-9s %s\n", "BAD", "wal-archive", (char *)lost->pdata[i]);
    {
      g_autofree char *fetched = cli_remote_describe(remote);
      printf("checked every object it needs: %s\n", fetched);
    }
    n_bad = sqlenvfs_verify_report_n_bad(report) - n_repeated + lost->len;
    fflush(stdout);
    if (n_bad > 0) {
      fprintf(stderr, "sqlenvfs verify: %u of %u checks of %s failed (listed as BAD above)\n",
              n_bad, report->checks->len - n_repeated + lost->len, url);
      return CLI_FAILED;
    }
    printf("all %u good\n", report->checks->len);
    return CLI_OK;
  }
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  if (args.drill)
    return drill(root, db, &args);
  /* Bad copies fail the run with INTEGRITY; they are listed from its report. */
  if (!cli_run_op(root, SQLENVFS_OP_VERIFY, &args, &out, &error) &&
      !(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY) && out.report &&
        sqlenvfs_verify_report_n_bad(out.report) > 0))
    return cli_fail("verify", error);
  g_clear_error(&error);
  report = out.report;

  if (report->checks->len == 0) {
    printf("nothing to verify: no backups or snapshots in %s/backups/prod\n",
           sqlenvfs_root_dir(root));
    return CLI_OK;
  }
  for (guint i = 0; i < report->checks->len; i++) {
    const SqlenvfsCheck *c = report->checks->pdata[i];
    g_autofree char *when = c->verified_us ? sqlenvfs_time_format_local(c->verified_us) : NULL;
    printf("%-4s %-9s %-22s %s%s%s%s%s%s\n", c->ok ? "ok" : "BAD", c->kind,
           c->name ? c->name : "-", c->db ? c->db : "(entry)", c->ok ? "" : ": ",
           c->ok ? "" : c->reason, when ? " (verified " : "", when ? when : "",
           when ? ", unchanged since)" : "");
  }
  if (report->memo_note != NULL)
    printf("note: %s\n", report->memo_note);
  {
    g_autofree char *scope = sqlenvfs_verify_memo_describe(report);
    printf("%s\n", scope);
  }
  n_bad = sqlenvfs_verify_report_n_bad(report);
  fflush(stdout);
  if (n_bad > 0) {
    gboolean archive_bad = FALSE;
    for (guint i = 0; i < report->checks->len; i++) {
      const SqlenvfsCheck *c = g_ptr_array_index(report->checks, i);
      archive_bad = archive_bad || (!c->ok && g_strcmp0(c->kind, "wal-archive") == 0);
    }
    /* A bad segment still holds the records around its damage, which
     * restores use: removing it would lose them too. */
    fprintf(stderr,
            "sqlenvfs verify: %u of %u checks failed (listed as BAD above; %s)\n",
            n_bad, report->checks->len,
            archive_bad ? "a bad backup or snapshot: restore it from a good copy, or remove it; "
                          "a bad archive file: do what its line says, and never remove a "
                          "segment (the records around its damage still restore; `list` shows "
                          "what is not recoverable): put it back from a copy if you have one, "
                          "and take a snapshot"
                        : "restore from a good copy and remove the bad ones");
    return CLI_FAILED;
  }
  printf("all %u good\n", report->checks->len);
  return CLI_OK;
}
