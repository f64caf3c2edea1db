/*
 * timeline.h — the recoverable history of one database: the WAL archive
 * (archive.h) split into chains, every backup and snapshot (store.h) mapped
 * to the archived state it holds, and the recoverable windows that follow
 * (the rules: docs/ARCHIVE.md, "Chains, outages and the recoverable
 * window"; the mapping of bases: the top of src/core/timeline.c).
 *
 * A timeline is opened once and refreshed: a refresh reads only what was
 * appended to the archive since (and checks those records), and reads the
 * store's MANIFESTs again only when the backups or snapshots directories,
 * or the memo of base verdicts, changed. It works in archive sequence
 * numbers through the archive's sparse reading interface, never walking
 * every record, so that what it costs follows the number of chains, gaps,
 * outages and bases, not the number of commits archived.
 *
 * Every function is safe to call from several threads at once (a timeline
 * holds a lock). The root must outlive the timeline.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/restore.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsTimeline SqlenvfsTimeline;

/* Open the timeline of database @db (a valid name; it need not exist): load
 * the archive's index, check its records (sqlenvfs_archive_check_records,
 * remembered in the root's state directory) and map the store's copies.
 * NULL and *error only when the archive or the store cannot be read. */
SqlenvfsTimeline *sqlenvfs_timeline_open(SqlenvfsRoot *root, const char *db, GError **error);
void sqlenvfs_timeline_free(SqlenvfsTimeline *tl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsTimeline, sqlenvfs_timeline_free)

const char *sqlenvfs_timeline_db(const SqlenvfsTimeline *tl);

/* The timeline's archive, its records checked (damaged ones are marks, as
 * the plans see them), for reading states by sequence number
 * (sqlenvfs_archive_compose). Valid until the next refresh or the free; the
 * caller must hold the timeline alone (not shared with other threads). */
SqlenvfsArchive *sqlenvfs_timeline_archive(SqlenvfsTimeline *tl);

/* Bring the timeline up to date: the records appended to the archive since
 * (a pruned or rewritten archive is read again), the copies when the store
 * changed. Answers afterwards are those of a timeline opened now. A read
 * that fails part-way (a prune removing segments meanwhile) is made again
 * from nothing. FALSE and *error when the archive or the store cannot be
 * read: the windows stay as they were, but no plan is made (an IO error)
 * until a refresh succeeds. */
gboolean sqlenvfs_timeline_refresh(SqlenvfsTimeline *tl, GError **error);

/* Whether anything a refresh would read may have changed since the last
 * one (a stat of the archive directory, its last segment, its alive file,
 * the store's directories and the memo of base verdicts; no file is read). */
gboolean sqlenvfs_timeline_is_stale(SqlenvfsTimeline *tl);

/* Why the last refresh could not read the archive or the copies (newly
 * allocated), or NULL when it could: while it is set, the windows are those
 * last read and no plan is made. */
char *sqlenvfs_timeline_unread(SqlenvfsTimeline *tl);

/* The recoverable windows (SqlenvfsRestoreWindow *, oldest first; empty
 * when nothing is recoverable), as sqlenvfs_restore_windows. */
GPtrArray *sqlenvfs_timeline_windows(SqlenvfsTimeline *tl);

/* The recoverable windows for messages: "FROM to TO, FROM to TO" (ISO
 * times; newly allocated, "" when there is none). */
char *sqlenvfs_timeline_describe_windows(SqlenvfsTimeline *tl);

/* Whether the archive goes on past the last recoverable window: records
 * after a break (a gap, or damage) that no usable backup or snapshot
 * reaches, so that the newest archived state cannot be restored and
 * `latest` is refused. TRUE, *from_us the time of that break, *to_us the
 * newest archived time and *why (g_free) what the break is and why no
 * base reaches past it; FALSE when the last window reaches the end of
 * the archive, or there is no window at all. */
gboolean sqlenvfs_timeline_unrecoverable_tail(SqlenvfsTimeline *tl, gint64 *from_us,
                                              gint64 *to_us, char **why);

/* Like sqlenvfs_timeline_unrecoverable_tail(), and also TRUE when the
 * archive holds records but there is no window at all (no usable backup
 * or snapshot lies in it: none was taken, or prune removed the windows'
 * bases with their archive): *from_us is then the start of its first
 * chain. What verify and doctor report. */
gboolean sqlenvfs_timeline_unrecoverable_newest(SqlenvfsTimeline *tl, gint64 *from_us,
                                                gint64 *to_us, char **why);

/* The plan for @t, as sqlenvfs_restore_plan (same errors and messages). */
SqlenvfsRestorePlan *sqlenvfs_timeline_plan(SqlenvfsTimeline *tl, const SqlenvfsTime *t,
                                            GError **error);

/* When the base of @plan turned out bad: set the base fields of @plan
 * (base_*, n_commits, archive_bytes) to the next best base of the same
 * chain that can serve its state, leaving out those named in @tried (keys
 * "<kind> <name>", e.g. "snapshot 20261128T161400Z"). FALSE when there is
 * none; then *@not_usable (newly allocated) lists, as " (not usable: ...)"
 * or "", the copies the timeline left out that are not in @tried. */
gboolean sqlenvfs_timeline_next_base(SqlenvfsTimeline *tl, SqlenvfsRestorePlan *plan,
                                     GHashTable *tried, char **not_usable);

/* A copy of the database mapped to an archived state. */
typedef struct {
  SqlenvfsCopyKind kind;
  char *name;  /* the backup or snapshot entry */
  char *path;  /* its <db>.db file             */
  guint64 seq; /* the state it holds           */
  char *why;   /* sqlenvfs_timeline_foreign_bases only: why it is not a base, */
  char *manifest; /* and the MANIFEST that places it in this archive      */
} SqlenvfsTimelineBase;

void sqlenvfs_timeline_base_free(SqlenvfsTimelineBase *b);

/* The copies mapped to an archived state (SqlenvfsTimelineBase *). */
GPtrArray *sqlenvfs_timeline_bases(SqlenvfsTimeline *tl);

/* The copies whose MANIFEST pins them in another history of the database
 * (a copy of the root that went on by itself, whose archive numbers its
 * records alike): never a base. SqlenvfsTimelineBase *, with path the
 * database file, seq 0 and why naming the MANIFEST and what to do. */
GPtrArray *sqlenvfs_timeline_foreign_bases(SqlenvfsTimeline *tl);

/* sqlenvfs_restore_base_holds_state on the timeline's archive. */
gboolean sqlenvfs_timeline_base_holds_state(SqlenvfsTimeline *tl, guint64 seq, int fd,
                                            const char *path, GError **error);

/* Whether a copy known bad (by this process, or through the memo of base
 * verdicts, verifymemo.h), and so left out of the bases, is the one a
 * restore to the state of @plan would otherwise have started from: it
 * holds a state of the same chain at or before @plan's, and one that
 * pick order puts over @plan's base (a later state, or a snapshot of the
 * same state as a backup); or else a copy whose MANIFEST cannot be read,
 * begun after @plan's base and before its state. TRUE, *@bad (the newest
 * such copy; free with sqlenvfs_timeline_base_free) and *@why (newly
 * allocated: what was found wrong with it); FALSE when there is none. */
/* Whether the COMMIT @seq, captured at @time_us, was archived late: after
 * an OUTAGE (the archiver stopped while the application went on), stamped
 * with that OUTAGE's time, though it was committed earlier. TRUE and
 * *@from_us, the last time capture was known complete before the outage
 * (the commit came after it, and a state at it is recoverable). */
gboolean sqlenvfs_timeline_archived_late(SqlenvfsTimeline *tl, guint64 seq, gint64 time_us,
                                         gint64 *from_us);

gboolean sqlenvfs_timeline_bad_base_over(SqlenvfsTimeline *tl, const SqlenvfsRestorePlan *plan,
                                         SqlenvfsTimelineBase **bad, char **why);

/* Retention: whether the copy @kind/@name is the base every restore into
 * the part of a window at or after @since starts from at the latest (the
 * newest base of its chain at or before the state at max(window start,
 * @since)); TRUE and *@why (newly allocated) saying which window. */
gboolean sqlenvfs_timeline_keeps_base(SqlenvfsTimeline *tl, SqlenvfsCopyKind kind,
                                      const char *name, gint64 since, char **why);

/* Retention: check, and remember in the memo of base verdicts
 * (verifymemo.h), each base that sqlenvfs_timeline_keeps_base() answers
 * for and that has no good verdict for its file as it is now: its MANIFEST
 * (size, header, crc32: every byte read) and the archived state it stands
 * for. Prune relies on these alone for the retained windows, so a damaged
 * one must be known before the copies after it go. Each one found bad is
 * added to @bad ("snapshot NAME: why"); the timeline answers as before
 * until it is opened again, when the next base takes its place. FALSE and
 * *error (nothing more checked) when such a base cannot be checked (its
 * file cannot be opened or read, or the archived records to compare it
 * with are damaged): no verdict can be kept for it, and prune must not
 * rely on it. */
gboolean sqlenvfs_timeline_check_anchors(SqlenvfsTimeline *tl, gint64 since, GPtrArray *bad,
                                         GError **error);

/* Retention: the first sequence number prune must keep so that every window
 * keeps its part at or after @since, and a last chain with no base yet is
 * kept whole (a snapshot of it may still come); nor does it pass the state
 * at the time of a copy whose MANIFEST cannot be read, where that copy may
 * be the retained part's base (said with a warning). FALSE when the archive
 * holds nothing to prune. */
gboolean sqlenvfs_timeline_prune_point(SqlenvfsTimeline *tl, gint64 since, guint64 *keep_from_seq);

G_END_DECLS
