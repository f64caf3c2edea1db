/*
 * retention.h — what `list`, `verify` and `prune` ask of the point-in-time
 * history (timeline.h) of every database of a root: the windows to list,
 * the archives to verify, and what retention ([settings] pitr-keep-days)
 * keeps of the store and of the WAL archive (docs/OPERATIONS.md).
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"

G_BEGIN_DECLS

/* For `list`: add the windows of every database that has a production file
 * or an archive to @report (sqlenvfs_list_report_add_window). FALSE and
 * *error when an archive cannot be read. */
gboolean sqlenvfs_retention_list_windows(SqlenvfsRoot *root, SqlenvfsListReport *report,
                                         GError **error);

/* For `verify`: check the WAL archive of every database completely
 * (sqlenvfs_archive_verify_with, skipping the sealed segments @memo, which
 * may be NULL, knows as verified and unchanged) and add one line per
 * problem, naming the file, or one good line per archive, to @report (kind
 * "wal-archive"), and count the segments read and skipped in it; then, for
 * a good archive, a bad line for each backup or snapshot (not already bad
 * in @report) that does not hold the archived state its MANIFEST names.
 * FALSE and *error only when an archive directory cannot be read. */
gboolean sqlenvfs_retention_verify_archives(SqlenvfsRoot *root,
                                            const SqlenvfsArchiveVerifyMemo *memo,
                                            SqlenvfsVerifyReport *report, GError **error);

/* For `verify`, once the verdicts of its copies are remembered: a failed
 * check for each database whose newest archived state cannot be restored
 * (sqlenvfs_timeline_unrecoverable_tail) since longer than [doctor]
 * archive-lag-warn-seconds. Only databases with a copy found bad in
 * @report are looked at here; sqlenvfs_retention_verify_archives checks
 * the others with the timeline it opens anyway. */
void sqlenvfs_retention_verify_newest(SqlenvfsRoot *root, SqlenvfsVerifyReport *report);

/* For `prune`, before anything is removed: the bases the retained
 * point-in-time windows of every database start from are checked
 * (sqlenvfs_timeline_check_anchors), so that a damaged one is known, and
 * the next good base takes its place, before sqlenvfs_retention_keep_base()
 * answers. Each one found bad is logged. FALSE and *error when one cannot
 * be checked (prune must then remove nothing). */
gboolean sqlenvfs_retention_check_anchors(SqlenvfsRoot *root, GError **error);

/* For `prune`: the keep hook of sqlenvfs_store_prune() (@user is the root):
 * keeps a copy that is, for some database, the newest base at or before the
 * start of the retained point-in-time period (pitr-keep-days) in its chain,
 * or any base inside it when no older one exists. */
gboolean sqlenvfs_retention_keep_base(const SqlenvfsStoredCopy *copy, gpointer user, char **why);

/* For `prune`: remove archive segments of every database that no retained
 * window needs: every record before the base state the retained period
 * starts from. Adds the removed (or, with @dry_run, removable) segment paths
 * to @removed. FALSE and *error on failure. */
gboolean sqlenvfs_retention_prune_archives(SqlenvfsRoot *root, gboolean dry_run,
                                           GPtrArray *removed, GError **error);

G_END_DECLS
