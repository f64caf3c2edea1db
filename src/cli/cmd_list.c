/*
 * cmd_list.c — `sqlenvfs list`: backups, snapshots and recoverable windows;
 * on a terminal, also each database's history as a bar (timebar.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/retention.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timebar.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"
#include "storecmd.h"

static void
json_copies(SqlenvfsJson *j, const char *key, GPtrArray *copies)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < copies->len; i++) {
    const SqlenvfsStoredCopy *copy = copies->pdata[i];
    g_autofree char *when = sqlenvfs_time_format_iso(copy->time);
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "name", copy->name);
    sqlenvfs_json_member_string(j, "time", when);
    sqlenvfs_json_member_string(j, "dir", copy->dir);
    sqlenvfs_json_key(j, "databases");
    sqlenvfs_json_begin_array(j);
    for (guint d = 0; d < copy->dbs->len; d++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
      g_autofree char *crc = g_strdup_printf("0x%08x", sdb->crc32);
      g_autofree char *pinned = sqlenvfs_time_format_iso(sdb->pos.pinned_at);
      sqlenvfs_json_begin_object(j);
      sqlenvfs_json_member_string(j, "name", sdb->db);
      sqlenvfs_json_member_string(j, "path", sdb->path);
      sqlenvfs_json_member_uint(j, "size_bytes", sdb->size);
      sqlenvfs_json_member_string(j, "crc32", crc);
      sqlenvfs_json_member_uint(j, "page_size", sdb->pos.page_size);
      sqlenvfs_json_member_uint(j, "page_count", sdb->pos.n_pages);
      sqlenvfs_json_member_string(j, "journal_mode", sdb->journal_mode);
      sqlenvfs_json_member_string(j, "pinned_at", pinned);
      sqlenvfs_json_key(j, "wal_position");
      sqlenvfs_json_begin_object(j);
      sqlenvfs_json_member_uint(j, "salt1", sdb->pos.salt1);
      sqlenvfs_json_member_uint(j, "salt2", sdb->pos.salt2);
      sqlenvfs_json_member_uint(j, "frame", sdb->pos.frame);
      sqlenvfs_json_member_uint(j, "cksum1", sdb->pos.cksum1);
      sqlenvfs_json_member_uint(j, "cksum2", sdb->pos.cksum2);
      sqlenvfs_json_member_uint(j, "ckpt_seq", sdb->pos.ckpt_seq);
      sqlenvfs_json_end_object(j);
      sqlenvfs_json_end_object(j);
    }
    sqlenvfs_json_end_array(j);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
}

/* "drills": the last restore drill of each production database (drill.h);
 * "passed" and "at" are null when it was never drilled. */
static void
json_drills(SqlenvfsJson *j, SqlenvfsRoot *root)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_root_list_dbs(root);

  sqlenvfs_json_key(j, "drills");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < dbs->len; i++) {
    SqlenvfsDrillLast last;
    gboolean has_run = sqlenvfs_drill_last(root, dbs->pdata[i], &last);
    g_autofree char *summary = sqlenvfs_drill_last_describe(&last, has_run);
    g_autofree char *at = has_run ? sqlenvfs_time_format_iso(last.at_us) : NULL;
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "database", dbs->pdata[i]);
    if (has_run)
      sqlenvfs_json_member_bool(j, "passed", last.ok);
    else
      sqlenvfs_json_member_null(j, "passed");
    sqlenvfs_json_member_string(j, "at", at);
    sqlenvfs_json_member_string(j, "why", last.why);
    sqlenvfs_json_member_string(j, "summary", summary);
    sqlenvfs_json_end_object(j);
    sqlenvfs_drill_last_clear(&last);
  }
  sqlenvfs_json_end_array(j);
}

/* One line per production database: its last restore drill. */
static void
print_drills(SqlenvfsRoot *root)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_root_list_dbs(root);

  printf("restore drills: %u\n", dbs->len);
  for (guint i = 0; i < dbs->len; i++) {
    SqlenvfsDrillLast last;
    gboolean has_run = sqlenvfs_drill_last(root, dbs->pdata[i], &last);
    g_autofree char *summary = sqlenvfs_drill_last_describe(&last, has_run);
    g_autofree char *db = cli_pad(dbs->pdata[i], 16);
    printf("  %s %s\n", db, summary);
    sqlenvfs_drill_last_clear(&last);
  }
}

/* Each database's replication to the [replica] (none: not configured). */
static void
json_replica(SqlenvfsJson *j, GPtrArray *replica)
{
  sqlenvfs_json_key(j, "replica");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < replica->len; i++) {
    const SqlenvfsShipperDbStatus *st = replica->pdata[i];
    g_autofree char *last = st->last_shipped_us ? sqlenvfs_time_format_iso(st->last_shipped_us)
                                                : NULL;
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "database", st->db);
    sqlenvfs_json_member_string(j, "state", st->state);
    sqlenvfs_json_member_double(j, "lag_seconds", (double)st->lag_us / G_USEC_PER_SEC);
    sqlenvfs_json_member_uint(j, "backlog_bytes", st->backlog_bytes);
    sqlenvfs_json_member_string(j, "last_shipped", last);
    sqlenvfs_json_member_string(j, "error", st->error);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
}

static void
print_replica(GPtrArray *replica)
{
  if (replica->len == 0)
    return;
  printf("replica: %u\n", replica->len);
  for (guint i = 0; i < replica->len; i++) {
    const SqlenvfsShipperDbStatus *st = replica->pdata[i];
    g_autofree char *db = cli_pad(st->db, 16);
    g_autofree char *last = st->last_shipped_us ? sqlenvfs_time_format_local(st->last_shipped_us)
                                                : g_strdup("never");
    g_autofree char *backlog = sqlenvfs_format_size(st->backlog_bytes);
    printf("  %s %s, lag %.1f s, %s not yet shipped, last shipment %s%s%s\n", db, st->state,
           (double)st->lag_us / G_USEC_PER_SEC, backlog, last, st->error ? ": " : "",
           st->error ? st->error : "");
  }
}

/* A window whose base has no verdict for its file as it is now. */
#define BASE_UNCHECKED_NOTE "base not checked since it changed (run sqlenvfs verify)"

/* The members of a window, or of a part of the archive that cannot be
 * restored: database, from, to (UTC) and note. */
static void
json_span(SqlenvfsJson *j, const SqlenvfsListWindow *w)
{
  g_autofree char *from = sqlenvfs_time_format_iso(w->from_us);
  g_autofree char *to = sqlenvfs_time_format_iso(w->to_us);
  sqlenvfs_json_member_string(j, "database", w->db);
  sqlenvfs_json_member_string(j, "from", from);
  sqlenvfs_json_member_string(j, "to", to);
  sqlenvfs_json_member_string(j, "note", w->note);
}

/* @remote: the session a remote list read (its URL is the "root", and
 * paths are shown as its keys), or NULL. */
static void
print_json(SqlenvfsRoot *root, const SqlenvfsListReport *report, const SqlenvfsRemote *remote)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
  g_autofree char *text = NULL;

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "root", remote ? sqlenvfs_remote_url(remote)
                                                : sqlenvfs_root_dir(root));
  json_copies(j, "backups", report->backups);
  json_copies(j, "snapshots", report->snapshots);
  /* "damaged": the backups and snapshots whose MANIFEST cannot be read,
   * which "backups" and "snapshots" leave out. */
  sqlenvfs_json_key(j, "damaged");
  sqlenvfs_damaged_copies_json(j, report->damaged, remote ? sqlenvfs_remote_url(remote) : NULL);
  sqlenvfs_json_key(j, "windows");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < report->windows->len; i++) {
    const SqlenvfsListWindow *w = report->windows->pdata[i];
    sqlenvfs_json_begin_object(j);
    json_span(j, w);
    sqlenvfs_json_member_bool(j, "base_checked", !w->base_unchecked);
    if (w->base_unchecked)
      sqlenvfs_json_member_string(j, "base_note", BASE_UNCHECKED_NOTE);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_key(j, "unrecoverable");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < report->tails->len; i++) {
    sqlenvfs_json_begin_object(j);
    json_span(j, report->tails->pdata[i]);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
  if (remote == NULL) {
    g_autoptr(GPtrArray) replica = sqlenvfs_shipper_status(root);
    json_replica(j, replica);
    json_drills(j, root);
  }
  sqlenvfs_json_end_object(j);
  text = sqlenvfs_json_finish(j);
  if (remote != NULL) {
    char *keyed = sqlenvfs_remote_keyify(remote, text);
    g_free(text);
    text = keyed;
  }
  fputs(text, stdout);
}

/* The copies of @kind, good (@copies) and damaged (@report's, as DAMAGED
 * with their MANIFEST and why) in time order; @remote: the session a
 * remote list read (paths shown as its keys), or NULL. */
static void
print_copies(const char *title, const char *dir, SqlenvfsCopyKind kind, GPtrArray *copies,
             const SqlenvfsListReport *report, const SqlenvfsRemote *remote)
{
  g_autoptr(GPtrArray) bad = g_ptr_array_new();
  guint c = 0, b = 0;

  for (guint i = 0; i < report->damaged->len; i++)
    if (((const SqlenvfsDamagedCopy *)report->damaged->pdata[i])->kind == kind)
      g_ptr_array_add(bad, report->damaged->pdata[i]);
  guint n_unreadable = 0;
  for (guint i = 0; i < bad->len; i++)
    n_unreadable += ((const SqlenvfsDamagedCopy *)bad->pdata[i])->unreadable ? 1 : 0;
  printf("%s (%s): %u", title, dir, copies->len);
  if (bad->len > n_unreadable)
    printf(", and %u DAMAGED", bad->len - n_unreadable);
  if (n_unreadable > 0)
    printf(", and %u UNREADABLE", n_unreadable);
  printf("\n");
  while (c < copies->len || b < bad->len) {
    const SqlenvfsStoredCopy *copy = c < copies->len ? copies->pdata[c] : NULL;
    const SqlenvfsDamagedCopy *d = b < bad->len ? bad->pdata[b] : NULL;
    g_autofree char *manifest = NULL, *why = NULL;
    if (copy != NULL && (d == NULL || copy->time <= d->time)) {
      storecmd_print_copy(copy);
      c++;
      continue;
    }
    manifest = remote ? sqlenvfs_remote_keyify(remote, d->file) : g_strdup(d->file);
    why = remote ? sqlenvfs_remote_keyify(remote, d->reason) : g_strdup(d->reason);
    printf("  %-22s %s: %s: %s\n", d->name,
           d->unreadable ? "UNREADABLE" : d->foreign ? "OTHER HISTORY" : "DAMAGED", manifest,
           why);
    b++;
  }
}

/* After the copies, once, when some are damaged: what to do. */
static void
print_damaged_action(const SqlenvfsListReport *report, const char *remote_url)
{
  gboolean damaged = FALSE, unreadable = FALSE;
  for (guint i = 0; i < report->damaged->len; i++) {
    const SqlenvfsDamagedCopy *d = report->damaged->pdata[i];
    unreadable = unreadable || d->unreadable;
    damaged = damaged || !d->unreadable;
  }
  if (unreadable)
    printf("  (an UNREADABLE copy is another user's: this user's restores cannot use it; run "
           "sqlenvfs as the user that owns the root's files, or give them back with chown -R; it "
           "is not damaged for that)\n");
  if (!damaged)
    return;
  if (remote_url != NULL)
    printf("  (a DAMAGED copy is never used by a restore: run sqlenvfs verify --remote %s, and "
           "take a new backup or snapshot on the root that ships to it)\n", remote_url);
  else
    printf("  (a DAMAGED copy is never used by a restore: run sqlenvfs verify, take a new "
           "backup or snapshot to replace it, then inspect and remove its directory yourself: "
           "prune never removes one whose MANIFEST cannot be read)\n");
}

/* The terminal's width: TIOCGWINSZ, else $COLUMNS, else 80. */
static guint
terminal_width(void)
{
  struct winsize ws;
  const char *env = g_getenv("COLUMNS");
  guint64 n;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  if (env != NULL && g_ascii_string_to_unsigned(env, 10, 1, 10000, &n, NULL))
    return (guint)n;
  return 80;
}

static void
print_history(const SqlenvfsListReport *report)
{
  GArray *dbs = sqlenvfs_timebar_dbs_from_report(report);
  g_auto(GStrv) rows = sqlenvfs_timebar_render((const SqlenvfsTimebarDb *)(gpointer)dbs->data,
                                               dbs->len, g_get_real_time(), terminal_width());
  printf("\n");
  for (char **r = rows; *r; r++)
    printf("%s\n", *r);
  sqlenvfs_timebar_dbs_free(dbs);
}

/* A window's ends as the table shows them, to the second: the start
 * rounded up and the end down, so that both times shown can be restored
 * (restore --time takes them as printed); with fractions, in UTC, for a
 * window that holds no whole second. */
static void
format_window(const SqlenvfsListWindow *w, char **from, char **to)
{
  gint64 up = (w->from_us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC * G_USEC_PER_SEC;
  gint64 down = w->to_us / G_USEC_PER_SEC * G_USEC_PER_SEC;
  gboolean whole = up <= down;
  *from = whole ? sqlenvfs_time_format_local(up) : sqlenvfs_time_format_iso(w->from_us);
  *to = whole ? sqlenvfs_time_format_local(down) : sqlenvfs_time_format_iso(w->to_us);
}

/* @remote_url: the replica a remote list read (its bases are never
 * checked there: said once, with the command that checks them), or NULL.
 * A window's start is padded to the widest shown, windows and periods not
 * recoverable alike, so that the ends line up whichever form each takes. */
static void
print_windows(const SqlenvfsListReport *report, const char *remote_url)
{
  gboolean any_unchecked = FALSE;
  guint nw = report->windows->len, nt = report->tails->len;
  g_autoptr(GPtrArray) froms = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) tos = g_ptr_array_new_with_free_func(g_free);
  int width = 0;

  for (guint i = 0; i < nw + nt; i++) {
    char *from, *to;
    if (i < nw) {
      format_window(report->windows->pdata[i], &from, &to);
    } else {
      const SqlenvfsListWindow *t = report->tails->pdata[i - nw];
      from = sqlenvfs_time_format_local(t->from_us);
      to = sqlenvfs_time_format_local(t->to_us);
    }
    width = MAX(width, (int)g_utf8_strlen(from, -1));
    g_ptr_array_add(froms, from);
    g_ptr_array_add(tos, to);
  }
  printf("recoverable windows: %u", nw);
  if (nt > 0)
    printf(", and %u period%s that %s not", nt, nt == 1 ? "" : "s", nt == 1 ? "is" : "are");
  printf("\n");
  for (guint i = 0; i < nw; i++) {
    const SqlenvfsListWindow *w = report->windows->pdata[i];
    g_autofree char *db = cli_pad(w->db, 16);
    g_autofree char *from = cli_pad(froms->pdata[i], width);
    printf("  %s %s .. %s%s%s\n", db, from, (char *)tos->pdata[i], w->note ? "  " : "",
           w->note ? w->note : "");
    any_unchecked = any_unchecked || w->base_unchecked;
    if (w->base_unchecked && remote_url == NULL)
      printf("  %-16s %s\n", "", BASE_UNCHECKED_NOTE);
  }
  if (any_unchecked && remote_url != NULL)
    printf("  (list --remote checks no base: run sqlenvfs verify --remote %s)\n", remote_url);
  for (guint i = 0; i < nt; i++) {
    const SqlenvfsListWindow *t = report->tails->pdata[i];
    g_autofree char *db = cli_pad(t->db, 16);
    g_autofree char *from = cli_pad(froms->pdata[nw + i], width);
    printf("  %s %s .. %s  NOT RECOVERABLE: %s (restore --time latest is refused; take a "
           "snapshot)\n", db, from, (char *)tos->pdata[nw + i], t->note);
  }
}

int
cmd_list(int argc, char **argv)
{
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(SqlenvfsListReport) report = NULL;
  g_autoptr(SqlenvfsRemote) remote = NULL;
  g_autofree char *url = NULL;
  gboolean as_json = FALSE;
  GError *error = NULL;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print JSON (times in UTC ISO 8601)", NULL },
    { "remote", 0, 0, G_OPTION_ARG_STRING, &url,
      "List the replica at URL (s3://bucket/prefix) instead of the root (its MANIFESTs and "
      "archive are fetched; docs/REPLICA.md)", "URL" },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "List backups and snapshots (name, time in local time with its offset, size\n"
                 "of each database) and each database's recoverable point-in-time windows;\n"
                 "NOT RECOVERABLE marks a part of the archive past the last window (after a\n"
                 "gap, no usable backup or snapshot holds a later state: `restore --time\n"
                 "latest` is refused until a snapshot is taken). DAMAGED marks a backup or\n"
                 "snapshot whose MANIFEST cannot be read, or one with a database file that\n"
                 "a check found bad, or that is missing (never used by a restore; `verify`\n"
                 "reports it BAD);\n"
                 "UNREADABLE one this user may not read. Then the restore drills: when each\n"
                 "database was last drilled, and how it went.\n"
                 "On a terminal, also draw each database's history as a bar as wide as the\n"
                 "terminal: bases (B backup, S snapshot), recoverable windows (=), gaps (x),\n"
                 "outages (~), with the times at its ends and a legend. Piped, the plain\n"
                 "list only. With a [replica] in sqlenvfs.conf, each database's replication:\n"
                 "state (off, starting, shipping, stalled, lease lost, error), lag, bytes\n"
                 "not yet shipped, last shipment and last error. With --remote URL, the same\n"
                 "list for a replica on object storage.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("list", "unexpected argument '%s'", argv[1]);
  if (url != NULL) {
    SqlenvfsRoot *tmp;
    g_auto(CliKeyifyScope) keyed = NULL; /* logs name keys, not temporary paths */
    remote = sqlenvfs_remote_open(url, cli_remote_conf(), NULL, &error);
    cli_remote_keyify_logs(keyed = remote);
    tmp = remote ? sqlenvfs_remote_fetch_all(remote, FALSE, &error) : NULL;
    if (tmp == NULL)
      return cli_fail("list", error);
    report = sqlenvfs_store_list_report(tmp, &error);
    if (report == NULL || !sqlenvfs_retention_list_windows(tmp, report, &error)) {
      /* Named by the replica's keys, not the temporary directory's paths. */
      char *keyed_msg = sqlenvfs_remote_keyify(remote, error->message);
      g_free(error->message);
      error->message = keyed_msg;
      return cli_fail("list", error);
    }
    if (as_json) {
      print_json(tmp, report, remote);
      return CLI_OK;
    }
    printf("replica %s\n", url);
    print_copies("backups", "daily/", SQLENVFS_KIND_BACKUP, report->backups, report, remote);
    print_copies("snapshots", "snapshots/", SQLENVFS_KIND_SNAPSHOT, report->snapshots, report,
                 remote);
    print_damaged_action(report, url);
    print_windows(report, url);
    return CLI_OK;
  }
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  report = sqlenvfs_store_list_report(root, &error);
  if (report == NULL || !sqlenvfs_retention_list_windows(root, report, &error))
    return cli_fail("list", error);
  sqlenvfs_list_report_mark_known_bad(report, root);

  if (as_json) {
    print_json(root, report, NULL);
    return CLI_OK;
  }
  print_copies("backups", sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP), SQLENVFS_KIND_BACKUP,
               report->backups, report, NULL);
  print_copies("snapshots", sqlenvfs_store_dir(root, SQLENVFS_KIND_SNAPSHOT),
               SQLENVFS_KIND_SNAPSHOT, report->snapshots, report, NULL);
  print_damaged_action(report, NULL);
  print_windows(report, NULL);
  {
    g_autoptr(GPtrArray) replica = sqlenvfs_shipper_status(root);
    print_replica(replica);
  }
  print_drills(root);
  if (isatty(STDOUT_FILENO))
    print_history(report);
  return CLI_OK;
}
